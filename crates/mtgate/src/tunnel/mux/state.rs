//! The state the reader task, the writer task, the handles and the streams share.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use mtgate_proto::tunnel::{ErrorCode, Frame};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::json::JsonIds;
use super::stream::StreamCell;
use super::{Codec, Inbound, MuxConfig, Role};

/// What the writer sends next: a tunnel frame, or a WebSocket control frame the frame library
/// obliges us to send (a pong, the close reply).
#[derive(Debug)]
pub(super) enum Out {
    Frame(Frame),
    Ws(fastwebsockets::OpCode, Vec<u8>),
    /// A message of the JSON protocol that has no frame equivalent (a pong with its timestamp,
    /// an error).
    Json(mtgate_proto::tunnel::anyproxy::Message),
}

/// Control frames allowed to wait for the writer; a peer that makes us queue more (by not
/// reading while sending PINGs or OPENs) loses the connection.
const MAX_CONTROL_BACKLOG: usize = 65_536;

/// WebSocket close code: normal closure.
pub(super) const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code: going away (shutdown, dead peer).
pub(super) const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code: protocol error (a malformed frame).
pub(super) const CLOSE_PROTOCOL: u16 = 1002;
/// WebSocket close code: a message of the wrong type (text on the binary protocol).
pub(super) const CLOSE_UNSUPPORTED: u16 = 1003;
/// WebSocket close code: policy violation.
pub(super) const CLOSE_POLICY: u16 = 1008;
/// WebSocket close code: message too big.
pub(super) const CLOSE_TOO_BIG: u16 = 1009;

/// The answer an opener waits for.
pub(super) type OpenAnswer = Result<(), (ErrorCode, String)>;

/// Everything behind the connection's lock.
#[derive(Debug)]
pub(super) struct Inner {
    pub(super) streams: HashMap<u32, Arc<StreamCell>>,
    /// The next id this side opens (even for the gateway, odd for the agent).
    pub(super) next_id: u32,
    /// Control frames, sent before any DATA.
    pub(super) control: VecDeque<Out>,
    /// Streams with a DATA chunk waiting, in turn order.
    pub(super) ready: VecDeque<u32>,
    pub(super) pending_opens: HashMap<u32, oneshot::Sender<OpenAnswer>>,
    pub(super) pending_listens: HashMap<u32, oneshot::Sender<OpenAnswer>>,
    pub(super) next_listen: u32,
    /// Streams the peer opened that are still alive.
    pub(super) inbound_streams: usize,
    /// Receive window granted beyond the initial one, over all streams.
    pub(super) extra_window: u64,
    /// Peer connection ids of the JSON protocol.
    pub(super) json: JsonIds,
    /// Where inbound requests go; `None` once the connection ends.
    pub(super) incoming: Option<mpsc::Sender<Inbound>>,
}

/// The connection's shared state.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) role: Role,
    pub(super) codec: Codec,
    pub(super) config: MuxConfig,
    inner: Mutex<Inner>,
    /// Wakes the writer when something was queued.
    pub(super) wake_writer: Notify,
    /// Cancelled when the connection ends.
    pub(super) done: CancellationToken,
    /// Cancelled when the connection should end once everything queued is written.
    pub(super) finishing: CancellationToken,
    /// Set once GOAWAY was sent or received.
    pub(super) going_away: AtomicBool,
    pub(super) streams_total: AtomicU64,
    pub(super) open_failures: AtomicU64,
    pub(super) bytes_in: AtomicU64,
    pub(super) bytes_out: AtomicU64,
    pub(super) datagrams_in: AtomicU64,
    pub(super) datagrams_out: AtomicU64,
    pub(super) datagrams_dropped: AtomicU64,
    /// Last WebSocket ping round trip in microseconds (0 = none yet).
    pub(super) rtt_micros: AtomicU64,
    /// Start of the connection; pings carry microseconds since then.
    pub(super) epoch: Instant,
    /// The send time (µs since `epoch`) of the newest ping a pong answered.
    pub(super) last_pong: AtomicU64,
    /// The reader waits for a slow stream (JSON protocol): pongs cannot be read meanwhile.
    pub(super) reader_paused: AtomicBool,
    /// The WebSocket close code the writer sends when the connection ends.
    pub(super) close_code: AtomicU16,
}

impl Shared {
    pub(super) fn new(
        role: Role,
        codec: Codec,
        config: MuxConfig,
        incoming: mpsc::Sender<Inbound>,
    ) -> Self {
        let next_id = match role {
            Role::Gateway => 2,
            Role::Agent => 1,
        };
        Self {
            role,
            codec,
            config,
            inner: Mutex::new(Inner {
                streams: HashMap::new(),
                next_id,
                control: VecDeque::new(),
                ready: VecDeque::new(),
                pending_opens: HashMap::new(),
                pending_listens: HashMap::new(),
                next_listen: 1,
                inbound_streams: 0,
                extra_window: 0,
                json: JsonIds::default(),
                incoming: Some(incoming),
            }),
            wake_writer: Notify::new(),
            done: CancellationToken::new(),
            finishing: CancellationToken::new(),
            going_away: AtomicBool::new(false),
            streams_total: AtomicU64::new(0),
            open_failures: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            datagrams_in: AtomicU64::new(0),
            datagrams_out: AtomicU64::new(0),
            datagrams_dropped: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(0),
            epoch: Instant::now(),
            last_pong: AtomicU64::new(0),
            reader_paused: AtomicBool::new(false),
            close_code: AtomicU16::new(CLOSE_NORMAL),
        }
    }

    /// Locks the shared state. A panic while holding the lock is a bug elsewhere; the state
    /// stays usable for cleanup.
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a control frame and wakes the writer.
    pub(super) fn send_control(&self, out: Out) {
        if self.done.is_cancelled() {
            return;
        }
        let backlog = {
            let mut inner = self.lock();
            inner.control.push_back(out);
            inner.control.len()
        };
        if backlog > MAX_CONTROL_BACKLOG {
            tracing::debug!("tunnel peer does not read its control frames; closing");
            self.fail(CLOSE_POLICY);
            return;
        }
        self.wake_writer.notify_one();
    }

    /// Ends the connection with a WebSocket close `code`.
    pub(super) fn fail(&self, code: u16) {
        self.close_code.store(code, Ordering::Relaxed);
        self.shut();
    }

    /// Forgets a stream whose handle is gone.
    pub(super) fn forget_stream(&self, cell: &StreamCell, extra_window: u64) {
        let mut inner = self.lock();
        if inner.streams.remove(&cell.id).is_some() && cell.inbound {
            inner.inbound_streams -= 1;
        }
        inner.pending_opens.remove(&cell.id);
        inner.extra_window = inner.extra_window.saturating_sub(extra_window);
        inner.json.forget(cell.id);
    }

    /// True if `id` is in the peer's id space.
    pub(super) fn is_peer_id(&self, id: u32) -> bool {
        let odd = id % 2 == 1;
        match self.role {
            Role::Gateway => odd,
            Role::Agent => !odd,
        }
    }

    /// The last measured round trip.
    pub(super) fn rtt(&self) -> Option<Duration> {
        match self.rtt_micros.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Ends the connection: fails pending opens, resets streams, closes the inbound channel.
    pub(super) fn shut(&self) {
        self.done.cancel();
        let (streams, opens, listens) = {
            let mut inner = self.lock();
            inner.incoming = None;
            inner.ready.clear();
            inner.control.clear();
            (
                inner.streams.values().cloned().collect::<Vec<_>>(),
                std::mem::take(&mut inner.pending_opens),
                std::mem::take(&mut inner.pending_listens),
            )
        };
        for (_, tx) in opens.into_iter().chain(listens) {
            let _ = tx.send(Err((
                ErrorCode::Cancelled,
                "tunnel connection closed".into(),
            )));
        }
        for cell in streams {
            cell.connection_lost();
        }
        self.wake_writer.notify_one();
    }
}
