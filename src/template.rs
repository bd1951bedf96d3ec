//! `spec`: a template config.json — runc's `runc spec` template without a terminal (so that
//! `create` needs no `--console-socket`, and the same file serves a Lambda environment), which
//! the bundle loader takes as it is; with `--lambda`, the annotations of a
//! Lambda function with Lambda's smallest settings.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::annotations::PREFIX;
use crate::container::OCI_VERSION;

/// Why `spec` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// runc's words, which scripts may look for.
    #[error("File {} exists. Remove it first", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What runc hides from a container: kernel interfaces that leak host details or hardware.
pub const MASKED_PATHS: [&str; 11] = [
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
    "/sys/devices/virtual/tpm",
];

/// What runc makes read-only in a container's `/proc`.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The template; `lambda` adds the `com.runlambda.*` annotations of a Lambda function.
pub fn template(lambda: bool) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runlambda",
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
            // runc adds the cgroup namespace only on a pure cgroup2 host; runlambda's leaf is
            // always a cgroup2 one, so every container gets it.
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS
        }
    });
    if lambda {
        // Lambda's smallest function: 128 MB, 512 MB of /tmp, 3 s timeout (its defaults).
        let settings = [
            ("mode", "lambda"),
            ("memory-mb", "128"),
            ("ephemeral-storage-mb", "512"),
            ("timeout-s", "3"),
        ];
        let annotations: serde_json::Map<String, Value> = settings
            .iter()
            .map(|(name, value)| (format!("{PREFIX}{name}"), json!(value)))
            .collect();
        spec["annotations"] = Value::Object(annotations);
    }
    spec
}

/// Writes the template to `<bundle>/config.json`, which must not exist yet.
pub fn write(bundle: &Path, lambda: bool) -> Result<(), TemplateError> {
    let path = bundle.join("config.json");
    let text = serde_json::to_string_pretty(&template(lambda)).expect("template serialises");
    // create_new: a file that appears meanwhile is not overwritten either.
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(TemplateError::Exists { path })
        }
        Err(source) => return Err(TemplateError::Write { path, source }),
    };
    file.write_all(format!("{text}\n").as_bytes())
        .map_err(|source| TemplateError::Write { path, source })
}
