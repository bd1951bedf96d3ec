//! The only module with `unsafe`: thin wrappers over the system calls that nix does not cover
//! (`clone3` with `CLONE_INTO_CGROUP` and `CLONE_PIDFD`, `close_range`, `prlimit` by number,
//! `pidfd_open`, `seccomp`, the terminal ioctls, a `pre_exec` closure). Each block states the
//! invariant the kernel or libc needs and why it holds.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

/// `struct clone_args` of `clone3(2)`, version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of a [`clone3`] the caller is on.
pub enum Forked {
    Child,
    Parent { pid: Pid, pidfd: OwnedFd },
}

/// `clone3` with the given `CLONE_*` flags (namespaces, `CLONE_PARENT`), always with
/// `CLONE_PIDFD`, and with `CLONE_INTO_CGROUP` when a cgroup2 directory fd is given.
///
/// The calling process must be single-threaded: the child continues with a copy of this
/// process's memory, and only a single-threaded parent guarantees that no lock (the allocator's
/// above all) was held by another thread at the moment of the copy.
pub fn clone3(flags: nix::sched::CloneFlags, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // With CLONE_PARENT the kernel insists on 0: the child inherits our exit signal.
        exit_signal: 0,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; `pidfd` points
    // to a live i32 the kernel writes before returning. No stack is given, so the child runs on a
    // copy of our stack exactly like fork(). The caller guarantees we are single-threaded, so the
    // child's copy of the heap and of libc's locks is consistent.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            pid: Pid::from_raw(pid as i32),
            // SAFETY: with CLONE_PIDFD and a successful clone3 the kernel stored a new, open fd
            // in `pidfd` that nothing else owns.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        }),
    }
}

/// Marks every fd from `first` upward close-on-exec, so that exactly the fds below `first`
/// (stdio and preserved fds) reach the container's process.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on fds of this process; it
    // closes nothing, so no OwnedFd elsewhere in the program is invalidated.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Has `command`'s child mark every fd from 3 upward close-on-exec right before it execs, so
/// that the program gets its three standard streams and nothing else of this process.
pub fn only_stdio_on_exec(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child between fork and exec, where only
    // async-signal-safe work is allowed: it makes one close_range system call, touches no lock
    // and allocates nothing (an error is built from errno alone).
    unsafe {
        command.pre_exec(|| cloexec_from(3));
    }
}

/// Sets one resource limit by its `RLIMIT_*` number (config.json names them; nix's
/// `Resource` enum cannot be built from a number).
pub fn set_rlimit(resource: u32, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid rlimit64 that outlives the call; a null old-limit pointer is
    // allowed; pid 0 is this process.
    let ret = unsafe {
        libc::prlimit64(
            0,
            resource as libc::__rlimit_resource_t,
            &limit,
            std::ptr::null_mut(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A pidfd for an existing process (to watch it or signal it without pid-reuse races).
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a new open fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Sends a signal through a pidfd: it reaches exactly the process the fd was opened for, or
/// fails with ESRCH if that process has exited, even if its pid was reused since.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: the fd is a live pidfd borrowed for the call; a null siginfo is allowed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs a seccomp BPF program on the calling thread (`SECCOMP_SET_MODE_FILTER`) with the
/// given `SECCOMP_FILTER_FLAG_*` flags.
pub fn seccomp_set_filter(program: &[libc::sock_filter], flags: libc::c_ulong) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .map_err(|_| io::Error::other(format!("{} BPF instructions", program.len())))?;
    let prog = libc::sock_fprog {
        len,
        // The kernel only reads through this pointer.
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` describes `len` initialised instructions in `program`, borrowed for the
    // whole call; the kernel copies the program and keeps no pointer into our memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Brings the loopback interface of the current network namespace up, as runc does for a new
/// network namespace (a fresh namespace has `lo` down).
pub fn set_loopback_up() -> io::Result<()> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name from and writes the flags into `req`, a valid ifreq
    // that lives across the call; `sock` is an open socket.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the union holds ifru_flags, which we read and update.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The raw terminal ioctls, kept private: only the safe wrappers below leave this module.
mod tty {
    nix::ioctl_write_int_bad!(tiocsctty, libc::TIOCSCTTY);
    nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);
}

/// Makes the terminal `fd` the controlling terminal of this process's session (`TIOCSCTTY`);
/// the caller must be a session leader without one.
pub fn set_controlling_terminal(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal the terminal from another
    // session) and touches no memory of ours; `fd` is borrowed, so open, for the call.
    unsafe { tty::tiocsctty(fd.as_raw_fd(), 0) }.map(drop)
}

/// Sets the size of the terminal `fd` (`TIOCSWINSZ`).
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> nix::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ only reads a winsize through the pointer, which points to `size`,
    // alive and initialised for the whole call; `fd` is borrowed, so open, for the call.
    unsafe { tty::tiocswinsz(fd.as_raw_fd(), &size) }.map(drop)
}

/// Ends the process at once, without running exit handlers or flushing buffers that belong
/// to the parent's copy of the program (the init is a clone of `create`).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// Takes ownership of a file descriptor the kernel installed in this process through
/// `SCM_RIGHTS`.
pub fn own_received_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: recvmsg just installed `fd` in our table for this message alone; nothing else
    // holds or will close it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `fork()` for a process known to be single-threaded (the Lambda init), where the child may
/// run ordinary code until it execs.
pub fn fork_single_threaded() -> nix::Result<nix::unistd::ForkResult> {
    // SAFETY: the caller is single-threaded, so no other thread can hold a lock (allocator,
    // stdio) at the moment of the fork and the child's copy of memory is consistent.
    unsafe { nix::unistd::fork() }
}

/// Types that own their file descriptor outright: it stays open, and the same, while they live.
pub trait OwnsFd: AsRawFd {}

impl OwnsFd for OwnedFd {}

/// Registers an owned fd with the tokio reactor.
pub fn async_fd<T: OwnsFd>(inner: T) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `T: OwnsFd` owns its descriptor, so the fd is open and refers to the same file
    // for as long as the AsyncFd holds `inner`, which is what tokio requires.
    Ok(unsafe { tokio::io::unix::AsyncFd::register(inner) }?)
}

/// Sets the `MS_RDONLY`, `MS_NOSUID`, `MS_NODEV`, `MS_NOEXEC` and atime flags of the mount at
/// `fd` (and, with `recursive`, of every mount below it) with `mount_setattr(2)`: it acts on
/// the mount the fd refers to, so no path is looked up again after the bind.
pub fn set_mount_flags(fd: BorrowedFd<'_>, flags: u64, recursive: bool) -> io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const RDONLY: u64 = 0x1;
    const NOSUID: u64 = 0x2;
    const NODEV: u64 = 0x4;
    const NOEXEC: u64 = 0x8;
    const NOATIME: u64 = 0x10;
    const STRICTATIME: u64 = 0x20;
    const ATIME_MASK: u64 = 0x70;
    const NODIRATIME: u64 = 0x80;
    let mut attr = MountAttr {
        attr_set: 0,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    for (ms, mount_attr) in [
        (libc::MS_RDONLY, RDONLY),
        (libc::MS_NOSUID, NOSUID),
        (libc::MS_NODEV, NODEV),
        (libc::MS_NOEXEC, NOEXEC),
        (libc::MS_NODIRATIME, NODIRATIME),
    ] {
        if flags & ms != 0 {
            attr.attr_set |= mount_attr;
        }
    }
    for (ms, atime) in [
        (libc::MS_NOATIME, NOATIME),
        (libc::MS_STRICTATIME, STRICTATIME),
    ] {
        if flags & ms != 0 {
            attr.attr_set |= atime;
            attr.attr_clr |= ATIME_MASK;
        }
    }
    let at_flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed and outlives the call; the empty
    // path with AT_EMPTY_PATH makes the kernel act on `fd`, which is borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            at_flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Restores SIGPIPE's default action, so that a command printing into a closed pipe
/// (`runlambda state x | head -1`) ends quietly as a C tool would, instead of failing on
/// EPIPE. Only for commands that start nothing long-lived: a supervisor must survive a
/// reader of its log going away.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL is not a handler function, so no code can run in signal context; the
    // call only changes this process's disposition for SIGPIPE.
    let _ = unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        )
    };
}
