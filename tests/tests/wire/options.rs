//! `DescribeOptions` on the embedded broker's TCP listener, through the official
//! `iggy` 0.11.0 SDK: the option catalog lists the keys the broker honours.

use iggy::prelude::*;
use tests::wire::{WireBroker, anonymous_client, user_client, within};

#[tokio::test]
async fn describe_options_lists_the_keys_this_broker_honours() {
    let broker = WireBroker::start().await;
    let root = broker.client().await;
    let topic = within(
        "describe_options",
        root.describe_options(OptionsScope::Topic),
    )
    .await
    .expect("the topic catalog");
    let keys: Vec<&str> = topic.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["message_expiry", "max_topic_size"]);
    assert!(topic.iter().all(|o| o.kind == HeaderKind::Uint64));
    // Both default to 0 (a little-endian u64): keep for ever, no size cap; the
    // descriptions give the unit and what 0 means.
    for option in &topic {
        assert_eq!(
            option.default_value,
            0u64.to_le_bytes(),
            "{}: the default is 0",
            option.key
        );
    }
    assert!(
        topic[0].description.contains("microseconds"),
        "{:?}",
        topic[0]
    );
    assert!(topic[0].description.contains("0 keeps messages for ever"));
    assert!(topic[1].description.contains("bytes"), "{:?}", topic[1]);
    assert!(topic[1].description.contains("0 is unlimited"));
    // The defaults are what a topic created without options gets.
    let stream = Identifier::named("catalog").unwrap();
    within("create_stream", root.create_stream("catalog"))
        .await
        .expect("stream");
    within(
        "create_topic",
        root.create_topic(&stream, "plain", &TopicCreateOptions::default()),
    )
    .await
    .expect("topic");
    let plain = within(
        "get_topic",
        root.get_topic(&stream, &Identifier::named("plain").unwrap()),
    )
    .await
    .expect("get_topic")
    .expect("the topic");
    assert_eq!(plain.message_expiry, IggyExpiry::NeverExpire);
    assert_eq!(plain.max_topic_size, MaxTopicSize::Unlimited);
    for scope in [OptionsScope::Stream, OptionsScope::User] {
        let catalog = within("describe_options", root.describe_options(scope))
            .await
            .expect("a catalog");
        assert!(catalog.is_empty(), "no option keys: {catalog:?}");
    }
    // Open to every logged-in user, as on the server; not before login.
    let nobody = user_client(&root, broker.address, "nobody", "nobody-secret", None).await;
    assert_eq!(
        within(
            "describe_options",
            nobody.describe_options(OptionsScope::Topic)
        )
        .await
        .expect("a user without permissions")
        .len(),
        2
    );
    let anonymous = anonymous_client(broker.address).await;
    let refused = within(
        "describe_options",
        anonymous.describe_options(OptionsScope::Topic),
    )
    .await;
    assert!(
        matches!(refused, Err(IggyError::Unauthenticated)),
        "before login: {refused:?}"
    );
    broker.shutdown().await;
}
