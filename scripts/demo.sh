#!/usr/bin/env bash
# Estuary demo: set the machine up, build the origin, start it, and publish a
# looping test clip over RTMP, then print the playback URL. Ctrl-C stops both.
#
#   bash scripts/demo.sh [--release] [--no-build] [--name NAME] [--clip FILE] [--ffmpeg PATH]
#
#   --release     build and run the release profile (slower build, faster origin)
#   --no-build    run the binary already in target/ without calling cargo
#   --name NAME   stream name (default: demo) -> rtmp://.../live/NAME
#   --clip FILE   media file to loop (default: fixtures/bbb-720p-2s-gop.mp4);
#                 it is sent with -c copy, so it must be H.264/AAC for Debian's
#                 FFmpeg (for HEVC, pass --ffmpeg "$ESTUARY_FFMPEG7" from
#                 target/tools.env)
#   --ffmpeg PATH the ffmpeg that publishes (default: ffmpeg on PATH)
#
# Listen addresses follow the origin's own settings: ESTUARY_HTTP_LISTEN
# (default 0.0.0.0:8080) and ESTUARY_RTMP_LISTEN (default 0.0.0.0:1935).
# Access control stays on (its secure defaults): the clip is published with
# the stream's publish key (`estuary publish-key`), and the printed playback
# URLs carry a signed token (`estuary token`, valid 6 h). The server secret is
# generated on first use in estuary-data/secret. Logs go to target/demo/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
[[ -d "$HOME/.cargo/bin" ]] && PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[demo] %s\n' "$*" >&2; }
die() { printf '[demo] error: %s\n' "$*" >&2; exit 1; }

PROFILE=debug
BUILD=1
NAME=demo
CLIP="$ROOT/fixtures/bbb-720p-2s-gop.mp4"
FFMPEG=ffmpeg
while (($#)); do
  case "$1" in
    --release) PROFILE=release ;;
    --no-build) BUILD=0 ;;
    --name) NAME="${2:?--name needs a value}"; shift ;;
    --clip) CLIP="${2:?--clip needs a value}"; shift ;;
    --ffmpeg) FFMPEG="${2:?--ffmpeg needs a value}"; shift ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (try --help)" ;;
  esac
  shift
done
[[ -f "$CLIP" ]] || die "clip not found: $CLIP"

port_of() { local a="$1"; echo "${a##*:}"; }
HTTP_LISTEN="${ESTUARY_HTTP_LISTEN:-0.0.0.0:8080}"
RTMP_LISTEN="${ESTUARY_RTMP_LISTEN:-0.0.0.0:1935}"
HTTP_PORT="$(port_of "$HTTP_LISTEN")"
RTMP_PORT="$(port_of "$RTMP_LISTEN")"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bash "$ROOT/scripts/setup.sh"

if ((BUILD == 0)); then
  log "--no-build: using the existing target/$PROFILE/estuary"
elif [[ "$PROFILE" == release ]]; then
  log "building estuary (release profile)"
  cargo build --release --bin estuary
else
  log "building estuary (dev profile; dependencies are built with opt-level 2)"
  cargo build --bin estuary
fi
BIN="$ROOT/target/$PROFILE/estuary"
[[ -x "$BIN" ]] || die "no binary at $BIN"

for p in "$HTTP_PORT" "$RTMP_PORT"; do
  port_open "$p" && die "port $p is already in use (another estuary? set ESTUARY_HTTP_LISTEN / ESTUARY_RTMP_LISTEN)"
done

LOGDIR="$ROOT/target/demo"
mkdir -p "$LOGDIR"
SERVER_PID=""
PUBLISH_PID=""

stop_pid() { # pid signal seconds
  local pid="$1" sig="$2" secs="$3"
  kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}
cleanup() {
  trap - INT TERM EXIT
  log "stopping"
  if [[ -n "$PUBLISH_PID" ]]; then
    stop_pid "$PUBLISH_PID" TERM 3 || stop_pid "$PUBLISH_PID" KILL 1 || true
  fi
  if [[ -n "$SERVER_PID" ]]; then
    # SIGINT is the origin's graceful-shutdown signal.
    stop_pid "$SERVER_PID" INT 5 || stop_pid "$SERVER_PID" TERM 3 || stop_pid "$SERVER_PID" KILL 1 || true
  fi
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting $BIN serve (log: target/demo/estuary.log)"
NO_COLOR=1 RUST_LOG="${RUST_LOG:-info}" "$BIN" serve >"$LOGDIR/estuary.log" 2>&1 &
SERVER_PID=$!

for ((i = 0; ; i++)); do
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -n 30 "$LOGDIR/estuary.log" >&2; die "estuary exited"; }
  port_open "$HTTP_PORT" && port_open "$RTMP_PORT" && break
  ((i < 300)) || { tail -n 30 "$LOGDIR/estuary.log" >&2; die "estuary did not open :$HTTP_PORT and :$RTMP_PORT within 30 s"; }
  sleep 0.1
done
log "estuary is listening: HTTP :$HTTP_PORT, RTMP :$RTMP_PORT"

HOST="$(hostname -I 2>/dev/null | awk '{print $1}')"
HOST="${HOST:-127.0.0.1}"
# The same settings (environment, estuary-data/) as the server: the same secret.
PUBLISH_KEY="$("$BIN" publish-key "live/$NAME" 2>/dev/null | head -n 1)"
[[ -n "$PUBLISH_KEY" ]] || die "estuary publish-key failed"
mapfile -t LOCAL_URLS < <("$BIN" token "live/$NAME" --base-url "http://127.0.0.1:$HTTP_PORT" 2>/dev/null)
mapfile -t URLS < <("$BIN" token "live/$NAME" --base-url "http://$HOST:$HTTP_PORT" 2>/dev/null)
((${#URLS[@]} == 3 && ${#LOCAL_URLS[@]} == 3)) || die "estuary token failed"
PUBLISH_URL="rtmp://127.0.0.1:$RTMP_PORT/live/$NAME?key=$PUBLISH_KEY"
log "publishing $(basename "$CLIP") in a loop to rtmp://127.0.0.1:$RTMP_PORT/live/$NAME?key=… (log: target/demo/ffmpeg.log)"
"$FFMPEG" -hide_banner -loglevel warning -nostdin -re -stream_loop -1 -i "$CLIP" \
  -c copy -f flv "$PUBLISH_URL" >"$LOGDIR/ffmpeg.log" 2>&1 &
PUBLISH_PID=$!

LOCAL_URL="${LOCAL_URLS[0]}"
ready=0
for ((i = 0; i < 200; i++)); do
  kill -0 "$PUBLISH_PID" 2>/dev/null || break
  if curl -fsS -o /dev/null --max-time 2 "$LOCAL_URL" 2>/dev/null; then ready=1; break; fi
  sleep 0.1
done
if ((ready)); then
  log "playlist is up"
else
  log "warning: $LOCAL_URL not answering 200 yet (see target/demo/*.log)"
fi

cat <<EOF

  Estuary is running. Play the stream (signed URLs, valid 6 h; more with
  target/$PROFILE/estuary token live/$NAME --base-url http://$HOST:$HTTP_PORT):

    Player: ${URLS[2]}
            (the origin's own page: hls.js, or dash.js with ?engine=dash;
            live latency and the rendition playing)
    LL-HLS: ${URLS[0]}
    DASH:   ${URLS[1]}
    (on this machine: ${LOCAL_URLS[0]})

  ffplay:   ffplay -fflags nobuffer '${URLS[0]}'
  hls.js:   open https://hlsjs.video-dev.org/demo/ and paste the URL above
            (needs the origin's CORS headers), or run the headless check:
            node tests/browser/play-hls.mjs --url '${LOCAL_URLS[0]}' --seconds 20 --low-latency
  dash.js:  node tests/browser/play-dash.mjs --player dashjs --low-latency \\
              --url '${LOCAL_URLS[1]}' --seconds 20
  publish your own: OBS server rtmp://$HOST:$RTMP_PORT/live, stream key
            <name>?key=<key from: target/$PROFILE/estuary publish-key live/<name>>

  Logs: target/demo/estuary.log, target/demo/ffmpeg.log. Ctrl-C stops everything.

EOF

# Stay up until Ctrl-C, or until either process ends on its own. (`wait -n`
# returns at once when a signal arrives, so the traps run without delay.)
STOPPING=0
trap 'STOPPING=1; exit 130' INT
trap 'STOPPING=1; exit 143' TERM
rc=0
wait -n "$SERVER_PID" "$PUBLISH_PID" || rc=$?
((STOPPING)) && exit 130
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  tail -n 30 "$LOGDIR/estuary.log" >&2
  die "estuary exited (status $rc)"
fi
tail -n 20 "$LOGDIR/ffmpeg.log" >&2
die "the publishing ffmpeg exited (status $rc)"
