//! Opening official-SDK clients from a [`RemoteConnectorConfig`], and mapping the SDK's
//! errors onto [`ConnectorError`].

use std::sync::Arc;
use std::time::Duration;

use iggy::prelude::{
    Client, ClientWrapper, IggyClient, IggyDuration, IggyError, NonZeroIggyDuration,
    PersonalAccessTokenClient, QuicClient, QuicClientConfig, QuicClientReconnectionConfig,
    TcpClient, TcpClientConfig, TcpClientReconnectionConfig, UserClient,
};

use crate::config::{RemoteConnectorConfig, RemoteProtocol};
use crate::error::{ConnectorError, ErrorKind, sdk_error_kind};
use crate::error_codes::ErrorCode;

/// An SDK error as a [`ConnectorError`], by its kind ([`sdk_error_kind`], the rule
/// [`ConnectorError::kind`] uses too): refused credentials become
/// [`ConnectorError::Auth`], a lost or impossible connection
/// [`ConnectorError::Connection`], anything else [`ConnectorError::Iggy`]. The
/// `IggyError` is kept as the source in every case.
pub(super) fn sdk_error(context: impl Into<String>, source: IggyError) -> ConnectorError {
    let context = context.into();
    match sdk_error_kind(&source) {
        ErrorKind::Unauthorized => ConnectorError::Auth {
            message: context,
            source: Some(Box::new(source)),
        },
        ErrorKind::Transient => ConnectorError::Connection {
            message: context,
            source: Some(Box::new(source)),
        },
        _ => ConnectorError::Iggy { context, source },
    }
}

/// Whether `error` means the server answered that this client is not (or no
/// longer) a member of the group, or no longer owns the partition it asked for.
pub(super) fn is_membership_error(error: &IggyError) -> bool {
    matches!(
        ErrorCode(error.as_code()),
        ErrorCode::CONSUMER_GROUP_MEMBER_NOT_FOUND | ErrorCode::CONSUMER_GROUP_PARTITION_NOT_OWNED
    )
}

/// Whether `error` is a "not found" answer for a stream (by id or name).
pub(super) fn is_stream_not_found(error: &IggyError) -> bool {
    matches!(
        ErrorCode(error.as_code()),
        ErrorCode::STREAM_ID_NOT_FOUND | ErrorCode::STREAM_NAME_NOT_FOUND
    )
}

/// Whether `error` is a "not found" answer for a topic (by id or name).
pub(super) fn is_topic_not_found(error: &IggyError) -> bool {
    matches!(
        ErrorCode(error.as_code()),
        ErrorCode::TOPIC_ID_NOT_FOUND | ErrorCode::TOPIC_NAME_NOT_FOUND
    )
}

/// Whether `error` is a "not found" answer for a consumer group (by id or name).
pub(super) fn is_group_not_found(error: &IggyError) -> bool {
    matches!(
        ErrorCode(error.as_code()),
        ErrorCode::CONSUMER_GROUP_ID_NOT_FOUND | ErrorCode::CONSUMER_GROUP_NAME_NOT_FOUND
    )
}

/// Whether `error` says that the resource being created exists already.
pub(super) fn is_already_exists(error: &IggyError) -> bool {
    matches!(
        ErrorCode(error.as_code()),
        ErrorCode::STREAM_NAME_ALREADY_EXISTS
            | ErrorCode::TOPIC_NAME_ALREADY_EXISTS
            | ErrorCode::CONSUMER_GROUP_NAME_ALREADY_EXISTS
    )
}

/// Whether `error` says that the partition does not exist.
pub(super) fn is_partition_not_found(error: &IggyError) -> bool {
    ErrorCode(error.as_code()) == ErrorCode::PARTITION_NOT_FOUND
}

fn non_zero(field: &str, millis: u64) -> Result<NonZeroIggyDuration, ConnectorError> {
    NonZeroIggyDuration::new(Duration::from_millis(millis))
        .map_err(|_| ConnectorError::config(format!("remote.{field}"), "must be at least 1"))
}

/// The SDK transport for one server address.
fn transport(
    config: &RemoteConnectorConfig,
    address: &str,
) -> Result<ClientWrapper, ConnectorError> {
    let heartbeat_interval = non_zero("heartbeat_interval_ms", config.heartbeat_interval_ms)?;
    let interval = non_zero(
        "reconnection_interval_ms",
        config.reconnection_interval_ms.max(1),
    )?;
    // Redialing the last endpoint is paced by the retry interval only: a broker that
    // restarts must be reachable again as soon as it listens.
    let reestablish_after =
        IggyDuration::new(Duration::from_millis(config.reconnection_interval_ms));
    let enabled = config.reconnection_retries > 0;
    match config.protocol {
        RemoteProtocol::Tcp => {
            let tcp = TcpClientConfig {
                server_address: address.to_owned(),
                tls_enabled: config.tls_enabled,
                tls_domain: config.tls_domain.clone().unwrap_or_default(),
                tls_ca_file: config
                    .tls_ca_file
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
                tls_validate_certificate: true,
                reconnection: TcpClientReconnectionConfig {
                    enabled,
                    max_retries: Some(config.reconnection_retries),
                    interval,
                    reestablish_after,
                },
                heartbeat_interval,
                nodelay: true,
                ..TcpClientConfig::default()
            };
            let client = TcpClient::create(Arc::new(tcp))
                .map_err(|e| sdk_error(format!("create a TCP client for {address}"), e))?;
            Ok(ClientWrapper::Tcp(client))
        }
        RemoteProtocol::Quic => {
            let server_name = config.tls_domain.clone().unwrap_or_else(|| {
                address
                    .rsplit_once(':')
                    .map_or(address, |(host, _)| host)
                    .trim_matches(['[', ']'])
                    .to_owned()
            });
            let quic = QuicClientConfig {
                server_address: address.to_owned(),
                server_name,
                reconnection: QuicClientReconnectionConfig {
                    enabled,
                    max_retries: Some(config.reconnection_retries),
                    interval,
                    reestablish_after,
                },
                heartbeat_interval,
                validate_certificate: true,
                ..QuicClientConfig::default()
            };
            let client = QuicClient::create(Arc::new(quic))
                .map_err(|e| sdk_error(format!("create a QUIC client for {address}"), e))?;
            Ok(ClientWrapper::Quic(client))
        }
        RemoteProtocol::Http => Err(ConnectorError::config(
            "remote.protocol",
            "`http` is not supported; allowed: tcp, quic",
        )),
    }
}

/// Connects and signs in (personal access token when set, else user name and
/// password). The SDK remembers the sign-in and repeats it after every reconnect.
async fn connect_and_login(
    client: &IggyClient,
    config: &RemoteConnectorConfig,
    address: &str,
) -> Result<(), ConnectorError> {
    client
        .connect()
        .await
        .map_err(|e| sdk_error(format!("connect to {address}"), e))?;
    let login = if config.personal_access_token.is_empty() {
        client
            .login_user(&config.username, config.password.expose())
            .await
    } else {
        client
            .login_with_personal_access_token(config.personal_access_token.expose())
            .await
    };
    login.map(|_| ()).map_err(|e| {
        let who = if config.personal_access_token.is_empty() {
            format!("user {:?}", config.username)
        } else {
            "the personal access token".to_owned()
        };
        match sdk_error(format!("sign in to {address} as {who}"), e) {
            // A refused sign-in is an authentication failure whatever code the
            // server picked for it.
            ConnectorError::Iggy { context, source } => ConnectorError::Auth {
                message: context,
                source: Some(Box::new(source)),
            },
            other => other,
        }
    })
}

/// A connected, signed-in client, and the address it reached.
///
/// `addresses` are tried in order, each for at most `connect_timeout_ms` (the SDK
/// redials a refused address within that time). Refused credentials end the search
/// at once ([`ConnectorError::Auth`]): every node of a cluster would refuse them
/// alike. TLS settings that cannot work are [`ConnectorError::Config`].
pub(super) async fn open(
    config: &RemoteConnectorConfig,
    addresses: &[String],
) -> Result<(IggyClient, String), ConnectorError> {
    let timeout = Duration::from_millis(config.connect_timeout_ms);
    let mut failures = Vec::with_capacity(addresses.len());
    let mut last_source: Option<ConnectorError> = None;
    for address in addresses {
        let client = IggyClient::create(transport(config, address)?, None, None);
        match tokio::time::timeout(timeout, connect_and_login(&client, config, address)).await {
            Ok(Ok(())) => {
                tracing::info!(%address, "connected to the Iggy server");
                return Ok((client, address.clone()));
            }
            Ok(Err(error @ ConnectorError::Auth { .. })) => {
                shutdown_quietly(&client).await;
                return Err(error);
            }
            Ok(Err(ConnectorError::Iggy { source, .. }))
                if matches!(
                    ErrorCode(source.as_code()),
                    ErrorCode::INVALID_TLS_DOMAIN
                        | ErrorCode::INVALID_TLS_CERTIFICATE_PATH
                        | ErrorCode::INVALID_TLS_CERTIFICATE
                        | ErrorCode::FAILED_TO_ADD_CERTIFICATE
                ) =>
            {
                shutdown_quietly(&client).await;
                let field = if ErrorCode(source.as_code()) == ErrorCode::INVALID_TLS_DOMAIN {
                    "remote.tls_domain"
                } else {
                    "remote.tls_ca_file"
                };
                return Err(ConnectorError::config(field, source.to_string()));
            }
            Ok(Err(error)) => {
                tracing::warn!(%address, %error, "could not connect to the Iggy server");
                failures.push(format!("{address}: {error}"));
                last_source = Some(error);
                shutdown_quietly(&client).await;
            }
            Err(_elapsed) => {
                tracing::warn!(%address, ?timeout, "connecting to the Iggy server timed out");
                failures.push(format!(
                    "{address}: could not connect and sign in within {timeout:?}"
                ));
                last_source = Some(ConnectorError::Timeout {
                    what: format!("connect to {address}"),
                    after: timeout,
                });
                // The connect future was cancelled; the client is dropped with it.
            }
        }
    }
    Err(ConnectorError::Connection {
        message: format!(
            "no Iggy server could be reached ({})",
            if failures.is_empty() {
                "no address configured".to_owned()
            } else {
                failures.join("; ")
            }
        ),
        source: last_source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
    })
}

/// Shuts a client down, logging instead of failing (used on paths that already
/// report another error, or at shutdown).
pub(super) async fn shutdown_quietly(client: &IggyClient) {
    if let Err(error) = client.shutdown().await {
        tracing::debug!(%error, "closing an Iggy client failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        assert!(matches!(
            sdk_error("x", IggyError::InvalidCredentials),
            ConnectorError::Auth { .. }
        ));
        assert!(matches!(
            sdk_error("x", IggyError::CannotEstablishConnection),
            ConnectorError::Connection { .. }
        ));
        let other = sdk_error("x", IggyError::InvalidFormat);
        assert!(matches!(other, ConnectorError::Iggy { .. }));
        assert!(std::error::Error::source(&other).is_some());
        assert!(is_membership_error(
            &IggyError::ConsumerGroupPartitionNotOwned(0, 0)
        ));
        assert!(!is_membership_error(&IggyError::InvalidFormat));
    }

    #[test]
    fn http_and_zero_heartbeat_are_refused() {
        let mut config = RemoteConnectorConfig {
            protocol: RemoteProtocol::Http,
            ..RemoteConnectorConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("remote.protocol") && err.contains("tcp"),
            "{err}"
        );
        config.protocol = RemoteProtocol::Tcp;
        config.heartbeat_interval_ms = 0;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("remote.heartbeat_interval_ms"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_address_fails_within_the_timeout() {
        // A port that was free a moment ago: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let config = RemoteConnectorConfig {
            addresses: vec![format!("127.0.0.1:{port}")],
            password: crate::Secret::new("secret"),
            connect_timeout_ms: 300,
            reconnection_interval_ms: 50,
            ..RemoteConnectorConfig::default()
        };
        // The bound is generous: the point is that the attempt gives up by itself.
        let err = tokio::time::timeout(Duration::from_secs(30), open(&config, &config.addresses))
            .await
            .expect("the connect attempt must give up after connect_timeout_ms")
            .unwrap_err();
        assert!(matches!(err, ConnectorError::Connection { .. }), "{err:?}");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
    }
}
