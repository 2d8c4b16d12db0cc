#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 (bookworm) machine for building, testing
# and demoing Estuary. Safe to re-run: installed packages are skipped, so a
# second run takes a few seconds.
#
#   bash scripts/setup.sh
#
# Installs Debian packages (as root, or through sudo), the player page's npm
# packages in player/ (hls.js, dash.js), the browser-test npm packages in
# tests/browser, and a Python venv in .venv/ holding
# imageio-ffmpeg (a static FFmpeg >= 7, needed to publish HEVC over Enhanced
# RTMP; Debian's FFmpeg 5.1 cannot). Writes target/tools.env with the paths.
# Nothing is exported globally.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# Rust tools live in ~/.cargo/bin, which non-login shells may not have.
[[ -d "$HOME/.cargo/bin" ]] && PATH="$HOME/.cargo/bin:$PATH"

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    SUDO=(false)  # only fails if something actually needs installing
  fi
fi

# Packages for building (ffmpeg-next links FFmpeg's libraries; bindgen needs
# libclang) - scripts/check-dockerfile.sh checks these against the Dockerfile.
BUILD_PACKAGES=(
  libavcodec-dev libavformat-dev libavfilter-dev libavdevice-dev
  libswscale-dev libswresample-dev libavutil-dev
  clang libclang-dev pkg-config
)
# Packages for tests and the demo. GStreamer (tests/e2e/matrix/): gst-launch-1.0
# (tools); videotestsrc, audiotestsrc, playbin3 (base); flvmux, hlsdemux2
# (good); rtmp2sink, srtsink, mpegtsmux, voaacenc (bad); x264enc (ugly); the
# decoders playbin3 plugs (libav). python3-gi and the GStreamer, base and bad GObject introspection
# data: tests/tools/gst-ts-publish.py, whose mpegtsmux writes SCTE-35 sections (GstMpegts).
# redis-server: the cluster tests start their own on a loopback port (never the system service).
TOOL_PACKAGES=(
  ffmpeg chromium srt-tools nginx-light redis-server curl ca-certificates python3-pip jq
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
)

is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${BUILD_PACKAGES[@]}" "${TOOL_PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

nginx_was_installed=0
is_installed nginx-light && nginx_was_installed=1

# Package lists are needed to install, and by scripts/check-dockerfile.sh.
have_lists=0
compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null && have_lists=1
if ((${#missing[@]})) || ((have_lists == 0)); then
  "${SUDO[@]}" apt-get update -q || die "apt-get update failed (are you root, or is sudo available?)"
fi
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get install -y -q "${missing[@]}"
else
  log "Debian packages: all present"
fi

# nginx-light's postinst starts nginx on :80. We only use nginx by hand in
# tests, on our own ports, so stop and disable the service it just started.
if ((nginx_was_installed == 0)) && is_installed nginx-light; then
  log "stopping the nginx service started by the package"
  if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
    "${SUDO[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
  else
    if [[ -x /etc/init.d/nginx ]]; then
      "${SUDO[@]}" /etc/init.d/nginx stop >/dev/null 2>&1 || true
    fi
    if [[ -s /run/nginx.pid ]]; then
      "${SUDO[@]}" kill "$(cat /run/nginx.pid)" 2>/dev/null || true
    fi
    command -v update-rc.d >/dev/null 2>&1 && { "${SUDO[@]}" update-rc.d nginx disable >/dev/null 2>&1 || true; }
  fi
fi

# --- npm packages: the player page's libraries (player/) and the browser tests -
npm_install() { # dir label
  local dir="$1" label="$2" stamp="$1/node_modules/.package-lock.json"
  [[ -f "$dir/package.json" ]] || return 0
  if [[ -f "$dir/package-lock.json" ]]; then
    if [[ -f "$stamp" && ! "$dir/package-lock.json" -nt "$stamp" && ! "$dir/package.json" -nt "$stamp" ]]; then
      log "$label: node_modules up to date"
    else
      log "$label: npm ci"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    fi
  else
    log "$label: npm install (no lockfile)"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
  fi
}
# hls.js and dash.js for the origin's player page (served from player/node_modules).
npm_install "$ROOT/player" "player"
npm_install "$ROOT/tests/browser" "tests/browser"

# --- FFmpeg >= 7 for HEVC over Enhanced RTMP (PyPI imageio-ffmpeg) ------------
IMAGEIO_FFMPEG_VERSION="0.8.1"
VENV="$ROOT/.venv"
PY=python3
command -v "$PY" >/dev/null 2>&1 || die "python3 not found"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV"
  if ! "$PY" -m venv "$VENV" 2>/dev/null; then
    # Debian's own python3 needs python3-venv for this.
    rm -rf "$VENV"
    is_installed python3-venv || { "${SUDO[@]}" apt-get install -y -q python3-venv; }
    "$PY" -m venv "$VENV"
  fi
fi
# Keep the venv out of git without touching the repository's .gitignore.
[[ -f "$VENV/.gitignore" ]] || printf '*\n' > "$VENV/.gitignore"
if ! "$VENV/bin/python" -c "import imageio_ffmpeg, sys; sys.exit(imageio_ffmpeg.__version__ != '$IMAGEIO_FFMPEG_VERSION')" 2>/dev/null; then
  log "pip install imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION into .venv"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "imageio-ffmpeg==$IMAGEIO_FFMPEG_VERSION"
fi
FFMPEG7="$("$VENV/bin/python" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
[[ -x "$FFMPEG7" ]] || die "imageio-ffmpeg gave no executable: $FFMPEG7"

mkdir -p "$ROOT/target"
cat > "$ROOT/target/tools.env.tmp" <<EOF
# Written by scripts/setup.sh; source it (set -a; . target/tools.env) where needed.
ESTUARY_FFMPEG7=$FFMPEG7
ESTUARY_VENV_PYTHON=$VENV/bin/python
ESTUARY_CHROMIUM=$(command -v chromium || echo /usr/bin/chromium)
EOF
mv "$ROOT/target/tools.env.tmp" "$ROOT/target/tools.env"

# --- Rust ----------------------------------------------------------------------
command -v cargo >/dev/null 2>&1 || die "cargo not found (the machine image should have rustup's toolchain)"
if command -v cargo-nextest >/dev/null 2>&1; then
  nextest="yes"
else
  nextest="no (scripts/test.sh falls back to cargo test)"
fi

log "ffmpeg (Debian):     $(ffmpeg -hide_banner -version | head -n1)"
log "ffmpeg >= 7 (HEVC):  $FFMPEG7"
log "                     $("$FFMPEG7" -hide_banner -version | head -n1)"
log "chromium:            $(command -v chromium)"
log "node:                $(node --version)"
log "cargo:               $(cargo --version)"
log "cargo-nextest:       $nextest"
log "paths written to target/tools.env"
