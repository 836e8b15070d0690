//! Per-connection state: who logged in, under which session number, and which
//! consumer groups the connection joined. Dropping a [`Session`] (the connection
//! closed, the task ended or unwound) leaves every group it joined and removes it
//! from the client registry.

use std::net::SocketAddr;
use std::sync::Arc;

use super::shared::{ClientView, Shared};
use crate::embedded::broker::{GroupRef, Topic};

/// A successful login on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Login {
    pub(crate) user_id: u32,
    /// The session number handed to the client (> 0).
    pub(crate) session: u64,
    /// The client's VSR id of that login.
    pub(crate) vsr_client: u128,
}

/// A group membership held by this connection.
#[derive(Debug, Clone)]
pub(crate) struct Joined {
    pub(crate) topic: Arc<Topic>,
    pub(crate) group_id: u32,
}

/// The state of one TCP connection.
#[derive(Debug)]
pub(crate) struct Session {
    shared: Arc<Shared>,
    /// The connection's id, shown by `GetMe` and `GetClients`.
    pub(crate) client_id: u32,
    /// Its identity as a consumer-group member (unique in the broker).
    pub(crate) member_id: u64,
    pub(crate) address: SocketAddr,
    pub(crate) login: Option<Login>,
    groups: Vec<Joined>,
}

impl Session {
    /// A new, unauthenticated connection, registered in the client registry.
    pub(crate) fn new(shared: Arc<Shared>, address: SocketAddr) -> Self {
        let client_id = shared.next_client_id();
        let member_id = shared.broker.next_member_id();
        let session = Self {
            shared,
            client_id,
            member_id,
            address,
            login: None,
            groups: Vec::new(),
        };
        session.publish();
        session
    }

    /// The logged-in user, if any.
    pub(crate) fn user_id(&self) -> Option<u32> {
        self.login.map(|l| l.user_id)
    }

    /// Binds a login (replacing an earlier one).
    pub(crate) fn bind(&mut self, login: Login) {
        self.login = Some(login);
        self.publish();
    }

    /// Logs out: drops the login and leaves every group.
    pub(crate) fn unbind(&mut self) {
        self.login = None;
        self.leave_all();
        self.publish();
    }

    /// Records a membership.
    pub(crate) fn joined(&mut self, topic: Arc<Topic>, group_id: u32) {
        if !self.is_member(&topic, group_id) {
            self.groups.push(Joined { topic, group_id });
            self.publish();
        }
    }

    /// Forgets a membership (after the broker removed it).
    pub(crate) fn left(&mut self, topic: &Topic, group_id: u32) {
        self.groups
            .retain(|j| !(j.group_id == group_id && same_topic(&j.topic, topic)));
        self.publish();
    }

    fn is_member(&self, topic: &Topic, group_id: u32) -> bool {
        self.groups
            .iter()
            .any(|j| j.group_id == group_id && same_topic(&j.topic, topic))
    }

    fn leave_all(&mut self) {
        for joined in self.groups.drain(..) {
            // The group or topic may have been deleted meanwhile: nothing to leave then.
            let _ = self.shared.broker.leave_group(
                &joined.topic,
                GroupRef::Id(joined.group_id),
                self.member_id,
            );
        }
    }

    fn publish(&self) {
        self.shared.publish_client(
            self.client_id,
            ClientView {
                address: self.address,
                user_id: self.user_id(),
                groups: self
                    .groups
                    .iter()
                    .map(|j| (j.topic.stream_id, j.topic.id, j.group_id))
                    .collect(),
            },
        );
    }
}

fn same_topic(a: &Topic, b: &Topic) -> bool {
    a.stream_id == b.stream_id && a.id == b.id
}

impl Drop for Session {
    fn drop(&mut self) {
        self.leave_all();
        self.shared.remove_client(self.client_id);
    }
}
