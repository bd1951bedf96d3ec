//! Turning the prepared rootfs into `/`: `pivot_root` and what runc does after it (masked and
//! read-only paths, sysctls, a read-only root). Runs in the init, inside its mount namespace.

use std::fs;
use std::io;
use std::path::Path;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};

use crate::spec::Propagation;

/// Makes every mount of the new namespace a slave (or what `rootfsPropagation` asks), so that
/// nothing the container mounts propagates back to the host.
pub fn isolate_from_host(propagation: Option<Propagation>) -> nix::Result<()> {
    let flag = match propagation {
        Some(Propagation::Private) => MsFlags::MS_PRIVATE,
        Some(Propagation::Unbindable) => MsFlags::MS_UNBINDABLE,
        // Shared is applied after pivot_root (see `apply_propagation`): before it, the rootfs
        // must not propagate into the host.
        Some(Propagation::Shared) | Some(Propagation::Slave) | None => MsFlags::MS_SLAVE,
    };
    set_root_propagation(flag)
}

/// Sets the propagation of `/` and every mount below it.
fn set_root_propagation(flag: MsFlags) -> nix::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        flag | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// Makes `rootfs` a mount point of its own: `pivot_root` requires the new root to be one.
pub fn bind_rootfs(rootfs: &Path) -> nix::Result<()> {
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// Switches `/` to `rootfs` and detaches the old root, so no host path stays reachable.
pub fn pivot(rootfs: &Path) -> nix::Result<()> {
    // pivot_root(".", ".") stacks the old root under the new one at the same place; no
    // directory is needed inside the image for it.
    chdir(rootfs)?;
    pivot_root(".", ".")?;
    // The old root is now on top; make it a slave first so the lazy unmount cannot propagate
    // to the host's mounts.
    mount(
        None::<&str>,
        ".",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )?;
    umount2(".", MntFlags::MNT_DETACH)?;
    chdir("/")
}

/// Applies `rootfsPropagation` to the new root, once it is `/`.
pub fn apply_propagation(propagation: Option<Propagation>) -> nix::Result<()> {
    let flag = match propagation {
        Some(Propagation::Shared) => MsFlags::MS_SHARED,
        Some(Propagation::Slave) => MsFlags::MS_SLAVE,
        Some(Propagation::Private) => MsFlags::MS_PRIVATE,
        Some(Propagation::Unbindable) => MsFlags::MS_UNBINDABLE,
        None => return Ok(()),
    };
    set_root_propagation(flag)
}

/// Hides `path`: `/dev/null` over a file, an empty read-only tmpfs over a directory. A path
/// that does not exist needs no hiding.
pub fn mask(path: &Path) -> nix::Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

/// Makes `path` read-only: bind it onto itself, then remount the bind read-only.
pub fn make_readonly(path: &Path) -> nix::Result<()> {
    match mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Err(Errno::ENOENT) => return Ok(()),
        other => other?,
    }
    remount_readonly(path)
}

/// Remounts an existing mount point read-only, keeping its other flags.
pub fn remount_readonly(path: &Path) -> nix::Result<()> {
    let current = nix::sys::statvfs::statvfs(path)?.flags();
    // A remount must restate the flags the kernel locked (nosuid, nodev, noexec in a user
    // namespace) or it fails with EPERM.
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    use nix::sys::statvfs::FsFlags;
    for (fs_flag, ms_flag) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if current.contains(fs_flag) {
            flags |= ms_flag;
        }
    }
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// Writes one sysctl (`net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`).
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = Path::new("/proc/sys").join(key.replace('.', "/"));
    fs::write(path, value)
}
