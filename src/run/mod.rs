//! `runlambda run`: serves the AWS Invoke API on a loopback address in front of a pool of Lambda
//! environments of one function. Each invocation goes to an idle environment; a new one is
//! created while fewer than `--concurrency` exist; past that a synchronous caller gets 429 and
//! an `Event` waits for a free environment (it is never lost). Ctrl-C runs every environment's
//! Shutdown and exits 0.
//!
//! While a single caller is connected, its connection is lent to an idle environment, which
//! serves it directly ([`crate::lease`]); `run` takes it back, between two requests, as soon as
//! it needs that environment for anything else.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::Notify;

use crate::api::handover::Handover;
use crate::api::{invoke, wire};
use crate::container::Runtime;
use crate::lease::LeaseChannel;
use crate::{Error, Result};

mod lending;

use lending::{accept, bind_front, consider_lending, reclaim_all, FRONT_SOCKET};

/// How `run` was asked to serve.
pub struct RunOptions {
    pub bundle: PathBuf,
    pub name: String,
    pub listen: std::net::SocketAddr,
    pub concurrency: usize,
    pub provisioned: usize,
    /// The global flags to hand to `runlambda create`.
    pub global_args: Vec<String>,
    /// A directory of `run`'s own, for the socket where lent connections' `Event` invocations
    /// come back.
    pub scratch: PathBuf,
}

/// One environment of the pool.
struct Environment {
    id: String,
    init: Pid,
    busy: bool,
    connection: Option<SendRequest<Full<Bytes>>>,
    /// The channel over which connections are lent to it, once one was.
    lease: Option<Rc<LeaseChannel>>,
    /// Whether it serves a caller's connection.
    loan: Loan,
    /// It gave its connection back because it shuts down: nothing more goes to it.
    retiring: bool,
}

/// Where an environment stands with a caller's connection.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loan {
    /// It serves none.
    None,
    /// It serves one.
    Lent,
    /// It was asked to give it back; `answering` once it said it is answering an invocation
    /// on it (and gives it back after).
    Reclaimed { answering: bool },
}

/// The environments behind the endpoint.
struct Pool {
    runtime: Runtime,
    options: RunOptions,
    environments: Vec<Environment>,
    creating: usize,
    next_id: usize,
    freed: Rc<Notify>,
    /// Accepted `Event` invocations not yet answered by an environment.
    pending_events: usize,
    /// Notified when `pending_events` drops to 0.
    drained: Rc<Notify>,
    /// Callers' connections open, lent ones included.
    callers: usize,
    /// Invocations waiting for a lent environment to come back.
    waiting: usize,
    /// The connections `run` serves itself, each with its link to hand it over.
    served: Vec<Rc<Handover>>,
    /// `run`'s socket for the `Event` invocations of lent connections.
    front: PathBuf,
}

type Shared = Rc<RefCell<Pool>>;

/// Serves until Ctrl-C or SIGTERM, then shuts every environment down.
pub fn run(runtime: Runtime, options: RunOptions) -> Result<()> {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "start the event loop".into(),
            source,
        })?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&tokio, serve(runtime, options))
}

async fn serve(runtime: Runtime, options: RunOptions) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| Error::Listen {
            what: options.listen.to_string(),
            source,
        })?;
    let address = listener.local_addr().map_err(|source| Error::Listen {
        what: options.listen.to_string(),
        source,
    })?;
    let name = options.name.clone();
    let provisioned = options.provisioned;
    let front = options.scratch.join(FRONT_SOCKET);
    let front_listener = bind_front(&front)?;
    let pool: Shared = Rc::new(RefCell::new(Pool {
        runtime,
        options,
        environments: Vec::new(),
        creating: 0,
        next_id: 0,
        freed: Rc::new(Notify::new()),
        pending_events: 0,
        drained: Rc::new(Notify::new()),
        callers: 0,
        waiting: 0,
        served: Vec::new(),
        front,
    }));
    for _ in 0..provisioned {
        let id = new_environment(&pool).await?;
        release(&pool, &id, None);
    }
    println!("listening on http://{address}");
    println!(
        "invoke with: curl -s -X POST http://{address}/2015-03-31/functions/{name}/invocations -d '{{}}'"
    );
    let handler_pool = pool.clone();
    tokio::task::spawn_local(crate::api::serve_unix(front_listener, move |request| {
        handle(request, handler_pool.clone())
    }));
    let server = accept(listener, pool.clone());
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut children = signal(tokio::signal::unix::SignalKind::child())?;
    tokio::pin!(server);
    loop {
        tokio::select! {
            _ = &mut server => break,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = children.recv() => reap_exited(&pool),
        }
    }
    // Accepted Event invocations are not dropped: they finish first, unless asked again.
    let pending = pool.borrow().pending_events;
    if pending > 0 {
        eprintln!(
            "runlambda: finishing {pending} queued Event invocation(s); interrupt again to drop them"
        );
        let drained = pool.borrow().drained.clone();
        while pool.borrow().pending_events > 0 {
            tokio::select! {
                _ = drained.notified() => {}
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = children.recv() => reap_exited(&pool),
            }
        }
    }
    shutdown(&pool);
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).map_err(|source| Error::Io {
        what: "watch for signals".into(),
        source,
    })
}

async fn handle(request: Request<Incoming>, pool: Shared) -> Response<Answer> {
    let (parts, body) = request.into_parts();
    let body = match http_body_util::Limited::new(body, wire::MAX_SYNC_PAYLOAD + 1)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return wire::service_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!(
                    "Request must be smaller than {} bytes for the InvokeFunction operation",
                    wire::MAX_SYNC_PAYLOAD
                ),
            )
            .map(Either::Left)
        }
    };
    // Event invocations of `Invoke` wait here; anything else the environment answers.
    let asynchronous = parts
        .headers
        .get(wire::INVOCATION_TYPE)
        .is_some_and(|t| t == "Event")
        && parts.uri.path().starts_with(wire::INVOKE_PREFIX);
    if asynchronous {
        // Check it the way the environment will, so a bad Event is refused now, not lost later.
        let name = pool.borrow().options.name.clone();
        let arn = format!("arn:aws:lambda:us-east-1:012345678912:function:{name}");
        if let Err(r) = invoke::check_function(parts.uri.path(), &name, &arn)
            .and_then(|_| invoke::parse_headers(&parts.headers).map(drop))
            .and_then(|()| invoke::check_payload(&body))
        {
            return wire::service_error(r.status, r.error_type, r.message).map(Either::Left);
        }
        if body.len() > wire::MAX_ASYNC_PAYLOAD {
            return wire::service_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!(
                    "Request must be smaller than {} bytes for the InvokeFunction operation",
                    wire::MAX_ASYNC_PAYLOAD
                ),
            )
            .map(Either::Left);
        }
        pool.borrow_mut().pending_events += 1;
        tokio::task::spawn_local(deliver_event(parts, body, pool));
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::ACCEPTED;
        return response.map(Either::Left);
    }
    let Some(id) = acquire(&pool).await else {
        let r = invoke::too_many_requests();
        return wire::service_error(r.status, r.error_type, r.message).map(Either::Left);
    };
    forward(&pool, &id, parts, body).await
}

/// An `Event` invocation waits for an environment as long as it takes.
async fn deliver_event(parts: hyper::http::request::Parts, body: Bytes, pool: Shared) {
    let mut parts = parts;
    parts.headers.remove(wire::INVOCATION_TYPE);
    loop {
        if let Some(id) = acquire(&pool).await {
            let response = forward(&pool, &id, parts, body).await;
            if response.status() != StatusCode::OK {
                eprintln!(
                    "runlambda: an Event invocation failed: {}",
                    response.status()
                );
            }
            break;
        }
        let freed = pool.borrow().freed.clone();
        freed.notified().await;
    }
    let p = &mut *pool.borrow_mut();
    p.pending_events -= 1;
    if p.pending_events == 0 {
        p.drained.notify_one();
    }
}

/// An idle environment: one that is, or one whose lent connection comes back idle when
/// reclaimed, else a new one while the pool is below its size; `None` when full.
async fn acquire(pool: &Shared) -> Option<String> {
    loop {
        let freed = {
            let mut p = pool.borrow_mut();
            let usable = |e: &&mut Environment| !e.busy && e.loan == Loan::None && !e.retiring;
            if let Some(env) = p.environments.iter_mut().find(usable) {
                env.busy = true;
                return Some(env.id.clone());
            }
            // A lent environment that has not said it is busy will be idle at once.
            let soon_idle = |e: &Environment| {
                matches!(e.loan, Loan::Lent | Loan::Reclaimed { answering: false })
            };
            if !p.environments.iter().any(soon_idle) {
                // One that shuts down makes room already.
                let live = p.environments.iter().filter(|e| !e.retiring).count();
                if live + p.creating < p.options.concurrency {
                    break;
                }
                return None;
            }
            p.waiting += 1;
            p.freed.clone()
        };
        let _waiting = Waiting(pool.clone());
        reclaim_all(pool);
        freed.notified().await;
    }
    match new_environment(pool).await {
        Ok(id) => Some(id),
        Err(e) => {
            eprintln!(
                "runlambda: cannot create an environment: {}",
                crate::error::chain(&e)
            );
            None
        }
    }
}

/// Counts an invocation waiting in [`acquire`] for as long as it waits (its caller may go away).
struct Waiting(Shared);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.borrow_mut().waiting -= 1;
    }
}

/// Creates and starts an environment (busy, for the caller who asked for it).
async fn new_environment(pool: &Shared) -> Result<String> {
    let (id, args) = {
        let mut p = pool.borrow_mut();
        p.creating += 1;
        p.next_id += 1;
        let id = format!("{}-{}-{}", p.options.name, std::process::id(), p.next_id);
        let mut args = p.options.global_args.clone();
        args.extend([
            "create".into(),
            "--lambda".into(),
            "--start".into(),
            "--bundle".into(),
        ]);
        args.push(p.options.bundle.display().to_string());
        args.extend([
            "--pid-file".into(),
            pid_file(&p.runtime.root, &id).display().to_string(),
        ]);
        args.push(id.clone());
        (id, args)
    };
    let created = create(&args, &id, pool).await;
    let mut p = pool.borrow_mut();
    p.creating -= 1;
    let init = created?;
    p.environments.push(Environment {
        id: id.clone(),
        init,
        busy: true,
        connection: None,
        lease: None,
        loan: Loan::None,
        retiring: false,
    });
    Ok(id)
}

/// Runs `runlambda create --start`, whose environment begins Init at once; returns its init.
async fn create(args: &[String], id: &str, pool: &Shared) -> Result<Pid> {
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        what: "find the runlambda binary".into(),
        source,
    })?;
    // A child process, so that the init (cloned with CLONE_PARENT) is our child to reap.
    let status = tokio::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        .status()
        .await
        .map_err(|source| Error::Supervisor {
            id: id.to_string(),
            source,
        })?;
    let root = pool.borrow().runtime.root.clone();
    if !status.success() {
        return Err(Error::Supervisor {
            id: id.to_string(),
            source: std::io::Error::other(format!("runlambda create exited with {status}")),
        });
    }
    let path = pid_file(&root, id);
    let pid = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| Error::Supervisor {
            id: id.to_string(),
            source: std::io::Error::other(format!("no pid in {}", path.display())),
        })?;
    Ok(Pid::from_raw(pid))
}

fn pid_file(root: &Path, id: &str) -> PathBuf {
    root.join(format!("{id}.pid"))
}

/// Sends the invocation to environment `id` and relays its answer.
async fn forward(
    pool: &Shared,
    id: &str,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Response<Answer> {
    let connection = pool
        .borrow_mut()
        .environments
        .iter_mut()
        .find(|e| e.id == id)
        .and_then(|e| e.connection.take());
    let root = pool.borrow().runtime.root.clone();
    let mut sender = match connection {
        Some(sender) if !sender.is_closed() => sender,
        _ => match connect(&root, id).await {
            Ok(sender) => sender,
            Err(_) => {
                release(pool, id, None);
                return wire::service_error(
                    StatusCode::BAD_GATEWAY,
                    "ResourceNotReadyException",
                    "the function's environment is gone",
                )
                .map(Either::Left);
            }
        },
    };
    let request = Request::from_parts(parts, Full::new(body));
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(e) => {
            release(pool, id, None);
            return wire::service_error(
                StatusCode::BAD_GATEWAY,
                "ServiceException",
                format!("the function's environment did not answer: {e}"),
            )
            .map(Either::Left);
        }
    };
    response.map(|body| {
        Either::Right(Relayed {
            body,
            pool: pool.clone(),
            id: id.to_string(),
            sender: Some(sender),
        })
    })
}

/// An answer as the caller gets it: the front end's own, or the environment's relayed.
type Answer = Either<Full<Bytes>, Relayed>;

/// The environment's answer on its way to the caller, passed on as it arrives (a streamed
/// answer chunk by chunk). The environment is free again once the answer has been read to
/// its end, keeping its connection for the next invocation, or dropped half-read.
struct Relayed {
    body: Incoming,
    pool: Shared,
    id: String,
    /// `None` once the environment has been released.
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl hyper::body::Body for Relayed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, hyper::Error>>> {
        let frame = std::task::ready!(std::pin::Pin::new(&mut self.body).poll_frame(cx));
        // The end shows as `None`, or earlier as `is_end_stream` after the last frame: hyper
        // stops polling a body once it has written its `Content-Length`.
        let whole = match &frame {
            None => true,
            Some(Ok(_)) => self.body.is_end_stream(),
            Some(Err(_)) => {
                if self.sender.take().is_some() {
                    release(&self.pool, &self.id, None);
                }
                false
            }
        };
        if whole {
            if let Some(sender) = self.sender.take() {
                release(&self.pool, &self.id, Some(sender));
            }
        }
        std::task::Poll::Ready(frame)
    }

    /// The environment's length, so that a whole answer keeps its `Content-Length`.
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        // Half read, the connection cannot carry another invocation.
        if self.sender.take().is_some() {
            release(&self.pool, &self.id, None);
        }
    }
}

async fn connect(root: &Path, id: &str) -> std::io::Result<SendRequest<Full<Bytes>>> {
    // A blocking connect, which a unix socket completes at once (the supervisor's backlog holds
    // far more than the one connection `run` keeps per environment); it reaches a socket under
    // a state root of any depth.
    let stream = crate::socket_path::connect(&root.join(id).join(crate::state::INVOKE_SOCKET))?;
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// Marks `id` idle again (keeping its connection) and wakes a waiting invocation.
fn release(pool: &Shared, id: &str, connection: Option<SendRequest<Full<Bytes>>>) {
    {
        let p = &mut *pool.borrow_mut();
        if let Some(env) = p.environments.iter_mut().find(|e| e.id == id) {
            env.busy = false;
            env.connection = connection;
        }
        p.freed.notify_one();
    }
    consider_lending(pool);
}

/// Reaps environments whose init exited (idle timeout, or killed) and deletes them.
fn reap_exited(pool: &Shared) {
    let p = &mut *pool.borrow_mut();
    let runtime = &p.runtime;
    let mut lost = 0;
    p.environments
        .retain(|env| match waitpid(env.init, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => true,
            _ => {
                // A connection it still held went with it.
                lost += usize::from(env.loan != Loan::None);
                let _ = runtime.delete(&env.id, true);
                let _ = std::fs::remove_file(pid_file(&runtime.root, &env.id));
                false
            }
        });
    p.callers -= lost;
    // An invocation waiting for a lent environment may now find room for a new one.
    p.freed.notify_waiters();
}

/// How long an environment's Shutdown may take before it is killed: Lambda's 2,000 ms
/// budget plus room for the supervisor to notice.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Shutdown for every environment: SIGTERM to each init (the supervisor runs the Shutdown
/// phase and the init exits), wait for them within the grace period, then delete them (which
/// kills whatever did not end in time).
fn shutdown(pool: &Shared) {
    let p = &mut *pool.borrow_mut();
    for env in &p.environments {
        let _ = p.runtime.kill(&env.id, Signal::SIGTERM, false);
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    for env in p.environments.drain(..) {
        while matches!(
            waitpid(env.init, Some(WaitPidFlag::WNOHANG)),
            Ok(WaitStatus::StillAlive)
        ) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = p.runtime.delete(&env.id, true);
        let _ = waitpid(env.init, None);
        let _ = std::fs::remove_file(pid_file(&p.runtime.root, &env.id));
    }
}
