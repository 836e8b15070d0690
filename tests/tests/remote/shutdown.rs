//! Shutdown of the remote connector: it returns only after every group member it
//! opened has left its group, as the server sees it.

use iggy::prelude::{ConsumerGroupClient, Identifier, IggyClient};
use rustok_iggy_connector::{IggyConnector, RemoteConnector, StartPosition};
use tests::conformance::{group, remote_config};
use tests::wire::{PASSWORD, USERNAME, WireBroker};
use tests::{create_topic, names, within};

async fn members(admin: &IggyClient) -> u32 {
    let name = |n: &str| Identifier::named(n).unwrap();
    within(
        "get_consumer_group",
        admin.get_consumer_group(&name("shutdown"), &name("members"), &name("leavers")),
    )
    .await
    .unwrap()
    .expect("the group exists")
    .members_count
}

#[tokio::test]
async fn shutdown_returns_after_every_member_left_its_group() {
    let broker = WireBroker::start().await;
    let admin = broker.client().await;
    let connector = RemoteConnector::new();
    within(
        "connect",
        connector.connect(&remote_config(
            &broker.address.to_string(),
            USERNAME,
            PASSWORD,
        )),
    )
    .await
    .unwrap();
    let (stream, topic) = names("shutdown", "members");
    create_topic(&connector, &stream, &topic, 2).await;
    let mut joined = Vec::new();
    for _ in 0..2 {
        joined.push(
            within(
                "join",
                connector.join_group(&stream, &topic, &group("leavers"), StartPosition::Earliest),
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(members(&admin).await, 2);

    within("shutdown", connector.shutdown()).await.unwrap();
    assert_eq!(
        members(&admin).await,
        0,
        "every member left before shutdown returned"
    );
    drop(joined);
    broker.shutdown().await;
}
