//! [`Cgroup`]: one environment's leaf across the hierarchies of its host — making it with its
//! limits (and undoing a half-made one), finding it again from its relative path, putting
//! processes in it, reading its peak memory, and removing it.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::thread;
use std::time::Duration;

use super::host::{Backend, Controller};
use super::plan::{self, LimitWrite, Target};
use super::{file, CgroupError, CgroupHost, Limits, MemoryBackend};

/// How long `destroy` keeps retrying a leaf the kernel still calls busy, in total about this
/// much: a cgroup whose last process just exited can stay busy for a moment.
const REMOVE_RETRY_LIMIT: Duration = Duration::from_millis(128);

/// A v1 leaf's `tasks` file, opened by the runtime for the process that is to move itself in.
#[derive(Debug)]
pub struct V1Entry {
    path: PathBuf,
    file: File,
}

impl V1Entry {
    /// Moves the calling thread into the leaf: the whole process, as long as it has no other
    /// thread. `0` in `tasks` moves the writer's own thread, which the kernel does under
    /// `cgroup_mutex` alone. Moving another process (its pid in `cgroup.procs`) also takes
    /// `cgroup_threadgroup_rwsem`, whose first writer after a quiet spell waits for an RCU grace
    /// period: 5-15 ms on the hosts measured, most of a cold start. The kernel checks the
    /// credentials the file was opened with, so the move works from inside the environment's
    /// namespaces too.
    pub fn join(self) -> Result<(), CgroupError> {
        file::write_to(self.file, &self.path, "0")
    }
}

/// One environment's cgroup leaf: the same relative path in the cgroup2 hierarchy and in the
/// v1 hierarchies that hold its limits.
#[derive(Debug, Clone)]
pub struct Cgroup {
    rel: PathBuf,
    unified: PathBuf,
    /// Leaves in v1 hierarchies (hybrid hosts only).
    v1: Vec<(Controller, PathBuf)>,
    memory: MemoryBackend,
}

impl Cgroup {
    /// Makes the leaf `rel` (and its missing parents) in the cgroup2 hierarchy and in each v1
    /// hierarchy a limit needs, enables this module's controllers down to it where cgroup2 has
    /// them, and writes `limits`. A memory limit without a memory controller is refused unless
    /// `allow_unenforced_memory`. A leaf that already exists is an error; on any error, the
    /// directories made so far are removed again.
    pub fn create(
        host: &CgroupHost,
        rel: &Path,
        limits: &Limits,
        allow_unenforced_memory: bool,
    ) -> Result<Cgroup, CgroupError> {
        let rel = checked_relative(rel)?;
        // Planned before anything is made, so a refused limit leaves no trace.
        let writes = plan::limit_writes(limits, |c| host.backend(c), allow_unenforced_memory)?;
        let mut made = Vec::new();
        let result = Self::make(host, rel, &writes, &mut made);
        if result.is_err() {
            // Children first. A parent may be shared with a concurrent `create`, whose leaf then
            // keeps it busy: leaving it is right, so failures are ignored.
            for dir in made.iter().rev() {
                let _ = fs::remove_dir(dir);
            }
        }
        result
    }

    fn make(
        host: &CgroupHost,
        rel: PathBuf,
        writes: &[LimitWrite],
        made: &mut Vec<PathBuf>,
    ) -> Result<Cgroup, CgroupError> {
        let root = host.unified_root();
        make_parents(root, &rel, made)?;
        let wanted = plan::unified_controllers(|c| host.backend(c));
        if !wanted.is_empty() {
            // Top-down: a controller can be enabled in a cgroup only once its parent has it.
            for ancestor in ancestors(root, &rel) {
                let path = ancestor.join("cgroup.subtree_control");
                if let Some(enable) = plan::subtree_control(&file::read(&path)?, &wanted) {
                    file::write(&path, &enable)?;
                }
            }
        }
        let unified = root.join(&rel);
        make_leaf(&unified, made)?;

        let mut v1 = Vec::new();
        for controller in Controller::ALL {
            let needed = writes.iter().any(|w| w.target == Target::V1(controller));
            if let (true, Some(v1_root)) = (needed, host.v1_root(controller)) {
                make_parents(v1_root, &rel, made)?;
                let leaf = v1_root.join(&rel);
                make_leaf(&leaf, made)?;
                v1.push((controller, leaf));
            }
        }

        let cgroup = Cgroup {
            rel,
            unified,
            v1,
            memory: host.memory_backend(),
        };
        for write in writes {
            cgroup.apply(write)?;
        }
        Ok(cgroup)
    }

    fn apply(&self, write: &LimitWrite) -> Result<(), CgroupError> {
        let dir = match write.target {
            Target::Unified => &self.unified,
            // `create` made a leaf for every v1 target that has a hierarchy, and the plan only
            // targets v1 where there is one; this error names the file should that ever change.
            Target::V1(controller) => {
                self.v1_leaf(controller)
                    .ok_or(CgroupError::ControllerUnavailable {
                        controller: controller.name(),
                        what: write.file,
                    })?
            }
        };
        let path = dir.join(write.file);
        if write.optional {
            file::write_if_present(&path, &write.value)?;
        } else {
            file::write(&path, &write.value)?;
        }
        Ok(())
    }

    /// Changes the limits that `limits` sets, leaving the others as they are (`update`). A v1
    /// hierarchy that had no leaf yet gets one, and the container's processes join it.
    pub fn update(
        &self,
        host: &CgroupHost,
        limits: &Limits,
        allow_unenforced_memory: bool,
    ) -> Result<(), CgroupError> {
        let mut writes = plan::limit_writes(limits, |c| host.backend(c), allow_unenforced_memory)?;
        // An update without a pids limit keeps the current one rather than lifting it.
        if limits.pids.is_none() {
            writes.retain(|w| w.file != "pids.max");
        }
        for controller in Controller::ALL {
            let needed = writes.iter().any(|w| w.target == Target::V1(controller));
            let exists = self.v1_leaf(controller).is_some_and(Path::exists);
            if let (true, false, Some(v1_root)) = (needed, exists, host.v1_root(controller)) {
                let mut made = Vec::new();
                make_parents(v1_root, &self.rel, &mut made)?;
                let leaf = v1_root.join(&self.rel);
                make_leaf(&leaf, &mut made)?;
                for pid in self.pids()? {
                    file::write(&leaf.join("cgroup.procs"), &pid.to_string())?;
                }
            }
        }
        // Opened again, it sees the leaves just made.
        let cgroup = Cgroup::open(host, &self.rel);
        for write in &writes {
            cgroup.apply(write)?;
        }
        Ok(())
    }

    /// The leaf `rel` made earlier by [`Cgroup::create`] (its path is kept in the state file).
    /// Does no I/O: a leaf that is gone shows up as errors of the calls that need it.
    pub fn open(host: &CgroupHost, rel: &Path) -> Cgroup {
        let rel = without_root(rel);
        // Every v1 hierarchy that may hold a limit: `create` made leaves only for the limits
        // that were set, so the calls below treat a missing v1 leaf as one never made.
        let v1 = Controller::ALL
            .into_iter()
            .filter(|&c| host.backend(c) == Backend::V1)
            .filter_map(|c| host.v1_root(c).map(|v1_root| (c, v1_root.join(&rel))))
            .collect();
        Cgroup {
            unified: host.unified_root().join(&rel),
            rel,
            v1,
            memory: host.memory_backend(),
        }
    }

    /// The leaf's path relative to each hierarchy's mount point.
    pub fn rel_path(&self) -> &Path {
        &self.rel
    }

    /// The leaf's directory in the cgroup2 hierarchy.
    pub fn unified_dir(&self) -> &Path {
        &self.unified
    }

    /// An `O_DIRECTORY | O_CLOEXEC` descriptor of the cgroup2 leaf, for clone3's
    /// `CLONE_INTO_CGROUP`, which places the child before it runs a single instruction.
    pub fn open_dir_fd(&self) -> Result<OwnedFd, CgroupError> {
        // std opens with O_CLOEXEC always.
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.unified)
            .map(OwnedFd::from)
            .map_err(|source| CgroupError::Open {
                path: self.unified.clone(),
                source,
            })
    }

    /// Opens the `tasks` file of each v1 leaf (none on a pure v2 host), for a process cloned
    /// after this call to move itself in with [`V1Entry::join`] before anything of it runs;
    /// cgroup2 membership comes from `CLONE_INTO_CGROUP`.
    pub fn open_v1_entries(&self) -> Result<Vec<V1Entry>, CgroupError> {
        self.v1
            .iter()
            // An opened cgroup lists v1 leaves that `create` had no limit to make.
            .filter(|(_, leaf)| leaf.is_dir())
            .map(|(_, leaf)| {
                let path = leaf.join("tasks");
                file::open_for_writing(&path).map(|file| V1Entry { path, file })
            })
            .collect()
    }

    /// Whether a memory controller covers this leaf, so its memory limit holds.
    pub fn memory_enforced(&self) -> bool {
        self.memory != MemoryBackend::Unavailable
    }

    /// The most memory the leaf has used, in bytes: `memory.peak` on cgroup2, the v1
    /// `memory.max_usage_in_bytes`. `None` when no memory controller accounts for the leaf
    /// (none on the host, a hybrid leaf made without a memory limit, a kernel before 5.19).
    pub fn peak_memory_bytes(&self) -> Result<Option<u64>, CgroupError> {
        let path = match (self.memory, self.v1_leaf(Controller::Memory)) {
            (MemoryBackend::V2, _) => self.unified.join("memory.peak"),
            (MemoryBackend::V1, Some(leaf)) => leaf.join("memory.max_usage_in_bytes"),
            (MemoryBackend::V1, None) | (MemoryBackend::Unavailable, _) => return Ok(None),
        };
        let Some(text) = file::read_if_present(&path)? else {
            return Ok(None);
        };
        match text.trim().parse() {
            Ok(bytes) => Ok(Some(bytes)),
            Err(_) => Err(CgroupError::Malformed {
                path,
                content: text,
            }),
        }
    }

    /// How many processes the OOM killer has killed in the leaf (`oom_kill` of
    /// `memory.events`, or of v1's `memory.oom_control`); `None` without a memory controller.
    pub fn oom_kills(&self) -> Result<Option<u64>, CgroupError> {
        let path = match (self.memory, self.v1_leaf(Controller::Memory)) {
            (MemoryBackend::V2, _) => self.unified.join("memory.events"),
            (MemoryBackend::V1, Some(leaf)) => leaf.join("memory.oom_control"),
            (MemoryBackend::V1, None) | (MemoryBackend::Unavailable, _) => return Ok(None),
        };
        let Some(text) = file::read_if_present(&path)? else {
            return Ok(None);
        };
        let count = text
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse().ok());
        match count {
            Some(count) => Ok(Some(count)),
            None => Err(CgroupError::Malformed {
                path,
                content: text,
            }),
        }
    }

    /// Removes the leaf from every hierarchy, with any cgroups the environment made inside it.
    /// A leaf already gone is fine; one still busy is retried for a moment. The leaf must hold
    /// no process (see [`Cgroup::kill`]).
    pub fn destroy(&self) -> Result<(), CgroupError> {
        let mut first_error = None;
        // Every hierarchy is tried even when one fails, so as little as possible is left.
        for leaf in std::iter::once(&self.unified).chain(self.v1.iter().map(|(_, leaf)| leaf)) {
            if let Err(err) = remove_tree(leaf) {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    pub(super) fn v1_leaf(&self, controller: Controller) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, leaf)| leaf.as_path())
    }
}

/// `rel` without a leading `/` (OCI's `cgroupsPath` is absolute from the hierarchy's root),
/// which would otherwise make `join` discard the mount point.
fn without_root(rel: &Path) -> PathBuf {
    rel.components()
        .filter(|c| !matches!(c, Component::RootDir))
        .collect()
}

/// `rel` without a leading `/`, refused when empty or when it could leave the hierarchy.
fn checked_relative(rel: &Path) -> Result<PathBuf, CgroupError> {
    let relative = without_root(rel);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if relative.as_os_str().is_empty() || !plain {
        return Err(CgroupError::InvalidPath {
            path: rel.to_owned(),
        });
    }
    Ok(relative)
}

/// The cgroups whose `cgroup.subtree_control` decides what the leaf `rel` gets: the root and
/// every parent of the leaf, top-down.
fn ancestors(root: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut dir = root.to_path_buf();
    let mut dirs = vec![dir.clone()];
    for component in rel.parent().into_iter().flat_map(Path::components) {
        dir.push(component);
        dirs.push(dir.clone());
    }
    dirs
}

/// Makes the missing parents of `root/rel`, recording those it made.
fn make_parents(root: &Path, rel: &Path, made: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    for dir in ancestors(root, rel).into_iter().skip(1) {
        match fs::create_dir(&dir) {
            Ok(()) => made.push(dir),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: dir, source }),
        }
    }
    Ok(())
}

/// Makes the leaf itself, which must be new: an existing one belongs to someone else.
fn make_leaf(leaf: &Path, made: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    match fs::create_dir(leaf) {
        Ok(()) => {
            made.push(leaf.to_owned());
            Ok(())
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(CgroupError::AlreadyExists {
            path: leaf.to_owned(),
        }),
        Err(source) => Err(CgroupError::Create {
            path: leaf.to_owned(),
            source,
        }),
    }
}

/// Removes `dir` and the cgroups below it, deepest first (the kernel refuses to remove a cgroup
/// with children; its interface files go with it).
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let remove_error = |source| CgroupError::Remove {
        path: dir.to_owned(),
        source,
    };
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(remove_error(source)),
    };
    for entry in entries {
        let entry = entry.map_err(remove_error)?;
        if entry.file_type().map_err(remove_error)?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = Duration::from_millis(1);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && delay < REMOVE_RETRY_LIMIT => {
                thread::sleep(delay);
                delay *= 2;
            }
            Err(source) => return Err(remove_error(source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::fake::{content, FakeHost};
    use crate::cgroup::CpuLimits;

    fn full_limits() -> Limits {
        Limits {
            pids: Some(64),
            ..Limits::for_function_memory(128)
        }
    }

    #[test]
    fn create_without_limits_on_hybrid_makes_only_the_unified_leaf() {
        let fake = FakeHost::hybrid(&["memory", "pids", "cpu"]);
        let cgroup = Cgroup::create(
            &fake.host,
            Path::new("/runlambda/env1"),
            &Limits::default(),
            false,
        )
        .unwrap();
        assert_eq!(cgroup.rel_path(), Path::new("runlambda/env1"));
        assert_eq!(cgroup.unified_dir(), fake.path("unified/runlambda/env1"));
        assert!(cgroup.unified_dir().is_dir());
        for v1 in ["memory", "pids", "cpu"] {
            assert!(!fake.path(v1).join("runlambda").exists(), "{v1}");
        }
        assert!(cgroup.memory_enforced());
    }

    #[test]
    fn create_rolls_back_what_it_made_when_a_write_fails() {
        let fake = FakeHost::hybrid(&["pids"]);
        let limits = Limits {
            pids: Some(10),
            ..Limits::default()
        };
        // A plain directory lacks pids.max, so the first limit write fails.
        let err = Cgroup::create(&fake.host, Path::new("a/b/env"), &limits, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "cannot write \"10\" to {}",
                fake.path("pids/a/b/env/pids.max").display()
            )
        );
        assert!(!fake.path("unified/a").exists());
        assert!(!fake.path("pids/a").exists());
        assert!(fake.path("pids").is_dir());
    }

    #[test]
    fn create_refuses_an_existing_leaf_and_leaves_it_alone() {
        let fake = FakeHost::hybrid(&[]);
        let existing = fake.make("unified/parent/env", &[]);
        let err = Cgroup::create(
            &fake.host,
            Path::new("parent/env"),
            &Limits::default(),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cgroup {} already exists", existing.display())
        );
        assert!(existing.is_dir());
    }

    #[test]
    fn memory_limit_without_memory_controller_makes_nothing_unless_allowed() {
        let fake = FakeHost::hybrid(&[]);
        let memory_only = Limits {
            memory_bytes: Some(128 << 20),
            no_swap: true,
            ..Limits::default()
        };
        let err = Cgroup::create(&fake.host, Path::new("env"), &memory_only, false).unwrap_err();
        assert!(matches!(err, CgroupError::MemoryUnavailable));
        assert!(!fake.path("unified/env").exists());

        let cgroup = Cgroup::create(&fake.host, Path::new("env"), &memory_only, true).unwrap();
        assert!(!cgroup.memory_enforced());
        assert_eq!(cgroup.peak_memory_bytes().unwrap(), None);
    }

    #[test]
    fn create_refuses_paths_that_leave_the_hierarchy() {
        let fake = FakeHost::hybrid(&[]);
        for rel in ["", "/", "../env", "a/../../env"] {
            let err =
                Cgroup::create(&fake.host, Path::new(rel), &Limits::default(), false).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{rel:?}: {err}"
            );
        }
    }

    #[test]
    fn create_on_pure_v2_enables_missing_controllers_top_down() {
        let fake = FakeHost::pure_v2("cpuset cpu io memory pids\n");
        let parent = fake.make("runlambda", &[("cgroup.subtree_control", "memory\n")]);
        // The leaf is a plain directory without pids.max: creation stops at the first limit,
        // after the ancestors were set up.
        let err = Cgroup::create(
            &fake.host,
            Path::new("runlambda/env"),
            &Limits::default(),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().ends_with("runlambda/env/pids.max"), "{err}");
        assert_eq!(
            content(&fake.path(""), "cgroup.subtree_control"),
            "+memory +pids +cpu"
        );
        assert_eq!(content(&parent, "cgroup.subtree_control"), "+pids +cpu");
        assert!(!parent.join("env").exists());
        assert!(parent.is_dir());
    }

    #[test]
    fn limits_land_in_the_pure_v2_leaf() {
        let fake = FakeHost::pure_v2("cpu memory pids\n");
        let files = ["memory.max", "pids.max", "cpu.weight", "cpu.max"];
        let leaf = fake.make("env", &files.map(|f| (f, "unset\n")));
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        for write in plan::limit_writes(&full_limits(), |c| fake.host.backend(c), false).unwrap() {
            cgroup.apply(&write).unwrap();
        }
        let written = files.map(|f| content(&leaf, f));
        assert_eq!(written, ["134217728", "64", "7", "7235 100000"]);
        // No swap accounting in this kernel: memory.swap.max was skipped, not created.
        assert!(!leaf.join("memory.swap.max").exists());
    }

    #[test]
    fn limits_land_in_each_v1_leaf_on_hybrid() {
        let fake = FakeHost::hybrid(&["memory", "pids", "cpu"]);
        let memory = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"];
        let cpu = ["cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"];
        let memory_leaf = fake.make("memory/env", &memory.map(|f| (f, "")));
        let pids_leaf = fake.make("pids/env", &[("pids.max", "max")]);
        let cpu_leaf = fake.make("cpu/env", &cpu.map(|f| (f, "")));
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        for write in plan::limit_writes(&full_limits(), |c| fake.host.backend(c), false).unwrap() {
            cgroup.apply(&write).unwrap();
        }
        assert_eq!(memory.map(|f| content(&memory_leaf, f)), ["134217728"; 2]);
        assert_eq!(content(&pids_leaf, "pids.max"), "64");
        assert_eq!(
            cpu.map(|f| content(&cpu_leaf, f)),
            ["159", "100000", "7235"]
        );
    }

    #[test]
    fn v1_entries_open_the_tasks_of_the_v1_leaves_that_exist_and_join_writes_0() {
        let fake = FakeHost::hybrid(&["memory", "pids", "cpu"]);
        let pids_leaf = fake.make("pids/env", &[("tasks", "")]);
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        let entries = cgroup.open_v1_entries().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(
            content(&pids_leaf, "tasks"),
            "",
            "nothing written before the join"
        );
        for entry in entries {
            entry.join().unwrap();
        }
        assert_eq!(content(&pids_leaf, "tasks"), "0");
        assert!(!fake.path("memory/env").exists());
    }

    #[test]
    fn a_v1_leaf_without_its_tasks_file_is_named() {
        let fake = FakeHost::hybrid(&["pids"]);
        fake.make("pids/env", &[]);
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        let err = cgroup.open_v1_entries().unwrap_err();
        assert!(
            matches!(&err, CgroupError::Open { path, .. } if path == &fake.path("pids/env/tasks")),
            "{err:?}"
        );
    }

    #[test]
    fn peak_memory_comes_from_the_memory_hierarchy() {
        let fake = FakeHost::pure_v2("memory\n");
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        fake.make("env", &[]);
        assert_eq!(cgroup.peak_memory_bytes().unwrap(), None);
        fake.make("env", &[("memory.peak", "1048576\n")]);
        assert_eq!(cgroup.peak_memory_bytes().unwrap(), Some(1_048_576));
        fake.make("env", &[("memory.peak", "lots\n")]);
        assert!(matches!(
            cgroup.peak_memory_bytes(),
            Err(CgroupError::Malformed { .. })
        ));

        let hybrid = FakeHost::hybrid(&["memory"]);
        hybrid.make("memory/env", &[("memory.max_usage_in_bytes", "8192\n")]);
        let cgroup = Cgroup::open(&hybrid.host, Path::new("env"));
        assert_eq!(cgroup.peak_memory_bytes().unwrap(), Some(8192));
    }

    #[test]
    fn destroy_removes_nested_cgroups_in_every_hierarchy_and_tolerates_gone_ones() {
        let fake = FakeHost::hybrid(&["memory", "pids"]);
        fake.make("unified/env/inner/deeper", &[]);
        fake.make("pids/env", &[]);
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        cgroup.destroy().unwrap();
        assert!(!fake.path("unified/env").exists());
        assert!(!fake.path("pids/env").exists());
        cgroup.destroy().unwrap();
    }

    #[test]
    fn open_dir_fd_names_a_missing_leaf() {
        let fake = FakeHost::hybrid(&[]);
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        let err = cgroup.open_dir_fd().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot open cgroup {}", fake.path("unified/env").display())
        );
        fake.make("unified/env", &[]);
        cgroup.open_dir_fd().unwrap();
    }

    #[test]
    fn cpu_weight_only_on_hybrid_touches_only_cpu_shares() {
        let fake = FakeHost::hybrid(&["cpu"]);
        let limits = Limits {
            cpu: Some(CpuLimits {
                weight: Some(CpuLimits::weight_from_shares(1024)),
                ..CpuLimits::default()
            }),
            ..Limits::default()
        };
        let writes = plan::limit_writes(&limits, |c| fake.host.backend(c), false).unwrap();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            (writes[0].file, writes[0].value.as_str()),
            ("cpu.shares", "998")
        );
    }
}
