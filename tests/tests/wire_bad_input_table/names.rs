//! Names and string identifiers that are not UTF-8, in every command that carries one.

use iggy::prelude::{StreamClient, UserClient};
use iggy_binary_protocol::consensus::{EvictionReason, Operation};
use iggy_binary_protocol::requests::users::CreateUserRequest;
use iggy_binary_protocol::{WireEncode, WireName, WireOptions};
use tests::wire::table::*;
use tests::wire::{PASSWORD, USERNAME, within};

/// Names and string identifiers that are not UTF-8 (invalid bytes, overlong
/// encodings, surrogates, cut multi-byte sequences) in every command that carries
/// one: `InvalidFormat` (or a malformed-login eviction), and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_names_and_identifiers() {
    let mut bench = Bench::start().await;
    let mut raw = bench.attacker().await;
    let bad_names: [&[u8]; 6] = [
        &[0xFF, 0xFE],
        &[0xC0, 0xAF],             // overlong '/'
        &[0xED, 0xA0, 0x80],       // a UTF-16 surrogate
        &[b'a', b'b', 0xE2, 0x82], // a cut 3-byte sequence
        &[0xF8, 0x88, 0x80, 0x80, 0x80],
        &[b'o', b'k', 0x80],
    ];
    let mut tried = 0;
    for bad in bad_names {
        let name_field = |bad: &[u8]| {
            let mut v = vec![u8::try_from(bad.len()).unwrap()];
            v.extend_from_slice(bad);
            v
        };
        let ident_field = |bad: &[u8]| {
            let mut v = vec![2u8, u8::try_from(bad.len()).unwrap()];
            v.extend_from_slice(bad);
            v
        };
        let shop = wid("shop").to_bytes().to_vec();
        let orders = wid("orders").to_bytes().to_vec();
        let mut cases: Vec<(&str, Operation, u32, Vec<u8>)> = Vec::new();
        // CreateStream: [name][options].
        cases.push((
            "CreateStream",
            Operation::CreateStream,
            202,
            name_field(bad),
        ));
        // CreateTopic: [stream][partitions][name][options].
        let mut topic = shop.clone();
        topic.extend_from_slice(&1u32.to_le_bytes());
        topic.extend(name_field(bad));
        cases.push(("CreateTopic", Operation::CreateTopic, 302, topic));
        // CreateConsumerGroup: [stream][topic][name].
        let mut group = shop.clone();
        group.extend_from_slice(&orders);
        group.extend(name_field(bad));
        cases.push((
            "CreateConsumerGroup",
            Operation::CreateConsumerGroup,
            602,
            group,
        ));
        // CreateUser: [username][password...]: a bad name with a good password.
        let mut user = name_field(bad);
        user.extend_from_slice(
            &CreateUserRequest {
                username: WireName::new("xyz").unwrap(),
                password: "secret-password".into(),
                status: 1,
                permissions: None,
                options: WireOptions::empty(),
            }
            .to_bytes()[4..],
        );
        cases.push(("CreateUser", Operation::CreateUser, 33, user));
        // CreatePersonalAccessToken: [name][expiry].
        let mut token = name_field(bad);
        token.extend_from_slice(&0u64.to_le_bytes());
        cases.push((
            "CreatePersonalAccessToken",
            Operation::CreatePersonalAccessToken,
            42,
            token,
        ));
        // String identifiers in reads and writes.
        cases.push(("GetStream", Operation::NonReplicated, 200, ident_field(bad)));
        let mut get_topic = shop.clone();
        get_topic.extend(ident_field(bad));
        cases.push(("GetTopic", Operation::NonReplicated, 300, get_topic));
        cases.push((
            "DeleteStream",
            Operation::DeleteStream,
            203,
            ident_field(bad),
        ));
        cases.push(("GetUser", Operation::NonReplicated, 31, ident_field(bad)));
        // SendMessages whose stream identifier is swapped for the bad bytes.
        let good = send_body("shop", "orders", 0, &[b"x".to_vec()]);
        let metadata_len = u32::from_le_bytes(good[..4].try_into().unwrap()) as usize;
        let mut metadata = ident_field(bad);
        metadata.extend_from_slice(&good[4 + shop.len()..4 + metadata_len]);
        let mut send = u32::try_from(metadata.len())
            .unwrap()
            .to_le_bytes()
            .to_vec();
        send.extend(metadata);
        send.extend_from_slice(&good[4 + metadata_len..]);
        cases.push(("SendMessages", Operation::SendMessages, 101, send));
        // PollMessages whose topic identifier is bad: [consumer][stream][topic]...
        let good = poll_body(consumer(1), "shop", "orders", Some(0), 0, 1);
        let consumer_len = consumer(1).to_bytes().len();
        let mut poll = good[..consumer_len + shop.len()].to_vec();
        poll.extend(ident_field(bad));
        poll.extend_from_slice(&good[consumer_len + shop.len() + orders.len()..]);
        cases.push((
            "PollMessages",
            Operation::NonReplicated,
            POLL_MESSAGES,
            poll,
        ));
        for (name, operation, code, body) in cases {
            let reply = answered(&mut raw, operation, code, &body).await;
            assert_eq!(
                reply.status(),
                INVALID_FORMAT,
                "{name} with {bad:02x?}: {reply:?}"
            );
            tried += 1;
        }
        // Login with a bad user name or a bad password: a malformed login.
        let mut anonymous = bench.anonymous().await;
        for body in [
            login_body_bytes(bad, PASSWORD.as_bytes()),
            login_body_bytes(USERNAME.as_bytes(), bad),
        ] {
            let reply = answered(&mut anonymous, Operation::Register, 40, &body).await;
            assert!(reply.is_eviction(), "{reply:?}");
            assert_eq!(
                reply.eviction_reason(),
                EvictionReason::MalformedLogin as u8,
                "login with {bad:02x?}"
            );
            tried += 1;
        }
    }
    bench.tried(tried);
    still_usable(&mut raw, "after invalid UTF-8").await;
    let admin = bench.broker.client().await;
    let streams = within("get_streams", admin.get_streams()).await.unwrap();
    assert_eq!(streams.len(), 1, "no stream with a garbled name");
    let users = within("get_users", admin.get_users()).await.unwrap();
    assert_eq!(users.len(), 1, "no user with a garbled name");
    bench.check("invalid UTF-8 name").await;
    bench.shutdown().await;
}
