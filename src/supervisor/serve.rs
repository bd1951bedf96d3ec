//! The supervisor process's main: a current-thread tokio runtime whose tasks are the API
//! servers, the watchers of the init, the wait for `start`, and the environment's own task.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::rc::Rc;

use tokio::sync::mpsc;
use tokio::task::spawn_local;

use super::lease::{self, Lent};
use super::{Command, Function, Supervisor};
use crate::api;
use crate::cgroup::Cgroup;
use crate::sandbox::channel::{Channel, FromInit};
use crate::sandbox::init::{START, STARTED};
use crate::spec::EnvironmentSpec;

/// The sockets `create` bound for the supervisor before it forked.
pub struct Listeners {
    /// `start` connects here; `None` when the environment was started at once (`create
    /// --start`, as `run` does), so Init begins without waiting.
    pub notify: Option<std::os::unix::net::UnixListener>,
    /// The Invoke API in the state directory.
    pub invoke: std::os::unix::net::UnixListener,
    /// The Runtime API, 127.0.0.1:9001 inside the environment's network namespace.
    pub runtime: std::net::TcpListener,
    /// The same API on a unix socket, in a directory bind-mounted into the environment.
    pub runtime_unix: std::os::unix::net::UnixListener,
    /// The Invoke API on `com.runlambda.invoke-port` inside the network namespace.
    pub invoke_tcp: Option<std::net::TcpListener>,
    /// `kill` asks for the Shutdown here (the init may be frozen and unable to pass on a
    /// signal).
    pub control: std::os::unix::net::UnixListener,
    /// `run` lends callers' connections here (`SOCK_SEQPACKET`).
    pub lease: OwnedFd,
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
        match listeners.notify {
            Some(notify) => {
                spawn_local(answer_requests(
                    notify,
                    START[0],
                    Request::Start,
                    commands.clone(),
                ));
            }
            None => {
                let _ = commands.send(Command::Start);
            }
        }
        spawn_local(answer_requests(
            listeners.control,
            TERMINATE,
            Request::Terminate,
            commands.clone(),
        ));
        let (to_runtime, switch) = (commands.clone(), supervisor.kill_switch());
        spawn_local(api::serve_tcp(
            tokio::net::TcpListener::from_std(listeners.runtime)?,
            move |request| api::handle_sandbox(request, to_runtime.clone(), switch.clone()),
        ));
        let (to_runtime, switch) = (commands.clone(), supervisor.kill_switch());
        listeners.runtime_unix.set_nonblocking(true)?;
        spawn_local(api::serve_unix(
            tokio::net::UnixListener::from_std(listeners.runtime_unix)?,
            move |request| api::handle_sandbox(request, to_runtime.clone(), switch.clone()),
        ));
        let name = Rc::new((function.name.clone(), function.arn()));
        let lent = Rc::new(Lent::default());
        spawn_local(lease::serve(
            listeners.lease,
            commands.clone(),
            name.clone(),
            lent.clone(),
        ));
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
        lent.give_back().await;
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

/// What `kill` writes on the control socket to ask for the environment's Shutdown.
pub const TERMINATE: u8 = b't';

/// A one-byte request on the notify or control socket.
#[derive(Clone, Copy)]
enum Request {
    /// `start`: run Init (answered once; the socket's removal marks the start).
    Start,
    /// `kill` with SIGTERM or SIGINT: shut down.
    Terminate,
}

/// Answers one-byte requests `expected` on `listener` with one byte and turns them into
/// commands: `start` once, `kill` as often as it comes.
async fn answer_requests(
    listener: std::os::unix::net::UnixListener,
    expected: u8,
    request: Request,
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
        // The client writes one byte and waits for one: a blocking exchange is the simplest.
        let Ok(mut stream) = stream.into_std() else {
            continue;
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let mut byte = [0u8; 1];
        if stream.read_exact(&mut byte).is_err() || byte[0] != expected {
            continue;
        }
        let _ = stream.write_all(STARTED);
        let command = match request {
            Request::Start => Command::Start,
            Request::Terminate => Command::Init(FromInit::Signaled {
                signal: nix::sys::signal::Signal::SIGTERM as i32,
            }),
        };
        let _ = commands.send(command);
        if matches!(request, Request::Start) {
            return;
        }
    }
}
