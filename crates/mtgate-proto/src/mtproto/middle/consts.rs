//! The numbers of the middle-proxy RPC protocol (all written little-endian on the wire).

#![allow(missing_docs)]

/// Message types (the first 32-bit word of an RPC payload).
#[rustfmt::skip]
pub mod kind {
    /// Proxy ↔ ME: the plaintext nonce exchange (seq −2).
    pub const RPC_NONCE: u32           = 0x7acb_87aa;
    /// Proxy ↔ ME: the first encrypted message (seq −1).
    pub const RPC_HANDSHAKE: u32       = 0x7682_eef5;
    /// ME → proxy: the handshake was refused.
    pub const RPC_HANDSHAKE_ERROR: u32 = 0x6a27_beda;
    /// Proxy → ME: one client packet.
    pub const RPC_PROXY_REQ: u32       = 0x36ce_f1ee;
    /// ME → proxy: one packet for a client.
    pub const RPC_PROXY_ANS: u32       = 0x4403_da0d;
    /// Proxy → ME: a client went away.
    pub const RPC_CLOSE_CONN: u32      = 0x1fcf_425d;
    /// ME → proxy: close that client.
    pub const RPC_CLOSE_EXT: u32       = 0x5eb6_34a2;
    /// ME → proxy: a quick acknowledgement for a client.
    pub const RPC_SIMPLE_ACK: u32      = 0x3bac_409b;
    /// Either way: keepalive request.
    pub const RPC_PING: u32            = 0x5730_a2df;
    /// Either way: keepalive answer.
    pub const RPC_PONG: u32            = 0x8430_eaa7;
    /// Extra section of RPC_PROXY_REQ: the ad tag.
    pub const TL_PROXY_TAG: u32        = 0xdb1e_26ae;
    /// Extra section of RPC_PROXY_REQ: HTTP transport details.
    pub const TL_HTTP_QUERY_INFO: u32  = 0xd45a_b381;
}

/// RPC_PROXY_REQ flags.
#[rustfmt::skip]
pub mod flag {
    /// The packet's auth_key_id is zero.
    pub const NOT_ENCRYPTED: u32 = 0x0000_0002;
    /// An extra section with TL_HTTP_QUERY_INFO follows (HTTP transport).
    pub const HTTP_QUERY: u32    = 0x0000_0004;
    /// An extra section with the ad tag follows.
    pub const HAS_AD_TAG: u32    = 0x0000_0008;
    /// Always set for external clients.
    pub const MAGIC: u32         = 0x0000_1000;
    /// The client came over an obfuscated (ext) connection.
    pub const EXTMODE2: u32      = 0x0002_0000;
    /// Padded intermediate (together with INTERMEDIATE).
    pub const PAD: u32           = 0x0800_0000;
    /// Intermediate transport.
    pub const INTERMEDIATE: u32  = 0x2000_0000;
    /// Abridged transport.
    pub const ABRIDGED: u32      = 0x4000_0000;
    /// The client asked for a quick acknowledgement of this packet.
    pub const QUICKACK: u32      = 0x8000_0000;
    /// What the official proxy sets for a query of the HTTP transport: MAGIC, HTTP_QUERY
    /// and two bits its sources leave unnamed (0x1, 0x2000).
    pub const HTTP_CLIENT: u32   = 0x0000_3005;
}

/// RPC_HANDSHAKE flags.
#[rustfmt::skip]
pub mod handshake_flag {
    /// Frames after the handshake carry CRC32C instead of CRC32.
    pub const CRC32C: u32 = 0x800;
}

/// Unencrypted MTProto functions the official proxy forwards (the key exchange).
#[rustfmt::skip]
pub mod unencrypted {
    pub const REQ_PQ: u32               = 0x6046_9778;
    pub const REQ_PQ_MULTI: u32         = 0xbe7e_8ef1;
    pub const REQ_DH_PARAMS: u32        = 0xd712_e4be;
    pub const SET_CLIENT_DH_PARAMS: u32 = 0xf504_5f1f;
}

/// Crypto schema announced in RPC_NONCE: AES.
pub const CRYPTO_AES: u32 = 1;

/// Sequence number of the nonce frame.
pub const SEQ_NONCE: i32 = -2;

/// Sequence number of the handshake frame.
pub const SEQ_HANDSHAKE: i32 = -1;

/// The 4-byte filler word that pads encrypted output to AES blocks.
pub const FILLER: [u8; 4] = [4, 0, 0, 0];

/// The default port of Telegram's middle proxies.
pub const DEFAULT_ME_PORT: u16 = 8888;
