//! Reaching Telegram: the DC address table and direct-mode connections.

pub mod dc_table;
pub mod direct;

pub use dc_table::DcTable;
