//! Terminals as containerd's go-runc and conmon receive them: the test listens on a console
//! socket, runs `create --console-socket` or `exec --tty --console-socket`, takes the one
//! message (the pty's name and its master as the only fd), and talks to the container's
//! process through the master — its name in the container's devpts, its size, its stdin, its
//! controlling terminal. Without a socket, or a socket without a terminal, runlambda refuses.

mod common;

use std::fs;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{config, in_user_namespace, wait_exit, Env};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::{json, Value};

/// The script of the containers' processes: where their terminal is, its size (busybox's
/// `stty size` prints none for a terminal without one), whether stdio and the controlling
/// terminal are on it, and a line read from it.
const PROBE: &str = "tty; stty size 2>/dev/null; \
                     [ -t 0 ] && [ -t 1 ] && echo stdio-is-tty; echo ctty > /dev/tty; \
                     read line; echo got:$line";

/// What [`PROBE`] prints after its `tty` and `stty size` lines, given [`answer_probe`]'s line
/// (echoed by the terminal).
const PROBE_TAIL: &str = "stdio-is-tty\nctty\ntyped\ngot:typed\n";

/// A console socket in the test's directory, as a caller sets one up.
fn console_socket(env: &Env, name: &str) -> (PathBuf, UnixListener) {
    let path = env.dir.path().join(name);
    let listener = UnixListener::bind(&path).unwrap();
    (path, listener)
}

/// Accepts the runtime's connection and takes its one message: the pty's name and the master.
/// Like go-runc, anything but one `SCM_RIGHTS` message with one fd is a failure.
fn receive_master(listener: &UnixListener) -> (String, OwnedFd) {
    let (conn, _) = listener.accept().unwrap();
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    let bytes = msg.bytes;
    let cmsgs: Vec<_> = msg.cmsgs().unwrap().collect();
    let [ControlMessageOwned::ScmRights(fds)] = cmsgs.as_slice() else {
        panic!("expected one SCM_RIGHTS message, got {cmsgs:?}");
    };
    let [fd] = fds.as_slice() else {
        panic!("expected one fd, got {fds:?}");
    };
    let master = runlambda::sys::own_received_fd(*fd);
    let name = String::from_utf8(buf[..bytes].to_vec()).unwrap();
    (name, master)
}

/// Reads the process's terminal into `out` until `done` holds of what was read, or until its
/// last holder of the slave is gone (the master then reads EIO).
fn read_terminal(master: &OwnedFd, out: &mut Vec<u8>, done: impl Fn(&[u8]) -> bool) {
    let mut file = fs::File::from(master.try_clone().unwrap());
    while !done(out) {
        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(20_000u16)).unwrap();
        assert!(
            ready > 0,
            "the terminal went quiet for 20 s; so far: {}",
            String::from_utf8_lossy(out)
        );
        let mut chunk = [0u8; 4096];
        match file.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.raw_os_error() == Some(Errno::EIO as i32) => return,
            Err(e) => panic!("reading the master: {e}"),
        }
    }
}

/// Waits for [`PROBE`] to reach its `read`, types its line, and returns all the process
/// printed until it exited, with the terminal's CR LF as LF.
fn answer_probe(master: &OwnedFd) -> String {
    let mut out = Vec::new();
    read_terminal(master, &mut out, |out| out.ends_with(b"ctty\r\n"));
    fs::File::from(master.try_clone().unwrap())
        .write_all(b"typed\n")
        .unwrap();
    read_terminal(master, &mut out, |_| false);
    String::from_utf8(out).unwrap().replace("\r\n", "\n")
}

fn terminal_config(args: &[&str], size: Option<(u16, u16)>) -> Value {
    let mut cfg = config(args);
    cfg["process"]["terminal"] = json!(true);
    if let Some((height, width)) = size {
        cfg["process"]["consoleSize"] = json!({"height": height, "width": width});
    }
    cfg
}

/// `create --console-socket` of `bundle` as `id`; returns the init's pid.
fn create_with_console(env: &Env, id: &str, bundle: &Path, socket: &Path) -> i32 {
    let pid_file = bundle.join("pid");
    env.ok(&[
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--console-socket",
        socket.to_str().unwrap(),
        id,
    ]);
    fs::read_to_string(pid_file).unwrap().parse().unwrap()
}

/// `exec --detach --tty` with `args` after runc's flags, as conmon runs `podman exec -t`:
/// the pty's name and master from the console socket, and the process's pid.
fn exec_detached_with_tty(env: &Env, args: &[&str]) -> (String, OwnedFd, i32) {
    let (socket, listener) = console_socket(env, "exec-detached.sock");
    let pid_file = env.dir.path().join("exec.pid");
    let mut command = vec![
        "exec",
        "--detach",
        "--tty",
        "--console-socket",
        socket.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
    ];
    command.extend(args);
    env.ok(&command);
    let (name, master) = receive_master(&listener);
    let pid = fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    (name, master, pid)
}

#[test]
fn create_sends_the_containers_terminal_to_the_console_socket() {
    let env = Env::new();
    // The terminal is the process's user's, and the init's /dev/console is it too.
    let script = format!("stat -c %u $(tty); [ /dev/console -ef $(tty) ] && echo console; {PROBE}");
    let mut cfg = terminal_config(&["sh", "-c", &script], Some((30, 100)));
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let bundle = env.bundle("c1", &cfg);
    let (socket, listener) = console_socket(&env, "console.sock");
    let init = create_with_console(&env, "c1", &bundle, &socket);
    // As go-runc does: the message waits in the socket until `create` has returned.
    let (name, master) = receive_master(&listener);
    assert_eq!(name, "/dev/pts/0");
    env.ok(&["start", "c1"]);
    assert_eq!(
        answer_probe(&master),
        format!("1000\nconsole\n/dev/pts/0\n30 100\n{PROBE_TAIL}")
    );
    assert_eq!(wait_exit(init), 0);
    env.ok(&["delete", "c1"]);
}

#[test]
fn exec_tty_sends_the_processs_terminal_to_the_console_socket() {
    let env = Env::new();
    let bundle = env.bundle("c1", &config(&["sleep", "300"]));
    let init = env.create("c1", &bundle);
    env.ok(&["start", "c1"]);

    // Waited for, with runc's flags: the exit code comes back through `exec`.
    let (socket, listener) = console_socket(&env, "exec.sock");
    let script = format!("{PROBE}; exit 5");
    let mut exec = env
        .command(&[
            "exec",
            "--tty",
            "--console-socket",
            socket.to_str().unwrap(),
            "c1",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (name, master) = receive_master(&listener);
    // The container's own devpts: the init has no terminal, so this is its first pty.
    assert_eq!(name, "/dev/pts/0");
    // No consoleSize: the kernel's 0 × 0, which is no size.
    assert_eq!(answer_probe(&master), format!("{name}\n{PROBE_TAIL}"));
    assert_eq!(exec.wait().unwrap().code(), Some(5));
    drop(master);

    // Detached, from a process file with a console size, as conmon runs `podman exec -t`.
    let process = env.dir.path().join("process.json");
    let cfg = terminal_config(&["sh", "-c", PROBE], Some((40, 120)));
    fs::write(&process, cfg["process"].to_string()).unwrap();
    let (name, master, pid) =
        exec_detached_with_tty(&env, &["--process", process.to_str().unwrap(), "c1"]);
    assert_eq!(name, "/dev/pts/0");
    assert_eq!(
        answer_probe(&master),
        format!("{name}\n40 120\n{PROBE_TAIL}")
    );
    assert_eq!(wait_exit(pid), 0);

    env.ok(&["delete", "--force", "c1"]);
    wait_exit(init);
}

#[test]
fn a_terminal_needs_a_console_socket_and_a_socket_needs_a_terminal() {
    let env = Env::new();
    let (socket, _listener) = console_socket(&env, "console.sock");
    let socket = socket.to_str().unwrap();
    let bundle = env.bundle("tty", &terminal_config(&["true"], None));
    let bundle = bundle.to_str().unwrap();
    let err = env.fails(&["create", "--bundle", bundle, "tty"]);
    assert!(err.contains("needs --console-socket"), "{err}");
    let plain = env.bundle("plain", &config(&["sleep", "300"]));
    let err = env.fails(&[
        "create",
        "--bundle",
        plain.to_str().unwrap(),
        "--console-socket",
        socket,
        "plain",
    ]);
    assert!(err.contains("the process has no terminal"), "{err}");
    // Refused before anything was built.
    assert_eq!(env.ok(&["list", "--quiet"]), "");

    let init = env.create("c1", &plain);
    env.ok(&["start", "c1"]);
    let err = env.fails(&["exec", "--tty", "c1", "true"]);
    assert!(err.contains("needs --console-socket"), "{err}");
    let err = env.fails(&["exec", "--console-socket", socket, "c1", "true"]);
    assert!(err.contains("the process has no terminal"), "{err}");
    let missing = env.dir.path().join("missing.sock");
    let err = env.fails(&[
        "exec",
        "--tty",
        "--console-socket",
        missing.to_str().unwrap(),
        "c1",
        "true",
    ]);
    assert!(err.contains("cannot connect to console socket"), "{err}");
    env.ok(&["delete", "--force", "c1"]);
    wait_exit(init);
}

#[test]
fn terminals_work_in_a_user_namespace() {
    let env = Env::new();
    let script = format!("stat -c %u $(tty); {PROBE}");
    let mut cfg = terminal_config(&["sh", "-c", &script], Some((24, 80)));
    cfg["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    in_user_namespace(&mut cfg);
    let bundle = env.bundle("c1", &cfg);
    let (socket, listener) = console_socket(&env, "console.sock");
    let init = create_with_console(&env, "c1", &bundle, &socket);
    let (name, master) = receive_master(&listener);
    env.ok(&["start", "c1"]);
    assert_eq!(
        answer_probe(&master),
        format!("1000\n{name}\n24 80\n{PROBE_TAIL}")
    );
    assert_eq!(wait_exit(init), 0);
    env.ok(&["delete", "c1"]);

    let mut cfg = config(&["sleep", "300"]);
    in_user_namespace(&mut cfg);
    let bundle = env.bundle("c2", &cfg);
    let init = env.create("c2", &bundle);
    env.ok(&["start", "c2"]);
    let (name, master, pid) =
        exec_detached_with_tty(&env, &["-u", "1000", "c2", "sh", "-c", &script]);
    assert_eq!(answer_probe(&master), format!("1000\n{name}\n{PROBE_TAIL}"));
    assert_eq!(wait_exit(pid), 0);
    env.ok(&["delete", "--force", "c2"]);
    wait_exit(init);
}

#[test]
fn a_console_socket_path_longer_than_sun_path_works() {
    let env = Env::new();
    let dir = env.dir.path().join("c".repeat(100));
    fs::create_dir(&dir).unwrap();
    let socket = dir.join("console.sock");
    assert!(socket.as_os_str().len() > runlambda::socket_path::SUN_PATH_BYTES);
    // A caller can only bind it through its directory at this length.
    let listener = runlambda::socket_path::bind(&socket).unwrap();
    let bundle = env.bundle("c1", &terminal_config(&["tty"], None));
    let init = create_with_console(&env, "c1", &bundle, &socket);
    let (name, master) = receive_master(&listener);
    assert_eq!(name, "/dev/pts/0");
    env.ok(&["start", "c1"]);
    let mut out = Vec::new();
    read_terminal(&master, &mut out, |_| false);
    assert_eq!(String::from_utf8(out).unwrap(), "/dev/pts/0\r\n");
    assert_eq!(wait_exit(init), 0);
    env.ok(&["delete", "c1"]);
}
