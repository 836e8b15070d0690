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
        let valid = text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return Err(InvalidFingerprint {
                text: text.chars().take(64).collect(),
            });
        }
        u64::from_str_radix(text, 16)
            .map(Self)
            .map_err(|_| InvalidFingerprint { text: text.into() })
    }
}

/// A text that is not a fingerprint (16 lower-case hexadecimal digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a schema fingerprint (16 lower-case hexadecimal digits)")]
pub struct InvalidFingerprint {
    text: String,
}
