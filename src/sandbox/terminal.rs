//! The terminal of a container's process, made by the child that will exec it (the init, or an
//! exec'd process) once it sees the container's file system: the pseudo-terminal comes from the
//! container's own devpts (`/dev/ptmx`, which the mount plan links to `pts/ptmx`), so the
//! process sees its terminal as `/dev/pts/N` of its own instance. The master goes to the caller
//! over the console socket that `create` or `exec` connected — one message whose data is the
//! slave's name and whose one `SCM_RIGHTS` fd is the master, the shape go-runc and conmon read
//! — and the slave becomes the process's stdin, stdout, stderr and controlling terminal.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::sys::stat::Mode;
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fchown, setsid, Uid};

use super::mounts::{self, Target};
use crate::spec::ProcessSpec;

/// Gives this process a new terminal and sends its master to `socket`. With `dev_console`
/// (the init, as runc does) the slave is also bound onto `/dev/console`.
///
/// Runs after `pivot_root` or `setns` into the container's mount namespace, and while the
/// process may still change a file's owner.
pub fn attach(socket: &UnixStream, process: &ProcessSpec, dev_console: bool) -> Result<(), String> {
    let context = |what: &'static str| move |e: nix::Error| format!("{what}: {e}");
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(context("opening /dev/ptmx"))?;
    grantpt(&master).map_err(context("grantpt"))?;
    unlockpt(&master).map_err(context("unlockpt"))?;
    let name = ptsname_r(&master).map_err(context("ptsname"))?;
    if let Some(size) = process.console_size {
        crate::sys::set_window_size(master.as_fd(), size.rows, size.cols)
            .map_err(context("setting the terminal size"))?;
    }
    let slave = open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("opening {name}: {e}"))?;
    // The process may drop to another user; its terminal must stay its own to reopen.
    fchown(&slave, Some(Uid::from_raw(process.uid)), None)
        .map_err(|e| format!("giving {name} to uid {}: {e}", process.uid))?;
    if dev_console {
        bind_console(&name).map_err(|e| format!("binding {name} onto /dev/console: {e}"))?;
    }
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(name.as_bytes())],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(context("sending the terminal to the console socket"))?;
    drop(master);
    // A new session has no controlling terminal, so the slave can become this one's.
    setsid().map_err(context("setsid"))?;
    crate::sys::set_controlling_terminal(slave.as_fd())
        .map_err(|e| format!("making {name} the controlling terminal: {e}"))?;
    dup2_stdin(&slave).map_err(context("dup2 of the terminal onto stdin"))?;
    dup2_stdout(&slave).map_err(context("dup2 of the terminal onto stdout"))?;
    dup2_stderr(&slave).map_err(context("dup2 of the terminal onto stderr"))
}

/// Binds the slave `name` onto `/dev/console`, created as a file if missing; the lookup stays
/// inside the container's root, whatever its `/dev` holds.
fn bind_console(name: &str) -> nix::Result<()> {
    let root = open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let target = mounts::open_in_root(root.as_fd(), Path::new("/dev/console"), Target::File)?;
    mount(
        Some(name),
        &mounts::fd_path(&target),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
}
