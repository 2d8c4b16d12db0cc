//! Routing: the `/t/{token}` prefix, the object path grammar ([`ObjectPath`]) and metrics labels.

use packager::urls::{ObjectPath, StreamObject as Object};

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

/// The `route` label of a request's metrics.
pub(super) fn route_label(
    path: &str,
    object: Option<&Object>,
    query: Option<&str>,
) -> &'static str {
    match object {
        Some(Object::Multivariant) => "multivariant_playlist",
        Some(Object::MediaPlaylist { .. }) if query.is_some_and(|q| q.contains("_HLS_msn")) => {
            "blocking_playlist"
        }
        Some(Object::MediaPlaylist { .. }) => "media_playlist",
        Some(Object::Mpd) => "mpd",
        Some(Object::Time) => "time",
        Some(Object::Key { .. }) => "key",
        Some(Object::License) => "license",
        Some(Object::Init { .. }) => "init",
        Some(Object::Segment { .. }) => "segment",
        Some(Object::Part { .. }) => "part",
        Some(Object::CencInit { .. }) => "cenc_init",
        Some(Object::CencSegment { .. }) => "cenc_segment",
        None => match path {
            "/healthz" | "/readyz" => "health",
            "/metrics" => "metrics",
            AUTH_CHECK_PATH => "auth_check",
            p if p.starts_with("/api/") => "api",
            _ => "other",
        },
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
}
