//! `mtgate link`: the links of every user, for sharing.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::link::{self, ProxyLink};

/// Prints the links (and QR codes) of every MTProto listener's users.
pub fn link(config: Option<PathBuf>, host: Option<String>, no_qr: bool) -> ExitCode {
    let config = match Config::load_with_state(super::origin(config), true) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    print_links(&config, &[], host.as_deref(), !no_qr);
    ExitCode::SUCCESS
}

/// Prints every listener's links. `bound` gives the real addresses once listening.
pub fn print_links(
    config: &Config,
    bound: &[(String, std::net::SocketAddr)],
    host: Option<&str>,
    qr: bool,
) {
    for listener in &config.mtproto {
        let addr = bound
            .iter()
            .find(|(n, _)| *n == listener.name)
            .map(|(_, a)| *a);
        let (guessed_host, port) = link::public_endpoint(listener, addr);
        let host = host.map_or(guessed_host, str::to_owned);
        println!(
            "Listener {:?} — links for Telegram (share them with your users):",
            listener.name
        );
        let links = link::links(listener, &host, port);
        for l in &links {
            println!("  {} [{}]\n    {}\n    {}", l.user, l.label, l.tg, l.https);
        }
        if qr {
            print_qr(links.first());
        }
        if listener.public_host.is_none() {
            println!(
                "  (set public_host in the config if clients reach this server under another name or address)"
            );
        }
    }
}

fn print_qr(first: Option<&ProxyLink>) {
    if let Some(code) = first.and_then(|l| link::qr_code(&l.https)) {
        println!("\n  QR code of the first link:\n{code}");
    }
}
