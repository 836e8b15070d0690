//! The default event-type rule: identifiers in snake_case.

/// `OrderPlaced` → `order_placed`, `HTTPRequest` → `http_request`, `V2Event` →
/// `v2_event`, `r#Type` → `type`.
///
/// A word starts at an upper-case letter that follows a lower-case letter or a digit,
/// or that ends a run of upper-case letters followed by a lower-case one. Existing
/// underscores are kept (never doubled).
pub(crate) fn snake_case(ident: &str) -> String {
    let ident = ident.strip_prefix("r#").unwrap_or(ident);
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let boundary = prev.is_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_uppercase() && next_is_lower);
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn converts_type_and_variant_names() {
        for (ident, expected) in [
            ("OrderPlaced", "order_placed"),
            ("Order", "order"),
            ("OrderEvent", "order_event"),
            ("HTTPRequest", "http_request"),
            ("ParseHTTP", "parse_http"),
            ("V2Event", "v2_event"),
            ("OrderV2", "order_v2"),
            ("Already_Snake", "already_snake"),
            ("already_snake", "already_snake"),
            ("r#Type", "type"),
            ("A", "a"),
            ("ÜberFall", "über_fall"),
        ] {
            assert_eq!(snake_case(ident), expected, "{ident}");
        }
    }
}
