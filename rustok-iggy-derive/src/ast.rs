//! The item the derive is applied to, with its attributes read.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, DeriveInput, Generics, Ident, Member, Meta, Token, Type};

use crate::attr::{self, Attrs, Position};
use crate::errors::Errors;

/// A struct or an enum deriving `IggyEvent`.
pub(crate) struct Input<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) generics: &'a Generics,
    pub(crate) attrs: Attrs,
    pub(crate) data: Data<'a>,
    /// `#[serde(...)]` attributes that the postcard codec cannot carry.
    pub(crate) not_for_postcard: Vec<SerdeUse>,
}

pub(crate) enum Data<'a> {
    Struct(Vec<Field<'a>>),
    Enum(Vec<Variant<'a>>),
}

pub(crate) struct Variant<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) attrs: Attrs,
    pub(crate) fields: Vec<Field<'a>>,
}

pub(crate) struct Field<'a> {
    pub(crate) member: Member,
    pub(crate) ty: &'a Type,
}

/// A serde attribute that needs a self-describing format (or breaks field order).
pub(crate) struct SerdeUse {
    pub(crate) span: Span,
    /// How it is written, like `#[serde(untagged)]`.
    pub(crate) written: &'static str,
    /// Why postcard cannot carry it.
    pub(crate) why: &'static str,
}

impl<'a> Input<'a> {
    /// Reads `input`. A union is refused at once (there is nothing more to check);
    /// every other mistake goes to `errors`.
    pub(crate) fn from_syn(input: &'a DeriveInput, errors: &mut Errors) -> syn::Result<Self> {
        let attrs = attr::parse(&input.attrs, Position::Container, errors);
        let mut not_for_postcard = Vec::new();
        serde_container(&input.attrs, &mut not_for_postcard);
        let data = match &input.data {
            syn::Data::Struct(data) => {
                Data::Struct(fields(&data.fields, errors, &mut not_for_postcard))
            }
            syn::Data::Enum(data) => Data::Enum(
                data.variants
                    .iter()
                    .map(|variant| {
                        serde_variant(&variant.attrs, &mut not_for_postcard);
                        Variant {
                            ident: &variant.ident,
                            attrs: attr::parse(&variant.attrs, Position::Variant, errors),
                            fields: fields(&variant.fields, errors, &mut not_for_postcard),
                        }
                    })
                    .collect(),
            ),
            syn::Data::Union(data) => {
                // Nothing else is worth checking: no event can be a union.
                return Err(syn::Error::new_spanned(
                    data.union_token,
                    "`IggyEvent` cannot be derived for a union; use a struct or an enum",
                ));
            }
        };
        Ok(Self {
            ident: &input.ident,
            generics: &input.generics,
            attrs,
            data,
            not_for_postcard,
        })
    }
}

fn fields<'a>(
    fields: &'a syn::Fields,
    errors: &mut Errors,
    not_for_postcard: &mut Vec<SerdeUse>,
) -> Vec<Field<'a>> {
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            attr::reject_on_field(&field.attrs, errors);
            serde_field(&field.attrs, not_for_postcard);
            let member = match &field.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index {
                    index: u32::try_from(index).unwrap_or(u32::MAX),
                    span: field.ty.span(),
                }),
            };
            Field {
                member,
                ty: &field.ty,
            }
        })
        .collect()
}

/// The items of the `#[serde(...)]` attributes among `attrs`. Attributes that do not
/// parse are skipped: serde's own derive reports them.
fn serde_metas(attrs: &[Attribute]) -> Vec<Meta> {
    attrs
        .iter()
        .filter(|attr| attr.path().is_ident("serde"))
        .filter_map(|attr| {
            attr.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

const NOT_SELF_DESCRIBING: &str =
    "postcard is not self-describing, so serde cannot decode this from it";

fn serde_container(attrs: &[Attribute], out: &mut Vec<SerdeUse>) {
    let metas = serde_metas(attrs);
    let has_content = metas.iter().any(|meta| meta.path().is_ident("content"));
    for meta in &metas {
        if meta.path().is_ident("untagged") {
            out.push(SerdeUse {
                span: meta.span(),
                written: "#[serde(untagged)]",
                why: NOT_SELF_DESCRIBING,
            });
        } else if meta.path().is_ident("tag") && !has_content {
            out.push(SerdeUse {
                span: meta.span(),
                written: "#[serde(tag = \"...\")]",
                why: NOT_SELF_DESCRIBING,
            });
        }
    }
}

fn serde_variant(attrs: &[Attribute], out: &mut Vec<SerdeUse>) {
    for meta in serde_metas(attrs) {
        if meta.path().is_ident("untagged") {
            out.push(SerdeUse {
                span: meta.span(),
                written: "#[serde(untagged)]",
                why: NOT_SELF_DESCRIBING,
            });
        }
    }
}

fn serde_field(attrs: &[Attribute], out: &mut Vec<SerdeUse>) {
    let metas = serde_metas(attrs);
    let skips_deserializing = metas
        .iter()
        .any(|meta| meta.path().is_ident("skip_deserializing"));
    for meta in &metas {
        let path = meta.path();
        if path.is_ident("flatten") {
            out.push(SerdeUse {
                span: meta.span(),
                written: "#[serde(flatten)]",
                why: NOT_SELF_DESCRIBING,
            });
        } else if path.is_ident("skip_serializing_if")
            || (path.is_ident("skip_serializing") && !skips_deserializing)
        {
            out.push(SerdeUse {
                span: meta.span(),
                written: if path.is_ident("skip_serializing") {
                    "#[serde(skip_serializing)]"
                } else {
                    "#[serde(skip_serializing_if = \"...\")]"
                },
                why: "postcard writes fields by position, so a field left out shifts every later one and the event no longer decodes",
            });
        }
    }
}
