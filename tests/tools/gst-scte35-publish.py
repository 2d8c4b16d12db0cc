#!/usr/bin/python3
"""Publish a live MPEG-TS stream over SRT with GStreamer, with SCTE-35 ad markers written by
GStreamer's own mpegtsmux (its `scte-35-pid`), the way a contribution encoder sends them.

    /usr/bin/python3 gst-scte35-publish.py --srt 127.0.0.1:9000 --stream live/scte \
        [--seconds 30] [--out-at 6] [--lead 2] [--break 6] [--event-id 1]

Video: videotestsrc at 640x360, 30 frames/s, x264 (zerolatency, a keyframe every 2 s); audio: AAC.
At --out-at seconds, a splice_insert out of the network (splice_event_id --event-id) is sent for
--lead seconds later with a break of --break seconds; --break seconds after the out, the
splice_insert back in (same event id). GstMpegts takes the splice time and the break duration in
nanoseconds of running time, and mpegtsmux writes them as PTS and 90 kHz ticks of its output.
Prints one JSON line per marker on stdout:
{"marker": "out"|"in", "event_id", "running_time_ns", "sent_unix_ms"}.

Needs python3-gi with gir1.2-gstreamer-1.0 and gir1.2-gst-plugins-bad-1.0 (GstMpegts) and the
x264, faac/avenc_aac, mpegtsmux and srtsink elements.
"""

import argparse
import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstMpegts", "1.0")
from gi.repository import GLib, Gst, GstMpegts  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--srt", required=True, help="host:port of the origin's SRT listener")
    ap.add_argument("--stream", required=True, help="live/{name}")
    ap.add_argument("--key", default=None, help="publish key, if the origin wants one")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--out-at", type=float, default=6.0)
    ap.add_argument("--lead", type=float, default=2.0)
    ap.add_argument("--break", dest="brk", type=float, default=6.0)
    ap.add_argument("--event-id", type=int, default=1)
    args = ap.parse_args()

    Gst.init(None)
    GstMpegts.initialize()
    host, port = args.srt.rsplit(":", 1)
    streamid = f"#!::r={args.stream},m=publish" + (f",key={args.key}" if args.key else "")
    pipeline = Gst.parse_launch(
        "videotestsrc is-live=true pattern=smpte "
        "! video/x-raw,width=640,height=360,framerate=30/1 "
        "! x264enc tune=zerolatency speed-preset=veryfast key-int-max=60 bitrate=1500 "
        "! video/x-h264,profile=high ! h264parse ! queue ! mux. "
        "audiotestsrc is-live=true wave=sine freq=440 "
        "! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac bitrate=96000 "
        "! aacparse ! queue ! mux. "
        "mpegtsmux name=mux scte-35-pid=500 alignment=7 "
        f"! srtsink name=sink uri=srt://{host}:{port} mode=caller latency=120 wait-for-connection=true"
    )
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

    GLib.timeout_add(int(args.out_at * 1000), send, "out")
    GLib.timeout_add(int((args.out_at + args.brk) * 1000), send, "in")
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
