//! Reaching Telegram: the DC address table, direct-mode connections and middle-proxy mode.

pub mod dc_table;
pub mod direct;
pub mod middle;

pub use dc_table::DcTable;
