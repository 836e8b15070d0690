//! Command codes, operations and bodies: unknown codes, operation and command bytes,
//! and every strict prefix of a valid body of every command.

use iggy::prelude::{StreamClient, TopicClient, UserClient, UserStatus};
use iggy_binary_protocol::COMMAND_TABLE;
use iggy_binary_protocol::consensus::{Command, HEADER_SIZE, Operation};
use tests::wire::raw::request_header;
use tests::wire::table::*;
use tests::wire::within;
use tokio::io::AsyncWriteExt;

/// Every command code outside the table, codes of replicated commands sent as
/// reads, every operation byte a client may not use, and a non-request command
/// byte: `InvalidCommand`, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_command_codes_and_operations() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let known: Vec<u32> = COMMAND_TABLE.iter().map(|c| c.code).collect();
    let mut codes: Vec<u32> = (0..=1024).filter(|c| !known.contains(c)).collect();
    codes.extend([
        2048,
        9_999,
        65_535,
        65_536,
        i32::MAX as u32,
        u32::MAX - 1,
        u32::MAX,
    ]);
    for &code in &codes {
        let reply = answered(&mut raw, Operation::NonReplicated, code, &[1, 2, 3]).await;
        assert_eq!(
            (reply.status(), reply.operation()),
            (INVALID_COMMAND, Operation::NonReplicated as u8),
            "code {code}"
        );
    }
    bench.tried(codes.len());
    // Replicated commands sent on the read path.
    let replicated: Vec<u32> = COMMAND_TABLE
        .iter()
        .filter(|c| c.is_replicated())
        .map(|c| c.code)
        .collect();
    for &code in &replicated {
        let reply = answered(&mut raw, Operation::NonReplicated, code, &[]).await;
        assert_eq!(
            reply.status(),
            INVALID_COMMAND,
            "replicated code {code} as a read"
        );
    }
    bench.tried(replicated.len());
    // Operation bytes: undefined ones and the replica-internal ones.
    let mut operations = 0;
    for byte in 0..=u8::MAX {
        let defined = Operation::is_known_code(byte);
        let internal = matches!(byte, 0 | 64..=68);
        if defined && !internal {
            continue;
        }
        let frame = request_header(
            256,
            raw.client,
            1_000 + u64::from(byte),
            byte,
            raw.session,
            0,
        );
        raw.write(&frame).await;
        let reply = next_frame(&mut raw).await.expect("a reply");
        assert_eq!(reply.status(), INVALID_COMMAND, "operation byte {byte}");
        operations += 1;
    }
    bench.tried(operations);
    // Command bytes other than Request (Reply, Eviction, Prepare, ...).
    for command in [
        0u8,
        1,
        2,
        3,
        4,
        6,
        7,
        Command::Reply as u8,
        Command::Eviction as u8,
        200,
        255,
    ] {
        let mut frame = request_header(
            256,
            raw.client,
            5_000,
            Operation::NonReplicated as u8,
            raw.session,
            PING,
        );
        frame[60] = command;
        raw.write(&frame).await;
        let reply = next_frame(&mut raw).await.expect("a reply");
        assert_eq!(reply.status(), INVALID_COMMAND, "command byte {command}");
        bench.tried(1);
    }
    still_usable(&mut raw, "after unknown commands").await;
    bench.check("unknown command code").await;
    bench.shutdown().await;
}

/// The table's bodies of the idempotent update commands and `DescribeOptions`, sent
/// whole, are accepted: their strict prefixes fail because they are short, not
/// because the body itself is wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_update_and_describe_bodies_are_accepted() {
    let bench = Bench::start().await;
    // The user the table's user bodies name.
    let admin = bench.broker.client().await;
    within(
        "create_user",
        admin.create_user("nobody", "nobody-secret", UserStatus::Active, None),
    )
    .await
    .expect("create_user");
    let mut raw = bench.attacker().await;
    let names = [
        "UpdateStream",
        "UpdateTopic",
        "UpdateUser",
        "DescribeOptions",
    ];
    let mut seen = 0;
    for (name, operation, code, body) in valid_bodies() {
        if !names.contains(&name) {
            continue;
        }
        let reply = answered(&mut raw, operation, code, &body).await;
        assert_eq!(reply.status(), OK, "{name}: the whole body: {reply:?}");
        seen += 1;
    }
    assert_eq!(seen, names.len());
    bench.shutdown().await;
}

/// Every strict prefix of a valid body of every command that takes one: an error
/// reply (never a panic, a hang or a partial effect), and the connection stays
/// usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_of_every_command() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let mut prefixes = 0;
    for (name, operation, code, body) in valid_bodies() {
        for len in 0..body.len() {
            let reply = answered(&mut raw, operation, code, &body[..len]).await;
            assert!(reply.is_reply(), "{name}[..{len}]: {reply:?}");
            assert_ne!(
                reply.status(),
                OK,
                "{name}: the truncated body [..{len}] of {} bytes was accepted",
                body.len()
            );
            assert_eq!(reply.size() as usize, HEADER_SIZE, "{name}[..{len}]");
            prefixes += 1;
        }
    }
    bench.tried(prefixes);
    still_usable(&mut raw, "after truncated bodies").await;
    // Nothing was created or removed by the prefixes.
    let admin = bench.broker.client().await;
    let streams = within("get_streams", admin.get_streams()).await.unwrap();
    assert_eq!(
        streams.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["shop"]
    );
    let topic = within(
        "get_topic",
        admin.get_topic(&named("shop"), &named("orders")),
    )
    .await
    .unwrap()
    .expect("the topic is still there");
    assert_eq!(topic.messages_count, u64::from(SEEDED * PARTITIONS));
    // A body announced by the header that never fully arrives: the connection
    // closes when the peer gives up, and nothing else notices.
    let mut raw = bench.attacker().await;
    raw.write(&request_header(
        256 + 1000,
        raw.client,
        1,
        Operation::SendMessages as u8,
        raw.session,
        0,
    ))
    .await;
    raw.write(&send_body("shop", "orders", 0, &[vec![7; 900]])[..10])
        .await;
    bench.check("truncated body (pending)").await;
    raw.stream.shutdown().await.expect("shutdown write");
    raw.closed().await;
    bench.tried(1);
    bench.check("truncated body").await;
    bench.shutdown().await;
}
