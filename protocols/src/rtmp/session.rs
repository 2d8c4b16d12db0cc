//! The server side of one RTMP connection after the handshake, sans-IO (RTMP specification 1.0 §5.4
//! protocol control, §6.2 user control, §7.2 NetConnection / NetStream commands).
//!
//! Calling protocol: [`ServerSession::receive`] the bytes read from the socket, then [`ServerSession::poll`]
//! until `Ok(None)`, handling each [`SessionEvent`]; then send what [`ServerSession::take_outgoing`] returns.
//! A [`SessionEvent::PublishRequested`] must be answered with [`ServerSession::accept_publish`] or
//! [`ServerSession::refuse_publish`] before polling further. After a [`SessionEvent::Rejected`], flush the
//! outgoing bytes and close. Any `Err` is fatal for the connection.
//!
//! The session never trusts a command's shape: missing or mistyped arguments are treated as absent, and
//! AMF0 is decoded through the validating guard in [`super::amf`].

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::amf::{self, Amf0Error, Amf0Value};
use super::chunk::{
    ChunkDecoder, ChunkDecoderConfig, ChunkEncoder, ChunkError, RtmpMessage, message_type,
};
use super::cue_point;
use media::name::is_valid_name;

/// The only application name accepted (`rtmp://host/live/{name}`).
pub const APP: &str = "live";
/// Longest query kept from a publish name or app (`?key=…&…`), bytes.
pub const MAX_QUERY_BYTES: usize = 2048;
/// The message stream id `createStream` hands out (one publish per connection).
pub const STREAM_ID: u32 = 1;
/// Largest command or data message decoded, in bytes (a command is a few hundred bytes; metadata a few KiB).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

const CONTROL_CHUNK_STREAM: u32 = 2;
const COMMAND_CHUNK_STREAM: u32 = 3;
const STREAM_CHUNK_STREAM: u32 = 5;

/// Limits and announced values of a [`ServerSession`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Chunk decoder limits.
    pub decoder: ChunkDecoderConfig,
    /// Window Acknowledgement Size announced to the client, bytes (§5.4.4).
    pub window_ack_size_bytes: u32,
    /// Set Peer Bandwidth announced to the client, bytes (§5.4.5, limit type dynamic).
    pub peer_bandwidth_bytes: u32,
    /// Chunk size the server sends with after `connect`, bytes (§5.4.1).
    pub outgoing_chunk_size_bytes: u32,
    /// Bound on queued outgoing bytes (the driver drains them after every read).
    pub max_outgoing_bytes: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            decoder: ChunkDecoderConfig::default(),
            window_ack_size_bytes: 2_500_000,
            peer_bandwidth_bytes: 2_500_000,
            outgoing_chunk_size_bytes: 4096,
            max_outgoing_bytes: 1024 * 1024,
        }
    }
}

/// A fatal session error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The chunk stream is invalid or over a limit.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A command message is not valid AMF0.
    #[error("command {type_id}: {source}")]
    Amf {
        /// The message type id.
        type_id: u8,
        /// The AMF0 error.
        source: Amf0Error,
    },
    /// A command out of order (e.g. before `connect`).
    #[error("unexpected command {command:?}: {why}")]
    UnexpectedCommand {
        /// The command name (truncated to 64 bytes).
        command: String,
        /// Why it is unexpected.
        why: &'static str,
    },
    /// The peer does not read what the server sends.
    #[error("{0} outgoing bytes queued, peer not reading")]
    OutgoingOverflow(usize),
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// Message type 8.
    Audio,
    /// Message type 9.
    Video,
}

/// A validated publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// Full stream name, `live/{name}`, with `{name}` valid per [`is_valid_name`].
    pub stream: String,
    /// The query after `?` in the publish name (e.g. `token=…`), kept for authorisation.
    pub query: Option<String>,
}

/// Why the session refused the peer; the connection closes after the reply is flushed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Publish to a wrong application or an invalid stream name.
    #[error("publish refused: bad name (app {app:?}, name {name:?})")]
    BadName {
        /// The application from `connect` (truncated to 64 bytes).
        app: String,
        /// The requested name (truncated to 64 bytes).
        name: String,
    },
    /// The client asked to play; this origin only ingests over RTMP.
    #[error("play refused: rtmp playback is not served")]
    Play,
}

/// What the driver must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The client asks to publish; answer with [`ServerSession::accept_publish`] or
    /// [`ServerSession::refuse_publish`].
    PublishRequested(PublishRequest),
    /// An audio or video message of the accepted publish: an FLV tag body with its 32-bit ms timestamp.
    Media {
        /// Audio or video.
        kind: MediaKind,
        /// RTMP timestamp, ms (wrapping).
        timestamp_ms: u32,
        /// The FLV tag body.
        payload: Bytes,
    },
    /// An ad marker of the accepted publish (an `onCuePoint` data message, see [`cue_point`]) with
    /// its message's 32-bit timestamp, ms (wrapping), or why it was not read.
    CuePoint {
        /// RTMP timestamp, ms (wrapping).
        timestamp_ms: u32,
        /// The cue point, or why it was refused.
        cue: Result<cue_point::CuePoint, cue_point::CuePointError>,
    },
    /// The client ended the publish (FCUnpublish / closeStream / deleteStream).
    Unpublished,
    /// The session refused the client; flush outgoing bytes and close.
    Rejected(Rejection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitingConnect,
    Connected,
    PublishPending,
    Publishing,
    Closed,
}

/// One connection's RTMP server session. See the module docs for the calling protocol.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    outgoing: BytesMut,
    state: State,
    app: String,
    /// A query the client appended to the app (`rtmp://host/live?key=…`), used when the publish name
    /// has none.
    app_query: Option<String>,
    events: VecDeque<SessionEvent>,
    /// Bytes received since the session started (for Acknowledgement, §5.4.3).
    received_bytes: u64,
    /// `received_bytes` when the last Acknowledgement was sent.
    acked_bytes: u64,
    /// The client's Window Acknowledgement Size, bytes (None until announced).
    peer_window_ack_bytes: Option<u32>,
    /// Media messages dropped (not publishing, or on another message stream).
    dropped_media: u64,
}

impl ServerSession {
    /// A session right after the handshake, waiting for `connect`.
    pub fn new(config: SessionConfig) -> Self {
        Self {
            config,
            decoder: ChunkDecoder::new(config.decoder),
            encoder: ChunkEncoder::new(),
            outgoing: BytesMut::new(),
            state: State::AwaitingConnect,
            app: String::new(),
            app_query: None,
            events: VecDeque::new(),
            received_bytes: 0,
            acked_bytes: 0,
            peer_window_ack_bytes: None,
            dropped_media: 0,
        }
    }

    /// Bytes received so far.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// Media messages dropped because no publish was active on their message stream.
    pub fn dropped_media(&self) -> u64 {
        self.dropped_media
    }

    /// Feed bytes read from the peer. Queues an Acknowledgement when the peer's window is passed.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.received_bytes += bytes.len() as u64;
        if let Some(window) = self.peer_window_ack_bytes
            && self.received_bytes - self.acked_bytes >= u64::from(window)
        {
            self.acked_bytes = self.received_bytes;
            // The sequence number is the byte count so far, wrapping at 32 bits (§5.4.3).
            let sequence = (self.received_bytes & 0xFFFF_FFFF) as u32;
            self.send_control(message_type::ACKNOWLEDGEMENT, &sequence.to_be_bytes())?;
        }
        self.decoder.push(bytes)?;
        Ok(())
    }

    /// The next event, `Ok(None)` when more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<SessionEvent>, SessionError> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if matches!(self.state, State::Closed | State::PublishPending) {
                return Ok(None);
            }
            match self.decoder.next_message()? {
                None => return Ok(None),
                Some(message) => self.on_message(message)?,
            }
        }
    }

    /// Bytes to send to the peer, if any.
    pub fn take_outgoing(&mut self) -> Option<Bytes> {
        (!self.outgoing.is_empty()).then(|| self.outgoing.split().freeze())
    }

    /// Accept the pending publish: sends Stream Begin and `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, stream: &str) -> Result<(), SessionError> {
        if self.state != State::PublishPending {
            return Ok(());
        }
        self.state = State::Publishing;
        let mut payload = Vec::with_capacity(6);
        payload.extend_from_slice(&0u16.to_be_bytes()); // User Control event 0: Stream Begin (§7.1.7)
        payload.extend_from_slice(&STREAM_ID.to_be_bytes());
        self.send_control(message_type::USER_CONTROL, &payload)?;
        self.send_on_status(
            "status",
            "NetStream.Publish.Start",
            &format!("{stream} is now published"),
        )
    }

    /// Refuse the pending publish with `description` (sent to the client as a `NetStream.Publish.BadName`
    /// error status); the connection should then be flushed and closed.
    pub fn refuse_publish(&mut self, description: &str) -> Result<(), SessionError> {
        self.state = State::Closed;
        self.send_on_status("error", "NetStream.Publish.BadName", description)
    }

    /// End the accepted publish with `description` (sent to the client as a `NetStream.Publish.Rejected`
    /// error status: the publisher sent something the server cannot serve, such as an unsupported
    /// codec); the connection should then be flushed and closed. No further event is produced.
    pub fn reject_publish(&mut self, description: &str) -> Result<(), SessionError> {
        self.state = State::Closed;
        self.send_on_status("error", "NetStream.Publish.Rejected", description)
    }

    /// Checks internal invariants (for tests and fuzzing); panics with the broken one.
    pub fn check_invariants(&self) {
        self.decoder.check_invariants();
        assert!(
            self.outgoing.len() <= self.config.max_outgoing_bytes,
            "outgoing within bound"
        );
        assert!(
            self.acked_bytes <= self.received_bytes,
            "acknowledged no more than received"
        );
    }

    fn on_message(&mut self, message: RtmpMessage) -> Result<(), SessionError> {
        let payload = &message.payload;
        match message.type_id {
            // Applied by the chunk decoder already.
            message_type::SET_CHUNK_SIZE | message_type::ABORT | message_type::ACKNOWLEDGEMENT => {}
            message_type::WINDOW_ACK_SIZE => match read_u32(payload) {
                Some(0) | None => tracing::debug!("ignoring malformed window acknowledgement size"),
                Some(window) => self.peer_window_ack_bytes = Some(window),
            },
            message_type::SET_PEER_BANDWIDTH => tracing::trace!("peer bandwidth announced"),
            message_type::USER_CONTROL => self.on_user_control(payload)?,
            message_type::AUDIO => {
                self.on_media(MediaKind::Audio, &message, message.payload.clone())
            }
            message_type::VIDEO => {
                self.on_media(MediaKind::Video, &message, message.payload.clone())
            }
            message_type::AGGREGATE => self.on_aggregate(&message),
            message_type::COMMAND_AMF0 => self.on_command(&message, payload)?,
            // AMF3 command: a 0 format byte, then AMF0 values (§7.1.1).
            message_type::COMMAND_AMF3 => {
                self.on_command(&message, payload.get(1..).unwrap_or(&[]))?
            }
            message_type::DATA_AMF0 => self.on_data(&message, payload),
            message_type::DATA_AMF3 => self.on_data(&message, payload.get(1..).unwrap_or(&[])),
            other => tracing::trace!(type_id = other, "ignoring message"),
        }
        Ok(())
    }

    fn on_user_control(&mut self, payload: &[u8]) -> Result<(), SessionError> {
        let Some(event) = payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            tracing::debug!("ignoring truncated user control message");
            return Ok(());
        };
        // PingRequest (6) carries a 4-byte timestamp echoed in PingResponse (7) (§7.1.7).
        if event == 6
            && let Some(ts) = payload.get(2..6)
        {
            let reply = [&7u16.to_be_bytes()[..], ts].concat();
            self.send_control(message_type::USER_CONTROL, &reply)?;
        }
        Ok(())
    }

    fn on_media(&mut self, kind: MediaKind, message: &RtmpMessage, payload: Bytes) {
        if self.state != State::Publishing || message.message_stream_id != STREAM_ID {
            self.dropped_media += 1;
            return;
        }
        self.events.push_back(SessionEvent::Media {
            kind,
            timestamp_ms: message.timestamp_ms,
            payload,
        });
    }

    /// Aggregate message (§7.1.6): FLV tags (type, size, timestamp, stream id, body, back pointer), with
    /// timestamps relative to the first tag's and re-based on the aggregate's timestamp.
    fn on_aggregate(&mut self, message: &RtmpMessage) {
        let mut rest = message.payload.clone();
        let mut first_ts: Option<u32> = None;
        while rest.len() >= 11 {
            let type_id = rest[0];
            let size =
                (usize::from(rest[1]) << 16) | (usize::from(rest[2]) << 8) | usize::from(rest[3]);
            let ts = u32::from_be_bytes([rest[7], rest[4], rest[5], rest[6]]);
            if rest.len() < 11 + size {
                tracing::debug!("truncated aggregate message");
                return;
            }
            let body = rest.slice(11..11 + size);
            rest.advance((11 + size + 4).min(rest.len()));
            let base = *first_ts.get_or_insert(ts);
            let timestamp_ms = message.timestamp_ms.wrapping_add(ts.wrapping_sub(base));
            let sub = RtmpMessage {
                type_id,
                timestamp_ms,
                payload: body.clone(),
                ..message.clone()
            };
            match type_id {
                message_type::AUDIO => self.on_media(MediaKind::Audio, &sub, body),
                message_type::VIDEO => self.on_media(MediaKind::Video, &sub, body),
                _ => {}
            }
        }
    }

    fn on_command(&mut self, message: &RtmpMessage, body: &[u8]) -> Result<(), SessionError> {
        if body.len() > MAX_COMMAND_BYTES {
            tracing::debug!(len_bytes = body.len(), "ignoring oversized command");
            return Ok(());
        }
        let values = amf::decode(body).map_err(|source| SessionError::Amf {
            type_id: message.type_id,
            source,
        })?;
        let Some(name) = amf::as_str(values.first()) else {
            tracing::debug!("ignoring command without a name");
            return Ok(());
        };
        let transaction_id = amf::as_number(values.get(1)).unwrap_or(0.0);
        if self.state == State::AwaitingConnect && name != "connect" {
            return Err(unexpected(name, "before connect"));
        }
        match name {
            "connect" => self.on_connect(&values, transaction_id),
            "releaseStream" | "FCPublish" => {
                if transaction_id > 0.0 {
                    self.send_result(transaction_id, Amf0Value::Null, Amf0Value::Undefined)?;
                }
                Ok(())
            }
            "createStream" => self.send_result(
                transaction_id,
                Amf0Value::Null,
                Amf0Value::Number(f64::from(STREAM_ID)),
            ),
            "publish" => self.on_publish(&values),
            "FCUnpublish" | "closeStream" | "deleteStream" => {
                if self.state == State::Publishing {
                    self.state = State::Connected;
                    self.events.push_back(SessionEvent::Unpublished);
                }
                Ok(())
            }
            "play" | "play2" => {
                self.state = State::Closed;
                self.send_on_status(
                    "error",
                    "NetStream.Play.Failed",
                    "this origin does not serve rtmp playback",
                )?;
                self.events
                    .push_back(SessionEvent::Rejected(Rejection::Play));
                Ok(())
            }
            other => {
                tracing::debug!(command = %truncate(other), "ignoring command");
                Ok(())
            }
        }
    }

    fn on_connect(
        &mut self,
        values: &[Amf0Value],
        transaction_id: f64,
    ) -> Result<(), SessionError> {
        if self.state != State::AwaitingConnect {
            return Err(unexpected("connect", "connection already connected"));
        }
        let command_object = amf::as_object(values.get(2));
        let app = amf::as_str(command_object.and_then(|o| o.get("app"))).unwrap_or("");
        // OBS and others may append a query or a trailing slash to the app.
        let (app, app_query) = match app.split_once('?') {
            Some((app, query)) => (app, Some(truncate_to(query, MAX_QUERY_BYTES))),
            None => (app, None),
        };
        let app = app.trim_end_matches('/');
        self.app = truncate(app);
        self.app_query = app_query;
        tracing::debug!(app = %self.app, "rtmp connect");
        self.state = State::Connected;

        self.send_control(
            message_type::WINDOW_ACK_SIZE,
            &self.config.window_ack_size_bytes.to_be_bytes(),
        )?;
        let mut bandwidth = self.config.peer_bandwidth_bytes.to_be_bytes().to_vec();
        bandwidth.push(2); // limit type: dynamic
        self.send_control(message_type::SET_PEER_BANDWIDTH, &bandwidth)?;
        let chunk_size = self
            .config
            .outgoing_chunk_size_bytes
            .clamp(128, super::chunk::MAX_CHUNK_SIZE_BYTES);
        self.send_control(message_type::SET_CHUNK_SIZE, &chunk_size.to_be_bytes())?;
        self.encoder.set_chunk_size(chunk_size);

        let properties = amf::object([
            ("fmsVer", amf::string("FMS/3,0,1,123")),
            ("capabilities", Amf0Value::Number(31.0)),
        ]);
        let information = amf::object([
            ("level", amf::string("status")),
            ("code", amf::string("NetConnection.Connect.Success")),
            ("description", amf::string("Connection succeeded.")),
            ("objectEncoding", Amf0Value::Number(0.0)),
        ]);
        self.send_result(transaction_id, properties, information)
    }

    fn on_publish(&mut self, values: &[Amf0Value]) -> Result<(), SessionError> {
        if self.state != State::Connected {
            return Err(unexpected("publish", "a publish is already active"));
        }
        // publish(transaction id, null, name, type)
        let raw = amf::as_str(values.get(3)).unwrap_or("");
        let (name, query) = match raw.split_once('?') {
            Some((name, query)) => (name, Some(truncate_to(query, MAX_QUERY_BYTES))),
            None => (raw, self.app_query.clone()),
        };
        if self.app != APP || !is_valid_name(name) {
            self.state = State::Closed;
            self.send_on_status(
                "error",
                "NetStream.Publish.BadName",
                "invalid application or stream name",
            )?;
            self.events
                .push_back(SessionEvent::Rejected(Rejection::BadName {
                    app: self.app.clone(),
                    name: truncate(name),
                }));
            return Ok(());
        }
        self.state = State::PublishPending;
        self.events
            .push_back(SessionEvent::PublishRequested(PublishRequest {
                stream: format!("{APP}/{name}"),
                query,
            }));
        Ok(())
    }

    /// A data message: `onCuePoint` (also behind `@setDataFrame`) on the publishing stream becomes a
    /// [`SessionEvent::CuePoint`]; `onMetaData` is logged; anything else is ignored.
    fn on_data(&mut self, message: &RtmpMessage, body: &[u8]) {
        if body.len() > MAX_COMMAND_BYTES {
            return;
        }
        let Ok(values) = amf::decode(body) else {
            tracing::debug!("ignoring malformed data message");
            return;
        };
        let mut values = values.iter();
        let mut name = amf::as_str(values.next());
        if name == Some("@setDataFrame") {
            name = amf::as_str(values.next());
        }
        if name == Some("onCuePoint") {
            if self.state == State::Publishing && message.message_stream_id == STREAM_ID {
                let rest: Vec<Amf0Value> = values.cloned().collect();
                self.events.push_back(SessionEvent::CuePoint {
                    timestamp_ms: message.timestamp_ms,
                    cue: cue_point::parse(&rest),
                });
            }
            return;
        }
        if name != Some("onMetaData") {
            return;
        }
        if let Some(meta) = amf::as_object(values.next()) {
            let field = |key: &str| meta.get(key).map(|v| format!("{v:?}")).unwrap_or_default();
            tracing::debug!(
                width = %field("width"),
                height = %field("height"),
                videocodecid = %field("videocodecid"),
                audiocodecid = %field("audiocodecid"),
                framerate = %field("framerate"),
                encoder = %field("encoder"),
                "onMetaData"
            );
        }
    }

    fn send(
        &mut self,
        chunk_stream_id: u32,
        message_stream_id: u32,
        type_id: u8,
        payload: Vec<u8>,
    ) -> Result<(), SessionError> {
        let message = RtmpMessage {
            chunk_stream_id,
            message_stream_id,
            type_id,
            timestamp_ms: 0,
            payload: Bytes::from(payload),
        };
        let before = self.outgoing.len();
        self.encoder.encode(&message, &mut self.outgoing);
        if self.outgoing.len() > self.config.max_outgoing_bytes {
            self.outgoing.truncate(before);
            return Err(SessionError::OutgoingOverflow(before));
        }
        Ok(())
    }

    fn send_control(&mut self, type_id: u8, payload: &[u8]) -> Result<(), SessionError> {
        self.send(CONTROL_CHUNK_STREAM, 0, type_id, payload.to_vec())
    }

    fn send_amf(
        &mut self,
        chunk_stream_id: u32,
        message_stream_id: u32,
        values: &[Amf0Value],
    ) -> Result<(), SessionError> {
        let payload = amf::encode(values).map_err(|source| SessionError::Amf {
            type_id: message_type::COMMAND_AMF0,
            source,
        })?;
        self.send(
            chunk_stream_id,
            message_stream_id,
            message_type::COMMAND_AMF0,
            payload,
        )
    }

    fn send_result(
        &mut self,
        transaction_id: f64,
        a: Amf0Value,
        b: Amf0Value,
    ) -> Result<(), SessionError> {
        self.send_amf(
            COMMAND_CHUNK_STREAM,
            0,
            &[
                amf::string("_result"),
                Amf0Value::Number(transaction_id),
                a,
                b,
            ],
        )
    }

    fn send_on_status(
        &mut self,
        level: &str,
        code: &str,
        description: &str,
    ) -> Result<(), SessionError> {
        let info = amf::object([
            ("level", amf::string(level)),
            ("code", amf::string(code)),
            ("description", amf::string(description)),
        ]);
        let values = [
            amf::string("onStatus"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            info,
        ];
        self.send_amf(STREAM_CHUNK_STREAM, STREAM_ID, &values)
    }
}

fn read_u32(payload: &[u8]) -> Option<u32> {
    payload
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// At most 64 bytes of a peer-supplied string, cut at a character boundary (for logs and errors).
fn truncate(s: &str) -> String {
    truncate_to(s, 64)
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate_to(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn unexpected(command: &str, why: &'static str) -> SessionError {
    SessionError::UnexpectedCommand {
        command: truncate(command),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A scripted client: encodes messages with our chunk encoder (client chunk size 128) and decodes the
    /// server's replies with our chunk decoder.
    struct Client {
        encoder: ChunkEncoder,
        decoder: ChunkDecoder,
    }

    impl Client {
        fn new() -> Self {
            Self {
                encoder: ChunkEncoder::new(),
                decoder: ChunkDecoder::new(ChunkDecoderConfig::default()),
            }
        }

        fn message(&self, csid: u32, msid: u32, type_id: u8, ts: u32, payload: Vec<u8>) -> Vec<u8> {
            let mut out = BytesMut::new();
            let m = RtmpMessage {
                chunk_stream_id: csid,
                message_stream_id: msid,
                type_id,
                timestamp_ms: ts,
                payload: payload.into(),
            };
            self.encoder.encode(&m, &mut out);
            out.to_vec()
        }

        fn command(&self, msid: u32, values: &[Amf0Value]) -> Vec<u8> {
            self.message(
                3,
                msid,
                message_type::COMMAND_AMF0,
                0,
                amf::encode(values).unwrap(),
            )
        }

        fn replies(&mut self, session: &mut ServerSession) -> Vec<RtmpMessage> {
            let mut out = Vec::new();
            if let Some(bytes) = session.take_outgoing() {
                self.decoder.push(&bytes).unwrap();
            }
            while let Some(m) = self.decoder.next_message().unwrap() {
                out.push(m);
            }
            out
        }
    }

    fn feed(session: &mut ServerSession, bytes: &[u8]) -> Vec<SessionEvent> {
        session.receive(bytes).unwrap();
        let mut events = Vec::new();
        while let Some(e) = session.poll().unwrap() {
            events.push(e);
        }
        session.check_invariants();
        events
    }

    fn status_code(m: &RtmpMessage) -> Option<String> {
        let values = amf::decode(&m.payload).ok()?;
        let info = values
            .iter()
            .find_map(|v| amf::as_object(Some(v)).filter(|o| o.contains_key("code")))?;
        amf::as_str(info.get("code")).map(str::to_owned)
    }

    fn connect(app: &str) -> Vec<Amf0Value> {
        vec![
            amf::string("connect"),
            Amf0Value::Number(1.0),
            amf::object([("app", amf::string(app))]),
        ]
    }

    fn publish(name: &str) -> Vec<Amf0Value> {
        vec![
            amf::string("publish"),
            Amf0Value::Number(5.0),
            Amf0Value::Null,
            amf::string(name),
            amf::string("live"),
        ]
    }

    fn connected_session(client: &mut Client) -> ServerSession {
        let mut s = ServerSession::new(SessionConfig::default());
        assert!(feed(&mut s, &client.command(0, &connect("live"))).is_empty());
        client.replies(&mut s);
        s
    }

    #[test]
    fn session_connect_replies_with_controls_and_success() {
        let mut client = Client::new();
        let mut s = ServerSession::new(SessionConfig::default());
        feed(&mut s, &client.command(0, &connect("live/")));
        let replies = client.replies(&mut s);
        let types: Vec<u8> = replies.iter().map(|m| m.type_id).collect();
        assert_eq!(types, [5, 6, 1, 20]);
        assert_eq!(&replies[0].payload[..], &2_500_000u32.to_be_bytes());
        assert_eq!(&replies[2].payload[..], &4096u32.to_be_bytes());
        assert_eq!(
            status_code(&replies[3]).as_deref(),
            Some("NetConnection.Connect.Success")
        );
        assert_eq!(
            amf::as_number(amf::decode(&replies[3].payload).unwrap().get(1)),
            Some(1.0)
        );
    }

    #[test]
    fn session_publish_with_query_is_requested_then_accepted() {
        let mut client = Client::new();
        let mut s = connected_session(&mut client);
        let create = [
            amf::string("createStream"),
            Amf0Value::Number(4.0),
            Amf0Value::Null,
        ];
        feed(&mut s, &client.command(0, &create));
        let r = client.replies(&mut s);
        assert_eq!(
            amf::as_number(amf::decode(&r[0].payload).unwrap().get(3)),
            Some(1.0)
        );

        let events = feed(&mut s, &client.command(1, &publish("test?token=abc")));
        assert_eq!(
            events,
            [SessionEvent::PublishRequested(PublishRequest {
                stream: "live/test".into(),
                query: Some("token=abc".into()),
            })]
        );
        s.accept_publish("live/test").unwrap();
        let r = client.replies(&mut s);
        assert_eq!(&r[0].payload[..], &[0, 0, 0, 0, 0, 1]); // Stream Begin, stream 1
        assert_eq!(
            status_code(&r[1]).as_deref(),
            Some("NetStream.Publish.Start")
        );

        let video = client.message(4, 1, message_type::VIDEO, 40, vec![0x17, 1, 0, 0, 0]);
        let events = feed(&mut s, &video);
        assert!(matches!(
            &events[..],
            [SessionEvent::Media {
                kind: MediaKind::Video,
                timestamp_ms: 40,
                ..
            }]
        ));
        let events = feed(
            &mut s,
            &client.command(
                1,
                &[
                    amf::string("deleteStream"),
                    Amf0Value::Number(6.0),
                    Amf0Value::Null,
                    Amf0Value::Number(1.0),
                ],
            ),
        );
        assert_eq!(events, [SessionEvent::Unpublished]);
    }

    #[test]
    fn session_bad_app_or_name_is_refused() {
        for (app, name) in [
            ("live", "../etc"),
            ("live", ""),
            ("other", "test"),
            ("live", ".hidden"),
        ] {
            let mut client = Client::new();
            let mut s = ServerSession::new(SessionConfig::default());
            feed(&mut s, &client.command(0, &connect(app)));
            client.replies(&mut s);
            let events = feed(&mut s, &client.command(1, &publish(name)));
            assert!(
                matches!(
                    &events[..],
                    [SessionEvent::Rejected(Rejection::BadName { .. })]
                ),
                "{app} {name}"
            );
            let r = client.replies(&mut s);
            assert_eq!(
                status_code(&r[0]).as_deref(),
                Some("NetStream.Publish.BadName")
            );
        }
    }

    #[test]
    fn session_play_is_refused() {
        let mut client = Client::new();
        let mut s = connected_session(&mut client);
        let play = [
            amf::string("play"),
            Amf0Value::Number(0.0),
            Amf0Value::Null,
            amf::string("test"),
        ];
        assert_eq!(
            feed(&mut s, &client.command(1, &play)),
            [SessionEvent::Rejected(Rejection::Play)]
        );
        assert_eq!(
            status_code(&client.replies(&mut s)[0]).as_deref(),
            Some("NetStream.Play.Failed")
        );
    }

    #[test]
    fn session_ping_and_acknowledgement() {
        let mut client = Client::new();
        let mut s = connected_session(&mut client);
        // PingRequest (event 6) with timestamp 0x01020304 → PingResponse (event 7) echoing it.
        feed(
            &mut s,
            &client.message(2, 0, message_type::USER_CONTROL, 0, vec![0, 6, 1, 2, 3, 4]),
        );
        let r = client.replies(&mut s);
        assert_eq!(&r[0].payload[..], &[0, 7, 1, 2, 3, 4]);
        // Window of 100 bytes: the next read that passes it triggers an Acknowledgement of the total.
        feed(
            &mut s,
            &client.message(
                2,
                0,
                message_type::WINDOW_ACK_SIZE,
                0,
                100u32.to_be_bytes().to_vec(),
            ),
        );
        let before = s.received_bytes();
        feed(
            &mut s,
            &client.message(4, 1, message_type::VIDEO, 0, vec![0; 120]),
        );
        let r = client.replies(&mut s);
        assert_eq!(r[0].type_id, message_type::ACKNOWLEDGEMENT);
        assert_eq!(
            u64::from(read_u32(&r[0].payload).unwrap()),
            s.received_bytes()
        );
        assert!(s.received_bytes() - before >= 100);
        assert_eq!(s.dropped_media(), 1); // video before publish is dropped
    }

    #[test]
    fn session_command_before_connect_and_garbage_amf_are_errors() {
        let client = Client::new();
        let mut s = ServerSession::new(SessionConfig::default());
        s.receive(&client.command(0, &publish("x"))).unwrap();
        assert!(matches!(
            s.poll(),
            Err(SessionError::UnexpectedCommand { .. })
        ));
        let mut s = ServerSession::new(SessionConfig::default());
        s.receive(&client.message(
            3,
            0,
            message_type::COMMAND_AMF0,
            0,
            vec![0x02, 0xFF, 0xFF, b'x'],
        ))
        .unwrap();
        assert!(matches!(s.poll(), Err(SessionError::Amf { .. })));
    }

    #[test]
    fn session_aggregate_message_is_split() {
        let mut client = Client::new();
        let mut s = connected_session(&mut client);
        feed(&mut s, &client.command(1, &publish("agg")));
        s.accept_publish("live/agg").unwrap();
        let mut agg = Vec::new();
        for (type_id, ts) in [(9u8, 1000u32), (8, 1010)] {
            agg.extend_from_slice(&[type_id, 0, 0, 2]); // type, size 2
            agg.extend_from_slice(&[
                (ts >> 16) as u8,
                (ts >> 8) as u8,
                ts as u8,
                (ts >> 24) as u8,
            ]);
            agg.extend_from_slice(&[0, 0, 0, 0xAF, 0x01, 0, 0, 0, 13]); // stream id, body, back pointer
        }
        let events = feed(
            &mut s,
            &client.message(4, 1, message_type::AGGREGATE, 500, agg),
        );
        let ts: Vec<u32> = events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Media { timestamp_ms, .. } => Some(*timestamp_ms),
                _ => None,
            })
            .collect();
        assert_eq!(ts, [500, 510]);
    }

    #[test]
    fn session_on_cue_point_while_publishing_is_an_event_with_its_timestamp() {
        let mut client = Client::new();
        let mut s = connected_session(&mut client);
        let cue = |kind: &str| {
            amf::encode(&[
                amf::string("onCuePoint"),
                amf::object([
                    ("type", amf::string(kind)),
                    ("pre_roll_time_sec", Amf0Value::Number(2.0)),
                    ("cue_point_start", Amf0Value::Boolean(true)),
                    ("break_duration_sec", Amf0Value::Number(30.0)),
                    ("splice_event_id", Amf0Value::Number(4.0)),
                ]),
            ])
            .unwrap()
        };
        let youtube = cue(cue_point::YOUTUBE_CUE_POINT_TYPE);
        // Before the publish is accepted: not an event.
        let data =
            |ts, body: &Vec<u8>| client.message(5, 1, message_type::DATA_AMF0, ts, body.clone());
        assert!(feed(&mut s, &data(100, &youtube)).is_empty());
        feed(&mut s, &client.command(1, &publish("cues")));
        s.accept_publish("live/cues").unwrap();
        let events = feed(&mut s, &data(4000, &youtube));
        assert_eq!(
            events,
            [SessionEvent::CuePoint {
                timestamp_ms: 4000,
                cue: Ok(cue_point::CuePoint {
                    event_id: 4,
                    start: true,
                    pre_roll_ms: 2000,
                    duration_ms: Some(30_000),
                }),
            }]
        );
        // Another layout: an event saying why it is not read; behind @setDataFrame too.
        let mut wrapped = amf::encode(&[amf::string("@setDataFrame")]).unwrap();
        wrapped.extend(cue("event"));
        let events = feed(&mut s, &data(5000, &wrapped));
        assert!(
            matches!(
                events.as_slice(),
                [SessionEvent::CuePoint {
                    timestamp_ms: 5000,
                    cue: Err(cue_point::CuePointError::UnsupportedType(t)),
                }] if t == "event"
            ),
            "{events:?}"
        );
        // On another message stream: ignored.
        let other = client.message(5, 2, message_type::DATA_AMF0, 6000, youtube.clone());
        assert!(feed(&mut s, &other).is_empty());
    }

    proptest! {
        #[test]
        fn session_never_panics_on_random_bytes_after_connect(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            split in 1usize..300,
        ) {
            let mut client = Client::new();
            let mut s = connected_session(&mut client);
            'outer: for piece in bytes.chunks(split) {
                if s.receive(piece).is_err() { break; }
                loop {
                    match s.poll() {
                        Ok(Some(SessionEvent::PublishRequested(r))) => { let _ = s.accept_publish(&r.stream); }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
                s.check_invariants();
            }
        }

        #[test]
        fn session_never_panics_on_mutated_command_stream(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        ) {
            let client = Client::new();
            let mut wire = client.command(0, &connect("live"));
            wire.extend(client.command(0, &[amf::string("createStream"), Amf0Value::Number(2.0), Amf0Value::Null]));
            wire.extend(client.command(1, &publish("fuzz")));
            wire.extend(client.message(4, 1, message_type::VIDEO, 33, vec![0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65]));
            wire.extend(client.message(6, 1, message_type::AUDIO, 40, vec![0xAF, 1, 0x21, 0x10]));
            let len = wire.len();
            for (i, b) in flips { wire[i % len] = b; }
            // Chunk decoder + session + FLV parser, as the driver chains them.
            let mut s = ServerSession::new(SessionConfig::default());
            let mut flv = crate::flv::FlvParser::new(1 << 20);
            let mut events = Vec::new();
            if s.receive(&wire).is_ok() {
                loop {
                    match s.poll() {
                        Ok(Some(SessionEvent::PublishRequested(r))) => { let _ = s.accept_publish(&r.stream); }
                        Ok(Some(SessionEvent::Media { kind: MediaKind::Video, timestamp_ms, payload })) => {
                            let _ = flv.video(timestamp_ms, &payload, &mut events);
                        }
                        Ok(Some(SessionEvent::Media { kind: MediaKind::Audio, timestamp_ms, payload })) => {
                            let _ = flv.audio(timestamp_ms, &payload, &mut events);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            s.check_invariants();
        }
    }
}
