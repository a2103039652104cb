//! `mtgate mtproto-proxy …` (or the binary named `mtproto-proxy`): the official command line.

use std::process::ExitCode;

use crate::config::Origin;
use crate::official::{IGNORED, Official};

/// Parses the official options and runs the proxy they describe.
pub fn run(args: Vec<String>) -> ExitCode {
    let official = match Official::parse(args) {
        Ok(official) => official,
        Err(e) => {
            eprintln!("mtproto-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let toml = official.to_toml();
    if official.print_config {
        print!("{toml}");
        return ExitCode::SUCCESS;
    }
    for flag in &official.ignored {
        let why = IGNORED
            .iter()
            .find(|(f, _)| f == flag)
            .map_or("", |(_, why)| why);
        eprintln!("mtproto-proxy: {flag} is accepted and ignored ({why})");
    }
    super::run::run_origin(Origin::Generated(toml), None)
}
