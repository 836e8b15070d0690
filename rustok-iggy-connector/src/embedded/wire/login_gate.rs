//! The login queue: password checks are slow on purpose (Argon2), so at most a few
//! run at once and the others wait here, fairly between client addresses.
//!
//! - At most `slots` logins hold a slot (run their check) at once.
//! - The others wait in one FIFO queue per client address; a freed slot goes to the
//!   next address in turn (round-robin), so a storm of logins from one address
//!   delays a login from another by at most one check per storming address.
//! - At most `capacity` logins wait in all. When the queue is full, the newest
//!   waiting login of the address with the most waiting is refused to make room,
//!   unless the new login's own address has as many: then the new one is refused.
//!
//! A waiting login that is cancelled (its connection closed) leaves the queue; a
//! slot handed to a login that was cancelled meanwhile goes to the next one.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// The login was refused without a check: the queue is full of logins from this
/// client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueFull;

#[derive(Debug)]
pub(crate) struct LoginGate {
    slots: usize,
    capacity: usize,
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    running: usize,
    queued: usize,
    next_ticket: u64,
    /// Waiting logins per address, oldest first; no empty queue is kept.
    queues: BTreeMap<IpAddr, VecDeque<Waiter>>,
    /// Addresses with waiting logins, in the order their turns come.
    turns: VecDeque<IpAddr>,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    admit: oneshot::Sender<()>,
}

/// A running login's slot, given back when dropped.
#[derive(Debug)]
pub(crate) struct LoginSlot {
    gate: Arc<LoginGate>,
}

impl Drop for LoginSlot {
    fn drop(&mut self) {
        self.gate.release(&mut self.gate.lock());
    }
}

impl LoginGate {
    pub(crate) fn new(slots: usize, capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: slots.max(1),
            capacity,
            state: Mutex::new(GateState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot for a login from `address`.
    pub(crate) async fn enter(self: &Arc<Self>, address: IpAddr) -> Result<LoginSlot, QueueFull> {
        let (ticket, admitted) = {
            let mut state = self.lock();
            if state.running < self.slots && state.queued == 0 {
                state.running += 1;
                return Ok(LoginSlot {
                    gate: Arc::clone(self),
                });
            }
            if state.queued >= self.capacity {
                let own = state.queues.get(&address).map_or(0, VecDeque::len);
                let heaviest = state
                    .queues
                    .iter()
                    .max_by_key(|(_, queue)| queue.len())
                    .map(|(a, queue)| (*a, queue.len()));
                match heaviest {
                    Some((victim, waiting)) if waiting > own => {
                        // Dropping its sender refuses that login.
                        drop(state.pop_newest(victim));
                    }
                    _ => return Err(QueueFull),
                }
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            let (admit, admitted) = oneshot::channel();
            let queue = state.queues.entry(address).or_default();
            queue.push_back(Waiter { ticket, admit });
            if queue.len() == 1 {
                state.turns.push_back(address);
            }
            state.queued += 1;
            (ticket, admitted)
        };
        let mut waiting = Waiting {
            gate: self,
            address,
            ticket,
            admitted,
            done: false,
        };
        let result = (&mut waiting.admitted).await;
        waiting.done = true;
        match result {
            Ok(()) => Ok(LoginSlot {
                gate: Arc::clone(self),
            }),
            Err(_) => Err(QueueFull),
        }
    }

    /// Hands a freed slot to the next waiting login in turn, or frees it.
    fn release(&self, state: &mut GateState) {
        while let Some(waiter) = state.pop_next() {
            // Sent under the lock: a cancelled waiter either left the queue before
            // this, or finds the slot in its channel when it cleans up.
            if waiter.admit.send(()).is_ok() {
                return;
            }
        }
        state.running = state.running.saturating_sub(1);
    }
}

impl GateState {
    /// The oldest waiter of the address whose turn it is.
    fn pop_next(&mut self) -> Option<Waiter> {
        let address = self.turns.pop_front()?;
        let queue = self.queues.get_mut(&address)?;
        let waiter = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&address);
        } else {
            self.turns.push_back(address);
        }
        if waiter.is_some() {
            self.queued -= 1;
        }
        waiter
    }

    /// The newest waiter of `address`.
    fn pop_newest(&mut self, address: IpAddr) -> Option<Waiter> {
        let queue = self.queues.get_mut(&address)?;
        let waiter = queue.pop_back();
        if queue.is_empty() {
            self.queues.remove(&address);
            self.turns.retain(|a| *a != address);
        }
        if waiter.is_some() {
            self.queued -= 1;
        }
        waiter
    }

    /// Removes the waiter with `ticket`; whether it was still waiting.
    fn remove(&mut self, address: IpAddr, ticket: u64) -> bool {
        let Some(queue) = self.queues.get_mut(&address) else {
            return false;
        };
        let Some(index) = queue.iter().position(|w| w.ticket == ticket) else {
            return false;
        };
        queue.remove(index);
        if queue.is_empty() {
            self.queues.remove(&address);
            self.turns.retain(|a| *a != address);
        }
        self.queued -= 1;
        true
    }
}

/// A login waiting in the queue; cleans up if the wait is cancelled.
struct Waiting<'a> {
    gate: &'a Arc<LoginGate>,
    address: IpAddr,
    ticket: u64,
    admitted: oneshot::Receiver<()>,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.gate.lock();
        if !state.remove(self.address, self.ticket) && self.admitted.try_recv().is_ok() {
            // A slot was handed over just before the cancellation: pass it on.
            self.gate.release(&mut state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[tokio::test]
    async fn turns_alternate_between_addresses() {
        let gate = LoginGate::new(1, 16);
        let running = gate.enter(ip(1)).await.unwrap();
        // Four waiting from .2, then one from .3.
        let mut storm: Vec<_> = (0..4).map(|_| Box::pin(gate.enter(ip(2)))).collect();
        for waiter in &mut storm {
            assert!(poll_once(waiter.as_mut()).is_pending());
        }
        let mut good = Box::pin(gate.enter(ip(3)));
        assert!(poll_once(good.as_mut()).is_pending());
        drop(running);
        // .2 had its turn first; its slot goes to .3 next, not to .2's second.
        let Poll::Ready(Ok(first)) = poll_once(storm[0].as_mut()) else {
            panic!("the first waiter of .2 runs");
        };
        drop(first);
        assert!(poll_once(storm[1].as_mut()).is_pending());
        assert!(matches!(poll_once(good.as_mut()), Poll::Ready(Ok(_))));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_heaviest_address() {
        let gate = LoginGate::new(1, 3);
        let _running = gate.enter(ip(1)).await.unwrap();
        let mut storm: Vec<_> = (0..3).map(|_| Box::pin(gate.enter(ip(2)))).collect();
        for waiter in &mut storm {
            assert!(poll_once(waiter.as_mut()).is_pending());
        }
        // Full: another from .2 is refused at once ...
        assert_eq!(gate.enter(ip(2)).await.unwrap_err(), QueueFull);
        // ... one from .3 takes the place of .2's newest.
        let mut good = pin!(gate.enter(ip(3)));
        assert!(poll_once(good.as_mut()).is_pending());
        assert!(matches!(
            poll_once(storm[2].as_mut()),
            Poll::Ready(Err(QueueFull))
        ));
        assert_eq!(gate.lock().queued, 3);
    }

    #[tokio::test]
    async fn cancelled_waiters_leave_and_slots_are_not_lost() {
        let gate = LoginGate::new(1, 8);
        let running = gate.enter(ip(1)).await.unwrap();
        let mut cancelled = Box::pin(gate.enter(ip(2)));
        assert!(poll_once(cancelled.as_mut()).is_pending());
        let mut next = Box::pin(gate.enter(ip(3)));
        assert!(poll_once(next.as_mut()).is_pending());
        drop(cancelled);
        assert_eq!(gate.lock().queued, 1);
        // The slot was handed to a waiter that is cancelled before it looks.
        let mut handed = Box::pin(gate.enter(ip(4)));
        assert!(poll_once(handed.as_mut()).is_pending());
        drop(running); // goes to .3
        let Poll::Ready(Ok(slot)) = poll_once(next.as_mut()) else {
            panic!(".3 runs");
        };
        drop(slot); // handed to .4 ...
        drop(handed); // ... which is cancelled: the slot is freed
        let state = gate.lock();
        assert_eq!((state.running, state.queued), (0, 0));
    }
}
