//! Packager configuration.

use std::time::Duration;

/// How streams are cut and how long they are kept. All durations are media time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagerConfig {
    /// Segment target: a segment is cut at the first keyframe at or after this duration (default 2 s).
    pub segment_target: Duration,
    /// Part target: parts (CMAF chunks) are closed at about this duration (default 500 ms; 200 ms works).
    pub part_target: Duration,
    /// Complete segments kept in each media playlist (default 12, at least 6).
    pub window_segments: usize,
    /// Upper bound for the target duration (and so for any segment) while the keyframe interval is still
    /// being learned (default 10 s); a longer GOP is cut without a keyframe (counted, logged).
    pub max_target_duration: Duration,
    /// Parts stay listed in the media playlist for this many target durations from the live edge
    /// (default 3, RFC 8216bis §4.4.4.9 recommends at least 3); older parts stay downloadable.
    pub part_listing_target_durations: u32,
    /// DVR: how far back media playlists and the MPD list segments (`None`: the live window only).
    /// Segments older than the live window are listed from the rendition's archive
    /// ([`crate::rendition::ArchivedSegment`]) and served by the caller from its own store.
    pub dvr_window: Option<Duration>,
}

impl Default for PackagerConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(2),
            part_target: Duration::from_millis(500),
            window_segments: 12,
            max_target_duration: Duration::from_secs(10),
            part_listing_target_durations: 3,
            dvr_window: None,
        }
    }
}

/// Timestamp jitter absorbed at part boundaries (RTMP timestamps are whole milliseconds): 2 ms.
pub const JITTER_TOLERANCE: Duration = Duration::from_millis(2);

impl PackagerConfig {
    /// The Part Target Duration advertised in EXT-X-PART-INF (RFC 8216bis §4.4.3.7): the configured part
    /// target plus [`JITTER_TOLERANCE`], the longest a part can last, so that every EXT-X-PART duration
    /// is at most the advertised value.
    pub fn advertised_part_target(&self) -> Duration {
        self.part_target + JITTER_TOLERANCE
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid packager setting {key}: {reason}")]
pub struct ConfigError {
    /// The setting's name.
    pub key: &'static str,
    /// Why it is rejected.
    pub reason: &'static str,
}

impl PackagerConfig {
    /// Checks the values against each other. Errors name the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.segment_target < Duration::from_secs(1)
            || self.segment_target > Duration::from_secs(10)
        {
            return Err(ConfigError {
                key: "segment_target",
                reason: "must be between 1s and 10s",
            });
        }
        if self.part_target < Duration::from_millis(100)
            || self.part_target * 2 > self.segment_target
        {
            return Err(ConfigError {
                key: "part_target",
                reason: "must be at least 100ms and at most half the segment target",
            });
        }
        if self.window_segments < 6 || self.window_segments > 1000 {
            return Err(ConfigError {
                key: "window_segments",
                reason: "must be between 6 and 1000",
            });
        }
        if self.max_target_duration < self.segment_target
            || self.max_target_duration > Duration::from_secs(30)
        {
            return Err(ConfigError {
                key: "max_target_duration",
                reason: "must be between the segment target and 30s",
            });
        }
        if self.part_listing_target_durations < 1 {
            return Err(ConfigError {
                key: "part_listing_target_durations",
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}
