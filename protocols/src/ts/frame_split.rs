//! Cutting PES payloads into the self-delimiting audio frames they carry (ADTS, MPEG audio, LOAS/LATM,
//! AC-3, Opus access units). PES packet boundaries need not fall on frame boundaries (ISO/IEC 13818-1
//! §2.4.3.7: the PTS belongs to the first access unit that *starts* in the packet), so the start of a
//! frame cut off at the end of one PES is carried into the next; bytes that are no frame are skipped to
//! the next syncword and counted, once per run.

use media::MediaError;

/// What a framing tells the splitter about the bytes at a position.
pub(super) trait AudioFraming {
    /// Whether `data` starts with this framing's syncword; a lone final byte that may begin one counts.
    fn is_sync(&self, data: &[u8]) -> bool;

    /// The length in bytes (header included) of the frame at the start of `data`, which starts with a
    /// syncword. Errors: [`MediaError::Truncated`] when the header itself is cut off by the end of
    /// `data`; any other error when the header is invalid.
    fn frame_len(&self, data: &[u8]) -> Result<usize, MediaError>;
}

/// What one [`FrameSplitter::split`] found wrong: the caller counts and logs it in its own terms.
#[derive(Debug, Default)]
pub(super) struct SyncErrors {
    /// Runs of bytes skipped to the next syncword, plus a carried frame start that proved not to be one.
    pub(super) count: u64,
    /// The first error of a skipped run, for the log.
    pub(super) first: Option<MediaError>,
}

/// The carry of one audio elementary stream across its PES packets.
#[derive(Debug, Default)]
pub(super) struct FrameSplitter {
    /// The start of a frame cut off at the end of the previous PES.
    carry: Vec<u8>,
}

impl FrameSplitter {
    /// Bytes of a cut-off frame waiting for the next PES.
    pub(super) fn carried_bytes(&self) -> usize {
        self.carry.len()
    }

    /// Forgets the carried bytes (the stream lost data, or restarts).
    pub(super) fn clear(&mut self) {
        self.carry.clear();
    }

    /// Calls `on_frame(frame, anchor_90khz)` for every whole frame of one complete, intact PES
    /// `payload` (after the frame carried from the previous one), where `anchor_90khz` is the PES PTS
    /// (`pts_90khz`, 90 kHz ticks) for the first frame that starts in this PES and `None` for the
    /// others. A frame cut off at the end is carried into the next call unless it would exceed
    /// `max_frame_bytes`.
    pub(super) fn split(
        &mut self,
        framing: &impl AudioFraming,
        max_frame_bytes: usize,
        payload: &[u8],
        pts_90khz: Option<i64>,
        mut on_frame: impl FnMut(&[u8], Option<i64>),
    ) -> SyncErrors {
        let carry_bytes = self.carry.len();
        let mut joined = std::mem::take(&mut self.carry);
        let data: &[u8] = if carry_bytes == 0 {
            payload
        } else {
            joined.extend_from_slice(payload);
            &joined
        };
        let mut errors = SyncErrors::default();
        let mut anchor_90khz = pts_90khz;
        let mut is_resyncing = false;
        let mut pos = 0;
        let mut tail_start = data.len();
        if carry_bytes > 0 && !is_carried_frame_whole(framing, data) {
            // The carried bytes were no frame start (or the PES that continued it was lost).
            pos = carry_bytes;
            errors.count += 1;
        }
        while pos < data.len() {
            let rest = &data[pos..];
            let frame_len = if framing.is_sync(rest) {
                framing.frame_len(rest)
            } else {
                Err(MediaError::Invalid {
                    what: "audio frame",
                    field: "syncword",
                    value: 0,
                })
            };
            match frame_len {
                Ok(len) if len <= rest.len() => {
                    is_resyncing = false;
                    let anchor = if pos >= carry_bytes {
                        anchor_90khz.take()
                    } else {
                        None
                    };
                    on_frame(&rest[..len], anchor);
                    pos += len.max(1);
                }
                // A frame (or header) continued in the next PES.
                Ok(_) | Err(MediaError::Truncated { .. }) => {
                    tail_start = pos;
                    break;
                }
                Err(error) => {
                    if !is_resyncing {
                        is_resyncing = true;
                        errors.count += 1;
                        errors.first.get_or_insert(error);
                    }
                    pos += 1 + rest[1..]
                        .iter()
                        .position(|&b| framing.is_sync(&[b]))
                        .unwrap_or(rest.len() - 1);
                }
            }
        }
        let tail_bytes = data.len() - tail_start;
        if carry_bytes == 0 {
            joined.clear();
            if tail_bytes < max_frame_bytes {
                joined.extend_from_slice(&payload[tail_start..]);
            }
        } else if tail_bytes < max_frame_bytes {
            joined.drain(..tail_start);
        } else {
            joined.clear();
        }
        self.carry = joined;
        errors
    }
}

/// Whether the frame at the start of `data` (carried over from the previous PES) ends at the end of
/// `data` or before another syncword, or still continues past `data`.
fn is_carried_frame_whole(framing: &impl AudioFraming, data: &[u8]) -> bool {
    match framing.frame_len(data) {
        Ok(len) => data
            .get(len..)
            .is_none_or(|next| next.is_empty() || framing.is_sync(next)),
        Err(MediaError::Truncated { .. }) => true,
        Err(_) => false,
    }
}
