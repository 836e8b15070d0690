//! The Iggy name rule, checked at compile time.
//!
//! This is `rustok_iggy_connector::validate_name` again (a proc-macro crate cannot
//! depend on the connector). The messages are kept word for word the same as
//! `NameError`'s; the tests below pin them, so a change on one side shows.

/// Longest name the Iggy protocol carries (a `u8` length prefix).
const MAX_NAME_LENGTH: usize = 255;

/// Checks `name` and returns the message of the first rule it breaks. `what` is what is
/// being named (`topic`, `stream`, `event type`).
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    if name.len() > MAX_NAME_LENGTH {
        return Err(format!(
            "{what} name is {} bytes long; the limit is {MAX_NAME_LENGTH} bytes",
            name.len()
        ));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err(format!(
            "{what} name {name:?} is not allowed: names are 1 to 255 bytes of UTF-8 without control characters and without leading or trailing white space"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn follows_the_connector_rule() {
        assert!(check_name("topic", "orders").is_ok());
        assert!(check_name("topic", "Order Events").is_ok());
        assert!(check_name("topic", &"x".repeat(255)).is_ok());
        assert_eq!(
            check_name("topic", "").unwrap_err(),
            "topic name must not be empty"
        );
        assert_eq!(
            check_name("stream", &"x".repeat(256)).unwrap_err(),
            "stream name is 256 bytes long; the limit is 255 bytes"
        );
        for bad in ["tab\there", " leading", "trailing ", "nul\0"] {
            assert!(check_name("topic", bad).is_err(), "{bad:?}");
        }
    }
}
