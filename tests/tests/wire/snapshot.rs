//! `GetSnapshotFile` on the embedded broker's TCP listener, through the official
//! `iggy` 0.11.0 SDK: a zip that opens, with one entry per snapshot type this broker
//! has (the data-directory report, this process, the stats, the configuration),
//! no password in it, and the server's refusals.

use std::io::{Cursor, Read};

use iggy::prelude::*;
use rustok_iggy_connector::Secret;
use rustok_iggy_connector::error_codes::ErrorCode;
use tests::wire::{USERNAME, WireBroker, logged_in_client, user_client, within};

const ROOT_PASSWORD: &str = "root-pw-6d1f0c";
const USER_PASSWORD: &str = "user-pw-93ab27";

/// The entries of `archive`, by name.
fn entries(archive: &[u8]) -> Vec<(String, String)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(archive)).expect("a zip archive");
    let mut out = Vec::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).expect("an entry");
        let mut text = String::new();
        file.read_to_string(&mut text).expect("a text entry");
        out.push((file.name().expect("a name").into_owned(), text));
    }
    out
}

async fn broker() -> (WireBroker, IggyClient) {
    let broker =
        WireBroker::start_with(|c| c.embedded.root_password = Secret::new(ROOT_PASSWORD)).await;
    let root = logged_in_client(broker.address, USERNAME, ROOT_PASSWORD).await;
    within("create_stream", root.create_stream("shop"))
        .await
        .expect("stream");
    within(
        "create_topic",
        root.create_topic(
            &Identifier::named("shop").unwrap(),
            "orders",
            &TopicCreateOptions::default(),
        ),
    )
    .await
    .expect("topic");
    (broker, root)
}

#[tokio::test]
async fn a_snapshot_is_a_zip_of_what_the_broker_has_without_secrets() {
    let (broker, root) = broker().await;
    drop(user_client(&root, broker.address, "alice", USER_PASSWORD, None).await);
    for compression in [SnapshotCompression::Deflated, SnapshotCompression::Stored] {
        let snapshot = within(
            "snapshot",
            root.snapshot(compression, vec![SystemSnapshotType::All]),
        )
        .await
        .expect("a snapshot");
        let entries = entries(&snapshot.0);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "filesystem_overview.txt",
                "process_list.txt",
                "resource_usage.txt",
                "server_config.txt"
            ],
            "{compression}: the broker writes no log files"
        );
        let text = |name: &str| &entries.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(text("filesystem_overview.txt").contains("metadata.json"));
        assert!(text("resource_usage.txt").contains("topic 0 (orders)"));
        assert!(text("server_config.txt").contains("\"root_username\": \"iggy\""));
        assert!(text("process_list.txt").contains("Pid:"));
        for (name, content) in &entries {
            for secret in [ROOT_PASSWORD, USER_PASSWORD] {
                assert!(!content.contains(secret), "{name} holds a password");
            }
        }
    }
    let test = within(
        "snapshot",
        root.snapshot(SnapshotCompression::Stored, vec![SystemSnapshotType::Test]),
    )
    .await
    .expect("a snapshot");
    assert_eq!(
        entries(&test.0),
        vec![("test.txt".to_owned(), "test\n".to_owned())]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn snapshot_refusals_are_the_servers() {
    let (broker, root) = broker().await;
    let code =
        |r: Result<iggy_common::Snapshot, IggyError>| ErrorCode(r.expect_err("refused").as_code());
    assert_eq!(
        code(
            root.snapshot(
                SnapshotCompression::Stored,
                vec![SystemSnapshotType::All, SystemSnapshotType::Test],
            )
            .await
        ),
        ErrorCode::INVALID_COMMAND,
        "all with another type"
    );
    assert_eq!(
        code(
            root.snapshot(SnapshotCompression::Zstd, vec![SystemSnapshotType::Test])
                .await
        ),
        ErrorCode::FEATURE_UNAVAILABLE,
        "a codec this broker does not have"
    );
    // Reading or managing servers is needed.
    let plain = user_client(&root, broker.address, "alice", USER_PASSWORD, None).await;
    assert_eq!(
        code(
            plain
                .snapshot(SnapshotCompression::Stored, vec![SystemSnapshotType::Test])
                .await
        ),
        ErrorCode::UNAUTHORIZED
    );
    let mut reader = Permissions::default();
    reader.global.read_servers = true;
    let reader = user_client(&root, broker.address, "bob", USER_PASSWORD, Some(reader)).await;
    within(
        "snapshot",
        reader.snapshot(SnapshotCompression::Stored, vec![SystemSnapshotType::Test]),
    )
    .await
    .expect("read_servers may take a snapshot");
    broker.shutdown().await;
}
