//! The handshake between `create` and the init it clones: one message type each way over one
//! close-on-exec `SOCK_SEQPACKET` socketpair, so every message arrives whole or not at all and
//! the init's death shows up as end-of-file.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What the init tells `create`.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromInit {
    /// The environment is built; the init waits for `start`.
    Ready,
    /// A step failed; the init exits after sending this.
    Failed { step: String, reason: String },
}

/// What `create` tells the init.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToInit {
    /// Id maps are written and the v1 cgroups joined: go on building the environment.
    Proceed,
}

/// One end of the socketpair.
pub struct Channel(OwnedFd);

/// The largest message: a failure reason with a long path fits many times over.
const MAX_MESSAGE: usize = 64 * 1024;

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
