//! The dead-letter topic: where events go that could not be handled, with why; and
//! how to inspect, re-drive and dismiss them.
//!
//! A letter is settled (re-driven or dismissed) by a *tombstone*: a message appended
//! to the same partition of the dead-letter topic that names the letter's offset.
//! Tombstones always follow their letter in its partition, so retention (which
//! deletes the oldest segments first) never keeps a tombstone without its letter's
//! successors: a settled letter never comes back.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rustok_iggy_connector::{
    ConnectorError, ErrorKind, HeaderError, Headers, IggyConnector, OutgoingMessage, Partitioning,
    PublishRequest, ReceivedMessage, Retention, StartPosition, StreamName, TopicName, TopicSpec,
    now_micros,
};
use uuid::Uuid;

use crate::metadata::header;

mod config;

pub(crate) use config::default_topic;
pub use config::{DEFAULT_DEAD_LETTER_RETENTION, DeadLetterConfig};

/// Why a dead-letter operation failed: opening the dead-letter topic, writing a
/// letter, or reading, re-driving, dismissing or counting letters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeadLetterError {
    /// The connection layer failed (the broker, the network, storage).
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// A header of a letter or a tombstone could not be written (values are 1 to 255
    /// bytes: an empty reason is one that cannot).
    #[error("a dead-letter header cannot be written")]
    InvalidHeader(#[from] HeaderError),
    /// A delivery was terminated, but its subscription has no dead-letter topic.
    #[error("the subscription has no dead-letter topic to terminate deliveries into")]
    NoDeadLetterTopic,
}

impl DeadLetterError {
    /// What kind of failure this is (see [`crate::Error::kind`]): the connector's kind
    /// for a failure of the connection layer; [`ErrorKind::Invalid`] otherwise.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Connector(error) => error.kind(),
            Self::InvalidHeader(_) | Self::NoDeadLetterTopic => ErrorKind::Invalid,
        }
    }
}

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
    /// On a tombstone: the offset (in the same partition) of the letter it settles.
    pub const SETTLES: &str = "dlq.settles";
    /// On a tombstone: how the letter was settled, `redriven` or `dismissed`.
    pub const SETTLED_AS: &str = "dlq.settled_as";
    /// On a tombstone: when (µs since the Unix epoch).
    pub const SETTLED_AT: &str = "dlq.settled_at";
}

/// Every `dlq.*` header: what a re-driven event does not carry back.
const DLQ_HEADERS: [&str; 12] = [
    dlq_header::ORIGINAL_STREAM,
    dlq_header::ORIGINAL_TOPIC,
    dlq_header::ORIGINAL_PARTITION,
    dlq_header::ORIGINAL_OFFSET,
    dlq_header::ORIGINAL_TIMESTAMP,
    dlq_header::GROUP,
    dlq_header::ERROR,
    dlq_header::ATTEMPTS,
    dlq_header::DEAD_LETTERED_AT,
    dlq_header::SETTLES,
    dlq_header::SETTLED_AS,
    dlq_header::SETTLED_AT,
];

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

/// How a letter was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settlement {
    Redriven,
    Dismissed,
}

impl Settlement {
    fn as_str(self) -> &'static str {
        match self {
            Self::Redriven => "redriven",
            Self::Dismissed => "dismissed",
        }
    }
}

/// Publishes `request` to the topic of `spec`; when that topic is not found (deleted
/// under a running consumer), creates it with `spec`, once, and publishes again.
/// Returns once the broker accepted the messages, or the error of the last try.
pub(crate) async fn publish_recreating(
    connector: &dyn IggyConnector,
    spec: &TopicSpec,
    request: PublishRequest,
) -> Result<(), ConnectorError> {
    match connector.publish(request.clone()).await {
        Err(ConnectorError::TopicNotFound { .. }) => {
            tracing::warn!(
                stream = %spec.stream,
                topic = %spec.topic,
                "the topic was deleted; creating it again"
            );
            connector.ensure_topic(spec).await?;
            connector.publish(request).await.map(drop)
        }
        published => published.map(drop),
    }
}

/// How many messages one read of the dead-letter topic asks for.
const READ_BATCH: u32 = 1000;

/// Writes dead letters of one source topic and reads them back.
///
/// Reads stream the topic a batch at a time: memory grows with the number of
/// settled letters (an offset each), never with their payloads.
#[derive(Clone)]
pub struct DeadLetters {
    connector: Arc<dyn IggyConnector>,
    stream: StreamName,
    source: TopicName,
    topic: TopicName,
    partitions: u32,
    /// The dead-letter topic's retention as opened (what [`DeadLetters::write`]
    /// creates the topic with again when it was deleted).
    retention: Retention,
    /// Serializes re-drives and dismissals through this value and its clones, so
    /// that two of them never settle the same letter twice.
    settling: Arc<tokio::sync::Mutex<()>>,
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
    /// when missing. Its retention is `config.retention` when set; otherwise an
    /// existing topic keeps its own and a new one gets
    /// [`DEFAULT_DEAD_LETTER_RETENTION`].
    pub async fn open(
        connector: Arc<dyn IggyConnector>,
        stream: StreamName,
        source: TopicName,
        partitions: u32,
        config: &DeadLetterConfig,
    ) -> Result<Self, DeadLetterError> {
        let topic = config.topic_of(&source);
        let retention = match config.retention {
            Some(retention) => retention,
            None => connector
                .topic_info(&stream, &topic)
                .await?
                .map_or(DEFAULT_DEAD_LETTER_RETENTION, |info| info.retention),
        };
        Self::open_with(connector, stream, source, topic, partitions, retention).await
    }

    /// The dead letters of `source` as `config` names them: its topic (`<source>.dlq`
    /// by default), created when missing with `config.retention`, else `retention`.
    pub(crate) async fn configured(
        connector: Arc<dyn IggyConnector>,
        stream: StreamName,
        source: TopicName,
        partitions: u32,
        config: &DeadLetterConfig,
        retention: Retention,
    ) -> Result<Self, DeadLetterError> {
        let topic = config.topic_of(&source);
        let retention = config.retention.unwrap_or(retention);
        Self::open_with(connector, stream, source, topic, partitions, retention).await
    }

    pub(crate) async fn open_with(
        connector: Arc<dyn IggyConnector>,
        stream: StreamName,
        source: TopicName,
        topic: TopicName,
        partitions: u32,
        retention: Retention,
    ) -> Result<Self, DeadLetterError> {
        let info = connector
            .ensure_topic(&TopicSpec {
                stream: stream.clone(),
                topic: topic.clone(),
                partitions,
                retention,
            })
            .await?;
        Ok(Self {
            connector,
            stream,
            source,
            topic,
            partitions: info.partitions,
            retention,
            settling: Arc::default(),
        })
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
    /// caller commit the source offset: a crash in between writes the letter again
    /// (with the same message id: stored once within the broker's deduplication
    /// window, twice at worst past it), it never loses the event.
    ///
    /// A dead-letter topic deleted since it was opened is created again, once per
    /// write, with the partition count and retention it was opened with, and the
    /// letter is written there.
    pub(crate) async fn write(&self, failure: Failure<'_>) -> Result<(), DeadLetterError> {
        let original = failure.message;
        let mut headers = original.headers.clone();
        for name in DLQ_HEADERS {
            headers.remove(name);
        }
        // The letter names its event in the header: its message id is its own.
        if headers.get_str(header::EVENT_ID).is_none() {
            let event_id = crate::metadata::event_id(&original.headers, original.id);
            headers.insert_str(header::EVENT_ID, event_id.to_string())?;
        }
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
        let request = PublishRequest {
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            partitioning: Partitioning::Partition(original.partition % self.partitions.max(1)),
            messages: vec![OutgoingMessage {
                id: letter_id(original.id, failure.group),
                payload: original.payload.clone(),
                headers,
            }],
        };
        let spec = TopicSpec {
            stream: self.stream.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            retention: self.retention,
        };
        publish_recreating(self.connector.as_ref(), &spec, request).await?;
        Ok(())
    }

    /// The letters of the dead-letter topic that are neither re-driven nor
    /// dismissed, oldest first per partition (at most `limit`).
    pub async fn list(&self, limit: usize) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let mut out = Vec::new();
        for partition in 0..self.partitions {
            if out.len() >= limit {
                break;
            }
            let settled = settled_in(
                self.connector.as_ref(),
                &self.stream,
                &self.topic,
                partition,
            )
            .await?;
            let mut reader = Reader::new(self, partition, None);
            while let Some(batch) = reader.next().await? {
                for message in &batch {
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    if is_letter(message) && !settled.contains(&message.offset) {
                        out.push(parse(message));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Publishes the open letters matching `filter` to their original topic again,
    /// with their event id (in the `event_id` header; the message id is the
    /// re-drive's own, the same at every re-drive of one letter), their headers
    /// (correlation, tenant, ...) and partition, and
    /// settles each: a letter is re-driven **at most once**, so a second call
    /// re-drives only what was dead-lettered (or left open) since. Returns how many
    /// were re-driven.
    ///
    /// Guarantee: a letter is settled only after its re-publish was accepted, so
    /// none is lost. A crash between the two may publish the letters of the batch in
    /// hand (at most 1,000, consecutive letters of one original partition) again on
    /// the next call, and so may a re-drive running at the same time in another
    /// process: within the broker's deduplication window those copies are stored
    /// once; past it, consumers deduplicate by event id. A letter whose origin is not a
    /// valid stream and topic is left open (dismiss it).
    /// Re-drives through one `DeadLetters` (and its clones) run one at a time. The
    /// topic is read a batch at a time, up to the letters stored when the call began.
    pub async fn redrive(
        &self,
        filter: impl Fn(&DeadLetter) -> bool,
    ) -> Result<usize, DeadLetterError> {
        self.settle(filter, Settlement::Redriven).await
    }

    /// Re-drives the open letters of event `event_id` (see
    /// [`DeadLetters::redrive`]); returns whether there was one.
    pub async fn redrive_one(&self, event_id: Uuid) -> Result<bool, DeadLetterError> {
        Ok(self.redrive(|letter| letter.event_id == event_id).await? > 0)
    }

    /// Settles the open letters matching `filter` without re-driving them: they stop
    /// counting in [`DeadLetters::depth`] and [`DeadLetters::list`], and are never
    /// re-driven. The letters stay stored until retention removes them. Returns how
    /// many were dismissed.
    pub async fn dismiss(
        &self,
        filter: impl Fn(&DeadLetter) -> bool,
    ) -> Result<usize, DeadLetterError> {
        self.settle(filter, Settlement::Dismissed).await
    }

    /// Dismisses the open letters of event `event_id`; returns whether there was one.
    pub async fn dismiss_one(&self, event_id: Uuid) -> Result<bool, DeadLetterError> {
        Ok(self.dismiss(|letter| letter.event_id == event_id).await? > 0)
    }

    /// Dismisses every open letter (see [`DeadLetters::dismiss`]): the dead-letter
    /// topic's depth is then 0. Returns how many were dismissed.
    pub async fn purge(&self) -> Result<usize, DeadLetterError> {
        self.dismiss(|_| true).await
    }

    /// Letters neither re-driven nor dismissed: what health reports as
    /// `dead_letters`.
    pub async fn depth(&self) -> Result<u64, DeadLetterError> {
        open_letters(self.connector.as_ref(), &self.stream, &self.topic).await
    }

    async fn settle(
        &self,
        filter: impl Fn(&DeadLetter) -> bool,
        how: Settlement,
    ) -> Result<usize, DeadLetterError> {
        let _one_at_a_time = self.settling.lock().await;
        let Some(info) = self.connector.topic_info(&self.stream, &self.topic).await? else {
            return Ok(0);
        };
        let mut count = 0;
        for partition in 0..self.partitions {
            let end = info
                .next_offsets
                .get(partition as usize)
                .copied()
                .unwrap_or(0);
            if end == 0 {
                continue;
            }
            let settled = settled_in(
                self.connector.as_ref(),
                &self.stream,
                &self.topic,
                partition,
            )
            .await?;
            let mut reader = Reader::new(self, partition, Some(end));
            while let Some(batch) = reader.next().await? {
                let chosen: Vec<DeadLetter> = batch
                    .iter()
                    .filter(|m| is_letter(m) && !settled.contains(&m.offset))
                    .map(parse)
                    .filter(|letter| filter(letter))
                    .collect();
                if chosen.is_empty() {
                    continue;
                }
                count += match how {
                    Settlement::Redriven => self.redrive_letters(partition, &chosen).await?,
                    Settlement::Dismissed => {
                        self.tombstones(partition, &chosen, how).await?;
                        chosen.len()
                    }
                };
            }
        }
        Ok(count)
    }

    /// Publishes `letters` (of dead-letter partition `partition`) to their original
    /// partitions, consecutive letters of one partition in one request, in order, and
    /// settles each run once its publish was accepted. A letter whose origin is not a
    /// valid stream and topic (written by hand, say) is left open, with a warning: it
    /// can be dismissed. Returns how many were re-driven.
    async fn redrive_letters(
        &self,
        partition: u32,
        letters: &[DeadLetter],
    ) -> Result<usize, DeadLetterError> {
        let mut redriven = 0;
        let mut start = 0;
        while let Some(first) = letters.get(start) {
            let same = |l: &DeadLetter| {
                l.original_stream == first.original_stream
                    && l.original_topic == first.original_topic
                    && l.original_partition == first.original_partition
            };
            let run =
                &letters[start..start + letters[start..].iter().take_while(|l| same(l)).count()];
            start += run.len();
            let (Ok(stream), Ok(topic)) = (
                StreamName::new(first.original_stream.as_str()),
                TopicName::new(first.original_topic.as_str()),
            ) else {
                tracing::warn!(
                    dlq = %self.topic,
                    partition,
                    offsets = ?run.iter().map(|l| l.dlq_offset).collect::<Vec<_>>(),
                    original_stream = %first.original_stream,
                    original_topic = %first.original_topic,
                    "dead letters without a valid origin are not re-driven (dismiss them)"
                );
                continue;
            };
            // A re-driven letter is a new message of the same event: the event id
            // travels in its header, and its message id is the letter's own, so that
            // the broker's deduplication window (which holds the original's id) stores
            // it, and a re-drive repeated after a crash is stored once.
            let mut messages = Vec::with_capacity(run.len());
            for letter in run {
                let mut headers = letter.headers.clone();
                if headers.get_str(header::EVENT_ID).is_none() {
                    headers.insert_str(header::EVENT_ID, letter.event_id.to_string())?;
                }
                messages.push(OutgoingMessage {
                    id: self.redrive_id(letter),
                    payload: letter.payload.clone(),
                    headers,
                });
            }
            self.connector
                .publish(PublishRequest {
                    stream,
                    topic,
                    partitioning: Partitioning::Partition(first.original_partition),
                    messages,
                })
                .await?;
            self.tombstones(partition, run, Settlement::Redriven)
                .await?;
            redriven += run.len();
        }
        Ok(redriven)
    }

    /// The message id of `letter`'s re-driven copy: a UUID (version 8) made of the
    /// dead-letter topic, its partition and its offset, the same at every re-drive
    /// of that letter and different from every UUIDv4 event id.
    fn redrive_id(&self, letter: &DeadLetter) -> u128 {
        // FNV-1a over the dead-letter topic's names: stable across versions.
        let mut topic: u32 = 0x811c_9dc5;
        for byte in self
            .stream
            .as_str()
            .bytes()
            .chain([b'/'])
            .chain(self.topic.as_str().bytes())
        {
            topic = (topic ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&topic.to_be_bytes());
        bytes[4..8].copy_from_slice(&letter.dlq_partition.to_be_bytes());
        bytes[8..].copy_from_slice(&letter.dlq_offset.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid::from_bytes(bytes).as_u128()
    }

    /// Appends a tombstone for each of `letters` (all of `partition`).
    async fn tombstones(
        &self,
        partition: u32,
        letters: &[DeadLetter],
        how: Settlement,
    ) -> Result<(), DeadLetterError> {
        let at = now_micros().to_string();
        let mut messages = Vec::with_capacity(letters.len());
        for letter in letters {
            let mut headers = Headers::new();
            headers.insert_str(dlq_header::SETTLES, letter.dlq_offset.to_string())?;
            headers.insert_str(dlq_header::SETTLED_AS, how.as_str())?;
            headers.insert_str(dlq_header::SETTLED_AT, at.as_str())?;
            messages.push(OutgoingMessage {
                id: Uuid::new_v4().as_u128(),
                payload: Bytes::from_static(how.as_str().as_bytes()),
                headers,
            });
        }
        self.connector
            .publish(PublishRequest {
                stream: self.stream.clone(),
                topic: self.topic.clone(),
                partitioning: Partitioning::Partition(partition),
                messages,
            })
            .await?;
        Ok(())
    }
}

/// Reads one partition of a dead-letter topic a batch at a time, without waiting.
struct Reader<'a> {
    connector: &'a dyn IggyConnector,
    stream: &'a StreamName,
    topic: &'a TopicName,
    partition: u32,
    next: StartPosition,
    /// Stop before this offset (`None`: at the current head).
    end: Option<u64>,
    done: bool,
}

impl<'a> Reader<'a> {
    fn new(letters: &'a DeadLetters, partition: u32, end: Option<u64>) -> Self {
        Self::over(
            letters.connector.as_ref(),
            &letters.stream,
            &letters.topic,
            partition,
            end,
        )
    }

    fn over(
        connector: &'a dyn IggyConnector,
        stream: &'a StreamName,
        topic: &'a TopicName,
        partition: u32,
        end: Option<u64>,
    ) -> Self {
        Self {
            connector,
            stream,
            topic,
            partition,
            next: StartPosition::Earliest,
            end,
            done: false,
        }
    }

    async fn next(&mut self) -> Result<Option<Vec<ReceivedMessage>>, DeadLetterError> {
        if self.done {
            return Ok(None);
        }
        let mut batch = self
            .connector
            .poll(
                self.stream,
                self.topic,
                self.partition,
                self.next,
                READ_BATCH,
            )
            .await?;
        let Some(last) = batch.last().map(|m| m.offset) else {
            self.done = true;
            return Ok(None);
        };
        self.next = StartPosition::Offset(last + 1);
        if let Some(end) = self.end {
            batch.retain(|m| m.offset < end);
            if last + 1 >= end {
                self.done = true;
            }
        }
        Ok(Some(batch))
    }
}

/// Whether `message` is a letter (not a tombstone).
fn is_letter(message: &ReceivedMessage) -> bool {
    message.headers.get(dlq_header::SETTLES).is_none()
}

/// The offsets of the settled letters of one partition (read from its tombstones).
async fn settled_in(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    partition: u32,
) -> Result<BTreeSet<u64>, DeadLetterError> {
    let mut settled = BTreeSet::new();
    let mut reader = Reader::over(connector, stream, topic, partition, None);
    while let Some(batch) = reader.next().await? {
        settled.extend(batch.iter().filter_map(|m| {
            m.headers
                .get_str(dlq_header::SETTLES)
                .and_then(|offset| offset.parse::<u64>().ok())
        }));
    }
    Ok(settled)
}

/// Letters of `topic` neither re-driven nor dismissed (0 when it does not exist),
/// in one pass per partition: tombstones follow their letters, so a letter is open
/// until its tombstone is read.
pub(crate) async fn open_letters(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
) -> Result<u64, DeadLetterError> {
    let Some(info) = connector.topic_info(stream, topic).await? else {
        return Ok(0);
    };
    let mut open = 0u64;
    for (partition, next) in info.next_offsets.iter().enumerate() {
        if *next == 0 {
            continue;
        }
        let mut letters = BTreeSet::new();
        let mut reader = Reader::over(connector, stream, topic, partition as u32, None);
        while let Some(batch) = reader.next().await? {
            for message in &batch {
                match message
                    .headers
                    .get_str(dlq_header::SETTLES)
                    .map(str::parse::<u64>)
                {
                    None => {
                        letters.insert(message.offset);
                    }
                    Some(Ok(settled)) => {
                        letters.remove(&settled);
                    }
                    Some(Err(_)) => {}
                }
            }
        }
        open += letters.len() as u64;
    }
    Ok(open)
}

/// The message id of the letter group `group` writes for message `message_id`: a
/// UUID (version 8) of both, the same when that group writes it again (after a crash
/// before its commit: the broker's deduplication stores it once), another for
/// another group giving up on the same message (each group's letter is kept).
fn letter_id(message_id: u128, group: &str) -> u128 {
    let mut key = Vec::with_capacity(16 + group.len());
    key.extend_from_slice(&message_id.to_le_bytes());
    key.extend_from_slice(group.as_bytes());
    let high = twox_hash::XxHash3_64::oneshot_with_seed(0x6c65_7474_6572_0001, &key);
    let low = twox_hash::XxHash3_64::oneshot_with_seed(0x6c65_7474_6572_0002, &key);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes).as_u128()
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
    for name in DLQ_HEADERS {
        original.remove(name);
    }
    DeadLetter {
        dlq_partition: message.partition,
        dlq_offset: message.offset,
        // A letter of a re-driven event has the re-driven copy's message id; the
        // event id is in its header.
        event_id: crate::metadata::event_id(headers, message.id),
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
