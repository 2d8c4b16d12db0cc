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
