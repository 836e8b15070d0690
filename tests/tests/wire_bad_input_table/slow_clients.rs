//! Slow clients that never read: a ping flood, and pending poll replies.

use std::time::{Duration, Instant};

use iggy::prelude::TopicClient;
use iggy_binary_protocol::consensus::Operation;
use tests::wire::raw::request_header;
use tests::wire::table::*;
use tests::wire::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client that writes pings and never reads a reply. The server answers in
/// lockstep, so once the socket buffers are full it stops reading from that
/// client: the client's writes stall, the server buffers at most one reply, and
/// everyone else is served on time. When the client reads at last, every reply
/// is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_flooding_pings_is_throttled() {
    const FLOOD: usize = 256 * 1024 * 1024;
    const STALLED: Duration = Duration::from_secs(1);
    let mut bench = Bench::start().await;
    let mut slow = bench.attacker().await;
    let ping = request_header(
        256,
        slow.client,
        1,
        Operation::NonReplicated as u8,
        slow.session,
        PING,
    );
    let chunk: Vec<u8> = ping.iter().copied().cycle().take(256 * 256).collect();
    let rss_before = status_kib("VmRSS");
    let mut written = 0usize;
    let started = Instant::now();
    while written < FLOOD {
        let at = written % chunk.len();
        match tokio::time::timeout(STALLED, slow.stream.write(&chunk[at..])).await {
            Ok(Ok(n)) => written += n,
            Ok(Err(e)) => panic!("the slow client's socket failed: {e}"),
            Err(_) => break, // no room for {STALLED}: TCP back-pressure reached
        }
    }
    assert!(
        written < FLOOD,
        "the server swallowed {FLOOD} bytes of pings without their replies being read"
    );
    eprintln!(
        "slow client stalled after {written} bytes ({} pings) in {:?}",
        written / 256,
        started.elapsed()
    );
    bench.tried(1);
    // Everyone else is served while the slow client is stuck.
    bench.check("slow client (pings), stalled").await;
    let grown = status_kib("VmRSS").saturating_sub(rss_before);
    assert!(
        grown < 64 * 1024,
        "the broker buffered replies for the slow client: RSS grew by {grown} KiB"
    );
    // The client reads at last: one reply per complete ping, all OK.
    let complete = written / 256;
    let mut buf = vec![0u8; 1024 * 1024];
    let mut received = 0usize;
    let mut statuses_ok = true;
    let mut header_bytes = Vec::with_capacity(256);
    within("read every pending reply", async {
        while received < complete {
            let n = slow.stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "the server closed after {received} replies");
            for &b in &buf[..n] {
                header_bytes.push(b);
                if header_bytes.len() == 256 {
                    statuses_ok &= header_bytes[216..220] == [0, 0, 0, 0];
                    header_bytes.clear();
                    received += 1;
                }
            }
        }
    })
    .await;
    assert!(statuses_ok, "every ping was answered OK");
    drop(slow);
    bench.check("slow client (pings)").await;
    bench.shutdown().await;
}

/// A client that asks for many 16 MiB poll replies and never reads them: the
/// broker holds at most about one reply for it (memory stays flat over a two-second
/// window in which an unbounded server would have built 512 MiB), other clients,
/// including readers of the same partition, are served on time, and the replies are
/// all correct when the client finally reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_polling_without_reading_is_bounded() {
    // 64 × 250 KiB: just under the 16 MiB a poll reply gathers at most.
    const MESSAGE: usize = 250 * 1024;
    const MESSAGES: u32 = 64;
    const POLLS: usize = 32;
    let mut bench = Bench::start().await;
    let admin = bench.broker.client().await;
    let options = iggy::prelude::TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    within(
        "create_topic",
        admin.create_topic(&named("shop"), "big", &options),
    )
    .await
    .unwrap();
    let mut seeder = bench.attacker().await;
    for chunk in 0..MESSAGES / 8 {
        let payloads: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i ^ chunk as u8; MESSAGE]).collect();
        let reply = answered(
            &mut seeder,
            Operation::SendMessages,
            101,
            &send_body_with_ids(
                wid("shop"),
                wid("big"),
                0,
                u128::from(chunk) * 8 + 1,
                &payloads,
            ),
        )
        .await;
        assert_eq!(reply.status(), OK);
    }
    let poll = poll_body(consumer(5), "shop", "big", Some(0), 0, MESSAGES);
    // One poll read in full first, so that the allocator has seen a reply this size.
    let mut slow = bench.attacker().await;
    let reply = answered(&mut slow, Operation::NonReplicated, POLL_MESSAGES, &poll).await;
    assert_eq!(poll_count(&reply), MESSAGES);
    let reply_size = reply.size() as usize;
    drop(reply);
    let rss_before = status_kib("VmRSS");
    for _ in 0..POLLS {
        slow.send(Operation::NonReplicated, POLL_MESSAGES, &poll)
            .await;
    }
    bench.tried(1);
    // Other clients, on the same partition too, are served while it does not read.
    bench.check("slow client (polls), not reading").await;
    let mut reader = bench.attacker().await;
    let reply = answered(
        &mut reader,
        Operation::NonReplicated,
        POLL_MESSAGES,
        &poll_body(consumer(6), "shop", "big", Some(0), 60, 1),
    )
    .await;
    assert_eq!(poll_count(&reply), 1, "the partition is not locked");
    // Memory over a two-second window.
    let mut peak = status_kib("VmRSS");
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    for _ in 0..40 {
        tick.tick().await;
        peak = peak.max(status_kib("VmRSS"));
    }
    let grown = peak.saturating_sub(rss_before);
    eprintln!(
        "slow poller: {POLLS} replies of {reply_size} bytes pending; RSS grew by {grown} KiB at most"
    );
    assert!(
        grown < 128 * 1024,
        "the broker buffers replies for a client that does not read: RSS grew by {grown} KiB"
    );
    // Every reply is complete and correct when the client reads.
    for i in 0..POLLS {
        let reply = next_frame(&mut slow).await.expect("a reply");
        assert_eq!(
            (reply.status(), poll_count(&reply), reply.size() as usize),
            (OK, MESSAGES, reply_size),
            "reply {i}"
        );
    }
    bench.check("slow client (polls)").await;
    bench.shutdown().await;
}
