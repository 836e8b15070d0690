//! `#[derive(IggyEvent)]` for rustok-iggy.
//!
//! Use it through `rustok-iggy`, which re-exports it next to the `IggyEvent` trait; the
//! trait's documentation there describes every attribute with runnable examples.
//!
//! The derive is a pipeline: `ast` reads the item, `attr` reads the `#[iggy(...)]`
//! attributes, `valid` checks them and resolves the defaults, `expand` generates the
//! impl, and `fallback` emits the errors together with a stub impl so that the user
//! sees the real mistake and not a cascade of "trait not implemented" errors. Both
//! take the generated bounds from `bounds`.

mod ast;
mod attr;
mod bounds;
mod case;
mod errors;
mod expand;
mod fallback;
mod name;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `rustok_iggy::IggyEvent` for a struct or an enum.
///
/// Container attributes (`#[iggy(...)]` on the type):
///
/// | key          | value                     | default                                    |
/// |--------------|---------------------------|--------------------------------------------|
/// | `topic`      | string, an Iggy name      | required                                   |
/// | `stream`     | string, an Iggy name      | the stream configured on the transport     |
/// | `key`        | a field name (or index)   | no key: events are spread over partitions  |
/// | `codec`      | `"json"` or `"postcard"`  | `"json"`                                   |
/// | `version`    | a positive integer        | `1`                                        |
/// | `event_type` | string (structs only)     | the type name in snake_case                |
///
/// Variant attributes (`#[iggy(...)]` on an enum variant): `event_type` (default
/// `<enum in snake_case>.<variant in snake_case>`), `key` (a field of that variant; a
/// variant without one uses the enum's `key`, which must then be one of its fields) and
/// `version` (default: the enum's).
///
/// Names (topic, stream, event type) are 1 to 255 bytes of UTF-8 without control
/// characters and without leading or trailing white space: the rule of
/// `rustok_iggy::connector::validate_name`, checked here at compile time. The key field's type must
/// implement `rustok_iggy::PartitionKey`.
///
/// ```text
/// #[derive(Serialize, Deserialize, IggyEvent)]
/// #[iggy(topic = "orders", key = tenant_id, codec = "postcard", version = 2)]
/// struct OrderPlaced { tenant_id: String, total_cents: u64 }
/// ```
#[proc_macro_derive(IggyEvent, attributes(iggy))]
pub fn derive_iggy_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
