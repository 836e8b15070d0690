//! One publish through a connector, as every publish of the typed and the envelope
//! layer makes it: sent again after a transient failure as [`PublishRetry`] says, and
//! recorded in the metrics once.

use std::time::Instant;

use rustok_iggy_connector::{
    ConnectorError, IggyConnector, Metrics, PublishReceipt, PublishRequest, metric_names,
};

use crate::error::Error;
use crate::publish_retry::PublishRetry;

/// Publishes `request` through `connector` and records the publish metrics
/// (operation duration; sent messages and bytes on success): what every publish of
/// the typed and the envelope layer goes through.
pub(crate) async fn send(
    connector: &dyn IggyConnector,
    request: PublishRequest,
) -> Result<PublishReceipt, Error> {
    send_with(connector, request, PublishRetry::none()).await
}

/// [`send`], sending the same request again after a transient failure as `retry`
/// says (the metrics count the publish once).
pub(crate) async fn send_with(
    connector: &dyn IggyConnector,
    request: PublishRequest,
    retry: PublishRetry,
) -> Result<PublishReceipt, Error> {
    Ok(send_recorded(connector, request, retry).await?)
}

/// [`send_with`] with the connector's own error.
pub(crate) async fn send_recorded(
    connector: &dyn IggyConnector,
    request: PublishRequest,
    retry: PublishRetry,
) -> Result<PublishReceipt, ConnectorError> {
    let count = request.messages.len() as u64;
    let bytes: u64 = request
        .messages
        .iter()
        .map(|m| m.payload.len() as u64)
        .sum();
    let topic_name = request.topic.clone();
    let started = Instant::now();
    let result = retry
        .publish(request, |request| connector.publish(request))
        .await;
    let metrics = Metrics::global();
    let topic = [("messaging_destination_name", topic_name.as_str())];
    metrics.observe(
        metric_names::OPERATION_DURATION,
        &[("messaging_operation_name", "publish")],
        started.elapsed(),
    );
    if result.is_ok() {
        metrics.add(metric_names::SENT_MESSAGES, &topic, count);
        metrics.add(metric_names::SENT_BYTES, &topic, bytes);
    }
    result
}
