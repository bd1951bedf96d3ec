//! The init of a Lambda environment: it stays pid 1 and single-threaded for the life of the
//! environment, starts the runtime and the extensions when the supervisor asks, signals them, reaps every
//! process, reports exits and termination signals, and empties the environment on a reset
//! without losing its namespaces or `/tmp`.
//!
//! The init itself runs unconfined by seccomp (it must reap, signal and fork for the runtime);
//! each process it starts loads the environment's filter right before `execve`, with
//! no_new_privs set first: the init has already given up the capabilities that a filter would
//! otherwise need, and a function's processes never gain privileges through exec in Lambda
//! either.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, ForkResult, Pid};

use super::channel::{Channel, FromInit, ToInit};
use super::process;
use super::seccomp::Filter;
use crate::hooks::{HookKind, HookState, Hooks};
use crate::spec::ProcessSpec;

/// Serves the supervisor until it says `Exit` or goes away; never returns. `start_hooks` are
/// the `startContainer` hooks, run before the environment's first process (runtime or
/// extension): a failure ends the environment before any of its code ran.
pub fn serve(
    channel: Channel,
    base: &ProcessSpec,
    filter: Option<&Filter>,
    start_hooks: Option<(&Hooks, HookState)>,
) -> ! {
    let mut start_hooks = start_hooks;
    let signals = termination_and_child_signals();
    // Blocked signals queue on the signalfd instead of interrupting the loop.
    if signals.thread_block().is_err() {
        crate::sys::exit_now(1);
    }
    let Ok(signal_fd) =
        SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        crate::sys::exit_now(1);
    };
    loop {
        let mut fds = [
            PollFd::new(channel.fd(), PollFlags::POLLIN),
            PollFd::new(signal_fd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(_) => empty_and_exit(1),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            handle_signals(&signal_fd, &channel);
        }
        if ready(&fds[0]) {
            match channel.recv_with_fds::<ToInit>() {
                Ok(Some((command, fds))) => handle_command(
                    command,
                    fds,
                    &channel,
                    base,
                    filter,
                    &signals,
                    &mut start_hooks,
                ),
                // The supervisor is gone: nobody can serve this environment any more.
                Ok(None) | Err(_) => empty_and_exit(1),
            }
        }
    }
}

fn termination_and_child_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(signal);
    }
    set
}

fn handle_signals(signal_fd: &SignalFd, channel: &Channel) {
    while let Ok(Some(info)) = signal_fd.read_signal() {
        let signal = info.ssi_signo as i32;
        if signal == Signal::SIGCHLD as i32 {
            reap(channel);
        } else {
            let _ = channel.send(&FromInit::Signaled { signal });
        }
    }
}

/// Reaps every exited child without blocking and reports each.
fn reap(channel: &Channel) {
    loop {
        match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => report_exit(channel, pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                report_exit(channel, pid, 128 + signal as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

fn report_exit(channel: &Channel, pid: Pid, code: i32) {
    let _ = channel.send(&FromInit::Exited {
        pid: pid.as_raw(),
        code,
    });
}

fn handle_command(
    command: ToInit,
    fds: Vec<OwnedFd>,
    channel: &Channel,
    base: &ProcessSpec,
    filter: Option<&Filter>,
    signals: &SigSet,
    start_hooks: &mut Option<(&Hooks, HookState)>,
) {
    match command {
        ToInit::Spawn { args, env, cwd } => {
            if let Some((hooks, state)) = start_hooks.take() {
                if let Err(e) = hooks.run(HookKind::StartContainer, &state) {
                    let reason = crate::error::chain(&e);
                    let _ = channel.send(&FromInit::SpawnFailed { reason });
                    empty_and_exit(1);
                }
            }
            let reply = match spawn(&args, &env, &cwd, &fds, base, filter, signals) {
                Ok(pid) => FromInit::Spawned { pid: pid.as_raw() },
                Err(reason) => FromInit::SpawnFailed { reason },
            };
            drop(fds);
            let _ = channel.send(&reply);
        }
        ToInit::Signal { pid, signal } => {
            // A process that already ended is no error: its exit is on its way.
            if let Ok(signal) = Signal::try_from(signal) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
        ToInit::KillAll => {
            kill_all_and_reap(channel);
            let _ = channel.send(&FromInit::Emptied);
        }
        ToInit::Exit { code } => empty_and_exit(code),
        // These belong to the setup handshake, which is over.
        ToInit::Proceed | ToInit::RunHooks { .. } | ToInit::Seccomp { .. } => {}
    }
}

/// Forks and execs one process with the given stdout/stderr; the child inherits the init's
/// identity, limits and capabilities, which `build` already set to the bundle's.
fn spawn(
    args: &[String],
    env: &[String],
    cwd: &std::path::Path,
    fds: &[OwnedFd],
    base: &ProcessSpec,
    filter: Option<&Filter>,
    signals: &SigSet,
) -> Result<Pid, String> {
    let [stdout, stderr] = fds else {
        return Err(format!(
            "expected 2 fds for stdout and stderr, got {}",
            fds.len()
        ));
    };
    let spec = ProcessSpec {
        args: args.to_vec(),
        env: env.to_vec(),
        cwd: cwd.to_path_buf(),
        ..base.clone()
    };
    let executable = process::resolve_executable(&spec)?;
    let path = CString::new(executable.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // The init is single-threaded, so the child may run ordinary code until execve.
    match crate::sys::fork_single_threaded() {
        Err(e) => Err(format!("fork: {e}")),
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            let _ = signals.thread_unblock();
            let _ = dup2_stdout(stdout);
            let _ = dup2_stderr(stderr);
            if let Ok(null) = std::fs::File::open("/dev/null") {
                let _ = dup2_stdin(null);
            }
            if let Err(e) = nix::unistd::chdir(&spec.cwd) {
                eprintln!("runlambda: chdir {}: {e}", spec.cwd.display());
                crate::sys::exit_now(127);
            }
            if let Some(filter) = filter {
                let loaded = nix::sys::prctl::set_no_new_privs()
                    .map_err(std::io::Error::from)
                    .and_then(|()| filter.load());
                if let Err(e) = loaded {
                    eprintln!("runlambda: loading the seccomp filter: {e}");
                    crate::sys::exit_now(127);
                }
            }
            let error = process::exec_path(&path, &spec);
            eprintln!("runlambda: {error}");
            crate::sys::exit_now(127);
        }
    }
}

/// `kill(-1, SIGKILL)` from pid 1 reaches every other process of the pid namespace; then reap
/// until none is left (orphans are re-parented to us, so "no child" means "nobody").
fn kill_all_and_reap(channel: &Channel) {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) => report_exit(channel, pid, code),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                report_exit(channel, pid, 128 + signal as i32)
            }
            Err(Errno::EINTR) | Ok(_) => continue,
            Err(_) => return,
        }
    }
}

fn empty_and_exit(code: i32) -> ! {
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    while !matches!(waitpid(None::<Pid>, None), Err(Errno::ECHILD)) {}
    crate::sys::exit_now(code)
}
