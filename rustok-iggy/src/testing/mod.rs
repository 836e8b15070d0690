//! A test kit for the application's own tests (feature `testing`, off by default).
//!
//! [`TestKit::start`] opens a real embedded broker (the one production runs, not a
//! mock) in a temporary directory that lives as long as the kit. On it a test
//! publishes and consumes with the ordinary [`Transport`], then checks what happened:
//!
//! - [`TestKit::published`]: every event on a type's topic, decoded, with its metadata;
//! - [`TestKit::wait_for_consumed`]: awaits a group's commits (no sleeping, bounded by
//!   [`TestKitBuilder::timeout`]);
//! - [`TestKit::assert_no_dead_letters`] and [`TestKit::dead_letters`];
//! - [`TestKit::restart`]: the broker closed and reopened on the same data;
//! - [`fail_first`], [`fail_attempts`], [`fail_when`]: handler failures on purpose;
//! - [`Observed`] with [`Hooks`]: a connector passed through to a real one, with a
//!   hook around publishes and commits, to inject a broker failure on purpose.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true)
//! #     .build().unwrap().block_on(async {
//! use rustok_iggy::prelude::*;
//! use rustok_iggy::testing::{TestKit, fail_attempts};
//! use rustok_iggy::{RetryPolicy, consume::ConsumeOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, IggyEvent)]
//! #[iggy(topic = "orders", key = tenant)]
//! struct OrderPlaced { tenant: String }
//!
//! let kit = TestKit::start().await?;
//! let orders = kit.transport::<OrderPlaced>().await?;
//! orders.publish(&OrderPlaced { tenant: "acme".into() }).await?;
//! // Two failures, then success; the 10 s backoffs pass on the paused clock at once.
//! let options = ConsumeOptions {
//!     retry: RetryPolicy::fixed(3, std::time::Duration::from_secs(10)),
//!     ..ConsumeOptions::default()
//! };
//! let runner = tokio::spawn({
//!     let orders = orders.clone();
//!     async move {
//!         orders.consume("billing", options, std::future::pending(),
//!             fail_attempts(2, |_order| async { Ok(()) })).await
//!     }
//! });
//! kit.wait_for_consumed::<OrderPlaced>("billing", 1).await?;
//! kit.assert_no_dead_letters().await?;
//! runner.abort();
//! # Ok::<(), rustok_iggy::testing::KitError>(()) }).unwrap();
//! ```
//!
//! # Time: retries and delays without sleeping
//!
//! Every delay of the library is a tokio timer: the handler runner's retry backoff,
//! [`crate::Delivery::nack`] delays, the redelivery of held events, the pauses after
//! a failed fetch or commit. Run the test on a paused clock
//! (`#[tokio::test(start_paused = true)]`, which needs tokio's `test-util` feature:
//! the `testing` feature turns it on) and tokio jumps to the next timer whenever the
//! runtime has nothing else to do, so a 30-second backoff takes no wall time. The
//! broker's blocking work (opening, recovery, closing) runs on tokio's blocking pool,
//! which holds the paused clock still while it runs. `tokio::time::advance` moves
//! the clock by hand.
//!
//! The kit's own time limit ([`TestKitBuilder::timeout`], 30 s) is a tokio timer
//! too, so on a paused clock it counts paused time: it fires when nothing scheduled
//! before it brings what is awaited. Make it longer than the delays the test goes
//! through (two 30 s backoffs need more than 60 s).

mod faults;
mod observed;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorConfig, ConnectorError, EmbeddedConnector, GroupName, Headers, IggyConnector,
    StartPosition, StreamName, TopicName,
};
use tokio::sync::watch;
use uuid::Uuid;

pub use faults::{Faulty, InjectedFailure, fail_attempts, fail_first, fail_when};
pub use observed::{Hooks, Observed};

use crate::dead_letter::{DeadLetter, DeadLetterConfig, DeadLetterError, DeadLetters, dlq_header};
use crate::decode::decode_message;
use crate::error::{DecodeError, Error};
use crate::event_impl::IggyEvent;
use crate::metadata::EventMetadata;
use crate::transport::{Transport, TransportOptions};

/// How long a kit waits for what it awaits, unless told otherwise: 30 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Messages read from the broker at once by [`TestKit::published`].
const READ_BATCH: u32 = 1000;

/// What went wrong in the kit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KitError {
    /// A call to the broker or the typed layer failed.
    #[error(transparent)]
    Iggy(#[from] Error),
    /// The temporary data directory could not be created.
    #[error("cannot create the test kit's temporary directory")]
    TempDir(#[source] std::io::Error),
    /// The group's commits did not reach the count within the time limit.
    #[error(
        "group {group:?} of topic {topic} committed {consumed} of the {expected} events awaited within {waited:?}"
    )]
    NotConsumed {
        /// The group.
        group: String,
        /// Its topic.
        topic: String,
        /// Events its committed offsets covered at the end.
        consumed: u64,
        /// Events awaited.
        expected: u64,
        /// How long the kit waited.
        waited: Duration,
    },
    /// [`TestKit::assert_no_dead_letters`] found open dead letters.
    #[error("{} open dead letter(s): {}", .letters.len(), summary(.letters))]
    DeadLetters {
        /// Every open letter found.
        letters: Vec<DeadLetter>,
    },
}

impl From<ConnectorError> for KitError {
    fn from(error: ConnectorError) -> Self {
        Self::Iggy(Error::Connector(error))
    }
}

impl From<DeadLetterError> for KitError {
    fn from(error: DeadLetterError) -> Self {
        Self::Iggy(Error::DeadLetter(error))
    }
}

/// The first letters, for people: where each came from and why.
fn summary(letters: &[DeadLetter]) -> String {
    const SHOWN: usize = 3;
    let mut text = letters
        .iter()
        .take(SHOWN)
        .map(|l| {
            format!(
                "{}/{} partition {} offset {} after {} attempt(s): {}",
                l.original_stream,
                l.original_topic,
                l.original_partition,
                l.original_offset,
                l.attempts,
                l.error
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if letters.len() > SHOWN {
        text.push_str(&format!("; and {} more", letters.len() - SHOWN));
    }
    text
}

/// An event as the broker stored it: what [`TestKit::published`] returns.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Published<E> {
    /// The event, decoded as a consumer would.
    pub event: E,
    /// Its partition.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// Its event id (the Iggy message id).
    pub event_id: Uuid,
    /// The event type its headers name.
    pub event_type: String,
    /// The schema version it was written with.
    pub schema_version: u32,
    /// When the broker appended it (µs since the Unix epoch).
    pub timestamp: u64,
    /// Correlation, causation, tenant, actor and trace context.
    pub metadata: EventMetadata,
    /// Every user header of the message.
    pub headers: Headers,
}

/// Settings of a [`TestKit`]; see [`TestKit::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TestKitBuilder {
    options: TransportOptions,
    timeout: Duration,
}

impl TestKitBuilder {
    /// Partitions of the topics the kit's transports create (default: the library's,
    /// `topology.domain_partitions`, 8).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.options.partitions = partitions;
        self
    }

    /// The options of the kit's transports (stream, partitions, retention).
    pub fn transport_options(mut self, options: TransportOptions) -> Self {
        self.options = options;
        self
    }

    /// How long [`TestKit::wait_for_consumed`] waits before it fails
    /// ([`DEFAULT_TIMEOUT`] by default). A tokio timer: see the module's notes on time.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates the temporary directory and opens the broker in it.
    ///
    /// # Errors
    /// [`KitError::TempDir`], or the broker's error when it does not open.
    pub async fn start(self) -> Result<TestKit, KitError> {
        let dir = tempfile::Builder::new()
            .prefix("rustok-iggy-testkit-")
            .tempdir()
            .map_err(KitError::TempDir)?;
        let config = ConnectorConfig::embedded(dir.path());
        let embedded = Arc::new(EmbeddedConnector::new());
        embedded.connect(&config).await?;
        let (commits, _) = watch::channel(0);
        let commits = Arc::new(commits);
        let connector: Arc<dyn IggyConnector> = Observed::new(
            Arc::clone(&embedded) as Arc<dyn IggyConnector>,
            AnnounceCommits(Arc::clone(&commits)),
        );
        Ok(TestKit {
            connector,
            embedded,
            config,
            commits,
            options: self.options,
            timeout: self.timeout,
            dir,
        })
    }
}

/// The kit's hook: every commit stored through the kit's connector bumps the count
/// that [`TestKit::wait_for_consumed`] watches.
#[derive(Debug)]
struct AnnounceCommits(Arc<watch::Sender<u64>>);

impl Hooks for AnnounceCommits {
    fn after_commit(&self, _group: &GroupName, _partition: u32, _offset: u64) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// A real embedded broker in a temporary directory, with what a test needs to look
/// at it. See the [module](self).
///
/// The directory is deleted when the kit is dropped: drop the kit last (after the
/// transports and subscriptions made from it), or call [`TestKit::shutdown`].
pub struct TestKit {
    connector: Arc<dyn IggyConnector>,
    embedded: Arc<EmbeddedConnector>,
    config: ConnectorConfig,
    commits: Arc<watch::Sender<u64>>,
    options: TransportOptions,
    timeout: Duration,
    /// Declared last: removed after the broker above is dropped.
    dir: tempfile::TempDir,
}

impl fmt::Debug for TestKit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKit")
            .field("data_dir", &self.dir.path())
            .field("connected", &self.embedded.is_connected())
            .finish_non_exhaustive()
    }
}

impl TestKit {
    /// A broker in a fresh temporary directory, with the default settings: the
    /// library's defaults (`TransportOptions::default()`, 8 partitions, the default
    /// durability), no TCP or HTTP listener, a 30 s time limit.
    ///
    /// # Errors
    /// See [`TestKitBuilder::start`].
    pub async fn start() -> Result<Self, KitError> {
        Self::builder().start().await
    }

    /// Settings before [`TestKitBuilder::start`].
    pub fn builder() -> TestKitBuilder {
        TestKitBuilder {
            options: TransportOptions::default(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The connector: an [`Observed`] embedded connector, forwarding every call
    /// unchanged, with the commits made through it observed by
    /// [`TestKit::wait_for_consumed`]. Build the application's own transports on it,
    /// or wrap it in an [`Observed`] of the test's own to inject a failure.
    pub fn connector(&self) -> Arc<dyn IggyConnector> {
        Arc::clone(&self.connector)
    }

    /// The embedded connector underneath (for `flush`, `verify`, `topics`).
    pub fn embedded(&self) -> &Arc<EmbeddedConnector> {
        &self.embedded
    }

    /// The data directory (a temporary directory, deleted with the kit).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A transport for `E` on the kit's connector, with the kit's options; creates
    /// `E`'s topic when missing (see [`Transport::new`]).
    ///
    /// # Errors
    /// See [`Transport::new`].
    pub async fn transport<E: IggyEvent>(&self) -> Result<Transport<E>, KitError> {
        Ok(Transport::new(self.connector(), self.options.clone()).await?)
    }

    /// Every event stored on `E`'s topic, decoded as a consumer of `E` would decode
    /// it (no upcasters), ordered by partition, then offset: within a partition (one
    /// key) that is publish order. Reads the log only: no consumer offset is read or
    /// moved, so it may be called at any time. Creates the topic when missing (then
    /// the answer is empty).
    ///
    /// # Errors
    /// The first message that does not decode as an `E`, as [`Error::Decode`] naming
    /// its partition, offset and cause; or the broker's error.
    pub async fn published<E: IggyEvent>(&self) -> Result<Vec<Published<E>>, KitError> {
        let transport = self.transport::<E>().await?;
        let mut out = Vec::new();
        for partition in 0..transport.partitions() {
            let mut from = 0;
            loop {
                let batch = self
                    .connector
                    .poll(
                        transport.stream(),
                        transport.topic(),
                        partition,
                        StartPosition::Offset(from),
                        READ_BATCH,
                    )
                    .await?;
                let Some(last) = batch.last() else { break };
                from = last.offset + 1;
                for message in batch {
                    let (event, info) = decode_message(
                        &message,
                        transport.upcasters(),
                        crate::schema::schemas::<E>().ok(),
                    )
                    .map_err(|(failure, event_type)| {
                        Error::Decode(Box::new(DecodeError {
                            topic: transport.topic().to_string(),
                            partition,
                            offset: message.offset,
                            event_type,
                            failure,
                            delivery: None,
                        }))
                    })?;
                    out.push(Published {
                        event,
                        partition,
                        offset: message.offset,
                        event_id: Uuid::from_u128(message.id),
                        event_type: info.event_type.into_owned(),
                        schema_version: info.schema_version,
                        timestamp: message.timestamp,
                        metadata: EventMetadata::read(&message.headers, message.id),
                        headers: message.headers,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Waits until the committed offsets of consumer group `group` on `E`'s topic
    /// cover at least `n` events, and returns how many they cover: the sum over the
    /// partitions of the events up to and including each one's committed offset
    /// (counted from offset 0, so for a group that started at the beginning).
    ///
    /// A committed offset is what the commit rule moved: the events it covers were
    /// handled, skipped, or confirmed in the dead-letter topic, and a restart does not
    /// deliver them again. The wait is woken by each commit made through the kit's
    /// connector (no polling, no sleeping); commits made by other processes over TCP
    /// are not observed. A group that does not exist yet counts as 0.
    ///
    /// # Errors
    /// [`KitError::NotConsumed`] when the count is not reached within the kit's time
    /// limit ([`TestKitBuilder::timeout`]), naming what was reached; or the broker's
    /// error.
    pub async fn wait_for_consumed<E: IggyEvent>(
        &self,
        group: &str,
        n: u64,
    ) -> Result<u64, KitError> {
        let transport = self.transport::<E>().await?;
        let name = GroupName::new(group).map_err(Error::from)?;
        let mut commits = self.commits.subscribe();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            commits.borrow_and_update();
            let consumed = match self
                .connector
                .committed_offsets(transport.stream(), transport.topic(), &name)
                .await
            {
                Ok(offsets) => offsets.iter().flatten().map(|offset| offset + 1).sum(),
                Err(ConnectorError::GroupNotFound { .. }) => 0,
                Err(error) => return Err(error.into()),
            };
            if consumed >= n {
                return Ok(consumed);
            }
            // The sender lives in `self`: `changed` ends only with a commit.
            if tokio::time::timeout_at(deadline, commits.changed())
                .await
                .is_err()
            {
                return Err(KitError::NotConsumed {
                    group: group.to_owned(),
                    topic: transport.topic().to_string(),
                    consumed,
                    expected: n,
                    waited: self.timeout,
                });
            }
        }
    }

    /// The open dead letters of `E`'s topic (its default dead-letter topic,
    /// `<topic>.dlq`, created when missing), in partition and offset order. Letters
    /// re-driven or dismissed are not listed.
    ///
    /// # Errors
    /// The broker's error.
    pub async fn dead_letters<E: IggyEvent>(&self) -> Result<Vec<DeadLetter>, KitError> {
        let transport = self.transport::<E>().await?;
        let letters = transport.dead_letters(&DeadLetterConfig::default()).await?;
        Ok(letters.list(usize::MAX).await?)
    }

    /// Succeeds when no dead-letter topic of the broker holds an open letter (one not
    /// re-driven or dismissed). A dead-letter topic is one named `<topic>.dlq`, or one
    /// whose first message is a dead letter (a topic named in
    /// [`DeadLetterConfig::topic`]). Reads only; moves no offset.
    ///
    /// # Errors
    /// [`KitError::DeadLetters`] with every open letter (its `Display` names where the
    /// first ones came from and why); or the broker's error.
    pub async fn assert_no_dead_letters(&self) -> Result<(), KitError> {
        let mut open = Vec::new();
        for (stream, topic) in self.embedded.topics()? {
            let Some(info) = self.connector.topic_info(&stream, &topic).await? else {
                continue;
            };
            let source = match topic.as_str().strip_suffix(".dlq") {
                Some(source) => Some(source.to_owned()),
                None => self.letter_source(&stream, &topic, info.partitions).await?,
            };
            let Some(source) = source.and_then(|s| TopicName::new(s).ok()) else {
                continue;
            };
            let config = DeadLetterConfig {
                topic: Some(topic.clone()),
                retention: Some(info.retention),
            };
            let letters = DeadLetters::open(
                self.connector(),
                stream.clone(),
                source,
                info.partitions,
                &config,
            )
            .await?;
            open.extend(letters.list(usize::MAX).await?);
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(KitError::DeadLetters { letters: open })
        }
    }

    /// The original topic named by the first message of `topic`, when that message is
    /// a dead letter.
    async fn letter_source(
        &self,
        stream: &StreamName,
        topic: &TopicName,
        partitions: u32,
    ) -> Result<Option<String>, KitError> {
        for partition in 0..partitions {
            let first = self
                .connector
                .poll(stream, topic, partition, StartPosition::Earliest, 1)
                .await?;
            if let Some(message) = first.first() {
                return Ok(message
                    .headers
                    .get_str(dlq_header::ORIGINAL_TOPIC)
                    .map(str::to_owned));
            }
        }
        Ok(None)
    }

    /// Closes the broker and opens it again on the same data directory: what a
    /// process restart does to the broker. Everything published before is kept, and
    /// so is every committed offset (closing stores and fsyncs them).
    ///
    /// The kit's connector is reopened in place: transports made before keep working
    /// after it. A subscription or handler runner open during the restart belongs to
    /// the closed broker, as it would in a real restart of the broker's process: it
    /// may still hand out what it had fetched, but commits nothing more (its commits
    /// fail), and then its stream ends (a runner returns). What it had not committed
    /// is delivered again to the group's next subscriber, which resumes after the
    /// last commit.
    ///
    /// # Errors
    /// The broker's error on closing or opening.
    pub async fn restart(&self) -> Result<(), KitError> {
        self.embedded.shutdown().await?;
        self.embedded.connect(&self.config).await?;
        Ok(())
    }

    /// Closes the broker (flushing everything) and deletes the temporary directory.
    ///
    /// # Errors
    /// The broker's error on closing; the directory is deleted either way.
    pub async fn shutdown(self) -> Result<(), KitError> {
        self.embedded.shutdown().await?;
        Ok(())
    }
}
