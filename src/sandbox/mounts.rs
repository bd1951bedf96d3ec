//! The mounts inside the root filesystem: first planned as plain data from the spec (unit
//! tested), then applied by the init before `pivot_root`. Every target is resolved inside the
//! rootfs with `openat2(RESOLVE_IN_ROOT)`, so a symlink in an untrusted image cannot point a
//! mount at the host, and the mount is made onto the resolved fd through `/proc/self/fd`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mkdirat, Mode};
use nix::unistd::symlinkat;

use crate::spec::{EnvironmentSpec, MountKind, MountSpec};

/// The device nodes every environment gets, bound from the host's `/dev`.
pub const DEFAULT_DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// One step of preparing the root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountStep {
    /// A mount from config.json (or the `/tmp` of the ephemeral-storage setting).
    Mount(MountSpec),
    /// A standard device node, bound from the host.
    Device(&'static str),
    /// A symlink at `link` (absolute inside the container) pointing to `target`.
    Symlink {
        target: &'static str,
        link: &'static str,
    },
}

/// The ordered steps for a spec: its mounts, a tmpfs `/dev` when it has none, then the
/// standard devices and `/dev` symlinks, as runc makes them.
pub fn plan(spec: &EnvironmentSpec) -> Vec<MountStep> {
    let mounted = |dest: &str| spec.mounts.iter().any(|m| m.destination == Path::new(dest));
    let mut steps = Vec::new();
    if !mounted("/dev") {
        steps.push(MountStep::Mount(MountSpec {
            destination: "/dev".into(),
            kind: MountKind::Tmpfs,
            source: "tmpfs".into(),
            flags: (MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME).bits(),
            propagation: 0,
            data: "mode=755,size=65536k".into(),
        }));
    }
    steps.extend(spec.mounts.iter().cloned().map(MountStep::Mount));
    steps.extend(DEFAULT_DEVICES.iter().map(|name| MountStep::Device(name)));
    let mut links = vec![
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ];
    if mounted("/dev/pts") {
        links.push(("pts/ptmx", "/dev/ptmx"));
    }
    steps.extend(
        links
            .into_iter()
            .map(|(target, link)| MountStep::Symlink { target, link }),
    );
    steps
}

/// Applies one step inside the rootfs open as `root`.
pub fn apply(root: BorrowedFd<'_>, step: &MountStep) -> nix::Result<()> {
    match step {
        MountStep::Mount(spec) => apply_mount(root, spec),
        MountStep::Device(name) => {
            let host = PathBuf::from("/dev").join(name);
            let target = open_in_root(root, &host, Target::File)?;
            mount(
                Some(&host),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        }
        MountStep::Symlink { target, link } => {
            let parent = open_in_root(root, Path::new("/dev"), Target::Dir)?;
            let name = Path::new(link).file_name().expect("links have a file name");
            match symlinkat(*target, parent.as_fd(), name) {
                Err(Errno::EEXIST) => Ok(()),
                other => other,
            }
        }
    }
}

fn apply_mount(root: BorrowedFd<'_>, spec: &MountSpec) -> nix::Result<()> {
    let source_is_file = matches!(spec.kind, MountKind::Bind { .. }) && !spec.source.is_dir();
    let kind = if source_is_file {
        Target::File
    } else {
        Target::Dir
    };
    let target_fd = open_in_root(root, &spec.destination, kind)?;
    let target = fd_path(&target_fd);
    let flags = MsFlags::from_bits_truncate(spec.flags);
    match spec.kind {
        MountKind::Bind { recursive } => {
            let mut bind = MsFlags::MS_BIND;
            if recursive {
                bind |= MsFlags::MS_REC;
            }
            mount(
                Some(&spec.source),
                &target,
                None::<&str>,
                bind,
                None::<&str>,
            )?;
            // A bind mount ignores other flags: they are set on the new mount afterwards.
            if !flags.is_empty() {
                let mounted = open_in_root(root, &spec.destination, kind)?;
                crate::sys::set_mount_flags(mounted.as_fd(), flags.bits(), recursive)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)))?;
            }
        }
        other => {
            let fstype = match other {
                MountKind::Tmpfs => "tmpfs",
                MountKind::Proc => "proc",
                MountKind::Sysfs => "sysfs",
                MountKind::Devpts => "devpts",
                MountKind::Mqueue => "mqueue",
                MountKind::Cgroup => "cgroup2",
                MountKind::Bind { .. } => unreachable!("handled above"),
            };
            let data = (!spec.data.is_empty()).then_some(spec.data.as_str());
            mount(Some(&spec.source), &target, Some(fstype), flags, data)?;
        }
    }
    if spec.propagation != 0 {
        // The fd must outlive the mount call: its /proc/self/fd path is the target.
        let mounted = open_in_root(root, &spec.destination, kind)?;
        mount(
            None::<&str>,
            &fd_path(&mounted),
            None::<&str>,
            MsFlags::from_bits_truncate(spec.propagation),
            None::<&str>,
        )?;
    }
    Ok(())
}

/// What to create when a mount target does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Dir,
    File,
}

/// Opens `path` (absolute inside the container) as an `O_PATH` fd, resolving every component
/// inside `root` and creating missing ones: directories on the way, and the last one as `kind`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, kind: Target) -> nix::Result<OwnedFd> {
    open_in_root_following(root, path, kind, 0)
}

/// How many dangling symlinks one lookup may follow before giving up (as the kernel's ELOOP).
const MAX_LINKS: usize = 40;

fn open_in_root_following(
    root: BorrowedFd<'_>,
    path: &Path,
    kind: Target,
    links: usize,
) -> nix::Result<OwnedFd> {
    let how = || {
        OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
    };
    let relative: PathBuf = path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if relative.as_os_str().is_empty() {
        return openat2(root, ".", how());
    }
    match openat2(root, &relative, how()) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let names: Vec<_> = relative.components().collect();
    let mut prefix = PathBuf::new();
    for (i, name) in names.iter().enumerate() {
        prefix.push(name);
        let last = i + 1 == names.len();
        match openat2(root, &prefix, how()) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let parent_path = prefix.parent().unwrap_or(Path::new(""));
        let parent = if parent_path.as_os_str().is_empty() {
            openat2(root, ".", how())?
        } else {
            openat2(root, parent_path, how())?
        };
        let dir = openat2(
            parent.as_fd(),
            ".",
            OpenHow::new().flags(OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY),
        )?;
        let result = if last && kind == Target::File {
            nix::fcntl::openat(
                dir.as_fd(),
                name.as_os_str(),
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop)
        } else {
            mkdirat(
                dir.as_fd(),
                name.as_os_str(),
                Mode::from_bits_truncate(0o755),
            )
        };
        match result {
            Ok(()) => {}
            // Something is there but does not resolve: a dangling symlink. Create what it
            // points to (inside the root), as `mkdir -p` through the link would.
            Err(Errno::EEXIST) if matches!(openat2(root, &prefix, how()), Err(Errno::ENOENT)) => {
                if links >= MAX_LINKS {
                    return Err(Errno::ELOOP);
                }
                let target = nix::fcntl::readlinkat(dir.as_fd(), name.as_os_str())?;
                let resolved = parent_path.join(target);
                let kind = if last { kind } else { Target::Dir };
                open_in_root_following(root, &resolved, kind, links + 1)?;
            }
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    openat2(root, &relative, how())
}

/// The `/proc/self/fd/N` path through which mount(2) reaches an `O_PATH` fd.
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{NamespaceKind, NamespaceSpec};

    fn spec_with(mounts: Vec<MountSpec>) -> EnvironmentSpec {
        crate::spec::tests::minimal_spec(
            mounts,
            vec![NamespaceSpec {
                kind: NamespaceKind::Mount,
                path: None,
            }],
        )
    }

    fn tmpfs_at(dest: &str) -> MountSpec {
        MountSpec {
            destination: dest.into(),
            kind: MountKind::Tmpfs,
            source: "tmpfs".into(),
            flags: 0,
            propagation: 0,
            data: String::new(),
        }
    }

    #[test]
    fn a_spec_without_dev_gets_a_tmpfs_dev_first() {
        let steps = plan(&spec_with(vec![tmpfs_at("/tmp")]));
        match &steps[0] {
            MountStep::Mount(m) => {
                assert_eq!(m.destination, Path::new("/dev"));
                assert_eq!(m.kind, MountKind::Tmpfs);
            }
            other => panic!("first step is {other:?}"),
        }
        assert_eq!(steps[1], MountStep::Mount(tmpfs_at("/tmp")));
    }

    #[test]
    fn config_mounts_keep_their_order_and_devices_follow_them() {
        let mounts = vec![tmpfs_at("/dev"), tmpfs_at("/dev/shm"), tmpfs_at("/tmp")];
        let steps = plan(&spec_with(mounts.clone()));
        let expected_mounts: Vec<_> = mounts.into_iter().map(MountStep::Mount).collect();
        assert_eq!(steps[..3], expected_mounts[..]);
        let devices: Vec<_> = steps
            .iter()
            .filter_map(|s| match s {
                MountStep::Device(d) => Some(*d),
                _ => None,
            })
            .collect();
        assert_eq!(devices, DEFAULT_DEVICES);
        assert!(!steps.iter().any(|s| matches!(
            s,
            MountStep::Symlink {
                link: "/dev/ptmx",
                ..
            }
        )));
    }

    #[test]
    fn ptmx_points_into_devpts_only_when_devpts_is_mounted() {
        let mut pts = tmpfs_at("/dev/pts");
        pts.kind = MountKind::Devpts;
        let steps = plan(&spec_with(vec![pts]));
        assert!(steps.contains(&MountStep::Symlink {
            target: "pts/ptmx",
            link: "/dev/ptmx"
        }));
    }

    #[test]
    fn open_in_root_creates_missing_parents_and_stays_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", root.path().join("escape")).unwrap();
        let root_fd = nix::fcntl::open(
            root.path(),
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        open_in_root(root_fd.as_fd(), Path::new("/a/b/c"), Target::Dir).unwrap();
        assert!(root.path().join("a/b/c").is_dir());
        open_in_root(root_fd.as_fd(), Path::new("/a/file"), Target::File).unwrap();
        assert!(root.path().join("a/file").is_file());
        // "/escape" -> "/etc" resolves to <root>/etc, never to the host's /etc, and the
        // dangling link's target is created inside the root.
        let name = format!("runlambda-test-{}", std::process::id());
        let inner = Path::new("/escape").join(&name);
        open_in_root(root_fd.as_fd(), &inner, Target::Dir).unwrap();
        assert!(root.path().join("etc").join(&name).is_dir());
        assert!(!Path::new("/etc").join(&name).exists());
    }
}
