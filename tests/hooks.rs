//! OCI hooks against real containers: every kind runs once, in lifecycle order, with the
//! state JSON on stdin (status and pid), in the namespace the runtime-spec names; a failing or
//! overrunning create hook fails `create` and leaves nothing behind; later failures stop the
//! container (startContainer, poststart) or only warn (poststop); env and argv are exactly
//! the hook's.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{config, eventually, wait_exit, Env};
use serde_json::{json, Value};

/// Appends "KIND STATUS PID MNTNS" to the file `$2`, read from the state on stdin (`$1` is the
/// kind). Plain sh, so that it runs on the host and in the busybox rootfs alike.
const LOGGING_HOOK: &str = r#"#!/bin/sh
state=$(cat)
status=${state#*\"status\":\"}
status=${status%%\"*}
case $state in
*'"pid":'*) pid=${state#*\"pid\":}; pid=${pid%%[,\}]*} ;;
*) pid=none ;;
esac
echo "$1 $status $pid $(readlink /proc/self/ns/mnt)" >> "$2"
"#;

/// A hook entry running `path` with these args and a bare PATH for its environment.
fn hook(path: &Path, args: &[&str]) -> Value {
    json!({"path": path, "args": args, "env": ["PATH=/usr/bin:/bin"]})
}

/// A hook running `sh -c SCRIPT`.
fn sh(script: &str) -> Value {
    hook(Path::new("/bin/sh"), &["sh", "-c", script])
}

/// Writes the logging hook at `path`, executable.
fn write_logging_hook(path: &Path) {
    fs::write(path, LOGGING_HOOK).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The (hook, container status) pairs the logging hook wrote, in order.
fn logged(log: &Path) -> Vec<(String, String)> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let mut word = || words.next().unwrap_or_default().to_string();
            (word(), word())
        })
        .collect()
}

/// The mount namespace of a process, as `readlink /proc/PID/ns/mnt` prints it.
fn mount_ns(pid: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The bundle's directory, which `Env::bundle` puts in the test's temporary directory.
fn bundle_dir(env: &Env, id: &str) -> PathBuf {
    env.dir.path().join(id)
}

#[test]
fn every_hook_runs_once_in_order_with_its_status_pid_and_namespace() {
    let env = Env::new();
    let script = env.dir.path().join("log-hook");
    write_logging_hook(&script);
    let log = bundle_dir(&env, "c1").join("rootfs/hooks.log");
    let log_arg = log.to_str().unwrap();
    let on_host = |kind: &str| json!([hook(&script, &["log-hook", kind, log_arg])]);
    let mut cfg = config(&["sleep", "300"]);
    cfg["hooks"] = json!({
        "prestart": on_host("prestart"),
        "createRuntime": on_host("createRuntime"),
        "createContainer": on_host("createContainer"),
        // Resolved inside the container: the same script, copied into the rootfs.
        "startContainer": [hook(Path::new("/log-hook"),
                                &["log-hook", "startContainer", "/hooks.log"])],
        "poststart": on_host("poststart"),
        "poststop": on_host("poststop"),
    });
    let bundle = env.bundle("c1", &cfg);
    write_logging_hook(&bundle.join("rootfs/log-hook"));

    let pid = env.create("c1", &bundle);
    let container_ns = mount_ns(&pid.to_string());
    let kinds = |text: &str| -> Vec<String> {
        text.lines()
            .map(|line| line.split(' ').next().unwrap().to_string())
            .collect()
    };
    let created = fs::read_to_string(&log).unwrap();
    assert_eq!(
        kinds(&created),
        ["prestart", "createRuntime", "createContainer"]
    );
    env.ok(&["start", "c1"]);
    let started = fs::read_to_string(&log).unwrap();
    assert_eq!(kinds(&started)[3..], ["startContainer", "poststart"]);
    env.ok(&["kill", "c1", "KILL"]);
    wait_exit(pid);
    env.ok(&["delete", "c1"]);

    let host_ns = mount_ns("self");
    assert_ne!(host_ns, container_ns);
    let pid = pid.to_string();
    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let expected = [
        ["prestart", "creating", &pid, &host_ns],
        ["createRuntime", "creating", &pid, &host_ns],
        ["createContainer", "creating", &pid, &container_ns],
        ["startContainer", "created", &pid, &container_ns],
        ["poststart", "running", &pid, &host_ns],
        ["poststop", "stopped", "none", &host_ns],
    ];
    assert_eq!(lines, expected, "{text}");
}

#[test]
fn a_failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    let env = Env::new();
    let marker = env.dir.path().join("poststop-ran");
    let mut cfg = config(&["true"]);
    cfg["hooks"] = json!({
        "createRuntime": [sh("echo no network for you >&2; exit 7")],
        "poststop": [sh(&format!("touch {}", marker.display()))],
    });
    let bundle = env.bundle("c1", &cfg);
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    assert!(
        err.contains("createRuntime hook #0 /bin/sh: exit status: 7, output: no network for you"),
        "{err}"
    );
    assert!(!env.root.join("c1").exists());
    assert!(!env.cgroup_dir("c1").exists());
    assert_eq!(env.ok(&["list", "--quiet"]), "");
    // The lifecycle ends as after a delete: with the poststop hooks.
    assert!(marker.exists());
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails_create() {
    let env = Env::new();
    let mut cfg = config(&["true"]);
    let mut slow = hook(Path::new("/bin/sleep"), &["sleep", "600"]);
    slow["timeout"] = json!(1);
    cfg["hooks"] = json!({"prestart": [slow]});
    let bundle = env.bundle("c1", &cfg);
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    assert!(
        err.contains("prestart hook #0 /bin/sleep: killed after its timeout of 1s"),
        "{err}"
    );
    assert!(!env.root.join("c1").exists());
    assert!(!env.cgroup_dir("c1").exists());
}

#[test]
fn a_hook_gets_exactly_its_env_and_argv() {
    let env = Env::new();
    let out = env.dir.path().join("seen");
    let script = format!(
        "tr '\\0' '\\n' < /proc/$$/environ > {0}; echo -- >> {0}; \
         tr '\\0' '\\n' < /proc/$$/cmdline >> {0}",
        out.display()
    );
    let mut cfg = config(&["true"]);
    cfg["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["custom-argv0", "-c", script],
        "env": ["ONE=1", "TWO=two words"],
    }]});
    let bundle = env.bundle("c1", &cfg);
    let pid = env.create("c1", &bundle);
    let seen = fs::read_to_string(&out).unwrap();
    let expected = format!("ONE=1\nTWO=two words\n--\ncustom-argv0\n-c\n{script}\n");
    assert_eq!(seen, expected);
    env.ok(&["delete", "--force", "c1"]);
    wait_exit(pid);
}

#[test]
fn failed_start_hooks_stop_the_container_and_poststop_only_warns() {
    let env = Env::new();
    let mut cfg = config(&["sleep", "300"]);
    cfg["hooks"] = json!({"startContainer": [sh("echo refused; exit 3")]});
    let bundle = env.bundle("c1", &cfg);
    let pid = env.create("c1", &bundle);
    let err = env.fails(&["start", "c1"]);
    assert!(
        err.contains(
            "running startContainer hooks: startContainer hook #0 /bin/sh: \
                      exit status: 3, output: refused"
        ),
        "{err}"
    );
    assert_eq!(wait_exit(pid), 1);
    assert_eq!(env.state("c1")["status"], "stopped");
    env.ok(&["delete", "c1"]);

    let mut cfg = config(&["sleep", "300"]);
    cfg["hooks"] = json!({
        "poststart": [sh("exit 4")],
        "poststop": [sh("echo cleanup failed >&2; exit 5"), sh("true")],
    });
    let bundle = env.bundle("c2", &cfg);
    let pid = env.create("c2", &bundle);
    let err = env.fails(&["start", "c2"]);
    assert!(
        err.contains("poststart hook #0 /bin/sh: exit status: 4"),
        "{err}"
    );
    assert_eq!(wait_exit(pid), 128 + 9);
    eventually(Duration::from_secs(10), "c2 to stop", || {
        env.state("c2")["status"] == "stopped"
    });
    let out = env.run(&["delete", "c2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .contains("warning: poststop hook #0 /bin/sh: exit status: 5, output: cleanup failed"),
        "{stderr}"
    );
    assert!(!env.root.join("c2").exists());
}

#[test]
fn a_lambda_environment_runs_its_hooks_at_create_start_and_delete() {
    let env = Env::with_config("allow_unenforced_memory = true");
    let function = common::lambda::python_function(env.dir.path());
    fs::set_permissions(&function, fs::Permissions::from_mode(0o755)).unwrap();
    let script = env.dir.path().join("log-hook");
    write_logging_hook(&script);
    let log = env.dir.path().join("hooks.log");
    let log_arg = log.to_str().unwrap();
    let on_host = |kind: &str| json!([hook(&script, &["log-hook", kind, log_arg])]);
    let lambda_bundle = |id: &str, start_hook: Value| -> PathBuf {
        let options = runlambda::function::FunctionOptions {
            name: "python-echo".into(),
            ..Default::default()
        };
        let bundle =
            runlambda::function::write_bundle(&function, &env.dir.path().join(id), &options)
                .unwrap();
        let path = bundle.join("config.json");
        let mut cfg: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        cfg["hooks"] = json!({
            "createRuntime": on_host("createRuntime"),
            "createContainer": on_host("createContainer"),
            "startContainer": [start_hook],
            "poststart": on_host("poststart"),
            "poststop": on_host("poststop"),
        });
        fs::write(&path, cfg.to_string()).unwrap();
        bundle
    };

    let bundle = lambda_bundle("fn", sh("true"));
    let pid = env.create("fn", &bundle);
    env.ok(&["start", "fn"]);
    env.ok(&["delete", "--force", "fn"]);
    wait_exit(pid);
    let expected = [
        ("createRuntime", "creating"),
        ("createContainer", "creating"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ]
    .map(|(kind, status)| (kind.to_string(), status.to_string()));
    assert_eq!(logged(&log), expected);

    // `create --start`, as `run` makes its environments: running when create returns, its
    // Init under way without a `start` (the runtime joins the init in the leaf), and the same
    // hooks, poststart included.
    fs::write(&log, "").unwrap();
    let bundle = lambda_bundle("at-once", sh("true"));
    let (out, err) = (bundle.join("out"), bundle.join("err"));
    let status = env
        .command(&[
            "create",
            "--start",
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            bundle.join("pid").to_str().unwrap(),
            "at-once",
        ])
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{}", fs::read_to_string(&err).unwrap());
    assert_eq!(env.state("at-once")["status"], "running");
    eventually(Duration::from_secs(10), "the runtime to start", || {
        common::cgroup_procs(&env.cgroup_dir("at-once")).len() >= 2
    });
    let pid: i32 = fs::read_to_string(bundle.join("pid"))
        .unwrap()
        .parse()
        .unwrap();
    env.ok(&["delete", "--force", "at-once"]);
    wait_exit(pid);
    assert_eq!(logged(&log), expected);

    // startContainer runs before the environment's first process: failing, it ends the
    // environment before any of the function's code ran.
    let bundle = lambda_bundle("refused", sh("exit 1"));
    let pid = env.create("refused", &bundle);
    env.ok(&["start", "refused"]);
    eventually(Duration::from_secs(10), "the environment to stop", || {
        env.state("refused")["status"] == "stopped"
    });
    assert_eq!(wait_exit(pid), 1);
    env.ok(&["delete", "refused"]);
}
