//! `mtgate agent`: the agent side of the reverse tunnel. It dials out to a gateway over
//! WebSocket (+TLS), keeps `replicas` connections up, and serves the gateway's OPENs by
//! connecting to targets on its own network, within its policy.
//!
//! - [`config`]: the agent's own TOML file, validated ([`gateway_url`] parses the URL,
//!   [`tls`] builds the client TLS);
//! - [`policy`]: `allowed_hosts`, `forbidden_hosts` and the special-address default, checked
//!   on the name and on every resolved address;
//! - [`dial`]: TCP, TLS and the WebSocket upgrade to the gateway (and the JSON login,
//!   [`json_auth`]);
//! - [`target`]: dialing a target and mapping failures to wire codes;
//! - [`stream`]: one stream's life (permit, dial, relay with half-close and idle timeout);
//! - [`udp`]: UDP streams (a connected socket per stream, datagrams both ways);
//! - [`run`]: the replica loops, reconnect backoff and the graceful drain;
//! - [`telemetry`]: the agent's metrics, served at `metrics_listen`.

pub mod config;
pub mod dial;
pub mod gateway_url;
pub mod json_auth;
pub mod policy;
pub mod run;
pub mod stream;
pub mod target;
pub mod telemetry;
pub mod tls;
pub mod udp;

#[cfg(test)]
mod config_tests;

pub use config::AgentConfig;
pub use run::run;
pub use telemetry::AgentStats;
