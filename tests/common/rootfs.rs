//! Minimal root file systems for test bundles, made of the host's static busybox.
// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// The commands a test rootfs offers, each a symlink to `/bin/busybox`.
pub const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "sleep", "true", "false", "mount", "hostname", "id", "df", "dd",
    "head", "tail", "ps", "grep", "touch", "mkdir", "rm", "kill", "sync", "wc", "stat", "readlink",
    "env", "tty", "stty",
];

const BUSYBOX_PATHS: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// Fills `dir` (created if missing) with a busybox rootfs: `bin/busybox` and its [`APPLETS`],
/// empty `proc sys dev tmp etc`, and an `etc/passwd` and `etc/group` with root and nobody.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    let busybox = host_busybox()?;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).map_err(|e| at(&bin, e))?;
    let target = bin.join("busybox");
    fs::copy(&busybox, &target).map_err(|e| at(&target, e))?;
    for applet in APPLETS {
        let link = bin.join(applet);
        symlink("busybox", &link).map_err(|e| at(&link, e))?;
    }
    for name in ["proc", "sys", "dev", "tmp", "etc"] {
        let sub = dir.join(name);
        fs::create_dir_all(&sub).map_err(|e| at(&sub, e))?;
    }
    let tmp = dir.join("tmp");
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).map_err(|e| at(&tmp, e))?;
    let files = [
        (
            "etc/passwd",
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        fs::write(&path, text).map_err(|e| at(&path, e))?;
    }
    Ok(())
}

/// The host's busybox, which must be statically linked to run inside a rootfs of its own.
pub fn host_busybox() -> io::Result<PathBuf> {
    let Some(path) = BUSYBOX_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no busybox at {}: install the Debian package busybox-static",
                BUSYBOX_PATHS.join(" or ")
            ),
        ));
    };
    let bytes = fs::read(&path).map_err(|e| at(&path, e))?;
    if !is_static_elf64(&bytes) {
        return Err(io::Error::other(format!(
            "{} is not a statically linked 64-bit ELF: install the Debian package busybox-static",
            path.display()
        )));
    }
    Ok(path)
}

/// A 64-bit little-endian ELF file without a program interpreter (`PT_INTERP`) needs no
/// dynamic loader, so it runs in a rootfs that has no `/lib`.
fn is_static_elf64(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || bytes[..4] != *b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return false;
    }
    let le16 = |off: usize| usize::from(u16::from_le_bytes([bytes[off], bytes[off + 1]]));
    let Ok(phoff) = usize::try_from(u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()))
    else {
        return false;
    };
    let (entsize, count) = (le16(0x36), le16(0x38));
    (0..count).all(|i| {
        let off = phoff + i * entsize;
        bytes
            .get(off..off + 4)
            .is_some_and(|p_type| *p_type != PT_INTERP.to_le_bytes())
    })
}

/// Names the path in an I/O error, which otherwise says only what went wrong.
fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}
