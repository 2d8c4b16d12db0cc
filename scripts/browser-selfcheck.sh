#!/usr/bin/env bash
# Self-check of the browser harness, independent of Estuary: FFmpeg turns the
# fixture clip into a live HLS stream (stream copy, so no encoding load),
# Python serves it, and tests/browser/play-hls.mjs must play it in headless
# Chromium with hls.js at 1280x720 without fatal errors.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_TO_PLAY="${1:-8}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/estuary-selfcheck.XXXXXX")"
FF_PID=""
HTTP_PID=""
cleanup() {
  [[ -n "$FF_PID" ]] && kill "$FF_PID" 2>/dev/null || true
  [[ -n "$HTTP_PID" ]] && kill "$HTTP_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/hls"
ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 \
  -i "$ROOT/fixtures/bbb-720p-2s-gop.mp4" -c copy \
  -f hls -hls_segment_type fmp4 -hls_time 2 -hls_list_size 6 \
  -hls_flags delete_segments+program_date_time+independent_segments \
  "$WORK/hls/index.m3u8" >"$WORK/ffmpeg.log" 2>&1 &
FF_PID=$!
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$WORK/hls" >"$WORK/http.log" 2>&1 &
HTTP_PID=$!

port=""
for ((i = 0; i < 100; i++)); do
  port="$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$WORK/http.log" | head -n1)"
  [[ -n "$port" && -s "$WORK/hls/index.m3u8" ]] && grep -q '\.m4s' "$WORK/hls/index.m3u8" && break
  sleep 0.1
done
[[ -n "$port" ]] || { cat "$WORK/http.log" >&2; echo "http server did not start" >&2; exit 1; }

out="$(node "$ROOT/tests/browser/play-hls.mjs" --proxy --seconds "$SECONDS_TO_PLAY" \
  --url "http://127.0.0.1:$port/index.m3u8")"
echo "$out"
echo "$out" | jq -e --argjson s "$SECONDS_TO_PLAY" '
  .ok == true and (.fatal_errors | length) == 0 and .video_width == 1280 and
  .video_height == 720 and .frames_decoded > 0 and .played_seconds >= ($s - 1)' >/dev/null \
  || { echo "browser harness self-check: unexpected result" >&2; exit 1; }
echo "browser harness self-check: ok"
