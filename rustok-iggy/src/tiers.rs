//! Retry tier topics of the handler runner (see [`crate::RetryTiers`]): where a
//! failed event waits for its next attempt without blocking its source partition.

use std::sync::Arc;
use std::time::Duration;

use rustok_iggy_connector::{
    GroupName, IggyConnector, OutgoingMessage, Partitioning, PublishRequest, ReceivedMessage,
    Retention, StreamName, TopicName, TopicSpec, now_micros,
};

use crate::error::Error;
use crate::retry::RetryTiers;

/// Headers an event in a retry tier topic carries besides its own.
pub mod retry_header {
    /// The tier (1-based).
    pub const TIER: &str = "retry.tier";
    /// When the event is due for its next attempt (µs since the Unix epoch).
    pub const DUE: &str = "retry.due";
    /// The topic the event was first read from.
    pub const ORIGINAL_TOPIC: &str = "retry.original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "retry.original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "retry.original_offset";
    /// When the broker first stored it (µs since the Unix epoch).
    pub const ORIGINAL_TIMESTAMP: &str = "retry.original_timestamp";
    /// Attempts made so far, every tier included.
    pub const ATTEMPTS: &str = "retry.attempts";
    /// The last error (cut to 255 bytes).
    pub const ERROR: &str = "retry.error";
}

/// Every `retry.*` header: what a dead letter or a handler does not see.
const RETRY_HEADERS: [&str; 8] = [
    retry_header::TIER,
    retry_header::DUE,
    retry_header::ORIGINAL_TOPIC,
    retry_header::ORIGINAL_PARTITION,
    retry_header::ORIGINAL_OFFSET,
    retry_header::ORIGINAL_TIMESTAMP,
    retry_header::ATTEMPTS,
    retry_header::ERROR,
];

/// The topic of tier `n` (1-based) of consumer group `group` on `source`:
/// `<source>.<group>.retry.<n>` (`<source>.<group>` cut to fit 255 bytes). Each group
/// has its own tiers: a group's tier runner handles only the events that group
/// failed, and two groups failing the same event each keep their retry (a tier
/// write keeps the event's message id, which the broker deduplicates per partition).
pub(crate) fn tier_topic(source: &TopicName, group: &GroupName, n: u32) -> TopicName {
    let suffix = format!(".retry.{n}");
    let mut name = format!("{source}.{group}");
    while name.len() + suffix.len() > 255 {
        name.pop();
    }
    TopicName::new(format!("{name}{suffix}")).unwrap_or_else(|_| source.clone())
}

/// Where an event read from a tier topic came from, and how often it was tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) timestamp: u64,
    pub(crate) attempts: u32,
    pub(crate) due: u64,
}

fn number(message: &ReceivedMessage, name: &str) -> Option<u64> {
    message.headers.get_str(name)?.parse().ok()
}

/// The origin a tier message names (`None` for a message without the headers).
pub(crate) fn origin(message: &ReceivedMessage) -> Option<Origin> {
    Some(Origin {
        partition: u32::try_from(number(message, retry_header::ORIGINAL_PARTITION)?).ok()?,
        offset: number(message, retry_header::ORIGINAL_OFFSET)?,
        timestamp: number(message, retry_header::ORIGINAL_TIMESTAMP).unwrap_or(0),
        attempts: u32::try_from(number(message, retry_header::ATTEMPTS)?).ok()?,
        due: number(message, retry_header::DUE).unwrap_or(0),
    })
}

/// The message as first read from the source topic: its original partition,
/// offset and timestamp, without the `retry.*` headers (what a dead letter keeps).
pub(crate) fn restored(message: &ReceivedMessage, origin: &Origin) -> ReceivedMessage {
    let mut restored = message.clone();
    restored.partition = origin.partition;
    restored.offset = origin.offset;
    restored.timestamp = origin.timestamp;
    for name in RETRY_HEADERS {
        restored.headers.remove(name);
    }
    restored
}

/// How long until `origin` is due (zero when it is).
pub(crate) fn wait_for(origin: &Origin) -> Duration {
    Duration::from_micros(origin.due.saturating_sub(now_micros()))
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].trim() {
        "" => "-".to_owned(),
        cut => cut.to_owned(),
    }
}

/// The tier topics of one source topic, created when missing.
#[derive(Debug, Clone)]
pub(crate) struct Tiers {
    connector: Arc<dyn IggyConnector>,
    stream: StreamName,
    source: TopicName,
    topics: Vec<(TopicName, u32)>,
    delays: Vec<Duration>,
}

impl Tiers {
    /// Ensures `group`'s tier topics of `source` (with `partitions` partitions and the
    /// dead-letter retention: an event waiting for a retry is kept as long as a dead
    /// letter would be).
    pub(crate) async fn open(
        connector: Arc<dyn IggyConnector>,
        stream: StreamName,
        source: TopicName,
        group: &GroupName,
        partitions: u32,
        retention: Retention,
        tiers: &RetryTiers,
    ) -> Result<Self, Error> {
        let mut topics = Vec::new();
        for n in 1..=tiers.len() {
            let topic = tier_topic(&source, group, n);
            let info = connector
                .ensure_topic(&TopicSpec {
                    stream: stream.clone(),
                    topic: topic.clone(),
                    partitions,
                    retention,
                })
                .await?;
            topics.push((topic, info.partitions.max(1)));
        }
        Ok(Self {
            connector,
            stream,
            source,
            topics,
            delays: tiers.delays().to_vec(),
        })
    }

    /// The tier topics, tier 1 first.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &TopicName> {
        self.topics.iter().map(|(topic, _)| topic)
    }

    /// The topic of tier `n` (1-based; the source topic for any other `n`).
    pub(crate) fn topic(&self, n: u32) -> &TopicName {
        usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|index| self.topics.get(index))
            .map_or(&self.source, |(topic, _)| topic)
    }

    /// How many tiers there are.
    pub(crate) fn len(&self) -> u32 {
        u32::try_from(self.topics.len()).unwrap_or(u32::MAX)
    }

    /// Writes `message` (read from the source, `origin: None`, or from a tier) to
    /// tier `n` (1-based), due after that tier's delay, and returns once the broker
    /// accepted it: only then may the caller commit where it read it from.
    pub(crate) async fn write(
        &self,
        n: u32,
        message: &ReceivedMessage,
        origin: Option<&Origin>,
        attempts: u32,
        error: &str,
    ) -> Result<(), Error> {
        let index = usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX);
        let (Some((topic, partitions)), Some(delay)) =
            (self.topics.get(index), self.delays.get(index))
        else {
            return Err(Error::Connector(
                rustok_iggy_connector::ConnectorError::InvalidRequest(format!(
                    "there is no retry tier {n}"
                )),
            ));
        };
        let origin = origin.copied().unwrap_or(Origin {
            partition: message.partition,
            offset: message.offset,
            timestamp: message.timestamp,
            attempts,
            due: 0,
        });
        let mut headers = message.headers.clone();
        for name in RETRY_HEADERS {
            headers.remove(name);
        }
        let due = now_micros().saturating_add(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX));
        let entries = [
            (retry_header::TIER, n.to_string()),
            (retry_header::DUE, due.to_string()),
            (retry_header::ORIGINAL_TOPIC, self.source.to_string()),
            (
                retry_header::ORIGINAL_PARTITION,
                origin.partition.to_string(),
            ),
            (retry_header::ORIGINAL_OFFSET, origin.offset.to_string()),
            (
                retry_header::ORIGINAL_TIMESTAMP,
                origin.timestamp.to_string(),
            ),
            (retry_header::ATTEMPTS, attempts.to_string()),
            (retry_header::ERROR, cut(error)),
        ];
        for (name, value) in entries {
            headers.insert_str(name, value)?;
        }
        self.connector
            .publish(PublishRequest {
                stream: self.stream.clone(),
                topic: topic.clone(),
                partitioning: Partitioning::Partition(origin.partition % partitions),
                messages: vec![OutgoingMessage {
                    id: message.id,
                    payload: message.payload.clone(),
                    headers,
                }],
            })
            .await?;
        Ok(())
    }
}
