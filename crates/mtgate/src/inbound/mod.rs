//! Listeners: one accept loop per listener kind.

pub mod full;
pub mod gateway;
pub mod http;
pub mod mtproto;
pub mod proxy;
pub mod socks5;
pub mod tcp;
pub mod websocket;
