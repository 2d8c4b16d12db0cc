//! Names as publishers, players and URLs spell them: a stream's `{name}` in `live/{name}`, and a
//! rendition's name.

/// Checks a stream name's `{name}` part (also a rendition name): 1 to 64 characters of `A-Z a-z 0-9 _ - .`, not starting with `.`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The name of the audio rendition, shared by every variant stream (`audio/media.m3u8`).
pub const AUDIO_RENDITION: &str = "audio";

/// The prefix of every stream name: streams are `live/{name}`.
pub const LIVE_PREFIX: &str = "live/";

/// A stream name, `live/{name}` with a valid `{name}` ([`is_valid_name`]): the one grammar every
/// ingest, URL, token scope and configuration key uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

/// A string that is not `live/{name}` with a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a stream name like live/demo")]
pub struct InvalidStreamName(pub String);

impl StreamName {
    /// `live/{name}` from its `{name}` part. Errors when the name is not valid.
    pub fn from_name(name: &str) -> Result<Self, InvalidStreamName> {
        if is_valid_name(name) {
            Ok(Self(format!("{LIVE_PREFIX}{name}")))
        } else {
            Err(InvalidStreamName(name.to_owned()))
        }
    }

    /// The full name, `live/{name}`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The `{name}` part.
    pub fn name(&self) -> &str {
        &self.0[LIVE_PREFIX.len()..]
    }

    /// The full name as an owned string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::str::FromStr for StreamName {
    type Err = InvalidStreamName;

    /// Parse a full stream name, `live/{name}`.
    fn from_str(full: &str) -> Result<Self, Self::Err> {
        match full.strip_prefix(LIVE_PREFIX) {
            Some(name) if is_valid_name(name) => Ok(Self(full.to_owned())),
            _ => Err(InvalidStreamName(full.to_owned())),
        }
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_parse_only_live_with_a_valid_name() {
        let s: StreamName = "live/demo_1.x".parse().unwrap();
        assert_eq!((s.as_str(), s.name()), ("live/demo_1.x", "demo_1.x"));
        assert_eq!(
            StreamName::from_name("demo").unwrap().to_string(),
            "live/demo"
        );
        for bad in [
            "live/", "live/.x", "demo", "vod/demo", "live/a/b", "live/a b", "",
        ] {
            assert!(bad.parse::<StreamName>().is_err(), "{bad}");
        }
        assert!(StreamName::from_name(&"x".repeat(65)).is_err());
    }
}
