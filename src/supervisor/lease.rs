//! The environment's side of a lent connection ([`crate::lease`]): it serves the invocations
//! of the connection `run` lends with the Invoke API's handler, passes `Event` invocations on
//! to `run`, which queues them, and gives the connection back when `run` reclaims it or the
//! environment shuts down.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tokio::task::{spawn_local, JoinHandle};

use super::Command;
use crate::api::handover::{self, Ended, Handover, Prefixed};
use crate::api::invoke::{self, InvokeBody};
use crate::api::wire;
use crate::lease::{self, LeaseChannel, Lend, Returned};
use crate::sandbox::channel::receive;

/// How long a shutting-down environment waits for its lent connection to come back idle.
const GIVE_BACK: Duration = Duration::from_secs(2);

/// The connection this environment serves for `run`, if any.
#[derive(Default)]
pub struct Lent {
    serving: RefCell<Option<(Rc<Handover>, JoinHandle<()>)>>,
    /// The environment is shutting down.
    ending: Rc<Cell<bool>>,
}

impl Lent {
    /// At shutdown: hands the connection back to `run` as soon as it is idle.
    pub async fn give_back(&self) {
        let serving = self.serving.borrow_mut().take();
        if let Some((handover, task)) = serving {
            self.ending.set(true);
            handover.request();
            let _ = tokio::time::timeout(GIVE_BACK, task).await;
        }
    }

    /// `run` wants the connection back: at once when it is idle, else after the answer under
    /// way, and `run` hears that the environment is busy till then.
    async fn reclaim(&self, channel: &LeaseChannel) {
        let handover = match &*self.serving.borrow() {
            Some((handover, task)) if !task.is_finished() => handover.clone(),
            _ => return,
        };
        if handover.is_answering() {
            let _ = lease::send(channel, &Returned::Busy, None).await;
        }
        handover.request();
    }
}

/// Takes `run`'s channel on `listener` (a `SOCK_SEQPACKET` socket; `accept` is the same for
/// every kind of unix socket) and serves what it lends, one channel at a time.
pub async fn serve(
    listener: OwnedFd,
    commands: mpsc::UnboundedSender<Command>,
    name: Rc<(String, String)>,
    lent: Rc<Lent>,
) {
    let listener = UnixListener::from(listener);
    let Ok(listener) = listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(listener))
    else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        let channel = match stream
            .into_std()
            .map(OwnedFd::from)
            .and_then(lease::channel)
        {
            Ok(channel) => Rc::new(channel),
            Err(_) => continue,
        };
        while let Ok(Some((message, mut fds))) = receive::<Lend>(&channel).await {
            match message {
                Lend::Connection { read_ahead, front } => {
                    let Some(Ok(stream)) = fds.pop().map(lease::connection) else {
                        continue;
                    };
                    let io = Prefixed::new(read_ahead.into(), stream);
                    let handover = Rc::new(Handover::default());
                    let served = serve_lent(
                        io,
                        channel.clone(),
                        commands.clone(),
                        name.clone(),
                        front,
                        handover.clone(),
                        lent.ending.clone(),
                    );
                    *lent.serving.borrow_mut() = Some((handover, spawn_local(served)));
                }
                Lend::Reclaim => lent.reclaim(&channel).await,
            }
        }
    }
}

/// Serves the lent connection until the caller closes it or it is handed back, and tells `run`
/// which.
async fn serve_lent(
    io: Prefixed<tokio::net::TcpStream>,
    channel: Rc<LeaseChannel>,
    commands: mpsc::UnboundedSender<Command>,
    name: Rc<(String, String)>,
    front: PathBuf,
    handover: Rc<Handover>,
    ending: Rc<Cell<bool>>,
) {
    let front = Rc::new(front);
    let handler = move |request: Request<Incoming>| {
        let (commands, name, front) = (commands.clone(), name.clone(), front.clone());
        async move {
            if is_event(&request) {
                to_front(&front, request).await
            } else {
                invoke::handle(request, commands, name).await
            }
        }
    };
    let _ = match handover::serve(io, handler, handover).await {
        Ended::Closed => lease::send(&channel, &Returned::Closed, None).await,
        Ended::HandedOver { io, read_ahead } => match io.into_std().map(OwnedFd::from) {
            Ok(fd) => {
                let message = Returned::Connection {
                    read_ahead: read_ahead.to_vec(),
                    shutting_down: ending.get(),
                };
                lease::send(&channel, &message, Some(&fd)).await
            }
            Err(_) => lease::send(&channel, &Returned::Closed, None).await,
        },
    };
}

fn is_event(request: &Request<Incoming>) -> bool {
    request
        .headers()
        .get(wire::INVOCATION_TYPE)
        .is_some_and(|t| t == "Event")
}

/// Passes an `Event` invocation to `run`, which answers it (202) and queues it, and returns
/// `run`'s answer.
async fn to_front(front: &Path, request: Request<Incoming>) -> Response<InvokeBody> {
    match relay(front, request).await {
        Ok(response) => response,
        Err(e) => wire::service_error(
            StatusCode::BAD_GATEWAY,
            "ServiceException",
            format!("cannot pass the Event invocation to runlambda run: {e}"),
        )
        .map(BodyExt::boxed_unsync),
    }
}

async fn relay(
    front: &Path,
    request: Request<Incoming>,
) -> Result<Response<InvokeBody>, Box<dyn std::error::Error>> {
    let stream = crate::socket_path::connect(front)?;
    stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(stream)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    spawn_local(connection);
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    // An answer to an Event is its status and at most a short error.
    let body = body.collect().await?.to_bytes();
    Ok(Response::from_parts(
        parts,
        Full::<Bytes>::new(body).boxed_unsync(),
    ))
}
