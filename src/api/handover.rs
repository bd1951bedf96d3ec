//! Serving an HTTP/1.1 connection that may pass to another process between two requests.
//! `run` lends a caller's connection to an environment, whose supervisor serves it without
//! `run` in between and gives it back when asked (see [`crate::lease`]). A connection changes
//! hands only where it is idle: every request read has been answered to its last byte and no
//! new one has begun, so the caller never notices. Bytes that hyper read ahead (the start of
//! the next request) go along with the connection.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// A connection with bytes already read from it, which reads return first.
pub struct Prefixed<T> {
    read_ahead: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(read_ahead: Bytes, inner: T) -> Self {
        Prefixed { read_ahead, inner }
    }
}

/// A served connection's link to its owner: whether a request is being answered, and the
/// owner's wish to have the connection back.
#[derive(Default)]
pub struct Handover {
    wanted: Notify,
    /// Requests whose answer has not yet been written out.
    owed: Cell<usize>,
}

impl Handover {
    /// Asks for the connection at its next idle moment.
    pub fn request(&self) {
        self.wanted.notify_one();
    }

    /// Whether a request is being answered.
    pub fn is_answering(&self) -> bool {
        self.owed.get() > 0
    }
}

/// How a served connection ended.
pub enum Ended<T> {
    /// The caller closed it, or it failed.
    Closed,
    /// Handed over, idle: the connection and what had been read from it but not yet served.
    HandedOver { io: T, read_ahead: Bytes },
}

/// Serves HTTP/1.1 (keep-alive) on `io` with `handler` until the caller closes the connection,
/// or, once the handover is requested, until the connection is next idle.
pub async fn serve<T, H, F, B>(io: Prefixed<T>, handler: H, handover: Rc<Handover>) -> Ended<T>
where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
    H: Fn(Request<Incoming>) -> F + Unpin + 'static,
    F: Future<Output = Response<B>> + 'static,
    B: Body<Data = Bytes> + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let counter = handover.clone();
    type Answer<B> = Pin<Box<dyn Future<Output = Result<Response<Counted<B>>, Infallible>>>>;
    let service = service_fn(move |request| -> Answer<B> {
        counter.owed.set(counter.owed.get() + 1);
        let response = handler(request);
        let owed = counter.clone();
        Box::pin(async move { Ok(response.await.map(|body| Counted { body, owed })) })
    });
    let mut connection = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    let asked = handover.wanted.notified();
    tokio::pin!(asked);
    let (mut wanted, mut closing) = (false, false);
    let served = poll_fn(|cx| loop {
        wanted = wanted || asked.as_mut().poll(cx).is_ready();
        let polled = connection.poll_without_shutdown(cx);
        if polled.is_ready() || closing || !wanted || handover.is_answering() {
            return polled;
        }
        // Idle and wanted elsewhere: hyper closes an idle connection's HTTP state at once,
        // without a byte on the wire, and the next poll returns.
        Pin::new(&mut connection).graceful_shutdown();
        closing = true;
    })
    .await;
    if !closing || served.is_err() {
        return Ended::Closed;
    }
    let parts = connection.into_parts();
    let Prefixed { read_ahead, inner } = parts.io.into_inner();
    let read_ahead = if read_ahead.is_empty() {
        parts.read_buf
    } else {
        [read_ahead, parts.read_buf].concat().into()
    };
    Ended::HandedOver {
        io: inner,
        read_ahead,
    }
}

/// An answer's body that counts itself paid once hyper is done with it (it drops a body after
/// writing its last frame, or when the connection fails).
struct Counted<B> {
    body: B,
    owed: Rc<Handover>,
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        self.owed.owed.set(self.owed.owed.get() - 1);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read_ahead.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.read_ahead.len().min(buf.remaining());
        buf.put_slice(&self.read_ahead[..n]);
        self.read_ahead.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
