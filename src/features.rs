//! `features`: the runtime-spec features document (features.md, features-linux.md), built from
//! the same tables the bundle loader checks against, so that it tells callers (containerd's CRI
//! above all) exactly what a config.json may use.
//!
//! Written with `serde_json` rather than oci-spec's `Features`, which prints every unset part
//! as `null` and names intelRdt's `enableMonitoring` `monitoring`.

use serde_json::{json, Value};

use crate::annotations;
use crate::hooks::HookKind;
use crate::spec::NamespaceKind;

/// The lowest and highest `ociVersion` the bundle loader accepts (any 1.0.0 to 1.3.x).
pub const OCI_VERSION_MIN: &str = "1.0.0";
pub const OCI_VERSION_MAX: &str = "1.3.0";

/// The features document.
pub fn features() -> Value {
    let mut capabilities: Vec<String> = caps::all().iter().map(|cap| cap.to_string()).collect();
    capabilities.sort();
    let namespaces: Vec<&str> = NamespaceKind::ALL.iter().map(|ns| ns.name()).collect();
    let mount_options: Vec<&str> = crate::bundle::mount_options().collect();
    let (seccomp_actions, seccomp_flags) = crate::bundle::seccomp_actions_and_flags();
    let hooks: Vec<&str> = HookKind::ALL.iter().map(|kind| kind.name()).collect();
    json!({
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": hooks,
        "mountOptions": mount_options,
        "linux": {
            "namespaces": namespaces,
            "capabilities": capabilities,
            // Limits go to cgroup2, or on a hybrid host to the v1 memory, pids and cpu
            // hierarchies; cgroupsPath is never a systemd unit.
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false,
                       "rdma": false},
            // Compiled with libseccomp; no listener, so no SCMP_ACT_NOTIFY.
            "seccomp": {
                "enabled": true,
                "actions": seccomp_actions,
                "operators": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ",
                              "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"],
                "archs": crate::sandbox::seccomp::architectures(),
                "knownFlags": seccomp_flags,
                "supportedFlags": seccomp_flags
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}},
            "netDevices": {"enabled": false}
        },
        "annotations": {"com.runlambda.version": env!("CARGO_PKG_VERSION")},
        // Every com.runlambda.* annotation reshapes the environment (memory, /tmp, timeout).
        "potentiallyUnsafeConfigAnnotations": [annotations::PREFIX]
    })
}
