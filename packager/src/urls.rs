//! The URL grammar of a stream's objects: one type that the HLS and DASH renderers write and the
//! origin's router parses, so what is written is what is served.
//!
//! Under `/live/{name}/` (DESIGN: every URI in a playlist or MPD is relative, so a path token
//! `/t/{token}` or a CDN prefix in front carries through):
//!
//! | path | object |
//! | --- | --- |
//! | `index.m3u8` | multivariant playlist (RFC 8216bis §4.4.6) |
//! | `manifest.mpd` | DASH MPD (ISO/IEC 23009-1 §5.3) |
//! | `time` | the MPD's `UTCTiming` source (`urn:mpeg:dash:utc:http-xsdate:2014`) |
//! | `license` | the W3C ClearKey license endpoint (POST) |
//! | `keys/{id}.key` | HLS AES-128 content key (RFC 8216bis §4.4.4.4) |
//! | `{rendition}/media.m3u8` | media playlist |
//! | `{rendition}/init-{id}.mp4` | init segment (ISO/IEC 23000-19 §7.3.2.1) |
//! | `{rendition}/{msn}.m4s` | segment, by media sequence number |
//! | `{rendition}/{msn}.{part}.m4s` | part `part` (0-based) of segment `msn` (RFC 8216bis §4.4.4.9) |
//! | `{rendition}/cenc/init-{id}-{key id}.mp4` | DASH CENC init segment under a key (ISO/IEC 23001-7) |
//! | `{rendition}/cenc/{msn}-{key id}.m4s` | DASH CENC segment under a key |
//!
//! Names (`{name}`, `{rendition}`) follow [`media::name::is_valid_name`]; numbers are decimal, at
//! most 19 digits (a `u64` without overflow), with no sign.

use std::fmt;

use media::name::is_valid_name;

pub use media::name::LIVE_PREFIX;

/// One object of a stream, as a path relative to `/live/{name}/`. `R` holds a rendition name: a
/// `String` when parsed, a `&str` when a renderer writes a URI (no allocation).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StreamObject<R = String> {
    /// `index.m3u8`.
    Multivariant,
    /// `manifest.mpd`.
    Mpd,
    /// `time`: the server's clock for DASH players.
    Time,
    /// `license`: the ClearKey license endpoint.
    License,
    /// `whep`: the WHEP endpoint (draft-ietf-wish-whep): `POST` an SDP offer for a WebRTC session.
    Whep,
    /// `whep/{id}`: one WHEP session (`DELETE` ends it).
    WhepSession {
        /// Session id.
        id: u64,
    },
    /// `whip`: the WHIP endpoint (RFC 9725): `POST` an SDP offer to publish the stream over WebRTC.
    Whip,
    /// `whip/{id}`: one WHIP session (`DELETE` ends the publish).
    WhipSession {
        /// Session id.
        id: u64,
    },
    /// `keys/{id}.key`.
    Key {
        /// Content key id.
        id: u64,
    },
    /// `{rendition}/media.m3u8`.
    MediaPlaylist {
        /// Rendition name.
        rendition: R,
    },
    /// `{rendition}/init-{id}.mp4`.
    Init {
        /// Rendition name.
        rendition: R,
        /// Init segment id (changes with the track's configuration).
        id: u64,
    },
    /// `{rendition}/{msn}.m4s`.
    Segment {
        /// Rendition name.
        rendition: R,
        /// Media sequence number.
        msn: u64,
    },
    /// `{rendition}/{msn}.{part}.m4s`.
    Part {
        /// Rendition name.
        rendition: R,
        /// Media sequence number of the segment the part belongs to.
        msn: u64,
        /// Part index within the segment, from 0.
        part: usize,
    },
    /// `{rendition}/cenc/init-{init_id}-{key_id}.mp4`: init segment `init_id` under CENC key `key_id`.
    CencInit {
        /// Rendition name.
        rendition: R,
        /// Init segment id.
        init_id: u64,
        /// CENC content key id.
        key_id: u64,
    },
    /// `{rendition}/cenc/{msn}-{key_id}.m4s`: segment `msn` under CENC key `key_id`.
    CencSegment {
        /// Rendition name.
        rendition: R,
        /// Media sequence number.
        msn: u64,
        /// CENC content key id.
        key_id: u64,
    },
}

/// A decimal `u64` as the grammar writes it: 1 to 19 ASCII digits.
fn parse_u64(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

impl StreamObject {
    /// Parse a path relative to `/live/{name}/` (`source/12.3.m4s`); `None` for anything the grammar
    /// does not produce (unknown file names, invalid rendition names, extra path segments, numbers
    /// with signs or over 19 digits).
    pub fn parse(path: &str) -> Option<Self> {
        let mut it = path.split('/');
        let a = it.next()?;
        let b = it.next();
        let c = it.next();
        if it.next().is_some() {
            return None;
        }
        match (b, c) {
            (None, _) => match a {
                "index.m3u8" => Some(Self::Multivariant),
                "manifest.mpd" => Some(Self::Mpd),
                crate::dash::UTC_TIMING_PATH => Some(Self::Time),
                crate::dash::LICENSE_PATH => Some(Self::License),
                "whep" => Some(Self::Whep),
                "whip" => Some(Self::Whip),
                _ => None,
            },
            (Some(id), None) if a == "whep" => Some(Self::WhepSession { id: parse_u64(id)? }),
            (Some(id), None) if a == "whip" => Some(Self::WhipSession { id: parse_u64(id)? }),
            (Some(file), None) if a == "keys" => Some(Self::Key {
                id: parse_u64(file.strip_suffix(".key")?)?,
            }),
            (Some(file), None) => {
                if !is_valid_name(a) {
                    return None;
                }
                let rendition = a.to_owned();
                if file == "media.m3u8" {
                    return Some(Self::MediaPlaylist { rendition });
                }
                if let Some(id) = file
                    .strip_prefix("init-")
                    .and_then(|f| f.strip_suffix(".mp4"))
                {
                    return Some(Self::Init {
                        rendition,
                        id: parse_u64(id)?,
                    });
                }
                let stem = file.strip_suffix(".m4s")?;
                Some(match stem.split_once('.') {
                    None => Self::Segment {
                        rendition,
                        msn: parse_u64(stem)?,
                    },
                    Some((msn, part)) => Self::Part {
                        rendition,
                        msn: parse_u64(msn)?,
                        part: usize::try_from(parse_u64(part)?).ok()?,
                    },
                })
            }
            (Some("cenc"), Some(file)) => {
                if !is_valid_name(a) {
                    return None;
                }
                let rendition = a.to_owned();
                if let Some(ids) = file
                    .strip_prefix("init-")
                    .and_then(|f| f.strip_suffix(".mp4"))
                {
                    let (init_id, key_id) = ids.split_once('-')?;
                    return Some(Self::CencInit {
                        rendition,
                        init_id: parse_u64(init_id)?,
                        key_id: parse_u64(key_id)?,
                    });
                }
                let (msn, key_id) = file.strip_suffix(".m4s")?.split_once('-')?;
                Some(Self::CencSegment {
                    rendition,
                    msn: parse_u64(msn)?,
                    key_id: parse_u64(key_id)?,
                })
            }
            (Some(_), Some(_)) => None,
        }
    }
}

impl<R: AsRef<str>> StreamObject<R> {
    /// The rendition the object belongs to, if any.
    pub fn rendition(&self) -> Option<&str> {
        match self {
            Self::Multivariant
            | Self::Mpd
            | Self::Time
            | Self::License
            | Self::Whep
            | Self::WhepSession { .. }
            | Self::Whip
            | Self::WhipSession { .. }
            | Self::Key { .. } => None,
            Self::MediaPlaylist { rendition }
            | Self::Init { rendition, .. }
            | Self::Segment { rendition, .. }
            | Self::Part { rendition, .. }
            | Self::CencInit { rendition, .. }
            | Self::CencSegment { rendition, .. } => Some(rendition.as_ref()),
        }
    }

    /// The object's path relative to its rendition's folder, as a media playlist of that rendition
    /// refers to it (`12.3.m4s`, `init-4.mp4`, `../keys/7.key`, `../audio/media.m3u8`), written
    /// straight into a playlist by `write!`.
    pub fn from_rendition(&self) -> FromRendition<'_, R> {
        FromRendition(self)
    }
}

/// [`StreamObject::from_rendition`]: the path relative to a rendition's folder.
pub struct FromRendition<'a, R>(&'a StreamObject<R>);

impl<R: AsRef<str>> fmt::Display for FromRendition<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            StreamObject::Init { id, .. } => write!(f, "init-{id}.mp4"),
            StreamObject::Segment { msn, .. } => write!(f, "{msn}.m4s"),
            StreamObject::Part { msn, part, .. } => write!(f, "{msn}.{part}.m4s"),
            StreamObject::CencInit {
                init_id, key_id, ..
            } => write!(f, "cenc/init-{init_id}-{key_id}.mp4"),
            StreamObject::CencSegment { msn, key_id, .. } => write!(f, "cenc/{msn}-{key_id}.m4s"),
            other => write!(f, "../{other}"),
        }
    }
}

/// The path relative to `/live/{name}/`, as the multivariant playlist and the MPD refer to it.
impl<R: AsRef<str>> fmt::Display for StreamObject<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(rendition) = self.rendition() {
            f.write_str(rendition)?;
        }
        match self {
            Self::Multivariant => f.write_str("index.m3u8"),
            Self::Mpd => f.write_str("manifest.mpd"),
            Self::Time => f.write_str(crate::dash::UTC_TIMING_PATH),
            Self::License => f.write_str(crate::dash::LICENSE_PATH),
            Self::Whep => f.write_str("whep"),
            Self::WhepSession { id } => write!(f, "whep/{id}"),
            Self::Whip => f.write_str("whip"),
            Self::WhipSession { id } => write!(f, "whip/{id}"),
            Self::Key { id } => write!(f, "keys/{id}.key"),
            Self::MediaPlaylist { .. } => f.write_str("/media.m3u8"),
            Self::Init { id, .. } => write!(f, "/init-{id}.mp4"),
            Self::Segment { msn, .. } => write!(f, "/{msn}.m4s"),
            Self::Part { msn, part, .. } => write!(f, "/{msn}.{part}.m4s"),
            Self::CencInit {
                init_id, key_id, ..
            } => write!(f, "/cenc/init-{init_id}-{key_id}.mp4"),
            Self::CencSegment { msn, key_id, .. } => write!(f, "/cenc/{msn}-{key_id}.m4s"),
        }
    }
}

/// The `SegmentTemplate@media` of a rendition (ISO/IEC 23009-1 §5.3.9.4.4): the path of
/// [`StreamObject::Segment`] (or, under CENC key `cenc_key_id`, [`StreamObject::CencSegment`]) with
/// `$Number$` for the media sequence number.
pub fn dash_media_template(rendition: &str, cenc_key_id: Option<u64>) -> String {
    match cenc_key_id {
        Some(key_id) => format!("{rendition}/cenc/$Number$-{key_id}.m4s"),
        None => format!("{rendition}/$Number$.m4s"),
    }
}

/// An object's absolute path on the origin: `/live/{name}/{object}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectPath {
    /// The stream, `live/{name}` with a valid `{name}`.
    pub stream: String,
    /// The object within it.
    pub object: StreamObject,
}

impl ObjectPath {
    /// Parse a request path (without query, without a `/t/{token}` prefix): `/live/{name}/…`.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix('/')?.strip_prefix(LIVE_PREFIX)?;
        let (name, object) = rest.split_once('/')?;
        let stream = media::name::StreamName::from_name(name).ok()?;
        Some(Self {
            stream: stream.into_string(),
            object: StreamObject::parse(object)?,
        })
    }
}

/// `/live/{name}/{object}`.
impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}/{}", self.stream, self.object)
    }
}

/// The path prefix of recordings: `/vod/live/{name}/{recording id}/…`.
pub const VOD_PREFIX: &str = "vod/";

/// A recording's id: when it began, as a UTC basic ISO 8601 date-time (`20261206T061500Z`), with
/// `-{n}` (n from 2 to 999) when several began in one second. Sorts in the order they began.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordingId(String);

impl RecordingId {
    /// The id of a recording begun at `unix_ms` (Unix ms), the `n`th to begin in that second (1: no
    /// suffix).
    pub fn at(unix_ms: i64, n: u32) -> Self {
        let date = crate::hls::format_program_date_time(unix_ms);
        // `2026-12-06T06:15:00.123Z` → `20261206T061500Z`.
        let basic: String = date[..19]
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        if n <= 1 {
            Self(format!("{basic}Z"))
        } else {
            Self(format!("{basic}Z-{}", n.min(999)))
        }
    }

    /// Parse an id as [`Self::at`] writes it; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (date, n) = match s.split_once('-') {
            Some((d, n)) => (d, Some(n)),
            None => (s, None),
        };
        let b = date.as_bytes();
        let date_ok = b.len() == 16
            && b[8] == b'T'
            && b[15] == b'Z'
            && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit);
        let n_ok = n.is_none_or(|n| {
            (1..=3).contains(&n.len())
                && n.bytes().all(|c| c.is_ascii_digit())
                && !n.starts_with('0')
                && n != "1"
        });
        (date_ok && n_ok).then(|| Self(s.to_owned()))
    }

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An object of a recording, relative to `/vod/live/{name}/{recording id}/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VodObject {
    /// The multivariant playlist, the MPD, a content key, a media playlist, an init segment or a
    /// segment, named as in the live stream ([`StreamObject`]; parts, CENC objects and the live
    /// endpoints are not served).
    Object(StreamObject),
    /// `{rendition}.mp4`: the rendition (with the recording's audio, for a video rendition) as one
    /// MP4 file.
    Download {
        /// Rendition name.
        rendition: String,
    },
}

/// A recording object's absolute path: `/vod/live/{name}/{recording id}/{object}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VodPath {
    /// The stream, `live/{name}`.
    pub stream: String,
    /// The recording.
    pub recording: RecordingId,
    /// The object within it.
    pub object: VodObject,
}

impl VodPath {
    /// Parse a request path (without query, without a `/t/{token}` prefix).
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path
            .strip_prefix('/')?
            .strip_prefix(VOD_PREFIX)?
            .strip_prefix(LIVE_PREFIX)?;
        let (name, rest) = rest.split_once('/')?;
        let stream = media::name::StreamName::from_name(name).ok()?;
        let (id, object) = rest.split_once('/')?;
        let recording = RecordingId::parse(id)?;
        let object = match object.strip_suffix(".mp4") {
            Some(r) if !r.contains('/') && is_valid_name(r) => VodObject::Download {
                rendition: r.to_owned(),
            },
            _ => match StreamObject::parse(object)? {
                o @ (StreamObject::Multivariant
                | StreamObject::Mpd
                | StreamObject::Key { .. }
                | StreamObject::MediaPlaylist { .. }
                | StreamObject::Init { .. }
                | StreamObject::Segment { .. }) => VodObject::Object(o),
                _ => return None,
            },
        };
        Some(Self {
            stream: stream.into_string(),
            recording,
            object,
        })
    }
}

/// `/vod/live/{name}/{id}/{object}`.
impl fmt::Display for VodPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{VOD_PREFIX}{}/{}/", self.stream, self.recording)?;
        match &self.object {
            VodObject::Object(o) => write!(f, "{o}"),
            VodObject::Download { rendition } => write!(f, "{rendition}.mp4"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,20}"
    }

    /// Numbers the grammar writes: up to 19 digits.
    fn number() -> impl Strategy<Value = u64> {
        0..10_000_000_000_000_000_000u64
    }

    fn object() -> impl Strategy<Value = StreamObject> {
        prop_oneof![
            Just(StreamObject::Multivariant),
            Just(StreamObject::Mpd),
            Just(StreamObject::Time),
            Just(StreamObject::License),
            Just(StreamObject::Whep),
            number().prop_map(|id| StreamObject::WhepSession { id }),
            Just(StreamObject::Whip),
            number().prop_map(|id| StreamObject::WhipSession { id }),
            number().prop_map(|id| StreamObject::Key { id }),
            name().prop_map(|rendition| StreamObject::MediaPlaylist { rendition }),
            (name(), number()).prop_map(|(rendition, id)| StreamObject::Init { rendition, id }),
            (name(), number())
                .prop_map(|(rendition, msn)| StreamObject::Segment { rendition, msn }),
            (name(), number(), 0usize..1000).prop_map(|(rendition, msn, part)| {
                StreamObject::Part {
                    rendition,
                    msn,
                    part,
                }
            }),
            (name(), number(), number()).prop_map(|(rendition, init_id, key_id)| {
                StreamObject::CencInit {
                    rendition,
                    init_id,
                    key_id,
                }
            }),
            (name(), number(), number()).prop_map(|(rendition, msn, key_id)| {
                StreamObject::CencSegment {
                    rendition,
                    msn,
                    key_id,
                }
            }),
        ]
        .prop_filter("a rendition named `keys` is the key folder", |o| {
            o.rendition() != Some("keys")
        })
    }

    proptest! {
        /// parse(render(x)) = x, for every object and stream name.
        #[test]
        fn parse_inverts_render(stream in name(), object in object()) {
            let path = ObjectPath { stream: format!("live/{stream}"), object };
            prop_assert_eq!(ObjectPath::parse(&path.to_string()), Some(path.clone()));
            prop_assert_eq!(StreamObject::parse(&path.object.to_string()), Some(path.object));
        }

        /// Arbitrary paths never panic, and whatever parses renders back to a path that parses the
        /// same.
        #[test]
        fn arbitrary_paths_parse_or_not_without_panic(path in "/live/[a-z0-9./-]{0,40}") {
            if let Some(parsed) = ObjectPath::parse(&path) {
                prop_assert_eq!(ObjectPath::parse(&parsed.to_string()), Some(parsed));
            }
        }
    }

    #[test]
    fn media_playlist_relative_uris_resolve_to_the_objects() {
        let part = StreamObject::Part {
            rendition: "480p",
            msn: 12,
            part: 3,
        };
        assert_eq!(part.to_string(), "480p/12.3.m4s");
        assert_eq!(part.from_rendition().to_string(), "12.3.m4s");
        assert_eq!(
            StreamObject::<&str>::Key { id: 7 }
                .from_rendition()
                .to_string(),
            "../keys/7.key"
        );
        let other = StreamObject::MediaPlaylist { rendition: "audio" };
        assert_eq!(other.from_rendition().to_string(), "../audio/media.m3u8");
        assert_eq!(
            dash_media_template("source", Some(9)).replace("$Number$", "12"),
            StreamObject::CencSegment {
                rendition: "source",
                msn: 12,
                key_id: 9
            }
            .to_string()
        );
    }

    #[test]
    fn what_the_grammar_does_not_write_is_refused() {
        for bad in [
            "/live/x",
            "/live/x/",
            "/live/.x/index.m3u8",
            "/live/x/index.m3u8/extra",
            "/live/x/source/+1.m4s",
            "/live/x/source/12345678901234567890.m4s",
            "/live/x/source/1.2.3.m4s",
            "/live/x/source/cenc/1.m4s",
            "/live/x/keys/a.key",
            "/live/x/whep/a",
            "/live/x/whep/1/2",
            "/live/x/source/media.m3u",
            "/other/x/index.m3u8",
        ] {
            assert_eq!(ObjectPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn recording_ids_and_vod_paths_round_trip() {
        let id = RecordingId::at(1_765_001_700_123, 1);
        assert_eq!(id.as_str(), "20251206T061500Z");
        assert_eq!(
            RecordingId::at(1_765_001_700_123, 2).as_str(),
            "20251206T061500Z-2"
        );
        for bad in [
            "20251206T061500",
            "20251206T061500Z-1",
            "20251206T061500Z-01",
            "2025120XT061500Z",
            "../x",
            "",
        ] {
            assert_eq!(RecordingId::parse(bad), None, "{bad}");
        }
        for path in [
            "/vod/live/x/20251206T061500Z/index.m3u8",
            "/vod/live/x/20251206T061500Z-3/manifest.mpd",
            "/vod/live/x/20251206T061500Z/720p/media.m3u8",
            "/vod/live/x/20251206T061500Z/720p/init-4.mp4",
            "/vod/live/x/20251206T061500Z/audio/17.m4s",
            "/vod/live/x/20251206T061500Z/keys/3.key",
            "/vod/live/x/20251206T061500Z/720p.mp4",
        ] {
            let p = VodPath::parse(path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(p.to_string(), path);
            assert_eq!(p.stream, "live/x");
        }
        for bad in [
            "/vod/live/x/20251206T061500Z/720p/17.2.m4s",
            "/vod/live/x/20251206T061500Z/time",
            "/vod/live/x/20251206T061500Z/license",
            "/vod/live/x/nope/index.m3u8",
            "/vod/live/../20251206T061500Z/index.m3u8",
            "/vod/live/x/20251206T061500Z/a/b.mp4",
        ] {
            assert_eq!(VodPath::parse(bad), None, "{bad}");
        }
    }
}
