//! The checked description of one environment: what `bundle` produces from config.json and
//! annotations, and what `cgroup` and `sandbox` consume. Every field here has already been
//! validated, so the kernel-facing code never has to second-guess its input.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::{Arch, LinuxSeccompOperator};
use serde::{Deserialize, Serialize};

use crate::annotations::FunctionSettings;
use crate::cgroup::Limits;
use crate::hooks::Hooks;

/// Everything needed to build one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvironmentSpec {
    /// Absolute path of the bundle directory.
    pub bundle: PathBuf,
    /// Absolute path of the root filesystem.
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub process: ProcessSpec,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Mounts in config.json order; `/tmp` from the ephemeral-storage setting is appended.
    pub mounts: Vec<MountSpec>,
    pub namespaces: Vec<NamespaceSpec>,
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    /// `linux.cgroupsPath` as given; `None` lets the runtime choose a leaf under its parent.
    pub cgroups_path: Option<PathBuf>,
    pub limits: Limits,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub rootfs_propagation: Option<Propagation>,
    pub sysctl: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// How many socket-activation fds, from 3 on, the process inherits from `create`
    /// (`LISTEN_FDS`, see [`crate::activation`]); not from config.json.
    pub listen_fds: u32,
    /// How many fds after the activation ones the process inherits from `create`
    /// (`--preserve-fds`); not from config.json.
    pub preserve_fds: u32,
    /// The `com.runlambda.*` settings that the bundle carried.
    pub function: FunctionSettings,
    /// `linux.seccomp`, or in a Lambda environment without one the default Lambda profile.
    pub seccomp: Option<Seccomp>,
    pub hooks: Hooks,
}

/// The process that `start` runs as pid 1.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Absolute working directory inside the container.
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub rlimits: Vec<Rlimit>,
    pub capabilities: Capabilities,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    /// The process gets a pseudo-terminal, handed to the caller's console socket.
    pub terminal: bool,
    /// The terminal's size to set (`process.consoleSize`); `None` leaves the kernel's 0×0.
    pub console_size: Option<ConsoleSize>,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSize {
    pub rows: u16,
    pub cols: u16,
}

/// One resource limit, by its `RLIMIT_*` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: u32,
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

/// The five capability sets of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub bounding: caps::CapsHashSet,
    pub effective: caps::CapsHashSet,
    pub permitted: caps::CapsHashSet,
    pub inheritable: caps::CapsHashSet,
    pub ambient: caps::CapsHashSet,
}

/// A mount to make inside the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
    /// For binds: an absolute host path. For the others: the `source` string (often the type).
    pub source: PathBuf,
    /// `MS_*` flags to mount with (without `MS_BIND`/`MS_REC`, which `kind` carries).
    pub flags: u64,
    /// Propagation flags to apply after mounting (`MS_SHARED`, `MS_PRIVATE`, … with `MS_REC`).
    pub propagation: u64,
    /// Filesystem data such as `size=512m,mode=1777`.
    pub data: String,
}

/// The mount types runlambda knows how to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind { recursive: bool },
    Tmpfs,
    Proc,
    Sysfs,
    Devpts,
    Mqueue,
    Cgroup,
}

/// One namespace: a new one, or the one at `path` to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceSpec {
    pub kind: NamespaceKind,
    pub path: Option<PathBuf>,
}

/// The namespace types runlambda supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NamespaceKind {
    User,
    Pid,
    Mount,
    Ipc,
    Uts,
    Network,
    Cgroup,
}

impl NamespaceKind {
    /// The `CLONE_NEW*` flag for this namespace.
    pub fn clone_flag(self) -> nix::sched::CloneFlags {
        use nix::sched::CloneFlags;
        match self {
            Self::User => CloneFlags::CLONE_NEWUSER,
            Self::Pid => CloneFlags::CLONE_NEWPID,
            Self::Mount => CloneFlags::CLONE_NEWNS,
            Self::Ipc => CloneFlags::CLONE_NEWIPC,
            Self::Uts => CloneFlags::CLONE_NEWUTS,
            Self::Network => CloneFlags::CLONE_NEWNET,
            Self::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        }
    }

    /// The name config.json uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Pid => "pid",
            Self::Mount => "mount",
            Self::Ipc => "ipc",
            Self::Uts => "uts",
            Self::Network => "network",
            Self::Cgroup => "cgroup",
        }
    }

    /// Every kind, in this order (the user namespace first).
    pub const ALL: [NamespaceKind; 7] = [
        Self::User,
        Self::Pid,
        Self::Mount,
        Self::Ipc,
        Self::Uts,
        Self::Network,
        Self::Cgroup,
    ];
}

/// A uid or gid mapping for a user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// Mount propagation of the container's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Shared,
    Slave,
    Private,
    Unbindable,
}

/// A checked seccomp profile. Syscall names stay names: libseccomp resolves them when the
/// filter is compiled, and skips the ones it does not know (newer than the library), as runc
/// does. Kept in the container's state so that `exec`'d processes get the same filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seccomp {
    pub default_action: SeccompAction,
    /// Empty means the native architecture only.
    pub architectures: Vec<Arch>,
    pub flags: Vec<SeccompFlag>,
    pub rules: Vec<SyscallRule>,
}

/// What the filter does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompAction {
    Allow,
    /// Fail the syscall with this errno.
    Errno(u16),
    KillThread,
    KillProcess,
    Trap,
    Log,
}

/// The `SECCOMP_FILTER_FLAG_*` flags runlambda loads a filter with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompFlag {
    Tsync,
    Log,
    SpecAllow,
}

/// One entry of `linux.seccomp.syscalls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyscallRule {
    /// Its index in `linux.seccomp.syscalls`, for messages.
    pub index: usize,
    pub names: Vec<String>,
    pub action: SeccompAction,
    /// All must hold for the rule to match (but see `sandbox::seccomp` for repeated indexes).
    pub args: Vec<ArgCondition>,
}

/// A comparison of one syscall argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgCondition {
    /// 0 to 5.
    pub index: u32,
    pub op: LinuxSeccompOperator,
    /// The operand; for `SCMP_CMP_MASKED_EQ` the mask.
    pub value: u64,
    /// For `SCMP_CMP_MASKED_EQ` the value the masked argument must equal.
    pub value_two: u64,
}

impl EnvironmentSpec {
    /// Whether a new namespace of this kind is created (as opposed to joined or shared with the host).
    pub fn creates(&self, kind: NamespaceKind) -> bool {
        self.namespaces
            .iter()
            .any(|ns| ns.kind == kind && ns.path.is_none())
    }

    /// Whether this is a Lambda execution environment (else a plain, runc-like container).
    pub fn is_lambda(&self) -> bool {
        self.function.mode == Some(crate::annotations::Mode::Lambda)
    }

    /// Whether the environment has a namespace of this kind at all (new or joined).
    pub fn has(&self, kind: NamespaceKind) -> bool {
        self.namespaces.iter().any(|ns| ns.kind == kind)
    }

    /// Container `id`, whose init is `pid`, as its hooks see it.
    pub fn hook_state(&self, id: &str, pid: i32) -> crate::hooks::HookState {
        crate::hooks::HookState {
            id: id.to_string(),
            pid,
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A spec with defaults everywhere but the given mounts and namespaces.
    pub(crate) fn minimal_spec(
        mounts: Vec<MountSpec>,
        namespaces: Vec<NamespaceSpec>,
    ) -> EnvironmentSpec {
        EnvironmentSpec {
            bundle: "/bundle".into(),
            rootfs: "/bundle/rootfs".into(),
            root_readonly: false,
            process: ProcessSpec {
                args: vec!["/bin/true".into()],
                env: vec![],
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                additional_gids: vec![],
                umask: None,
                rlimits: vec![],
                capabilities: Capabilities::default(),
                no_new_privileges: false,
                oom_score_adj: None,
                terminal: false,
                console_size: None,
            },
            hostname: None,
            domainname: None,
            mounts,
            namespaces,
            uid_mappings: vec![],
            gid_mappings: vec![],
            cgroups_path: None,
            limits: Limits::default(),
            masked_paths: vec![],
            readonly_paths: vec![],
            rootfs_propagation: None,
            sysctl: BTreeMap::new(),
            annotations: BTreeMap::new(),
            listen_fds: 0,
            preserve_fds: 0,
            function: FunctionSettings::default(),
            seccomp: None,
            hooks: Hooks::default(),
        }
    }
}
