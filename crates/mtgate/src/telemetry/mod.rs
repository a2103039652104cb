//! What mtgate tells its operator: Prometheus metrics, the `/stats` text page, and the HTTP
//! endpoint that serves both (loopback by default).

pub mod endpoint;
pub mod families;
pub mod metrics;
pub mod pools;
pub mod process;
pub mod proxy_metrics;
pub mod stats;
pub mod tunnel;

pub use metrics::Metrics;
