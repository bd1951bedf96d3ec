//! Helpers for the privileged integration tests: a private state root, runtime config and
//! cgroup parent per test, busybox bundles, and a way to call the real `runlambda` binary.
//! Every test gets its own temporary directory, so `cargo test` can run them in parallel.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod callers;
pub mod lambda;
pub mod rootfs;
pub mod uml;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The cgroup2 mount of this host, read from mountinfo.
pub fn unified_mount() -> PathBuf {
    let text = fs::read_to_string(runlambda::mountinfo::SELF_MOUNTINFO).unwrap();
    runlambda::mountinfo::parse(&text)
        .unwrap()
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.mount_point)
        .expect("no cgroup2 mount on this host: runlambda needs one")
}

/// The mount point of the v1 hierarchy of `controller`, if one is visible.
pub fn v1_mount(controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(runlambda::mountinfo::SELF_MOUNTINFO).unwrap();
    runlambda::mountinfo::parse(&text)
        .unwrap()
        .into_iter()
        .find(|m| m.fstype == "cgroup" && m.has_super_option(controller))
        .map(|m| m.mount_point)
}

/// The pids in the `cgroup.procs` of cgroup directory `dir`.
pub fn cgroup_procs(dir: &Path) -> std::collections::BTreeSet<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect()
}

/// Fails the test, with the reason, when the host's v1 memory hierarchy is visible: these tests
/// create cgroups, and must never do so there.
pub fn require_safe_cgroup_view() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the integration tests need root"
    );
    // The UML guest's hierarchies are its own, v1 memory included (the hybrid tier mounts one).
    if uml::in_guest() {
        return;
    }
    assert!(
        v1_mount("memory").is_none(),
        "the host's v1 memory cgroup hierarchy is visible: run the tests through \
         tests/cgroup-view.sh (e.g. `tests/cgroup-view.sh cargo test`)"
    );
}

/// One test's private runtime: state root, config file, cgroup parent, scratch space.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    /// The cgroup parent, relative to the hierarchy roots.
    pub cgroup_parent: String,
}

impl Env {
    pub fn new() -> Env {
        Self::with_config("")
    }

    /// An environment whose runtime config has these extra TOML lines.
    pub fn with_config(extra: &str) -> Env {
        require_safe_cgroup_view();
        let dir = tempfile::Builder::new()
            .prefix("runlambda-test")
            .tempdir()
            .unwrap();
        let cgroup_parent = format!(
            "runlambda-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let root = dir.path().join("state");
        let config = dir.path().join("runlambda.toml");
        fs::write(
            &config,
            format!(
                "state_root = {:?}\ncgroup_parent = {:?}\n{extra}\n",
                root.display().to_string(),
                cgroup_parent
            ),
        )
        .unwrap();
        Env {
            dir,
            root,
            config,
            cgroup_parent,
        }
    }

    /// A bundle named `name` with a busybox rootfs and this config.json.
    pub fn bundle(&self, name: &str, config: &Value) -> PathBuf {
        let bundle = self.dir.path().join(name);
        rootfs::busybox_rootfs(&bundle.join("rootfs")).unwrap();
        fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
        bundle
    }

    /// `runlambda --config <ours> ARGS`, stdio nulled (the container keeps `create`'s stdio).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runlambda"));
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "runlambda {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "runlambda {args:?} succeeded but should have failed"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// `create`s a container whose stdout and stderr go to `<bundle>/out` and `<bundle>/err`;
    /// returns the init's pid (from `--pid-file`).
    pub fn create(&self, id: &str, bundle: &Path) -> i32 {
        self.create_with(&[], id, bundle)
    }

    /// [`Env::create`] with global flags before the verb.
    pub fn create_with(&self, global: &[&str], id: &str, bundle: &Path) -> i32 {
        let pid_file = bundle.join("pid");
        let out = fs::File::create(bundle.join("out")).unwrap();
        let err = fs::File::create(bundle.join("err")).unwrap();
        let mut args = global.to_vec();
        args.extend([
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "--pid-file",
            pid_file.to_str().unwrap(),
            id,
        ]);
        let status = self
            .command(&args)
            .stdout(out)
            .stderr(err)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "create {id} failed: {}",
            fs::read_to_string(bundle.join("err")).unwrap_or_default()
        );
        fs::read_to_string(pid_file).unwrap().parse().unwrap()
    }

    /// create + start, then wait for the init to exit; returns (exit status, stdout, stderr).
    pub fn run_to_exit(&self, id: &str, bundle: &Path) -> (i32, String, String) {
        let pid = self.create(id, bundle);
        self.ok(&["start", id]);
        let code = wait_exit(pid);
        let out = fs::read_to_string(bundle.join("out")).unwrap();
        let err = fs::read_to_string(bundle.join("err")).unwrap();
        self.ok(&["delete", id]);
        (code, out, err)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// The leaf's directory in the cgroup2 hierarchy.
    pub fn cgroup_dir(&self, id: &str) -> PathBuf {
        unified_mount().join(&self.cgroup_parent).join(id)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever a failed test left: force-delete its containers, then the parent cgroup.
        if let Ok(out) = self.command(&["list", "--quiet"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = self.run(&["delete", "--force", id]);
            }
        }
        let _ = fs::remove_dir(unified_mount().join(&self.cgroup_parent));
        // A hybrid host's v1 hierarchies get the parent too when a test sets a limit there.
        for mount in v1_mounts() {
            let _ = fs::remove_dir(mount.join(&self.cgroup_parent));
        }
    }
}

/// The mount points of the cgroup v1 hierarchies this test can see.
fn v1_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string(runlambda::mountinfo::SELF_MOUNTINFO).unwrap();
    runlambda::mountinfo::parse(&text)
        .unwrap()
        .into_iter()
        .filter(|m| m.fstype == "cgroup")
        .map(|m| m.mount_point)
        .collect()
}

/// Reaps our child `pid` (the init is our child through CLONE_PARENT) and returns its exit
/// code, or 128 + the signal that killed it.
pub fn wait_exit(pid: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap() {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        other => panic!("unexpected wait status {other:?}"),
    }
}

/// Polls `check` every 10 ms until it holds, for at most `limit`.
pub fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The config.json `runlambda spec` writes (runc's template without a terminal), with a
/// writable root, running `args`.
pub fn config(args: &[&str]) -> Value {
    let mut config = runlambda::template::template(false);
    config["process"]["args"] = json!(args);
    config["root"]["readonly"] = json!(false);
    config
}

/// Where [`in_user_namespace`] maps the container's uid and gid 0.
pub const USERNS_HOST_ID: u32 = 200_000;

/// Gives `config` a new user namespace mapping 65,536 ids from [`USERNS_HOST_ID`].
pub fn in_user_namespace(config: &mut Value) {
    let map = json!([{"containerID": 0, "hostID": USERNS_HOST_ID, "size": 65536}]);
    config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    config["linux"]["uidMappings"] = map.clone();
    config["linux"]["gidMappings"] = map;
}
