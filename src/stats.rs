//! What `ps` and `events` print, in runc's shapes: a container's processes as a `ps -ef`-like
//! table read from `/proc`, and its cgroup counters as runc's `stats` event JSON, which go-runc
//! decodes.

use std::fs;

use serde::Serialize;

use crate::cgroup::Usage;

/// The `ps` table for `pids`: `UID PID PPID CMD`, the command line as `ps` shows it (the name
/// in brackets for a process without one). A process that exits meanwhile is left out.
pub fn ps_table(pids: &[i32]) -> String {
    let mut table = format!("{:<8} {:>8} {:>8}  {}\n", "UID", "PID", "PPID", "CMD");
    for &pid in pids {
        if let Some((uid, ppid, cmd)) = proc_entry(pid) {
            table += &format!("{uid:<8} {pid:>8} {ppid:>8}  {cmd}\n");
        }
    }
    table
}

/// Real uid, parent pid and command line of `pid`, from `/proc`.
fn proc_entry(pid: i32) -> Option<(u32, i32, String)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    let uid = field("Uid:")?.parse().ok()?;
    let ppid = field("PPid:")?.parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    let cmd = if args.is_empty() {
        format!("[{}]", field("Name:")?)
    } else {
        args.join(" ")
    };
    Some((uid, ppid, cmd))
}

/// runc's event envelope.
#[derive(Debug, Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    data: Stats,
}

/// runc's `types.Stats`, the parts runlambda measures; absent parts have no controller.
#[derive(Debug, Serialize)]
struct Stats {
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pids: Option<Pids>,
}

#[derive(Debug, Serialize)]
struct Cpu {
    usage: CpuTime,
}

/// Nanoseconds, as runc reports them.
#[derive(Debug, Serialize)]
struct CpuTime {
    total: u64,
    kernel: u64,
    user: u64,
}

#[derive(Debug, Serialize)]
struct Memory {
    usage: MemoryEntry,
}

#[derive(Debug, Serialize)]
struct MemoryEntry {
    usage: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<u64>,
    /// runc reports "unlimited" as the largest u64.
    limit: u64,
}

#[derive(Debug, Serialize)]
struct Pids {
    current: u64,
    /// runc reports "unlimited" as 0.
    limit: u64,
}

/// One `{"type":"stats","id":…,"data":{…}}` line for container `id`.
pub fn stats_event(id: &str, usage: &Usage) -> String {
    let event = Event {
        kind: "stats",
        id,
        data: Stats {
            cpu: usage.cpu.as_ref().map(|cpu| Cpu {
                usage: CpuTime {
                    total: cpu.usage_usec.saturating_mul(1000),
                    kernel: cpu.system_usec.saturating_mul(1000),
                    user: cpu.user_usec.saturating_mul(1000),
                },
            }),
            memory: usage.memory.as_ref().map(|memory| Memory {
                usage: MemoryEntry {
                    usage: memory.current,
                    max: memory.peak,
                    limit: memory.limit.unwrap_or(u64::MAX),
                },
            }),
            pids: usage.pids.as_ref().map(|pids| Pids {
                current: pids.current,
                limit: pids.limit.unwrap_or(0),
            }),
        },
    };
    serde_json::to_string(&event).expect("stats serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{CpuUsage, PidsUsage};

    #[test]
    fn stats_have_runcs_shape_and_units() {
        let usage = Usage {
            cpu: Some(CpuUsage {
                usage_usec: 3,
                user_usec: 2,
                system_usec: 1,
            }),
            memory: None,
            pids: Some(PidsUsage {
                current: 4,
                limit: None,
            }),
        };
        assert_eq!(
            stats_event("c1", &usage),
            r#"{"type":"stats","id":"c1","data":{"cpu":{"usage":{"total":3000,"kernel":1000,"user":2000}},"pids":{"current":4,"limit":0}}}"#
        );
    }

    #[test]
    fn ps_table_lists_this_process() {
        let me = std::process::id() as i32;
        let table = ps_table(&[me, i32::MAX]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(lines[0].starts_with("UID"));
        let fields: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(fields[1], me.to_string());
        assert_eq!(fields[2], std::os::unix::process::parent_id().to_string());
    }
}
