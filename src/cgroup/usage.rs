//! What a leaf reports of its use: cpu time, memory and the number of tasks, read from the
//! hierarchy that accounts for each — the cgroup2 leaf where it has the controller's files, the
//! v1 leaf of a hybrid host otherwise — for `events`.

use std::path::Path;

use super::host::Controller;
use super::{file, Cgroup, CgroupError};

/// The leaf's counters; a part is `None` when no controller accounts for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu: Option<CpuUsage>,
    pub memory: Option<MemoryUsage>,
    pub pids: Option<PidsUsage>,
}

/// cgroup2's `cpu.stat`, which every cgroup2 leaf has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuUsage {
    pub usage_usec: u64,
    pub user_usec: u64,
    pub system_usec: u64,
}

/// Memory in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    pub current: u64,
    /// The most ever used; `None` where the kernel does not record it (cgroup2 before 5.19).
    pub peak: Option<u64>,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

/// Tasks (processes and threads).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PidsUsage {
    pub current: u64,
    /// `None` when unlimited.
    pub limit: Option<u64>,
}

impl Cgroup {
    /// Reads the leaf's counters.
    pub fn usage(&self) -> Result<Usage, CgroupError> {
        Ok(Usage {
            cpu: self.cpu_usage()?,
            memory: self.memory_usage()?,
            pids: self.pids_usage()?,
        })
    }

    fn cpu_usage(&self) -> Result<Option<CpuUsage>, CgroupError> {
        let path = self.unified_dir().join("cpu.stat");
        let Some(text) = file::read_if_present(&path)? else {
            return Ok(None);
        };
        let field = |key: &str| -> Result<u64, CgroupError> {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
                .ok_or_else(|| CgroupError::Malformed {
                    path: path.clone(),
                    content: text.clone(),
                })
        };
        Ok(Some(CpuUsage {
            usage_usec: field("usage_usec")?,
            user_usec: field("user_usec")?,
            system_usec: field("system_usec")?,
        }))
    }

    fn memory_usage(&self) -> Result<Option<MemoryUsage>, CgroupError> {
        let unified = self.unified_dir();
        if let Some(current) = number(&unified.join("memory.current"))? {
            return Ok(Some(MemoryUsage {
                current,
                peak: number(&unified.join("memory.peak"))?,
                limit: limit(&unified.join("memory.max"))?,
            }));
        }
        let Some(leaf) = self.v1_leaf(Controller::Memory) else {
            return Ok(None);
        };
        let Some(current) = number(&leaf.join("memory.usage_in_bytes"))? else {
            return Ok(None);
        };
        Ok(Some(MemoryUsage {
            current,
            peak: number(&leaf.join("memory.max_usage_in_bytes"))?,
            limit: limit(&leaf.join("memory.limit_in_bytes"))?,
        }))
    }

    fn pids_usage(&self) -> Result<Option<PidsUsage>, CgroupError> {
        // The same file names in both versions.
        let dirs = [Some(self.unified_dir()), self.v1_leaf(Controller::Pids)];
        for dir in dirs.into_iter().flatten() {
            if let Some(current) = number(&dir.join("pids.current"))? {
                return Ok(Some(PidsUsage {
                    current,
                    limit: limit(&dir.join("pids.max"))?,
                }));
            }
        }
        Ok(None)
    }
}

/// The number in `path`, or `None` when the file (or its leaf) does not exist.
fn number(path: &Path) -> Result<Option<u64>, CgroupError> {
    let Some(text) = file::read_if_present(path)? else {
        return Ok(None);
    };
    match text.trim().parse() {
        Ok(value) => Ok(Some(value)),
        Err(_) => Err(CgroupError::Malformed {
            path: path.to_owned(),
            content: text,
        }),
    }
}

/// A limit file: a number, or `max` (`None`); a missing file is no limit either.
fn limit(path: &Path) -> Result<Option<u64>, CgroupError> {
    match file::read_if_present(path)? {
        Some(text) if text.trim() == "max" => Ok(None),
        Some(_) => number(path),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::cgroup::fake::FakeHost;

    const CPU_STAT: &str = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n";

    #[test]
    fn pure_v2_reads_the_leaf() {
        let fake = FakeHost::pure_v2("cpu memory pids\n");
        fake.make(
            "env",
            &[
                ("cpu.stat", CPU_STAT),
                ("memory.current", "4096\n"),
                ("memory.peak", "8192\n"),
                ("memory.max", "max\n"),
                ("pids.current", "2\n"),
                ("pids.max", "64\n"),
            ],
        );
        let usage = Cgroup::open(&fake.host, Path::new("env")).usage().unwrap();
        assert_eq!(
            usage,
            Usage {
                cpu: Some(CpuUsage {
                    usage_usec: 1500,
                    user_usec: 1000,
                    system_usec: 500
                }),
                memory: Some(MemoryUsage {
                    current: 4096,
                    peak: Some(8192),
                    limit: None
                }),
                pids: Some(PidsUsage {
                    current: 2,
                    limit: Some(64)
                }),
            }
        );
    }

    #[test]
    fn hybrid_reads_the_v1_leaves_and_leaves_out_what_nothing_accounts_for() {
        let fake = FakeHost::hybrid(&["memory", "pids"]);
        fake.make("unified/env", &[("cpu.stat", CPU_STAT)]);
        fake.make(
            "pids/env",
            &[("pids.current", "1\n"), ("pids.max", "max\n")],
        );
        let cgroup = Cgroup::open(&fake.host, Path::new("env"));
        let usage = cgroup.usage().unwrap();
        assert_eq!(usage.cpu.unwrap().usage_usec, 1500);
        // The memory hierarchy has no leaf: no limit asked for one.
        assert_eq!(usage.memory, None);
        assert_eq!(
            usage.pids,
            Some(PidsUsage {
                current: 1,
                limit: None
            })
        );

        fake.make(
            "memory/env",
            &[
                ("memory.usage_in_bytes", "100\n"),
                ("memory.max_usage_in_bytes", "200\n"),
                ("memory.limit_in_bytes", "134217728\n"),
            ],
        );
        let memory = cgroup.usage().unwrap().memory.unwrap();
        assert_eq!((memory.current, memory.peak), (100, Some(200)));
        assert_eq!(memory.limit, Some(134_217_728));
    }

    #[test]
    fn a_malformed_file_is_named() {
        let fake = FakeHost::pure_v2("pids\n");
        fake.make("env", &[("pids.current", "many\n")]);
        let err = Cgroup::open(&fake.host, Path::new("env"))
            .usage()
            .unwrap_err();
        assert!(matches!(err, CgroupError::Malformed { ref path, .. }
            if path.ends_with("env/pids.current")));
    }
}
