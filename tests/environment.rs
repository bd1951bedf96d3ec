//! The environment as the process inside sees it: namespaces, hostname, mounts, limits on
//! `/tmp`, read-only and masked paths, identity and capabilities. Runs the real binary as root
//! (through tests/cgroup-view.sh) and asserts what a process in the container observes.

mod common;

use common::{config, Env};
use serde_json::json;

fn sh(script: &str) -> serde_json::Value {
    config(&["sh", "-c", script])
}

#[test]
fn the_init_is_pid_1_and_host_processes_are_invisible() {
    let env = Env::new();
    let bundle = env.bundle("b", &sh("echo $$; ls /proc"));
    let (code, out, err) = env.run_to_exit("pids", &bundle);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1"));
    let pids: Vec<u32> = lines.filter_map(|l| l.parse().ok()).collect();
    // Only the shell (1) and the ls it forked exist in the new pid namespace.
    assert!(pids.contains(&1), "{pids:?}");
    assert!(pids.iter().all(|&p| p < 10), "host pids visible: {pids:?}");
}

#[test]
fn hostname_comes_from_the_config() {
    let env = Env::new();
    let mut cfg = sh("hostname");
    cfg["hostname"] = json!("lambda-box");
    let bundle = env.bundle("b", &cfg);
    let (code, out, _) = env.run_to_exit("host", &bundle);
    assert_eq!((code, out.trim()), (0, "lambda-box"));
}

#[test]
fn tmp_is_a_tmpfs_of_the_ephemeral_size_and_writes_past_it_fail_with_enospc() {
    let env = Env::new();
    let mut cfg = sh("df -m /tmp | tail -n 1; \
         dd if=/dev/zero of=/tmp/fill bs=1M count=600 2>&1; echo dd=$?");
    cfg["annotations"] = json!({"com.runlambda.ephemeral-storage-mb": "512"});
    let bundle = env.bundle("b", &cfg);
    let (code, out, err) = env.run_to_exit("tmp", &bundle);
    assert_eq!(code, 0, "{err}");
    let df: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(df[0], "tmpfs", "{out}");
    assert_eq!(df[1], "512", "size in MB: {out}");
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains("dd=1"), "{out}");
}

#[test]
fn a_read_only_root_refuses_writes() {
    let env = Env::new();
    let mut cfg = sh("touch /newfile 2>&1; echo rc=$?");
    cfg["root"]["readonly"] = json!(true);
    let bundle = env.bundle("b", &cfg);
    let (_, out, _) = env.run_to_exit("ro", &bundle);
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(!bundle.join("rootfs/newfile").exists());
}

#[test]
fn masked_paths_read_empty_and_readonly_paths_refuse_writes() {
    let env = Env::new();
    let bundle = env.bundle(
        "b",
        &sh("exec 2>&1; echo keys=$(wc -c < /proc/keys); \
             echo firmware=$(ls -A /sys/firmware | wc -l); \
             echo 1 > /proc/sys/kernel/domainname; echo rc=$?"),
    );
    let (_, out, _) = env.run_to_exit("mask", &bundle);
    assert!(out.contains("keys=0\n"), "/proc/keys is masked: {out}");
    assert!(
        out.contains("firmware=0\n"),
        "/sys/firmware is masked: {out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
}

#[test]
fn capabilities_are_exactly_the_bundles() {
    let env = Env::new();
    let mut cfg = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status");
    let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    cfg["process"]["capabilities"] = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps, "inheritable": caps
    });
    let bundle = env.bundle("b", &cfg);
    let (code, out, err) = env.run_to_exit("caps", &bundle);
    assert_eq!(code, 0, "{err}");
    // CAP_KILL is bit 5, CAP_NET_BIND_SERVICE bit 10.
    let mask = format!("{:016x}", (1u64 << 5) | (1u64 << 10));
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = out.lines().find(|l| l.starts_with(set)).unwrap();
        assert!(line.ends_with(&mask), "{line} != {mask}");
    }
}

#[test]
fn the_process_runs_as_the_configured_user_and_groups() {
    let env = Env::new();
    let mut cfg = sh("id -u; id -g; id -G");
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 7]});
    let bundle = env.bundle("b", &cfg);
    let (code, out, err) = env.run_to_exit("user", &bundle);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1000", "1001"]);
    let mut groups: Vec<&str> = lines[2].split_whitespace().collect();
    groups.sort();
    assert_eq!(groups, ["1001", "5", "7"]);
}

#[test]
fn rlimits_and_cwd_and_env_reach_the_process() {
    let env = Env::new();
    let mut cfg = sh("ulimit -n; pwd; echo $GREETING");
    cfg["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]);
    cfg["process"]["cwd"] = json!("/tmp");
    cfg["process"]["env"] = json!(["PATH=/bin", "GREETING=hello"]);
    let bundle = env.bundle("b", &cfg);
    let (code, out, err) = env.run_to_exit("limits", &bundle);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "321\n/tmp\nhello\n");
}

#[test]
fn the_exit_status_of_the_process_is_the_inits() {
    let env = Env::new();
    let bundle = env.bundle("b", &sh("exit 7"));
    let (code, _, _) = env.run_to_exit("exit", &bundle);
    assert_eq!(code, 7);
}

#[test]
fn two_environments_see_neither_each_others_processes_nor_tmp() {
    let env = Env::new();
    let mut a = sh("echo secret > /tmp/a; sleep 30");
    a["annotations"] = json!({"com.runlambda.ephemeral-storage-mb": "512"});
    // The shell counts the processes it sees itself: a pipeline's members start in no set order.
    let mut b = sh("ls /tmp; set -- /proc/[0-9]*; echo $#");
    b["annotations"] = a["annotations"].clone();
    let bundle_a = env.bundle("a", &a);
    let bundle_b = env.bundle("b", &b);
    let pid_a = env.create("a", &bundle_a);
    env.ok(&["start", "a"]);
    let (code, out, err) = env.run_to_exit("b", &bundle_b);
    assert_eq!(code, 0, "{err}");
    // B's /tmp is empty, and B sees only its own shell.
    assert_eq!(out.trim(), "1", "{out}");
    env.ok(&["delete", "--force", "a"]);
    assert_eq!(common::wait_exit(pid_a), 128 + 9);
}

#[test]
fn a_file_bind_mount_with_a_propagation_option_is_mounted() {
    // podman binds /etc/hosts, /etc/hostname and /run/.containerenv exactly so.
    let env = Env::new();
    let hosts = env.dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 bound-from-the-host\n").unwrap();
    let mut cfg = sh("cat /etc/hosts");
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/etc/hosts", "type": "bind", "source": hosts,
        "options": ["bind", "rprivate"]
    }));
    let bundle = env.bundle("b", &cfg);
    let (code, out, err) = env.run_to_exit("hosts", &bundle);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "127.0.0.1 bound-from-the-host\n");
}

#[test]
fn root_inside_a_container_cannot_mount_make_devices_write_cgroups_or_replace_pid_1() {
    let env = Env::new();
    let cfg = sh("exec 2>&1; \
         mount -t tmpfs none /mnt; echo mount=$?; \
         mknod /tmp/disk b 8 0; echo mknod=$?; \
         echo 1 > /sys/fs/cgroup/cgroup.freeze; echo cgroup=$?; \
         cat /bin/busybox > /proc/1/exe; echo exe=$?");
    // The template mounts /sys/fs/cgroup read-only, as runc's does.
    let bundle = env.bundle("b", &cfg);
    let (_, out, _) = env.run_to_exit("root", &bundle);
    for (what, expected) in [
        ("mount=", "mount=255"),
        ("mknod=", "mknod=1"),
        ("cgroup=", "cgroup=1"),
        ("exe=", "exe=1"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_default();
        assert_eq!(line, expected, "{out}");
    }
    assert!(
        out.contains("Operation not permitted") || out.contains("permission denied"),
        "{out}"
    );
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("Text file busy"),
        "/proc/1/exe is pid 1's own running binary: {out}"
    );
}

/// Python (the host's `/usr`, read-only) that tries PTRACE_ATTACH and PTRACE_SEIZE on pid 1,
/// then reads pid 1's TracerPid: `report()` says `attach=R seize=R traced=yes|no`, each R `ok`
/// or the errno's name.
const PTRACE_PID_1: &str = "\
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
def attempt(request):
    if libc.ptrace(request, 1, None, None) == 0:
        return 'ok'
    return errno.errorcode[ctypes.get_errno()]
def traced():
    status = open('/proc/1/status').read()
    return 'no' if '\\nTracerPid:\\t0\\n' in status else 'yes'
def report():
    return 'attach=%s seize=%s traced=%s' % (attempt(16), attempt(0x4206), traced())
";

/// `cfg` with the host's `/usr` mounted read-only, for its python3; the bundle's rootfs then
/// needs [`link_host_libs`].
fn with_host_usr(mut cfg: serde_json::Value) -> serde_json::Value {
    cfg["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/usr", "type": "bind", "source": "/usr",
        "options": ["rbind", "ro", "nosuid", "nodev"]
    }));
    cfg
}

/// `/lib` and `/lib64` in the rootfs as the host has them (merged /usr: links into it), so that
/// the host's dynamic loader and libraries resolve under the mounted `/usr`.
fn link_host_libs(bundle: &std::path::Path) {
    for dir in ["lib", "lib64"] {
        let host = std::path::Path::new("/").join(dir);
        let target = std::fs::read_link(&host).unwrap_or_else(|e| {
            panic!(
                "{} is not a link into /usr (merged /usr needed): {e}",
                host.display()
            )
        });
        let link = bundle.join("rootfs").join(dir);
        let _ = std::fs::remove_dir(&link);
        std::os::unix::fs::symlink(target, link).unwrap();
    }
}

#[test]
fn root_inside_a_container_cannot_ptrace_runlambdas_init_as_pid_1() {
    let env = Env::new();
    let bundle = env.bundle("b", &with_host_usr(config(&["sleep", "300"])));
    link_host_libs(&bundle);
    let init = env.create("c1", &bundle);
    // Created: pid 1 is still runlambda's init, non-dumpable, waiting for `start`.
    let script = format!("{PTRACE_PID_1}print(report())");
    let ptrace = |env: &Env| env.ok(&["exec", "c1", "python3", "-c", &script]);
    assert_eq!(ptrace(&env), "attach=EPERM seize=EPERM traced=no\n");
    // Started: pid 1 is the container's own program, which root in the container may trace,
    // as under runc (the seize then finds it traced already).
    env.ok(&["start", "c1"]);
    assert_eq!(ptrace(&env), "attach=ok seize=EPERM traced=yes\n");
    env.ok(&["delete", "--force", "c1"]);
    common::wait_exit(init);
}

#[test]
fn root_in_a_lambda_environment_cannot_ptrace_the_lambda_init() {
    let env = Env::with_config("allow_unenforced_memory = true");
    let runtime = format!(
        "{PTRACE_PID_1}\
import json, os, urllib.request
api = 'http://' + os.environ['AWS_LAMBDA_RUNTIME_API'] + '/2018-06-01/runtime/invocation/'
while True:
    with urllib.request.urlopen(api + 'next') as event:
        request_id = event.headers['Lambda-Runtime-Aws-Request-Id']
    result = {{'uid': os.getuid(), 'ptrace': report()}}
    urllib.request.urlopen(api + request_id + '/response', json.dumps(result).encode()).read()
"
    );
    let mut cfg = with_host_usr(config(&["/usr/bin/python3", "/runtime.py"]));
    cfg["annotations"] = json!({"com.runlambda.mode": "lambda"});
    // The default Lambda seccomp profile refuses ptrace; a bundle that allows every system
    // call shows that the non-dumpable init holds on its own.
    let mut allow_all = cfg.clone();
    allow_all["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
    for (name, cfg) in [("default-profile", cfg), ("allow-all", allow_all)] {
        let bundle = env.bundle(name, &cfg);
        link_host_libs(&bundle);
        std::fs::write(bundle.join("rootfs/runtime.py"), &runtime).unwrap();
        let command = env.command(&["run", bundle.to_str().unwrap()]);
        let mut server = common::lambda::Server::spawn(command);
        let response = server.invoke("function", b"{}", &[]);
        assert_eq!(response.status, 200, "{name}: {}", response.text());
        let result: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        // The runtime is root and the Lambda init its parent: still no attaching to it.
        assert_eq!(
            result,
            json!({"uid": 0, "ptrace": "attach=EPERM seize=EPERM traced=no"}),
            "{name}: {}",
            server.stderr()
        );
        assert_eq!(server.stop().code(), Some(0), "{name}");
    }
}

#[test]
fn namespaces_given_by_path_are_joined() {
    let env = Env::new();
    let mut first = config(&["sleep", "300"]);
    first["hostname"] = json!("first-box");
    let pid = env.create("first", &env.bundle("first", &first));
    // The second container joins the first's network and UTS namespaces by path and makes
    // the rest anew: it sees the first's hostname and network namespace, not its processes.
    let mut second = sh("hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/pid");
    second.as_object_mut().unwrap().remove("hostname").unwrap();
    for ns in second["linux"]["namespaces"].as_array_mut().unwrap() {
        let kind = ns["type"].as_str().unwrap().to_string();
        if kind == "network" || kind == "uts" {
            let file = if kind == "network" { "net" } else { "uts" };
            ns["path"] = json!(format!("/proc/{pid}/ns/{file}"));
        }
    }
    let (code, out, err) = env.run_to_exit("second", &env.bundle("second", &second));
    assert_eq!(code, 0, "{err}");
    let link = |file: &str| {
        std::fs::read_link(format!("/proc/{pid}/ns/{file}"))
            .unwrap()
            .display()
            .to_string()
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["first-box", link("net").as_str()], "{out}");
    assert_ne!(lines[2], link("pid"), "the pid namespace is new: {out}");
    env.ok(&["delete", "--force", "first"]);
    common::wait_exit(pid);
}
