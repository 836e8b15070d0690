//! User headers sent through the official `iggy` 0.11.0 SDK: a message whose
//! user-header bytes do not decode (the SDK sends them as given) is refused at
//! `SendMessages` with the Iggy code for the field at fault, and nothing of its batch
//! is stored; well-formed headers are stored and read back.

use bytes::Bytes;
use iggy::prelude::*;
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::{WireBroker, within};

fn id(name: &str) -> Identifier {
    Identifier::named(name).expect("a valid identifier")
}

/// A message with `headers` as its raw user-header bytes.
fn with_raw_headers(message_id: u128, headers: &[u8]) -> IggyMessage {
    let mut message = IggyMessage::builder()
        .id(message_id)
        .payload(Bytes::from_static(b"payload"))
        .build()
        .expect("a message");
    message.header.user_headers_length = u32::try_from(headers.len()).unwrap();
    message.user_headers = Some(Bytes::copy_from_slice(headers));
    message
}

/// `[kind u8][len u32][bytes]`.
fn field(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A well-formed `key: value` string pair (kind 2 = string).
fn pair(key: &str, value: &str) -> Vec<u8> {
    let mut out = field(2, key.as_bytes());
    out.extend(field(2, value.as_bytes()));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_user_headers_are_refused_and_nothing_is_stored() {
    let broker = WireBroker::start().await;
    let client = broker.client().await;
    within("create_stream", client.create_stream("shop"))
        .await
        .expect("stream");
    let options = TopicCreateOptions {
        partitions_count: Some(1),
        ..Default::default()
    };
    within(
        "create_topic",
        client.create_topic(&id("shop"), "orders", &options),
    )
    .await
    .expect("topic");
    let partitioning = Partitioning::partition_id(0);
    let send = |messages: Vec<IggyMessage>| {
        let client = &client;
        let partitioning = &partitioning;
        async move {
            let mut messages = messages;
            within(
                "send_messages",
                client.send_messages(&id("shop"), &id("orders"), partitioning, &mut messages),
            )
            .await
        }
    };

    // A valid message first: it must survive the refusals after it.
    send(vec![with_raw_headers(1, &pair("tenant", "acme"))])
        .await
        .expect("well-formed headers are accepted");

    let mut truncated_key = field(2, b"key");
    truncated_key.truncate(6); // the length says 3, one byte is there
    let mut long_value = field(2, b"key");
    long_value.extend(field(2, &[b'v'; 256]));
    let mut zero_kind_value = field(2, b"key");
    zero_kind_value.extend(field(0, b"value"));
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "a key cut short",
            truncated_key,
            ErrorCode::INVALID_HEADER_KEY,
        ),
        (
            "a key of kind 0",
            field(0, b"key"),
            ErrorCode::INVALID_HEADER_KEY,
        ),
        ("an empty key", field(2, b""), ErrorCode::INVALID_HEADER_KEY),
        (
            "a key without a value",
            field(2, b"key"),
            ErrorCode::INVALID_HEADER_VALUE,
        ),
        (
            "a value of 256 bytes",
            long_value,
            ErrorCode::INVALID_HEADER_VALUE,
        ),
        (
            "a value of kind 0",
            zero_kind_value,
            ErrorCode::INVALID_HEADER_VALUE,
        ),
        (
            "a stray byte after a pair",
            [pair("a", "b"), vec![7]].concat(),
            ErrorCode::INVALID_HEADER_KEY,
        ),
    ];
    for (what, headers, expected) in &cases {
        let error = send(vec![with_raw_headers(2, headers)])
            .await
            .expect_err(what);
        assert_eq!(ErrorCode(error.as_code()), *expected, "{what}: {error}");
        // A good message in the same batch does not get through either.
        let error = send(vec![
            with_raw_headers(3, &pair("ok", "yes")),
            with_raw_headers(4, headers),
        ])
        .await
        .expect_err(what);
        assert_eq!(ErrorCode(error.as_code()), *expected, "{what} in a batch");
    }

    // Only the first message was stored, and it reads back with its header.
    let topic = within("get_topic", client.get_topic(&id("shop"), &id("orders")))
        .await
        .expect("get_topic")
        .expect("the topic");
    assert_eq!(
        topic.messages_count, 1,
        "nothing of a refused batch is stored"
    );
    let polled = within(
        "poll_messages",
        client.poll_messages(
            &id("shop"),
            &id("orders"),
            Some(0),
            &Consumer::new(Identifier::numeric(1).unwrap()),
            &PollingStrategy::offset(0),
            100,
            false,
        ),
    )
    .await
    .expect("poll");
    assert_eq!(polled.messages.len(), 1);
    assert_eq!(polled.messages[0].header.id, 1);
    let headers = polled.messages[0]
        .user_headers_map()
        .expect("headers")
        .expect("some headers");
    let tenant = headers
        .get(&HeaderKey::try_from("tenant").unwrap())
        .expect("the tenant header");
    assert_eq!(tenant.as_str().unwrap(), "acme");
    broker.shutdown().await;
}
