//! The container's init: the code that runs in the child of `clone3`, inside the new
//! namespaces and the cgroup leaf, until it `execve`s the container's process. It builds the
//! environment step by step — giving the process its terminal right after `pivot_root` when
//! it has one — reports the first failure to `create` with the step's name, then waits for
//! `start` on the notify socket.
//!
//! Hooks: once the mounts are made, and while the host's root is still in reach, the init lets
//! `create` run the `prestart` and `createRuntime` hooks, then runs the `createContainer` ones
//! itself, in the container's namespaces; after `start` asked, it runs the `startContainer`
//! ones inside the container, as the container's user, and tells `start` how they went.
//!
//! The seccomp filter is loaded as late as the kernel allows: right before `execve` when the
//! process has no_new_privs; without it only a process with CAP_SYS_ADMIN may load a filter,
//! so then (as in runc) before the user and capabilities change. A Lambda init loads none: it
//! runs no user code itself, and each process it starts loads the filter (`lambda_init`).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use nix::fcntl::{open, OFlag};
use nix::sched::setns;
use nix::sys::stat::Mode;
use nix::unistd::sethostname;

use super::channel::{Channel, FromInit, ToInit};
use super::seccomp::Filter;
use super::{mounts, process, rootfs, terminal};
use crate::cgroup::V1Entry;
use crate::hooks::{HookKind, HookState};
use crate::spec::{EnvironmentSpec, NamespaceKind};

/// A failed step: what the init was doing, and why it failed.
pub(super) struct Failure {
    pub(super) step: &'static str,
    pub(super) reason: String,
}

pub(super) trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, Failure>;
}

impl<T, E: std::fmt::Display> Step<T> for Result<T, E> {
    fn step(self, step: &'static str) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            step,
            reason: e.to_string(),
        })
    }
}

/// The init's whole life; never returns. `namespaces` are the open files of the namespaces
/// to join (all but pid, which the parent joined before cloning); `v1_entries` the v1 leaves
/// to move into; `console` is the caller's console socket when the process has a terminal.
pub fn run(
    spec: &EnvironmentSpec,
    channel: Channel,
    notify: Option<UnixListener>,
    console: Option<UnixStream>,
    namespaces: Vec<(NamespaceKind, OwnedFd)>,
    v1_entries: Vec<V1Entry>,
) -> ! {
    let lambda = notify.is_none();
    let built = build(spec, &channel, console, namespaces, v1_entries, lambda);
    let (executable, hook_state, filter) = match built {
        Ok(built) => built,
        Err(failure) => {
            let _ = channel.send(&FromInit::Failed {
                step: failure.step.to_string(),
                reason: failure.reason,
            });
            crate::sys::exit_now(1);
        }
    };
    if channel.send(&FromInit::Ready).is_err() {
        crate::sys::exit_now(1);
    }
    let Some(notify) = notify else {
        // A Lambda environment: the init stays pid 1 and serves the supervisor.
        let start_hooks = hook_state.map(|state| (&spec.hooks, state));
        super::lambda_init::serve(channel, &spec.process, filter.as_ref(), start_hooks);
    };
    drop(channel);
    let Ok(mut start) = wait_for_start(&notify) else {
        // `delete` removed the socket or the state went away: nothing to start.
        crate::sys::exit_now(1);
    };
    drop(notify);
    if let Some(state) = hook_state {
        if let Err(e) = spec.hooks.run(HookKind::StartContainer, &state) {
            let failure = FromInit::Failed {
                step: "running startContainer hooks".to_string(),
                reason: crate::error::chain(&e),
            };
            let _ = start.write_all(FAILED);
            let _ = serde_json::to_writer(&mut start, &failure);
            crate::sys::exit_now(1);
        }
    }
    if start.write_all(STARTED).is_err() {
        crate::sys::exit_now(1);
    }
    drop(start);
    if let Some(filter) = filter {
        if let Err(e) = filter.load() {
            eprintln!("runlambda: container init: loading the seccomp filter: {e}");
            crate::sys::exit_now(127);
        }
    }
    let error = if spec.listen_fds == 0 {
        process::exec(&executable, &spec.process)
    } else {
        // The init execs the process: its pid here is the one the process will have.
        let mut announced = spec.process.clone();
        let pid = nix::unistd::getpid().as_raw();
        announced.env = crate::activation::announce(&spec.process.env, spec.listen_fds, pid);
        process::exec(&executable, &announced)
    };
    // The caller reads the container's stderr: this is the only place left to say why.
    eprintln!("runlambda: container init: {error}");
    crate::sys::exit_now(127);
}

/// Builds the environment; returns the program to exec, the state for the `startContainer`
/// hooks when the container has hooks, and the seccomp filter still to load (by the init right
/// before `execve`, or in a Lambda environment by each process it starts).
fn build(
    spec: &EnvironmentSpec,
    channel: &Channel,
    console: Option<UnixStream>,
    namespaces: Vec<(NamespaceKind, OwnedFd)>,
    v1_entries: Vec<V1Entry>,
    lambda: bool,
) -> Result<(PathBuf, Option<HookState>, Option<Filter>), Failure> {
    // Until execve this process runs runlambda's own code inside the container: nothing in it
    // may open our /proc/PID/exe or attach to us.
    nix::sys::prctl::set_dumpable(false).step("making the init non-dumpable")?;
    match channel.recv::<ToInit>().step("waiting for the runtime")? {
        Some(ToInit::Proceed) => {}
        other => {
            return Err(Failure {
                step: "waiting for the runtime",
                reason: format!("expected Proceed, got {other:?}"),
            })
        }
    }
    // Into every leaf before anything of the environment can run or fork, and before hooks
    // look at it; alone, this single-threaded process moves without waiting (`V1Entry::join`).
    for entry in v1_entries {
        entry.join().step("joining the cgroup v1 leaves")?;
    }
    if spec.creates(NamespaceKind::User) {
        // The parent mapped ids: become root of the new user namespace.
        process::become_root().step("becoming root in the user namespace")?;
    }
    // The user namespace first: joining the others needs capabilities in their owner.
    let mut namespaces = namespaces;
    namespaces.sort_by_key(|(kind, _)| *kind);
    for (kind, fd) in &namespaces {
        setns(fd.as_fd(), kind.clone_flag()).step("joining a namespace")?;
    }
    if spec.creates(NamespaceKind::Network) {
        crate::sys::set_loopback_up().step("bringing up the loopback interface")?;
    }
    if let Some(hostname) = &spec.hostname {
        sethostname(hostname).step("setting the hostname")?;
    }
    if let Some(domainname) = &spec.domainname {
        std::fs::write("/proc/sys/kernel/domainname", domainname)
            .step("setting the domain name")?;
    }
    let hook_state = prepare_rootfs(spec, channel)?;
    // After the user's mounts (its devpts above all), before the root may turn read-only.
    if let Some(socket) = console {
        terminal::attach(&socket, &spec.process, true).step("setting up the terminal")?;
    }
    for (key, value) in &spec.sysctl {
        rootfs::write_sysctl(key, value).map_err(|e| Failure {
            step: "writing sysctls",
            reason: format!("{key}={value}: {e}"),
        })?;
    }
    for path in &spec.masked_paths {
        rootfs::mask(path).map_err(|e| path_failure("masking paths", path, e))?;
    }
    for path in &spec.readonly_paths {
        rootfs::make_readonly(path).map_err(|e| path_failure("making paths read-only", path, e))?;
    }
    if spec.root_readonly {
        rootfs::remount_readonly("/".as_ref()).step("making the root read-only")?;
    }
    if let Some(adj) = spec.process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .step("setting oom_score_adj")?;
    }
    process::apply_rlimits(&spec.process).step("setting rlimits")?;
    let executable =
        process::resolve_executable(&spec.process).step("looking up process.args[0]")?;
    // As late as the environment allows, so that `create` compiled it meanwhile.
    let filter = match receive_filter(channel)? {
        // Without no_new_privs only CAP_SYS_ADMIN may load a filter: now, before the user
        // and capabilities change.
        Some(filter) if !lambda && !spec.process.no_new_privileges => {
            filter.load().step("loading the seccomp filter")?;
            None
        }
        filter => filter,
    };
    process::become_user(&spec.process).step("setting the user and capabilities")?;
    process::finish(&spec.process).step("preparing the process")?;
    // Only stdio, activation sockets and preserved fds may reach the container's process.
    crate::sys::cloexec_from(3 + spec.listen_fds + spec.preserve_fds)
        .step("closing inherited file descriptors")?;
    Ok((executable, hook_state, filter))
}

fn receive_filter(channel: &Channel) -> Result<Option<Filter>, Failure> {
    const STEP: &str = "waiting for the seccomp filter";
    match channel.recv::<ToInit>().step(STEP)? {
        Some(ToInit::Seccomp { filter }) => Ok(filter),
        other => Err(Failure {
            step: STEP,
            reason: format!("expected Seccomp, got {other:?}"),
        }),
    }
}

fn path_failure(step: &'static str, path: &std::path::Path, e: nix::Error) -> Failure {
    Failure {
        step,
        reason: format!("{}: {e}", path.display()),
    }
}

fn prepare_rootfs(spec: &EnvironmentSpec, channel: &Channel) -> Result<Option<HookState>, Failure> {
    rootfs::isolate_from_host(spec.rootfs_propagation).step("isolating mounts from the host")?;
    rootfs::bind_rootfs(&spec.rootfs).step("binding the rootfs")?;
    let root = open(
        &spec.rootfs,
        OFlag::O_DIRECTORY | OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .step("opening the rootfs")?;
    for step in mounts::plan(spec) {
        mounts::apply(root.as_fd(), &step).map_err(|e| Failure {
            step: "mounting",
            reason: format!("{}: {e}", describe(&step)),
        })?;
    }
    drop(root);
    let hook_state = if spec.hooks.involve_init() {
        Some(run_create_hooks(spec, channel)?)
    } else {
        None
    };
    rootfs::pivot(&spec.rootfs).step("pivoting to the rootfs")?;
    rootfs::apply_propagation(spec.rootfs_propagation).step("setting rootfs propagation")?;
    Ok(hook_state)
}

/// Before pivot_root, so that hook paths still resolve on the host: waits while `create` runs
/// the runtime's hooks, then runs `createContainer` in the container's namespaces.
fn run_create_hooks(spec: &EnvironmentSpec, channel: &Channel) -> Result<HookState, Failure> {
    const STEP: &str = "waiting for the runtime's hooks";
    channel.send(&FromInit::HooksDue).step(STEP)?;
    let state = match channel.recv::<ToInit>().step(STEP)? {
        Some(ToInit::RunHooks { state }) => state,
        other => {
            return Err(Failure {
                step: STEP,
                reason: format!("expected RunHooks, got {other:?}"),
            })
        }
    };
    spec.hooks
        .run(HookKind::CreateContainer, &state)
        .map_err(|e| Failure {
            step: "running createContainer hooks",
            reason: crate::error::chain(&e),
        })?;
    Ok(state)
}

fn describe(step: &mounts::MountStep) -> String {
    match step {
        mounts::MountStep::Mount(m) => format!("{:?} on {}", m.kind, m.destination.display()),
        mounts::MountStep::Device(name) => format!("device /dev/{name}"),
        mounts::MountStep::Symlink { link, .. } => format!("symlink {link}"),
    }
}

/// Blocks until `start` connects and asks; returns the connection, for the answer.
fn wait_for_start(notify: &UnixListener) -> std::io::Result<UnixStream> {
    loop {
        let (mut conn, _) = notify.accept()?;
        let mut byte = [0u8; 1];
        if conn.read_exact(&mut byte).is_ok() && byte == *START {
            return Ok(conn);
        }
    }
}

/// What `start` writes on the notify socket.
pub const START: &[u8; 1] = b"s";
/// What the init answers before it execs.
pub const STARTED: &[u8; 1] = b"k";
/// What the init answers when a `startContainer` hook failed, followed by the JSON of a
/// [`FromInit::Failed`]; the init then exits.
pub const FAILED: &[u8; 1] = b"f";
