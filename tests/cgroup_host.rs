//! The cgroup module against the kernel: real leaves in this host's cgroup2 hierarchy (and, on
//! a hybrid host, its v1 pids hierarchy), holding a real child process that is frozen, thawed,
//! killed and reaped.
//!
//! Runs as root, in a private mount namespace whose cgroup view hides the host's v1 memory
//! hierarchy, so that nothing here can touch the memory cgroups of the host. Without those
//! prerequisites every test fails and says why.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use runlambda::cgroup::{Cgroup, CgroupError, CgroupHost, HostKind, Limits, MemoryBackend};
use runlambda::mountinfo;

const TIMEOUT: Duration = Duration::from_secs(5);

/// The host, once the prerequisites are checked.
fn host() -> CgroupHost {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create cgroups and must run as root"
    );
    let text = fs::read_to_string(mountinfo::SELF_MOUNTINFO).unwrap();
    let mounts = mountinfo::parse(&text).unwrap();
    if let Some(memory) = mounts
        .iter()
        .find(|m| m.fstype == "cgroup" && m.has_super_option("memory"))
    {
        panic!(
            "the v1 memory hierarchy is visible at {}: run these tests in a private mount \
             namespace whose /sys/fs/cgroup hides it (tests/cgroup-view.sh), so they cannot \
             touch the host's memory cgroups",
            memory.mount_point.display()
        );
    }
    CgroupHost::discover().unwrap()
}

/// A parent cgroup of this test alone, removed with everything below it at the end, passed or
/// not; `kill` runs first so a failed assertion leaves no process behind.
struct Scratch {
    host: CgroupHost,
    parent: PathBuf,
    leaf: Option<Cgroup>,
}

impl Scratch {
    fn new(host: CgroupHost, test: &str) -> Scratch {
        let parent = PathBuf::from(format!("runlambda-dev-{}-{test}", std::process::id()));
        Scratch {
            host,
            parent,
            leaf: None,
        }
    }

    fn rel(&self) -> PathBuf {
        self.parent.join("leaf")
    }

    fn create(&mut self, limits: &Limits) -> Cgroup {
        let cgroup = Cgroup::create(&self.host, &self.rel(), limits, false).unwrap();
        self.leaf = Some(cgroup.clone());
        cgroup
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(leaf) = &self.leaf {
            let _ = leaf.thaw(TIMEOUT);
            let _ = leaf.kill(TIMEOUT);
            let _ = leaf.destroy();
        }
        // Only the parent this test made: any v1 hierarchy a limit used has one too.
        let parent = Cgroup::open(&self.host, &self.parent);
        let _ = parent.destroy();
    }
}

/// `sleep 30`, moved into `cgroup`'s cgroup2 leaf: it is our own child, entering a cgroup this
/// test made.
fn child_in(cgroup: &Cgroup) -> Child {
    let child = Command::new("sleep").arg("30").spawn().unwrap();
    fs::write(
        cgroup.unified_dir().join("cgroup.procs"),
        child.id().to_string(),
    )
    .unwrap();
    child
}

fn events(cgroup: &Cgroup) -> String {
    fs::read_to_string(cgroup.unified_dir().join("cgroup.events")).unwrap()
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

#[test]
fn freeze_thaw_kill_and_destroy_a_real_leaf() {
    let mut scratch = Scratch::new(host(), "lifecycle");
    let cgroup = scratch.create(&Limits::default());
    let dir = cgroup.unified_dir().to_owned();
    assert!(dir.join("cgroup.procs").is_file());
    cgroup.open_dir_fd().unwrap();

    let mut child = child_in(&cgroup);
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(cgroup.pids().unwrap(), [pid]);
    assert!(cgroup.populated().unwrap());

    cgroup.freeze(TIMEOUT).unwrap();
    assert!(
        has_line(&events(&cgroup), "frozen 1"),
        "{}",
        events(&cgroup)
    );
    assert!(cgroup.is_frozen().unwrap());

    cgroup.thaw(TIMEOUT).unwrap();
    assert!(
        has_line(&events(&cgroup), "frozen 0"),
        "{}",
        events(&cgroup)
    );

    // Killing works on a frozen leaf too, which is how a timed-out environment is emptied.
    cgroup.request_freeze().unwrap();
    cgroup.kill(TIMEOUT).unwrap();
    assert!(
        has_line(&events(&cgroup), "populated 0"),
        "{}",
        events(&cgroup)
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    // What a later CLI call sees from the path in its state file.
    let opened = Cgroup::open(&scratch.host, &scratch.rel());
    assert_eq!(opened.unified_dir(), dir);
    assert_eq!(opened.pids().unwrap(), [0; 0]);
    opened.thaw(TIMEOUT).unwrap();
    opened.destroy().unwrap();
    assert!(!dir.exists());
    opened.destroy().unwrap();
}

#[test]
fn a_second_create_of_the_same_leaf_is_refused() {
    let mut scratch = Scratch::new(host(), "twice");
    let dir = scratch.create(&Limits::default()).unified_dir().to_owned();
    let err = Cgroup::create(&scratch.host, &scratch.rel(), &Limits::default(), false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cgroup {} already exists", dir.display())
    );
    assert!(dir.is_dir());
}

#[test]
fn memory_limit_is_enforced_or_refused() {
    let scratch = Scratch::new(host(), "memory");
    let limits = Limits::for_function_memory(128);
    match scratch.host.kind() {
        HostKind::PureV2 => {
            let mut scratch = scratch;
            let cgroup = scratch.create(&limits);
            let read = |file: &str| fs::read_to_string(cgroup.unified_dir().join(file)).unwrap();
            assert_eq!(read("memory.max").trim(), "134217728");
            assert_eq!(read("cpu.max").trim(), "7235 100000");
            assert!(cgroup.memory_enforced());
            assert!(cgroup.peak_memory_bytes().unwrap().is_some());
        }
        HostKind::Hybrid => {
            assert_eq!(scratch.host.memory_backend(), MemoryBackend::Unavailable);
            let err = Cgroup::create(&scratch.host, &scratch.rel(), &limits, false).unwrap_err();
            assert!(matches!(err, CgroupError::MemoryUnavailable), "{err}");
            let parent = Cgroup::open(&scratch.host, &scratch.parent);
            assert!(!parent.unified_dir().exists());

            let cgroup = Cgroup::create(&scratch.host, &scratch.rel(), &limits, true).unwrap();
            let mut scratch = scratch;
            scratch.leaf = Some(cgroup.clone());
            assert!(!cgroup.memory_enforced());
            assert_eq!(cgroup.peak_memory_bytes().unwrap(), None);
        }
    }
}

#[test]
fn pids_limit_holds_the_process() {
    let mut scratch = Scratch::new(host(), "pids");
    let limits = Limits {
        pids: Some(64),
        ..Limits::default()
    };
    let cgroup = scratch.create(&limits);
    // On a hybrid host the limit lives in a v1 leaf of the same path.
    let (limit_dir, membership_prefix) = match scratch.host.kind() {
        HostKind::PureV2 => (cgroup.unified_dir().to_owned(), "0::"),
        HostKind::Hybrid => (v1_leaf_of(&scratch.rel(), "pids"), ":pids:"),
    };
    assert_eq!(
        fs::read_to_string(limit_dir.join("pids.max"))
            .unwrap()
            .trim(),
        "64"
    );

    let mut child = child_in(&cgroup);
    // Into the leaf that holds the limit too (the same one on a pure v2 host).
    fs::write(limit_dir.join("cgroup.procs"), child.id().to_string()).unwrap();
    let membership = fs::read_to_string(format!("/proc/{}/cgroup", child.id())).unwrap();
    let expected = format!("{membership_prefix}/{}", scratch.rel().display());
    assert!(
        membership.lines().any(|l| l.ends_with(&expected)),
        "{membership}"
    );

    cgroup.kill(TIMEOUT).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    cgroup.destroy().unwrap();
    assert!(!limit_dir.exists());
    assert!(!cgroup.unified_dir().exists());
}

/// The directory of `rel` in the v1 hierarchy of `controller`, from the mount table.
fn v1_leaf_of(rel: &Path, controller: &str) -> PathBuf {
    let text = fs::read_to_string(mountinfo::SELF_MOUNTINFO).unwrap();
    let mount = mountinfo::parse(&text)
        .unwrap()
        .into_iter()
        .rfind(|m| m.fstype == "cgroup" && m.has_super_option(controller))
        .unwrap_or_else(|| panic!("no v1 {controller} hierarchy is mounted"));
    mount.mount_point.join(rel)
}
