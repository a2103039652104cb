//! The clients multiplexed over one middle-proxy connection, keyed by connection id.
//!
//! The table is bounded (`clients_per_connection`). Each client has a queue of what the
//! middle proxy sent it, bounded in bytes: the connection's reader never waits for a client,
//! so one slow client cannot stall the others; a client whose queue overflows is closed
//! (and the middle proxy told with RPC_CLOSE_CONN).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

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

/// One client's queue, shared by the connection (pushing) and the session (popping). A plain
/// deque behind a mutex costs nothing while empty, unlike a channel's preallocated block:
/// idle clients are the common case.
#[derive(Debug, Default)]
struct Slot {
    queue: Mutex<VecDeque<ToClient>>,
    queued: AtomicUsize,
    closed: AtomicBool,
    notify: Notify,
}

impl Slot {
    fn push(&self, message: ToClient) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(message);
        // A stored permit if the session is not waiting: no wakeup is lost.
        self.notify.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// The connection's side of one client; dropping it (removal, or the connection's end)
/// ends the client's queue.
#[derive(Debug)]
struct Entry(Arc<Slot>);

impl Drop for Entry {
    fn drop(&mut self) {
        self.0.close();
    }
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
pub struct ClientQueue(Arc<Slot>);

impl ClientQueue {
    /// The next message; `None` once the connection has dropped the client and the queue
    /// is empty. Cancel-safe: a message is taken only when it is returned.
    pub async fn recv(&mut self) -> Option<ToClient> {
        loop {
            {
                let mut queue = self.0.queue.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(message) = queue.pop_front() {
                    if queue.is_empty() {
                        // Idle clients keep no queue memory.
                        *queue = VecDeque::new();
                    }
                    if let ToClient::Packet(p) = &message {
                        self.0.queued.fetch_sub(p.len(), Ordering::Relaxed);
                    }
                    return Some(message);
                }
            }
            if self.0.closed.load(Ordering::Acquire) {
                return None;
            }
            self.0.notify.notified().await;
        }
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
        let slot = Arc::new(Slot::default());
        map.insert(id, Entry(slot.clone()));
        Some((id, ClientQueue(slot)))
    }

    /// Removes a client; whether it was there (if so, the middle proxy still knows it).
    pub fn remove(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Queues a packet for a client, closing it if its queue would overflow.
    pub fn deliver(&self, id: u64, packet: Vec<u8>) -> Delivery {
        let mut map = self.lock();
        let Some(Entry(slot)) = map.get(&id) else {
            return Delivery::Unknown;
        };
        let len = packet.len();
        if slot.queued.load(Ordering::Relaxed) + len > self.queue_cap {
            slot.push(ToClient::Close(CloseReason::Overflow));
            map.remove(&id);
            return Delivery::Overflowed;
        }
        slot.queued.fetch_add(len, Ordering::Relaxed);
        slot.push(ToClient::Packet(packet));
        Delivery::Queued
    }

    /// Sends a quick ack to a client.
    pub fn quick_ack(&self, id: u64, token: u32) {
        if let Some(Entry(slot)) = self.lock().get(&id) {
            slot.push(ToClient::QuickAck(token));
        }
    }

    /// Closes a client on the middle proxy's request.
    pub fn close(&self, id: u64) {
        if let Some(entry) = self.lock().remove(&id) {
            entry.0.push(ToClient::Close(CloseReason::ClosedByMiddle));
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
