//! Conformance cases of the connection itself (remote targets; the embedded target
//! reports them as not applicable): credentials, tokens, addresses, TLS settings.

use iggy::prelude::{Client, IggyClient, IggyExpiry, PersonalAccessTokenClient, UserClient};
use rustok_iggy_connector::{
    ConnectorError, IggyConnector, RemoteConnector, Secret, TopicName, TopicSpec,
};
use tests::conformance::{Harness, open_remote, remote_config};
use tests::within;

/// Refused credentials are an `Auth` error (remote targets only).
pub(crate) async fn wrong_password_is_an_auth_error(h: Harness) {
    let Some(config) = h.remote.clone() else {
        println!("not applicable: the embedded connector has no credentials");
        return h.finish().await;
    };
    let mut wrong = config.clone();
    wrong.remote.password = Secret::new("not-the-password");
    let connector = RemoteConnector::new();
    let err = within("connect with a wrong password", connector.connect(&wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the SDK error is kept"
    );
    assert!(!connector.is_connected());
    let mut unknown_user = config;
    unknown_user.remote.username = "nobody-here".into();
    let err = within(
        "connect as an unknown user",
        connector.connect(&unknown_user),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    h.finish().await;
}

/// A personal access token signs in instead of user name and password; a wrong one
/// is an `Auth` error (remote targets only).
pub(crate) async fn a_personal_access_token_signs_in(h: Harness) {
    let Some(config) = h.remote.clone() else {
        println!("not applicable: the embedded connector has no credentials");
        return h.finish().await;
    };
    let admin = IggyClient::builder()
        .with_tcp()
        .with_server_address(config.remote.addresses[0].clone())
        .build()
        .unwrap();
    within("connect", admin.connect()).await.unwrap();
    within(
        "login",
        admin.login_user(&config.remote.username, config.remote.password.expose()),
    )
    .await
    .unwrap();
    let name = format!(
        "conformance-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let token = within(
        "create a token",
        admin.create_personal_access_token(&name, IggyExpiry::NeverExpire),
    )
    .await
    .unwrap()
    .token;

    let mut with_token = config.clone();
    with_token.remote.username = String::new();
    with_token.remote.password = Secret::default();
    with_token.remote.personal_access_token = Secret::new(token);
    let connector = open_remote(&with_token).await;
    let stream = {
        let mut h = h;
        let stream = h.stream("token");
        let info = within(
            "create a topic with the token's session",
            connector.ensure_topic(&TopicSpec::new(
                stream.clone(),
                TopicName::new("t").unwrap(),
                1,
            )),
        )
        .await
        .unwrap();
        assert_eq!(info.partitions, 1);
        within("shutdown", connector.shutdown()).await.unwrap();

        let mut wrong = with_token.clone();
        wrong.remote.personal_access_token = Secret::new("not-a-token-of-this-server");
        let err = within(
            "connect with a wrong token",
            RemoteConnector::new().connect(&wrong),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
        h
    };
    let _ = within(
        "delete the token",
        admin.delete_personal_access_token(&name),
    )
    .await;
    let _ = admin.shutdown().await;
    stream.finish().await;
}

/// An address where nothing listens is a `Connection` error within the connect
/// timeout; with several addresses the first that answers is used.
pub(crate) async fn unreachable_addresses_are_connection_errors_within_the_timeout(h: Harness) {
    let Some(config) = h.remote.clone() else {
        println!("not applicable: the embedded connector opens no connection");
        return h.finish().await;
    };
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let mut unreachable = config.clone();
    unreachable.remote.addresses = vec![dead.clone()];
    unreachable.remote.connect_timeout_ms = 500;
    let connector = RemoteConnector::new();
    let err = within("connect to nothing", connector.connect(&unreachable))
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Connection { .. }), "{err:?}");
    assert!(err.to_string().contains(&dead), "{err}");
    assert!(err.is_transient());

    let live = config.remote.addresses[0].clone();
    let mut fallback = unreachable.clone();
    fallback.remote.addresses = vec![dead, live.clone()];
    let connector = RemoteConnector::new();
    within(
        "connect through the second address",
        connector.connect(&fallback),
    )
    .await
    .unwrap();
    assert_eq!(connector.server_address().unwrap(), live);
    within("shutdown", connector.shutdown()).await.unwrap();
    // The whole configuration still works through the trait object too.
    let again = open_remote(&remote_config(
        &live,
        &config.remote.username,
        config.remote.password.expose(),
    ))
    .await;
    within("shutdown", again.shutdown()).await.unwrap();
    h.finish().await;
}

/// TLS settings that cannot work (a CA file that does not exist) are a
/// configuration error naming the field (remote targets only).
pub(crate) async fn tls_settings_that_cannot_work_are_configuration_errors(h: Harness) {
    let Some(config) = h.remote.clone() else {
        println!("not applicable: the embedded connector opens no connection");
        return h.finish().await;
    };
    let mut tls = config;
    tls.remote.tls_enabled = true;
    tls.remote.tls_ca_file = Some(std::path::PathBuf::from("/nonexistent/rustok-iggy/ca.pem"));
    let err = within(
        "connect with a missing CA file",
        RemoteConnector::new().connect(&tls),
    )
    .await
    .unwrap_err();
    match &err {
        ConnectorError::Config { field, .. } => assert_eq!(field, "remote.tls_ca_file"),
        other => panic!("expected a Config error, got {other:?}"),
    }
    h.finish().await;
}
