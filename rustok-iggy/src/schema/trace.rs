//! A tracing `Deserializer`: it drives a type's `Deserialize` impl and records what it
//! asks for (the serde data model), every variant of every enum it reaches.
//!
//! Why not `serde-reflection`: it cuts the exploration of a field whose format is
//! already known, so the variants of an enum nested in a struct are found only by
//! tracing that enum's Rust type on its own, which a generic fingerprint cannot name.
//! This tracer re-walks the whole type on each pass and picks, at each enum, a variant
//! not explored yet (else the next one in turn), until every variant of every enum it
//! has seen is explored.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::value::U32Deserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

/// The format of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Format {
    /// Not known (a slot not filled).
    Unknown,
    /// A named container (struct or enum): see the registry.
    Named(String),
    /// A primitive: `bool`, `u32`, `str`, `bytes`, `()`...
    Primitive(&'static str),
    /// `Option<T>`.
    Option(Box<Format>),
    /// A sequence.
    Seq(Box<Format>),
    /// A map.
    Map(Box<Format>, Box<Format>),
    /// A tuple (also a fixed-size array).
    Tuple(Vec<Format>),
}

/// The payload of a struct or of an enum variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fields {
    /// No payload.
    Unit,
    /// One unnamed value.
    NewType(Format),
    /// Unnamed values.
    Tuple(Vec<Format>),
    /// Named values, in order.
    Struct(Vec<(&'static str, Format)>),
}

/// A named container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Container {
    /// A struct.
    Struct(Fields),
    /// An enum: every variant by index (its declaration order), with its name and its
    /// payload once explored.
    Enum(Vec<(&'static str, Option<Fields>)>),
}

/// Containers by serde name.
pub(super) type Registry = BTreeMap<String, Container>;

/// Passes over the type before giving up (each explores at least one new variant).
const MAX_PASSES: usize = 4096;

/// Traces `T`: its root format and every container it reaches.
pub(super) fn trace<T: DeserializeOwned>() -> Result<(Format, Registry), TraceError> {
    let mut state = State::default();
    for _ in 0..MAX_PASSES {
        let mut root = Format::Unknown;
        state.stack.clear();
        T::deserialize(Tracer {
            state: &mut state,
            out: &mut root,
        })?;
        let complete = state.registry.values().all(|container| match container {
            Container::Enum(variants) => variants.iter().all(|(_, fields)| fields.is_some()),
            Container::Struct(_) => true,
        });
        if complete {
            return Ok((root, state.registry));
        }
    }
    Err(TraceError(format!(
        "enum variants still unexplored after {MAX_PASSES} passes"
    )))
}

/// Why tracing stopped.
#[derive(Debug)]
pub(super) struct TraceError(pub(super) String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TraceError {}

impl de::Error for TraceError {
    fn custom<M: fmt::Display>(message: M) -> Self {
        Self(message.to_string())
    }
}

#[derive(Default)]
struct State {
    registry: Registry,
    /// Per enum, how many times it was visited once fully explored (to take each
    /// variant in turn, so that enums nested in any of them are reached again).
    turns: BTreeMap<String, usize>,
    /// Containers being traced, outermost first: one met again is a recursive type.
    stack: Vec<String>,
}

impl State {
    fn enter(&mut self, name: &str) -> Result<(), TraceError> {
        if self.stack.iter().any(|open| open == name) {
            return Err(TraceError(format!(
                "{name} contains itself (recursive types are not traced)"
            )));
        }
        self.stack.push(name.to_owned());
        Ok(())
    }

    fn leave(&mut self) {
        self.stack.pop();
    }

    /// The variant to take at enum `name` this time.
    fn choose(&mut self, name: &str, variants: &'static [&'static str]) -> u32 {
        let container = self
            .registry
            .entry(name.to_owned())
            .or_insert_with(|| Container::Enum(variants.iter().map(|v| (*v, None)).collect()));
        let unexplored = match container {
            Container::Enum(known) => known.iter().position(|(_, fields)| fields.is_none()),
            Container::Struct(_) => None,
        };
        let index = unexplored.unwrap_or_else(|| {
            let turn = self.turns.entry(name.to_owned()).or_insert(0);
            *turn += 1;
            *turn % variants.len().max(1)
        });
        u32::try_from(index).unwrap_or(0)
    }

    fn record_variant(&mut self, name: &str, index: u32, fields: Fields) {
        let slot = match self.registry.get_mut(name) {
            Some(Container::Enum(variants)) => usize::try_from(index)
                .ok()
                .and_then(|i| variants.get_mut(i)),
            _ => None,
        };
        if let Some((_, slot)) = slot {
            *slot = Some(fields);
        }
    }
}

/// A 16-byte default for `bytes`: a UUID deserializes from it in binary form.
const BYTES: &[u8] = &[0; 16];

struct Tracer<'a> {
    state: &'a mut State,
    out: &'a mut Format,
}

impl<'a> Tracer<'a> {
    fn primitive(self, name: &'static str) {
        *self.out = Format::Primitive(name);
    }

    /// Deserializes a struct-like payload of `len` unnamed values.
    fn values<'de, V: Visitor<'de>>(
        state: &mut State,
        len: usize,
        visitor: V,
    ) -> Result<(V::Value, Vec<Format>), TraceError> {
        let mut slots = vec![Format::Unknown; len];
        let value = visitor.visit_seq(Values {
            state,
            slots: slots.iter_mut(),
        })?;
        Ok((value, slots))
    }
}

macro_rules! primitives {
    ($($method:ident => $name:literal, $visit:ident($($value:expr)?);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
                self.primitive($name);
                visitor.$visit($($value)?)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = TraceError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, TraceError> {
        Err(TraceError(
            "it needs a self-describing format (deserialize_any)".to_owned(),
        ))
    }

    primitives! {
        deserialize_bool => "bool", visit_bool(false);
        deserialize_i8 => "i8", visit_i8(0);
        deserialize_i16 => "i16", visit_i16(0);
        deserialize_i32 => "i32", visit_i32(0);
        deserialize_i64 => "i64", visit_i64(0);
        deserialize_i128 => "i128", visit_i128(0);
        deserialize_u8 => "u8", visit_u8(0);
        deserialize_u16 => "u16", visit_u16(0);
        deserialize_u32 => "u32", visit_u32(0);
        deserialize_u64 => "u64", visit_u64(0);
        deserialize_u128 => "u128", visit_u128(0);
        deserialize_f32 => "f32", visit_f32(0.0);
        deserialize_f64 => "f64", visit_f64(0.0);
        deserialize_char => "char", visit_char('\0');
        deserialize_str => "str", visit_borrowed_str("");
        deserialize_string => "str", visit_string(String::new());
        deserialize_bytes => "bytes", visit_borrowed_bytes(BYTES);
        deserialize_byte_buf => "bytes", visit_byte_buf(BYTES.to_vec());
        deserialize_unit => "()", visit_unit();
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let mut inner = Format::Unknown;
        let value = visitor.visit_some(Tracer {
            state: self.state,
            out: &mut inner,
        })?;
        *self.out = Format::Option(Box::new(inner));
        Ok(value)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.state
            .registry
            .insert(name.to_owned(), Container::Struct(Fields::Unit));
        *self.out = Format::Named(name.to_owned());
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.state.enter(name)?;
        let mut inner = Format::Unknown;
        let value = visitor.visit_newtype_struct(Tracer {
            state: self.state,
            out: &mut inner,
        })?;
        self.state.leave();
        self.state
            .registry
            .insert(name.to_owned(), Container::Struct(Fields::NewType(inner)));
        *self.out = Format::Named(name.to_owned());
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let (value, mut slots) = Self::values(self.state, 1, visitor)?;
        *self.out = Format::Seq(Box::new(slots.pop().unwrap_or(Format::Unknown)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, slots) = Self::values(self.state, len, visitor)?;
        *self.out = Format::Tuple(slots);
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.state.enter(name)?;
        let (value, slots) = Self::values(self.state, len, visitor)?;
        self.state.leave();
        self.state
            .registry
            .insert(name.to_owned(), Container::Struct(Fields::Tuple(slots)));
        *self.out = Format::Named(name.to_owned());
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        let (mut key, mut value_format) = (Format::Unknown, Format::Unknown);
        let value = visitor.visit_map(Entry {
            state: self.state,
            key: Some(&mut key),
            value: Some(&mut value_format),
        })?;
        *self.out = Format::Map(Box::new(key), Box::new(value_format));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        self.state.enter(name)?;
        let (value, slots) = Self::values(self.state, fields.len(), visitor)?;
        self.state.leave();
        let named = fields.iter().copied().zip(slots).collect();
        self.state
            .registry
            .insert(name.to_owned(), Container::Struct(Fields::Struct(named)));
        *self.out = Format::Named(name.to_owned());
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        if variants.is_empty() {
            return Err(TraceError(format!("enum {name} has no variants")));
        }
        let index = self.state.choose(name, variants);
        self.state.enter(name)?;
        let mut fields = Fields::Unit;
        let value = visitor.visit_enum(Variant {
            state: self.state,
            index,
            fields: &mut fields,
        })?;
        self.state.leave();
        self.state.record_variant(name, index, fields);
        *self.out = Format::Named(name.to_owned());
        Ok(value)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, TraceError> {
        self.deserialize_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        // Postcard is not human-readable: types with two forms (UUIDs, addresses)
        // trace in their binary one.
        false
    }
}

/// The values of a sequence, tuple or struct, one slot each.
struct Values<'a, 's> {
    state: &'a mut State,
    slots: std::slice::IterMut<'s, Format>,
}

impl<'de> SeqAccess<'de> for Values<'_, '_> {
    type Error = TraceError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, TraceError> {
        match self.slots.next() {
            Some(out) => seed
                .deserialize(Tracer {
                    state: self.state,
                    out,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.slots.len())
    }
}

/// One entry of a map.
struct Entry<'a, 's> {
    state: &'a mut State,
    key: Option<&'s mut Format>,
    value: Option<&'s mut Format>,
}

impl<'de> MapAccess<'de> for Entry<'_, '_> {
    type Error = TraceError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, TraceError> {
        match self.key.take() {
            Some(out) => seed
                .deserialize(Tracer {
                    state: self.state,
                    out,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, TraceError> {
        let out = self
            .value
            .take()
            .ok_or_else(|| TraceError("a map value without its key".to_owned()))?;
        seed.deserialize(Tracer {
            state: self.state,
            out,
        })
    }
}

/// The variant chosen at an enum, and its payload's slot.
struct Variant<'a, 's> {
    state: &'a mut State,
    index: u32,
    fields: &'s mut Fields,
}

impl<'de, 'a, 's> EnumAccess<'de> for Variant<'a, 's> {
    type Error = TraceError;
    type Variant = Self;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self), TraceError> {
        let variant = seed.deserialize(U32Deserializer::<TraceError>::new(self.index))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, '_> {
    type Error = TraceError;

    fn unit_variant(self) -> Result<(), TraceError> {
        *self.fields = Fields::Unit;
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, TraceError> {
        let mut inner = Format::Unknown;
        let value = seed.deserialize(Tracer {
            state: self.state,
            out: &mut inner,
        })?;
        *self.fields = Fields::NewType(inner);
        Ok(value)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, slots) = Tracer::values(self.state, len, visitor)?;
        *self.fields = Fields::Tuple(slots);
        Ok(value)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, TraceError> {
        let (value, slots) = Tracer::values(self.state, fields.len(), visitor)?;
        *self.fields = Fields::Struct(fields.iter().copied().zip(slots).collect());
        Ok(value)
    }
}
