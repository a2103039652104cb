//! Dropping root privileges after the listeners are bound.

use nix::unistd::{Gid, Group, Uid, User, setgid, setgroups, setuid};

/// Why privileges could not be dropped.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// No such group.
    #[error("no group named {0:?}")]
    NoSuchGroup(String),
    /// Not root, and asked to become someone else.
    #[error("only root can switch to user {0:?}")]
    NotRoot(String),
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Sys {
        /// The call.
        call: &'static str,
        /// The cause.
        source: nix::Error,
    },
}

/// Switches to `user` (and `group`, default: the user's primary group), dropping supplementary
/// groups. A no-op when already running as that user.
pub fn drop_to(user: &str, group: Option<&str>) -> Result<(), PrivilegeError> {
    let sys = |call| move |source| PrivilegeError::Sys { call, source };
    let entry = User::from_name(user)
        .map_err(sys("getpwnam"))?
        .ok_or_else(|| PrivilegeError::NoSuchUser(user.into()))?;
    let gid: Gid = match group {
        Some(name) => {
            Group::from_name(name)
                .map_err(sys("getgrnam"))?
                .ok_or_else(|| PrivilegeError::NoSuchGroup(name.into()))?
                .gid
        }
        None => entry.gid,
    };
    let current = Uid::effective();
    if current == entry.uid {
        return Ok(());
    }
    if !current.is_root() {
        return Err(PrivilegeError::NotRoot(user.into()));
    }
    setgroups(&[gid]).map_err(sys("setgroups"))?;
    setgid(gid).map_err(sys("setgid"))?;
    setuid(entry.uid).map_err(sys("setuid"))?;
    // Make sure there is no way back.
    if entry.uid != Uid::from_raw(0) && setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::Sys {
            call: "setuid (still able to regain root)",
            source: nix::Error::EPERM,
        });
    }
    tracing::info!(user, gid = gid.as_raw(), "dropped privileges");
    Ok(())
}
