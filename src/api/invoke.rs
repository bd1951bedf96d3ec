//! The AWS Invoke API (`POST /2015-03-31/functions/{name}/invocations`) as AWS SDKs and the
//! AWS emulator's users call it: invocation types, log tails, client context, function errors,
//! and AWS's error types and status codes for bad requests.

use base64::Engine;
use bytes::Bytes;
use std::convert::Infallible;

use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, oneshot};

use super::relay::{self, EventStream};
use super::wire::{self, service_error};
use crate::supervisor::{AnswerBody, Command, InvokeRequest, Outcome};

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

/// Why an invoke request was refused before reaching the function.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

fn reject(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Rejection {
    Rejection {
        status,
        error_type,
        message: message.into(),
    }
}

/// The headers of an invoke request, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub invocation_type: InvocationType,
    pub tail: bool,
    /// The decoded client context (JSON text).
    pub client_context: Option<String>,
    pub trace_id: Option<String>,
}

/// The two operations of this API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `Invoke`: the answer as one body.
    Invoke,
    /// `InvokeWithResponseStream`: the answer as an AWS event stream.
    InvokeWithResponseStream,
}

/// Checks the path's function name against `name`: the name itself, `function` (the AWS
/// emulator's name), or an ARN of it, with or without a qualifier; returns the operation.
pub fn check_function(path: &str, name: &str, arn: &str) -> Result<Operation, Rejection> {
    let invoke = path
        .strip_prefix(wire::INVOKE_PREFIX)
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(|requested| (requested, Operation::Invoke));
    let stream = path
        .strip_prefix(wire::STREAM_PREFIX)
        .and_then(|rest| rest.strip_suffix("/response-streaming-invocations"))
        .map(|requested| (requested, Operation::InvokeWithResponseStream));
    let (requested, operation) = invoke.or(stream).ok_or_else(|| {
        reject(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            format!("no such operation: {path}"),
        )
    })?;
    let requested = percent_decode(requested);
    let bare = requested
        .rsplit_once(":function:")
        .map_or(requested.as_str(), |(_, after)| after);
    let bare = bare.split(':').next().unwrap_or(bare);
    if bare == name || bare == "function" {
        Ok(operation)
    } else {
        Err(reject(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Function not found: {}", arn.replace(name, bare)),
        ))
    }
}

/// Decodes the `%3A`-style escapes SDKs put in ARNs in paths.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the request's headers.
pub fn parse_headers(headers: &HeaderMap) -> Result<Parsed, Rejection> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let invocation_type = match header(wire::INVOCATION_TYPE).unwrap_or("RequestResponse") {
        "RequestResponse" => InvocationType::RequestResponse,
        "Event" => InvocationType::Event,
        "DryRun" => InvocationType::DryRun,
        other => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!(
                    "X-Amz-Invocation-Type {other:?} is not one of RequestResponse, Event, DryRun"
                ),
            ))
        }
    };
    let tail = match header(wire::LOG_TYPE).unwrap_or("None") {
        "None" => false,
        "Tail" => true,
        other => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "InvalidParameterValueException",
                format!("X-Amz-Log-Type {other:?} is not one of None, Tail"),
            ))
        }
    };
    let client_context = header(wire::CALLER_CLIENT_CONTEXT)
        .map(decode_client_context)
        .transpose()?;
    Ok(Parsed {
        invocation_type,
        tail: tail && invocation_type == InvocationType::RequestResponse,
        client_context,
        trace_id: header(wire::CALLER_TRACE_ID).map(str::to_string),
    })
}

fn decode_client_context(value: &str) -> Result<String, Rejection> {
    let invalid = || {
        reject(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "X-Amz-Client-Context must be a base64-encoded JSON object",
        )
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| invalid())?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(_)) => String::from_utf8(bytes).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// Checks that the payload is JSON (or empty), as Lambda does.
pub fn check_payload(payload: &[u8]) -> Result<(), Rejection> {
    if !payload.is_empty() {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(payload) {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                format!("Could not parse request body into json: {e}"),
            ));
        }
    }
    Ok(())
}

/// Handles one invoke request for the function `name`.
pub async fn handle(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
    name: std::rc::Rc<(String, String)>,
) -> Response<InvokeBody> {
    match invoke(request, commands, &name.0, &name.1).await {
        Ok(response) => response,
        Err(rejection) => service_error(rejection.status, rejection.error_type, rejection.message)
            .map(BodyExt::boxed_unsync),
    }
}

async fn invoke(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
    name: &str,
    arn: &str,
) -> Result<Response<InvokeBody>, Rejection> {
    if request.method() != Method::POST {
        return Err(reject(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnknownOperationException",
            format!("{} is not supported here: use POST", request.method()),
        ));
    }
    let operation = check_function(request.uri().path(), name, arn)?;
    let parsed = parse_headers(request.headers())?;
    if operation == Operation::InvokeWithResponseStream
        && parsed.invocation_type == InvocationType::Event
    {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            "InvokeWithResponseStream takes X-Amz-Invocation-Type RequestResponse or DryRun",
        ));
    }
    let limit = match parsed.invocation_type {
        InvocationType::Event => wire::MAX_ASYNC_PAYLOAD,
        _ => wire::MAX_SYNC_PAYLOAD,
    };
    let payload = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!(
                    "Request must be smaller than {limit} bytes for the InvokeFunction operation"
                ),
            ))
        }
        Err(e) => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                format!("cannot read the request body: {e}"),
            ))
        }
    };
    check_payload(&payload)?;
    let unavailable = || {
        reject(
            StatusCode::BAD_GATEWAY,
            "ResourceNotReadyException",
            "the function's environment has shut down",
        )
    };
    match parsed.invocation_type {
        InvocationType::DryRun => Ok(empty(StatusCode::NO_CONTENT)),
        InvocationType::Event => {
            let request = InvokeRequest {
                payload,
                client_context: parsed.client_context,
                trace_id: parsed.trace_id,
                tail: false,
                reply: None,
            };
            commands
                .send(Command::Invoke(request))
                .map_err(|_| unavailable())?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        InvocationType::RequestResponse => {
            let (reply, answer) = oneshot::channel();
            let request = InvokeRequest {
                payload,
                client_context: parsed.client_context,
                trace_id: parsed.trace_id,
                tail: parsed.tail,
                reply: Some(reply),
            };
            commands
                .send(Command::Invoke(request))
                .map_err(|_| unavailable())?;
            match answer.await {
                Ok(Ok(outcome)) if operation == Operation::InvokeWithResponseStream => {
                    Ok(render_stream(outcome))
                }
                Ok(Ok(outcome)) => Ok(render_outcome(outcome).await.map(BodyExt::boxed_unsync)),
                Ok(Err(_busy)) => Err(too_many_requests()),
                Err(_) => Err(unavailable()),
            }
        }
    }
}

/// 429 as Lambda answers when every environment is busy.
pub fn too_many_requests() -> Rejection {
    reject(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequestsException",
        "Rate Exceeded. Reason: ConcurrentInvocationLimitExceeded",
    )
}

fn empty(status: StatusCode) -> Response<InvokeBody> {
    let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *response.status_mut() = status;
    response
}

/// The body of an Invoke API answer: whole, or an event stream relayed as it arrives.
pub type InvokeBody = UnsyncBoxBody<Bytes, Infallible>;

/// 200 with the function's answer and Lambda's response headers. An answer past the 6 MB of a
/// buffered response (a streaming runtime may send more) becomes Lambda's size error; a
/// streamed one is read whole first.
pub async fn render_outcome(mut outcome: Outcome) -> Response<Full<Bytes>> {
    let body = loop {
        match outcome.body {
            AnswerBody::Whole(body) => break body,
            AnswerBody::Streamed(streamed) => {
                let content_type = outcome.content_type.take();
                outcome = streamed
                    .collect(wire::MAX_RESPONSE, outcome.request_id)
                    .await;
                outcome.content_type = outcome.content_type.or(content_type);
            }
        }
    };
    let body = if body.len() > wire::MAX_RESPONSE {
        outcome.function_error = true;
        outcome.content_type = None;
        wire::response_too_large(body.len(), wire::MAX_RESPONSE)
    } else {
        body
    };
    let mut response = Response::new(Full::new(body));
    let headers = response.headers_mut();
    headers.insert(wire::EXECUTED_VERSION, HeaderValue::from_static("$LATEST"));
    if let Ok(id) = HeaderValue::from_str(&outcome.request_id) {
        headers.insert(wire::AMZN_REQUEST_ID, id);
    }
    let content_type = outcome
        .content_type
        .as_deref()
        .unwrap_or("application/json");
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    if outcome.function_error {
        headers.insert(wire::FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
    }
    if let Some(log) = outcome.log.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(wire::LOG_RESULT, log);
    }
    response
}

/// 200 with the answer as `PayloadChunk` events and a closing `InvokeComplete`, as
/// `InvokeWithResponseStream` answers: a streamed answer chunk by chunk as the runtime sends
/// it, a whole one at once.
pub fn render_stream(outcome: Outcome) -> Response<InvokeBody> {
    let request_id = HeaderValue::from_str(&outcome.request_id).ok();
    let body = match outcome.body {
        AnswerBody::Streamed(streamed) => EventStream(streamed).boxed_unsync(),
        AnswerBody::Whole(ref whole) => {
            let mut body = bytes::BytesMut::new();
            if !outcome.function_error {
                for chunk in whole.chunks(super::eventstream::CHUNK) {
                    body.extend_from_slice(&super::eventstream::payload_chunk(chunk));
                }
            }
            body.extend_from_slice(&relay::complete(&outcome));
            Full::new(body.freeze()).boxed_unsync()
        }
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(wire::EXECUTED_VERSION, HeaderValue::from_static("$LATEST"));
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    if let Some(id) = request_id {
        headers.insert(wire::AMZN_REQUEST_ID, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:012345678912:function:echo";

    #[test]
    fn the_function_is_found_by_name_alias_arn_or_as_function() {
        for path in [
            "/2015-03-31/functions/echo/invocations",
            "/2015-03-31/functions/function/invocations",
            "/2015-03-31/functions/echo:live/invocations",
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A012345678912%3Afunction%3Aecho/invocations",
            "/2015-03-31/functions/012345678912:function:echo:7/invocations",
        ] {
            assert_eq!(check_function(path, "echo", ARN), Ok(Operation::Invoke), "{path}");
        }
        let err =
            check_function("/2015-03-31/functions/other/invocations", "echo", ARN).unwrap_err();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(err.error_type, "ResourceNotFoundException");
        assert!(err.message.ends_with(":function:other"), "{}", err.message);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn invocation_and_log_types_are_checked() {
        let parsed = parse_headers(&headers(&[])).unwrap();
        assert_eq!(parsed.invocation_type, InvocationType::RequestResponse);
        assert!(!parsed.tail);
        let parsed = parse_headers(&headers(&[(wire::LOG_TYPE, "Tail")])).unwrap();
        assert!(parsed.tail);
        for (name, value) in [
            (wire::INVOCATION_TYPE, "Sometimes"),
            (wire::LOG_TYPE, "All"),
        ] {
            let err = parse_headers(&headers(&[(name, value)])).unwrap_err();
            assert_eq!(err.error_type, "InvalidParameterValueException");
            assert!(err.message.contains(value), "{}", err.message);
        }
    }

    #[test]
    fn client_context_must_be_base64_json_object() {
        let good = base64::engine::general_purpose::STANDARD.encode(b"{\"custom\":{\"a\":1}}");
        let parsed = parse_headers(&headers(&[(wire::CALLER_CLIENT_CONTEXT, &good)])).unwrap();
        assert_eq!(
            parsed.client_context.as_deref(),
            Some("{\"custom\":{\"a\":1}}")
        );
        let not_json = base64::engine::general_purpose::STANDARD.encode(b"nope");
        for bad in ["%%%", not_json.as_str()] {
            let err = parse_headers(&headers(&[(wire::CALLER_CLIENT_CONTEXT, bad)])).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn payloads_must_be_json_or_empty() {
        check_payload(b"").unwrap();
        check_payload(b"{\"a\":1}").unwrap();
        let err = check_payload(b"{not json").unwrap_err();
        assert_eq!(err.error_type, "InvalidRequestContentException");
        assert!(err
            .message
            .starts_with("Could not parse request body into json"));
    }

    #[tokio::test]
    async fn function_errors_are_200_with_the_unhandled_header() {
        let response = render_outcome(Outcome {
            request_id: "r1".into(),
            body: AnswerBody::Whole(Bytes::from_static(b"{\"errorMessage\":\"boom\"}")),
            content_type: None,
            function_error: true,
            log: Some("U1RBUlQ=".into()),
        })
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[wire::FUNCTION_ERROR], "Unhandled");
        assert_eq!(h[wire::EXECUTED_VERSION], "$LATEST");
        assert_eq!(h[wire::AMZN_REQUEST_ID], "r1");
        assert_eq!(h[wire::LOG_RESULT], "U1RBUlQ=");
    }
}
