# syntax=docker/dockerfile:1
# Estuary on Debian 12 with Debian's FFmpeg libraries.
#
#   docker build -t estuary .
#   docker run --rm --stop-timeout 15 -p 8080:8080 -p 1935:1935 -p 9000:9000/udp estuary
#
# The builder's packages match the build list in scripts/setup.sh, the
# runtime libraries are those the -dev packages link against, and the player
# libraries copied are the ones src/player.rs serves; test.sh runs
# scripts/check-dockerfile.sh to keep them in step.

FROM rust:1-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libavcodec-dev libavformat-dev libavfilter-dev libavdevice-dev \
      libswscale-dev libswresample-dev libavutil-dev \
      clang libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin estuary \
 && install -m 0755 target/release/estuary /usr/local/bin/estuary

# The player page's libraries: the npm packages pinned in player/package-lock.json.
FROM node:20-bookworm-slim AS player
WORKDIR /player
COPY player/package.json player/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libavcodec59 libavformat59 libavfilter8 libavdevice59 \
      libswscale6 libswresample4 libavutil57 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/estuary --shell /usr/sbin/nologin estuary
COPY --from=builder /usr/local/bin/estuary /usr/local/bin/estuary
# Only the two files the origin serves (src/player.rs LIBRARIES), in node_modules layout.
COPY --from=player /player/node_modules/hls.js/dist/hls.min.js /usr/share/estuary/player/hls.js/dist/hls.min.js
COPY --from=player /player/node_modules/dashjs/dist/modern/umd/dash.all.min.js /usr/share/estuary/player/dashjs/dist/modern/umd/dash.all.min.js
ENV ESTUARY_PLAYER__ASSETS_DIR=/usr/share/estuary/player
USER estuary
WORKDIR /var/lib/estuary
# Content keys persist here across restarts (private to the estuary user).
ENV ESTUARY_DATA_DIR=/var/lib/estuary/data
VOLUME /var/lib/estuary/data
# HTTP (playlists, media, API), RTMP ingest, SRT ingest, WebRTC (WHEP/WHIP: UDP, and ICE over TCP)
EXPOSE 8080 1935 9000/udp 8189/udp 8189/tcp
# The origin shuts down gracefully on SIGINT or SIGTERM: it ends every stream and lets responses in
# flight finish for up to server.shutdown_grace (10 s by default, so the run line above gives docker 15 s before it kills).
STOPSIGNAL SIGTERM
ENTRYPOINT ["estuary"]
CMD ["serve"]
