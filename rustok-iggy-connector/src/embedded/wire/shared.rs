//! The state every connection of one listener shares: the broker, the user store,
//! counters, and the registry of connected clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::embedded::broker::{Broker, Users};

/// State shared by every connection of one listener.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) broker: Arc<Broker>,
    pub(crate) users: Arc<Users>,
    /// The address the listener is bound to.
    pub(crate) local_addr: SocketAddr,
    next_session: AtomicU64,
    next_client: AtomicU32,
    commit: AtomicU64,
    clients: Mutex<BTreeMap<u32, ClientEntry>>,
}

/// A connected client in the registry.
#[derive(Debug)]
struct ClientEntry {
    view: ClientView,
    /// Wakes the connection to check its grant.
    wake: Arc<Notify>,
}

impl Shared {
    pub(crate) fn new(broker: Arc<Broker>, users: Arc<Users>, local_addr: SocketAddr) -> Self {
        Self {
            broker,
            users,
            local_addr,
            next_session: AtomicU64::new(1),
            next_client: AtomicU32::new(1),
            commit: AtomicU64::new(0),
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// A fresh session number (> 0).
    pub(crate) fn next_session(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn next_client_id(&self) -> u32 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// The op number stamped on a replicated reply (the client's metadata
    /// watermark; any increasing value works on a single node).
    pub(crate) fn next_commit(&self) -> u64 {
        self.commit.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds a new connection to the registry.
    pub(crate) fn register_client(&self, id: u32, view: ClientView, wake: Arc<Notify>) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, ClientEntry { view, wake });
    }

    /// Updates what others see of a connection.
    pub(crate) fn publish_client(&self, id: u32, view: ClientView) {
        if let Some(entry) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&id)
        {
            entry.view = view;
        }
    }

    /// Wakes every connection logged in as `user_id` to check its grant now, so
    /// that a revoked session ends (and leaves its groups) without waiting for its
    /// next request.
    pub(crate) fn recheck_user(&self, user_id: u32) {
        for entry in self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|e| e.view.user_id == Some(user_id))
        {
            entry.wake.notify_one();
        }
    }

    pub(crate) fn remove_client(&self, id: u32) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    /// Every connected client.
    pub(crate) fn clients(&self) -> BTreeMap<u32, ClientView> {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, entry)| (*id, entry.view.clone()))
            .collect()
    }
}

/// What other connections may see of one (`GetClients`, stats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientView {
    pub(crate) address: SocketAddr,
    pub(crate) user_id: Option<u32>,
    /// (stream, topic, group) ids.
    pub(crate) groups: Vec<(u32, u32, u32)>,
}
