//! The runc verbs as a caller sees them: status transitions, the cgroup leaf, pause/resume
//! through the freezer, kill and delete leaving nothing behind, and the errors for unknown ids,
//! wrong states and bad bundles.

mod common;

use std::fs;
use std::time::Duration;

use common::{config, eventually, wait_exit, Env};
use serde_json::json;

fn sleeper() -> serde_json::Value {
    config(&["sleep", "300"])
}

#[test]
fn status_goes_created_running_stopped_and_state_is_runcs_json() {
    let env = Env::new();
    let bundle = env.bundle("b", &sleeper());
    let pid = env.create("c1", &bundle);
    let state = env.state("c1");
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["id"], "c1");
    assert_eq!(state["bundle"], bundle.to_str().unwrap());
    assert_eq!(state["rootfs"], bundle.join("rootfs").to_str().unwrap());
    assert!(state["ociVersion"].as_str().unwrap().starts_with("1."));
    assert!(state["created"].as_str().unwrap().ends_with('Z'));
    env.ok(&["start", "c1"]);
    assert_eq!(env.state("c1")["status"], "running");
    let err = env.fails(&["start", "c1"]);
    assert!(
        err.contains("container c1 is running: cannot start it"),
        "{err}"
    );
    let err = env.fails(&["delete", "c1"]);
    assert!(
        err.contains("container c1 is running: cannot delete it"),
        "{err}"
    );
    env.ok(&["kill", "c1", "KILL"]);
    assert_eq!(wait_exit(pid), 128 + 9);
    assert_eq!(env.state("c1")["status"], "stopped");
    let err = env.fails(&["kill", "c1", "TERM"]);
    assert!(err.contains("container not running"), "{err}");
    env.ok(&["delete", "c1"]);
    let err = env.fails(&["state", "c1"]);
    assert!(err.contains("container c1 does not exist"), "{err}");
    // As with runc, only a forced delete of a container already gone succeeds (containerd's
    // shim cleanup and podman call it so).
    let err = env.fails(&["delete", "c1"]);
    assert!(err.contains("container c1 does not exist"), "{err}");
    env.ok(&["delete", "--force", "c1"]);
}

#[test]
fn the_init_sits_in_the_leaf_cgroup() {
    let env = Env::new();
    let bundle = env.bundle("b", &sleeper());
    let pid = env.create("c1", &bundle);
    let procs = fs::read_to_string(env.cgroup_dir("c1").join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());
    // Inside, the cgroup namespace makes the leaf the root.
    let self_cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let expected = format!("0::/{}/c1", env.cgroup_parent);
    assert!(self_cgroup.lines().any(|l| l == expected), "{self_cgroup}");
    env.ok(&["delete", "--force", "c1"]);
    wait_exit(pid);
}

#[test]
fn signals_by_name_and_number_reach_the_init() {
    let env = Env::new();
    // Busybox sh as pid 1 ignores SIGTERM unless it traps it.
    let bundle = env.bundle(
        "b",
        &config(&[
            "sh",
            "-c",
            "trap 'exit 42' USR1; while true; do sleep 0.1; done",
        ]),
    );
    let pid = env.create("c1", &bundle);
    env.ok(&["start", "c1"]);
    std::thread::sleep(Duration::from_millis(200));
    env.ok(&["kill", "c1", "usr1"]);
    assert_eq!(wait_exit(pid), 42);
    env.ok(&["delete", "c1"]);
    let err = env.fails(&["kill", "c1", "9"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn pause_freezes_every_process_and_resume_thaws_them() {
    let env = Env::new();
    let out = tempfile::tempdir().unwrap();
    let mut cfg = config(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /out/count; done",
    ]);
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind"]
    }));
    let bundle = env.bundle("b", &cfg);
    let pid = env.create("c1", &bundle);
    env.ok(&["start", "c1"]);
    let count = || -> u64 {
        fs::read_to_string(out.path().join("count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    eventually(Duration::from_secs(5), "the counter to start", || {
        count() > 10
    });
    env.ok(&["pause", "c1"]);
    assert_eq!(env.state("c1")["status"], "paused");
    let events = fs::read_to_string(env.cgroup_dir("c1").join("cgroup.events")).unwrap();
    assert!(events.contains("frozen 1"), "{events}");
    let frozen_at = count();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(count(), frozen_at, "the counter advanced while paused");
    env.ok(&["resume", "c1"]);
    assert_eq!(env.state("c1")["status"], "running");
    eventually(Duration::from_secs(5), "the counter to advance", || {
        count() > frozen_at
    });
    env.ok(&["delete", "--force", "c1"]);
    assert_eq!(wait_exit(pid), 128 + 9);
}

#[test]
fn delete_force_leaves_no_process_cgroup_or_state() {
    let env = Env::new();
    let bundle = env.bundle("b", &config(&["sh", "-c", "sleep 300 & sleep 300"]));
    let pid = env.create("c1", &bundle);
    env.ok(&["start", "c1"]);
    let leaf = env.cgroup_dir("c1");
    eventually(Duration::from_secs(5), "both sleeps", || {
        fs::read_to_string(leaf.join("cgroup.procs"))
            .unwrap()
            .lines()
            .count()
            == 2
    });
    env.ok(&["pause", "c1"]);
    // A paused container can be force-deleted too.
    env.ok(&["delete", "--force", "c1"]);
    assert_eq!(wait_exit(pid), 128 + 9);
    assert!(!leaf.exists(), "cgroup {} is left", leaf.display());
    assert!(!env.root.join("c1").exists(), "state directory is left");
    assert_eq!(env.ok(&["list", "--quiet"]), "");
}

#[test]
fn a_created_container_can_be_deleted_and_its_init_goes_away() {
    let env = Env::new();
    let bundle = env.bundle("b", &sleeper());
    let pid = env.create("c1", &bundle);
    env.ok(&["delete", "c1"]);
    assert_eq!(wait_exit(pid), 128 + 9);
    assert!(!env.cgroup_dir("c1").exists());
}

#[test]
fn list_shows_every_container_in_table_and_json() {
    let env = Env::new();
    let bundle = env.bundle("b", &sleeper());
    let p1 = env.create("one", &bundle);
    let p2 = env.create("two", &bundle);
    let list: serde_json::Value =
        serde_json::from_str(&env.ok(&["list", "--format", "json"])).unwrap();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["one", "two"]);
    let table = env.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains("one") && table.contains("created"),
        "{table}"
    );
    for (id, pid) in [("one", p1), ("two", p2)] {
        env.ok(&["delete", "--force", id]);
        wait_exit(pid);
    }
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_container_survives() {
    let env = Env::new();
    let bundle = env.bundle("b", &sleeper());
    let pid = env.create("c1", &bundle);
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    assert!(err.contains("container c1 already exists"), "{err}");
    assert_eq!(env.state("c1")["status"], "created");
    env.ok(&["delete", "c1"]);
    wait_exit(pid);
}

#[test]
fn a_bad_annotation_is_named_and_nothing_is_created() {
    let env = Env::new();
    let mut cfg = sleeper();
    cfg["annotations"] = json!({"com.runlambda.memory-mb": "64"});
    let bundle = env.bundle("b", &cfg);
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    assert!(err.contains("com.runlambda.memory-mb"), "{err}");
    assert!(err.contains("64"), "{err}");
    assert!(!env.root.join("c1").exists());
    assert!(!env.cgroup_dir("c1").exists());
}

#[test]
fn a_missing_executable_fails_create_with_its_name() {
    let env = Env::new();
    let bundle = env.bundle("b", &config(&["no-such-program"]));
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    assert!(err.contains("no-such-program"), "{err}");
    assert!(err.contains("not found"), "{err}");
    assert!(!env.root.join("c1").exists());
    assert!(!env.cgroup_dir("c1").exists());
}

#[test]
fn a_memory_limit_without_a_memory_controller_is_refused_unless_allowed() {
    // On this kind of host (hybrid, v1 memory hidden) no memory controller is available.
    let env = Env::new();
    let mut cfg = sleeper();
    cfg["annotations"] = json!({"com.runlambda.memory-mb": "256"});
    let bundle = env.bundle("b", &cfg);
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c1"]);
    assert!(err.contains("memory"), "{err}");
    assert!(err.contains("allow_unenforced_memory"), "{err}");
    assert!(!env.cgroup_dir("c1").exists());

    let env = Env::with_config("allow_unenforced_memory = true");
    let bundle = env.bundle("b", &cfg);
    let pid = env.create("c1", &bundle);
    assert_eq!(env.state("c1")["memoryLimit"], "unenforced");
    env.ok(&["delete", "c1"]);
    wait_exit(pid);
}

#[test]
fn errors_go_to_the_log_as_logrus_json() {
    let env = Env::new();
    let log = env.dir.path().join("log.json");
    let err = env.fails(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "ghost",
    ]);
    assert!(err.contains("container ghost does not exist"), "{err}");
    let line = fs::read_to_string(&log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(entry["level"], "error");
    assert_eq!(entry["msg"], "container ghost does not exist");
}

#[test]
fn systemd_cgroup_paths_become_the_units_cgroup() {
    let env = Env::new();
    let slice = format!("rltest{}.slice", std::process::id());
    let mut cfg = sleeper();
    cfg["linux"]["cgroupsPath"] = json!(format!("{slice}:runlambda:c1"));
    let bundle = env.bundle("b", &cfg);
    let pid = env.create_with(&["--systemd-cgroup"], "c1", &bundle);
    let scope = common::unified_mount()
        .join(&slice)
        .join("runlambda-c1.scope");
    let procs = fs::read_to_string(scope.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());
    env.ok(&["delete", "c1"]);
    wait_exit(pid);
    assert!(!scope.exists());
    fs::remove_dir(common::unified_mount().join(&slice)).unwrap();
    let mut bad = sleeper();
    bad["linux"]["cgroupsPath"] = json!("/not/systemd");
    let bad_bundle = env.bundle("bad", &bad);
    let err = env.fails(&[
        "--systemd-cgroup",
        "create",
        "--bundle",
        bad_bundle.to_str().unwrap(),
        "c3",
    ]);
    assert!(err.contains("cgroupsPath \"/not/systemd\""), "{err}");
    assert!(err.contains("expected slice:prefix:name"), "{err}");
}

#[test]
fn every_verb_works_under_a_state_root_deeper_than_sun_path() {
    let env = Env::new();
    // Deeper than a unix socket address holds: the notify socket is reached through its
    // directory.
    let root = env.dir.path().join("r".repeat(60)).join("s".repeat(60));
    let root_arg = root.to_str().unwrap();
    assert!(root.join("c1/notify.sock").as_os_str().len() > 108);
    let bundle = env.bundle("b", &sleeper());
    let pid = env.create_with(&["--root", root_arg], "c1", &bundle);
    let state = |env: &Env| -> serde_json::Value {
        serde_json::from_str(&env.ok(&["--root", root_arg, "state", "c1"])).unwrap()
    };
    assert_eq!(state(&env)["status"], "created");
    env.ok(&["--root", root_arg, "start", "c1"]);
    assert_eq!(state(&env)["status"], "running");
    env.ok(&["--root", root_arg, "kill", "c1", "KILL"]);
    assert_eq!(wait_exit(pid), 128 + 9);
    assert_eq!(state(&env)["status"], "stopped");
    env.ok(&["--root", root_arg, "delete", "c1"]);
    assert!(!root.join("c1").exists());
}
