//! The state every connection of one listener shares: the broker, the user store,
//! the limits, the login queue, counters, and the registry of connected clients,
//! which also decides whether a new connection is admitted.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use super::login_gate::LoginGate;
use crate::config::ListenerLimits;
use crate::embedded::broker::{Broker, Users};

/// Password checks running at once for the logins of one listener.
const LOGIN_SLOTS: usize = 4;

/// State shared by every connection of one listener.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) broker: Arc<Broker>,
    pub(crate) users: Arc<Users>,
    /// The address the listener is bound to.
    pub(crate) local_addr: SocketAddr,
    pub(crate) limits: ListenerLimits,
    /// The embedded configuration as JSON, without its secrets (the snapshot's
    /// `server_config`).
    pub(crate) config_json: String,
    /// Set while a snapshot is built: a second request meanwhile is refused, as on
    /// the server.
    pub(crate) snapshot_in_progress: Arc<AtomicBool>,
    /// Logins waiting for a password check.
    pub(crate) logins: Arc<LoginGate>,
    next_session: AtomicU64,
    commit: AtomicU64,
    clients: Mutex<Registry>,
}

/// What another connection may ask of a connection's task.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// Check the session's grant now (its user was changed).
    pub(crate) recheck: Notify,
    /// Close the connection (it makes room for a new one).
    pub(crate) close: Notify,
}

/// A connection let in by [`Shared::admit`].
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) client_id: u32,
    pub(crate) signals: Arc<Signals>,
}

/// What other connections may see of one (`GetClients`, stats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientView {
    pub(crate) address: SocketAddr,
    pub(crate) user_id: Option<u32>,
    /// (stream, topic, group) ids.
    pub(crate) groups: Vec<(u32, u32, u32)>,
    /// The consumer session of its login, which another connection of the same
    /// user may attach to (`AttachConsumerSession`).
    pub(crate) consumer_session: Option<ConsumerSession>,
}

/// A login as a consumer session: the VSR client id and session number the client
/// was given, and the group member the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConsumerSession {
    pub(crate) vsr_client: u128,
    pub(crate) session: u64,
    pub(crate) member_id: u64,
}

#[derive(Debug, Default)]
struct Registry {
    next_client: u32,
    /// By client id, which grows with the connection's age.
    entries: BTreeMap<u32, ClientEntry>,
}

/// A connected client in the registry.
#[derive(Debug)]
struct ClientEntry {
    view: ClientView,
    signals: Arc<Signals>,
    /// Its password is being checked: closing it now would waste the check.
    checking_password: bool,
}

impl ClientEntry {
    fn is_unauthenticated(&self) -> bool {
        self.view.user_id.is_none()
    }
}

impl Shared {
    pub(crate) fn new(
        broker: Arc<Broker>,
        users: Arc<Users>,
        local_addr: SocketAddr,
        limits: ListenerLimits,
        config_json: String,
    ) -> Self {
        let logins = LoginGate::new(LOGIN_SLOTS, limits.login_queue as usize);
        Self {
            broker,
            users,
            local_addr,
            limits,
            config_json,
            snapshot_in_progress: Arc::default(),
            logins,
            next_session: AtomicU64::new(1),
            commit: AtomicU64::new(0),
            clients: Mutex::new(Registry {
                next_client: 1,
                entries: BTreeMap::new(),
            }),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh session number (> 0).
    pub(crate) fn next_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// The op number stamped on a replicated reply (the client's metadata
    /// watermark; any increasing value works on a single node).
    pub(crate) fn next_commit(&self) -> u64 {
        self.commit.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Lets a new connection from `peer` in, within `max_connections` and
    /// `max_unauthenticated`: at a limit, the oldest connection that has not logged
    /// in and is not having its password checked, of the address holding the most
    /// connections not logged in, is closed to make room. `None` (the new
    /// connection is to be closed) when there is no such connection.
    pub(crate) fn admit(&self, peer: SocketAddr) -> Option<Admitted> {
        let mut registry = self.registry();
        let total = registry.entries.len();
        let unauthenticated = registry
            .entries
            .values()
            .filter(|e| e.is_unauthenticated())
            .count();
        if total >= self.limits.max_connections as usize
            || unauthenticated >= self.limits.max_unauthenticated as usize
        {
            let victim = registry.victim()?;
            if let Some(entry) = registry.entries.remove(&victim) {
                tracing::debug!(
                    client = victim,
                    peer = %entry.view.address,
                    "closing a connection that has not logged in, to make room for a new one"
                );
                entry.signals.close.notify_one();
            }
        }
        let client_id = registry.next_client;
        registry.next_client = registry.next_client.wrapping_add(1).max(1);
        let signals = Arc::new(Signals::default());
        registry.entries.insert(
            client_id,
            ClientEntry {
                view: ClientView {
                    address: peer,
                    user_id: None,
                    groups: Vec::new(),
                    consumer_session: None,
                },
                signals: Arc::clone(&signals),
                checking_password: false,
            },
        );
        Some(Admitted { client_id, signals })
    }

    /// Closes one connection that has not logged in, if there is one that may be
    /// closed (the process ran out of file descriptors). Whether one was closed.
    pub(crate) fn shed_one(&self) -> bool {
        let mut registry = self.registry();
        let Some(victim) = registry.victim() else {
            return false;
        };
        if let Some(entry) = registry.entries.remove(&victim) {
            entry.signals.close.notify_one();
        }
        true
    }

    /// Marks whether a connection's password is being checked.
    pub(crate) fn set_checking_password(&self, id: u32, checking: bool) {
        if let Some(entry) = self.registry().entries.get_mut(&id) {
            entry.checking_password = checking;
        }
    }

    /// The user and group member of the live consumer session `vsr_client` /
    /// `session`, if a connection holds it now.
    pub(crate) fn consumer_session(&self, vsr_client: u128, session: u64) -> Option<(u32, u64)> {
        self.registry().entries.values().find_map(|entry| {
            let held = entry.view.consumer_session?;
            (held.vsr_client == vsr_client && held.session == session)
                .then_some((entry.view.user_id?, held.member_id))
        })
    }

    /// Updates what others see of a connection.
    pub(crate) fn publish_client(&self, id: u32, view: ClientView) {
        if let Some(entry) = self.registry().entries.get_mut(&id) {
            entry.view = view;
        }
    }

    /// Wakes every connection logged in as `user_id` to check its grant now, so
    /// that a revoked session ends (and leaves its groups) without waiting for its
    /// next request.
    pub(crate) fn recheck_user(&self, user_id: u32) {
        for entry in self
            .registry()
            .entries
            .values()
            .filter(|e| e.view.user_id == Some(user_id))
        {
            entry.signals.recheck.notify_one();
        }
    }

    pub(crate) fn remove_client(&self, id: u32) {
        self.registry().entries.remove(&id);
    }

    /// Every connected client.
    pub(crate) fn clients(&self) -> BTreeMap<u32, ClientView> {
        self.registry()
            .entries
            .iter()
            .map(|(id, entry)| (*id, entry.view.clone()))
            .collect()
    }
}

impl Registry {
    /// The connection to close to make room: not logged in, not having its password
    /// checked, the oldest of the address with the most connections not logged in.
    fn victim(&self) -> Option<u32> {
        let mut per_address: BTreeMap<IpAddr, (usize, Option<u32>)> = BTreeMap::new();
        for (id, entry) in &self.entries {
            if !entry.is_unauthenticated() {
                continue;
            }
            let (count, oldest) = per_address.entry(entry.view.address.ip()).or_default();
            *count += 1;
            if !entry.checking_password && oldest.is_none() {
                *oldest = Some(*id);
            }
        }
        per_address
            .values()
            .filter_map(|(count, oldest)| oldest.map(|id| (*count, id)))
            .max_by_key(|(count, id)| (*count, std::cmp::Reverse(*id)))
            .map(|(_, id)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: u8, user_id: Option<u32>, checking_password: bool) -> ClientEntry {
        ClientEntry {
            view: ClientView {
                address: SocketAddr::from(([127, 0, 0, ip], 5000)),
                user_id,
                groups: Vec::new(),
                consumer_session: None,
            },
            signals: Arc::new(Signals::default()),
            checking_password,
        }
    }

    #[test]
    fn the_victim_is_the_oldest_idle_connection_of_the_busiest_address() {
        let mut registry = Registry::default();
        assert_eq!(registry.victim(), None);
        // Logged in, or having a password checked: never a victim.
        registry.entries.insert(1, entry(1, Some(0), false));
        registry.entries.insert(2, entry(2, None, true));
        assert_eq!(registry.victim(), None);
        // .3 holds two connections not logged in, .2 two (one being checked), .4 one.
        registry.entries.insert(3, entry(3, None, false));
        registry.entries.insert(4, entry(2, None, false));
        registry.entries.insert(5, entry(4, None, false));
        registry.entries.insert(6, entry(3, None, false));
        // A tie between .2 and .3 (two each): the older candidate, 3 (of .3)
        // before 4 (of .2).
        assert_eq!(registry.victim(), Some(3));
        registry.entries.insert(7, entry(2, None, false));
        // .2 now holds three.
        assert_eq!(registry.victim(), Some(4));
    }
}
