//! podman 4 (with conmon) drives runlambda as its OCI runtime: `run --rm` passes the exit
//! status on, a detached container takes `exec`, `pause`/`unpause`, `stop` and `rm`, runlambda's
//! errors reach the user through `--log-format json`, and `--annotation
//! com.runlambda.mode=lambda` makes a Lambda environment that answers an invoke.
//!
//! Each test has a podman of its own: containers.conf and storage.conf in a temporary directory
//! (`CONTAINERS_CONF`, `CONTAINERS_STORAGE_CONF`), so the host's podman state is untouched, set
//! up for a host without systemd (cgroupfs, file events, no network setup, ulimits within the
//! host's hard limits; podman's own default seccomp profile, which runlambda compiles), and a
//! cgroup parent of its own. podman calls the runtime
//! through a small wrapper called `runlambda` that adds the test's `--config` and `--root`
//! (podman strips the environment of the verbs it runs itself, so the runtime config cannot
//! travel as `RUNLAMBDA_CONFIG`) and appends its arguments to a file, so the tests can check
//! the calls podman made. The wrapper's name is in `runtime_supports_json`, which makes podman
//! pass `--log-format=json --log FILE`. The state root is a short path: podman's ids are 64
//! characters, and `<root>/<id>/notify.sock` must fit in a unix socket address (108 bytes),
//! as it does under the default `/run/runlambda`.
//! `podman run -t` and `exec -t` give the process a terminal through conmon's console socket.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::callers::{self, describe, invoke_unix};
use common::{eventually, lambda, Env};
use serde_json::Value;

const IMAGE: &str = "localhost/runlambda-busybox:latest";

/// One test's podman: its configuration, storage and runtime wrapper, all under the test's
/// [`Env`] directory, and the cgroup parent its containers and conmon go under.
struct Podman {
    env: Env,
    state_root: tempfile::TempDir,
    wrapper: PathBuf,
    calls: PathBuf,
    conf: PathBuf,
    storage_conf: PathBuf,
    cgroup_parent: String,
}

impl Podman {
    fn new() -> Podman {
        // A Lambda environment has a memory size; the test view hides the v1 memory controller.
        let env = Env::with_config("allow_unenforced_memory = true");
        let state_root = tempfile::Builder::new().prefix("rl").tempdir().unwrap();
        let dir = env.dir.path().join("podman");
        fs::create_dir_all(dir.join("bin")).unwrap();
        let calls = dir.join("calls.log");
        let wrapper = dir.join("bin/runlambda");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' --config '{}' --root '{}' \"$@\"\n",
                calls.display(),
                env!("CARGO_BIN_EXE_runlambda"),
                env.config.display(),
                state_root.path().display()
            ),
        )
        .unwrap();
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
        let storage_conf = dir.join("storage.conf");
        fs::write(
            &storage_conf,
            format!(
                "[storage]\ndriver = \"vfs\"\nrunroot = {:?}\ngraphroot = {:?}\n",
                dir.join("runroot"),
                dir.join("graphroot")
            ),
        )
        .unwrap();
        let conf = dir.join("containers.conf");
        fs::write(
            &conf,
            format!(
                r#"[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {events:?}
lock_type = "file"
tmp_dir = {tmp:?}
network_config_dir = {net:?}
volume_path = {volumes:?}
runtime = "runlambda"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "runlambda"]

[engine.runtimes]
runlambda = [{wrapper:?}]
"#,
                events = dir.join("events.log"),
                tmp = dir.join("tmp"),
                net = dir.join("networks"),
                volumes = dir.join("volumes"),
                wrapper = wrapper,
            ),
        )
        .unwrap();
        let cgroup_parent = format!("/{}", env.cgroup_parent);
        Podman {
            env,
            state_root,
            wrapper,
            calls,
            conf,
            storage_conf,
            cgroup_parent,
        }
    }

    /// `podman --runtime <wrapper> ARGS` with this test's configuration.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", &self.conf)
            .env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .arg("--runtime")
            .arg(&self.wrapper)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .expect("cannot run podman: install the Debian package podman")
    }

    /// Runs podman, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        callers::succeed(&mut self.command(args))
    }

    /// `podman run` with the test's cgroup parent, then ARGS.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["run", "--cgroup-parent", &self.cgroup_parent];
        all.extend_from_slice(args);
        self.output(&all)
    }

    /// Imports the busybox image (`podman import` of a rootfs tarball: no registry needed).
    fn import_busybox(&self) {
        let tar = callers::image_rootfs_tar(self.env.dir.path());
        self.ok(&["import", tar.to_str().unwrap(), IMAGE]);
    }

    fn status(&self, name: &str) -> String {
        self.ok(&["inspect", "--format", "{{.State.Status}}", name])
            .trim()
            .to_string()
    }

    /// `runlambda ARGS` on this test's state root; asserts success, returns stdout.
    fn runtime(&self, args: &[&str]) -> String {
        let mut cmd = self
            .env
            .command(&["--root", self.state_root.path().to_str().unwrap()]);
        callers::succeed(cmd.args(args))
    }

    /// The container's status as `runlambda state` reports it.
    fn runtime_status(&self, id: &str) -> String {
        let state: Value = serde_json::from_str(&self.runtime(&["state", id])).unwrap();
        state["status"].as_str().unwrap().to_string()
    }

    /// The runtime calls podman and conmon made, one line each.
    fn calls(&self) -> String {
        fs::read_to_string(&self.calls).unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Whatever a failed test left running; then conmon's cgroups, which podman leaves.
        let _ = self.output(&["rm", "--all", "--force", "--time", "0"]);
        for mount in callers::cgroup_mounts() {
            let conmon = mount
                .join(self.cgroup_parent.trim_start_matches('/'))
                .join("conmon");
            // conmon's exit command (`podman container cleanup`) may run there a moment longer.
            let deadline = Instant::now() + Duration::from_secs(10);
            while conmon.exists() && fs::remove_dir(&conmon).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[test]
fn podman_run_rm_exits_with_the_process_status() {
    let podman = Podman::new();
    podman.import_busybox();
    let out = podman.run(&["--rm", IMAGE, "sh", "-c", "echo hello from podman; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from podman\n");
    let calls = podman.calls();
    assert!(
        calls
            .lines()
            .any(|l| l.starts_with("--log-format=json --log ")
                && l.contains(" create --bundle ")
                && l.contains(" --pid-file ")),
        "{calls}"
    );
    assert!(calls.lines().any(|l| l.starts_with("start ")), "{calls}");
    assert!(
        calls.lines().any(|l| l.starts_with("delete --force ")),
        "{calls}"
    );
    // --rm: nothing is left in runlambda's state root.
    assert_eq!(podman.runtime(&["list", "--quiet"]), "");
}

#[test]
fn podman_containers_run_under_podmans_seccomp_profile() {
    let podman = Podman::new();
    podman.import_busybox();
    // podman's default profile denies what a container should not do (here: changing the
    // system clock) with EPERM, and lets ordinary programs run.
    let out = podman.run(&[
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; date -s 2000-01-01 2>&1; true",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Seccomp:\t2"), "{stdout}");
    assert!(stdout.contains("Operation not permitted"), "{stdout}");
}

#[test]
fn podman_shows_runlambdas_error_when_create_fails() {
    let podman = Podman::new();
    podman.import_busybox();
    let out = podman.run(&[
        "--rm",
        "--annotation",
        "com.runlambda.memory-mb=1",
        IMAGE,
        "true",
    ]);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("annotation com.runlambda.memory-mb: \"1\" is out of range"),
        "{stderr}"
    );
    assert_eq!(podman.runtime(&["list", "--quiet"]), "");
}

#[test]
fn podman_detached_container_takes_exec_pause_unpause_stop_and_rm() {
    let podman = Podman::new();
    podman.import_busybox();
    let out = podman.run(&["-d", "--name", "s1", IMAGE, "sleep", "300"]);
    assert!(out.status.success(), "{}", describe(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(podman.status("s1"), "running");
    assert_eq!(podman.runtime_status(&id), "running");

    let out = podman.output(&["exec", "s1", "sh", "-c", "echo in $(hostname); exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("in {}\n", &id[..12])
    );

    podman.ok(&["pause", "s1"]);
    assert_eq!(podman.status("s1"), "paused");
    assert_eq!(podman.runtime_status(&id), "paused");
    podman.ok(&["unpause", "s1"]);
    assert_eq!(podman.status("s1"), "running");

    // sleep as pid 1 ignores SIGTERM: podman sends it, waits a second, then SIGKILL.
    podman.ok(&["stop", "--time", "1", "s1"]);
    assert_eq!(podman.status("s1"), "exited");
    let code = podman.ok(&["inspect", "--format", "{{.State.ExitCode}}", "s1"]);
    assert_eq!(code.trim(), "137");
    podman.ok(&["rm", "s1"]);
    assert_eq!(podman.runtime(&["list", "--quiet"]), "");

    let calls = podman.calls();
    for verb in [
        "exec --pid-file ".to_string(),
        format!("pause {id}"),
        format!("resume {id}"),
        format!("kill {id} 15"),
        format!("kill {id} 9"),
        format!("delete --force {id}"),
    ] {
        assert!(calls.contains(&verb), "no {verb:?} in\n{calls}");
    }
    assert!(
        calls
            .lines()
            .any(|l| l.contains(" exec ") && l.contains("--detach") && l.contains("--process")),
        "{calls}"
    );
}

#[test]
fn podman_run_t_and_exec_t_give_the_process_a_terminal() {
    let podman = Podman::new();
    podman.import_busybox();
    // Output through a terminal ends its lines with CR LF.
    let out = podman.run(&[
        "--rm",
        "-t",
        IMAGE,
        "sh",
        "-c",
        "tty; [ -t 0 ] && echo stdin-tty",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "/dev/pts/0\r\nstdin-tty\r\n"
    );

    let out = podman.run(&["-d", "--name", "s1", IMAGE, "sleep", "300"]);
    assert!(out.status.success(), "{}", describe(&out));
    let out = podman.output(&["exec", "-t", "s1", "sh", "-c", "tty; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/dev/pts/0\r\n");
    // Without -t the same container's exec has no terminal.
    let out = podman.output(&["exec", "s1", "tty"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "not a tty\n");
    podman.ok(&["rm", "--force", "--time", "0", "s1"]);

    let calls = podman.calls();
    assert!(
        calls
            .lines()
            .any(|l| l.contains(" create ") && l.contains("--console-socket")),
        "{calls}"
    );
    assert!(
        calls
            .lines()
            .any(|l| l.contains(" exec ") && l.contains("--tty") && l.contains("--console-socket")),
        "{calls}"
    );
}

#[test]
fn podman_runs_a_lambda_environment_that_answers_an_invoke() {
    let podman = Podman::new();
    podman.import_busybox();
    let function = lambda::python_function(podman.env.dir.path());
    let task = format!("{}:/var/task:ro", function.display());
    let out = podman.run(&[
        "-d",
        "--name",
        "fn",
        "--annotation",
        "com.runlambda.mode=lambda",
        "--annotation",
        "com.runlambda.function-name=echo",
        "-v",
        "/usr:/usr:ro",
        "-v",
        &task,
        IMAGE,
        "/var/task/bootstrap",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let socket = podman.state_root.path().join(&id).join("invoke.sock");
    let (status, head, body) = invoke_unix(&socket, br#"{"from": "podman"}"#);
    assert_eq!(status, 200, "{head}\n{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["echo"]["from"], "podman", "{body}");
    assert_eq!(answer["functionName"], "echo", "{body}");
    // The function's log and the platform's lines reach podman through conmon.
    eventually(
        Duration::from_secs(10),
        "the REPORT line in podman logs",
        || podman.ok(&["logs", "fn"]).contains("REPORT RequestId"),
    );

    // SIGTERM: the environment runs its Shutdown phase and the init exits 0.
    podman.ok(&["stop", "--time", "10", "fn"]);
    let code = podman.ok(&["inspect", "--format", "{{.State.ExitCode}}", "fn"]);
    assert_eq!(code.trim(), "0");
    podman.ok(&["rm", "fn"]);
    assert_eq!(podman.runtime(&["list", "--quiet"]), "");
}
