//! Per-connection state: who logged in, under which session number, and which
//! consumer groups the connection joined. Dropping a [`Session`] (the connection
//! closed, the task ended or unwound) leaves every group it joined and removes it
//! from the client registry.
//!
//! A login's [`Grant`] is checked again before every request
//! ([`Session::revalidate`]), and at once when another connection changes the
//! user ([`Shared::recheck_user`] wakes the connection): a revoked session is
//! logged out, leaving its groups, and the connection stays open for a new login.

use std::net::SocketAddr;
use std::sync::Arc;

use super::shared::{Admitted, ClientView, ConsumerSession, Shared, Signals};
use crate::embedded::broker::{Grant, GroupRef, Topic, UserInfo};

/// A successful login on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    /// What the login granted (checked again before every request).
    pub(crate) grant: Grant,
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
    /// Logins refused on this connection since its last successful one.
    pub(crate) failed_logins: u32,
    /// Close the connection once the current reply is written.
    pub(crate) close_after_reply: bool,
    /// The group member of the consumer session this connection attached to
    /// (`AttachConsumerSession`): its group polls and commits act as that member.
    /// Cleared by every login and logout.
    attached_member: Option<u64>,
    groups: Vec<Joined>,
    signals: Arc<Signals>,
}

impl Session {
    /// A new, unauthenticated connection, admitted (and registered) by
    /// [`Shared::admit`].
    pub(crate) fn new(shared: Arc<Shared>, address: SocketAddr, admitted: Admitted) -> Self {
        let member_id = shared.broker.next_member_id();
        Self {
            shared,
            client_id: admitted.client_id,
            member_id,
            address,
            login: None,
            failed_logins: 0,
            close_after_reply: false,
            attached_member: None,
            groups: Vec::new(),
            signals: admitted.signals,
        }
    }

    /// What other connections ask of this one: check the grant now
    /// ([`Session::revalidate`]), or close.
    pub(crate) fn signals(&self) -> Arc<Signals> {
        Arc::clone(&self.signals)
    }

    /// The logged-in user, if any.
    pub(crate) fn user_id(&self) -> Option<u32> {
        self.login.as_ref().map(|l| l.grant.user_id)
    }

    /// The user the session acts as now, with its current permissions; `None`
    /// when it is not logged in. Logs the session out if its grant is no longer
    /// current (its user was deleted or deactivated, its password changed, or the
    /// token it logged in with was deleted).
    pub(crate) fn revalidate(&mut self) -> Option<UserInfo> {
        let login = self.login.as_ref()?;
        if let Some(user) = self.shared.users.current_user(&login.grant) {
            return Some(user);
        }
        tracing::info!(
            client = self.client_id,
            user_id = login.grant.user_id,
            "session revoked: the user or the credentials it logged in with changed"
        );
        self.unbind();
        None
    }

    /// Replaces the grant of the current login (the session changed its own
    /// password and keeps its rights).
    pub(crate) fn regrant(&mut self, grant: Grant) {
        if let Some(login) = &mut self.login
            && login.grant.user_id == grant.user_id
        {
            login.grant = grant;
        }
    }

    /// Binds a login (replacing an earlier one).
    pub(crate) fn bind(&mut self, login: Login) {
        self.login = Some(login);
        self.attached_member = None;
        self.failed_logins = 0;
        self.publish();
    }

    /// Logs out: drops the login and leaves every group.
    pub(crate) fn unbind(&mut self) {
        self.login = None;
        self.attached_member = None;
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

    /// Acts, for group polls and commits, as the member of the consumer session
    /// `member_id` (held by another connection of the same user).
    pub(crate) fn attach(&mut self, member_id: u64) {
        self.attached_member = Some(member_id);
    }

    /// The group member this connection's group polls and commits act as: the
    /// attached consumer session's, or its own.
    pub(crate) fn group_member(&self) -> u64 {
        self.attached_member.unwrap_or(self.member_id)
    }

    fn view(&self) -> ClientView {
        ClientView {
            address: self.address,
            user_id: self.user_id(),
            consumer_session: self.login.as_ref().map(|login| ConsumerSession {
                vsr_client: login.vsr_client,
                session: login.session,
                member_id: self.member_id,
            }),
            groups: self
                .groups
                .iter()
                .map(|j| (j.topic.stream_id, j.topic.id, j.group_id))
                .collect(),
        }
    }

    fn publish(&self) {
        self.shared.publish_client(self.client_id, self.view());
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
