//! `mtgate check-config FILE`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{Config, Origin};

/// Validates the file without writing anything; prints a summary or the error.
pub fn check(file: PathBuf) -> ExitCode {
    match Config::load_with_state(Origin::File(file.clone()), false) {
        Ok(config) => {
            println!("{}: valid", file.display());
            for l in &config.mtproto {
                let addrs: Vec<String> = l.listen.iter().map(ToString::to_string).collect();
                println!(
                    "  mtproto {:?} on {} with {} user(s)",
                    l.name,
                    addrs.join(", "),
                    l.users.len()
                );
            }
            for g in &config.gateway {
                let addrs: Vec<String> = g.listen.iter().map(ToString::to_string).collect();
                println!(
                    "  gateway {:?} on {} ({}{}) with {} inline credential(s){}{}",
                    g.name,
                    addrs.join(", "),
                    if g.tls.is_some() { "wss" } else { "ws" },
                    if g.mtls { ", client certificates" } else { "" },
                    g.credentials.len(),
                    if g.credentials_file.is_some() {
                        ", a credentials file"
                    } else {
                        ""
                    },
                    if g.auth_url.is_some() {
                        ", an auth_url"
                    } else {
                        ""
                    },
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}
