//! The Runtime API (2018-06-01) as runtimes call it: `invocation/next`, `{id}/response`,
//! `{id}/error` and `init/error`, with the status codes and error bodies RAPID uses. Bodies are
//! read whole (chunked with trailers too), up to the 6 MB limit.

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::wire::{self, runtime_error};
use crate::supervisor::{Command, Delivery, Refusal};

/// A Runtime API call, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Call {
    Next,
    Response(String),
    Error(String),
    InitError,
    Ping,
}

/// Maps a method and path to the call, or `None` for anything else.
pub fn parse(method: &Method, path: &str) -> Option<Call> {
    if method == Method::GET && path == "/2018-06-01/ping" {
        return Some(Call::Ping);
    }
    let rest = path.strip_prefix(wire::RUNTIME_PREFIX)?;
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => Some(Call::Next),
        (&Method::POST, ["init", "error"]) => Some(Call::InitError),
        (&Method::POST, ["invocation", id, "response"]) => Some(Call::Response(id.to_string())),
        (&Method::POST, ["invocation", id, "error"]) => Some(Call::Error(id.to_string())),
        _ => None,
    }
}

/// Handles one Runtime API request.
pub async fn handle(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
) -> Response<Full<Bytes>> {
    let Some(call) = parse(request.method(), request.uri().path()) else {
        return runtime_error(
            StatusCode::NOT_FOUND,
            "InvalidRequest",
            format!(
                "no such endpoint: {} {}",
                request.method(),
                request.uri().path()
            ),
        );
    };
    match call {
        Call::Ping => Response::new(Full::new(Bytes::from_static(b"pong"))),
        Call::Next => next(commands).await,
        Call::Response(id) if streaming(request.headers()) => stream(request, commands, id).await,
        Call::Response(id) => post(request, commands, Posted::Response(id)).await,
        Call::Error(id) => post(request, commands, Posted::Error(id)).await,
        Call::InitError => post(request, commands, Posted::InitError).await,
    }
}

async fn next(commands: mpsc::UnboundedSender<Command>) -> Response<Full<Bytes>> {
    let (reply, answer) = oneshot::channel();
    if commands.send(Command::Next(reply)).is_err() {
        return internal();
    }
    match answer.await {
        Ok(Ok(delivery)) => render_next(delivery),
        Ok(Err(refusal)) => refused(refusal),
        Err(_) => internal(),
    }
}

/// The event with every header the runtime clients read.
pub fn render_next(delivery: Delivery) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(delivery.payload));
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(wire::REQUEST_ID, &delivery.id);
    put(wire::DEADLINE_MS, &delivery.deadline_ms.to_string());
    put(wire::FUNCTION_ARN, &delivery.function_arn);
    put(wire::TRACE_ID, &delivery.trace_id);
    if let Some(context) = &delivery.client_context {
        put(wire::CLIENT_CONTEXT, context);
    }
    put(CONTENT_TYPE.as_str(), "application/json");
    response
}

fn streaming(headers: &HeaderMap) -> bool {
    headers
        .get(wire::RESPONSE_MODE)
        .is_some_and(|mode| mode == "streaming")
}

/// Relays a streamed response: each chunk goes to the caller as it arrives, then the
/// trailers' error, if any, ends the invocation's answer.
async fn stream(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
    id: String,
) -> Response<Full<Bytes>> {
    let (reply, answer) = oneshot::channel();
    let content_type = text(request.headers(), CONTENT_TYPE.as_str());
    let command = Command::StreamStart {
        id: id.clone(),
        content_type,
        reply,
    };
    if commands.send(command).is_err() {
        return internal();
    }
    let chunks = match answer.await {
        Ok(Ok(chunks)) => chunks,
        Ok(Err(refusal)) => return refused(refusal),
        Err(_) => return internal(),
    };
    let mut body = request.into_body();
    let mut produced = 0;
    let mut trailers = None;
    let mut failure = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(_) => {
                let cause = "the streamed response was cut short".to_string();
                failure = Some((truncated(), "Runtime.TruncatedResponse", cause));
                break;
            }
        };
        match frame.into_data() {
            Ok(data) => {
                produced += data.len();
                let limit = wire::MAX_STREAMED_RESPONSE;
                if produced > limit {
                    let cause = format!(
                        "Response payload size exceeded maximum allowed payload size ({limit} bytes)."
                    );
                    failure = Some((too_large(limit), "Function.ResponseSizeTooLarge", cause));
                    break;
                }
                // A caller that went away no longer reads; the runtime still finishes.
                let _ = chunks.send(data).await;
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    // Every chunk is queued before the end is asked for: the caller reads them first.
    drop(chunks);
    let error = match &failure {
        Some((_, error_type, cause)) => Some((
            error_type.to_string(),
            wire::function_failure(error_type, cause),
        )),
        None => trailer_error(trailers.as_ref()),
    };
    let (reply, answer) = oneshot::channel();
    let command = Command::StreamEnd {
        id,
        produced_bytes: produced as u64,
        error,
        reply,
    };
    if commands.send(command).is_err() {
        return internal();
    }
    match (answer.await, failure) {
        (Ok(Ok(())), None) => wire::accepted(),
        (Ok(Ok(())), Some((response, ..))) => response,
        (Ok(Err(refusal)), _) => refused(refusal),
        (Err(_), _) => internal(),
    }
}

enum Posted {
    Response(String),
    Error(String),
    InitError,
}

async fn post(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
    posted: Posted,
) -> Response<Full<Bytes>> {
    let headers = request.headers().clone();
    let limit = match headers.get(wire::RESPONSE_MODE) {
        None => wire::MAX_RESPONSE,
        Some(mode) if mode == "streaming" => wire::MAX_STREAMED_RESPONSE,
        Some(_) => {
            return runtime_error(
                StatusCode::BAD_REQUEST,
                "InvalidFunctionResponseMode",
                "Invalid function response mode",
            );
        }
    };
    let collected = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected,
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large(limit)
        }
        Err(_) => return truncated(),
    };
    let trailers = collected.trailers().cloned();
    let body = collected.to_bytes();
    let error_type = text(&headers, wire::FUNCTION_ERROR_TYPE);
    let (reply, answer) = oneshot::channel();
    let command = match posted {
        Posted::Response(id) => match trailer_error(trailers.as_ref()) {
            // A streamed response that failed midway reports the error in its trailers.
            Some((error_type, error_body)) => Command::Error {
                id,
                body: error_body,
                error_type: Some(error_type),
                reply,
            },
            None => Command::Response {
                id,
                body,
                content_type: text(&headers, CONTENT_TYPE.as_str()),
                reply,
            },
        },
        Posted::Error(id) => Command::Error {
            id,
            body: error_body(body, error_type.as_deref()),
            error_type,
            reply,
        },
        Posted::InitError => Command::InitError {
            body,
            error_type,
            reply,
        },
    };
    if commands.send(command).is_err() {
        return internal();
    }
    match answer.await {
        Ok(Ok(())) => wire::accepted(),
        Ok(Err(refusal)) => refused(refusal),
        Err(_) => internal(),
    }
}

/// An `/error` without a body still tells the caller something: build the error from the
/// error-type header, as Lambda does.
fn error_body(body: Bytes, error_type: Option<&str>) -> Bytes {
    if !body.is_empty() {
        return body;
    }
    let error_type = error_type.unwrap_or("Runtime.Unknown");
    wire::function_failure(error_type, "")
}

/// The `Lambda-Runtime-Function-Error-Type` and `-Body` trailers, when a stream failed.
fn trailer_error(trailers: Option<&HeaderMap>) -> Option<(String, Bytes)> {
    let trailers = trailers?;
    let error_type = text(trailers, wire::FUNCTION_ERROR_TYPE).filter(|t| !t.is_empty())?;
    let body = text(trailers, wire::FUNCTION_ERROR_BODY)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(Bytes::from)
        .unwrap_or_else(|| wire::function_failure(&error_type, ""));
    Some((error_type, body))
}

fn too_large(limit: usize) -> Response<Full<Bytes>> {
    runtime_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        format!("Exceeded maximum allowed payload size ({limit} bytes)."),
    )
}

fn truncated() -> Response<Full<Bytes>> {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "TruncatedHTTPRequest",
        "HTTP request detected as truncated",
    )
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

fn refused(refusal: Refusal) -> Response<Full<Bytes>> {
    match refusal {
        Refusal::InvalidRequestId => runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            "Invalid request ID",
        ),
        Refusal::InvalidState(message) => runtime_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            format!("{message}. Error: State transition is not allowed"),
        ),
    }
}

fn internal() -> Response<Full<Bytes>> {
    runtime_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalServerError",
        "Internal Server Error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_calls() {
        let id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
        assert_eq!(
            parse(&Method::GET, "/2018-06-01/runtime/invocation/next"),
            Some(Call::Next)
        );
        assert_eq!(
            parse(
                &Method::POST,
                &format!("/2018-06-01/runtime/invocation/{id}/response")
            ),
            Some(Call::Response(id.into()))
        );
        assert_eq!(
            parse(
                &Method::POST,
                &format!("/2018-06-01/runtime/invocation/{id}/error")
            ),
            Some(Call::Error(id.into()))
        );
        assert_eq!(
            parse(&Method::POST, "/2018-06-01/runtime/init/error"),
            Some(Call::InitError)
        );
        assert_eq!(parse(&Method::GET, "/2018-06-01/ping"), Some(Call::Ping));
        assert_eq!(
            parse(&Method::POST, "/2018-06-01/runtime/invocation/next"),
            None
        );
        assert_eq!(
            parse(&Method::GET, "/2018-06-01/runtime/invocation/x/response"),
            None
        );
        assert_eq!(parse(&Method::GET, "/2018-06-01/runtime/other"), None);
    }

    #[test]
    fn next_carries_every_header_the_clients_read() {
        let response = render_next(Delivery {
            id: "id-1".into(),
            payload: Bytes::from_static(b"{}"),
            deadline_ms: 1_542_409_706_888,
            function_arn: "arn:aws:lambda:us-east-1:012345678912:function:f".into(),
            trace_id: "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                .into(),
            client_context: Some("{\"custom\":{}}".into()),
        });
        let h = response.headers();
        assert_eq!(h[wire::REQUEST_ID], "id-1");
        assert_eq!(h[wire::DEADLINE_MS], "1542409706888");
        assert!(h[wire::FUNCTION_ARN]
            .to_str()
            .unwrap()
            .ends_with(":function:f"));
        assert!(h[wire::TRACE_ID].to_str().unwrap().starts_with("Root=1-"));
        assert_eq!(h[wire::CLIENT_CONTEXT], "{\"custom\":{}}");
        assert_eq!(h[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn stream_errors_in_trailers_become_function_errors() {
        let mut trailers = HeaderMap::new();
        trailers.insert(
            wire::FUNCTION_ERROR_TYPE,
            HeaderValue::from_static("Runtime.StreamError"),
        );
        let body = base64::engine::general_purpose::STANDARD.encode(b"{\"errorMessage\":\"x\"}");
        trailers.insert(
            wire::FUNCTION_ERROR_BODY,
            HeaderValue::from_str(&body).unwrap(),
        );
        let (error_type, error_body) = trailer_error(Some(&trailers)).unwrap();
        assert_eq!(error_type, "Runtime.StreamError");
        assert_eq!(&error_body[..], b"{\"errorMessage\":\"x\"}");
        assert!(trailer_error(Some(&HeaderMap::new())).is_none());
    }
}
