//! The part publication latency histogram, observed by the hub as parts are published and exported by
//! [`crate::metrics`] (`estuary_part_publication_latency_seconds{stream,rendition}`).

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, histogram::Histogram},
};

/// Labels of a per-rendition series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenditionLabels {
    /// `live/{name}`.
    pub stream: String,
    /// The rendition (`source`, `480p`, `audio`, …).
    pub rendition: String,
}

/// Bucket bounds of the part publication latency, seconds.
pub const PART_LATENCY_BUCKETS_S: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn part_latency_histogram() -> Histogram {
    Histogram::new(PART_LATENCY_BUCKETS_S)
}

/// `estuary_part_publication_latency_seconds{stream,rendition}`: per part, from the reception of its
/// last frame (for a transcoded rendition: of that frame's source frame) to the part's publication —
/// packaging, and for a ladder decoding, scaling and encoding too. Owned by the hub, observed as parts
/// are published, series removed with their stream.
pub type PartLatencyFamily = Family<RenditionLabels, Histogram, fn() -> Histogram>;

/// An empty [`PartLatencyFamily`] with [`PART_LATENCY_BUCKETS_S`].
pub fn part_latency_family() -> PartLatencyFamily {
    Family::new_with_constructor(part_latency_histogram as fn() -> Histogram)
}
