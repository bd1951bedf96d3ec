//! Extensions and telemetry as a Lambda user sees them, through `runlambda run --layer`: the
//! unmodified `lambda-extension`-crate example receives INVOKE for each invocation, telemetry
//! records, and SHUTDOWN with Lambda's reasons; a small standard-library Python extension
//! checks the Extensions API's wire errors and what an extension crash does to the caller.
//!
//! Extensions write their observations to their stdout (`EXTENSION_LOG=/dev/stdout` for the
//! Rust example), which the environment's log — `run`'s stdout — carries.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::lambda::{extension_layer, header, python_function, Server};
use common::{eventually, Env};
use serde_json::Value;

/// See tests/lambda_run.rs: lets environments run where no memory controller exists.
const HYBRID_OK: &str = "allow_unenforced_memory = true";

/// A standard-library extension. It registers under its file name for INVOKE and SHUTDOWN and
/// prints `EVENT <type> <requestId|shutdownReason>` per event. With `EXT_MODE=wire` it first
/// makes calls the API must refuse and prints `RESULT <call> <status> <errorType>` for each,
/// and tries to register during each invocation; with `EXT_MODE=crash` it exits on INVOKE.
const PYTHON_EXTENSION: &str = r#"#!/usr/bin/env python3
import http.client, json, os, sys

API = os.environ["AWS_LAMBDA_RUNTIME_API"]
NAME = os.path.basename(sys.argv[0])
MODE = os.environ.get("EXT_MODE", "wire")
UNKNOWN = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"

def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data

def result(name, answer):
    status, _, data = answer
    try:
        error = json.loads(data).get("errorType", "-")
    except Exception:
        error = "-"
    print(f"RESULT {name} {status} {error}", flush=True)

def register(name, events):
    body = json.dumps({"events": events})
    return call("POST", "/2020-01-01/extension/register", body, {"Lambda-Extension-Name": name})

answer = register(NAME, ["INVOKE", "SHUTDOWN"])
result("register", answer)
ident = answer[1]["lambda-extension-identifier"]
if MODE == "wire":
    result("register-again", register(NAME, ["INVOKE"]))
    result("next-without-identifier", call("GET", "/2020-01-01/extension/event/next"))
    result("next-unknown-identifier", call("GET", "/2020-01-01/extension/event/next",
                                           headers={"Lambda-Extension-Identifier": UNKNOWN}))
    result("next-bad-identifier", call("GET", "/2020-01-01/extension/event/next",
                                       headers={"Lambda-Extension-Identifier": "nope"}))
    subscription = {"schemaVersion": "2022-07-01", "types": ["platform"],
                    "buffering": {"maxItems": 5},
                    "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9009"}}
    result("subscribe-bad-buffering", call("PUT", "/2022-07-01/telemetry", json.dumps(subscription),
                                           {"Lambda-Extension-Identifier": ident}))
while True:
    _, _, data = call("GET", "/2020-01-01/extension/event/next",
                      headers={"Lambda-Extension-Identifier": ident})
    event = json.loads(data)
    detail = event.get("requestId") or event.get("shutdownReason")
    print(f"EVENT {event['eventType']} {detail} deadline={type(event['deadlineMs']).__name__}",
          flush=True)
    if event["eventType"] == "SHUTDOWN":
        sys.exit(0)
    if MODE == "wire":
        result("register-after-init", register("latecomer", []))
    if MODE == "crash":
        sys.exit(3)
"#;

/// Makes a directory readable by the sandbox user, as Lambda's unzip does.
fn readable(dir: PathBuf) -> PathBuf {
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Adds the Python extension to `layer` as `extensions/py_ext`.
fn add_python_extension(layer: &Path) {
    let path = layer.join("extensions/py_ext");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, PYTHON_EXTENSION).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A layer with only the Python extension.
fn python_layer(dir: &Path) -> PathBuf {
    let layer = dir.join("python-layer");
    add_python_extension(&layer);
    layer
}

fn start(env: &Env, layer: &Path, extra: &[&str]) -> Server {
    let function = readable(python_function(env.dir.path()));
    let mut cmd = env.command(&[
        "run",
        function.to_str().unwrap(),
        "--layer",
        layer.to_str().unwrap(),
        "--env",
        "EXTENSION_LOG=/dev/stdout",
    ]);
    cmd.args(extra);
    Server::spawn(cmd)
}

fn json_body(response: &common::lambda::Response) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()))
}

fn request_id(response: &common::lambda::Response) -> String {
    header(response, "x-amzn-requestid")
        .expect("x-amzn-requestid")
        .to_string()
}

#[test]
fn the_rust_extension_gets_invoke_for_each_invocation_and_spindown_at_ctrl_c() {
    let env = Env::with_config(HYBRID_OK);
    let layer = extension_layer(env.dir.path());
    let mut server = start(&env, &layer, &[]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let response = server.invoke("python-echo", format!("{{\"n\":{i}}}").as_bytes(), &[]);
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(json_body(&response)["echo"]["n"], i);
        ids.push(request_id(&response));
    }
    assert_eq!(server.stop().code(), Some(0), "Ctrl-C exits 0");
    let log = server.stdout();
    for id in &ids {
        assert_eq!(
            log.matches(&format!("INVOKE {id}")).count(),
            1,
            "{id}:\n{log}"
        );
    }
    assert_eq!(log.matches("SHUTDOWN spindown").count(), 1, "{log}");
    assert_eq!(log.matches("Init Duration: ").count(), 1, "{log}");
}

#[test]
fn the_rust_extension_receives_platform_and_function_telemetry() {
    let env = Env::with_config(HYBRID_OK);
    let layer = extension_layer(env.dir.path());
    let mut server = start(&env, &layer, &[]);
    for _ in 0..2 {
        let response = server.invoke("python-echo", br#"{"print":"hello-telemetry"}"#, &[]);
        assert_eq!(response.status, 200, "{}", response.text());
    }
    assert_eq!(server.stop().code(), Some(0));
    let log = server.stdout();
    // A record the crate cannot parse makes it drop the whole batch: each type present proves
    // the schema of its records.
    for kind in [
        "platform.initStart",
        "platform.initRuntimeDone",
        "platform.initReport",
        "platform.telemetrySubscription",
        "platform.extension",
        "platform.start",
        "platform.runtimeDone",
        "platform.report",
        "function",
    ] {
        assert!(
            log.contains(&format!("TELEMETRY {kind}\n")),
            "TELEMETRY {kind} missing:\n{log}"
        );
    }
    assert_eq!(
        log.matches("TELEMETRY platform.start\n").count(),
        2,
        "{log}"
    );
}

#[test]
fn a_timeout_gives_extensions_shutdown_timeout_and_the_next_init_relaunches_them() {
    let env = Env::with_config(HYBRID_OK);
    let layer = extension_layer(env.dir.path());
    // A whole CPU (1,769 MB), so that the second Init, which counts against the second
    // invocation's 1 s, is not starved by Lambda's CPU share of a small function.
    let mut server = start(&env, &layer, &["--timeout", "1", "--memory", "1769"]);
    let response = server.invoke("python-echo", br#"{"sleep":30}"#, &[]);
    assert_eq!(json_body(&response)["errorType"], "Sandbox.Timedout");
    eventually(Duration::from_secs(10), "SHUTDOWN timeout", || {
        server.stdout().contains("SHUTDOWN timeout")
    });
    let again = server.invoke("python-echo", b"{}", &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    let id = request_id(&again);
    assert_eq!(server.stop().code(), Some(0));
    let log = server.stdout();
    assert!(log.contains(&format!("INVOKE {id}")), "{log}");
    assert!(log.contains("SHUTDOWN spindown"), "{log}");
}

#[test]
fn the_extensions_api_refuses_bad_calls_with_lambdas_error_types() {
    let env = Env::with_config(HYBRID_OK);
    let layer = python_layer(env.dir.path());
    let mut server = start(&env, &layer, &["--env", "EXT_MODE=wire"]);
    let response = server.invoke("python-echo", b"{}", &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    let id = request_id(&response);
    assert_eq!(server.stop().code(), Some(0));
    let log = server.stdout();
    for line in [
        "RESULT register 200 -".to_string(),
        "RESULT register-again 403 Extension.InvalidExtensionState".into(),
        "RESULT next-without-identifier 403 Extension.MissingExtensionIdentifier".into(),
        "RESULT next-unknown-identifier 403 Extension.UnknownExtensionIdentifier".into(),
        "RESULT next-bad-identifier 403 Extension.InvalidExtensionIdentifier".into(),
        "RESULT subscribe-bad-buffering 400 ValidationError".into(),
        format!("EVENT INVOKE {id} deadline=int"),
        "RESULT register-after-init 403 Extension.RegistrationClosed".into(),
        "EVENT SHUTDOWN spindown deadline=int".into(),
    ] {
        assert!(log.contains(&line), "{line:?} missing:\n{log}");
    }
}

#[test]
fn an_extension_that_exits_mid_invoke_is_an_extension_crash_and_the_survivors_get_failure() {
    let env = Env::with_config(HYBRID_OK);
    let layer = extension_layer(env.dir.path());
    add_python_extension(&layer);
    let server = start(
        &env,
        &layer,
        &["--env", "EXT_MODE=crash", "--timeout", "10"],
    );
    // The function takes its time, so the crash comes before its answer.
    let response = server.invoke("python-echo", br#"{"sleep":3}"#, &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(header(&response, "x-amz-function-error"), Some("Unhandled"));
    let body = json_body(&response);
    assert_eq!(body["errorType"], "Extension.Crash", "{body}");
    assert!(
        body["errorMessage"].as_str().unwrap().contains("py_ext"),
        "{body}"
    );
    eventually(Duration::from_secs(10), "SHUTDOWN failure", || {
        server.stdout().contains("SHUTDOWN failure")
    });
}

/// What the Python scripts below run after: `call(method, path, body, headers)` on the API at
/// `AWS_LAMBDA_RUNTIME_API`, returning the status, the headers and the body.
const PY_API_CLIENT: &str = r#"#!/usr/bin/env python3
import http.client, json, os, socket, sys, threading

API = os.environ["AWS_LAMBDA_RUNTIME_API"]

def call(method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.headers, response.read()
"#;

/// A standard-library extension (after [`PY_API_CLIENT`]) that subscribes to the Telemetry API
/// over TCP and prints `TCP <type>` for each line it receives (`TCP not-json` for a line that
/// is not one JSON event).
const TCP_EXTENSION: &str = r#"
def receive(listener):
    while True:
        connection, _ = listener.accept()
        for line in connection.makefile("rb"):
            try:
                print("TCP", json.loads(line)["type"], flush=True)
            except ValueError:
                print("TCP not-json", flush=True)

listener = socket.create_server(("127.0.0.1", 9010))
threading.Thread(target=receive, args=(listener,), daemon=True).start()
body = json.dumps({"events": ["INVOKE", "SHUTDOWN"]})
_, headers, _ = call("POST", "/2020-01-01/extension/register", body,
                     {"Lambda-Extension-Name": os.path.basename(sys.argv[0])})
ident = headers["Lambda-Extension-Identifier"]
subscription = {"schemaVersion": "2022-12-13", "types": ["platform", "function"],
                "buffering": {"timeoutMs": 25},
                "destination": {"protocol": "TCP", "port": 9010}}
status, _, _ = call("PUT", "/2022-07-01/telemetry", json.dumps(subscription),
                    {"Lambda-Extension-Identifier": ident})
print("SUBSCRIBED", status, flush=True)
while True:
    _, _, data = call("GET", "/2020-01-01/extension/event/next",
                      headers={"Lambda-Extension-Identifier": ident})
    if json.loads(data)["eventType"] == "SHUTDOWN":
        sys.exit(0)
"#;

#[test]
fn a_tcp_subscriber_receives_telemetry_as_one_json_event_per_line() {
    let env = Env::with_config(HYBRID_OK);
    let layer = env.dir.path().join("tcp-layer");
    let path = layer.join("extensions/tcp_ext");
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, format!("{PY_API_CLIENT}{TCP_EXTENSION}")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    // Thawed after the invocations, the subscriber can read what is delivered to it then.
    let mut server = start(&env, &layer, &["--freeze-delay-ms", "60000"]);
    for _ in 0..2 {
        let response = server.invoke("python-echo", br#"{"print":"hello-tcp"}"#, &[]);
        assert_eq!(response.status, 200, "{}", response.text());
    }
    let reports = || server.stdout().matches("TCP platform.report\n").count();
    let waited = std::time::Instant::now();
    while reports() < 2 && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(reports(), 2, "{}", server.stdout());
    assert_eq!(server.stop().code(), Some(0));
    let log = server.stdout();
    assert!(log.contains("SUBSCRIBED 200"), "{log}");
    for kind in [
        "platform.initStart",
        "platform.telemetrySubscription",
        "platform.start",
        "platform.runtimeDone",
        "function",
    ] {
        assert!(log.contains(&format!("TCP {kind}\n")), "{kind}:\n{log}");
    }
    assert_eq!(log.matches("TCP platform.start\n").count(), 2, "{log}");
    assert!(!log.contains("TCP not-json"), "{log}");
}

/// A runtime (after [`PY_API_CLIENT`]) that answers each invocation with what the Extensions,
/// Telemetry and Logs APIs answered it: `[status, body length]` per API.
const API_PROBE: &str = r#"
while True:
    _, headers, _ = call("GET", "/2018-06-01/runtime/invocation/next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    answers = {
        "register": call("POST", "/2020-01-01/extension/register", b'{"events":[]}',
                         {"Lambda-Extension-Name": "internal"}),
        "telemetry": call("PUT", "/2022-07-01/telemetry", b"{}"),
        "logs": call("PUT", "/2020-08-15/logs", b"{}"),
    }
    body = {name: [status, len(data)] for name, (status, _, data) in answers.items()}
    call("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps(body))
"#;

#[test]
fn the_kill_switch_file_disables_extensions_and_their_apis() {
    let env = Env::with_config(HYBRID_OK);
    let layer = python_layer(env.dir.path());
    fs::write(layer.join("disable-extensions-jwigqn8j"), b"").unwrap();
    let function = env.dir.path().join("probe");
    fs::create_dir(&function).unwrap();
    let function = readable(function);
    fs::write(
        function.join("bootstrap"),
        format!("{PY_API_CLIENT}{API_PROBE}"),
    )
    .unwrap();
    fs::set_permissions(
        function.join("bootstrap"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = env.command(&[
        "run",
        function.to_str().unwrap(),
        "--layer",
        layer.to_str().unwrap(),
    ]);
    cmd.args(["--env", "EXT_MODE=wire"]);
    let mut server = Server::spawn(cmd);
    let response = server.invoke("probe", b"{}", &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        json_body(&response),
        serde_json::json!({"register": [404, 0], "telemetry": [404, 0], "logs": [404, 0]})
    );
    assert_eq!(server.stop().code(), Some(0));
    let log = server.stdout();
    assert!(
        !log.contains("RESULT register"),
        "the extension ran:\n{log}"
    );
}
