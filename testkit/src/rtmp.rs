//! An RTMP publisher for tests and benches, on rml_rtmp's client session: handshake
//! (RTMP specification 1.0 §5.2), `connect` to an application, `publish` a stream key, then audio and
//! video messages whose payloads are FLV tag bodies.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::MessagePayload;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult, PublishRequestType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connect to `addr`, handshake, `connect` to `app` and `publish` `key` (live). Errors: the connection,
/// a handshake or session error, a rejection, or no answer within 5 s.
pub async fn rtmp_publish(
    addr: SocketAddr,
    app: &str,
    key: &str,
) -> anyhow::Result<(TcpStream, ClientSession)> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut handshake = Handshake::new(PeerType::Client);
    let c0c1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(|e| anyhow!("handshake: {e:?}"))?;
    socket.write_all(&c0c1).await?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            bail!("server closed the connection during the handshake");
        }
        match handshake
            .process_bytes(&buf[..n])
            .map_err(|e| anyhow!("handshake: {e:?}"))?
        {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                break remaining_bytes;
            }
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(format!("rtmp://{addr}/{app}"));
    let (mut session, initial) =
        ClientSession::new(config).map_err(|e| anyhow!("rtmp client: {e:?}"))?;
    send(&mut socket, initial).await?;
    let request = session
        .request_connection(app.into())
        .map_err(|e| anyhow!("rtmp client: {e:?}"))?;
    send(&mut socket, vec![request]).await?;
    await_event(&mut socket, &mut session, &mut pending, |e| {
        *e == ClientSessionEvent::ConnectionRequestAccepted
    })
    .await?;
    let request = session
        .request_publishing(key.into(), PublishRequestType::Live)
        .map_err(|e| anyhow!("rtmp client: {e:?}"))?;
    send(&mut socket, vec![request]).await?;
    await_event(&mut socket, &mut session, &mut pending, |e| {
        *e == ClientSessionEvent::PublishRequestAccepted
    })
    .await?;
    Ok((socket, session))
}

async fn send(socket: &mut TcpStream, results: Vec<ClientSessionResult>) -> anyhow::Result<()> {
    for r in results {
        if let ClientSessionResult::OutboundResponse(packet) = r {
            socket.write_all(&packet.bytes).await?;
        }
    }
    Ok(())
}

/// Feed the server's bytes to the session (answering as it asks) until an event matches `is_wanted`.
async fn await_event(
    socket: &mut TcpStream,
    session: &mut ClientSession,
    pending: &mut Vec<u8>,
    is_wanted: impl Fn(&ClientSessionEvent) -> bool,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !pending.is_empty() {
            let results = session
                .handle_input(pending)
                .map_err(|e| anyhow!("rtmp client: {e:?}"))?;
            pending.clear();
            let mut found = false;
            for r in results {
                match r {
                    ClientSessionResult::OutboundResponse(packet) => {
                        socket.write_all(&packet.bytes).await?
                    }
                    ClientSessionResult::RaisedEvent(e) if is_wanted(&e) => found = true,
                    ClientSessionResult::RaisedEvent(
                        ClientSessionEvent::ConnectionRequestRejected { description },
                    ) => bail!("connection rejected: {description}"),
                    _ => {}
                }
            }
            if found {
                return Ok(());
            }
        }
        let n = tokio::time::timeout_at(deadline, socket.read(&mut buf))
            .await
            .context("rtmp server reply")??;
        if n == 0 {
            bail!("rtmp server closed the connection");
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

/// The message stream a publish runs on: the one the server's `createStream` gives (Estuary's is 1).
const PUBLISH_STREAM_ID: u32 = 1;

/// An FLV script tag at `timestamp_ms` holding an `onCuePoint` ad marker in YouTube Live's layout
/// (`type` `com.youtube.cuepoint`, `pre_roll_time_sec`, `cue_point_start`, `break_duration_sec`,
/// `splice_event_id`), for [`publish_realtime`] to send among the media.
pub fn cue_point_tag(
    timestamp_ms: i64,
    event_id: u32,
    pre_roll_s: f64,
    break_s: f64,
) -> crate::flv::FlvTag {
    use rml_amf0::Amf0Value;
    let object = [
        ("type", Amf0Value::Utf8String("com.youtube.cuepoint".into())),
        ("version", Amf0Value::Utf8String("0.1".into())),
        ("pre_roll_time_sec", Amf0Value::Number(pre_roll_s)),
        ("cue_point_start", Amf0Value::Boolean(true)),
        ("break_duration_sec", Amf0Value::Number(break_s)),
        ("splice_event_id", Amf0Value::Number(f64::from(event_id))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let body = rml_amf0::serialize(&vec![
        Amf0Value::Utf8String("onCuePoint".into()),
        Amf0Value::Object(object),
    ])
    .expect("an AMF0 object serializes");
    crate::flv::FlvTag {
        kind: crate::flv::TagKind::Script,
        timestamp_ms,
        body: body.into(),
    }
}

/// What one real-time publish did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PublishReport {
    /// FLV tag bodies sent (audio and video messages), bytes.
    pub payload_bytes: u64,
    /// Messages sent.
    pub messages: u64,
    /// The latest any message left after its due time (the publisher's own lag).
    pub max_late: Duration,
}

/// Publish `tags` (FLV tag bodies with their timestamps, ms) on `socket` in real time: each message is
/// written when its timestamp, counted from the first tag, is due. Script tags go as AMF0 data
/// messages (type 18: `onMetaData`, or an `onCuePoint` ad marker put among the tags, see
/// [`cue_point_tag`]). Stops after the last tag or at `until`. Whatever the server sends is read and
/// dropped. Errors: a session error or a write failure.
pub async fn publish_realtime(
    socket: TcpStream,
    session: ClientSession,
    tags: &[crate::flv::FlvTag],
    until: tokio::time::Instant,
) -> anyhow::Result<PublishReport> {
    publish_paced(socket, session, tags.iter().cloned(), until, |ms| {
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    })
    .await
}

/// [`publish_realtime`] on a schedule of its own: each tag is written `due(media offset)` after the
/// start, the media offset being its timestamp less the first tag's (ms); e.g. faster than real time
/// for a while (a fast-forwarded publish). `tags` may be produced as they go (a long loop,
/// [`crate::flv::looped_tags_iter`]).
pub async fn publish_paced(
    socket: TcpStream,
    mut session: ClientSession,
    tags: impl Iterator<Item = crate::flv::FlvTag>,
    until: tokio::time::Instant,
    due: impl Fn(i64) -> Duration,
) -> anyhow::Result<PublishReport> {
    use crate::flv::TagKind;
    use rml_rtmp::time::RtmpTimestamp;
    let (mut rd, mut wr) = socket.into_split();
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    // Data messages go through a serializer of their own: the client session sends none while
    // publishing, so their chunk stream (3) is theirs, and each has a full (type 0) header. Chunked at
    // the session's size, which the server was told.
    let mut data_messages = ChunkSerializer::new();
    data_messages
        .set_max_chunk_size(ClientSessionConfig::new().chunk_size, RtmpTimestamp::new(0))
        .map_err(|e| anyhow!("rtmp data message: {e:?}"))?;
    let mut t0 = None;
    let start = tokio::time::Instant::now();
    let mut report = PublishReport::default();
    for tag in tags {
        let t0 = *t0.get_or_insert(tag.timestamp_ms);
        let due = start + due(tag.timestamp_ms - t0);
        if due >= until {
            break;
        }
        tokio::time::sleep_until(due).await;
        report.max_late = report
            .max_late
            .max(tokio::time::Instant::now().saturating_duration_since(due));
        let ts = RtmpTimestamp::new(tag.timestamp_ms as u32);
        let result = match tag.kind {
            TagKind::Video => session.publish_video_data(tag.body.clone(), ts, false),
            TagKind::Audio => session.publish_audio_data(tag.body.clone(), ts, false),
            TagKind::Script => {
                let packet = data_messages
                    .serialize(
                        &MessagePayload {
                            timestamp: ts,
                            type_id: 18,
                            message_stream_id: PUBLISH_STREAM_ID,
                            data: tag.body.clone(),
                        },
                        true,
                        false,
                    )
                    .map_err(|e| anyhow!("rtmp data message: {e:?}"))?;
                wr.write_all(&packet.bytes).await?;
                report.messages += 1;
                continue;
            }
        }
        .map_err(|e| anyhow!("rtmp client: {e:?}"))?;
        if let ClientSessionResult::OutboundResponse(packet) = result {
            wr.write_all(&packet.bytes).await?;
            report.payload_bytes += tag.body.len() as u64;
            report.messages += 1;
        }
    }
    drain.abort();
    Ok(report)
}
