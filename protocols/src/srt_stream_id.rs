//! SRT stream IDs: which stream a caller wants to publish, from the `SRTO_STREAMID` string it sent in the
//! handshake. Pure: a string in, a [`StreamRequest`] or a [`StreamIdError`] out; the driver maps errors to
//! handshake reject codes.
//!
//! Two forms are accepted:
//! - the SRT access-control syntax (libsrt `docs/features/access-control.md`, draft-sharabayko-srt
//!   appendix B): `#!::` followed by comma-separated `key=value` entries. `r` (resource) names the stream
//!   as `live/{name}`; `m` (mode) must be `publish`; `t` (type), when given, must be `stream`; `u` (user)
//!   is kept for logs; `key` is the publish key (Estuary's custom key); every other key (`h`, `s`, custom
//!   ones) is kept in [`StreamRequest::params`] for the publish webhook. `r`, `m`, `t`, `u` or `key`
//!   given twice is malformed. `r` may also carry a query: `r=live/demo?key=…`;
//!   **`m` is required**: the syntax's default mode is `request` (playback), which Estuary does not offer
//!   over SRT, so `#!::r=live/demo` is refused with a message that says to add `m=publish`;
//! - a plain `live/{name}` or `live/{name}?key=…&…`, which means publish (for encoders whose stream ID
//!   field is free text).
//!
//! Keys and values are case-sensitive and not trimmed. What is not checked here: passphrases, whether
//! the stream is already live.

/// The prefix of the SRT access-control syntax.
pub const ACCESS_CONTROL_PREFIX: &str = "#!::";

/// A caller's valid publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// The full stream name, `live/{name}`, with a valid `{name}` ([`media::name::is_valid_name`]).
    pub stream: String,
    /// The `u=` (user name) entry, if given. Logged, and passed to the publish webhook.
    pub user: Option<String>,
    /// Every entry but `r` and `m` (the publish key as `key`), and the query of a resource
    /// `live/{name}?…`, percent-decoded. For publish authorisation.
    pub params: std::collections::BTreeMap<String, String>,
}

/// Why a stream ID does not name a publish Estuary accepts. `Display` quotes caller-sent text with Rust
/// escapes (`{:?}`), so a log line cannot be forged through it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamIdError {
    /// The caller sent no stream ID (or an empty one).
    #[error("no stream id (expected #!::r=live/{{name}},m=publish)")]
    Missing,
    /// The access-control syntax is broken.
    #[error("malformed stream id: {0}")]
    Malformed(&'static str),
    /// `m=` names a mode other than `publish` (e.g. `request`: playback over SRT is not offered).
    #[error("mode m={0:?} is not offered (only m=publish)")]
    UnsupportedMode(String),
    /// No `m=` key: SRT's default mode is `request` (playback), which is not offered.
    #[error(
        "no m= key: SRT's default mode is request (playback), which is not offered; add m=publish"
    )]
    MissingMode,
    /// `t=` names a type other than `stream` (e.g. `file`).
    #[error("type t={0:?} is not offered (only t=stream)")]
    UnsupportedType(String),
    /// The resource is not `live/{name}` with a valid name.
    #[error("invalid stream name {0:?} (expected live/{{name}}, name 1-64 of A-Z a-z 0-9 _ - .)")]
    InvalidName(String),
}

/// Parse a caller's stream ID (see the module docs for the accepted forms).
///
/// Errors: [`StreamIdError`]; never panics, whatever the input.
pub fn parse_stream_id(id: &str) -> Result<StreamRequest, StreamIdError> {
    if id.is_empty() {
        return Err(StreamIdError::Missing);
    }
    let Some(entries) = id.strip_prefix(ACCESS_CONTROL_PREFIX) else {
        let (stream, params) = resource_and_query(id)?;
        return Ok(StreamRequest {
            stream,
            user: None,
            params,
        });
    };
    let (mut resource, mut mode, mut kind, mut user, mut key) = (None, None, None, None, None);
    let mut others = Vec::new();
    for entry in entries.split(',') {
        let Some((k, value)) = entry.split_once('=') else {
            return Err(StreamIdError::Malformed("an entry without '='"));
        };
        let slot = match k {
            "" => return Err(StreamIdError::Malformed("an entry without a key")),
            "r" => &mut resource,
            "m" => &mut mode,
            "t" => &mut kind,
            "u" => &mut user,
            "key" => &mut key,
            _ => {
                others.push((k, value));
                continue;
            }
        };
        if slot.replace(value).is_some() {
            return Err(StreamIdError::Malformed("a key given twice"));
        }
    }
    let Some(resource) = resource else {
        return Err(StreamIdError::Malformed("no r= (resource) key"));
    };
    match mode {
        Some("publish") => {}
        Some(other) => return Err(StreamIdError::UnsupportedMode(other.to_owned())),
        None => return Err(StreamIdError::MissingMode),
    }
    if let Some(other) = kind.filter(|t| *t != "stream") {
        return Err(StreamIdError::UnsupportedType(other.to_owned()));
    }
    let (stream, mut params) = resource_and_query(resource)?;
    for (k, v) in others.into_iter().rev() {
        params.insert(k.to_owned(), v.to_owned());
    }
    for (k, v) in [("t", kind), ("u", user), ("key", key)] {
        if let Some(v) = v {
            params.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(StreamRequest {
        stream,
        user: user.map(str::to_owned),
        params,
    })
}

/// `live/{name}[?query]`: the stream name and the query's parameters.
fn resource_and_query(
    resource: &str,
) -> Result<(String, std::collections::BTreeMap<String, String>), StreamIdError> {
    match resource.split_once('?') {
        Some((name, query)) => Ok((stream_name(name)?, crate::query::query_params(query))),
        None => Ok((stream_name(resource)?, Default::default())),
    }
}

/// `live/{name}` with a valid name, as the full stream name.
fn stream_name(resource: &str) -> Result<String, StreamIdError> {
    resource
        .parse::<media::name::StreamName>()
        .map(media::name::StreamName::into_string)
        .map_err(|e| StreamIdError::InvalidName(e.0))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn publish(stream: &str, user: Option<&str>) -> Result<StreamRequest, StreamIdError> {
        Ok(StreamRequest {
            stream: stream.to_owned(),
            user: user.map(str::to_owned),
            params: Default::default(),
        })
    }

    /// The request without its parameters (checked in their own test).
    fn parse(id: &str) -> Result<StreamRequest, StreamIdError> {
        parse_stream_id(id).map(|r| StreamRequest {
            params: Default::default(),
            ..r
        })
    }

    #[test]
    fn stream_id_carries_the_publish_key_and_other_parameters() {
        let r = parse_stream_id("#!::r=live/demo,m=publish,key=abc_-1,u=alice,s=sess").unwrap();
        assert_eq!(r.stream, "live/demo");
        assert_eq!(r.params.get("key").map(String::as_str), Some("abc_-1"));
        assert_eq!(r.params.get("u").map(String::as_str), Some("alice"));
        assert_eq!(r.params.get("s").map(String::as_str), Some("sess"));
        let r = parse_stream_id("#!::r=live/demo?key=k1%2D,m=publish").unwrap();
        assert_eq!(
            (r.stream.as_str(), r.params.get("key").map(String::as_str)),
            ("live/demo", Some("k1-"))
        );
        let r = parse_stream_id("live/demo?key=k2&x=y").unwrap();
        assert_eq!(
            (r.stream.as_str(), r.params.get("key").map(String::as_str)),
            ("live/demo", Some("k2"))
        );
        assert_eq!(
            parse_stream_id("#!::r=live/demo,m=publish,key=a,key=b"),
            Err(StreamIdError::Malformed("a key given twice"))
        );
        assert!(matches!(
            parse_stream_id("live/de mo?key=a"),
            Err(StreamIdError::InvalidName(_))
        ));
    }

    #[test]
    fn stream_id_access_control_publish_is_accepted_in_any_key_order() {
        assert_eq!(
            parse("#!::r=live/demo,m=publish"),
            publish("live/demo", None)
        );
        assert_eq!(
            parse("#!::m=publish,r=live/demo"),
            publish("live/demo", None)
        );
        // u is kept; h, s, t=stream and custom keys are tolerated.
        assert_eq!(
            parse("#!::u=alice,r=live/cam-1.main,h=example.com,s=abc123,t=stream,m=publish,x=1"),
            publish("live/cam-1.main", Some("alice"))
        );
        // A value may itself contain '=' (only the first one splits); it then fails as a name.
        assert!(matches!(
            parse("#!::r=live/a=b,m=publish"),
            Err(StreamIdError::InvalidName(_))
        ));
    }

    #[test]
    fn stream_id_plain_form_means_publish() {
        assert_eq!(parse("live/demo"), publish("live/demo", None));
        assert_eq!(
            parse("live/x"),
            publish("live/x", None),
            "one-character name"
        );
        let longest = format!("live/{}", "n".repeat(64));
        assert_eq!(parse(&longest), publish(&longest, None));
        let too_long = format!("live/{}", "n".repeat(65));
        assert_eq!(
            parse(&too_long),
            Err(StreamIdError::InvalidName(too_long.clone()))
        );
    }

    #[test]
    fn stream_id_modes_other_than_publish_are_refused() {
        assert_eq!(
            parse("#!::r=live/demo,m=request"),
            Err(StreamIdError::UnsupportedMode("request".into()))
        );
        assert_eq!(
            parse("#!::r=live/demo,m=bidirectional"),
            Err(StreamIdError::UnsupportedMode("bidirectional".into()))
        );
        assert_eq!(
            parse("#!::r=live/demo,m=Publish"),
            Err(StreamIdError::UnsupportedMode("Publish".into())),
            "values are case-sensitive"
        );
        assert_eq!(
            parse("#!::r=live/demo"),
            Err(StreamIdError::MissingMode),
            "the syntax's default mode is request"
        );
        assert_eq!(
            parse("#!::r=live/demo,m=publish,t=file"),
            Err(StreamIdError::UnsupportedType("file".into()))
        );
    }

    #[test]
    fn stream_id_malformed_and_invalid_names_are_refused() {
        use StreamIdError::*;
        for (id, want) in [
            ("", Missing),
            ("#!::", Malformed("an entry without '='")),
            (
                "#!::r=live/demo,,m=publish",
                Malformed("an entry without '='"),
            ),
            (
                "#!::r=live/demo,m=publish,",
                Malformed("an entry without '='"),
            ),
            ("#!::r", Malformed("an entry without '='")),
            (
                "#!::=x,r=live/demo,m=publish",
                Malformed("an entry without a key"),
            ),
            ("#!::m=publish", Malformed("no r= (resource) key")),
            (
                "#!::r=live/a,r=live/b,m=publish",
                Malformed("a key given twice"),
            ),
            (
                "#!::r=live/a,m=publish,m=publish",
                Malformed("a key given twice"),
            ),
        ] {
            assert_eq!(parse(id), Err(want), "{id:?}");
        }
        for bad in [
            "demo",
            "live/",
            "live/.hidden",
            "live/a/b",
            "live/../x",
            "other/demo",
            "/live/demo",
            " live/demo",
            "live/demo ",
            "live/dé",
            "#!:r=live/demo,m=publish",
        ] {
            assert_eq!(parse(bad), Err(InvalidName(bad.into())), "plain {bad:?}");
        }
        assert_eq!(
            parse("#!::r=demo,m=publish"),
            Err(InvalidName("demo".into()))
        );
        assert_eq!(parse("#!::r=,m=publish"), Err(InvalidName(String::new())));
    }

    #[test]
    fn stream_id_error_display_escapes_caller_text() {
        let e = parse("#!::r=live/x\nforged log line,m=publish").unwrap_err();
        let shown = e.to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.contains("\\n"), "{shown}");
    }

    proptest! {
        #[test]
        fn stream_id_parser_never_panics(id in ".{0,600}") {
            let _ = parse_stream_id(&id);
            let _ = parse_stream_id(&format!("{ACCESS_CONTROL_PREFIX}{id}"));
        }

        #[test]
        fn stream_id_parser_never_panics_on_entry_soup(
            entries in proptest::collection::vec("[rmtuhs=,]{0,3}[a-z/=.]{0,12}", 0..8)
        ) {
            let _ = parse_stream_id(&format!("{ACCESS_CONTROL_PREFIX}{}", entries.join(",")));
        }

        #[test]
        fn stream_id_valid_names_round_trip_with_extra_keys(
            name in "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}",
            extra in proptest::collection::vec(("[a-l]", "[a-z0-9]{0,8}"), 0..4),
            mode_first in any::<bool>(),
        ) {
            let mut entries: Vec<String> =
                extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let (r, m) = (format!("r=live/{name}"), "m=publish".to_owned());
            if mode_first {
                entries.insert(0, m);
                entries.push(r);
            } else {
                entries.insert(0, r);
                entries.push(m);
            }
            let id = format!("{ACCESS_CONTROL_PREFIX}{}", entries.join(","));
            let want = format!("live/{name}");
            prop_assert_eq!(parse(&id), publish(&want, None));
            prop_assert_eq!(parse(&want), publish(&want, None));
        }
    }
}
