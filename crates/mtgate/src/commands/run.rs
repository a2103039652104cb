//! `mtgate run`: start the server, print the links, then serve until SIGTERM/SIGINT, reloading
//! on SIGHUP and reopening the log file on SIGUSR1.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{Config, Origin};
use crate::logging::{self, LogHandle};
use crate::server::Server;
use crate::telemetry::metrics::ReasonLabels;

/// Runs the proxy until a termination signal.
pub fn run(config: Option<PathBuf>, user: Option<String>) -> ExitCode {
    run_origin(super::origin(config), user)
}

/// Runs the proxy from a configuration of any origin until a termination signal.
pub fn run_origin(origin: Origin, user: Option<String>) -> ExitCode {
    let mut config = match Config::load_with_state(origin.clone(), true) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if user.is_some() {
        config.server.user = user;
    }
    let log = match logging::init(&config.server.log_level, config.server.log_file.as_deref()) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("cannot open the log file: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.server.workers {
        builder.worker_threads(workers);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, origin, log))
}

async fn serve(config: Config, origin: Origin, log: LogHandle) -> ExitCode {
    // Handlers first: a signal sent as soon as the listeners or links show up (a supervisor,
    // a test) must not meet the default action and kill the process.
    let signals = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    let (Ok(mut hup), Ok(mut usr1), Ok(mut term), Ok(mut int)) = signals else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let server = match Server::start(config.clone()).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let interactive = std::io::stdout().is_terminal();
    super::link::print_links(&config, server.bound(), None, interactive);
    if origin == Origin::Embedded {
        println!(
            "Running mtgate's embedded default. `mtgate default-config > mtgate.toml` gives a file to edit."
        );
    }
    if let Some(user) = &config.server.user
        && let Err(e) = crate::privileges::drop_to(user, config.server.group.as_deref())
    {
        tracing::error!("cannot drop privileges: {e}");
        return ExitCode::FAILURE;
    }
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&server, &origin),
            _ = usr1.recv() => match log.reopen() {
                Ok(()) => tracing::info!("log file reopened"),
                Err(e) => tracing::error!("cannot reopen the log file: {e}"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let grace = server.shared().config().server.shutdown_grace;
    tracing::info!("shutting down");
    server.shutdown(grace).await;
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

fn reload(server: &Server, origin: &Origin) {
    match Config::load_with_state(origin.clone(), true) {
        Ok(config) => server.reload(config),
        Err(e) => {
            tracing::error!("reload failed, keeping the running configuration: {e}");
            let labels = ReasonLabels {
                listener: String::new(),
                reason: "invalid",
            };
            server.shared().metrics.reloads.get_or_create(&labels).inc();
        }
    }
}
