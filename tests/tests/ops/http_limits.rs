//! The embedded broker's HTTP endpoint under clients that misbehave: connections past
//! the cap wait their turn, a client that never reads (or never finishes its request)
//! is cut off after the connection timeout, and shutdown ends every connection and
//! closes the port.

use std::net::SocketAddr;
use std::sync::Arc;

use rustok_iggy_connector::{ConnectorConfig, EmbeddedConnector, IggyConnector, Metrics};
use tests::{embedded_config, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An embedded broker with its HTTP endpoint on a free port.
async fn broker(
    dir: &std::path::Path,
    change: impl FnOnce(&mut ConnectorConfig),
) -> (Arc<EmbeddedConnector>, SocketAddr) {
    let mut config = embedded_config(dir);
    config.embedded.http_enabled = true;
    config.embedded.http_port = 0;
    change(&mut config);
    let connector = Arc::new(EmbeddedConnector::new());
    connector.connect(&config).await.unwrap();
    let address = connector.http_address().expect("the endpoint is on");
    (connector, address)
}

/// `GET path` on a new connection; the status code and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let response = within(
        &format!("GET {path}"),
        reqwest::get(format!("http://{address}{path}")),
    )
    .await
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// A connection whose receive buffer is as small as the kernel allows, so that a
/// large answer fills it and the server's send buffer while it does not read.
async fn slow_reader(address: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    socket.connect(address).await.unwrap()
}

/// Reads until the end of the stream (or a reset); the bytes read.
async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The `content-length` of a response head.
fn content_length(head: &[u8]) -> usize {
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    text.lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no content-length in {text}"))
}

/// With one connection allowed, a client that reads a few bytes of a large
/// `/metrics` answer and then stops holds the only slot, so `/ping` waits; once the
/// connection timeout cuts the stalled client off, `/ping` answers, and the stalled
/// client finds its answer cut short.
#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_and_the_next_connection_is_served() {
    // Several megabytes of series, more than the socket buffers hold.
    for i in 0..100_000u32 {
        Metrics::global().add(
            "rustok_iggy_test_filler_total",
            &[("series", &format!("{i:06}"))],
            1,
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (connector, address) = broker(dir.path(), |config| {
        config.embedded.http_max_connections = 1;
        config.embedded.http_timeout_ms = 500;
    })
    .await;

    let mut stalled = slow_reader(address).await;
    stalled
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // The server is writing the answer: its head has arrived.
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("the answer's head", stalled.read_exact(&mut byte))
            .await
            .unwrap();
        head.push(byte[0]);
    }
    let expected = content_length(&head);

    // The only slot is taken: /ping is answered once the stalled client is cut off.
    assert_eq!(get(address, "/ping").await, (200, "pong\n".to_owned()));

    let body = within("the rest of the stalled answer", read_to_end(&mut stalled)).await;
    assert!(
        body.len() < expected,
        "the stalled client was cut off: it got {} of {expected} bytes",
        body.len()
    );
    connector.shutdown().await.unwrap();
}

/// A client that opens a connection and never finishes its request is cut off too.
#[tokio::test]
async fn a_client_that_never_finishes_its_request_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (connector, address) = broker(dir.path(), |config| {
        config.embedded.http_max_connections = 1;
        config.embedded.http_timeout_ms = 500;
    })
    .await;
    let mut idle = TcpStream::connect(address).await.unwrap();
    idle.write_all(b"GET /ping HTTP/1.1\r\n").await.unwrap();
    assert_eq!(get(address, "/ping").await, (200, "pong\n".to_owned()));
    let rest = within("the idle connection closes", read_to_end(&mut idle)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("pong"),
        "the unfinished request was not answered"
    );
    connector.shutdown().await.unwrap();
}

/// Connections past the cap wait their turn: two hundred clients at once, four
/// served at a time, every one answered.
#[tokio::test]
async fn connections_past_the_cap_wait_their_turn_and_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (connector, address) = broker(dir.path(), |config| {
        config.embedded.http_max_connections = 4;
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("http://{address}/ping");
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let request = client.get(&url).send();
            tokio::spawn(async move {
                let response = request.await?;
                Ok::<_, reqwest::Error>((response.status().as_u16(), response.text().await?))
            })
        })
        .collect();
    for request in requests {
        let answer = within("GET /ping", request).await.unwrap().unwrap();
        assert_eq!(answer, (200, "pong\n".to_owned()));
    }
    connector.shutdown().await.unwrap();
}

/// Shutdown ends the connections the endpoint holds (a request finished after it is
/// not answered) and closes the port.
#[tokio::test]
async fn shutdown_ends_every_connection_and_closes_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let (connector, address) = broker(dir.path(), |config| {
        config.embedded.http_timeout_ms = 600_000;
    })
    .await;
    assert_eq!(get(address, "/ping").await.0, 200);
    let mut open = TcpStream::connect(address).await.unwrap();
    open.write_all(b"GET /ping HTTP/1.1\r\n").await.unwrap();
    // Served by the endpoint (not only queued by the kernel): a second connection
    // gets its answer, so the first one was accepted before it.
    assert_eq!(get(address, "/ping").await.0, 200);

    within("shutdown", connector.shutdown()).await.unwrap();

    // The request is finished now; a connection still served would answer it.
    let _ = open.write_all(b"host: x\r\n\r\n").await;
    let rest = within("the open connection ends", read_to_end(&mut open)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("pong"),
        "a connection outlived the shutdown: {}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the port is closed after shutdown"
    );
}
