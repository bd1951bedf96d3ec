//! The handshake between `create` and the init it clones: one message type each way over one
//! close-on-exec `SOCK_SEQPACKET` socketpair, so every message arrives whole or not at all and
//! the init's death shows up as end-of-file.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::RawFd;

use nix::sys::socket::{
    recv, recvmsg, send, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::seccomp::Filter;
use crate::hooks::HookState;

/// What the init tells `create`, and in a Lambda environment then the supervisor.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// The mounts are made and the host's root is still in reach: the runtime runs the
    /// `prestart` and `createRuntime` hooks, then answers [`ToInit::RunHooks`].
    HooksDue,
    /// The environment is built; the init waits for `start` (plain) or commands (Lambda).
    Ready,
    /// A step failed; the init exits after sending this.
    Failed { step: String, reason: String },
    /// A process asked for with [`ToInit::Spawn`] runs, with this pid in the environment.
    Spawned { pid: i32 },
    /// A [`ToInit::Spawn`] could not even fork.
    SpawnFailed { reason: String },
    /// A child of the init ended: its exit code, or 128 + the signal that killed it.
    Exited { pid: i32, code: i32 },
    /// Every process but the init is gone, after [`ToInit::KillAll`].
    Emptied,
    /// The init received this termination signal (from `runlambda kill`).
    Signaled { signal: i32 },
}

/// What `create` (then, in a Lambda environment, the supervisor) tells the init.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// Id maps are written and the v1 cgroups joined: go on building the environment.
    Proceed,
    /// The runtime's hooks ran: run the container's own (`createContainer` now,
    /// `startContainer` at `start`) with this state on their stdin.
    RunHooks { state: HookState },
    /// The container's seccomp filter, compiled while the init built the environment (after
    /// the hooks, when there are any); `None` when the container has none.
    Seccomp { filter: Option<Filter> },
    /// Start a process; its stdout and stderr arrive as two fds with the message.
    Spawn {
        args: Vec<String>,
        env: Vec<String>,
        cwd: std::path::PathBuf,
    },
    /// Send a signal to one process the init started (SIGTERM to the runtime at shutdown).
    Signal { pid: i32, signal: i32 },
    /// Kill every process of the environment but the init, keeping namespaces and `/tmp`.
    KillAll,
    /// Kill everything and exit with this code: the environment ends.
    Exit { code: i32 },
}

/// One end of the socketpair.
pub struct Channel(OwnedFd);

/// The largest message: a failure reason with a long path fits many times over.
pub(super) const MAX_MESSAGE: usize = 64 * 1024;

impl Channel {
    /// A connected pair: (the parent's end, the init's end).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send<T: Serialize>(&self, message: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
        send(self.0.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// Sends a message with file descriptors attached (`SCM_RIGHTS`), if any.
    pub fn send_with_fds<T: Serialize>(&self, message: &T, fds: &[RawFd]) -> io::Result<()> {
        let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
        let rights = [ControlMessage::ScmRights(fds)];
        let cmsg: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        Ok(())
    }

    /// The next message and the fds that came with it; `None` at end-of-file.
    pub fn recv_with_fds<T: DeserializeOwned>(&self) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let (n, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(msg) => {
                    let mut fds = Vec::new();
                    for cmsg in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(received) = cmsg {
                            fds.extend(received.into_iter().map(owned_fd));
                        }
                    }
                    break (msg.bytes, fds);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let message = serde_json::from_slice(&buf[..n]).map_err(io::Error::other)?;
        Ok(Some((message, fds)))
    }

    /// Makes the socket non-blocking, for an event loop.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&self.0, FcntlArg::F_GETFL)?);
        fcntl(&self.0, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(())
    }

    /// The socket, for polling it.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.0)
    }

    /// The next message, or `None` when the other end is closed (the init died).
    pub fn recv<T: DeserializeOwned>(&self) -> io::Result<Option<T>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = loop {
            match recv(self.0.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(io::Error::other)
    }
}

/// One end of a connected `SOCK_SEQPACKET` socket, as a channel.
impl From<OwnedFd> for Channel {
    fn from(fd: OwnedFd) -> Self {
        Channel(fd)
    }
}

/// The next message on a non-blocking channel in the event loop, with the fds that came with
/// it; `None` at end-of-file.
pub async fn receive<T: DeserializeOwned>(
    channel: &tokio::io::unix::AsyncFd<Channel>,
) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    loop {
        let mut ready = channel.readable().await?;
        match ready.try_io(|c| c.get_ref().recv_with_fds::<T>()) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// Takes ownership of an fd that `SCM_RIGHTS` just delivered.
fn owned_fd(fd: RawFd) -> OwnedFd {
    crate::sys::own_received_fd(fd)
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl crate::sys::OwnsFd for Channel {}
