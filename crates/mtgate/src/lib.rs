//! mtgate: the server and its command line.
//!
//! # Layout
//!
//! - [`config`]: the TOML file, validated into types that cannot be invalid; the embedded
//!   default; [`state`] keeps generated secrets.
//! - [`server`]: binds the listeners, runs accept loops, applies reloads, drains on shutdown.
//! - [`inbound`]: one module per listener kind; [`inbound::mtproto`] is the Telegram proxy
//!   (handshake, masking, session).
//! - [`inbound::tcp`] with [`outbound`]: the layer-4 load balancer over upstream pools
//!   (strategies, health checks, retries, runtime changes through the [`admin`] API).
//! - [`inbound::websocket`]: the WebSocket endpoint (ws/wss, auth, limits, heartbeats) over
//!   upstream pools.
//! - [`telegram`]: the DC table and direct-mode connections to DCs.
//! - [`relay`]: moving bytes between sockets with pooled buffers, idle timeouts, half-close
//!   and memory-pressure eviction.
//! - [`telemetry`]: Prometheus metrics, the `/stats` page and their HTTP endpoint.
//! - [`link`]: shareable `tg://` and `t.me` links and QR codes.
//! - [`cli`] and [`commands`]: the command line; `main.rs` only dispatches.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod config;
pub mod gate;
pub mod inbound;
pub mod link;
pub mod listener;
pub mod logging;
pub mod outbound;
pub mod privileges;
pub mod random;
pub mod relay;
pub mod server;
pub mod state;
pub mod telegram;
pub mod telemetry;
