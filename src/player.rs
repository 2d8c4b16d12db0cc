//! The origin's player page: `GET /live/{name}/` (and `/t/{token}/live/{name}/`) answers a small HTML
//! page that plays the stream with hls.js (LL-HLS) or dash.js (`?engine=dash`), and shows the live
//! latency, the rendition playing, the buffer and stalls.
//!
//! The page (`player/index.html`) is part of the binary. The player libraries are the npm packages
//! `hls.js` and `dashjs`, installed at build time (`npm ci --prefix player`; the Docker image copies
//! them) and read once at start from [`PlayerConfig::assets_dir`]; they are served at
//! `/player/hls.min.js` and `/player/dash.all.min.js`. Without them the page still loads and says
//! what is missing, and the library URLs answer 503.
//!
//! The page holds no media and no secret, so it is served without a token check. Every URL it loads
//! is relative to it (`index.m3u8`, `manifest.mpd`, the ClearKey `license`), so on a token URL the
//! token reaches every request, and those are checked as usual.

use std::path::{Path, PathBuf};

use bytes::Bytes;

/// `player.assets_dir` when none is given: relative to the working directory (the repository's
/// `player/` package after `npm ci`).
pub const DEFAULT_PLAYER_ASSETS_DIR: &str = "player/node_modules";

/// The page, embedded at build time.
pub const PAGE_HTML: &str = include_str!("../player/index.html");

/// The URL directory of the player libraries.
pub const ASSETS_PREFIX: &str = "/player/";

/// `[player]` settings.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Serve the page and the libraries (default `true`).
    pub enabled: bool,
    /// Directory in npm `node_modules` layout holding `hls.js` and `dashjs`
    /// (default [`DEFAULT_PLAYER_ASSETS_DIR`]).
    pub assets_dir: PathBuf,
}

impl Default for PlayerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            assets_dir: DEFAULT_PLAYER_ASSETS_DIR.into(),
        }
    }
}

/// One library: its URL file name and its path below the assets directory.
const LIBRARIES: &[(&str, &str)] = &[
    ("hls.min.js", "hls.js/dist/hls.min.js"),
    ("dash.all.min.js", "dashjs/dist/modern/umd/dash.all.min.js"),
];

/// The player libraries, read at start.
#[derive(Default)]
pub struct PlayerAssets {
    /// (URL file name, bytes) of each library found.
    files: Vec<(&'static str, Bytes)>,
    /// Why libraries are missing (the first failure), for the 503 body.
    missing: Option<String>,
}

impl std::fmt::Debug for PlayerAssets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayerAssets")
            .field(
                "files",
                &self
                    .files
                    .iter()
                    .map(|(n, b)| (*n, b.len()))
                    .collect::<Vec<_>>(),
            )
            .field("missing", &self.missing)
            .finish()
    }
}

impl PlayerAssets {
    /// Read the libraries from `config.assets_dir`. A missing library is logged once (a warning: the
    /// page then cannot play) and its URL answers 503; it never stops the server.
    pub fn load(config: &PlayerConfig) -> Self {
        if !config.enabled {
            return Self::default();
        }
        let mut assets = Self::default();
        for (name, rel) in LIBRARIES {
            let path: PathBuf = config.assets_dir.join(rel);
            match read_small(&path) {
                Ok(bytes) => assets.files.push((name, bytes)),
                Err(e) => {
                    let why = format!(
                        "player library {} not readable: {e} (run `npm ci --prefix player`, or set player.assets_dir)",
                        path.display()
                    );
                    tracing::warn!("{why}");
                    assets.missing.get_or_insert(why);
                }
            }
        }
        assets
    }

    /// The bytes of the library at `/player/{file}`: `Ok(Some)`, `Ok(None)` for no such library, or
    /// `Err(reason)` when it is known but not installed.
    pub fn get(&self, file: &str) -> Result<Option<Bytes>, &str> {
        if let Some((_, b)) = self.files.iter().find(|(n, _)| *n == file) {
            return Ok(Some(b.clone()));
        }
        if LIBRARIES.iter().any(|(n, _)| *n == file) {
            return Err(self.missing.as_deref().unwrap_or("player disabled"));
        }
        Ok(None)
    }
}

/// Read a file of at most 16 MiB (a player library is about 0.5–1 MB).
fn read_small(path: &Path) -> std::io::Result<Bytes> {
    const MAX_BYTES: u64 = 16 << 20;
    let len = std::fs::metadata(path)?.len();
    if len > MAX_BYTES {
        return Err(std::io::Error::other(format!(
            "{len} bytes, more than {MAX_BYTES}"
        )));
    }
    Ok(Bytes::from(std::fs::read(path)?))
}

/// What a path below the token split asks of the player: the page of `live/{name}`, or a redirect
/// of `/live/{name}` to `{name}/` (the page's relative URLs need the trailing slash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// `/live/{name}/`: the page.
    Page,
    /// `/live/{name}`: redirect to the page; the value is the relative `Location` (`{name}/`).
    Redirect(String),
}

/// Match `/live/{name}/` and `/live/{name}` (stream names as [`media::name::is_valid_name`]).
pub fn page_request(path: &str) -> Option<PageRequest> {
    let rest = path.strip_prefix("/live/")?;
    match rest.strip_suffix('/') {
        Some(name) if media::name::is_valid_name(name) => Some(PageRequest::Page),
        Some(_) => None,
        None if media::name::is_valid_name(rest) => Some(PageRequest::Redirect(format!("{rest}/"))),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths_match_stream_directories_only() {
        assert_eq!(page_request("/live/demo/"), Some(PageRequest::Page));
        assert_eq!(
            page_request("/live/demo"),
            Some(PageRequest::Redirect("demo/".into()))
        );
        for other in [
            "/live/",
            "/live",
            "/live/demo/index.m3u8",
            "/live/../",
            "/live/a/b/",
            "/live/.x/",
            "/vod/demo/",
        ] {
            assert_eq!(page_request(other), None, "{other}");
        }
    }

    #[test]
    fn missing_libraries_are_reported_not_fatal() {
        let dir = std::env::temp_dir().join(format!("estuary-player-{}", std::process::id()));
        let hls = dir.join("hls.js/dist");
        std::fs::create_dir_all(&hls).unwrap();
        std::fs::write(hls.join("hls.min.js"), b"/* hls */").unwrap();
        let assets = PlayerAssets::load(&PlayerConfig {
            enabled: true,
            assets_dir: dir.clone(),
        });
        assert_eq!(
            assets.get("hls.min.js").unwrap().unwrap(),
            Bytes::from_static(b"/* hls */")
        );
        let why = assets.get("dash.all.min.js").unwrap_err();
        assert!(
            why.contains("dash.all.min.js") && why.contains("npm ci"),
            "{why}"
        );
        assert_eq!(assets.get("other.js"), Ok(None));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
