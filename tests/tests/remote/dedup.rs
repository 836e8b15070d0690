//! Effectively-once publish on `RemoteConnector`: a TCP proxy between the connector
//! and the embedded broker's listener lets a `SendMessages` through, drops the
//! broker's answer and closes the connection. The connector reconnects, sends the
//! batch again with the same ids, the broker stores it once, and the receipt names
//! the messages as duplicates at their stored offsets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rustok_iggy_connector::{
    IggyConnector, OutgoingMessage, PublishRequest, StartPosition, StreamName, TopicName, TopicSpec,
};
use tests::conformance::{open_remote, remote_config};
use tests::wire::{PASSWORD, USERNAME, WireBroker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards connections to `upstream`. Once armed, the next bytes the broker sends
/// on any connection are dropped and that connection is closed on both sides.
struct AnswerDropper {
    address: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicU32>,
    accept: tokio::task::JoinHandle<()>,
}

impl AnswerDropper {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU32::new(0));
        let (a, d) = (Arc::clone(&armed), Arc::clone(&dropped));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(relay(client, server, Arc::clone(&a), Arc::clone(&d)));
            }
        });
        Self {
            address,
            armed,
            dropped,
            accept,
        }
    }
}

impl Drop for AnswerDropper {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicU32>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    });
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match server_read.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if armed.swap(false, Ordering::SeqCst) {
            // The broker stored the batch; its answer never reaches the client.
            dropped.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    requests.abort();
    let _ = client_write.shutdown().await;
}

/// A broker, an answer dropper in front of it, a remote connector through the
/// dropper, and topic `dedup/<topic>` of one partition.
async fn through_a_dropper(
    topic: &str,
) -> (
    WireBroker,
    AnswerDropper,
    Arc<dyn IggyConnector>,
    StreamName,
    TopicName,
) {
    let broker = WireBroker::start().await;
    let proxy = AnswerDropper::start(broker.address).await;
    let mut config = remote_config(&proxy.address.to_string(), USERNAME, PASSWORD);
    // No heartbeat between arming the proxy and the send.
    config.remote.heartbeat_interval_ms = 600_000;
    config.remote.pool_size = 1;
    let remote = open_remote(&config).await;
    let stream = StreamName::new("dedup").unwrap();
    let topic = TopicName::new(topic).unwrap();
    remote
        .ensure_topic(&TopicSpec::new(stream.clone(), topic.clone(), 1))
        .await
        .unwrap();
    (broker, proxy, remote, stream, topic)
}

#[tokio::test]
async fn a_send_whose_answer_was_dropped_is_resent_and_stored_once() {
    let (broker, proxy, remote, stream, topic) = through_a_dropper("remote").await;
    let request = |ids: &[u128]| {
        ids.iter().fold(
            PublishRequest::new(stream.clone(), topic.clone()).partition(0),
            |r, id| r.message(OutgoingMessage::new(format!("m{id}").into_bytes()).with_id(*id)),
        )
    };
    let warm = remote.publish(request(&[1])).await.unwrap();
    assert!(warm.duplicates.is_empty());

    proxy.armed.store(true, Ordering::SeqCst);
    let receipt = remote.publish(request(&[10, 11, 12])).await.unwrap();
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        1,
        "one answer was dropped"
    );
    assert_eq!(receipt.base_offset, 1);
    assert_eq!(
        receipt
            .duplicates
            .iter()
            .map(|d| (d.index, d.offset))
            .collect::<Vec<_>>(),
        [(0, 1), (1, 2), (2, 3)],
        "the resend found the first send stored"
    );
    let stored: Vec<u128> = broker
        .connector
        .poll(&stream, &topic, 0, StartPosition::Earliest, 100)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(stored, [1, 10, 11, 12], "stored once");

    // A send after the resend is new.
    let next = remote.publish(request(&[13])).await.unwrap();
    assert_eq!((next.base_offset, next.duplicates.len()), (4, 0));
    remote.shutdown().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test]
async fn a_resend_finds_its_stored_copies_behind_large_messages() {
    let (broker, proxy, remote, stream, topic) = through_a_dropper("large").await;
    // 16 MiB below the head: more than one poll answers, so the read-back that looks
    // for the first attempt's copies must read on to the head.
    for id in 1..=16u128 {
        remote
            .publish(
                PublishRequest::new(stream.clone(), topic.clone())
                    .partition(0)
                    .message(OutgoingMessage::new(vec![b'x'; 1 << 20]).with_id(id)),
            )
            .await
            .unwrap();
    }
    proxy.armed.store(true, Ordering::SeqCst);
    let receipt = remote
        .publish(
            PublishRequest::new(stream.clone(), topic.clone())
                .partition(0)
                .message(OutgoingMessage::new(&b"small"[..]).with_id(100)),
        )
        .await
        .unwrap();
    assert_eq!(proxy.dropped.load(Ordering::SeqCst), 1);
    assert_eq!(
        receipt
            .duplicates
            .iter()
            .map(|d| (d.index, d.offset))
            .collect::<Vec<_>>(),
        [(0, 16)],
        "the resend found the first send stored: {receipt:?}"
    );
    assert_eq!(receipt.base_offset, 16);
    remote.shutdown().await.unwrap();
    broker.shutdown().await;
}
