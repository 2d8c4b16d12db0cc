# syntax=docker/dockerfile:1
# Estuary on Debian 12 with Debian's FFmpeg libraries.
#
#   docker build -t estuary .
#   docker run --rm -p 8080:8080 -p 1935:1935 -p 9000:9000/udp estuary
#
# The builder's packages match the build list in scripts/setup.sh, and the
# runtime libraries are those the -dev packages link against; test.sh runs
# scripts/check-dockerfile.sh to keep the three in step.

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

FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libavcodec59 libavformat59 libavfilter8 libavdevice59 \
      libswscale6 libswresample4 libavutil57 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --create-home --home-dir /var/lib/estuary --shell /usr/sbin/nologin estuary
COPY --from=builder /usr/local/bin/estuary /usr/local/bin/estuary
USER estuary
WORKDIR /var/lib/estuary
# Content keys persist here across restarts (private to the estuary user).
ENV ESTUARY_DATA_DIR=/var/lib/estuary/data
VOLUME /var/lib/estuary/data
# HTTP (playlists, media, API), RTMP ingest, SRT ingest
EXPOSE 8080 1935 9000/udp
# The origin shuts down gracefully on SIGINT.
STOPSIGNAL SIGINT
ENTRYPOINT ["estuary"]
CMD ["serve"]
