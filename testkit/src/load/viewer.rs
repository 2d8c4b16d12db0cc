//! One simulated player ([`Viewer`]): a waiter or an hls.js-like player (see the module above).

use std::{
    collections::VecDeque,
    net::SocketAddr,
    time::{Duration, Instant},
};

use super::{
    Kind, Record, Sink, check_body,
    conn::Conn,
    playlist::{MediaPlaylist, Multivariant, object_numbers},
    preload_hint, strip_token,
};
use crate::Rng;

/// Which media playlist a player follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A variant stream, switched to the next one now and then.
    Video,
    /// The audio rendition.
    Audio,
}

/// What an hls.js-like player does beyond following its playlist.
#[derive(Debug, Clone)]
pub struct PlayerOptions {
    /// Video or audio.
    pub role: Role,
    /// The variant stream to start with (an index, modulo their number).
    pub variant: usize,
    /// Ask for delta updates (`_HLS_skip=YES`).
    pub delta_updates: bool,
    /// Fetch the preload-hint part before each reload (AVPlayer-like: a blocking part request for an
    /// object not listed yet).
    pub fetch_hint: bool,
    /// Switch to the next variant stream after a random time in this range; `None`: never.
    pub switch_every: Option<(Duration, Duration)>,
}

/// What a player does (see the module documentation).
#[derive(Debug, Clone)]
pub enum Mode {
    /// Blocking reloads on one media playlist for each preload hint, and with `fetch_parts` a GET of
    /// each part.
    Waiter {
        /// Also fetch each part.
        fetch_parts: bool,
        /// Retry the first playlist request every 20 ms until it answers 200 (a player that joins
        /// before the publish starts), instead of stopping at its failure.
        wait_for_stream: bool,
    },
    /// An hls.js-like player from the multivariant playlist.
    Player(PlayerOptions),
}

/// One simulated player.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Its name in records.
    pub name: String,
    /// The origin's HTTP address.
    pub addr: SocketAddr,
    /// Where it starts: the media playlist (waiter) or the multivariant playlist (player), as a
    /// request target (e.g. `/t/{token}/live/x/index.m3u8`).
    pub url: String,
    /// What it does.
    pub mode: Mode,
    /// When it stops (after the exchange in progress).
    pub until: Instant,
}

impl Viewer {
    /// Play until [`Viewer::until`] (a waiter also stops at its first failure), reporting to `sink`.
    pub async fn run(self, sink: &dyn Sink) {
        let mut conn = Conn::new(self.addr);
        match self.mode.clone() {
            Mode::Waiter {
                fetch_parts,
                wait_for_stream,
            } => {
                self.wait(&mut conn, sink, fetch_parts, wait_for_stream)
                    .await
            }
            Mode::Player(options) => {
                let mut player = Player {
                    rng: Rng(seed(&self.name)),
                    variant: options.variant,
                    options,
                    viewer: &self,
                    conn,
                    sink,
                    last_part: None,
                    last_segment: None,
                    maps: VecDeque::new(),
                    keys: VecDeque::new(),
                    previous: None,
                };
                player.play().await;
            }
        }
    }

    async fn wait(&self, conn: &mut Conn, sink: &dyn Sink, fetch_parts: bool, patient: bool) {
        let body = loop {
            let request = Request::entry(Kind::Playlist, &self.url);
            match fetch(conn, sink, &self.name, request).await.body {
                Some(body) => break body,
                None if patient && Instant::now() < self.until => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                None => return,
            }
        };
        let mut hint = preload_hint(&body);
        let dir = self.url.rsplit_once('/').map_or("", |(dir, _)| dir);
        while let Some((msn, part)) = hint {
            if Instant::now() >= self.until {
                break;
            }
            let path = format!("{}?_HLS_msn={msn}&_HLS_part={part}", self.url);
            let mut request = Request::entry(Kind::BlockingReload, &path);
            request.asked = Some((msn, part));
            let Some(body) = fetch(conn, sink, &self.name, request).await.body else {
                break;
            };
            hint = preload_hint(&body);
            if fetch_parts {
                let path = format!("{dir}/{msn}.{part}.m4s");
                let request = Request::entry(Kind::Part, &path);
                if fetch(conn, sink, &self.name, request).await.body.is_none() {
                    break;
                }
            }
        }
    }
}

/// What one request is, for its record.
#[derive(Debug, Clone, Copy)]
struct Request<'a> {
    kind: Kind,
    path: &'a str,
    listed: Option<bool>,
    listing_received: Option<Instant>,
    listing_text: Option<&'a str>,
    asked: Option<(u64, usize)>,
    encrypted: bool,
}

impl<'a> Request<'a> {
    /// An entry point (not listed by a playlist).
    fn entry(kind: Kind, path: &'a str) -> Self {
        Self {
            kind,
            path,
            listed: None,
            listing_received: None,
            listing_text: None,
            asked: None,
            encrypted: false,
        }
    }

    /// An object a playlist received at `received` listed (`listed`), or hinted.
    fn listed(kind: Kind, path: &'a str, listed: bool, listing: &'a Listing) -> Self {
        Self {
            listed: Some(listed),
            listing_received: Some(listing.received),
            listing_text: Some(&listing.text),
            ..Self::entry(kind, path)
        }
    }
}

/// What a fetch got: the body of a good 200 answer.
struct Fetched {
    body: Option<Vec<u8>>,
    received: Instant,
}

/// `GET` on `conn`, checked and recorded.
async fn fetch(conn: &mut Conn, sink: &dyn Sink, viewer: &str, request: Request<'_>) -> Fetched {
    let sent = Instant::now();
    let answer = conn.get(request.path).await;
    let received = Instant::now();
    if answer.retried_stale {
        sink.note("stale keep-alive connections reopened", 1);
    }
    let body = conn.body(&answer);
    let bad_body = match (&answer.error, answer.status) {
        (None, 200) => {
            check_body(request.kind, request.encrypted, body).map(|w| format!("bad-body:{w}"))
        }
        _ => None,
    };
    let error = answer.error.as_deref().or(bad_body.as_deref());
    let record = Record {
        viewer,
        kind: request.kind,
        path: request.path,
        sent,
        received,
        status: answer.status,
        error,
        bytes: body.len(),
        listed: request.listed,
        listing_received: request.listing_received,
        listing_text: request.listing_text,
        asked: request.asked,
    };
    sink.record(&record);
    let ok = record.ok() && answer.status == 200;
    Fetched {
        body: ok.then(|| body.to_vec()),
        received,
    }
}

/// A media playlist as received.
struct Listing {
    playlist: MediaPlaylist,
    text: String,
    received: Instant,
}

/// An hls.js-like player's state.
struct Player<'a> {
    viewer: &'a Viewer,
    options: PlayerOptions,
    conn: Conn,
    sink: &'a dyn Sink,
    rng: Rng,
    variant: usize,
    /// The last part fetched: (msn, part index; `usize::MAX` for a whole segment).
    last_part: Option<(u64, usize)>,
    /// The last segment fetched.
    last_segment: Option<u64>,
    /// Init segments and keys fetched (the newest 64).
    maps: VecDeque<String>,
    keys: VecDeque<String>,
    /// The previous playlist's discontinuity sequence and `EXT-X-ENDLIST`.
    previous: Option<(u64, bool)>,
}

impl Player<'_> {
    fn expired(&self) -> bool {
        Instant::now() >= self.viewer.until
    }

    async fn sleep(&self, d: Duration) {
        let until = (Instant::now() + d).min(self.viewer.until);
        tokio::time::sleep_until(until.into()).await;
    }

    fn role_name(&self) -> &'static str {
        match self.options.role {
            Role::Video => "video",
            Role::Audio => "audio",
        }
    }

    fn next_switch(&mut self) -> Option<Instant> {
        let (low, high) = self.options.switch_every?;
        let span = high.saturating_sub(low).as_millis().max(1) as usize;
        Some(Instant::now() + low + Duration::from_millis(self.rng.below(span) as u64))
    }

    async fn play(&mut self) {
        while !self.expired() {
            let viewer = self.viewer;
            let request = Request::entry(Kind::Multivariant, &viewer.url);
            let got = fetch(&mut self.conn, self.sink, &viewer.name, request).await;
            let Some(body) = got.body else {
                self.sleep(Duration::from_secs(1)).await;
                continue;
            };
            let multivariant = Multivariant::parse(&String::from_utf8_lossy(&body), &viewer.url);
            let mut media = match self.options.role {
                Role::Audio => match &multivariant.audio {
                    Some(audio) => audio.clone(),
                    None => {
                        self.sink.note("multivariant without an audio rendition", 1);
                        self.sleep(Duration::from_secs(2)).await;
                        continue;
                    }
                },
                Role::Video if multivariant.variants.is_empty() => {
                    self.sink.note("multivariant without variants", 1);
                    self.sleep(Duration::from_secs(2)).await;
                    continue;
                }
                Role::Video => {
                    multivariant.variants[self.variant % multivariant.variants.len()].clone()
                }
            };
            let mut switch_at = self.next_switch();
            let mut listing = self
                .load(&media, Kind::Playlist, None, true, got.received)
                .await;
            while let Some(current) = listing {
                if self.expired() {
                    break;
                }
                if current.playlist.endlist {
                    self.sleep(Duration::from_secs(1)).await;
                    break;
                }
                if self.options.role == Role::Video
                    && switch_at.is_some_and(|at| Instant::now() >= at)
                    && multivariant.variants.len() > 1
                {
                    self.variant += 1;
                    media =
                        multivariant.variants[self.variant % multivariant.variants.len()].clone();
                    self.sink.note("HLS rendition switches", 1);
                    switch_at = self.next_switch();
                    listing = self
                        .load(&media, Kind::Playlist, None, false, got.received)
                        .await;
                    continue;
                }
                if self.options.fetch_hint
                    && let Some(hint) = &current.playlist.preload_hint
                {
                    let mut request = Request::listed(Kind::HintPart, hint, false, &current);
                    request.encrypted = current
                        .playlist
                        .segments
                        .last()
                        .is_some_and(|s| s.key.is_some());
                    let got = fetch(&mut self.conn, self.sink, &viewer.name, request).await;
                    if got.body.is_some()
                        && let Some((msn, Some(part))) = object_numbers(hint)
                    {
                        self.last_part = self.last_part.max(Some((msn, part)));
                    }
                }
                let (msn, part) = current.playlist.next_part();
                let query = format!(
                    "?_HLS_msn={msn}&_HLS_part={part}{}",
                    if self.options.delta_updates {
                        "&_HLS_skip=YES"
                    } else {
                        ""
                    }
                );
                let path = format!("{media}{query}");
                let mut next = self
                    .load(
                        &path,
                        Kind::BlockingReload,
                        Some((msn, part)),
                        false,
                        got.received,
                    )
                    .await;
                if let Some(new) = &next
                    && !new.playlist.endlist
                    && !new.playlist.contains(msn, part)
                {
                    // RFC 8216bis §6.2.5.2: the request is held until the playlist has that part.
                    self.sink.violation(
                        "blocking reload answered before the playlist had the part asked for",
                        &strip_token(&path),
                        Some(&new.text),
                    );
                }
                if next.is_none() {
                    // 503 (not in time), 404 (ended or replaced), 400, or a transport error: read the
                    // playlist again without blocking, as a player does after an error.
                    self.sleep(Duration::from_millis(500)).await;
                    next = self
                        .load(&media, Kind::Playlist, None, false, got.received)
                        .await;
                }
                listing = next;
            }
            self.sleep(Duration::from_millis(200)).await;
        }
    }

    /// Fetch and read a media playlist, note what changed, check its object names, and fetch what is
    /// new in it. `None` when it failed.
    /// `listed_at`: when the multivariant playlist that listed it was received.
    async fn load(
        &mut self,
        path: &str,
        kind: Kind,
        asked: Option<(u64, usize)>,
        join: bool,
        listed_at: Instant,
    ) -> Option<Listing> {
        let mut request = Request::entry(kind, path);
        request.listed = Some(true);
        request.listing_received = Some(listed_at);
        request.asked = asked;
        let got = fetch(&mut self.conn, self.sink, &self.viewer.name, request).await;
        let text = String::from_utf8_lossy(&got.body?).into_owned();
        let base = path.split('?').next().unwrap_or(path);
        let playlist = match MediaPlaylist::parse(&text, base) {
            Ok(p) => p,
            Err(e) => {
                self.sink
                    .note(&format!("unparsable media playlist: {e}"), 1);
                return None;
            }
        };
        let rendition = base.rsplit('/').nth(1).unwrap_or("");
        self.sink
            .latest(&format!("{rendition}/media.m3u8"), got.received, &text);
        let role = self.role_name();
        let dsq = playlist.discontinuity_sequence;
        if playlist.endlist && !self.previous.is_some_and(|(_, ended)| ended) {
            self.sink
                .note(&format!("EXT-X-ENDLIST seen by HLS {role} threads"), 1);
        }
        if let Some((previous_dsq, previous_ended)) = self.previous {
            if dsq < previous_dsq || (previous_ended && !playlist.endlist) {
                self.sink
                    .note(&format!("stream restarts seen by HLS {role} threads"), 1);
            } else if dsq > previous_dsq {
                self.sink.note(
                    &format!("discontinuities seen by HLS {role} threads"),
                    dsq - previous_dsq,
                );
            }
        }
        self.previous = Some((dsq, playlist.endlist));
        // Estuary names segments {msn}.m4s and parts {msn}.{part}.m4s: the name must match the media
        // sequence number the playlist implies (EXT-X-MEDIA-SEQUENCE + position), which is what
        // _HLS_msn and the rendition reports count in.
        'check: for segment in &playlist.segments {
            for uri in segment.uri.iter().chain(segment.parts.iter()) {
                if let Some((named, _)) = object_numbers(uri)
                    && named != segment.msn
                {
                    self.sink.violation(
                        "media playlist: object name's msn differs from the implied media sequence number",
                        &format!(
                            "{} at implied msn {} (MEDIA-SEQUENCE {})",
                            strip_token(uri),
                            segment.msn,
                            playlist.media_sequence
                        ),
                        Some(&text),
                    );
                    break 'check;
                }
            }
        }
        if join
            && let Some(edge) = playlist
                .segments
                .iter()
                .rev()
                .find(|s| s.uri.is_some())
                .map(|s| s.msn)
        {
            self.last_segment = self.last_segment.max(edge.checked_sub(1));
            self.last_part = self.last_part.max(Some((edge, usize::MAX)));
        }
        let listing = Listing {
            playlist,
            text,
            received: got.received,
        };
        self.fetch_new(&listing).await;
        Some(listing)
    }

    /// Fetch the parts and segments after the last ones fetched, with their init segments and keys.
    async fn fetch_new(&mut self, listing: &Listing) {
        let name = &self.viewer.name;
        for segment in &listing.playlist.segments {
            if self.expired() {
                return;
            }
            let encrypted = segment.key.is_some();
            for (index, part) in segment.parts.iter().enumerate() {
                if Some((segment.msn, index)) > self.last_part {
                    self.ensure(segment.map.as_deref(), Kind::Init, listing)
                        .await;
                    self.ensure(segment.key.as_deref(), Kind::Key, listing)
                        .await;
                    let mut request = Request::listed(Kind::Part, part, true, listing);
                    request.encrypted = encrypted;
                    fetch(&mut self.conn, self.sink, name, request).await;
                    self.last_part = Some((segment.msn, index));
                }
            }
            if let Some(uri) = &segment.uri
                && Some(segment.msn) > self.last_segment
            {
                self.ensure(segment.map.as_deref(), Kind::Init, listing)
                    .await;
                self.ensure(segment.key.as_deref(), Kind::Key, listing)
                    .await;
                let mut request = Request::listed(Kind::Segment, uri, true, listing);
                request.encrypted = encrypted;
                fetch(&mut self.conn, self.sink, name, request).await;
                self.last_segment = Some(segment.msn);
                self.last_part = self.last_part.max(Some((segment.msn, usize::MAX)));
            }
        }
    }

    /// Fetch an init segment or key once (while among the newest 64 fetched).
    async fn ensure(&mut self, uri: Option<&str>, kind: Kind, listing: &Listing) {
        let Some(uri) = uri else { return };
        let seen = if kind == Kind::Key {
            &self.keys
        } else {
            &self.maps
        };
        if seen.iter().any(|u| u == uri) {
            return;
        }
        let request = Request::listed(kind, uri, true, listing);
        let got = fetch(&mut self.conn, self.sink, &self.viewer.name, request).await;
        if got.body.is_some() {
            let seen = if kind == Kind::Key {
                &mut self.keys
            } else {
                &mut self.maps
            };
            seen.push_back(uri.to_owned());
            if seen.len() > 64 {
                seen.pop_front();
            }
        }
    }
}

/// A seed for a player's random switch times, from its name (FNV-1a).
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) | 1
}
