//! The clients multiplexed over one middle-proxy connection, keyed by connection id.
//!
//! The table is bounded (`clients_per_connection`). Each client has a queue of what the
//! middle proxy sent it, bounded in bytes: the connection's reader never waits for a client,
//! so one slow client cannot stall the others; a client whose queue overflows is closed
//! (and the middle proxy told with RPC_CLOSE_CONN).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// What the middle proxy sends a client.
#[derive(Debug)]
pub enum ToClient {
    /// An MTProto packet (RPC_PROXY_ANS).
    Packet(Vec<u8>),
    /// A quick acknowledgement token (RPC_SIMPLE_ACK).
    QuickAck(u32),
    /// Close the client (RPC_CLOSE_EXT, or its queue overflowed).
    Close(CloseReason),
}

/// Why the connection side closed a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The middle proxy sent RPC_CLOSE_EXT.
    ClosedByMiddle,
    /// The client read too slowly and its queue overflowed.
    Overflow,
}

impl CloseReason {
    /// A metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClosedByMiddle => "closed_by_middle_proxy",
            Self::Overflow => "client_queue_overflow",
        }
    }
}

/// The connection's side of one client.
#[derive(Debug)]
struct Entry {
    tx: mpsc::UnboundedSender<ToClient>,
    queued: Arc<AtomicUsize>,
}

/// What happened to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for the client.
    Queued,
    /// The client is unknown (already gone).
    Unknown,
    /// The client's queue is full: it was closed and removed; tell the middle proxy.
    Overflowed,
}

/// The client table of one connection.
#[derive(Debug)]
pub struct Clients {
    map: Mutex<HashMap<u64, Entry>>,
    capacity: usize,
    queue_cap: usize,
}

/// The receiving end a client session holds.
#[derive(Debug)]
pub struct ClientQueue {
    /// Messages from the middle proxy.
    pub rx: mpsc::UnboundedReceiver<ToClient>,
    queued: Arc<AtomicUsize>,
}

impl ClientQueue {
    /// The next message; `None` when the connection is gone.
    pub async fn recv(&mut self) -> Option<ToClient> {
        let message = self.rx.recv().await?;
        if let ToClient::Packet(p) = &message {
            self.queued.fetch_sub(p.len(), Ordering::Relaxed);
        }
        Some(message)
    }
}

impl Clients {
    /// An empty table of at most `capacity` clients, each with `queue_cap` bytes of queue.
    pub fn new(capacity: usize, queue_cap: usize) -> Self {
        Self {
            map: Mutex::default(),
            capacity,
            queue_cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clients now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a client with a fresh random id; `None` when the table is full.
    pub fn add(&self) -> Option<(u64, ClientQueue)> {
        let mut map = self.lock();
        if map.len() >= self.capacity {
            return None;
        }
        let mut id = rand::random::<u64>();
        while id == 0 || map.contains_key(&id) {
            id = rand::random();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        map.insert(
            id,
            Entry {
                tx,
                queued: queued.clone(),
            },
        );
        Some((id, ClientQueue { rx, queued }))
    }

    /// Removes a client; whether it was there (if so, the middle proxy still knows it).
    pub fn remove(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Queues a packet for a client, closing it if its queue would overflow.
    pub fn deliver(&self, id: u64, packet: Vec<u8>) -> Delivery {
        let mut map = self.lock();
        let Some(entry) = map.get(&id) else {
            return Delivery::Unknown;
        };
        let len = packet.len();
        if entry.queued.load(Ordering::Relaxed) + len > self.queue_cap {
            let entry = map.remove(&id).expect("present");
            let _ = entry.tx.send(ToClient::Close(CloseReason::Overflow));
            return Delivery::Overflowed;
        }
        entry.queued.fetch_add(len, Ordering::Relaxed);
        if entry.tx.send(ToClient::Packet(packet)).is_err() {
            map.remove(&id);
            return Delivery::Unknown;
        }
        Delivery::Queued
    }

    /// Sends a quick ack to a client.
    pub fn quick_ack(&self, id: u64, token: u32) {
        if let Some(entry) = self.lock().get(&id) {
            let _ = entry.tx.send(ToClient::QuickAck(token));
        }
    }

    /// Closes a client on the middle proxy's request.
    pub fn close(&self, id: u64) {
        if let Some(entry) = self.lock().remove(&id) {
            let _ = entry.tx.send(ToClient::Close(CloseReason::ClosedByMiddle));
        }
    }

    /// Drops every client (the connection died): their queues end.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_client_is_closed_without_blocking_others() {
        let clients = Clients::new(2, 100);
        let (slow, mut slow_q) = clients.add().unwrap();
        let (fast, mut fast_q) = clients.add().unwrap();
        assert!(clients.add().is_none(), "the table is bounded");
        assert_eq!(clients.deliver(slow, vec![0; 60]), Delivery::Queued);
        assert_eq!(clients.deliver(slow, vec![0; 60]), Delivery::Overflowed);
        assert_eq!(clients.deliver(slow, vec![0; 4]), Delivery::Unknown);
        assert_eq!(clients.deliver(fast, vec![1; 80]), Delivery::Queued);
        assert!(matches!(fast_q.recv().await, Some(ToClient::Packet(p)) if p.len() == 80));
        assert_eq!(clients.deliver(fast, vec![1; 80]), Delivery::Queued);
        assert!(matches!(slow_q.recv().await, Some(ToClient::Packet(_))));
        assert!(matches!(
            slow_q.recv().await,
            Some(ToClient::Close(CloseReason::Overflow))
        ));
        assert!(slow_q.recv().await.is_none());
        assert_eq!(clients.len(), 1);
        clients.clear();
        assert!(matches!(fast_q.recv().await, Some(ToClient::Packet(_))));
        assert!(fast_q.recv().await.is_none());
    }
}
