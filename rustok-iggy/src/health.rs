//! Health of a transport: connection, storage, topology, consumer lag, dead letters,
//! each a [`HealthCheck`] of a [`HealthReport`] judged against [`HealthThresholds`].
//! A check only reads: it never moves a committed offset or settles a dead letter.

use rustok_iggy_connector::error_chain;

use rustok_iggy_connector::{
    ConnectorError, GroupName, IggyConnector, Metrics, StreamName, TopicName, metric_names,
};

use crate::dead_letter::open_letters;
use crate::error::Error;
use crate::event_impl::IggyEvent;
use crate::transport::Transport;

mod report;

pub use report::{HealthCheck, HealthReport, HealthStatus, HealthThresholds};

impl<E: IggyEvent> Transport<E> {
    /// Checks, in order: the connection (a ping the broker must answer within
    /// `thresholds.ping_timeout`), the storage (no partition of the topic or its
    /// dead-letter topic refuses writes), that the topic exists, the lag of consumer
    /// group `group` per partition, and the open letters of the dead-letter topic;
    /// sets the `rustok_iggy_consumer_lag` gauges.
    ///
    /// A failure of the broker is a report with an `Unhealthy` check, not an error:
    /// this fails only for an invalid group name. When the connection check fails,
    /// the later checks are not made.
    pub async fn health(
        &self,
        group: &str,
        thresholds: &HealthThresholds,
    ) -> Result<HealthReport, Error> {
        check(
            self.connector().as_ref(),
            self.stream(),
            self.topic(),
            group,
            thresholds,
        )
        .await
    }
}

fn unhealthy(name: &'static str, detail: String) -> HealthCheck {
    HealthCheck {
        name,
        status: HealthStatus::Unhealthy,
        detail,
    }
}

/// The health of `group` on `stream`/`topic` (see [`Transport::health`]).
pub(crate) async fn check(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    group: &str,
    thresholds: &HealthThresholds,
) -> Result<HealthReport, Error> {
    let group_name = GroupName::new(group)?;
    let dlq = thresholds.dead_letter.topic_of(topic);
    let mut checks = Vec::new();
    let mut lag = Vec::new();

    let ping = match connector.ping(thresholds.ping_timeout).await {
        Ok(ping) => ping,
        Err(e) => {
            checks.push(unhealthy(
                "connection",
                format!("{} mode: no answer: {}", connector.mode(), error_chain(&e)),
            ));
            return Ok(HealthReport::new(checks, lag));
        }
    };
    checks.push(HealthCheck {
        name: "connection",
        status: HealthStatus::Healthy,
        detail: format!(
            "{} mode, answered in {:?}",
            connector.mode(),
            ping.round_trip
        ),
    });
    let (ours, others): (Vec<_>, Vec<_>) = ping
        .unwritable
        .iter()
        .partition(|p| &p.stream == stream && (&p.topic == topic || p.topic == dlq));
    let list = |partitions: &[&rustok_iggy_connector::UnwritablePartition]| {
        partitions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    checks.push(if !ours.is_empty() {
        unhealthy(
            "storage",
            format!(
                "refusing writes until the broker is reopened: {}",
                list(&ours)
            ),
        )
    } else if !others.is_empty() {
        HealthCheck {
            name: "storage",
            status: HealthStatus::Degraded,
            detail: format!(
                "other topics' partitions refuse writes until the broker is reopened: {}",
                list(&others)
            ),
        }
    } else {
        HealthCheck {
            name: "storage",
            status: HealthStatus::Healthy,
            detail: "every partition takes writes".into(),
        }
    });

    let info = match connector.topic_info(stream, topic).await {
        Ok(Some(info)) => info,
        Ok(None) => {
            checks.push(unhealthy(
                "topology",
                format!("topic {stream}/{topic} is missing"),
            ));
            return Ok(HealthReport::new(checks, lag));
        }
        Err(e) => {
            checks.push(unhealthy(
                "topology",
                format!("topic {stream}/{topic}: {}", error_chain(&e)),
            ));
            return Ok(HealthReport::new(checks, lag));
        }
    };
    checks.push(HealthCheck {
        name: "topology",
        status: HealthStatus::Healthy,
        detail: format!("{stream}/{topic} with {} partitions", info.partitions),
    });

    let committed = match connector
        .committed_offsets(stream, topic, &group_name)
        .await
    {
        Ok(committed) => Some(committed),
        Err(ConnectorError::GroupNotFound { .. }) => Some(vec![None; info.partitions as usize]),
        Err(e) => {
            checks.push(unhealthy(
                "lag",
                format!(
                    "group {group}: committed offsets unreadable: {}",
                    error_chain(&e)
                ),
            ));
            None
        }
    };
    if let Some(committed) = committed {
        for (partition, next) in info.next_offsets.iter().enumerate() {
            let done = committed
                .get(partition)
                .copied()
                .flatten()
                .map_or(0, |c| c + 1);
            let behind = next.saturating_sub(done);
            Metrics::global().set(
                metric_names::CONSUMER_LAG,
                &[
                    ("messaging_destination_name", topic.as_str()),
                    ("messaging_consumer_group_name", group),
                    ("partition", &partition.to_string()),
                ],
                behind,
            );
            lag.push(behind);
        }
        let worst = lag.iter().copied().max().unwrap_or(0);
        let status = if worst > thresholds.lag_unhealthy {
            HealthStatus::Unhealthy
        } else if worst > thresholds.lag_degraded {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        checks.push(HealthCheck {
            name: "lag",
            status,
            detail: format!(
                "group {group}: max lag {worst} (degraded above {}, unhealthy above {})",
                thresholds.lag_degraded, thresholds.lag_unhealthy
            ),
        });
    }

    checks.push(match open_letters(connector, stream, &dlq).await {
        Ok(depth) => HealthCheck {
            name: "dead_letters",
            status: if depth > thresholds.dead_letters_degraded {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            },
            detail: format!("{depth} open in {dlq}"),
        },
        Err(e) => unhealthy(
            "dead_letters",
            format!("{dlq} unreadable: {}", error_chain(&e)),
        ),
    });
    Ok(HealthReport::new(checks, lag))
}
