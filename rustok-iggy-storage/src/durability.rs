//! When appended data is forced to stable storage.

use std::time::Duration;

/// When a [`PartitionLog`](crate::PartitionLog) fsyncs what it appended.
///
/// Every policy writes each record to the operating system before
/// [`append`](crate::PartitionLog::append) returns, so an appended record survives the
/// death of the process under **every** policy. The policies differ only on power loss
/// or a kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before `append` returns: an appended record survives power loss. Slowest.
    EveryBatch,
    /// fsync at most this long after the write: the owner of the log calls
    /// [`sync`](crate::PartitionLog::sync) when
    /// [`sync_due`](crate::PartitionLog::sync_due) says so (group commit). Power loss
    /// may lose up to one interval of appended records.
    Interval(Duration),
    /// fsync only when a segment is closed: power loss may lose everything written
    /// since. Fastest.
    Never,
}
