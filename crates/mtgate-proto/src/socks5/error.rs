//! Why a SOCKS5 message was refused.

use super::command::Reply;

/// A malformed or unsupported SOCKS5 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The version byte is not `05`.
    #[error("SOCKS version {0:#04x}, expected 0x05")]
    Version(u8),
    /// A greeting that offers no method.
    #[error("greeting offers no authentication method")]
    NoMethods,
    /// An unknown command.
    #[error("unsupported command {0:#04x}")]
    Command(u8),
    /// An unknown address type.
    #[error("unsupported address type {0:#04x}")]
    AddressType(u8),
    /// A domain name of length zero.
    #[error("empty domain name")]
    EmptyDomain,
    /// A domain name that is not UTF-8.
    #[error("domain name is not UTF-8")]
    DomainNotUtf8,
    /// The RFC 1929 version byte is not `01`.
    #[error("username/password version {0:#04x}, expected 0x01")]
    AuthVersion(u8),
    /// An RFC 1929 username or password of length zero.
    #[error("empty username or password")]
    EmptyCredential,
}

impl Error {
    /// The reply a server sends before closing, for errors found in a request.
    pub fn as_reply(&self) -> Reply {
        match self {
            Self::Command(_) => Reply::CommandNotSupported,
            Self::AddressType(_) => Reply::AddressTypeNotSupported,
            _ => Reply::GeneralFailure,
        }
    }
}
