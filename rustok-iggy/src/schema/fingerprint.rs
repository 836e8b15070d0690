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

#[cfg(test)]
mod tests {
    use super::*;

    /// The parse before the one-pass one: a check, then `from_str_radix`.
    fn parse_before(text: &str) -> Option<u64> {
        let valid = text.len() == 16
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !valid {
            return None;
        }
        u64::from_str_radix(text, 16).ok()
    }

    #[test]
    fn the_one_pass_parse_accepts_exactly_what_the_check_and_radix_parse_did() {
        let mut texts: Vec<String> = [
            "0123456789abcdef",
            "ffffffffffffffff",
            "0000000000000000",
            "0123456789ABCDEF",
            "0123456789abcdeF",
            "+123456789abcdef",
            "-123456789abcdef",
            " 123456789abcdef",
            "0123456789abcde",
            "0123456789abcdef0",
            "0x23456789abcdef",
            "g123456789abcdef",
            "é123456789abcde",
            "0123456789abcd\u{e9}",
            "",
        ]
        .map(String::from)
        .to_vec();
        // Every byte at every place of a valid fingerprint.
        let base = b"0123456789abcdef";
        for at in 0..16 {
            for byte in 0..=127u8 {
                let mut text = base.to_vec();
                text[at] = byte;
                texts.push(String::from_utf8(text).unwrap());
            }
        }
        for text in &texts {
            let parsed = text.parse::<Fingerprint>();
            assert_eq!(
                parsed.as_ref().ok().map(|f| f.0),
                parse_before(text),
                "{text:?}"
            );
            if let Ok(fingerprint) = parsed {
                assert_eq!(&fingerprint.to_string(), text, "round trip");
            } else {
                let error = parsed.unwrap_err().to_string();
                assert!(error.contains("not a schema fingerprint"), "{error}");
            }
        }
    }
}
