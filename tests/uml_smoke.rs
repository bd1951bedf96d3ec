//! Proves the pure cgroup v2 tier itself: a test re-executed in the User-Mode Linux guest sees
//! a cgroup2-only hierarchy whose memory controller enforces `memory.max`, and can build and
//! run a busybox rootfs under the guest's `/tmp`.

#[path = "common/rootfs.rs"]
mod rootfs;
#[path = "common/uml.rs"]
mod uml;

use std::fs;
use std::path::Path;
use std::process::{Command, ExitStatus};

#[test]
fn guest_cgroups_are_pure_v2_with_memory_and_pids() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest("guest_cgroups_are_pure_v2_with_memory_and_pids");
    }
    let controllers = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
    for wanted in ["memory", "pids"] {
        assert!(
            controllers.split_whitespace().any(|c| c == wanted),
            "{wanted} missing from cgroup.controllers: {controllers}"
        );
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup "))
        .collect();
    assert!(v1.is_empty(), "cgroup v1 mounts in the guest: {v1:?}");
}

#[test]
fn memory_max_oom_kills_an_allocation_past_it() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest("memory_max_oom_kills_an_allocation_past_it");
    }
    let cg = Path::new("/sys/fs/cgroup/uml-smoke-oom");
    fs::create_dir(cg).unwrap();
    fs::write(cg.join("memory.max"), "32M").unwrap();
    assert_eq!(
        fs::read_to_string(cg.join("memory.max")).unwrap().trim(),
        "33554432"
    );

    let status = allocate_64mib_in(cg);
    assert!(
        !status.success(),
        "a 64 MiB allocation survived memory.max=32M"
    );

    let events = fs::read_to_string(cg.join("memory.events")).unwrap();
    assert!(
        events.lines().any(|l| l == "oom_kill 1"),
        "memory.events after the allocation:\n{events}"
    );
    fs::remove_dir(cg).unwrap();
}

#[test]
fn v1_memory_mode_gives_a_hybrid_layout_that_enforces_limits() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest_with(
            "v1_memory_mode_gives_a_hybrid_layout_that_enforces_limits",
            &[("RUNLAMBDA_UML_V1_MEMORY", "1")],
        );
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let has_mount = |point: &str, fs_and_opts: &str| {
        mountinfo
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(point) && l.contains(fs_and_opts))
    };
    assert!(
        has_mount("/sys/fs/cgroup/memory", " - cgroup cgroup rw,memory"),
        "{mountinfo}"
    );
    assert!(
        has_mount("/sys/fs/cgroup/unified", " - cgroup2 "),
        "{mountinfo}"
    );
    let controllers = fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap();
    assert!(
        !controllers.contains("memory"),
        "memory on v2 too: {controllers}"
    );

    let cg = Path::new("/sys/fs/cgroup/memory/uml-smoke-oom");
    fs::create_dir(cg).unwrap();
    fs::write(cg.join("memory.limit_in_bytes"), "32M").unwrap();
    let status = allocate_64mib_in(cg);
    assert!(
        !status.success(),
        "a 64 MiB allocation survived memory.limit_in_bytes=32M"
    );
    let oom = fs::read_to_string(cg.join("memory.oom_control")).unwrap();
    assert!(
        oom.lines().any(|l| l == "oom_kill 1"),
        "memory.oom_control after the allocation:\n{oom}"
    );
    fs::remove_dir(cg).unwrap();
}

#[test]
fn busybox_rootfs_runs_under_the_guest_tmp() {
    if !uml::in_guest() {
        return uml::assert_passes_in_guest("busybox_rootfs_runs_under_the_guest_tmp");
    }
    let dir = tempfile::tempdir().unwrap();
    assert!(dir.path().starts_with("/tmp"), "{}", dir.path().display());
    rootfs::busybox_rootfs(dir.path()).unwrap();
    let out = Command::new("chroot")
        .arg(dir.path())
        .args(["/bin/sh", "-c", "id -u; ls /bin | wc -l"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let expected = format!("0\n{}\n", rootfs::APPLETS.len() + 1);
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
}

/// Runs a shell that joins the cgroup at `cg` (v1 or v2: both have `cgroup.procs`), then makes
/// `tail` hold the one 64 MiB "line" it reads in memory.
fn allocate_64mib_in(cg: &Path) -> ExitStatus {
    let script = format!(
        "echo $$ > {}/cgroup.procs && head -c 64M /dev/zero | tail > /dev/null",
        cg.display()
    );
    Command::new("sh").args(["-c", &script]).status().unwrap()
}
