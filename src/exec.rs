//! The `exec` verb above the kernel: which process to run and what becomes of it.
//!
//! The process is an OCI process JSON (`--process`, what containerd and podman pass) or, as in
//! runc, config.json's process changed by the command line (arguments, `--cwd`, `--env`,
//! `--user`, `--cap`, `--no-new-privs`, `--tty`); either way it is checked by the same
//! conversion as config.json's, so an error names the field. A process with a terminal sends
//! it to `--console-socket` (`console`). `sandbox::exec` then starts it in the container; with
//! `--detach` it is left to the caller, else runlambda waits and passes on its exit status.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};

use crate::bundle::{self, BundleError, FieldError};
use crate::cgroup::Cgroup;
use crate::cli::ExecArgs;
use crate::spec::{NamespaceKind, ProcessSpec};
use crate::state::{self, Record};
use crate::{console, sandbox};
use crate::{Error, Result};

/// Errors of `exec`, each naming the file, flag, namespace or step concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot read process file {path}")]
    ProcessFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid process file {path}")]
    ProcessJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("--user {0:?}: expected uid[:gid] as numbers")]
    User(String),
    #[error("--cap {0:?}: unknown capability")]
    Capability(String),
    #[error("cannot open namespace {path}")]
    OpenNamespace {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot join the {} namespace of container {id}", kind.name())]
    JoinNamespace {
        id: String,
        kind: NamespaceKind,
        #[source]
        source: nix::Error,
    },
    #[error("container {0} shares the host's mount namespace: exec would run on the host's root")]
    HostMountNamespace(String),
    #[error("cannot clone the process for container {id}")]
    Clone {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("handshake with the process for container {id} failed")]
    Handshake {
        id: String,
        #[source]
        source: io::Error,
    },
    #[error("exec in container {id} failed while {step}: {reason}")]
    Failed {
        id: String,
        step: String,
        reason: String,
    },
    #[error("cannot wait for process {pid} in container {id}")]
    Wait {
        id: String,
        pid: i32,
        #[source]
        source: nix::Error,
    },
}

/// An exec'd process that runs, before its owner is decided: the caller's with `--detach`,
/// else runlambda's, which waits for it.
#[derive(Debug)]
pub struct Started {
    id: String,
    pid: Pid,
    detach: bool,
}

/// Starts the process `args` asks for in the container of `record`, whose cgroup leaf is
/// `cgroup`. The caller has checked that the container is created or running.
pub(crate) fn start(args: &ExecArgs, record: &Record, cgroup: &Cgroup) -> Result<Started> {
    let process = process_spec(args, &record.bundle)?;
    let console = console::connect(process.terminal, args.console_socket.as_deref())?;
    // The filter the container was created with, compiled before the clone.
    let filter = record
        .seccomp
        .as_ref()
        .map(sandbox::seccomp::Filter::compile)
        .transpose()
        .map_err(sandbox::SandboxError::from)?;
    let pid = sandbox::exec::spawn(
        record,
        cgroup,
        &sandbox::exec::ExecSpec {
            process: &process,
            preserve_fds: args.preserve_fds,
            detach: args.detach,
            filter: filter.as_ref(),
            console: console.as_ref(),
        },
    )?;
    // The process sent its terminal before it ran: the caller holds the only master now.
    drop(console);
    if let Some(path) = &args.pid_file {
        state::write_atomic(path, pid.to_string().as_bytes(), 0o644).map_err(|source| {
            Error::PidFile {
                path: path.clone(),
                source: Box::new(source),
            }
        })?;
    }
    Ok(Started {
        id: record.id.clone(),
        pid,
        detach: args.detach,
    })
}

impl Started {
    /// The status for runlambda to exit with: 0 for a detached process, else the process's
    /// exit code, or 128 + the signal that killed it (as a shell reports it).
    pub fn finish(self) -> Result<i32> {
        if self.detach {
            return Ok(0);
        }
        // The clone sent no exit signal (it was not for our caller), which makes it a "clone"
        // child that only __WALL waits for.
        loop {
            let status =
                waitpid(self.pid, Some(WaitPidFlag::__WALL)).map_err(|source| ExecError::Wait {
                    id: self.id.clone(),
                    pid: self.pid.as_raw(),
                    source,
                })?;
            match status {
                WaitStatus::Exited(_, code) => return Ok(code),
                WaitStatus::Signaled(_, signal, _) => return Ok(128 + signal as i32),
                _ => continue,
            }
        }
    }
}

/// The checked process: from `--process`, or config.json's with the command line's changes.
fn process_spec(args: &ExecArgs, bundle_dir: &Path) -> Result<ProcessSpec> {
    if let Some(path) = &args.process {
        let text = fs::read(path).map_err(|source| ExecError::ProcessFile {
            path: path.clone(),
            source,
        })?;
        let process: Process =
            serde_json::from_slice(&text).map_err(|source| ExecError::ProcessJson {
                path: path.clone(),
                source,
            })?;
        return Ok(bundle::check_process(&process, path)?);
    }
    let path = bundle_dir.join("config.json");
    let spec = Spec::load(&path).map_err(|source| BundleError::Load {
        path: path.clone(),
        source,
    })?;
    let Some(mut process) = spec.process().clone() else {
        return Err(BundleError::Invalid {
            path,
            source: FieldError::Missing {
                field: "process".into(),
            },
        }
        .into());
    };
    apply_flags(&mut process, args)?;
    Ok(bundle::check_process(&process, &path)?)
}

/// Changes config.json's process as runc's `exec` flags do.
fn apply_flags(process: &mut Process, args: &ExecArgs) -> Result<(), ExecError> {
    process.set_args(Some(args.command.clone()));
    // As in runc, `--tty` decides here; a process file says for itself.
    process.set_terminal(Some(args.tty));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if !args.cap.is_empty() {
        // Without process.capabilities the bundle applies runc's default set, which is
        // oci-spec's default without inheritable and ambient capabilities.
        let mut caps = process.capabilities().clone().unwrap_or_else(|| {
            let mut default = LinuxCapabilities::default();
            default.set_inheritable(None).set_ambient(None);
            default
        });
        // Ambient capabilities need inheritable ones; like runc, add them only when the
        // process has an inheritable set.
        let ambient = caps.inheritable().is_some();
        for name in &args.cap {
            let cap = parse_capability(name)?;
            let sets = [
                (caps.bounding().clone(), true),
                (caps.effective().clone(), true),
                (caps.permitted().clone(), true),
                (caps.ambient().clone(), ambient),
            ];
            let [bounding, effective, permitted, ambient_set] = sets.map(|(set, add)| {
                let mut set = set.unwrap_or_default();
                if add {
                    set.insert(cap);
                }
                Some(set)
            });
            caps.set_bounding(bounding)
                .set_effective(effective)
                .set_permitted(permitted);
            if ambient {
                caps.set_ambient(ambient_set);
            }
        }
        process.set_capabilities(Some(caps));
    }
    if !args.env.is_empty() {
        let mut env = process.env().clone().unwrap_or_default();
        env.extend(args.env.iter().cloned());
        process.set_env(Some(env));
    }
    if args.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user).ok_or_else(|| ExecError::User(user.clone()))?;
        process.user_mut().set_uid(uid);
        if let Some(gid) = gid {
            process.user_mut().set_gid(gid);
        }
    }
    Ok(())
}

/// `uid` or `uid:gid`, both numeric, as runc takes `--user`.
fn parse_user(user: &str) -> Option<(u32, Option<u32>)> {
    match user.split_once(':') {
        Some((uid, gid)) => Some((uid.parse().ok()?, Some(gid.parse().ok()?))),
        None => Some((user.parse().ok()?, None)),
    }
}

/// A capability name with or without `CAP_`, in any case.
fn parse_capability(name: &str) -> Result<Capability, ExecError> {
    let upper = name.to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .unwrap_or(&upper)
        .parse()
        .map_err(|_| ExecError::Capability(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn exec_args(argv: &[&str]) -> ExecArgs {
        let cli = crate::cli::Cli::parse_from(["runlambda", "exec"].iter().chain(argv));
        match cli.command {
            Some(crate::cli::Command::Exec(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn config_process() -> Process {
        serde_json::from_value(serde_json::json!({
            "user": {"uid": 0, "gid": 0},
            "args": ["sleep", "300"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                             "permitted": ["CAP_KILL"]}
        }))
        .unwrap()
    }

    #[test]
    fn flags_change_config_process_as_runc_does() {
        let args = exec_args(&[
            "--cwd",
            "/tmp",
            "-e",
            "A=1",
            "--user",
            "1000:1001",
            "--cap",
            "CAP_CHOWN",
            "--no-new-privs",
            "c1",
            "sh",
            "-c",
            "echo hi",
        ]);
        let mut process = config_process();
        apply_flags(&mut process, &args).unwrap();
        let spec = bundle::check_process(&process, Path::new("config.json")).unwrap();
        assert_eq!(spec.args, ["sh", "-c", "echo hi"]);
        assert_eq!(spec.cwd, Path::new("/tmp"));
        assert_eq!(spec.env, ["PATH=/bin", "A=1"]);
        assert_eq!((spec.uid, spec.gid), (1000, 1001));
        assert!(spec.no_new_privileges);
        let chown = caps::Capability::CAP_CHOWN;
        assert!(spec.capabilities.bounding.contains(&chown));
        assert!(spec.capabilities.effective.contains(&chown));
        assert!(spec.capabilities.permitted.contains(&chown));
        // No inheritable set: no ambient capability either.
        assert!(spec.capabilities.ambient.is_empty());
    }

    #[test]
    fn a_user_without_gid_keeps_config_gid() {
        let mut process = config_process();
        process.user_mut().set_gid(7);
        apply_flags(&mut process, &exec_args(&["-u", "5", "c1", "true"])).unwrap();
        assert_eq!((process.user().uid(), process.user().gid()), (5, 7));
    }

    #[test]
    fn bad_flags_are_named() {
        let mut process = config_process();
        let err = apply_flags(&mut process, &exec_args(&["-u", "bob", "c1", "true"]));
        assert_eq!(
            err.unwrap_err().to_string(),
            "--user \"bob\": expected uid[:gid] as numbers"
        );
        let err = apply_flags(
            &mut process,
            &exec_args(&["--cap", "CAP_FLY", "c1", "true"]),
        );
        assert_eq!(
            err.unwrap_err().to_string(),
            "--cap \"CAP_FLY\": unknown capability"
        );
    }

    #[test]
    fn a_bad_env_entry_is_refused_by_field() {
        let mut process = config_process();
        apply_flags(&mut process, &exec_args(&["-e", "=x", "c1", "true"])).unwrap();
        let err = bundle::check_process(&process, Path::new("config.json")).unwrap_err();
        assert_eq!(
            crate::error::chain(&err),
            "invalid config.json: process.env[1] = \"=x\": has an empty name"
        );
    }

    #[test]
    fn process_conflicts_with_the_flags_and_arguments() {
        for argv in [
            &["exec", "-p", "p.json", "c1", "sh"][..],
            &["exec", "-p", "p.json", "--cwd", "/", "c1"],
            &["exec", "c1"],
        ] {
            let parsed = crate::cli::Cli::try_parse_from(["runlambda"].iter().chain(argv));
            assert!(parsed.is_err(), "{argv:?}");
        }
    }
}
