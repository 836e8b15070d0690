//! Rendering a traced type as canonical text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::de::DeserializeOwned;

use super::fingerprint::InvalidFingerprint;
use super::trace::{Container, Fields, Format, Registry, trace as trace_type};

/// The shape of a type could not be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The type's `Deserialize` impl could not be traced (a custom impl
    /// that validates its input, or a recursive type). Its messages are published
    /// without a fingerprint and are not checked.
    #[error("cannot trace the serde shape of {type_name}: {reason}")]
    Untraceable {
        /// The Rust type.
        type_name: String,
        /// What the tracer said.
        reason: String,
    },
    /// `#[iggy(compatible_with = [...])]` holds a text that is not a fingerprint.
    #[error("event type {event_type:?} declares an invalid compatible fingerprint")]
    InvalidCompatible {
        /// The event type.
        event_type: String,
        /// Why.
        #[source]
        source: InvalidFingerprint,
    },
}

/// A traced type: its root format and the containers it reaches.
pub(super) struct Traced {
    root: Format,
    registry: Registry,
}

/// Traces `T` through its `Deserialize` impl, every variant of every enum it reaches.
pub(super) fn trace<T: DeserializeOwned>(type_name: &str) -> Result<Traced, SchemaError> {
    let (root, registry) = trace_type::<T>().map_err(|e| SchemaError::Untraceable {
        type_name: type_name.to_owned(),
        reason: e.0,
    })?;
    Ok(Traced { root, registry })
}

impl Traced {
    /// How many variants the root has, when it is an enum.
    pub(super) fn variants_count(&self) -> Option<usize> {
        match self.root_container()? {
            (_, Container::Enum(variants)) => Some(variants.len()),
            _ => None,
        }
    }

    fn root_container(&self) -> Option<(&str, &Container)> {
        match &self.root {
            Format::Named(name) => self
                .registry
                .get_key_value(name)
                .map(|(name, container)| (name.as_str(), container)),
            _ => None,
        }
    }

    /// The shape of the whole type.
    pub(super) fn whole(&self) -> String {
        let mut out = String::new();
        let mut reached = BTreeSet::new();
        match self.root_container() {
            Some((name, container)) => {
                // The event's own name is left out: an old version's copy of the type
                // is usually renamed (`OrderPlacedV1`) and has the same bytes.
                container_line(&mut out, None, container);
                collect_container(container, &self.registry, &mut reached);
                reached.remove(name);
            }
            None => {
                format(&mut out, &self.root);
                collect(&self.root, &self.registry, &mut reached);
            }
        }
        self.append(&mut out, &reached);
        out
    }

    /// The shape of the root enum's variant at `index` (declaration order).
    pub(super) fn variant(&self, index: usize) -> String {
        let Some((_, Container::Enum(variants))) = self.root_container() else {
            return self.whole();
        };
        let Some((name, fields)) = variants.get(index) else {
            return self.whole();
        };
        let mut out = format!("variant {index} {name}");
        let mut reached = BTreeSet::new();
        if let Some(fields) = fields {
            fields_format(&mut out, fields);
            collect_fields(fields, &self.registry, &mut reached);
        }
        self.append(&mut out, &reached);
        out
    }

    fn append(&self, out: &mut String, reached: &BTreeSet<String>) {
        for name in reached {
            if let Some(container) = self.registry.get(name) {
                out.push('\n');
                container_line(out, Some(name), container);
            }
        }
    }
}

fn collect(format: &Format, registry: &Registry, reached: &mut BTreeSet<String>) {
    match format {
        Format::Named(name) if reached.insert(name.clone()) => {
            if let Some(container) = registry.get(name) {
                collect_container(container, registry, reached);
            }
        }
        Format::Option(inner) | Format::Seq(inner) => collect(inner, registry, reached),
        Format::Map(key, value) => {
            collect(key, registry, reached);
            collect(value, registry, reached);
        }
        Format::Tuple(items) => items.iter().for_each(|f| collect(f, registry, reached)),
        _ => {}
    }
}

fn collect_container(container: &Container, registry: &Registry, reached: &mut BTreeSet<String>) {
    match container {
        Container::Struct(fields) => collect_fields(fields, registry, reached),
        Container::Enum(variants) => variants
            .iter()
            .filter_map(|(_, fields)| fields.as_ref())
            .for_each(|fields| collect_fields(fields, registry, reached)),
    }
}

fn collect_fields(fields: &Fields, registry: &Registry, reached: &mut BTreeSet<String>) {
    match fields {
        Fields::Unit => {}
        Fields::NewType(inner) => collect(inner, registry, reached),
        Fields::Tuple(items) => items.iter().for_each(|f| collect(f, registry, reached)),
        Fields::Struct(named) => named
            .iter()
            .for_each(|(_, f)| collect(f, registry, reached)),
    }
}

/// One line (without a name for the event's own): `struct Name { a: u32 }`,
/// `struct Name(u8, str)`, `struct Name;`, `enum Name { 0 A, 1 B(u32), 2 C { x: str } }`.
fn container_line(out: &mut String, name: Option<&str>, container: &Container) {
    let name = name.map_or_else(String::new, |name| format!(" {name}"));
    match container {
        Container::Struct(Fields::Unit) => {
            let _ = write!(out, "struct{name};");
        }
        Container::Struct(fields) => {
            let _ = write!(out, "struct{name}");
            fields_format(out, fields);
        }
        Container::Enum(variants) => {
            let _ = write!(out, "enum{name} {{");
            for (index, (variant, fields)) in variants.iter().enumerate() {
                out.push_str(if index == 0 { " " } else { ", " });
                let _ = write!(out, "{index} {variant}");
                if let Some(fields) = fields {
                    fields_format(out, fields);
                }
            }
            out.push_str(" }");
        }
    }
}

fn fields_format(out: &mut String, fields: &Fields) {
    match fields {
        Fields::Unit => {}
        Fields::NewType(inner) => {
            out.push('(');
            format(out, inner);
            out.push(')');
        }
        Fields::Tuple(items) => tuple(out, items),
        Fields::Struct(named) => {
            out.push_str(" {");
            for (i, (field, format_)) in named.iter().enumerate() {
                out.push_str(if i > 0 { ", " } else { " " });
                let _ = write!(out, "{field}: ");
                format(out, format_);
            }
            out.push_str(if named.is_empty() { "}" } else { " }" });
        }
    }
}

fn tuple(out: &mut String, items: &[Format]) {
    out.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        format(out, item);
    }
    out.push(')');
}

fn format(out: &mut String, format_: &Format) {
    match format_ {
        Format::Unknown => out.push('?'),
        Format::Named(name) => out.push_str(name),
        Format::Primitive(name) => out.push_str(name),
        Format::Option(inner) => {
            out.push_str("option<");
            format(out, inner);
            out.push('>');
        }
        Format::Seq(inner) => {
            out.push_str("seq<");
            format(out, inner);
            out.push('>');
        }
        Format::Map(key, value) => {
            out.push_str("map<");
            format(out, key);
            out.push_str(", ");
            format(out, value);
            out.push('>');
        }
        // A fixed-size array is a tuple of one type: `[u8; 4]`.
        Format::Tuple(items) => match items.split_first() {
            Some((first, rest)) if !rest.is_empty() && rest.iter().all(|item| item == first) => {
                out.push('[');
                format(out, first);
                let _ = write!(out, "; {}]", items.len());
            }
            _ => tuple(out, items),
        },
    }
}

/// Whether a payload written with the shape `old` is read correctly by the shape
/// `new` because `new` only adds enum variants after the existing ones: every line of
/// `old` is in `new` unchanged, or, for an enum, with more variants at its end. Lines
/// are matched by container name (the first line, the event's own, by position).
pub(crate) fn only_appends_variants(old: &str, new: &str) -> bool {
    let mut old_lines = old.lines();
    let mut new_lines = new.lines();
    let (Some(old_root), Some(new_root)) = (old_lines.next(), new_lines.next()) else {
        return false;
    };
    if !line_extends(old_root, new_root) {
        return false;
    }
    let new_by_name: BTreeMap<&str, &str> = new_lines.map(|line| (line_name(line), line)).collect();
    old_lines.all(|old_line| {
        new_by_name
            .get(line_name(old_line))
            .is_some_and(|new_line| line_extends(old_line, new_line))
    })
}

fn line_extends(old: &str, new: &str) -> bool {
    if old == new {
        return true;
    }
    old.starts_with("enum ")
        && old
            .strip_suffix(" }")
            .and_then(|prefix| new.strip_prefix(prefix))
            .is_some_and(|rest| rest.starts_with(", ") && rest.ends_with(" }"))
}

/// The container name of a shape line (`struct Name ...`, `enum Name ...`).
fn line_name(line: &str) -> &str {
    let rest = line.split_once(' ').map_or(line, |(_, rest)| rest);
    let end = rest.find([' ', '(', ';', '{']).unwrap_or(rest.len());
    &rest[..end]
}
