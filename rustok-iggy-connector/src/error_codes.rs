//! The one table of Iggy error codes: the numbers `IggyError::as_code` gives in the
//! official `iggy` 0.11 SDK, for every code this crate answers with (the embedded
//! broker's TCP listener) or looks for (the remote connector). Tests use it too.
//!
//! The numbers are copied rather than taken from `iggy_common`, which would pull about
//! 190 crates into the embedded broker for a table of numbers. With the `remote`
//! feature, a unit test checks every entry against the SDK's own table.

use std::fmt;

/// An Iggy error code, as carried in the `status` field of a reply header and given
/// by `IggyError::as_code`. Zero is success and has no constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, )*) => {
        impl ErrorCode {
            $( $(#[$doc])* pub const $name: Self = Self($code); )*

            /// Every code of the table with the name of its `IggyError` variant in
            /// upper snake case (`STREAM_ID_NOT_FOUND` is `IggyError::StreamIdNotFound`).
            pub const ALL: &'static [(Self, &'static str)] = &[
                $( (Self::$name, stringify!($name)), )*
            ];
        }
    };
}

error_codes! {
    /// A failure with no more specific code (also the code of an unknown error).
    ERROR = 1,
    /// The command code or operation is not one the server accepts.
    INVALID_COMMAND = 3,
    /// A request body or frame does not decode.
    INVALID_FORMAT = 4,
    /// A command the server knows but does not implement.
    FEATURE_UNAVAILABLE = 5,
    /// An identifier is malformed.
    INVALID_IDENTIFIER = 6,
    /// The connection was lost.
    DISCONNECTED = 8,
    /// No connection could be established.
    CANNOT_ESTABLISH_CONNECTION = 9,
    /// A resource (for example a user) does not exist.
    RESOURCE_NOT_FOUND = 20,
    /// The server dropped the session of a client that stopped sending heartbeats.
    STALE_CLIENT = 30,
    /// A TCP transport failure.
    TCP_ERROR = 31,
    /// A QUIC transport failure.
    QUIC_ERROR = 32,
    /// No session: log in first (or the session was revoked).
    UNAUTHENTICATED = 40,
    /// The session lacks the permission for the command.
    UNAUTHORIZED = 41,
    /// User name or password refused.
    INVALID_CREDENTIALS = 42,
    /// A user name outside 3 to 50 characters.
    INVALID_USERNAME = 43,
    /// A password outside 3 to 100 characters.
    INVALID_PASSWORD = 44,
    /// A user status other than active (1) or inactive (2).
    INVALID_USER_STATUS = 45,
    /// A user with that name exists.
    USER_ALREADY_EXISTS = 46,
    /// The user is inactive.
    USER_INACTIVE = 47,
    /// The user cannot be deleted (the root user).
    CANNOT_DELETE_USER = 48,
    /// The user's permissions cannot be changed (the root user).
    CANNOT_CHANGE_PERMISSIONS = 49,
    /// A personal access token name outside 3 to 30 characters.
    INVALID_PERSONAL_ACCESS_TOKEN_NAME = 50,
    /// A token with that name exists.
    PERSONAL_ACCESS_TOKEN_ALREADY_EXISTS = 51,
    /// The user holds the most tokens allowed.
    PERSONAL_ACCESS_TOKENS_LIMIT_REACHED = 52,
    /// The personal access token is not valid.
    INVALID_PERSONAL_ACCESS_TOKEN = 53,
    /// The personal access token expired.
    PERSONAL_ACCESS_TOKEN_EXPIRED = 54,
    /// Not accepted now (a consumer session that no connection holds); the client
    /// asks for a route again.
    TRANSIENT_NOT_ACCEPTED = 58,
    /// The client is not connected.
    NOT_CONNECTED = 61,
    /// The client was shut down.
    CLIENT_SHUTDOWN = 63,
    /// The TLS domain is not valid.
    INVALID_TLS_DOMAIN = 64,
    /// The TLS certificate path is not valid.
    INVALID_TLS_CERTIFICATE_PATH = 65,
    /// The TLS certificate is not valid.
    INVALID_TLS_CERTIFICATE = 66,
    /// The TLS certificate could not be added.
    FAILED_TO_ADD_CERTIFICATE = 67,
    /// The server closed the connection.
    CONNECTION_CLOSED = 206,
    /// An empty response where one was expected.
    EMPTY_RESPONSE = 304,
    /// No stream with that id.
    STREAM_ID_NOT_FOUND = 1009,
    /// No stream with that name.
    STREAM_NAME_NOT_FOUND = 1010,
    /// A stream with that name exists.
    STREAM_NAME_ALREADY_EXISTS = 1012,
    /// The stream name breaks the naming rule.
    INVALID_STREAM_NAME = 1013,
    /// No topic with that id.
    TOPIC_ID_NOT_FOUND = 2010,
    /// No topic with that name.
    TOPIC_NAME_NOT_FOUND = 2011,
    /// A topic with that name exists in the stream.
    TOPIC_NAME_ALREADY_EXISTS = 2013,
    /// The topic name breaks the naming rule.
    INVALID_TOPIC_NAME = 2014,
    /// More partitions than a topic may have, or a partition count of 0 in a
    /// request to add or remove partitions.
    TOO_MANY_PARTITIONS = 2015,
    /// A request to remove more partitions than the topic has.
    INVALID_PARTITIONS_COUNT = 2019,
    /// No partition with that id.
    PARTITION_NOT_FOUND = 3007,
    /// No offset stored for that consumer.
    CONSUMER_OFFSET_NOT_FOUND = 3021,
    /// A batch whose message count is zero or disagrees with its header.
    INVALID_MESSAGES_COUNT = 4009,
    /// User-header bytes that cannot be read (cut short, or a stray byte).
    CANNOT_READ_HEADERS_PAYLOAD = 4016,
    /// A user-header key that does not decode (a kind of 0, a length outside 1 to 255).
    INVALID_HEADER_KEY = 4018,
    /// A user-header value that does not decode (a kind of 0, a length outside 1 to
    /// 255, or a key without a value).
    INVALID_HEADER_VALUE = 4019,
    /// A message checksum that does not match its bytes.
    INVALID_MESSAGE_CHECKSUM = 4027,
    /// A message timestamp delta past the per-batch limit.
    INVALID_MESSAGE_TIMESTAMP_DELTA = 4038,
    /// A batch checksum that does not match its bytes.
    INVALID_BATCH_CHECKSUM = 4039,
    /// An option key the command does not accept.
    UNSUPPORTED_OPTION_KEY = 4041,
    /// An option value that does not parse or is out of bounds.
    INVALID_OPTION_VALUE = 4042,
    /// No consumer group with that id.
    CONSUMER_GROUP_ID_NOT_FOUND = 5000,
    /// No consumer group with that name.
    CONSUMER_GROUP_NAME_NOT_FOUND = 5003,
    /// A consumer group with that name exists.
    CONSUMER_GROUP_NAME_ALREADY_EXISTS = 5004,
    /// The consumer group name breaks the naming rule.
    INVALID_CONSUMER_GROUP_NAME = 5005,
    /// The client is not a member of the group.
    CONSUMER_GROUP_MEMBER_NOT_FOUND = 5006,
    /// The member does not own the partition (the group was rebalanced).
    CONSUMER_GROUP_PARTITION_NOT_OWNED = 5009,
    /// The diagnostic snapshot could not be built.
    SNAPSHOT_FILE_COMPLETION_FAILED = 9000,
}

impl ErrorCode {
    /// The name of the code's `IggyError` variant in upper snake case, if the code is
    /// in the table.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Self::ALL
            .iter()
            .find(|(code, _)| *code == self)
            .map(|(_, name)| *name)
    }
}

impl From<u32> for ErrorCode {
    fn from(code: u32) -> Self {
        Self(code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique() {
        for (i, (code, name)) in ErrorCode::ALL.iter().enumerate() {
            for (other, other_name) in &ErrorCode::ALL[i + 1..] {
                assert_ne!(code, other, "{name} and {other_name}");
                assert_ne!(name, other_name);
            }
        }
        assert_eq!(ErrorCode(1009).to_string(), "1009 (STREAM_ID_NOT_FOUND)");
        assert_eq!(ErrorCode(7).name(), None);
    }

    /// Every entry is the code the official SDK gives the variant of that name.
    #[cfg(feature = "remote")]
    #[test]
    fn the_table_matches_the_sdk() {
        for (code, name) in ErrorCode::ALL {
            let sdk = iggy::prelude::IggyError::from_code(code.0);
            assert_eq!(sdk.as_code(), code.0, "{name}: unknown to the SDK");
            assert_eq!(
                sdk.as_string(),
                name.to_ascii_lowercase(),
                "code {} is not {name} in the SDK",
                code.0
            );
        }
    }
}
