//! The Telemetry API (2022-07-01) and the Logs API (2020-08-15): the subscribe request with
//! its validation (400 errors that name the field), and the records delivered to subscribers,
//! shaped so that the `lambda-extension` crate's strict parser accepts every one.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::extensions::{ask, identifier, read_body};
use super::wire::{self, ApiError};
use crate::supervisor::extensions::ExtensionRequest;
use crate::supervisor::Command;

/// Schema versions the Telemetry API accepts.
const TELEMETRY_SCHEMAS: &[&str] = &["2022-07-01", "2022-12-13", "2025-01-29"];
/// Schema versions the Logs API accepts; the second adds `platform.runtimeDone`.
const LOGS_SCHEMAS: &[&str] = &["2020-08-15", "2021-03-18"];
/// The Runtime API's port, which no subscriber may use.
const RESERVED_PORT: u16 = 9001;

/// Which of the two APIs a subscription came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Telemetry,
    Logs,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry API",
            Api::Logs => "Logs API",
        }
    }

    fn validation_error_type(self) -> &'static str {
        match self {
            Api::Telemetry => "ValidationError",
            Api::Logs => "Logs.ValidationError",
        }
    }

    pub fn closed_error_type(self) -> &'static str {
        match self {
            Api::Telemetry => "Telemetry.SubscriptionClosed",
            Api::Logs => "Logs.SubscriptionClosed",
        }
    }
}

/// The record types a subscriber wants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Types {
    pub platform: bool,
    pub function: bool,
    pub extension: bool,
}

impl Types {
    pub fn names(self) -> Vec<String> {
        [
            (self.platform, "platform"),
            (self.function, "function"),
            (self.extension, "extension"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| name.to_string())
        .collect()
    }
}

/// How a subscriber's records are batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffering {
    pub max_items: u32,
    pub max_bytes: u32,
    pub timeout_ms: u32,
}

impl Default for Buffering {
    fn default() -> Self {
        Self {
            max_items: 10_000,
            max_bytes: 262_144,
            timeout_ms: 1_000,
        }
    }
}

/// A subscribe request, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub api: Api,
    pub schema_version: String,
    pub types: Types,
    pub buffering: Buffering,
    /// The subscriber's port on 127.0.0.1 inside the environment (`sandbox.localdomain`).
    pub port: u16,
    pub transport: Transport,
}

/// How a subscriber takes its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A POST of a JSON array per batch to `path` (`/` when the URI has none).
    Http { path: String },
    /// One JSON event per line (NDJSON) over a TCP connection.
    Tcp,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    schema_version: Option<String>,
    types: Option<Vec<String>>,
    buffering: Option<BufferingBody>,
    destination: Option<Destination>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BufferingBody {
    max_items: Option<u32>,
    max_bytes: Option<u32>,
    timeout_ms: Option<u32>,
}

#[derive(Deserialize)]
struct Destination {
    protocol: Option<String>,
    #[serde(rename = "URI")]
    uri: Option<String>,
    /// Wider than a port, so that an out-of-range one is a validation error, not a parse error.
    port: Option<u64>,
}

/// Checks a subscribe body.
pub fn parse_subscription(api: Api, body: &[u8]) -> Result<Subscription, ApiError> {
    let invalid = |message: String| ApiError::bad_request(api.validation_error_type(), message);
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("cannot parse the subscription: {e}")))?;
    let schema_version = match (api, body.schema_version) {
        (Api::Logs, None) => LOGS_SCHEMAS[0].to_string(),
        (Api::Telemetry, None) => return Err(invalid("schemaVersion is required".into())),
        (_, Some(version)) => version,
    };
    let known = match api {
        Api::Telemetry => TELEMETRY_SCHEMAS,
        Api::Logs => LOGS_SCHEMAS,
    };
    if !known.contains(&schema_version.as_str()) {
        return Err(invalid(format!(
            "schemaVersion {schema_version:?} is not one of {}",
            known.join(", ")
        )));
    }
    let mut types = Types::default();
    for kind in body.types.unwrap_or_default() {
        match kind.as_str() {
            "platform" => types.platform = true,
            "function" => types.function = true,
            "extension" => types.extension = true,
            other => {
                return Err(invalid(format!(
                    "types: {other:?} is not one of platform, function, extension"
                )))
            }
        }
    }
    if types == Types::default() {
        return Err(invalid("types should not be empty".into()));
    }
    let defaults = Buffering::default();
    let buffering = match body.buffering {
        None => defaults,
        Some(b) => Buffering {
            max_items: within(b.max_items, defaults.max_items, "maxItems", 1_000, 10_000)
                .map_err(invalid)?,
            max_bytes: within(
                b.max_bytes,
                defaults.max_bytes,
                "maxBytes",
                262_144,
                1_048_576,
            )
            .map_err(invalid)?,
            timeout_ms: within(b.timeout_ms, defaults.timeout_ms, "timeoutMs", 25, 30_000)
                .map_err(invalid)?,
        },
    };
    let destination = body
        .destination
        .ok_or_else(|| invalid("destination is required".into()))?;
    let (port, transport) = match destination.protocol.as_deref() {
        Some("HTTP") => {
            let uri = destination
                .uri
                .ok_or_else(|| invalid("destination.URI is required".into()))?;
            let (port, path) = parse_uri(&uri).map_err(invalid)?;
            (port, Transport::Http { path })
        }
        Some("TCP") => {
            let port = destination
                .port
                .ok_or_else(|| invalid("destination.port is required".into()))?;
            (check_port(port).map_err(invalid)?, Transport::Tcp)
        }
        Some(other) => {
            return Err(invalid(format!(
                "destination.protocol {other:?} is not one of HTTP, TCP"
            )))
        }
        None => return Err(invalid("destination.protocol is required".into())),
    };
    Ok(Subscription {
        api,
        schema_version,
        types,
        buffering,
        port,
        transport,
    })
}

fn within(value: Option<u32>, default: u32, name: &str, min: u32, max: u32) -> Result<u32, String> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("buffering.{name} {value} is outside {min}..={max}"))
    }
}

/// `http://sandbox.localdomain:<port>[/path]` (or `sandbox`) → the port and the path.
fn parse_uri(uri: &str) -> Result<(u16, String), String> {
    let bad = |why: &str| format!("destination.URI {uri:?}: {why}");
    let rest = uri
        .strip_prefix("http://")
        .ok_or_else(|| bad("the scheme must be http"))?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| bad("URI port is not provided"))?;
    if !matches!(host, "sandbox.localdomain" | "sandbox") {
        return Err(bad("the host must be sandbox.localdomain"));
    }
    let port = port
        .parse()
        .map_err(|_| bad("the port is not a port number"))
        .and_then(|port| {
            check_port(port).map_err(|why| format!("destination.URI {uri:?}: {why}"))
        })?;
    Ok((port, path.to_string()))
}

/// A subscriber's port: 1 to 65535, and not the Runtime API's.
fn check_port(port: u64) -> Result<u16, String> {
    match u16::try_from(port) {
        Ok(RESERVED_PORT) => Err("port 9001 is reserved for the Runtime API".into()),
        Ok(port) if port != 0 => Ok(port),
        _ => Err(format!("destination.port {port} is not a port number")),
    }
}

/// Handles `PUT /2022-07-01/telemetry` and `PUT /2020-08-15/logs`.
pub async fn handle(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
) -> Response<Full<Bytes>> {
    match subscribe(request, commands).await {
        Ok(response) => response,
        Err(error) => error.response(),
    }
}

async fn subscribe(
    request: Request<Incoming>,
    commands: mpsc::UnboundedSender<Command>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let api = match request.uri().path() {
        wire::TELEMETRY_PATH => Api::Telemetry,
        _ => Api::Logs,
    };
    if request.method() != Method::PUT {
        return Err(ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error_type: "InvalidRequest",
            message: format!("{} is not supported here: use PUT", request.method()),
        });
    }
    let id = identifier(request.headers())?;
    let body = read_body(request.into_body()).await?;
    let subscription = parse_subscription(api, &body)?;
    ask(&commands, |reply| ExtensionRequest::Subscribe {
        id,
        subscription,
        reply,
    })
    .await?;
    Ok(wire::json(StatusCode::OK, &"OK"))
}

/// One delivered item: when the platform made it, and what it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    #[serde(flatten)]
    pub record: Record,
}

/// `status` of runtimeDone, report and init records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Success,
    Error,
    Failure,
    Timeout,
}

/// A record, tagged with its `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "record")]
pub enum Record {
    #[serde(rename = "platform.initStart", rename_all = "camelCase")]
    InitStart {
        initialization_type: &'static str,
        phase: &'static str,
        function_name: String,
        function_version: &'static str,
    },
    #[serde(rename = "platform.initRuntimeDone", rename_all = "camelCase")]
    InitRuntimeDone {
        initialization_type: &'static str,
        phase: &'static str,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
    },
    #[serde(rename = "platform.initReport", rename_all = "camelCase")]
    InitReport {
        initialization_type: &'static str,
        phase: &'static str,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        metrics: InitMetrics,
    },
    #[serde(rename = "platform.start", rename_all = "camelCase")]
    Start {
        request_id: String,
        version: &'static str,
        tracing: TraceContext,
    },
    #[serde(rename = "platform.runtimeDone", rename_all = "camelCase")]
    RuntimeDone {
        request_id: String,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        metrics: RuntimeDoneMetrics,
    },
    #[serde(rename = "platform.report", rename_all = "camelCase")]
    Report {
        request_id: String,
        status: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_type: Option<String>,
        metrics: ReportMetrics,
    },
    /// Logs API only: the end of an invocation, before its report.
    #[serde(rename = "platform.end", rename_all = "camelCase")]
    End { request_id: String },
    #[serde(rename = "platform.extension", rename_all = "camelCase")]
    Extension {
        name: String,
        state: &'static str,
        events: Vec<String>,
    },
    #[serde(rename = "platform.telemetrySubscription", rename_all = "camelCase")]
    TelemetrySubscription {
        name: String,
        state: &'static str,
        types: Vec<String>,
    },
    /// Logs API only.
    #[serde(rename = "platform.logsSubscription", rename_all = "camelCase")]
    LogsSubscription {
        name: String,
        state: &'static str,
        types: Vec<String>,
    },
    #[serde(rename = "platform.logsDropped", rename_all = "camelCase")]
    LogsDropped {
        reason: &'static str,
        dropped_records: u64,
        dropped_bytes: u64,
    },
    /// A line the runtime wrote.
    #[serde(rename = "function")]
    Function(String),
    /// A line an extension wrote.
    #[serde(rename = "extension")]
    ExtensionLog(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitMetrics {
    pub duration_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDoneMetrics {
    pub duration_ms: f64,
    pub produced_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportMetrics {
    pub duration_ms: f64,
    pub billed_duration_ms: u64,
    #[serde(rename = "memorySizeMB")]
    pub memory_size_mb: u64,
    #[serde(rename = "maxMemoryUsedMB")]
    pub max_memory_used_mb: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_duration_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceContext {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

impl Record {
    /// Which subscription type the record belongs to.
    fn kind(&self) -> &'static str {
        match self {
            Record::Function(_) => "function",
            Record::ExtensionLog(_) => "extension",
            _ => "platform",
        }
    }

    /// Whether a subscriber with these types wants the record.
    pub fn wanted_by(&self, types: Types) -> bool {
        match self.kind() {
            "function" => types.function,
            "extension" => types.extension,
            _ => types.platform,
        }
    }

    /// What a subscriber of `api` at `schema_version` receives for this record: the Telemetry
    /// API takes it as it is (less the Logs API's own records); the Logs API has no init
    /// records, ends an invocation with `platform.end` before the report, and knows
    /// `platform.runtimeDone` only from schema 2021-03-18 on.
    pub fn for_api(&self, api: Api, schema_version: &str) -> Vec<Record> {
        match (api, self) {
            (Api::Telemetry, Record::End { .. } | Record::LogsSubscription { .. }) => vec![],
            (Api::Telemetry, record) => vec![record.clone()],
            (
                Api::Logs,
                Record::InitStart { .. }
                | Record::InitRuntimeDone { .. }
                | Record::InitReport { .. }
                | Record::TelemetrySubscription { .. },
            ) => vec![],
            (Api::Logs, Record::RuntimeDone { .. }) if schema_version == LOGS_SCHEMAS[0] => {
                vec![]
            }
            (Api::Logs, Record::Report { request_id, .. }) => vec![
                Record::End {
                    request_id: request_id.clone(),
                },
                self.clone(),
            ],
            (Api::Logs, record) => vec![record.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    fn subscribe(value: serde_json::Value) -> Result<Subscription, ApiError> {
        parse_subscription(Api::Telemetry, &body(value))
    }

    #[test]
    fn a_subscription_reads_port_path_types_and_buffering() {
        let s = subscribe(serde_json::json!({
            "schemaVersion": "2022-12-13",
            "types": ["platform", "function"],
            "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9003/in"}
        }))
        .unwrap();
        assert_eq!(s.port, 9003);
        assert_eq!(s.transport, Transport::Http { path: "/in".into() });
        assert_eq!(s.types.names(), ["platform", "function"]);
        assert_eq!(s.buffering.timeout_ms, 25);
        let s = subscribe(serde_json::json!({
            "schemaVersion": "2025-01-29", "types": ["extension"],
            "destination": {"protocol": "HTTP", "URI": "http://sandbox:8080"}
        }))
        .unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.transport, Transport::Http { path: "/".into() });
        assert_eq!(s.buffering, Buffering::default());
    }

    #[test]
    fn validation_errors_are_400_and_name_the_field() {
        let good = serde_json::json!({
            "schemaVersion": "2022-07-01", "types": ["platform"],
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9003"}
        });
        let with = |pointer: &str, value: serde_json::Value| {
            let mut body = good.clone();
            *body.pointer_mut(pointer).unwrap() = value;
            body
        };
        let mut no_schema = good.clone();
        no_schema.as_object_mut().unwrap().remove("schemaVersion");
        let mut buffered = good.clone();
        buffered["buffering"] = serde_json::json!({"maxItems": 10});
        let mut slow = good.clone();
        slow["buffering"] = serde_json::json!({"timeoutMs": 30001});
        let mut big = good.clone();
        big["buffering"] = serde_json::json!({"maxBytes": 2_000_000});
        for (body, field) in [
            (no_schema, "schemaVersion"),
            (with("/schemaVersion", "2019-01-01".into()), "schemaVersion"),
            (with("/types", serde_json::json!([])), "types"),
            (with("/types", serde_json::json!(["metrics"])), "types"),
            (buffered, "buffering.maxItems"),
            (slow, "buffering.timeoutMs"),
            (big, "buffering.maxBytes"),
            (
                with("/destination/protocol", "UDP".into()),
                "destination.protocol",
            ),
            (
                with("/destination/protocol", "TCP".into()),
                "destination.port",
            ),
            (
                with("/destination/URI", "http://example.com:9003".into()),
                "destination.URI",
            ),
            (
                with("/destination/URI", "http://sandbox.localdomain".into()),
                "destination.URI",
            ),
            (
                with("/destination/URI", "http://sandbox:9001".into()),
                "destination.URI",
            ),
        ] {
            let err = subscribe(body).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{field}");
            assert_eq!(err.error_type, "ValidationError", "{field}");
            assert!(err.message.contains(field), "{field}: {}", err.message);
        }
        let logs = parse_subscription(Api::Logs, &body(serde_json::json!({"types": []})));
        assert_eq!(logs.unwrap_err().error_type, "Logs.ValidationError");
    }

    #[test]
    fn the_logs_api_defaults_its_schema() {
        let s = parse_subscription(
            Api::Logs,
            &body(serde_json::json!({"types": ["platform"],
                "destination": {"protocol": "HTTP", "URI": "http://sandbox:9002"}})),
        )
        .unwrap();
        assert_eq!(s.schema_version, "2020-08-15");
    }

    fn tracing() -> TraceContext {
        TraceContext {
            kind: "X-Amzn-Trace-Id",
            value: "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=0"
                .into(),
        }
    }

    /// One record of every type the supervisor produces.
    fn every_record() -> Vec<Record> {
        let id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_string();
        vec![
            Record::InitStart {
                initialization_type: "on-demand",
                phase: "init",
                function_name: "f".into(),
                function_version: "$LATEST",
            },
            Record::InitRuntimeDone {
                initialization_type: "on-demand",
                phase: "init",
                status: Status::Success,
                error_type: None,
            },
            Record::InitReport {
                initialization_type: "on-demand",
                phase: "invoke",
                status: Status::Error,
                error_type: Some("Runtime.ExitError".into()),
                metrics: InitMetrics { duration_ms: 12.5 },
            },
            Record::Start {
                request_id: id.clone(),
                version: "$LATEST",
                tracing: tracing(),
            },
            Record::RuntimeDone {
                request_id: id.clone(),
                status: Status::Timeout,
                error_type: Some("Sandbox.Timedout".into()),
                metrics: RuntimeDoneMetrics {
                    duration_ms: 3000.25,
                    produced_bytes: 0,
                },
            },
            Record::Report {
                request_id: id.clone(),
                status: Status::Success,
                error_type: None,
                metrics: ReportMetrics {
                    duration_ms: 2.35,
                    billed_duration_ms: 3,
                    memory_size_mb: 128,
                    max_memory_used_mb: 37,
                    init_duration_ms: Some(120.33),
                },
            },
            Record::Extension {
                name: "rust_extension".into(),
                state: "Ready",
                events: vec!["INVOKE".into(), "SHUTDOWN".into()],
            },
            Record::TelemetrySubscription {
                name: "rust_extension".into(),
                state: "Subscribed",
                types: vec!["platform".into()],
            },
            Record::LogsSubscription {
                name: "logger".into(),
                state: "Subscribed",
                types: vec!["function".into()],
            },
            Record::LogsDropped {
                reason: "the subscriber did not accept the records",
                dropped_records: 3,
                dropped_bytes: 300,
            },
            Record::End { request_id: id },
            Record::Function("hello from the function".into()),
            Record::ExtensionLog("hello from an extension".into()),
        ]
    }

    fn batch(api: Api, schema: &str) -> Vec<u8> {
        let events: Vec<Event> = every_record()
            .iter()
            .flat_map(|r| r.for_api(api, schema))
            .map(|record| Event {
                time: "2022-10-12T00:00:15.064Z".into(),
                record,
            })
            .collect();
        serde_json::to_vec(&events).unwrap()
    }

    #[test]
    fn every_telemetry_record_satisfies_the_rust_crates_parser() {
        let bytes = batch(Api::Telemetry, "2022-07-01");
        let parsed: Vec<lambda_extension::LambdaTelemetry> = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| {
                panic!("{e}: {}", String::from_utf8_lossy(&bytes));
            });
        assert_eq!(parsed.len(), every_record().len() - 2);
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value[0]["type"], "platform.initStart");
        assert_eq!(value[0]["record"]["initializationType"], "on-demand");
        assert_eq!(value[5]["record"]["metrics"]["memorySizeMB"], 128);
        assert_eq!(value[5]["record"]["metrics"]["initDurationMs"], 120.33);
        assert_eq!(value[9]["record"], "hello from the function");
    }

    #[test]
    fn every_logs_record_satisfies_the_rust_crates_parser() {
        for schema in LOGS_SCHEMAS {
            let bytes = batch(Api::Logs, schema);
            let parsed: Vec<lambda_extension::LambdaLog> = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
            let runtime_done = parsed.iter().any(|log| {
                matches!(
                    log.record,
                    lambda_extension::LambdaLogRecord::PlatformRuntimeDone { .. }
                )
            });
            assert_eq!(runtime_done, *schema == "2021-03-18");
        }
    }

    #[test]
    fn records_go_to_the_types_asked_for() {
        let functions = Types {
            function: true,
            ..Types::default()
        };
        assert!(Record::Function("x".into()).wanted_by(functions));
        assert!(!Record::ExtensionLog("x".into()).wanted_by(functions));
        assert!(!Record::End {
            request_id: "r".into()
        }
        .wanted_by(functions));
    }
}
