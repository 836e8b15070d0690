//! The TCP front end: the embedded broker speaking the Iggy 0.11 binary protocol
//! (PROTOCOL.md), so that the official `iggy` SDK, `iggy-cli` and any other Iggy
//! client can use it from another process.
//!
//! - [`frame`]: the 256-byte consensus headers, replies, evictions, size limits.
//! - [`server`]: the listener, one task per connection, graceful stop.
//! - [`session`]: per-connection login and group memberships.
//! - [`dispatch`]: authentication gate and routing of a request to its handler;
//!   the handlers are split by area (`system`, `streams`, `topics`, `messages`,
//!   `groups`, `offsets`, `users`).
//! - [`error`]: Iggy error codes.
//!
//! All wire types come from the official `iggy_binary_protocol` crate.

mod dispatch;
mod error;
mod frame;
mod groups;
mod messages;
mod offsets;
mod server;
mod session;
mod streams;
mod system;
mod topics;
mod users;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use iggy_binary_protocol::WireIdentifier;

use self::error::Status;
pub(crate) use self::server::WireServer;
use self::session::ClientView;
use super::broker::{Broker, GroupRef, Ident, Topic, Users};

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

    fn next_client_id(&self) -> u32 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// The op number stamped on a replicated reply (the client's metadata
    /// watermark; any increasing value works on a single node).
    pub(crate) fn next_commit(&self) -> u64 {
        self.commit.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn publish_client(&self, id: u32, view: ClientView) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, view);
    }

    fn remove_client(&self, id: u32) {
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

/// A wire identifier as a broker identifier.
pub(crate) fn ident(id: &WireIdentifier) -> Ident<'_> {
    match id {
        WireIdentifier::Numeric(n) => Ident::Id(*n),
        WireIdentifier::String(name) => Ident::Name(name.as_str()),
    }
}

/// A wire identifier as a group reference.
pub(crate) fn group_ref(id: &WireIdentifier) -> GroupRef<'_> {
    match id {
        WireIdentifier::Numeric(n) => GroupRef::Id(*n),
        WireIdentifier::String(name) => GroupRef::Name(name.as_str()),
    }
}

/// Resolves a stream and topic, with the not-found code that matches how each
/// was named (by id or by name).
pub(crate) fn resolve_topic(
    broker: &Broker,
    stream: &WireIdentifier,
    topic: &WireIdentifier,
) -> Result<Arc<Topic>, Status> {
    let stream_ident = ident(stream);
    if broker.stream(stream_ident).is_none() {
        return Err(stream_not_found(stream));
    }
    broker
        .find_topic(stream_ident, ident(topic))
        .ok_or_else(|| topic_not_found(topic))
}

pub(crate) fn stream_not_found(stream: &WireIdentifier) -> Status {
    match stream {
        WireIdentifier::Numeric(_) => Status::STREAM_ID_NOT_FOUND,
        WireIdentifier::String(_) => Status::STREAM_NAME_NOT_FOUND,
    }
}

pub(crate) fn topic_not_found(topic: &WireIdentifier) -> Status {
    match topic {
        WireIdentifier::Numeric(_) => Status::TOPIC_ID_NOT_FOUND,
        WireIdentifier::String(_) => Status::TOPIC_NAME_NOT_FOUND,
    }
}

pub(crate) fn group_not_found(group: &WireIdentifier) -> Status {
    match group {
        WireIdentifier::Numeric(_) => Status::GROUP_ID_NOT_FOUND,
        WireIdentifier::String(_) => Status::GROUP_NAME_NOT_FOUND,
    }
}

/// The id of a group of `topic`.
pub(crate) fn group_id(topic: &Topic, group: &WireIdentifier) -> Result<u32, Status> {
    topic
        .groups()
        .find(group_ref(group))
        .map(|g| g.id)
        .ok_or_else(|| group_not_found(group))
}

/// Decodes a request body with the official decoder.
pub(crate) fn decode<T: iggy_binary_protocol::WireDecode>(body: &[u8]) -> Result<T, Status> {
    T::decode(body)
        .map(|(value, _)| value)
        .map_err(Status::from)
}
