//! The kernel side of an environment: cloning the init into new namespaces and the cgroup
//! leaf, the parent's half of the handshake (id maps, hooks), and — in the child — the init
//! itself (`init`), which joins its v1 cgroup leaves, prepares the mounts (`mounts`, `rootfs`),
//! the process (`process`, `seccomp`) and its terminal (`terminal`).

pub mod channel;
pub mod exec;
pub mod init;
mod lambda_init;
pub mod mounts;
pub mod process;
pub mod rootfs;
pub mod seccomp;
mod terminal;

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::cgroup::{Cgroup, CgroupError};
use crate::hooks::{HookError, HookKind};
use crate::spec::{EnvironmentSpec, IdMapping, NamespaceKind};
use crate::sys::{clone3, Forked};
use channel::{Channel, FromInit, ToInit};

/// Errors of building an environment; the init's own failures carry the step it was in.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot open namespace {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot join pid namespace {path}")]
    JoinPidNamespace {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot clone the container init")]
    Clone(#[source] io::Error),
    #[error("cannot write id map {path}")]
    IdMap {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("handshake with the container init failed")]
    Handshake(#[source] io::Error),
    #[error("container init failed while {step}: {reason}")]
    Init { step: String, reason: String },
    #[error("container init exited during setup")]
    InitDied,
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Hook(#[from] HookError),
}

/// The init while it builds the environment: it has everything it needs from `create`.
pub struct Building {
    pub pid: Pid,
    pidfd: OwnedFd,
    channel: Channel,
}

impl Building {
    /// Waits until the environment is ready for `start`, or the init reports why it is not.
    pub fn ready(self) -> Result<Spawned, SandboxError> {
        expect(&self.channel, |m| matches!(m, FromInit::Ready))?;
        Ok(Spawned {
            pid: self.pid,
            pidfd: self.pidfd,
            channel: self.channel,
        })
    }
}

/// The init as `create` sees it once the environment is ready.
pub struct Spawned {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// Our end of the socketpair: a Lambda environment's supervisor keeps talking on it.
    pub channel: Channel,
}

/// Clones the init with `CLONE_PARENT` — so it is a child of our caller, which reaps it as it
/// would runc's — into the spec's namespaces and the cgroup leaf, and gives it what it needs
/// to build the environment; returns while it builds, so that the caller can do its own part
/// meanwhile, then waits with [`Building::ready`].
///
/// A plain container's init waits on `notify` for `start`; without one (a Lambda environment)
/// it serves the returned channel instead. With `console` (the caller's console socket,
/// connected) the init sends the process's terminal there. While the init builds the
/// environment, the seccomp filter is compiled and the `prestart` and `createRuntime` hooks run
/// here; `id` is the container's, for their state.
///
/// Must be called while the process is single-threaded (see [`crate::sys::clone3`]). On error
/// the init may still exist: the caller kills the cgroup.
pub fn spawn(
    id: &str,
    spec: &EnvironmentSpec,
    cgroup: &Cgroup,
    notify: Option<UnixListener>,
    console: Option<UnixStream>,
) -> Result<Building, SandboxError> {
    let mut joined = Vec::new();
    for ns in &spec.namespaces {
        let Some(path) = &ns.path else { continue };
        let fd =
            open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|source| {
                SandboxError::OpenNamespace {
                    path: path.clone(),
                    source,
                }
            })?;
        if ns.kind == NamespaceKind::Pid {
            // A pid namespace is entered by the children of the caller of setns: join it here.
            setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|source| {
                SandboxError::JoinPidNamespace {
                    path: path.clone(),
                    source,
                }
            })?;
        } else {
            joined.push((ns.kind, fd));
        }
    }
    let flags = spec
        .namespaces
        .iter()
        .filter(|ns| ns.path.is_none())
        .fold(CloneFlags::CLONE_PARENT, |flags, ns| {
            flags | ns.kind.clone_flag()
        });
    let (parent_end, init_end) = Channel::pair().map_err(SandboxError::Handshake)?;
    let cgroup_dir = cgroup.open_dir_fd()?;
    let v1_entries = cgroup.open_v1_entries()?;
    match clone3(flags, Some(cgroup_dir.as_fd())).map_err(SandboxError::Clone)? {
        Forked::Child => {
            // Nothing of the host may stay open in the environment's pid 1.
            drop((parent_end, cgroup_dir));
            init::run(spec, init_end, notify, console, joined, v1_entries)
        }
        Forked::Parent { pid, pidfd } => {
            drop((init_end, notify, console, joined, v1_entries));
            prepare_init(id, spec, pid, &parent_end)?;
            Ok(Building {
                pid,
                pidfd,
                channel: parent_end,
            })
        }
    }
}

/// The parent's half of the handshake up to the init's verdict: what must happen to the init
/// from outside before it may build the environment; then, while it builds, the seccomp filter
/// (compiled here, where a failure is an error of `create`, but off the init's path) and the
/// runtime's hooks when its mounts are made.
fn prepare_init(
    id: &str,
    spec: &EnvironmentSpec,
    pid: Pid,
    channel: &Channel,
) -> Result<(), SandboxError> {
    if spec.creates(NamespaceKind::User) {
        write_id_map(pid, "uid_map", &spec.uid_mappings)?;
        write_id_map(pid, "gid_map", &spec.gid_mappings)?;
    }
    send(channel, &ToInit::Proceed)?;
    let filter = spec
        .seccomp
        .as_ref()
        .map(seccomp::Filter::compile)
        .transpose()?;
    if spec.hooks.involve_init() {
        expect(channel, |m| matches!(m, FromInit::HooksDue))?;
        let state = spec.hook_state(id, pid.as_raw());
        spec.hooks.run(HookKind::Prestart, &state)?;
        spec.hooks.run(HookKind::CreateRuntime, &state)?;
        send(channel, &ToInit::RunHooks { state })?;
    }
    send(channel, &ToInit::Seccomp { filter })
}

fn send(channel: &Channel, message: &ToInit) -> Result<(), SandboxError> {
    channel.send(message).map_err(SandboxError::Handshake)
}

/// Waits for the init's next message, which must be the one `wanted` accepts; a failure it
/// reports is the error.
fn expect(channel: &Channel, wanted: fn(&FromInit) -> bool) -> Result<(), SandboxError> {
    match channel
        .recv::<FromInit>()
        .map_err(SandboxError::Handshake)?
    {
        Some(message) if wanted(&message) => Ok(()),
        Some(FromInit::Failed { step, reason }) => Err(SandboxError::Init { step, reason }),
        Some(other) => Err(SandboxError::Handshake(std::io::Error::other(format!(
            "unexpected {other:?} during setup"
        )))),
        None => Err(SandboxError::InitDied),
    }
}

fn write_id_map(pid: Pid, file: &str, mappings: &[IdMapping]) -> Result<(), SandboxError> {
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    let text: String = mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect();
    std::fs::write(&path, text).map_err(|source| SandboxError::IdMap { path, source })
}
