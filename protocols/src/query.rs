//! URL query strings (stream IDs, RTMP stream names and HTTP requests carry `key=value` pairs).

use std::collections::BTreeMap;

/// Percent-decoded `key=value` pairs of a URL query (`application/x-www-form-urlencoded`, WHATWG URL
/// §5.1); at most the first 32 pairs, the last of a repeated key winning.
pub fn query_params(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .take(32)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Whether `query` has the key `key` among the pairs [`query_params`] reads (its first 32), compared
/// after percent-decoding; allocates only for a key that needs decoding.
pub fn has_param(query: &str, key: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .take(32)
        .any(|(k, _)| k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_param_agrees_with_query_params() {
        for query in [
            "_HLS_msn=3&_HLS_part=1",
            "a=1&_HLS_%6Dsn=3",
            "_HLS_msn",
            "x=_HLS_msn",
            "",
            "&&=&_HLS_msn=",
        ] {
            assert_eq!(
                has_param(query, "_HLS_msn"),
                query_params(query).contains_key("_HLS_msn"),
                "{query}"
            );
        }
        let late = (0..40)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
            + "&_HLS_msn=1";
        assert_eq!(
            has_param(&late, "_HLS_msn"),
            query_params(&late).contains_key("_HLS_msn")
        );
    }
}
