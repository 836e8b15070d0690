//! The dead-letter topic: where events go that could not be handled, with why; and
//! how to inspect and re-drive them.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rustok_iggy_connector::{
    Headers, IggyConnector, OutgoingMessage, Partitioning, PollFrom, PublishRequest,
    ReceivedMessage, Retention, StreamName, TopicName, TopicSpec, now_micros,
};
use uuid::Uuid;

use crate::error::Error;
use crate::metadata::header;

/// Headers a dead-letter entry carries besides the original ones.
pub mod dlq_header {
    /// The stream the event was read from.
    pub const ORIGINAL_STREAM: &str = "dlq.original_stream";
    /// The topic the event was read from.
    pub const ORIGINAL_TOPIC: &str = "dlq.original_topic";
    /// Its partition there.
    pub const ORIGINAL_PARTITION: &str = "dlq.original_partition";
    /// Its offset there.
    pub const ORIGINAL_OFFSET: &str = "dlq.original_offset";
    /// When the broker first stored it (µs since the Unix epoch).
    pub const ORIGINAL_TIMESTAMP: &str = "dlq.original_timestamp";
    /// The consumer group that gave up on it.
    pub const GROUP: &str = "dlq.group";
    /// Why (the last error, cut to 255 bytes).
    pub const ERROR: &str = "dlq.error";
    /// How many times it was attempted.
    pub const ATTEMPTS: &str = "dlq.attempts";
    /// When it was dead-lettered (µs since the Unix epoch).
    pub const DEAD_LETTERED_AT: &str = "dlq.dead_lettered_at";
}

/// Where dead letters of a topic go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterConfig {
    /// The dead-letter topic; `<topic>.dlq` by default.
    pub topic: Option<TopicName>,
    /// Its retention.
    pub retention: Retention,
}

/// The default dead-letter topic of `topic`: `<topic>.dlq` (cut to fit 255 bytes).
pub(crate) fn default_topic(topic: &TopicName) -> TopicName {
    let mut name = topic.as_str().to_owned();
    while name.len() > 251 {
        name.pop();
    }
    TopicName::new(format!("{name}.dlq")).unwrap_or_else(|_| topic.clone())
}

/// An event in the dead-letter topic.
#[derive(Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where it is in the dead-letter topic (partition).
    pub dlq_partition: u32,
    /// Where it is in the dead-letter topic (offset).
    pub dlq_offset: u64,
    /// The event id (unchanged from the original).
    pub event_id: Uuid,
    /// The event type, if the original named one.
    pub event_type: Option<String>,
    /// The original stream.
    pub original_stream: String,
    /// The original topic.
    pub original_topic: String,
    /// The original partition.
    pub original_partition: u32,
    /// The original offset.
    pub original_offset: u64,
    /// The consumer group that gave up.
    pub group: String,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the original was stored (µs).
    pub original_timestamp: u64,
    /// When it was dead-lettered (µs).
    pub dead_lettered_at: u64,
    /// The original payload, untouched.
    pub payload: Bytes,
    /// The original headers (without the `dlq.*` ones).
    pub headers: Headers,
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field(
                "original",
                &format_args!(
                    "{}/{}:{}@{}",
                    self.original_stream,
                    self.original_topic,
                    self.original_partition,
                    self.original_offset
                ),
            )
            .field("group", &self.group)
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text[..end].trim();
    if cut.is_empty() {
        "-".to_owned()
    } else {
        cut.to_owned()
    }
}

/// What went wrong with one event, to be dead-lettered.
#[derive(Clone)]
pub(crate) struct Failure<'a> {
    pub(crate) message: &'a ReceivedMessage,
    pub(crate) group: &'a str,
    pub(crate) error: String,
    pub(crate) attempts: u32,
}

/// Writes dead letters of one source topic and reads them back.
#[derive(Clone)]
pub struct DeadLetters {
    connector: Arc<dyn IggyConnector>,
    stream: StreamName,
    source: TopicName,
    topic: TopicName,
    partitions: u32,
}

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetters")
            .field("stream", &self.stream)
            .field("source", &self.source)
            .field("topic", &self.topic)
            .finish()
    }
}

impl DeadLetters {
    /// The dead letters of `source` in `stream`; the dead-letter topic (named by
    /// `config`, `<source>.dlq` by default, with `partitions` partitions) is created
    /// when missing.
    pub async fn open(
        connector: Arc<dyn IggyConnector>,
        stream: StreamName,
        source: TopicName,
        partitions: u32,
        config: &DeadLetterConfig,
    ) -> Result<Self, Error> {
        let topic = config
            .topic
            .clone()
            .unwrap_or_else(|| default_topic(&source));
        let info = connector
            .ensure_topic(&TopicSpec {
                stream: stream.clone(),
                topic: topic.clone(),
                partitions,
                retention: config.retention,
            })
            .await?;
        Ok(Self {
            connector,
            stream,
            source,
            topic,
            partitions: info.partitions,
        })
    }

    /// The dead letters of `transport`'s topic (the topic is created when missing).
    pub async fn for_transport<E: crate::IggyEvent>(
        transport: &crate::Transport<E>,
        config: &DeadLetterConfig,
    ) -> Result<Self, Error> {
        Self::open(
            Arc::clone(transport.connector()),
            transport.stream().clone(),
            transport.topic().clone(),
            transport.partitions(),
            config,
        )
        .await
    }

    /// The topic whose dead letters these are.
    pub fn source(&self) -> &TopicName {
        &self.source
    }

    /// The dead-letter topic.
    pub fn topic(&self) -> &TopicName {
        &self.topic
    }

    /// Writes a dead letter and returns once the broker accepted it. Only then may the
    /// caller commit the source offset: a crash in between duplicates the dead letter
    /// at worst, it never loses the event.
    pub(crate) async fn write(&self, failure: Failure<'_>) -> Result<(), Error> {
        let original = failure.message;
        let mut headers = original.headers.clone();
        let entries = [
            (dlq_header::ORIGINAL_STREAM, self.stream.to_string()),
            (dlq_header::ORIGINAL_TOPIC, self.source.to_string()),
            (
                dlq_header::ORIGINAL_PARTITION,
                original.partition.to_string(),
            ),
            (dlq_header::ORIGINAL_OFFSET, original.offset.to_string()),
            (
                dlq_header::ORIGINAL_TIMESTAMP,
                original.timestamp.to_string(),
            ),
            (dlq_header::GROUP, cut(failure.group)),
            (dlq_header::ERROR, cut(&failure.error)),
            (dlq_header::ATTEMPTS, failure.attempts.to_string()),
            (dlq_header::DEAD_LETTERED_AT, now_micros().to_string()),
        ];
        for (name, value) in entries {
            headers.insert_str(name, value)?;
        }
        self.connector
            .publish(PublishRequest {
                stream: self.stream.clone(),
                topic: self.topic.clone(),
                partitioning: Partitioning::Partition(original.partition % self.partitions.max(1)),
                messages: vec![OutgoingMessage {
                    id: original.id,
                    payload: original.payload.clone(),
                    headers,
                }],
            })
            .await?;
        Ok(())
    }

    /// Every dead letter currently stored, oldest first per partition (at most
    /// `limit`).
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, Error> {
        let mut out = Vec::new();
        for partition in 0..self.partitions {
            let mut from = PollFrom::First;
            loop {
                let batch = self
                    .connector
                    .poll(&self.stream, &self.topic, partition, from, 1000)
                    .await?;
                let Some(last) = batch.last().map(|m| m.offset) else {
                    break;
                };
                for message in &batch {
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    out.push(parse(message));
                }
                from = PollFrom::Offset(last + 1);
            }
        }
        Ok(out)
    }

    /// Publishes the dead letters matching `filter` to their original topic again, with
    /// their original event id (in the `event_id` header), headers (correlation,
    /// tenant, ...) and partition, as a new message: its message id is fresh, so the
    /// broker's deduplication window, which still holds the original's id, stores it.
    /// Returns how many were re-driven. Re-driving an entry twice publishes it twice
    /// (consumers deduplicate by event id).
    pub async fn redrive(&self, filter: impl Fn(&DeadLetter) -> bool) -> Result<usize, Error> {
        let mut count = 0;
        for letter in self.list(usize::MAX).await? {
            if !filter(&letter) {
                continue;
            }
            let topic = TopicName::new(letter.original_topic.as_str())?;
            let stream = StreamName::new(letter.original_stream.as_str())?;
            let mut headers = letter.headers.clone();
            if headers.get_str(header::EVENT_ID).is_none() {
                headers.insert_str(header::EVENT_ID, letter.event_id.to_string())?;
            }
            self.connector
                .publish(PublishRequest {
                    stream,
                    topic,
                    partitioning: Partitioning::Partition(letter.original_partition),
                    messages: vec![OutgoingMessage {
                        id: 0,
                        payload: letter.payload.clone(),
                        headers,
                    }],
                })
                .await?;
            count += 1;
        }
        Ok(count)
    }

    /// Re-drives one dead letter by event id; returns whether it was found.
    pub async fn redrive_one(&self, event_id: Uuid) -> Result<bool, Error> {
        Ok(self.redrive(|letter| letter.event_id == event_id).await? > 0)
    }

    /// Dead letters stored (what retention kept).
    pub async fn depth(&self) -> Result<u64, Error> {
        stored_messages(self.connector.as_ref(), &self.stream, &self.topic).await
    }
}

/// Messages stored in `topic` (0 when it does not exist): per partition, the next
/// offset minus the oldest retained one.
pub(crate) async fn stored_messages(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
) -> Result<u64, Error> {
    let Some(info) = connector.topic_info(stream, topic).await? else {
        return Ok(0);
    };
    let mut stored = 0;
    for (partition, next) in info.next_offsets.iter().enumerate() {
        if *next == 0 {
            continue;
        }
        let first = connector
            .poll(stream, topic, partition as u32, PollFrom::First, 1)
            .await?;
        stored += first.first().map_or(0, |m| next - m.offset);
    }
    Ok(stored)
}

fn parse(message: &ReceivedMessage) -> DeadLetter {
    let headers = &message.headers;
    let text = |name: &str| headers.get_str(name).unwrap_or_default().to_owned();
    let number = |name: &str| {
        headers
            .get_str(name)
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut original = headers.clone();
    for name in [
        dlq_header::ORIGINAL_STREAM,
        dlq_header::ORIGINAL_TOPIC,
        dlq_header::ORIGINAL_PARTITION,
        dlq_header::ORIGINAL_OFFSET,
        dlq_header::ORIGINAL_TIMESTAMP,
        dlq_header::GROUP,
        dlq_header::ERROR,
        dlq_header::ATTEMPTS,
        dlq_header::DEAD_LETTERED_AT,
    ] {
        original.remove(name);
    }
    DeadLetter {
        dlq_partition: message.partition,
        dlq_offset: message.offset,
        event_id: Uuid::from_u128(message.id),
        event_type: headers.get_str(header::EVENT_TYPE).map(str::to_owned),
        original_stream: text(dlq_header::ORIGINAL_STREAM),
        original_topic: text(dlq_header::ORIGINAL_TOPIC),
        original_partition: u32::try_from(number(dlq_header::ORIGINAL_PARTITION)).unwrap_or(0),
        original_offset: number(dlq_header::ORIGINAL_OFFSET),
        group: text(dlq_header::GROUP),
        error: text(dlq_header::ERROR),
        attempts: u32::try_from(number(dlq_header::ATTEMPTS)).unwrap_or(0),
        original_timestamp: number(dlq_header::ORIGINAL_TIMESTAMP),
        dead_lettered_at: number(dlq_header::DEAD_LETTERED_AT),
        payload: message.payload.clone(),
        headers: original,
    }
}
