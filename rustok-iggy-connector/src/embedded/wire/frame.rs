//! Frames on the wire (`docs/wire-protocol.md` §1): the 256-byte consensus request header as
//! read from a socket, and the reply and eviction frames written back.
//!
//! Request fields are read at their fixed offsets (taken from the official
//! `RequestHeader` with `offset_of!`), so nothing depends on the alignment of the
//! receive buffer and nothing indexes a slice with a length from the network.

use std::mem::offset_of;

use bytes::BytesMut;
use iggy_binary_protocol::consensus::{
    Command, EvictionHeader, EvictionReason, HEADER_SIZE, Operation, ReplyHeader, RequestHeader,
    SIZE_FIELD_OFFSET,
};
use iggy_binary_protocol::{IGGY_PROTOCOL_VERSION, IGGY_PROTOCOL_VERSION_MIN};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame (header and body) the listener accepts: 64 MiB, the limit of
/// the Iggy server.
pub(crate) const MAX_FRAME_SIZE: usize = 64 * 1024 * 1024;

/// The largest frame a connection may send before it has logged in: 4 KiB. A login
/// needs at most 256 + 516 (version: protocol, SDK name and version) + 2 × 256
/// (user name and password, or a token and nothing) + 4 bytes, so a client context
/// of up to about 2.8 KiB fits. Larger frames are refused from the header alone,
/// before any of the body is read.
pub(crate) const MAX_UNAUTHENTICATED_FRAME_SIZE: usize = 4096;

/// Bytes of the result-section prefix of a successful result-framed reply
/// (`count = 0`).
pub(crate) const RESULT_SECTION_OK: [u8; 4] = [0; 4];

/// The fields of a request header the server uses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestHead {
    /// Header plus body length.
    pub(crate) size: u32,
    /// The frame's command byte (5 = `Request`).
    pub(crate) command: u8,
    /// The client's VSR id (random per login).
    pub(crate) client: u128,
    pub(crate) request_checksum: u128,
    /// The request number.
    pub(crate) request: u64,
    /// The raw operation byte.
    pub(crate) operation: u8,
    /// The session the client echoes.
    pub(crate) session: u64,
    /// The legacy command code of a `NonReplicated` request (first four reserved bytes).
    pub(crate) code: u32,
}

impl RequestHead {
    /// Reads the header fields at their fixed offsets.
    pub(crate) fn parse(header: &[u8; HEADER_SIZE]) -> Self {
        Self {
            size: u32::from_le_bytes(field(header, SIZE_FIELD_OFFSET)),
            command: u8::from_le_bytes(field(header, offset_of!(RequestHeader, command))),
            client: u128::from_le_bytes(field(header, offset_of!(RequestHeader, client))),
            request_checksum: u128::from_le_bytes(field(
                header,
                offset_of!(RequestHeader, request_checksum),
            )),
            request: u64::from_le_bytes(field(header, offset_of!(RequestHeader, request))),
            operation: u8::from_le_bytes(field(header, offset_of!(RequestHeader, operation))),
            session: u64::from_le_bytes(field(header, offset_of!(RequestHeader, session))),
            code: u32::from_le_bytes(field(header, offset_of!(RequestHeader, reserved))),
        }
    }

    /// The operation, when the byte names one this protocol version defines.
    pub(crate) fn operation(&self) -> Option<Operation> {
        bytemuck::checked::try_cast::<u8, Operation>(self.operation).ok()
    }

    /// Length of the body that follows the header, within the limits of a
    /// connection that has logged in or (`unauthenticated`) not yet.
    pub(crate) fn body_len(&self, unauthenticated: bool) -> Result<usize, FrameError> {
        let size = self.size as usize;
        if size < HEADER_SIZE {
            return Err(FrameError::SizeTooSmall(self.size));
        }
        if size > MAX_FRAME_SIZE {
            return Err(FrameError::SizeTooLarge(self.size));
        }
        if unauthenticated && size > MAX_UNAUTHENTICATED_FRAME_SIZE {
            return Err(FrameError::TooLargeBeforeLogin(self.size));
        }
        Ok(size - HEADER_SIZE)
    }
}

/// `N` bytes of `header` at `at`; zeros if out of range (never, for the constant
/// offsets used here).
fn field<const N: usize>(header: &[u8; HEADER_SIZE], at: usize) -> [u8; N] {
    header
        .get(at..at.saturating_add(N))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

/// Why a frame could not be read. Each closes the connection (the stream cannot be
/// resynchronised); none affects other connections.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("the peer closed the connection in the middle of a frame")]
    Truncated,
    #[error("frame size {0} is smaller than the 256-byte header")]
    SizeTooSmall(u32),
    #[error("frame size {0} exceeds the limit of {MAX_FRAME_SIZE} bytes")]
    SizeTooLarge(u32),
    #[error(
        "frame size {0} exceeds the limit of {MAX_UNAUTHENTICATED_FRAME_SIZE} bytes before login"
    )]
    TooLargeBeforeLogin(u32),
    #[error("socket error")]
    Io(#[from] std::io::Error),
}

/// Reads request headers. The bytes of a header that has partly arrived are kept
/// here, so [`HeaderReader::read`] can be cancelled (to serve another event) and
/// called again without losing any.
#[derive(Debug)]
pub(crate) struct HeaderReader {
    bytes: [u8; HEADER_SIZE],
    filled: usize,
}

impl HeaderReader {
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; HEADER_SIZE],
            filled: 0,
        }
    }

    /// Reads the rest of the next header. `Ok(None)` when the peer closed the
    /// connection between frames. Cancel-safe.
    pub(crate) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<[u8; HEADER_SIZE]>, FrameError> {
        while self.filled < HEADER_SIZE {
            let Some(rest) = self.bytes.get_mut(self.filled..) else {
                break;
            };
            // `read` is cancel-safe: cancelled, it has read nothing.
            let n = reader.read(rest).await?;
            if n == 0 {
                return if self.filled == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated)
                };
            }
            self.filled += n;
        }
        self.filled = 0;
        Ok(Some(self.bytes))
    }
}

/// Reads a body of exactly `len` bytes. Memory grows with the bytes that actually
/// arrive, not with the announced size.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut body = Vec::with_capacity(len.min(1024 * 1024));
    let read = reader.take(len as u64).read_to_end(&mut body).await?;
    if read != len {
        return Err(FrameError::Truncated);
    }
    Ok(body)
}

/// What the reply header carries besides the body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReplyMeta {
    pub(crate) operation: Operation,
    pub(crate) status: u32,
    pub(crate) commit: u64,
}

/// A buffer with room for the reply header, ready for the body to be appended.
pub(crate) fn reply_buffer(capacity: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(HEADER_SIZE + capacity);
    out.resize(HEADER_SIZE, 0);
    out
}

/// Writes the reply header over the first 256 bytes of `out` (see
/// [`reply_buffer`]); the frame size is `out.len()`.
pub(crate) fn seal_reply(out: &mut BytesMut, request: &RequestHead, meta: ReplyMeta) {
    let size = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let header = ReplyHeader {
        size,
        command: Command::Reply,
        request_checksum: request.request_checksum,
        client: request.client,
        op: meta.commit,
        commit: meta.commit,
        timestamp: crate::batch::now_micros(),
        request: request.request,
        operation: meta.operation,
        status: meta.status,
        ..ReplyHeader::default()
    };
    if let Some(slot) = out.get_mut(..HEADER_SIZE) {
        slot.copy_from_slice(bytemuck::bytes_of(&header));
    }
}

/// A header-only error reply: `status` with an empty body (`docs/wire-protocol.md` §1.3).
pub(crate) fn error_reply(request: &RequestHead, operation: Operation, status: u32) -> BytesMut {
    let mut out = reply_buffer(0);
    seal_reply(
        &mut out,
        request,
        ReplyMeta {
            operation,
            status,
            commit: 0,
        },
    );
    out
}

/// A session-terminal eviction frame (header only).
pub(crate) fn eviction(client: u128, reason: Eviction) -> [u8; HEADER_SIZE] {
    // The SDK routes an eviction by its client id, which must not be zero.
    let client = if client == 0 { 1 } else { client };
    let header = match reason {
        Eviction::Reason(reason) => EvictionHeader::new(0, 0, 0, client, reason),
        Eviction::IncompatibleProtocol => EvictionHeader::incompatible_protocol(
            0,
            0,
            0,
            client,
            IGGY_PROTOCOL_VERSION,
            IGGY_PROTOCOL_VERSION_MIN,
        ),
    };
    let mut out = [0u8; HEADER_SIZE];
    out.copy_from_slice(bytemuck::bytes_of(&header));
    out
}

/// Why a session is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// A reason without extra fields.
    Reason(EvictionReason),
    /// The client's protocol version is outside the accepted window.
    IncompatibleProtocol,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_bytes(size: u32, operation: u8, code: u32) -> [u8; HEADER_SIZE] {
        let mut h = [0u8; HEADER_SIZE];
        h[48..52].copy_from_slice(&size.to_le_bytes());
        h[60] = Command::Request as u8;
        h[128..144].copy_from_slice(&7u128.to_le_bytes());
        h[168..176].copy_from_slice(&3u64.to_le_bytes());
        h[176] = operation;
        h[184..192].copy_from_slice(&9u64.to_le_bytes());
        h[196..200].copy_from_slice(&code.to_le_bytes());
        h
    }

    #[test]
    fn request_fields_are_read_at_the_documented_offsets() {
        let head = RequestHead::parse(&request_bytes(300, 2, 201));
        assert_eq!(head.size, 300);
        assert_eq!(head.command, Command::Request as u8);
        assert_eq!(head.client, 7);
        assert_eq!(head.request, 3);
        assert_eq!(head.operation(), Some(Operation::NonReplicated));
        assert_eq!(head.session, 9);
        assert_eq!(head.code, 201);
        assert_eq!(head.body_len(true).unwrap(), 44);
    }

    #[test]
    fn sizes_outside_the_window_and_unknown_operations_are_refused() {
        assert!(matches!(
            RequestHead::parse(&request_bytes(10, 2, 1)).body_len(false),
            Err(FrameError::SizeTooSmall(10))
        ));
        let huge = u32::try_from(MAX_FRAME_SIZE + 1).unwrap();
        assert!(matches!(
            RequestHead::parse(&request_bytes(huge, 2, 1)).body_len(false),
            Err(FrameError::SizeTooLarge(_))
        ));
        let login_sized = u32::try_from(MAX_UNAUTHENTICATED_FRAME_SIZE).unwrap();
        let head = RequestHead::parse(&request_bytes(login_sized + 1, 2, 1));
        assert!(matches!(
            head.body_len(true),
            Err(FrameError::TooLargeBeforeLogin(_))
        ));
        assert_eq!(head.body_len(false).unwrap(), 4097 - HEADER_SIZE);
        let head = RequestHead::parse(&request_bytes(login_sized, 2, 1));
        assert_eq!(head.body_len(true).unwrap(), 4096 - HEADER_SIZE);
        assert_eq!(
            RequestHead::parse(&request_bytes(256, 99, 1)).operation(),
            None
        );
    }

    #[test]
    fn replies_and_evictions_have_the_layout_the_sdk_reads() {
        let head = RequestHead::parse(&request_bytes(256, 128, 0));
        let mut out = reply_buffer(8);
        out.extend_from_slice(&RESULT_SECTION_OK);
        out.extend_from_slice(b"abcd");
        seal_reply(
            &mut out,
            &head,
            ReplyMeta {
                operation: Operation::CreateStream,
                status: 0,
                commit: 5,
            },
        );
        assert_eq!(out.len(), 264);
        assert_eq!(&out[48..52], &264u32.to_le_bytes());
        assert_eq!(out[60], Command::Reply as u8);
        assert_eq!(out[208], Operation::CreateStream as u8);
        assert_eq!(&out[216..220], &0u32.to_le_bytes());
        assert_eq!(&out[184..192], &5u64.to_le_bytes());

        let err = error_reply(&head, Operation::CreateStream, 1012);
        assert_eq!(err.len(), HEADER_SIZE);
        assert_eq!(&err[216..220], &1012u32.to_le_bytes());

        let ev = eviction(0, Eviction::Reason(EvictionReason::InvalidCredentials));
        assert_eq!(ev[60], Command::Eviction as u8);
        assert_eq!(ev[255], EvictionReason::InvalidCredentials as u8);
        assert_eq!(&ev[48..52], &256u32.to_le_bytes());
        let ev = eviction(5, Eviction::IncompatibleProtocol);
        assert_eq!(&ev[144..148], &IGGY_PROTOCOL_VERSION.to_le_bytes());
    }
}
