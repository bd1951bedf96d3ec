//! Client connections inside the environment's network namespace, where Telemetry and Logs
//! subscribers listen on `127.0.0.1` (`sandbox.localdomain`). A socket belongs to the
//! namespace of the thread that creates it, and `setns` changes only the calling thread: one
//! thread joins the namespace for good and makes the connections the supervisor's task asks for.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;

use nix::sched::{setns, CloneFlags};
use tokio::sync::oneshot;

type Request = (u16, oneshot::Sender<io::Result<TcpStream>>);

/// Connects to ports on the environment's loopback.
pub struct Connector {
    requests: mpsc::Sender<Request>,
}

impl Connector {
    /// Starts the connecting thread in the network namespace `netns` (`/proc/<init>/ns/net`).
    pub fn start(netns: File) -> io::Result<Self> {
        let (requests, incoming) = mpsc::channel::<Request>();
        let (joined, result) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("netns-connect".into())
            .spawn(move || {
                let entered = setns(&netns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from);
                let ok = entered.is_ok();
                let _ = joined.send(entered);
                if !ok {
                    return;
                }
                // Local connections succeed or are refused at once: no need to do several at a time.
                for (port, reply) in incoming {
                    let stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
                    let _ = reply.send(stream);
                }
            })?;
        result
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the connecting thread ended")))?;
        Ok(Self { requests })
    }

    /// A connection to `127.0.0.1:port` inside the environment.
    pub async fn connect(&self, port: u16) -> io::Result<tokio::net::TcpStream> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((port, reply))
            .map_err(|_| io::Error::other("the connecting thread ended"))?;
        let stream = answer
            .await
            .map_err(|_| io::Error::other("the connecting thread ended"))??;
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}
