//! The `#[iggy(...)]` attributes, read with `parse_nested_meta`.
//!
//! Every error is pushed to the accumulator and parsing goes on, so one derive reports
//! all its mistakes at once. Only a syntax error stops the attribute it is in.

use syn::{Attribute, Expr, Index, Lit, LitStr, Member, Token, UnOp, meta::ParseNestedMeta};

use crate::errors::Errors;

/// The attribute this derive reads.
pub(crate) const IGGY: &str = "iggy";

pub(crate) const TOPIC: &str = "topic";
pub(crate) const STREAM: &str = "stream";
pub(crate) const KEY: &str = "key";
pub(crate) const CODEC: &str = "codec";
pub(crate) const VERSION: &str = "version";
pub(crate) const EVENT_TYPE: &str = "event_type";
pub(crate) const COMPATIBLE_WITH: &str = "compatible_with";

/// Keys accepted on the struct or enum.
const CONTAINER_KEYS: &[&str] = &[
    TOPIC,
    STREAM,
    KEY,
    CODEC,
    VERSION,
    EVENT_TYPE,
    COMPATIBLE_WITH,
];
/// Keys accepted on an enum variant.
const VARIANT_KEYS: &[&str] = &[EVENT_TYPE, KEY, VERSION, COMPATIBLE_WITH];

pub(crate) const JSON: &str = "json";
pub(crate) const POSTCARD: &str = "postcard";
const CODECS: &[&str] = &[JSON, POSTCARD];

/// Where an `#[iggy(...)]` attribute stands.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// On the struct or enum.
    Container,
    /// On an enum variant.
    Variant,
}

impl Position {
    fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Container => CONTAINER_KEYS,
            Self::Variant => VARIANT_KEYS,
        }
    }
}

/// A codec named in `codec = "..."`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Json,
    Postcard,
}

/// The values read from the `#[iggy(...)]` attributes of one container or variant. A
/// value that was refused is left unset (its error is in the accumulator).
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) topic: Option<LitStr>,
    pub(crate) stream: Option<LitStr>,
    pub(crate) key: Option<Member>,
    pub(crate) codec: Option<Codec>,
    pub(crate) version: Option<u32>,
    pub(crate) event_type: Option<LitStr>,
    /// Schema fingerprints of earlier shapes of this version that it reads.
    pub(crate) compatible_with: Option<Vec<LitStr>>,
    /// The first `#[iggy]` attribute, where an error about a missing key points.
    pub(crate) first_attr: Option<Attribute>,
    /// Keys seen so far (also the refused ones), to report duplicates.
    seen: Vec<&'static str>,
    /// Whether an attribute did not parse (its later keys were not read).
    syntax_error: bool,
}

/// Reads the `#[iggy(...)]` attributes among `attrs`.
pub(crate) fn parse(attrs: &[Attribute], position: Position, errors: &mut Errors) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(IGGY)) {
        out.first_attr.get_or_insert_with(|| attr.clone());
        if let Err(error) = attr.parse_nested_meta(|meta| out.parse_one(&meta, position, errors)) {
            out.syntax_error = true;
            errors.push(error);
        }
    }
    out
}

/// Refuses `#[iggy(...)]` on a field: the key is named on the container or variant.
pub(crate) fn reject_on_field(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(IGGY)) {
        errors.push(syn::Error::new_spanned(
            attr,
            "`#[iggy]` is not allowed on a field; name the key field on the type or variant instead, like `#[iggy(key = tenant_id)]`",
        ));
    }
}

impl Attrs {
    /// Whether `key` may have been written: it was read (even if its value was refused),
    /// or an attribute stopped at a syntax error before all its keys were read. Used to
    /// report a missing key only when it is surely missing.
    pub(crate) fn may_have(&self, key: &str) -> bool {
        self.syntax_error || self.seen.contains(&key)
    }

    fn parse_one(
        &mut self,
        meta: &ParseNestedMeta<'_>,
        position: Position,
        errors: &mut Errors,
    ) -> syn::Result<()> {
        let keys = position.keys();
        let Some(&name) = keys.iter().find(|key| meta.path.is_ident(key)) else {
            errors.push(unknown_key(meta, position));
            return skip_value(meta);
        };
        if !meta.input.peek(Token![=]) {
            return Err(meta.error(format!("expected a value: `{name} = {}`", example(name))));
        }
        let expr: Expr = meta.value()?.parse()?;
        if self.seen.contains(&name) {
            errors.push(syn::Error::new_spanned(
                &meta.path,
                format!("duplicate `{name}` attribute"),
            ));
            return Ok(());
        }
        self.seen.push(name);
        let expr = ungroup(&expr);
        let parsed = match name {
            TOPIC => string(expr, name).map(|lit| self.topic = Some(lit)),
            STREAM => string(expr, name).map(|lit| self.stream = Some(lit)),
            EVENT_TYPE => string(expr, name).map(|lit| self.event_type = Some(lit)),
            KEY => key(expr).map(|member| self.key = Some(member)),
            CODEC => codec(expr).map(|codec| self.codec = Some(codec)),
            VERSION => version(expr).map(|version| self.version = Some(version)),
            COMPATIBLE_WITH => fingerprints(expr).map(|list| self.compatible_with = Some(list)),
            _ => unreachable!("every key of CONTAINER_KEYS and VARIANT_KEYS is matched"),
        };
        if let Err(error) = parsed {
            errors.push(error);
        }
        Ok(())
    }
}

fn unknown_key(meta: &ParseNestedMeta<'_>, position: Position) -> syn::Error {
    let path = &meta.path;
    let shown = path
        .get_ident()
        .map_or_else(|| quote::quote!(#path).to_string(), ToString::to_string);
    let message = if position == Position::Variant && CONTAINER_KEYS.contains(&shown.as_str()) {
        format!(
            "`{shown}` cannot be set on a variant, only on the enum; a variant accepts: {}",
            list(VARIANT_KEYS)
        )
    } else {
        format!(
            "unknown `iggy` attribute `{shown}`; expected one of: {}",
            list(position.keys())
        )
    };
    syn::Error::new_spanned(path, message)
}

/// Consumes the value of a key that was refused, so that parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|nested| skip_value(&nested))?;
    }
    Ok(())
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn example(name: &str) -> &'static str {
    match name {
        TOPIC => "\"orders\"",
        STREAM => "\"shop\"",
        EVENT_TYPE => "\"order.placed\"",
        KEY => "tenant_id",
        CODEC => "\"postcard\"",
        COMPATIBLE_WITH => "[\"0123456789abcdef\"]",
        _ => "2",
    }
}

/// Looks through the invisible groups that `macro_rules!` wraps around fragments.
fn ungroup(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => ungroup(&group.expr),
        Expr::Paren(paren) => ungroup(&paren.expr),
        _ => expr,
    }
}

fn string(expr: &Expr, name: &str) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(string) => Ok(string.clone()),
            _ => Err(expected_string(expr, name)),
        },
        _ => Err(expected_string(expr, name)),
    }
}

fn expected_string(expr: &Expr, name: &str) -> syn::Error {
    syn::Error::new_spanned(
        expr,
        format!(
            "`{name}` expects a string literal, like `{name} = {}`",
            example(name)
        ),
    )
}

fn key(expr: &Expr) -> syn::Result<Member> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            match path.path.get_ident() {
                Some(ident) => Ok(Member::Named(ident.clone())),
                None => Err(expected_field(expr)),
            }
        }
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => {
                let index = int
                    .base10_parse::<u32>()
                    .map_err(|_| expected_field(expr))?;
                Ok(Member::Unnamed(Index {
                    index,
                    span: int.span(),
                }))
            }
            Lit::Str(string) => Err(syn::Error::new_spanned(
                string,
                format!(
                    "`key` names a field: write it without quotes, like `key = {}`",
                    string.value()
                ),
            )),
            _ => Err(expected_field(expr)),
        },
        _ => Err(expected_field(expr)),
    }
}

fn expected_field(expr: &Expr) -> syn::Error {
    syn::Error::new_spanned(
        expr,
        "`key` expects the name of a field, like `key = tenant_id` (or its index, `key = 0`, in a tuple struct or variant)",
    )
}

fn codec(expr: &Expr) -> syn::Result<Codec> {
    let lit = string(expr, CODEC)?;
    match lit.value().as_str() {
        JSON => Ok(Codec::Json),
        POSTCARD => Ok(Codec::Postcard),
        other => Err(syn::Error::new_spanned(
            &lit,
            format!("unknown codec `{other}`; expected one of: {}", list(CODECS)),
        )),
    }
}

fn version(expr: &Expr) -> syn::Result<u32> {
    let not_positive = |found: &str| {
        syn::Error::new_spanned(
            expr,
            format!("`version` must be a positive integer (1, 2, ...), found `{found}`"),
        )
    };
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Int(int) => match int.base10_parse::<u32>() {
                Ok(0) => Err(not_positive("0")),
                Ok(version) => Ok(version),
                Err(_) => Err(syn::Error::new_spanned(
                    int,
                    format!(
                        "`version` must be a positive integer no greater than {}, found `{int}`",
                        u32::MAX
                    ),
                )),
            },
            Lit::Str(_) => Err(syn::Error::new_spanned(
                expr,
                "`version` must be an integer, not a string, like `version = 2`",
            )),
            _ => Err(not_positive(&quote::quote!(#lit).to_string())),
        },
        Expr::Unary(unary) if matches!(unary.op, UnOp::Neg(_)) => {
            let inner = &unary.expr;
            Err(not_positive(&format!("-{}", quote::quote!(#inner))))
        }
        _ => Err(syn::Error::new_spanned(
            expr,
            "`version` must be a positive integer literal, like `version = 2`",
        )),
    }
}

/// `compatible_with = ["<fingerprint>", ...]` (or one string): each 16 lower-case
/// hexadecimal digits, as `rustok_iggy::schema::Fingerprint` prints them.
fn fingerprints(expr: &Expr) -> syn::Result<Vec<LitStr>> {
    let items: Vec<&Expr> = match expr {
        Expr::Array(array) => array.elems.iter().map(ungroup).collect(),
        _ => vec![expr],
    };
    items
        .into_iter()
        .map(|item| {
            let lit = string(item, COMPATIBLE_WITH)?;
            let text = lit.value();
            let valid = text.len() == 16
                && text
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if valid {
                Ok(lit)
            } else {
                Err(syn::Error::new_spanned(
                    &lit,
                    format!(
                        "`{COMPATIBLE_WITH}` lists schema fingerprints: 16 lower-case hexadecimal digits, found {text:?}"
                    ),
                ))
            }
        })
        .collect()
}
