//! `schema check`: the schema fingerprints published on a data directory's or a
//! server's topics, against the lock file.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use rustok_iggy::metadata::header;
use rustok_iggy::schema::{Fingerprint, SchemaLock};
use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, EmbeddedConnector, IggyConnector, ReceivedMessage,
    StartPosition, StreamName, TopicName,
};

use crate::cli::{SchemaCheckArgs, SignInArgs};

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

/// `schema check`; exit status 1 when a published fingerprint is not in the lock (or
/// the check could not run), 2 when `--server` lacks its credentials.
pub(crate) async fn check(args: SchemaCheckArgs) -> ExitCode {
    let SchemaCheckArgs {
        lock,
        data_dir,
        server,
        sign_in,
    } = args;
    let lock_file = match SchemaLock::read(&lock) {
        Ok(lock) => lock,
        Err(e) => return fail(&format!("schema check failed: {}", chain(&e))),
    };
    let scanned = match data_dir {
        Some(data_dir) => scan_data_dir(&data_dir).await,
        None => match scan_server(server, sign_in).await {
            Ok(scanned) => scanned,
            Err(exit) => return exit,
        },
    };
    let (published, unfingerprinted) = match scanned {
        Ok(found) => found,
        Err(message) => return fail(&format!("schema check failed: {message}")),
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

/// The data directory's topics, through an embedded broker opened on it.
async fn scan_data_dir(data_dir: &Path) -> Result<Scan, String> {
    if !data_dir.is_dir() {
        return Err(format!("{} is not a data directory", data_dir.display()));
    }
    let connector = EmbeddedConnector::new();
    connector
        .connect(&ConnectorConfig::embedded(data_dir))
        .await
        .map_err(|e| chain(&e))?;
    let scanned = match connector.topics() {
        Ok(topics) => scan(&connector, topics).await,
        Err(e) => Err(e),
    };
    let closed = connector.shutdown().await;
    match (scanned, closed) {
        (Ok(found), Ok(())) => Ok(found),
        (Err(e), _) | (Ok(_), Err(e)) => Err(chain(&e)),
    }
}

/// The server's topics, through the remote connector: the outer error is the exit
/// status of a usage mistake, the inner one a check that could not run.
#[cfg(feature = "remote")]
async fn scan_server(
    addresses: Vec<String>,
    sign_in: SignInArgs,
) -> Result<Result<Scan, String>, ExitCode> {
    use rustok_iggy_connector::{ConnectorMode, RemoteConnector};

    let Some(remote) = sign_in.remote_config(addresses) else {
        eprintln!(
            "rustok-iggy-server: schema check --server needs --username and a password \
             (--password or IGGY_PASSWORD)"
        );
        return Err(ExitCode::from(2));
    };
    let config = ConnectorConfig {
        mode: ConnectorMode::Remote,
        remote,
        ..ConnectorConfig::default()
    };
    let connector = RemoteConnector::new();
    if let Err(e) = connector.connect(&config).await {
        return Ok(Err(chain(&e)));
    }
    let scanned = match connector.topics().await {
        Ok(topics) => scan(&connector, topics).await,
        Err(e) => Err(e),
    };
    let closed = connector.shutdown().await;
    Ok(match (scanned, closed) {
        (Ok(found), Ok(())) => Ok(found),
        (Err(e), _) | (Ok(_), Err(e)) => Err(chain(&e)),
    })
}

/// `--server` without the `remote` feature: an error.
#[cfg(not(feature = "remote"))]
async fn scan_server(_: Vec<String>, _: SignInArgs) -> Result<Result<Scan, String>, ExitCode> {
    eprintln!(
        "rustok-iggy-server: schema check --server needs the `remote` feature of \
         rustok-iggy-server (on by default; it was built with --no-default-features)"
    );
    Err(ExitCode::from(2))
}

/// Every message of every partition of the topics, grouped by what its headers say.
/// Polls by offset: no consumer offset is read or written.
async fn scan(
    connector: &dyn IggyConnector,
    topics: Vec<(StreamName, TopicName)>,
) -> Result<Scan, ConnectorError> {
    let mut published = BTreeMap::new();
    let mut unfingerprinted = 0u64;
    for (stream, topic) in topics {
        let Some(info) = connector.topic_info(&stream, &topic).await? else {
            continue;
        };
        let name = format!("{stream}/{topic}");
        for (partition, &end) in (0..info.partitions).zip(&info.next_offsets) {
            let mut from = StartPosition::Earliest;
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
                from = StartPosition::Offset(last + 1);
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
