//! Health of a transport: connection, topology, consumer lag, dead letters.

use rustok_iggy_connector::{
    GroupName, IggyConnector, Metrics, StreamName, TopicName, metric_names,
};
use serde::Serialize;

use crate::dead_letter::{DeadLetterConfig, default_topic, open_letters};
use crate::error::Error;
use crate::event::IggyEvent;
use crate::transport::Transport;

/// Overall or per-check status, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// All good.
    Healthy,
    /// Working, but a threshold is passed (lag, dead letters).
    Degraded,
    /// Not working (no connection, topic missing, lag past the critical threshold).
    Unhealthy,
}

/// One check behind a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// `connection`, `topology`, `lag`, `dead_letters`.
    pub name: &'static str,
    /// Its status.
    pub status: HealthStatus,
    /// What was measured.
    pub detail: String,
}

/// The result of [`Transport::health`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// The worst status of the checks.
    pub status: HealthStatus,
    /// The checks.
    pub checks: Vec<HealthCheck>,
    /// Lag per partition (events not yet committed by the group).
    pub lag: Vec<u64>,
}

/// When a check turns `Degraded` or `Unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthThresholds {
    /// Lag of any partition above which the group is `Degraded`.
    pub lag_degraded: u64,
    /// Lag of any partition above which the group is `Unhealthy`.
    pub lag_unhealthy: u64,
    /// Dead letters above which the transport is `Degraded`.
    pub dead_letters_degraded: u64,
    /// The dead-letter topic to look at.
    pub dead_letter: DeadLetterConfig,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            lag_degraded: 1_000,
            lag_unhealthy: 100_000,
            dead_letters_degraded: 0,
            dead_letter: DeadLetterConfig::default(),
        }
    }
}

impl<E: IggyEvent> Transport<E> {
    /// Checks the connection, that the topic exists, the lag of consumer group `group`
    /// per partition, and the depth of the dead-letter topic; sets the
    /// `rustok_iggy_consumer_lag` gauges.
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

/// The health of `group` on `stream`/`topic` (see [`Transport::health`]).
pub(crate) async fn check(
    connector: &dyn IggyConnector,
    stream: &StreamName,
    topic: &TopicName,
    group: &str,
    thresholds: &HealthThresholds,
) -> Result<HealthReport, Error> {
    {
        let mut checks = Vec::new();
        let mut lag = Vec::new();
        if !connector.is_connected() {
            checks.push(HealthCheck {
                name: "connection",
                status: HealthStatus::Unhealthy,
                detail: "not connected".into(),
            });
            return Ok(report(checks, lag));
        }
        checks.push(HealthCheck {
            name: "connection",
            status: HealthStatus::Healthy,
            detail: format!("{} mode", connector.mode()),
        });
        let Some(info) = connector.topic_info(stream, topic).await? else {
            checks.push(HealthCheck {
                name: "topology",
                status: HealthStatus::Unhealthy,
                detail: format!("topic {}/{} is missing", stream, topic),
            });
            return Ok(report(checks, lag));
        };
        checks.push(HealthCheck {
            name: "topology",
            status: HealthStatus::Healthy,
            detail: format!("{}/{} with {} partitions", stream, topic, info.partitions),
        });

        let group_name = GroupName::new(group)?;
        let committed = match connector
            .committed_offsets(stream, topic, &group_name)
            .await
        {
            Ok(committed) => committed,
            Err(rustok_iggy_connector::ConnectorError::GroupNotFound { .. }) => {
                vec![None; info.partitions as usize]
            }
            Err(e) => return Err(e.into()),
        };
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

        let dlq = thresholds
            .dead_letter
            .topic
            .clone()
            .unwrap_or_else(|| default_topic(topic));
        let depth = open_letters(connector, stream, &dlq).await?;
        checks.push(HealthCheck {
            name: "dead_letters",
            status: if depth > thresholds.dead_letters_degraded {
                HealthStatus::Degraded
            } else {
                HealthStatus::Healthy
            },
            detail: format!("{depth} in {dlq}"),
        });
        Ok(report(checks, lag))
    }
}

fn report(checks: Vec<HealthCheck>, lag: Vec<u64>) -> HealthReport {
    HealthReport {
        status: checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(HealthStatus::Healthy),
        checks,
        lag,
    }
}
