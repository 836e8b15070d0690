//! The broker's sync threads: every fsync of the broker's partitions (segment data,
//! closed segments and their indexes, directories, the consumer-offsets journal)
//! runs here, never on the async runtime and never under a lock that appends,
//! reads or commits wait for.
//!
//! Work is per partition: a partition asks for a run ([`Syncer::request`]) when a
//! caller waits on durability (an `every_batch` append or commit, a segment to seal,
//! a flush), or marks itself dirty ([`Syncer::defer`]) when the next tick is soon
//! enough (`interval` appends and commits, a durable-offset checkpoint). One run of
//! a partition covers everything written before it started, so callers that arrive
//! while a run is in flight share the next one: that is the group commit. A
//! partition never runs on two threads at once; different partitions run in
//! parallel, up to the number of threads.
//!
//! The ticker thread moves the dirty partitions to the queue every tick (half the
//! `interval` policy's interval, one second otherwise), so with `interval` a write
//! waits at most one tick before its fsync starts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Sync threads of a broker (a partition runs on one at a time; different
/// partitions in parallel).
pub(crate) const SYNC_THREADS: usize = 16;

/// A unit of sync work: one partition.
pub(crate) trait SyncJob: Send + Sync + 'static {
    /// Its scheduling state.
    fn slot(&self) -> &SyncSlot;
    /// Does the work; `tick` says the run came from the ticker (checkpoints that
    /// need not be immediate are made then). Called on a sync thread, never on two
    /// at once.
    fn run(&self, tick: bool);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Queued,
    Running,
}

/// The scheduling state of a [`SyncJob`].
#[derive(Debug)]
pub(crate) struct SyncSlot {
    state: Mutex<SlotState>,
    /// On the ticker's list.
    dirty: AtomicBool,
}

#[derive(Debug)]
struct SlotState {
    state: State,
    /// Asked again while running: run once more when done.
    again: bool,
    /// The queued or next run is a tick run.
    tick: bool,
}

impl Default for SyncSlot {
    fn default() -> Self {
        Self {
            state: Mutex::new(SlotState {
                state: State::Idle,
                again: false,
                tick: false,
            }),
            dirty: AtomicBool::new(false),
        }
    }
}

impl SyncSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the job is on the ticker's list.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::Acquire)
    }

    /// Whether the job is neither queued nor running.
    pub(crate) fn is_idle(&self) -> bool {
        self.lock().state == State::Idle
    }
}

struct Queue {
    jobs: VecDeque<Arc<dyn SyncJob>>,
    dirty: Vec<Weak<dyn SyncJob>>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes a sync thread (a job was queued, or stop).
    work: Condvar,
    /// Wakes waiters of [`Syncer::wait_idle`] (a job finished).
    done: Condvar,
    /// Wakes the ticker early (stop).
    tick: Condvar,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` unless it is queued already; a running job runs again.
    fn enqueue(&self, job: Arc<dyn SyncJob>, tick: bool) {
        let mut slot = job.slot().lock();
        slot.tick |= tick;
        match slot.state {
            State::Queued => return,
            State::Running => {
                slot.again = true;
                return;
            }
            State::Idle => slot.state = State::Queued,
        }
        drop(slot);
        let mut queue = self.queue();
        queue.jobs.push_back(job);
        drop(queue);
        self.work.notify_one();
    }
}

/// The sync threads and the ticker of one broker. Stopped by [`Syncer::stop`]
/// or when dropped.
pub(crate) struct Syncer {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts `threads` sync threads and a ticker that queues the dirty jobs every
    /// `tick`.
    ///
    /// # Errors
    /// When the operating system refuses a thread.
    pub(crate) fn start(threads: usize, tick: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                dirty: Vec::new(),
                stopping: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            tick: Condvar::new(),
        });
        let syncer = Self {
            shared: Arc::clone(&shared),
            threads: Mutex::new(Vec::new()),
        };
        let mut handles = Vec::with_capacity(threads + 1);
        for n in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("rustok-iggy-sync-{n}"))
                    .spawn(move || work(&shared))?,
            );
        }
        let ticking = Arc::clone(&shared);
        handles.push(
            std::thread::Builder::new()
                .name("rustok-iggy-sync-tick".to_owned())
                .spawn(move || ticker(&ticking, tick.max(Duration::from_millis(1))))?,
        );
        *syncer
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = handles;
        Ok(syncer)
    }

    /// Runs `job` as soon as a thread is free (after its current run, if running).
    /// Once the threads are stopped, runs it on the caller's thread instead (a
    /// caller that raced with shutdown still gets its sync).
    pub(crate) fn request(&self, job: Arc<dyn SyncJob>) {
        if self.shared.queue().stopping {
            job.run(false);
            return;
        }
        self.shared.enqueue(job, false);
    }

    /// Runs `job` at the next tick (a tick run).
    pub(crate) fn defer(&self, job: &Arc<dyn SyncJob>) {
        if job.slot().dirty.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.queue().dirty.push(Arc::downgrade(job));
    }

    /// Blocks until every job of `jobs` is idle (neither queued nor running).
    pub(crate) fn wait_idle(&self, jobs: &[Arc<dyn SyncJob>]) {
        let mut queue = self.shared.queue();
        while !queue.stopping && !jobs.iter().all(|j| j.slot().is_idle()) {
            queue = self
                .shared
                .done
                .wait_timeout(queue, Duration::from_millis(50))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Stops the threads once they finish the runs in progress (queued runs are
    /// dropped) and joins them.
    pub(crate) fn stop(&self) {
        self.shared.queue().stopping = true;
        self.shared.work.notify_all();
        self.shared.tick.notify_all();
        self.shared.done.notify_all();
        let handles =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        let current = std::thread::current().id();
        for handle in handles {
            if handle.thread().id() != current {
                let _ = handle.join();
            }
        }
    }
}

impl Syncer {
    /// Stops the threads without waiting for them (a thread inside a slow fsync
    /// exits after it); queued runs are dropped.
    pub(crate) fn abandon(&self) {
        let mut queue = self.shared.queue();
        queue.stopping = true;
        queue.jobs.clear();
        drop(queue);
        self.shared.work.notify_all();
        self.shared.tick.notify_all();
        self.shared.done.notify_all();
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.abandon();
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue();
            loop {
                if queue.stopping {
                    queue.jobs.clear();
                    return;
                }
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let tick = {
            let mut slot = job.slot().lock();
            slot.state = State::Running;
            slot.again = false;
            std::mem::take(&mut slot.tick)
        };
        job.run(tick);
        let again = {
            let mut slot = job.slot().lock();
            let again = std::mem::take(&mut slot.again);
            slot.state = if again { State::Queued } else { State::Idle };
            again
        };
        // (A slot's lock is never held while taking the queue's: `wait_idle` takes
        // them the other way round.)
        if again {
            // Asked while running: the run that just ended may not cover it. Back
            // of the queue, so that a busy partition does not starve the others.
            shared.queue().jobs.push_back(job);
            shared.work.notify_one();
        }
        // Under the queue lock, so that a waiter cannot miss the wake-up.
        let queue = shared.queue();
        drop(queue);
        shared.done.notify_all();
    }
}

fn ticker(shared: &Shared, tick: Duration) {
    let mut next = Instant::now() + tick;
    let mut queue = shared.queue();
    loop {
        if queue.stopping {
            return;
        }
        let now = Instant::now();
        if now < next {
            queue = shared
                .tick
                .wait_timeout(queue, next - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        next = now + tick;
        let dirty = std::mem::take(&mut queue.dirty);
        drop(queue);
        for job in dirty.iter().filter_map(Weak::upgrade) {
            job.slot().dirty.store(false, Ordering::Release);
            shared.enqueue(job, true);
        }
        queue = shared.queue();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[derive(Default)]
    struct Counting {
        slot: SyncSlot,
        runs: AtomicU32,
        ticks: AtomicU32,
        gate: Mutex<()>,
    }

    impl SyncJob for Counting {
        fn slot(&self) -> &SyncSlot {
            &self.slot
        }
        fn run(&self, tick: bool) {
            let _held = self.gate.lock().unwrap();
            self.runs.fetch_add(1, Ordering::SeqCst);
            if tick {
                self.ticks.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    #[test]
    fn requests_made_while_a_run_is_held_share_the_next_run() {
        let syncer = Syncer::start(2, Duration::from_secs(3600)).unwrap();
        let job = Arc::new(Counting::default());
        let gate = job.gate.lock().unwrap();
        syncer.request(job.clone());
        // The first run is now blocked on the gate (or queued); ten more requests
        // while it is held collapse into at most one more run.
        for _ in 0..10 {
            syncer.request(job.clone());
        }
        drop(gate);
        syncer.wait_idle(&[job.clone() as Arc<dyn SyncJob>]);
        let runs = job.runs.load(Ordering::SeqCst);
        assert!((1..=2).contains(&runs), "{runs} runs");
        syncer.stop();
    }

    #[test]
    fn deferred_jobs_run_once_at_the_next_tick() {
        let syncer = Syncer::start(1, Duration::from_millis(5)).unwrap();
        let job = Arc::new(Counting::default());
        let dyn_job: Arc<dyn SyncJob> = job.clone();
        for _ in 0..5 {
            syncer.defer(&dyn_job);
        }
        while job.ticks.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        syncer.wait_idle(&[dyn_job]);
        assert_eq!(job.runs.load(Ordering::SeqCst), 1);
        assert_eq!(job.ticks.load(Ordering::SeqCst), 1);
        syncer.stop();
    }
}
