//! Closed captions announced on a transcoded ladder: the multivariant playlist (parsed with `m3u8-rs`)
//! and the MPD (`dash-mpd-core`) name the CEA-608 service the source carries, once it is seen.

use crate::common::*;
use media::captions::CaptionServices;
use packager::{
    dash::{self, DashConfig},
    hls,
};

#[test]
fn caption_services_seen_are_announced_in_the_multivariant_playlist_and_the_mpd() {
    let mut p = ladder_packager(10);
    feed_ladder(
        &mut p,
        8 * 30,
        0,
        |_| false,
        |p, i, ms, now| push_ladder_video(p, ms, i % 60 == 0, now),
    );
    let multivariant = |p: &packager::StreamPackager| {
        let text = hls::render_multivariant(p).expect("ready");
        match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => (m, text),
            _ => panic!("multivariant playlist: {text}"),
        }
    };
    let accessibility = |p: &packager::StreamPackager| {
        let text = dash::render_mpd(p, &DashConfig::default(), 1_700_000_100_000).unwrap();
        let mpd = dash_mpd_core::parse(&text).unwrap();
        let video = &mpd.periods[0].adaptations[0];
        assert_eq!(video.contentType.as_deref(), Some("video"));
        video
            .Accessibility
            .iter()
            .map(|a| (a.schemeIdUri.clone(), a.value.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    // No captions seen: nothing announced.
    let (m, text) = multivariant(&p);
    assert!(
        m.alternatives
            .iter()
            .all(|a| a.media_type != m3u8_rs::AlternativeMediaType::ClosedCaptions),
        "{text}"
    );
    assert!(
        m.variants.iter().all(|v| v.closed_captions.is_none()),
        "{text}"
    );
    assert!(accessibility(&p).is_empty());

    p.add_caption_services(CaptionServices {
        cea608_field1: true,
        ..Default::default()
    });
    let (m, text) = multivariant(&p);
    let cc: Vec<_> = m
        .alternatives
        .iter()
        .filter(|a| a.media_type == m3u8_rs::AlternativeMediaType::ClosedCaptions)
        .collect();
    assert_eq!(cc.len(), 1, "{text}");
    assert_eq!(cc[0].instream_id, Some(m3u8_rs::InstreamId::CC(1)));
    assert!(cc[0].uri.is_none(), "closed captions have no URI: {text}");
    assert_eq!(m.variants.len(), 2);
    for v in &m.variants {
        assert_eq!(
            v.closed_captions,
            Some(m3u8_rs::ClosedCaptionGroupId::GroupId(
                cc[0].group_id.clone()
            )),
            "{text}"
        );
    }
    assert_eq!(
        accessibility(&p),
        vec![(
            "urn:scte:dash:cc:cea-608:2015".to_owned(),
            "CC1=und".to_owned()
        )]
    );

    // CEA-708 seen too: listed before CC1 (hls.js names its captions track after the last entry).
    p.add_caption_services(CaptionServices {
        cea708: true,
        ..Default::default()
    });
    let (m, text) = multivariant(&p);
    let ids: Vec<_> = m
        .alternatives
        .iter()
        .filter_map(|a| a.instream_id.clone())
        .collect();
    assert_eq!(
        ids,
        vec![m3u8_rs::InstreamId::Service(1), m3u8_rs::InstreamId::CC(1)],
        "{text}"
    );
    assert_eq!(accessibility(&p).len(), 2);
}
