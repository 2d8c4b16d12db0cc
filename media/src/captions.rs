//! Closed captions carried inside the video: which CEA-608 / CEA-708 services a frame holds.
//!
//! Encoders carry captions as `cc_data` (CEA-708 §4.4, the `cc_data()` structure): in H.264 and HEVC in
//! an SEI message of type 4, `user_data_registered_itu_t_t35` (ITU-T H.264 §D.1.6 / H.265 §D.2.6),
//! identified by country code 0xB5, provider code 0x0031, user identifier `GA94` and user data type
//! code 3 (ATSC A/53 Part 4 §6.2.3, SCTE 128-1 §8.1); in MPEG-2 video in a picture's `user_data()`
//! (start code 0x000001B2, ISO/IEC 13818-2 §6.2.2.2.2) holding `GA94` and user data type code 3
//! (ATSC A/53 Part 4 §6.2.2). Each `cc_data` triple is either a CEA-608 byte pair of field 1 (`cc_type`
//! 0: channels CC1/CC2) or field 2 (`cc_type` 1: CC3/CC4), or a DTVCC packet byte pair (`cc_type` 2/3:
//! CEA-708 services).
//!
//! Sans-IO: bytes in, the services seen out. The captions themselves are not decoded here: the
//! transcoder's decoder hands them on to the encoders, and players decode them.

use crate::bits::ebsp_to_rbsp;

/// The caption services a stream carries (an OR over its frames).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptionServices {
    /// CEA-608 field 1 (`CC1`, `CC2`).
    pub cea608_field1: bool,
    /// CEA-608 field 2 (`CC3`, `CC4`).
    pub cea608_field2: bool,
    /// CEA-708 (DTVCC) services.
    pub cea708: bool,
}

impl CaptionServices {
    /// True when any service was seen.
    pub fn any(&self) -> bool {
        self.cea608_field1 || self.cea608_field2 || self.cea708
    }

    /// The services of either.
    pub fn union(self, other: Self) -> Self {
        Self {
            cea608_field1: self.cea608_field1 || other.cea608_field1,
            cea608_field2: self.cea608_field2 || other.cea608_field2,
            cea708: self.cea708 || other.cea708,
        }
    }
}

/// The bitstream syntax of a frame that may carry captions: H.264 (1-byte NAL header, SEI type 6),
/// HEVC (2-byte header, prefix SEI type 39), or MPEG-2 video (start codes, `user_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoSyntax {
    /// ITU-T H.264.
    Avc,
    /// ITU-T H.265.
    Hevc,
    /// ISO/IEC 13818-2 (and MPEG-1 video, whose user data has the same start code).
    Mpeg2,
}

/// The caption services in one frame. `data`: for H.264 and HEVC, NAL units each behind a 4-byte
/// big-endian length, as in CMAF samples; for MPEG-2, the picture with its start codes (see
/// [`crate::decodable`]). A truncated or malformed NAL unit, SEI message or user data ends the scan of
/// that unit (what was read so far counts); never panics.
pub fn scan_frame(data: &[u8], syntax: VideoSyntax) -> CaptionServices {
    if syntax == VideoSyntax::Mpeg2 {
        return scan_mpeg2_user_data(data);
    }
    let mut services = CaptionServices::default();
    let mut rest = data;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + len) else {
            break;
        };
        rest = &rest[4 + len..];
        let payload = match syntax {
            VideoSyntax::Avc if nal.first().is_some_and(|b| b & 0x1f == 6) => &nal[1..],
            VideoSyntax::Hevc if nal.len() >= 2 && (nal[0] >> 1) & 0x3f == 39 => &nal[2..],
            _ => continue,
        };
        services = services.union(scan_sei(&ebsp_to_rbsp(payload)));
    }
    services
}

/// The caption services in the SEI messages of one SEI RBSP (H.264 §7.3.2.3.1).
fn scan_sei(rbsp: &[u8]) -> CaptionServices {
    let mut services = CaptionServices::default();
    let mut at = 0;
    // A message needs at least its type, size and one byte; 0x80 alone is the trailing bits.
    while rbsp.len().saturating_sub(at) > 2 {
        let Some(payload_type) = ff_coded(rbsp, &mut at) else {
            break;
        };
        let Some(size) = ff_coded(rbsp, &mut at) else {
            break;
        };
        let Some(payload) = rbsp.get(at..at + size) else {
            break;
        };
        at += size;
        if payload_type == 4 {
            services = services.union(scan_t35(payload));
        }
    }
    services
}

/// A `ff_byte`-extended value (the SEI payload type or size): 255 for each 0xFF byte, plus the last.
fn ff_coded(data: &[u8], at: &mut usize) -> Option<usize> {
    let mut value = 0usize;
    loop {
        let b = *data.get(*at)?;
        *at += 1;
        value = value.checked_add(usize::from(b))?;
        if b != 0xff {
            return Some(value);
        }
    }
}

/// The caption services in the `user_data()` of an MPEG-2 picture: every user data start code
/// (0x000001B2) whose bytes, up to the next start code, are ATSC A/53 `cc_data`.
fn scan_mpeg2_user_data(data: &[u8]) -> CaptionServices {
    let mut services = CaptionServices::default();
    let mut at = 0;
    while let Some(found) = find_start_code(data, at) {
        let body = found + 4;
        if data.get(found + 3) == Some(&0xb2) {
            let end = find_start_code(data, body).unwrap_or(data.len());
            if let Some(cc) = data[body..end].strip_prefix(&[b'G', b'A', b'9', b'4', 0x03]) {
                services = services.union(scan_cc_data(cc));
            }
        }
        at = body;
    }
    services
}

/// Where the next start code prefix (0x000001) at or after `from` begins.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?
        .windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|i| from + i)
        .filter(|i| i + 3 < data.len())
}

/// ATSC A/53 `cc_data` in a `user_data_registered_itu_t_t35` payload.
fn scan_t35(p: &[u8]) -> CaptionServices {
    // country 0xB5 (USA), provider 0x0031 (ATSC), "GA94", user_data_type_code 3 (cc_data).
    match p.strip_prefix(&[0xb5, 0x00, 0x31, b'G', b'A', b'9', b'4', 0x03]) {
        Some(cc) => scan_cc_data(cc),
        None => CaptionServices::default(),
    }
}

/// The services named by a `cc_data()` structure (CEA-708 §4.4): its flags byte, `em_data`, then
/// `cc_count` triples.
fn scan_cc_data(cc: &[u8]) -> CaptionServices {
    let mut services = CaptionServices::default();
    let [flags, _em_data, triples @ ..] = cc else {
        return services;
    };
    if flags & 0x40 == 0 {
        // process_cc_data_flag clear: the triples are to be ignored.
        return services;
    }
    let count = usize::from(flags & 0x1f);
    for t in triples.chunks_exact(3).take(count) {
        let is_valid = t[0] & 0x04 != 0;
        if !is_valid {
            continue;
        }
        match t[0] & 0x03 {
            0 => services.cea608_field1 = true,
            1 => services.cea608_field2 = true,
            _ => services.cea708 = true,
        }
    }
    services
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An H.264 SEI NAL unit (length-prefixed) with one `cc_data` of `triples`.
    fn sei_frame(triples: &[[u8; 3]]) -> Vec<u8> {
        let mut t35 = vec![0xb5, 0x00, 0x31, b'G', b'A', b'9', b'4', 0x03];
        t35.push(0x40 | triples.len() as u8);
        t35.push(0xff);
        for t in triples {
            t35.extend_from_slice(t);
        }
        t35.push(0xff); // marker_bits
        let mut nal = vec![0x06, 0x04, t35.len() as u8];
        nal.extend_from_slice(&t35);
        nal.push(0x80);
        let mut frame = (nal.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&nal);
        // A slice after it.
        frame.extend_from_slice(&[0, 0, 0, 2, 0x65, 0x88]);
        frame
    }

    #[test]
    fn cc_data_in_an_h264_sei_names_its_services() {
        // A 608 field-1 pair ("HE" with odd parity), a padding field-2 pair, an invalid DTVCC one.
        let f = sei_frame(&[[0xfc, 0xc8, 0xc5], [0xfd, 0x80, 0x80], [0xfa, 0x00, 0x00]]);
        let s = scan_frame(&f, VideoSyntax::Avc);
        assert_eq!(
            s,
            CaptionServices {
                cea608_field1: true,
                cea608_field2: true,
                cea708: false
            }
        );
        let f = sei_frame(&[[0xff, 0x02, 0x21]]);
        assert!(scan_frame(&f, VideoSyntax::Avc).cea708);
        assert!(!scan_frame(&[0, 0, 0, 2, 0x65, 0x88], VideoSyntax::Avc).any());
    }

    #[test]
    fn an_hevc_prefix_sei_is_read_and_other_t35_payloads_are_not_captions() {
        let avc = sei_frame(&[[0xfc, 0x94, 0x20]]);
        // The same SEI behind an HEVC prefix SEI header (type 39, layer 0, tid 1).
        let nal = &avc[5..avc.len() - 6];
        let mut hevc = ((nal.len() + 2) as u32).to_be_bytes().to_vec();
        hevc.extend_from_slice(&[39 << 1, 0x01]);
        hevc.extend_from_slice(nal);
        assert!(scan_frame(&hevc, VideoSyntax::Hevc).cea608_field1);
        assert!(!scan_frame(&hevc, VideoSyntax::Avc).any());
        // AFD (user data type 0x47 "DTG1") is not captions.
        let mut other = avc.clone();
        other[10..14].copy_from_slice(b"DTG1");
        assert!(!scan_frame(&other, VideoSyntax::Avc).any());
    }

    #[test]
    fn cc_data_in_an_mpeg2_pictures_user_data_names_its_services() {
        // Picture start code and header, its user data (GA94, cc_data with a field-1 pair and a
        // DTVCC pair, marker bits), then a slice.
        let mut picture = vec![0, 0, 1, 0x00, 0x01, 0x0f, 0xff, 0xf8];
        picture.extend_from_slice(&[0, 0, 1, 0xb2, b'G', b'A', b'9', b'4', 0x03, 0x42, 0xff]);
        picture.extend_from_slice(&[0xfc, 0x94, 0x20, 0xfe, 0x02, 0x21, 0xff]);
        picture.extend_from_slice(&[0, 0, 1, 0x01, 0x12, 0x34]);
        assert_eq!(
            scan_frame(&picture, VideoSyntax::Mpeg2),
            CaptionServices {
                cea608_field1: true,
                cea608_field2: false,
                cea708: true
            }
        );
        // Other user data (AFD, "DTG1"), or cc_data with process_cc_data_flag clear: none.
        let mut afd = picture.clone();
        afd[12..16].copy_from_slice(b"DTG1");
        assert!(!scan_frame(&afd, VideoSyntax::Mpeg2).any());
        let mut off = picture.clone();
        off[17] = 0x02;
        assert!(!scan_frame(&off, VideoSyntax::Mpeg2).any());
        // Cut anywhere: never a panic, and nothing past the cut.
        for n in 0..picture.len() {
            let _ = scan_frame(&picture[..n], VideoSyntax::Mpeg2);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_scanned_without_panicking(data: Vec<u8>, sei in proptest::collection::vec(0u8..=255, 0..64)) {
            let _ = scan_frame(&data, VideoSyntax::Avc);
            let _ = scan_frame(&data, VideoSyntax::Mpeg2);
            let _ = scan_frame(&data, VideoSyntax::Hevc);
            // A well-framed SEI NAL unit with arbitrary contents.
            let mut frame = ((sei.len() + 1) as u32).to_be_bytes().to_vec();
            frame.push(0x06);
            frame.extend_from_slice(&sei);
            let _ = scan_frame(&frame, VideoSyntax::Avc);
        }
    }

    #[test]
    fn truncated_input_never_panics() {
        let f = sei_frame(&[[0xfc, 0xc8, 0xc5]]);
        for cut in 0..f.len() {
            let _ = scan_frame(&f[..cut], VideoSyntax::Avc);
            let _ = scan_frame(&f[..cut], VideoSyntax::Hevc);
        }
        let mut lying = f.clone();
        lying[3] = 0xff;
        assert!(!scan_frame(&lying, VideoSyntax::Avc).any());
    }
}
