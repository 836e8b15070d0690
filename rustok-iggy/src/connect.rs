//! Opening a connector from configuration.

use std::sync::Arc;

use rustok_iggy_connector::{ConnectorMode, IggyConnector};

use crate::config::IggyConfig;
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
