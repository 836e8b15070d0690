//! Messages as the connector sees them: bytes, an id, user headers.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

/// Largest payload of one message (the Iggy limit).
pub const MAX_PAYLOAD_SIZE: usize = 64 * 1000 * 1000;

/// Kind codes of Iggy user-header values (the same numbers the Iggy protocol uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderKind {
    /// Opaque bytes.
    Raw,
    /// UTF-8 text.
    String,
    /// One byte, 0 or 1.
    Bool,
    /// Little-endian `u64`.
    Uint64,
    /// Little-endian `i64`.
    Int64,
    /// Any other kind code defined by Iggy (kept as it came).
    Other(u8),
}

impl HeaderKind {
    /// The wire code of this kind.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Self::Raw => 1,
            Self::String => 2,
            Self::Bool => 3,
            Self::Int64 => 7,
            Self::Uint64 => 12,
            Self::Other(code) => code,
        }
    }

    /// The kind for a wire code.
    #[must_use]
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Raw,
            2 => Self::String,
            3 => Self::Bool,
            7 => Self::Int64,
            12 => Self::Uint64,
            other => Self::Other(other),
        }
    }
}

/// Longest header key or value, in bytes (a limit of the Iggy wire format).
pub const MAX_HEADER_FIELD_LENGTH: usize = 255;

/// A user-header value: a kind and its bytes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HeaderValue {
    kind: HeaderKind,
    bytes: Bytes,
}

impl HeaderValue {
    /// A text value.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            kind: HeaderKind::String,
            bytes: Bytes::from(value.into()),
        }
    }

    /// A text value that lives for the whole program: no allocation.
    #[must_use]
    pub fn from_static(value: &'static str) -> Self {
        Self {
            kind: HeaderKind::String,
            bytes: Bytes::from_static(value.as_bytes()),
        }
    }

    /// A text value from bytes shared with other values (a slice of one buffer, a
    /// value reused across messages): no copy. Refused when it is not UTF-8.
    pub fn shared_str(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Self {
            kind: HeaderKind::String,
            bytes,
        })
    }

    /// An opaque byte value.
    pub fn raw(value: impl Into<Bytes>) -> Self {
        Self {
            kind: HeaderKind::Raw,
            bytes: value.into(),
        }
    }

    /// A `u64` value.
    #[must_use]
    pub fn u64(value: u64) -> Self {
        Self {
            kind: HeaderKind::Uint64,
            bytes: Bytes::copy_from_slice(&value.to_le_bytes()),
        }
    }

    /// A value of any kind, from its bytes as they travel on the wire.
    #[must_use]
    pub fn from_parts(kind: HeaderKind, bytes: Bytes) -> Self {
        Self { kind, bytes }
    }

    /// The value's kind.
    #[must_use]
    pub fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// The value's bytes as they travel on the wire.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as text, if it is a text value.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        self.borrowed().as_str()
    }

    /// The value as a `u64`, if it is one.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        self.borrowed().as_u64()
    }

    /// The value as a borrowed view (what [`Headers::get`] returns).
    #[must_use]
    pub fn borrowed(&self) -> HeaderValueRef<'_> {
        HeaderValueRef {
            kind: self.kind,
            bytes: &self.bytes,
        }
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.borrowed(), f)
    }
}

/// A user-header value borrowed from its [`Headers`]: a kind and its bytes. Headers
/// read from a record are looked up where they lie in it, so a lookup neither
/// allocates nor copies.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderValueRef<'a> {
    kind: HeaderKind,
    bytes: &'a [u8],
}

impl<'a> HeaderValueRef<'a> {
    /// The value's kind.
    #[must_use]
    pub fn kind(self) -> HeaderKind {
        self.kind
    }

    /// The value's bytes as they travel on the wire.
    #[must_use]
    pub fn as_bytes(self) -> &'a [u8] {
        self.bytes
    }

    /// The value as text, if it is a text value.
    #[must_use]
    pub fn as_str(self) -> Option<&'a str> {
        match self.kind {
            HeaderKind::String => std::str::from_utf8(self.bytes).ok(),
            _ => None,
        }
    }

    /// The value as a `u64`, if it is one.
    #[must_use]
    pub fn as_u64(self) -> Option<u64> {
        match self.kind {
            HeaderKind::Uint64 => Some(u64::from_le_bytes(self.bytes.try_into().ok()?)),
            _ => None,
        }
    }

    /// An owned copy of the value.
    #[must_use]
    pub fn to_value(self) -> HeaderValue {
        HeaderValue::from_parts(self.kind, Bytes::copy_from_slice(self.bytes))
    }
}

impl fmt::Debug for HeaderValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_str() {
            Some(text) => fmt::Debug::fmt(text, f),
            None => write!(f, "{:?}({} bytes)", self.kind, self.bytes.len()),
        }
    }
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A key or value is empty or longer than 255 bytes.
    #[error("header {key:?}: keys and values must be 1 to 255 bytes long (got {len})")]
    Length {
        /// The header key (possibly cut).
        key: String,
        /// The offending length.
        len: usize,
    },
}

/// User headers of a message: ordered text keys with typed values.
///
/// Keys and values are 1 to 255 bytes (a limit of the Iggy wire format). Setting an
/// existing key replaces its value.
///
/// Keys and values are [`Bytes`]: a static name costs no allocation. Headers read
/// from a stored or polled record stay the record's encoded bytes (one shared slice
/// of its buffer, no list, no copy): a lookup reads them in place, and only a change
/// turns them into a list.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Entries,
}

type Entry = (HeaderKey, HeaderValue);

/// The entries: as read ([`Wire`]), or a [`List`].
#[derive(Clone)]
enum Entries {
    List(List),
    Wire(Wire),
}

impl Default for Entries {
    fn default() -> Self {
        Self::List(List::default())
    }
}

impl PartialEq for Entries {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Entries {}

impl Entries {
    fn len(&self) -> usize {
        match self {
            Self::List(list) => list.as_slice().len(),
            Self::Wire(wire) => wire.len,
        }
    }

    /// The entries with their keys as bytes (no UTF-8 check per key).
    fn raw_iter(&self) -> impl Iterator<Item = (&[u8], HeaderValueRef<'_>)> {
        let (list, wire) = match self {
            Self::List(list) => (Some(list.as_slice().iter()), None),
            Self::Wire(wire) => (
                None,
                Some(iggy_binary_protocol::WireUserHeaderIterator::new(
                    &wire.bytes,
                )),
            ),
        };
        let list = list
            .into_iter()
            .flatten()
            .map(|(k, v)| (&k.0[..], v.borrowed()));
        let wire = wire.into_iter().flatten().map(|entry| {
            (
                entry.key,
                HeaderValueRef {
                    kind: HeaderKind::from_code(entry.value_kind.0),
                    bytes: entry.value,
                },
            )
        });
        list.chain(wire)
    }

    fn iter(&self) -> Iter<'_> {
        match self {
            Self::List(list) => Iter::List(list.as_slice().iter()),
            Self::Wire(wire) => Iter::Wire(iggy_binary_protocol::WireUserHeaderIterator::new(
                &wire.bytes,
            )),
        }
    }

    /// The entries as a list, to change (headers as read are parsed into one first).
    fn list(&mut self) -> &mut List {
        if let Self::Wire(wire) = self {
            let list = wire.to_list();
            *self = Self::List(list);
        }
        match self {
            Self::List(list) => list,
            Self::Wire(_) => unreachable!("turned into a list above"),
        }
    }
}

/// Headers as read: their encoded bytes (validated, every key UTF-8), a slice of
/// the record they came with.
#[derive(Clone)]
struct Wire {
    bytes: Bytes,
    len: usize,
}

impl Wire {
    fn to_list(&self) -> List {
        let owned = iggy_binary_protocol::WireUserHeaderIterator::new(&self.bytes)
            .map(|entry| {
                (
                    HeaderKey(self.bytes.slice_ref(entry.key)),
                    HeaderValue::from_parts(
                        HeaderKind::from_code(entry.value_kind.0),
                        self.bytes.slice_ref(entry.value),
                    ),
                )
            })
            .collect();
        List {
            owned,
            shared: None,
            len: 0,
        }
    }
}

/// The entries of [`Headers::iter`].
enum Iter<'a> {
    List(std::slice::Iter<'a, Entry>),
    Wire(iggy_binary_protocol::WireUserHeaderIterator<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, HeaderValueRef<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::List(entries) => entries.next().map(|(k, v)| (k.as_str(), v.borrowed())),
            Self::Wire(entries) => entries.next().map(|entry| {
                (
                    // Every key of a `Wire` is UTF-8 (checked when it was read).
                    std::str::from_utf8(entry.key).unwrap_or_default(),
                    HeaderValueRef {
                        kind: HeaderKind::from_code(entry.value_kind.0),
                        bytes: entry.value,
                    },
                )
            }),
        }
    }
}

/// A list being built, or a list shared by its clones (a delivery and its copy of the
/// headers, a publish and the copy kept for its retry, cost one reference count, not
/// a copy).
///
/// A list made with a capacity ([`Headers::with_capacity`]) is one shared allocation
/// from the start, filled in place while no clone shares it. A change to a list a
/// clone shares, or beyond its capacity, copies it first.
#[derive(Clone, Default)]
struct List {
    /// The entries, while `shared` is not set.
    owned: Vec<Entry>,
    /// When set, the entries are its first `len` (and `owned` is empty); the rest are
    /// free slots (empty keys and values, which own no memory).
    shared: Option<Arc<[Entry]>>,
    len: usize,
}

/// A free slot of a shared list.
fn free_slot() -> Entry {
    (
        HeaderKey(Bytes::new()),
        HeaderValue::from_parts(HeaderKind::Raw, Bytes::new()),
    )
}

impl List {
    /// An empty shared list with room for `capacity` entries: one allocation.
    fn with_capacity(capacity: usize) -> Self {
        if capacity == 0 {
            return Self::default();
        }
        // A counted range: the shared list is allocated once, at its size.
        Self {
            owned: Vec::new(),
            shared: Some((0..capacity).map(|_| free_slot()).collect()),
            len: 0,
        }
    }

    fn as_slice(&self) -> &[Entry] {
        match &self.shared {
            Some(shared) => &shared[..self.len],
            None => &self.owned,
        }
    }

    /// The shared list's slots, when no clone shares it (changed in place).
    fn unshared_slots(&mut self) -> Option<&mut [Entry]> {
        self.shared.as_mut().and_then(Arc::get_mut)
    }

    /// The list as an owned one (a shared list is moved out when no clone shares
    /// it, else copied).
    fn to_mut(&mut self) -> &mut Vec<Entry> {
        let len = std::mem::take(&mut self.len);
        if let Some(mut shared) = self.shared.take() {
            self.owned = match Arc::get_mut(&mut shared) {
                Some(slots) => slots[..len]
                    .iter_mut()
                    .map(|slot| std::mem::replace(slot, free_slot()))
                    .collect(),
                None => shared[..len].to_vec(),
            };
        }
        &mut self.owned
    }

    /// The entries, to change in place (a shared list a clone shares is copied
    /// first).
    fn as_mut_slice(&mut self) -> &mut [Entry] {
        if self.shared.is_some() && self.unshared_slots().is_none() {
            self.to_mut();
        }
        match self.shared.as_mut().and_then(Arc::get_mut) {
            Some(slots) => &mut slots[..self.len],
            None => &mut self.owned,
        }
    }

    fn push(&mut self, entry: Entry) {
        let len = self.len;
        if let Some(slot) = self.unshared_slots().and_then(|slots| slots.get_mut(len)) {
            *slot = entry;
            self.len += 1;
            return;
        }
        self.to_mut().push(entry);
    }

    /// Removes the entry at `index` (< the length).
    fn remove(&mut self, index: usize) -> Entry {
        let len = self.len;
        if let Some(slots) = self.unshared_slots() {
            slots[index..len].rotate_left(1);
            let removed = std::mem::replace(&mut slots[len - 1], free_slot());
            self.len -= 1;
            return removed;
        }
        self.to_mut().remove(index)
    }
}

/// A header key: UTF-8 bytes (checked when the key is made).
#[derive(Clone, PartialEq, Eq)]
struct HeaderKey(Bytes);

impl HeaderKey {
    fn as_str(&self) -> &str {
        // Always UTF-8: every constructor checks it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    fn is(&self, key: &str) -> bool {
        self.0 == key.as_bytes()
    }
}

impl Headers {
    /// No headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// No headers, with room for `capacity` without reallocating: one allocation, at
    /// its size, that clones of these headers share (a clone costs a reference count;
    /// a change to headers a clone shares copies them first).
    #[must_use]
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Entries::List(List::with_capacity(capacity)),
        }
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: HeaderValue,
    ) -> Result<(), HeaderError> {
        self.insert_key(HeaderKey(Bytes::from(key.into())), value)
    }

    /// [`Headers::insert`] with a key that lives for the whole program (the names a
    /// library writes on every message): the key costs no allocation.
    pub fn insert_static(
        &mut self,
        key: &'static str,
        value: HeaderValue,
    ) -> Result<(), HeaderError> {
        self.insert_key(HeaderKey(Bytes::from_static(key.as_bytes())), value)
    }

    fn insert_key(&mut self, key: HeaderKey, value: HeaderValue) -> Result<(), HeaderError> {
        for len in [key.0.len(), value.as_bytes().len()] {
            if len == 0 || len > MAX_HEADER_FIELD_LENGTH {
                return Err(HeaderError::Length {
                    key: key.as_str().chars().take(64).collect(),
                    len,
                });
            }
        }
        let list = self.entries.list();
        match list.as_slice().iter().position(|(k, _)| *k == key) {
            Some(index) => list.as_mut_slice()[index].1 = value,
            None => list.push((key, value)),
        }
        Ok(())
    }

    /// Sets a text header.
    pub fn insert_str(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), HeaderError> {
        self.insert(key, HeaderValue::string(value))
    }

    /// The value of `key` (read in place: no allocation, no copy).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<HeaderValueRef<'_>> {
        self.entries
            .raw_iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, value)| value)
    }

    /// The values of several `keys` in one pass over the headers (the first entry of a
    /// repeated key counts, as for [`Headers::get`]).
    #[must_use]
    pub fn get_many<const N: usize>(&self, keys: [&str; N]) -> [Option<HeaderValueRef<'_>>; N] {
        let mut found = [None; N];
        let mut missing = N;
        for (key, value) in self.entries.raw_iter() {
            if let Some(index) = keys.iter().position(|k| k.as_bytes() == key)
                && found[index].is_none()
            {
                found[index] = Some(value);
                missing -= 1;
                if missing == 0 {
                    break;
                }
            }
        }
        found
    }

    /// The text value of `key`, if it is text.
    #[must_use]
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(HeaderValueRef::as_str)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<HeaderValue> {
        self.get(key)?;
        let list = self.entries.list();
        let index = list.as_slice().iter().position(|(k, _)| k.is(key))?;
        Some(list.remove(index).1)
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, HeaderValueRef<'_>)> {
        self.entries.iter()
    }

    /// How many headers there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes the headers in the Iggy user-header TLV format:
    /// `[key_kind u8][key_len u32][key][value_kind u8][value_len u32][value]` per entry.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        match &self.entries {
            Entries::List(list) => list
                .as_slice()
                .iter()
                .map(|(k, v)| 10 + k.0.len() + v.as_bytes().len())
                .sum(),
            Entries::Wire(wire) => wire.bytes.len(),
        }
    }

    /// Appends the TLV encoding (see [`Headers::encoded_len`]) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let list = match &self.entries {
            Entries::List(list) => list,
            Entries::Wire(wire) => {
                out.extend_from_slice(&wire.bytes);
                return;
            }
        };
        for (key, value) in list.as_slice() {
            out.push(HeaderKind::String.code());
            out.extend_from_slice(&(key.0.len() as u32).to_le_bytes());
            out.extend_from_slice(&key.0);
            out.push(value.kind.code());
            out.extend_from_slice(&(value.as_bytes().len() as u32).to_le_bytes());
            out.extend_from_slice(value.as_bytes());
        }
    }

    /// Decodes the TLV user-header format. Keys that are not text are kept with their
    /// bytes read as lossy UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::WireError> {
        let buffer = Bytes::copy_from_slice(bytes);
        Self::decode_shared(&buffer, &buffer)
    }

    /// [`Headers::decode`] of `bytes`, a part of `buffer`: keys and values are slices
    /// of `buffer` (no copy; one allocation for the list).
    ///
    /// # Panics
    /// When `bytes` is not a part of `buffer`.
    pub fn decode_shared(buffer: &Bytes, bytes: &[u8]) -> Result<Self, crate::WireError> {
        let count = iggy_binary_protocol::validate_user_headers(bytes)?;
        let wire = Wire {
            bytes: buffer.slice_ref(bytes),
            len: count as usize,
        };
        // Kept as read only when they encode as their list would: every key a
        // string (kind and bytes), as `encode_into` writes keys.
        let text_keys = iggy_binary_protocol::WireUserHeaderIterator::new(bytes).all(|entry| {
            entry.key_kind.0 == HeaderKind::String.code() && std::str::from_utf8(entry.key).is_ok()
        });
        if text_keys {
            return Ok(Self {
                entries: Entries::Wire(wire),
            });
        }
        // Keys that are not text are kept with their bytes read as lossy UTF-8 (and
        // every key is written back as a string).
        let mut list = wire.to_list();
        for (key, _) in &mut list.owned {
            if std::str::from_utf8(&key.0).is_err() {
                key.0 = Bytes::from(String::from_utf8_lossy(&key.0).into_owned());
            }
        }
        Ok(Self {
            entries: Entries::List(list),
        })
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A message to publish.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The message id (for typed events, the event id). 0 asks the connector to mint a
    /// random UUIDv4, as the Iggy SDK does.
    pub id: u128,
    /// The payload bytes.
    pub payload: Bytes,
    /// User headers.
    pub headers: Headers,
}

impl OutgoingMessage {
    /// A message with `payload`, a fresh id and no headers.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        Self {
            id: 0,
            payload: payload.into(),
            headers: Headers::new(),
        }
    }

    /// Refuses a payload over [`MAX_PAYLOAD_SIZE`] (the Iggy limit).
    pub fn check_size(&self) -> Result<(), crate::ConnectorError> {
        if self.payload.len() > MAX_PAYLOAD_SIZE {
            return Err(crate::ConnectorError::InvalidRequest(format!(
                "a payload of {} bytes exceeds the limit of {} bytes",
                self.payload.len(),
                MAX_PAYLOAD_SIZE
            )));
        }
        Ok(())
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: u128) -> Self {
        self.id = id;
        self
    }

    /// Sets the headers.
    #[must_use]
    pub fn with_headers(mut self, headers: Headers) -> Self {
        self.headers = headers;
        self
    }
}

impl fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("id", &format_args!("{:032x}", self.id))
            .field("payload_len", &self.payload.len())
            .field("headers", &self.headers)
            .finish()
    }
}

/// User-header bytes of a stored message that do not decode (written by another
/// client, or stored by an older broker). The message is still read, with no headers,
/// so that its consumer can report, skip or dead-letter that one message while the rest
/// of the partition keeps flowing.
#[derive(Clone, PartialEq, Eq)]
pub struct MalformedHeaders {
    /// The header bytes as stored.
    pub bytes: Bytes,
    /// Why they do not decode.
    pub error: crate::WireError,
}

impl fmt::Debug for MalformedHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MalformedHeaders")
            .field("len", &self.bytes.len())
            .field("error", &self.error)
            .finish()
    }
}

/// A message read from a partition.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The partition it was read from (0-based).
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// Its id.
    pub id: u128,
    /// When the broker appended it (µs since the Unix epoch).
    pub timestamp: u64,
    /// When the producer created it (µs since the Unix epoch).
    pub origin_timestamp: u64,
    /// The payload bytes.
    pub payload: Bytes,
    /// User headers.
    pub headers: Headers,
    /// Set when the stored user headers do not decode: `headers` is then empty.
    pub malformed_headers: Option<Box<MalformedHeaders>>,
}

/// The user header a migration (`rustok-iggy-server migrate`) adds to every message
/// it copies: when the source broker first stored the message, in microseconds since
/// the Unix epoch (a `u64` value). The destination stamps its own append time (the
/// migration's time), and no Iggy command lets a sender set it; replay by time reads
/// this header instead (see [`ReceivedMessage::stored_at`]). A message copied twice
/// keeps the header of its first copy.
pub const ORIGINAL_TIMESTAMP_HEADER: &str = "rustok-original-timestamp";

impl ReceivedMessage {
    /// When the message was first stored (µs since the Unix epoch): the
    /// [`ORIGINAL_TIMESTAMP_HEADER`] of a migrated message, else the broker's
    /// append time ([`ReceivedMessage::timestamp`]).
    #[must_use]
    pub fn stored_at(&self) -> u64 {
        self.headers
            .get(ORIGINAL_TIMESTAMP_HEADER)
            .and_then(HeaderValueRef::as_u64)
            .unwrap_or(self.timestamp)
    }

    /// The headers of a stored message, from their wire bytes: decoded, or (when they
    /// do not decode) none, with the bytes and the reason kept aside.
    #[must_use]
    pub fn read_headers(bytes: &[u8]) -> (Headers, Option<Box<MalformedHeaders>>) {
        if bytes.is_empty() {
            return (Headers::new(), None);
        }
        let buffer = Bytes::copy_from_slice(bytes);
        Self::read_shared_headers(&buffer, &buffer)
    }

    /// [`ReceivedMessage::read_headers`] of `bytes`, a part of `buffer` (the record
    /// the message was read from): the headers share `buffer` (no copy per header).
    ///
    /// # Panics
    /// When `bytes` is not a part of `buffer`.
    #[must_use]
    pub fn read_shared_headers(
        buffer: &Bytes,
        bytes: &[u8],
    ) -> (Headers, Option<Box<MalformedHeaders>>) {
        if bytes.is_empty() {
            return (Headers::new(), None);
        }
        match Headers::decode_shared(buffer, bytes) {
            Ok(headers) => (headers, None),
            Err(error) => (
                Headers::new(),
                Some(Box::new(MalformedHeaders {
                    bytes: Bytes::copy_from_slice(bytes),
                    error,
                })),
            ),
        }
    }
}

impl fmt::Debug for ReceivedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedMessage")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("id", &format_args!("{:032x}", self.id))
            .field("timestamp", &self.timestamp)
            .field("payload_len", &self.payload.len())
            .field("headers", &self.headers)
            .field("malformed_headers", &self.malformed_headers)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_of(headers: &Headers) -> &[Entry] {
        match &headers.entries {
            Entries::List(list) => list.as_slice(),
            Entries::Wire(_) => panic!("headers as read, not a list"),
        }
    }

    #[test]
    fn headers_roundtrip_through_the_wire_format() {
        let mut headers = Headers::new();
        headers.insert_str("event_type", "order.placed").unwrap();
        headers.insert("attempt", HeaderValue::u64(3)).unwrap();
        headers
            .insert("blob", HeaderValue::raw(vec![0u8, 1, 2]))
            .unwrap();
        let mut out = Vec::new();
        headers.encode_into(&mut out);
        assert_eq!(out.len(), headers.encoded_len());
        let decoded = Headers::decode(&out).unwrap();
        assert_eq!(decoded, headers);
        assert_eq!(decoded.get_str("event_type"), Some("order.placed"));
        assert_eq!(
            decoded.get("attempt").and_then(HeaderValueRef::as_u64),
            Some(3)
        );
    }

    #[test]
    fn shared_headers_borrow_the_record_and_copy_on_change() {
        let mut headers = Headers::new();
        headers
            .insert_static("event_type", HeaderValue::from_static("order.placed"))
            .unwrap();
        headers.insert_str("tenant", "acme").unwrap();
        let mut record = b"prefix".to_vec();
        headers.encode_into(&mut record);
        let record = Bytes::from(record);
        let (decoded, malformed) = ReceivedMessage::read_shared_headers(&record, &record[6..]);
        assert!(malformed.is_none());
        assert_eq!(decoded, headers);
        let value = decoded.get("tenant").unwrap().as_bytes();
        let within = record.as_ptr_range();
        assert!(
            within.contains(&value.as_ptr()),
            "the value is a slice of the record"
        );
        let mut changed = decoded.clone();
        changed.insert_str("tenant", "globex").unwrap();
        assert_eq!(changed.get_str("tenant"), Some("globex"));
        assert_eq!(
            decoded.get_str("tenant"),
            Some("acme"),
            "clones are not changed"
        );
        assert_eq!(
            changed.remove("event_type").unwrap().as_str(),
            Some("order.placed")
        );
        assert_eq!(changed.len(), 1);
        assert_eq!(decoded.len(), 2);
    }

    #[test]
    fn several_headers_are_read_in_one_pass_the_first_of_a_repeated_key_counting() {
        // A block as another client may write it: a repeated key.
        let mut bytes = Vec::new();
        for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
            bytes.push(HeaderKind::String.code());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(key.as_bytes());
            bytes.push(HeaderKind::String.code());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(value.as_bytes());
        }
        let read = Headers::decode(&bytes).unwrap();
        assert!(matches!(read.entries, Entries::Wire(_)), "read in place");
        let mut built = Headers::new();
        built.insert_str("a", "1").unwrap();
        built.insert_str("b", "2").unwrap();
        for headers in [&read, &built] {
            let [a, missing, b] = headers.get_many(["a", "c", "b"]);
            assert_eq!(a.and_then(HeaderValueRef::as_str), Some("1"));
            assert_eq!(missing, None);
            assert_eq!(b.and_then(HeaderValueRef::as_str), Some("2"));
            assert_eq!(headers.get_str("a"), Some("1"));
        }
        assert_eq!(read.len(), 3);
        assert_eq!(read.encoded_len(), bytes.len());
        let mut encoded = Vec::new();
        read.encode_into(&mut encoded);
        assert_eq!(encoded, bytes, "headers as read are written back unchanged");
    }

    #[test]
    fn headers_built_at_their_capacity_are_shared_by_clones_and_copied_on_change() {
        let mut headers = Headers::with_capacity(3);
        headers
            .insert_static("event_type", HeaderValue::from_static("order.placed"))
            .unwrap();
        headers.insert_str("tenant", "acme").unwrap();
        assert_eq!(headers.len(), 2);
        let copy = headers.clone();
        let (a, b) = (headers.get("tenant").unwrap(), copy.get("tenant").unwrap());
        assert_eq!(
            a.as_bytes().as_ptr(),
            b.as_bytes().as_ptr(),
            "a clone shares the values"
        );
        assert!(
            std::ptr::eq(list_of(&headers), list_of(&copy)),
            "a clone shares the list"
        );

        // Changing one side copies it; the other keeps what it had.
        headers.insert_str("tenant", "globex").unwrap();
        headers.insert_str("actor", "ann").unwrap();
        assert_eq!(headers.get_str("tenant"), Some("globex"));
        assert_eq!(copy.get_str("tenant"), Some("acme"));
        assert_eq!(copy.get("actor"), None);
        assert_eq!(copy.len(), 2);

        // Unshared again: changed in place, within the capacity and beyond it.
        let mut alone = copy;
        alone.insert_str("actor", "bob").unwrap();
        assert_eq!(
            alone.remove("event_type").unwrap().as_str(),
            Some("order.placed")
        );
        assert_eq!(
            alone
                .iter()
                .map(|(k, v)| (k, v.as_str().unwrap()))
                .collect::<Vec<_>>(),
            [("tenant", "acme"), ("actor", "bob")]
        );
        alone.insert_str("a", "1").unwrap();
        alone.insert_str("b", "2").unwrap();
        assert_eq!(alone.len(), 4);
        assert_eq!(alone.get_str("b"), Some("2"));
        let mut expected = Headers::new();
        for (k, v) in [("tenant", "acme"), ("actor", "bob"), ("a", "1"), ("b", "2")] {
            expected.insert_str(k, v).unwrap();
        }
        assert_eq!(alone, expected);
        let mut out = Vec::new();
        alone.encode_into(&mut out);
        assert_eq!(Headers::decode(&out).unwrap(), expected);
        assert_eq!(Headers::with_capacity(0), Headers::new());
    }

    #[test]
    fn header_limits_are_enforced() {
        let mut headers = Headers::new();
        assert!(headers.insert_str("", "x").is_err());
        assert!(headers.insert_str("k", "").is_err());
        assert!(headers.insert_str("k", "v".repeat(256)).is_err());
        headers.insert_str("k", "v".repeat(255)).unwrap();
        headers.insert_str("k", "w").unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers.get_str("k"), Some("w"));
    }

    #[test]
    fn malformed_headers_are_kept_aside() {
        let mut out = Vec::new();
        let mut headers = Headers::new();
        headers.insert_str("event_type", "x").unwrap();
        headers.encode_into(&mut out);
        assert_eq!(ReceivedMessage::read_headers(&out), (headers, None));
        out[0] = 0;
        let (headers, malformed) = ReceivedMessage::read_headers(&out);
        assert!(headers.is_empty());
        let malformed = malformed.unwrap();
        assert_eq!(&malformed.bytes[..], &out[..]);
        assert!(
            malformed.error.to_string().contains("kind is 0"),
            "{}",
            malformed.error
        );
        assert_eq!(ReceivedMessage::read_headers(&[]), (Headers::new(), None));
    }

    /// One TLV entry: `[key_kind][key_len][key][value_kind][value_len][value]`.
    fn tlv(out: &mut Vec<u8>, key_kind: u8, key: &[u8], value_kind: u8, value: &[u8]) {
        out.push(key_kind);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        out.push(value_kind);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value);
    }

    fn wire_of(headers: &Headers) -> Headers {
        let mut out = Vec::new();
        headers.encode_into(&mut out);
        let decoded = Headers::decode(&out).unwrap();
        assert!(
            matches!(decoded.entries, Entries::Wire(_)),
            "read headers stay their wire bytes"
        );
        decoded
    }

    fn encoded(headers: &Headers) -> Vec<u8> {
        let mut out = Vec::new();
        headers.encode_into(&mut out);
        out
    }

    fn entries(headers: &Headers) -> Vec<(String, HeaderKind, Vec<u8>)> {
        headers
            .iter()
            .map(|(k, v)| (k.to_owned(), v.kind(), v.as_bytes().to_vec()))
            .collect()
    }

    /// Every read of `a` and `b` gives the same answer.
    fn assert_same(a: &Headers, b: &Headers, keys: &[&str]) {
        assert_eq!(a, b);
        assert_eq!(b, a);
        assert_eq!(a.len(), b.len());
        assert_eq!(a.is_empty(), b.is_empty());
        assert_eq!(entries(a), entries(b));
        assert_eq!(a.encoded_len(), b.encoded_len());
        assert_eq!(encoded(a), encoded(b));
        assert_eq!(encoded(a).len(), a.encoded_len());
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        for key in keys {
            assert_eq!(a.get(key), b.get(key), "{key}");
            assert_eq!(a.get_str(key), b.get_str(key), "{key}");
        }
    }

    #[test]
    fn headers_as_read_answer_as_the_list_they_were_written_from() {
        let mut list = Headers::new();
        list.insert_str("event_type", "order.placed").unwrap();
        list.insert("attempt", HeaderValue::u64(3)).unwrap();
        list.insert("blob", HeaderValue::raw(vec![0u8, 0xff, 2]))
            .unwrap();
        list.insert(
            "odd",
            HeaderValue::from_parts(HeaderKind::Other(200), Bytes::from_static(b"?")),
        )
        .unwrap();
        list.insert_str("ключ", "значение").unwrap();
        let wire = wire_of(&list);
        let keys = [
            "event_type",
            "attempt",
            "blob",
            "odd",
            "ключ",
            "missing",
            "",
            "event_typ",
        ];
        assert_same(&wire, &list, &keys);
        assert_eq!(
            wire.get("attempt").and_then(HeaderValueRef::as_u64),
            Some(3)
        );
        assert_eq!(wire.get_str("blob"), None, "not text");
        assert_eq!(wire.get("odd").unwrap().kind(), HeaderKind::Other(200));
        assert_eq!(wire.get_str("ключ"), Some("значение"));
        // Owned copies of what is read are equal too.
        assert_eq!(
            wire.get("blob").unwrap().to_value(),
            HeaderValue::raw(vec![0u8, 0xff, 2])
        );

        // Changes after the read: the same on both.
        let (mut a, mut b) = (wire.clone(), list.clone());
        for headers in [&mut a, &mut b] {
            headers.insert_str("event_type", "order.shipped").unwrap();
            headers.insert_str("tenant", "acme").unwrap();
            assert_eq!(
                headers.remove("blob").unwrap(),
                HeaderValue::raw(vec![0u8, 0xff, 2])
            );
            assert_eq!(headers.remove("blob"), None);
            assert_eq!(headers.remove("missing"), None);
        }
        assert_same(&a, &b, &keys);
        assert_eq!(
            entries(&a)
                .into_iter()
                .map(|(k, _, _)| k)
                .collect::<Vec<_>>(),
            ["event_type", "attempt", "odd", "ключ", "tenant"],
            "a replaced key keeps its place"
        );
        assert_eq!(a.get_str("event_type"), Some("order.shipped"));
        // The clone that was read is unchanged.
        assert_same(&wire, &list, &keys);

        // A failed insert changes nothing.
        let mut c = wire.clone();
        assert!(c.insert_str("k", "").is_err());
        assert_same(&c, &list, &keys);
        // Removing from headers as read that lack the key changes nothing either.
        assert_eq!(c.remove("missing"), None);
        assert!(
            matches!(c.entries, Entries::Wire(_)),
            "not turned into a list"
        );
    }

    #[test]
    fn a_clone_of_headers_as_read_is_not_changed_by_a_change_of_the_other() {
        let mut list = Headers::new();
        list.insert_str("a", "1").unwrap();
        list.insert_str("b", "2").unwrap();
        let read = wire_of(&list);
        let mut changed = read.clone();
        changed.insert_str("a", "one").unwrap();
        assert_eq!(read.get_str("a"), Some("1"));
        assert_eq!(changed.get_str("a"), Some("one"));
        assert_ne!(read, changed);
        let mut other = read.clone();
        assert_eq!(other.remove("b").unwrap().as_str(), Some("2"));
        assert_eq!(read.len(), 2);
        assert_eq!(other.len(), 1);
        assert_same(&read, &list, &["a", "b"]);
    }

    #[test]
    fn a_repeated_key_as_read_answers_as_the_decoded_list_did() {
        // Before headers as read stayed their bytes, a repeated key was decoded into
        // a list with both entries: `get` found the first, `insert` replaced the
        // first, `remove` removed the first (the second then answers).
        let mut bytes = Vec::new();
        tlv(&mut bytes, 2, b"k", 2, b"first");
        tlv(&mut bytes, 2, b"x", 2, b"other");
        tlv(&mut bytes, 2, b"k", 2, b"second");
        let read = Headers::decode(&bytes).unwrap();
        assert_eq!(read.len(), 3);
        assert_eq!(read.get_str("k"), Some("first"));
        assert_eq!(
            entries(&read)
                .into_iter()
                .map(|(k, _, v)| (k, String::from_utf8(v).unwrap()))
                .collect::<Vec<_>>(),
            [
                ("k".into(), "first".into()),
                ("x".into(), "other".into()),
                ("k".into(), "second".into())
            ]
        );
        assert_eq!(encoded(&read), bytes);
        assert_eq!(read.encoded_len(), bytes.len());

        let mut replaced = read.clone();
        replaced.insert_str("k", "new").unwrap();
        assert_eq!(replaced.len(), 3);
        assert_eq!(replaced.get_str("k"), Some("new"));
        let mut expected = Vec::new();
        tlv(&mut expected, 2, b"k", 2, b"new");
        tlv(&mut expected, 2, b"x", 2, b"other");
        tlv(&mut expected, 2, b"k", 2, b"second");
        assert_eq!(encoded(&replaced), expected);

        let mut removed = read.clone();
        assert_eq!(removed.remove("k").unwrap().as_str(), Some("first"));
        assert_eq!(removed.get_str("k"), Some("second"));
        assert_eq!(removed.remove("k").unwrap().as_str(), Some("second"));
        assert_eq!(removed.get("k"), None);
        assert_eq!(removed.len(), 1);
        // The copy that was read still has both.
        assert_eq!(read.get_str("k"), Some("first"));
        assert_eq!(read.len(), 3);
    }

    #[test]
    fn a_key_that_is_not_text_is_read_as_lossy_text() {
        let mut bytes = Vec::new();
        tlv(&mut bytes, 2, b"ok", 2, b"1");
        tlv(&mut bytes, 2, b"k\xff", 2, b"2");
        let read = Headers::decode(&bytes).unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read.get_str("ok"), Some("1"));
        assert_eq!(read.get_str("k\u{fffd}"), Some("2"));
        let mut list = Headers::new();
        list.insert_str("ok", "1").unwrap();
        list.insert_str("k\u{fffd}", "2").unwrap();
        assert_same(&read, &list, &["ok", "k\u{fffd}", "k"]);
        let mut changed = read.clone();
        changed.insert_str("ok", "one").unwrap();
        assert_eq!(changed.get_str("k\u{fffd}"), Some("2"));
        assert_eq!(read.get_str("ok"), Some("1"));
    }

    #[test]
    fn an_empty_block_reads_as_no_headers() {
        let read = Headers::decode(&[]).unwrap();
        assert_same(&read, &Headers::new(), &["a"]);
        assert!(read.is_empty());
        assert_eq!(read.encoded_len(), 0);
        assert!(encoded(&read).is_empty());
        let shared = Bytes::from_static(b"record");
        assert_same(
            &Headers::decode_shared(&shared, &shared[6..]).unwrap(),
            &Headers::new(),
            &["a"],
        );
        let mut changed = read.clone();
        assert_eq!(changed.remove("a"), None);
        changed.insert_str("a", "1").unwrap();
        assert_eq!(changed.get_str("a"), Some("1"));
        assert!(read.is_empty());
    }

    #[test]
    fn a_key_of_another_kind_encodes_as_the_list_would() {
        // Keys are text to these headers: a list writes every key as a string (kind 2).
        // Read headers that are equal to a list encode as it does, as they did when
        // a read always made a list.
        let mut bytes = Vec::new();
        tlv(&mut bytes, 1, b"k", 2, b"v");
        let read = Headers::decode(&bytes).unwrap();
        let mut list = Headers::new();
        list.insert_str("k", "v").unwrap();
        assert_same(&read, &list, &["k"]);
        let mut expected = Vec::new();
        tlv(&mut expected, 2, b"k", 2, b"v");
        assert_eq!(encoded(&read), expected);
    }

    #[test]
    fn a_malformed_block_is_a_wire_error_never_a_panic() {
        let mut valid = Vec::new();
        tlv(&mut valid, 2, b"event_type", 2, b"order.placed");
        tlv(&mut valid, 2, b"attempt", 12, &3u64.to_le_bytes());
        let boundary = 10 + 10 + 12;
        // Every truncation: whole entries read, anything else is refused.
        for len in 1..valid.len() {
            match Headers::decode(&valid[..len]) {
                Ok(headers) => {
                    assert_eq!(len, boundary, "only a whole entry reads");
                    assert_eq!(headers.get_str("event_type"), Some("order.placed"));
                    assert_eq!(headers.len(), 1);
                }
                Err(_) => assert_ne!(len, boundary),
            }
        }
        // A kind of 0.
        for at in [0, 15] {
            let mut zero = valid.clone();
            zero[at] = 0;
            let error = Headers::decode(&zero).unwrap_err();
            assert!(error.to_string().contains("kind is 0"), "{error}");
        }
        // A key without its value (an odd count of TLV entries).
        let mut odd = valid.clone();
        odd.push(2);
        odd.extend_from_slice(&1u32.to_le_bytes());
        odd.push(b'k');
        let error = Headers::decode(&odd).unwrap_err();
        assert!(error.to_string().contains("odd number"), "{error}");
        // Lengths of 0 and past 255.
        for bad in [0u32, 256, u32::MAX] {
            let mut length = valid.clone();
            length[1..5].copy_from_slice(&bad.to_le_bytes());
            assert!(Headers::decode(&length).is_err(), "length {bad}");
        }
        // Pseudo-random blocks: decoded or refused, and what decodes reads and changes
        // without a panic.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut block = valid.clone();
            let flips = random() % 4;
            for _ in 0..=flips {
                let at = (random() as usize) % block.len();
                block[at] = random() as u8;
            }
            block.truncate(block.len() - (random() as usize % 3));
            if let Ok(mut headers) = Headers::decode(&block) {
                let _ = (headers.len(), headers.encoded_len(), format!("{headers:?}"));
                let keys: Vec<String> = headers.iter().map(|(k, _)| k.to_owned()).collect();
                for key in &keys {
                    assert!(headers.get(key).is_some());
                }
                assert_eq!(Headers::decode(&encoded(&headers)).unwrap(), headers);
                if let Some(key) = keys.first() {
                    headers.remove(key);
                }
                headers.insert_str("x", "y").unwrap();
            }
        }
    }

    #[test]
    fn debug_never_prints_payloads() {
        let message = OutgoingMessage::new(&b"secret-card-number"[..]);
        assert!(!format!("{message:?}").contains("secret"));
    }
}
