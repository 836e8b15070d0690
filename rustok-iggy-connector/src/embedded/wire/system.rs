//! System commands: stats, cluster metadata (exactly one node), me, clients.

use bytes::BytesMut;
use iggy_binary_protocol::WireEncode;
use iggy_binary_protocol::WireName;
use iggy_binary_protocol::requests::system::GetClientRequest;
use iggy_binary_protocol::requests::system::{DescribeOptionsRequest, OPTIONS_SCOPE_TOPIC};
use iggy_binary_protocol::responses::clients::ClientDetailsResponse;
use iggy_binary_protocol::responses::clients::{ClientResponse, ConsumerGroupInfoResponse};
use iggy_binary_protocol::responses::system::StatsResponse;
use iggy_binary_protocol::responses::system::{ClusterMetadataResponse, ClusterNodeResponse};
use iggy_binary_protocol::responses::system::{DescribeOptionsResponse, OptionDescriptor};

use super::lookup::decode;
use super::reply::{Handled, SERVER_NAME, server_version};
use super::session::Session;
use super::shared::{ClientView, Shared};
use crate::batch;
use crate::error_codes::ErrorCode;

/// `TransportProtocol::Tcp` of `iggy_common`.
const TRANSPORT_TCP: u8 = 1;
pub(crate) fn stats(shared: &Shared, out: &mut BytesMut) -> Handled {
    let broker = &shared.broker;
    let streams = broker.streams();
    let (mut topics, mut partitions, mut segments, mut messages, mut size, mut groups) =
        (0u32, 0u32, 0u32, 0u64, 0u64, 0u32);
    for stream in &streams {
        for topic in &stream.topics {
            topics += 1;
            partitions += topic.partitions_count();
            let (bytes, count, segs) = topic.totals();
            size += bytes;
            messages += count;
            segments += segs;
            groups += u32::try_from(topic.groups().by_id.len()).unwrap_or(u32::MAX);
        }
    }
    let now = batch::now_micros();
    let response = StatsResponse {
        process_id: std::process::id(),
        cpu_usage: 0.0,
        total_cpu_usage: 0.0,
        memory_usage: resident_memory().unwrap_or(0),
        total_memory: 0,
        available_memory: 0,
        run_time: now.saturating_sub(broker.started_at()),
        start_time: broker.started_at(),
        read_bytes: 0,
        written_bytes: 0,
        messages_size_bytes: size,
        streams_count: u32::try_from(streams.len()).unwrap_or(u32::MAX),
        topics_count: topics,
        partitions_count: partitions,
        segments_count: segments,
        messages_count: messages,
        clients_count: u32::try_from(shared.clients().len()).unwrap_or(u32::MAX),
        consumer_groups_count: groups,
        hostname: read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default(),
        os_name: std::env::consts::OS.to_owned(),
        os_version: String::new(),
        kernel_version: read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        iggy_server_version: server_version(),
        iggy_server_semver: None,
        cache_metrics: Vec::new(),
        threads_count: std::thread::available_parallelism()
            .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX)),
        free_disk_space: 0,
        total_disk_space: 0,
    };
    response.encode(out);
    Ok(())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Resident set size in bytes (Linux), from `/proc/self/statm`.
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(4096))
}

/// Value kind `UInt64` of the option TLV (`HeaderKind::as_code` of `iggy_common`).
const KIND_UINT64: u8 = 12;

/// The option catalog of a scope: the keys this broker honours, with their
/// defaults. Topics honour `message_expiry` and `max_topic_size` (microseconds and
/// bytes; 0, the default, is no limit; other well-formed keys are accepted at
/// create and ignored); streams and users have no option keys.
pub(crate) fn describe_options(body: &[u8], out: &mut BytesMut) -> Handled {
    let request: DescribeOptionsRequest = decode(body)?;
    let entries = if request.scope == OPTIONS_SCOPE_TOPIC {
        vec![
            uint64_option(
                "message_expiry",
                "how long a message is kept, in microseconds; 0 keeps messages for ever",
            )?,
            uint64_option(
                "max_topic_size",
                "the size the topic's data is kept under, in bytes; 0 is unlimited",
            )?,
        ]
    } else {
        Vec::new()
    };
    DescribeOptionsResponse { entries }.encode(out);
    Ok(())
}

/// A `UInt64` option whose default is 0.
fn uint64_option(key: &str, description: &str) -> Result<OptionDescriptor, ErrorCode> {
    Ok(OptionDescriptor {
        key: WireName::new(key).map_err(|_| ErrorCode::ERROR)?,
        kind: KIND_UINT64,
        default_value: bytes::Bytes::copy_from_slice(&0u64.to_le_bytes()),
        description: description.to_owned(),
    })
}

pub(crate) fn cluster_metadata(shared: &Shared, out: &mut BytesMut) -> Handled {
    ClusterMetadataResponse {
        name: SERVER_NAME.to_owned(),
        nodes: vec![this_node(shared)],
    }
    .encode(out);
    Ok(())
}

/// This node, the only one of its cluster (TCP only).
pub(crate) fn this_node(shared: &Shared) -> ClusterNodeResponse {
    ClusterNodeResponse {
        name: "embedded".to_owned(),
        ip: shared.local_addr.ip().to_string(),
        tcp_port: shared.local_addr.port(),
        quic_port: 0,
        http_port: 0,
        websocket_port: 0,
        role: 0,
        status: 0,
    }
}

fn client_details(client_id: u32, view: &ClientView) -> ClientDetailsResponse {
    ClientDetailsResponse {
        client: client_summary(client_id, view),
        consumer_groups: view
            .groups
            .iter()
            .map(
                |&(stream_id, topic_id, group_id)| ConsumerGroupInfoResponse {
                    stream_id,
                    topic_id,
                    group_id,
                },
            )
            .collect(),
    }
}

fn client_summary(client_id: u32, view: &ClientView) -> ClientResponse {
    ClientResponse {
        client_id,
        user_id: view.user_id.unwrap_or(u32::MAX),
        transport: TRANSPORT_TCP,
        address: view.address.to_string(),
        consumer_groups_count: u32::try_from(view.groups.len()).unwrap_or(u32::MAX),
    }
}

pub(crate) fn me(shared: &Shared, session: &Session, out: &mut BytesMut) -> Handled {
    let view = shared
        .clients()
        .remove(&session.client_id)
        .unwrap_or_else(|| ClientView {
            address: session.address,
            user_id: session.user_id(),
            groups: Vec::new(),
            consumer_session: None,
        });
    client_details(session.client_id, &view).encode(out);
    Ok(())
}

pub(crate) fn clients(shared: &Shared, out: &mut BytesMut) -> Handled {
    for (id, view) in shared.clients() {
        client_summary(id, &view).encode(out);
    }
    Ok(())
}

/// An unknown client is an empty body (the SDK reads it as `None`).
pub(crate) fn client(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetClientRequest = decode(body)?;
    if let Some(view) = shared.clients().get(&request.client_id) {
        client_details(request.client_id, view).encode(out);
    }
    Ok(())
}
