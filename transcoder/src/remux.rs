//! [`remux_to_mp4`]: a recording's CMAF renditions as one ordinary, faststart MP4 (stream copy).
//!
//! Each run (an init segment and the media segments that use it) is concatenated into a temporary file
//! next to the output and demuxed by FFmpeg in process; the tracks' packets are merged in DTS order (so
//! the output is interleaved) and written by FFmpeg's `mp4` muxer with `movflags=+faststart`.
//! Timestamps are copied (rescaled to the output stream's time base), never re-based: a recording's
//! timeline is continuous across runs, gaps included, and the tracks stay in sync.
//!
//! The source's codec tag (`avc1`, `avc3`, `hvc1`, `hev1`, `mp4a`) is kept rather than cleared:
//! `ffmpeg-next` has no safe setter for it, the `mp4` muxer accepts each of these for its codec (an
//! incompatible tag fails in [`RemuxError::Ffmpeg`]), and a cleared HEVC tag would become `hev1`,
//! which Apple's players do not play.

use std::fs::File;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ffmpeg_next::{Dictionary, Error as AvError, Packet, Rational, Rescale, codec, format, media};

/// One track of the download (one rendition: a video or an audio track): its runs, in decode order.
#[derive(Debug, Clone, Default)]
pub struct RemuxTrack {
    /// The runs, in decode order; every run after the first must have the first's codec configuration.
    pub runs: Vec<RemuxRun>,
}

/// Segments that share one init segment.
#[derive(Debug, Clone, Default)]
pub struct RemuxRun {
    /// The init segment file (`ftyp` + `moov` of a fragmented MP4 with one track).
    pub init: PathBuf,
    /// The media segment files (`moof` + `mdat` pairs), in decode order.
    pub segments: Vec<PathBuf>,
}

/// What [`remux_to_mp4`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemuxReport {
    /// The longest track's span: its last sample's PTS + duration − its first PTS, milliseconds.
    pub duration_ms: u64,
    /// Size of the written file, bytes.
    pub bytes: u64,
    /// Packets (samples) written, all tracks together.
    pub packets: u64,
}

/// Why [`remux_to_mp4`] failed. Nothing is written at the output path then, and no temporary file
/// is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemuxError {
    /// An input file is missing or unreadable, a temporary or the output file cannot be written, or
    /// the output path is not UTF-8 (FFmpeg needs UTF-8 paths).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// FFmpeg cannot demux an input (e.g. no video or audio track in it) or mux the output.
    #[error("{context}: {source}")]
    Ffmpeg {
        /// What was being done, e.g. `reading run 1 of track 0`.
        context: String,
        /// FFmpeg's error.
        source: AvError,
    },
    /// A run's codec configuration (codec, width/height or sample rate/channels, extradata) differs
    /// from its track's first run's.
    #[error("track {track}: run {run} has another codec configuration than run 0")]
    ConfigurationChanged {
        /// Index of the track in the input slice.
        track: usize,
        /// Index of the run in the track.
        run: usize,
    },
    /// No tracks, a track without runs, or not a single packet.
    #[error("nothing to remux")]
    Empty,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RemuxError + '_ {
    move |source| RemuxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn av_error(context: impl Into<String>) -> impl FnOnce(AvError) -> RemuxError {
    let context = context.into();
    move |source| RemuxError::Ffmpeg { context, source }
}

/// `path` as FFmpeg's `file` protocol URL (so that no part of it is taken for another protocol).
fn file_url(path: &Path) -> Result<String, RemuxError> {
    match path.to_str() {
        Some(p) if !p.contains('\0') => Ok(format!("file:{p}")),
        _ => Err(io_error(path)(std::io::ErrorKind::InvalidInput.into())),
    }
}

/// Consecutive undemuxable packets skipped before reading a run counts as failed.
const MAX_INVALID_PACKETS: u32 = 64;

/// Microseconds: the time base in which the tracks' DTS are compared.
const MICROS: Rational = Rational(1, 1_000_000);

/// Remux `tracks` (e.g. `[video, audio]`; one output stream each, in that order) into one MP4 at
/// `out`, `moov` first (faststart). The file is written in `out`'s directory under a temporary name
/// and renamed to `out` when complete; the runs' temporary concatenations are made in that directory
/// too (one per track at a time, each the size of its run) and removed, on success and on error.
///
/// Timestamps are copied from the first run; each later run of a track is placed right after the
/// one before (its first DTS where the previous run's last packet ended), as the runs of a recording
/// are played back to back. A packet whose DTS would not increase on its output stream is dropped
/// (the drops are counted in one `tracing` warning per track).
///
/// Errors: [`RemuxError::Empty`] without tracks, runs or packets; [`RemuxError::Io`] with the path of
/// a missing or unreadable input, or of a temporary or output file that cannot be written;
/// [`RemuxError::ConfigurationChanged`] when a later run's codec configuration differs from its
/// track's first run's; [`RemuxError::Ffmpeg`] when FFmpeg cannot demux an input (or finds no video or
/// audio track in it) or cannot mux the output.
pub fn remux_to_mp4(tracks: &[RemuxTrack], out: &Path) -> Result<RemuxReport, RemuxError> {
    crate::init_ffmpeg();
    if tracks.is_empty() || tracks.iter().any(|t| t.runs.is_empty()) {
        return Err(RemuxError::Empty);
    }
    let name = out
        .file_name()
        .map_or("remux".into(), |n| n.to_string_lossy());
    let prefix = out.with_file_name(format!(".{name}.{}", std::process::id()));
    file_url(out)?; // FFmpeg needs a UTF-8 path, so does every temporary one made from it
    let temp = TempFile::new(&prefix, "mp4");
    let mut readers = Vec::with_capacity(tracks.len());
    for (index, track) in tracks.iter().enumerate() {
        let first = open_run(&track.runs[0], &prefix, index, 0)?;
        readers.push(TrackReader::new(index, &track.runs, first, &prefix));
    }

    let url = file_url(&temp.path)?;
    let mut octx = format::output_as(&url, "mp4").map_err(av_error(format!("creating {url}")))?;
    for reader in &readers {
        let context = format!("adding track {}", reader.index);
        let run = reader.open.as_ref().ok_or(RemuxError::Empty)?;
        let input = run.input.stream(run.stream).ok_or(AvError::StreamNotFound);
        let input = input.map_err(av_error(context.clone()))?;
        let mut stream = octx
            .add_stream(codec::encoder::find(codec::Id::None))
            .map_err(av_error(context))?;
        stream.set_parameters(input.parameters());
        stream.set_time_base(run.time_base);
    }
    let mut options = Dictionary::new();
    options.set("movflags", "+faststart");
    octx.write_header_with(options)
        .map_err(av_error("writing the MP4 header"))?;
    for reader in &mut readers {
        // The muxer may have chosen another time base (its track timescale).
        reader.out_tb = octx
            .stream(reader.index)
            .map_or(reader.out_tb, |s| s.time_base());
    }

    let pending = readers.iter_mut().map(TrackReader::next_packet);
    let mut pending = pending.collect::<Result<Vec<_>, _>>()?;
    let mut packets = 0u64;
    loop {
        // The earliest DTS first (compared in µs), so that the output is interleaved.
        let key = |i: usize| {
            let dts = pending[i].as_ref()?.dts()?;
            Some((dts.rescale(readers[i].out_tb, MICROS), i))
        };
        let Some((_, i)) = (0..pending.len()).filter_map(key).min() else {
            break;
        };
        let Some(packet) = pending[i].take() else {
            break;
        };
        let written = packet.write_interleaved(&mut octx);
        written.map_err(av_error(format!("writing a packet of track {i}")))?;
        packets += 1;
        pending[i] = readers[i].next_packet()?;
    }
    if packets == 0 {
        return Err(RemuxError::Empty);
    }
    octx.write_trailer()
        .map_err(av_error("writing the MP4 trailer"))?;
    drop(octx);

    let mut duration_ms = 0u64;
    for r in &readers {
        if r.dropped > 0 {
            let (track, dropped) = (r.index, r.dropped);
            tracing::warn!(
                track,
                dropped,
                "remux: dropped packets with a non-increasing DTS"
            );
        }
        if let Some((start, end)) = r.span {
            let ms = end
                .saturating_sub(start)
                .rescale(r.out_tb, Rational::new(1, 1000));
            duration_ms = duration_ms.max(u64::try_from(ms).unwrap_or(0));
        }
    }
    temp.persist(out)?;
    let bytes = std::fs::metadata(out).map_err(io_error(out))?.len();
    Ok(RemuxReport {
        duration_ms,
        bytes,
        packets,
    })
}

/// A file removed when dropped, unless persisted.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    /// `{prefix}.{sequence number}.{suffix}`: unique within the process (and the prefix has its id).
    fn new(prefix: &Path, suffix: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let mut path = prefix.as_os_str().to_owned();
        path.push(format!(".{seq}.{suffix}"));
        let path = path.into();
        Self { path, keep: false }
    }

    fn persist(mut self, to: &Path) -> Result<(), RemuxError> {
        std::fs::rename(&self.path, to).map_err(io_error(to))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A track's codec configuration, compared between runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    id: codec::Id,
    /// Width and height (pixels), or sample rate (Hz) and channels.
    dims: (u32, u32),
    extradata: Vec<u8>,
}

/// The configuration of a video or audio stream (a decoder of its codec is opened to read it).
fn config_of(params: codec::Parameters) -> Result<Config, AvError> {
    let ctx = codec::Context::from_parameters(params)?;
    let (id, extradata) = (ctx.id(), crate::ffi::extradata(&ctx));
    let dims = match ctx.medium() {
        media::Type::Video => ctx.decoder().video().map(|v| (v.width(), v.height()))?,
        media::Type::Audio => ctx
            .decoder()
            .audio()
            .map(|a| (a.rate(), u32::from(a.channels())))?,
        _ => return Err(AvError::StreamNotFound),
    };
    Ok(Config {
        id,
        dims,
        extradata,
    })
}

/// One run, concatenated and opened. Field order matters: the input closes before its file goes.
struct OpenRun {
    input: format::context::Input,
    /// Index of the run's (first) video or audio stream in `input`.
    stream: usize,
    time_base: Rational,
    config: Config,
    _concat: TempFile,
}

fn open_run(
    run: &RemuxRun,
    prefix: &Path,
    track: usize,
    index: usize,
) -> Result<OpenRun, RemuxError> {
    let concat = TempFile::new(prefix, &format!("t{track}r{index}.mp4"));
    let mut dst = File::create(&concat.path).map_err(io_error(&concat.path))?;
    let mut buf = vec![0u8; 256 * 1024];
    for path in std::iter::once(&run.init).chain(&run.segments) {
        let mut src = File::open(path).map_err(io_error(path))?;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(path)(e)),
            };
            dst.write_all(&buf[..n]).map_err(io_error(&concat.path))?;
        }
    }
    drop(dst);
    let init = run.init.display();
    let context = format!("opening run {index} of track {track} ({init})");
    // Only the MP4 demuxer on a local file: a run is never probed as, say, a playlist that points
    // FFmpeg at other files or URLs.
    let mut options = Dictionary::new();
    options.set("format_whitelist", "mov,mp4,m4a,3gp,3g2,mj2");
    options.set("protocol_whitelist", "file");
    let input = format::input_with_dictionary(&file_url(&concat.path)?, options);
    let input = input.map_err(av_error(context.clone()))?;
    use media::Type::{Audio, Video};
    let is_media = |s: &format::stream::Stream| matches!(s.parameters().medium(), Video | Audio);
    let stream = input
        .streams()
        .find(is_media)
        .ok_or(AvError::StreamNotFound);
    let stream = stream.map_err(av_error(context.clone()))?;
    let (stream_index, time_base) = (stream.index(), stream.time_base());
    let config = config_of(stream.parameters()).map_err(av_error(context))?;
    Ok(OpenRun {
        input,
        stream: stream_index,
        time_base,
        config,
        _concat: concat,
    })
}

/// Reads one track's runs in order and yields its packets, ready for its output stream.
struct TrackReader<'a> {
    /// Index of the track, and of its output stream.
    index: usize,
    runs: &'a [RemuxRun],
    prefix: &'a Path,
    next_run: usize,
    open: Option<OpenRun>,
    /// The first run's configuration.
    config: Config,
    out_tb: Rational,
    last_dts: Option<i64>,
    /// Where the track's last packet ends (its DTS plus its duration), output time base.
    next_dts: Option<i64>,
    /// Added to the open run's timestamps (output time base): a run after the first starts where
    /// the one before ended (a recording's runs are separate publishes, whose timelines may
    /// restart, e.g. after an origin restart).
    offset: i64,
    /// The open run's first packet is next (its offset is not fixed yet).
    run_start: bool,
    dropped: u64,
    /// (Smallest PTS, largest PTS + duration), output time base.
    span: Option<(i64, i64)>,
}

impl<'a> TrackReader<'a> {
    fn new(index: usize, runs: &'a [RemuxRun], first: OpenRun, prefix: &'a Path) -> Self {
        Self {
            index,
            runs,
            prefix,
            next_run: 1,
            config: first.config.clone(),
            out_tb: first.time_base,
            open: Some(first),
            last_dts: None,
            next_dts: None,
            offset: 0,
            run_start: false,
            dropped: 0,
            span: None,
        }
    }

    /// The next packet, rescaled to the output stream, or `None` after the last run.
    fn next_packet(&mut self) -> Result<Option<Packet>, RemuxError> {
        let mut invalid = 0u32;
        loop {
            let Some(run) = self.open.as_mut() else {
                let Some(next) = self.runs.get(self.next_run) else {
                    return Ok(None);
                };
                let (track, index) = (self.index, self.next_run);
                self.next_run += 1;
                let opened = open_run(next, self.prefix, track, index)?;
                if opened.config != self.config {
                    return Err(RemuxError::ConfigurationChanged { track, run: index });
                }
                self.open = Some(opened);
                self.run_start = true;
                continue;
            };
            let mut packet = Packet::empty();
            match packet.read(&mut run.input) {
                Ok(()) => invalid = 0,
                Err(AvError::Eof) => {
                    self.open = None;
                    continue;
                }
                Err(AvError::InvalidData) if invalid < MAX_INVALID_PACKETS => {
                    invalid += 1;
                    continue;
                }
                Err(e) => {
                    let context =
                        format!("reading run {} of track {}", self.next_run - 1, self.index);
                    return Err(av_error(context)(e));
                }
            }
            if packet.stream() != run.stream {
                continue;
            }
            packet.rescale_ts(run.time_base, self.out_tb);
            packet.set_stream(self.index);
            packet.set_position(-1);
            if self.run_start
                && let Some(first) = packet.dts().or(packet.pts())
            {
                self.run_start = false;
                self.offset = self.next_dts.map_or(0, |next| next - first);
            }
            packet.set_pts(packet.pts().map(|p| p + self.offset));
            packet.set_dts(packet.dts().map(|d| d + self.offset));
            let dts = packet.dts().or(packet.pts());
            let Some(dts) = dts.filter(|&d| self.last_dts.is_none_or(|last| d > last)) else {
                self.dropped += 1;
                continue;
            };
            packet.set_dts(Some(dts));
            self.last_dts = Some(dts);
            self.next_dts = Some(dts.saturating_add(packet.duration().max(0)));
            let pts = packet.pts().unwrap_or(dts);
            let end = pts.saturating_add(packet.duration().max(0));
            let (start, last_end) = self.span.unwrap_or((pts, end));
            self.span = Some((start.min(pts), last_end.max(end)));
            return Ok(Some(packet));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const BBB: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/bbb-720p-2s-gop.mp4"
    );
    const BIKES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/camera-bikes-272p-h264-10s.mp4"
    );

    /// A unique directory under the system's temporary directory, removed when dropped.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir();
            let dir = dir.join(format!("estuary-remux-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        /// Hidden (temporary) files left in the directory.
        fn leftovers(&self) -> Vec<String> {
            let entries = std::fs::read_dir(&self.0).unwrap();
            let names = entries.filter_map(|e| e.ok()?.file_name().into_string().ok());
            names.filter(|n| n.starts_with('.')).collect()
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Run an FFmpeg tool; a missing tool fails the test.
    fn run(tool: &str, args: &[&str]) -> String {
        let out = Command::new(tool).args(args).output();
        let out = out.unwrap_or_else(|e| panic!("cannot run {tool} (these tests need it): {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{tool} {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The first 6 s of `clip`'s `map` stream as one run of 2 s CMAF (fMP4 HLS) segments in `dir`.
    /// `-avoid_negative_ts disabled` keeps the source timeline (video PTS 0 where audio PTS 0 is), as
    /// a recording has it, rather than shifting each rendition on its own.
    fn cmaf(clip: &str, map: &str, dir: &Path) -> RemuxRun {
        std::fs::create_dir_all(dir).unwrap();
        let (segments, playlist) = (dir.join("seg%d.m4s"), dir.join("index.m3u8"));
        #[rustfmt::skip]
        run("ffmpeg", &[
            "-v", "error", "-y", "-i", clip, "-t", "6", "-map", map, "-c", "copy",
            "-avoid_negative_ts", "disabled", "-f", "hls", "-hls_time", "2",
            "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
            "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename",
            segments.to_str().unwrap(), playlist.to_str().unwrap(),
        ]);
        let text = std::fs::read_to_string(&playlist).unwrap();
        let lines = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty());
        let segments: Vec<PathBuf> = lines.map(|l| dir.join(l)).collect();
        assert!(segments.len() >= 3, "{text}");
        let init = dir.join("init.mp4");
        RemuxRun { init, segments }
    }

    fn track(run: RemuxRun) -> RemuxTrack {
        RemuxTrack { runs: vec![run] }
    }

    /// (video streams, audio streams, format duration in seconds) as ffprobe sees `path`.
    fn probe(path: &Path) -> (usize, usize, f64) {
        let entries = "format=duration:stream=codec_type,nb_frames";
        let path_str = path.to_str().unwrap();
        let args = [
            "-v",
            "error",
            "-show_entries",
            entries,
            "-of",
            "json",
            path_str,
        ];
        let json: String = run("ffprobe", &args).split_whitespace().collect();
        println!("ffprobe {}: {json}", path.display());
        let count = |kind: &str| json.matches(&format!("\"codec_type\":\"{kind}\"")).count();
        let at = json.find("\"duration\":\"").expect("a duration") + "\"duration\":\"".len();
        let duration = json[at..].split('"').next().and_then(|d| d.parse().ok());
        (count("video"), count("audio"), duration.expect("a number"))
    }

    /// Nothing at `out`, no temporary file left in `dir`.
    fn assert_clean(dir: &TestDir, out: &Path) {
        assert!(!out.exists(), "{} exists", out.display());
        assert!(dir.leftovers().is_empty(), "{:?}", dir.leftovers());
    }

    #[test]
    fn video_and_audio_become_one_faststart_mp4() {
        let dir = TestDir::new("av");
        let video = track(cmaf(BBB, "0:v", &dir.0.join("v")));
        let audio = track(cmaf(BBB, "0:a", &dir.0.join("a")));
        let out = dir.0.join("recording.mp4");
        let report = remux_to_mp4(&[video, audio], &out).unwrap();
        println!("{report:?}");
        let (videos, audios, duration) = probe(&out);
        assert_eq!((videos, audios), (1, 1));
        assert!((duration - 6.0).abs() <= 0.2, "duration {duration} s");
        assert!(report.duration_ms.abs_diff(6000) <= 200, "{report:?}");
        assert_eq!(report.bytes, std::fs::metadata(&out).unwrap().len());
        let data = std::fs::read(&out).unwrap();
        let at = |fourcc: &[u8]| data.windows(4).position(|w| w == fourcc);
        assert!(at(b"moov") < at(b"mdat"), "moov not first");
        assert!(at(b"moof").is_none(), "fragmented");
        assert!(dir.leftovers().is_empty(), "{:?}", dir.leftovers());
    }

    #[test]
    fn two_runs_of_one_track_give_the_same_duration() {
        let dir = TestDir::new("runs");
        let whole = cmaf(BBB, "0:v", &dir.0.join("v"));
        let (init_a, init_b) = (dir.0.join("v/init-a.mp4"), dir.0.join("v/init-b.mp4"));
        std::fs::copy(&whole.init, &init_a).unwrap();
        std::fs::copy(&whole.init, &init_b).unwrap();
        let split = |first: usize, second: usize| {
            let (head, tail) = (&whole.segments[..first], &whole.segments[second..]);
            let mut two = track(RemuxRun {
                init: init_a.clone(),
                segments: head.to_vec(),
            });
            two.runs.push(RemuxRun {
                init: init_b.clone(),
                segments: tail.to_vec(),
            });
            two
        };
        let (one_out, two_out) = (dir.0.join("one.mp4"), dir.0.join("two.mp4"));
        let one = remux_to_mp4(&[track(whole.clone())], &one_out).unwrap();
        let two = remux_to_mp4(&[split(2, 2)], &two_out).unwrap();
        // A second run whose timeline starts over (an origin restarted mid-recording): placed
        // after the first, not dropped.
        let head =
            remux_to_mp4(&[split(2, whole.segments.len())], &dir.0.join("head.mp4")).unwrap();
        let again = remux_to_mp4(&[split(2, 0)], &dir.0.join("again.mp4")).unwrap();
        println!(
            "one run: {one:?}, two runs: {two:?}, head: {head:?}, head then all again: {again:?}"
        );
        let facts = |r: RemuxReport| (r.duration_ms, r.packets);
        assert_eq!(facts(one), facts(two));
        assert_eq!(again.packets, head.packets + one.packets);
        assert!(
            again
                .duration_ms
                .abs_diff(head.duration_ms + one.duration_ms)
                <= 50,
            "{again:?}"
        );
        let ((_, _, d1), (_, _, d2)) = (probe(&one_out), probe(&two_out));
        assert!((d1 - d2).abs() < 0.001, "{d1} s vs {d2} s");
        assert!((d2 - 6.0).abs() <= 0.2, "{d2} s");
    }

    #[test]
    fn a_missing_segment_is_an_io_error_naming_it() {
        let dir = TestDir::new("missing");
        let mut run = cmaf(BBB, "0:v", &dir.0.join("v"));
        let missing = dir.0.join("v/nowhere.m4s");
        run.segments.insert(1, missing.clone());
        let out = dir.0.join("out.mp4");
        match remux_to_mp4(&[track(run)], &out) {
            Err(RemuxError::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected Io, got {other:?}"),
        }
        assert_clean(&dir, &out);
    }

    #[test]
    fn a_run_with_another_configuration_is_refused() {
        let dir = TestDir::new("config");
        let mut bbb = track(cmaf(BBB, "0:v", &dir.0.join("bbb")));
        let mut bikes = cmaf(BIKES, "0:v", &dir.0.join("bikes"));
        bikes.segments = bbb.runs[0].segments.clone(); // only the init differs
        bbb.runs.push(bikes);
        let out = dir.0.join("out.mp4");
        match remux_to_mp4(&[bbb], &out) {
            Err(RemuxError::ConfigurationChanged { track: 0, run: 1 }) => {}
            other => panic!("expected ConfigurationChanged, got {other:?}"),
        }
        assert_clean(&dir, &out);
    }

    #[test]
    fn no_tracks_or_runs_is_empty() {
        let out = std::env::temp_dir().join("estuary-remux-never-written.mp4");
        let no_runs = RemuxTrack { runs: Vec::new() };
        for tracks in [&[][..], &[no_runs]] {
            assert!(matches!(remux_to_mp4(tracks, &out), Err(RemuxError::Empty)));
        }
    }
}
