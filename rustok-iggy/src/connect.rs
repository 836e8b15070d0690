//! Opening a connector from configuration.

use std::sync::Arc;

use rustok_iggy_connector::{ConnectorMode, IggyConnector};

use crate::config_impl::IggyConfig;
use crate::error::Error;

/// Opens the connector `config.mode` asks for and connects it.
///
/// A mode whose cargo feature is not compiled in fails here with
/// [`rustok_iggy_connector::ConnectorError::FeatureDisabled`]. Share the returned connector between every
/// [`crate::Transport`] of the process (the embedded broker holds its data directory
/// exclusively).
pub async fn connect(config: &IggyConfig) -> Result<Arc<dyn IggyConnector>, Error> {
    let connector: Arc<dyn IggyConnector> = match config.mode {
        #[cfg(feature = "embedded")]
        ConnectorMode::Embedded => Arc::new(rustok_iggy_connector::EmbeddedConnector::new()),
        #[cfg(not(feature = "embedded"))]
        ConnectorMode::Embedded => {
            return Err(rustok_iggy_connector::ConnectorError::FeatureDisabled {
                mode: "embedded",
                feature: "embedded",
            }
            .into());
        }
        #[cfg(feature = "remote")]
        ConnectorMode::Remote => Arc::new(rustok_iggy_connector::RemoteConnector::new()),
        #[cfg(not(feature = "remote"))]
        ConnectorMode::Remote => {
            return Err(rustok_iggy_connector::ConnectorError::FeatureDisabled {
                mode: "remote",
                feature: "remote",
            }
            .into());
        }
    };
    connector.connect(&config.connector_config()).await?;
    Ok(connector)
}

#[cfg(test)]
mod tests {
    //! Each mode whose feature is off is refused at connect. These tests exist only in
    //! builds without that feature: `.ci/run` builds `rustok-iggy` with its default
    //! features (no `remote`) and with `--no-default-features --features remote` (no
    //! `embedded`) and runs them there.

    /// Without the `remote` feature, remote mode fails at connect with
    /// `FeatureDisabled`, before any connection is tried.
    #[cfg(not(feature = "remote"))]
    #[tokio::test]
    async fn remote_mode_without_its_feature_fails_at_connect() {
        use rustok_iggy_connector::{ConnectorError, ConnectorMode};

        let config = crate::IggyConfig {
            mode: ConnectorMode::Remote,
            ..crate::IggyConfig::default()
        };
        let Err(err) = super::connect(&config).await else {
            panic!("a remote connector was opened without the `remote` feature");
        };
        assert!(
            matches!(
                err,
                crate::Error::Connector(ConnectorError::FeatureDisabled {
                    mode: "remote",
                    feature: "remote",
                })
            ),
            "{err:?}"
        );
    }

    /// Without the `embedded` feature, embedded mode fails at connect with
    /// `FeatureDisabled`, and nothing is created in the data directory.
    #[cfg(not(feature = "embedded"))]
    #[tokio::test]
    async fn embedded_mode_without_its_feature_fails_at_connect() {
        use rustok_iggy_connector::{ConnectorError, ConnectorMode};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let data_dir = dir.path().join("data");
        let mut config = crate::IggyConfig {
            mode: ConnectorMode::Embedded,
            ..crate::IggyConfig::default()
        };
        config.embedded.data_dir = data_dir.clone();
        let Err(err) = super::connect(&config).await else {
            panic!("an embedded broker was opened without the `embedded` feature");
        };
        assert!(
            matches!(
                err,
                crate::Error::Connector(ConnectorError::FeatureDisabled {
                    mode: "embedded",
                    feature: "embedded",
                })
            ),
            "{err:?}"
        );
        assert!(
            !data_dir.exists(),
            "nothing was created in the data directory"
        );
    }
}
