//! Program and elementary stream tracking (ISO/IEC 13818-1 §2.4.4): packets routed by PID to the PAT,
//! the selected program's PMT, its SCTE-35 sections or the chosen video and audio streams; the PAT selects the first program
//! (§2.4.4.3), its PMT the streams (§2.4.4.8), followed across version changes.

use media::TrackKind;

use super::packet::parse_packet;
use super::pes::{EsKind, EsStream};
use super::pmt::{Classified, classify_stream};
use super::psi::{SectionAssembler, parse_psi_section};
use super::{Ctx, MAX_LOGGED_PIDS, PID_NULL, PID_PAT, TABLE_ID_PAT, TABLE_ID_PMT, TsDemuxer, once};
use crate::{IngestEvent, UnusableTrack};

impl TsDemuxer {
    /// One 188-byte packet whose sync byte has been checked.
    pub(super) fn packet(&mut self, bytes: &[u8], out: &mut Vec<IngestEvent>) {
        self.stats.packets += 1;
        let p = match parse_packet(bytes) {
            Ok(p) => p,
            Err(fault) => {
                self.stats.transport_errors += 1;
                if once(&mut self.logged.transport_error) {
                    tracing::warn!(%fault, "mpeg-ts packet discarded (further ones counted)");
                }
                return;
            }
        };
        if p.pid == PID_NULL {
            return;
        }
        if p.scrambling_control != 0 {
            self.stats.transport_errors += 1;
            if once(&mut self.logged.scrambled) {
                tracing::warn!(
                    pid = p.pid,
                    "scrambled mpeg-ts packets cannot be demuxed; discarding them"
                );
            }
            return;
        }
        if p.pid == PID_PAT {
            let mut sections = Vec::new();
            self.stats.psi_errors += self.pat.push(&p, &mut sections);
            for section in sections {
                self.pat_section(&section, out);
            }
        } else if let Some(program) = self.program.as_mut().filter(|g| g.pmt_pid == p.pid) {
            let mut sections = Vec::new();
            self.stats.psi_errors += program.pmt.push(&p, &mut sections);
            for section in sections {
                self.pmt_section(&section, out);
            }
        } else if let Some((_, assembler)) = self
            .program
            .as_mut()
            .and_then(|g| g.splice.as_mut())
            .filter(|(pid, _)| *pid == p.pid)
        {
            let mut sections = Vec::new();
            self.stats.splice_errors += assembler.push(&p, &mut sections);
            for section in sections {
                self.splice_section(&section, out);
            }
        } else {
            let Self {
                video,
                audio,
                timestamps,
                stats,
                logged,
                max_pes_bytes,
                ..
            } = self;
            let Some(es) = [video.as_mut(), audio.as_mut()]
                .into_iter()
                .flatten()
                .find(|es| es.pid == p.pid)
            else {
                return;
            };
            let mut ctx = Ctx {
                timestamps,
                stats,
                logged,
                out,
                max_pes_bytes: *max_pes_bytes,
            };
            es.packet(&p, &mut ctx);
        }
    }

    /// A complete PAT section (§2.4.4.3): select the first program.
    fn pat_section(&mut self, section: &[u8], out: &mut Vec<IngestEvent>) {
        let s = match parse_psi_section(section, TABLE_ID_PAT) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(what) => return self.psi_error("PAT", what),
        };
        if !s.is_current || (self.pat_version == Some(s.version) && self.program.is_some()) {
            return;
        }
        self.pat_version = Some(s.version);
        // program_number u16, reserved u3, network_PID / program_map_PID u13.
        let Some((number, pmt_pid)) = s
            .body
            .chunks_exact(4)
            .map(|e| {
                (
                    u16::from_be_bytes([e[0], e[1]]),
                    u16::from_be_bytes([e[2], e[3]]) & 0x1FFF,
                )
            })
            .find(|&(number, _)| number != 0)
        else {
            return; // only a network PID in this section
        };
        if matches!(pmt_pid, PID_PAT | PID_NULL) {
            return self.psi_error("PAT", "program_map_PID");
        }
        if self
            .program
            .as_ref()
            .is_some_and(|g| g.number == number && g.pmt_pid == pmt_pid)
        {
            return;
        }
        tracing::debug!(program_number = number, pmt_pid, "mpeg-ts program selected");
        self.replace_stream(true, None, out);
        self.replace_stream(false, None, out);
        self.program = Some(Program {
            number,
            pmt_pid,
            pmt: SectionAssembler::default(),
            version: None,
            splice: None,
        });
    }

    /// A complete section on the program's SCTE-35 PID: read (CRC checked) and passed on with its
    /// splice time on the frames' clock.
    fn splice_section(&mut self, section: &[u8], out: &mut Vec<IngestEvent>) {
        match crate::scte35::SpliceInfo::parse(section) {
            Ok(info) => {
                self.stats.splice_sections += 1;
                let pts_90khz = info.splice_pts_90khz().map(|t| self.timestamps.nearest(t));
                tracing::debug!(command = ?info.command, ?pts_90khz, "scte-35 section");
                out.push(IngestEvent::Splice(crate::SpliceEvent { info, pts_90khz }));
            }
            Err(error) => {
                self.stats.splice_errors += 1;
                if once(&mut self.logged.splice_error) {
                    tracing::warn!(%error, "scte-35 section discarded (further ones counted)");
                }
            }
        }
    }

    /// A complete section on the PMT PID (§2.4.4.8): choose the video and audio streams.
    fn pmt_section(&mut self, section: &[u8], out: &mut Vec<IngestEvent>) {
        let s = match parse_psi_section(section, TABLE_ID_PMT) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(what) => return self.psi_error("PMT", what),
        };
        let Some(program) = self.program.as_mut() else {
            return;
        };
        if s.table_id_extension != program.number
            || !s.is_current
            || program.version == Some(s.version)
        {
            return;
        }
        // reserved u3, PCR_PID u13, reserved u4, program_info_length u12, descriptors.
        let Some(program_info_len) = s
            .body
            .get(2..4)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]) & 0x0FFF))
        else {
            return self.psi_error("PMT", "program_info_length");
        };
        let Some(mut entries) = s.body.get(4 + program_info_len..) else {
            return self.psi_error("PMT", "program_info_length");
        };
        program.version = Some(s.version);
        let mut splice_pid: Option<u16> = None;
        let mut video: Option<(u16, EsKind)> = None;
        let mut audio: Option<(u16, EsKind)> = None;
        let mut unusable: Vec<(u16, u8, TrackKind, String)> = Vec::new();
        let mut ignored: Vec<(u16, u8, &'static str)> = Vec::new();
        // stream_type u8, reserved u3, elementary_PID u13, reserved u4, ES_info_length u12, descriptors.
        while entries.len() >= 5 {
            let stream_type = entries[0];
            let pid = u16::from_be_bytes([entries[1], entries[2]]) & 0x1FFF;
            let info_len = usize::from(u16::from_be_bytes([entries[3], entries[4]]) & 0x0FFF);
            let descriptors = entries.get(5..5 + info_len).unwrap_or_default();
            entries = entries.get(5 + info_len..).unwrap_or_default();
            let is_taken = |slot: &Option<(u16, EsKind)>| slot.is_some_and(|(p, _)| p == pid);
            if matches!(pid, PID_PAT | PID_NULL) || is_taken(&video) || is_taken(&audio) {
                continue;
            }
            if stream_type == crate::scte35::STREAM_TYPE {
                // SCTE-35 splice information (SCTE 35 §8.1): the first such PID is read.
                splice_pid.get_or_insert(pid);
                continue;
            }
            match classify_stream(stream_type, descriptors) {
                Classified::Use(kind) => {
                    let slot = if kind.is_video() {
                        &mut video
                    } else {
                        &mut audio
                    };
                    if slot.is_none() {
                        *slot = Some((pid, kind));
                    } else {
                        ignored.push((pid, stream_type, "a second stream of its kind"));
                    }
                }
                Classified::Unusable(kind, codec) => unusable.push((pid, stream_type, kind, codec)),
                Classified::Other => ignored.push((pid, stream_type, "unsupported stream_type")),
            }
        }
        tracing::debug!(
            version = s.version,
            ?video,
            ?audio,
            ?splice_pid,
            "mpeg-ts program map"
        );
        if let Some(program) = self.program.as_mut()
            && program.splice.as_ref().map(|(pid, _)| *pid) != splice_pid
        {
            program.splice = splice_pid.map(|pid| (pid, SectionAssembler::default()));
        }
        for (pid, stream_type, kind, codec) in unusable {
            let has_usable = match kind {
                TrackKind::Video => video.is_some(),
                TrackKind::Audio => audio.is_some(),
            };
            if has_usable {
                ignored.push((pid, stream_type, "a second stream of its kind"));
            } else if !self.logged_pids.contains(&pid) && self.logged_pids.len() < MAX_LOGGED_PIDS {
                // Reported once per PID; the publish session logs it (or refuses the publish).
                self.logged_pids.push(pid);
                out.push(IngestEvent::Unusable(UnusableTrack::unsupported(
                    kind, codec,
                )));
            }
        }
        for (pid, stream_type, why) in ignored {
            if !self.logged_pids.contains(&pid) && self.logged_pids.len() < MAX_LOGGED_PIDS {
                self.logged_pids.push(pid);
                tracing::warn!(
                    pid,
                    stream_type = format!("0x{stream_type:02x}"),
                    why,
                    "ignoring mpeg-ts elementary stream"
                );
            }
        }
        self.replace_stream(true, video, out);
        self.replace_stream(false, audio, out);
    }

    /// Make the video (`is_video`) or audio stream the one on `wanted` = (PID, kind). A stream that
    /// stays on its PID with its kind keeps its state; a replaced one is flushed first.
    fn replace_stream(
        &mut self,
        is_video: bool,
        wanted: Option<(u16, EsKind)>,
        out: &mut Vec<IngestEvent>,
    ) {
        let Self {
            video,
            audio,
            timestamps,
            stats,
            logged,
            max_pes_bytes,
            ..
        } = self;
        let slot = if is_video { video } else { audio };
        if slot.as_ref().map(|es| (es.pid, es.kind)) == wanted {
            return;
        }
        if let Some(mut old) = slot.take() {
            let mut ctx = Ctx {
                timestamps,
                stats,
                logged,
                out,
                max_pes_bytes: *max_pes_bytes,
            };
            old.finish(&mut ctx);
        }
        *slot = wanted.map(|(pid, kind)| EsStream::new(pid, kind));
    }

    fn psi_error(&mut self, table: &'static str, what: &'static str) {
        self.stats.psi_errors += 1;
        if once(&mut self.logged.psi_error) {
            tracing::warn!(
                table,
                what,
                "mpeg-ts section discarded (further ones counted)"
            );
        }
    }
}

/// The selected program.
#[derive(Debug)]
pub(super) struct Program {
    number: u16,
    pmt_pid: u16,
    pub(super) pmt: SectionAssembler,
    /// version_number of the PMT in use.
    version: Option<u8>,
    /// The PID of its SCTE-35 sections (stream type 0x86), if any, and their reassembly.
    splice: Option<(u16, SectionAssembler)>,
}
