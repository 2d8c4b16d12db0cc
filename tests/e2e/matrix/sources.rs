//! What the matrix publishes: its sources (FFmpeg, GStreamer, `srt-live-transmit` publishers of the
//! fixtures) and the origin they publish to.

use super::*;

/// The fixtures' and tools' names, in one place.
pub(crate) const BBB_2S_GOP: &str = "bbb-720p-2s-gop.mp4";
pub(crate) const IRREGULAR_GOP: &str = "bbb-720p-h264-aac-irregular-gop-29s.mp4";
pub(crate) const MP3_CLIP: &str = "bbb-trailer-720p-h264-mp3-10s.mp4";
pub(crate) const AAC51_CLIP: &str = "bbb-720p-h264-aac51-5s.mp4";
pub(crate) const MPEG2_CLIP: &str = "camera-city-cc0-405p-mpeg2-3s.ts";
pub(crate) const HEVC_CLIP: &str = "camera-face-540p-hevc-aac-6s.mov";

/// A publisher set-up (one row group of the matrix).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Source {
    FfmpegG250,
    FfmpegBframes,
    FfmpegOpenGop,
    FfmpegMp3,
    FfmpegAc3Srt,
    FfmpegAac51,
    FfmpegIrregular,
    FfmpegMpeg2Srt,
    FfmpegHevcSrt,
    GstRtmp,
    GstSrt,
    SrtLiveTransmit,
}

impl Source {
    pub(crate) const ALL: [Source; 12] = [
        Source::FfmpegG250,
        Source::FfmpegBframes,
        Source::FfmpegOpenGop,
        Source::FfmpegMp3,
        Source::FfmpegAc3Srt,
        Source::FfmpegAac51,
        Source::FfmpegIrregular,
        Source::FfmpegMpeg2Srt,
        Source::FfmpegHevcSrt,
        Source::GstRtmp,
        Source::GstSrt,
        Source::SrtLiveTransmit,
    ];

    /// Short name, used in stream names (`live/{key}-{n}`).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Source::FfmpegG250 => "g250",
            Source::FfmpegBframes => "bframes",
            Source::FfmpegOpenGop => "opengop",
            Source::FfmpegMp3 => "mp3",
            Source::FfmpegAc3Srt => "ac3",
            Source::FfmpegAac51 => "aac51",
            Source::FfmpegIrregular => "irregular",
            Source::FfmpegMpeg2Srt => "mpeg2",
            Source::FfmpegHevcSrt => "hevc",
            Source::GstRtmp => "gst-rtmp",
            Source::GstSrt => "gst-srt",
            Source::SrtLiveTransmit => "slt",
        }
    }

    /// The publisher column of the tables.
    pub(crate) fn what(self) -> &'static str {
        match self {
            Source::FfmpegG250 => "FFmpeg RTMP, x264 `-g 250 -sc_threshold 40`",
            Source::FfmpegBframes => "FFmpeg RTMP, x264 `-bf 3` (keyint 250)",
            Source::FfmpegOpenGop => "FFmpeg RTMP, x264 open GOP",
            Source::FfmpegMp3 => "FFmpeg RTMP, H.264 + MP3 clip (10 s GOP)",
            Source::FfmpegAc3Srt => "FFmpeg SRT, H.264 + AC-3",
            Source::FfmpegAac51 => "FFmpeg RTMP, H.264 + AAC 5.1 clip",
            Source::FfmpegIrregular => "FFmpeg RTMP, irregular-GOP clip, passthrough",
            Source::FfmpegMpeg2Srt => "FFmpeg SRT, MPEG-2 clip (no audio)",
            Source::FfmpegHevcSrt => "FFmpeg SRT, HEVC + AAC clip",
            Source::GstRtmp => "GStreamer `x264enc` → `rtmp2sink`",
            Source::GstSrt => "GStreamer `x264enc` → `srtsink`",
            Source::SrtLiveTransmit => "FFmpeg UDP → `srt-live-transmit`",
        }
    }

    pub(crate) fn has_audio(self) -> bool {
        self != Source::FfmpegMpeg2Srt
    }

    /// Packaged as it arrives (`transcode.passthrough_streams`) rather than through the ladder.
    pub(crate) fn is_passthrough(self) -> bool {
        self == Source::FfmpegIrregular
    }

    /// Start publishing `live/{name}` to `origin`, in real time and in a loop; each process's
    /// standard error goes to `{logs}/{name}.{process}.log`.
    pub(crate) fn start(self, origin: &Ends, name: &str, logs: &Path) -> Result<Vec<Proc>, String> {
        let rtmp = format!("rtmp://{}/live/{name}", origin.rtmp);
        let srt = srt_url(origin.srt, &format!("#!::r=live/{name},m=publish"), "");
        let log = |what: &str| logs.join(format!("{name}.{what}.log"));
        let x264 = |extra: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = ["-map", "0:v:0", "-map", "0:a:0", "-c:v", "libx264"]
                .map(String::from)
                .to_vec();
            v.extend(extra.iter().map(|s| s.to_string()));
            v.extend(
                [
                    "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "5000k", "-c:a", "copy",
                ]
                .map(String::from),
            );
            v
        };
        let copy = || vec!["-c".to_owned(), "copy".to_owned()];
        let ffmpeg = |clip: &str, args: Vec<String>, format: &str, url: &str| {
            spawn_logged(
                ffmpeg_publisher(&fixture(clip), &args, format, url),
                "ffmpeg publisher",
                &log("ffmpeg"),
            )
            .map(|p| vec![p])
        };
        match self {
            // OBS's default keyframe interval with x264's scene-cut keyframes. `ultrafast` leaves the CPU
            // to the origin's ladder on a 2-core machine; x264 still inserts scene cuts at it.
            Source::FfmpegG250 => ffmpeg(
                BBB_2S_GOP,
                x264(&["-preset", "ultrafast", "-g", "250", "-sc_threshold", "40"]),
                "flv",
                &rtmp,
            ),
            Source::FfmpegBframes => ffmpeg(
                BBB_2S_GOP,
                x264(&["-preset", "superfast", "-bf", "3"]),
                "flv",
                &rtmp,
            ),
            Source::FfmpegOpenGop => ffmpeg(
                BBB_2S_GOP,
                x264(&[
                    "-preset",
                    "superfast",
                    "-bf",
                    "3",
                    "-x264-params",
                    "open-gop=1",
                ]),
                "flv",
                &rtmp,
            ),
            Source::FfmpegMp3 => ffmpeg(MP3_CLIP, copy(), "flv", &rtmp),
            Source::FfmpegAc3Srt => ffmpeg(
                BBB_2S_GOP,
                [
                    "-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy", "-c:a", "ac3", "-b:a", "192k",
                ]
                .map(String::from)
                .to_vec(),
                "mpegts",
                &srt,
            ),
            Source::FfmpegAac51 => ffmpeg(AAC51_CLIP, copy(), "flv", &rtmp),
            Source::FfmpegIrregular => ffmpeg(IRREGULAR_GOP, copy(), "flv", &rtmp),
            Source::FfmpegMpeg2Srt => ffmpeg(MPEG2_CLIP, copy(), "mpegts", &srt),
            Source::FfmpegHevcSrt => ffmpeg(HEVC_CLIP, copy(), "mpegts", &srt),
            Source::GstRtmp => spawn_logged(
                gst_publisher(
                    &format!("rtmp2sink location={rtmp}"),
                    "flvmux streamable=true",
                ),
                "gst-launch publisher",
                &log("gst"),
            )
            .map(|p| vec![p]),
            Source::GstSrt => spawn_logged(
                gst_publisher(
                    &format!(
                        "srtsink uri=srt://{} streamid=#!::r=live/{name},m=publish latency=200",
                        origin.srt
                    ),
                    "mpegtsmux alignment=7",
                ),
                "gst-launch publisher",
                &log("gst"),
            )
            .map(|p| vec![p]),
            Source::SrtLiveTransmit => {
                // An OS-chosen UDP port for the relay's input (free again once the probe socket drops).
                let port = std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| s.local_addr())
                    .map_err(|e| format!("UDP port: {e}"))?
                    .port();
                let mut relay = Command::new("srt-live-transmit");
                relay.args([
                    "-q".to_owned(),
                    format!("udp://127.0.0.1:{port}"),
                    format!(
                        "srt://{}?streamid=#!::r=live/{name},m=publish&latency=200",
                        origin.srt
                    ),
                ]);
                let relay = spawn_logged(relay, "srt-live-transmit", &log("srt-live-transmit"))?;
                std::thread::sleep(Duration::from_millis(300));
                let encoder = spawn_logged(
                    ffmpeg_publisher(
                        &fixture(BBB_2S_GOP),
                        &copy(),
                        "mpegts",
                        &format!("udp://127.0.0.1:{port}?pkt_size=1316"),
                    ),
                    "ffmpeg to UDP",
                    &log("ffmpeg"),
                )?;
                Ok(vec![encoder, relay])
            }
        }
    }
}

/// `ffmpeg -re -stream_loop -1 -i {clip} {args} -f {format} {url}`.
pub(crate) fn ffmpeg_publisher(clip: &Path, args: &[String], format: &str, url: &str) -> Command {
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-re",
        "-stream_loop",
        "-1",
        "-i",
    ])
    .arg(clip)
    .args(args)
    .args(["-f", format, url]);
    cmd
}

/// A live GStreamer encoder: a 640x360 30 fps test picture (`x264enc`, zero latency, a keyframe every
/// 2 s) and a sine tone (`voaacenc`) into `mux` and `sink` (each a gst-launch element description).
pub(crate) fn gst_publisher(sink: &str, mux: &str) -> Command {
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-q");
    let pipeline = format!(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=800 ! h264parse ! queue \
         ! {mux} name=mux ! {sink} \
         audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample \
         ! audio/x-raw,rate=48000,channels=2 ! voaacenc bitrate=128000 ! aacparse ! queue ! mux."
    );
    cmd.args(pipeline.split_whitespace());
    cmd
}

/// Spawn `cmd` with its standard error written to `log` (killed on drop).
pub(crate) fn spawn_logged(
    mut cmd: Command,
    label: &'static str,
    log: &Path,
) -> Result<Proc, String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file));
    cmd.spawn()
        .map(|child| Proc(child, label))
        .map_err(|e| format!("{label} does not start: {e}"))
}

/// The origin's listening addresses.
#[derive(Clone, Copy)]
pub(crate) struct Ends {
    pub(crate) http: SocketAddr,
    pub(crate) rtmp: SocketAddr,
    pub(crate) srt: SocketAddr,
}

/// Start `estuary serve` with the default ladder, open access, the irregular-GOP publisher's streams
/// as passthrough, and `part_target` when given. Blocking.
pub(crate) fn start_origin(part_target: Option<&str>) -> EstuaryProcess {
    let passthrough: Vec<String> = (1..=8)
        .map(|n| format!("\"live/{}-{n}\"", Source::FfmpegIrregular.key()))
        .collect();
    let mut toml = format!(
        "[transcode]\nenabled = true\npassthrough_streams = [{}]\n",
        passthrough.join(", ")
    );
    if let Some(p) = part_target {
        toml.push_str(&format!("[packager]\npart_target = \"{p}\"\n"));
    }
    EstuaryProcess::start(&toml)
}
