//! Checks the input and resolves the defaults into the [`Model`] that `expand` turns
//! into code.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Generics, Ident, LitStr, Member, Type};

use crate::ast::{Data, Field, Input};
use crate::attr::{self, Codec};
use crate::case::snake_case;
use crate::errors::Errors;
use crate::name::check_name;

/// What the impl says, every default resolved.
pub(crate) struct Model<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a Generics,
    pub(crate) topic: String,
    pub(crate) stream: Option<String>,
    pub(crate) codec: Codec,
    pub(crate) shape: Shape<'a>,
}

pub(crate) enum Shape<'a> {
    Struct(Event<'a>),
    Enum(Vec<(&'a Ident, Event<'a>)>),
}

/// One kind of event the type produces: the struct, or one enum variant.
pub(crate) struct Event<'a> {
    pub(crate) event_type: String,
    pub(crate) version: u32,
    pub(crate) key: Option<Key<'a>>,
    /// Fingerprints (checked text) of earlier shapes this version reads.
    pub(crate) compatible_with: Vec<String>,
}

/// The field holding the partition key.
pub(crate) struct Key<'a> {
    pub(crate) member: Member,
    pub(crate) ty: &'a Type,
}

/// Checks `input`; every mistake is pushed to `errors`. The model is returned in any
/// case (with placeholders where a value was refused) and is used only when `errors`
/// stays empty.
pub(crate) fn check<'a>(input: &Input<'a>, errors: &mut Errors) -> Model<'a> {
    let attrs = &input.attrs;
    let topic = match &attrs.topic {
        Some(topic) => name(topic, "topic", errors),
        None if attrs.may_have(attr::TOPIC) => String::new(),
        None => {
            let message = format!(
                "missing `topic`: add `#[iggy(topic = \"...\")]` to `{}`",
                input.ident
            );
            errors.push(match &attrs.first_attr {
                Some(attr) => syn::Error::new_spanned(attr, message),
                None => syn::Error::new(Span::call_site(), message),
            });
            String::new()
        }
    };
    let stream = attrs
        .stream
        .as_ref()
        .map(|stream| name(stream, "stream", errors));
    let codec = attrs.codec.unwrap_or(Codec::Json);
    let version = attrs.version.unwrap_or(1);

    let shape = match &input.data {
        Data::Struct(fields) => {
            let event_type = match &attrs.event_type {
                Some(event_type) => name(event_type, "event type", errors),
                None => default_event_type(
                    input.ident.span(),
                    snake_case(&input.ident.to_string()),
                    errors,
                ),
            };
            let key = attrs.key.as_ref().and_then(|member| {
                let found = find(fields, member);
                if found.is_none() {
                    errors.push(no_such_field(member, &format!("`{}`", input.ident), fields));
                }
                found
            });
            Shape::Struct(Event {
                event_type,
                version,
                key,
                compatible_with: texts(attrs.compatible_with.as_deref()),
            })
        }
        Data::Enum(variants) => {
            if variants.is_empty() {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    format!(
                        "`IggyEvent` cannot be derived for an enum without variants: `{}` could never be published",
                        input.ident
                    ),
                ));
            }
            if let Some(event_type) = &attrs.event_type {
                errors.push(syn::Error::new_spanned(
                    event_type,
                    "`event_type` on an enum names nothing: each variant is its own event type; set `#[iggy(event_type = \"...\")]` on the variants (the default is `<enum>.<variant>` in snake_case)",
                ));
            }
            if let Some(first) = attrs.compatible_with.as_ref().and_then(|list| list.first()) {
                errors.push(syn::Error::new_spanned(
                    first,
                    "`compatible_with` on an enum is ambiguous: each variant is its own event type with its own fingerprint; set `#[iggy(compatible_with = [...])]` on the variant",
                ));
            }
            let enum_snake = snake_case(&input.ident.to_string());
            let mut events: Vec<(&Ident, Event<'_>)> = Vec::with_capacity(variants.len());
            for variant in variants {
                let event_type = match &variant.attrs.event_type {
                    Some(event_type) => name(event_type, "event type", errors),
                    None => default_event_type(
                        variant.ident.span(),
                        format!("{enum_snake}.{}", snake_case(&variant.ident.to_string())),
                        errors,
                    ),
                };
                if let Some((other, _)) = events
                    .iter()
                    .find(|(_, event)| event.event_type == event_type)
                {
                    let span = variant
                        .attrs
                        .event_type
                        .as_ref()
                        .map_or_else(|| variant.ident.span(), LitStr::span);
                    errors.push(syn::Error::new(
                        span,
                        format!(
                            "event type `{event_type}` is already used by variant `{other}`; each variant needs its own event type"
                        ),
                    ));
                }
                let key = match (&variant.attrs.key, &attrs.key) {
                    (Some(member), _) => {
                        let found = find(&variant.fields, member);
                        if found.is_none() {
                            errors.push(no_such_field(
                                member,
                                &format!("variant `{}`", variant.ident),
                                &variant.fields,
                            ));
                        }
                        found
                    }
                    (None, Some(member)) => {
                        let found = find(&variant.fields, member);
                        if found.is_none() {
                            errors.push(syn::Error::new(
                                variant.ident.span(),
                                format!(
                                    "variant `{}` has no field `{}`, the enum's `key`; add the field or give the variant its own `#[iggy(key = ...)]`",
                                    variant.ident,
                                    member_name(member)
                                ),
                            ));
                        }
                        found
                    }
                    (None, None) => None,
                };
                events.push((
                    variant.ident,
                    Event {
                        event_type,
                        version: variant.attrs.version.unwrap_or(version),
                        key,
                        compatible_with: texts(variant.attrs.compatible_with.as_deref()),
                    },
                ));
            }
            Shape::Enum(events)
        }
    };

    if codec == Codec::Postcard {
        for serde_use in &input.not_for_postcard {
            errors.push(syn::Error::new(
                serde_use.span,
                format!(
                    "`{}` cannot be used with `codec = \"{}\"`: {}; use `codec = \"{}\"` or remove it",
                    serde_use.written,
                    attr::POSTCARD,
                    serde_use.why,
                    attr::JSON
                ),
            ));
        }
    }

    Model {
        ident: input.ident,
        generics: input.generics,
        topic,
        stream,
        codec,
        shape,
    }
}

/// The value of a name literal, checked against the Iggy name rule.
fn name(lit: &LitStr, what: &str, errors: &mut Errors) -> String {
    let value = lit.value();
    if let Err(message) = check_name(what, &value) {
        errors.push(syn::Error::new_spanned(lit, message));
    }
    value
}

/// A derived event type still has to be a valid name (an identifier of more than 255
/// bytes would not be).
fn default_event_type(span: Span, event_type: String, errors: &mut Errors) -> String {
    if let Err(message) = check_name("event type", &event_type) {
        errors.push(syn::Error::new(
            span,
            format!("{message}; set a shorter one with `#[iggy(event_type = \"...\")]`"),
        ));
    }
    event_type
}

fn find<'a>(fields: &[Field<'a>], member: &Member) -> Option<Key<'a>> {
    fields
        .iter()
        .find(|field| field.member == *member)
        .map(|field| Key {
            // The user's token, so that errors about the key point at the attribute.
            member: member.clone(),
            ty: field.ty,
        })
}

fn no_such_field(member: &Member, owner: &str, fields: &[Field<'_>]) -> syn::Error {
    let message = if fields.is_empty() {
        format!(
            "`key` names field `{}`, but {owner} has no fields",
            member_name(member)
        )
    } else {
        let names: Vec<String> = fields
            .iter()
            .map(|field| format!("`{}`", member_name(&field.member)))
            .collect();
        format!(
            "{owner} has no field `{}`; its fields are {}",
            member_name(member),
            names.join(", ")
        )
    };
    syn::Error::new(member.span(), message)
}

fn member_name(member: &Member) -> String {
    match member {
        Member::Named(ident) => ident.to_string(),
        Member::Unnamed(index) => index.index.to_string(),
    }
}

fn texts(list: Option<&[LitStr]>) -> Vec<String> {
    list.unwrap_or_default().iter().map(LitStr::value).collect()
}
