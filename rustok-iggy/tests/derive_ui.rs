//! Every misuse of `#[derive(IggyEvent)]` has a clear message at the right place.
//!
//! Each `tests/ui/<case>.rs` is one misuse; its `.stderr` is the exact expected
//! output, pinned against the workspace toolchain (see `rust-version`). After a
//! deliberate change of a message, regenerate with
//! `TRYBUILD=overwrite cargo test -p rustok-iggy --test derive_ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

/// The derive checks names with its own copy of the rule (a proc-macro crate cannot
/// depend on the connector); its messages must stay those of `validate_name`.
#[test]
fn name_messages_are_those_of_validate_name() {
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    for (case, what, attribute) in [
        ("empty_topic", "topic", "topic = "),
        ("topic_control_character", "topic", "topic = "),
        ("topic_too_long", "topic", "topic = "),
        ("invalid_stream", "stream", "stream = "),
        ("empty_event_type", "event type", "event_type = "),
    ] {
        let source = std::fs::read_to_string(ui.join(format!("{case}.rs"))).unwrap();
        let literal = source
            .split_once(attribute)
            .and_then(|(_, rest)| rest.split('"').nth(1))
            .unwrap_or_else(|| panic!("{case}.rs has no `{attribute}\"...\"`"))
            .replace("\\n", "\n");
        let expected = rustok_iggy::connector::validate_name(what, &literal)
            .expect_err(case)
            .to_string();
        let stderr = std::fs::read_to_string(ui.join(format!("{case}.stderr"))).unwrap();
        assert!(
            stderr.contains(&format!("error: {expected}\n")),
            "{case}: expected `{expected}` in\n{stderr}"
        );
    }
}
