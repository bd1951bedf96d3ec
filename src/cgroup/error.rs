//! What can go wrong with a cgroup. Every variant that touches a file names it, so a message
//! read alone tells which hierarchy and which leaf were involved.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;

use crate::mountinfo::MountinfoError;

/// An error of the cgroup module.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot parse the mount table")]
    Mountinfo(#[source] MountinfoError),

    #[error("no cgroup2 hierarchy is mounted (none in the mount table)")]
    NoUnifiedHierarchy,

    #[error("cgroup path {path:?} must be relative, non-empty and without `.` or `..`")]
    InvalidPath { path: PathBuf },

    #[error("no memory controller on this host: a memory limit cannot be enforced (set allow_unenforced_memory = true in the runtime config to run without it)")]
    MemoryUnavailable,

    #[error("no {controller} controller on this host: {what} cannot be set")]
    ControllerUnavailable {
        controller: &'static str,
        what: &'static str,
    },

    #[error("cgroup {} already exists", path.display())]
    AlreadyExists { path: PathBuf },

    #[error("cannot create cgroup {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot remove cgroup {}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot open cgroup {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("cannot write {value:?} to {}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    #[error("unexpected content in {}: {content:?}", path.display())]
    Malformed { path: PathBuf, content: String },

    #[error("freezing {} did not finish within {timeout:?}", path.display())]
    FreezeTimeout { path: PathBuf, timeout: Duration },

    #[error("thawing {} did not finish within {timeout:?}", path.display())]
    ThawTimeout { path: PathBuf, timeout: Duration },

    #[error("processes in {} were still alive {timeout:?} after being killed", path.display())]
    KillTimeout { path: PathBuf, timeout: Duration },

    #[error("cannot send {signal} to process {pid} of {}", path.display())]
    Signal {
        path: PathBuf,
        pid: i32,
        signal: Signal,
        #[source]
        source: Errno,
    },
}
