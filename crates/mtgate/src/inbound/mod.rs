//! Listeners: one accept loop per listener kind.

pub mod mtproto;
pub mod tcp;
pub mod websocket;
