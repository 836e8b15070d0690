//! `schema check`: the schema fingerprints published on a data directory's topics,
//! against the lock file.

use std::collections::BTreeMap;
use std::process::ExitCode;

use rustok_iggy::header;
use rustok_iggy::schema::{Fingerprint, SchemaLock};
use rustok_iggy_connector::{
    ConnectorConfig, EmbeddedConnector, IggyConnector, PollFrom, ReceivedMessage,
};

use crate::cli::SchemaCheckArgs;

/// Messages read per poll.
const POLL_MAX: u32 = 1000;

/// What one group of messages (same topic, event type, version and fingerprint) said.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Published {
    topic: String,
    event_type: String,
    version: u32,
    fingerprint: Fingerprint,
}

/// `schema check`; exit status 1 when a published fingerprint is not in the lock.
pub(crate) async fn check(SchemaCheckArgs { lock, data_dir }: SchemaCheckArgs) -> ExitCode {
    let lock_file = match SchemaLock::read(&lock) {
        Ok(lock) => lock,
        Err(e) => return fail(&format!("schema check failed: {}", chain(&e))),
    };
    if !data_dir.is_dir() {
        return fail(&format!(
            "schema check failed: {} is not a data directory",
            data_dir.display()
        ));
    }
    let connector = EmbeddedConnector::new();
    if let Err(e) = connector
        .connect(&ConnectorConfig::embedded(&data_dir))
        .await
    {
        return fail(&format!("schema check failed: {}", chain(&e)));
    }
    let scanned = scan(&connector).await;
    let closed = connector.shutdown().await;
    let (published, unfingerprinted) = match (scanned, closed) {
        (Ok(found), Ok(())) => found,
        (Err(e), _) | (Ok(_), Err(e)) => {
            return fail(&format!("schema check failed: {}", chain(&e)));
        }
    };

    let mut mismatches = 0usize;
    for (found, count) in &published {
        let Published {
            topic,
            event_type,
            version,
            fingerprint,
        } = found;
        match lock_file.get(event_type, *version) {
            Some(locked) if locked.reads(*fingerprint) => println!(
                "ok        {topic}: {event_type:?} version {version} fingerprint {fingerprint} ({count} messages)"
            ),
            Some(locked) => {
                mismatches += 1;
                println!(
                    "MISMATCH  {topic}: {event_type:?} version {version} published with fingerprint \
                     {fingerprint} ({count} messages); the lock has {}",
                    locked.fingerprint
                );
            }
            None => {
                mismatches += 1;
                println!(
                    "UNLOCKED  {topic}: {event_type:?} version {version} published with fingerprint \
                     {fingerprint} ({count} messages); the lock does not record this version"
                );
            }
        }
    }
    if unfingerprinted > 0 {
        println!(
            "{unfingerprinted} message(s) carry no schema fingerprint (older producers or other clients): not checked"
        );
    }
    if mismatches == 0 {
        println!("every published fingerprint matches {}", lock.display());
        ExitCode::SUCCESS
    } else {
        println!(
            "{mismatches} published schema(s) differ from {}",
            lock.display()
        );
        ExitCode::FAILURE
    }
}

type Scan = (BTreeMap<Published, u64>, u64);

/// Every message of every partition of every topic, grouped by what its headers say.
async fn scan(
    connector: &EmbeddedConnector,
) -> Result<Scan, rustok_iggy_connector::ConnectorError> {
    let mut published = BTreeMap::new();
    let mut unfingerprinted = 0u64;
    for (stream, topic) in connector.topics()? {
        let Some(info) = connector.topic_info(&stream, &topic).await? else {
            continue;
        };
        let name = format!("{stream}/{topic}");
        for (partition, &end) in (0..info.partitions).zip(&info.next_offsets) {
            let mut from = PollFrom::First;
            loop {
                let messages = connector
                    .poll(&stream, &topic, partition, from, POLL_MAX)
                    .await?;
                let Some(last) = messages.last().map(|m| m.offset) else {
                    break;
                };
                for message in &messages {
                    match published_as(&name, message) {
                        Some(found) => *published.entry(found).or_insert(0u64) += 1,
                        None => unfingerprinted += 1,
                    }
                }
                if last.saturating_add(1) >= end {
                    break;
                }
                from = PollFrom::Offset(last + 1);
            }
        }
    }
    Ok((published, unfingerprinted))
}

/// The event type, version and fingerprint a message's headers name, when it has all
/// three (a fingerprint that does not parse counts as none).
fn published_as(topic: &str, message: &ReceivedMessage) -> Option<Published> {
    let headers = &message.headers;
    Some(Published {
        topic: topic.to_owned(),
        event_type: headers.get_str(header::EVENT_TYPE)?.to_owned(),
        version: headers.get_str(header::SCHEMA_VERSION)?.parse().ok()?,
        fingerprint: headers.get_str(header::SCHEMA_FINGERPRINT)?.parse().ok()?,
    })
}

/// An error and its sources, for people.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn fail(message: &str) -> ExitCode {
    eprintln!("rustok-iggy-server: {message}");
    ExitCode::FAILURE
}
