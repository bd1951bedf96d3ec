//! The seccomp profile of a Lambda environment whose bundle brings none. A function may do
//! anything an ordinary Linux process does, so the profile allows by default and fails with
//! EPERM what a function never needs: reshaping the environment's mounts or namespaces,
//! administering the kernel, and looking into or tracing other processes. Each row says why.
//! Names libseccomp does not know are skipped when the filter is compiled, so the table may name
//! syscalls newer than the library.

use oci_spec::runtime::{Arch, LinuxSeccompOperator};

use crate::spec::{ArgCondition, Seccomp, SeccompAction, SyscallRule};

/// Denied outright with EPERM.
const DENIED: &[(&str, &str)] = &[
    // The file system tree is fixed when the environment is built.
    ("mount", "mounts belong to the runtime"),
    ("umount2", "mounts belong to the runtime"),
    ("pivot_root", "the root is the runtime's"),
    ("fsopen", "the new mount API: as mount"),
    ("fsconfig", "the new mount API: as mount"),
    ("fsmount", "the new mount API: as mount"),
    ("fspick", "the new mount API: as mount"),
    ("move_mount", "the new mount API: as mount"),
    ("open_tree", "the new mount API: as mount"),
    ("mount_setattr", "the new mount API: as mount"),
    ("swapon", "swap is the host's"),
    ("swapoff", "swap is the host's"),
    // Namespaces: joining one leaves the environment; creating them is below, by flag.
    ("setns", "namespaces belong to the runtime"),
    // The kernel itself.
    ("reboot", "administers the machine"),
    ("kexec_load", "replaces the kernel"),
    ("kexec_file_load", "replaces the kernel"),
    ("init_module", "loads kernel code"),
    ("finit_module", "loads kernel code"),
    ("delete_module", "unloads kernel code"),
    ("bpf", "loads kernel programs"),
    ("perf_event_open", "observes the kernel and other processes"),
    ("acct", "process accounting is the host's"),
    ("quotactl", "disk quotas are the host's"),
    ("syslog", "the kernel log is the host's"),
    ("iopl", "raw port I/O"),
    ("ioperm", "raw port I/O"),
    ("settimeofday", "the clock is the host's"),
    ("clock_settime", "the clock is the host's"),
    ("uselib", "obsolete, and an old exploit vector"),
    // Other processes and the kernel's objects.
    ("ptrace", "traces other processes"),
    ("process_vm_readv", "reads other processes' memory"),
    ("process_vm_writev", "writes other processes' memory"),
    ("kcmp", "compares other processes' kernel objects"),
    ("keyctl", "the kernel keyring is not namespaced"),
    ("add_key", "the kernel keyring is not namespaced"),
    ("request_key", "the kernel keyring is not namespaced"),
    (
        "open_by_handle_at",
        "opens files by handle, around the mount tree",
    ),
    ("userfaultfd", "a tool for kernel exploits"),
];

/// The `CLONE_NEW*` flags: `unshare` and `clone` with any of them fail with EPERM, so a
/// function cannot make a user namespace and become root in it.
const NAMESPACE_FLAGS: &[(&str, u64)] = &[
    ("CLONE_NEWNS", libc::CLONE_NEWNS as u64),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP as u64),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS as u64),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC as u64),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER as u64),
    ("CLONE_NEWPID", libc::CLONE_NEWPID as u64),
    ("CLONE_NEWNET", libc::CLONE_NEWNET as u64),
    ("CLONE_NEWTIME", 0x80),
];

/// Fail with ENOSYS, as on an older kernel, where libc has a fallback.
const UNAVAILABLE: &[(&str, &str)] = &[(
    "clone3",
    "its flags are in memory, out of a filter's sight; libc falls back to clone",
)];

/// The architectures whose syscalls the filter covers: the native one and the compat ABIs the
/// kernel can run beside it, so that a 32-bit binary cannot step around the table.
#[cfg(target_arch = "x86_64")]
const ARCHITECTURES: &[Arch] = &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32];
#[cfg(target_arch = "aarch64")]
const ARCHITECTURES: &[Arch] = &[Arch::ScmpArchAarch64, Arch::ScmpArchArm];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCHITECTURES: &[Arch] = &[];

/// The default Lambda profile.
pub(super) fn profile() -> Seccomp {
    let eperm = SeccompAction::Errno(libc::EPERM as u16);
    let mut rules = vec![SyscallRule {
        index: 0,
        names: DENIED.iter().map(|(name, _)| name.to_string()).collect(),
        action: eperm,
        args: vec![],
    }];
    rules.push(SyscallRule {
        index: 1,
        names: UNAVAILABLE
            .iter()
            .map(|(name, _)| name.to_string())
            .collect(),
        action: SeccompAction::Errno(libc::ENOSYS as u16),
        args: vec![],
    });
    // One rule per flag: the conditions of a rule must all hold, the rules are alternatives.
    for (_, flag) in NAMESPACE_FLAGS {
        rules.push(SyscallRule {
            index: rules.len(),
            names: vec!["unshare".into(), "clone".into()],
            action: eperm,
            args: vec![ArgCondition {
                index: 0,
                op: LinuxSeccompOperator::ScmpCmpMaskedEq,
                value: *flag,
                value_two: *flag,
            }],
        });
    }
    Seccomp {
        default_action: SeccompAction::Allow,
        architectures: ARCHITECTURES.to_vec(),
        flags: vec![],
        rules,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_allows_by_default_and_denies_the_table() {
        let profile = profile();
        assert_eq!(profile.default_action, SeccompAction::Allow);
        let denied = |name: &str| {
            profile
                .rules
                .iter()
                .any(|rule| rule.args.is_empty() && rule.names.iter().any(|n| n == name))
        };
        for name in [
            "mount",
            "umount2",
            "pivot_root",
            "bpf",
            "ptrace",
            "setns",
            "clone3",
        ] {
            assert!(denied(name), "{name}");
        }
        assert!(!denied("unshare"), "unshare is denied by flag only");
        let by_flag: Vec<_> = profile
            .rules
            .iter()
            .filter(|rule| rule.names.contains(&"unshare".to_string()))
            .map(|rule| rule.args[0].value)
            .collect();
        assert!(
            by_flag.contains(&(libc::CLONE_NEWUSER as u64)),
            "{by_flag:?}"
        );
        assert_eq!(by_flag.len(), NAMESPACE_FLAGS.len());
        for (i, rule) in profile.rules.iter().enumerate() {
            assert_eq!(rule.index, i);
        }
    }
}
