//! Validated names of streams, topics and consumer groups.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest name the Iggy protocol carries (a `u8` length prefix).
pub const MAX_NAME_LENGTH: usize = 255;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("{what} name must not be empty")]
    Empty {
        /// What was being named (`stream`, `topic`, `consumer group`).
        what: &'static str,
    },
    /// The name is longer than [`MAX_NAME_LENGTH`] bytes.
    #[error("{what} name is {len} bytes long; the limit is {MAX_NAME_LENGTH} bytes")]
    TooLong {
        /// What was being named.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The name holds a control character or starts or ends with white space.
    #[error(
        "{what} name {name:?} is not allowed: names are 1 to 255 bytes of UTF-8 without control characters and without leading or trailing white space"
    )]
    InvalidCharacter {
        /// What was being named.
        what: &'static str,
        /// The refused name.
        name: String,
    },
}

/// Checks a name against the rule every stream, topic and group name follows:
/// 1 to 255 bytes of UTF-8, no control characters, no leading or trailing white space.
///
/// The derive macro applies the same rule at compile time.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(NameError::TooLong {
            what,
            len: name.len(),
        });
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(NameError::InvalidCharacter {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $ty(String);

        impl $ty {
            /// Validates `name` (see [`validate_name`]).
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                validate_name($what, &name)?;
                Ok(Self(name))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = NameError;
            fn try_from(name: &str) -> Result<Self, NameError> {
                Self::new(name)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(name: String) -> Result<Self, NameError> {
                Self::new(name)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(name: &str) -> Result<Self, NameError> {
                Self::new(name)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = String::deserialize(deserializer)?;
                Self::new(name).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The name of a stream, validated.
    StreamName,
    "stream"
);
name_type!(
    /// The name of a topic, validated.
    TopicName,
    "topic"
);
name_type!(
    /// The name of a consumer group, validated.
    GroupName,
    "consumer group"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "orders",
            "orders.dlq",
            "a",
            "Order Events",
            "заказы",
            &"x".repeat(255),
        ] {
            assert!(StreamName::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn refuses_bad_names_with_a_reason() {
        assert_eq!(TopicName::new(""), Err(NameError::Empty { what: "topic" }));
        assert_eq!(
            TopicName::new("x".repeat(256)),
            Err(NameError::TooLong {
                what: "topic",
                len: 256
            })
        );
        for name in ["tab\there", " leading", "trailing ", "nul\0"] {
            assert!(matches!(
                StreamName::new(name),
                Err(NameError::InvalidCharacter { .. })
            ));
        }
    }

    #[test]
    fn deserialize_validates() {
        let err = serde_json::from_str::<StreamName>("\"\"").unwrap_err();
        assert!(err.to_string().contains("must not be empty"), "{err}");
    }
}
