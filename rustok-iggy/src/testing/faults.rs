//! Handler wrappers that fail on purpose: how a test makes the handler runner retry,
//! back off and dead-letter without writing a failing handler by hand.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::{Either, Ready, ready};

use crate::consume::Received;
use crate::retry::HandlerError;

/// The error of an injected handler failure: names the event id and the attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected handler failure: event {event_id}, attempt {attempt}")]
#[non_exhaustive]
pub struct InjectedFailure {
    /// The event the handler failed.
    pub event_id: uuid::Uuid,
    /// Its attempt ([`crate::DeliveryInfo::attempt`]).
    pub attempt: u32,
}

impl InjectedFailure {
    fn of<E>(received: &Received<E>) -> Self {
        Self {
            event_id: received.info().event_id,
            attempt: received.info().attempt,
        }
    }
}

/// What the wrappers return: the injected failure, or the wrapped handler's future.
pub type Faulty<F> = Either<Ready<Result<(), HandlerError>>, F>;

/// Wraps `handler` so that the first `n` calls (over all events, counted from when
/// the wrapper was made; clones of the runner share the count) fail with a
/// **retryable** [`InjectedFailure`] without calling `handler`; every later call goes
/// to `handler`.
///
/// With a [`crate::RetryPolicy`] of more than `n` attempts, every event is still
/// handled; with fewer, the first event is dead-lettered after its last attempt.
pub fn fail_first<E, H, F>(n: u64, handler: H) -> impl Fn(Received<E>) -> Faulty<F> + Send + Sync
where
    H: Fn(Received<E>) -> F + Send + Sync,
    F: Future<Output = Result<(), HandlerError>>,
{
    let calls = Arc::new(AtomicU64::new(0));
    move |received| {
        if calls.fetch_add(1, Ordering::SeqCst) < n {
            Either::Left(ready(Err(HandlerError::retryable(InjectedFailure::of(
                &received,
            )))))
        } else {
            Either::Right(handler(received))
        }
    }
}

/// Wraps `handler` so that **every** event fails its first `n` attempts (by
/// [`crate::DeliveryInfo::attempt`]) with a retryable [`InjectedFailure`], and goes
/// to `handler` from attempt `n + 1` on.
///
/// Deterministic per event: with a [`crate::RetryPolicy`] of more than `n` attempts
/// every event is handled after `n` retries; with at most `n` attempts every event
/// is dead-lettered.
pub fn fail_attempts<E, H, F>(n: u32, handler: H) -> impl Fn(Received<E>) -> Faulty<F> + Send + Sync
where
    H: Fn(Received<E>) -> F + Send + Sync,
    F: Future<Output = Result<(), HandlerError>>,
{
    move |received| {
        if received.info().attempt <= n {
            Either::Left(ready(Err(HandlerError::retryable(InjectedFailure::of(
                &received,
            )))))
        } else {
            Either::Right(handler(received))
        }
    }
}

/// Wraps `handler` so that every event for which `poisoned` is true fails with a
/// **permanent** [`InjectedFailure`] (dead-lettered at once, with no retry); the
/// others go to `handler`.
pub fn fail_when<E, P, H, F>(
    poisoned: P,
    handler: H,
) -> impl Fn(Received<E>) -> Faulty<F> + Send + Sync
where
    P: Fn(&E) -> bool + Send + Sync,
    H: Fn(Received<E>) -> F + Send + Sync,
    F: Future<Output = Result<(), HandlerError>>,
{
    move |received| {
        if poisoned(&received) {
            Either::Left(ready(Err(HandlerError::permanent(InjectedFailure::of(
                &received,
            )))))
        } else {
            Either::Right(handler(received))
        }
    }
}
