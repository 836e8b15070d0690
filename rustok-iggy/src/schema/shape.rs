//! Tracing a type's serde shape and rendering it as canonical text.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_reflection::{
    ContainerFormat, Error as TraceError, Format, Named, Registry, Samples, Tracer, TracerConfig,
    VariantFormat,
};

use super::SchemaError;

/// Rounds of tracing before giving up: each round can discover one more variant of
/// each enum, so this bounds the variants per enum, not the size of the type.
const MAX_ROUNDS: usize = 4096;

/// A traced type: its root format and the containers it reaches.
pub(super) struct Traced {
    root: Format,
    registry: Registry,
}

/// Traces `T` through its `Deserialize` impl, every variant of every enum it reaches.
pub(super) fn trace<T: DeserializeOwned>(type_name: &str) -> Result<Traced, SchemaError> {
    let untraceable = |reason: String| SchemaError::Untraceable {
        type_name: type_name.to_owned(),
        reason,
    };
    // Postcard is not human-readable: types with two forms (UUIDs, addresses) trace in
    // their binary one. A UUID deserializes from 16 bytes.
    let config = || {
        TracerConfig::default()
            .is_human_readable(false)
            .default_borrowed_bytes_value(&[0; 16])
            .default_byte_buf_value(vec![0; 16])
    };
    let samples = Samples::new();
    // Enums found nested in `T` (learnt from a round that ended incomplete): their
    // "incomplete" mark is cleared between rounds so that the next round visits their
    // next variant.
    let mut enums: BTreeSet<String> = BTreeSet::new();
    for _ in 0..MAX_ROUNDS {
        let mut tracer = Tracer::new(config());
        let mut root = None;
        for _ in 0..MAX_ROUNDS {
            let (format, _) = tracer
                .trace_type_once::<T>(&samples)
                .map_err(|e| untraceable(e.to_string()))?;
            let mut again = false;
            if let Format::TypeName(name) = &format {
                again |= tracer.check_incomplete_enum(name).is_some();
            }
            for name in &enums {
                again |= tracer.check_incomplete_enum(name).is_some();
            }
            root = Some(format);
            if !again {
                break;
            }
        }
        let root = root.unwrap_or(Format::Unit);
        match tracer.registry() {
            Ok(registry) => return Ok(Traced { root, registry }),
            Err(TraceError::MissingVariants(names)) => {
                let before = enums.len();
                enums.extend(names);
                if enums.len() == before {
                    return Err(untraceable(format!(
                        "enum variants still missing after {MAX_ROUNDS} rounds"
                    )));
                }
            }
            Err(other) => return Err(untraceable(other.to_string())),
        }
    }
    Err(untraceable(format!(
        "enum variants still missing after {MAX_ROUNDS} rounds"
    )))
}

impl Traced {
    /// How many variants the root has, when it is an enum.
    pub(super) fn variants_count(&self) -> Option<usize> {
        match self.root_container()? {
            (_, ContainerFormat::Enum(variants)) => Some(variants.len()),
            _ => None,
        }
    }

    fn root_container(&self) -> Option<(&str, &ContainerFormat)> {
        match &self.root {
            Format::TypeName(name) => self
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
                // The root's own line is already written (it appears again only when
                // it is recursive, which tracing refuses).
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
        let Some((_, ContainerFormat::Enum(variants))) = self.root_container() else {
            return self.whole();
        };
        let Some((serde_index, variant)) = variants.iter().nth(index) else {
            return self.whole();
        };
        let mut out = format!("variant {serde_index} {}", variant.name);
        variant_format(&mut out, &variant.value);
        let mut reached = BTreeSet::new();
        collect_variant(&variant.value, &self.registry, &mut reached);
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
        Format::TypeName(name) if reached.insert(name.clone()) => {
            if let Some(container) = registry.get(name) {
                collect_container(container, registry, reached);
            }
        }
        Format::Option(inner) | Format::Seq(inner) => collect(inner, registry, reached),
        Format::TupleArray { content, .. } => collect(content, registry, reached),
        Format::Map { key, value } => {
            collect(key, registry, reached);
            collect(value, registry, reached);
        }
        Format::Tuple(items) => items.iter().for_each(|f| collect(f, registry, reached)),
        _ => {}
    }
}

fn collect_container(
    container: &ContainerFormat,
    registry: &Registry,
    reached: &mut BTreeSet<String>,
) {
    match container {
        ContainerFormat::UnitStruct => {}
        ContainerFormat::NewTypeStruct(inner) => collect(inner, registry, reached),
        ContainerFormat::TupleStruct(items) => {
            items.iter().for_each(|f| collect(f, registry, reached));
        }
        ContainerFormat::Struct(fields) => {
            fields
                .iter()
                .for_each(|f| collect(&f.value, registry, reached));
        }
        ContainerFormat::Enum(variants) => variants
            .values()
            .for_each(|v| collect_variant(&v.value, registry, reached)),
    }
}

fn collect_variant(variant: &VariantFormat, registry: &Registry, reached: &mut BTreeSet<String>) {
    match variant {
        VariantFormat::NewType(inner) => collect(inner, registry, reached),
        VariantFormat::Tuple(items) => items.iter().for_each(|f| collect(f, registry, reached)),
        VariantFormat::Struct(fields) => {
            fields
                .iter()
                .for_each(|f| collect(&f.value, registry, reached));
        }
        VariantFormat::Unit | VariantFormat::Variable(_) => {}
    }
}

/// One line (without a name for the event's own): `struct Name { a: u32 }`, `struct Name(u8, str)`, `struct Name;`,
/// `enum Name { 0 A, 1 B(u32), 2 C { x: str } }`.
fn container_line(out: &mut String, name: Option<&str>, container: &ContainerFormat) {
    let name = name.map_or_else(String::new, |name| format!(" {name}"));
    match container {
        ContainerFormat::UnitStruct => {
            let _ = write!(out, "struct{name};");
        }
        ContainerFormat::NewTypeStruct(inner) => {
            let _ = write!(out, "struct{name}(");
            format(out, inner);
            out.push(')');
        }
        ContainerFormat::TupleStruct(items) => {
            let _ = write!(out, "struct{name}");
            tuple(out, items);
        }
        ContainerFormat::Struct(fields) => {
            let _ = write!(out, "struct{name}");
            named(out, fields);
        }
        ContainerFormat::Enum(variants) => {
            let _ = write!(out, "enum{name} {{");
            let mut first = true;
            for (index, variant) in variants {
                out.push_str(if first { " " } else { ", " });
                first = false;
                let _ = write!(out, "{index} {}", variant.name);
                variant_format(out, &variant.value);
            }
            out.push_str(" }");
        }
    }
}

fn variant_format(out: &mut String, variant: &VariantFormat) {
    match variant {
        VariantFormat::Unit | VariantFormat::Variable(_) => {}
        VariantFormat::NewType(inner) => {
            out.push('(');
            format(out, inner);
            out.push(')');
        }
        VariantFormat::Tuple(items) => tuple(out, items),
        VariantFormat::Struct(fields) => named(out, fields),
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

fn named(out: &mut String, fields: &[Named<Format>]) {
    out.push_str(" {");
    for (i, field) in fields.iter().enumerate() {
        out.push_str(if i > 0 { ", " } else { " " });
        let _ = write!(out, "{}: ", field.name);
        format(out, &field.value);
    }
    out.push_str(if fields.is_empty() { "}" } else { " }" });
}

fn format(out: &mut String, format_: &Format) {
    let primitive = match format_ {
        Format::Variable(_) => "?",
        Format::TypeName(name) => name,
        Format::Unit => "()",
        Format::Bool => "bool",
        Format::I8 => "i8",
        Format::I16 => "i16",
        Format::I32 => "i32",
        Format::I64 => "i64",
        Format::I128 => "i128",
        Format::U8 => "u8",
        Format::U16 => "u16",
        Format::U32 => "u32",
        Format::U64 => "u64",
        Format::U128 => "u128",
        Format::F32 => "f32",
        Format::F64 => "f64",
        Format::Char => "char",
        Format::Str => "str",
        Format::Bytes => "bytes",
        Format::Option(inner) => {
            out.push_str("option<");
            format(out, inner);
            out.push('>');
            return;
        }
        Format::Seq(inner) => {
            out.push_str("seq<");
            format(out, inner);
            out.push('>');
            return;
        }
        Format::Map { key, value } => {
            out.push_str("map<");
            format(out, key);
            out.push_str(", ");
            format(out, value);
            out.push('>');
            return;
        }
        Format::Tuple(items) => {
            tuple(out, items);
            return;
        }
        Format::TupleArray { content, size } => {
            out.push('[');
            format(out, content);
            let _ = write!(out, "; {size}]");
            return;
        }
    };
    out.push_str(primitive);
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
