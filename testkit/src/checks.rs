//! Independent readings of what the origin serves: media playlists with m3u8-rs (RFC 8216bis §4.4) and
//! CMAF fragments with mp4-atom (ISO/IEC 14496-12 §8.8).

/// Media playlist facts from the text (LL-HLS tags that m3u8-rs keeps as unknown tags are read here).
#[derive(Debug, Default)]
pub struct MediaFacts {
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: u64,
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// (msn, duration, uri) of complete segments.
    pub segments: Vec<(u64, f64, String)>,
    /// (msn, part uri, duration, independent) of listed parts.
    pub parts: Vec<(u64, String, f64, bool)>,
    /// The `EXT-X-PRELOAD-HINT` URI.
    pub preload_hint: Option<String>,
    /// The last `EXT-X-MAP` URI.
    pub map_uri: String,
    /// `EXT-X-ENDLIST` is present.
    pub has_endlist: bool,
}

/// Parse with m3u8-rs (an independent parser) and collect LL-HLS facts.
pub fn parse_media(text: &str) -> MediaFacts {
    let parsed =
        m3u8_rs::parse_playlist_res(text.as_bytes()).expect("media playlist parses with m3u8-rs");
    let m3u8_rs::Playlist::MediaPlaylist(pl) = parsed else {
        panic!("expected a media playlist")
    };
    let mut facts = MediaFacts {
        target_duration: pl.target_duration,
        media_sequence: pl.media_sequence,
        has_endlist: pl.end_list,
        ..Default::default()
    };
    for (i, s) in pl.segments.iter().enumerate() {
        facts.segments.push((
            pl.media_sequence + i as u64,
            f64::from(s.duration),
            s.uri.clone(),
        ));
        if let Some(m) = &s.map {
            facts.map_uri = m.uri.clone();
        }
    }
    // Parts: count which segment they belong to by walking the text.
    let mut msn = pl.media_sequence;
    for line in text.lines() {
        if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
            let uri = attr(attrs, "URI").expect("part URI");
            let dur: f64 = attr(attrs, "DURATION")
                .expect("part DURATION")
                .parse()
                .unwrap();
            facts
                .parts
                .push((msn, uri, dur, attrs.contains("INDEPENDENT=YES")));
        } else if line.starts_with("#EXTINF:") {
            msn += 1;
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            facts.preload_hint = attr(attrs, "URI");
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-MAP:") {
            facts.map_uri = attr(attrs, "URI").unwrap();
        }
    }
    facts
}

/// A quoted or bare attribute's value in an attribute list.
pub fn attr(attrs: &str, key: &str) -> Option<String> {
    for kv in attrs.split(',') {
        if let Some(v) = kv.strip_prefix(&format!("{key}=")) {
            return Some(v.trim_matches('"').to_owned());
        }
    }
    None
}

/// Parse a moof+mdat chunk sequence with mp4-atom: returns (tfdt, sum of sample durations, first
/// sample's sync flag) of each moof in `bytes`.
pub fn chunks(bytes: &[u8]) -> Vec<(u64, u64, bool)> {
    use mp4_atom::{Any, DecodeMaybe};
    let mut out = Vec::new();
    let mut buf = bytes;
    while !buf.is_empty() {
        let atom = Any::decode_maybe(&mut buf)
            .expect("box parses")
            .expect("complete box");
        if let Any::Moof(moof) = atom {
            let traf = &moof.traf[0];
            let tfdt = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time;
            let mut sum = 0u64;
            let mut first_sync = None;
            for trun in &traf.trun {
                for e in trun.samples.iter() {
                    sum += u64::from(
                        e.duration
                            .or(traf.tfhd.default_sample_duration)
                            .unwrap_or(0),
                    );
                    if first_sync.is_none() {
                        let flags = e.flags.or(traf.tfhd.default_sample_flags).unwrap_or(0);
                        first_sync = Some(flags & 0x0001_0000 == 0);
                    }
                }
            }
            out.push((tfdt, sum, first_sync.unwrap_or(false)));
        }
    }
    out
}

/// Earliest presentation time of a CMAF segment from its bytes: over every sample of every chunk,
/// `tfdt` + preceding durations + composition offset, the minimum (ISO/IEC 14496-12 §8.8.12, §8.8.8).
pub fn earliest_presentation_time(bytes: &[u8]) -> i64 {
    use mp4_atom::{Any, DecodeMaybe};
    let mut best = i64::MAX;
    let mut buf = bytes;
    while !buf.is_empty() {
        let atom = Any::decode_maybe(&mut buf)
            .expect("box parses")
            .expect("complete box");
        if let Any::Moof(moof) = atom {
            let traf = &moof.traf[0];
            let mut dts = traf.tfdt.as_ref().expect("tfdt").base_media_decode_time as i64;
            for e in traf.trun.iter().flat_map(|t| t.samples.iter()) {
                best = best.min(dts + e.cts.unwrap_or(0));
                dts += i64::from(e.duration.unwrap_or(0));
            }
        }
    }
    best
}

/// What a part's moof says about its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartTiming {
    /// DTS of the last sample, 90 kHz ticks.
    pub last_dts_90khz: i64,
    /// Sum of the sample durations, 90 kHz ticks.
    pub duration_90khz: u64,
    /// The last sample's composition offset (trun), 90 kHz ticks, when the trun carries them.
    pub last_cts_90khz: Option<i64>,
}

/// Read a CMAF chunk's moof: `tfdt` and the trun sample durations (tfhd default when absent).
pub fn part_timing(chunk: &[u8]) -> Option<PartTiming> {
    let mut buf = chunk;
    use mp4_atom::{Any, Decode};
    let Any::Moof(moof) = Any::decode(&mut buf).ok()? else {
        return None;
    };
    let traf = moof.traf.first()?;
    let base = i64::try_from(traf.tfdt.as_ref()?.base_media_decode_time).ok()?;
    let default = traf.tfhd.default_sample_duration.unwrap_or(0);
    let durations: Vec<u64> = traf
        .trun
        .iter()
        .flat_map(|t| t.samples.iter())
        .map(|e| u64::from(e.duration.unwrap_or(default)))
        .collect();
    let (_, before_last) = durations.split_last()?;
    let last_cts_90khz = traf
        .trun
        .iter()
        .flat_map(|t| t.samples.iter())
        .last()
        .and_then(|e| e.cts);
    Some(PartTiming {
        last_dts_90khz: base + i64::try_from(before_last.iter().sum::<u64>()).ok()?,
        duration_90khz: durations.iter().sum(),
        last_cts_90khz,
    })
}
