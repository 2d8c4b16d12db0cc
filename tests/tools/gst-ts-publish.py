#!/usr/bin/python3
"""Publish a live MPEG-TS stream over SRT with GStreamer, the way a contribution encoder sends it:
SCTE-35 ad markers written by GStreamer's own mpegtsmux (its `scte-35-pid`), CEA-608 closed captions
in the H.264 SEI (written by x264enc from cccombiner's caption meta), or both.

    /usr/bin/python3 gst-ts-publish.py --srt 127.0.0.1:9000 --stream live/scte \
        [--seconds 30] [--out-at 6] [--lead 2] [--break 6] [--event-id 1] [--captions 2]
    /usr/bin/python3 gst-ts-publish.py --file out.ts [...]   (the same MPEG-TS into a file)

Video: videotestsrc at 640x360, 30 frames/s, x264 (zerolatency, a keyframe every 2 s); audio: AAC.

SCTE-35 (with --out-at): at --out-at seconds, a splice_insert out of the network (splice_event_id
--event-id) is sent for --lead seconds later with a break of --break seconds; --break seconds after
the out, the splice_insert back in (same event id). GstMpegts takes the splice time and the break
duration in nanoseconds of running time, and mpegtsmux writes them as PTS and 90 kHz ticks of its
output. Prints one JSON line per marker on stdout:
{"marker": "out"|"in", "event_id", "running_time_ns", "sent_unix_ms"}.

Captions (with --captions N): every N seconds of running time a CEA-608 pop-on caption (CC1, field 1)
"CAPTION k" is loaded and displayed at k×N seconds (its End Of Caption on the frame at that time):
the byte pairs (odd parity, control codes sent twice as CEA-608 §D.2 asks) go through an appsrc as
`closedcaption/x-cea-608,format=raw`, ccconverter makes them CEA-708 cc_data, cccombiner attaches them
to the frames and x264enc writes them as A/53 SEI. Prints one JSON line per caption:
{"caption": text, "shown_at_s": k×N}.

Needs python3-gi with gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-bad-1.0 (GstMpegts) and the
x264, avenc_aac, mpegtsmux, srtsink and closedcaption (cccombiner, ccconverter) elements.
"""

import argparse
import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstMpegts", "1.0")
from gi.repository import GLib, Gst, GstMpegts  # noqa: E402


FRAME_NS = 1_000_000_000 // 30


def odd_parity(b: int) -> int:
    """A CEA-608 byte: 7 data bits and an odd parity bit (CEA-608 §C.2)."""
    return b | (0x80 if bin(b & 0x7F).count("1") % 2 == 0 else 0)


def pop_on(text: str) -> list:
    """The byte pairs loading `text` as a pop-on caption on row 15 of CC1 and displaying it:
    RCL (resume caption loading), ENM (erase non-displayed memory), PAC (row 15, white), the
    characters, EOC (end of caption: swap memories) — control codes twice, as sent over the air."""
    pairs = [(0x14, 0x20), (0x14, 0x20), (0x14, 0x2E), (0x14, 0x2E), (0x14, 0x70), (0x14, 0x70)]
    t = text if len(text) % 2 == 0 else text + " "
    pairs += [(ord(t[i]), ord(t[i + 1])) for i in range(0, len(t), 2)]
    return [(odd_parity(a), odd_parity(b)) for a, b in pairs]


EOC = (odd_parity(0x14), odd_parity(0x2F))
PADDING = (0x80, 0x80)


def feed_captions(src, every_s: float) -> None:
    """One byte pair per frame into `src`: caption k's loading pairs just before the frame at
    k×every_s, its EOC (twice) on that frame and the next, padding otherwise."""
    per = max(round(every_s * 30), 40)
    state = {"n": 0}

    def pair_at(n: int) -> tuple:
        pos = n % per
        if n >= per and pos in (0, 1):
            return EOC
        loading = pop_on(f"CAPTION {n // per + 1}")
        first = per - len(loading)
        return loading[pos - first] if pos >= first else PADDING

    def need_data(appsrc, _length):
        n = state["n"]
        if n % per == 0 and n > 0:
            print(json.dumps({"caption": f"CAPTION {n // per}", "shown_at_s": n / 30}), flush=True)
        pair = pair_at(n)
        buf = Gst.Buffer.new_wrapped(bytes(pair))
        buf.pts = n * FRAME_NS
        buf.duration = FRAME_NS
        state["n"] = n + 1
        appsrc.emit("push-buffer", buf)

    src.connect("need-data", need_data)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--srt", help="host:port of the origin's SRT listener")
    ap.add_argument("--stream", help="live/{name}")
    ap.add_argument("--file", help="write the MPEG-TS to this file instead of publishing it")
    ap.add_argument("--key", default=None, help="publish key, if the origin wants one")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out-at", type=float, default=None)
    ap.add_argument("--lead", type=float, default=2.0)
    ap.add_argument("--break", dest="brk", type=float, default=6.0)
    ap.add_argument("--event-id", type=int, default=1)
    ap.add_argument("--captions", type=float, default=None, help="seconds between captions")
    args = ap.parse_args()
    if not args.file and not (args.srt and args.stream):
        ap.error("--srt and --stream, or --file")

    Gst.init(None)
    GstMpegts.initialize()
    if args.file:
        sink = f"filesink name=sink location={args.file}"
    else:
        host, port = args.srt.rsplit(":", 1)
        sink = (
            f"srtsink name=sink uri=srt://{host}:{port} mode=caller latency=120 "
            "wait-for-connection=true"
        )
    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true pattern=smpte "
        "! video/x-raw,width=640,height=360,framerate=30/1 "
        + ("! cccombiner name=cc " if args.captions else "")
        + "! x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bitrate=1500 "
        "! video/x-h264,profile=high ! h264parse ! queue ! mux. "
        "audiotestsrc is-live=true wave=sine freq=440 "
        "! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac bitrate=96000 "
        "! aacparse ! queue ! mux. "
        "mpegtsmux name=mux scte-35-pid=500 alignment=7 "
        f"! {sink}"
        + (
            " appsrc name=ccsrc is-live=true format=time block=true max-buffers=30 "
            "caps=closedcaption/x-cea-608,format=raw,framerate=30/1 "
            "! ccconverter ! closedcaption/x-cea-708,format=cc_data ! cc.caption"
            if args.captions
            else ""
        )
    )
    if not args.file:
        streamid = f"#!::r={args.stream},m=publish" + (f",key={args.key}" if args.key else "")
        pipeline.get_by_name("sink").set_property("streamid", streamid)
    mux = pipeline.get_by_name("mux")
    loop = GLib.MainLoop()
    started = time.monotonic()

    def running_time_ns() -> int:
        clock = pipeline.get_clock()
        if clock is None:
            return 0
        return clock.get_time() - pipeline.get_base_time()

    def send(marker: str) -> bool:
        at = running_time_ns() + int(args.lead * 1e9)
        if marker == "out":
            sit = GstMpegts.scte_splice_out_new(args.event_id, at, int(args.brk * 1e9))
        else:
            sit = GstMpegts.scte_splice_in_new(args.event_id, at)
        section = GstMpegts.section_from_scte_sit(sit, 500)
        section.send_event(mux)
        print(
            json.dumps(
                {
                    "marker": marker,
                    "event_id": args.event_id,
                    "running_time_ns": at,
                    "sent_unix_ms": int(time.time() * 1000),
                }
            ),
            flush=True,
        )
        return False

    if args.out_at is not None:
        GLib.timeout_add(int(args.out_at * 1000), send, "out")
        GLib.timeout_add(int((args.out_at + args.brk) * 1000), send, "in")
    if args.captions:
        feed_captions(pipeline.get_by_name("ccsrc"), args.captions)
    GLib.timeout_add(int(args.seconds * 1000), loop.quit)

    def on_message(_bus, message):
        if message.type == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            print(f"gstreamer error: {err.message} ({debug})", file=sys.stderr, flush=True)
            loop.quit()
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    finally:
        pipeline.send_event(Gst.Event.new_eos())
        time.sleep(0.3)
        pipeline.set_state(Gst.State.NULL)
    print(json.dumps({"done_after_s": round(time.monotonic() - started, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
