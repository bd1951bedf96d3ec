//! The state directory: `<root>/<id>/` holds what later CLI calls need to find a container again
//! (`state.json`), the socket `start` connects to (`notify.sock`), and a lock file. Writes are
//! atomic (write a temporary file, then rename) so a concurrent `state` never reads half a file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// Errors of the state directory; each names the container or the path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '+', '-' and '.'")]
    InvalidId(String),
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt state file {path}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

type Result<T> = std::result::Result<T, StateError>;

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What `create` records about a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// The init's start time in clock ticks after boot (field 22 of `/proc/PID/stat`): tells
    /// our init apart from a later process that reused its pid.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 UTC time with nanoseconds, as runc prints it.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// The leaf's path relative to the cgroup hierarchy roots.
    pub cgroup: PathBuf,
    /// Whether the memory limit holds.
    pub memory: MemoryLimit,
    /// A Lambda environment (with a supervisor) rather than a plain container.
    #[serde(default)]
    pub lambda: bool,
    /// The seccomp profile of the container, which `exec`'d processes get too.
    #[serde(default)]
    pub seccomp: Option<crate::spec::Seccomp>,
    /// The hooks as config.json had them at `create`; `start` and `delete` run theirs.
    #[serde(default)]
    pub hooks: crate::hooks::Hooks,
}

/// The fate of the container's memory limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryLimit {
    /// No memory limit was asked for.
    None,
    /// The kernel enforces the limit.
    Enforced,
    /// A limit was asked for, but the host has no memory controller and the runtime config
    /// allowed running without it.
    Unenforced,
}

/// Checks a container id against runc's rule, which also keeps it a single path component.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_string()))
    }
}

/// One container's directory under the state root.
#[derive(Debug, Clone)]
pub struct StateDir {
    id: String,
    dir: PathBuf,
}

impl StateDir {
    /// Creates the directory (and the root, 0700) for a new container.
    pub fn create(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(io_err("create state root", root))?;
        let dir = root.join(id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(Self {
                id: id.to_string(),
                dir,
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(StateError::AlreadyExists(id.to_string()))
            }
            Err(e) => Err(io_err("create state directory", &dir)(e)),
        }
    }

    /// Opens the directory of an existing container.
    pub fn open(root: &Path, id: &str) -> Result<Self> {
        validate_id(id)?;
        let dir = root.join(id);
        if !dir.join(STATE_FILE).exists() {
            return Err(StateError::NotFound(id.to_string()));
        }
        Ok(Self {
            id: id.to_string(),
            dir,
        })
    }

    /// Every container id under the root, sorted.
    pub fn list(root: &Path) -> Result<Vec<String>> {
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read state root", root)(e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join(STATE_FILE).exists())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The socket the init waits on until `start` connects.
    pub fn notify_socket(&self) -> PathBuf {
        self.dir.join(NOTIFY_SOCKET)
    }

    /// Binds a unix socket named `name` in the directory, readable and writable by root alone
    /// whatever the umask (the directory itself is 0700 too).
    pub fn bind_socket(&self, name: &str) -> Result<std::os::unix::net::UnixListener> {
        let path = self.dir.join(name);
        let listener = crate::socket_path::bind(&path).map_err(io_err("bind socket", &path))?;
        restrict(&path)?;
        Ok(listener)
    }

    /// The same for a `SOCK_SEQPACKET` socket.
    pub fn bind_seqpacket(&self, name: &str) -> Result<std::os::fd::OwnedFd> {
        let path = self.dir.join(name);
        let listener =
            crate::socket_path::bind_seqpacket(&path).map_err(io_err("bind socket", &path))?;
        restrict(&path)?;
        Ok(listener)
    }

    /// Records (or clears) that the user paused the container: a Lambda environment's cgroup
    /// is frozen whenever it is idle, so the freezer alone cannot tell a pause.
    pub fn mark_paused(&self, paused: bool) -> Result<()> {
        let path = self.dir.join("paused");
        let result = if paused {
            fs::write(&path, b"")
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        result.map_err(io_err("mark paused", &path))
    }

    pub fn is_marked_paused(&self) -> bool {
        self.dir.join("paused").exists()
    }

    /// Takes the container's lock, held until the guard is dropped: verbs that change the
    /// container (start, kill, delete, pause, resume) serialise on it.
    pub fn lock(&self) -> Result<Flock<File>> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_err("lock", &path)(errno.into()))
    }

    /// Writes the record atomically.
    pub fn save(&self, record: &Record) -> Result<()> {
        let bytes = serde_json::to_vec(record).expect("a record always serialises");
        write_atomic(&self.dir.join(STATE_FILE), &bytes, 0o600)
    }

    pub fn load(&self) -> Result<Record> {
        let path = self.dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()))
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// Removes the whole directory; a directory already gone is not an error.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(io_err("remove state directory", &self.dir)(e))
            }
            _ => Ok(()),
        }
    }
}

/// Only root may connect to a socket of the state directory.
fn restrict(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(io_err("restrict socket", path))
}

const STATE_FILE: &str = "state.json";
/// The socket `start` connects to.
pub const NOTIFY_SOCKET: &str = "notify.sock";
/// A Lambda environment's Invoke API.
pub const INVOKE_SOCKET: &str = "invoke.sock";
/// A Lambda environment's control socket (`kill` asks for the Shutdown there).
pub const CONTROL_SOCKET: &str = "control.sock";

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let write = || -> io::Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write", path)(e)
    })
}

/// What the kernel says about a pid now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessLiveness {
    /// Running (or stopped, frozen, sleeping): not yet exited.
    Alive,
    /// Exited (a zombie, or gone), or the pid now belongs to another process.
    Gone,
}

/// Whether the process recorded as `pid` with `start_time` is still alive.
pub fn liveness(pid: i32, start_time: u64) -> ProcessLiveness {
    match proc_stat(Pid::from_raw(pid)) {
        Some((state, started)) if started == start_time && state != 'Z' && state != 'X' => {
            ProcessLiveness::Alive
        }
        _ => ProcessLiveness::Gone,
    }
}

/// The state letter and start time (field 22) of `/proc/PID/stat`.
pub fn proc_stat(pid: Pid) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    // `rest` starts at field 3, so field 22 is the 20th from here.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some((state, start_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.to_string(),
            pid: 42,
            pid_start_time: 1234,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-11-29T06:12:35.721815604Z".into(),
            annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
            cgroup: "runlambda/c1".into(),
            memory: MemoryLimit::Enforced,
            lambda: false,
            seccomp: None,
            hooks: crate::hooks::Hooks {
                poststop: vec![crate::hooks::Hook {
                    path: "/usr/bin/cleanup".into(),
                    args: vec!["cleanup".into(), "--all".into()],
                    env: vec!["K=v".into()],
                    timeout: Some(std::time::Duration::from_secs(5)),
                }],
                ..Default::default()
            },
        }
    }

    #[test]
    fn record_round_trips_through_the_state_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = StateDir::create(root.path(), "c1").unwrap();
        dir.save(&record("c1")).unwrap();
        let again = StateDir::open(root.path(), "c1").unwrap();
        assert_eq!(again.load().unwrap(), record("c1"));
        assert_eq!(StateDir::list(root.path()).unwrap(), vec!["c1".to_string()]);
        dir.remove().unwrap();
        assert!(!dir.path().exists());
        dir.remove().unwrap();
    }

    #[test]
    fn unknown_and_duplicate_ids_are_named() {
        let root = tempfile::tempdir().unwrap();
        let err = StateDir::open(root.path(), "nope").unwrap_err();
        assert_eq!(err.to_string(), "container nope does not exist");
        StateDir::create(root.path(), "c1").unwrap();
        let err = StateDir::create(root.path(), "c1").unwrap_err();
        assert_eq!(err.to_string(), "container c1 already exists");
    }

    #[test]
    fn ids_that_could_escape_the_root_are_refused() {
        for id in ["", ".", "..", "a/b", "../x", "a b"] {
            assert!(
                matches!(validate_id(id), Err(StateError::InvalidId(_))),
                "{id:?}"
            );
        }
        validate_id("abc-1.2_3+x").unwrap();
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_not() {
        let me = Pid::this();
        let (state, started) = proc_stat(me).unwrap();
        assert_ne!(state, 'Z');
        assert_eq!(liveness(me.as_raw(), started), ProcessLiveness::Alive);
        assert_eq!(liveness(me.as_raw(), started + 1), ProcessLiveness::Gone);
    }
}
