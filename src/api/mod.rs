//! The HTTP side of an environment's supervisor: hyper 1 servers on the listeners it was given
//! (TCP inside the environment's network namespace, unix sockets in the state directory). Each
//! request is parsed into a typed [`Command`](crate::supervisor::Command) for the supervisor's
//! task; no handler touches the environment's state itself.

pub mod eventstream;
pub mod extensions;
pub mod handover;
pub mod invoke;
pub mod relay;
pub mod runtime;
pub mod telemetry;
pub mod wire;

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Whether the environment's extensions are switched off (`/opt/disable-extensions-jwigqn8j`
/// exists), shared by the supervisor, which decides at each Init before any process that could
/// call the Extensions, Telemetry or Logs API exists, and the handlers, which only read it.
#[derive(Clone, Default)]
pub struct KillSwitch(Rc<Cell<bool>>);

impl KillSwitch {
    pub fn set(&self, off: bool) {
        self.0.set(off);
    }

    pub fn is_off(&self) -> bool {
        self.0.get()
    }
}

/// Handles a request on the listener inside the environment (`AWS_LAMBDA_RUNTIME_API`), which
/// serves the Runtime, Extensions, Telemetry and Logs APIs by path prefix; with extensions
/// switched off, the last three answer a bare 404, as Lambda's do.
pub async fn handle_sandbox(
    request: Request<Incoming>,
    commands: tokio::sync::mpsc::UnboundedSender<crate::supervisor::Command>,
    extensions: KillSwitch,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if extensions.is_off()
        && wire::EXTENSION_API_PREFIXES
            .iter()
            .any(|p| path.starts_with(p))
    {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = hyper::StatusCode::NOT_FOUND;
        response
    } else if path.starts_with(wire::EXTENSION_PREFIX) {
        extensions::handle(request, commands).await
    } else if path == wire::TELEMETRY_PATH || path == wire::LOGS_PATH {
        telemetry::handle(request, commands).await
    } else {
        runtime::handle(request, commands).await
    }
}

/// Serves HTTP/1.1 (keep-alive) on one accepted connection with `handler`.
pub fn serve_connection<IO, H, F, B>(io: IO, handler: H)
where
    IO: AsyncRead + AsyncWrite + Unpin + 'static,
    H: Fn(Request<Incoming>) -> F + 'static,
    F: Future<Output = Response<B>> + 'static,
    B: Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = service_fn(move |request| {
        let response = handler(request);
        async move { Ok::<_, Infallible>(response.await) }
    });
    tokio::task::spawn_local(async move {
        // A client that goes away mid-request is its own business.
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .await;
    });
}

/// Accepts connections on a TCP listener forever.
pub async fn serve_tcp<H, F, B>(listener: tokio::net::TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + 'static,
    F: Future<Output = Response<B>> + 'static,
    B: Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            serve_connection(stream, handler.clone());
        }
    }
}

/// Accepts connections on a unix socket forever.
pub async fn serve_unix<H, F, B>(listener: tokio::net::UnixListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + 'static,
    F: Future<Output = Response<B>> + 'static,
    B: Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            serve_connection(stream, handler.clone());
        }
    }
}
