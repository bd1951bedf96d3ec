//! The Lambda wire contract in one place: paths, header names, limits and the JSON bodies of
//! errors, as the real runtime clients (Rust `lambda_runtime`, Python `awslambdaric`, Go, Node)
//! and AWS SDK callers read them.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub const RUNTIME_PREFIX: &str = "/2018-06-01/runtime/";
pub const INVOKE_PREFIX: &str = "/2015-03-31/functions/";
pub const STREAM_PREFIX: &str = "/2021-11-15/functions/";
pub const EXTENSION_PREFIX: &str = "/2020-01-01/extension/";
pub const TELEMETRY_PATH: &str = "/2022-07-01/telemetry";
pub const LOGS_PATH: &str = "/2020-08-15/logs";
/// The path prefixes of the Extensions, Logs and Telemetry APIs, which the extensions kill
/// switch closes.
pub const EXTENSION_API_PREFIXES: [&str; 3] = ["/2020-01-01/", "/2020-08-15/", "/2022-07-01/"];

pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
pub const FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
pub const TRACE_ID: &str = "lambda-runtime-trace-id";
pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
pub const FUNCTION_ERROR_BODY: &str = "lambda-runtime-function-error-body";
pub const RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";

pub const EXTENSION_NAME: &str = "lambda-extension-name";
pub const EXTENSION_ACCEPT_FEATURE: &str = "lambda-extension-accept-feature";
pub const EXTENSION_IDENTIFIER: &str = "lambda-extension-identifier";
pub const EXTENSION_EVENT_IDENTIFIER: &str = "lambda-extension-event-identifier";
pub const EXTENSION_ERROR_TYPE: &str = "lambda-extension-function-error-type";

pub const INVOCATION_TYPE: &str = "x-amz-invocation-type";
pub const LOG_TYPE: &str = "x-amz-log-type";
pub const CALLER_CLIENT_CONTEXT: &str = "x-amz-client-context";
pub const CALLER_TRACE_ID: &str = "x-amzn-trace-id";
pub const EXECUTED_VERSION: &str = "x-amz-executed-version";
pub const FUNCTION_ERROR: &str = "x-amz-function-error";
pub const LOG_RESULT: &str = "x-amz-log-result";
pub const AMZN_REQUEST_ID: &str = "x-amzn-requestid";
pub const ERROR_TYPE: &str = "x-amzn-errortype";

/// The largest buffered response a runtime may post (6 MiB + 100 bytes, as RAPID).
pub const MAX_RESPONSE: usize = 6 * 1024 * 1024 + 100;
/// The largest response a runtime may stream (200 MiB, Lambda's current limit).
pub const MAX_STREAMED_RESPONSE: usize = 200 * 1024 * 1024;
/// The largest synchronous invoke payload (6 MiB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// The largest asynchronous (Event) invoke payload (1 MiB).
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
/// How many extensions an environment may have, internal and external together.
pub const MAX_EXTENSIONS: usize = 10;
/// How much of the log `X-Amz-Log-Result` carries (the last 4 KB).
pub const LOG_TAIL: usize = 4096;

/// The body of every error the Runtime, Extensions and Telemetry APIs answer with.
#[derive(Debug, Serialize)]
pub struct RuntimeError {
    #[serde(rename = "errorType")]
    pub error_type: &'static str,
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

/// A JSON response with the given status; errors end with a newline as RAPID's do.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    let mut bytes = serde_json::to_vec(body).expect("wire types serialise");
    bytes.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A Runtime API error.
pub fn runtime_error(
    status: StatusCode,
    error_type: &'static str,
    message: impl Into<String>,
) -> Response<Full<Bytes>> {
    json(
        status,
        &RuntimeError {
            error_type,
            error_message: message.into(),
        },
    )
}

/// `202 {"status":"OK"}`, the answer to every accepted runtime POST.
pub fn accepted() -> Response<Full<Bytes>> {
    json(StatusCode::ACCEPTED, &serde_json::json!({"status": "OK"}))
}

/// An Invoke API (service) error as botocore parses it: the type in `X-Amzn-ErrorType`, the
/// message in the body's `message` (and `Message`), plus `Type`.
pub fn service_error(
    status: StatusCode,
    error_type: &'static str,
    message: impl Into<String>,
) -> Response<Full<Bytes>> {
    let message = message.into();
    let kind = if status.is_server_error() {
        "Service"
    } else {
        "User"
    };
    let mut response = json(
        status,
        &serde_json::json!({"Type": kind, "message": message, "Message": message}),
    );
    response
        .headers_mut()
        .insert(ERROR_TYPE, HeaderValue::from_static(error_type));
    response
}

/// The error payload the caller gets for a platform failure of the function.
pub fn function_failure(error_type: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({"errorType": error_type, "errorMessage": message}))
            .expect("json"),
    )
}

/// The error payload of an answer of `size` bytes past a buffered answer's `limit`.
pub fn response_too_large(size: usize, limit: usize) -> Bytes {
    function_failure(
        "Function.ResponseSizeTooLarge",
        &format!(
            "Response payload size ({size} bytes) exceeded maximum allowed payload size ({limit} bytes)."
        ),
    )
}

/// A refused Extensions or Telemetry API call: status, `errorType` and message.
#[derive(Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

impl ApiError {
    /// 403, RAPID's answer to every refused Extensions API call.
    pub fn forbidden(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            error_type,
            message: message.into(),
        }
    }

    pub fn bad_request(error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type,
            message: message.into(),
        }
    }

    pub fn response(self) -> Response<Full<Bytes>> {
        runtime_error(self.status, self.error_type, self.message)
    }
}
