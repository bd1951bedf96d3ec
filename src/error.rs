//! The crate's error: one variant per module error, plus the verb-level errors of
//! `container`. `main` is the only place that prints one, with its whole source chain.

use std::io;
use std::path::PathBuf;

use crate::container::Status;

/// Any error of a runlambda command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroup::CgroupError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error(transparent)]
    Signal(#[from] crate::signal::UnknownSignal),
    #[error(transparent)]
    SystemdPath(#[from] crate::cgroup::systemd::SystemdPathError),
    #[error(transparent)]
    Function(#[from] crate::function::FunctionError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// The verb does not apply in the container's status.
    #[error("container {id} is {status}: cannot {verb} it{hint}")]
    WrongState {
        id: String,
        status: Status,
        verb: &'static str,
        hint: &'static str,
    },
    /// The container's init has exited (callers match "container not running").
    #[error("container {0} has stopped: container not running")]
    NotRunning(String),
    #[error("cannot signal container {id}")]
    Kill {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start container {id}")]
    Start {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up notify socket {path}")]
    NotifySocket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write pid file {path}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: Box<crate::state::StateError>,
    },
    #[error("a Lambda environment needs a network namespace (linux.namespaces has none)")]
    LambdaNeedsNetwork,
    #[error("cannot start the supervisor of container {id}")]
    Supervisor {
        id: String,
        #[source]
        source: io::Error,
    },
    /// An I/O failure of a command's own plumbing; `what` says what it was doing.
    #[error("cannot {what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {what}")]
    Listen {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{flag} is not supported yet")]
    UnsupportedFlag { flag: &'static str },
    #[error(transparent)]
    Console(#[from] crate::console::ConsoleError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message and its causes, joined as "outer: inner: innermost".
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Transparent wrappers repeat their inner message; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
