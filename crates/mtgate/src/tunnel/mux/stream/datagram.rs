//! The datagram face of a UDP stream: one DATA frame per datagram, never split or merged,
//! and a full window or send buffer drops the datagram instead of waiting (UDP may lose
//! packets; a tunnel that buffers them without bound may not).

use std::future::poll_fn;
use std::io;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use mtgate_proto::tunnel::frame::put_data_header;
use mtgate_proto::tunnel::{HEADER_LEN, MAX_DATA_LEN};

use super::{Codec, MuxStream, SEND_BUFFER, closed_error};

/// Why a datagram was not sent (it is counted as dropped either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramDrop {
    /// Empty, or over [`MAX_DATA_LEN`]: it cannot be one DATA frame.
    Size,
    /// No window credit or send buffer room for it now.
    Full,
}

impl DatagramDrop {
    /// A metric label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Size => "too_big",
            Self::Full => "tunnel_full",
        }
    }
}

impl MuxStream {
    /// Queues `datagram` as one DATA frame, without waiting. `Ok(Err(_))` means it was
    /// dropped (counted); `Err` means the stream is closed for sending.
    pub fn send_datagram(&self, datagram: &[u8]) -> io::Result<Result<(), DatagramDrop>> {
        let dropped = |why| {
            self.shared
                .datagrams_dropped
                .fetch_add(1, Ordering::Relaxed);
            Ok(Err(why))
        };
        let mut s = self.cell.state();
        if let Some(e) = closed_error(&s) {
            return Err(e);
        }
        if s.fin_sent || s.peer_closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "tunnel stream closed for writing",
            ));
        }
        if datagram.is_empty() || datagram.len() > MAX_DATA_LEN {
            drop(s);
            return dropped(DatagramDrop::Size);
        }
        let len = datagram.len();
        if s.pending_len + len > SEND_BUFFER || (len as u64) > s.send_credit {
            drop(s);
            return dropped(DatagramDrop::Full);
        }
        let header = match self.shared.codec {
            Codec::Binary => HEADER_LEN,
            Codec::AnyProxyJson => 0,
        };
        let mut frame = BytesMut::with_capacity(header + len);
        if header > 0 {
            put_data_header(&mut frame, self.cell.id);
        }
        frame.extend_from_slice(datagram);
        s.pending.push_back(frame);
        s.pending_len += len;
        s.send_credit -= len as u64;
        let enqueue = !s.queued;
        s.queued = true;
        drop(s);
        let shared = &self.shared;
        shared.bytes_out.fetch_add(len as u64, Ordering::Relaxed);
        shared.datagrams_out.fetch_add(1, Ordering::Relaxed);
        if enqueue {
            shared.lock().ready.push_back(self.cell.id);
            shared.wake_writer.notify_one();
        }
        Ok(Ok(()))
    }

    /// The next datagram, `None` after the peer's FIN (or JSON `close`).
    pub async fn recv_datagram(&self) -> io::Result<Option<Bytes>> {
        poll_fn(|cx| self.poll_recv_datagram(cx)).await
    }

    /// Polls for the next datagram (see [`MuxStream::recv_datagram`]).
    pub fn poll_recv_datagram(&self, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
        let mut s = self.cell.state();
        if let Some(e) = closed_error(&s).filter(|_| s.reset.is_some() || s.recv.is_empty()) {
            return Poll::Ready(Err(e));
        }
        let Some(datagram) = s.recv.pop_front() else {
            if s.fin_received {
                return Poll::Ready(Ok(None));
            }
            s.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        };
        s.recv_len -= datagram.len();
        s.unacked = s.unacked.saturating_add(datagram.len() as u32);
        self.grant(&mut s);
        drop(s);
        self.shared.datagrams_in.fetch_add(1, Ordering::Relaxed);
        Poll::Ready(Ok(Some(datagram)))
    }

    /// True for a UDP stream.
    pub fn is_datagram(&self) -> bool {
        self.cell.datagram
    }
}
