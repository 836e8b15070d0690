//! Frames: wrong size fields, frames over the maximum, and peers that vanish mid-frame.

use std::time::Instant;

use iggy::prelude::TopicClient;
use iggy_binary_protocol::WireEncode;
use iggy_binary_protocol::consensus::{HEADER_SIZE, Operation};
use iggy_binary_protocol::requests::consumer_groups::JoinConsumerGroupRequest;
use tests::wire::raw::{RawClient, request_header};
use tests::wire::table::*;
use tests::wire::within;
use tokio::io::AsyncWriteExt;

/// Size fields below the header size, a size field that disagrees with what is
/// sent, and garbage where a header should be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_size_fields() {
    let mut bench = Bench::start().await;
    // Smaller than the header: an INVALID_FORMAT reply, then the close.
    for size in [0u32, 1, 100, 255] {
        let mut raw = bench.attacker().await;
        raw.write(&request_header(
            size,
            raw.client,
            1,
            Operation::NonReplicated as u8,
            raw.session,
            PING,
        ))
        .await;
        let reply = next_frame(&mut raw).await.expect("an error reply");
        assert_eq!(reply.status(), INVALID_FORMAT, "size {size}");
        assert_eq!(reply.size() as usize, HEADER_SIZE, "errors have no body");
        raw.closed().await;
        bench.tried(1);
    }
    // A size field shorter than the body: the surplus bytes are read as the next
    // header, whose size field (zeros of the real header) is refused.
    let mut raw = bench.attacker().await;
    let mut frame = request_header(
        260,
        raw.client,
        1,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    )
    .to_vec();
    frame.extend_from_slice(&[0u8; 8]); // 4 bytes more than announced
    frame.extend_from_slice(&request_header(
        256,
        raw.client,
        2,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    ));
    raw.write(&frame).await;
    let first = next_frame(&mut raw).await.expect("the first ping's reply");
    assert_eq!(first.status(), OK, "the announced frame is served");
    let second = next_frame(&mut raw).await.expect("an error reply");
    assert_eq!(second.status(), INVALID_FORMAT, "the misaligned header");
    raw.closed().await;
    bench.tried(1);
    // A size field longer than the body, then a whole frame: the frame is eaten as
    // body bytes, and the connection waits for the rest (served when it arrives).
    let mut raw = bench.attacker().await;
    let mut frame = request_header(
        256 + 256,
        raw.client,
        1,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    )
    .to_vec();
    frame.extend_from_slice(&request_header(
        256,
        raw.client,
        2,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    ));
    raw.write(&frame).await;
    let reply = next_frame(&mut raw).await.expect("one reply");
    assert_eq!(reply.status(), OK, "one ping with a 256-byte body");
    still_usable(&mut raw, "after a body-swallowing size").await;
    bench.tried(1);
    // Random garbage headers (a fixed xorshift sequence): each gets a reply or a
    // close, never a hang of the listener.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..32 {
        let mut raw = bench.anonymous().await;
        let mut header = [0u8; HEADER_SIZE];
        for chunk in header.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        raw.write(&header).await;
        raw.stream.shutdown().await.expect("shutdown write");
        raw.closed().await;
        bench.tried(1);
    }
    bench.check("wrong size field").await;
    bench.shutdown().await;
}

/// Sizes past the 64 MiB limit are refused from the header alone (nothing of the
/// body is read or allocated); a frame of exactly the limit is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_over_the_maximum() {
    let mut bench = Bench::start().await;
    let before = status_kib("VmRSS");
    for size in [
        MAX_FRAME + 1,
        MAX_FRAME + 4096,
        u32::MAX / 2,
        u32::MAX - 1,
        u32::MAX,
    ] {
        let mut raw = bench.attacker().await;
        raw.write(&request_header(
            size,
            raw.client,
            1,
            Operation::SendMessages as u8,
            raw.session,
            0,
        ))
        .await;
        let reply = next_frame(&mut raw).await.expect("an error reply");
        assert_eq!(reply.status(), INVALID_FORMAT, "size {size}");
        raw.closed().await;
        bench.tried(1);
    }
    let grown = status_kib("VmRSS").saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "refused frames allocate nothing: RSS grew by {grown} KiB"
    );
    // Many connections announcing the largest allowed frame and sending 1 byte of
    // it: the body buffer grows with what arrives, not with what is announced.
    let before = status_kib("VmRSS");
    let mut pending = Vec::new();
    for _ in 0..64 {
        let mut raw = bench.attacker().await;
        raw.write(&request_header(
            MAX_FRAME,
            raw.client,
            1,
            Operation::NonReplicated as u8,
            raw.session,
            PING,
        ))
        .await;
        raw.write(&[0]).await;
        pending.push(raw);
        bench.tried(1);
    }
    // The bystander is served while 64 frames of 64 MiB are announced.
    bench.check("frame over the maximum (64 pending)").await;
    let grown = status_kib("VmRSS").saturating_sub(before);
    assert!(
        grown < 128 * 1024,
        "64 announced 64 MiB frames must not reserve 4 GiB: RSS grew by {grown} KiB"
    );
    drop(pending);
    // Exactly the limit: a ping with a body of 64 MiB - 256 bytes is answered.
    let mut raw = bench.attacker().await;
    let mut frame = request_header(
        MAX_FRAME,
        raw.client,
        1,
        Operation::NonReplicated as u8,
        raw.session,
        PING,
    )
    .to_vec();
    frame.resize(MAX_FRAME as usize, 0xA5);
    raw.write(&frame).await;
    drop(frame);
    let reply = next_frame(&mut raw).await.expect("a reply");
    assert_eq!(reply.status(), OK, "a frame of exactly the limit is served");
    still_usable(&mut raw, "after a maximal frame").await;
    bench.check("frame over the maximum").await;
    bench.shutdown().await;
}

/// Peers that vanish in the middle of a frame (after 1 to 255 header bytes, or in
/// the body of a send), with a FIN or a reset: only their connection ends, no
/// partial message is stored, and group memberships are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_mid_frame() {
    let mut bench = Bench::start().await;
    let send = send_body("shop", "orders", 0, &[vec![9; 4000], vec![8; 4000]]);
    let full_len = u32::try_from(HEADER_SIZE + send.len()).unwrap();
    let mut tried = 0;
    for reset in [false, true] {
        // Inside the header.
        for cut in [1usize, 47, 48, 51, 52, 60, 128, 176, 196, 255] {
            let mut raw = bench.attacker().await;
            let header = request_header(
                full_len,
                raw.client,
                1,
                Operation::SendMessages as u8,
                raw.session,
                0,
            );
            raw.write(&header[..cut]).await;
            hang_up(raw, reset).await;
            tried += 1;
        }
        // Inside the body of a send.
        for cut in [0usize, 1, 4, 40, 300, send.len() / 2, send.len() - 1] {
            let mut raw = bench.attacker().await;
            let mut frame = request_header(
                full_len,
                raw.client,
                1,
                Operation::SendMessages as u8,
                raw.session,
                0,
            )
            .to_vec();
            frame.extend_from_slice(&send[..cut]);
            raw.write(&frame).await;
            hang_up(raw, reset).await;
            tried += 1;
        }
    }
    // A group member that vanishes mid-frame leaves the group.
    let mut member = bench.attacker().await;
    let join = JoinConsumerGroupRequest {
        stream_id: wid("shop"),
        topic_id: wid("orders"),
        group_id: wid("workers"),
    };
    let reply = answered(
        &mut member,
        Operation::JoinConsumerGroup,
        604,
        &join.to_bytes(),
    )
    .await;
    assert_eq!(reply.status(), OK);
    let admin = bench.broker.client().await;
    let members = || async {
        within(
            "get_consumer_group",
            iggy::prelude::ConsumerGroupClient::get_consumer_group(
                &admin,
                &named("shop"),
                &named("orders"),
                &named("workers"),
            ),
        )
        .await
        .unwrap()
        .expect("the group")
        .members_count
    };
    assert_eq!(members().await, 1);
    let header = request_header(
        full_len,
        member.client,
        9,
        Operation::SendMessages as u8,
        member.session,
        0,
    );
    member.write(&header[..100]).await;
    hang_up(member, true).await;
    // The membership is released when the server notices the reset.
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while members().await != 0 {
        assert!(Instant::now() < deadline, "the membership was not released");
        tokio::task::yield_now().await;
    }
    tried += 1;
    // Clients that vanish while the server writes big replies to them.
    for _ in 0..8 {
        let mut raw = bench.attacker().await;
        let poll = poll_body(consumer(3), "shop", "orders", Some(0), 0, 100);
        for _ in 0..50 {
            raw.send(Operation::NonReplicated, POLL_MESSAGES, &poll)
                .await;
        }
        hang_up(raw, true).await;
        tried += 1;
    }
    bench.tried(tried);
    // Nothing partial was stored.
    let topic = within(
        "get_topic",
        admin.get_topic(&named("shop"), &named("orders")),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(topic.messages_count, u64::from(SEEDED * PARTITIONS));
    bench.check("disconnect mid-frame").await;
    bench.shutdown().await;
}

/// Closes the connection: a FIN (and waits for the server to close its side), or
/// a reset (`SO_LINGER` 0).
async fn hang_up(mut raw: RawClient, reset: bool) {
    if reset {
        raw.stream.set_zero_linger().expect("SO_LINGER 0");
        drop(raw);
    } else {
        raw.stream.shutdown().await.expect("shutdown write");
        raw.closed().await;
    }
}
