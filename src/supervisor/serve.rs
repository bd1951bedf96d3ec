//! The supervisor process's main: a current-thread tokio runtime whose tasks are the API
//! servers, the watchers of the init, the wait for `start`, and the environment's own task.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;

use tokio::sync::mpsc;
use tokio::task::spawn_local;

use super::{Command, Function, Supervisor};
use crate::api;
use crate::cgroup::Cgroup;
use crate::sandbox::channel::Channel;
use crate::sandbox::init::{START, STARTED};
use crate::spec::EnvironmentSpec;

/// The sockets `create` bound for the supervisor before it forked.
pub struct Listeners {
    /// `start` connects here.
    pub notify: std::os::unix::net::UnixListener,
    /// The Invoke API in the state directory.
    pub invoke: std::os::unix::net::UnixListener,
    /// The Runtime API, 127.0.0.1:9001 inside the environment's network namespace.
    pub runtime: std::net::TcpListener,
    /// The Invoke API on `com.runlambda.invoke-port` inside the network namespace.
    pub invoke_tcp: Option<std::net::TcpListener>,
}

/// Serves the environment until its init is gone; never returns.
pub fn serve(
    spec: EnvironmentSpec,
    function: Function,
    cgroup: Cgroup,
    init: Channel,
    init_pid: i32,
    init_pidfd: OwnedFd,
    listeners: Listeners,
) -> ! {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("runlambda: supervisor: cannot start its runtime: {e}");
            crate::sys::exit_now(1);
        }
    };
    let local = tokio::task::LocalSet::new();
    let result = local.block_on(&runtime, async move {
        let (commands, receiver) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(
            spec,
            function.clone(),
            cgroup,
            init,
            init_pid,
            commands.clone(),
        )?;
        spawn_local(Supervisor::forward_init_messages(
            supervisor.init_channel(),
            commands.clone(),
        ));
        spawn_local(watch_init(init_pidfd, commands.clone()));
        spawn_local(wait_for_start(listeners.notify, commands.clone()));
        let to_runtime = commands.clone();
        spawn_local(api::serve_tcp(
            tokio::net::TcpListener::from_std(listeners.runtime)?,
            move |request| api::handle_sandbox(request, to_runtime.clone()),
        ));
        let name = Rc::new((function.name.clone(), function.arn()));
        let (to_invoke, invoke_name) = (commands.clone(), name.clone());
        listeners.invoke.set_nonblocking(true)?;
        spawn_local(api::serve_unix(
            tokio::net::UnixListener::from_std(listeners.invoke)?,
            move |request| api::invoke::handle(request, to_invoke.clone(), invoke_name.clone()),
        ));
        if let Some(listener) = listeners.invoke_tcp {
            spawn_local(api::serve_tcp(
                tokio::net::TcpListener::from_std(listener)?,
                move |request| api::invoke::handle(request, commands.clone(), name.clone()),
            ));
        }
        supervisor.run(receiver).await;
        Ok::<(), std::io::Error>(())
    });
    if let Err(e) = result {
        eprintln!("runlambda: supervisor: {e}");
        crate::sys::exit_now(1);
    }
    crate::sys::exit_now(0)
}

/// The init's pidfd turns readable when the init exits.
async fn watch_init(pidfd: OwnedFd, commands: mpsc::UnboundedSender<Command>) {
    if let Ok(fd) = crate::sys::async_fd(pidfd) {
        let _ = fd.readable().await;
    }
    let _ = commands.send(Command::InitGone);
}

/// Waits for `start` on the notify socket, answers it, and starts Init.
async fn wait_for_start(
    listener: std::os::unix::net::UnixListener,
    commands: mpsc::UnboundedSender<Command>,
) {
    let Ok(()) = listener.set_nonblocking(true) else {
        return;
    };
    let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
        return;
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        // `start` writes one byte and waits for one: a blocking exchange is the simplest.
        let Ok(mut stream) = stream.into_std() else {
            continue;
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let mut byte = [0u8; 1];
        if stream.read_exact(&mut byte).is_ok() && byte == *START {
            let _ = stream.write_all(STARTED);
            let _ = commands.send(Command::Start);
            return;
        }
    }
}

/// Where `create` puts the Invoke API socket of a Lambda environment.
pub fn invoke_socket(state_dir: &std::path::Path) -> PathBuf {
    state_dir.join("invoke.sock")
}
