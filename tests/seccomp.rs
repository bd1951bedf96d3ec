//! Seccomp as the confined process sees it: the errno a denied syscall returns, argument rules,
//! the kill actions, a docker/podman-shaped default profile under which busybox works, `exec`
//! under the container's filter, and the default profile of a Lambda function.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::lambda::Server;
use common::{config, wait_exit, Env};
use serde_json::{json, Value};

/// A busybox container running `script` under `seccomp`.
fn confined(script: &str, seccomp: Value) -> Value {
    let mut cfg = config(&["sh", "-c", script]);
    cfg["linux"]["seccomp"] = seccomp;
    cfg
}

fn deny(names: &[&str], action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({"names": names, "action": action});
    if let Some(errno) = errno {
        rule["errnoRet"] = json!(errno);
    }
    rule
}

#[test]
fn a_denied_syscall_fails_with_the_profiles_errno() {
    let env = Env::new();
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None),
            deny(&["rmdir"], "SCMP_ACT_ERRNO", Some(13)),
            deny(&["sethostname"], "SCMP_ACT_ERRNO", Some(38)),
        ]
    });
    let script = "exec 2>&1; mkdir /x; rmdir /tmp; hostname other; uname -s";
    for no_new_privs in [true, false] {
        // Without no_new_privs the init loads the filter before it gives up CAP_SYS_ADMIN.
        let mut cfg = confined(script, seccomp.clone());
        cfg["process"]["noNewPrivileges"] = json!(no_new_privs);
        let bundle = env.bundle(&format!("b{no_new_privs}"), &cfg);
        let (code, out, err) = env.run_to_exit(&format!("errno-{no_new_privs}"), &bundle);
        assert_eq!(code, 0, "{out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "mkdir: can't create directory '/x': Operation not permitted",
                "rmdir: '/tmp': Permission denied",
                "hostname: sethostname: Function not implemented",
                "Linux",
            ],
            "no_new_privs {no_new_privs}"
        );
    }
}

#[test]
fn an_argument_rule_denies_only_the_matching_calls() {
    let env = Env::new();
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]
        }]
    });
    // linux32 asks for PER_LINUX32 (8), linux64 for PER_LINUX (0).
    let script = "exec 2>&1; linux32 true; echo linux32=$?; linux64 true; echo linux64=$?";
    let bundle = env.bundle("b", &confined(script, seccomp));
    let (code, out, _) = env.run_to_exit("args", &bundle);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Permission denied\nlinux32=1\n"), "{out}");
    assert!(out.contains("linux64=0\n"), "{out}");
}

#[test]
fn kill_actions_end_the_process_with_sigsys() {
    let env = Env::new();
    let seccomp = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            deny(&["mkdir", "mkdirat"], "SCMP_ACT_KILL", None),
            deny(&["rmdir"], "SCMP_ACT_TRAP", None),
            deny(&["uname"], "SCMP_ACT_LOG", None),
        ]
    });
    // The subshells exec the applets, so only they die; ash reports 128 + the signal.
    let script = "(exec mkdir /x); echo kill=$?; (exec rmdir /tmp); echo trap=$?; \
                  uname -s; echo log=$?";
    let bundle = env.bundle("b", &confined(script, seccomp));
    let (code, out, err) = env.run_to_exit("kill", &bundle);
    let sigsys = 128 + libc::SIGSYS;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        format!("kill={sigsys}\ntrap={sigsys}\nLinux\nlog=0\n"),
        "{err}"
    );

    // The container's own process, killed with the whole process.
    let mut cfg = config(&["mkdir", "/x"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [deny(&["mkdir", "mkdirat"], "SCMP_ACT_KILL_PROCESS", None)]
    });
    let bundle = env.bundle("init", &cfg);
    let (code, _, _) = env.run_to_exit("kill-init", &bundle);
    assert_eq!(code, sigsys);
    assert!(!bundle.join("rootfs/x").exists());
}

/// The shape of docker's and podman's default profile (podman 4 writes it into config.json
/// like this): deny by default with ENOSYS, a long allow list that names syscalls newer than
/// libseccomp and some of other architectures, argument rules on `personality` and `clone`,
/// and explicit EPERM for namespace creation.
fn docker_like_profile() -> Value {
    let allowed = "accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir \
        chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 \
        clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range \
        connect copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl \
        epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve \
        execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate \
        fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 \
        fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 \
        fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue \
        futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents \
        getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 \
        getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid \
        getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid \
        getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr \
        inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl \
        io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set \
        io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset \
        landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr \
        llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack \
        membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 \
        mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
        mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget \
        msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat \
        _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc \
        pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 \
        process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead \
        readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg \
        remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq \
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend \
        rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity \
        sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min \
        sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 \
        sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp \
        select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 \
        sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 \
        setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid \
        setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit set_robust_list setsid \
        setsockopt set_thread_area set_tid_address setuid setuid32 setxattr shmat shmctl shmdt \
        shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn socket socketcall \
        socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync \
        sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete \
        timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 \
        timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 \
        times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat \
        utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev \
        a_syscall_from_the_future";
    let names: Vec<&str> = allowed.split_whitespace().collect();
    let namespace_flags: u64 = 0x7E02_0000; // CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": names, "action": "SCMP_ACT_ALLOW"},
            // docker's per-architecture entries, as podman resolves them for x86_64.
            {"names": ["arch_prctl", "modify_ldt"], "action": "SCMP_ACT_ALLOW"},
            // Several tests of one argument in one rule: alternatives, as in runc.
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 4294967295u64, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": namespace_flags, "valueTwo": 0,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
        ]
    })
}

#[test]
fn busybox_runs_under_a_docker_shaped_default_profile() {
    let env = Env::new();
    let script = "exec 2>&1; echo hello; ls / > /dev/null && echo ls=ok; \
                  mkdir /tmp/d && echo mkdir=ok; linux32 true && echo linux32=ok; \
                  unshare -U true; swapoff /dev/null; echo done";
    let bundle = env.bundle("b", &confined(script, docker_like_profile()));
    let (code, out, err) = env.run_to_exit("docker", &bundle);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..4],
        ["hello", "ls=ok", "mkdir=ok", "linux32=ok"],
        "{out}"
    );
    assert!(lines[4].contains("Operation not permitted"), "{out}");
    // Not on the allow list: the default errno.
    assert!(lines[5].contains("Function not implemented"), "{out}");
    assert_eq!(lines[6], "done", "{out}");
}

#[test]
fn exec_runs_under_the_containers_filter() {
    let env = Env::new();
    let mut cfg = config(&["sleep", "300"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [deny(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", Some(13))]
    });
    let bundle = env.bundle("c1", &cfg);
    let init = env.create("c1", &bundle);
    env.ok(&["start", "c1"]);
    // A later change of config.json does not reach the running container.
    cfg["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
    fs::write(bundle.join("config.json"), cfg.to_string()).unwrap();
    for extra in [&[][..], &["--no-new-privs"][..]] {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["c1", "mkdir", "/y"]);
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("mkdir: can't create directory '/y': Permission denied"),
            "{extra:?}: {stderr}"
        );
    }
    env.ok(&["delete", "--force", "c1"]);
    wait_exit(init);
}

#[test]
fn an_unsupported_profile_is_refused_at_create_with_the_field() {
    let env = Env::new();
    let mut cfg = config(&["true"]);
    cfg["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_NOTIFY"}
        ],
        "listenerPath": "/run/agent.sock"
    });
    let bundle = env.bundle("b", &cfg);
    let err = env.fails(&["create", "--bundle", bundle.to_str().unwrap(), "c"]);
    assert!(
        err.contains("linux.seccomp.listenerPath is set but not supported"),
        "{err}"
    );
}

#[test]
fn features_report_seccomp_as_the_loader_accepts_it() {
    let env = Env::new();
    let features: Value = serde_json::from_str(&env.ok(&["features"])).unwrap();
    let seccomp = &features["linux"]["seccomp"];
    assert_eq!(seccomp["enabled"], true);
    let listed = |key: &str| -> Vec<String> {
        serde_json::from_value(seccomp[key].clone()).unwrap_or_default()
    };
    assert!(listed("actions").contains(&"SCMP_ACT_KILL_PROCESS".into()));
    assert!(!listed("actions").contains(&"SCMP_ACT_NOTIFY".into()));
    assert_eq!(listed("operators").len(), 7);
    assert!(listed("archs").contains(&"SCMP_ARCH_X86_64".into()));
    assert_eq!(listed("knownFlags"), listed("supportedFlags"));
    // Every action it lists loads.
    for action in listed("actions") {
        let mut cfg = config(&["true"]);
        cfg["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": listed("supportedFlags"),
            "syscalls": [{"names": ["reboot"], "action": action}]
        });
        let bundle = env.bundle(&action.to_lowercase(), &cfg);
        let (code, _, err) = env.run_to_exit(&action.to_lowercase().replace('_', "-"), &bundle);
        assert_eq!(code, 0, "{action}: {err}");
    }
}

/// A Python function that is its own runtime client: each invoke tries what the default
/// Lambda profile denies and answers with the errno names.
const PROBE: &str = r#"#!/usr/bin/env python3
import ctypes, errno, http.client, json, os
libc = ctypes.CDLL(None, use_errno=True)

def attempt(call):
    return "ok" if call() == 0 else errno.errorcode[ctypes.get_errno()]

def status(key):
    return [l.split()[1] for l in open("/proc/self/status") if l.startswith(key + ":")][0]

conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    resp.read()
    request_id = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    answer = {
        "mount": attempt(lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
        "unshare_user": attempt(lambda: libc.unshare(0x10000000)),
        "unshare_files": attempt(lambda: libc.unshare(0x400)),
        "seccomp": status("Seccomp"),
    }
    conn.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response",
                 json.dumps(answer))
    conn.getresponse().read()
"#;

#[test]
fn the_default_lambda_profile_denies_mount_and_namespaces_to_a_function() {
    let env = Env::with_config("allow_unenforced_memory = true");
    let function = env.dir.path().join("probe");
    fs::create_dir_all(&function).unwrap();
    write_executable(&function.join("bootstrap"), PROBE);
    fs::set_permissions(&function, fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = env.command(&["run", function.to_str().unwrap()]);
    cmd.args(["--memory", "256"]);
    let server = Server::spawn(cmd);
    let response = server.invoke("probe", b"{}", &[]);
    assert_eq!(response.status, 200, "{}", response.text());
    let body: Value = serde_json::from_slice(&response.body).unwrap();
    // Mode 2: a filter. A user namespace needs no privilege, so only the filter refuses it,
    // while unshare without namespace flags goes through.
    assert_eq!(
        body,
        json!({"mount": "EPERM", "unshare_user": "EPERM", "unshare_files": "ok",
               "seccomp": "2"}),
        "{}",
        server.stderr()
    );
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}
