//! Unit tests of the FLV tag parser and the per-publish state, on annotated tag bodies.

use super::*;
use proptest::prelude::*;

/// avcC of a 64x48 constrained-baseline stream from libx264 (`ffmpeg -f lavfi -i
/// testsrc2=size=64x48 -c:v libx264 -profile:v baseline -frames:v 1 -f flv`): version 1, profile 66,
/// compat 0xC0, level 10, lengthSizeMinusOne 3, one 23-byte SPS, one 5-byte PPS.
#[rustfmt::skip]
const AVCC: [u8; 39] = [
    0x01, 0x42, 0xc0, 0x0a, 0xff, 0xe1, 0x00, 0x17,
    0x67, 0x42, 0xc0, 0x0a, 0xd9, 0x04, 0x7b, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x03, 0x20, 0xf1, 0x22, 0x64, 0x80,
    0x01, 0x00, 0x05, 0x68, 0xcb, 0x83, 0xcb, 0x20,
];

/// hvcC of a 64x48 Main-profile stream from libx265 (mp4 `-tag:v hvc1`), trimmed to its VPS, SPS and
/// PPS arrays (the x265 SEI array dropped, numOfArrays set to 3); lengthSizeMinusOne 3.
#[rustfmt::skip]
const HVCC: [u8; 109] = [
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1e, 0xf0, 0x00, 0xfc,
    0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0xa0, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01,
    0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00,
    0x1e, 0x95, 0x98, 0x09, 0xa1, 0x00, 0x01, 0x00, 0x29, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x1e, 0xa0, 0x20, 0x83, 0x16, 0x59,
    0x59, 0xae, 0x4c, 0xaf, 0x01, 0x68, 0x08, 0x00, 0x00, 0x03, 0x00, 0x08, 0x00, 0x00, 0x03, 0x00,
    0xc8, 0x40, 0xa2, 0x00, 0x01, 0x00, 0x06, 0x44, 0x01, 0xc1, 0x73, 0xd0, 0x89,
];

/// AudioSpecificConfig: AAC-LC (object type 2), 48 kHz (index 3), stereo: 00010 0011 0010 000.
const ASC_48K_STEREO: [u8; 2] = [0x11, 0x90];

fn tag(header: &[u8], body: &[u8]) -> Bytes {
    Bytes::from([header, body].concat())
}

fn frames(events: &[IngestEvent]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| {
            if let IngestEvent::Frame(f) = e {
                Some(f)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn flv_avc_negative_composition_time_header() {
    let t = tag(
        &[
            0x27, // FrameType 2 (inter) | CodecID 7 (AVC)
            0x01, // AVCPacketType 1 (NALU)
            0xFF, 0xFF, 0xDF, // CompositionTime SI24 = -33 ms
        ],
        &[0, 0, 0, 2, 0x41, 0x9A], // one 2-byte non-IDR slice NAL
    );
    match parse_video_tag(&t).unwrap() {
        VideoTag::Supported {
            codec,
            is_keyframe,
            packet:
                VideoPacket::CodedFrames {
                    composition_time_ms,
                    ..
                },
        } => {
            assert_eq!(
                (codec, is_keyframe, composition_time_ms),
                (VideoCodec::Avc, false, -33)
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn flv_enhanced_hvc1_headers_parse() {
    let start = tag(
        &[
            0x90, // IsExHeader 1 | FrameType 1 (key) | PacketType 0 (SequenceStart)
            b'h', b'v', b'c', b'1', // FourCC
        ],
        &HVCC,
    );
    assert_eq!(
        parse_video_tag(&start).unwrap(),
        VideoTag::Supported {
            codec: VideoCodec::Hevc,
            is_keyframe: true,
            packet: VideoPacket::SequenceStart(Bytes::from_static(&HVCC)),
        }
    );
    let coded = tag(
        &[
            0xA1, // IsExHeader | FrameType 2 (inter) | PacketType 1 (CodedFrames)
            b'h', b'v', b'c', b'1', 0x00, 0x00, 0x50, // CompositionTime SI24 = 80 ms
        ],
        &[0, 0, 0, 3, 0x02, 0x01, 0xD0],
    );
    assert!(matches!(
        parse_video_tag(&coded).unwrap(),
        VideoTag::Supported {
            codec: VideoCodec::Hevc,
            is_keyframe: false,
            packet: VideoPacket::CodedFrames {
                composition_time_ms: 80,
                ..
            }
        }
    ));
    let coded_x = tag(&[0x93, b'h', b'v', b'c', b'1'], &[0, 0, 0, 1, 0x26]); // CodedFramesX, no cts
    assert!(matches!(
        parse_video_tag(&coded_x).unwrap(),
        VideoTag::Supported {
            is_keyframe: true,
            packet: VideoPacket::CodedFrames {
                composition_time_ms: 0,
                ..
            },
            ..
        }
    ));
    let metadata = tag(&[0x94, b'h', b'v', b'c', b'1'], &[0x02]);
    assert!(matches!(
        parse_video_tag(&metadata).unwrap(),
        VideoTag::Supported {
            packet: VideoPacket::Ignored(_),
            ..
        }
    ));
    let vp8 = tag(&[0x90, b'v', b'p', b'0', b'8'], &[]);
    assert_eq!(
        parse_video_tag(&vp8).unwrap(),
        VideoTag::Unsupported("fourcc vp08".into())
    );
    // av01 / vp09 coded frames have no composition time: the body follows the FourCC.
    let av1 = tag(&[0x91, b'a', b'v', b'0', b'1'], &[0x12, 0x00]);
    assert_eq!(
        parse_video_tag(&av1).unwrap(),
        VideoTag::Decodable {
            codec: DecodableCodec::Av1,
            is_keyframe: true,
            packet: VideoPacket::CodedFrames {
                composition_time_ms: 0,
                data: Bytes::from_static(&[0x12, 0x00]),
            },
        }
    );
    assert!(parse_video_tag(&tag(&[0x91, b'h', b'v'], &[])).is_err());
}

#[test]
fn flv_audio_headers_parse() {
    let cfg = tag(&[0xAF, 0x00], &ASC_48K_STEREO); // AAC, 44 kHz flag, 16-bit, stereo; AACPacketType 0
    assert_eq!(
        parse_audio_tag(&cfg).unwrap(),
        AudioTag::AacConfig(Bytes::from_static(&ASC_48K_STEREO))
    );
    assert!(matches!(
        parse_audio_tag(&tag(&[0xAF, 0x01], &[1, 2])).unwrap(),
        AudioTag::AacFrame(_)
    ));
    // SoundFormat 2 (MP3) | SoundRate 3 (44 kHz) | SoundSize 1 (16-bit) | SoundType 1 (stereo).
    assert_eq!(
        parse_audio_tag(&tag(&[0x2F], &[0xFF, 0xFB])).unwrap(),
        AudioTag::Frames {
            codec: DecodableCodec::Mp3,
            format: Some(AudioFormat {
                sample_rate_hz: 44_100,
                channels: 2
            }),
            data: Bytes::from_static(&[0xFF, 0xFB]),
        }
    );
    // SoundFormat 14 (MP3 8 kHz), 11 (Speex: 16 kHz mono), 7 (G.711 A-law: 8 kHz) whatever the flags.
    for (b0, codec, rate, channels) in [
        (0xE6, DecodableCodec::Mp3, 8_000, 1),
        (0xB6, DecodableCodec::Speex, 16_000, 1),
        (0x73, DecodableCodec::G711Alaw, 8_000, 2),
        (0x0A, DecodableCodec::Pcm(PcmFormat::S16Le), 22_050, 1),
        (0x34, DecodableCodec::Pcm(PcmFormat::U8), 11_025, 1),
        (0x1D, DecodableCodec::AdpcmSwf, 44_100, 2),
        (0x52, DecodableCodec::Nellymoser, 8_000, 1),
    ] {
        assert_eq!(
            parse_audio_tag(&tag(&[b0], &[1])).unwrap(),
            AudioTag::Frames {
                codec,
                format: Some(AudioFormat {
                    sample_rate_hz: rate,
                    channels
                }),
                data: Bytes::from_static(&[1]),
            },
            "{b0:#04x}"
        );
    }
    assert_eq!(
        parse_audio_tag(&tag(&[0xF2], &[1])).unwrap(),
        AudioTag::Unsupported("device-specific sound".into())
    );
    let ex = tag(&[0x91, b'm', b'p', b'4', b'a'], &[1, 2]); // SoundFormat 9 (ex) | CodedFrames
    assert!(matches!(
        parse_audio_tag(&ex).unwrap(),
        AudioTag::AacFrame(_)
    ));
    assert!(parse_audio_tag(&Bytes::from_static(&[0xAF])).is_err());
}

#[test]
fn flv_nal_length_rewrite_to_four_bytes() {
    let data = Bytes::from_static(&[0x00, 0x02, 0x65, 0x88, 0x00, 0x00, 0x00, 0x01, 0x06]);
    let (out, has_irap) = normalize_nal_units(data, 2, VideoCodec::Avc, 1 << 20).unwrap();
    // The empty NAL unit is dropped.
    assert_eq!(&out[..], &[0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06]);
    assert!(has_irap);
    let bad = Bytes::from_static(&[0x00, 0x09, 0x65]);
    assert_eq!(
        normalize_nal_units(bad, 2, VideoCodec::Avc, 1 << 20),
        Err(FlvError::BadNalLength { offset_bytes: 0 })
    );
}

#[test]
fn flv_unsupported_codecs_are_reported_once_and_early_frames_dropped() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    // SoundFormat 15 (device-specific) twice, screen video (codec id 3) twice.
    p.audio(0, &tag(&[0xF2], &[0x01, 0x02]), &mut out).unwrap();
    p.audio(23, &tag(&[0xF2], &[0x01, 0x02]), &mut out).unwrap();
    p.video(0, &tag(&[0x13], &[0x00]), &mut out).unwrap();
    p.video(40, &tag(&[0x23], &[0x00]), &mut out).unwrap();
    // Frames before their sequence headers.
    p.video(0, &tag(&[0x17, 1, 0, 0, 0], &[0, 0, 0, 1, 0x65]), &mut out)
        .unwrap();
    p.audio(0, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(&out[0], IngestEvent::Unusable(u)
        if u.kind == TrackKind::Audio && u.codec == "device-specific sound"));
    assert!(matches!(&out[1], IngestEvent::Unusable(u)
        if u.kind == TrackKind::Video && u.codec == "screen video"));
    assert_eq!(p.stats().unsupported_tags, 4);
    assert_eq!(p.stats().frames_before_config, 2);
}

#[test]
fn flv_multitrack_packets_are_skipped_without_disturbing_the_tracks() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    p.audio(0, &tag(&[0xAF, 0], &ASC_48K_STEREO), &mut out)
        .unwrap();
    // SoundFormat 9 | AudioPacketType 5 (Multitrack); IsExHeader | PacketType 6 (Multitrack).
    p.audio(
        0,
        &tag(&[0x95, 0x00], &[b'm', b'p', b'4', b'a', 1]),
        &mut out,
    )
    .unwrap();
    p.video(
        0,
        &tag(&[0x96, 0x00], &[b'a', b'v', b'c', b'1', 1]),
        &mut out,
    )
    .unwrap();
    p.audio(21, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
    assert!(
        matches!(&out[..], [IngestEvent::Track(_), IngestEvent::Frame(_)]),
        "{out:?}"
    );
    assert_eq!(p.stats().unsupported_tags, 2);
}

fn tracks(events: &[IngestEvent]) -> Vec<&TrackInfo> {
    events
        .iter()
        .filter_map(|e| match e {
            IngestEvent::Track(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn decodable(track: &TrackInfo) -> &DecodableConfig {
    match &track.config {
        CodecConfig::Decodable(d) => d,
        other => panic!("not decodable: {other:?}"),
    }
}

/// An MP3 frame as FFmpeg's libmp3lame sent it in FLV: header FF FB 94 44 (MPEG-1 Layer III,
/// 128 kbit/s, 48 kHz, joint stereo), 384 bytes in all.
fn mp3_frame() -> Vec<u8> {
    let mut f = vec![0xFF, 0xFB, 0x94, 0x44];
    f.resize(384, 0x55);
    f
}

#[test]
fn flv_legacy_mp3_configures_from_its_frame_header_and_counts_samples() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    // 0x2F: MP3, SoundRate 44 kHz (FLV has no 48 kHz flag), 16-bit, stereo. 1152 samples at 48 kHz
    // = 24 ms, so FFmpeg's RTMP timestamps are exact here: 0, 24, 48 …; one comes 1 ms late.
    for ts in [0, 24, 49, 72] {
        p.audio(ts, &tag(&[0x2F], &mp3_frame()), &mut out).unwrap();
    }
    let t = tracks(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].timescale, 48_000);
    let d = decodable(t[0]);
    assert_eq!(d.codec, DecodableCodec::Mp3);
    assert_eq!(
        d.audio,
        Some(AudioFormat {
            sample_rate_hz: 48_000,
            channels: 2
        })
    );
    let f = frames(&out);
    assert_eq!(
        f.iter().map(|f| f.dts).collect::<Vec<_>>(),
        [0, 1152, 2304, 3456]
    );
    assert_eq!(f[0].data.len(), 384);
}

#[test]
fn flv_enhanced_ac3_opus_and_flac_tracks() {
    // As FFmpeg 7+ sends them: AC-3 with an empty sequence start and a multichannel config, then
    // syncframes (0B 77 46 DF 1E 40 EB …: 48 kHz, 448 kbit/s, 3/2 + LFE).
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    p.audio(0, &tag(&[0x90, b'a', b'c', b'-', b'3'], &[]), &mut out)
        .unwrap();
    p.audio(
        0,
        &tag(
            &[0x94, b'a', b'c', b'-', b'3'],
            &[0x01, 0x06, 0x00, 0x00, 0x06, 0x0F],
        ),
        &mut out,
    )
    .unwrap();
    let mut syncframe = vec![0x0B, 0x77, 0x46, 0xDF, 0x1E, 0x40, 0xEB, 0xF8];
    syncframe.resize(1792, 0);
    for ts in [0, 32, 64] {
        p.audio(
            ts,
            &tag(&[0x91, b'a', b'c', b'-', b'3'], &syncframe),
            &mut out,
        )
        .unwrap();
    }
    let t = tracks(&out);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (
            decodable(t[0]).codec,
            decodable(t[0]).audio.map(|a| a.channels)
        ),
        (DecodableCodec::Ac3, Some(6))
    );
    let dts: Vec<i64> = frames(&out).iter().map(|f| f.dts).collect();
    assert_eq!(dts, [0, 1536, 3072]);

    // Opus: the sequence start is an OpusHead (RFC 7845 §5.1), stereo, pre-skip 312.
    #[rustfmt::skip]
    let opus_head = [
        b'O', b'p', b'u', b's', b'H', b'e', b'a', b'd', 0x01, 0x02, 0x38, 0x01,
        0x80, 0xBB, 0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let mut out = Vec::new();
    p.audio(
        0,
        &tag(&[0x91, b'O', b'p', b'u', b's'], &[0xFC, 0x01]),
        &mut out,
    )
    .unwrap(); // a packet before the sequence start: dropped
    p.audio(
        0,
        &tag(&[0x90, b'O', b'p', b'u', b's'], &opus_head),
        &mut out,
    )
    .unwrap();
    p.audio(
        0,
        &tag(&[0x91, b'O', b'p', b'u', b's'], &[0xFC, 0x01]),
        &mut out,
    )
    .unwrap();
    p.audio(
        21,
        &tag(&[0x91, b'O', b'p', b'u', b's'], &[0xFC, 0x02]),
        &mut out,
    )
    .unwrap();
    let t = tracks(&out);
    let d = decodable(t[0]);
    assert_eq!((d.codec, t[0].timescale), (DecodableCodec::Opus, 48_000));
    assert_eq!(&d.extradata[..], &opus_head);
    let dts: Vec<i64> = frames(&out).iter().map(|f| f.dts).collect();
    assert_eq!(dts, [0, 960]); // TOC 0xFC: one 20 ms CELT frame

    // FLAC: FFmpeg sends the bare STREAMINFO (48 kHz, 6 channels).
    #[rustfmt::skip]
    let streaminfo = [
        0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x48, 0x2A, 0x0B, 0xB8, 0x0B, 0x70,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut out = Vec::new();
    p.audio(
        0,
        &tag(&[0x90, b'f', b'L', b'a', b'C'], &streaminfo),
        &mut out,
    )
    .unwrap();
    let t = tracks(&out);
    assert_eq!(
        (
            decodable(t[0]).codec,
            t[0].timescale,
            decodable(t[0]).audio.map(|a| a.channels)
        ),
        (DecodableCodec::Flac, 48_000, Some(6))
    );
}

#[test]
fn flv_legacy_pcm_and_vp6_tracks() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    // 0x3F: PCM little-endian, 44 kHz, 16-bit, stereo: 441 samples = 10 ms = 1764 bytes.
    for ts in [0, 10, 20] {
        p.audio(ts, &tag(&[0x3F], &[0u8; 1764]), &mut out).unwrap();
    }
    let t = tracks(&out);
    assert_eq!(
        (decodable(t[0]).codec, t[0].timescale),
        (DecodableCodec::Pcm(PcmFormat::S16Le), 44_100)
    );
    let dts: Vec<i64> = frames(&out).iter().map(|f| f.dts).collect();
    assert_eq!(dts, [0, 441, 882]);

    // VP6 (codec id 4): an inter frame before any keyframe is dropped; the keyframe announces the
    // track, sized from its header: adjustment 0x00, key frame, version 6 profile 3, 15 × 20
    // macroblocks.
    let mut out = Vec::new();
    p.video(0, &tag(&[0x24], &[0x00, 0xBE, 0x36]), &mut out)
        .unwrap();
    p.video(
        0,
        &tag(&[0x14], &[0x00, 0x3E, 0x36, 15, 20, 15, 20, 0xAA]),
        &mut out,
    )
    .unwrap();
    p.video(40, &tag(&[0x24], &[0x00, 0xBE, 0x01]), &mut out)
        .unwrap();
    let t = tracks(&out);
    assert_eq!(t.len(), 1);
    let d = decodable(t[0]);
    assert_eq!(
        (d.codec, &d.extradata[..]),
        (DecodableCodec::Vp6, &[0x00][..])
    );
    assert_eq!(d.video.map(|v| (v.width, v.height)), Some((320, 240)));
    let f = frames(&out);
    assert_eq!(f.len(), 2);
    assert!(f[0].is_keyframe && !f[1].is_keyframe);
    assert_eq!(&f[0].data[..], &[0x3E, 0x36, 15, 20, 15, 20, 0xAA]); // without the adjustment byte
    assert_eq!(f[1].dts, 3600);
    assert_eq!(p.stats().frames_before_config, 1);
}

// The tests below need the `media` crate's configuration record parsers.

#[test]
fn flv_avc_sequence_header_then_frames_with_negative_cts() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
        .unwrap();
    // Same header again: no new Track event.
    p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    match &out[0] {
        IngestEvent::Track(t) => {
            assert_eq!(&t.config.record()[..], &AVCC);
            assert_eq!(t.timescale, 90_000);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Keyframe at 1000 ms with cts 66 ms, then an inter frame at 1033 ms with cts -33 ms.
    p.video(
        1000,
        &tag(&[0x17, 1, 0x00, 0x00, 0x42], &[0, 0, 0, 2, 0x65, 0x88]),
        &mut out,
    )
    .unwrap();
    p.video(
        1033,
        &tag(&[0x27, 1, 0xFF, 0xFF, 0xDF], &[0, 0, 0, 2, 0x41, 0x9A]),
        &mut out,
    )
    .unwrap();
    let f = frames(&out);
    assert_eq!(
        (f[0].dts, f[0].pts, f[0].is_keyframe),
        (90_000, 95_940, true)
    );
    assert_eq!(
        (f[1].dts, f[1].pts, f[1].is_keyframe),
        (92_970, 90_000, false)
    );
    assert_eq!(f[1].composition_offset(), -2970);
}

#[test]
fn flv_changed_sequence_header_emits_new_track() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
        .unwrap();
    p.video(0, &tag(&[0x90, b'h', b'v', b'c', b'1'], &HVCC), &mut out)
        .unwrap();
    p.video(
        40,
        &tag(&[0xA3, b'h', b'v', b'c', b'1'], &[0, 0, 0, 2, 0x26, 0x01]),
        &mut out,
    )
    .unwrap(); // FrameType 2
    assert!(matches!(&out[1], IngestEvent::Track(t) if t.config.record()[..] == HVCC));
    let f = frames(&out);
    assert_eq!((f[0].dts, f[0].is_keyframe), (3600, true)); // NAL type 19 (IDR_W_RADL) counts as key
}

#[test]
fn flv_timestamps_unwrap_across_32_bits() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    p.video(0xFFFF_FFF0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out)
        .unwrap();
    p.video(
        0xFFFF_FFF0,
        &tag(&[0x17, 1, 0, 0, 0], &[0, 0, 0, 1, 0x65]),
        &mut out,
    )
    .unwrap();
    p.video(
        0x0000_0010,
        &tag(&[0x27, 1, 0, 0, 0], &[0, 0, 0, 1, 0x41]),
        &mut out,
    )
    .unwrap();
    let f = frames(&out);
    assert_eq!(f[0].dts, 0xFFFF_FFF0_i64 * 90);
    assert_eq!(f[1].dts, 0x1_0000_0010_i64 * 90);
}

#[test]
fn flv_aac_durations_are_exact_despite_ms_rounding() {
    let mut p = FlvParser::new(1 << 20);
    let mut out = Vec::new();
    p.audio(0, &tag(&[0xAF, 0], &ASC_48K_STEREO), &mut out)
        .unwrap();
    assert!(matches!(&out[0], IngestEvent::Track(t) if t.timescale == 48_000));
    // 1024 samples at 48 kHz = 21.333 ms: RTMP timestamps go 1000, 1021, 1043, 1064, ...
    for i in 0..50u32 {
        let ts = 1000 + (i * 1024 * 1000 + 24_000) / 48_000;
        p.audio(ts, &tag(&[0xAF, 1], &[0x21, 0x10]), &mut out)
            .unwrap();
    }
    let f = frames(&out);
    assert_eq!(f[0].dts, 48_000);
    assert!(f.windows(2).all(|w| w[1].dts - w[0].dts == 1024));
    // A 2-second gap resynchronises to the message timestamp.
    p.audio(4000, &tag(&[0xAF, 1], &[0x21]), &mut out).unwrap();
    assert_eq!(frames(&out).last().unwrap().dts, 192_000);
    assert_eq!(p.stats().audio_resyncs, 1);
}

proptest! {
    #[test]
    fn flv_parser_never_panics(
        tags in proptest::collection::vec((any::<bool>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..64)
    ) {
        let mut p = FlvParser::new(4096);
        let mut out = Vec::new();
        // Seed valid configs so frame paths are reached too.
        let _ = p.video(0, &tag(&[0x17, 0, 0, 0, 0], &AVCC), &mut out);
        let _ = p.audio(0, &tag(&[0xAF, 0], &ASC_48K_STEREO), &mut out);
        for (is_video, ts, body) in tags {
            let body = Bytes::from(body);
            let _ = if is_video { p.video(ts, &body, &mut out) } else { p.audio(ts, &body, &mut out) };
        }
    }
}
