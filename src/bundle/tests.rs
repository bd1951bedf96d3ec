//! Whole-bundle tests: real bundle directories in temp dirs, starting from the config.json that
//! `runc spec` writes (with `terminal` false) and changing one thing at a time.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::*;
use crate::annotations::FunctionSettings;
use crate::cgroup::CpuLimits;
use crate::hooks::HookKind;
use crate::spec::{
    Capabilities, ConsoleSize, IdMapping, MountKind, MountSpec, NamespaceSpec, ProcessSpec, Rlimit,
};

/// `runc spec` output (runc 1.1), except `terminal`: false, as `runlambda spec` writes it, so
/// that the same config loads as a Lambda environment too.
const RUNC_SPEC: &str = r#"{
	"ociVersion": "1.0.2-dev",
	"process": {
		"terminal": false,
		"user": {"uid": 0, "gid": 0},
		"args": ["sh"],
		"env": [
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"TERM=xterm"
		],
		"cwd": "/",
		"capabilities": {
			"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
			"ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
		},
		"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
		"noNewPrivileges": true
	},
	"root": {"path": "rootfs", "readonly": true},
	"hostname": "runc",
	"mounts": [
		{"destination": "/proc", "type": "proc", "source": "proc"},
		{"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
		 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
		{"destination": "/dev/pts", "type": "devpts", "source": "devpts",
		 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
		{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
		 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
		{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
		 "options": ["nosuid", "noexec", "nodev"]},
		{"destination": "/sys", "type": "sysfs", "source": "sysfs",
		 "options": ["nosuid", "noexec", "nodev", "ro"]},
		{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
		 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
	],
	"linux": {
		"resources": {"devices": [{"allow": false, "access": "rwm"}]},
		"namespaces": [
			{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}
		],
		"maskedPaths": [
			"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
			"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
		],
		"readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
	}
}"#;

/// A bundle directory with a `rootfs/` and the given config.json.
struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    fn new(config: &Value) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn load(&self) -> Result<EnvironmentSpec, BundleError> {
        load(self.path(), &RuntimeConfig::default(), false)
    }
}

fn runc_spec() -> Value {
    serde_json::from_str(RUNC_SPEC).unwrap()
}

/// The runc spec with the value at a JSON pointer replaced (objects on the way are created).
fn with(pointer: &str, value: Value) -> Value {
    let mut config = runc_spec();
    set(&mut config, pointer, value);
    config
}

fn set(config: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut target = config;
    for part in parent.split('/').skip(1) {
        target = target
            .as_object_mut()
            .unwrap()
            .entry(part)
            .or_insert_with(|| json!({}));
    }
    target
        .as_object_mut()
        .unwrap()
        .insert(key.to_owned(), value);
}

fn remove(pointer: &str) -> Value {
    let mut config = runc_spec();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    config
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
    config
}

/// The field error inside a load error (panics on any other error).
fn field_error(config: &Value) -> FieldError {
    match Bundle::new(config).load() {
        Err(BundleError::Invalid { source, .. }) => source,
        other => panic!("expected an invalid-field error, got {other:?}"),
    }
}

fn unsupported_field(config: &Value) -> String {
    match field_error(config) {
        FieldError::Unsupported { field } => field,
        other => panic!("expected an unsupported-field error, got {other:?}"),
    }
}

/// The error and its sources, the way `main` prints them.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        text = format!("{text}: {next}");
        source = next.source();
    }
    text
}

fn flags(list: &[u64]) -> u64 {
    list.iter().fold(0, |acc, flag| acc | flag)
}

fn mount_at(destination: &str, kind: MountKind, source: &str, flags: u64, data: &str) -> MountSpec {
    MountSpec {
        destination: destination.into(),
        kind,
        source: source.into(),
        flags,
        propagation: 0,
        data: data.to_owned(),
    }
}

fn new(kind: NamespaceKind) -> NamespaceSpec {
    NamespaceSpec { kind, path: None }
}

#[test]
fn runc_spec_converts() {
    use libc::*;
    let bundle = Bundle::new(&runc_spec());
    let got = bundle.load().unwrap();
    let bundle_dir = bundle.path().to_owned();
    let default_caps: caps::CapsHashSet = [
        caps::Capability::CAP_AUDIT_WRITE,
        caps::Capability::CAP_KILL,
        caps::Capability::CAP_NET_BIND_SERVICE,
    ]
    .into();
    let expected = EnvironmentSpec {
        rootfs: bundle_dir.join("rootfs").canonicalize().unwrap(),
        bundle: bundle_dir,
        root_readonly: true,
        process: ProcessSpec {
            args: vec!["sh".into()],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "TERM=xterm".into(),
            ],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            umask: None,
            rlimits: vec![Rlimit {
                resource: nix::sys::resource::Resource::RLIMIT_NOFILE as u32,
                name: "RLIMIT_NOFILE",
                soft: 1024,
                hard: 1024,
            }],
            capabilities: Capabilities {
                bounding: default_caps.clone(),
                effective: default_caps.clone(),
                permitted: default_caps.clone(),
                inheritable: Default::default(),
                ambient: default_caps,
            },
            no_new_privileges: true,
            oom_score_adj: None,
            terminal: false,
            console_size: None,
        },
        hostname: Some("runc".into()),
        domainname: None,
        mounts: vec![
            mount_at("/proc", MountKind::Proc, "proc", 0, ""),
            mount_at(
                "/dev",
                MountKind::Tmpfs,
                "tmpfs",
                flags(&[MS_NOSUID, MS_STRICTATIME]),
                "mode=755,size=65536k",
            ),
            mount_at(
                "/dev/pts",
                MountKind::Devpts,
                "devpts",
                flags(&[MS_NOSUID, MS_NOEXEC]),
                "newinstance,ptmxmode=0666,mode=0620,gid=5",
            ),
            mount_at(
                "/dev/shm",
                MountKind::Tmpfs,
                "shm",
                flags(&[MS_NOSUID, MS_NOEXEC, MS_NODEV]),
                "mode=1777,size=65536k",
            ),
            mount_at(
                "/dev/mqueue",
                MountKind::Mqueue,
                "mqueue",
                flags(&[MS_NOSUID, MS_NOEXEC, MS_NODEV]),
                "",
            ),
            mount_at(
                "/sys",
                MountKind::Sysfs,
                "sysfs",
                flags(&[MS_NOSUID, MS_NOEXEC, MS_NODEV, MS_RDONLY]),
                "",
            ),
            mount_at(
                "/sys/fs/cgroup",
                MountKind::Cgroup,
                "cgroup",
                flags(&[MS_NOSUID, MS_NOEXEC, MS_NODEV, MS_RELATIME, MS_RDONLY]),
                "",
            ),
        ],
        namespaces: vec![
            new(NamespaceKind::Pid),
            new(NamespaceKind::Network),
            new(NamespaceKind::Ipc),
            new(NamespaceKind::Uts),
            new(NamespaceKind::Mount),
        ],
        uid_mappings: vec![],
        gid_mappings: vec![],
        cgroups_path: None,
        limits: Limits::default(),
        masked_paths: [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ]
        .map(PathBuf::from)
        .to_vec(),
        readonly_paths: [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ]
        .map(PathBuf::from)
        .to_vec(),
        rootfs_propagation: None,
        sysctl: BTreeMap::new(),
        annotations: BTreeMap::new(),
        listen_fds: 0,
        preserve_fds: 0,
        function: FunctionSettings::default(),
        seccomp: None,
        hooks: crate::hooks::Hooks::default(),
    };
    assert_eq!(got, expected);
}

#[test]
fn relative_bundle_dir_becomes_absolute() {
    let bundle = Bundle::new(&runc_spec());
    let cwd = std::env::current_dir().unwrap();
    let relative: PathBuf = std::iter::repeat_n("..", cwd.components().count())
        .collect::<PathBuf>()
        .join(bundle.path().strip_prefix("/").unwrap());
    let got = load(&relative, &RuntimeConfig::default(), false).unwrap();
    assert!(got.bundle.is_absolute());
    assert_eq!(
        got.rootfs,
        bundle.path().join("rootfs").canonicalize().unwrap()
    );
}

#[test]
fn everything_else_converts() {
    let mut config = runc_spec();
    set(&mut config, "/ociVersion", json!("1.3.0"));
    set(&mut config, "/domainname", json!("example.com"));
    set(&mut config, "/root/path", json!("rootfs"));
    set(&mut config, "/root/readonly", json!(false));
    set(
        &mut config,
        "/process/user",
        json!({"uid": 1000, "gid": 1001, "umask": 18, "additionalGids": [5, 6]}),
    );
    set(&mut config, "/process/oomScoreAdj", json!(-500));
    set(&mut config, "/process/noNewPrivileges", json!(false));
    set(&mut config, "/process/cwd", json!("/var/task"));
    set(
        &mut config,
        "/process/capabilities",
        json!({"bounding": ["CAP_SYS_ADMIN", "NET_RAW"], "effective": ["CAP_SYS_ADMIN"]}),
    );
    set(
        &mut config,
        "/process/rlimits",
        json!([{"type": "RLIMIT_NPROC", "soft": 10, "hard": 20}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]),
    );
    set(&mut config, "/linux/cgroupsPath", json!("/pods/fn-1"));
    set(&mut config, "/linux/rootfsPropagation", json!("rslave"));
    set(
        &mut config,
        "/linux/sysctl",
        json!({"net.ipv4.ip_unprivileged_port_start": "0"}),
    );
    set(
        &mut config,
        "/linux/resources",
        json!({"memory": {"limit": 536870912}, "pids": {"limit": 64}}),
    );
    set(
        &mut config,
        "/annotations",
        json!({"io.kubernetes.cri.container-type": "container", "com.runlambda.timeout-s": "30"}),
    );
    let bundle = Bundle::new(&config);
    let got = bundle.load().unwrap();

    assert_eq!(got.domainname.as_deref(), Some("example.com"));
    assert!(!got.root_readonly);
    let p = &got.process;
    assert_eq!(
        (p.uid, p.gid, p.umask, p.additional_gids.as_slice()),
        (1000, 1001, Some(0o22), &[5, 6][..])
    );
    assert_eq!(p.oom_score_adj, Some(-500));
    assert!(!p.no_new_privileges);
    assert_eq!(p.cwd, Path::new("/var/task"));
    assert_eq!(
        p.capabilities.bounding,
        [
            caps::Capability::CAP_SYS_ADMIN,
            caps::Capability::CAP_NET_RAW
        ]
        .into()
    );
    assert_eq!(
        p.capabilities.effective,
        [caps::Capability::CAP_SYS_ADMIN].into()
    );
    assert!(p.capabilities.permitted.is_empty() && p.capabilities.ambient.is_empty());
    let names: Vec<_> = p.rlimits.iter().map(|r| (r.name, r.soft, r.hard)).collect();
    assert_eq!(names, [("RLIMIT_NPROC", 10, 20), ("RLIMIT_CORE", 0, 0)]);
    assert_eq!(got.cgroups_path.as_deref(), Some(Path::new("/pods/fn-1")));
    assert_eq!(
        got.rootfs_propagation,
        Some(crate::spec::Propagation::Slave)
    );
    assert_eq!(got.sysctl["net.ipv4.ip_unprivileged_port_start"], "0");
    assert_eq!(
        got.limits,
        Limits {
            memory_bytes: Some(512 << 20),
            no_swap: false,
            pids: Some(64),
            cpu: None,
        }
    );
    assert_eq!(got.annotations.len(), 2);
    assert_eq!(
        got.function,
        FunctionSettings {
            timeout_s: Some(30),
            ..Default::default()
        }
    );
}

#[test]
fn absent_capabilities_get_runc_defaults() {
    let got = Bundle::new(&remove("/process/capabilities"))
        .load()
        .unwrap();
    let default: caps::CapsHashSet = [
        caps::Capability::CAP_AUDIT_WRITE,
        caps::Capability::CAP_KILL,
        caps::Capability::CAP_NET_BIND_SERVICE,
    ]
    .into();
    let c = &got.process.capabilities;
    assert_eq!(
        (&c.bounding, &c.effective, &c.permitted),
        (&default, &default, &default)
    );
    assert!(c.inheritable.is_empty() && c.ambient.is_empty());
}

#[test]
fn every_capability_name_converts() {
    let names = [
        "AUDIT_CONTROL",
        "AUDIT_READ",
        "AUDIT_WRITE",
        "BLOCK_SUSPEND",
        "BPF",
        "CHECKPOINT_RESTORE",
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "IPC_LOCK",
        "IPC_OWNER",
        "KILL",
        "LEASE",
        "LINUX_IMMUTABLE",
        "MAC_ADMIN",
        "MAC_OVERRIDE",
        "MKNOD",
        "NET_ADMIN",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_RAW",
        "PERFMON",
        "SETGID",
        "SETFCAP",
        "SETPCAP",
        "SETUID",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_CHROOT",
        "SYS_MODULE",
        "SYS_NICE",
        "SYS_PACCT",
        "SYS_PTRACE",
        "SYS_RAWIO",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "SYSLOG",
        "WAKE_ALARM",
    ]
    .map(|name| format!("CAP_{name}"));
    let got = Bundle::new(&with(
        "/process/capabilities/bounding",
        json!(names.to_vec()),
    ))
    .load()
    .unwrap();
    let mut converted: Vec<String> = got
        .process
        .capabilities
        .bounding
        .iter()
        .map(ToString::to_string)
        .collect();
    converted.sort();
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(converted, expected);
}

#[test]
fn bad_capability_is_named() {
    let bundle = Bundle::new(&with(
        "/process/capabilities/effective",
        json!(["CAP_KILL", "CAP_FLY"]),
    ));
    let err = bundle.load().unwrap_err();
    assert!(matches!(err, BundleError::Load { .. }), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("CAP_FLY"), "{text}");
    assert!(text.contains("config.json"), "{text}");
}

#[test]
fn bad_rlimits() {
    let err = field_error(&with(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]),
    ));
    assert!(
        matches!(
            err,
            FieldError::RlimitSoftAboveHard {
                name: "RLIMIT_NOFILE",
                soft: 2048,
                hard: 1024
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "process.rlimits: RLIMIT_NOFILE soft limit 2048 exceeds its hard limit 1024"
    );

    let err = field_error(&with(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
    ));
    assert!(err.to_string().contains("appears more than once"), "{err}");

    let bundle = Bundle::new(&with(
        "/process/rlimits",
        json!([{"type": "RLIMIT_WINGS", "soft": 1, "hard": 1}]),
    ));
    let text = chain(&bundle.load().unwrap_err());
    assert!(text.contains("RLIMIT_WINGS"), "{text}");
}

#[test]
fn bad_process_values() {
    let cases = [
        (
            "/process/cwd",
            json!("var/task"),
            "process.cwd = \"var/task\": is not an absolute path",
        ),
        (
            "/process/cwd",
            json!(""),
            "process.cwd = \"\": is not an absolute path",
        ),
        ("/process/args", json!([]), "process.args is required"),
        (
            "/process/env",
            json!(["PATH"]),
            "process.env[0] = \"PATH\": is not NAME=value",
        ),
        (
            "/process/env",
            json!(["=x"]),
            "process.env[0] = \"=x\": has an empty name",
        ),
        (
            "/process/args",
            json!(["a\u{0}b"]),
            "process.args[0] = \"a\\0b\": contains a NUL byte",
        ),
        (
            "/process/user/umask",
            json!(4096),
            "process.user.umask = 4096: is not a permission mask (at most 0o777)",
        ),
        (
            "/process/oomScoreAdj",
            json!(1001),
            "process.oomScoreAdj = 1001: is outside -1000..=1000",
        ),
    ];
    for (pointer, value, message) in cases {
        let err = field_error(&with(pointer, value));
        assert_eq!(err.to_string(), message);
    }
    assert_eq!(
        field_error(&remove("/process/args")).to_string(),
        "process.args is required"
    );
    assert_eq!(
        field_error(&remove("/process")).to_string(),
        "process is required"
    );
}

#[test]
fn terminal_and_console_size_are_taken() {
    let mut config = with("/process/terminal", json!(true));
    set(
        &mut config,
        "/process/consoleSize",
        json!({"height": 24, "width": 80}),
    );
    let process = Bundle::new(&config).load().unwrap().process;
    assert!(process.terminal);
    assert_eq!(
        process.console_size,
        Some(ConsoleSize { rows: 24, cols: 80 })
    );
    // As in runc, a size with a zero sets nothing.
    let zero = with("/process/consoleSize", json!({"height": 0, "width": 80}));
    assert_eq!(
        Bundle::new(&zero).load().unwrap().process.console_size,
        None
    );
    let huge = with(
        "/process/consoleSize",
        json!({"height": 24, "width": 70000}),
    );
    assert_eq!(
        field_error(&huge).to_string(),
        "process.consoleSize.width = 70000: does not fit a terminal (at most 65535)"
    );
}

#[test]
fn a_lambda_environment_has_no_terminal() {
    let mut config = with("/process/terminal", json!(true));
    set(
        &mut config,
        "/annotations",
        json!({"com.runlambda.mode": "lambda"}),
    );
    let err = field_error(&config);
    assert!(matches!(err, FieldError::LambdaTerminal), "{err}");
}

#[test]
fn hooks_convert_in_every_list() {
    let hook = json!([{"path": "/usr/bin/hook", "args": ["hook", "a"], "env": ["K=v"],
                       "timeout": 5}]);
    let mut config = runc_spec();
    for kind in HookKind::ALL {
        set(&mut config, &format!("/hooks/{kind}"), hook.clone());
    }
    let hooks = Bundle::new(&config).load().unwrap().hooks;
    let expected = crate::hooks::Hook {
        path: "/usr/bin/hook".into(),
        args: vec!["hook".into(), "a".into()],
        env: vec!["K=v".into()],
        timeout: Some(std::time::Duration::from_secs(5)),
    };
    for kind in HookKind::ALL {
        assert_eq!(hooks.of(kind), std::slice::from_ref(&expected), "{kind}");
    }
}

#[test]
fn bad_hooks_are_named() {
    let cases = [
        (
            json!({"path": "hook"}),
            "hooks.poststart[1].path = \"hook\": not an absolute path",
        ),
        (
            json!({"path": "/hook", "timeout": 0}),
            "hooks.poststart[1].timeout = 0: must be greater than zero",
        ),
        (
            json!({"path": "/hook", "env": ["A=1", "B"]}),
            "hooks.poststart[1].env = \"B\": not KEY=value",
        ),
    ];
    for (bad, message) in cases {
        let config = with("/hooks/poststart", json!([{"path": "/bin/true"}, bad]));
        assert_eq!(field_error(&config).to_string(), message);
    }
}

#[test]
fn unsupported_fields_are_named() {
    let cases = [
        ("/solaris", json!({}), "solaris"),
        ("/windows", json!({"layerFolders": []}), "windows"),
        ("/vm", json!({"kernel": {"path": "/vmlinuz"}}), "vm"),
        ("/zos", json!({}), "zos"),
        (
            "/uidMappings",
            json!([{"containerID": 0, "hostID": 1, "size": 1}]),
            "uidMappings",
        ),
        (
            "/gidMappings",
            json!([{"containerID": 0, "hostID": 1, "size": 1}]),
            "gidMappings",
        ),
        ("/process/commandLine", json!("sh"), "process.commandLine"),
        (
            "/process/user/username",
            json!("root"),
            "process.user.username",
        ),
        (
            "/process/apparmorProfile",
            json!("docker-default"),
            "process.apparmorProfile",
        ),
        (
            "/process/selinuxLabel",
            json!("system_u:system_r:container_t:s0"),
            "process.selinuxLabel",
        ),
        (
            "/process/ioPriority",
            json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}),
            "process.ioPriority",
        ),
        (
            "/process/scheduler",
            json!({"policy": "SCHED_BATCH"}),
            "process.scheduler",
        ),
        (
            "/process/execCPUAffinity",
            json!({"initial": "0"}),
            "process.execCPUAffinity",
        ),
        (
            "/linux/devices",
            json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]),
            "linux.devices",
        ),
        (
            "/linux/mountLabel",
            json!("system_u:object_r:container_file_t:s0"),
            "linux.mountLabel",
        ),
        (
            "/linux/intelRdt",
            json!({"closID": "guaranteed"}),
            "linux.intelRdt",
        ),
        (
            "/linux/personality",
            json!({"domain": "LINUX32"}),
            "linux.personality",
        ),
        (
            "/linux/timeOffsets",
            json!({"boottime": {"secs": 1}}),
            "linux.timeOffsets",
        ),
        (
            "/linux/memoryPolicy",
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0-1"}),
            "linux.memoryPolicy",
        ),
        (
            "/linux/netDevices",
            json!({"eth1": {"name": "eth0"}}),
            "linux.netDevices",
        ),
        (
            "/linux/resources/blockIO",
            json!({"weight": 100}),
            "linux.resources.blockIO",
        ),
        (
            "/linux/resources/unified",
            json!({"io.weight": "100"}),
            "linux.resources.unified",
        ),
    ];
    for (pointer, value, field) in cases {
        assert_eq!(unsupported_field(&with(pointer, value)), field, "{pointer}");
    }
    let err = Bundle::new(&with(
        "/linux/seccomp",
        json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_NOTIFY"}]}),
    ))
    .load()
    .unwrap_err();
    let text = chain(&err);
    assert!(
        text.starts_with("invalid ")
            && text.contains(
                "config.json: linux.seccomp.syscalls[1].action (SCMP_ACT_NOTIFY) is set but not \
                 supported"
            ),
        "{text}"
    );
}

#[test]
fn a_lambda_environment_without_a_profile_gets_the_default_one() {
    let profile = json!({"defaultAction": "SCMP_ACT_ERRNO",
                         "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]});
    let plain = Bundle::new(&runc_spec()).load().unwrap();
    assert_eq!(plain.seccomp, None);
    let own = Bundle::new(&with("/linux/seccomp", profile))
        .load()
        .unwrap();
    assert_eq!(
        own.seccomp.unwrap().default_action,
        crate::spec::SeccompAction::Errno(libc::EPERM as u16)
    );
    let lambda = Bundle::new(&with(
        "/annotations",
        json!({"com.runlambda.mode": "lambda"}),
    ))
    .load()
    .unwrap();
    let default = lambda.seccomp.expect("the default Lambda profile");
    assert_eq!(default.default_action, crate::spec::SeccompAction::Allow);
    assert!(default.rules[0].names.contains(&"mount".to_string()));
}

#[test]
fn empty_optional_lists_are_not_set() {
    let mut config = runc_spec();
    set(
        &mut config,
        "/hooks",
        json!({"prestart": [], "poststop": []}),
    );
    set(&mut config, "/linux/devices", json!([]));
    set(&mut config, "/process/apparmorProfile", json!(""));
    set(&mut config, "/process/selinuxLabel", json!(""));
    set(&mut config, "/linux/resources/hugepageLimits", json!([]));
    set(
        &mut config,
        "/linux/resources/cpu",
        json!({"cpus": "", "mems": ""}),
    );
    Bundle::new(&config).load().unwrap();
}

#[test]
fn versions() {
    for version in [
        "1.0.0",
        "1.0.2-dev",
        "1.1.0",
        "1.2.1",
        "1.3.0",
        "1.3.7+dev",
        "1.0.0-rc5",
    ] {
        Bundle::new(&with("/ociVersion", json!(version)))
            .load()
            .unwrap_or_else(|e| panic!("{version}: {}", chain(&e)));
    }
    for version in ["", "0.6.0", "1.4.0", "2.0.0", "1.2", "one"] {
        let err = field_error(&with("/ociVersion", json!(version)));
        assert!(
            matches!(&err, FieldError::Version { version: v } if v == version),
            "{err:?}"
        );
    }
    assert_eq!(
        field_error(&with("/ociVersion", json!("1.4.0"))).to_string(),
        "ociVersion \"1.4.0\" is not supported (runlambda reads 1.0.0 to 1.3.x)"
    );
}

#[test]
fn missing_or_bad_rootfs() {
    let err = field_error(&with("/root/path", json!("nope")));
    assert!(
        matches!(&err, FieldError::Rootfs { path, .. } if path.ends_with("nope")),
        "{err:?}"
    );
    assert!(chain(&err).starts_with("root.path "), "{}", chain(&err));

    let bundle = Bundle::new(&with("/root/path", json!("file")));
    std::fs::write(bundle.path().join("file"), "").unwrap();
    let err = match bundle.load() {
        Err(BundleError::Invalid { source, .. }) => source,
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(err, FieldError::RootfsNotDirectory { .. }),
        "{err:?}"
    );

    let other = tempfile::tempdir().unwrap();
    let bundle = Bundle::new(&with("/root/path", json!(other.path())));
    assert_eq!(
        bundle.load().unwrap().rootfs,
        other.path().canonicalize().unwrap()
    );

    assert_eq!(
        field_error(&remove("/root")).to_string(),
        "root is required"
    );
    assert_eq!(
        field_error(&with("/root/path", json!(""))).to_string(),
        "root.path is required"
    );
}

#[test]
fn missing_config_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &RuntimeConfig::default(), false).unwrap_err();
    assert!(
        matches!(&err, BundleError::Load { path, .. } if *path == dir.path().join("config.json"))
    );
    assert!(err.to_string().contains("config.json"));
}

#[test]
fn bad_mount_type_is_named() {
    let mut config = runc_spec();
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/merged", "type": "overlay", "source": "overlay"}));
    let err = field_error(&config);
    assert!(
        matches!(&err, FieldError::MountType { index: 7, typ, .. } if typ == "overlay"),
        "{err:?}"
    );
}

#[test]
fn bind_source_relative_to_bundle() {
    let mut config = runc_spec();
    config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/var/task", "source": "code", "options": ["rbind", "ro"]}));
    let bundle = Bundle::new(&config);
    let got = bundle.load().unwrap();
    let task = got.mounts.last().unwrap();
    assert_eq!(task.source, bundle.path().join("code"));
    assert_eq!(task.kind, MountKind::Bind { recursive: true });
}

#[test]
fn uts_names_need_a_uts_namespace() {
    let mut config = runc_spec();
    set(
        &mut config,
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "mount"}]),
    );
    let err = field_error(&config);
    assert!(
        matches!(&err, FieldError::NeedsNamespace { field, namespace: NamespaceKind::Uts } if field == "hostname"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "hostname needs a uts namespace in linux.namespaces"
    );

    set(&mut config, "/hostname", json!(""));
    set(&mut config, "/domainname", json!("example.com"));
    let err = field_error(&config);
    assert!(
        matches!(&err, FieldError::NeedsNamespace { field, .. } if field == "domainname"),
        "{err:?}"
    );

    set(&mut config, "/domainname", json!(""));
    let got = Bundle::new(&config).load().unwrap();
    assert_eq!((got.hostname, got.domainname), (None, None));
}

#[test]
fn mount_namespace_is_required() {
    let err = field_error(&with("/linux/namespaces", json!([{"type": "pid"}])));
    assert!(
        matches!(
            err,
            FieldError::NeedsNamespace {
                namespace: NamespaceKind::Mount,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        field_error(&remove("/linux")).to_string(),
        "linux is required"
    );
}

#[test]
fn time_namespace_is_unsupported() {
    let field = unsupported_field(&with(
        "/linux/namespaces",
        json!([{"type": "mount"}, {"type": "uts"}, {"type": "time"}]),
    ));
    assert_eq!(field, "linux.namespaces[2] (type time)");
}

#[test]
fn user_namespace_with_mappings() {
    let mut config = runc_spec();
    set(
        &mut config,
        "/linux/namespaces",
        json!([{"type": "user"}, {"type": "mount"}, {"type": "uts"}]),
    );
    set(
        &mut config,
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
    );
    set(
        &mut config,
        "/linux/gidMappings",
        json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
    );
    let got = Bundle::new(&config).load().unwrap();
    let one = IdMapping {
        container_id: 0,
        host_id: 1000,
        size: 1,
    };
    assert_eq!(
        (&got.uid_mappings, &got.gid_mappings),
        (&vec![one], &vec![one])
    );
    assert!(got.creates(NamespaceKind::User));

    let err = field_error(&with(
        "/linux/uidMappings",
        json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
    ));
    assert!(
        matches!(
            err,
            FieldError::NeedsNamespace {
                namespace: NamespaceKind::User,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn memory_annotation_overrides_memory_and_cpu() {
    let mut config = runc_spec();
    set(
        &mut config,
        "/linux/resources",
        json!({"memory": {"limit": 1073741824}, "cpu": {"shares": 2048, "quota": 200000, "period": 100000}, "pids": {"limit": 50}}),
    );
    set(
        &mut config,
        "/annotations",
        json!({"com.runlambda.memory-mb": "1769"}),
    );
    let got = Bundle::new(&config).load().unwrap();
    assert_eq!(
        got.limits,
        Limits {
            memory_bytes: Some(1769 << 20),
            no_swap: true,
            pids: Some(50),
            cpu: Some(CpuLimits {
                weight: Some(100),
                quota_us: Some(100_000),
                period_us: Some(100_000),
            }),
        }
    );
    assert_eq!(got.function.memory_mb, Some(1769));

    let small = Bundle::new(&with(
        "/annotations",
        json!({"com.runlambda.memory-mb": "128"}),
    ))
    .load()
    .unwrap();
    assert_eq!(
        small.limits.cpu,
        Some(CpuLimits {
            weight: Some(7),
            quota_us: Some(7235),
            period_us: Some(100_000),
        })
    );
}

#[test]
fn ephemeral_storage_annotation_adds_tmp() {
    let mut config = runc_spec();
    config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    set(
        &mut config,
        "/annotations",
        json!({"com.runlambda.ephemeral-storage-mb": "2048"}),
    );
    let got = Bundle::new(&config).load().unwrap();
    let tmp: Vec<_> = got
        .mounts
        .iter()
        .filter(|m| m.destination == Path::new("/tmp"))
        .collect();
    assert_eq!(tmp.len(), 1);
    assert_eq!(tmp[0].data, "size=2048m,mode=1777");
    assert_eq!(tmp[0].flags, flags(&[libc::MS_NOSUID, libc::MS_NODEV]));
    assert_eq!(got.function.ephemeral_storage_mb, Some(2048));
}

#[test]
fn without_annotations_nothing_is_implicit() {
    let got = Bundle::new(&runc_spec()).load().unwrap();
    assert!(!got
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/tmp")));
    assert_eq!(got.limits, Limits::default());
}

#[test]
fn bad_annotation_is_wrapped_with_the_file() {
    let err = Bundle::new(&with(
        "/annotations",
        json!({"com.runlambda.memory-mb": "64"}),
    ))
    .load()
    .unwrap_err();
    let BundleError::Invalid {
        source: FieldError::Annotation(inner),
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(matches!(inner, AnnotationError::OutOfRange { .. }));
    let text = chain(&err);
    assert!(
        text.ends_with("config.json: annotation com.runlambda.memory-mb: \"64\" is out of range 128..=10240 (MB)"),
        "{text}"
    );

    let err = field_error(&with(
        "/annotations",
        json!({"com.runlambda.memroy-mb": "256"}),
    ));
    assert!(
        matches!(err, FieldError::Annotation(AnnotationError::Unknown { .. })),
        "{err:?}"
    );
}
