//! Lending a caller's connection to an environment. `run` owns the connections its callers
//! open; while just one caller is connected, `run` lends that connection to an idle
//! environment, whose supervisor serves its invocations directly, so that a warm invoke does
//! not pass through `run` on its way in and out. The supervisor gives the connection back,
//! between two requests, when `run` reclaims it (another caller connected, or an invocation
//! waits for an environment) or when the environment shuts down; an `Event` invocation that
//! arrives on a lent connection goes to `run`'s own socket, since `run` queues them.
//!
//! The messages travel over a `SOCK_SEQPACKET` socket in the environment's state directory
//! ([`LEASE_SOCKET`]), each whole, the connection's descriptor attached (`SCM_RIGHTS`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;

use crate::sandbox::channel::Channel;

/// Where an environment's supervisor takes lent connections.
pub const LEASE_SOCKET: &str = "lease.sock";

/// From `run` to the environment.
#[derive(Debug, Serialize, Deserialize)]
pub enum Lend {
    /// Serve the attached connection. `read_ahead` was read from it but not yet served;
    /// `Event` invocations go to `front` (`run`'s unix socket).
    Connection { read_ahead: Vec<u8>, front: PathBuf },
    /// Give the connection back once it is idle.
    Reclaim,
}

/// From the environment to `run`.
#[derive(Debug, Serialize, Deserialize)]
pub enum Returned {
    /// The attached connection, idle, with what had been read from it but not yet served;
    /// `shutting_down` when the environment gives it back because it ends.
    Connection {
        read_ahead: Vec<u8>,
        shutting_down: bool,
    },
    /// The caller closed the connection.
    Closed,
    /// Reclaimed while it answers an invocation: the connection follows once that is done.
    Busy,
}

/// A channel in the event loop.
pub type LeaseChannel = AsyncFd<Channel>;

/// Registers one end of a lease socket with the event loop.
pub fn channel(fd: OwnedFd) -> io::Result<LeaseChannel> {
    let channel = Channel::from(fd);
    channel.set_nonblocking()?;
    crate::sys::async_fd(channel)
}

/// Sends `message`, with `connection` attached when there is one.
pub async fn send<T: Serialize>(
    channel: &LeaseChannel,
    message: &T,
    connection: Option<&OwnedFd>,
) -> io::Result<()> {
    let fds: Vec<_> = connection.iter().map(|fd| fd.as_raw_fd()).collect();
    loop {
        let mut ready = channel.writable().await?;
        match ready.try_io(|c| c.get_ref().send_with_fds(message, &fds)) {
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// A caller's connection that came as a descriptor, in the event loop.
pub fn connection(fd: OwnedFd) -> io::Result<tokio::net::TcpStream> {
    let stream = std::net::TcpStream::from(fd);
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}
