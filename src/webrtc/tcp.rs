//! ICE over TCP (RFC 6544) for networks that block UDP: one TCP port, passive candidates; each
//! connection carries STUN, DTLS and SRTP packets framed with a 16-bit length (RFC 4571 §2).
//!
//! A connection's task reads frames and hands them to the engine ([`super::engine::Command::TcpFrame`]),
//! and writes the frames the engine sends it, from a bounded queue (a viewer whose connection cannot
//! take them loses them, and the engine drops it to the next keyframe). The engine closes a connection
//! whose first frame no session takes (by dropping its queue's sender), so stray connections do not
//! linger; connections beyond [`MAX_CONNECTIONS_FACTOR`] × the session limit are refused.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::engine::Command;

/// Frames queued for one connection's writer.
pub const WRITE_QUEUE_FRAMES: usize = 2048;
/// Open connections allowed, as a multiple of the session limit.
pub const MAX_CONNECTIONS_FACTOR: usize = 2;
/// A connection with no frame for this long is closed (ICE consent checks come every few seconds).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept connections on `listener` until the engine stops.
pub async fn accept(listener: TcpListener, commands: mpsc::Sender<Command>, max_sessions: usize) {
    let open = Arc::new(AtomicUsize::new(0));
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(error) => {
            tracing::error!(%error, "webrtc tcp listener has no address");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(error) => {
                tracing::debug!(%error, "webrtc tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if commands.is_closed() {
            return;
        }
        if open.load(Ordering::Relaxed) >= max_sessions.saturating_mul(MAX_CONNECTIONS_FACTOR) {
            tracing::debug!(%peer, "webrtc tcp connection refused: too many open");
            continue;
        }
        let _ = stream.set_nodelay(true);
        open.fetch_add(1, Ordering::Relaxed);
        let (commands, open) = (commands.clone(), open.clone());
        tokio::spawn(async move {
            connection(stream, peer, local, commands).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    commands: mpsc::Sender<Command>,
) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE_FRAMES);
    if commands
        .send(Command::TcpOpen { peer, writer: tx })
        .await
        .is_err()
    {
        return;
    }
    let (mut reader, mut writer) = stream.into_split();
    let write = async move {
        while let Some(frame) = rx.recv().await {
            let Ok(len) = u16::try_from(frame.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(frame.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&frame);
            if writer.write_all(&framed).await.is_err() {
                return;
            }
        }
    };
    let read = async {
        let mut buf = vec![0u8; 65_535];
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(IDLE_TIMEOUT, reader.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return,
            }
            let n = usize::from(u16::from_be_bytes(len));
            if reader.read_exact(&mut buf[..n]).await.is_err() {
                return;
            }
            let frame = Command::TcpFrame {
                peer,
                local,
                data: buf[..n].to_vec(),
            };
            if commands.send(frame).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends the connection (the engine dropping the writer's sender included).
    tokio::select! {
        _ = read => {}
        _ = write => {}
    }
    let _ = commands.send(Command::TcpClosed { peer }).await;
}
