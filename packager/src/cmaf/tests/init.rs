//! Init segment tests: field values read back with mp4-atom, record bytes round-trip, error cases.

use mp4_atom::{Any, Codec, FourCC, Moov};

use super::{
    BIKES_AVCC, FACE_ASC, FACE_HVCC, aac_track, avc_track, box_body, decode_top_level, hevc_track,
};
use crate::cmaf::{CmafError, try_write_init_segment, write_init_segment};

/// Decode an init segment into its `ftyp` and `moov`, checking that nothing else is there.
fn decode_init(bytes: &[u8]) -> (mp4_atom::Ftyp, Moov) {
    let mut atoms = decode_top_level(bytes).into_iter();
    let (Some(Any::Ftyp(ftyp)), Some(Any::Moov(moov)), None) =
        (atoms.next(), atoms.next(), atoms.next())
    else {
        panic!("init segment is not exactly ftyp + moov");
    };
    (ftyp, moov)
}

/// Checks common to every track kind: brands, movie header, mvex/trex, one trak with empty tables.
fn assert_common(bytes: &[u8], track_id: u32, timescale: u32) -> Moov {
    let (ftyp, moov) = decode_init(bytes);
    assert_eq!(ftyp.major_brand, FourCC::new(b"iso6"));
    assert_eq!(ftyp.minor_version, 0);
    let brands: Vec<FourCC> = [b"iso6", b"cmfc", b"mp41", b"dash"].map(FourCC::new).into();
    assert_eq!(ftyp.compatible_brands, brands);

    assert_eq!(moov.mvhd.timescale, 1000);
    assert_eq!(moov.mvhd.duration, 0);
    assert_eq!(moov.mvhd.next_track_id, track_id + 1);

    let mvex = moov.mvex.as_ref().expect("mvex present (fragmented)");
    assert!(mvex.mehd.is_none(), "no mehd for live");
    assert_eq!(mvex.trex.len(), 1);
    assert_eq!(mvex.trex[0].track_id, track_id);
    assert_eq!(mvex.trex[0].default_sample_description_index, 1);
    assert_eq!(mvex.trex[0].default_sample_duration, 0);
    assert_eq!(mvex.trex[0].default_sample_size, 0);
    assert_eq!(mvex.trex[0].default_sample_flags, 0);

    assert_eq!(moov.trak.len(), 1);
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.track_id, track_id);
    assert!(trak.tkhd.enabled && trak.tkhd.in_movie);
    assert_eq!(trak.tkhd.duration, 0);
    assert!(trak.edts.is_none(), "no edit list");
    assert_eq!(trak.mdia.mdhd.timescale, timescale);
    assert_eq!(trak.mdia.mdhd.duration, 0);
    assert_eq!(trak.mdia.mdhd.language, "und");

    let minf = &trak.mdia.minf;
    assert_eq!(minf.dinf.dref.entries.len(), 1);
    let stbl = &minf.stbl;
    assert_eq!(stbl.stsd.codecs.len(), 1);
    assert!(stbl.stts.entries.is_empty());
    assert!(stbl.stsc.entries.is_empty());
    assert_eq!(
        stbl.stsz.samples,
        mp4_atom::StszSamples::Different { sizes: vec![] }
    );
    assert_eq!(stbl.stco.as_ref().map(|stco| stco.entries.len()), Some(0));
    assert!(stbl.ctts.is_none() && stbl.stss.is_none() && stbl.co64.is_none());
    moov
}

#[test]
fn cmaf_init_avc_parses_with_fields_and_avcc_round_trip() {
    let bytes = write_init_segment(1, &avc_track(90_000));
    let moov = assert_common(&bytes, 1, 90_000);
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.width.integer(), 640);
    assert_eq!(trak.tkhd.height.integer(), 272);
    assert_eq!(trak.tkhd.volume.integer(), 0);
    assert_eq!(trak.mdia.hdlr.handler, FourCC::new(b"vide"));
    assert!(trak.mdia.minf.vmhd.is_some() && trak.mdia.minf.smhd.is_none());

    let Codec::Avc1(avc1) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("sample entry is not avc1");
    };
    assert_eq!(avc1.visual.data_reference_index, 1);
    assert_eq!((avc1.visual.width, avc1.visual.height), (640, 272));
    assert_eq!(avc1.visual.horizresolution.integer(), 72);
    assert_eq!(avc1.visual.vertresolution.integer(), 72);
    assert_eq!(avc1.visual.frame_count, 1);
    assert_eq!(avc1.visual.depth, 0x18);
    assert_eq!(avc1.avcc.avc_profile_indication, 0x64);
    assert_eq!(avc1.avcc.avc_level_indication, 0x15);
    assert_eq!(avc1.avcc.length_size, 4);
    assert_eq!(
        avc1.avcc.sequence_parameter_sets,
        vec![BIKES_AVCC[8..33].to_vec()]
    );
    assert_eq!(
        avc1.avcc.picture_parameter_sets,
        vec![BIKES_AVCC[36..42].to_vec()]
    );

    // The avcC body is the record, byte for byte.
    assert_eq!(box_body(&bytes, b"avcC"), BIKES_AVCC);
}

#[test]
fn cmaf_init_hevc_uses_hvc1_and_hvcc_round_trip() {
    let bytes = write_init_segment(3, &hevc_track());
    let moov = assert_common(&bytes, 3, 90_000);
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.width.integer(), 960);
    assert_eq!(trak.tkhd.height.integer(), 540);
    assert_eq!(trak.mdia.hdlr.handler, FourCC::new(b"vide"));

    let Codec::Hvc1(hvc1) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("sample entry is not hvc1");
    };
    assert_eq!((hvc1.visual.width, hvc1.visual.height), (960, 540));
    assert_eq!(hvc1.hvcc.general_profile_idc, 1);
    assert_eq!(hvc1.hvcc.general_level_idc, 90);
    assert_eq!(hvc1.hvcc.length_size_minus_one, 3);
    let nal_types: Vec<u8> = hvc1
        .hvcc
        .arrays
        .iter()
        .map(|array| array.nal_unit_type)
        .collect();
    assert_eq!(nal_types, [32, 33, 34]);
    assert!(hvc1.hvcc.arrays.iter().all(|array| array.completeness));

    assert_eq!(box_body(&bytes, b"hvcC"), FACE_HVCC);
    assert!(
        !bytes.windows(4).any(|window| window == b"hev1"),
        "never hev1"
    );
}

#[test]
fn cmaf_init_aac_esds_carries_asc() {
    let bytes = write_init_segment(2, &aac_track(&FACE_ASC));
    let moov = assert_common(&bytes, 2, 44_100);
    let trak = &moov.trak[0];
    assert_eq!(trak.tkhd.volume.integer(), 1);
    assert_eq!(trak.tkhd.width.integer(), 0);
    assert_eq!(trak.mdia.hdlr.handler, FourCC::new(b"soun"));
    assert!(trak.mdia.minf.smhd.is_some() && trak.mdia.minf.vmhd.is_none());

    let Codec::Mp4a(mp4a) = &trak.mdia.minf.stbl.stsd.codecs[0] else {
        panic!("sample entry is not mp4a");
    };
    assert_eq!(mp4a.audio.data_reference_index, 1);
    assert_eq!(mp4a.audio.channel_count, 2);
    assert_eq!(mp4a.audio.sample_size, 16);
    assert_eq!(mp4a.audio.sample_rate.integer(), 44_100);
    let dec_config = &mp4a.esds.es_desc.dec_config;
    assert_eq!(dec_config.object_type_indication, 0x40);
    assert_eq!(dec_config.stream_type, 5);
    assert_eq!(dec_config.up_stream, 0);
    let dec_specific = dec_config
        .dec_specific
        .as_ref()
        .expect("DecoderSpecificInfo present");
    assert_eq!(dec_specific.raw, FACE_ASC);
    assert_eq!(
        (
            dec_specific.profile,
            dec_specific.freq_index,
            dec_specific.chan_conf
        ),
        (2, 4, 2)
    );
}

#[test]
fn cmaf_init_aac_esds_golden_bytes() {
    let bytes = write_init_segment(2, &aac_track(&FACE_ASC));
    #[rustfmt::skip]
    let expected: &[u8] = &[
        0x00, 0x00, 0x00, 0x00,       // esds: version 0, flags 0
        0x03, 28,                     // ES_Descriptor, 28 bytes
        0x00, 0x00,                   //   ES_ID 0
        0x00,                         //   no dependency, URL or OCR; streamPriority 0
        0x04, 20,                     //   DecoderConfigDescriptor, 20 bytes
        0x40,                         //     objectTypeIndication: Audio ISO/IEC 14496-3
        0x15,                         //     streamType 5 (audio) << 2 | upStream 0 | reserved 1
        0x00, 0x00, 0x00,             //     bufferSizeDB
        0x00, 0x00, 0x00, 0x00,       //     maxBitrate
        0x00, 0x00, 0x00, 0x00,       //     avgBitrate
        0x05, 5,                      //     DecoderSpecificInfo, 5 bytes
        0x12, 0x10, 0x56, 0xE5, 0x00, //       AudioSpecificConfig
        0x06, 1,                      //   SLConfigDescriptor, 1 byte
        0x02,                         //     predefined: MP4
    ];
    assert_eq!(box_body(&bytes, b"esds"), expected);
}

#[test]
fn cmaf_init_aac_96khz_writes_zero_samplerate() {
    // AAC-LC, samplingFrequencyIndex 0 (96 kHz), stereo.
    static ASC_96K: [u8; 2] = [0x10, 0x10];
    let bytes = write_init_segment(1, &aac_track(&ASC_96K));
    let moov = assert_common(&bytes, 1, 96_000);
    let Codec::Mp4a(mp4a) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
        panic!("sample entry is not mp4a");
    };
    assert_eq!(mp4a.audio.sample_rate.integer(), 0);
    let dec_specific = mp4a
        .esds
        .es_desc
        .dec_config
        .dec_specific
        .as_ref()
        .expect("DecoderSpecificInfo");
    assert_eq!(dec_specific.raw, ASC_96K);
}

#[test]
fn cmaf_init_invalid_tracks_are_errors_not_panics() {
    assert_eq!(
        try_write_init_segment(0, &avc_track(90_000)),
        Err(CmafError::ZeroTrackId)
    );
    assert!(write_init_segment(0, &avc_track(90_000)).is_empty());
    assert_eq!(
        try_write_init_segment(1, &avc_track(0)),
        Err(CmafError::ZeroTimescale)
    );

    let mut huge = avc_track(90_000);
    if let media::CodecConfig::Avc(avc) = &mut huge.config {
        avc.params.width = 70_000;
    }
    assert_eq!(
        try_write_init_segment(1, &huge),
        Err(CmafError::PictureTooLarge {
            width: 70_000,
            height: 272
        })
    );

    // The largest track id still gets a representable next_track_ID.
    let bytes = write_init_segment(u32::MAX, &avc_track(90_000));
    let (_, moov) = decode_init(&bytes);
    assert_eq!(moov.mvhd.next_track_id, u32::MAX);
}

#[test]
fn cmaf_init_aac_5_1_writes_six_channels() {
    // AAC-LC, samplingFrequencyIndex 3 (48 kHz), channelConfiguration 6 (5.1).
    static ASC_5_1: [u8; 2] = [0x11, 0xB0];
    let bytes = write_init_segment(1, &aac_track(&ASC_5_1));
    let moov = assert_common(&bytes, 1, 48_000);
    let Codec::Mp4a(mp4a) = &moov.trak[0].mdia.minf.stbl.stsd.codecs[0] else {
        panic!("sample entry is not mp4a");
    };
    assert_eq!(mp4a.audio.channel_count, 6);
    assert_eq!(mp4a.audio.sample_rate.integer(), 48_000);
}
