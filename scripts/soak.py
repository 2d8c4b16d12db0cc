#!/usr/bin/env python3
"""Soak run for Estuary: a ladder, LL-HLS and DASH viewers, a publisher that reconnects.

Not part of CI: a 30-minute run with zero 5xx except designed ones, zero 404 for listed objects, and
memory flat (the RSS curve reported). Python 3.11, standard library only; the LL-HLS viewers are the
load generator's (`estuary-load`, built from testkit/, the same code the ll_hls_load bench runs).

    python3 scripts/soak.py                      # 30 minutes, defaults below
    python3 scripts/soak.py --minutes 3 --reconnect-every 60    # a short check

What it does
------------
1. Builds `target/debug/estuary` (`cargo build --bin estuary`) when `--bin` does not exist, and the load
   generator (`cargo build -p testkit --bin estuary-load`, next to it).
2. Starts `estuary serve` as a child process on loopback with ephemeral ports (`127.0.0.1:0`; the real
   addresses are read from its `estuary serving http_addr=… rtmp_addr=…` log line, as
   benches/ll_hls_load.rs does), a config file and `--data-dir` in a temporary directory, and:
   transcoding ON with the default ladder (for the 640x360 fixture: `source` copy + `240p` libx264 +
   AAC audio: two video rungs, light enough for 2 cores; the real-time factor is read from the API and
   reported), encryption ON (`[encryption] enabled = true`: HLS AES-128 and DASH CENC/ClearKey), token
   playback and publish keys (the defaults), a random server secret and an API token. The effective
   configuration (reconnect grace, …) is read back with `estuary config`. Playback tokens are minted
   with `estuary token live/soak` (one per viewer), the RTMP URL with `estuary publish-key live/soak`.
3. Publisher: `ffmpeg -re -stream_loop -1 -i fixtures/camera-face-pexels-360p-h264-aac-20s.mp4 -c copy
   -f flv rtmp://…/live/soak?key=…`. Every `--reconnect-every` s it is stopped with SIGTERM and started
   again `--gap` s later (shorter than `streams.reconnect_grace`, 10 s by default: the same stream
   continues after EXT-X-DISCONTINUITY / a new DASH Period). One reconnect per run, when there are at
   least two, stays away `--long-gap` s instead (default: the grace + 5 s), so that the stream ends
   (EXT-X-ENDLIST) and a new publish of the same name starts a new stream (new media sequence numbers,
   the old stream's objects gone): reconnect number (n-1)//3 + 1 of n (the 3rd of 7 at 720 s in a
   default run; the 1st of 2 with `--minutes 3 --reconnect-every 60`), in the first half so that the
   memory fit over the second half does not start with a new stream filling its window. With a grace longer than 120 s, or a long gap
   that does not fit in half a reconnect period, no long gap is made (said in the report);
   `--long-gap 0` disables it.
4. Viewers (keep-alive connections, no decoding):
   - LL-HLS (`--hls-viewers`, hls.js-like; the players of `testkit::load`, in one `estuary-load` process
     whose exchanges come back as JSON lines, its stderr in `load.log`): multivariant playlist; a video variant (viewers spread over
     the variants, each switching to the next one every 60-120 s) and the audio rendition
     (`EXT-X-MEDIA`), each on its own connection; join at the live edge (the last complete segment and
     the parts of the open one); then blocking reloads `media.m3u8?_HLS_msn=M&_HLS_part=P` for the part
     after the last one listed (RFC 8216bis §6.2.5.2), fetching every new `EXT-X-PART`, every new full
     segment, the init segment (`EXT-X-MAP`) and the key (`EXT-X-KEY`) whenever their URI changes.
     Viewers 2-3 (and 6-7, …) ask for delta updates (`_HLS_skip=YES`); every third viewer (2, 5, …)
     also fetches the `EXT-X-PRELOAD-HINT` part before reloading (AVPlayer-like: a blocking part
     request, for an object not listed yet).
     After EXT-X-ENDLIST or a 404 playlist a viewer starts again from the multivariant playlist.
   - DASH (`--dash-viewers`, dash.js low-latency-like; threads here, raw http.client connections): the MPD every `minimumUpdatePeriod` (1 s when
     absent), the `time` clock once, the ClearKey license (`POST license`, the W3C JSON request
     `{"kids":[…],"type":"temporary"}` as tests/e2e/encryption.rs does) for every new `cenc:default_KID`;
     one thread per AdaptationSet (video: one Representation, switched every 60-120 s; audio) fetching
     the init segment and every segment from the SegmentTemplate + SegmentTimeline, starting with the
     newest listed one (the segment in progress, streamed by the origin with chunked transfer until it
     completes), then each next number once an MPD lists it, across Periods.
   All URIs are resolved against the playlist / MPD URL, so the token path prefix carries.
   Cheap body checks: init segments start with `ftyp`, HLS parts/segments under a key are a non-empty
   multiple of 16 bytes (AES-128-CBC/PKCS#7), DASH segments start with a box such as `moof`/`styp`, keys
   are 16 bytes, license answers carry the asked KID.
5. Every 10 s: the origin's VmRSS (/proc/PID/status), its CPU time (utime+stime, /proc/PID/stat) and
   `GET /api/streams/live/soak` (state, transcoder real-time factor and lag, shed rungs, dropped frames).
   `rss.csv`: elapsed_s, rss_kib, cpu_percent_since_last_sample (100 = one core), requests_so_far,
   errors_so_far (non-2xx answers and transport errors, before classification), then stream_state,
   real_time_factor, transcoder_lag_ms, blocked_requests.
6. At the end: viewers stopped, the publisher and then the origin get SIGTERM (SIGKILL after 20 s);
   `report.txt` (also printed), `anomalies.csv` (every non-2xx answer and transport error with its
   classification), `evidence/` (below), `origin.log`, `publisher.log`, all in `--out`. The temporary
   directory with the origin's config and data is removed after a clean run, kept after a failure.

How answers are classified
--------------------------
Times are this script's monotonic clock. A *gap window* runs from each publisher stop (SIGTERM sent, or
an unplanned publisher exit noticed) to its restart + settle, settle = 3 x target duration + 5 s (a
blocked request may wait 3 x target duration; the restarted transcoder needs a keyframe). A *long-gap
window* runs from stop + grace - 1 s to restart + settle. *Replacement* = the origin's "publish started"
log line for the new stream after a long gap (fallback: restart + 5 s).
- 5xx designed (the origin's `OriginError::Unavailable`, answered 503): "not available in time" — a
  blocking reload, a blocking part (preload hint) or a segment held 3 x target duration — and "stream
  not ready" — multivariant playlist, media playlist or MPD of a (re)starting stream waiting for its
  first segment — when the request [sent, answered] overlaps a gap window; "too many blocked requests"
  (over `streams.max_waiters_per_stream`) is designed too but cannot happen at this scale, so it is not
  excused. The 503 body does not say which, so the rule is by time. Any other 5xx, and any 503
  outside a gap window, is a failure.
- 404 for an object listed in the playlist / MPD the viewer fetched just before (part, segment, init,
  key, media playlist listed in the multivariant, DASH init/segment, license for a listed KID) is a
  failure, except across a stream restart: when the listing was received before a replacement (+1 s for
  log latency) and the answer came after the new publisher was started, the old stream's objects
  legitimately went with it (the origin drops the old stream when the new publish of the name starts).
  Viewers also see the restart themselves (EXT-X-ENDLIST, then a playlist whose
  EXT-X-DISCONTINUITY-SEQUENCE went back to 0 and whose media sequence jumped; a new DASH Period), which
  the report counts.
- 404 for a playlist or MPD (multivariant, media playlist, blocking reload, MPD) is designed inside a
  long-gap window: the stream ended (a held blocking reload answers 404 at the end), or was replaced; a
  failure otherwise. 404 for an object that was not listed (the preload-hint part, which a keyframe cut
  can make impossible) is designed and only counted.
- Any other 4xx, a connection error or timeout, or a body failing the checks above, is a failure. A
  response cut off mid-body (a segment in progress whose stream stalled or went away) is designed inside a
  gap window, a failure outside. A stale keep-alive connection (closed by the origin's idle timeout) is
  reopened and the request retried once, counted, not an error.
- Protocol checks (failures): a blocking reload answered with a playlist that does not yet contain the
  part asked for (RFC 8216bis §6.2.5.2; EXT-X-ENDLIST playlists excepted); a media playlist whose
  object names (`{msn}.m4s`, `{msn}.{part}.m4s`) disagree with the media sequence number the playlist
  implies (EXT-X-MEDIA-SEQUENCE + position, the numbering `_HLS_msn` and the rendition reports use);
  an MPD in which two Representations of one AdaptationSet give the same `$Number$` start times more
  than 0.25 s apart (segmentAlignment; docs/decisions.md: "same msn, same tfdt in every video rendition").
  Each is counted once per playlist / MPD received.
- A short reconnect that did not continue the stream (no "publisher reconnected" log line), an
  unplanned publisher exit, a panic in the origin's log, or the origin exiting before the end, is a
  failure.
- Evidence: for the first failures of each kind, `evidence/` keeps the playlist or MPD that listed
  the object (or failed the check), followed by the newest listing of every media playlist and of the
  MPD that any viewer had received at that moment.
- Memory flat: least-squares slope of VmRSS over the second half of the run < 100 KiB/min, i.e. at
  most 1.5 MiB over the 15-minute second half of a default run, about 2 % of the ~75 MiB the origin
  holds with this ladder; a leak of only 100 bytes per request at the ~200 requests/s these viewers
  make would be 1.2 MB/min, 12x the threshold. Runs shorter than 10 minutes print the verdict as
  indicative and do not fail on it: their second half is dominated by the live window refilling after
  the long-gap restart (measured: -5.5 to +5.3 MiB/min in 3-minute runs).
Exit status: 0 when nothing failed, 1 otherwise, 2 when the set-up itself failed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import csv
import http.client
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STREAM = "live/soak"
FIXTURE = os.path.join(REPO, "fixtures", "camera-face-pexels-360p-h264-aac-20s.mp4")
HTTP_TIMEOUT = 40.0
SAMPLE_EVERY = 10.0
FLAT_KIB_PER_MIN = 100.0
MIN_MINUTES_FOR_MEMORY_VERDICT = 10.0
T0 = time.monotonic()


def now() -> float:
    """Seconds since the script started (monotonic)."""
    return time.monotonic() - T0


def log(msg: str) -> None:
    print(f"[soak {now():7.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------------------------------
# Small parsers


def parse_humantime(s: str) -> float:
    """`10s`, `500ms`, `1m 30s`, `2h` -> seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", s):
        total += float(num) * units.get(unit, 1)
    return total


def parse_iso_duration(s: str | None) -> float | None:
    if not s:
        return None
    m = re.fullmatch(r"P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?", s)
    if not m:
        return None
    d, h, mi, se = (float(x) if x else 0.0 for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + se


ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def parse_attrs(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in ATTR_RE.findall(text)}


def strip_token(path: str) -> str:
    return re.sub(r"/t/[^/]+/", "/t/…/", path)


# --------------------------------------------------------------------------------------------------
# Recording


@dataclass
class Rec:
    t0: float
    t1: float
    viewer: str
    kind: str
    status: int  # 0 = no HTTP answer
    error: str  # "" when the exchange completed
    path: str
    listed: bool | None  # None: an entry point (multivariant, MPD, time)
    listing_t: float | None
    nbytes: int
    cls: str = ""  # classification, filled at the end
    listing_text: str | None = None  # the playlist / MPD that listed it (kept for non-2xx answers only)


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.bytes_by_kind: collections.Counter = collections.Counter()
        self.anomalies: list[Rec] = []
        self.stale_retries = 0
        self.viewer: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        # per viewer thread: intervals >= 1 s between two received parts/segments (start, end, length),
        # and the longest shorter one
        self.media_gaps: dict[str, list[tuple[float, float, float]]] = collections.defaultdict(list)
        self.short_gap: collections.Counter = collections.Counter()
        self.last_media: dict[str, float] = {}
        self.notes: collections.Counter = collections.Counter()
        # protocol checks that fail the run: what -> (count, first examples)
        self.protocol: dict[str, list] = {}
        self.evidence_dir: str | None = None
        self.evidence_n: collections.Counter = collections.Counter()
        # the newest listing of each media playlist and of the MPD, saved beside evidence
        self.latest: dict[str, tuple[float, str]] = {}

    def violation(self, what: str, example: str, text: str | None = None) -> None:
        """A protocol check failed: counted, the first examples kept, the listing saved as evidence."""
        with self.lock:
            entry = self.protocol.setdefault(what, [0, []])
            entry[0] += 1
            if len(entry[1]) < 3:
                entry[1].append(example)
        if text is not None:
            self.save_evidence(what, example, text)

    def save_evidence(self, what: str, example: str, text: str) -> None:
        """Keep the playlist / MPD behind a failure (at most 4 files per kind of failure)."""
        if self.evidence_dir is None:
            return
        with self.lock:
            self.evidence_n[what] += 1
            n = self.evidence_n[what]
        if n > 4:
            return
        slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")[:40]
        os.makedirs(self.evidence_dir, exist_ok=True)
        with self.lock:
            latest = sorted(self.latest.items())
        with open(os.path.join(self.evidence_dir, f"{slug}-{n}.txt"), "w") as f:
            f.write(f"# {what}\n# {example}\n{text}")
            for name, (t, other) in latest:
                f.write(f"\n\n######## newest {name} received by any viewer at the time of saving: at {t:.1f}s\n{other}")

    def set_latest(self, name: str, t: float, text: str) -> None:
        with self.lock:
            self.latest[name] = (t, text)

    def record(self, r: Rec) -> None:
        with self.lock:
            self.requests += 1
            ok = r.error == "" and 200 <= r.status < 300
            self.by_kind[r.kind]["total"] += 1
            self.by_kind[r.kind][r.status if not r.error else f"{r.status or ''}{'+' if r.status else ''}{r.error}"] += 1
            self.bytes_by_kind[r.kind] += r.nbytes
            self.viewer[r.viewer][r.kind] += 1
            self.viewer[r.viewer]["bytes"] += r.nbytes
            if not ok:
                self.errors += 1
                self.anomalies.append(r)
            elif r.kind in ("part", "hint part", "segment", "dash segment"):
                last = self.last_media.get(r.viewer)
                if last is not None:
                    if r.t1 - last >= 1.0:
                        self.media_gaps[r.viewer].append((last, r.t1, r.t1 - last))
                    elif r.t1 - last > self.short_gap[r.viewer]:
                        self.short_gap[r.viewer] = r.t1 - last
                self.last_media[r.viewer] = r.t1

    def note(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.notes[what] += n


class Http:
    """One keep-alive HTTP/1.1 connection of one viewer thread."""

    def __init__(self, addr: tuple[str, int], stats: Stats, viewer: str) -> None:
        self.addr = addr
        self.stats = stats
        self.viewer = viewer
        self.conn: http.client.HTTPConnection | None = None
        self.used = False

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None
        self.used = False

    def fetch(
        self,
        url: str,
        kind: str,
        listed: bool | None = None,
        listing_t: float | None = None,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        check=None,
        record: bool = True,
        listing_text: str | None = None,
    ) -> tuple[int, bytes, Rec]:
        u = urlsplit(url)
        path = u.path + ("?" + u.query if u.query else "")
        hdrs = {"Host": f"{self.addr[0]}:{self.addr[1]}", "User-Agent": "estuary-soak"}
        if headers:
            hdrs.update(headers)
        status, data, error = 0, b"", ""
        t0 = now()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.addr[0], self.addr[1], timeout=HTTP_TIMEOUT)
                self.used = False
            reused = self.used
            t0 = now()
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
                self.close()
                if reused and attempt == 0:
                    with self.stats.lock:
                        self.stats.stale_retries += 1
                    continue
                error = f"conn:{type(e).__name__}"
                break
            except (OSError, http.client.HTTPException) as e:
                self.close()
                error = f"conn:{type(e).__name__}"
                break
            status = resp.status
            try:
                data = resp.read()
            except http.client.IncompleteRead as e:
                data = e.partial
                error = "cut-off"
                self.close()
            except (OSError, http.client.HTTPException) as e:
                error = f"body:{type(e).__name__}"
                self.close()
            else:
                self.used = True
                if resp.will_close:
                    self.close()
            break
        if not error and status == 200 and check is not None:
            why = check(data)
            if why:
                error = f"bad-body:{why}"
        rec = Rec(t0, now(), self.viewer, kind, status, error, strip_token(path), listed, listing_t, len(data))
        if (error or not 200 <= status < 300) and listing_text is not None:
            rec.listing_text = listing_text
        if record:
            self.stats.record(rec)
        return (status if not error.startswith("conn") else 0), data, rec


def check_init(b: bytes) -> str:
    return "" if b[4:8] == b"ftyp" else "init does not start with ftyp"


def check_encrypted(b: bytes) -> str:
    return "" if b and len(b) % 16 == 0 else f"encrypted object of {len(b)} bytes (not a multiple of 16)"


def check_clear(b: bytes) -> str:
    return "" if b[4:8] in (b"moof", b"styp", b"prft", b"emsg", b"sidx") else f"media starts with {b[4:8]!r}"


def check_key(b: bytes) -> str:
    return "" if len(b) == 16 else f"key of {len(b)} bytes"


# --------------------------------------------------------------------------------------------------
# LL-HLS: the viewers are the load generator's players (testkit::load, the `estuary-load` command,
# which benches/ll_hls_load.rs runs on too); their exchanges arrive here as JSON lines.


class LoadGenerator:
    """`estuary-load` running the LL-HLS viewers; its records, notes, violations and newest playlists go
    to `stats` with their times on this script's clock."""

    def __init__(self, binary: str, addr: tuple[str, int], specs: list[str], stats: Stats, out: str) -> None:
        args = [binary, "--addr", f"{addr[0]}:{addr[1]}", "--epoch-unix-ms", f"{(time.time() - now()) * 1000:.3f}",
                "--stagger-ms", "150"]
        for spec in specs:
            args += ["--viewer", spec]
        self.stats = stats
        self.cpu_s = 0.0
        self.err = open(os.path.join(out, "load.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err, text=True, bufsize=1)
        self.reader = threading.Thread(target=self.read, name="load-reader", daemon=True)
        self.reader.start()

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                self.stats.note("unparsable line from estuary-load")
                continue
            kind = e.get("type")
            if kind == "record":
                rec = Rec(e["t0"], e["t1"], e["viewer"], e["kind"], e["status"], e["error"], e["path"],
                          e["listed"], e["listing_t"], e["bytes"])
                if rec.error or not 200 <= rec.status < 300:
                    rec.listing_text = e.get("listing_text")
                self.stats.record(rec)
            elif kind == "note":
                if e["what"] == "stale keep-alive connections reopened":
                    with self.stats.lock:
                        self.stats.stale_retries += e["n"]
                else:
                    self.stats.note(e["what"], e["n"])
            elif kind == "violation":
                self.stats.violation(e["what"], e["example"], e.get("text"))
            elif kind == "latest":
                self.stats.set_latest(e["name"], e["t"], e["text"])

    def stop(self, timeout: float) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True when it stopped in time. Its CPU time is read first."""
        if self.proc.poll() is None:
            try:
                with open(f"/proc/{self.proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                self.cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            in_time = True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            in_time = False
        self.reader.join(timeout=5)
        self.err.close()
        return in_time


# --------------------------------------------------------------------------------------------------
# DASH

NS = "{urn:mpeg:dash:schema:mpd:2011}"
CENC_NS = "{urn:mpeg:cenc:2013}"
CLEARKEY_NS = "{http://dashif.org/guidelines/clearKey}"


@dataclass
class Rep:
    id: str
    media: str
    init: str
    numbers: list[tuple[int, int]]  # (number, time)
    timescale: int = 1


@dataclass
class Adapt:
    ctype: str
    kid: str | None
    laurl: str | None
    reps: list[Rep]


@dataclass
class Period:
    id: str
    adapts: list[Adapt]


@dataclass
class Mpd:
    periods: list[Period]
    update: float | None
    received: float
    version: int = 0
    text: str = ""


def fill_template(t: str, rep_id: str, number: int, time_: int, bandwidth: str) -> str:
    def sub(m: re.Match) -> str:
        name, fmt = m.group(1), m.group(2)
        if name == "":
            return "$"
        val: object = {"RepresentationID": rep_id, "Number": number, "Time": time_, "Bandwidth": bandwidth}.get(name, m.group(0))
        if fmt and isinstance(val, int):
            return fmt % val
        return str(val)

    return re.sub(r"\$(RepresentationID|Number|Time|Bandwidth|)(%0\d+d)?\$", sub, t)


def parse_mpd(text: str, base: str, received: float) -> Mpd:
    root = ET.fromstring(text)

    def base_of(el, parent_base: str) -> str:
        b = el.find(NS + "BaseURL")
        return urljoin(parent_base, b.text.strip()) if b is not None and b.text else parent_base

    mbase = base_of(root, base)
    periods = []
    for p in root.findall(NS + "Period"):
        pbase = base_of(p, mbase)
        adapts = []
        for a in p.findall(NS + "AdaptationSet"):
            abase = base_of(a, pbase)
            ctype = a.get("contentType") or (a.get("mimeType") or "").split("/")[0]
            kid = laurl = None
            for cp in a.findall(NS + "ContentProtection"):
                kid = cp.get(CENC_NS + "default_KID") or kid
                la = cp.find(CLEARKEY_NS + "Laurl")
                if la is not None and la.text:
                    laurl = urljoin(abase, la.text.strip())
            a_tmpl = a.find(NS + "SegmentTemplate")
            reps = []
            for r in a.findall(NS + "Representation"):
                rbase = base_of(r, abase)
                r_tmpl = r.find(NS + "SegmentTemplate")
                attrs: dict[str, str] = {}
                timeline = None
                for t in (a_tmpl, r_tmpl):
                    if t is not None:
                        attrs.update(t.attrib)
                        timeline = t.find(NS + "SegmentTimeline") if t.find(NS + "SegmentTimeline") is not None else timeline
                if "media" not in attrs:
                    continue
                start = int(attrs.get("startNumber", "1"))
                numbers: list[tuple[int, int]] = []
                if timeline is not None:
                    n, t_cur = start, 0
                    for s in timeline.findall(NS + "S"):
                        t_cur = int(s.get("t", t_cur))
                        d = int(s.get("d"))
                        for _ in range(max(0, int(s.get("r", "0"))) + 1):
                            numbers.append((n, t_cur))
                            n += 1
                            t_cur += d
                rid = r.get("id", "")
                bw = r.get("bandwidth", "")
                init = fill_template(attrs.get("initialization", ""), rid, 0, 0, bw)
                # media keeps its $Number$ (resolved per segment; urljoin leaves '$' alone)
                reps.append(Rep(rid, urljoin(rbase, attrs["media"]), urljoin(rbase, init), numbers,
                                int(attrs.get("timescale", "1"))))
            adapts.append(Adapt(ctype, kid, laurl, reps))
        periods.append(Period(p.get("id", str(len(periods))), adapts))
    return Mpd(periods, parse_iso_duration(root.get("minimumUpdatePeriod")), received, 0, text)


class DashViewer:
    """A dash.js-like low-latency viewer: an MPD loop plus one segment loop per AdaptationSet."""

    def __init__(self, name: str, index: int, mpd_url: str, addr, stats: Stats, stop: threading.Event) -> None:
        self.name = name
        self.index = index
        self.mpd_url = mpd_url
        self.addr = addr
        self.stats = stats
        self.stop_ev = stop
        self.cond = threading.Condition()
        self.mpd: Mpd | None = None
        self.version = 0
        self.kids: set[str] = set()
        self.threads = [threading.Thread(target=self.guard, args=(self.mpd_loop,), name=f"{name}-mpd", daemon=True)]
        for ctype in ("video", "audio"):
            self.threads.append(threading.Thread(target=self.guard, args=(self.segment_loop, ctype),
                                                 name=f"{name}-{ctype}", daemon=True))

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as e:
            self.stats.note(f"viewer thread crashed: {type(e).__name__}: {e}")
            raise

    def mpd_loop(self) -> None:
        http_ = Http(self.addr, self.stats, f"{self.name}-mpd")
        http_.fetch(urljoin(self.mpd_url, "time"), "time")
        while not self.stop_ev.is_set():
            status, body, rec = http_.fetch(self.mpd_url, "mpd")
            wait = 1.0
            if status == 200:
                try:
                    mpd = parse_mpd(body.decode("utf-8", "replace"), self.mpd_url, rec.t1)
                except ET.ParseError as e:
                    self.stats.note(f"unparsable MPD: {e}")
                    mpd = None
                if mpd is not None:
                    self.stats.set_latest("manifest.mpd", rec.t1, mpd.text)
                    self.check_alignment(mpd)
                    wait = mpd.update if mpd.update else 1.0
                    for p in mpd.periods:
                        for a in p.adapts:
                            if a.kid and a.laurl and a.kid not in self.kids:
                                if self.license(http_, a.kid, a.laurl, mpd):
                                    self.kids.add(a.kid)
                    with self.cond:
                        old = self.mpd
                        if old is not None and old.periods and mpd.periods and old.periods[-1].id != mpd.periods[-1].id:
                            self.stats.note("new DASH Periods seen by DASH viewers")
                        self.version += 1
                        mpd.version = self.version
                        self.mpd = mpd
                        self.cond.notify_all()
            self.stop_ev.wait(wait)
        http_.close()

    def check_alignment(self, mpd: Mpd) -> None:
        """Within a Period, the Representations of one AdaptationSet (segmentAlignment, and Estuary's
        promise that a media sequence number means the same presentation time in every rendition) must
        give `$Number$` N the same start time (0.25 s tolerance for composition offsets)."""
        for p in mpd.periods:
            for a in p.adapts:
                if len(a.reps) < 2:
                    continue
                ref = a.reps[0]
                ref_t = dict(ref.numbers)
                for other in a.reps[1:]:
                    for n, t in other.numbers:
                        if n in ref_t and abs(t / other.timescale - ref_t[n] / ref.timescale) > 0.25:
                            self.stats.violation(
                                "DASH: Representations of one AdaptationSet give one $Number$ different times",
                                f"Period {p.id}: $Number$ {n} at {ref_t[n] / ref.timescale:.3f}s in {ref.id}, "
                                f"at {t / other.timescale:.3f}s in {other.id} (MPD received at {mpd.received:.1f}s)",
                                mpd.text)
                            return

    def license(self, http_: Http, kid: str, laurl: str, mpd: Mpd) -> bool:
        kid_b64 = base64.urlsafe_b64encode(bytes.fromhex(kid.replace("-", ""))).rstrip(b"=").decode()
        body = json.dumps({"kids": [kid_b64], "type": "temporary"}).encode()

        def check(b: bytes) -> str:
            try:
                keys = json.loads(b)["keys"]
            except (ValueError, KeyError, TypeError):
                return "license answer is not a JWK set"
            return "" if any(k.get("kid") == kid_b64 and k.get("k") for k in keys) else "license lacks the KID"

        st, _, _ = http_.fetch(laurl, "license", listed=True, listing_t=mpd.received, method="POST", body=body,
                               headers={"Content-Type": "application/json"}, check=check, listing_text=mpd.text)
        return st == 200

    def snapshot(self, newer_than: int, timeout: float) -> Mpd | None:
        with self.cond:
            if self.version <= newer_than:
                self.cond.wait(timeout)
            return self.mpd

    def segment_loop(self, ctype: str) -> None:
        http_ = Http(self.addr, self.stats, f"{self.name}-{ctype}")
        rng = random.Random(f"{self.name}-{ctype}")
        rep_choice = self.index
        switch_at = now() + rng.uniform(60, 120)
        next_num: int | None = None
        inits: set[str] = set()
        seen_version = 0
        while not self.stop_ev.is_set():
            mpd = self.snapshot(seen_version, 1.0)
            if mpd is None:
                continue
            # Where is next_num listed? (a Period's AdaptationSet of our type, a Representation)
            chosen = None
            candidates = []
            for p in mpd.periods:
                a = next((a for a in p.adapts if a.ctype == ctype and a.reps), None)
                if a is None:
                    continue
                rep = a.reps[rep_choice % len(a.reps)]
                candidates.append((p, a, rep))
            if not candidates:
                seen_version = mpd.version
                continue
            if next_num is None:
                p, a, rep = candidates[-1]
                if not rep.numbers:
                    seen_version = mpd.version
                    continue
                next_num = rep.numbers[-1][0]  # join at the newest listed (in progress) segment
            for p, a, rep in candidates:
                nums = [n for n, _ in rep.numbers]
                if nums and nums[0] <= next_num <= nums[-1]:
                    chosen = (p, a, rep)
                    break
            if chosen is None:
                later = [(p, a, rep) for p, a, rep in candidates if rep.numbers and rep.numbers[0][0] > next_num]
                if later:
                    # a new Period starts past our next number: continue there
                    p, a, rep = later[0]
                    next_num = rep.numbers[0][0]
                    chosen = later[0]
                else:
                    oldest = min((rep.numbers[0][0] for _, _, rep in candidates if rep.numbers), default=None)
                    if oldest is not None and next_num < oldest:
                        self.stats.note("DASH viewer fell behind the window")
                        next_num = candidates[-1][2].numbers[-1][0]
                    seen_version = mpd.version  # wait for an MPD listing next_num
                    continue
            p, a, rep = chosen
            if ctype == "video" and now() >= switch_at and len(a.reps) > 1:
                rep_choice += 1
                switch_at = now() + rng.uniform(60, 120)
                self.stats.note("DASH representation switches")
                rep = a.reps[rep_choice % len(a.reps)]
            if rep.init not in inits:
                st, _, _ = http_.fetch(rep.init, "dash init", listed=True, listing_t=mpd.received, check=check_init,
                                       listing_text=mpd.text)
                if st == 200:
                    inits.add(rep.init)
            t = dict(rep.numbers).get(next_num, 0)
            url = fill_template(rep.media, rep.id, next_num, t, "")
            st, _, _ = http_.fetch(url, "dash segment", listed=True, listing_t=mpd.received, check=check_clear,
                                   listing_text=mpd.text)
            if st == 503:
                self.stop_ev.wait(0.5)
                continue
            next_num += 1
        http_.close()


# --------------------------------------------------------------------------------------------------
# The origin and the publisher


class Origin:
    def __init__(self, binary: str, config: str, data_dir: str, out: str) -> None:
        self.binary = binary
        self.config = config
        self.data_dir = data_dir
        self.log_path = os.path.join(out, "origin.log")
        self.events: list[tuple[float, str]] = []
        self.warnings: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.serving = threading.Event()
        self.http_addr: tuple[str, int] | None = None
        self.rtmp_addr: tuple[str, int] | None = None
        env = dict(os.environ, RUST_LOG=os.environ.get("SOAK_RUST_LOG", "info,srt_protocol=error"), NO_COLOR="1")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", config, "--data-dir", data_dir, "--http-listen", "127.0.0.1:0",
             "--rtmp-listen", "127.0.0.1:0", "--srt-listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=REPO,
        )
        self.reader = threading.Thread(target=self.read_log, name="origin-log", daemon=True)
        self.reader.start()

    EVENTS = {
        "publish started": "publish started",
        "publisher reconnected": "reconnected",
        "grace period started": "disconnected",
        "publisher did not come back": "ended",
        "stream removed": "removed",
        "playlists ready": "ready",
    }

    def read_log(self) -> None:
        assert self.proc.stderr is not None
        with open(self.log_path, "w", encoding="utf-8") as f:
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                f.write(line + "\n")
                f.flush()
                t = now()
                if "estuary serving" in line:
                    m1 = re.search(r"http_addr=(\S+)", line)
                    m2 = re.search(r"rtmp_addr=(\S+)", line)
                    if m1 and m2:
                        h, p = m1.group(1).rsplit(":", 1)
                        self.http_addr = (h, int(p))
                        h, p = m2.group(1).rsplit(":", 1)
                        self.rtmp_addr = (h, int(p))
                        self.serving.set()
                for needle, ev in self.EVENTS.items():
                    if needle in line and STREAM in line:
                        with self.lock:
                            self.events.append((t, ev))
                if "panicked at" in line:
                    with self.lock:
                        self.warnings[f"PANIC {line[:200]}"] += 1
                m = re.match(r"\S+\s+(WARN|ERROR)\s+(.*)", line)
                if m:
                    # group by message: drop span fields, addresses and numbers
                    msg = re.sub(r"^[^:]*\{[^}]*\}: ", "", m.group(2))
                    msg = re.sub(r"\d+", "N", msg)[:160]
                    with self.lock:
                        self.warnings[f"{m.group(1)} {msg}"] += 1

    def cli(self, *args: str) -> list[str]:
        out = subprocess.run([self.binary, *args, "--config", self.config, "--data-dir", self.data_dir],
                             capture_output=True, text=True, cwd=REPO, check=True)
        return out.stdout.splitlines()

    def events_of(self, kind: str) -> list[float]:
        with self.lock:
            return [t for t, e in self.events if e == kind]


class Publisher:
    def __init__(self, url: str, out: str) -> None:
        self.url = url
        self.log = open(os.path.join(out, "publisher.log"), "ab")
        self.proc: subprocess.Popen | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        self.log.write(f"--- start at {now():.1f}s\n".encode())
        self.log.flush()
        self.proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re", "-stream_loop", "-1", "-i", FIXTURE,
             "-c", "copy", "-f", "flv", self.url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
        )
        self.starts.append(now())

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.write(f"--- stopped at {now():.1f}s (exit {self.proc.returncode})\n".encode())
        self.log.flush()
        self.proc = None


def api_get(http_: Http, addr: tuple[str, int], api_token: str) -> dict | None:
    """`GET /api/streams/live/soak` with the API token: the stream's JSON, or {"state": "http N"}."""
    st, body, _ = http_.fetch(f"http://{addr[0]}:{addr[1]}/api/streams/{STREAM}", "api",
                              headers={"Authorization": f"Bearer {api_token}"}, record=False)
    if st != 200:
        return {"state": f"http {st}"}
    try:
        return json.loads(body)
    except ValueError:
        return None


class Monitor(threading.Thread):
    def __init__(self, origin: Origin, api_token: str, stats: Stats, out: str, stop: threading.Event) -> None:
        super().__init__(name="monitor", daemon=True)
        self.origin = origin
        self.api_token = api_token
        self.stats = stats
        self.stop_ev = stop
        self.samples: list[dict] = []
        self.api: list[dict] = []
        self.csv = open(os.path.join(out, "rss.csv"), "w", newline="")
        self.writer = csv.writer(self.csv)
        self.writer.writerow(["elapsed_s", "rss_kib", "cpu_percent_since_last_sample", "requests_so_far",
                              "errors_so_far", "stream_state", "real_time_factor", "transcoder_lag_ms",
                              "blocked_requests"])
        self.http = Http(origin.http_addr, Stats(), "monitor")
        self.tck = os.sysconf("SC_CLK_TCK")
        self.last_cpu: tuple[float, float] | None = None

    def proc_sample(self) -> tuple[int, float] | None:
        pid = self.origin.proc.pid
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu_s = (int(fields[11]) + int(fields[12])) / self.tck
        except (OSError, StopIteration, IndexError, ValueError):
            return None
        return rss, cpu_s

    def api_sample(self) -> dict | None:
        return api_get(self.http, self.origin.http_addr, self.api_token)

    def sample(self) -> None:
        t = now()
        ps = self.proc_sample()
        if ps is None:
            return
        rss, cpu_s = ps
        cpu_pct = None
        if self.last_cpu is not None and t > self.last_cpu[0]:
            cpu_pct = 100.0 * (cpu_s - self.last_cpu[1]) / (t - self.last_cpu[0])
        self.last_cpu = (t, cpu_s)
        api = self.api_sample() or {}
        tr = api.get("transcoder") or {}
        with self.stats.lock:
            reqs, errs = self.stats.requests, self.stats.errors
        row = {"t": t, "rss": rss, "cpu": cpu_pct, "requests": reqs, "errors": errs, "state": api.get("state", ""),
               "rtf": tr.get("real_time_factor"), "lag": tr.get("lag_ms"), "blocked": api.get("blocked_requests")}
        self.samples.append(row)
        self.api.append({"t": t, **api})
        self.writer.writerow([f"{t:.1f}", rss, "" if cpu_pct is None else f"{cpu_pct:.1f}", reqs, errs,
                              row["state"], "" if row["rtf"] is None else row["rtf"],
                              "" if row["lag"] is None else row["lag"], "" if row["blocked"] is None else row["blocked"]])
        self.csv.flush()

    def run(self) -> None:
        next_t = now()
        while not self.stop_ev.is_set():
            self.sample()
            next_t += SAMPLE_EVERY
            self.stop_ev.wait(max(0.0, next_t - now()))
        self.sample()
        self.http.close()
        self.csv.close()


# --------------------------------------------------------------------------------------------------
# Classification and report


@dataclass
class Gap:
    stop: float
    start: float | None
    planned_gap: float
    long: bool
    planned: bool = True
    replacement: float | None = None
    continued: bool | None = None


def overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 <= b1 and b0 <= a1


def classify(stats: Stats, gaps: list[Gap], settle: float, grace: float, run_end: float) -> None:
    playlist_kinds = {"multivariant", "playlist", "blocking reload", "mpd"}
    for r in stats.anomalies:
        windows = [(g.stop, (g.start if g.start is not None else run_end) + settle) for g in gaps]
        long_windows = [(g.stop + grace - 1, (g.start if g.start is not None else run_end) + settle) for g in gaps if g.long]
        in_gap = any(overlaps(r.t0, r.t1, a, b) for a, b in windows)
        in_long = any(overlaps(r.t0, r.t1, a, b) for a, b in long_windows)
        replaced = any(
            g.long and g.start is not None and r.listing_t is not None
            and r.listing_t < (g.replacement if g.replacement is not None else g.start + 5) + 1.0 and r.t1 > g.start
            for g in gaps)
        if r.error.startswith("bad-body"):
            r.cls = "FAIL bad body"
        elif r.error == "cut-off":
            r.cls = "designed cut-off (gap)" if in_gap else "FAIL cut-off response"
        elif r.error:
            r.cls = "FAIL transport error"
        elif 500 <= r.status < 600:
            r.cls = "designed 503 (gap / not ready)" if (r.status == 503 and in_gap) else f"FAIL {r.status}"
        elif r.status == 404:
            if r.kind in playlist_kinds:
                r.cls = "designed 404 playlist (stream ended/replaced)" if in_long else "FAIL 404 playlist"
            elif r.listed is False:
                r.cls = "designed 404 not listed (hint)"
            elif replaced:
                r.cls = "excused 404 listed (stream restarted)"
            else:
                r.cls = "FAIL 404 listed"
                if r.listing_text is not None:
                    stats.save_evidence("404 for a listed object", f"{r.kind} {r.path} at {r.t0:.1f}s by {r.viewer}, "
                                        f"listing received at {r.listing_t:.1f}s", r.listing_text)
        else:
            r.cls = f"FAIL {r.status}"


def lsq_slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 3:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    if den == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den


def nearest(samples: list[dict], t: float) -> dict | None:
    return min(samples, key=lambda s: abs(s["t"] - t)) if samples else None


def build_report(args, cmdline: str, stats: Stats, monitor: Monitor, origin: Origin, gaps: list[Gap],
                 run_start: float, run_end: float, settle: float, grace: float, long_gap_note: str,
                 origin_exit: int | None, origin_died_at: float | None, metrics_5xx: dict,
                 self_cpu: float) -> tuple[str, list[str]]:
    failures: list[str] = []
    out: list[str] = []
    dur = run_end - run_start
    w = out.append
    w("Estuary soak report")
    w("=" * 72)
    w(f"command: {cmdline}")
    w(f"duration: {dur:.0f} s of viewers and publisher (planned {args.minutes:g} min); origin pid {origin.proc.pid}")
    api_last = next((a for a in reversed(monitor.api) if a.get("renditions")), {})
    rends = ", ".join(f"{r['name']} ({r.get('height') or r['kind']}{'p' if r.get('height') else ''})" for r in api_last.get("renditions", []))
    w(f"stream: {STREAM}, renditions: {rends or '?'}; encrypted: {api_last.get('encrypted')}; "
      f"target duration {api_last.get('target_duration_s')} s; reconnect grace {grace:g} s")
    # publisher
    planned = [g for g in gaps if g.planned]
    short = [g for g in planned if not g.long]
    longs = [g for g in planned if g.long]
    unplanned = [g for g in gaps if not g.planned]
    w("")
    w(f"publisher reconnects: {len(planned)} planned ({len(short)} short gap of {args.gap:g} s, "
      f"{len(longs)} long gap of {args.long_gap:g} s){long_gap_note}; unplanned publisher exits: {len(unplanned)}")
    for g in gaps:
        kind = "long" if g.long else "short"
        outcome = ("stream continued (origin: publisher reconnected)" if g.continued
                   else "stream ended and a new one started (origin: stream ended, publish started)" if g.continued is False
                   else "outcome unknown")
        w(f"  stop at {g.stop:7.1f}s, restart at {g.start if g.start is not None else float('nan'):7.1f}s ({kind}"
          f"{'' if g.planned else ', UNPLANNED'}): {outcome}")
        if not g.planned:
            failures.append(f"publisher exited unexpectedly at {g.stop:.1f}s (see publisher.log)")
        if not g.long and g.continued is False:
            failures.append(f"short gap at {g.stop:.1f}s did not continue the stream")
        if g.long and g.continued is True:
            failures.append(f"long gap at {g.stop:.1f}s did not end the stream (grace not applied?)")
    # requests
    w("")
    w(f"viewers: {args.hls_viewers} LL-HLS (video + audio thread each), {args.dash_viewers} DASH (MPD + video + audio thread each)")
    w(f"requests: {stats.requests} in total ({stats.requests / max(dur, 1):.1f}/s), "
      f"stale keep-alive connections reopened: {stats.stale_retries}")
    w(f"  {'kind':<16} {'count':>7} {'200':>7} {'404':>5} {'503':>5} {'other':>6} {'MB':>8}")
    order = ["multivariant", "playlist", "blocking reload", "part", "hint part", "segment", "init", "key",
             "mpd", "time", "license", "dash init", "dash segment"]
    for k in order + sorted(set(stats.by_kind) - set(order)):
        c = stats.by_kind.get(k)
        if not c:
            continue
        other = c["total"] - c[200] - c[404] - c[503]
        w(f"  {k:<16} {c['total']:>7} {c[200]:>7} {c[404]:>5} {c[503]:>5} {other:>6} {stats.bytes_by_kind[k] / 1e6:>8.1f}")
    # classification summary
    cls = collections.Counter(r.cls for r in stats.anomalies)
    designed_5xx = sum(n for c, n in cls.items() if c.startswith("designed 503"))
    undesigned_5xx = sum(1 for r in stats.anomalies if 500 <= r.status < 600 and r.cls.startswith("FAIL"))
    listed_fail = cls.get("FAIL 404 listed", 0)
    listed_excused = cls.get("excused 404 listed (stream restarted)", 0)
    w("")
    w(f"5xx: designed {designed_5xx}, NOT designed {undesigned_5xx}  (designed = 503 from OriginError::Unavailable "
      f"'not available in time' / stream not ready, while a request overlapped a publisher gap + {settle:g} s)")
    w(f"404: listed objects FAILED {listed_fail}, listed objects excused across a stream restart {listed_excused}, "
      f"not listed (preload hint) {cls.get('designed 404 not listed (hint)', 0)}, "
      f"playlists/MPD designed (stream ended/replaced) {cls.get('designed 404 playlist (stream ended/replaced)', 0)}, "
      f"playlists/MPD NOT designed {cls.get('FAIL 404 playlist', 0)}")
    w(f"other: cut-off streamed responses designed {cls.get('designed cut-off (gap)', 0)} / failed {cls.get('FAIL cut-off response', 0)}, "
      f"transport errors {cls.get('FAIL transport error', 0)}, bad bodies {cls.get('FAIL bad body', 0)}, "
      f"other statuses {sum(1 for r in stats.anomalies if not r.error and r.status not in (404,) and not 500 <= r.status < 600)}")
    if metrics_5xx:
        w("origin /metrics 5xx by route (cross-check): " + ", ".join(f"{k}={v}" for k, v in sorted(metrics_5xx.items())))
    else:
        w("origin /metrics 5xx by route (cross-check): none")
    with stats.lock:
        protocol = {k: (v[0], list(v[1])) for k, v in stats.protocol.items()}
    w("protocol checks: " + ("all passed" if not protocol else
                             "; ".join(f"{k}: {n}" for k, (n, _) in sorted(protocol.items()))))
    for k, (n, ex) in sorted(protocol.items()):
        failures.append(f"{n} x {k}: " + "; ".join(ex))
    for c, n in sorted(cls.items()):
        if c.startswith("FAIL"):
            examples = [r for r in stats.anomalies if r.cls == c][:3]
            failures.append(f"{n} x {c}: " + "; ".join(
                f"{r.kind} {r.status or ''}{' ' + r.error if r.error else ''} {r.path} at {r.t0:.1f}-{r.t1:.1f}s" for r in examples))
    # viewer observations
    w("")
    w("viewer observations: " + (", ".join(f"{k}: {v}" for k, v in sorted(stats.notes.items())) or "none"))
    for k in sorted(stats.notes):
        if k.startswith("viewer thread crashed") or k.startswith("unparsable"):
            failures.append(f"{k} ({stats.notes[k]}x)")
    w("per viewer thread (parts / segments fetched, playlist reloads, MB, longest wait between two media objects "
      "outside gap windows):")
    windows = [(g.stop, (g.start if g.start is not None else run_end) + settle) for g in gaps]
    for v in sorted(stats.viewer):
        c = stats.viewer[v]
        media = c["part"] + c["segment"] + c["dash segment"]
        gaps_v = [d for a, b, d in stats.media_gaps.get(v, []) if not any(overlaps(a, b, x, y) for x, y in windows)]
        longest = max(gaps_v, default=stats.short_gap.get(v, 0.0))
        if v.endswith("-mpd"):
            w(f"  {v:<14} mpd {c['mpd']}, license {c['license']}, time {c['time']}")
        else:
            reloads = f"  reloads {c['blocking reload'] + c['playlist']:>6}" if v.startswith("hls") else " " * 16
            w(f"  {v:<14} parts {c['part'] + c['hint part']:>6}  segments {c['segment'] + c['dash segment']:>5}"
              f"{reloads}  {c['bytes'] / 1e6:7.1f} MB  longest wait {longest:5.2f} s")
            if media == 0:
                failures.append(f"viewer {v} fetched no media")
    # transcoder
    w("")
    rtfs = [a["transcoder"]["real_time_factor"] for a in monitor.api
            if isinstance(a.get("transcoder"), dict) and a["transcoder"].get("real_time_factor") is not None
            and a.get("state") == "live"]
    lags = [a["transcoder"].get("lag_ms") or 0 for a in monitor.api if isinstance(a.get("transcoder"), dict)]
    shed = sorted({r for a in monitor.api if isinstance(a.get("transcoder"), dict) for r in a["transcoder"].get("shed_rungs") or []})
    tdrop = max((a["transcoder"].get("frames_dropped") or 0 for a in monitor.api if isinstance(a.get("transcoder"), dict)), default=0)
    if rtfs:
        w(f"transcoder (API, while live): real-time factor min {min(rtfs):.3f} / median {statistics.median(rtfs):.3f} / "
          f"max {max(rtfs):.3f}; lag max {max(lags, default=0)} ms; shed rungs {shed or 'none'}; frames dropped (max seen) {tdrop}")
        keeps_up = min(rtfs) >= 0.95 and not shed
        w(f"transcoder keeps up: {'yes' if keeps_up else 'no'} (min real-time factor >= 0.95 and no shed rung)")
    else:
        w("transcoder: no API samples while live")
    # CPU and memory
    cpus = [s["cpu"] for s in monitor.samples if s["cpu"] is not None]
    w(f"origin CPU (100 % = one core): mean {statistics.fmean(cpus) if cpus else 0:.1f} %, max {max(cpus, default=0):.1f} %; "
      f"the viewers' own CPU (this script and estuary-load): {100 * self_cpu / max(dur, 1):.1f} %")
    samples = [s for s in monitor.samples if s["t"] <= run_end + 1]
    w("")
    if samples:
        first_t = samples[0]["t"]
        s2 = nearest(samples, run_start + 120)
        mid = nearest(samples, (run_start + run_end) / 2)
        end = samples[-1]
        mx = max(samples, key=lambda s: s["rss"])
        half = [s for s in samples if s["t"] >= (run_start + run_end) / 2]
        slope = lsq_slope([s["t"] / 60 for s in half], [s["rss"] for s in half])
        w(f"memory (VmRSS, KiB; {len(samples)} samples every {SAMPLE_EVERY:g} s from {first_t:.0f} s): "
          f"start {samples[0]['rss']}, at 2 min {s2['rss']} ({s2['t']:.0f} s), middle {mid['rss']} ({mid['t']:.0f} s), "
          f"end {end['rss']} ({end['t']:.0f} s), max {mx['rss']} ({mx['t']:.0f} s)")
        w("  curve (every minute): " + " ".join(f"{s['rss'] / 1024:.1f}" for s in samples[:: max(1, int(60 / SAMPLE_EVERY))]) + " MiB")
        short_run = args.minutes < MIN_MINUTES_FOR_MEMORY_VERDICT
        if slope is None:
            w("  slope over the second half: n/a (too few samples)")
            w("memory flat: n/a")
        else:
            flat = slope < FLAT_KIB_PER_MIN
            w(f"  slope over the second half (least squares, {len(half)} samples): {slope:+.1f} KiB/min "
              f"(threshold {FLAT_KIB_PER_MIN:g} KiB/min)")
            w(f"memory flat: {'yes' if flat else 'no'}" + (
                f"  (indicative only: a run shorter than {MIN_MINUTES_FOR_MEMORY_VERDICT:g} min does not fail on memory)"
                if short_run else ""))
            if not flat and not short_run:
                failures.append(f"memory not flat: {slope:+.1f} KiB/min over the second half")
    else:
        w("memory: no samples")
        failures.append("no RSS samples")
    # origin
    w("")
    if origin_died_at is not None:
        failures.append(f"origin exited during the run at {origin_died_at:.1f}s (code {origin_exit})")
        w(f"origin: EXITED during the run at {origin_died_at:.1f}s with code {origin_exit}")
    else:
        w(f"origin: ran throughout; exit code after SIGTERM: {origin_exit}")
    with origin.lock:
        warns = origin.warnings.most_common()
    w(f"origin log: {sum(n for _, n in warns)} WARN/ERROR lines" + (":" if warns else ""))
    for msg, n in warns[:12]:
        w(f"  {n:>5} x {msg}")
    for msg, n in warns:
        if msg.startswith("PANIC"):
            failures.append(f"origin panicked ({n}x): {msg[6:]}")
    w("")
    if failures:
        w(f"FAILURES ({len(failures)}):")
        for f in failures:
            w(f"  - {f}")
        w("verdict: FAIL")
    else:
        w("verdict: PASS (no undesigned 5xx, no 404 for a listed object, origin up, memory flat)")
    return "\n".join(out) + "\n", failures


def metrics_5xx(addr, api_token: str) -> dict:
    h = Http(addr, Stats(), "metrics")
    st, body, _ = h.fetch(f"http://{addr[0]}:{addr[1]}/metrics", "metrics",
                          headers={"Authorization": f"Bearer {api_token}"}, record=False)
    h.close()
    res: dict[str, float] = {}
    if st != 200:
        return {"(metrics unavailable)": st}
    for line in body.decode("utf-8", "replace").splitlines():
        m = re.match(r'estuary_http_requests_total\{(.*)\}\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("status", "").startswith("5"):
            key = f"{labels.get('route')}:{labels['status']}"
            res[key] = res.get(key, 0) + int(float(m.group(2)))
    return res


# --------------------------------------------------------------------------------------------------
# Main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="run length (default 30)")
    ap.add_argument("--bin", default="target/debug/estuary",
                    help="estuary binary (default target/debug/estuary; built with `cargo build --bin estuary` if missing)")
    ap.add_argument("--hls-viewers", type=int, default=6)
    ap.add_argument("--dash-viewers", type=int, default=3)
    ap.add_argument("--reconnect-every", type=float, default=240.0, help="seconds between publisher reconnects (default 240)")
    ap.add_argument("--gap", type=float, default=3.0, help="seconds the publisher stays away (default 3, below the grace)")
    ap.add_argument("--long-gap", type=float, default=None,
                    help="seconds away for the one reconnect that outlasts the grace (default grace + 5; 0 = none)")
    ap.add_argument("--out", default="target/soak", help="output directory (default target/soak)")
    args = ap.parse_args()
    cmdline = "python3 " + " ".join(shlex.quote(a) for a in sys.argv)

    binary = args.bin if os.path.isabs(args.bin) else os.path.join(REPO, args.bin)
    out = args.out if os.path.isabs(args.out) else os.path.join(REPO, args.out)
    os.makedirs(out, exist_ok=True)
    if shutil.which("ffmpeg") is None:
        print("ffmpeg not found on PATH", file=sys.stderr)
        return 2
    if not os.path.exists(binary):
        log(f"{binary} missing: cargo build --bin estuary")
        if subprocess.run(["cargo", "build", "--bin", "estuary"], cwd=REPO).returncode != 0 or not os.path.exists(binary):
            print("build failed", file=sys.stderr)
            return 2
    load_binary = os.path.join(os.path.dirname(binary), "estuary-load")
    log("cargo build -p testkit --bin estuary-load (the LL-HLS viewers)")
    if subprocess.run(["cargo", "build", "-q", "-p", "testkit", "--bin", "estuary-load"], cwd=REPO).returncode != 0 \
            or not os.path.exists(load_binary):
        print(f"build of {load_binary} failed", file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="estuary-soak-")
    data_dir = os.path.join(tmp, "data")
    config = os.path.join(tmp, "estuary.toml")
    api_token = "soak-api-" + secrets.token_urlsafe(24)
    with open(config, "w") as f:
        f.write(
            "# written by scripts/soak.py\n"
            "[transcode]\nenabled = true\n"  # the default ladder, derived from the source
            "[encryption]\nenabled = true\n"  # HLS AES-128 and DASH CENC (ClearKey)
            f'[auth]\nplayback = "token"\npublish = "key"\nsecret = "{secrets.token_urlsafe(36)}"\n'
            f'[api]\ntoken = "{api_token}"\n'
        )
    eff = tomllib.loads(subprocess.run([binary, "config", "--config", config, "--data-dir", data_dir],
                                       capture_output=True, text=True, check=True, cwd=REPO).stdout)
    grace = parse_humantime(str(eff.get("streams", {}).get("reconnect_grace", "10s")))
    max_td = parse_humantime(str(eff.get("packager", {}).get("max_target_duration", "10s")))
    if args.long_gap is None:
        args.long_gap = grace + 5.0
    long_gap_note = ""
    if args.long_gap and args.long_gap <= grace:
        long_gap_note = f" [--long-gap {args.long_gap:g} s is not longer than the grace {grace:g} s: no long gap]"
        args.long_gap = 0.0
    elif args.long_gap and (grace > 120 or args.long_gap > args.reconnect_every / 2):
        long_gap_note = (f" [grace {grace:g} s too long for a long gap of {args.long_gap:g} s within a "
                         f"{args.reconnect_every:g} s reconnect period: no long gap]")
        args.long_gap = 0.0
    if args.gap >= grace:
        log(f"warning: --gap {args.gap:g} s is not shorter than the reconnect grace {grace:g} s")

    stats = Stats()
    stats.evidence_dir = os.path.join(out, "evidence")
    shutil.rmtree(stats.evidence_dir, ignore_errors=True)
    stop = threading.Event()
    origin = Origin(binary, config, data_dir, out)
    publisher: Publisher | None = None
    monitor: Monitor | None = None
    gaps: list[Gap] = []
    viewers_threads: list[threading.Thread] = []
    load: LoadGenerator | None = None
    origin_died_at = None
    run_start = run_end = now()
    exit_code = 2
    try:
        if not origin.serving.wait(60) or origin.proc.poll() is not None:
            print(f"origin did not start (see {origin.log_path})", file=sys.stderr)
            return 2
        host, port = origin.http_addr
        rhost, rport = origin.rtmp_addr
        log(f"origin pid {origin.proc.pid}: http {host}:{port}, rtmp {rhost}:{rport}; config {config}; "
            f"reconnect grace {grace:g} s")
        key_lines = origin.cli("publish-key", STREAM, "--rtmp-listen", f"{rhost}:{rport}", "--host", rhost)
        rtmp_url = next(l for l in key_lines if l.startswith("rtmp://"))
        ttl = f"{int(args.minutes) + 30}m"

        def token_urls() -> tuple[str, str]:
            lines = origin.cli("token", STREAM, "--ttl", ttl, "--base-url", f"http://{host}:{port}")
            return (next(l for l in lines if l.endswith("index.m3u8")), next(l for l in lines if l.endswith("manifest.mpd")))

        publisher = Publisher(rtmp_url, out)
        publisher.start()
        # wait until the stream plays
        probe = Http(origin.http_addr, Stats(), "probe")
        mv0, _ = token_urls()
        deadline = now() + 60
        ready = False
        while now() < deadline and origin.proc.poll() is None:
            st, _, _ = probe.fetch(mv0, "multivariant", record=False)
            if st == 200:
                ready = True
                break
            time.sleep(1.0)
        probe.close()
        if not ready:
            print("stream did not become playable within 60 s", file=sys.stderr)
            return 2
        api_http = Http(origin.http_addr, Stats(), "api")
        api0 = api_get(api_http, origin.http_addr, api_token)
        api_http.close()
        td = float((api0 or {}).get("target_duration_s") or max_td)
        settle = 3 * td + 5
        log(f"stream playable (target duration {td:g} s); starting {args.hls_viewers} LL-HLS and "
            f"{args.dash_viewers} DASH viewers for {args.minutes:g} min")

        monitor = Monitor(origin, api_token, stats, out, stop)
        monitor.start()
        specs = []
        for i in range(args.hls_viewers):
            mv, _ = token_urls()
            for role in ("video", "audio"):
                # viewers 2-3 (6-7, ...) ask for delta updates; every third also fetches the preload hint
                specs.append(f"name=hls{i}-{role[0]},role={role},variant={i},skip={int((i // 2) % 2 == 1)},"
                             f"hint={int(i % 3 == 2)},url={mv}")
        if specs:
            load = LoadGenerator(load_binary, origin.http_addr, specs, stats, out)
            time.sleep(0.15 * len(specs))
        for j in range(args.dash_viewers):
            _, mpd = token_urls()
            d = DashViewer(f"dash{j}", j, mpd, origin.http_addr, stats, stop)
            d.start()
            viewers_threads.extend(d.threads)
            time.sleep(0.3)

        run_start = now()
        duration = args.minutes * 60
        end_at = run_start + duration
        schedule = []
        k = 1
        while run_start + k * args.reconnect_every + max(args.gap, args.long_gap or 0) + 15 <= end_at:
            schedule.append(run_start + k * args.reconnect_every)
            k += 1
        # the long gap in the first half, so that the memory fit over the second half does not start
        # with a new stream filling its window
        long_idx = (len(schedule) - 1) // 3 if args.long_gap and len(schedule) >= 2 else None
        if args.long_gap and len(schedule) < 2:
            long_gap_note += " [fewer than two reconnects fit: no long gap]"
        log(f"publisher reconnects planned at {', '.join(f'{t:.0f}s' for t in schedule) or 'none'}"
            + (f" (long gap at #{long_idx + 1})" if long_idx is not None else ""))
        next_progress = run_start + 60
        while now() < end_at:
            if origin.proc.poll() is not None:
                origin_died_at = now()
                log(f"origin exited with {origin.proc.returncode}")
                break
            if schedule and now() >= schedule[0]:
                idx = len(gaps) - sum(1 for g in gaps if not g.planned)
                schedule.pop(0)
                is_long = long_idx is not None and idx == long_idx
                gap_s = args.long_gap if is_long else args.gap
                g = Gap(stop=now(), start=None, planned_gap=gap_s, long=is_long)
                publisher.stop()
                log(f"publisher stopped ({'long' if is_long else 'short'} gap {gap_s:g} s)")
                gaps.append(g)
                stop.wait(gap_s)
                publisher.start()
                g.start = now()
                log("publisher restarted")
            elif publisher.proc is not None and publisher.proc.poll() is not None:
                code = publisher.proc.returncode
                log(f"publisher exited unexpectedly ({code}); restarting in 1 s")
                g = Gap(stop=now(), start=None, planned_gap=1.0, long=False, planned=False)
                gaps.append(g)
                publisher.proc = None
                time.sleep(1.0)
                publisher.start()
                g.start = now()
            if now() >= next_progress:
                with stats.lock:
                    reqs, errs = stats.requests, stats.errors
                rss = monitor.samples[-1]["rss"] if monitor.samples else 0
                log(f"{reqs} requests, {errs} non-2xx/errors, origin RSS {rss / 1024:.1f} MiB")
                next_progress += 60
            time.sleep(0.2)
        run_end = now()
        log("stopping viewers")
        stop.set()
        if load is not None and not load.stop(max(0.1, run_end + 20 - now())):
            log("estuary-load did not stop on SIGTERM within 20 s")
        for t in viewers_threads:
            t.join(timeout=max(0.1, run_end + 20 - now()))
        still = [t.name for t in viewers_threads if t.is_alive()]
        if still:
            log(f"viewer threads still in a request: {', '.join(still)}")
        m5 = metrics_5xx(origin.http_addr, api_token) if origin.proc.poll() is None else {}
        monitor.join(timeout=15)
    finally:
        stop.set()
        if load is not None and load.proc.poll() is None:
            load.stop(5)
        if publisher is not None:
            publisher.stop()
        origin_exit = origin.proc.poll()
        if origin_exit is None:
            origin.proc.send_signal(signal.SIGTERM)
            try:
                origin_exit = origin.proc.wait(20)
            except subprocess.TimeoutExpired:
                origin.proc.kill()
                origin_exit = origin.proc.wait()
        origin.reader.join(timeout=5)

    if monitor is None:
        return exit_code
    # origin events -> gap outcomes
    reconnected = origin.events_of("reconnected")
    ended = origin.events_of("ended")
    started = origin.events_of("publish started")
    for i, g in enumerate(gaps):
        nxt = gaps[i + 1].stop if i + 1 < len(gaps) else run_end + 60
        if g.start is None:
            continue
        if any(g.start <= t < nxt for t in reconnected):
            g.continued = True
        elif any(g.stop <= t < nxt for t in ended):
            g.continued = False
            g.replacement = next((t for t in started if g.start <= t < nxt), None)
    classify(stats, gaps, settle, grace, run_end)
    self_cpu = sum(os.times()[:2]) + (load.cpu_s if load is not None else 0.0)
    report, failures = build_report(args, cmdline, stats, monitor, origin, gaps, run_start, run_end, settle,
                                    grace, long_gap_note, origin_exit, origin_died_at, m5, self_cpu)
    with open(os.path.join(out, "anomalies.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["t_sent_s", "t_done_s", "viewer", "kind", "status", "error", "path", "listed", "listing_t_s", "bytes", "class"])
        for r in stats.anomalies:
            wr.writerow([f"{r.t0:.2f}", f"{r.t1:.2f}", r.viewer, r.kind, r.status, r.error, r.path, r.listed,
                         "" if r.listing_t is None else f"{r.listing_t:.2f}", r.nbytes, r.cls])
    with open(os.path.join(out, "report.txt"), "w") as f:
        f.write(report)
    print(report, end="")
    if failures:
        print(f"(files in {out}: report.txt, rss.csv, anomalies.csv, origin.log, publisher.log, evidence/; "
              f"origin config and data kept in {tmp})")
    else:
        print(f"(files in {out}: report.txt, rss.csv, anomalies.csv, origin.log, publisher.log)")
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
