//! The HTTP side of an environment's supervisor: hyper 1 servers on the listeners it was given
//! (TCP inside the environment's network namespace, unix sockets in the state directory). Each
//! request is parsed into a typed [`Command`](crate::supervisor::Command) for the supervisor's
//! task; no handler touches the environment's state itself.

pub mod eventstream;
pub mod extensions;
pub mod invoke;
pub mod relay;
pub mod runtime;
pub mod telemetry;
pub mod wire;

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Handles a request on the listener inside the environment (`AWS_LAMBDA_RUNTIME_API`), which
/// serves the Runtime, Extensions, Telemetry and Logs APIs by path prefix.
pub async fn handle_sandbox(
    request: Request<Incoming>,
    commands: tokio::sync::mpsc::UnboundedSender<crate::supervisor::Command>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path.starts_with(wire::EXTENSION_PREFIX) {
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
