//! What the tests that drive runlambda through its real callers (podman, containerd) share: a
//! busybox image rootfs packed as a tar, the cgroup mount points to clean up after a caller,
//! an Invoke request over an environment's unix socket, and running a command to success.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::rootfs;

/// The Invoke API path an environment serves on `<state root>/<id>/invoke.sock`.
pub const INVOKE_PATH: &str = "/2015-03-31/functions/function/invocations";

/// Writes the busybox test rootfs, plus `lib` and `lib64` links into `/usr`, as an
/// uncompressed tar `dir/rootfs.tar`, and returns its path. With the host's `/usr` bind-mounted
/// read-only over the image's, the links make the host's python3 run inside (the python-echo
/// function of the Lambda-mode tests).
pub fn image_rootfs_tar(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    rootfs::busybox_rootfs(&rootfs).unwrap();
    fs::create_dir_all(rootfs.join("usr")).unwrap();
    for (link, target) in [("lib", "usr/lib"), ("lib64", "usr/lib64")] {
        symlink(target, rootfs.join(link)).unwrap();
    }
    let tar = dir.join("rootfs.tar");
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
    succeed(&mut cmd);
    tar
}

/// Runs `cmd`, asserts it succeeded, and returns its stdout.
pub fn succeed(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit status, stdout and stderr of `out`, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The mount points of every cgroup hierarchy (v1 and v2) this test can see.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = fs::read_to_string(runlambda::mountinfo::SELF_MOUNTINFO).unwrap();
    runlambda::mountinfo::parse(&text)
        .unwrap()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| m.mount_point)
        .collect()
}

/// One invocation over the environment's Invoke socket: `POST` of `payload`; returns the
/// status code, the header block and the body.
pub fn invoke_unix(socket: &Path, payload: &[u8]) -> (u16, String, String) {
    let mut stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST {INVOKE_PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(payload).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {answer:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    (status, head.to_string(), body.to_string())
}
