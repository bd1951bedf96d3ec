//! Discovery of the cgroup hierarchies of this host: the cgroup2 mount, which carries membership,
//! freeze and kill everywhere, and the cgroup v1 mounts that a hybrid host uses for the
//! controllers its cgroup2 hierarchy lacks. Everything comes from the mount table; no path is
//! assumed.

use std::path::{Path, PathBuf};

use super::{file, CgroupError};
use crate::mountinfo::{self, MountEntry};

/// The resource controllers whose limits this module sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    pub(super) const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    /// The name in `cgroup.controllers` and in v1 super options.
    pub(super) fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// Where one controller lives on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    /// In the cgroup2 hierarchy.
    V2,
    /// In its own cgroup v1 hierarchy.
    V1,
    /// Nowhere: limits of this controller cannot be set.
    Missing,
}

/// Where memory limits are enforced on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryBackend {
    /// `memory.max` in the cgroup2 hierarchy.
    V2,
    /// `memory.limit_in_bytes` in a cgroup v1 memory hierarchy.
    V1,
    /// No memory controller is reachable: memory is neither limited nor measured.
    Unavailable,
}

/// The shape of this host's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// The cgroup2 hierarchy has the memory controller: everything happens there.
    PureV2,
    /// The cgroup2 hierarchy lacks the memory controller (it is bound to v1, mounted or not);
    /// resource limits go to whatever v1 hierarchies are mounted.
    Hybrid,
}

/// The cgroup hierarchies of this host, found in /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupHost {
    mounts: Mounts,
    /// The controllers listed in the cgroup2 root's `cgroup.controllers`.
    unified_controllers: Vec<String>,
}

/// The mount points that matter here, as found in a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mounts {
    unified: PathBuf,
    v1_memory: Option<PathBuf>,
    v1_pids: Option<PathBuf>,
    v1_cpu: Option<PathBuf>,
}

impl CgroupHost {
    /// Reads the mount table of this process, then the cgroup2 root's `cgroup.controllers`.
    pub fn discover() -> Result<Self, CgroupError> {
        let text = file::read(Path::new(mountinfo::SELF_MOUNTINFO))?;
        Self::from_mountinfo(&text)
    }

    /// Finds the hierarchies in mountinfo `text`. The only file read is `cgroup.controllers`
    /// at the cgroup2 mount point that `text` names, so tests can point it at a directory of
    /// their own.
    pub fn from_mountinfo(text: &str) -> Result<Self, CgroupError> {
        let mounts = Mounts::find(text)?;
        let controllers = file::read(&mounts.unified.join("cgroup.controllers"))?;
        Ok(CgroupHost {
            mounts,
            unified_controllers: controllers.split_whitespace().map(str::to_owned).collect(),
        })
    }

    /// Where memory limits go; `Unavailable` means a memory limit would not hold.
    pub fn memory_backend(&self) -> MemoryBackend {
        match self.backend(Controller::Memory) {
            Backend::V2 => MemoryBackend::V2,
            Backend::V1 => MemoryBackend::V1,
            Backend::Missing => MemoryBackend::Unavailable,
        }
    }

    /// `PureV2` when the cgroup2 hierarchy has the memory controller.
    pub fn kind(&self) -> HostKind {
        if self.backend(Controller::Memory) == Backend::V2 {
            HostKind::PureV2
        } else {
            HostKind::Hybrid
        }
    }

    /// The cgroup2 mount point.
    pub(super) fn unified_root(&self) -> &Path {
        &self.mounts.unified
    }

    /// A controller lives in cgroup2 when the root offers it, since the kernel binds each
    /// controller to one hierarchy only; otherwise in its v1 mount if there is one.
    pub(super) fn backend(&self, controller: Controller) -> Backend {
        if self
            .unified_controllers
            .iter()
            .any(|c| c == controller.name())
        {
            Backend::V2
        } else if self.v1_root(controller).is_some() {
            Backend::V1
        } else {
            Backend::Missing
        }
    }

    /// The mount point of the v1 hierarchy holding `controller`, if one is mounted.
    pub(super) fn v1_root(&self, controller: Controller) -> Option<&Path> {
        match controller {
            Controller::Memory => self.mounts.v1_memory.as_deref(),
            Controller::Pids => self.mounts.v1_pids.as_deref(),
            Controller::Cpu => self.mounts.v1_cpu.as_deref(),
        }
    }
}

impl Mounts {
    /// Pure: the cgroup2 mount by its fstype, each v1 controller by its super option. Where a
    /// hierarchy is mounted twice the later entry wins, since a later mount on the same point
    /// covers the earlier one; any mount of a hierarchy reaches the same cgroups anyway.
    fn find(text: &str) -> Result<Self, CgroupError> {
        let entries = mountinfo::parse(text).map_err(CgroupError::Mountinfo)?;
        let last = |wanted: &dyn Fn(&MountEntry) -> bool| {
            entries
                .iter()
                .rev()
                .find(|entry| wanted(entry))
                .map(|entry| entry.mount_point.clone())
        };
        let v1 = |controller: Controller| {
            last(&|entry| entry.fstype == "cgroup" && entry.has_super_option(controller.name()))
        };
        Ok(Mounts {
            unified: last(&|entry| entry.fstype == "cgroup2")
                .ok_or(CgroupError::NoUnifiedHierarchy)?,
            v1_memory: v1(Controller::Memory),
            v1_pids: v1(Controller::Pids),
            v1_cpu: v1(Controller::Cpu),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cgroup lines of a hybrid host (v1 controllers, cgroup2 without memory).
    const HYBRID: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd host in unified mode.
    const PURE_V2: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 22 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// `text` with `/sys/fs/cgroup` moved to `root`, and the cgroup2 root's
    /// `cgroup.controllers` written there.
    fn host_at(root: &Path, text: &str, unified: &str, controllers: &str) -> CgroupHost {
        let unified_dir = root.join(unified);
        std::fs::create_dir_all(&unified_dir).unwrap();
        std::fs::write(unified_dir.join("cgroup.controllers"), controllers).unwrap();
        let text = text.replace("/sys/fs/cgroup", root.to_str().unwrap());
        CgroupHost::from_mountinfo(&text).unwrap()
    }

    #[test]
    fn finds_hybrid_hierarchies_by_fstype_and_super_option() {
        let mounts = Mounts::find(HYBRID).unwrap();
        assert_eq!(
            mounts,
            Mounts {
                unified: "/sys/fs/cgroup/unified".into(),
                v1_memory: Some("/sys/fs/cgroup/memory".into()),
                v1_pids: Some("/sys/fs/cgroup/pids".into()),
                v1_cpu: Some("/sys/fs/cgroup/cpu".into()),
            }
        );
    }

    #[test]
    fn finds_pure_v2_hierarchy() {
        let mounts = Mounts::find(PURE_V2).unwrap();
        assert_eq!(mounts.unified, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(
            (mounts.v1_memory, mounts.v1_pids, mounts.v1_cpu),
            (None, None, None)
        );
    }

    #[test]
    fn finds_comounted_cpu_and_the_covering_mount() {
        let text = "\
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
41 31 0:38 / /old rw - cgroup2 cgroup2 rw
42 31 0:38 / /new rw - cgroup2 cgroup2 rw
";
        let mounts = Mounts::find(text).unwrap();
        assert_eq!(mounts.v1_cpu, Some("/sys/fs/cgroup/cpu,cpuacct".into()));
        assert_eq!(mounts.unified, PathBuf::from("/new"));
    }

    #[test]
    fn no_cgroup2_mount_is_an_error() {
        let text = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert!(matches!(
            Mounts::find(text),
            Err(CgroupError::NoUnifiedHierarchy)
        ));
        assert!(matches!(
            Mounts::find("garbage\n"),
            Err(CgroupError::Mountinfo(_))
        ));
    }

    #[test]
    fn hybrid_host_puts_memory_pids_and_cpu_in_v1() {
        let root = tempfile::tempdir().unwrap();
        let host = host_at(root.path(), HYBRID, "unified", "hugetlb\n");
        assert_eq!(host.kind(), HostKind::Hybrid);
        assert_eq!(host.memory_backend(), MemoryBackend::V1);
        assert_eq!(host.backend(Controller::Pids), Backend::V1);
        assert_eq!(host.backend(Controller::Cpu), Backend::V1);
        assert_eq!(host.unified_root(), root.path().join("unified"));
        assert_eq!(
            host.v1_root(Controller::Memory),
            Some(root.path().join("memory").as_path())
        );
    }

    #[test]
    fn hybrid_view_without_v1_memory_has_no_memory_backend() {
        let root = tempfile::tempdir().unwrap();
        let text: String = HYBRID
            .lines()
            .filter(|line| !line.ends_with(",memory"))
            .map(|line| format!("{line}\n"))
            .collect();
        let host = host_at(root.path(), &text, "unified", "hugetlb\n");
        assert_eq!(host.kind(), HostKind::Hybrid);
        assert_eq!(host.memory_backend(), MemoryBackend::Unavailable);
        assert_eq!(host.backend(Controller::Pids), Backend::V1);
    }

    #[test]
    fn pure_v2_host_uses_the_listed_controllers() {
        let root = tempfile::tempdir().unwrap();
        let host = host_at(root.path(), PURE_V2, "", "cpuset cpu io memory pids\n");
        assert_eq!(host.kind(), HostKind::PureV2);
        assert_eq!(host.memory_backend(), MemoryBackend::V2);
        assert_eq!(host.backend(Controller::Pids), Backend::V2);
        assert_eq!(host.backend(Controller::Cpu), Backend::V2);

        let without_pids = host_at(root.path(), PURE_V2, "", "cpu memory\n");
        assert_eq!(without_pids.backend(Controller::Pids), Backend::Missing);
    }

    #[test]
    fn unreadable_cgroup_controllers_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        let text = PURE_V2.replace("/sys/fs/cgroup", root.path().to_str().unwrap());
        let err = CgroupHost::from_mountinfo(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot read {}/cgroup.controllers", root.path().display())
        );
    }
}
