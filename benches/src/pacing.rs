//! Open-loop pacing of a sender thread, and percentiles of what it measured: what
//! the latency benches (`latency`, `paced_publish`) share.
//!
//! The sender wants one send every `1 / rate` seconds, from the moment it starts.
//! The schedule does not wait for a late send: send `i` is due at
//! `start + i / rate` whatever happened before, so a sender that cannot keep the
//! rate falls further and further behind, and a stall shows in the percentiles of
//! how late the sends started instead of slowing the schedule down.

use std::time::{Duration, Instant};

/// How long before a send is due the sender stops sleeping and yields (the
/// kernel's timer slack is 50 µs).
const SLACK: Duration = Duration::from_micros(60);

/// Waits until `due`: sleeps while it is far, then yields.
pub fn pace(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > SLACK {
            std::thread::sleep(left - SLACK);
        } else {
            std::thread::yield_now();
        }
    }
}

/// Calls `send(nanos since origin)` `total` times from this thread, at `rate` per
/// second. Returns how late each send started against its schedule (ns).
pub fn paced(rate: u64, origin: Instant, total: usize, mut send: impl FnMut(u64)) -> Vec<u64> {
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    let mut lateness = Vec::with_capacity(total);
    for i in 0..total as u32 {
        let due = start + interval * i;
        pace(due);
        lateness.push(due.elapsed().as_nanos() as u64);
        send(origin.elapsed().as_nanos() as u64);
    }
    lateness
}

/// The `p`th percentile of sorted nanoseconds, in µs.
#[must_use]
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

/// The measured seconds per case: `$RUSTOK_LATENCY_SECONDS`, 5 by default
/// (`scripts/bench.sh --quick` sets 2).
#[must_use]
pub fn seconds() -> f64 {
    std::env::var("RUSTOK_LATENCY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0)
}

/// The case filters `cargo bench` passes (every argument that is not a flag).
#[must_use]
pub fn filters() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}
