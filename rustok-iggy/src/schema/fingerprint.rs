//! The [`Fingerprint`] of a canonical shape and its text form.

use std::fmt;
use std::str::FromStr;

/// The hash of an event type's canonical shape: XXH3-64 of the text of
/// [`EventSchema::shape`](super::EventSchema::shape), written as 16 lower-case
/// hexadecimal digits. Stable across releases, platforms and processes (it is part of
/// the wire contract).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u64);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl Fingerprint {
    /// The fingerprint of a canonical shape text.
    #[must_use]
    pub fn of_shape(shape: &str) -> Self {
        Self(twox_hash::XxHash3_64::oneshot(shape.as_bytes()))
    }

    /// The 64-bit value.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = InvalidFingerprint;

    /// Parses 16 lower-case hexadecimal digits.
    fn from_str(text: &str) -> Result<Self, InvalidFingerprint> {
        // One pass (a consumer parses the header of every Postcard message).
        let invalid = || InvalidFingerprint {
            text: text.chars().take(64).collect(),
        };
        if text.len() != 16 {
            return Err(invalid());
        }
        text.bytes()
            .try_fold(0u64, |value, b| {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    _ => return None,
                };
                Some(value << 4 | u64::from(digit))
            })
            .map(Self)
            .ok_or_else(invalid)
    }
}

/// A text that is not a fingerprint (16 lower-case hexadecimal digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a schema fingerprint (16 lower-case hexadecimal digits)")]
pub struct InvalidFingerprint {
    text: String,
}
