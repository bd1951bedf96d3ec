//! The OCI verbs on one container — create, start, state, kill, delete, pause, resume, list —
//! with runc's semantics: status is derived from the kernel (is the init alive, is the notify
//! socket still there, is the cgroup frozen), never from a flag that could go stale.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::cgroup::{Cgroup, CgroupHost};
use crate::config::RuntimeConfig;
use crate::hooks::{HookError, HookKind, HookState};
use crate::sandbox::{self, init};
use crate::spec::{EnvironmentSpec, NamespaceKind};
use crate::state::{self, MemoryLimit, ProcessLiveness, Record, StateDir};
use crate::{bundle, console, lambda, socket_path, Error, Result};

/// The runtime-spec version this runtime implements, as `state` reports it.
pub const OCI_VERSION: &str = "1.2.0";

/// How long `pause`, `resume` and `delete --force` wait for the kernel to confirm.
const CGROUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What `create` is asked beyond the bundle.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Where to write the init's pid.
    pub pid_file: Option<PathBuf>,
    /// A Lambda environment whatever the annotations say (`runlambda run`).
    pub lambda: bool,
    /// How many socket-activation fds, from 3 on, the container's process inherits
    /// ([`crate::activation::inherited`]).
    pub listen_fds: u32,
    /// How many fds after those the container's process inherits (`--preserve-fds`).
    pub preserve_fds: u32,
    /// Where to send the process's terminal (`--console-socket`, with process.terminal).
    pub console_socket: Option<PathBuf>,
    /// Start the container once created, as `start` would (`runlambda run`): a Lambda
    /// environment's supervisor begins Init at once instead of waiting to be asked.
    pub start: bool,
}

/// The runtime as one CLI call sees it: where state lives and the runtime config.
pub struct Runtime {
    pub root: PathBuf,
    pub config: RuntimeConfig,
    /// `--systemd-cgroup`: cgroupsPath is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// A container's status, runc's vocabulary (the spec's four plus `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(name)
    }
}

/// The state JSON runc prints, plus whether the memory limit holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateReport {
    pub oci_version: &'static str,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    pub owner: String,
    /// `none`, `enforced`, or `unenforced` (a limit the host could not apply).
    pub memory_limit: MemoryLimit,
}

/// One container found in the state root, with its record and cgroup.
struct Container {
    dir: StateDir,
    record: Record,
    cgroup: Cgroup,
}

impl Runtime {
    fn cgroup_host(&self) -> Result<CgroupHost> {
        Ok(CgroupHost::discover()?)
    }

    fn find(&self, id: &str) -> Result<Container> {
        let dir = StateDir::open(&self.root, id)?;
        let record = dir.load()?;
        let cgroup = Cgroup::open(&self.cgroup_host()?, &record.cgroup);
        Ok(Container {
            dir,
            record,
            cgroup,
        })
    }

    /// Builds the environment of a new container and leaves its init waiting for `start`
    /// (unless `options.start` asks to start it too).
    pub fn create(&self, id: &str, bundle_dir: &Path, options: &CreateOptions) -> Result<()> {
        let mut spec = bundle::load(bundle_dir, &self.config, options.lambda)?;
        // A Lambda environment's processes are the init's children, not its exec: no
        // activation socket would reach the function as systemd meant it.
        if !spec.is_lambda() {
            spec.listen_fds = options.listen_fds;
        }
        spec.preserve_fds = options.preserve_fds;
        if spec.is_lambda() && !spec.has(NamespaceKind::Network) {
            return Err(Error::LambdaNeedsNetwork);
        }
        let console = console::connect(spec.process.terminal, options.console_socket.as_deref())?;
        let host = self.cgroup_host()?;
        let dir = StateDir::create(&self.root, id)?;
        let built = self.build(&dir, &spec, &host, options, console);
        if built.is_err() {
            // Nothing of a failed create may remain; the first error is the one to report.
            let _ = dir.remove();
            // The lifecycle still ends as after a delete: with the poststop hooks.
            let _ = spec
                .hooks
                .run_each(HookKind::Poststop, &spec.hook_state(id, 0));
            return built;
        }
        match options.start {
            false => Ok(()),
            // Its supervisor began Init already: what is left of `start` is the hooks.
            true if spec.is_lambda() => run_poststart(&self.find(id)?),
            true => self.start(id),
        }
    }

    fn build(
        &self,
        dir: &StateDir,
        spec: &EnvironmentSpec,
        host: &CgroupHost,
        options: &CreateOptions,
        console: Option<UnixStream>,
    ) -> Result<()> {
        let cgroup_path = self.cgroup_path(spec, dir.id())?;
        let cgroup = Cgroup::create(
            host,
            &cgroup_path,
            &spec.limits,
            self.config.allow_unenforced_memory,
        )?;
        let result = self.spawn_and_record(dir, spec, &cgroup, options, console);
        if result.is_err() {
            let _ = cgroup.kill(CGROUP_TIMEOUT);
            let _ = cgroup.destroy();
        }
        result
    }

    fn spawn_and_record(
        &self,
        dir: &StateDir,
        spec: &EnvironmentSpec,
        cgroup: &Cgroup,
        options: &CreateOptions,
        console: Option<UnixStream>,
    ) -> Result<()> {
        // Its absence marks a started container: a Lambda environment started at once has none.
        let notify = match spec.is_lambda() && options.start {
            true => None,
            false => Some(dir.bind_socket(state::NOTIFY_SOCKET)?),
        };
        // A Lambda environment also gets the Runtime API's socket directory mounted inside.
        let lambda_spec;
        let (spec, runtime_unix) = if spec.is_lambda() {
            let (with_socket, listener) = lambda::runtime_api_socket(dir, spec)?;
            lambda_spec = with_socket;
            (&lambda_spec, Some(listener))
        } else {
            (spec, None)
        };
        // A plain init waits for `start` itself; a Lambda environment's supervisor does.
        let (init_notify, supervisor_notify) = if spec.is_lambda() {
            (None, notify)
        } else {
            (notify, None)
        };
        let building = sandbox::spawn(dir.id(), spec, cgroup, init_notify, console)?;
        // While the init builds the environment: the record, and the supervisor's sockets.
        let pid_start_time = state::proc_stat(building.pid)
            .map(|(_, started)| started)
            .ok_or_else(|| Error::from(sandbox::SandboxError::InitDied))?;
        let memory = match (spec.limits.memory_bytes, cgroup.memory_enforced()) {
            (None, _) => MemoryLimit::None,
            (Some(_), true) => MemoryLimit::Enforced,
            (Some(_), false) => MemoryLimit::Unenforced,
        };
        let record_pid = building.pid.as_raw();
        dir.save(&Record {
            id: dir.id().to_string(),
            pid: record_pid,
            pid_start_time,
            bundle: spec.bundle.clone(),
            rootfs: spec.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
            annotations: spec.annotations.clone(),
            cgroup: cgroup.rel_path().to_path_buf(),
            memory,
            lambda: spec.is_lambda(),
            seccomp: spec.seccomp.clone(),
            hooks: spec.hooks.clone(),
        })?;
        let listeners = runtime_unix
            .map(|runtime_unix| {
                lambda::bind_listeners(dir, spec, building.pid, supervisor_notify, runtime_unix)
            })
            .transpose()?;
        let spawned = building.ready()?;
        if let Some(listeners) = listeners {
            let function = lambda::function(spec, memory == MemoryLimit::Enforced);
            lambda::start_supervisor(spec, function, cgroup, spawned, listeners)?;
        }
        if let Some(path) = &options.pid_file {
            state::write_atomic(path, record_pid.to_string().as_bytes(), 0o644).map_err(
                |source| Error::PidFile {
                    path: path.clone(),
                    source: Box::new(source),
                },
            )?;
        }
        Ok(())
    }

    /// Where the leaf goes: an absolute `cgroupsPath` is taken from the hierarchy root, a
    /// relative one (and none at all, as the id) under the configured parent.
    /// With `--systemd-cgroup`, where systemd would put the unit `slice:prefix:name`.
    fn cgroup_path(&self, spec: &EnvironmentSpec, id: &str) -> Result<PathBuf> {
        Ok(match &spec.cgroups_path {
            Some(path) if self.systemd_cgroup => {
                crate::cgroup::systemd::expand(&path.to_string_lossy())?
            }
            Some(path) if path.is_absolute() => path.strip_prefix("/").unwrap_or(path).into(),
            Some(path) => self.config.cgroup_parent.join(path),
            None => self.config.cgroup_parent.join(id),
        })
    }

    /// Lets the init exec the container's process, after the `startContainer` hooks, then
    /// runs the `poststart` hooks. A failed hook of either kind leaves the container stopped.
    pub fn start(&self, id: &str) -> Result<()> {
        let container = self.find(id)?;
        let _lock = container.dir.lock()?;
        container.require(&[Status::Created], "start")?;
        let socket = container.dir.notify_socket();
        let start_error = |source| Error::Start {
            id: id.to_string(),
            source,
        };
        let refusal = ask_to_start(&socket).map_err(start_error)?;
        if let Some(json) = refusal {
            // The init ran the startContainer hooks, one failed, and it exits.
            return match serde_json::from_slice(&json) {
                Ok(sandbox::channel::FromInit::Failed { step, reason }) => {
                    Err(sandbox::SandboxError::Init { step, reason }.into())
                }
                _ => Err(start_error(std::io::Error::other(format!(
                    "unexpected answer from the init: {}",
                    String::from_utf8_lossy(&json)
                )))),
            };
        }
        // The socket's absence is what marks the container as started.
        match std::fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::NotifySocket {
                    path: socket,
                    source: e,
                })
            }
            _ => {}
        }
        run_poststart(&container)
    }

    /// The state JSON of one container.
    pub fn state(&self, id: &str) -> Result<StateReport> {
        Ok(self.find(id)?.report())
    }

    /// Every container under the root.
    pub fn list(&self) -> Result<Vec<StateReport>> {
        let mut reports = Vec::new();
        for id in StateDir::list(&self.root)? {
            match self.find(&id) {
                Ok(container) => reports.push(container.report()),
                // Deleted between listing and reading: not there any more.
                Err(Error::State(state::StateError::NotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(reports)
    }

    /// Sends a signal to the init, or with `all` to every process in the container's cgroup.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<()> {
        let container = self.find(id)?;
        let _lock = container.dir.lock()?;
        container.require(&[Status::Created, Status::Running, Status::Paused], "kill")?;
        if all {
            return Ok(container.cgroup.signal_all(signal)?);
        }
        if container.record.lambda && container.status() != Status::Paused {
            // A Lambda environment ends with its Shutdown phase: its supervisor runs it when
            // asked on the control socket. Signalling the init instead could leave the signal
            // pending in a freshly frozen environment.
            if matches!(signal, Signal::SIGTERM | Signal::SIGINT)
                && container.request_shutdown().is_ok()
            {
                return Ok(());
            }
            // An idle environment sits frozen by its supervisor; the init must run to pass
            // the signal on (a pause by the user is left alone, as runc would).
            container.cgroup.thaw(CGROUP_TIMEOUT)?;
        }
        container.signal_init(signal)
    }

    /// Removes a stopped (or, with `force`, any) container: its processes, cgroup and state,
    /// then runs the `poststop` hooks. Those do not fail the delete: the ones that failed are
    /// returned for the caller to warn about.
    pub fn delete(&self, id: &str, force: bool) -> Result<Vec<HookError>> {
        let container = match self.find(id) {
            // As runc: `delete --force` of a container that is already gone succeeds. The
            // containerd shim's cleanup and podman after a failed create both call it.
            Err(Error::State(state::StateError::NotFound(_))) if force => return Ok(Vec::new()),
            found => found?,
        };
        let _lock = container.dir.lock()?;
        let status = container.status();
        // runc deletes a created container too: its process never ran.
        if !force && matches!(status, Status::Running | Status::Paused) {
            return Err(Error::WrongState {
                id: id.to_string(),
                status,
                verb: "delete",
                hint: " (stop it first, or use --force)",
            });
        }
        // Even a stopped container may leave processes in its cgroup (a shared pid namespace).
        container.cgroup.kill(CGROUP_TIMEOUT)?;
        container.cgroup.destroy()?;
        container.dir.remove()?;
        let hooks = &container.record.hooks;
        Ok(hooks.run_each(HookKind::Poststop, &container.hook_state()))
    }

    /// Freezes every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let container = self.find(id)?;
        let _lock = container.dir.lock()?;
        container.require(&[Status::Running], "pause")?;
        if container.record.lambda {
            container.dir.mark_paused(true)?;
        }
        Ok(container.cgroup.freeze(CGROUP_TIMEOUT)?)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let container = self.find(id)?;
        let _lock = container.dir.lock()?;
        container.require(&[Status::Paused], "resume")?;
        if container.record.lambda {
            container.dir.mark_paused(false)?;
        }
        Ok(container.cgroup.thaw(CGROUP_TIMEOUT)?)
    }

    /// Changes the limits of a created, running or paused container's cgroup.
    pub fn update(&self, id: &str, limits: &crate::cgroup::Limits) -> Result<()> {
        let container = self.find(id)?;
        let _lock = container.dir.lock()?;
        container.require(
            &[Status::Created, Status::Running, Status::Paused],
            "update",
        )?;
        let host = self.cgroup_host()?;
        Ok(container
            .cgroup
            .update(&host, limits, self.config.allow_unenforced_memory)?)
    }

    /// Starts a new process in a created or running container (see [`crate::exec`]). A
    /// paused container is refused: thawing it behind its owner's back would undo the pause.
    pub fn exec(&self, args: &crate::cli::ExecArgs) -> Result<crate::exec::Started> {
        let container = self.find(&args.id)?;
        // Held while the process is set up, so that no pause or delete cuts in; not while it
        // runs.
        let _lock = container.dir.lock()?;
        if container.status() == Status::Paused {
            return Err(Error::WrongState {
                id: args.id.clone(),
                status: Status::Paused,
                verb: "exec in",
                hint: " (resume it first)",
            });
        }
        container.require(&[Status::Created, Status::Running], "exec in")?;
        crate::exec::start(args, &container.record, &container.cgroup)
    }

    /// The host pids of the processes in the container's cgroup leaf.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        Ok(self.find(id)?.cgroup.pids()?)
    }

    /// What the container's cgroup reports of its cpu, memory and pids.
    pub fn usage(&self, id: &str) -> Result<crate::cgroup::Usage> {
        Ok(self.find(id)?.cgroup.usage()?)
    }
}

impl Container {
    fn status(&self) -> Status {
        match state::liveness(self.record.pid, self.record.pid_start_time) {
            ProcessLiveness::Gone => Status::Stopped,
            ProcessLiveness::Alive if self.dir.notify_socket().exists() => Status::Created,
            // A Lambda environment is frozen whenever it is idle: only a user's pause counts.
            ProcessLiveness::Alive if self.record.lambda => {
                if self.dir.is_marked_paused() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            ProcessLiveness::Alive if self.cgroup.is_frozen().unwrap_or(false) => Status::Paused,
            ProcessLiveness::Alive => Status::Running,
        }
    }

    fn require(&self, allowed: &[Status], verb: &'static str) -> Result<()> {
        let status = self.status();
        if allowed.contains(&status) {
            return Ok(());
        }
        if status == Status::Stopped {
            return Err(Error::NotRunning(self.record.id.clone()));
        }
        Err(Error::WrongState {
            id: self.record.id.clone(),
            status,
            verb,
            hint: "",
        })
    }

    /// Asks a Lambda environment's supervisor for its Shutdown (the exchange `start` uses:
    /// one byte each way).
    fn request_shutdown(&self) -> std::io::Result<()> {
        let mut conn = socket_path::connect(&self.dir.path().join(state::CONTROL_SOCKET))?;
        conn.write_all(&[crate::supervisor::serve::TERMINATE])?;
        let mut reply = [0u8; 1];
        conn.read_exact(&mut reply)
    }

    fn signal_init(&self, signal: Signal) -> Result<()> {
        let id = self.record.id.clone();
        let pid = nix::unistd::Pid::from_raw(self.record.pid);
        let err = |source: std::io::Error| Error::Kill {
            id: id.clone(),
            source,
        };
        let pidfd = crate::sys::pidfd_open(pid).map_err(err)?;
        // The pidfd pins the process it was opened for; checking the start time after opening
        // it proves that process is our init and not a later owner of the pid.
        if state::liveness(self.record.pid, self.record.pid_start_time) == ProcessLiveness::Gone {
            return Err(err(Errno::ESRCH.into()));
        }
        crate::sys::pidfd_send_signal(pidfd.as_fd(), signal as i32).map_err(err)
    }

    /// The container as its hooks see it.
    fn hook_state(&self) -> HookState {
        HookState {
            id: self.record.id.clone(),
            pid: self.record.pid,
            bundle: self.record.bundle.clone(),
            annotations: self.record.annotations.clone(),
        }
    }

    fn report(&self) -> StateReport {
        let status = self.status();
        StateReport {
            oci_version: OCI_VERSION,
            id: self.record.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.record.pid
            },
            status,
            bundle: self.record.bundle.clone(),
            rootfs: self.record.rootfs.clone(),
            created: self.record.created.clone(),
            annotations: self.record.annotations.clone(),
            owner: String::new(),
            memory_limit: self.record.memory,
        }
    }
}

/// The `poststart` hooks of a container that has just started. A failed one leaves it stopped:
/// as runc does, and the runtime-spec asks since 1.3, the container does not run on.
fn run_poststart(container: &Container) -> Result<()> {
    let hooks = &container.record.hooks;
    if let Err(e) = hooks.run(HookKind::Poststart, &container.hook_state()) {
        let _ = container.cgroup.kill(CGROUP_TIMEOUT);
        return Err(e.into());
    }
    Ok(())
}

/// Asks the init on the notify socket to start; `Some` with the init's reason when it refused.
fn ask_to_start(socket: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let mut conn = socket_path::connect(socket)?;
    conn.write_all(init::START)?;
    let mut reply = [0u8; 1];
    conn.read_exact(&mut reply)?;
    if reply != *init::FAILED {
        return Ok(None);
    }
    let mut reason = Vec::new();
    conn.read_to_end(&mut reason)?;
    Ok(Some(reason))
}
