//! The in-flight count a pool connection holds until it is dropped.

use std::sync::Arc;

use super::member::Member;

/// Counts one connection against a member while alive.
#[derive(Debug)]
pub(crate) struct Lease {
    member: Arc<Member>,
}

impl Lease {
    pub(crate) fn new(member: Arc<Member>) -> Self {
        member.acquire();
        Self { member }
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
