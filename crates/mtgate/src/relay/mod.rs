//! Moving bytes between two sockets.
//!
//! A connection's relay is one task: two [`pump`]s (one per direction) share the two sockets
//! by reference and run concurrently with an idle watchdog and a kill switch. A pump holds no
//! buffer while it waits: it takes one from the [`buffers::BufferPool`] only when the socket is
//! readable, and gives it back once the bytes are written. An idle connection therefore costs
//! no buffer memory, and the pool can tell how many bytes are in flight and evict the
//! longest-idle connections when a cap is reached ([`registry`]).
//!
//! What happens to the bytes on the way (decryption, TLS record framing, frame checks) is a
//! [`Filter`]; `splice` (Linux) moves bytes between plain TCP sockets without copying them;
//! [`limit`] shapes bandwidth with a token bucket shared by all of a user's
//! connections.

pub mod buffers;
pub mod filter;
pub mod limit;
pub mod pump;
pub mod registry;
#[cfg(target_os = "linux")]
pub mod splice;

pub use buffers::BufferPool;
pub use filter::{Filter, Passthrough};
pub use limit::{Shaped, TokenBucket};
pub use pump::{RelayEnd, relay};
pub use registry::{ConnEntry, ConnRegistry};
