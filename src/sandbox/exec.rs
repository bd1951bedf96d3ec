//! `exec`'s kernel side: a new process inside a running container.
//!
//! The parent opens the init's namespaces through `/proc/<pid>/ns` (those that differ from
//! ours), enters its pid namespace — which only the children of the caller of `setns` join —
//! and clones the child straight into the cgroup leaf. The child joins the other namespaces,
//! the user namespace first; joining the mount namespace moves its root and working directory
//! to the container's root, so nothing of the host's file system stays reachable. It then makes
//! its terminal when it has one, takes the process's limits and identity as the init does,
//! loads the container's seccomp filter when the init would, and execs. A failure before
//! `execve` comes back over the handshake socket with its step; the socket's end-of-file, when
//! `execve` closes it, means the program runs.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::Signal;
use nix::sys::stat::{fstat, stat, Mode};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::channel::Channel;
use super::init::{Failure, Step};
use super::seccomp::Filter;
use super::{process, terminal};
use crate::cgroup::{Cgroup, V1Entry};
use crate::exec::ExecError;
use crate::spec::{NamespaceKind, ProcessSpec};
use crate::state::{self, ProcessLiveness, Record};
use crate::sys::{clone3, Forked};
use crate::{Error, Result};

/// What to run and how.
pub struct ExecSpec<'a> {
    pub process: &'a ProcessSpec,
    /// Fds 3 up to 3 + this stay open in the process.
    pub preserve_fds: u32,
    /// Make the process a child of our caller (`CLONE_PARENT`) instead of ours.
    pub detach: bool,
    /// The container's seccomp filter.
    pub filter: Option<&'a Filter>,
    /// The caller's console socket, connected, when the process has a terminal.
    pub console: Option<&'a std::os::unix::net::UnixStream>,
}

/// What the parent tells the child.
#[derive(Debug, Serialize, Deserialize)]
enum ToChild {
    /// The v1 cgroups are joined: go on.
    Proceed,
}

/// What the child tells the parent; on success it says nothing and execs.
#[derive(Debug, Serialize, Deserialize)]
enum FromChild {
    Failed { step: String, reason: String },
}

/// One namespace of the init that is not ours, opened.
struct Namespace {
    kind: NamespaceKind,
    fd: OwnedFd,
}

/// Starts `exec.process` in the container whose init `record` describes and whose leaf is
/// `cgroup`; returns its host pid once it runs the program.
///
/// Must be called while the process is single-threaded (see [`crate::sys::clone3`]), and
/// leaves this process in the container's pid namespace for its later children.
pub fn spawn(record: &Record, cgroup: &Cgroup, exec: &ExecSpec) -> Result<Pid> {
    let id = &record.id;
    let namespaces = open_namespaces(record.pid);
    // The files were opened by pid: they are the init's if the init is still alive after.
    if state::liveness(record.pid, record.pid_start_time) == ProcessLiveness::Gone {
        return Err(Error::NotRunning(id.clone()));
    }
    let (pid_ns, namespaces): (Vec<_>, Vec<_>) = namespaces?
        .into_iter()
        .partition(|ns| ns.kind == NamespaceKind::Pid);
    if !namespaces.iter().any(|ns| ns.kind == NamespaceKind::Mount) {
        return Err(ExecError::HostMountNamespace(id.clone()).into());
    }
    for ns in pid_ns {
        setns(ns.fd.as_fd(), CloneFlags::CLONE_NEWPID).map_err(|source| {
            ExecError::JoinNamespace {
                id: id.clone(),
                kind: ns.kind,
                source,
            }
        })?;
    }
    let handshake = |source| ExecError::Handshake {
        id: id.clone(),
        source,
    };
    let (parent_end, child_end) = Channel::pair().map_err(handshake)?;
    let cgroup_dir = cgroup.open_dir_fd()?;
    let v1_entries = cgroup.open_v1_entries()?;
    let flags = if exec.detach {
        CloneFlags::CLONE_PARENT
    } else {
        CloneFlags::empty()
    };
    let clone_error = |source| ExecError::Clone {
        id: id.clone(),
        source,
    };
    match clone3(flags, Some(cgroup_dir.as_fd())).map_err(clone_error)? {
        Forked::Child => {
            drop(parent_end);
            run_child(exec, &child_end, namespaces, v1_entries)
        }
        Forked::Parent { pid, pidfd } => {
            drop((child_end, namespaces, v1_entries));
            let result = watch_child(id, &parent_end);
            if result.is_err() {
                // Half set up, it must not run; a detached one is our caller's to reap.
                let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), Signal::SIGKILL as i32);
                if !exec.detach {
                    let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
                }
            }
            result.map(|()| pid)
        }
    }
}

/// The namespaces of process `pid` that differ from this process's.
fn open_namespaces(pid: i32) -> Result<Vec<Namespace>, ExecError> {
    let mut namespaces = Vec::new();
    for kind in NamespaceKind::ALL {
        let name = proc_name(kind);
        let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        let open_error = |path: &PathBuf| {
            let path = path.clone();
            move |source| ExecError::OpenNamespace { path, source }
        };
        let fd = open(&path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(open_error(&path))?;
        let theirs = fstat(&fd).map_err(open_error(&path))?;
        let mine = stat(&ours).map_err(open_error(&ours))?;
        if (theirs.st_dev, theirs.st_ino) != (mine.st_dev, mine.st_ino) {
            namespaces.push(Namespace { kind, fd });
        }
    }
    Ok(namespaces)
}

/// The file name of a namespace in `/proc/<pid>/ns`.
fn proc_name(kind: NamespaceKind) -> &'static str {
    match kind {
        NamespaceKind::User => "user",
        NamespaceKind::Pid => "pid",
        NamespaceKind::Mount => "mnt",
        NamespaceKind::Ipc => "ipc",
        NamespaceKind::Uts => "uts",
        NamespaceKind::Network => "net",
        NamespaceKind::Cgroup => "cgroup",
    }
}

/// The parent's half: let the child go on, and learn whether it got as far as running the
/// program.
fn watch_child(id: &str, channel: &Channel) -> Result<()> {
    let handshake = |source| ExecError::Handshake {
        id: id.to_owned(),
        source,
    };
    channel.send(&ToChild::Proceed).map_err(handshake)?;
    match channel.recv::<FromChild>().map_err(handshake)? {
        // `execve` closed the child's end, which is close-on-exec: the program runs.
        None => Ok(()),
        Some(FromChild::Failed { step, reason }) => Err(ExecError::Failed {
            id: id.to_owned(),
            step,
            reason,
        }
        .into()),
    }
}

/// The child's whole life; never returns.
fn run_child(
    exec: &ExecSpec,
    channel: &Channel,
    namespaces: Vec<Namespace>,
    v1_entries: Vec<V1Entry>,
) -> ! {
    let late_filter = exec.filter.filter(|_| exec.process.no_new_privileges);
    let failure = match prepare(exec, channel, namespaces, v1_entries) {
        Ok(executable) => match late_filter.map(Filter::load).transpose() {
            Ok(_) => Failure {
                step: "executing the process",
                reason: process::exec(&executable, exec.process),
            },
            Err(e) => Failure {
                step: "loading the seccomp filter",
                reason: e.to_string(),
            },
        },
        Err(failure) => failure,
    };
    let _ = channel.send(&FromChild::Failed {
        step: failure.step.to_string(),
        reason: failure.reason,
    });
    crate::sys::exit_now(127);
}

fn prepare(
    exec: &ExecSpec,
    channel: &Channel,
    mut namespaces: Vec<Namespace>,
    v1_entries: Vec<V1Entry>,
) -> Result<PathBuf, Failure> {
    // Until execve this is runlambda's own code: nothing in the container may attach to it.
    nix::sys::prctl::set_dumpable(false).step("making the process non-dumpable")?;
    match channel.recv::<ToChild>().step("waiting for the runtime")? {
        Some(ToChild::Proceed) => {}
        None => {
            return Err(Failure {
                step: "waiting for the runtime",
                reason: "the runtime went away".into(),
            })
        }
    }
    // Into every leaf before the program runs; alone, this single-threaded process moves
    // without waiting (`V1Entry::join`).
    for entry in v1_entries {
        entry.join().step("joining the cgroup v1 leaves")?;
    }
    // Still on the host: lowering oom_score_adj and raising a hard rlimit need capabilities
    // in the initial user namespace, which joining the container's gives up.
    if let Some(adj) = exec.process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .step("setting oom_score_adj")?;
    }
    process::apply_rlimits(exec.process).step("setting rlimits")?;
    // The user namespace first (it sorts first): joining the others needs capabilities in
    // their owner. Joining the mount namespace moves root and cwd into the container.
    namespaces.sort_by_key(|ns| ns.kind);
    for ns in &namespaces {
        setns(ns.fd.as_fd(), ns.kind.clone_flag()).map_err(|e| Failure {
            step: "joining a namespace",
            reason: format!("{}: {e}", ns.kind.name()),
        })?;
    }
    if let Some(socket) = exec.console {
        // The pty belongs to whoever opens it, and only an owner mapped in the container's user
        // namespace can give it to the process's user: open it as that namespace's root.
        if namespaces.iter().any(|ns| ns.kind == NamespaceKind::User) {
            process::become_root().step("becoming root in the user namespace")?;
        }
        terminal::attach(socket, exec.process, false).step("setting up the terminal")?;
    }
    drop(namespaces);
    let executable =
        process::resolve_executable(exec.process).step("looking up process.args[0]")?;
    // Without no_new_privs only CAP_SYS_ADMIN allows loading a filter: load it before
    // become_user gives that up (see `init`); else `run_child` loads it last.
    if let Some(filter) = exec.filter.filter(|_| !exec.process.no_new_privileges) {
        filter.load().step("loading the seccomp filter")?;
    }
    process::become_user(exec.process).step("setting the user and capabilities")?;
    process::finish(exec.process).step("preparing the process")?;
    // Only stdio and the preserved fds may reach the process.
    crate::sys::cloexec_from(3 + exec.preserve_fds).step("closing inherited file descriptors")?;
    Ok(executable)
}
