//! The DC index a client puts at bytes 60..62 of its init header.
//!
//! It is a signed little-endian 16-bit number: positive for a normal connection to DC `n`,
//! negative for a media-only connection to DC `|n|`, `10000 + n` (or `-(10000 + n)`) for the
//! test DCs, and 203 for the CDN DC.

/// Offset added to a DC number for Telegram's test environment.
pub const TEST_DC_OFFSET: i16 = 10_000;

/// The DC number of Telegram's CDN.
pub const CDN_DC: u16 = 203;

/// A DC index exactly as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DcId(pub i16);

/// The environment a DC index points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DcKind {
    /// Production DCs.
    Production,
    /// Media-only connection to a production DC.
    Media,
    /// Test environment DCs.
    Test,
}

impl DcId {
    /// Reads the index from its two wire bytes.
    pub fn from_le_bytes(bytes: [u8; 2]) -> Self {
        Self(i16::from_le_bytes(bytes))
    }

    /// The two wire bytes.
    pub fn to_le_bytes(self) -> [u8; 2] {
        self.0.to_le_bytes()
    }

    /// The DC number without the media sign and test offset (`-10002` → 2).
    pub fn number(self) -> u16 {
        let n = self.0.unsigned_abs();
        if n > TEST_DC_OFFSET.unsigned_abs() {
            n - TEST_DC_OFFSET.unsigned_abs()
        } else {
            n
        }
    }

    /// Whether the index names a test DC.
    pub fn is_test(self) -> bool {
        self.0.unsigned_abs() > TEST_DC_OFFSET.unsigned_abs()
    }

    /// Whether the client asked for a media-only connection.
    pub fn is_media(self) -> bool {
        self.0 < 0
    }

    /// Which table the index should be looked up in.
    pub fn kind(self) -> DcKind {
        if self.is_test() {
            DcKind::Test
        } else if self.is_media() {
            DcKind::Media
        } else {
            DcKind::Production
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_kind() {
        assert_eq!(DcId(2).kind(), DcKind::Production);
        assert_eq!(DcId(-4).kind(), DcKind::Media);
        assert_eq!(DcId(-4).number(), 4);
        assert_eq!(DcId(10002).kind(), DcKind::Test);
        assert_eq!(DcId(10002).number(), 2);
        assert_eq!(DcId(-10003).number(), 3);
        assert_eq!(DcId(203).number(), CDN_DC);
        assert_eq!(DcId::from_le_bytes([0xfe, 0xff]), DcId(-2));
        assert_eq!(DcId(-2).to_le_bytes(), [0xfe, 0xff]);
    }
}
