//! The report of a health check and the thresholds it is judged against.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::dead_letter::DeadLetterConfig;

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

/// The result of [`Transport::health`](crate::Transport::health).
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
    pub(super) fn new(checks: Vec<HealthCheck>, lag: Vec<u64>) -> Self {
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

pub(super) fn worst(checks: &[HealthCheck]) -> HealthStatus {
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
