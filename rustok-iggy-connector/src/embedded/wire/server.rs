//! The listener: accepts connections within the limits ([`ListenerLimits`]), runs
//! one task per connection that reads a frame, dispatches it and writes the reply
//! (the protocol is lockstep, so each connection is served in order and holds at
//! most one reply), and stops gracefully.
//!
//! What bounds one client:
//! - admission ([`Shared::admit`]): at most `max_connections` connections and
//!   `max_unauthenticated` not logged in; at a limit, one that has not logged in
//!   makes room, else the new connection is closed;
//! - before login: the first frame within `first_frame_timeout`, each next one within
//!   `unauthenticated_idle_timeout`, and no frame larger than
//!   [`frame::MAX_UNAUTHENTICATED_FRAME_SIZE`] (refused from its header, none of its
//!   body read);
//! - a frame's body within 30 s of its header;
//! - a reply must make progress within `write_timeout` (a client that stopped
//!   reading is disconnected);
//! - logins wait in a bounded, fair queue, and `max_failed_logins` failures close
//!   the connection (see `users::login`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::dispatch::dispatch;
use super::frame::{self, FrameError, HeaderReader, RequestHead};
use super::reply::Outcome;
use super::session::Session;
use super::shared::{Admitted, Shared};
use crate::config::ListenerLimits;
use crate::embedded::broker::{Broker, Users};
use crate::error::ConnectorError;
use crate::error_codes::ErrorCode;

/// How long a peer may take to deliver the rest of a frame once its header arrived.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for connections to finish their current request.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// `EMFILE` and `ENFILE` (Linux and the BSDs): out of file descriptors.
const OUT_OF_FILES: [i32; 2] = [24, 23];

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
        limits: ListenerLimits,
        config_json: String,
    ) -> Result<Self, ConnectorError> {
        let bind_error = |e| ConnectorError::io(format!("bind the TCP listener on {address}"), e);
        let std_listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let local_addr = std_listener.local_addr().map_err(bind_error)?;
        let listener = TcpListener::from_std(std_listener).map_err(bind_error)?;
        let shared = Arc::new(Shared::new(broker, users, local_addr, limits, config_json));
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
                Ok((stream, peer)) => match shared.admit(peer) {
                    Some(admitted) => {
                        connections.spawn(serve(
                            stream,
                            peer,
                            Arc::clone(&shared),
                            admitted,
                            stop.clone(),
                        ));
                    }
                    None => {
                        // Dropping the stream closes it.
                        tracing::debug!(%peer, "connection refused: the connection limits are reached");
                    }
                },
                Err(e) => {
                    if e.raw_os_error().is_some_and(|code| OUT_OF_FILES.contains(&code))
                        && shared.shed_one()
                    {
                        // A connection that has not logged in gives its descriptor
                        // to the next one waiting to be accepted.
                        tracing::warn!(
                            error = %e,
                            "out of file descriptors: closed a connection that had not logged in (lower embedded.tcp_limits.max_connections or raise the open-file limit)"
                        );
                    } else {
                        tracing::warn!(error = %e, "accept failed");
                    }
                    // Back off instead of spinning.
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

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// The peer closed it, the listener stops, or it was closed to make room.
    Quiet,
    /// Something worth a debug line.
    Because(String),
}

/// Serves one connection until the peer closes it, a frame cannot be read, a limit
/// is passed, or the listener stops.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    admitted: Admitted,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut session = Session::new(Arc::clone(&shared), peer, admitted);
    let signals = session.signals();
    let limits = shared.limits.clone();
    let write_timeout = limits.write_timeout();
    let mut headers = HeaderReader::new();
    // Until login, when the connection must have sent its next complete frame.
    let mut deadline = Instant::now() + limits.first_frame_timeout();
    tracing::debug!(%peer, client = session.client_id, "connection opened");
    let end = loop {
        let unauthenticated = session.login.is_none();
        let header = tokio::select! {
            header = headers.read(&mut reader) => header,
            () = signals.recheck.notified() => {
                // Another connection changed this session's user.
                session.revalidate();
                continue;
            }
            () = signals.close.notified() => break End::Quiet,
            () = tokio::time::sleep_until(deadline), if unauthenticated => {
                break End::Because("no complete frame in time before login".to_owned());
            }
            _ = stop.changed() => break End::Quiet,
        };
        let header = match header {
            Ok(Some(header)) => header,
            Ok(None) => break End::Quiet,
            Err(e) => break End::Because(e.to_string()),
        };
        let head = RequestHead::parse(&header);
        let body_len = match head.body_len(unauthenticated) {
            Ok(len) => len,
            Err(e) => {
                // The stream cannot be resynchronised (and a frame too large before
                // login is not read): answer, then close.
                let reply = frame::error_reply(&head, reply_operation(&head), status_of(&e));
                let _ = write_within(&mut writer, &reply, write_timeout).await;
                break End::Because(e.to_string());
            }
        };
        let body_timeout = if unauthenticated {
            deadline
                .saturating_duration_since(Instant::now())
                .min(BODY_TIMEOUT)
        } else {
            BODY_TIMEOUT
        };
        let body = tokio::select! {
            body = tokio::time::timeout(body_timeout, frame::read_body(&mut reader, body_len)) => body,
            () = signals.close.notified() => break End::Quiet,
        };
        let body = match body {
            Ok(Ok(body)) => body,
            Ok(Err(e)) => break End::Because(e.to_string()),
            Err(_) => break End::Because("the frame body did not arrive in time".to_owned()),
        };
        // A waiting login is cancelled if the connection must make room.
        let outcome = tokio::select! {
            outcome = dispatch(&shared, &mut session, &head, &body) => outcome,
            () = signals.close.notified() => break End::Quiet,
        };
        let bytes = match outcome {
            Outcome::Reply(bytes) => bytes.freeze(),
            Outcome::Evict(bytes) => bytes::Bytes::copy_from_slice(&bytes[..]),
            Outcome::Close => {
                break End::Because("login refused: the login queue is full".to_owned());
            }
        };
        if let Err(e) = write_within(&mut writer, &bytes, write_timeout).await {
            break End::Because(e.to_string());
        }
        if session.close_after_reply {
            break End::Because("too many failed logins".to_owned());
        }
        deadline = Instant::now() + limits.unauthenticated_idle_timeout();
    };
    let client = session.client_id;
    // Release the connection's group memberships before the peer sees the close.
    drop(session);
    let _ = tokio::time::timeout(write_timeout, writer.shutdown()).await;
    match end {
        End::Quiet => tracing::debug!(%peer, client, "connection closed"),
        End::Because(reason) => {
            tracing::debug!(%peer, client, %reason, "connection closed");
        }
    }
}

/// Writes `bytes`, failing if the peer takes none of them for `timeout` (it stopped
/// reading): the reply is then dropped with the connection.
async fn write_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = tokio::time::timeout(timeout, writer.write(bytes))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client read none of its reply for {timeout:?}"),
                )
            })??;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = bytes.get(written..).unwrap_or_default();
    }
    Ok(())
}

fn reply_operation(head: &RequestHead) -> iggy_binary_protocol::consensus::Operation {
    head.operation().unwrap_or_default()
}

fn status_of(e: &FrameError) -> u32 {
    match e {
        FrameError::SizeTooLarge(_)
        | FrameError::SizeTooSmall(_)
        | FrameError::TooLargeBeforeLogin(_) => ErrorCode::INVALID_FORMAT.0,
        FrameError::Truncated | FrameError::Io(_) => ErrorCode::ERROR.0,
    }
}
