//! Routing: [`Route`], parsed once per request from the `/t/{token}` prefix, the object path grammar
//! ([`ObjectPath`]) and the query; it also gives the request's metrics label.

use packager::urls::{ObjectPath, StreamObject as Object, VodObject, VodPath};
use protocols::query::has_param;

use crate::player::PageRequest;

use super::*;

/// Split `/t/{token}/rest` into the token and `/rest`; other paths have no token.
pub(super) fn split_token(path: &str) -> (Option<&str>, &str) {
    match path.strip_prefix(crate::auth::TOKEN_PATH_PREFIX) {
        Some(after) => match after.find('/') {
            Some(i) => (Some(&after[..i]), &after[i..]),
            None => (Some(after), ""),
        },
        None => (None, path),
    }
}

/// Parse `/live/{name}/...` ([`ObjectPath`], the grammar the renderers write) into the stream name
/// (`live/{name}`) and the object.
pub(super) fn parse_path(path: &str) -> Option<(String, Object)> {
    ObjectPath::parse(path).map(|p| (p.stream, p.object))
}

/// What a request asks for, parsed once from its path and query by [`Route::parse`]: the origin
/// dispatches on it and counts the request under [`Route::label`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// An object of a stream: `[/t/{token}]/live/{name}/…` in [`ObjectPath`]'s grammar.
    Object {
        /// The playback token of the `/t/{token}` prefix.
        token: Option<&'a str>,
        /// `live/{name}`.
        stream: String,
        /// The object within the stream.
        object: Object,
        /// A media playlist request that blocks (`_HLS_msn`, RFC 8216bis §6.2.5.2).
        blocking: bool,
    },
    /// An object of a recording: `[/t/{token}]/vod/live/{name}/{id}/…` in [`VodPath`]'s grammar.
    Vod {
        /// The playback token of the `/t/{token}` prefix.
        token: Option<&'a str>,
        /// The recording and the object.
        path: VodPath,
    },
    /// The player page, or the redirect to it: `[/t/{token}]/live/{name}[/]` (when the player is
    /// enabled).
    PlayerPage(PageRequest),
    /// A player library: `/player/{file}` (the file name).
    PlayerAsset(&'a str),
    /// `/healthz` or `/readyz`.
    Health(&'a str),
    /// `/metrics`.
    Metrics,
    /// The JSON API: `/api/…` (the whole path).
    Api(&'a str),
    /// The CDN's token check, [`AUTH_CHECK_PATH`].
    AuthCheck,
    /// Anything else (404).
    Unknown,
}

impl<'a> Route<'a> {
    /// The route of `path` (with the query `query`); the player page only when `player` is enabled.
    /// Operations, the token check and player libraries have no `/t/{token}` form.
    pub(super) fn parse(path: &'a str, query: Option<&str>, player: bool) -> Self {
        let (token, rest) = split_token(path);
        if let Some((stream, object)) = parse_path(rest) {
            let blocking = matches!(object, Object::MediaPlaylist { .. })
                && query.is_some_and(|q| has_param(q, "_HLS_msn"));
            return Route::Object {
                token,
                stream,
                object,
                blocking,
            };
        }
        if let Some(path) = VodPath::parse(rest) {
            return Route::Vod { token, path };
        }
        if let Some(page) = player.then(|| crate::player::page_request(rest)).flatten() {
            return Route::PlayerPage(page);
        }
        if token.is_some() {
            return Route::Unknown;
        }
        match path {
            "/healthz" | "/readyz" => Route::Health(path),
            "/metrics" => Route::Metrics,
            AUTH_CHECK_PATH => Route::AuthCheck,
            p if p.starts_with("/api/") => Route::Api(p),
            p => match p.strip_prefix(crate::player::ASSETS_PREFIX) {
                Some(file) => Route::PlayerAsset(file),
                None => Route::Unknown,
            },
        }
    }

    /// The `route` label of the request's metrics.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Route::Object {
                object, blocking, ..
            } => match object {
                Object::Multivariant => "multivariant_playlist",
                Object::MediaPlaylist { .. } if *blocking => "blocking_playlist",
                Object::MediaPlaylist { .. } => "media_playlist",
                Object::Mpd => "mpd",
                Object::Time => "time",
                Object::Key { .. } => "key",
                Object::License => "license",
                Object::Whep | Object::WhepSession { .. } => "whep",
                Object::Whip | Object::WhipSession { .. } => "whip",
                Object::Init { .. } => "init",
                Object::Segment { .. } => "segment",
                Object::Part { .. } => "part",
                Object::CencInit { .. } => "cenc_init",
                Object::CencSegment { .. } => "cenc_segment",
            },
            Route::Vod { path, .. } => match path.object {
                VodObject::Object(Object::Multivariant | Object::MediaPlaylist { .. }) => {
                    "vod_playlist"
                }
                VodObject::Object(Object::Mpd) => "vod_mpd",
                VodObject::Object(Object::Key { .. }) => "vod_key",
                VodObject::Download { .. } => "vod_download",
                VodObject::Object(_) => "vod_media",
            },
            Route::PlayerPage(_) | Route::PlayerAsset(_) => "player",
            Route::Health(_) => "health",
            Route::Metrics => "metrics",
            Route::Api(_) => "api",
            Route::AuthCheck => "auth_check",
            Route::Unknown => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_strictly() {
        assert_eq!(
            parse_path("/live/demo/index.m3u8"),
            Some(("live/demo".into(), Object::Multivariant))
        );
        assert_eq!(
            parse_path("/live/demo/source/123.4.m4s"),
            Some((
                "live/demo".into(),
                Object::Part {
                    rendition: "source".into(),
                    msn: 123,
                    part: 4
                }
            ))
        );
        assert_eq!(
            parse_path("/live/demo/audio/init-77.mp4"),
            Some((
                "live/demo".into(),
                Object::Init {
                    rendition: "audio".into(),
                    id: 77
                }
            ))
        );
        for bad in [
            "/live/../etc/passwd",
            "/live/demo/../x/media.m3u8",
            "/live/demo/source/-1.m4s",
            "/live/demo/source/1.2.3.m4s",
            "/live/demo/source/99999999999999999999.m4s",
            "/live/demo",
            "/live/demo/source/media.m3u8/x",
            "/live//index.m3u8",
            "/other/demo/index.m3u8",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_route_is_parsed_once_with_its_label() {
        let route = |path, query| Route::parse(path, query, true);
        let blocking = route(
            "/t/abc/live/demo/720p/media.m3u8",
            Some("_HLS_msn=5&_HLS_part=1"),
        );
        assert_eq!(
            blocking,
            Route::Object {
                token: Some("abc"),
                stream: "live/demo".into(),
                object: Object::MediaPlaylist {
                    rendition: "720p".into()
                },
                blocking: true,
            }
        );
        assert_eq!(blocking.label(), "blocking_playlist");
        // A query that only mentions the directive in a value does not block.
        assert_eq!(
            route("/live/demo/720p/media.m3u8", Some("x=_HLS_msn")).label(),
            "media_playlist"
        );
        assert_eq!(route("/live/demo/720p/3.1.m4s", None).label(), "part");
        assert_eq!(
            route("/t/abc/live/demo/", None),
            Route::PlayerPage(PageRequest::Page)
        );
        assert_eq!(Route::parse("/live/demo/", None, false), Route::Unknown);
        assert_eq!(
            route("/player/hls.min.js", None),
            Route::PlayerAsset("hls.min.js")
        );
        assert_eq!(route("/healthz", None), Route::Health("/healthz"));
        assert_eq!(route("/metrics", None).label(), "metrics");
        assert_eq!(route("/api/streams", None), Route::Api("/api/streams"));
        assert_eq!(route(AUTH_CHECK_PATH, None).label(), "auth_check");
        // Operations have no token form.
        for other in [
            "/t/abc/healthz",
            "/t/abc/player/hls.min.js",
            "/t/abc/api/streams",
            "/x",
        ] {
            assert_eq!(route(other, None), Route::Unknown, "{other}");
            assert_eq!(route(other, None).label(), "other");
        }
    }
}
