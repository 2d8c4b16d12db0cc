use super::*;
use crate::ingest::srt::SrtPassphrase;

#[test]
fn flag_beats_file_beats_default() {
    let file: FileConfig = toml::from_str(
        "[server]\nhttp_listen = \"127.0.0.1:9999\"\nrtmp_listen = \"127.0.0.1:2000\"\n[packager]\npart_target = \"200ms\"\n",
    )
    .unwrap();
    let args = ServeArgs {
        http_listen: Some("127.0.0.1:1111".parse().unwrap()),
        ..Default::default()
    };
    let s = Settings::resolve(&args, file).unwrap();
    assert_eq!(s.http_listen, "127.0.0.1:1111".parse().unwrap());
    assert_eq!(s.rtmp_listen, "127.0.0.1:2000".parse().unwrap());
    assert_eq!(s.hub.packager.part_target, Duration::from_millis(200));
    assert_eq!(s.hub.packager.segment_target, Duration::from_secs(2));
}

#[test]
fn srt_settings_resolve_with_defaults_flags_and_validation() {
    let s = Settings::resolve(&ServeArgs::default(), FileConfig::default()).unwrap();
    assert_eq!(s.srt_listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(s.srt.latency, Duration::from_millis(200));
    assert_eq!(s.srt.udp_recv_buffer_bytes, 4 << 20);
    assert_eq!(s.srt.max_connections, 1000);
    assert!(s.srt.passphrase.is_none());

    let file: FileConfig = toml::from_str(
        "[server]\nsrt_listen = \"127.0.0.1:9999\"\nsrt_max_connections = 5\n\
         [srt]\nlatency = \"500ms\"\nudp_recv_buffer_bytes = 1048576\npassphrase = \"file passphrase\"\n\
         [srt.passphrases]\n\"live/cam\" = \"camera passphrase\"\n",
    )
    .unwrap();
    assert!(!format!("{:?}", file.srt).contains("file passphrase"));
    assert!(!format!("{:?}", file.srt).contains("camera passphrase"));
    let args = ServeArgs {
        srt_listen: Some("127.0.0.1:7000".parse().unwrap()),
        srt_passphrase: Some(SrtPassphrase::new("flag passphrase").unwrap()),
        ..Default::default()
    };
    let s = Settings::resolve(&args, file).unwrap();
    assert_eq!(s.srt_listen, "127.0.0.1:7000".parse().unwrap());
    assert_eq!(s.srt.max_connections, 5);
    assert_eq!(s.srt.latency, Duration::from_millis(500));
    assert_eq!(s.srt.udp_recv_buffer_bytes, 1 << 20);
    assert_eq!(
        s.srt.passphrase_for("live/other"),
        Some(&SrtPassphrase::new("flag passphrase").unwrap())
    );
    assert_eq!(
        s.srt.passphrase_for("live/cam"),
        Some(&SrtPassphrase::new("camera passphrase").unwrap())
    );
    assert!(!format!("{s:?}").contains("flag passphrase"));
    assert!(!format!("{args:?}").contains("flag passphrase"));

    for (toml_text, key) in [
        ("[srt]\npassphrase = \"short\"\n", "srt.passphrase"),
        ("[srt]\nlatency = \"5ms\"\n", "srt.latency"),
        (
            "[srt]\nudp_recv_buffer_bytes = 1000\n",
            "srt.udp_recv_buffer_bytes",
        ),
        (
            "[srt.passphrases]\n\"cam\" = \"long enough passphrase\"\n",
            "srt.passphrases",
        ),
        (
            "[srt.passphrases]\n\"live/cam\" = \"short\"\n",
            "srt.passphrases.\"live/cam\"",
        ),
    ] {
        let file: FileConfig = toml::from_str(toml_text).unwrap();
        let err = Settings::resolve(&ServeArgs::default(), file)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{toml_text}: {err}");
        assert!(!err.contains("short\""), "the secret is not echoed: {err}");
    }
    let err = toml::from_str::<FileConfig>("[srt]\nlatncy = \"1s\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("latncy"), "{err}");
}

#[test]
fn encryption_is_chosen_per_stream_over_the_server_default_and_the_flag() {
    let file = || -> FileConfig {
        toml::from_str(
            "[encryption]\nrotate_every_segments = 3\n\
             [encryption.streams]\n\"live/secret\" = true\n\"live/open\" = false\n",
        )
        .unwrap()
    };
    let s = Settings::resolve(&ServeArgs::default(), file()).unwrap();
    let p = &s.hub.encryption;
    assert!(p.encrypts("live/secret") && !p.encrypts("live/open") && !p.encrypts("live/x"));
    assert_eq!(p.rotate_every, 3);
    // --encrypt turns the default on; a stream's own `false` still wins.
    let args = ServeArgs {
        encrypt: true,
        ..Default::default()
    };
    let p = Settings::resolve(&args, file()).unwrap().hub.encryption;
    assert!(p.encrypts("live/x") && p.encrypts("live/secret") && !p.encrypts("live/open"));
    for (toml_text, key) in [
        (
            "[encryption.streams]\n\"secret\" = true\n",
            "encryption.streams",
        ),
        (
            "[encryption]\nrotate_every_segments = 0\n",
            "encryption.rotate_every_segments",
        ),
    ] {
        let file: FileConfig = toml::from_str(toml_text).unwrap();
        let err = Settings::resolve(&ServeArgs::default(), file)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{toml_text}: {err}");
    }
}

#[test]
fn auth_defaults_are_secure_and_bad_values_are_rejected_with_the_key() {
    use crate::auth::{PlaybackMode, PublishMode};
    let s = Settings::resolve(&ServeArgs::default(), FileConfig::default()).unwrap();
    assert_eq!(s.auth.playback, PlaybackMode::Token);
    assert_eq!(s.auth.publish, PublishMode::Key);
    assert!(s.auth.secret.is_none() && s.auth.trusted_edge.is_none());
    assert_eq!(s.token_ttl, Duration::from_secs(6 * 3600));
    let file: FileConfig = toml::from_str(
        "[auth]\nplayback = \"open\"\npublish = \"webhook\"\nwebhook_url = \"http://127.0.0.1:9/hook\"\n\
         webhook_timeout = \"750ms\"\nsecret = \"a file secret that is long enough, 32+\"\n\
         trusted_edge_secret = \"edge secret 0123456789\"\ntrusted_edge_header = \"X-CDN-Auth\"\n\
         token_ttl = \"30m\"\n",
    )
    .unwrap();
    assert!(!format!("{:?}", file.auth).contains("long enough"));
    // Flags (and their environment variables) beat the file.
    let args = ServeArgs {
        playback_auth: Some("token".into()),
        auth_secret: Some(crate::auth::SecretString::new(
            "a flag secret that is long enough, 32+",
        )),
        ..Default::default()
    };
    let s = Settings::resolve(&args, file).unwrap();
    assert_eq!(s.auth.playback, PlaybackMode::Token);
    assert_eq!(s.auth.publish, PublishMode::Webhook);
    assert_eq!(
        s.auth.secret.as_ref().map(|s| s.expose()),
        Some("a flag secret that is long enough, 32+")
    );
    let hook = s.auth.webhook.as_ref().unwrap();
    assert_eq!(hook.timeout, Duration::from_millis(750));
    assert_eq!(
        s.auth.trusted_edge.as_ref().unwrap().header.as_str(),
        "x-cdn-auth"
    );
    assert_eq!(s.token_ttl, Duration::from_secs(1800));
    assert!(!format!("{s:?}").contains("long enough"));
    assert!(!format!("{s:?}").contains("edge secret 0123"));
    for (toml_text, key) in [
        ("[auth]\nplayback = \"none\"\n", "auth.playback"),
        ("[auth]\npublish = \"password\"\n", "auth.publish"),
        ("[auth]\npublish = \"webhook\"\n", "auth.webhook_url"),
        (
            "[auth]\nwebhook_url = \"https://hooks.example/x\"\n",
            "auth.webhook_url",
        ),
        ("[auth]\nwebhook_url = \"not a url\"\n", "auth.webhook_url"),
        (
            "[auth]\nwebhook_url = \"http://h/x\"\nwebhook_timeout = \"1m\"\n",
            "auth.webhook_timeout",
        ),
        ("[auth]\nsecret = \"short\"\n", "auth.secret"),
        (
            "[auth]\ntrusted_edge_secret = \"short\"\n",
            "auth.trusted_edge_secret",
        ),
        (
            "[auth]\ntrusted_edge_secret = \"long enough edge secret\"\ntrusted_edge_header = \"bad header\"\n",
            "auth.trusted_edge_header",
        ),
        ("[auth]\ntoken_ttl = \"0s\"\n", "auth.token_ttl"),
    ] {
        let file: FileConfig = toml::from_str(toml_text).unwrap();
        let err = Settings::resolve(&ServeArgs::default(), file)
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{toml_text}: {err}");
        assert!(!err.contains("short\""), "a secret is not echoed: {err}");
    }
    let err = toml::from_str::<FileConfig>("[auth]\nplayback_mode = \"open\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("playback_mode"), "{err}");
}

#[test]
fn environment_overrides_every_file_key_and_flags_override_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("estuary.toml");
    std::fs::write(
        &path,
        "[packager]\npart_target = \"400ms\"\nwindow_segments = 8\n[server]\ncors_allow_origin = \"https://a.example\"\n",
    )
    .unwrap();
    let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let args = ServeArgs {
        config: Some(path.clone()),
        ..Default::default()
    };
    // File only.
    let s = Settings::load_with_env(&args, env(&[])).unwrap();
    assert_eq!(s.hub.packager.part_target, Duration::from_millis(400));
    assert_eq!(s.hub.packager.window_segments, 8);
    // The environment beats the file, for any key, typed as TOML.
    let s = Settings::load_with_env(
        &args,
        env(&[
            ("ESTUARY_PACKAGER__PART_TARGET", "250ms"),
            ("ESTUARY_PACKAGER__WINDOW_SEGMENTS", "10"),
            ("ESTUARY_SERVER__CORS_ALLOW_ORIGIN", "https://b.example"),
            ("ESTUARY_TRANSCODE__ENABLED", "false"),
            ("ESTUARY_ENCRYPTION__STREAMS", "{ \"live/x\" = true }"),
            ("ESTUARY_AUTH__PLAYBACK", "open"),
            (
                "ESTUARY_AUTH__SECRET",
                "12345678901234567890123456789012345",
            ),
            ("ESTUARY_CLUSTER__ENABLED", "true"),
            ("ESTUARY_CLUSTER__REDIS_URL", "redis://redis:6379"),
            ("ESTUARY_CLUSTER__NODE_ID", "origin-b"),
            ("UNRELATED", "1"),
            ("ESTUARY_HTTP_LISTEN", "ignored here: a flag's variable"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.cluster.as_ref().map(|c| c.node_id.as_str()),
        Some("origin-b")
    );
    assert!(
        s.auth.cluster_hop,
        "a cluster node trusts the hop from another node"
    );
    assert_eq!(s.hub.packager.part_target, Duration::from_millis(250));
    assert_eq!(s.hub.packager.window_segments, 10);
    assert_eq!(s.origin.cors_allow_origin, "https://b.example");
    assert!(s.transcode.is_none());
    assert!(s.hub.encryption.encrypts("live/x") && !s.hub.encryption.encrypts("live/y"));
    assert_eq!(s.auth.playback, crate::auth::PlaybackMode::Open);
    assert_eq!(
        s.auth.secret.as_ref().map(|s| s.expose()),
        Some("12345678901234567890123456789012345"),
        "a secret of digits stays a string"
    );
    // A flag beats the environment.
    let flagged = ServeArgs {
        part_target: Some(Duration::from_millis(200)),
        ..args.clone()
    };
    let s = Settings::load_with_env(&flagged, env(&[("ESTUARY_PACKAGER__PART_TARGET", "250ms")]))
        .unwrap();
    assert_eq!(s.hub.packager.part_target, Duration::from_millis(200));
    // Rejections name the variable and the key.
    for (pairs, needle) in [
        (
            &[("ESTUARY_PACKAGR__PART_TARGET", "1s")][..],
            "ESTUARY_PACKAGR__PART_TARGET",
        ),
        (&[("ESTUARY_PACKAGER__PART_TARGT", "1s")][..], "part_targt"),
        (
            &[("ESTUARY_PACKAGER__WINDOW_SEGMENTS", "many")][..],
            "ESTUARY_PACKAGER__WINDOW_SEGMENTS",
        ),
        (
            &[("ESTUARY_PACKAGER__PART_TARGET", "5s")][..],
            "packager.part_target",
        ),
    ] {
        let err = Settings::load_with_env(&args, env(pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{pairs:?}: {err}");
    }
}

#[test]
fn the_effective_configuration_round_trips_and_hides_secrets() {
    let file: FileConfig = toml::from_str(
        "[packager]\npart_target = \"300ms\"\n[transcode]\nencoder = \"software\"\n\
         [[transcode.rungs]]\nname = \"source\"\ncopy = true\n\
         [[transcode.rungs]]\nname = \"480p\"\nheight = 480\nbitrate_bps = 1200000\npriority = 2\n\
         [srt.passphrases]\n\"live/cam\" = \"camera passphrase\"\n\
         [encryption.streams]\n\"live/x\" = true\n[dash]\nmin_playback_rate = 0.9\n",
    )
    .unwrap();
    let args = ServeArgs {
        http_listen: Some("127.0.0.1:1234".parse().unwrap()),
        auth_secret: Some(crate::auth::SecretString::new(
            "a secret that is long enough, 32 bytes",
        )),
        ..Default::default()
    };
    let s = Settings::resolve(&args, file).unwrap();
    let text = toml::to_string_pretty(&s.effective()).unwrap();
    assert!(
        !text.contains("camera passphrase") && !text.contains("long enough"),
        "{text}"
    );
    assert!(text.contains("secret = \"<redacted>\""), "{text}");
    assert!(text.contains("\"live/cam\" = \"<redacted>\""), "{text}");
    // Without its secrets, the printed configuration resolves to the same settings.
    let again: FileConfig = toml::from_str(
        &text
            .lines()
            .filter(|l| !l.contains(REDACTED))
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let s2 = Settings::resolve(&ServeArgs::default(), again).unwrap();
    assert_eq!(s2.http_listen, s.http_listen);
    assert_eq!(s2.hub.packager, s.hub.packager);
    assert_eq!(s2.hub.encryption, s.hub.encryption);
    assert_eq!(s2.hub.dash.min_playback_rate, 0.9);
    assert_eq!(
        s2.hub.dash.target_latency,
        Some(Duration::from_millis(1200))
    );
    let (r1, r2) = (s.transcode.unwrap(), s2.transcode.unwrap());
    assert_eq!(r1.rungs, r2.rungs);
    assert_eq!(r1.options.audio, r2.options.audio);
}

/// Every value `Settings::resolve` refuses, one row each: the message names the key.
#[test]
fn every_rejection_names_its_key() {
    let rung = |extra: &str| {
        format!(
            "[transcode]\n[[transcode.rungs]]\nname = \"r\"\nheight = 240\nbitrate_bps = 300000\n{extra}"
        )
    };
    let rows: Vec<(String, &str)> = vec![
        ("[packager]\nsegment_target = \"500ms\"".into(), "packager.segment_target"),
        ("[packager]\npart_target = \"50ms\"".into(), "packager.part_target"),
        ("[packager]\nwindow_segments = 2".into(), "packager.window_segments"),
        ("[packager]\nmax_target_duration = \"1s\"".into(), "packager.max_target_duration"),
        ("[encryption]\nrotate_every_segments = 0".into(), "encryption.rotate_every_segments"),
        ("[encryption]\nstreams = { \"demo\" = true }".into(), "encryption.streams"),
        ("[dash]\ntarget_latency = \"50ms\"".into(), "dash.target_latency"),
        ("[dash]\nmin_playback_rate = 0.2".into(), "dash.min_playback_rate"),
        ("[dash]\nmax_playback_rate = 3.0".into(), "max_playback_rate"),
        ("[streams]\nreconnect_grace = \"11m\"".into(), "streams.reconnect_grace"),
        ("[streams]\nmax_streams = 0".into(), "streams.max_streams"),
        ("[streams]\nmax_waiters_per_stream = 0".into(), "max_waiters_per_stream"),
        ("[server]\ncors_allow_origin = \"a\\nb\"".into(), "server.cors_allow_origin"),
        ("[server]\nshutdown_grace = \"6m\"".into(), "server.shutdown_grace"),
        ("[server]\nhttp_header_timeout = \"0s\"".into(), "server.http_header_timeout"),
        ("[auth]\ntoken_ttl = \"0s\"".into(), "auth.token_ttl"),
        ("[auth]\nplayback = \"maybe\"".into(), "auth.playback"),
        ("[auth]\npublish = \"anyone\"".into(), "auth.publish"),
        ("[auth]\nsecret = \"short\"".into(), "auth.secret"),
        ("[auth]\nwebhook_url = \"not a url\"".into(), "auth.webhook_url"),
        ("[auth]\nwebhook_url = \"https://example.com/x\"".into(), "auth.webhook_url"),
        ("[auth]\nwebhook_url = \"http://127.0.0.1/x\"\nwebhook_timeout = \"50ms\"".into(), "auth.webhook_timeout"),
        ("[auth]\npublish = \"webhook\"".into(), "auth.webhook_url"),
        ("[auth]\ntrusted_edge_secret = \"short\"".into(), "auth.trusted_edge_secret"),
        ("[auth]\ntrusted_edge_secret = \"0123456789abcdef0\"\ntrusted_edge_header = \"bad header\"".into(), "auth.trusted_edge_header"),
        ("[api]\ntoken = \"short\"".into(), "api.token"),
        ("[srt]\nlatency = \"10ms\"".into(), "srt.latency"),
        ("[srt]\nudp_recv_buffer_bytes = 1024".into(), "srt.udp_recv_buffer_bytes"),
        ("[srt]\npassphrase = \"short\"".into(), "srt.passphrase"),
        ("[srt.passphrases]\n\"demo\" = \"long enough passphrase\"".into(), "srt.passphrases"),
        ("[srt.passphrases]\n\"live/x\" = \"short\"".into(), "srt.passphrases.\"live/x\""),
        ("[transcode]\nencoder = \"gpu\"".into(), "transcode.encoder"),
        ("[transcode]\naudio_mode = \"copy\"".into(), "transcode.audio_mode"),
        ("[transcode]\naudio_bitrate_bps = 1000".into(), "transcode.audio_bitrate_bps"),
        ("[transcode]\naudio_sample_rate = 22050".into(), "transcode.audio_sample_rate"),
        ("[transcode]\naudio_channels = 6".into(), "transcode.audio_channels"),
        ("[transcode]\nqueue_frames = 2".into(), "transcode.queue_frames"),
        ("[transcode]\nrungs = []".into(), "transcode.rungs"),
        ("[transcode]\npassthrough_streams = [\"demo\"]".into(), "transcode.passthrough_streams"),
        (rung("").replace("name = \"r\"", "name = \"audio\""), "transcode.rungs[0].name"),
        (format!("{}\n[[transcode.rungs]]\nname = \"r\"\ncopy = true", rung("")), "transcode.rungs[1].name"),
        (rung("codec = \"av1\""), "transcode.rungs[0].codec"),
        (rung("").replace("height = 240", "height = 241"), "transcode.rungs[0].height"),
        (rung("").replace("bitrate_bps = 300000", "bitrate_bps = 10"), "transcode.rungs[0].bitrate_bps"),
        (rung("maxrate_bps = 100000"), "transcode.rungs[0].maxrate_bps"),
        (rung("max_frame_rate = 500.0"), "transcode.rungs[0].max_frame_rate"),
    ];
    for (text, key) in rows {
        let file: FileConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let err = match Settings::resolve(&ServeArgs::default(), file) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.starts_with(key)
                || err.contains(&format!("{key}:"))
                || err.contains(&format!("{key} ")),
            "{text}: {err} (want {key})"
        );
    }
}

#[test]
fn unknown_keys_and_bad_values_are_rejected_with_the_key() {
    let err = toml::from_str::<FileConfig>("[packager]\nsegment_targte = \"2s\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("segment_targte"), "{err}");
    let file: FileConfig = toml::from_str("[packager]\npart_target = \"5s\"\n").unwrap();
    let err = Settings::resolve(&ServeArgs::default(), file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("packager.part_target"), "{err}");
    let file: FileConfig = toml::from_str("[server]\nshutdown_grace = \"6m\"\n").unwrap();
    let err = Settings::resolve(&ServeArgs::default(), file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.shutdown_grace"), "{err}");
    let err = toml::from_str::<FileConfig>("[player]\nassets = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("assets"), "{err}");
    let file: FileConfig =
        toml::from_str("[player]\nenabled = false\nassets_dir = \"/srv/player\"\n").unwrap();
    let settings = Settings::resolve(&ServeArgs::default(), file).unwrap();
    assert!(!settings.origin.player.enabled);
    assert_eq!(
        settings.origin.player.assets_dir,
        std::path::PathBuf::from("/srv/player")
    );
    assert_eq!(settings.shutdown_grace, Duration::from_secs(10));
}

#[test]
fn cluster_settings_are_off_by_default_validated_and_printed_without_the_password() {
    let s = Settings::resolve(&ServeArgs::default(), FileConfig::default()).unwrap();
    assert!(s.cluster.is_none());
    assert_eq!(s.effective().cluster.enabled, Some(false));

    let file = |text: &str| -> FileConfig { toml::from_str(text).unwrap() };
    let s = Settings::resolve(
        &ServeArgs::default(),
        file("[cluster]\nenabled = true\nredis_url = \"redis://user:hunter2@10.0.0.1:6379/0\"\nnode_id = \"node-1\"\n\
              advertise_http = \"http://10.0.0.5:8080\"\n"),
    )
    .unwrap();
    let c = s.cluster.as_ref().unwrap();
    assert_eq!(c.node_id, "node-1");
    assert_eq!(c.lease, Duration::from_secs(10));
    assert_eq!(c.heartbeat, Duration::from_secs(2));
    assert_eq!(c.advertise_http.as_deref(), Some("http://10.0.0.5:8080"));
    let printed = toml::to_string(&s.effective()).unwrap();
    assert!(
        printed.contains("redis://user:…@10.0.0.1:6379/0"),
        "{printed}"
    );
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!format!("{c:?}").contains("hunter2"));

    // A host name stands in for a missing node id.
    let s = Settings::resolve(
        &ServeArgs::default(),
        file("[cluster]\nenabled = true\nredis_url = \"redis://127.0.0.1\"\n"),
    )
    .unwrap();
    assert!(!s.cluster.unwrap().node_id.is_empty());

    for (text, key) in [
        ("[cluster]\nenabled = true\n", "cluster.redis_url"),
        (
            "[cluster]\nenabled = true\nredis_url = \"http://x\"\n",
            "cluster.redis_url",
        ),
        (
            "[cluster]\nenabled = true\nredis_url = \"redis://x\"\nnode_id = \"a b\"\n",
            "cluster.node_id",
        ),
        (
            "[cluster]\nenabled = true\nredis_url = \"redis://x\"\nlease = \"1s\"\n",
            "cluster.lease",
        ),
        (
            "[cluster]\nenabled = true\nredis_url = \"redis://x\"\nlease = \"3s\"\nheartbeat = \"3s\"\n",
            "cluster.heartbeat",
        ),
        (
            "[cluster]\nenabled = true\nredis_url = \"redis://x\"\nadvertise_rtmp = \"http://x\"\n",
            "cluster.advertise_rtmp",
        ),
    ] {
        let e = Settings::resolve(&ServeArgs::default(), file(text)).unwrap_err();
        assert!(e.to_string().contains(key), "{text}: {e}");
    }
}
