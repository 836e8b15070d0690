//! The embedded broker's HTTP endpoint (`embedded.http_port`): `GET /ping`,
//! `GET /health` (JSON) and `GET /metrics` (Prometheus text).
//!
//! A deliberately small HTTP/1.1 server: one request per connection, GET only, a
//! request head of at most 8 KiB read within 5 seconds; anything else gets a 4xx and
//! the connection is closed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::broker::Broker;
use crate::error::ConnectorError;
use crate::metrics::{Metrics, render_labels};

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A running HTTP endpoint.
#[derive(Debug)]
pub(crate) struct HttpServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds `address` (port 0 = ephemeral) and serves until stopped.
    pub(crate) fn start(address: SocketAddr, broker: Arc<Broker>) -> Result<Self, ConnectorError> {
        let std_listener = std::net::TcpListener::bind(address)
            .map_err(|e| ConnectorError::io(format!("bind the HTTP endpoint on {address}"), e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| ConnectorError::io("configure the HTTP listener", e))?;
        let local_addr = std_listener
            .local_addr()
            .map_err(|e| ConnectorError::io("read the HTTP listener address", e))?;
        let listener = TcpListener::from_std(std_listener)
            .map_err(|e| ConnectorError::io("register the HTTP listener", e))?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stopped.changed() => return,
                };
                match accepted {
                    Ok((stream, _)) => {
                        let broker = Arc::clone(&broker);
                        tokio::spawn(async move { serve(stream, &broker).await });
                    }
                    Err(e) => tracing::warn!(error = %e, "HTTP accept failed"),
                }
            }
        });
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

    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn serve(mut stream: TcpStream, broker: &Broker) {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
            if head.len() > MAX_HEAD {
                return false;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
    })
    .await
    .unwrap_or(false);
    let response = if complete {
        respond(&head, broker)
    } else {
        reply(400, "text/plain", "bad request\n".into())
    };
    let _ = stream.write_all(&response).await;
    let _ = stream.shutdown().await;
}

fn respond(head: &[u8], broker: &Broker) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(head) else {
        return reply(400, "text/plain", "bad request\n".into());
    };
    let mut parts = text.lines().next().unwrap_or_default().split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return reply(400, "text/plain", "bad request\n".into());
    };
    if !version.starts_with("HTTP/1.") {
        return reply(400, "text/plain", "bad request\n".into());
    }
    if method != "GET" && method != "HEAD" {
        return reply(405, "text/plain", "only GET is served\n".into());
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut response = match path {
        "/ping" => reply(200, "text/plain", "pong\n".into()),
        "/health" => health(broker),
        "/metrics" => reply(
            200,
            "text/plain; version=0.0.4",
            format!("{}{}", Metrics::global().render(), broker_metrics(broker)),
        ),
        _ => reply(
            404,
            "text/plain",
            "not found: try /ping, /health or /metrics\n".into(),
        ),
    };
    if method == "HEAD"
        && let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n")
    {
        response.truncate(end + 4);
    }
    response
}

fn health(broker: &Broker) -> Vec<u8> {
    let open = broker.ensure_open().is_ok();
    let topics = broker.all_topics();
    let partitions: usize = topics.iter().map(|t| t.partitions.len()).sum();
    let body = serde_json::json!({
        "status": if open { "healthy" } else { "unhealthy" },
        "checks": [
            {"name": "broker", "status": if open { "healthy" } else { "unhealthy" }},
        ],
        "streams": broker.streams().len(),
        "topics": topics.len(),
        "partitions": partitions,
        "uptime_seconds": crate::batch::now_micros().saturating_sub(broker.started_at()) / 1_000_000,
    });
    reply(
        if open { 200 } else { 503 },
        "application/json",
        format!("{body}\n"),
    )
}

/// Per-partition gauges of the broker's storage.
fn broker_metrics(broker: &Broker) -> String {
    let mut out = String::new();
    let families = [
        (
            "rustok_iggy_partition_messages",
            "Messages stored in a partition.",
        ),
        (
            "rustok_iggy_partition_bytes",
            "Bytes of a partition's segment files.",
        ),
        (
            "rustok_iggy_partition_segments",
            "Segment files of a partition.",
        ),
        (
            "rustok_iggy_partition_next_offset",
            "The offset the next message of a partition will get.",
        ),
    ];
    let topics = broker.all_topics();
    let mut rows: Vec<[String; 5]> = Vec::new();
    for topic in &topics {
        for partition in &topic.partitions {
            let stats = partition.stats();
            let labels = render_labels(
                &[
                    ("stream", topic.stream_name().to_string()),
                    ("topic", topic.name().to_string()),
                    ("partition", partition.id.to_string()),
                ],
                None,
            );
            rows.push([
                labels,
                stats.messages.to_string(),
                stats.size_bytes.to_string(),
                stats.segments.to_string(),
                partition.next_offset().to_string(),
            ]);
        }
    }
    for (column, (name, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for row in &rows {
            let _ = writeln!(out, "{name}{} {}", row[0], row[column + 1]);
        }
    }
    out
}

fn reply(status: u16, content_type: &str, body: String) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
