//! The implementation of each subcommand. Each returns the process exit status.

pub mod cert;
pub mod check;
pub mod link;
pub mod mtproto_proxy;
pub mod run;
pub mod telegram_config;

use std::path::PathBuf;

use crate::config::Origin;

/// A config file, or the embedded default.
pub fn origin(path: Option<PathBuf>) -> Origin {
    path.map_or(Origin::Embedded, Origin::File)
}
