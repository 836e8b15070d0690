//! The deduplication window of one partition: the message ids it stored recently,
//! each with the offset it was stored at, bounded in number and in age.
//!
//! Semantics of the Iggy server's `message_deduplication`: an id is remembered from
//! the moment its message is stored until `expiry` has passed or `max_entries`
//! newer ids pushed it out; a message whose id is remembered is not stored again;
//! id 0 is never remembered (it means "the broker assigns one"). The window is not
//! persisted: [`Window::remember`] is called for the tail of the log on open, with
//! the stored timestamps, so a restart keeps both the ids and their ages.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::config::DeduplicationConfig;

/// A map keyed by message id, hashed by [`IdHasher`].
pub(crate) type IdMap<V> = HashMap<u128, V, BuildHasherDefault<IdHasher>>;

/// Hashes a message id with one multiply: ids are UUIDs (random) or counters, and a
/// window is not an attack surface worth SipHash (a producer can only collide its
/// own ids, in its own partition). The mix spreads counters over the high bits the
/// map probes with.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u128(&mut self, id: u128) {
        let folded = (id as u64) ^ ((id >> 64) as u64);
        self.0 = (self.0 ^ folded).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u64,
    stored_at: u64,
}

/// The ids one partition stored recently.
#[derive(Debug)]
pub(crate) struct Window {
    max_entries: usize,
    /// µs; `None` for no expiry.
    expiry: Option<u64>,
    ids: IdMap<Entry>,
    /// The ids of `ids`, oldest first (one each).
    order: VecDeque<u128>,
}

impl Window {
    /// A window for `config`, or `None` when deduplication is off.
    pub(crate) fn new(config: &DeduplicationConfig) -> Option<Self> {
        config.enabled.then(|| Self {
            max_entries: (config.max_entries as usize).max(1),
            expiry: config
                .expiry()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            ids: IdMap::default(),
            order: VecDeque::new(),
        })
    }

    /// How many ids are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    /// The most ids it may hold (what the tail read on open needs).
    pub(crate) fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// Forgets the ids older than the expiry at `now` (µs since the Unix epoch).
    pub(crate) fn expire(&mut self, now: u64) {
        let Some(expiry) = self.expiry else { return };
        while let Some(id) = self.order.front() {
            let expired = self
                .ids
                .get(id)
                .is_none_or(|entry| entry.stored_at.saturating_add(expiry) <= now);
            if !expired {
                break;
            }
            self.ids.remove(id);
            self.order.pop_front();
        }
    }

    /// Forgets every id.
    pub(crate) fn clear(&mut self) {
        self.ids.clear();
        self.order.clear();
    }

    /// The offset `id` was stored at, if it is remembered.
    pub(crate) fn offset_of(&self, id: u128) -> Option<u64> {
        self.ids.get(&id).map(|entry| entry.offset)
    }

    /// Remembers `id`, stored at `offset` at time `stored_at`, forgetting the oldest
    /// id past `max_entries`. An id remembered already, or 0, is left as it is.
    pub(crate) fn remember(&mut self, id: u128, offset: u64, stored_at: u64) {
        if id == 0 {
            return;
        }
        let std::collections::hash_map::Entry::Vacant(vacant) = self.ids.entry(id) else {
            return;
        };
        vacant.insert(Entry { offset, stored_at });
        self.order.push_back(id);
        if self.order.len() > self.max_entries
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(max_entries: u32, expiry_ms: u64) -> Window {
        Window::new(&DeduplicationConfig {
            enabled: true,
            max_entries,
            expiry_ms,
        })
        .unwrap()
    }

    #[test]
    fn the_oldest_id_goes_past_the_bound() {
        let mut w = window(2, 0);
        w.remember(1, 10, 0);
        w.remember(2, 11, 0);
        w.remember(3, 12, 0);
        assert_eq!(w.len(), 2);
        assert_eq!(w.offset_of(1), None);
        assert_eq!(w.offset_of(2), Some(11));
        assert_eq!(w.offset_of(3), Some(12));
    }

    #[test]
    fn ids_expire_in_storing_order_and_zero_is_never_kept() {
        let mut w = window(10, 1);
        w.remember(0, 1, 0);
        w.remember(1, 2, 0);
        w.remember(2, 3, 500);
        w.expire(999);
        assert_eq!(w.offset_of(1), Some(2));
        w.expire(1000);
        assert_eq!(w.offset_of(1), None);
        assert_eq!(w.offset_of(2), Some(3));
        w.expire(1500);
        assert_eq!(w.len(), 0);
        assert!(Window::new(&DeduplicationConfig::disabled()).is_none());
    }
}
