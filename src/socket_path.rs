//! Unix sockets by path, whatever the path's length. An address holds at most 107 bytes of
//! path (`sun_path` is 108, with the NUL), but a state root, a console socket or a Lambda
//! environment's sockets can sit deeper than that. A longer path is reached through its
//! directory instead: runlambda opens the directory (`O_PATH`) and binds or connects to
//! `/proc/self/fd/N/NAME`, which the kernel resolves to the same place without changing the
//! working directory of a process that may have other threads. Only a name that does not fit
//! even then is refused, with an error naming the path.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;

/// The size of `sun_path` in `struct sockaddr_un` on Linux.
pub const SUN_PATH_BYTES: usize = 108;

/// A socket path that cannot be reached in a unix address, even through its directory.
#[derive(Debug, thiserror::Error)]
#[error(
    "unix socket path {} is too long: a socket address holds {max} bytes of path ({SUN_PATH_BYTES} \
     with the NUL), and its name {name:?} does not fit even as /proc/self/fd/N/NAME",
    path.display(),
    max = SUN_PATH_BYTES - 1
)]
pub struct TooLong {
    pub path: PathBuf,
    pub name: String,
}

/// Binds a listening unix socket at `path`.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    reach(path, |address| UnixListener::bind(address))
}

/// Connects to the unix socket at `path`.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    reach(path, |address| UnixStream::connect(address))
}

/// Binds a listening `SOCK_SEQPACKET` unix socket at `path` (close-on-exec): each message
/// arrives whole, with the descriptors sent along with it.
pub fn bind_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    let fd = seqpacket_at(path, socket::bind)?;
    socket::listen(&fd, Backlog::new(4)?)?;
    Ok(fd)
}

/// Connects a `SOCK_SEQPACKET` unix socket to the listener at `path`.
pub fn connect_seqpacket(path: &Path) -> io::Result<OwnedFd> {
    seqpacket_at(path, socket::connect)
}

/// A new `SOCK_SEQPACKET` socket, bound or connected (`act`) to `path`.
fn seqpacket_at(
    path: &Path,
    act: fn(std::os::fd::RawFd, &dyn socket::SockaddrLike) -> nix::Result<()>,
) -> io::Result<OwnedFd> {
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    reach(path, |address| {
        act(fd.as_raw_fd(), &UnixAddr::new(address)?)?;
        Ok(())
    })?;
    Ok(fd)
}

/// Runs `act` with an address for `path` that fits `sun_path`: the path itself when it fits,
/// else `/proc/self/fd/N/NAME` while the directory's fd N is open.
fn reach<T>(path: &Path, act: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    if fits(path.as_os_str()) {
        return act(path);
    }
    let too_long = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            TooLong {
                path: path.to_owned(),
                name: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            },
        )
    };
    let Some(name) = path.file_name() else {
        return Err(too_long());
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let dir = open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name);
    if !fits(short.as_os_str()) {
        return Err(too_long());
    }
    act(&short)
}

/// Whether `path` fits `sun_path` with its terminating NUL.
fn fits(path: &OsStr) -> bool {
    path.as_bytes().len() < SUN_PATH_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn binds_and_connects_past_sun_path() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let path = deep.join("s.sock");
        assert!(path.as_os_str().len() > SUN_PATH_BYTES);
        // What the standard library alone says.
        assert!(UnixListener::bind(&path).is_err());
        let listener = bind(&path).unwrap();
        assert!(path.exists(), "the socket is made at the long path itself");
        let mut client = connect(&path).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"x").unwrap();
        let mut byte = [0u8; 1];
        server.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn a_name_that_cannot_fit_is_named_with_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n".repeat(110));
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let message = err.to_string();
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(message.contains("108"), "{message}");
    }
}
