//! Publishing copies of stored messages (the migration tool): unlike
//! [`IggyConnector::publish`](crate::IggyConnector::publish), each message keeps its
//! own origin timestamp and its user headers byte for byte.

use bytes::Bytes;
use iggy::prelude::{
    Consumer, ConsumerOffsetClient, Identifier, IggyMessage, IggyMessageHeader, MessageClient,
    Partitioning as IggyPartitioning,
};

use super::RemoteConnector;
use super::session::{ident, topic_error};
use crate::error::ConnectorError;
use crate::names::{StreamName, TopicName};

/// A message as it is copied: what the producer set, nothing the broker stamped.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CopiedMessage {
    /// The message id.
    pub(crate) id: u128,
    /// When the producer created it (µs since the Unix epoch).
    pub(crate) origin_timestamp: u64,
    /// The payload.
    pub(crate) payload: Bytes,
    /// The user headers in their wire (TLV) form; empty when there are none.
    pub(crate) user_headers: Bytes,
}

impl std::fmt::Debug for CopiedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopiedMessage")
            .field("id", &format_args!("{:032x}", self.id))
            .field("origin_timestamp", &self.origin_timestamp)
            .field("payload_len", &self.payload.len())
            .field("user_headers_len", &self.user_headers.len())
            .finish()
    }
}

/// Creates the stream when it is missing.
pub(crate) async fn ensure_stream(
    remote: &RemoteConnector,
    stream: &StreamName,
) -> Result<(), ConnectorError> {
    let session = remote.session()?;
    RemoteConnector::create_stream_if_missing(&session, stream, &ident(stream.as_str())?).await
}

/// Stores `offset` as the offset of standalone consumer `consumer` (numeric id) on
/// `partition`: where that consumer resumes at the destination.
pub(crate) async fn store_consumer_offset(
    remote: &RemoteConnector,
    stream: &StreamName,
    topic: &TopicName,
    partition: u32,
    consumer: u32,
    offset: u64,
) -> Result<(), ConnectorError> {
    let session = remote.session()?;
    let partitions = session.check_partition(stream, topic, partition).await?;
    let (s, t) = (ident(stream.as_str())?, ident(topic.as_str())?);
    let consumer = Consumer::new(
        Identifier::numeric(consumer)
            .map_err(|e| ConnectorError::InvalidRequest(format!("consumer id {consumer}: {e}")))?,
    );
    session
        .connection(partition)
        .store_consumer_offset(&consumer, &s, &t, Some(partition), offset)
        .await
        .map_err(|e| {
            topic_error(
                format!("store a consumer offset on {stream}/{topic} partition {partition}"),
                e,
                stream,
                topic,
                Some((partition, partitions)),
            )
        })
}

/// Appends `messages` to `partition` as one batch, each with its own id, origin
/// timestamp and user headers; returns the base offset the server gave it.
///
/// The spread of the origin timestamps in one batch must fit the protocol's
/// 32-bit microsecond delta (about 71 minutes); the caller splits batches.
pub(crate) async fn publish_copies(
    remote: &RemoteConnector,
    stream: &StreamName,
    topic: &TopicName,
    partition: u32,
    messages: &[CopiedMessage],
) -> Result<u64, ConnectorError> {
    if messages.is_empty() {
        return Err(ConnectorError::InvalidRequest(
            "a batch needs at least one message".into(),
        ));
    }
    let session = remote.session()?;
    let partitions = session.check_partition(stream, topic, partition).await?;
    let mut batch: Vec<IggyMessage> = messages
        .iter()
        .map(|m| IggyMessage {
            header: IggyMessageHeader {
                checksum: 0,
                id: m.id,
                offset: 0,
                timestamp: 0,
                origin_timestamp: m.origin_timestamp,
                user_headers_length: m.user_headers.len() as u32,
                payload_length: m.payload.len() as u32,
                reserved: 0,
            },
            payload: m.payload.clone(),
            user_headers: (!m.user_headers.is_empty()).then(|| m.user_headers.clone()),
        })
        .collect();
    let (s, t) = (ident(stream.as_str())?, ident(topic.as_str())?);
    let response = session
        .connection(partition)
        .send_messages(
            &s,
            &t,
            &IggyPartitioning::partition_id(partition),
            &mut batch,
        )
        .await
        .map_err(|e| {
            topic_error(
                format!("copy messages to {stream}/{topic} partition {partition}"),
                e,
                stream,
                topic,
                Some((partition, partitions)),
            )
        })?;
    response
        .confirmations
        .iter()
        .find(|c| c.partition_id == partition)
        .map(|c| c.base_offset)
        .ok_or_else(|| ConnectorError::Publish {
            message: format!(
                "the server confirmed the copy to {stream}/{topic} partition {partition} \
                 without its offset; a migration needs it to translate consumer offsets"
            ),
            source: None,
        })
}
