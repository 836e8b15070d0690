//! Stream commands.

use bytes::BytesMut;
use iggy_binary_protocol::requests::streams::CreateStreamRequest;
use iggy_binary_protocol::requests::streams::DeleteStreamRequest;
use iggy_binary_protocol::requests::streams::GetStreamRequest;
use iggy_binary_protocol::requests::streams::PurgeStreamRequest;
use iggy_binary_protocol::requests::streams::UpdateStreamRequest;
use iggy_binary_protocol::responses::streams::GetStreamResponse;
use iggy_binary_protocol::responses::streams::StreamResponse;
use iggy_binary_protocol::{WireEncode, WireName, WireOptions};

use super::lookup::{decode, ident, stream_not_found};
use super::reply::{Handled, topic_header};
use super::shared::Shared;
use crate::embedded::broker::StreamInfo;
use crate::error_codes::ErrorCode;
use crate::names::StreamName;

fn wire_name(name: &str) -> Result<WireName, ErrorCode> {
    WireName::new(name).map_err(|_| ErrorCode::ERROR)
}

fn stream_response(info: &StreamInfo) -> Result<StreamResponse, ErrorCode> {
    let (size, messages) = info
        .topics
        .iter()
        .fold((0u64, 0u64), |(size, messages), t| {
            let (s, m, _) = t.totals();
            (size + s, messages + m)
        });
    Ok(StreamResponse {
        id: info.id,
        created_at: info.created_at,
        topics_count: u32::try_from(info.topics.len()).unwrap_or(u32::MAX),
        size_bytes: size,
        messages_count: messages,
        name: wire_name(info.name.as_str())?,
        options: WireOptions::empty(),
    })
}

fn stream_details(info: &StreamInfo) -> Result<GetStreamResponse, ErrorCode> {
    Ok(GetStreamResponse {
        stream: stream_response(info)?,
        topics: info
            .topics
            .iter()
            .map(|t| topic_header(t))
            .collect::<Result<_, _>>()?,
    })
}

/// A missing stream is an empty body (the SDK reads it as `None`).
pub(crate) fn get(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetStreamRequest = decode(body)?;
    if let Some(info) = shared.broker.stream(ident(&request.stream_id)) {
        stream_details(&info)?.encode(out);
    }
    Ok(())
}

pub(crate) fn list(shared: &Shared, out: &mut BytesMut) -> Handled {
    for info in shared.broker.streams() {
        stream_response(&info)?.encode(out);
    }
    Ok(())
}

pub(crate) fn create(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: CreateStreamRequest = decode(body)?;
    let name =
        StreamName::new(request.name.as_str()).map_err(|_| ErrorCode::INVALID_STREAM_NAME)?;
    let info = shared.broker.create_stream(name)?;
    stream_details(&info)?.encode(out);
    Ok(())
}

/// Renames a stream (the name of another stream is `StreamNameAlreadyExists`).
/// Streams have no option keys: any key is `UnsupportedOptionKey`.
pub(crate) fn update(shared: &Shared, body: &[u8]) -> Handled {
    let request: UpdateStreamRequest = decode(body)?;
    let stream = ident(&request.stream_id);
    if shared.broker.stream(stream).is_none() {
        return Err(stream_not_found(&request.stream_id));
    }
    if request.options.iter().next().is_some() {
        return Err(ErrorCode::UNSUPPORTED_OPTION_KEY);
    }
    let name =
        StreamName::new(request.name.as_str()).map_err(|_| ErrorCode::INVALID_STREAM_NAME)?;
    Ok(shared.broker.rename_stream(stream, name)?)
}

pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeleteStreamRequest = decode(body)?;
    let stream = ident(&request.stream_id);
    if shared.broker.stream(stream).is_none() {
        return Err(stream_not_found(&request.stream_id));
    }
    Ok(shared.broker.delete_stream(stream)?)
}

/// Deletes every message of every topic of the stream (offsets are not reused).
pub(crate) fn purge(shared: &Shared, body: &[u8]) -> Handled {
    let request: PurgeStreamRequest = decode(body)?;
    let info = shared
        .broker
        .stream(ident(&request.stream_id))
        .ok_or_else(|| stream_not_found(&request.stream_id))?;
    for topic in &info.topics {
        for partition in topic.partitions().iter() {
            partition.purge()?;
        }
    }
    Ok(())
}
