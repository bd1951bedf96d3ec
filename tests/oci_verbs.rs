//! The verbs beyond the lifecycle, as containerd, podman and a user see them: `exec` (waited
//! for, detached, from a process JSON, refused when paused or stopped), `ps`, `events`,
//! `features` and `spec`, each against real containers.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use common::{config, wait_exit, Env};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

fn sleeper() -> Value {
    config(&["sleep", "300"])
}

/// create + start of `cfg` as container `id`; returns the init's pid.
fn running(env: &Env, id: &str, cfg: &Value) -> i32 {
    let bundle = env.bundle(id, cfg);
    let pid = env.create(id, &bundle);
    env.ok(&["start", id]);
    pid
}

/// Kills and deletes container `id`, and reaps its init.
fn remove(env: &Env, id: &str, init: i32) {
    env.ok(&["delete", "--force", id]);
    wait_exit(init);
}

/// The pids in the container's cgroup.procs.
fn cgroup_procs(env: &Env, id: &str) -> BTreeSet<i32> {
    common::cgroup_procs(&env.cgroup_dir(id))
}

#[test]
fn exec_runs_inside_the_container_and_returns_the_exit_code_and_output() {
    let env = Env::new();
    let init = running(&env, "c1", &sleeper());
    let rootfs = env.dir.path().join("c1/rootfs");
    fs::write(rootfs.join("marker"), "inside\n").unwrap();
    let host_only = env.dir.path().to_str().unwrap();
    let script = format!(
        "hostname; cat /marker; cat /proc/1/cmdline; echo; ls /proc; \
         [ -e {host_only} ] && echo host-visible; exit 3"
    );
    let out = env.run(&["exec", "c1", "sh", "-c", &script]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..3], ["runlambda", "inside", "sleep\u{0}300\u{0}"]);
    // The container's pid namespace: the init is 1, and only sh and ls are there besides.
    let pids: BTreeSet<u32> = lines[3..].iter().filter_map(|l| l.parse().ok()).collect();
    assert!(pids.contains(&1), "{stdout}");
    assert_eq!(pids.len(), 3, "{stdout}");
    assert!(!stdout.contains("host-visible"), "{stdout}");

    let out = env.run(&["exec", "c1", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    let err = env.fails(&["exec", "c1", "no-such-program"]);
    assert!(
        err.contains("looking up process.args[0]") && err.contains("no-such-program"),
        "{err}"
    );
    remove(&env, "c1", init);
}

#[test]
fn exec_detach_leaves_the_process_to_the_caller_in_the_container_cgroup() {
    let env = Env::new();
    let mut cfg = sleeper();
    // A pids limit gives the process a v1 pids leaf to join too on a hybrid host.
    cfg["linux"]["resources"]["pids"] = json!({"limit": 100});
    let init = running(&env, "c1", &cfg);
    let pid_file = env.dir.path().join("exec.pid");
    let log = env.dir.path().join("exec.err");
    let status = env
        .command(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "c1",
            "sleep",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
    let pid: i32 = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(cgroup_procs(&env, "c1"), BTreeSet::from([init, pid]));
    // The cgroup2 leaf, and on a hybrid host the v1 pids leaf too.
    let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let leaf = format!("/{}/c1", env.cgroup_parent);
    for line in cgroup.lines() {
        if line.starts_with("0::") || line.contains(":pids:") {
            assert!(line.ends_with(&leaf), "{cgroup}");
        }
    }

    // ps --format json lists exactly cgroup.procs; the table shows both commands.
    let listed: Vec<i32> =
        serde_json::from_str(&env.ok(&["ps", "--format", "json", "c1"])).unwrap();
    assert_eq!(
        listed.into_iter().collect::<BTreeSet<_>>(),
        cgroup_procs(&env, "c1")
    );
    let table = env.ok(&["ps", "c1"]);
    assert!(table.starts_with("UID"), "{table}");
    assert_eq!(table.matches("sleep 300").count(), 2, "{table}");

    // Our child: we reap it.
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_eq!(wait_exit(pid), 128 + 9);
    remove(&env, "c1", init);
    let err = env.fails(&["ps", "--format", "json", "c1"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn exec_with_a_process_json_takes_its_user_env_and_cwd() {
    let env = Env::new();
    let init = running(&env, "c1", &sleeper());
    let process = env.dir.path().join("process.json");
    let write_process = |cwd: &str| {
        let json = json!({
            "terminal": false,
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sh", "-c", "id -u; id -g; echo $FOO; pwd"],
            "env": ["PATH=/bin", "FOO=bar"],
            "cwd": cwd
        });
        fs::write(&process, json.to_string()).unwrap();
    };
    write_process("/tmp");
    let out = env.ok(&["exec", "--process", process.to_str().unwrap(), "c1"]);
    assert_eq!(out, "1000\n1000\nbar\n/tmp\n");

    write_process("tmp");
    let err = env.fails(&["exec", "--process", process.to_str().unwrap(), "c1"]);
    assert!(
        err.contains("process.cwd") && err.contains("is not an absolute path"),
        "{err}"
    );
    remove(&env, "c1", init);
}

#[test]
fn exec_flags_change_the_config_process() {
    let env = Env::new();
    let init = running(&env, "c1", &sleeper());
    let out = env.ok(&[
        "exec",
        "--user",
        "7:8",
        "--cwd",
        "/bin",
        "-e",
        "FOO=baz",
        "c1",
        "sh",
        "-c",
        "id -u; id -g; echo $FOO; pwd",
    ]);
    assert_eq!(out, "7\n8\nbaz\n/bin\n");
    // config()'s AUDIT_WRITE, KILL and NET_BIND_SERVICE (bits 29, 5, 10), plus CHOWN (bit 0).
    let out = env.ok(&[
        "exec",
        "--cap",
        "CAP_CHOWN",
        "c1",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(out.split_whitespace().last(), Some("0000000020000421"));
    remove(&env, "c1", init);
}

#[test]
fn exec_passes_exactly_the_preserved_fds() {
    let env = Env::new();
    let init = running(&env, "c1", &sleeper());
    let out = env.dir.path().join("fd3");
    // A host shell opens fd 3 for runlambda, as containerd passes preserved fds.
    let with_fd3 = |preserve: &str| {
        let line = format!(
            "exec 3>{out}; exec {bin} --config {config} exec --preserve-fds {preserve} c1 \
             sh -c 'echo via3 >&3'",
            out = out.display(),
            bin = env!("CARGO_BIN_EXE_runlambda"),
            config = env.config.display(),
        );
        std::process::Command::new("sh")
            .args(["-c", &line])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let passed = with_fd3("1");
    assert!(passed.status.success(), "{passed:?}");
    assert_eq!(fs::read_to_string(&out).unwrap(), "via3\n");
    // Not preserved: fd 3 does not reach the process.
    let kept = with_fd3("0");
    assert!(!kept.status.success(), "{kept:?}");
    assert_eq!(fs::read_to_string(&out).unwrap(), "");
    remove(&env, "c1", init);
}

#[test]
fn exec_joins_the_user_namespace_first() {
    let env = Env::new();
    let mut cfg = sleeper();
    common::in_user_namespace(&mut cfg);
    let init = running(&env, "c1", &cfg);
    let out = env.ok(&[
        "exec",
        "-u",
        "1000",
        "c1",
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map",
    ]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["1000"],
            vec!["0", &common::USERNS_HOST_ID.to_string(), "65536"]
        ]
    );
    // The exec'd process has exited and was reaped: only the init is left.
    let pids = cgroup_procs(&env, "c1");
    assert_eq!(pids, BTreeSet::from([init]));
    remove(&env, "c1", init);
}

#[test]
fn exec_into_a_paused_container_is_refused() {
    let env = Env::new();
    let init = running(&env, "c1", &sleeper());
    env.ok(&["pause", "c1"]);
    let err = env.fails(&["exec", "c1", "true"]);
    assert!(
        err.contains("container c1 is paused: cannot exec in it (resume it first)"),
        "{err}"
    );
    env.ok(&["resume", "c1"]);
    env.ok(&["exec", "c1", "true"]);
    remove(&env, "c1", init);
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    let env = Env::new();
    let init = running(&env, "c1", &config(&["true"]));
    assert_eq!(wait_exit(init), 0);
    let err = env.fails(&["exec", "c1", "true"]);
    assert!(err.contains("container not running"), "{err}");
    env.ok(&["delete", "c1"]);
    let err = env.fails(&["exec", "c1", "true"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn events_report_the_cgroup_counters_once_or_every_interval() {
    let env = Env::new();
    let mut cfg = sleeper();
    cfg["linux"]["resources"]["pids"] = json!({"limit": 100});
    let init = running(&env, "c1", &cfg);
    let event: Value = serde_json::from_str(&env.ok(&["events", "--stats", "c1"])).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], "c1");
    let pids = &event["data"]["pids"];
    assert!(pids["current"].as_u64().unwrap() >= 1, "{event}");
    assert_eq!(pids["limit"], 100, "{event}");
    assert!(event["data"]["cpu"]["usage"]["total"].is_u64(), "{event}");

    let mut stream = env
        .command(&["events", "--interval", "50ms", "c1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(stream.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(event["id"], "c1");
    }
    kill(Pid::from_raw(stream.id() as i32), Signal::SIGKILL).unwrap();
    stream.wait().unwrap();
    remove(&env, "c1", init);
}

/// A config.json of `config()` with `change` applied, loaded by the bundle loader.
fn load_changed(dir: &Path, change: impl FnOnce(&mut Value)) -> Result<(), String> {
    let mut cfg = config(&["true"]);
    change(&mut cfg);
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    runlambda::bundle::load(dir, &runlambda::config::RuntimeConfig::default(), false)
        .map(drop)
        .map_err(|e| runlambda::error::chain(&e))
}

#[test]
fn features_tell_what_the_bundle_loader_accepts() {
    let env = Env::new();
    let text = env.ok(&["features"]);
    let features: oci_spec::runtime::Features = serde_json::from_str(&text).unwrap();
    let raw: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(features.oci_version_min(), "1.0.0");
    assert_eq!(features.oci_version_max(), "1.3.0");
    assert_eq!(
        raw["hooks"],
        json!([
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ])
    );
    assert_eq!(raw["linux"]["seccomp"]["enabled"], true);
    assert_eq!(raw["linux"]["mountExtensions"]["idmap"]["enabled"], false);
    assert_eq!(
        raw["linux"]["cgroup"],
        json!({"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false})
    );
    assert_eq!(
        raw["annotations"]["com.runlambda.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        raw["potentiallyUnsafeConfigAnnotations"],
        json!(["com.runlambda."])
    );
    let caps = raw["linux"]["capabilities"].as_array().unwrap();
    assert!(caps.contains(&json!("CAP_SYS_ADMIN")) && caps.len() >= 38);

    let dir = env.dir.path().join("probe");
    for version in [features.oci_version_min(), features.oci_version_max()] {
        load_changed(&dir, |c| c["ociVersion"] = json!(version)).unwrap();
    }
    load_changed(&dir, |c| c["ociVersion"] = json!("1.4.0")).unwrap_err();
    let options = features.mount_options().as_ref().unwrap();
    assert!(options.contains(&"ro".to_string()) && !options.contains(&"rro".to_string()));
    for option in options {
        let mount = if option.ends_with("bind") {
            json!({"destination": "/mnt", "type": "bind", "source": "rootfs", "options": [option]})
        } else {
            json!({"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": [option]})
        };
        load_changed(&dir, |c| c["mounts"] = json!([mount]))
            .unwrap_or_else(|e| panic!("listed mount option {option}: {e}"));
    }
    let err = load_changed(&dir, |c| {
        c["mounts"] = json!([{"destination": "/mnt", "type": "tmpfs", "options": ["rro"]}])
    })
    .unwrap_err();
    assert!(err.contains("\"rro\" is not supported"), "{err}");

    for hook in raw["hooks"].as_array().unwrap() {
        let name = hook.as_str().unwrap();
        load_changed(&dir, |c| {
            c["hooks"] = json!({name: [{"path": "/bin/true"}]})
        })
        .unwrap_or_else(|e| panic!("listed hook {name}: {e}"));
    }

    let namespaces = raw["linux"]["namespaces"].as_array().unwrap();
    assert_eq!(namespaces.len(), 7);
    for ns in namespaces {
        load_changed(&dir, |c| {
            // The loader requires a mount namespace in every config.
            c["linux"]["namespaces"] = json!([{"type": "mount"}]);
            if ns != "mount" {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": ns}));
            }
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            if ns == "user" {
                c["linux"]["uidMappings"] = map.clone();
                c["linux"]["gidMappings"] = map;
            }
            c.as_object_mut().unwrap().remove("hostname");
        })
        .unwrap_or_else(|e| panic!("listed namespace {ns}: {e}"));
    }
    assert!(!namespaces.contains(&json!("time")));
    load_changed(&dir, |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}))
    })
    .unwrap_err();
}

#[test]
fn spec_writes_a_config_that_runs_and_refuses_to_overwrite_it() {
    let env = Env::new();
    let bundle = env.dir.path().join("b");
    common::rootfs::busybox_rootfs(&bundle.join("rootfs")).unwrap();
    env.ok(&["spec", "--bundle", bundle.to_str().unwrap()]);
    let written = fs::read_to_string(bundle.join("config.json")).unwrap();
    let err = env.fails(&["spec", "--bundle", bundle.to_str().unwrap()]);
    assert!(err.contains("config.json exists. Remove it first"), "{err}");
    assert_eq!(
        fs::read_to_string(bundle.join("config.json")).unwrap(),
        written
    );
    let cfg: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(cfg["process"]["terminal"], false);

    // The template as it is: create it, and look inside while its init waits for start.
    let init = env.create("c1", &bundle);
    assert_eq!(env.state("c1")["status"], "created");
    assert_eq!(env.ok(&["exec", "c1", "hostname"]), "runlambda\n");
    remove(&env, "c1", init);
}

#[test]
fn spec_lambda_adds_the_function_annotations() {
    let env = Env::new();
    let bundle = env.dir.path().join("b");
    fs::create_dir_all(bundle.join("rootfs")).unwrap();
    env.ok(&["spec", "--lambda", "--bundle", bundle.to_str().unwrap()]);
    let cfg: Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["annotations"],
        json!({
            "com.runlambda.mode": "lambda",
            "com.runlambda.memory-mb": "128",
            "com.runlambda.ephemeral-storage-mb": "512",
            "com.runlambda.timeout-s": "3"
        })
    );
    let spec =
        runlambda::bundle::load(&bundle, &runlambda::config::RuntimeConfig::default(), false)
            .unwrap_or_else(|e| panic!("{}", runlambda::error::chain(&e)));
    assert_eq!(spec.function.memory_mb, Some(128));
    assert_eq!(spec.function.ephemeral_storage_mb, Some(512));
    assert_eq!(spec.function.timeout_s, Some(3));
    assert_eq!(
        spec.function.mode,
        Some(runlambda::annotations::Mode::Lambda)
    );
}

#[test]
fn create_passes_exactly_the_preserved_fds() {
    let env = Env::new();
    let bundle = env.bundle("b", &config(&["sh", "-c", "echo via3 >&3"]));
    let out = env.dir.path().join("fd3");
    // As a shim does: fd 3 is open in `create`, and the process finds it after `start`.
    let create = |id: &str, preserve: &str| -> i32 {
        let pid_file = env.dir.path().join(format!("{id}.pid"));
        let line = format!(
            "exec 3>{out}; exec {bin} --config {config} create --bundle {bundle} \
             --pid-file {pid} --preserve-fds {preserve} {id} >/dev/null 2>&1",
            out = out.display(),
            bin = env!("CARGO_BIN_EXE_runlambda"),
            config = env.config.display(),
            bundle = bundle.display(),
            pid = pid_file.display(),
        );
        let status = std::process::Command::new("sh")
            .args(["-c", &line])
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        fs::read_to_string(pid_file).unwrap().parse().unwrap()
    };
    let pid = create("with", "1");
    env.ok(&["start", "with"]);
    assert_eq!(wait_exit(pid), 0);
    assert_eq!(fs::read_to_string(&out).unwrap(), "via3\n");
    env.ok(&["delete", "with"]);
    // Not preserved: fd 3 does not reach the process.
    let pid = create("without", "0");
    env.ok(&["start", "without"]);
    assert_ne!(wait_exit(pid), 0);
    assert_eq!(fs::read_to_string(&out).unwrap(), "");
    env.ok(&["delete", "without"]);
}

#[test]
fn update_changes_limits_from_flags_or_resources_json() {
    let env = Env::new();
    let init = running(&env, "c1", &sleeper());
    let pids_limit = |env: &Env| -> Value {
        let stats: Value = serde_json::from_str(&env.ok(&["events", "--stats", "c1"])).unwrap();
        stats["data"]["pids"]["limit"].clone()
    };
    env.ok(&["update", "--pids-limit", "10", "c1"]);
    assert_eq!(pids_limit(&env), 10);
    let mut update = env.command(&["update", "-r", "-", "c1"]);
    update
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = update.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": 20}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(pids_limit(&env), 20);
    // An update with no pids limit keeps the one in force.
    env.ok(&["update", "--cpu-shares", "512", "c1"]);
    assert_eq!(pids_limit(&env), 20);
    let err = env.fails(&["update", "-r", "/nonexistent/resources.json", "c1"]);
    assert!(err.contains("/nonexistent/resources.json"), "{err}");
    let bad = env.dir.path().join("bad.json");
    fs::write(&bad, br#"{"blockIO": {"weight": 10}}"#).unwrap();
    let err = env.fails(&["update", "-r", bad.to_str().unwrap(), "c1"]);
    assert!(err.contains("linux.resources.blockIO"), "{err}");
    // No memory controller on this host: refused, naming the way out.
    let err = env.fails(&["update", "--memory", "268435456", "c1"]);
    assert!(err.contains("allow_unenforced_memory"), "{err}");
    remove(&env, "c1", init);
}

/// `create` started the way systemd starts a socket-activated service: `socket` is fd 3,
/// `LISTEN_FDS=1` and `LISTEN_PID=listen_pid` (`$$` names runlambda itself, which the shell
/// becomes), with `--preserve-fds preserve` and fd 4 writing to `fd4`. Returns the init's pid;
/// the container's stdout goes to `<bundle>/out`.
fn create_activated(
    env: &Env,
    id: &str,
    bundle: &Path,
    socket: &std::os::unix::net::UnixListener,
    listen_pid: &str,
    preserve: &str,
) -> i32 {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let pid_file = bundle.join("pid");
    let line = format!(
        "LISTEN_FDS=1 LISTEN_PID={listen_pid} exec \"$@\" 4>{fd4}",
        fd4 = bundle.join("fd4").display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        &line,
        "sh",
        env!("CARGO_BIN_EXE_runlambda"),
        "--config",
    ])
    .arg(&env.config)
    .args(["create", "--preserve-fds", preserve, "--pid-file"])
    .arg(&pid_file)
    .arg("--bundle")
    .arg(bundle)
    .arg(id)
    .stdin(Stdio::null())
    .stdout(fs::File::create(bundle.join("out")).unwrap());
    let socket = socket.as_raw_fd();
    // SAFETY: runs in the forked child before exec, where only async-signal-safe calls are
    // allowed: dup2 and fcntl are, and the closure allocates nothing. Fd 3 ends up the socket
    // without CLOEXEC (dup2 onto itself would keep the flag), so it reaches runlambda.
    unsafe {
        cmd.pre_exec(move || {
            let ret = if socket == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(socket, 3)
            };
            if ret == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "create {id} failed");
    fs::read_to_string(pid_file).unwrap().parse().unwrap()
}

#[test]
fn listen_fds_reach_the_process_before_the_preserved_ones() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let socket_path = env.dir.path().join("activation.sock");
    let socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
    let inode = {
        use std::os::fd::AsRawFd;
        fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd()))
            .unwrap()
            .ino()
    };
    let report = "echo \"fds=${LISTEN_FDS-unset} pid=${LISTEN_PID-unset} \
                  fd3=$(readlink /proc/self/fd/3)\"; echo via4 >&4";
    let cfg = config(&["sh", "-c", report]);

    let bundle = env.bundle("activated", &cfg);
    let pid = create_activated(&env, "activated", &bundle, &socket, "$$", "1");
    env.ok(&["start", "activated"]);
    assert_eq!(wait_exit(pid), 0);
    assert_eq!(
        fs::read_to_string(bundle.join("out")).unwrap(),
        format!("fds=1 pid=1 fd3=socket:[{inode}]\n")
    );
    assert_eq!(fs::read_to_string(bundle.join("fd4")).unwrap(), "via4\n");
    env.ok(&["delete", "activated"]);

    // LISTEN_PID names another process: the variables were not meant for runlambda.
    let bundle = env.bundle("other", &cfg);
    let pid = create_activated(&env, "other", &bundle, &socket, "1", "0");
    env.ok(&["start", "other"]);
    assert_ne!(wait_exit(pid), 0);
    assert_eq!(
        fs::read_to_string(bundle.join("out")).unwrap(),
        "fds=unset pid=unset fd3=\n"
    );
    env.ok(&["delete", "other"]);
}
