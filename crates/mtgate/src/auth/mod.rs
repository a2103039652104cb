//! Proxy users: credentials checked in constant time (argon2 or bcrypt hashes, or plain
//! passwords), their limits and rules, and the lockout of client addresses that keep failing.
//!
//! argon2 and bcrypt are slow on purpose, so a verification runs on the blocking pool, a few at
//! a time, and a successful one is remembered as a keyed digest of the password: the next
//! connections of that user cost one SHA-256 and a constant-time comparison. A wrong password
//! and an unknown user name both cost a full hash check (see [`password`]), so the time of a
//! refusal does not tell which user names exist.

pub mod lockout;
pub mod password;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::proxy::ProxyUser;
use crate::gate::Gate;
pub use lockout::Lockout;
pub use password::{PasswordError, Verifier};

/// Hash verifications running at once (each takes a core for tens of milliseconds).
const PARALLEL_VERIFICATIONS: usize = 2;

/// A user at run time.
#[derive(Debug)]
pub struct UserEntry {
    /// Settings.
    pub config: ProxyUser,
    /// Open connections of this user (survives reloads).
    pub gate: Arc<Gate>,
    verifier: Verifier,
}

/// The users of one listener.
#[derive(Debug)]
pub struct Users {
    by_name: HashMap<Vec<u8>, Arc<UserEntry>>,
    dummy: Option<Verifier>,
    slots: Arc<Semaphore>,
}

/// The outcome of a credential check.
#[derive(Debug, Clone)]
pub enum Authenticated {
    /// The credentials belong to this user.
    User(Arc<UserEntry>),
    /// Unknown user or wrong password (deliberately not told apart).
    Rejected,
}

impl Users {
    /// Users built from the config; `gates` keeps per-user counters across reloads.
    pub fn new(users: &[ProxyUser], gates: &mut HashMap<String, Arc<Gate>>) -> Self {
        let by_name = users
            .iter()
            .map(|user| {
                let entry = UserEntry {
                    verifier: Verifier::new(&user.password),
                    gate: gates.entry(user.name.clone()).or_default().clone(),
                    config: user.clone(),
                };
                (user.name.as_bytes().to_vec(), Arc::new(entry))
            })
            .collect();
        // Unknown names are checked against a throw-away hash of the same kind, so that a
        // miss costs what a wrong password costs.
        let dummy = users
            .iter()
            .find(|u| u.password.is_hash())
            .map(|u| Verifier::dummy_like(&u.password));
        Self {
            by_name,
            dummy,
            slots: Arc::new(Semaphore::new(PARALLEL_VERIFICATIONS)),
        }
    }

    /// Whether the listener asks for credentials.
    pub fn required(&self) -> bool {
        !self.by_name.is_empty()
    }

    /// A user by name.
    pub fn get(&self, name: &str) -> Option<&Arc<UserEntry>> {
        self.by_name.get(name.as_bytes())
    }

    /// Checks a username and password.
    pub async fn verify(&self, username: &[u8], password: &[u8]) -> Authenticated {
        let Some(entry) = self.by_name.get(username) else {
            if let Some(dummy) = &self.dummy {
                let _ = self.run(dummy, password).await;
            }
            return Authenticated::Rejected;
        };
        if self.run(&entry.verifier, password).await {
            Authenticated::User(entry.clone())
        } else {
            Authenticated::Rejected
        }
    }

    async fn run(&self, verifier: &Verifier, password: &[u8]) -> bool {
        if let Some(answer) = verifier.quick(password) {
            return answer;
        }
        let Ok(_slot) = self.slots.acquire().await else {
            return false;
        };
        verifier.slow(password).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::Password;

    fn user(name: &str, password: &str) -> ProxyUser {
        ProxyUser {
            name: name.into(),
            password: Password::parse(password).unwrap(),
            max_connections: None,
            bandwidth: None,
            rules: Vec::new(),
            upstream: None,
            agent_group: None,
        }
    }

    async fn timed(users: &Users, name: &[u8], password: &[u8]) -> (bool, std::time::Duration) {
        let started = tokio::time::Instant::now();
        let ok = matches!(users.verify(name, password).await, Authenticated::User(_));
        (ok, started.elapsed())
    }

    /// An unknown name must cost a hash check like a wrong password does, before and after the
    /// user's first successful login; otherwise the refusal's timing tells names apart.
    #[tokio::test]
    async fn unknown_names_cost_what_wrong_passwords_cost() {
        // htpasswd -nbB -C 10 alice 'correct horse battery' (apache2-utils 2.4.71).
        let hash = "$2y$10$Fp1xqqISSD2sev.91trFE.XA95QIDJMt9HGvmQ9ovdXpeG6d9CzoO";
        let users = Users::new(&[user("alice", hash)], &mut HashMap::new());
        let mut wrong = std::time::Duration::ZERO;
        for round in 0..2 {
            let (ok, took) = timed(&users, b"alice", b"wrong password").await;
            wrong = took;
            assert!(!ok);
            let (ok, unknown) = timed(&users, b"mallory", b"wrong password").await;
            assert!(!ok);
            // A cost-10 bcrypt takes milliseconds; a lookup miss alone takes microseconds.
            assert!(wrong.as_micros() > 1000, "round {round}: {wrong:?}");
            assert!(
                unknown * 4 > wrong,
                "round {round}: unknown {unknown:?} vs wrong {wrong:?}"
            );
            let (ok, _) = timed(&users, b"alice", b"correct horse battery").await;
            assert!(ok, "round {round}");
        }
        let (ok, fast) = timed(&users, b"alice", b"correct horse battery").await;
        assert!(ok);
        assert!(
            fast * 4 < wrong,
            "a known password is answered from the cache: {fast:?} vs {wrong:?}"
        );
    }
}
