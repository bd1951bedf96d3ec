//! systemd socket activation passed through to a container, as runc does it: when runlambda
//! itself was socket-activated (`LISTEN_FDS=M` with `LISTEN_PID` naming runlambda's pid), `create`
//! hands fds 3..3+M-1 to the container's process, ahead of any `--preserve-fds`, and tells the
//! process with `LISTEN_FDS=M` and `LISTEN_PID` set to the pid the process has in the
//! container (runc writes `1`; the init writes the pid it execs with, which is `1` in a new pid
//! namespace and stays right in a joined one).

/// Names of the variables of the protocol (sd_listen_fds(3)).
const LISTEN_FDS: &str = "LISTEN_FDS";
const LISTEN_PID: &str = "LISTEN_PID";

/// How many sockets runlambda was activated with, from its own environment.
pub fn inherited() -> u32 {
    count(
        std::env::var(LISTEN_FDS).ok().as_deref(),
        std::env::var(LISTEN_PID).ok().as_deref(),
        std::process::id(),
    )
}

/// The number of activation fds meant for the process `own_pid`: none when `LISTEN_PID` names
/// another process (the variables were inherited past their target) or either value is not a
/// number, as sd_listen_fds(3) and runc's go-systemd read them.
fn count(listen_fds: Option<&str>, listen_pid: Option<&str>, own_pid: u32) -> u32 {
    let Some(pid) = listen_pid.and_then(|pid| pid.parse::<u32>().ok()) else {
        return 0;
    };
    if pid != own_pid {
        return 0;
    }
    listen_fds.and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// `env` announcing `fds` activation sockets to the process `pid`; any `LISTEN_FDS` or
/// `LISTEN_PID` the bundle set is replaced, so the process cannot see two values of either.
pub fn announce(env: &[String], fds: u32, pid: i32) -> Vec<String> {
    let ours = |entry: &&String| {
        [LISTEN_FDS, LISTEN_PID].iter().any(|name| {
            entry
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('='))
        })
    };
    let mut env: Vec<String> = env.iter().filter(|e| !ours(e)).cloned().collect();
    env.push(format!("{LISTEN_FDS}={fds}"));
    env.push(format!("{LISTEN_PID}={pid}"));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_fds_meant_for_this_process() {
        assert_eq!(count(Some("2"), Some("42"), 42), 2);
        assert_eq!(count(Some("2"), Some("41"), 42), 0);
        assert_eq!(count(Some("2"), None, 42), 0);
        assert_eq!(count(None, Some("42"), 42), 0);
        assert_eq!(count(Some("two"), Some("42"), 42), 0);
        assert_eq!(count(Some("1"), Some("x"), 42), 0);
    }

    #[test]
    fn announcing_replaces_the_bundles_values() {
        let env = [
            "PATH=/bin".to_string(),
            "LISTEN_PID=7".to_string(),
            "LISTEN_FDSX=keep".to_string(),
            "LISTEN_FDS=9".to_string(),
        ];
        assert_eq!(
            announce(&env, 1, 1),
            [
                "PATH=/bin",
                "LISTEN_FDSX=keep",
                "LISTEN_FDS=1",
                "LISTEN_PID=1"
            ]
        );
    }
}
