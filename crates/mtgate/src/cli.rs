//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mtgate: an MTProto proxy for Telegram (and more) in one binary.
#[derive(Debug, Parser)]
#[command(name = "mtgate", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (with the embedded default when no config file is given).
    Run {
        /// Configuration file (TOML).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Drop privileges to this user after binding (overrides server.user).
        #[arg(short, long)]
        user: Option<String>,
    },
    /// Check a configuration file and exit (status 0 when valid).
    CheckConfig {
        /// Configuration file (TOML).
        file: PathBuf,
    },
    /// Print the proxy links of every user, with a QR code.
    Link {
        /// Configuration file (default: the embedded default).
        #[arg(short, long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Host name or address to put in the links (default: the listener's public_host).
        #[arg(long)]
        host: Option<String>,
        /// Do not draw QR codes.
        #[arg(long)]
        no_qr: bool,
    },
    /// Print a new random secret (32 hex digits) for a config file.
    Secret,
    /// Read a proxy user's password from standard input (one line) and print its argon2 hash
    /// for `[socks5.users]`, `[http.users]` or a users file.
    HashPassword,
    /// Print the embedded default configuration (a starting point for your own file).
    DefaultConfig,
    /// Write a self-signed certificate and key, e.g. to try a wss `[[gateway]]` out.
    Cert {
        /// A DNS name or IP address the certificate is for (repeat for more; the first is
        /// also the subject CN).
        #[arg(long = "name", value_name = "NAME", required = true)]
        names: Vec<String>,
        /// Where to write the certificate (PEM).
        #[arg(long, value_name = "FILE", default_value = "cert.pem")]
        out_cert: PathBuf,
        /// Where to write the private key (PEM, mode 0600).
        #[arg(long, value_name = "FILE", default_value = "key.pem")]
        out_key: PathBuf,
    },
    /// Telegram's files for middle-proxy mode.
    TelegramConfig {
        /// What to do.
        #[command(subcommand)]
        action: TelegramConfigAction,
    },
    /// Run with the official `mtproto-proxy` command line (also used when the binary is
    /// invoked as `mtproto-proxy`): `-u -p -H -S -P -M -C --nat-info -D --aes-pwd FILE CONF`.
    #[command(name = "mtproto-proxy", disable_help_flag = true)]
    MtprotoProxy {
        /// The official options, as `mtproto-proxy` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
        args: Vec<String>,
    },
}

/// `mtgate telegram-config …`.
#[derive(Debug, Subcommand)]
pub enum TelegramConfigAction {
    /// Download proxy-secret and proxy-multi.conf from core.telegram.org into a directory,
    /// keeping the previous files when a download is not valid.
    Fetch {
        /// Directory to write the files to.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Also fetch the IPv6 list (proxy-multi-v6.conf).
        #[arg(long)]
        ipv6: bool,
    },
}
