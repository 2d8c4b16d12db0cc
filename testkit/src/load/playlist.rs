//! The LL-HLS playlists as a player reads them (RFC 8216bis §4.4): a multivariant playlist's variant
//! streams and audio rendition, a media playlist's segments with their parts, `EXT-X-MAP`, `EXT-X-KEY`,
//! discontinuities, the preload hint and `EXT-X-SKIP`; URIs resolved against the playlist's path
//! (RFC 3986 §5.2, paths only: every request goes to one origin).

/// Resolve `reference` against `base` (both request targets: a path with an optional query). An
/// absolute URL keeps only its path and query.
pub fn resolve(base: &str, reference: &str) -> String {
    let reference = match reference.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => reference,
    };
    if reference.starts_with('/') {
        return reference.to_owned();
    }
    let base_path = base.split('?').next().unwrap_or("");
    let dir = base_path.rsplit_once('/').map_or("", |(d, _)| d);
    let (ref_path, query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let mut segments: Vec<&str> = dir.split('/').skip(1).collect();
    let parts: Vec<&str> = ref_path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *part {
            "." if last => segments.push(""),
            "." => {}
            ".." => {
                segments.pop();
                if last {
                    segments.push("");
                }
            }
            p => segments.push(p),
        }
    }
    let mut out = String::with_capacity(base.len() + reference.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The value of `name` in an attribute list (RFC 8216bis §4.2), quoted or not.
pub fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                let after_quote = &quoted[end + 1..];
                (
                    &quoted[..end],
                    after_quote.strip_prefix(',').unwrap_or(after_quote),
                )
            }
            None => match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            },
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = next;
    }
    None
}

/// A multivariant playlist's variant streams and audio rendition, as request paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multivariant {
    /// The media playlists of the `EXT-X-STREAM-INF` variant streams, in order.
    pub variants: Vec<String>,
    /// The `EXT-X-MEDIA:TYPE=AUDIO` rendition's media playlist.
    pub audio: Option<String>,
}

impl Multivariant {
    /// Read `text`, fetched from `base`.
    pub fn parse(text: &str, base: &str) -> Self {
        let mut out = Multivariant::default();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("#EXT-X-STREAM-INF:") {
                if let Some(uri) = lines[i + 1..]
                    .iter()
                    .find(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    out.variants.push(resolve(base, uri));
                }
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-MEDIA:")
                && attribute(attrs, "TYPE") == Some("AUDIO")
                && let Some(uri) = attribute(attrs, "URI")
            {
                out.audio = Some(resolve(base, uri));
            }
        }
        out
    }
}

/// A segment of a media playlist: complete (with its URI) or the open one (its parts only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its media sequence number: `EXT-X-MEDIA-SEQUENCE` + skipped segments + its position.
    pub msn: u64,
    /// Its URI; `None` for the open segment.
    pub uri: Option<String>,
    /// Its parts' URIs, in order.
    pub parts: Vec<String>,
    /// The `EXT-X-MAP` URI in force.
    pub map: Option<String>,
    /// The `EXT-X-KEY` URI in force (`METHOD` other than `NONE`).
    pub key: Option<String>,
    /// An `EXT-X-DISCONTINUITY` precedes it.
    pub discontinuity: bool,
}

/// A media playlist as a low-latency player reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS` (a delta update).
    pub skipped: u64,
    /// Complete segments, then the open one when it has parts.
    pub segments: Vec<Segment>,
    /// The `EXT-X-PRELOAD-HINT:TYPE=PART` URI.
    pub preload_hint: Option<String>,
    /// `EXT-X-ENDLIST` is present.
    pub endlist: bool,
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration_s: f64,
}

impl MediaPlaylist {
    /// Read `text`, fetched from `base`. Errors name the line that is not a number where one must be.
    pub fn parse(text: &str, base: &str) -> Result<Self, String> {
        let mut pl = MediaPlaylist {
            target_duration_s: 4.0,
            ..Default::default()
        };
        let number = |line: &str| -> Result<u64, String> {
            line.split_once(':')
                .and_then(|(_, v)| v.trim().parse().ok())
                .ok_or_else(|| format!("not a number: {line:?}"))
        };
        let (mut map, mut key) = (None, None);
        let mut parts = Vec::new();
        let mut discontinuity = false;
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line.starts_with("#EXT-X-MEDIA-SEQUENCE:") {
                pl.media_sequence = number(line)?;
            } else if line.starts_with("#EXT-X-DISCONTINUITY-SEQUENCE:") {
                pl.discontinuity_sequence = number(line)?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                pl.target_duration_s = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("not a number: {line:?}"))?;
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-SKIP:") {
                pl.skipped = attribute(attrs, "SKIPPED-SEGMENTS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
                map = attribute(attrs, "URI").map(|u| resolve(base, u));
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-KEY:") {
                key = match attribute(attrs, "METHOD") {
                    Some("NONE") | None => None,
                    Some(_) => attribute(attrs, "URI").map(|u| resolve(base, u)),
                };
            } else if line == "#EXT-X-DISCONTINUITY" {
                discontinuity = true;
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
                if let Some(uri) = attribute(attrs, "URI") {
                    parts.push(resolve(base, uri));
                }
            } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
                if attribute(attrs, "TYPE") == Some("PART") {
                    pl.preload_hint = attribute(attrs, "URI").map(|u| resolve(base, u));
                }
            } else if line.starts_with("#EXT-X-ENDLIST") {
                pl.endlist = true;
            } else if line.starts_with("#EXTINF:") {
                // Tags between EXTINF and its URI (none from Estuary) are skipped.
                let uri = lines
                    .by_ref()
                    .find(|l| !l.is_empty() && !l.starts_with('#'));
                let msn = pl.media_sequence + pl.skipped + pl.segments.len() as u64;
                pl.segments.push(Segment {
                    msn,
                    uri: uri.map(|u| resolve(base, u)),
                    parts: std::mem::take(&mut parts),
                    map: map.clone(),
                    key: key.clone(),
                    discontinuity: std::mem::take(&mut discontinuity),
                });
            }
        }
        if !parts.is_empty() {
            let msn = pl.media_sequence + pl.skipped + pl.segments.len() as u64;
            pl.segments.push(Segment {
                msn,
                uri: None,
                parts,
                map,
                key,
                discontinuity,
            });
        }
        Ok(pl)
    }

    /// Whether the playlist has part `part` of segment `msn` (or anything after it).
    pub fn contains(&self, msn: u64, part: usize) -> bool {
        self.segments
            .iter()
            .any(|s| s.msn > msn || (s.msn == msn && (s.uri.is_some() || s.parts.len() > part)))
    }

    /// The part after the last one listed: what a blocking reload asks for next (`_HLS_msn`,
    /// `_HLS_part`).
    pub fn next_part(&self) -> (u64, usize) {
        match self.segments.last() {
            Some(last) if last.uri.is_none() => (last.msn, last.parts.len()),
            Some(last) => (last.msn + 1, 0),
            None => (self.media_sequence, 0),
        }
    }
}

/// The media sequence number and part index in an object name `{msn}.m4s` or `{msn}.{part}.m4s`
/// (Estuary's names; [`None`] for others).
pub fn object_numbers(uri: &str) -> Option<(u64, Option<usize>)> {
    let name = uri.split('?').next()?.rsplit('/').next()?;
    let stem = name.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((msn, part)) => Some((msn.parse().ok()?, Some(part.parse().ok()?))),
        None => Some((stem.parse().ok()?, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_against_the_playlist() {
        let base = "/t/tok/live/x/index.m3u8?a=b";
        assert_eq!(
            resolve(base, "720p/media.m3u8"),
            "/t/tok/live/x/720p/media.m3u8"
        );
        assert_eq!(resolve(base, "../y/index.m3u8"), "/t/tok/live/y/index.m3u8");
        assert_eq!(resolve(base, "/abs/p?q=1"), "/abs/p?q=1");
        assert_eq!(resolve(base, "http://cdn:80/o/p.m4s"), "/o/p.m4s");
        assert_eq!(
            resolve("/live/x/720p/media.m3u8", "./3.1.m4s"),
            "/live/x/720p/3.1.m4s"
        );
        assert_eq!(
            resolve("/live/x/720p/media.m3u8", "../keys/2.key"),
            "/live/x/keys/2.key"
        );
    }

    #[test]
    fn attributes_are_read_quoted_or_bare() {
        let list = "TYPE=PART,URI=\"a,b.m4s\",BYTERANGE-START=5";
        assert_eq!(attribute(list, "TYPE"), Some("PART"));
        assert_eq!(attribute(list, "URI"), Some("a,b.m4s"));
        assert_eq!(attribute(list, "BYTERANGE-START"), Some("5"));
        assert_eq!(attribute(list, "X"), None);
    }

    #[test]
    fn a_low_latency_playlist_is_read_with_its_open_segment() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n\
            #EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI=\"init-3.mp4\"\n\
            #EXT-X-KEY:METHOD=AES-128,URI=\"../keys/4.key\",IV=0x00\n\
            #EXT-X-PART:DURATION=0.5,URI=\"10.0.m4s\",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.5,URI=\"10.1.m4s\"\n\
            #EXTINF:1.0,\n10.m4s\n#EXT-X-DISCONTINUITY\n#EXTINF:2.0,\n11.m4s\n\
            #EXT-X-PART:DURATION=0.5,URI=\"12.0.m4s\"\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"12.1.m4s\"\n";
        let pl = MediaPlaylist::parse(text, "/live/x/720p/media.m3u8?_HLS_msn=12").unwrap();
        assert_eq!(pl.media_sequence, 10);
        assert_eq!(pl.discontinuity_sequence, 1);
        assert_eq!(pl.target_duration_s, 2.0);
        assert_eq!(pl.segments.len(), 3);
        assert_eq!(pl.segments[0].uri.as_deref(), Some("/live/x/720p/10.m4s"));
        assert_eq!(pl.segments[0].parts.len(), 2);
        assert_eq!(
            pl.segments[0].map.as_deref(),
            Some("/live/x/720p/init-3.mp4")
        );
        assert_eq!(pl.segments[0].key.as_deref(), Some("/live/x/keys/4.key"));
        assert!(pl.segments[1].discontinuity);
        assert_eq!(pl.segments[2].uri, None);
        assert_eq!(pl.segments[2].msn, 12);
        assert_eq!(pl.preload_hint.as_deref(), Some("/live/x/720p/12.1.m4s"));
        assert_eq!(pl.next_part(), (12, 1));
        assert!(pl.contains(12, 0));
        assert!(!pl.contains(12, 1));
        assert!(pl.contains(11, 7));
        assert!(MediaPlaylist::parse("#EXT-X-MEDIA-SEQUENCE:x\n", "/").is_err());
    }

    #[test]
    fn a_delta_update_counts_the_skipped_segments() {
        let text =
            "#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n#EXTINF:2.0,\n105.m4s\n";
        let pl = MediaPlaylist::parse(text, "/a/media.m3u8").unwrap();
        assert_eq!(pl.segments[0].msn, 105);
        assert_eq!(pl.next_part(), (106, 0));
    }

    #[test]
    fn a_multivariant_playlist_gives_variants_and_audio() {
        let text = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"audio\",URI=\"audio/media.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO=\"a\"\n720p/media.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2,AUDIO=\"a\"\n\n480p/media.m3u8\n";
        let mv = Multivariant::parse(text, "/t/k/live/x/index.m3u8");
        assert_eq!(
            mv.variants,
            ["/t/k/live/x/720p/media.m3u8", "/t/k/live/x/480p/media.m3u8"]
        );
        assert_eq!(mv.audio.as_deref(), Some("/t/k/live/x/audio/media.m3u8"));
    }

    #[test]
    fn object_names_give_their_numbers() {
        assert_eq!(object_numbers("/a/12.m4s"), Some((12, None)));
        assert_eq!(object_numbers("/a/12.3.m4s"), Some((12, Some(3))));
        assert_eq!(object_numbers("/a/init-1.mp4"), None);
        assert_eq!(object_numbers("/a/x.m4s"), None);
    }
}
