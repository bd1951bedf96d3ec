//! Driving the processes of a leaf through its cgroup2 files: freeze and thaw confirmed by
//! `cgroup.events`, the process list, signals, and killing everything.
//!
//! Confirmations poll `cgroup.events` with short sleeps rather than waiting for its
//! notification: the kernel rate-limits those to one per ~10 ms and a preceding thaw has
//! usually used it up, while `frozen 1` typically appears within tens of microseconds.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::{file, Cgroup, CgroupError};

/// First and longest sleep between two reads of `cgroup.events`.
const FIRST_POLL: Duration = Duration::from_micros(50);
const LONGEST_POLL: Duration = Duration::from_millis(1);

impl Cgroup {
    /// Freezes every process of the leaf and waits until the kernel reports `frozen 1`.
    pub fn freeze(&self, timeout: Duration) -> Result<(), CgroupError> {
        self.request_freeze()?;
        if self.wait_for_event("frozen", true, timeout, || Ok(()))? {
            Ok(())
        } else {
            Err(CgroupError::FreezeTimeout {
                path: self.unified_dir().to_owned(),
                timeout,
            })
        }
    }

    /// Thaws the leaf, cancelling a freeze still in progress, and waits for `frozen 0`.
    pub fn thaw(&self, timeout: Duration) -> Result<(), CgroupError> {
        file::write(&self.freeze_path(), "0")?;
        if self.wait_for_event("frozen", false, timeout, || Ok(()))? {
            Ok(())
        } else {
            Err(CgroupError::ThawTimeout {
                path: self.unified_dir().to_owned(),
                timeout,
            })
        }
    }

    /// Asks the kernel to freeze the leaf and returns at once: the freeze completes in the
    /// background, and a later [`Cgroup::thaw`] cancels it if it has not.
    pub fn request_freeze(&self) -> Result<(), CgroupError> {
        file::write(&self.freeze_path(), "1")
    }

    /// `cgroup.freeze` held open, for a supervisor that freezes and thaws around every
    /// invocation: one write each, no open or close on the invocation's path.
    pub fn freezer(&self) -> Result<Freezer, CgroupError> {
        let path = self.freeze_path();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| CgroupError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(Freezer { file, path })
    }

    /// Whether the kernel reports the leaf frozen (`frozen 1` in `cgroup.events`).
    pub fn is_frozen(&self) -> Result<bool, CgroupError> {
        self.event("frozen")
    }

    /// Whether any process is in the leaf or below it (`populated 1` in `cgroup.events`).
    pub fn populated(&self) -> Result<bool, CgroupError> {
        self.event("populated")
    }

    /// The processes directly in the leaf, as pids of the caller's pid namespace.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let path = self.unified_dir().join("cgroup.procs");
        let text = file::read(&path)?;
        let parsed: Result<Vec<i32>, _> = text.lines().map(|line| line.trim().parse()).collect();
        parsed.map_err(|_| CgroupError::Malformed {
            path,
            content: text,
        })
    }

    /// Sends `sig` to every process of the leaf; one that has exited meanwhile is skipped.
    pub fn signal_all(&self, sig: Signal) -> Result<(), CgroupError> {
        for pid in self.pids()? {
            match signal::kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => {
                    return Err(CgroupError::Signal {
                        path: self.unified_dir().to_owned(),
                        pid,
                        signal: sig,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Kills every process of the leaf, frozen or not, and waits until it is empty
    /// (`populated 0`). Uses `cgroup.kill`; before Linux 5.14, which lacks it, SIGKILLs the pids
    /// in `cgroup.procs` again on every poll, catching processes forked in between.
    pub fn kill(&self, timeout: Duration) -> Result<(), CgroupError> {
        let kill_file = self.unified_dir().join("cgroup.kill");
        let emptied = if file::write_if_present(&kill_file, "1")? {
            self.wait_for_event("populated", false, timeout, || Ok(()))?
        } else {
            self.wait_for_event("populated", false, timeout, || {
                self.signal_all(Signal::SIGKILL)
            })?
        };
        if emptied {
            Ok(())
        } else {
            Err(CgroupError::KillTimeout {
                path: self.unified_dir().to_owned(),
                timeout,
            })
        }
    }

    /// Polls `key` in `cgroup.events` until it reads `want`, calling `before_poll` first each
    /// time; false when `timeout` passed first.
    fn wait_for_event(
        &self,
        key: &str,
        want: bool,
        timeout: Duration,
        mut before_poll: impl FnMut() -> Result<(), CgroupError>,
    ) -> Result<bool, CgroupError> {
        let deadline = Instant::now() + timeout;
        let mut pause = FIRST_POLL;
        loop {
            before_poll()?;
            if self.event(key)? == want {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }

    /// The 0/1 value of `key` in `cgroup.events`.
    fn event(&self, key: &str) -> Result<bool, CgroupError> {
        let path = self.unified_dir().join("cgroup.events");
        let text = file::read(&path)?;
        let value = text
            .lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '));
        match value {
            Some("1") => Ok(true),
            Some("0") => Ok(false),
            _ => Err(CgroupError::Malformed {
                path,
                content: text,
            }),
        }
    }

    fn freeze_path(&self) -> PathBuf {
        self.unified_dir().join("cgroup.freeze")
    }
}

/// An open `cgroup.freeze` (see [`Cgroup::freezer`]).
#[derive(Debug)]
pub struct Freezer {
    file: std::fs::File,
    path: PathBuf,
}

impl Freezer {
    /// Starts freezing and returns at once (see [`Cgroup::request_freeze`]).
    pub fn request_freeze(&self) -> Result<(), CgroupError> {
        self.write("1")
    }

    /// Thaws without waiting for `frozen 0`: the kernel lets the tasks run again as the write
    /// returns, and a freeze still in progress is cancelled.
    pub fn request_thaw(&self) -> Result<(), CgroupError> {
        self.write("0")
    }

    fn write(&self, value: &str) -> Result<(), CgroupError> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(value.as_bytes(), 0)
            .map_err(|source| CgroupError::Write {
                path: self.path.clone(),
                value: value.to_string(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::cgroup::fake::{content, FakeHost};

    const EVENTS: &str = "cgroup.events";

    /// A fake cgroup2 leaf `env` holding `files`.
    fn leaf(files: &[(&str, &str)]) -> (FakeHost, Cgroup) {
        let fake = FakeHost::hybrid(&[]);
        fake.make("unified/env", files);
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        (fake, cgroup)
    }

    #[test]
    fn freeze_writes_1_and_returns_once_frozen() {
        let (_fake, cgroup) = leaf(&[
            ("cgroup.freeze", "0\n"),
            (EVENTS, "populated 1\nfrozen 1\n"),
        ]);
        cgroup.freeze(Duration::from_secs(1)).unwrap();
        assert_eq!(content(cgroup.unified_dir(), "cgroup.freeze"), "1");
        assert!(cgroup.is_frozen().unwrap());
    }

    #[test]
    fn freeze_that_never_completes_times_out_naming_the_leaf() {
        let (_fake, cgroup) = leaf(&[
            ("cgroup.freeze", "0\n"),
            (EVENTS, "populated 1\nfrozen 0\n"),
        ]);
        let err = cgroup.freeze(Duration::from_millis(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "freezing {} did not finish within 3ms",
                cgroup.unified_dir().display()
            )
        );
    }

    #[test]
    fn thaw_writes_0_and_waits_for_frozen_0() {
        let (_fake, cgroup) = leaf(&[
            ("cgroup.freeze", "1\n"),
            (EVENTS, "populated 1\nfrozen 1\n"),
        ]);
        let err = cgroup.thaw(Duration::from_millis(1)).unwrap_err();
        assert!(matches!(err, CgroupError::ThawTimeout { .. }), "{err}");
        assert_eq!(content(cgroup.unified_dir(), "cgroup.freeze"), "0");
    }

    #[test]
    fn request_freeze_only_writes() {
        let (_fake, cgroup) = leaf(&[
            ("cgroup.freeze", "0\n"),
            (EVENTS, "populated 1\nfrozen 0\n"),
        ]);
        cgroup.request_freeze().unwrap();
        assert_eq!(content(cgroup.unified_dir(), "cgroup.freeze"), "1");
        assert!(!cgroup.is_frozen().unwrap());
        assert!(cgroup.populated().unwrap());
    }

    #[test]
    fn a_freezer_writes_through_its_open_file() {
        // Written in place at offset 0, as the kernel's file takes it (a plain file keeps the
        // rest, so the fake holds one byte).
        let (_fake, cgroup) = leaf(&[("cgroup.freeze", "0"), (EVENTS, "populated 1\nfrozen 0\n")]);
        let freezer = cgroup.freezer().unwrap();
        freezer.request_freeze().unwrap();
        assert_eq!(content(cgroup.unified_dir(), "cgroup.freeze"), "1");
        freezer.request_thaw().unwrap();
        assert_eq!(content(cgroup.unified_dir(), "cgroup.freeze"), "0");
    }

    #[test]
    fn events_without_the_key_are_malformed() {
        let (_fake, cgroup) = leaf(&[(EVENTS, "populated 1\nfrozenish 1\n")]);
        let err = cgroup.is_frozen().unwrap_err();
        assert!(matches!(err, CgroupError::Malformed { .. }), "{err}");
    }

    #[test]
    fn pids_lists_cgroup_procs() {
        let (_fake, cgroup) = leaf(&[("cgroup.procs", "12\n345\n")]);
        assert_eq!(cgroup.pids().unwrap(), [12, 345]);
        let (_fake, empty) = leaf(&[("cgroup.procs", "")]);
        assert_eq!(empty.pids().unwrap(), [0; 0]);
        let (_fake, bad) = leaf(&[("cgroup.procs", "12\nx\n")]);
        assert!(matches!(bad.pids(), Err(CgroupError::Malformed { .. })));
    }

    #[test]
    fn kill_uses_cgroup_kill_then_waits_until_empty() {
        let (_fake, cgroup) = leaf(&[
            ("cgroup.kill", ""),
            ("cgroup.procs", ""),
            (EVENTS, "populated 0\nfrozen 0\n"),
        ]);
        cgroup.kill(Duration::from_secs(1)).unwrap();
        assert_eq!(content(cgroup.unified_dir(), "cgroup.kill"), "1");
    }

    #[test]
    fn kill_without_cgroup_kill_times_out_while_populated() {
        let (_fake, cgroup) = leaf(&[("cgroup.procs", ""), (EVENTS, "populated 1\nfrozen 0\n")]);
        let err = cgroup.kill(Duration::from_millis(2)).unwrap_err();
        assert!(matches!(err, CgroupError::KillTimeout { .. }), "{err}");
        assert!(!cgroup.unified_dir().join("cgroup.kill").exists());
    }

    #[test]
    fn signal_all_reaches_the_listed_processes() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let procs = format!("{}\n", child.id());
        let (_fake, cgroup) = leaf(&[("cgroup.procs", &procs)]);
        cgroup.signal_all(Signal::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
