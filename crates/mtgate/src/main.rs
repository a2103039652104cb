//! The `mtgate` binary: parses the command line and runs the subcommand.

use std::process::ExitCode;

use clap::Parser;
use mtgate::cli::{Cli, Command};
use mtgate::commands;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { config, user } => commands::run::run(config, user),
        Command::CheckConfig { file } => commands::check::check(file),
        Command::Link {
            config,
            host,
            no_qr,
        } => commands::link::link(config, host, no_qr),
        Command::Secret => {
            println!("{}", mtgate::random::secret().to_hex());
            ExitCode::SUCCESS
        }
        Command::DefaultConfig => {
            print!("{}", mtgate::config::EMBEDDED_DEFAULT);
            ExitCode::SUCCESS
        }
    }
}
