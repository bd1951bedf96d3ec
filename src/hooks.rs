//! OCI hooks: the programs config.json's `hooks` names, run at six points of the lifecycle with
//! the container's state JSON on their standard input (runtime-spec config.md, "POSIX-platform
//! Hooks"). This file owns the checked hook lists and running them; where each list runs is its
//! caller's business: the sandbox's parent half for `prestart` and `createRuntime`, the init for
//! `createContainer` and `startContainer`, `start` for `poststart`, `delete` for `poststop`.
//!
//! A hook gets exactly its `args` (the first as argv0) and `env`, the state on stdin, and no
//! other fd of ours. Its stdin and output are memory files rather than pipes: nothing blocks
//! on a hook that does not read, or on one whose children keep the output open, so running one
//! needs no thread — the init, which must stay single-threaded, runs hooks too.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::unistd::Pid;
use oci_spec::runtime::{ContainerState, State};
use serde::{Deserialize, Serialize};

/// The points of the lifecycle a hook runs at, in the order they come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HookKind {
    /// Deprecated by the runtime-spec, still what containerd and podman use.
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl HookKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [HookKind; 6] = [
        Self::Prestart,
        Self::CreateRuntime,
        Self::CreateContainer,
        Self::StartContainer,
        Self::Poststart,
        Self::Poststop,
    ];

    /// The key config.json uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prestart => "prestart",
            Self::CreateRuntime => "createRuntime",
            Self::CreateContainer => "createContainer",
            Self::StartContainer => "startContainer",
            Self::Poststart => "poststart",
            Self::Poststop => "poststop",
        }
    }

    /// The status the state on the hook's stdin says.
    fn status(self) -> ContainerState {
        match self {
            Self::Prestart | Self::CreateRuntime | Self::CreateContainer => {
                ContainerState::Creating
            }
            Self::StartContainer => ContainerState::Created,
            Self::Poststart => ContainerState::Running,
            Self::Poststop => ContainerState::Stopped,
        }
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One checked hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// Absolute; resolved where the hook runs (the container's root for `startContainer`).
    pub path: PathBuf,
    /// The whole argv; empty means argv0 is the path.
    pub args: Vec<String>,
    /// `KEY=value` entries: the hook's whole environment.
    pub env: Vec<String>,
    /// Past it the hook is killed and has failed.
    pub timeout: Option<Duration>,
}

/// The hook lists of a container, persisted with its state: later verbs run the later hooks
/// as config.json said at `create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hooks {
    pub prestart: Vec<Hook>,
    pub create_runtime: Vec<Hook>,
    pub create_container: Vec<Hook>,
    pub start_container: Vec<Hook>,
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

/// The container as its hooks see it; the status comes from the kind of hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookState {
    pub id: String,
    /// Host pid of the init; `poststop` hooks get none, as the process is gone.
    pub pid: i32,
    pub bundle: PathBuf,
    pub annotations: BTreeMap<String, String>,
}

/// Why a hook failed: which one, and what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{kind} hook #{index} {}", path.display())]
pub struct HookError {
    pub kind: HookKind,
    /// Its position in the list.
    pub index: usize,
    pub path: PathBuf,
    #[source]
    pub reason: HookFailure,
}

/// What went wrong with one hook.
#[derive(Debug, thiserror::Error)]
pub enum HookFailure {
    #[error("cannot prepare its standard input and output")]
    Streams(#[source] io::Error),
    #[error("cannot run it")]
    Spawn(#[source] io::Error),
    #[error("cannot wait for it")]
    Wait(#[source] io::Error),
    #[error("{status}{}", shown(output))]
    Failed { status: ExitStatus, output: String },
    #[error("killed after its timeout of {}s{}", timeout.as_secs(), shown(output))]
    TimedOut { timeout: Duration, output: String },
}

/// A hook's output as an error message shows it.
fn shown(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(", output: {output}")
    }
}

/// How much of a failed hook's output its error keeps (the end, where the reason usually is).
const OUTPUT_KEPT: usize = 4096;

impl Hooks {
    /// The list of one kind.
    pub fn of(&self, kind: HookKind) -> &[Hook] {
        match kind {
            HookKind::Prestart => &self.prestart,
            HookKind::CreateRuntime => &self.create_runtime,
            HookKind::CreateContainer => &self.create_container,
            HookKind::StartContainer => &self.start_container,
            HookKind::Poststart => &self.poststart,
            HookKind::Poststop => &self.poststop,
        }
    }

    /// Whether the init has hooks to run (`createContainer`, `startContainer`) or to wait for
    /// (`prestart`, `createRuntime`, run by the runtime while the init's mounts are made).
    pub fn involve_init(&self) -> bool {
        [
            HookKind::Prestart,
            HookKind::CreateRuntime,
            HookKind::CreateContainer,
            HookKind::StartContainer,
        ]
        .iter()
        .any(|kind| !self.of(*kind).is_empty())
    }

    /// Runs the hooks of `kind` in order; the first failure stops the rest.
    pub fn run(&self, kind: HookKind, state: &HookState) -> Result<(), HookError> {
        let input = state.json(kind);
        self.of(kind)
            .iter()
            .enumerate()
            .try_for_each(|(index, hook)| run_one(kind, index, hook, &input))
    }

    /// Runs every hook of `kind` whatever the others do (what `poststop` asks); returns the
    /// failures.
    pub fn run_each(&self, kind: HookKind, state: &HookState) -> Vec<HookError> {
        let input = state.json(kind);
        self.of(kind)
            .iter()
            .enumerate()
            .filter_map(|(index, hook)| run_one(kind, index, hook, &input).err())
            .collect()
    }
}

impl HookState {
    /// The runtime-spec's state, as a hook of `kind` reads it.
    fn json(&self, kind: HookKind) -> Vec<u8> {
        let mut state = State::default();
        state
            .set_version(crate::container::OCI_VERSION.to_string())
            .set_id(self.id.clone())
            .set_status(kind.status())
            .set_pid((kind != HookKind::Poststop).then_some(self.pid))
            .set_bundle(self.bundle.clone())
            .set_annotations(Some(
                self.annotations
                    .iter()
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
            ));
        serde_json::to_vec(&state).expect("a state serialises")
    }
}

fn run_one(kind: HookKind, index: usize, hook: &Hook, input: &[u8]) -> Result<(), HookError> {
    let error = |reason| HookError {
        kind,
        index,
        path: hook.path.clone(),
        reason,
    };
    let (stdin, output) = streams(input).map_err(|e| error(HookFailure::Streams(e)))?;
    let mut command = Command::new(&hook.path);
    if let Some((argv0, rest)) = hook.args.split_first() {
        command.arg0(argv0).args(rest);
    }
    command
        .env_clear()
        .envs(hook.env.iter().filter_map(|entry| entry.split_once('=')))
        .stdin(stdin)
        .stdout(Stdio::from(
            output
                .try_clone()
                .map_err(|e| error(HookFailure::Streams(e)))?,
        ))
        .stderr(Stdio::from(
            output
                .try_clone()
                .map_err(|e| error(HookFailure::Streams(e)))?,
        ));
    crate::sys::only_stdio_on_exec(&mut command);
    let mut child = command.spawn().map_err(|e| error(HookFailure::Spawn(e)))?;
    // The parent's copies go, so that only the hook holds its streams.
    drop(command);
    // A hook still running at its deadline gives back the timeout it ran past.
    let waited = match hook.timeout {
        None => child.wait().map(Ok),
        Some(timeout) => {
            wait_until(&mut child, Instant::now() + timeout).map(|status| status.ok_or(timeout))
        }
    };
    let reason = match waited {
        Ok(Ok(status)) if status.success() => return Ok(()),
        Ok(Ok(status)) => HookFailure::Failed {
            status,
            output: tail(output),
        },
        Ok(Err(timeout)) => {
            kill_and_reap(&mut child);
            HookFailure::TimedOut {
                timeout,
                output: tail(output),
            }
        }
        Err(e) => {
            kill_and_reap(&mut child);
            HookFailure::Wait(e)
        }
    };
    Err(error(reason))
}

/// Ends a hook that must not go on; it is our child, so it is reaped here.
fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The hook's stdin, holding the state, and a file for its stdout and stderr.
fn streams(input: &[u8]) -> io::Result<(File, File)> {
    let memory_file = |name: &str| -> io::Result<File> {
        Ok(File::from(memfd_create(name, MFdFlags::MFD_CLOEXEC)?))
    };
    let mut stdin = memory_file("runlambda-hook-state")?;
    stdin.write_all(input)?;
    stdin.rewind()?;
    Ok((stdin, memory_file("runlambda-hook-output")?))
}

/// Waits for the child until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    // The child is not reaped yet, so its pid cannot have been reused.
    let pidfd = crate::sys::pidfd_open(Pid::from_raw(child.id() as i32))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Err(Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e.into()),
            // A pidfd turns readable when its process exits.
            Ok(_) => return child.wait().map(Some),
        }
    }
}

/// The end of what the hook wrote, trimmed.
fn tail(mut output: File) -> String {
    let mut bytes = Vec::new();
    if output
        .rewind()
        .and_then(|()| output.read_to_end(&mut bytes))
        .is_err()
    {
        return String::new();
    }
    let start = bytes.len().saturating_sub(OUTPUT_KEPT);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> HookState {
        HookState {
            id: "c1".into(),
            pid: 42,
            bundle: "/bundle".into(),
            annotations: BTreeMap::from([("a".to_string(), "b".to_string())]),
        }
    }

    fn sh(script: &str) -> Hook {
        Hook {
            path: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), script.into()],
            env: vec!["ONLY=this".into()],
            timeout: None,
        }
    }

    fn hooks(kind: HookKind, list: Vec<Hook>) -> Hooks {
        let mut hooks = Hooks::default();
        match kind {
            HookKind::Prestart => hooks.prestart = list,
            HookKind::CreateRuntime => hooks.create_runtime = list,
            HookKind::CreateContainer => hooks.create_container = list,
            HookKind::StartContainer => hooks.start_container = list,
            HookKind::Poststart => hooks.poststart = list,
            HookKind::Poststop => hooks.poststop = list,
        }
        hooks
    }

    #[test]
    fn the_state_carries_the_status_of_the_kind() {
        let statuses: Vec<(String, serde_json::Value)> = HookKind::ALL
            .iter()
            .map(|kind| {
                let json: serde_json::Value = serde_json::from_slice(&state().json(*kind)).unwrap();
                (
                    json["status"].as_str().unwrap().to_string(),
                    json["pid"].clone(),
                )
            })
            .collect();
        let expected = [
            ("creating", 42),
            ("creating", 42),
            ("creating", 42),
            ("created", 42),
            ("running", 42),
        ];
        for (got, (status, pid)) in statuses.iter().zip(expected) {
            assert_eq!(got.0, status);
            assert_eq!(got.1, pid);
        }
        assert_eq!(statuses[5].0, "stopped");
        assert!(statuses[5].1.is_null());
        let json: serde_json::Value =
            serde_json::from_slice(&state().json(HookKind::Prestart)).unwrap();
        assert_eq!(json["ociVersion"], crate::container::OCI_VERSION);
        assert_eq!(json["id"], "c1");
        assert_eq!(json["bundle"], "/bundle");
        assert_eq!(json["annotations"]["a"], "b");
    }

    #[test]
    fn a_hook_reads_the_state_and_gets_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!(
            "cat > {0}; echo >> {0}; echo $ONLY $HOME >> {0}",
            out.display()
        );
        let list = hooks(HookKind::Poststart, vec![sh(&script)]);
        list.run(HookKind::Poststart, &state()).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let (json, env) = text.split_once('\n').unwrap();
        let json: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(json["status"], "running");
        assert_eq!(env.trim(), "this");
    }

    #[test]
    fn a_failure_names_the_hook_its_status_and_output_and_stops_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let after = dir.path().join("after");
        let list = hooks(
            HookKind::CreateRuntime,
            vec![
                sh("true"),
                sh("echo broken >&2; exit 3"),
                sh(&format!("touch {}", after.display())),
            ],
        );
        let err = list.run(HookKind::CreateRuntime, &state()).unwrap_err();
        assert_eq!((err.kind, err.index), (HookKind::CreateRuntime, 1));
        assert_eq!(
            crate::error::chain(&err),
            "createRuntime hook #1 /bin/sh: exit status: 3, output: broken"
        );
        assert!(!after.exists());
    }

    #[test]
    fn poststop_runs_every_hook_and_returns_each_failure() {
        let list = hooks(
            HookKind::Poststop,
            vec![sh("exit 1"), sh("true"), sh("exit 2")],
        );
        let errors = list.run_each(HookKind::Poststop, &state());
        let indexes: Vec<usize> = errors.iter().map(|e| e.index).collect();
        assert_eq!(indexes, [0, 2]);
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let mut slow = sh("exec sleep 30");
        slow.timeout = Some(Duration::from_secs(1));
        let list = hooks(HookKind::Prestart, vec![slow]);
        let err = list.run(HookKind::Prestart, &state()).unwrap_err();
        assert!(
            matches!(err.reason, HookFailure::TimedOut { .. }),
            "{err:?}"
        );
        assert_eq!(
            crate::error::chain(&err),
            "prestart hook #0 /bin/sh: killed after its timeout of 1s"
        );
    }

    #[test]
    fn a_missing_program_is_a_spawn_failure() {
        let mut missing = sh("");
        missing.path = "/no/such/hook".into();
        let err = hooks(HookKind::Poststart, vec![missing])
            .run(HookKind::Poststart, &state())
            .unwrap_err();
        assert!(matches!(err.reason, HookFailure::Spawn(_)), "{err:?}");
        assert!(err.to_string().contains("/no/such/hook"));
    }
}
