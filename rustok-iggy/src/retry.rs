//! Retry policy of the handler runner.

use std::time::Duration;

/// How a failed handler is retried before its event goes to the dead-letter topic.
///
/// In place (blocking): delay before attempt `n + 1` (after `n` failures):
/// `initial_backoff * multiplier^(n-1)`, capped at `max_backoff`, then "full jitter"
/// scaled into `[delay/2, delay]` so that many consumers do not retry in lockstep.
/// The event's partition waits meanwhile.
///
/// With [`RetryPolicy::tiers`] (non-blocking): after the in-place attempts, a
/// retryable failure moves the event to the next retry tier topic instead (see
/// [`RetryTiers`]); its partition flows on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub initial_backoff: Duration,
    /// Growth of the delay per failure.
    pub multiplier: f64,
    /// Upper bound of the delay.
    pub max_backoff: Duration,
    /// Randomize delays (half to full delay).
    pub jitter: bool,
    /// Retry tiers after the in-place attempts (`None`, the default: none; see
    /// [`RetryPolicy::tiers`]).
    pub tiers: Option<RetryTiers>,
}

/// Non-blocking retries (opt in, [`RetryPolicy::tiers`]): tier `n` (1-based) is the
/// topic `<topic>.<group>.retry.<n>` (one set per consumer group) with delay `delays[n - 1]`.
///
/// A retryable failure of an event read from the source topic writes it to tier 1
/// with its due time (now + the tier's delay) in the [`crate::consume::retry_header::DUE`]
/// header; a failure in tier `n` writes it to tier `n + 1`; a failure in the last
/// tier (or a permanent error anywhere) writes it to the dead-letter topic. Each
/// hop is committed only after the broker confirmed the write to the next topic
/// (the commit rule at every hop). The runner consumes each tier topic with the
/// same group and handler, and waits for an event's due time before handling it.
///
/// The trade: the source partition is not blocked while an event is retried, so
/// the events after it (of the same key too) are handled before it: per-key order
/// is given up for the retried event (as with Spring Kafka's retry topics). Use
/// in-place retries where order per key matters more than throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryTiers {
    delays: [Duration; MAX_TIERS],
    len: u8,
}

/// The most retry tiers a [`RetryPolicy`] has.
pub const MAX_TIERS: usize = 8;

impl RetryTiers {
    /// The delay of each tier, in order.
    #[must_use]
    pub fn delays(&self) -> &[Duration] {
        &self.delays[..usize::from(self.len)]
    }

    /// How many tiers there are.
    #[must_use]
    pub fn len(&self) -> u32 {
        u32::from(self.len)
    }

    /// Whether there is none (never, for tiers made by [`RetryPolicy::tiers`]).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: true,
            tiers: None,
        }
    }
}

impl RetryPolicy {
    /// No retries: the first failure dead-letters the event.
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// `max_attempts` attempts with a fixed delay and no jitter (handy in tests).
    #[must_use]
    pub fn fixed(max_attempts: u32, delay: Duration) -> Self {
        Self {
            max_attempts,
            initial_backoff: delay,
            multiplier: 1.0,
            max_backoff: delay,
            jitter: false,
            tiers: None,
        }
    }

    /// Non-blocking retries through `N` tier topics (1 to [`MAX_TIERS`], checked at
    /// compile time), e.g. `RetryPolicy::tiers([1s, 30s, 5m])`, with no in-place
    /// retry: a retryable failure moves the event to `<topic>.<group>.retry.1` at once,
    /// to be handled again after 1 s, then to `<topic>.<group>.retry.2` after 30 s,
    /// and so on (each consumer group has its own tiers);
    /// after the last tier it is a dead letter. See [`RetryTiers`] for the
    /// guarantees and the trade (per-key order). Set `max_attempts` above 1 to retry
    /// in place first, at every stage.
    #[must_use]
    pub fn tiers<const N: usize>(delays: [Duration; N]) -> Self {
        const { assert!(N >= 1 && N <= MAX_TIERS, "1 to MAX_TIERS retry tiers") };
        let mut all = [Duration::ZERO; MAX_TIERS];
        all[..N].copy_from_slice(&delays);
        Self {
            max_attempts: 1,
            tiers: Some(RetryTiers {
                delays: all,
                len: u8::try_from(N).unwrap_or(u8::MAX),
            }),
            ..Self::default()
        }
    }

    /// The delay after `failures` failures (1-based), or `None` when no attempt is
    /// left.
    #[must_use]
    pub fn backoff(&self, failures: u32) -> Option<Duration> {
        if failures >= self.max_attempts {
            return None;
        }
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = self.initial_backoff.as_secs_f64() * self.multiplier.max(1.0).powi(exponent);
        let capped = base.min(self.max_backoff.as_secs_f64());
        let delay = if self.jitter {
            capped * (0.5 + 0.5 * random_unit())
        } else {
            capped
        };
        Some(Duration::from_secs_f64(delay.max(0.0)))
    }
}

/// Delays that double from `initial` up to `max`, without jitter: how long a held
/// event waits before it is delivered again, and how long a consumer waits after a
/// failed fetch or commit before the next try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling up to `max`.
    #[must_use]
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay before try number `n + 1` after `n` failures (1-based; 0 counts as 1).
    #[must_use]
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(32);
        self.initial
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max)
            .max(self.initial.min(self.max))
    }
}

/// A uniform number in `[0, 1)` from the process's random UUID source.
fn random_unit() -> f64 {
    let bits = (uuid::Uuid::new_v4().as_u128() >> 75) as u64; // 53 random bits
    bits as f64 / (1u64 << 53) as f64
}

/// The error a handler returns: retried, or dead-lettered at once.
#[derive(Debug)]
pub struct HandlerError {
    retryable: bool,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl HandlerError {
    /// A failure worth retrying (a timeout, an unavailable dependency).
    pub fn retryable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            retryable: true,
            source: source.into(),
        }
    }

    /// A failure that will not go away (a validation error): dead-lettered at once.
    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            retryable: false,
            source: source.into(),
        }
    }

    /// Whether it may be retried.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_capped_and_bounded_by_attempts() {
        let policy = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            multiplier: 2.0,
            max_backoff: Duration::from_millis(500),
            jitter: false,
            tiers: None,
        };
        let delays: Vec<_> = (1..=5).map(|n| policy.backoff(n)).collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                Some(Duration::from_millis(500)),
                None
            ]
        );
        assert_eq!(RetryPolicy::none().backoff(1), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(50));
        let delays: Vec<_> = (0..6).map(|n| backoff.delay(n).as_millis()).collect();
        assert_eq!(delays, vec![10, 10, 20, 40, 50, 50]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_millis(50));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let policy = RetryPolicy::default();
        for _ in 0..1000 {
            let d = policy.backoff(2).unwrap();
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }
}
