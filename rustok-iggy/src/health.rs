//! Health of a transport: connection, storage, topology, consumer lag, dead letters.

use rustok_iggy_connector::error_chain;
use std::fmt::Write as _;
use std::time::Duration;

use rustok_iggy_connector::{
    ConnectorError, GroupName, IggyConnector, Metrics, StreamName, TopicName, metric_names,
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
    /// Working, but a threshold is passed (lag, dead letters) or a partition waits.
    Degraded,
    /// Not working: no answer from the broker, a partition that refuses writes, the
    /// topic missing, lag past the critical threshold.
    Unhealthy,
}

/// One check behind a [`HealthReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    /// `connection`, `storage`, `topology`, `lag`, `dead_letters`, `held`.
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
    /// Lag per partition (events not yet committed by the group); empty when the
    /// lag could not be measured.
    pub lag: Vec<u64>,
}

impl HealthReport {
    fn new(checks: Vec<HealthCheck>, lag: Vec<u64>) -> Self {
        Self {
            status: worst(&checks),
            checks,
            lag,
        }
    }

    /// Adds a `held` check naming partitions a consumer holds (`(partition, offset)`:
    /// it waits at that offset, for instance at an event of a newer schema version
    /// than it knows, during a rolling upgrade): `Degraded` when there is one. Feed it
    /// what the subscription of this process reports.
    #[must_use]
    pub fn with_held_partitions(mut self, held: impl IntoIterator<Item = (u32, u64)>) -> Self {
        let mut detail = String::new();
        for (partition, offset) in held {
            if !detail.is_empty() {
                detail.push_str(", ");
            }
            let _ = write!(detail, "partition {partition} held at offset {offset}");
        }
        let status = if detail.is_empty() {
            detail.push_str("no partition held");
            HealthStatus::Healthy
        } else {
            HealthStatus::Degraded
        };
        self.checks.push(HealthCheck {
            name: "held",
            status,
            detail,
        });
        self.status = worst(&self.checks);
        self
    }
}

fn worst(checks: &[HealthCheck]) -> HealthStatus {
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(HealthStatus::Healthy)
}

/// When a check turns `Degraded` or `Unhealthy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthThresholds {
    /// Lag of any partition above which the group is `Degraded`.
    pub lag_degraded: u64,
    /// Lag of any partition above which the group is `Unhealthy`.
    pub lag_unhealthy: u64,
    /// Open dead letters (neither re-driven nor dismissed) above which the transport
    /// is `Degraded`.
    pub dead_letters_degraded: u64,
    /// The dead-letter topic to look at.
    pub dead_letter: DeadLetterConfig,
    /// How long the broker may take to answer the ping (default 5 s); past it the
    /// connection is `Unhealthy`.
    pub ping_timeout: Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            lag_degraded: 1_000,
            lag_unhealthy: 100_000,
            dead_letters_degraded: 0,
            dead_letter: DeadLetterConfig::default(),
            ping_timeout: Duration::from_secs(5),
        }
    }
}

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
    let dlq = thresholds
        .dead_letter
        .topic
        .clone()
        .unwrap_or_else(|| default_topic(topic));
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
