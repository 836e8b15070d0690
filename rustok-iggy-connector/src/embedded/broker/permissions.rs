//! Iggy's permission model: global permissions, and per-stream and per-topic
//! grants, stored with each user, and the rules that decide what a user may do.
//!
//! The rules are those of the Iggy server's permissioner, rule for rule (see
//! `docs/wire-protocol.md`, "Permissions"): a grant extends, it never restricts,
//! and the stronger grants include the weaker ones:
//!
//! - `manage_servers` includes `read_servers` (stats, clients, snapshots);
//! - `manage_users` includes `read_users`;
//! - `manage_streams` includes `read_streams` and `manage_topics`, and so every
//!   topic right of every stream; `read_streams` includes `read_topics`, which
//!   includes `poll_messages`; `manage_topics` includes `read_topics` and
//!   `send_messages`;
//! - per stream, `manage_stream` → `read_stream` → `read_topics` → `poll_messages`
//!   and `manage_stream` → `manage_topics` → `send_messages`; per topic,
//!   `manage_topic` → `read_topic` → `poll_messages` and `manage_topic` →
//!   `send_messages`.
//!
//! A user without permissions (`None`) may do nothing that needs one. The root user
//! holds [`Permissions::all`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a user may do: global permissions and grants per stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Permissions {
    pub(crate) global: GlobalPermissions,
    /// Grants per stream id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) streams: BTreeMap<u32, StreamPermissions>,
}

/// Permissions over every stream and the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "Iggy's permission set: ten independent flags"
)]
pub(crate) struct GlobalPermissions {
    pub(crate) manage_servers: bool,
    pub(crate) read_servers: bool,
    pub(crate) manage_users: bool,
    pub(crate) read_users: bool,
    pub(crate) manage_streams: bool,
    pub(crate) read_streams: bool,
    pub(crate) manage_topics: bool,
    pub(crate) read_topics: bool,
    pub(crate) poll_messages: bool,
    pub(crate) send_messages: bool,
}

/// Permissions over one stream and its topics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "Iggy's permission set: independent flags"
)]
pub(crate) struct StreamPermissions {
    pub(crate) manage_stream: bool,
    pub(crate) read_stream: bool,
    pub(crate) manage_topics: bool,
    pub(crate) read_topics: bool,
    pub(crate) poll_messages: bool,
    pub(crate) send_messages: bool,
    /// Grants per topic id of the stream.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) topics: BTreeMap<u32, TopicPermissions>,
}

/// Permissions over one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicPermissions {
    pub(crate) manage_topic: bool,
    pub(crate) read_topic: bool,
    pub(crate) poll_messages: bool,
    pub(crate) send_messages: bool,
}

/// A refused command: the user lacks the permission (Iggy's `Unauthorized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the user lacks the permission for this command")]
pub(crate) struct Denied;

/// The outcome of a rule.
pub(crate) type Access = Result<(), Denied>;

fn allow(granted: bool) -> Access {
    if granted { Ok(()) } else { Err(Denied) }
}

impl Permissions {
    /// Every permission (the root user's, and that of users created before
    /// permissions were stored).
    pub(crate) fn all() -> Self {
        Self {
            global: GlobalPermissions {
                manage_servers: true,
                read_servers: true,
                manage_users: true,
                read_users: true,
                manage_streams: true,
                read_streams: true,
                manage_topics: true,
                read_topics: true,
                poll_messages: true,
                send_messages: true,
            },
            streams: BTreeMap::new(),
        }
    }

    fn stream(&self, stream: u32) -> Option<&StreamPermissions> {
        self.streams.get(&stream)
    }

    fn topic(&self, stream: u32, topic: u32) -> Option<&TopicPermissions> {
        self.stream(stream).and_then(|s| s.topics.get(&topic))
    }

    /// Stats, clients, snapshots.
    pub(crate) fn read_servers(&self) -> Access {
        allow(self.global.manage_servers || self.global.read_servers)
    }

    /// Reading other users.
    pub(crate) fn read_users(&self) -> Access {
        allow(self.global.manage_users || self.global.read_users)
    }

    /// Creating, changing and deleting users, their permissions and (other
    /// users') passwords.
    pub(crate) fn manage_users(&self) -> Access {
        allow(self.global.manage_users)
    }

    /// Listing streams.
    pub(crate) fn get_streams(&self) -> Access {
        allow(self.global.manage_streams || self.global.read_streams)
    }

    /// Reading one stream.
    pub(crate) fn get_stream(&self, stream: u32) -> Access {
        allow(
            self.get_streams().is_ok()
                || self
                    .stream(stream)
                    .is_some_and(|s| s.manage_stream || s.read_stream),
        )
    }

    /// Creating a stream.
    pub(crate) fn create_stream(&self) -> Access {
        allow(self.global.manage_streams)
    }

    /// Renaming, purging and deleting a stream.
    pub(crate) fn manage_stream(&self, stream: u32) -> Access {
        allow(self.global.manage_streams || self.stream(stream).is_some_and(|s| s.manage_stream))
    }

    fn reads_all_topics(&self) -> bool {
        let g = &self.global;
        g.read_streams || g.manage_streams || g.manage_topics || g.read_topics
    }

    fn reads_topics_of(&self, stream: u32) -> bool {
        self.stream(stream)
            .is_some_and(|s| s.manage_stream || s.read_stream || s.manage_topics || s.read_topics)
    }

    /// Listing the topics of a stream.
    pub(crate) fn get_topics(&self, stream: u32) -> Access {
        allow(self.reads_all_topics() || self.reads_topics_of(stream))
    }

    /// Reading a topic, and using its consumer groups (get, list, create, delete,
    /// join, leave).
    pub(crate) fn get_topic(&self, stream: u32, topic: u32) -> Access {
        allow(
            self.reads_all_topics()
                || self.reads_topics_of(stream)
                || self
                    .topic(stream, topic)
                    .is_some_and(|t| t.manage_topic || t.read_topic),
        )
    }

    /// Creating a topic in a stream.
    pub(crate) fn create_topic(&self, stream: u32) -> Access {
        allow(
            self.global.manage_streams
                || self.global.manage_topics
                || self
                    .stream(stream)
                    .is_some_and(|s| s.manage_stream || s.manage_topics),
        )
    }

    /// Updating, purging and deleting a topic, its partitions and segments.
    pub(crate) fn manage_topic(&self, stream: u32, topic: u32) -> Access {
        allow(
            self.global.manage_streams
                || self.global.manage_topics
                || self
                    .stream(stream)
                    .is_some_and(|s| s.manage_stream || s.manage_topics)
                || self.topic(stream, topic).is_some_and(|t| t.manage_topic),
        )
    }

    /// Polling messages, and reading, storing and deleting consumer offsets.
    pub(crate) fn poll_messages(&self, stream: u32, topic: u32) -> Access {
        allow(
            self.global.poll_messages
                || self.reads_all_topics()
                || self.stream(stream).is_some_and(|s| {
                    s.manage_stream
                        || s.read_stream
                        || s.manage_topics
                        || s.read_topics
                        || s.poll_messages
                })
                || self
                    .topic(stream, topic)
                    .is_some_and(|t| t.manage_topic || t.read_topic || t.poll_messages),
        )
    }

    /// Sending messages (and flushing a partition).
    pub(crate) fn send_messages(&self, stream: u32, topic: u32) -> Access {
        allow(
            self.global.send_messages
                || self.global.manage_streams
                || self.global.manage_topics
                || self
                    .stream(stream)
                    .is_some_and(|s| s.manage_stream || s.manage_topics || s.send_messages)
                || self
                    .topic(stream, topic)
                    .is_some_and(|t| t.manage_topic || t.send_messages),
        )
    }
}

/// The rules for a user with `permissions` (`None`: no permission at all).
pub(crate) fn rules(permissions: Option<&Permissions>) -> &Permissions {
    static NONE: std::sync::LazyLock<Permissions> = std::sync::LazyLock::new(Permissions::default);
    permissions.unwrap_or(&NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(set: impl FnOnce(&mut GlobalPermissions)) -> Permissions {
        let mut p = Permissions::default();
        set(&mut p.global);
        p
    }

    #[test]
    fn stronger_global_grants_include_the_weaker_ones() {
        let manage_streams = global(|g| g.manage_streams = true);
        assert!(manage_streams.get_streams().is_ok());
        assert!(manage_streams.manage_topic(3, 4).is_ok());
        assert!(manage_streams.poll_messages(3, 4).is_ok());
        assert!(manage_streams.send_messages(3, 4).is_ok());
        assert!(manage_streams.read_servers().is_err());

        let read_topics = global(|g| g.read_topics = true);
        assert!(read_topics.get_topic(1, 1).is_ok());
        assert!(read_topics.poll_messages(1, 1).is_ok());
        assert!(read_topics.get_streams().is_err());
        assert!(read_topics.send_messages(1, 1).is_err());

        let manage_topics = global(|g| g.manage_topics = true);
        assert!(manage_topics.create_topic(9).is_ok());
        assert!(manage_topics.send_messages(9, 9).is_ok());
        assert!(manage_topics.create_stream().is_err());
        assert!(manage_topics.manage_stream(9).is_err());

        let manage_users = global(|g| g.manage_users = true);
        assert!(manage_users.read_users().is_ok());
        let read_users = global(|g| g.read_users = true);
        assert!(read_users.manage_users().is_err());

        let poll = global(|g| g.poll_messages = true);
        assert!(poll.poll_messages(5, 5).is_ok());
        assert!(poll.get_topic(5, 5).is_err());
    }

    #[test]
    fn scoped_grants_reach_only_their_stream_or_topic() {
        let mut p = Permissions::default();
        p.streams.insert(
            1,
            StreamPermissions {
                send_messages: true,
                topics: BTreeMap::from([(
                    2,
                    TopicPermissions {
                        read_topic: true,
                        ..Default::default()
                    },
                )]),
                ..Default::default()
            },
        );
        assert!(p.send_messages(1, 7).is_ok());
        assert!(p.send_messages(2, 7).is_err());
        assert!(p.get_topic(1, 2).is_ok());
        assert!(p.poll_messages(1, 2).is_ok());
        assert!(p.get_topic(1, 3).is_err());
        assert!(p.poll_messages(1, 3).is_err());
        assert!(p.get_topics(1).is_err());
        assert!(p.get_stream(1).is_err());
        assert!(rules(None).get_streams().is_err());
        assert!(Permissions::all().manage_users().is_ok());
    }
}
