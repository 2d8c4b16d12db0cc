//! RTMP chunk stream: a sans-IO decoder for what a publisher sends and an encoder for what the server
//! sends (Adobe RTMP specification 1.0, §5.3 "Chunking").
//!
//! The decoder keeps one `ChunkStreamState` per chunk stream id (the last message header and its own
//! partial-message buffer), so chunks of different chunk streams may interleave mid-message. It applies
//! Set Chunk Size (§5.4.1) and Abort Message (§5.4.2) itself, because both change how later chunks are
//! decoded. Everything it holds is bounded by [`ChunkDecoderConfig`].
//!
//! Calling protocol: [`ChunkDecoder::push`] received bytes, then call [`ChunkDecoder::next_message`] until it
//! returns `Ok(None)` (need more bytes) before pushing again. After an error the decoder's state is
//! unspecified and the connection must be closed.

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// RTMP message type ids (RTMP specification 1.0 §5.4, §7.1).
pub mod message_type {
    /// Set Chunk Size (§5.4.1).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (§5.4.2).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (§5.4.3).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message (§6.2, §7.1.7).
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (§5.4.4).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (§5.4.5).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio message: one FLV audio tag body (§7.1.4).
    pub const AUDIO: u8 = 8;
    /// Video message: one FLV video tag body (§7.1.5).
    pub const VIDEO: u8 = 9;
    /// Data message, AMF3 (§7.1.2).
    pub const DATA_AMF3: u8 = 15;
    /// Command message, AMF3 (§7.1.1).
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message, AMF0 (§7.1.2), e.g. `@setDataFrame`.
    pub const DATA_AMF0: u8 = 18;
    /// Command message, AMF0 (§7.1.1), e.g. `connect`.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate message: a sequence of FLV tags (§7.1.6).
    pub const AGGREGATE: u8 = 22;
}

/// The chunk size both sides start with (§5.4.1), in bytes.
pub const DEFAULT_CHUNK_SIZE_BYTES: u32 = 128;

/// The largest chunk size the decoder honours, in bytes. Larger announced sizes are clamped: a message never
/// exceeds [`ChunkDecoderConfig::max_message_bytes`], so any chunk size at least that large decodes the same.
pub const MAX_CHUNK_SIZE_BYTES: u32 = 16 * 1024 * 1024;

/// The largest chunk stream id expressible by the 3-byte basic header (§5.3.1.1).
pub const MAX_CHUNK_STREAM_ID: u32 = 65_599;

/// A 3-byte timestamp field holding this value means "see the 4-byte extended timestamp" (§5.3.1.3).
const EXTENDED_TIMESTAMP_MARKER: u32 = 0x00FF_FFFF;

/// One reassembled RTMP message (§5.3.1 message header fields plus the payload).
#[derive(Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    /// The chunk stream it arrived on (2..=65599).
    pub chunk_stream_id: u32,
    /// Message stream id (0 for NetConnection and protocol control, the createStream id for a stream).
    pub message_stream_id: u32,
    /// Message type id (see [`message_type`]).
    pub type_id: u8,
    /// Timestamp in milliseconds, as the 32-bit wrapping clock of the peer (not unwrapped).
    pub timestamp_ms: u32,
    /// The message payload.
    pub payload: Bytes,
}

impl std::fmt::Debug for RtmpMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpMessage")
            .field("chunk_stream_id", &self.chunk_stream_id)
            .field("message_stream_id", &self.message_stream_id)
            .field("type_id", &self.type_id)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("len_bytes", &self.payload.len())
            .finish()
    }
}

/// A chunk stream protocol violation or a limit being exceeded. Fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// A message header declares a length above the configured maximum.
    #[error(
        "chunk stream {chunk_stream_id}: message of {length_bytes} bytes exceeds the {max_bytes}-byte limit"
    )]
    MessageTooLarge {
        /// The chunk stream carrying the message.
        chunk_stream_id: u32,
        /// The declared message length.
        length_bytes: u32,
        /// The configured limit.
        max_bytes: usize,
    },
    /// The peer opened more chunk streams than allowed.
    #[error("more than {max} chunk streams")]
    TooManyChunkStreams {
        /// The configured limit.
        max: usize,
    },
    /// A type 1, 2 or 3 chunk arrived on a chunk stream that never had a type 0 header.
    #[error("chunk stream {chunk_stream_id}: type {fmt} chunk without a preceding type 0 header")]
    UnknownChunkStream {
        /// The chunk stream id.
        chunk_stream_id: u32,
        /// The chunk type (fmt, 1..=3).
        fmt: u8,
    },
    /// A type 0, 1 or 2 header arrived while a message on the same chunk stream was incomplete.
    #[error("chunk stream {chunk_stream_id}: type {fmt} header in the middle of a message")]
    HeaderMidMessage {
        /// The chunk stream id.
        chunk_stream_id: u32,
        /// The chunk type (fmt, 0..=2).
        fmt: u8,
    },
    /// Set Chunk Size with 0 or with the reserved top bit set (§5.4.1).
    #[error("invalid chunk size {value}")]
    InvalidChunkSize {
        /// The announced size.
        value: u32,
    },
    /// A protocol control message whose payload is too short.
    #[error("protocol control message type {type_id} with {len_bytes}-byte payload")]
    MalformedControl {
        /// The message type id.
        type_id: u8,
        /// The payload length.
        len_bytes: usize,
    },
    /// Input plus partial messages would exceed the configured buffer bound.
    #[error("{buffered_bytes} bytes buffered, limit {max_bytes}")]
    BufferLimit {
        /// Bytes that would be held.
        buffered_bytes: usize,
        /// The configured limit.
        max_bytes: usize,
    },
}

/// Limits of a [`ChunkDecoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkDecoderConfig {
    /// Largest accepted message length, in bytes (a video keyframe must fit). Default 8 MiB.
    pub max_message_bytes: usize,
    /// Largest number of distinct chunk streams per connection. Default 64.
    pub max_chunk_streams: usize,
    /// Bound on undecoded input plus all partial messages, in bytes. Default 16 MiB (a partial keyframe
    /// of the maximum size, a partial audio message and a read buffer fit with room to spare).
    pub max_buffered_bytes: usize,
}

impl Default for ChunkDecoderConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 8 * 1024 * 1024,
            max_chunk_streams: 64,
            max_buffered_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Per chunk stream state: the last message header seen on it (what type 1–3 headers inherit) and its own
/// partial message.
#[derive(Debug, Default)]
struct ChunkStreamState {
    /// Timestamp of the current (or last) message, ms, wrapping.
    timestamp_ms: u32,
    /// Timestamp delta a type 3 header starting a new message applies, ms (§5.3.1.2.4).
    timestamp_delta_ms: u32,
    /// Length of the current (or last) message, bytes.
    message_length_bytes: u32,
    type_id: u8,
    message_stream_id: u32,
    /// The last type 0/1/2 header used the extended timestamp field, so type 3 chunks carry one too.
    has_extended_timestamp: bool,
    /// The last extended timestamp value read (to recognise it on continuation chunks).
    extended_timestamp: u32,
    /// Payload received so far of an incomplete message.
    partial: Option<BytesMut>,
}

/// What parsing one chunk achieved.
enum Step {
    NeedMore,
    Progress,
    Message(RtmpMessage),
}

/// Sans-IO RTMP chunk stream decoder (§5.3). See the module docs for the calling protocol.
#[derive(Debug)]
pub struct ChunkDecoder {
    config: ChunkDecoderConfig,
    /// The peer's current chunk size (§5.4.1), clamped to [`MAX_CHUNK_SIZE_BYTES`].
    chunk_size_bytes: u32,
    input: BytesMut,
    streams: HashMap<u32, ChunkStreamState>,
    /// Sum of the lengths of all partial messages.
    partial_bytes: usize,
}

impl ChunkDecoder {
    /// A decoder at the initial chunk size of 128 bytes.
    pub fn new(config: ChunkDecoderConfig) -> Self {
        Self {
            config,
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
            input: BytesMut::new(),
            streams: HashMap::new(),
            partial_bytes: 0,
        }
    }

    /// The chunk size currently used to decode the peer's chunks, in bytes.
    pub fn chunk_size_bytes(&self) -> u32 {
        self.chunk_size_bytes
    }

    /// Bytes held: undecoded input plus partial messages.
    pub fn buffered_bytes(&self) -> usize {
        self.input.len() + self.partial_bytes
    }

    /// Append received bytes. Errors with [`ChunkError::BufferLimit`] if the decoder would hold more than
    /// [`ChunkDecoderConfig::max_buffered_bytes`] (call [`Self::next_message`] until `Ok(None)` between pushes).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ChunkError> {
        let buffered_bytes = self.buffered_bytes().saturating_add(bytes.len());
        if buffered_bytes > self.config.max_buffered_bytes {
            return Err(ChunkError::BufferLimit {
                buffered_bytes,
                max_bytes: self.config.max_buffered_bytes,
            });
        }
        self.input.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. Set Chunk Size and Abort messages are
    /// applied before being returned.
    pub fn next_message(&mut self) -> Result<Option<RtmpMessage>, ChunkError> {
        loop {
            match self.next_chunk()? {
                Step::NeedMore => return Ok(None),
                Step::Progress => {}
                Step::Message(message) => {
                    self.apply_control(&message)?;
                    return Ok(Some(message));
                }
            }
        }
    }

    /// Checks the decoder's internal invariants (for tests and fuzzing); panics with the broken one.
    pub fn check_invariants(&self) {
        assert!(
            self.streams.len() <= self.config.max_chunk_streams,
            "chunk stream count within limit"
        );
        let sum: usize = self
            .streams
            .values()
            .filter_map(|s| s.partial.as_ref())
            .map(|p| p.len())
            .sum();
        assert_eq!(sum, self.partial_bytes, "partial byte accounting");
        for state in self.streams.values() {
            if let Some(partial) = &state.partial {
                assert!(
                    partial.len() < state.message_length_bytes as usize,
                    "partial shorter than its message"
                );
            }
        }
        assert!(
            (1..=MAX_CHUNK_SIZE_BYTES).contains(&self.chunk_size_bytes),
            "chunk size in range"
        );
    }

    fn apply_control(&mut self, message: &RtmpMessage) -> Result<(), ChunkError> {
        let payload = &message.payload;
        match message.type_id {
            message_type::SET_CHUNK_SIZE => {
                let value = read_u32(payload, message.type_id)?;
                if value == 0 || value > 0x7FFF_FFFF {
                    return Err(ChunkError::InvalidChunkSize { value });
                }
                self.chunk_size_bytes = value.min(MAX_CHUNK_SIZE_BYTES);
            }
            message_type::ABORT => {
                let chunk_stream_id = read_u32(payload, message.type_id)?;
                if let Some(partial) = self
                    .streams
                    .get_mut(&chunk_stream_id)
                    .and_then(|s| s.partial.take())
                {
                    self.partial_bytes -= partial.len();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Parse one chunk if it is complete in the input; leaves everything untouched otherwise.
    fn next_chunk(&mut self) -> Result<Step, ChunkError> {
        let buf = &self.input[..];
        // Basic header (§5.3.1.1).
        let Some(&b0) = buf.first() else {
            return Ok(Step::NeedMore);
        };
        let fmt = b0 >> 6;
        let (chunk_stream_id, mut pos) = match b0 & 0x3F {
            0 => match buf.get(1) {
                Some(&b1) => (64 + u32::from(b1), 2),
                None => return Ok(Step::NeedMore),
            },
            1 => match (buf.get(1), buf.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + u32::from(b2) * 256, 3),
                _ => return Ok(Step::NeedMore),
            },
            id => (u32::from(id), 1),
        };
        let state = self.streams.get(&chunk_stream_id);
        match (fmt, state) {
            (0, None) if self.streams.len() >= self.config.max_chunk_streams => {
                return Err(ChunkError::TooManyChunkStreams {
                    max: self.config.max_chunk_streams,
                });
            }
            (0, _) => {}
            (_, None) => {
                return Err(ChunkError::UnknownChunkStream {
                    chunk_stream_id,
                    fmt,
                });
            }
            (_, Some(_)) => {}
        }
        if fmt < 3 && state.is_some_and(|s| s.partial.is_some()) {
            return Err(ChunkError::HeaderMidMessage {
                chunk_stream_id,
                fmt,
            });
        }

        // Message header (§5.3.1.2).
        let header_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(header) = buf.get(pos..pos + header_len) else {
            return Ok(Step::NeedMore);
        };
        pos += header_len;
        let timestamp_field = if fmt < 3 { read_u24(&header[0..3]) } else { 0 };
        let (length_bytes, type_id, message_stream_id) = match fmt {
            0 => (
                read_u24(&header[3..6]),
                header[6],
                u32::from_le_bytes([header[7], header[8], header[9], header[10]]),
            ),
            1 => {
                let s = state.expect("fmt 1 requires state (checked above)");
                (read_u24(&header[3..6]), header[6], s.message_stream_id)
            }
            _ => {
                let s = state.expect("fmt 2/3 requires state (checked above)");
                (s.message_length_bytes, s.type_id, s.message_stream_id)
            }
        };
        if length_bytes as usize > self.config.max_message_bytes {
            return Err(ChunkError::MessageTooLarge {
                chunk_stream_id,
                length_bytes,
                max_bytes: self.config.max_message_bytes,
            });
        }

        // Extended timestamp (§5.3.1.3), also on type 3 chunks after an extended type 0/1/2 header.
        let is_continuation = fmt == 3 && state.is_some_and(|s| s.partial.is_some());
        let mut extended_timestamp = None;
        if fmt < 3 && timestamp_field == EXTENDED_TIMESTAMP_MARKER {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(Step::NeedMore);
            };
            extended_timestamp = Some(read_u32_be(ext));
            pos += 4;
        } else if fmt == 3 && state.is_some_and(|s| s.has_extended_timestamp) {
            let Some(ext) = buf.get(pos..pos + 4) else {
                return Ok(Step::NeedMore);
            };
            let value = read_u32_be(ext);
            // Some encoders omit the field on continuation chunks: accept it only if it repeats the value.
            if !is_continuation || state.is_some_and(|s| s.extended_timestamp == value) {
                extended_timestamp = Some(value);
                pos += 4;
            }
        }

        // Chunk payload.
        let received_bytes = state
            .and_then(|s| s.partial.as_ref())
            .map_or(0, |p| p.len());
        let remaining_bytes = length_bytes as usize - received_bytes;
        let take_bytes = remaining_bytes.min(self.chunk_size_bytes as usize);
        if buf.len() < pos + take_bytes {
            return Ok(Step::NeedMore);
        }

        // Commit.
        self.input.advance(pos);
        let data = self.input.split_to(take_bytes);
        let state = self.streams.entry(chunk_stream_id).or_default();
        if !is_continuation {
            let value = extended_timestamp.unwrap_or(timestamp_field);
            match fmt {
                0 => {
                    state.timestamp_ms = value;
                    // "If a Type 3 chunk follows a Type 0 chunk, then the timestamp delta for this Type 3
                    // chunk is the same as the timestamp of the Type 0 chunk." (§5.3.1.2.4)
                    state.timestamp_delta_ms = value;
                }
                1 | 2 => {
                    state.timestamp_delta_ms = value;
                    state.timestamp_ms = state.timestamp_ms.wrapping_add(value);
                }
                _ => {
                    if let Some(ext) = extended_timestamp {
                        state.timestamp_delta_ms = ext;
                    }
                    state.timestamp_ms = state.timestamp_ms.wrapping_add(state.timestamp_delta_ms);
                }
            }
            if fmt < 3 {
                state.has_extended_timestamp = extended_timestamp.is_some();
            }
            if let Some(ext) = extended_timestamp {
                state.extended_timestamp = ext;
            }
            state.message_length_bytes = length_bytes;
            state.type_id = type_id;
            state.message_stream_id = message_stream_id;
        }

        let payload = match state.partial.take() {
            None if take_bytes == remaining_bytes => data.freeze(),
            None => {
                self.partial_bytes += data.len();
                state.partial = Some(data);
                return Ok(Step::Progress);
            }
            Some(mut partial) => {
                self.partial_bytes -= partial.len();
                partial.unsplit(data);
                if partial.len() < length_bytes as usize {
                    self.partial_bytes += partial.len();
                    state.partial = Some(partial);
                    return Ok(Step::Progress);
                }
                partial.freeze()
            }
        };
        Ok(Step::Message(RtmpMessage {
            chunk_stream_id,
            message_stream_id,
            type_id,
            timestamp_ms: state.timestamp_ms,
            payload,
        }))
    }
}

fn read_u24(b: &[u8]) -> u32 {
    u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2])
}

fn read_u32_be(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u32(payload: &[u8], type_id: u8) -> Result<u32, ChunkError> {
    match payload.get(..4) {
        Some(b) => Ok(read_u32_be(b)),
        None => Err(ChunkError::MalformedControl {
            type_id,
            len_bytes: payload.len(),
        }),
    }
}

/// Serialises messages into chunks (§5.3) with the server's outgoing chunk size: a type 0 header on the
/// first chunk and type 3 headers on continuation chunks (repeating the extended timestamp when used).
#[derive(Debug, Clone)]
pub struct ChunkEncoder {
    chunk_size_bytes: u32,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder at the initial chunk size of 128 bytes.
    pub fn new() -> Self {
        Self {
            chunk_size_bytes: DEFAULT_CHUNK_SIZE_BYTES,
        }
    }

    /// The outgoing chunk size, in bytes.
    pub fn chunk_size_bytes(&self) -> u32 {
        self.chunk_size_bytes
    }

    /// Use `chunk_size_bytes` (clamped to 1..=[`MAX_CHUNK_SIZE_BYTES`]) for following messages. Call it
    /// right after encoding the Set Chunk Size message that announces it.
    pub fn set_chunk_size(&mut self, chunk_size_bytes: u32) {
        self.chunk_size_bytes = chunk_size_bytes.clamp(1, MAX_CHUNK_SIZE_BYTES);
    }

    /// Append `message` as chunks to `out`. The chunk stream id must be 2..=65599 (it is clamped into that
    /// range) and the payload at most 16 MiB - 1 bytes (the 24-bit length field; longer payloads are
    /// truncated to it, which the server never sends).
    pub fn encode(&self, message: &RtmpMessage, out: &mut BytesMut) {
        let chunk_stream_id = message.chunk_stream_id.clamp(2, MAX_CHUNK_STREAM_ID);
        let payload = &message.payload[..message.payload.len().min(0x00FF_FFFF)];
        let is_extended = message.timestamp_ms >= EXTENDED_TIMESTAMP_MARKER;
        let mut chunks = payload.chunks(self.chunk_size_bytes as usize);
        let first = chunks.next().unwrap_or(&[]);
        put_basic_header(out, 0, chunk_stream_id);
        put_u24(
            out,
            if is_extended {
                EXTENDED_TIMESTAMP_MARKER
            } else {
                message.timestamp_ms
            },
        );
        put_u24(out, payload.len() as u32);
        out.put_u8(message.type_id);
        out.put_u32_le(message.message_stream_id);
        if is_extended {
            out.put_u32(message.timestamp_ms);
        }
        out.put_slice(first);
        for chunk in chunks {
            put_basic_header(out, 3, chunk_stream_id);
            if is_extended {
                out.put_u32(message.timestamp_ms);
            }
            out.put_slice(chunk);
        }
    }
}

fn put_basic_header(out: &mut BytesMut, fmt: u8, chunk_stream_id: u32) {
    match chunk_stream_id {
        2..=63 => out.put_u8(fmt << 6 | chunk_stream_id as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((chunk_stream_id - 64) as u8);
        }
        _ => {
            let id = chunk_stream_id - 64;
            out.put_u8(fmt << 6 | 1);
            out.put_u8((id & 0xFF) as u8);
            out.put_u8((id >> 8) as u8);
        }
    }
}

fn put_u24(out: &mut BytesMut, value: u32) {
    out.put_slice(&value.to_be_bytes()[1..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoder() -> ChunkDecoder {
        ChunkDecoder::new(ChunkDecoderConfig::default())
    }

    fn decode_all(d: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RtmpMessage> {
        d.push(bytes).unwrap();
        let mut out = Vec::new();
        while let Some(m) = d.next_message().unwrap() {
            out.push(m);
        }
        d.check_invariants();
        out
    }

    #[test]
    fn chunk_type0_single_chunk_message() {
        let bytes = [
            0x03, // fmt 0, csid 3
            0x00, 0x00, 0x0A, // timestamp 10 ms
            0x00, 0x00, 0x03, // length 3
            0x14, // type 20 (AMF0 command)
            0x01, 0x00, 0x00, 0x00, // message stream id 1 (little endian)
            0xAA, 0xBB, 0xCC, // payload
        ];
        let msgs = decode_all(&mut decoder(), &bytes);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].chunk_stream_id, 3);
        assert_eq!(msgs[0].timestamp_ms, 10);
        assert_eq!(msgs[0].type_id, 20);
        assert_eq!(msgs[0].message_stream_id, 1);
        assert_eq!(&msgs[0].payload[..], &[0xAA, 0xBB, 0xCC]);
    }

    #[test]
    fn chunk_two_and_three_byte_basic_headers() {
        let mut bytes = vec![
            0x00, 0x00, // fmt 0, 2-byte form: csid = 64 + 0 = 64
            0x00, 0x00, 0x00, // timestamp 0
            0x00, 0x00, 0x01, // length 1
            0x08, // audio
            0x01, 0x00, 0x00, 0x00, // msid 1
            0x11, // payload
        ];
        bytes.extend_from_slice(&[
            0x01, 0xFF, 0xFF, // fmt 0, 3-byte form: csid = 64 + 255 + 255 * 256 = 65599
            0x00, 0x00, 0x00, // timestamp 0
            0x00, 0x00, 0x01, // length 1
            0x09, // video
            0x01, 0x00, 0x00, 0x00, // msid 1
            0x22, // payload
        ]);
        let msgs = decode_all(&mut decoder(), &bytes);
        assert_eq!(
            msgs.iter().map(|m| m.chunk_stream_id).collect::<Vec<_>>(),
            [64, 65_599]
        );
    }

    #[test]
    fn chunk_extended_timestamp_type0() {
        let bytes = [
            0x04, // fmt 0, csid 4
            0xFF, 0xFF, 0xFF, // timestamp field 0xFFFFFF: extended timestamp follows
            0x00, 0x00, 0x01, // length 1
            0x09, // video
            0x01, 0x00, 0x00, 0x00, // msid 1
            0x01, 0x00, 0x00, 0x00, // extended timestamp 0x01000000 = 16_777_216 ms
            0x17, // payload
        ];
        let msgs = decode_all(&mut decoder(), &bytes);
        assert_eq!(msgs[0].timestamp_ms, 0x0100_0000);
        assert_eq!(&msgs[0].payload[..], &[0x17]);
    }

    #[test]
    fn chunk_type3_continuation_with_extended_timestamp() {
        // 200-byte message with chunk size 128: first chunk type 0 with extended timestamp, then a type 3
        // continuation chunk that repeats the extended timestamp (as FFmpeg does).
        let mut bytes = vec![
            0x04, // fmt 0, csid 4
            0xFF, 0xFF, 0xFF, // extended timestamp follows
            0x00, 0x00, 0xC8, // length 200
            0x09, 0x01, 0x00, 0x00, 0x00, // video, msid 1
            0x12, 0x34, 0x56, 0x78, // extended timestamp 0x12345678
        ];
        bytes.extend(std::iter::repeat_n(0xAB, 128));
        bytes.extend_from_slice(&[
            0xC4, // fmt 3, csid 4
            0x12, 0x34, 0x56, 0x78, // extended timestamp repeated
        ]);
        bytes.extend(std::iter::repeat_n(0xCD, 72));
        let msgs = decode_all(&mut decoder(), &bytes);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].timestamp_ms, 0x1234_5678);
        assert_eq!(msgs[0].payload.len(), 200);
        assert_eq!(msgs[0].payload[127], 0xAB);
        assert_eq!(msgs[0].payload[128], 0xCD);

        // Same, but the encoder omitted the extended timestamp on the continuation chunk.
        let mut bytes = bytes[..16 + 128].to_vec();
        bytes.push(0xC4);
        bytes.extend(std::iter::repeat_n(0xCD, 72));
        let msgs = decode_all(&mut decoder(), &bytes);
        assert_eq!(msgs[0].payload.len(), 200);
        assert!(msgs[0].payload[128..].iter().all(|&b| b == 0xCD));
    }

    #[test]
    fn chunk_type3_new_message_with_extended_delta() {
        let bytes = [
            0x04, // fmt 0, csid 4
            0xFF, 0xFF, 0xFF, // extended timestamp follows
            0x00, 0x00, 0x01, // length 1
            0x09, // video
            0x01, 0x00, 0x00, 0x00, // msid 1
            0x01, 0x00, 0x00, 0x00, // extended timestamp 16_777_216
            0xA1, // payload
            0x44, // fmt 1, csid 4
            0xFF, 0xFF, 0xFF, // extended timestamp delta follows
            0x00, 0x00, 0x01, // length 1
            0x09, // video
            0x00, 0x00, 0x00, 0x21, // extended delta 33 ms
            0xA2, // payload
            0xC4, // fmt 3 csid 4: new message, delta repeats
            0x00, 0x00, 0x00, 0x21, // extended delta 33 ms again
            0xA3, // payload
        ];
        let msgs = decode_all(&mut decoder(), &bytes);
        let ts: Vec<u32> = msgs.iter().map(|m| m.timestamp_ms).collect();
        assert_eq!(ts, [0x0100_0000, 0x0100_0021, 0x0100_0042]);
    }

    #[test]
    fn chunk_type3_after_type0_uses_timestamp_as_delta() {
        let bytes = [
            0x05, // fmt 0, csid 5
            0x00, 0x00, 0x28, // timestamp 40 ms
            0x00, 0x00, 0x01, // length 1
            0x08, // audio
            0x01, 0x00, 0x00, 0x00, // msid 1
            0x01, // payload
            0xC5, 0x02, // fmt 3: new message, delta = 40 (§5.3.1.2.4)
            0x85, 0x00, 0x00, 0x17, 0x03, // fmt 2: delta 23
            0xC5, 0x04, // fmt 3: delta 23 again
        ];
        let ts: Vec<u32> = decode_all(&mut decoder(), &bytes)
            .iter()
            .map(|m| m.timestamp_ms)
            .collect();
        assert_eq!(ts, [40, 80, 103, 126]);
    }

    #[test]
    fn chunk_timestamps_wrap_at_32_bits() {
        let bytes = [
            0x05, // fmt 0, csid 5
            0xFF, 0xFF, 0xFF, // extended timestamp follows
            0x00, 0x00, 0x01, // length 1
            0x08, // audio
            0x01, 0x00, 0x00, 0x00, // msid 1
            0xFF, 0xFF, 0xFF, 0xF0, // extended timestamp 0xFFFFFFF0 ms
            0x01, // payload
            0x85, 0x00, 0x00, 0x20, // fmt 2: delta 32 ms
            0x02,
        ];
        let ts: Vec<u32> = decode_all(&mut decoder(), &bytes)
            .iter()
            .map(|m| m.timestamp_ms)
            .collect();
        assert_eq!(ts, [0xFFFF_FFF0, 0x10]);
    }

    #[test]
    fn chunk_interleaved_streams_mid_message() {
        // Two 150-byte messages on csid 4 (video) and csid 6 (audio), chunk size 128, interleaved:
        // 4:first 128 | 6:first 128 | 4:last 22 | 6:last 22.
        let mut b = vec![
            0x04, // fmt 0, csid 4
            0x00, 0x00, 0x0A, // timestamp 10 ms
            0x00, 0x00, 0x96, // length 150
            0x09, // video
            0x01, 0x00, 0x00, 0x00, // msid 1
        ];
        b.extend(std::iter::repeat_n(0x44, 128));
        b.extend_from_slice(&[
            0x06, // fmt 0, csid 6
            0x00, 0x00, 0x0B, // timestamp 11 ms
            0x00, 0x00, 0x96, // length 150
            0x08, // audio
            0x01, 0x00, 0x00, 0x00, // msid 1
        ]);
        b.extend(std::iter::repeat_n(0x66, 128));
        b.push(0xC4); // fmt 3 csid 4 continuation
        b.extend(std::iter::repeat_n(0x45, 22));
        b.push(0xC6); // fmt 3 csid 6 continuation
        b.extend(std::iter::repeat_n(0x67, 22));
        let msgs = decode_all(&mut decoder(), &b);
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (
                msgs[0].chunk_stream_id,
                msgs[0].timestamp_ms,
                msgs[0].type_id
            ),
            (4, 10, 9)
        );
        assert_eq!(
            (
                msgs[1].chunk_stream_id,
                msgs[1].timestamp_ms,
                msgs[1].type_id
            ),
            (6, 11, 8)
        );
        assert!(msgs[0].payload[..128].iter().all(|&x| x == 0x44));
        assert!(msgs[0].payload[128..].iter().all(|&x| x == 0x45));
        assert!(msgs[1].payload[128..].iter().all(|&x| x == 0x67));
    }

    #[test]
    fn chunk_set_chunk_size_mid_stream() {
        let mut b = vec![
            0x02, // fmt 0, csid 2 (protocol control)
            0x00, 0x00, 0x00, // timestamp 0
            0x00, 0x00, 0x04, // length 4
            0x01, // Set Chunk Size
            0x00, 0x00, 0x00, 0x00, // msid 0
            0x00, 0x00, 0x01, 0x00, // new chunk size 256
            0x04, // fmt 0, csid 4
            0x00, 0x00, 0x00, // timestamp 0
            0x00, 0x00, 0xC8, // length 200: one chunk at the new size
            0x09, // video
            0x01, 0x00, 0x00, 0x00, // msid 1
        ];
        b.extend(std::iter::repeat_n(0x01, 200));
        let mut d = decoder();
        let msgs = decode_all(&mut d, &b);
        assert_eq!(d.chunk_size_bytes(), 256);
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1].payload.len(), 200);
    }

    #[test]
    fn chunk_set_chunk_size_zero_is_rejected_and_huge_is_clamped() {
        let zero = [0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut d = decoder();
        d.push(&zero).unwrap();
        assert_eq!(
            d.next_message(),
            Err(ChunkError::InvalidChunkSize { value: 0 })
        );
        let huge = [
            0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF,
        ];
        let mut d = decoder();
        decode_all(&mut d, &huge);
        assert_eq!(d.chunk_size_bytes(), MAX_CHUNK_SIZE_BYTES);
    }

    #[test]
    fn chunk_abort_discards_partial_message() {
        let mut b = vec![
            0x04, // fmt 0, csid 4
            0x00, 0x00, 0x00, // timestamp 0
            0x00, 0x00, 0xC8, // length 200
            0x09, // video
            0x01, 0x00, 0x00, 0x00, // msid 1
        ];
        b.extend(std::iter::repeat_n(0xEE, 128)); // first chunk only
        b.extend_from_slice(&[
            0x02, // fmt 0, csid 2 (protocol control)
            0x00, 0x00, 0x00, // timestamp 0
            0x00, 0x00, 0x04, // length 4
            0x02, // Abort Message
            0x00, 0x00, 0x00, 0x00, // msid 0
            0x00, 0x00, 0x00, 0x04, // chunk stream id 4
            0xC4, 0x01, // csid 4 fmt 3: starts a NEW 200-byte message after the abort
        ]);
        let mut d = decoder();
        let msgs = decode_all(&mut d, &b);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].type_id, message_type::ABORT);
        assert_eq!(d.buffered_bytes(), 2); // the new message's chunk, waiting for its payload
    }

    #[test]
    fn chunk_oversize_message_is_an_error() {
        let mut d = ChunkDecoder::new(ChunkDecoderConfig {
            max_message_bytes: 1000,
            ..Default::default()
        });
        d.push(&[0x04, 0, 0, 0, 0x00, 0x03, 0xE9, 0x09, 1, 0, 0, 0])
            .unwrap(); // length 1001
        assert!(matches!(
            d.next_message(),
            Err(ChunkError::MessageTooLarge {
                length_bytes: 1001,
                ..
            })
        ));
    }

    #[test]
    fn chunk_too_many_chunk_streams_is_an_error() {
        let mut d = ChunkDecoder::new(ChunkDecoderConfig {
            max_chunk_streams: 2,
            ..Default::default()
        });
        for csid in [3u8, 4, 5] {
            d.push(&[csid, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xFF])
                .unwrap();
        }
        assert!(d.next_message().unwrap().is_some());
        assert!(d.next_message().unwrap().is_some());
        assert_eq!(
            d.next_message(),
            Err(ChunkError::TooManyChunkStreams { max: 2 })
        );
    }

    #[test]
    fn chunk_unknown_stream_and_header_mid_message_are_errors() {
        let mut d = decoder();
        d.push(&[0xC7, 0x00]).unwrap(); // fmt 3 on csid 7, never seen
        assert!(matches!(
            d.next_message(),
            Err(ChunkError::UnknownChunkStream {
                chunk_stream_id: 7,
                fmt: 3
            })
        ));

        let mut d = decoder();
        let mut b = vec![0x04, 0, 0, 0, 0, 0, 0xC8, 9, 1, 0, 0, 0];
        b.extend(std::iter::repeat_n(0, 128));
        b.extend_from_slice(&[0x84, 0, 0, 0]); // fmt 2 while the 200-byte message is incomplete
        d.push(&b).unwrap();
        assert!(matches!(
            d.next_message(),
            Err(ChunkError::HeaderMidMessage { fmt: 2, .. })
        ));
    }

    #[test]
    fn chunk_truncated_input_needs_more_then_completes() {
        let bytes = [
            0x03, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x03, 0x14, 0x00, 0x00, 0x00, 0x00, 1, 2, 3,
        ];
        let mut d = decoder();
        for (i, byte) in bytes.iter().enumerate() {
            d.push(&[*byte]).unwrap();
            let got = d.next_message().unwrap();
            assert_eq!(got.is_some(), i == bytes.len() - 1, "byte {i}");
            d.check_invariants();
        }
    }

    #[test]
    fn chunk_buffer_limit_is_enforced() {
        let mut d = ChunkDecoder::new(ChunkDecoderConfig {
            max_buffered_bytes: 16,
            ..Default::default()
        });
        assert!(d.push(&[0u8; 16]).is_ok());
        assert!(matches!(
            d.push(&[0u8; 1]),
            Err(ChunkError::BufferLimit {
                buffered_bytes: 17,
                max_bytes: 16
            })
        ));
    }

    #[test]
    fn chunk_encoder_splits_and_repeats_extended_timestamp() {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(4);
        let msg = RtmpMessage {
            chunk_stream_id: 3,
            message_stream_id: 0,
            type_id: 20,
            timestamp_ms: 0xFFFF_FFFF,
            payload: Bytes::from_static(&[1, 2, 3, 4, 5, 6]),
        };
        let mut out = BytesMut::new();
        enc.encode(&msg, &mut out);
        #[rustfmt::skip]
        let expected = [
            0x03, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x06, 0x14, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
            0xC3, 0xFF, 0xFF, 0xFF, 0xFF, 5, 6,
        ];
        assert_eq!(&out[..], &expected);
    }

    fn arb_message() -> impl Strategy<Value = RtmpMessage> {
        (
            prop_oneof![2u32..64, 64u32..320, 320u32..=MAX_CHUNK_STREAM_ID],
            any::<u32>(),
            any::<u8>().prop_filter("not control", |t| *t != 1 && *t != 2),
            prop_oneof![0u32..1000, 0x00FF_FFF0u32..0x0100_0010, any::<u32>()],
            proptest::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(|(csid, msid, type_id, ts, payload)| RtmpMessage {
                chunk_stream_id: csid,
                message_stream_id: msid,
                type_id,
                timestamp_ms: ts,
                payload: Bytes::from(payload),
            })
    }

    proptest! {
        #[test]
        fn chunk_encode_decode_round_trips(
            msgs in proptest::collection::vec(arb_message(), 1..8),
            chunk_size in 1u32..300,
            split in 1usize..97,
        ) {
            let mut enc = ChunkEncoder::new();
            let mut wire = BytesMut::new();
            // Announce the chunk size first, as the server does.
            let scs = RtmpMessage {
                chunk_stream_id: 2, message_stream_id: 0, type_id: message_type::SET_CHUNK_SIZE,
                timestamp_ms: 0, payload: Bytes::copy_from_slice(&chunk_size.to_be_bytes()),
            };
            enc.encode(&scs, &mut wire);
            enc.set_chunk_size(chunk_size);
            for m in &msgs {
                enc.encode(m, &mut wire);
            }
            let mut d = decoder();
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                d.push(piece).unwrap();
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
                d.check_invariants();
            }
            prop_assert_eq!(&got[0], &scs);
            prop_assert_eq!(&got[1..], &msgs[..]);
        }

        #[test]
        fn chunk_decoder_never_panics_on_random_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            split in 1usize..64,
        ) {
            let mut d = ChunkDecoder::new(ChunkDecoderConfig {
                max_message_bytes: 4096, max_chunk_streams: 8, max_buffered_bytes: 65_536,
            });
            'outer: for piece in bytes.chunks(split) {
                if d.push(piece).is_err() { break; }
                loop {
                    match d.next_message() {
                        Ok(Some(_)) => d.check_invariants(),
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
            }
        }
    }
}
