//! When appended data is forced to stable storage.

use std::time::Duration;

/// When the owner of a [`PartitionLog`](crate::PartitionLog) syncs what it appended.
///
/// The log itself never fsyncs inside [`append`](crate::PartitionLog::append): it
/// writes each record to the operating system, so an appended record survives the
/// death of the process under **every** policy, and its owner makes the syncs
/// ([`begin_sync`](crate::PartitionLog::begin_sync), [`SyncPlan::run`](crate::SyncPlan::run)
/// on a thread that may block, [`finish_sync`](crate::PartitionLog::finish_sync)) as
/// the policy says. The policies differ only on power loss or a kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A sync covers the append before it is acknowledged: an acknowledged record
    /// survives power loss. Appends made while a sync runs share the next one
    /// (group commit). Slowest.
    EveryBatch,
    /// A sync at most about this long after the write (the embedded broker starts
    /// one every half interval). Power loss may lose the records of that window.
    Interval(Duration),
    /// Only closed segments are synced (sealed), and everything at shutdown: power
    /// loss may lose everything written to the active segment since. Fastest.
    Never,
}
