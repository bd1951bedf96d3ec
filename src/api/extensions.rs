//! The Extensions API (2020-01-01) as extensions call it: `register`, `event/next`,
//! `init/error` and `exit/error`, parsed into typed calls, with the INVOKE and SHUTDOWN event
//! bodies and RAPID's 403 `Extension.*` errors. Header names and JSON fields follow the
//! `lambda-extension` crate, which is what extensions run.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::wire::{self, ApiError};
use crate::supervisor::extensions::{ExtensionRequest, Refusal, Registered};
use crate::supervisor::Command;

/// The largest request body an extension may send (register bodies and error reports).
const MAX_BODY: usize = 1024 * 1024;

/// The events an extension registers for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events {
    pub invoke: bool,
    pub shutdown: bool,
}

impl Events {
    /// The names, as `platform.extension` records list them.
    pub fn names(self) -> Vec<String> {
        let mut names = Vec::new();
        if self.invoke {
            names.push("INVOKE".to_string());
        }
        if self.shutdown {
            names.push("SHUTDOWN".to_string());
        }
        names
    }
}

/// A `register` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub name: String,
    pub events: Events,
    /// `Lambda-Extension-Accept-Feature: accountId`.
    pub account_id: bool,
}

/// Which error report an extension posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Init,
    Exit,
}

/// An Extensions API call, parsed.
#[derive(Debug, PartialEq, Eq)]
pub enum Call {
    Register(Registration),
    Next {
        id: String,
    },
    Error {
        id: String,
        kind: ErrorKind,
        error_type: String,
    },
}

/// An event handed to an extension's `next`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "eventType", rename_all = "UPPERCASE")]
pub enum ExtensionEvent {
    #[serde(rename_all = "camelCase")]
    Invoke {
        deadline_ms: u64,
        request_id: String,
        invoked_function_arn: String,
        tracing: Tracing,
    },
    #[serde(rename_all = "camelCase")]
    Shutdown {
        shutdown_reason: &'static str,
        deadline_ms: u64,
    },
}

/// The X-Ray header of an invocation, as INVOKE carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tracing {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

impl Tracing {
    pub fn amzn(value: String) -> Self {
        Self {
            kind: "X-Amzn-Trace-Id",
            value,
        }
    }
}

/// The body of a successful `register`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegisterResponse<'a> {
    function_name: &'a str,
    function_version: &'a str,
    handler: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    #[serde(default)]
    events: Vec<String>,
    configuration_keys: Option<serde_json::Value>,
}

/// Maps a request to its call, or the error RAPID answers it with.
pub fn parse(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Call, ApiError> {
    let rest = path.strip_prefix(wire::EXTENSION_PREFIX).unwrap_or("");
    match (method, rest) {
        (&Method::POST, "register") => parse_register(headers, body).map(Call::Register),
        (&Method::GET, "event/next") => Ok(Call::Next {
            id: identifier(headers)?,
        }),
        (&Method::POST, "init/error" | "exit/error") => {
            let id = identifier(headers)?;
            let error_type = text(headers, wire::EXTENSION_ERROR_TYPE)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "Extension.MissingHeader",
                        "Lambda-Extension-Function-Error-Type not found",
                    )
                })?;
            let kind = if rest == "init/error" {
                ErrorKind::Init
            } else {
                ErrorKind::Exit
            };
            Ok(Call::Error {
                id,
                kind,
                error_type,
            })
        }
        _ => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            error_type: "InvalidRequest",
            message: format!("no such endpoint: {method} {path}"),
        }),
    }
}

fn parse_register(headers: &HeaderMap, body: &[u8]) -> Result<Registration, ApiError> {
    let name = text(headers, wire::EXTENSION_NAME)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::forbidden("Extension.InvalidExtensionName", "Empty extension name")
        })?;
    let body: RegisterBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::forbidden(
            "InvalidRequestFormat",
            format!("cannot parse the register body: {e}"),
        )
    })?;
    if body.configuration_keys.is_some() {
        return Err(ApiError::forbidden(
            "InvalidRequestFormat",
            "configurationKeys are deprecated; use environment variables instead",
        ));
    }
    let mut events = Events::default();
    for event in &body.events {
        match event.as_str() {
            "INVOKE" => events.invoke = true,
            "SHUTDOWN" => events.shutdown = true,
            other => {
                return Err(ApiError::forbidden(
                    "Extension.InvalidEventType",
                    format!("{other}: InvalidEventType"),
                ))
            }
        }
    }
    let account_id = text(headers, wire::EXTENSION_ACCEPT_FEATURE)
        .is_some_and(|features| features.split(',').any(|f| f.trim() == "accountId"));
    Ok(Registration {
        name,
        events,
        account_id,
    })
}

/// The `Lambda-Extension-Identifier` of a call: present and a UUID (the Telemetry and Logs
/// APIs check it the same way).
pub fn identifier(headers: &HeaderMap) -> Result<String, ApiError> {
    let id = text(headers, wire::EXTENSION_IDENTIFIER).ok_or_else(|| {
        ApiError::forbidden(
            "Extension.MissingExtensionIdentifier",
            "Missing Lambda-Extension-Identifier header",
        )
    })?;
    uuid::Uuid::parse_str(&id).map_err(|_| {
        ApiError::forbidden(
            "Extension.InvalidExtensionIdentifier",
            "Invalid Lambda-Extension-Identifier",
        )
    })?;
    Ok(id)
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_string)
}

/// The answer to a refused call.
pub fn refused(refusal: Refusal) -> ApiError {
    let forbidden = |error_type, message: String| ApiError::forbidden(error_type, message);
    match refusal {
        Refusal::UnknownIdentifier => forbidden(
            "Extension.UnknownExtensionIdentifier",
            "Unknown extension identifier".into(),
        ),
        Refusal::InvalidState(message) => forbidden("Extension.InvalidExtensionState", message),
        Refusal::RegistrationClosed => forbidden(
            "Extension.RegistrationClosed",
            "Extension registration is closed".into(),
        ),
        Refusal::TooMany => forbidden(
            "Extension.TooManyExtensions",
            format!("Extension limit ({}) reached", wire::MAX_EXTENSIONS),
        ),
        Refusal::ShutdownForInternal => forbidden(
            "Extension.InvalidEventType",
            "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension".into(),
        ),
        Refusal::SubscriptionClosed(api) => forbidden(
            api.closed_error_type(),
            format!("{} subscription is closed", api.name()),
        ),
    }
}

/// Handles one Extensions API request.
pub async fn handle(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
) -> Response<Full<Bytes>> {
    match call(request, commands).await {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

async fn call(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(body).await?;
    let call = parse(&parts.method, parts.uri.path(), &parts.headers, &body)?;
    match call {
        Call::Register(registration) => {
            let account_id = registration.account_id;
            let registered = ask(&commands, |reply| ExtensionRequest::Register {
                registration,
                reply,
            })
            .await?;
            Ok(render_registered(&registered, account_id))
        }
        Call::Next { id } => {
            let event = ask(&commands, |reply| ExtensionRequest::Next { id, reply }).await?;
            Ok(render_event(&event))
        }
        Call::Error {
            id,
            kind,
            error_type,
        } => {
            ask(&commands, |reply| ExtensionRequest::Error {
                id,
                kind,
                error_type,
                reply,
            })
            .await?;
            Ok(wire::accepted())
        }
    }
}

/// Reads a request body whole (up to [`MAX_BODY`]).
pub async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| {
            ApiError::forbidden(
                "InvalidRequestFormat",
                format!("cannot read the request body: {e}"),
            )
        })
}

/// Sends a request to the supervisor and waits for its answer.
pub async fn ask<T>(
    commands: &mpsc::UnboundedSender<Command>,
    request: impl FnOnce(oneshot::Sender<Result<T, Refusal>>) -> ExtensionRequest,
) -> Result<T, ApiError> {
    let (reply, answer) = oneshot::channel();
    let unavailable = || ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error_type: "InternalServerError",
        message: "Internal Server Error".into(),
    };
    commands
        .send(Command::Extension(request(reply)))
        .map_err(|_| unavailable())?;
    match answer.await {
        Ok(result) => result.map_err(refused),
        Err(_) => Err(unavailable()),
    }
}

/// 200 with the identifier header and the function's identity.
pub fn render_registered(registered: &Registered, account_id: bool) -> Response<Full<Bytes>> {
    let mut response = wire::json(
        StatusCode::OK,
        &RegisterResponse {
            function_name: &registered.function_name,
            function_version: "$LATEST",
            handler: &registered.handler,
            account_id: account_id.then_some(registered.account_id.as_str()),
        },
    );
    if let Ok(id) = HeaderValue::from_str(&registered.id) {
        response
            .headers_mut()
            .insert(wire::EXTENSION_IDENTIFIER, id);
    }
    response
}

/// 200 with the event; INVOKE also carries an event identifier, as RAPID sends it.
pub fn render_event(event: &ExtensionEvent) -> Response<Full<Bytes>> {
    let mut response = wire::json(StatusCode::OK, event);
    if matches!(event, ExtensionEvent::Invoke { .. }) {
        if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            response
                .headers_mut()
                .insert(wire::EXTENSION_EVENT_IDENTIFIER, id);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    fn register(pairs: &[(&'static str, &str)], body: &str) -> Result<Call, ApiError> {
        parse(
            &Method::POST,
            "/2020-01-01/extension/register",
            &headers(pairs),
            body.as_bytes(),
        )
    }

    #[test]
    fn register_reads_the_name_events_and_features() {
        let call = register(
            &[
                (wire::EXTENSION_NAME, "logger"),
                (wire::EXTENSION_ACCEPT_FEATURE, "accountId"),
            ],
            r#"{"events":["INVOKE","SHUTDOWN"]}"#,
        )
        .unwrap();
        assert_eq!(
            call,
            Call::Register(Registration {
                name: "logger".into(),
                events: Events {
                    invoke: true,
                    shutdown: true
                },
                account_id: true,
            })
        );
        let Call::Register(plain) = register(&[(wire::EXTENSION_NAME, "x")], "{}").unwrap() else {
            panic!("not a register call");
        };
        assert_eq!(plain.events, Events::default());
        assert!(!plain.account_id);
    }

    #[test]
    fn register_errors_are_403_with_raps_error_types() {
        let name = (wire::EXTENSION_NAME, "x");
        for (pairs, body, error_type) in [
            (vec![], "{}", "Extension.InvalidExtensionName"),
            (
                vec![(wire::EXTENSION_NAME, "")],
                "{}",
                "Extension.InvalidExtensionName",
            ),
            (vec![name], "", "InvalidRequestFormat"),
            (
                vec![name],
                r#"{"configurationKeys":["a"]}"#,
                "InvalidRequestFormat",
            ),
            (
                vec![name],
                r#"{"events":["START"]}"#,
                "Extension.InvalidEventType",
            ),
        ] {
            let err = register(&pairs, body).unwrap_err();
            assert_eq!(err.status, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(err.error_type, error_type, "{body}");
        }
    }

    #[test]
    fn next_and_errors_need_a_uuid_identifier() {
        let next = |pairs: &[(&'static str, &str)]| {
            parse(
                &Method::GET,
                "/2020-01-01/extension/event/next",
                &headers(pairs),
                b"",
            )
        };
        assert_eq!(
            next(&[(wire::EXTENSION_IDENTIFIER, ID)]).unwrap(),
            Call::Next { id: ID.into() }
        );
        assert_eq!(
            next(&[]).unwrap_err().error_type,
            "Extension.MissingExtensionIdentifier"
        );
        assert_eq!(
            next(&[(wire::EXTENSION_IDENTIFIER, "nope")])
                .unwrap_err()
                .error_type,
            "Extension.InvalidExtensionIdentifier"
        );
        let error = |pairs: &[(&'static str, &str)]| {
            parse(
                &Method::POST,
                "/2020-01-01/extension/exit/error",
                &headers(pairs),
                b"",
            )
        };
        assert_eq!(
            error(&[(wire::EXTENSION_IDENTIFIER, ID)])
                .unwrap_err()
                .error_type,
            "Extension.MissingHeader"
        );
        assert_eq!(
            error(&[
                (wire::EXTENSION_IDENTIFIER, ID),
                (wire::EXTENSION_ERROR_TYPE, "Extension.Boom")
            ])
            .unwrap(),
            Call::Error {
                id: ID.into(),
                kind: ErrorKind::Exit,
                error_type: "Extension.Boom".into()
            }
        );
        let unknown = parse(
            &Method::GET,
            "/2020-01-01/extension/other",
            &headers(&[]),
            b"",
        );
        assert_eq!(unknown.unwrap_err().status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn events_have_the_shape_the_rust_crate_reads() {
        let invoke = ExtensionEvent::Invoke {
            deadline_ms: 1_596_036_700_000,
            request_id: ID.into(),
            invoked_function_arn: "arn:aws:lambda:us-east-1:012345678912:function:f".into(),
            tracing: Tracing::amzn("Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700".into()),
        };
        let value = serde_json::to_value(&invoke).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"eventType": "INVOKE", "deadlineMs": 1_596_036_700_000u64,
                "requestId": ID, "invokedFunctionArn": "arn:aws:lambda:us-east-1:012345678912:function:f",
                "tracing": {"type": "X-Amzn-Trace-Id", "value": "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700"}})
        );
        let shutdown = ExtensionEvent::Shutdown {
            shutdown_reason: "spindown",
            deadline_ms: 7,
        };
        let response = render_event(&shutdown);
        assert!(response
            .headers()
            .get(wire::EXTENSION_EVENT_IDENTIFIER)
            .is_none());
        assert!(render_event(&invoke)
            .headers()
            .contains_key(wire::EXTENSION_EVENT_IDENTIFIER));
        // The crate's own types accept both.
        for event in [invoke, shutdown] {
            let bytes = serde_json::to_vec(&event).unwrap();
            serde_json::from_slice::<lambda_extension::NextEvent>(&bytes).unwrap();
        }
    }
}
