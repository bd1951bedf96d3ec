//! `runlambda run` as a Lambda user sees it: real functions (the stdlib Python runtime client,
//! the Rust `lambda_runtime` crate) in real environments behind the AWS Invoke API, through
//! every lifecycle path: warm invokes with freezing, function errors, a runtime that exits, a
//! timeout, `/tmp` full, the idle Shutdown, concurrency and throttling, Event invocations.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::lambda::{header, python_function, rust_function, KeepAlive, Server};
use common::{cgroup_procs, eventually, unified_mount, Env};
use serde_json::{json, Value};

/// A runtime config that lets Lambda environments run where no memory controller exists (the
/// hybrid development hosts); the pure-v2 tier proves the limit itself.
const HYBRID_OK: &str = "allow_unenforced_memory = true";

/// Makes the function's directory readable by the sandbox user, as Lambda's unzip does.
fn readable(function: PathBuf) -> PathBuf {
    fs::set_permissions(&function, fs::Permissions::from_mode(0o755)).unwrap();
    function
}

/// A function directory `name` whose bootstrap is `source`, readable by the sandbox user.
fn inline_function(env: &Env, name: &str, source: &str) -> PathBuf {
    let function = env.dir.path().join(name);
    fs::create_dir(&function).unwrap();
    fs::write(function.join("bootstrap"), source).unwrap();
    fs::set_permissions(
        function.join("bootstrap"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    readable(function)
}

fn start(env: &Env, function: &Path, extra: &[&str]) -> Server {
    let mut cmd = env.command(&["run", function.to_str().unwrap()]);
    cmd.args(extra);
    Server::spawn(cmd)
}

/// A log tail as Lambda returns it (base64), as text.
fn decoded_log(encoded: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn json_body(response: &common::lambda::Response) -> Value {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", response.text()))
}

/// The leaves of the pool's environments in the cgroup2 hierarchy.
fn leaves(env: &Env) -> Vec<PathBuf> {
    fs::read_dir(unified_mount().join(&env.cgroup_parent))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_echo_invoke_returns_the_event_with_lambdas_headers() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--memory", "256"]);
    let response = server.invoke("python-echo", br#"{"hello":"world"}"#, &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    let body = json_body(&response);
    assert_eq!(body["echo"], json!({"hello": "world"}));
    assert_eq!(body["functionName"], "python-echo");
    assert_eq!(body["memory"], "256");
    let remaining = body["remainingMs"].as_i64().unwrap();
    assert!((1..=3000).contains(&remaining), "remainingMs {remaining}");
    assert_eq!(header(&response, "x-amz-executed-version"), Some("$LATEST"));
    assert_eq!(
        header(&response, "x-amzn-requestid"),
        body["requestId"].as_str()
    );
    assert_eq!(header(&response, "x-amz-function-error"), None);
    // The AWS emulator's name for any function works too.
    assert_eq!(server.invoke("function", b"{}", &[]).status, 200);
    assert_eq!(server.stop().code(), Some(0), "Ctrl-C exits 0");
    let log = server.stdout();
    assert!(log.contains("START RequestId: "), "{log}");
    assert!(log.contains("REPORT RequestId: "), "{log}");
    assert_eq!(
        log.matches("Init Duration: ").count(),
        1,
        "one cold start: {log}"
    );
}

#[test]
fn a_hundred_warm_invokes_share_one_process_and_the_idle_environment_is_frozen() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &[]);
    for i in 0..100 {
        let response = server.invoke("python-echo", format!("{{\"n\":{i}}}").as_bytes(), &[]);
        assert_eq!(response.status, 200, "invoke {i}: {}", response.text());
        assert_eq!(json_body(&response)["echo"]["n"], i);
    }
    let leaves = leaves(&env);
    assert_eq!(leaves.len(), 1, "one environment: {leaves:?}");
    let events = leaves[0].join("cgroup.events");
    eventually(
        Duration::from_secs(5),
        "the idle environment to freeze",
        || fs::read_to_string(&events).is_ok_and(|e| e.contains("frozen 1")),
    );
    // And it thaws for the next one.
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
    server.stop();
    let log = server.stdout();
    assert_eq!(
        log.matches("Init Duration: ").count(),
        1,
        "no second Init: {log}"
    );
    assert_eq!(log.matches("REPORT RequestId: ").count(), 101);
}

#[test]
fn every_process_of_the_environment_runs_in_lambdas_cpu_share() {
    // 128 MB buys 7235 µs of CPU per 100,000. On a hybrid host the CPU limit lives in the v1
    // cpu hierarchy, which the init joins by itself before anything of it runs.
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--memory", "128"]);
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
    let leaves = leaves(&env);
    assert_eq!(leaves.len(), 1, "one environment: {leaves:?}");
    let in_environment = cgroup_procs(&leaves[0]);
    assert_eq!(
        in_environment.len(),
        2,
        "the init and the runtime: {in_environment:?}"
    );
    match common::v1_mount("cpu") {
        Some(cpu) => {
            let leaf = cpu
                .join(&env.cgroup_parent)
                .join(leaves[0].file_name().unwrap());
            let read = |name: &str| fs::read_to_string(leaf.join(name)).unwrap();
            assert_eq!(read("cpu.cfs_quota_us").trim(), "7235");
            assert_eq!(read("cpu.cfs_period_us").trim(), "100000");
            assert_eq!(cgroup_procs(&leaf), in_environment);
        }
        None => {
            let cpu_max = fs::read_to_string(leaves[0].join("cpu.max")).unwrap();
            assert_eq!(cpu_max.trim(), "7235 100000");
        }
    }
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn a_handler_error_is_a_200_with_the_unhandled_header_and_the_error_body() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(&env, &function, &[]);
    let response = server.invoke("python-echo", br#"{"raise":"boom"}"#, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "x-amz-function-error"), Some("Unhandled"));
    let body = json_body(&response);
    assert_eq!(body["errorMessage"], "boom");
    assert_eq!(body["errorType"], "RuntimeError");
    // The same process goes on serving.
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
}

#[test]
fn a_runtime_that_exits_mid_invoke_is_an_exit_error_and_the_next_invoke_reinitialises() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &[]);
    let response = server.invoke("python-echo", br#"{"exit":3}"#, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(header(&response, "x-amz-function-error"), Some("Unhandled"));
    assert_eq!(json_body(&response)["errorType"], "Runtime.ExitError");
    let again = server.invoke("python-echo", br#"{"after":"exit"}"#, &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(json_body(&again)["echo"]["after"], "exit");
    server.stop();
    assert_eq!(server.stdout().matches("Init Duration: ").count(), 2);
}

#[test]
fn a_timeout_is_sandbox_timedout_and_the_next_invoke_reinitialises() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    // A whole CPU, so that the Init inside the second invocation's 1 s is not starved by the
    // CPU share of a 128 MB function.
    let server = start(&env, &function, &["--timeout", "1", "--memory", "1769"]);
    let started = std::time::Instant::now();
    let response = server.invoke("python-echo", br#"{"sleep":30}"#, &[]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout held"
    );
    assert_eq!(header(&response, "x-amz-function-error"), Some("Unhandled"));
    let body = json_body(&response);
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds"),
        "{body}"
    );
    let again = server.invoke("python-echo", b"{}", &[]);
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn writing_past_the_ephemeral_storage_fails_with_enospc_inside_the_function() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(
        &env,
        &function,
        &["--ephemeral-storage", "512", "--timeout", "60"],
    );
    let response = server.invoke("python-echo", br#"{"write_tmp_mb":600}"#, &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    let body = json_body(&response);
    assert_eq!(body["error"], "ENOSPC", "{body}");
    let written = body["written"].as_u64().unwrap();
    assert!(
        written <= 512 << 20 && written > 500 << 20,
        "written {written}"
    );
}

#[test]
fn an_idle_environment_shuts_down_and_leaves_nothing() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--idle-timeout", "1"]);
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
    eventually(
        Duration::from_secs(10),
        "the idle environment to go",
        || leaves(&env).is_empty(),
    );
    // A new environment serves the next invoke.
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
    server.stop();
    assert_eq!(server.stdout().matches("Init Duration: ").count(), 2);
}

#[test]
fn concurrency_4_serves_four_at_once_and_throttles_the_fifth() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(&env, &function, &["--concurrency", "4", "--timeout", "30"]);
    let endpoint = server.endpoint.clone();
    let slow: Vec<_> = (0..4)
        .map(|_| {
            let endpoint = endpoint.clone();
            std::thread::spawn(move || {
                common::lambda::http_request(
                    &endpoint,
                    "POST",
                    "/2015-03-31/functions/python-echo/invocations",
                    br#"{"sleep":3}"#,
                    &[],
                )
                .unwrap()
            })
        })
        .collect();
    eventually(Duration::from_secs(20), "four busy environments", || {
        leaves(&env).len() == 4
    });
    std::thread::sleep(Duration::from_millis(500));
    let fifth = server.invoke("python-echo", b"{}", &[]);
    assert_eq!(fifth.status, 429, "{}", fifth.text());
    assert_eq!(
        header(&fifth, "x-amzn-errortype"),
        Some("TooManyRequestsException")
    );
    for handle in slow {
        let response = handle.join().unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
    }
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
}

#[test]
fn event_invocations_are_accepted_and_run() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &[]);
    let response = server.invoke(
        "python-echo",
        br#"{"print":"from-an-event"}"#,
        &[("X-Amz-Invocation-Type", "Event")],
    );
    assert_eq!(response.status, 202);
    assert!(response.body.is_empty());
    eventually(Duration::from_secs(15), "the event to run", || {
        server.stdout().contains("from-an-event")
    });
    server.stop();
}

/// Stops `runlambda run` (SIGSTOP) while it lives, so that only what does not pass through it
/// still works; SIGCONT when dropped, whatever happened.
struct Stopped(nix::unistd::Pid);

impl Stopped {
    fn new(server: &Server) -> Stopped {
        let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// Three invokes on `caller`, each answered with its own event.
fn three_echoes(caller: &mut KeepAlive, what: &str) {
    for i in 0..3 {
        let response = caller
            .invoke("python-echo", format!("{{\"n\":{i}}}").as_bytes(), &[])
            .unwrap_or_else(|e| panic!("{what}, invoke {i}: {e}"));
        assert_eq!(response.status, 200, "{what}: {}", response.text());
        assert_eq!(json_body(&response)["echo"]["n"], i, "{what}");
    }
}

#[test]
fn a_lone_keep_alive_caller_is_served_by_the_environment_without_run_in_between() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--provisioned", "1"]);
    let mut caller = server.keep_alive();
    three_echoes(&mut caller, "before run is stopped");
    {
        let _stopped = Stopped::new(&server);
        three_echoes(&mut caller, "while run is stopped");
    }
    three_echoes(&mut caller, "after run continues");
    server.stop();
    assert_eq!(server.stdout().matches("REPORT RequestId: ").count(), 9);
}

#[test]
fn a_second_caller_takes_the_lent_connection_back_and_one_environment_serves_both() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--provisioned", "1"]);
    let mut first = server.keep_alive();
    three_echoes(&mut first, "the first caller alone");
    let mut second = server.keep_alive();
    for _ in 0..2 {
        three_echoes(&mut second, "the second caller");
        three_echoes(&mut first, "the first caller beside the second");
    }
    drop(second);
    // Alone again, the first caller's connection is lent again at its next idle moment.
    three_echoes(&mut first, "the first caller alone again");
    std::thread::sleep(Duration::from_millis(200));
    {
        let _stopped = Stopped::new(&server);
        three_echoes(&mut first, "the first caller while run is stopped");
    }
    server.stop();
    let log = server.stdout();
    // The idle environment was taken back for the second caller, not joined by a new one.
    assert_eq!(log.matches("Init Duration: ").count(), 1, "{log}");
    assert_eq!(log.matches("REPORT RequestId: ").count(), 21, "{log}");
}

#[test]
fn a_caller_beside_a_busy_lent_connection_gets_an_environment_of_its_own() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--provisioned", "1", "--timeout", "30"]);
    let mut first = server.keep_alive();
    three_echoes(&mut first, "the first caller alone");
    let slow = std::thread::spawn(move || {
        let response = first.invoke("python-echo", br#"{"sleep":3}"#, &[]);
        (response, first)
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut second = server.keep_alive();
    three_echoes(&mut second, "the second caller");
    assert!(
        !slow.is_finished(),
        "the second caller waited for the first caller's invocation"
    );
    let (response, mut first) = slow.join().unwrap();
    assert_eq!(response.unwrap().status, 200);
    three_echoes(&mut first, "the first caller after its slow invocation");
    server.stop();
    assert_eq!(server.stdout().matches("Init Duration: ").count(), 2);
}

#[test]
fn an_event_on_a_lent_connection_is_queued_by_run_and_runs() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &["--provisioned", "1"]);
    let mut caller = server.keep_alive();
    three_echoes(&mut caller, "before the event");
    let event = caller
        .invoke(
            "python-echo",
            br#"{"print":"from-an-event"}"#,
            &[("X-Amz-Invocation-Type", "Event")],
        )
        .unwrap();
    assert_eq!(event.status, 202, "{}", event.text());
    three_echoes(&mut caller, "after the event");
    eventually(Duration::from_secs(15), "the event to run", || {
        server.stdout().contains("from-an-event")
    });
    server.stop();
    assert_eq!(server.stdout().matches("REPORT RequestId: ").count(), 7);
}

#[test]
fn an_environment_that_shuts_down_gives_the_lent_connection_back() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(
        &env,
        &function,
        &["--provisioned", "1", "--idle-timeout", "1"],
    );
    let mut caller = server.keep_alive();
    three_echoes(&mut caller, "before the idle timeout");
    eventually(
        Duration::from_secs(10),
        "the idle environment to go",
        || leaves(&env).is_empty(),
    );
    three_echoes(&mut caller, "on the same connection, to a new environment");
    server.stop();
    assert_eq!(server.stdout().matches("Init Duration: ").count(), 2);
}

#[test]
fn the_log_tail_holds_the_invocations_log_lines() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(&env, &function, &[]);
    let response = server.invoke(
        "python-echo",
        br#"{"print":"hello from the function"}"#,
        &[("X-Amz-Log-Type", "Tail")],
    );
    let log = decoded_log(header(&response, "x-amz-log-result").expect("X-Amz-Log-Result"));
    let id = header(&response, "x-amzn-requestid").unwrap();
    for line in [
        format!("START RequestId: {id} Version: $LATEST"),
        "hello from the function".to_string(),
        format!("END RequestId: {id}"),
        format!("REPORT RequestId: {id}\tDuration: "),
    ] {
        assert!(log.contains(&line), "{line:?} missing from:\n{log}");
    }
}

#[test]
fn bad_invoke_requests_get_aws_errors_and_the_endpoint_keeps_serving() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(&env, &function, &[]);
    /// (function name, body, headers, expected status, expected X-Amzn-ErrorType)
    type Case = (
        &'static str,
        Vec<u8>,
        Vec<(&'static str, &'static str)>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "nope",
            b"{}".to_vec(),
            vec![],
            404,
            "ResourceNotFoundException",
        ),
        (
            "python-echo",
            b"{not json".to_vec(),
            vec![],
            400,
            "InvalidRequestContentException",
        ),
        (
            "python-echo",
            b"{}".to_vec(),
            vec![("X-Amz-Invocation-Type", "Sometimes")],
            400,
            "InvalidParameterValueException",
        ),
        (
            "python-echo",
            vec![b' '; 6 * 1024 * 1024 + 10],
            vec![],
            413,
            "RequestEntityTooLargeException",
        ),
    ];
    for (name, body, headers, status, error_type) in cases {
        let response = server.invoke(name, &body, &headers);
        assert_eq!(response.status, status, "{name}: {}", response.text());
        assert_eq!(header(&response, "x-amzn-errortype"), Some(error_type));
        assert!(json_body(&response)["message"].is_string());
    }
    let dry = server.invoke("python-echo", b"{}", &[("X-Amz-Invocation-Type", "DryRun")]);
    assert_eq!(dry.status, 204);
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
}

#[test]
fn the_rust_lambda_runtime_crate_runs_unmodified() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(rust_function(env.dir.path()));
    let server = start(&env, &function, &[]);
    for i in 0..3 {
        let response = server.invoke("rust-echo", format!("{{\"i\":{i}}}").as_bytes(), &[]);
        assert_eq!(response.status, 200, "{}", response.text());
        let body = json_body(&response);
        assert_eq!(body["echo"]["i"], i);
        assert_eq!(
            header(&response, "x-amzn-requestid"),
            body["requestId"].as_str()
        );
    }
}

/// A runtime that calls the Runtime API out of turn and with bad input, and answers with the
/// status and error type each call got; then posts a second answer and prints what that got.
const PROBE: &str = r#"#!/usr/bin/env python3
import http.client, json, os, sys
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
def call(method, path, body=None, headers={}):
    # A fresh connection each time: the server closes one whose body it refused unread.
    conn = http.client.HTTPConnection(host, int(port))
    conn.request(method, "/2018-06-01/runtime/" + path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    try:
        kind = json.loads(data).get("errorType")
    except ValueError:
        kind = None
    return r.status, kind, r.headers
while True:
    status, _, headers = call("GET", "invocation/next")
    rid = headers["Lambda-Runtime-Aws-Request-Id"]
    results = {
        "wrong_id": call("POST", "invocation/not-the-id/response", b"{}")[:2],
        "too_large": call("POST", f"invocation/{rid}/response", b"x" * (7 << 20))[:2],
        "bad_mode": call("POST", f"invocation/{rid}/response", b"{}",
                         {"Lambda-Runtime-Function-Response-Mode": "buffered"})[:2],
        "init_error_late": call("POST", "init/error", b"{}")[:2],
        "unknown_path": call("GET", "bogus")[:2],
        "next_again": call("GET", "invocation/next")[0],
    }
    answer = call("POST", f"invocation/{rid}/response", json.dumps(results).encode())
    duplicate = call("POST", f"invocation/{rid}/response", b"{}")
    print("duplicate:", duplicate[0], duplicate[1], "answer:", answer[0], flush=True)
"#;

#[test]
fn the_runtime_api_refuses_bad_calls_with_rapids_statuses_and_keeps_serving() {
    let env = Env::with_config(HYBRID_OK);
    let function = inline_function(&env, "probe", PROBE);
    let mut server = start(&env, &function, &["--timeout", "30"]);
    for _ in 0..2 {
        let response = server.invoke("probe", b"{}", &[]);
        assert_eq!(response.status, 200, "{}", response.text());
        let results = json_body(&response);
        assert_eq!(
            results["wrong_id"],
            json!([400, "InvalidRequestID"]),
            "{results}\n{}",
            server.stdout()
        );
        assert_eq!(results["too_large"], json!([413, "RequestEntityTooLarge"]));
        assert_eq!(
            results["bad_mode"],
            json!([400, "InvalidFunctionResponseMode"])
        );
        assert_eq!(
            results["init_error_late"],
            json!([403, "InvalidStateTransition"])
        );
        assert_eq!(results["unknown_path"][0], 404);
        // A second `next` during an invocation gets the same event again (as RAPID does).
        assert_eq!(results["next_again"], 200);
    }
    server.stop();
    let log = server.stdout();
    assert!(
        log.contains("duplicate: 403 InvalidStateTransition answer: 202"),
        "{log}"
    );
}

#[test]
fn boto3_invokes_the_python_example_unmodified() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(&env, &function, &[]);
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let out = std::process::Command::new("python3")
        .args(["-m", "pytest", "-q", "-rs"])
        .arg(&tests)
        .env("RUNLAMBDA_ENDPOINT", &server.endpoint)
        .env("RUNLAMBDA_FUNCTION", "python-echo")
        .output()
        .expect(
            "python3 runs (apt-get install python3; pip install -r tests/python/requirements.txt)",
        );
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest failed:\n{report}");
    assert!(report.contains(" passed"), "{report}");
    assert!(
        !report.contains("skipped"),
        "nothing may be skipped:\n{report}"
    );
}

#[test]
fn the_readmes_first_commands_serve_and_invoke_the_python_example() {
    let env = Env::new();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/examples/python-echo");
    let mut cmd = env.command(&[
        "run",
        example.to_str().unwrap(),
        "--allow-unenforced-memory",
    ]);
    cmd.env_remove("RUNLAMBDA_CONFIG");
    let mut server = Server::spawn(cmd);
    let out = env.run(&[
        "invoke",
        "--endpoint",
        &server.endpoint,
        "python-echo",
        r#"{"hello":"world"}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["echo"], json!({"hello": "world"}));
    let out = env.run(&[
        "invoke",
        "--endpoint",
        &server.endpoint,
        "--log-tail",
        "python-echo",
        r#"{"raise":"boom"}"#,
    ]);
    assert_eq!(out.status.code(), Some(1), "a function error exits 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("REPORT RequestId: "));
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn a_freeze_delay_keeps_the_environment_thawed_for_a_while_then_freezes_it() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let server = start(&env, &function, &["--freeze-delay-ms", "1500"]);
    assert_eq!(server.invoke("python-echo", b"{}", &[]).status, 200);
    let events = leaves(&env)[0].join("cgroup.events");
    let frozen = || fs::read_to_string(&events).unwrap().contains("frozen 1");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!frozen(), "frozen before the delay ran out");
    eventually(Duration::from_secs(5), "the delayed freeze", frozen);
}

#[test]
fn a_queued_event_is_not_lost_when_run_is_interrupted() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    let mut server = start(&env, &function, &[]);
    let response = server.invoke(
        "python-echo",
        br#"{"sleep":1,"print":"the-late-event"}"#,
        &[("X-Amz-Invocation-Type", "Event")],
    );
    assert_eq!(response.status, 202);
    assert_eq!(server.stop().code(), Some(0));
    assert!(
        server.stdout().contains("the-late-event"),
        "{}",
        server.stdout()
    );
}

#[test]
fn a_zip_deployment_package_is_served_under_its_file_name() {
    use std::io::Write;
    let env = Env::with_config(HYBRID_OK);
    let zip_path = env.dir.path().join("zipped-echo.zip");
    let mut writer = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
    writer.start_file("bootstrap", options).unwrap();
    let bootstrap =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/examples/python-echo/bootstrap");
    writer.write_all(&fs::read(bootstrap).unwrap()).unwrap();
    writer.finish().unwrap();
    let server = start(&env, &zip_path, &[]);
    let response = server.invoke("zipped-echo", br#"{"z":1}"#, &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(json_body(&response)["functionName"], "zipped-echo");
}

/// A function that tries to break out of its environment and reports what each try got.
const ESCAPE: &str = r#"#!/usr/bin/env python3
import ctypes, errno, http.client, json, os, signal, stat
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
libc = ctypes.CDLL(None, use_errno=True)
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def mount():
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        raise OSError(ctypes.get_errno(), "mount")
def status(field):
    return next(l.split()[1] for l in open("/proc/self/status") if l.startswith(field + ":"))
while True:
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse(); r.read()
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    results = {
        "uid": os.getuid(),
        "cap_eff": status("CapEff"),
        "no_new_privs": status("NoNewPrivs"),
        "write_init_exe": attempt(lambda: open("/proc/1/exe", "wb")),
        "read_init_environ": attempt(lambda: open("/proc/1/environ", "rb").read()),
        "mount": attempt(mount),
        "mknod": attempt(lambda: os.mknod("/tmp/disk", stat.S_IFBLK | 0o600, os.makedev(8, 0))),
        "write_task": attempt(lambda: open("/var/task/new", "w")),
        "state_dir_visible": os.path.exists(os.environ["STATE_DIR"]),
        "kill_init": attempt(lambda: os.kill(1, signal.SIGKILL)),
    }
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps(results))
    conn.getresponse().read()
"#;

#[test]
fn a_function_cannot_reach_the_host_or_the_init() {
    let env = Env::with_config(HYBRID_OK);
    let function = inline_function(&env, "escape", ESCAPE);
    let state_dir = format!("STATE_DIR={}", env.root.display());
    let server = start(&env, &function, &["--env", &state_dir]);
    let response = server.invoke("escape", b"{}", &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    let results = json_body(&response);
    assert_eq!(results["uid"], 993, "the function is not root: {results}");
    assert_eq!(results["cap_eff"], "0000000000000000", "{results}");
    assert_eq!(results["no_new_privs"], "1", "{results}");
    for (attempt, errno) in [
        ("write_init_exe", "EACCES"),
        ("read_init_environ", "EACCES"),
        ("mount", "EPERM"),
        ("mknod", "EPERM"),
        ("write_task", "EROFS"),
    ] {
        assert_eq!(results[attempt], errno, "{attempt}: {results}");
    }
    assert_eq!(results["state_dir_visible"], false, "{results}");
    // SIGKILL from inside the pid namespace cannot reach its init; the environment lives on.
    assert_eq!(server.invoke("escape", b"{}", &[]).status, 200);
}

/// Host processes whose command line names `id` (the init and the supervisor of that
/// environment), read from /proc.
fn processes_naming(id: &str) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).split('\0').any(|a| a == id))
        })
        .filter(|pid| {
            runlambda::state::proc_stat(nix::unistd::Pid::from_raw(*pid))
                .is_some_and(|(state, _)| state != 'Z')
        })
        .collect()
}

/// The Python example as the OCI bundle `run` would make of it, in `env`'s directory.
fn python_bundle(env: &Env) -> PathBuf {
    let function = readable(python_function(env.dir.path()));
    let options = runlambda::function::FunctionOptions {
        name: "python-echo".into(),
        ..Default::default()
    };
    runlambda::function::write_bundle(&function, &env.dir.path().join("bundle"), &options).unwrap()
}

#[test]
fn delete_force_of_a_lambda_environment_leaves_no_supervisor_cgroup_or_state() {
    let env = Env::with_config(HYBRID_OK);
    let bundle = python_bundle(&env);
    let id = "lambda-env";
    let pid = env.create(id, &bundle);
    env.ok(&["start", id]);
    assert_eq!(env.state(id)["status"], "running");
    // The init, and outside the environment its supervisor (a process the init has just
    // forked for the runtime may carry the id too, until it execs).
    let processes = processes_naming(id);
    let inside = fs::read_to_string(env.cgroup_dir(id).join("cgroup.procs")).unwrap();
    let outside: Vec<_> = processes
        .iter()
        .filter(|p| !inside.lines().any(|l| l == p.to_string()))
        .collect();
    assert!(processes.contains(&pid), "the init: {processes:?}");
    assert_eq!(outside.len(), 1, "the supervisor alone: {processes:?}");
    env.ok(&["delete", "--force", id]);
    assert_eq!(common::wait_exit(pid), 128 + 9);
    eventually(Duration::from_secs(5), "the supervisor to exit", || {
        processes_naming(id).is_empty()
    });
    assert!(!env.cgroup_dir(id).exists());
    assert!(!env.root.join(id).exists());
}

#[test]
fn a_lambda_environment_in_a_pods_network_namespace_answers_on_its_invoke_port() {
    // As in a Kubernetes pod: the sandbox container makes the network namespace, the
    // function's container joins it by path, and a Service reaches its Invoke API on
    // `com.runlambda.invoke-port` inside that namespace.
    let env = Env::with_config(HYBRID_OK);
    let sandbox = env.create(
        "sandbox",
        &env.bundle("sandbox", &common::config(&["sleep", "300"])),
    );
    env.ok(&["start", "sandbox"]);
    let pod_netns = format!("/proc/{sandbox}/ns/net");
    let bundle = python_bundle(&env);
    let path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    for ns in cfg["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!(pod_netns);
        }
    }
    cfg["annotations"]["com.runlambda.invoke-port"] = json!("8080");
    fs::write(&path, cfg.to_string()).unwrap();
    let id = "in-pod";
    let pid = env.create(id, &bundle);
    env.ok(&["start", id]);
    // The runtime reaches its API at 127.0.0.1:9001 in the pod's namespace, and the caller
    // reaches the Invoke API there.
    let netns = fs::File::open(&pod_netns).unwrap();
    let response = std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        common::lambda::http_request(
            "http://127.0.0.1:8080",
            "POST",
            common::callers::INVOKE_PATH,
            br#"{"from": "a service"}"#,
            &[],
        )
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(answer["echo"], json!({"from": "a service"}), "{answer}");
    env.ok(&["delete", "--force", id]);
    assert_eq!(common::wait_exit(pid), 128 + 9);
    env.ok(&["delete", "--force", "sandbox"]);
    common::wait_exit(sandbox);
}

/// A runtime that talks to the Runtime API over the unix socket mounted into its environment.
const UNIX_RUNTIME: &str = r#"#!/usr/bin/env python3
import http.client, json, os, socket
class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path_ = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path_)
conn = Unix(os.environ["RUNLAMBDA_RUNTIME_API_SOCKET"])
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    answer = {"via": os.environ["RUNLAMBDA_RUNTIME_API_SOCKET"], "echo": event}
    conn.request("POST", f"/2018-06-01/runtime/invocation/{rid}/response", json.dumps(answer))
    conn.getresponse().read()
"#;

#[test]
fn the_runtime_api_is_served_on_the_unix_socket_mounted_into_the_environment() {
    let env = Env::with_config(HYBRID_OK);
    let function = inline_function(&env, "unix-runtime", UNIX_RUNTIME);
    let server = start(&env, &function, &[]);
    for i in 0..3 {
        let response = server.invoke("unix-runtime", format!("{{\"i\":{i}}}").as_bytes(), &[]);
        assert_eq!(response.status, 200, "{}", response.text());
        let body = json_body(&response);
        assert_eq!(body["via"], "/run/runlambda/runtime.sock");
        assert_eq!(body["echo"]["i"], i);
    }
}

#[test]
fn a_state_root_deeper_than_sun_path_serves_invokes() {
    let env = Env::with_config(HYBRID_OK);
    let function = readable(python_function(env.dir.path()));
    // Every socket of the environment (notify, Runtime API, Invoke, control) lies deeper than a
    // unix socket address holds.
    let root = env.dir.path().join("r".repeat(60)).join("s".repeat(60));
    assert!(root.as_os_str().len() > 108);
    let cmd = env.command(&[
        "--root",
        root.to_str().unwrap(),
        "run",
        function.to_str().unwrap(),
    ]);
    let mut server = Server::spawn(cmd);
    let response = server.invoke("python-echo", br#"{"deep":true}"#, &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(json_body(&response)["echo"], json!({"deep": true}));
    assert_eq!(server.stop().code(), Some(0), "{}", server.stderr());
    let left: Vec<_> = fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "the environment is gone: {left:?}");
}

/// A runtime that streams its answer in two chunks, held between them until the file the event
/// names as `gate` exists in its function directory; with `fail`, the stream ends with the
/// error trailers a runtime client sends when the handler fails midway.
const STREAMER: &str = r#"#!/usr/bin/env python3
import base64, http.client, json, os, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
api = "/2018-06-01/runtime/invocation/"
while True:
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("GET", api + "next")
    r = conn.getresponse()
    event = json.loads(r.read())
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    print("streaming for", event["gate"], flush=True)
    conn = http.client.HTTPConnection(host, int(port))
    conn.putrequest("POST", api + rid + "/response")
    conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Trailer", "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body")
    conn.endheaders()
    def chunk(data):
        conn.send(b"%x\r\n%s\r\n" % (len(data), data))
    chunk(b"chunk-one")
    while not os.path.exists("/var/task/" + event["gate"]):
        time.sleep(0.01)
    chunk(b"chunk-two")
    if "fail" in event:
        error = json.dumps({"errorType": "Custom.Boom", "errorMessage": event["fail"]})
        conn.send(b"0\r\nLambda-Runtime-Function-Error-Type: Custom.Boom\r\n"
                  b"Lambda-Runtime-Function-Error-Body: "
                  + base64.b64encode(error.encode()) + b"\r\n\r\n")
    else:
        conn.send(b"0\r\n\r\n")
    r = conn.getresponse()
    r.read()
    print("streamed:", r.status, flush=True)
"#;

/// The next message of `stream`, which must be there.
fn message(stream: &mut common::lambda::EventStream) -> (String, Vec<u8>) {
    stream
        .next_message()
        .expect("the answer reads")
        .expect("the answer goes on")
}

fn payload_chunk(bytes: &[u8]) -> (String, Vec<u8>) {
    ("PayloadChunk".into(), bytes.to_vec())
}

#[test]
fn a_streamed_response_reaches_the_caller_chunk_by_chunk() {
    let env = Env::with_config(HYBRID_OK);
    let function = inline_function(&env, "streamer", STREAMER);
    let mut server = start(&env, &function, &["--timeout", "60"]);
    // The runtime writes its second chunk only once the caller has read the first.
    let mut stream = server.invoke_streaming("streamer", br#"{"gate":"go-1"}"#, &[]);
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-one"));
    fs::write(function.join("go-1"), b"").unwrap();
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-two"));
    let (event, payload) = message(&mut stream);
    assert_eq!(event, "InvokeComplete");
    assert_eq!(
        serde_json::from_slice::<Value>(&payload).unwrap(),
        json!({})
    );
    assert!(stream.next_message().unwrap().is_none());

    let mut stream =
        server.invoke_streaming("streamer", br#"{"gate":"go-2","fail":"midway"}"#, &[]);
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-one"));
    fs::write(function.join("go-2"), b"").unwrap();
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-two"));
    let (event, payload) = message(&mut stream);
    assert_eq!(event, "InvokeComplete");
    let complete: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(complete["ErrorCode"], "Unhandled", "{complete}");
    assert_eq!(complete["ErrorDetails"], "midway", "{complete}");

    // A plain Invoke of the streaming function gets the whole answer.
    fs::write(function.join("go-3"), b"").unwrap();
    let response = server.invoke("streamer", br#"{"gate":"go-3"}"#, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "chunk-onechunk-two");
    assert_eq!(header(&response, "x-amz-function-error"), None);

    // Asked for the log tail, the stream's `InvokeComplete` carries it.
    let mut stream = server.invoke_streaming(
        "streamer",
        br#"{"gate":"go-4"}"#,
        &[("X-Amz-Log-Type", "Tail")],
    );
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-one"));
    fs::write(function.join("go-4"), b"").unwrap();
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-two"));
    let (event, payload) = message(&mut stream);
    assert_eq!(event, "InvokeComplete");
    let complete: Value = serde_json::from_slice(&payload).unwrap();
    let tail = decoded_log(complete["LogResult"].as_str().expect("LogResult"));
    assert!(tail.starts_with("START RequestId: "), "{tail}");
    for line in [
        "\nstreaming for go-4\n",
        "\nEND RequestId: ",
        "\nREPORT RequestId: ",
    ] {
        assert!(tail.contains(line), "{line:?} missing from:\n{tail}");
    }
    assert!(
        !tail.contains("go-3"),
        "only this invocation's lines: {tail}"
    );
    assert!(stream.next_message().unwrap().is_none());

    server.stop();
    let log = server.stdout();
    assert_eq!(log.matches("streamed: 202").count(), 4, "{log}");
    assert_eq!(log.matches("REPORT RequestId: ").count(), 4, "{log}");
}

#[test]
fn a_timeout_while_streaming_ends_the_stream_with_the_timeout() {
    let env = Env::with_config(HYBRID_OK);
    let function = inline_function(&env, "streamer", STREAMER);
    let server = start(&env, &function, &["--timeout", "2"]);
    // The gate never opens: the runtime is still streaming when the invocation times out.
    let mut stream = server.invoke_streaming("streamer", br#"{"gate":"never"}"#, &[]);
    assert_eq!(message(&mut stream), payload_chunk(b"chunk-one"));
    let (event, payload) = message(&mut stream);
    assert_eq!(event, "InvokeComplete");
    let complete: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(complete["ErrorCode"], "Unhandled", "{complete}");
    let details = complete["ErrorDetails"].as_str().unwrap();
    assert!(
        details.contains("Task timed out after 2.00 seconds"),
        "{complete}"
    );
    assert!(stream.next_message().unwrap().is_none());
}
