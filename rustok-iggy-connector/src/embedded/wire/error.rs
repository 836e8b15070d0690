//! Iggy error codes (`IggyError::as_code` of `iggy_common` 0.11) and the mapping of
//! broker errors onto them.
//!
//! The codes are copied rather than taken from `iggy_common`, which would pull about
//! 190 crates into the broker for a table of numbers.

use iggy_binary_protocol::WireError;

use crate::embedded::StorageError;
use crate::error::ConnectorError;
use crate::names::NameError;

/// An Iggy error code, sent in the reply header's `status` with an empty body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status(pub(crate) u32);

#[allow(dead_code, reason = "the full table of codes the listener may answer")]
impl Status {
    pub(crate) const ERROR: Self = Self(1);
    pub(crate) const INVALID_COMMAND: Self = Self(3);
    pub(crate) const INVALID_FORMAT: Self = Self(4);
    pub(crate) const FEATURE_UNAVAILABLE: Self = Self(5);
    pub(crate) const INVALID_IDENTIFIER: Self = Self(6);
    pub(crate) const RESOURCE_NOT_FOUND: Self = Self(20);
    pub(crate) const UNAUTHENTICATED: Self = Self(40);
    pub(crate) const UNAUTHORIZED: Self = Self(41);
    pub(crate) const INVALID_CREDENTIALS: Self = Self(42);
    pub(crate) const INVALID_USERNAME: Self = Self(43);
    pub(crate) const INVALID_PASSWORD: Self = Self(44);
    pub(crate) const INVALID_USER_STATUS: Self = Self(45);
    pub(crate) const USER_ALREADY_EXISTS: Self = Self(46);
    pub(crate) const CANNOT_DELETE_USER: Self = Self(48);
    pub(crate) const INVALID_PAT_NAME: Self = Self(50);
    pub(crate) const PAT_ALREADY_EXISTS: Self = Self(51);
    pub(crate) const PAT_LIMIT_REACHED: Self = Self(52);
    pub(crate) const INVALID_PAT: Self = Self(53);
    pub(crate) const NOT_CONNECTED: Self = Self(61);
    pub(crate) const STREAM_ID_NOT_FOUND: Self = Self(1009);
    pub(crate) const STREAM_NAME_NOT_FOUND: Self = Self(1010);
    pub(crate) const STREAM_NAME_ALREADY_EXISTS: Self = Self(1012);
    pub(crate) const INVALID_STREAM_NAME: Self = Self(1013);
    pub(crate) const TOPIC_ID_NOT_FOUND: Self = Self(2010);
    pub(crate) const TOPIC_NAME_NOT_FOUND: Self = Self(2011);
    pub(crate) const TOPIC_NAME_ALREADY_EXISTS: Self = Self(2013);
    pub(crate) const INVALID_TOPIC_NAME: Self = Self(2014);
    pub(crate) const TOO_MANY_PARTITIONS: Self = Self(2015);
    pub(crate) const PARTITION_NOT_FOUND: Self = Self(3007);
    pub(crate) const CONSUMER_OFFSET_NOT_FOUND: Self = Self(3021);
    pub(crate) const INVALID_MESSAGES_COUNT: Self = Self(4009);
    pub(crate) const INVALID_MESSAGE_CHECKSUM: Self = Self(4027);
    pub(crate) const INVALID_MESSAGE_TIMESTAMP_DELTA: Self = Self(4038);
    pub(crate) const INVALID_BATCH_CHECKSUM: Self = Self(4039);
    pub(crate) const GROUP_ID_NOT_FOUND: Self = Self(5000);
    pub(crate) const GROUP_NAME_NOT_FOUND: Self = Self(5003);
    pub(crate) const GROUP_NAME_ALREADY_EXISTS: Self = Self(5004);
    pub(crate) const INVALID_GROUP_NAME: Self = Self(5005);
    pub(crate) const GROUP_MEMBER_NOT_FOUND: Self = Self(5006);
    pub(crate) const GROUP_PARTITION_NOT_OWNED: Self = Self(5009);
}

impl From<WireError> for Status {
    fn from(e: WireError) -> Self {
        match e {
            WireError::InvalidBatchChecksum { .. } => Self::INVALID_BATCH_CHECKSUM,
            WireError::InvalidMessageChecksum { .. } => Self::INVALID_MESSAGE_CHECKSUM,
            WireError::InvalidMessageTimestampDelta(_) => Self::INVALID_MESSAGE_TIMESTAMP_DELTA,
            WireError::UnknownCommand(_) => Self::INVALID_COMMAND,
            _ => Self::INVALID_FORMAT,
        }
    }
}

fn name_status(e: &NameError) -> Status {
    let what = match e {
        NameError::Empty { what }
        | NameError::TooLong { what, .. }
        | NameError::InvalidCharacter { what, .. } => *what,
    };
    match what {
        "stream" => Status::INVALID_STREAM_NAME,
        "topic" => Status::INVALID_TOPIC_NAME,
        "consumer group" => Status::INVALID_GROUP_NAME,
        _ => Status::INVALID_FORMAT,
    }
}

impl From<&ConnectorError> for Status {
    fn from(e: &ConnectorError) -> Self {
        match e {
            ConnectorError::StreamNotFound { .. } => Self::STREAM_ID_NOT_FOUND,
            ConnectorError::TopicNotFound { .. } => Self::TOPIC_ID_NOT_FOUND,
            ConnectorError::PartitionNotFound { .. } => Self::PARTITION_NOT_FOUND,
            ConnectorError::GroupNotFound { .. } => Self::GROUP_ID_NOT_FOUND,
            ConnectorError::AlreadyExists { what, .. } => match *what {
                "stream" => Self::STREAM_NAME_ALREADY_EXISTS,
                "topic" => Self::TOPIC_NAME_ALREADY_EXISTS,
                "consumer group" => Self::GROUP_NAME_ALREADY_EXISTS,
                "user" => Self::USER_ALREADY_EXISTS,
                "personal access token" => Self::PAT_ALREADY_EXISTS,
                _ => Self::ERROR,
            },
            ConnectorError::InvalidName(e) => name_status(e),
            ConnectorError::InvalidRequest(_) => Self::INVALID_FORMAT,
            ConnectorError::Fenced { .. } => Self::GROUP_PARTITION_NOT_OWNED,
            ConnectorError::Wire(e) => Self::from(e.clone()),
            ConnectorError::Storage(StorageError::MalformedBatch(e)) => Self::from(e.clone()),
            ConnectorError::NotConnected | ConnectorError::ShuttingDown => Self::NOT_CONNECTED,
            _ => Self::ERROR,
        }
    }
}

impl From<ConnectorError> for Status {
    fn from(e: ConnectorError) -> Self {
        if matches!(Self::from(&e), Self::ERROR) {
            // Storage and I/O failures are the server's problem: log them, answer
            // with the generic code.
            tracing::error!(error = %crate::error_chain(&e), "request failed");
        }
        Self::from(&e)
    }
}

impl From<StorageError> for Status {
    fn from(e: StorageError) -> Self {
        Self::from(ConnectorError::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_map_to_iggy_codes() {
        let cases = [
            (ConnectorError::StreamNotFound { stream: "s".into() }, 1009),
            (
                ConnectorError::AlreadyExists {
                    what: "topic",
                    name: "t".into(),
                },
                2013,
            ),
            (
                ConnectorError::Wire(WireError::InvalidBatchChecksum {
                    stored: 1,
                    computed: 2,
                    base_offset: 0,
                }),
                4039,
            ),
            (
                ConnectorError::InvalidName(NameError::Empty { what: "stream" }),
                1013,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(&error).0, code, "{error}");
        }
    }
}
