//! A streamed answer on its way from the runtime to its caller. The runtime's chunks pass
//! through a short bounded channel as they arrive, so a slow caller slows the runtime instead
//! of filling memory; the supervisor closes the stream with the invocation's outcome (the
//! function's error, a timeout, the log tail) once the invocation has one.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame};
use tokio::sync::{mpsc, oneshot};

use super::{eventstream, wire};
use crate::supervisor::{AnswerBody, Outcome};

/// How many chunks may wait for a slow caller before the runtime's writes wait too.
const DEPTH: usize = 16;

/// The caller's side of a streamed answer.
#[derive(Debug)]
pub struct Streamed {
    /// `None` once the runtime's side is closed and drained.
    chunks: Option<mpsc::Receiver<Bytes>>,
    /// `None` once the end has been read.
    end: Option<oneshot::Receiver<Outcome>>,
}

/// One part of a streamed answer.
#[derive(Debug)]
pub enum Part {
    Chunk(Bytes),
    /// The invocation's outcome: its body is the error when the function failed, else empty.
    End(Outcome),
}

/// A new stream: the runtime's chunk sender, the supervisor's end sender, the caller's side.
pub fn channel() -> (mpsc::Sender<Bytes>, oneshot::Sender<Outcome>, Streamed) {
    let (chunks, chunks_out) = mpsc::channel(DEPTH);
    let (end, end_out) = oneshot::channel();
    let streamed = Streamed {
        chunks: Some(chunks_out),
        end: Some(end_out),
    };
    (chunks, end, streamed)
}

impl Streamed {
    /// Every chunk the runtime sent, then the end — which may come first when the invocation
    /// failed while the runtime was still sending; `None` after the end, or when the
    /// environment went away without one.
    fn poll_part(&mut self, cx: &mut Context<'_>) -> Poll<Option<Part>> {
        if let Some(chunks) = self.chunks.as_mut() {
            match chunks.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => return Poll::Ready(Some(Part::Chunk(chunk))),
                Poll::Ready(None) => self.chunks = None,
                Poll::Pending => {}
            }
        }
        let Some(end) = self.end.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(end).poll(cx) {
            Poll::Ready(outcome) => {
                self.end = None;
                self.chunks = None;
                Poll::Ready(outcome.ok().map(Part::End))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    async fn next(&mut self) -> Option<Part> {
        poll_fn(|cx| self.poll_part(cx)).await
    }

    /// The whole answer, for an `Invoke` of a streaming function. Past `limit` bytes the rest
    /// is read and dropped, and the answer is only its size, which the caller turns into
    /// Lambda's size error.
    pub async fn collect(mut self, limit: usize, request_id: String) -> Outcome {
        let mut body = BytesMut::new();
        let mut size = 0;
        let mut end = None;
        while let Some(part) = self.next().await {
            match part {
                Part::Chunk(chunk) => {
                    size += chunk.len();
                    if size <= limit {
                        body.extend_from_slice(&chunk);
                    }
                }
                Part::End(outcome) => end = Some(outcome),
            }
        }
        let mut outcome = end.unwrap_or_else(|| Outcome {
            request_id,
            body: AnswerBody::Whole(wire::function_failure(
                "Sandbox.Failure",
                "the function's environment went away",
            )),
            content_type: None,
            function_error: true,
            log: None,
        });
        if !outcome.function_error {
            outcome.body = AnswerBody::Whole(body.freeze());
            if size > limit {
                outcome.body = AnswerBody::Whole(wire::response_too_large(size, limit));
                outcome.function_error = true;
                outcome.content_type = None;
            }
        }
        outcome
    }
}

/// A streamed answer as the body of an `InvokeWithResponseStream` answer: a `PayloadChunk`
/// event for each chunk as it arrives, then `InvokeComplete`.
#[derive(Debug)]
pub struct EventStream(pub Streamed);

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match std::task::ready!(self.get_mut().0.poll_part(cx)) {
            Some(Part::Chunk(chunk)) => chunk
                .chunks(eventstream::CHUNK)
                .map(eventstream::payload_chunk)
                .fold(BytesMut::new(), |mut all, event| {
                    all.extend_from_slice(&event);
                    all
                })
                .freeze(),
            Some(Part::End(outcome)) => complete(&outcome),
            None => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}

/// The closing `InvokeComplete` event of an outcome: a function error's code and message, and
/// the log tail when one was asked for.
pub fn complete(outcome: &Outcome) -> Bytes {
    let details = match (&outcome.body, outcome.function_error) {
        (AnswerBody::Whole(body), true) => Some(
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["errorMessage"].as_str().map(str::to_string))
                .unwrap_or_default(),
        ),
        _ => None,
    };
    let error = details.as_deref().map(|details| ("Unhandled", details));
    eventstream::invoke_complete(error, outcome.log.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn ended(error: bool) -> Outcome {
        Outcome {
            request_id: "r1".into(),
            body: AnswerBody::Whole(Bytes::from_static(b"{\"errorMessage\":\"boom\"}")),
            content_type: None,
            function_error: error,
            log: None,
        }
    }

    #[tokio::test]
    async fn chunks_are_readable_before_the_stream_ends() {
        let (chunks, end, streamed) = channel();
        let mut body = EventStream(streamed);
        chunks.send(Bytes::from_static(b"one")).await.unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(first.windows(3).any(|w| w == b"one"));
        chunks.send(Bytes::from_static(b"two")).await.unwrap();
        drop(chunks);
        end.send(ended(false)).unwrap();
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(second.windows(3).any(|w| w == b"two"));
        let last = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(last.windows(14).any(|w| w == b"InvokeComplete"));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn an_end_while_the_runtime_still_streams_closes_the_stream() {
        let (chunks, end, streamed) = channel();
        end.send(ended(true)).unwrap();
        let outcome = streamed.collect(10, "r1".into()).await;
        assert!(outcome.function_error);
        drop(chunks);
    }

    #[tokio::test]
    async fn collecting_past_the_limit_keeps_only_the_size() {
        let (chunks, end, streamed) = channel();
        let collected = tokio::spawn(streamed.collect(4, "r1".into()));
        chunks.send(Bytes::from_static(b"abc")).await.unwrap();
        chunks.send(Bytes::from_static(b"def")).await.unwrap();
        drop(chunks);
        end.send(ended(false)).unwrap();
        let outcome = collected.await.unwrap();
        assert!(outcome.function_error);
        let AnswerBody::Whole(body) = outcome.body else {
            panic!("a collected answer is whole");
        };
        assert!(String::from_utf8_lossy(&body).contains("(6 bytes)"));
    }
}
