//! The state every connection of one listener shares: the broker, the user store,
//! counters, and the registry of connected clients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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
    clients: Mutex<BTreeMap<u32, ClientView>>,
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

    pub(crate) fn publish_client(&self, id: u32, view: ClientView) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, view);
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
            .clone()
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
