//! The embedded broker's HTTP endpoint (`embedded.http_port`): `GET /ping`,
//! `GET /health` (JSON) and `GET /metrics` (Prometheus text), on hyper (HTTP/1.1).
//!
//! Bounded per client: one request per connection; at most
//! `embedded.http_max_connections` connections served at once (past it, new ones wait
//! in the listen queue until a slot frees); each connection closed after
//! `embedded.http_timeout_ms`, however far it got (reading the request or writing the
//! answer), so a client that sends slowly or never reads holds a slot for that long
//! at most. [`HttpServer::stop`] closes the port and ends every connection before it
//! returns.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use super::broker::Broker;
use crate::config::EmbeddedConnectorConfig;
use crate::error::ConnectorError;
use crate::metrics::{Metrics, render_labels};

/// The largest request head read (hyper's smallest allowed buffer).
const MAX_HEAD: usize = 8 * 1024;
/// Connections the kernel queues while every slot is busy (a burst past it waits for
/// the clients' SYN retries).
const LISTEN_BACKLOG: u32 = 1024;

/// A running HTTP endpoint.
#[derive(Debug)]
pub(crate) struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds the configured address (port 0 = ephemeral) and serves until stopped.
    pub(crate) fn start(
        config: &EmbeddedConnectorConfig,
        broker: Arc<Broker>,
    ) -> Result<Self, ConnectorError> {
        let address = config.http_socket_address()?;
        let bind = || -> std::io::Result<TcpListener> {
            let socket = if address.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(address)?;
            socket.listen(LISTEN_BACKLOG)
        };
        let listener = bind()
            .map_err(|e| ConnectorError::io(format!("bind the HTTP endpoint on {address}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| ConnectorError::io("read the HTTP listener address", e))?;
        let (stop, stopped) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(
            usize::try_from(config.http_max_connections).unwrap_or(usize::MAX),
        ));
        let timeout = Duration::from_millis(config.http_timeout_ms);
        let task = tokio::spawn(accept_loop(listener, broker, slots, timeout, stopped));
        tracing::info!(%local_addr, "HTTP endpoint listening");
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, closes the port and ends every connection (an answer being
    /// written is cut); returns when no task of the endpoint is left.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// A free slot, then a connection.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, OwnedSemaphorePermit)> {
    let permit = Arc::clone(slots)
        .acquire_owned()
        .await
        .map_err(|_| std::io::Error::other("the connection slots are closed"))?;
    let (stream, _) = listener.accept().await?;
    Ok((stream, permit))
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    slots: Arc<Semaphore>,
    timeout: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            _ = stopped.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = accept(&listener, &slots) => match accepted {
                Ok((stream, permit)) => {
                    let broker = Arc::clone(&broker);
                    connections.spawn(async move {
                        serve(stream, broker, timeout).await;
                        drop(permit);
                    });
                }
                Err(e) => tracing::warn!(error = %e, "HTTP accept failed"),
            },
        }
    }
    drop(listener);
    connections.shutdown().await;
}

/// Serves the one request of a connection, within `timeout`.
async fn serve(stream: TcpStream, broker: Arc<Broker>, timeout: Duration) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &broker);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(timeout, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "HTTP connection failed"),
        Err(_) => tracing::debug!(?timeout, "HTTP connection cut off at its timeout"),
    }
}

/// The answer to one request. A `HEAD` gets the head of the `GET` answer (hyper
/// leaves the body out).
fn respond(request: &Request<Incoming>, broker: &Broker) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served\n".into(),
        );
    }
    match request.uri().path() {
        "/ping" => reply(StatusCode::OK, "text/plain", "pong\n".into()),
        "/health" => health(broker),
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            format!("{}{}", Metrics::global().render(), broker_metrics(broker)),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /ping, /health or /metrics\n".into(),
        ),
    }
}

fn health(broker: &Broker) -> Response<Full<Bytes>> {
    let open = broker.ensure_open().is_ok();
    let topics = broker.all_topics();
    let partitions: usize = topics.iter().map(|t| t.partitions().len()).sum();
    let storage = broker.storage_health();
    // A poisoned log refuses writes until the broker is reopened.
    let unwritable: Vec<serde_json::Value> = broker
        .unwritable_partitions()
        .into_iter()
        .map(|(stream, topic, partition)| {
            serde_json::json!({"stream": stream.as_str(), "topic": topic.as_str(), "partition": partition})
        })
        .collect();
    // Poisoned: writes refused (unhealthy). Damaged: records lost, the rest served.
    let storage_status = if !unwritable.is_empty() {
        "unhealthy"
    } else if storage.damaged_ranges > 0 {
        "degraded"
    } else {
        "healthy"
    };
    let status = if !open { "unhealthy" } else { storage_status };
    let body = serde_json::json!({
        "status": status,
        "checks": [
            {"name": "broker", "status": if open { "healthy" } else { "unhealthy" }},
            {"name": "storage", "status": storage_status, "unwritable": unwritable},
        ],
        "streams": broker.streams().len(),
        "topics": topics.len(),
        "partitions": partitions,
        "storage": {
            "damaged_ranges": storage.damaged_ranges,
            "lost_messages": storage.lost_messages,
            "damaged_partitions": storage.damaged,
            "poisoned_partitions": storage.poisoned,
        },
        "uptime_seconds": crate::batch::now_micros().saturating_sub(broker.started_at()) / 1_000_000,
    });
    reply(
        if status == "unhealthy" {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        },
        "application/json",
        format!("{body}\n"),
    )
}

/// Per-partition gauges and counters of the broker's storage.
fn broker_metrics(broker: &Broker) -> String {
    let mut out = String::new();
    let families = [
        (
            "rustok_iggy_partition_messages",
            "gauge",
            "Messages stored in a partition.",
        ),
        (
            "rustok_iggy_partition_bytes",
            "gauge",
            "Bytes of a partition's segment files.",
        ),
        (
            "rustok_iggy_partition_segments",
            "gauge",
            "Segment files of a partition.",
        ),
        (
            "rustok_iggy_partition_next_offset",
            "gauge",
            "The offset the next message of a partition will get.",
        ),
        (
            "rustok_iggy_partition_fsyncs_total",
            "counter",
            "fsyncs of a partition's active data file (concurrent appends share one).",
        ),
        (
            "rustok_iggy_partition_offset_fsyncs_total",
            "counter",
            "fsyncs of a partition's consumer-offsets journal (concurrent commits share one).",
        ),
        (
            "rustok_iggy_partition_sync_window_max_seconds",
            "gauge",
            "The longest time appended data waited for its fsync.",
        ),
        (
            "rustok_iggy_partition_unsynced_age_seconds",
            "gauge",
            "How long the oldest write not yet fsynced has waited (0 when none).",
        ),
        (
            "rustok_iggy_partition_damaged_ranges",
            "gauge",
            "Damaged byte ranges skipped in a partition's log.",
        ),
        (
            "rustok_iggy_partition_lost_messages",
            "gauge",
            "Messages lost in damaged ranges.",
        ),
        (
            "rustok_iggy_partition_poisoned",
            "gauge",
            "1 when the partition refuses writes after a failed write or fsync.",
        ),
    ];
    let topics = broker.all_topics();
    let mut rows: Vec<(String, [String; 11])> = Vec::new();
    for topic in &topics {
        for partition in topic.partitions().iter() {
            let stats = partition.storage_stats();
            let labels = render_labels(
                &[
                    ("stream", topic.stream_name().to_string()),
                    ("topic", topic.name().to_string()),
                    ("partition", partition.id.to_string()),
                ],
                None,
            );
            rows.push((
                labels,
                [
                    stats.log.messages.to_string(),
                    stats.log.size_bytes.to_string(),
                    stats.log.segments.to_string(),
                    partition.next_offset().to_string(),
                    stats.data_syncs.to_string(),
                    stats.offset_syncs.to_string(),
                    stats.max_sync_window.as_secs_f64().to_string(),
                    stats.unsynced_age.as_secs_f64().to_string(),
                    stats.log.damaged_ranges.to_string(),
                    stats.log.lost_messages.to_string(),
                    u8::from(stats.poisoned).to_string(),
                ],
            ));
        }
    }
    for (column, (name, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, values) in &rows {
            let _ = writeln!(out, "{name}{labels} {}", values[column]);
        }
    }
    let _ = writeln!(
        out,
        "# HELP rustok_iggy_storage_fsyncs_total Every fsync the broker's storage made.\n\
         # TYPE rustok_iggy_storage_fsyncs_total counter\n\
         rustok_iggy_storage_fsyncs_total {}",
        broker.fsyncs()
    );
    out
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
