//! `mtgate agent --config agent.toml`: run the tunnel agent until SIGTERM/SIGINT, then drain
//! (GOAWAY, open streams get `drain_timeout`) and exit 0.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::telemetry::endpoint;
use crate::telemetry::process::ProcessCollector;
use crate::tunnel::agent::telemetry::AgentCollector;
use crate::tunnel::agent::{self, AgentConfig, AgentStats};

/// How long tasks still on the runtime get once the agent has stopped.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Loads the agent's config and runs it.
pub fn agent(config: &Path) -> ExitCode {
    let config = match AgentConfig::load(config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = crate::logging::init(&config.log_level, None) {
        eprintln!("cannot start logging: {e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(serve(Arc::new(config)));
    // The drain is over: do not wait for idle blocking threads to time out.
    runtime.shutdown_timeout(EXIT_GRACE);
    status
}

async fn serve(config: Arc<AgentConfig>) -> ExitCode {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    tracing::info!(
        gateway = %config.gateway.authority(),
        client_id = %config.client_id,
        replicas = config.replicas,
        "agent starting"
    );
    let shutdown = CancellationToken::new();
    let stats = Arc::new(AgentStats::default());
    // Metrics stay up through the drain.
    let stopped = CancellationToken::new();
    if let Some(addr) = config.metrics_listen {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                let mut registry = Registry::default();
                registry.register_collector(Box::new(AgentCollector(stats.clone())));
                registry.register_collector(Box::new(ProcessCollector));
                tracing::info!(%addr, "metrics at http://{addr}/metrics");
                let registry = Arc::new(registry);
                tokio::spawn(endpoint::serve(listener, registry, None, stopped.clone()));
            }
            Err(e) => {
                tracing::error!(%addr, "cannot listen for metrics: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let running = tokio::spawn(agent::run(config, stats, shutdown.clone()));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
    let _ = running.await;
    stopped.cancel();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
