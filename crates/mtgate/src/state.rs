//! The state directory: secrets generated for users configured as "auto", so links survive
//! restarts.
//!
//! The file is `state.toml` in the state directory, written atomically with mode 0600.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mtgate_proto::mtproto::secret::Secret;
use serde::{Deserialize, Serialize};

use crate::config::SecretSource;

const FILE_NAME: &str = "state.toml";

/// The default state directory: `$MTGATE_STATE_DIR`, else `/var/lib/mtgate` for root, else
/// `$XDG_STATE_HOME/mtgate` or `~/.local/state/mtgate`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MTGATE_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/mtgate");
    }
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME") {
        return Path::new(&dir).join("mtgate");
    }
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".local/state/mtgate"),
        None => PathBuf::from(".mtgate-state"),
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateData {
    /// "listener/user" → 32 hex digits.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

/// The state file, loaded.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    data: StateData,
    dirty: bool,
    writable: bool,
}

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read or written.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("state file {path} is damaged: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl StateFile {
    /// Loads the state file in `dir` (an absent file is an empty state). `writable` says
    /// whether new secrets may be saved; read-only state (for `check-config`) generates
    /// throw-away secrets for missing entries.
    pub fn open(dir: &Path, writable: bool) -> Result<Self, StateError> {
        let path = dir.join(FILE_NAME);
        let data = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| StateError::Invalid {
                path: path.clone(),
                message: e.message().to_owned(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateData::default(),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        Ok(Self {
            path,
            data,
            dirty: false,
            writable,
        })
    }

    /// Writes the file if secrets were added.
    pub fn save(&mut self) -> Result<(), StateError> {
        if !self.dirty || !self.writable {
            return Ok(());
        }
        let io = |source| StateError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let body = toml::to_string(&self.data).map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("toml.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(
            b"# Written by mtgate: secrets of users configured as \"auto\". Keep it private.\n",
        )
        .and_then(|()| file.write_all(body.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        self.dirty = false;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl SecretSource for StateFile {
    fn auto_secret(&mut self, listener: &str, user: &str) -> Result<Secret, String> {
        let key = format!("{listener}/{user}");
        if let Some(hex) = self.data.secrets.get(&key) {
            return Secret::from_hex(hex).map_err(|e| {
                format!(
                    "the stored secret in {} is damaged: {e}",
                    self.path.display()
                )
            });
        }
        let secret = crate::random::secret();
        self.data.secrets.insert(key, secret.to_hex());
        self.dirty = true;
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_survive_a_reload() {
        let dir = std::env::temp_dir().join(format!("mtgate-state-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut state = StateFile::open(&dir, true).unwrap();
        let first = state.auto_secret("l", "alice").unwrap();
        assert_eq!(state.auto_secret("l", "alice").unwrap(), first);
        state.save().unwrap();
        let mode = std::fs::metadata(state.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut again = StateFile::open(&dir, true).unwrap();
        assert_eq!(again.auto_secret("l", "alice").unwrap(), first);
        assert_ne!(again.auto_secret("l", "bob").unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_only_state_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("mtgate-state-ro-{}", std::process::id()));
        let mut state = StateFile::open(&dir, false).unwrap();
        state.auto_secret("l", "u").unwrap();
        state.save().unwrap();
        assert!(!dir.exists());
    }
}
