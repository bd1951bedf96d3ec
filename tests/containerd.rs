//! containerd 1.6 and its runc v2 shim drive runlambda as they drive runc: `ctr run
//! --runc-binary runlambda` of a plain container (exit status, output) and of a Lambda
//! environment (`--annotation com.runlambda.mode=lambda`) that answers an invoke, `ctr task
//! exec`, `pause`/`resume`, `ps`, `kill`, `delete`, `ctr task metrics`; and containerd loads the
//! CRI stanza of `contrib/containerd/config-v2.toml` and lists the runlambda handler.
//!
//! Each test starts its own containerd as a plain process (no systemd) with its root, state
//! and sockets in a temporary directory and stops it by its pid when the test ends, failed or
//! not. The image is a docker-archive tar built here (one layer: the busybox rootfs) and
//! loaded with `ctr images import`: no registry is needed. The shim passes `--root
//! <runc-root>/default`; `RUNLAMBDA_CONFIG` in containerd's environment reaches runlambda through
//! the shim and gives it the test's cgroup parent.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::callers::{self, describe, invoke_unix};
use common::{eventually, lambda, Env};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};

const IMAGE: &str = "localhost/runlambda-busybox:latest";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which cgroup hierarchies containerd and its shims see.
#[derive(Clone, Copy, PartialEq, Eq)]
enum View {
    /// The test's own view (tests/cgroup-view.sh): on a hybrid host, v1 controllers without
    /// memory plus the cgroup2 mount.
    Inherited,
    /// Only the cgroup2 mount, at /sys/fs/cgroup, as on a pure cgroup v2 host.
    Cgroup2Only,
}

/// A containerd of this test, stopped (by pid) when dropped.
struct Containerd {
    env: Env,
    child: Child,
    address: PathBuf,
    runc_root: PathBuf,
    log: PathBuf,
}

impl Containerd {
    /// Starts containerd with a config of the test's paths plus `extra` TOML (where `{dir}`
    /// stands for containerd's directory in the test's), and waits for its socket.
    fn start(extra: &str, cri: bool, view: View) -> Containerd {
        // A Lambda environment has a memory size; the test view hides the v1 memory controller.
        let env = Env::with_config("allow_unenforced_memory = true");
        let dir = env.dir.path().join("containerd");
        fs::create_dir_all(&dir).unwrap();
        let address = dir.join("containerd.sock");
        let disabled = if cri {
            ""
        } else {
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        };
        let config = dir.join("config.toml");
        fs::write(
            &config,
            format!(
                "version = 2\nroot = {root:?}\nstate = {state:?}\n{disabled}\
                 [grpc]\n  address = {address:?}\n[ttrpc]\n  address = {ttrpc:?}\n\
                 [plugins.\"io.containerd.internal.v1.opt\"]\n  path = {opt:?}\n{extra}",
                extra = extra.replace("{dir}", dir.to_str().unwrap()),
                root = dir.join("root"),
                state = dir.join("state"),
                ttrpc = dir.join("containerd.sock.ttrpc"),
                opt = dir.join("opt"),
            ),
        )
        .unwrap();
        let log = dir.join("containerd.log");
        let mut cmd = match view {
            View::Inherited => Command::new("containerd"),
            View::Cgroup2Only => {
                // A mount namespace of its own whose /sys/fs/cgroup is the cgroup2 mount alone;
                // `exec` keeps the pid: the child is containerd itself.
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "sh", "-c"]);
                cmd.arg(
                    "set -e; stage=$(mktemp -d); \
                     mount --bind \"$(awk '$9 == \"cgroup2\" {print $5; exit}' /proc/self/mountinfo)\" \"$stage\"; \
                     umount -R /sys/fs/cgroup; mount --move \"$stage\" /sys/fs/cgroup; rmdir \"$stage\"; \
                     exec containerd \"$@\"",
                );
                cmd.arg("sh");
                cmd
            }
        };
        cmd.arg("--config")
            .arg(&config)
            .env("RUNLAMBDA_CONFIG", &env.config)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap());
        let child = cmd
            .spawn()
            .expect("cannot start containerd: install the Debian package containerd");
        let mut containerd = Containerd {
            runc_root: dir.join("runlambda"),
            env,
            child,
            address,
            log,
        };
        let start = Instant::now();
        while !containerd.address.exists() {
            if let Ok(Some(status)) = containerd.child.try_wait() {
                panic!("containerd exited ({status}): {}", containerd.log_text());
            }
            assert!(
                start.elapsed() < STARTUP_TIMEOUT,
                "containerd did not listen: {}",
                containerd.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        containerd
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.address).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args).output().expect("cannot run ctr")
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        callers::succeed(&mut self.ctr_command(args))
    }

    /// `ctr run` through runlambda, in a leaf under the test's cgroup parent, then ARGS.
    fn run(&self, id: &str, flags: &[&str], args: &[&str]) -> Output {
        let all = self.run_args(id, flags, args);
        self.ctr(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The arguments of ctr for [`Containerd::run`].
    fn run_args(&self, id: &str, flags: &[&str], args: &[&str]) -> Vec<String> {
        let mut all = vec![
            "run".to_string(),
            "--runc-binary".into(),
            env!("CARGO_BIN_EXE_runlambda").into(),
            "--runc-root".into(),
            self.runc_root.display().to_string(),
            "--cgroup".into(),
            format!("/{}/{id}", self.env.cgroup_parent),
            "--fifo-dir".into(),
            self.fifo_dir(),
        ];
        all.extend(flags.iter().map(|f| f.to_string()));
        all.extend([IMAGE.to_string(), id.to_string()]);
        all.extend(args.iter().map(|a| a.to_string()));
        all
    }

    /// Where ctr makes the stdio fifos (else under /run/containerd).
    fn fifo_dir(&self) -> String {
        self.env.dir.path().join("fifo").display().to_string()
    }

    /// Imports the busybox image: a docker-archive tar with one layer.
    fn import_busybox(&self) {
        let dir = self.env.dir.path().join("image");
        fs::create_dir_all(&dir).unwrap();
        let layer = callers::image_rootfs_tar(self.env.dir.path());
        fs::copy(&layer, dir.join("layer.tar")).unwrap();
        let mut sha = Command::new("sha256sum");
        let digest = callers::succeed(sha.arg(dir.join("layer.tar")));
        let digest = digest.split_whitespace().next().unwrap();
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]}
        });
        fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let manifest =
            json!([{"Config": "config.json", "RepoTags": [IMAGE], "Layers": ["layer.tar"]}]);
        fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
        let archive = self.env.dir.path().join("image.tar");
        let mut tar = Command::new("tar");
        tar.arg("-C").arg(&dir).arg("-cf").arg(&archive);
        callers::succeed(tar.args(["manifest.json", "config.json", "layer.tar"]));
        self.ctr_ok(&["images", "import", archive.to_str().unwrap()]);
    }

    /// The task's status column in `ctr task ls`.
    fn task_status(&self, id: &str) -> String {
        let list = self.ctr_ok(&["task", "ls"]);
        list.lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.first() == Some(&id)).then(|| cols.last().unwrap().to_string())
            })
            .next()
            .unwrap_or_default()
    }

    /// `runlambda state` on the shim's root (`--runc-root` + the namespace).
    fn runtime_state(&self, id: &str) -> Value {
        let root = self.runc_root.join("default");
        let out = self
            .env
            .ok(&["--root", root.to_str().unwrap(), "state", id]);
        serde_json::from_str(&out).unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks a failed test left: their shims exit once the tasks are deleted.
        if let Ok(out) = self.ctr_command(&["task", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.ctr(&["task", "delete", "--force", id]);
            }
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(WaitStatus::StillAlive) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    break;
                }
                _ => break,
            }
        }
    }
}

#[test]
fn ctr_runs_plain_containers_through_runlambda() {
    let containerd = Containerd::start("", false, View::Inherited);
    containerd.import_busybox();

    let out = containerd.run("once", &["--rm"], &["sh", "-c", "echo hello; exit 5"]);
    assert_eq!(out.status.code(), Some(5), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");

    let out = containerd.run("s1", &["-d"], &["sleep", "300"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(containerd.task_status("s1"), "RUNNING");
    assert_eq!(containerd.runtime_state("s1")["status"], "running");

    let exec = containerd.ctr(&[
        "task",
        "exec",
        "--fifo-dir",
        &containerd.fifo_dir(),
        "--exec-id",
        "e1",
        "s1",
        "sh",
        "-c",
        "cat /proc/1/cmdline; exit 6",
    ]);
    assert_eq!(exec.status.code(), Some(6), "{}", describe(&exec));
    // Inside the container's pid namespace: its pid 1 is the container's process.
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "sleep\u{0}300\u{0}");

    containerd.ctr_ok(&["task", "pause", "s1"]);
    assert_eq!(containerd.task_status("s1"), "PAUSED");
    assert_eq!(containerd.runtime_state("s1")["status"], "paused");
    containerd.ctr_ok(&["task", "resume", "s1"]);
    assert_eq!(containerd.task_status("s1"), "RUNNING");

    let init = containerd.runtime_state("s1")["pid"].to_string();
    let ps = containerd.ctr_ok(&["task", "ps", "s1"]);
    assert!(ps.lines().any(|l| l.starts_with(&init)), "{init}: {ps}");

    containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "s1"]);
    eventually(Duration::from_secs(10), "s1 to stop", || {
        containerd.task_status("s1") == "STOPPED"
    });
    containerd.ctr_ok(&["task", "delete", "s1"]);
    containerd.ctr_ok(&["container", "delete", "s1"]);
    let root = containerd.runc_root.join("default");
    let left = containerd
        .env
        .ok(&["--root", root.to_str().unwrap(), "list", "--quiet"]);
    assert_eq!(left, "");
}

#[test]
fn ctr_runs_a_lambda_environment_that_answers_an_invoke() {
    let containerd = Containerd::start("", false, View::Inherited);
    containerd.import_busybox();
    let function = lambda::python_function(containerd.env.dir.path());
    let task = format!(
        "type=bind,src={},dst=/var/task,options=rbind:ro",
        function.display()
    );
    let out = containerd.run(
        "fn",
        &[
            "-d",
            "--annotation",
            "com.runlambda.mode=lambda",
            "--annotation",
            "com.runlambda.function-name=echo",
            "--mount",
            "type=bind,src=/usr,dst=/usr,options=rbind:ro",
            "--mount",
            &task,
        ],
        &["/var/task/bootstrap"],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let socket = containerd.runc_root.join("default/fn/invoke.sock");
    let (status, head, body) = invoke_unix(&socket, br#"{"from": "containerd"}"#);
    assert_eq!(status, 200, "{head}\n{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["echo"]["from"], "containerd", "{body}");
    assert_eq!(answer["functionName"], "echo", "{body}");

    // SIGTERM: the environment runs its Shutdown phase and the init exits 0.
    containerd.ctr_ok(&["task", "kill", "fn"]);
    eventually(Duration::from_secs(10), "fn to stop", || {
        containerd.task_status("fn") == "STOPPED"
    });
    let deleted = containerd.ctr_ok(&["task", "delete", "fn"]);
    assert!(!deleted.contains("non-zero exit"), "{deleted}");
    containerd.ctr_ok(&["container", "delete", "fn"]);
}

#[test]
fn ctr_task_metrics_reads_the_containers_cgroup() {
    // The runc v2 shim reads the cgroup itself. On a hybrid host it loads every v1 controller
    // listed in /proc/<pid>/cgroup, and the test view hides the memory one; a cgroup2-only view
    // is what it expects of a pure v2 host. That view has no cpu controller here, so no CPU
    // shares (ctr's default is 1024, which runlambda would refuse to drop silently).
    let containerd = Containerd::start("", false, View::Cgroup2Only);
    containerd.import_busybox();
    let out = containerd.run("m1", &["-d", "--cpu-shares", "0"], &["sleep", "300"]);
    assert!(out.status.success(), "{}", describe(&out));
    let metrics = containerd.ctr_ok(&["task", "metrics", "--format", "json", "m1"]);
    let metrics: Value = serde_json::from_str(&metrics).unwrap();
    // The shim found the leaf and read it. This host's cgroup2 offers only hugetlb (memory,
    // cpu and pids are bound to v1), so that is the one controller with values.
    let hugetlb = metrics["hugetlb"].as_array().expect("hugetlb metrics");
    assert!(hugetlb.iter().any(|h| h["pagesize"] == "2MB"), "{metrics}");
    for controller in ["cpu", "memory", "pids"] {
        assert!(metrics[controller].is_object(), "{metrics}");
    }
    containerd.ctr_ok(&["task", "kill", "--signal", "SIGKILL", "m1"]);
    eventually(Duration::from_secs(10), "m1 to stop", || {
        containerd.task_status("m1") == "STOPPED"
    });
    containerd.ctr_ok(&["task", "delete", "m1"]);
    containerd.ctr_ok(&["container", "delete", "m1"]);
}

/// The contrib file without its `version` line (the test's config has one).
fn contrib(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/containerd")
        .join(name);
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("version"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn containerd_loads_the_contrib_cri_handler() {
    // The CRI plugin's CNI directories go under the test's directory, not the host's.
    let extra = contrib("config-v2.toml")
        + "\n[plugins.\"io.containerd.grpc.v1.cri\".cni]\n  \
           bin_dir = \"{dir}/cni/bin\"\n  conf_dir = \"{dir}/cni/net.d\"\n";
    let containerd = Containerd::start(&extra, true, View::Inherited);
    let log = containerd.log_text();
    assert!(
        !log.contains("failed to load plugin io.containerd.grpc.v1.cri"),
        "{log}"
    );
    assert!(
        log.contains("runlambda:{Type:io.containerd.runc.v2"),
        "no runlambda handler in the CRI config: {log}"
    );
    assert!(log.contains("PodAnnotations:[com.runlambda.*]"), "{log}");
    assert!(log.contains("BinaryName:/usr/local/bin/runlambda"), "{log}");
}

#[test]
fn the_contrib_v3_config_has_the_same_handler() {
    // No containerd 2.x is installable here: check the file's shape instead.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/containerd/config-v3.toml");
    let config: toml::Value = toml::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(config["version"].as_integer(), Some(3));
    let runtimes = &config["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"];
    assert_eq!(
        runtimes["runc"]["runtime_type"].as_str(),
        Some("io.containerd.runc.v2")
    );
    let handler = &runtimes["runlambda"];
    assert_eq!(
        handler["runtime_type"].as_str(),
        Some("io.containerd.runc.v2")
    );
    assert_eq!(
        handler["pod_annotations"].as_array().unwrap()[0].as_str(),
        Some("com.runlambda.*")
    );
    assert!(handler["options"]["BinaryName"].is_str());
}

#[test]
fn ctr_run_t_gives_the_process_a_terminal() {
    let containerd = Containerd::start("", false, View::Inherited);
    containerd.import_busybox();
    // ctr wants a terminal of its own with -t: `script` gives it one, as a user's shell would.
    let mut ctr = vec![
        "ctr".to_string(),
        "--address".into(),
        containerd.address.display().to_string(),
    ];
    ctr.extend(containerd.run_args("tty1", &["-t", "--rm"], &["sh", "-c", "tty; exit 3"]));
    let line = ctr
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("cannot run script (Debian package bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    // The container's own devpts, and a terminal's line ending (a CR from each of the two
    // ptys on the way: the container's and script's).
    assert!(text.contains("/dev/pts/0\r\r\n"), "{text:?}");
}
