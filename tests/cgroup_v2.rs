//! The limits that need a memory, pids and cpu controller, proven in a User-Mode Linux guest:
//! pure cgroup v2 (`memory.max`, `memory.swap.max`, `pids.max`, `cpu.max`, freezing), and
//! once with a v1 memory hierarchy beside cgroup2 (the hybrid back end). Each test boots its
//! own guest and re-runs itself inside it (see tests/common/uml.rs).

mod common;

use std::fs;
use std::time::Duration;

use common::{config, eventually, uml, wait_exit, Env};
use serde_json::json;

/// A process that reads 192 MiB into memory: `tail` keeps the one long line it sees.
const ALLOCATE_192M: &str =
    "dd if=/dev/zero bs=1M count=192 2>/dev/null | tail > /dev/null; echo tail=$?";

fn read(path: impl AsRef<std::path::Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn event(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn memory_limit_from_the_annotation_is_enforced_without_swap() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest(
            "memory_limit_from_the_annotation_is_enforced_without_swap",
        );
    }
    let env = Env::new();
    let mut cfg = config(&["sh", "-c", ALLOCATE_192M]);
    cfg["annotations"] = json!({"com.runlambda.memory-mb": "128"});
    let bundle = env.bundle("b", &cfg);
    let pid = env.create("mem", &bundle);
    let leaf = env.cgroup_dir("mem");
    assert_eq!(read(leaf.join("memory.max")), (128u64 << 20).to_string());
    assert_eq!(read(leaf.join("memory.swap.max")), "0");
    assert_eq!(env.state("mem")["memoryLimit"], "enforced");
    env.ok(&["start", "mem"]);
    assert_eq!(wait_exit(pid), 0);
    // The OOM killer took `tail` (SIGKILL: 137), and the kernel counted it.
    assert_eq!(read(bundle.join("out")), "tail=137");
    let events = read(leaf.join("memory.events"));
    assert!(event(&events, "oom_kill") >= 1, "{events}");
    let peak: u64 = read(leaf.join("memory.peak")).parse().unwrap();
    assert!(peak <= 128 << 20, "peak {peak} above the limit");
    env.ok(&["delete", "mem"]);
}

#[test]
fn pids_limit_contains_a_fork_bomb() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest("pids_limit_contains_a_fork_bomb");
    }
    let env = Env::new();
    let mut cfg = config(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 64 ]; do sleep 60 & i=$((i+1)); done 2>/dev/null; wait",
    ]);
    cfg["linux"]["resources"]["pids"] = json!({"limit": 16});
    let bundle = env.bundle("b", &cfg);
    let pid = env.create("pids", &bundle);
    let leaf = env.cgroup_dir("pids");
    assert_eq!(read(leaf.join("pids.max")), "16");
    env.ok(&["start", "pids"]);
    eventually(Duration::from_secs(20), "forks to hit pids.max", || {
        fs::read_to_string(leaf.join("pids.events")).is_ok_and(|events| event(&events, "max") > 0)
    });
    let current: u64 = read(leaf.join("pids.current")).parse().unwrap();
    assert!(current <= 16, "pids.current {current} above pids.max");
    // busybox sh may give up once fork fails; either way delete --force ends it all.
    env.ok(&["delete", "--force", "pids"]);
    wait_exit(pid);
    assert!(!leaf.exists());
}

#[test]
fn cpu_share_and_bandwidth_follow_memory_as_in_lambda() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest("cpu_share_and_bandwidth_follow_memory_as_in_lambda");
    }
    let env = Env::new();
    // 1,769 MB is one full CPU; 128 MB is 128/1769 of one.
    for (mb, cpu_max, weight) in [
        ("1769", "100000 100000", "100"),
        ("128", "7235 100000", "7"),
    ] {
        let mut cfg = config(&["sleep", "60"]);
        cfg["annotations"] = json!({"com.runlambda.memory-mb": mb});
        let id = format!("cpu{mb}");
        let pid = env.create(&id, &env.bundle(&id, &cfg));
        let leaf = env.cgroup_dir(&id);
        assert_eq!(read(leaf.join("cpu.max")), cpu_max, "{mb} MB");
        assert_eq!(read(leaf.join("cpu.weight")), weight, "{mb} MB");
        env.ok(&["delete", &id]);
        wait_exit(pid);
    }
}

#[test]
fn pause_is_confirmed_by_the_v2_freezer() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest("pause_is_confirmed_by_the_v2_freezer");
    }
    let env = Env::new();
    let bundle = env.bundle("b", &config(&["sh", "-c", "while true; do :; done"]));
    let pid = env.create("frz", &bundle);
    env.ok(&["start", "frz"]);
    env.ok(&["pause", "frz"]);
    let leaf = env.cgroup_dir("frz");
    assert!(read(leaf.join("cgroup.events")).contains("frozen 1"));
    let (state, _) = runlambda::state::proc_stat(nix::unistd::Pid::from_raw(pid)).unwrap();
    assert!(
        matches!(state, 'S' | 'D' | 'T'),
        "a frozen task is not running: {state}"
    );
    env.ok(&["resume", "frz"]);
    assert!(read(leaf.join("cgroup.events")).contains("frozen 0"));
    env.ok(&["delete", "--force", "frz"]);
    assert_eq!(wait_exit(pid), 128 + 9);
}

#[test]
fn hybrid_hosts_enforce_memory_through_the_v1_controller() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest_with(
            "hybrid_hosts_enforce_memory_through_the_v1_controller",
            &[("RUNLAMBDA_UML_V1_MEMORY", "1")],
        );
    }
    let env = Env::new();
    let mut cfg = config(&["sh", "-c", ALLOCATE_192M]);
    cfg["annotations"] = json!({"com.runlambda.memory-mb": "128"});
    let bundle = env.bundle("b", &cfg);
    let pid = env.create("v1mem", &bundle);
    let v1_leaf = common::v1_mount("memory")
        .expect("the hybrid guest has a v1 memory hierarchy")
        .join(&env.cgroup_parent)
        .join("v1mem");
    assert_eq!(
        read(v1_leaf.join("memory.limit_in_bytes")),
        (128u64 << 20).to_string()
    );
    let procs = read(v1_leaf.join("cgroup.procs"));
    assert_eq!(procs, pid.to_string(), "the init joined the v1 leaf");
    assert_eq!(env.state("v1mem")["memoryLimit"], "enforced");
    env.ok(&["start", "v1mem"]);
    assert_eq!(wait_exit(pid), 0);
    assert_eq!(read(bundle.join("out")), "tail=137");
    let oom = read(v1_leaf.join("memory.oom_control"));
    assert!(event(&oom, "oom_kill") >= 1, "{oom}");
    env.ok(&["delete", "v1mem"]);
    assert!(!v1_leaf.exists(), "the v1 leaf is left");
}

#[test]
fn a_function_past_its_memory_is_out_of_memory_and_the_next_invoke_reinitialises() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest(
            "a_function_past_its_memory_is_out_of_memory_and_the_next_invoke_reinitialises",
        );
    }
    let env = Env::new();
    let function = common::lambda::python_function(env.dir.path());
    std::fs::set_permissions(
        &function,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut cmd = env.command(&["run", function.to_str().unwrap()]);
    cmd.args(["--memory", "128", "--timeout", "60"]);
    let mut server = common::lambda::Server::spawn(cmd);
    let response = server.invoke("python-echo", br#"{"allocate_mb":192}"#, &[]);
    assert_eq!(
        common::lambda::header(&response, "x-amz-function-error"),
        Some("Unhandled")
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["errorType"], "Runtime.OutOfMemory", "{body}");
    let again = server.invoke("python-echo", br#"{"allocate_mb":16}"#, &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    server.stop();
    let log = server.stdout();
    assert!(log.contains("Max Memory Used: "), "{log}");
    assert!(!log.contains("not enforced"), "{log}");
}
