//! The server secret: kept out of `Debug` output, read from a file or generated once into the data
//! directory (mode 0600).

use std::path::Path;

use base64::Engine;

use super::{AuthError, B64, MIN_SECRET_BYTES};

/// A secret string from the configuration (never shown by `Debug`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wrap `s`.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

pub(super) fn read_secret_file(path: &Path) -> Result<Option<Vec<u8>>, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let s = text.lines().next().unwrap_or("").trim();
            if s.len() < MIN_SECRET_BYTES {
                return Err(AuthError::TooShort {
                    origin: path.display().to_string(),
                });
            }
            Ok(Some(s.as_bytes().to_vec()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Read `path`, or create it with a fresh random secret (mode 0600; a concurrent creator wins).
pub(super) fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, AuthError> {
    if let Some(s) = read_secret_file(path)? {
        return Ok(s);
    }
    let io = |source| AuthError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        // The data directory holds key material: private to the origin's user.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let text = B64.encode(raw);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new server secret");
            Ok(text.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_secret_file(path)?.ok_or_else(|| io(e))
        }
        Err(e) => Err(io(e)),
    }
}
