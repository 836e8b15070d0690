//! The listener: accepts connections, runs one task per connection that reads a
//! frame, dispatches it and writes the reply (the protocol is lockstep, so each
//! connection is served in order), and stops gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::dispatch::dispatch;
use super::frame::{self, FrameError, HeaderReader, RequestHead};
use super::reply::Outcome;
use super::session::Session;
use super::shared::Shared;
use crate::embedded::broker::{Broker, Users};
use crate::error::ConnectorError;
use crate::error_codes::ErrorCode;

/// How long a peer may take to deliver the rest of a frame once its header arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for connections to finish their current request.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A running listener.
#[derive(Debug)]
pub(crate) struct WireServer {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WireServer {
    /// Binds `address` (port 0 = an ephemeral port) and starts accepting. Must be
    /// called inside a tokio runtime; binding is synchronous so that callers
    /// holding non-`Send` guards can start the listener.
    pub(crate) fn start(
        address: SocketAddr,
        broker: Arc<Broker>,
        users: Arc<Users>,
    ) -> Result<Self, ConnectorError> {
        let bind_error = |e| ConnectorError::io(format!("bind the TCP listener on {address}"), e);
        let std_listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let local_addr = std_listener.local_addr().map_err(bind_error)?;
        let listener = TcpListener::from_std(std_listener).map_err(bind_error)?;
        let shared = Arc::new(Shared::new(broker, users, local_addr));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared, stop_rx));
        tracing::info!(address = %local_addr, "Iggy TCP listener started");
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets each connection finish the request it is serving
    /// (up to 5 s), then closes them all.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the TCP listener task failed");
        }
        tracing::info!(address = %self.local_addr, "Iggy TCP listener stopped");
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(serve(stream, peer, Arc::clone(&shared), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = stop.changed() => break,
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
}

/// Serves one connection until the peer closes it, a frame cannot be read, or the
/// listener stops.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut session = Session::new(Arc::clone(&shared), peer);
    let wake = session.wake();
    let mut headers = HeaderReader::new();
    tracing::debug!(%peer, client = session.client_id, "connection opened");
    loop {
        let header = tokio::select! {
            header = headers.read(&mut reader) => header,
            () = wake.notified() => {
                // Another connection changed this session's user.
                session.revalidate();
                continue;
            }
            _ = stop.changed() => break,
        };
        let header = match header {
            Ok(Some(header)) => header,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "closing connection");
                break;
            }
        };
        let head = RequestHead::parse(&header);
        let body_len = match head.body_len() {
            Ok(len) => len,
            Err(e) => {
                // The stream cannot be resynchronised: answer, then close.
                tracing::debug!(%peer, error = %e, "closing connection");
                let reply = frame::error_reply(&head, reply_operation(&head), status_of(&e));
                let _ = writer.write_all(&reply).await;
                break;
            }
        };
        let body = match tokio::time::timeout(BODY_TIMEOUT, frame::read_body(&mut reader, body_len))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "closing connection");
                break;
            }
            Err(_) => {
                tracing::debug!(%peer, "closing connection: the frame body did not arrive in time");
                break;
            }
        };
        let outcome = dispatch(&shared, &mut session, &head, &body).await;
        let (bytes, close) = match outcome {
            Outcome::Reply(bytes) => (bytes.freeze(), false),
            Outcome::Evict(bytes) => (bytes::Bytes::copy_from_slice(&bytes[..]), false),
            Outcome::ReplyAndClose(bytes) => (bytes.freeze(), true),
        };
        if let Err(e) = writer.write_all(&bytes).await {
            tracing::debug!(%peer, error = %e, "closing connection");
            break;
        }
        if close {
            break;
        }
    }
    let client = session.client_id;
    // Release the connection's group memberships before the peer sees the close.
    drop(session);
    let _ = writer.shutdown().await;
    tracing::debug!(%peer, client, "connection closed");
}

fn reply_operation(head: &RequestHead) -> iggy_binary_protocol::consensus::Operation {
    head.operation().unwrap_or_default()
}

fn status_of(e: &FrameError) -> u32 {
    match e {
        FrameError::SizeTooLarge(_) | FrameError::SizeTooSmall(_) => ErrorCode::INVALID_FORMAT.0,
        FrameError::Truncated | FrameError::Io(_) => ErrorCode::ERROR.0,
    }
}
