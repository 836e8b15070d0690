//! Broker errors as the Iggy error codes of [`crate::error_codes`] the listener
//! answers with.

use iggy_binary_protocol::WireError;

use crate::embedded::StorageError;
use crate::error::ConnectorError;
use crate::error_codes::ErrorCode;
use crate::names::NameError;

impl From<WireError> for ErrorCode {
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

fn name_status(e: &NameError) -> ErrorCode {
    let what = match e {
        NameError::Empty { what }
        | NameError::TooLong { what, .. }
        | NameError::InvalidCharacter { what, .. } => *what,
    };
    match what {
        "stream" => ErrorCode::INVALID_STREAM_NAME,
        "topic" => ErrorCode::INVALID_TOPIC_NAME,
        "consumer group" => ErrorCode::INVALID_CONSUMER_GROUP_NAME,
        _ => ErrorCode::INVALID_FORMAT,
    }
}

impl From<&ConnectorError> for ErrorCode {
    fn from(e: &ConnectorError) -> Self {
        match e {
            ConnectorError::StreamNotFound { .. } => Self::STREAM_ID_NOT_FOUND,
            ConnectorError::TopicNotFound { .. } => Self::TOPIC_ID_NOT_FOUND,
            ConnectorError::PartitionNotFound { .. } => Self::PARTITION_NOT_FOUND,
            ConnectorError::GroupNotFound { .. } => Self::CONSUMER_GROUP_ID_NOT_FOUND,
            ConnectorError::AlreadyExists { what, .. } => match *what {
                "stream" => Self::STREAM_NAME_ALREADY_EXISTS,
                "topic" => Self::TOPIC_NAME_ALREADY_EXISTS,
                "consumer group" => Self::CONSUMER_GROUP_NAME_ALREADY_EXISTS,
                "user" => Self::USER_ALREADY_EXISTS,
                "personal access token" => Self::PERSONAL_ACCESS_TOKEN_ALREADY_EXISTS,
                _ => Self::ERROR,
            },
            ConnectorError::InvalidName(e) => name_status(e),
            ConnectorError::InvalidRequest(_) => Self::INVALID_FORMAT,
            ConnectorError::Fenced { .. } => Self::CONSUMER_GROUP_PARTITION_NOT_OWNED,
            ConnectorError::Wire(e) => Self::from(e.clone()),
            ConnectorError::Storage(StorageError::MalformedBatch(e)) => Self::from(e.clone()),
            ConnectorError::NotConnected | ConnectorError::ShuttingDown => Self::NOT_CONNECTED,
            _ => Self::ERROR,
        }
    }
}

impl From<ConnectorError> for ErrorCode {
    fn from(e: ConnectorError) -> Self {
        if matches!(Self::from(&e), Self::ERROR) {
            // Storage and I/O failures are the server's problem: log them, answer
            // with the generic code.
            tracing::error!(error = %crate::error_chain(&e), "request failed");
        }
        Self::from(&e)
    }
}

impl From<StorageError> for ErrorCode {
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
            assert_eq!(ErrorCode::from(&error).0, code, "{error}");
        }
    }
}
