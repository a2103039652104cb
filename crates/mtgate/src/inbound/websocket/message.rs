//! Per-message rules applied frame by frame: size and fragment caps, continuation order, and
//! the contents of close frames. No I/O here.

use fastwebsockets::{CloseCode, OpCode};

/// RFC 6455 close codes mtgate sends.
#[rustfmt::skip]
pub mod codes {
    /// Normal closure.
    pub const NORMAL: u16       = 1000;
    /// Going away: shutdown, idle timeout, a peer gone.
    pub const GOING_AWAY: u16   = 1001;
    /// Protocol error.
    pub const PROTOCOL: u16     = 1002;
    /// Invalid payload (bad UTF-8).
    pub const INVALID_DATA: u16 = 1007;
    /// Message too big.
    pub const TOO_BIG: u16      = 1009;
    /// Internal error: the backend failed.
    pub const INTERNAL: u16     = 1011;
}

/// A broken rule: the close code and reason to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Close code.
    pub code: u16,
    /// Close reason (at most 123 bytes).
    pub reason: String,
}

impl Violation {
    /// A violation with `code`.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        truncate(&mut reason, 123);
        Self { code, reason }
    }
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
}

/// Limits on one message.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimits {
    /// Bytes, all frames together.
    pub max_payload: usize,
    /// Frames.
    pub max_fragments: usize,
}

/// Where a direction is inside the message stream.
#[derive(Debug, Default)]
pub struct Tracker {
    in_message: bool,
    size: usize,
    fragments: usize,
}

impl Tracker {
    /// Accounts a data frame (text, binary or continuation); `Ok(true)` when it ends a message.
    pub fn data(
        &mut self,
        opcode: OpCode,
        fin: bool,
        len: usize,
        limits: &MessageLimits,
    ) -> Result<bool, Violation> {
        match (opcode, self.in_message) {
            (OpCode::Continuation, false) => {
                return Err(Violation::new(
                    codes::PROTOCOL,
                    "continuation frame outside a message",
                ));
            }
            (OpCode::Text | OpCode::Binary, true) => {
                return Err(Violation::new(
                    codes::PROTOCOL,
                    "new message before the last one ended",
                ));
            }
            (OpCode::Continuation, true) => {}
            _ => {
                self.size = 0;
                self.fragments = 0;
            }
        }
        self.size = self.size.saturating_add(len);
        self.fragments += 1;
        if self.size > limits.max_payload {
            return Err(Violation::new(
                codes::TOO_BIG,
                format!("message exceeds {} bytes", limits.max_payload),
            ));
        }
        if self.fragments > limits.max_fragments {
            return Err(Violation::new(
                codes::TOO_BIG,
                format!("message has more than {} fragments", limits.max_fragments),
            ));
        }
        self.in_message = !fin;
        Ok(fin)
    }
}

/// Checks a close frame's payload: empty, or a code allowed on the wire and a UTF-8 reason.
pub fn check_close(payload: &[u8]) -> Result<Option<u16>, Violation> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(Violation::new(codes::PROTOCOL, "close frame of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !CloseCode::from(code).is_allowed() {
                return Err(Violation::new(codes::PROTOCOL, "close code not allowed"));
            }
            if std::str::from_utf8(&payload[2..]).is_err() {
                return Err(Violation::new(
                    codes::INVALID_DATA,
                    "close reason is not UTF-8",
                ));
            }
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MessageLimits = MessageLimits {
        max_payload: 10,
        max_fragments: 3,
    };

    #[test]
    fn sizes_add_up_over_fragments() {
        let mut t = Tracker::default();
        assert_eq!(t.data(OpCode::Text, false, 5, &LIMITS), Ok(false));
        assert_eq!(t.data(OpCode::Continuation, false, 5, &LIMITS), Ok(false));
        let err = t.data(OpCode::Continuation, true, 1, &LIMITS).unwrap_err();
        assert_eq!(err.code, codes::TOO_BIG);
        let mut t = Tracker::default();
        assert_eq!(t.data(OpCode::Binary, true, 10, &LIMITS), Ok(true));
        assert_eq!(t.data(OpCode::Binary, true, 10, &LIMITS), Ok(true));
    }

    #[test]
    fn fragments_are_capped_and_ordered() {
        let mut t = Tracker::default();
        for _ in 0..3 {
            t.data(OpCode::Continuation, false, 0, &LIMITS).unwrap_err();
        }
        assert!(t.data(OpCode::Binary, false, 0, &LIMITS).is_ok());
        assert!(t.data(OpCode::Continuation, false, 0, &LIMITS).is_ok());
        assert!(t.data(OpCode::Text, false, 0, &LIMITS).is_err());
        let mut t = Tracker::default();
        t.data(OpCode::Binary, false, 0, &LIMITS).unwrap();
        t.data(OpCode::Continuation, false, 0, &LIMITS).unwrap();
        t.data(OpCode::Continuation, false, 0, &LIMITS).unwrap();
        let err = t.data(OpCode::Continuation, true, 0, &LIMITS).unwrap_err();
        assert_eq!(err.code, codes::TOO_BIG);
    }

    #[test]
    fn close_payloads() {
        assert_eq!(check_close(b""), Ok(None));
        assert_eq!(check_close(&[3, 232]), Ok(Some(1000)));
        assert!(check_close(&[3]).is_err());
        assert!(check_close(&[3, 237]).is_err()); // 1005 is not sent on the wire
        assert_eq!(
            check_close(&[3, 232, 0xff]).unwrap_err().code,
            codes::INVALID_DATA
        );
        let long = "é".repeat(100);
        assert!(Violation::new(1000, long).reason.len() <= 123);
    }
}
