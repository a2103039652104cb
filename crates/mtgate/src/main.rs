//! The `mtgate` binary: parses the command line and runs the subcommand.

use std::process::ExitCode;

use clap::Parser;
use mtgate::cli::{Cli, Command, TelegramConfigAction};
use mtgate::commands;

fn main() -> ExitCode {
    mtgate::allocator::tune();
    // Installed (or linked) as `mtproto-proxy`, the binary takes the official command line.
    let mut args = std::env::args();
    let program = args.next().unwrap_or_default();
    if std::path::Path::new(&program)
        .file_name()
        .is_some_and(|n| n == "mtproto-proxy")
    {
        return commands::mtproto_proxy::run(args.collect());
    }
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
        Command::HashPassword => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("cannot read the password from standard input");
                return ExitCode::FAILURE;
            }
            let password = line.trim_end_matches(['\r', '\n']);
            if password.is_empty() || password.len() > 255 {
                eprintln!("the password must be 1 to 255 bytes (SOCKS5 carries no more)");
                return ExitCode::FAILURE;
            }
            println!("{}", mtgate::auth::password::hash(password.as_bytes()));
            ExitCode::SUCCESS
        }
        Command::Agent { config } => commands::agent::agent(&config),
        Command::MtprotoProxy { args } => commands::mtproto_proxy::run(args),
        Command::TelegramConfig {
            action: TelegramConfigAction::Fetch { dir, ipv6 },
        } => commands::telegram_config::fetch(dir, ipv6),
        Command::Cert {
            names,
            out_cert,
            out_key,
        } => commands::cert::cert(names, out_cert, out_key),
        Command::DefaultConfig => {
            print!("{}", mtgate::config::EMBEDDED_DEFAULT);
            ExitCode::SUCCESS
        }
    }
}
