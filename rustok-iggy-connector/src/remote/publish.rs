//! Publishing on the official SDK, with resends after a lost connection that keep
//! the message ids and the partition, and the duplicates a resend found.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use iggy::prelude::{IggyClient, MessageClient, Partitioning as IggyPartitioning, PollingStrategy};

use super::convert;
use super::session::{self, At, Session, ident, topic_error};
use crate::batch;
use crate::connector::{Duplicate, Partitioning, PublishReceipt, PublishRequest};
use crate::error::ConnectorError;

/// Most resends of one batch (fewer when `reconnection_retries` is lower).
const MAX_RESENDS: u32 = 3;
/// How many messages before the head, besides the batch, a resend's read-back looks
/// at for copies stored by an earlier attempt.
const LOOKBACK: u64 = 1000;

/// Sends `request` to one partition; see `RemoteConnector::publish`.
pub(super) async fn publish(
    session: &Arc<Session>,
    mut request: PublishRequest,
) -> Result<PublishReceipt, ConnectorError> {
    request.validate()?;
    // Ids of 0 get one here, so that a resend carries the same ids.
    for message in &mut request.messages {
        if message.id == 0 {
            message.id = uuid::Uuid::new_v4().as_u128();
        }
    }
    let (stream, topic) = (&request.stream, &request.topic);
    let meta = session.require(stream, topic).await?;
    let partitions = match &request.partitioning {
        // The cached count may be stale for an explicit partition: ask.
        Partitioning::Partition(p) => session.check_partition(stream, topic, *p).await?,
        Partitioning::Balanced | Partitioning::Key(_) => meta.partitions,
    };
    let partition = request
        .partitioning
        .resolve(meta.partitions, &meta.balanced);
    let at = At {
        stream,
        topic,
        partition,
        partitions,
    };
    let origin_timestamp = batch::now_micros();
    let connection = session.connection(partition);
    let resends = session.config.reconnection_retries.min(MAX_RESENDS);
    let pause = Duration::from_millis(session.config.reconnection_interval_ms);
    let mut head_before_resend = None;
    let mut attempt = 0;
    let base_offset = loop {
        let messages = convert::to_iggy_messages(&request.messages, origin_timestamp);
        match send(session, connection, at, messages).await {
            Ok(base) => break base,
            Err(error) if error.is_transient() && attempt < resends && !session.is_closed() => {
                attempt += 1;
                tracing::warn!(%stream, %topic, partition, %error, attempt, "publish failed on the connection; sending the batch again with the same ids");
                tokio::time::sleep(pause).await;
                // What is below the head now was stored before the resend.
                match session::head_offset(connection, at).await {
                    Ok(head) => head_before_resend = Some(head),
                    Err(error) if error.is_transient() => {}
                    Err(error) => return Err(error),
                }
            }
            Err(error) => return Err(error),
        }
    };
    let count = request.messages.len() as u32;
    let base_offset = match base_offset {
        Some(base) => base,
        None => {
            // A server that confirms without offsets: the batch is the newest of
            // the partition unless another producer appended meanwhile.
            let head = session::head_offset(connection, at).await?;
            tracing::debug!(%stream, %topic, partition, "the server sent no offset; the receipt's offset is read back");
            head.saturating_sub(u64::from(count))
        }
    };
    let mut receipt = PublishReceipt::stored(partition, base_offset, count);
    if let Some(head) = head_before_resend {
        let ids: Vec<u128> = request.messages.iter().map(|m| m.id).collect();
        receipt.duplicates = stored_before(connection, at, head, &ids).await?;
        if receipt.duplicates.len() == ids.len()
            && let Some(first) = receipt.duplicates.first()
        {
            receipt.base_offset = first.offset;
        }
    }
    Ok(receipt)
}

/// One `SendMessages`; the confirmed base offset, if the server sent one.
async fn send(
    session: &Session,
    connection: &IggyClient,
    at: At<'_>,
    mut messages: Vec<iggy::prelude::IggyMessage>,
) -> Result<Option<u64>, ConnectorError> {
    let (stream, topic, partition) = (at.stream, at.topic, at.partition);
    let (s, t) = (ident(stream.as_str())?, ident(topic.as_str())?);
    let response = connection
        .send_messages(
            &s,
            &t,
            &IggyPartitioning::partition_id(partition),
            &mut messages,
        )
        .await
        .map_err(|e| {
            if super::client::is_topic_not_found(&e) || super::client::is_stream_not_found(&e) {
                session.forget(stream, topic);
            }
            match topic_error(
                format!("publish to {stream}/{topic} partition {partition}"),
                e,
                stream,
                topic,
                Some((partition, at.partitions)),
            ) {
                ConnectorError::Iggy { context, source } => ConnectorError::Publish {
                    message: context,
                    source: Some(Box::new(source)),
                },
                other => other,
            }
        })?;
    Ok(response
        .confirmations
        .iter()
        .find(|c| c.partition_id == partition)
        .or(response.confirmations.first())
        .map(|c| c.base_offset))
}

/// The messages of the batch (`ids`, in order) found stored below `head`, the
/// partition's head before the resend: an earlier attempt stored them, and the
/// server's deduplication left them out of the resend.
async fn stored_before(
    connection: &IggyClient,
    at: At<'_>,
    head: u64,
    ids: &[u128],
) -> Result<Vec<Duplicate>, ConnectorError> {
    let from = head.saturating_sub(LOOKBACK + ids.len() as u64);
    let max = u32::try_from(head - from).unwrap_or(u32::MAX);
    if max == 0 {
        return Ok(Vec::new());
    }
    let stored = session::read_plain(
        connection,
        at,
        PollingStrategy::offset(from),
        Some(from),
        max,
    )
    .await?;
    let mut offsets: HashMap<u128, u64> = HashMap::new();
    for message in stored.iter().filter(|m| m.offset < head) {
        offsets.entry(message.id).or_insert(message.offset);
    }
    Ok((0u32..)
        .zip(ids)
        .filter_map(|(index, id)| offsets.get(id).map(|&offset| Duplicate { index, offset }))
        .collect())
}
