//! The in-flight count a pool connection holds until it is dropped.

use std::sync::Arc;

use super::member::Member;

/// Counts one connection against a member while alive.
#[derive(Debug)]
pub(crate) struct Lease {
    member: Arc<Member>,
}

impl Lease {
    /// Counts a connection against `member` unless it is at its connection cap.
    pub(crate) fn try_new(member: Arc<Member>) -> Option<Self> {
        member.try_acquire().then_some(Self { member })
    }

    pub(crate) fn member_name(&self) -> &str {
        self.member.name()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.member.release();
    }
}
