//! What a pool's keyed strategies (IP hash, consistent hash) hash for a client: its address,
//! an IPv4-mapped IPv6 address as the IPv4 one, so a dual-stack listener keys it alike.

use std::net::IpAddr;

/// A client address as key bytes, without an allocation.
#[derive(Debug, Clone, Copy)]
pub struct ClientKey {
    bytes: [u8; 16],
    len: usize,
}

impl ClientKey {
    /// The key of `ip`.
    pub fn new(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 16];
        let len = match ip.to_canonical() {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                16
            }
        };
        Self { bytes, len }
    }

    /// The bytes to hash.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_keys_like_ipv4() {
        let v4 = ClientKey::new("192.0.2.7".parse().unwrap());
        let mapped = ClientKey::new("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(v4.as_bytes(), [192, 0, 2, 7]);
        assert_eq!(mapped.as_bytes(), v4.as_bytes());
        let v6 = ClientKey::new("2001:db8::1".parse().unwrap());
        assert_eq!(v6.as_bytes().len(), 16);
    }
}
