//! Packet sync (ISO/IEC 13818-1 §2.4.3.2): locking onto `sync_byte` 0x47 in a byte stream of any
//! alignment, taking a packet only when the next one's sync byte confirms it, searching again after
//! a loss.

use super::{
    IngestEvent, MAX_SYNC_SEARCH_BYTES, SYNC_BYTE, SYNC_CONFIRM_PACKETS, TS_PACKET_BYTES,
    TsDemuxer, TsError, once,
};

impl TsDemuxer {
    /// Parse the whole packets in `self.buf`, keeping the unparsed tail. Returns the error to report, if
    /// the sync search ran past its bound.
    pub(super) fn process_buffer(
        &mut self,
        out: &mut Vec<IngestEvent>,
        is_final: bool,
    ) -> Option<TsError> {
        let buf = std::mem::take(&mut self.buf);
        let mut pos = 0;
        let mut error = None;
        loop {
            let rest = &buf[pos..];
            if self.is_locked {
                if rest.len() < TS_PACKET_BYTES {
                    break;
                }
                let is_next_sync = match rest.get(TS_PACKET_BYTES) {
                    Some(&b) => b == SYNC_BYTE,
                    None if is_final => true,
                    None => break,
                };
                if rest[0] == SYNC_BYTE && is_next_sync {
                    self.packet(&rest[..TS_PACKET_BYTES], out);
                    pos += TS_PACKET_BYTES;
                } else {
                    self.is_locked = false;
                    if once(&mut self.logged.sync_loss) {
                        tracing::warn!(
                            offset_bytes = self.stats.bytes - (buf.len() - pos) as u64,
                            "mpeg-ts sync lost; searching (further losses counted)"
                        );
                    }
                }
                continue;
            }
            let (skip, is_found) = match find_sync(rest, is_final) {
                Ok(offset) => (offset, true),
                Err(discard) => (discard, false),
            };
            pos += skip;
            self.stats.skipped_bytes += skip as u64;
            self.unsynced_bytes += skip;
            if self.unsynced_bytes > MAX_SYNC_SEARCH_BYTES {
                error = Some(TsError::NoSync {
                    bytes: self.unsynced_bytes,
                });
                self.unsynced_bytes = 0;
            }
            if !is_found {
                break;
            }
            if self.has_locked || self.unsynced_bytes > 0 {
                self.stats.resyncs += 1;
                tracing::debug!(skipped_bytes = self.unsynced_bytes, "mpeg-ts sync acquired");
            }
            self.is_locked = true;
            self.has_locked = true;
            self.unsynced_bytes = 0;
        }
        let mut buf = buf;
        buf.drain(..pos);
        self.buf = buf;
        error
    }
}

/// Find where to lock in `buf`: `Ok(offset)` of a sync byte followed by [`SYNC_CONFIRM_PACKETS`] − 1
/// more at 188-byte spacing, or `Err(n)`: the first `n` bytes cannot start a packet (the rest may, once
/// more bytes arrive). With `is_final` (no more bytes will come) a candidate needs one whole packet and
/// sync bytes at every following 188-byte position present.
fn find_sync(buf: &[u8], is_final: bool) -> Result<usize, usize> {
    let window = (SYNC_CONFIRM_PACKETS - 1) * TS_PACKET_BYTES + 1;
    let mut from = 0;
    while let Some(offset) = buf[from..].iter().position(|&b| b == SYNC_BYTE) {
        let c = from + offset;
        if buf.len() - c >= window {
            if (1..SYNC_CONFIRM_PACKETS).all(|k| buf[c + k * TS_PACKET_BYTES] == SYNC_BYTE) {
                return Ok(c);
            }
        } else if !is_final {
            return Err(c);
        } else if buf.len() - c >= TS_PACKET_BYTES
            && (c..buf.len())
                .step_by(TS_PACKET_BYTES)
                .all(|p| buf[p] == SYNC_BYTE)
        {
            return Ok(c);
        }
        from = c + 1;
    }
    Err(buf.len())
}
