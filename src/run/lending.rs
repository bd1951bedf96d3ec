//! Lending a lone caller's connection to an environment ([`crate::lease`]): `run`'s accept
//! loop, the serving of each caller's connection by `run` between two lendings, and the
//! bookkeeping of what the environments give back.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::{handle, Environment, Loan, Shared};
use crate::api::handover::{self, Ended, Handover, Prefixed};
use crate::lease::{self, LeaseChannel, Lend, Returned};
use crate::sandbox::channel::receive;
use crate::{Error, Result};

/// `run`'s socket for the `Event` invocations that arrive on lent connections.
pub(super) const FRONT_SOCKET: &str = "front.sock";

pub(super) fn bind_front(path: &Path) -> Result<tokio::net::UnixListener> {
    let bind = || -> std::io::Result<tokio::net::UnixListener> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // The directory is named after this process: a socket already there is a dead one's.
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = crate::socket_path::bind(path)?;
        listener.set_nonblocking(true)?;
        tokio::net::UnixListener::from_std(listener)
    };
    bind().map_err(|source| Error::Listen {
        what: path.display().to_string(),
        source,
    })
}

/// Accepts callers' connections forever. A second caller takes every lent connection back:
/// from then on, `run` routes each invocation.
pub(super) async fn accept(listener: tokio::net::TcpListener, pool: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let others = {
            let mut p = pool.borrow_mut();
            p.callers += 1;
            p.callers > 1
        };
        if others {
            reclaim_all(&pool);
        }
        tokio::task::spawn_local(caller(stream, Bytes::new(), pool.clone()));
    }
}

/// Serves one caller's connection until it closes, lending it to an idle environment whenever
/// it is the only one (see [`lendable`]).
async fn caller(stream: tokio::net::TcpStream, read_ahead: Bytes, pool: Shared) {
    let (mut stream, mut read_ahead) = (stream, read_ahead);
    loop {
        if let Some(id) = lendable(&pool) {
            match lend(&pool, &id, stream, read_ahead).await {
                Ok(()) => return,
                Err((back, bytes)) => (stream, read_ahead) = (back, bytes),
            }
        }
        let handover = Rc::new(Handover::default());
        pool.borrow_mut().served.push(handover.clone());
        let handler_pool = pool.clone();
        let ended = handover::serve(
            Prefixed::new(read_ahead, stream),
            move |request| handle(request, handler_pool.clone()),
            handover.clone(),
        )
        .await;
        pool.borrow_mut()
            .served
            .retain(|other| !Rc::ptr_eq(other, &handover));
        match ended {
            Ended::Closed => {
                pool.borrow_mut().callers -= 1;
                consider_lending(&pool);
                return;
            }
            Ended::HandedOver { io, read_ahead: r } => (stream, read_ahead) = (io, r),
        }
    }
}

/// An environment to lend the only caller's connection to: idle, and wanted by nobody else
/// (no invocation waits, no `Event` is under way, nothing else is lent).
fn lendable(pool: &Shared) -> Option<String> {
    let p = pool.borrow();
    let quiet = p.callers == 1 && p.waiting == 0 && p.pending_events == 0;
    if !quiet || p.environments.iter().any(|e| e.loan != Loan::None) {
        return None;
    }
    p.environments
        .iter()
        .find(|e| !e.busy && !e.retiring)
        .map(|e| e.id.clone())
}

/// When the only caller's connection is served by `run` and could be lent, asks for it at its
/// next idle moment.
pub(super) fn consider_lending(pool: &Shared) {
    if lendable(pool).is_some() {
        if let Some(handover) = pool.borrow().served.first() {
            handover.request();
        }
    }
}

/// Lends the connection to environment `id`; on failure it comes back to be served here.
async fn lend(
    pool: &Shared,
    id: &str,
    stream: tokio::net::TcpStream,
    read_ahead: Bytes,
) -> std::result::Result<(), (tokio::net::TcpStream, Bytes)> {
    let Ok(fd) = stream.into_std().map(std::os::fd::OwnedFd::from) else {
        // Not even the descriptor: the connection is lost either way.
        pool.borrow_mut().callers -= 1;
        return Ok(());
    };
    let sent = match lease_channel(pool, id) {
        Some(channel) => {
            set_loan(pool, id, Loan::Lent);
            let message = Lend::Connection {
                read_ahead: read_ahead.to_vec(),
                front: pool.borrow().front.clone(),
            };
            lease::send(&channel, &message, Some(&fd)).await.is_ok()
        }
        None => false,
    };
    if sent {
        return Ok(());
    }
    set_loan(pool, id, Loan::None);
    match lease::connection(fd) {
        Ok(stream) => Err((stream, read_ahead)),
        Err(_) => {
            pool.borrow_mut().callers -= 1;
            Ok(())
        }
    }
}

/// The environment's lease channel, connected on first use, with a task that takes what
/// comes back on it.
fn lease_channel(pool: &Shared, id: &str) -> Option<Rc<LeaseChannel>> {
    let mut p = pool.borrow_mut();
    let root = p.runtime.root.clone();
    let env = p.environments.iter_mut().find(|e| e.id == id)?;
    if let Some(channel) = &env.lease {
        return Some(channel.clone());
    }
    let path = root.join(id).join(lease::LEASE_SOCKET);
    let channel = Rc::new(
        crate::socket_path::connect_seqpacket(&path)
            .and_then(lease::channel)
            .ok()?,
    );
    env.lease = Some(channel.clone());
    tokio::task::spawn_local(take_back(channel.clone(), id.to_string(), pool.clone()));
    Some(channel)
}

/// Takes what environment `id` gives back: the connection (served here again), or word that
/// the caller closed it. The channel's end means the environment is gone, and with it the
/// connection it held.
async fn take_back(channel: Rc<LeaseChannel>, id: String, pool: Shared) {
    while let Ok(Some((message, mut fds))) = receive::<Returned>(&channel).await {
        if !matches!(message, Returned::Busy) {
            set_loan(&pool, &id, Loan::None);
        }
        match message {
            Returned::Connection {
                read_ahead,
                shutting_down,
            } => {
                if shutting_down {
                    retire(&pool, &id);
                }
                match fds.pop().map(lease::connection) {
                    Some(Ok(stream)) => {
                        tokio::task::spawn_local(caller(stream, read_ahead.into(), pool.clone()));
                    }
                    _ => pool.borrow_mut().callers -= 1,
                }
            }
            Returned::Closed => {
                pool.borrow_mut().callers -= 1;
                consider_lending(&pool);
            }
            Returned::Busy => set_loan(&pool, &id, Loan::Reclaimed { answering: true }),
        }
        // Whoever waits for a lent environment looks again.
        pool.borrow().freed.notify_waiters();
    }
    let p = &mut *pool.borrow_mut();
    if let Some(env) = p.environments.iter_mut().find(|e| e.id == id) {
        env.lease = None;
        if env.loan != Loan::None {
            env.loan = Loan::None;
            p.callers -= 1;
        }
    }
    p.freed.notify_waiters();
}

fn set_loan(pool: &Shared, id: &str, loan: Loan) {
    update(pool, id, |env| env.loan = loan);
}

fn retire(pool: &Shared, id: &str) {
    update(pool, id, |env| env.retiring = true);
}

fn update(pool: &Shared, id: &str, change: impl FnOnce(&mut Environment)) {
    if let Some(env) = pool
        .borrow_mut()
        .environments
        .iter_mut()
        .find(|e| e.id == id)
    {
        change(env);
    }
}

/// Asks every environment that serves a lent connection to give it back.
pub(super) fn reclaim_all(pool: &Shared) {
    let mut p = pool.borrow_mut();
    for env in p.environments.iter_mut().filter(|e| e.loan == Loan::Lent) {
        if let Some(channel) = env.lease.clone() {
            env.loan = Loan::Reclaimed { answering: false };
            tokio::task::spawn_local(async move {
                let _ = lease::send(&channel, &Lend::Reclaim, None).await;
            });
        }
    }
}
