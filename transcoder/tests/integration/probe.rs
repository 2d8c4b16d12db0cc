//! Encoder selection on this machine.

use std::time::{Duration, Instant};

use transcoder::{EncoderChoice, EncoderProbe, TranscodeError, probe_encoders};

#[test]
fn auto_probe_falls_back_to_software_when_nvenc_does_not_open() {
    let started = Instant::now();
    let auto = probe_encoders(EncoderChoice::Auto).expect("auto never fails");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "probe took {took:?}");
    match probe_encoders(EncoderChoice::Nvenc) {
        // No usable NVENC (this machine: FFmpeg has h264_nvenc but no libcuda): software fallback.
        Err(_) => assert_eq!(auto, EncoderProbe::software()),
        Ok(nvenc) => assert_eq!(auto, nvenc),
    }
    // Cached: a second call returns the same answer at once.
    let again = Instant::now();
    assert_eq!(probe_encoders(EncoderChoice::Auto).unwrap(), auto);
    assert!(again.elapsed() < Duration::from_millis(50));
}

#[test]
fn nvenc_choice_fails_clearly_without_a_gpu() {
    let auto = probe_encoders(EncoderChoice::Auto).unwrap();
    if auto.h264 != "libx264" {
        return; // A machine with a working NVENC.
    }
    let err = probe_encoders(EncoderChoice::Nvenc).unwrap_err();
    let TranscodeError::EncoderUnavailable { encoder, reason } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(encoder, "h264_nvenc");
    assert!(!reason.is_empty());
    let text = err.to_string();
    assert!(
        text.starts_with("encoder h264_nvenc unavailable: "),
        "{text}"
    );
    println!("nvenc probe error: {text}");
}

#[test]
fn stream_transcoder_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<transcoder::StreamTranscoder>();
    assert_send_sync::<EncoderProbe>();
}

#[test]
fn software_choice_needs_no_probe() {
    assert_eq!(
        probe_encoders(EncoderChoice::Software).unwrap(),
        EncoderProbe::software()
    );
}
