//! mtgate: the server and its command line.
//!
//! # Layout
//!
//! - [`config`]: the TOML file, validated into types that cannot be invalid; the embedded
//!   default; [`state`] keeps generated secrets.
//! - [`server`]: binds the listeners, runs accept loops, applies reloads, drains on shutdown.
//! - [`inbound`]: one module per listener kind; [`inbound::mtproto`] is the Telegram proxy
//!   (handshake, masking, session); [`inbound::socks5`], [`inbound::http`] and the
//!   shared [`inbound::proxy`] serve the SOCKS5, HTTP and mixed proxy listeners;
//!   [`inbound::tcp`] is the layer-4 load balancer over upstream pools;
//!   [`inbound::websocket`] is the WebSocket endpoint (ws/wss, auth, limits, heartbeats) over
//!   upstream pools.
//! - [`acl`] and [`auth`]: proxy rules (with the safe default), users, passwords, lockout.
//! - [`outbound`]: reaching a proxy client's destination, directly or through an upstream;
//!   the named upstream pools (strategies, health checks, retries), changed at run time
//!   through the [`admin`] API.
//! - [`telegram`]: the DC table, direct-mode connections to DCs, and middle-proxy mode
//!   (pools of multiplexed connections to Telegram's middle proxies, for the ad tag).
//! - [`tunnel`]: the gateway/agent reverse tunnel over WebSocket (+TLS) and its multiplexer.
//! - [`relay`]: moving bytes between sockets with pooled buffers, idle timeouts, half-close
//!   and memory-pressure eviction.
//! - [`telemetry`]: Prometheus metrics, the `/stats` page and their HTTP endpoint.
//! - [`link`]: shareable `tg://` and `t.me` links and QR codes.
//! - [`cli`] and [`commands`]: the command line; `main.rs` only dispatches. [`official`]
//!   maps the official `mtproto-proxy` command line onto a configuration.

pub mod acl;
pub mod admin;
pub mod allocator;
pub mod auth;
pub mod cli;
pub mod commands;
pub mod config;
pub mod gate;
pub mod inbound;
pub mod link;
pub mod listener;
pub mod logging;
pub mod official;
pub mod outbound;
pub mod privileges;
pub mod random;
pub mod relay;
pub mod server;
pub mod state;
pub mod telegram;
pub mod telemetry;
pub mod tunnel;
