//! The container process's identity and limits, applied by the init just before `execve`:
//! rlimits, user and groups, capabilities, no_new_privs, umask, working directory, and the
//! lookup of `args[0]` in the container's `PATH`.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};

use crate::spec::{Capabilities, ProcessSpec};

/// The `PATH` runc uses when the process environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Finds the executable for `args[0]` the way `execvp` would, with the container's `PATH`.
/// An absolute or relative path with a slash is used as given.
pub fn resolve_executable(process: &ProcessSpec) -> Result<PathBuf, String> {
    let program = process
        .args
        .first()
        .ok_or_else(|| "process.args is empty".to_string())?;
    if program.contains('/') {
        let path = if Path::new(program).is_absolute() {
            PathBuf::from(program)
        } else {
            process.cwd.join(program)
        };
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!("{program}: no such executable file"))
        };
    }
    let search = process
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    search
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("{program:?}: executable file not found in $PATH"))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Applies every rlimit; raising a hard limit needs CAP_SYS_RESOURCE, so this runs while the
/// init still has its capabilities.
pub fn apply_rlimits(process: &ProcessSpec) -> Result<(), String> {
    for limit in &process.rlimits {
        crate::sys::set_rlimit(limit.resource, limit.soft, limit.hard).map_err(|e| {
            format!(
                "setting {} to soft {} hard {}: {e}",
                limit.name, limit.soft, limit.hard
            )
        })?;
    }
    Ok(())
}

/// Becomes uid and gid 0 of the user namespace this process is in, keeping its capabilities
/// there (they are only cleared when root of that namespace gives up being root).
pub fn become_root() -> Result<(), String> {
    let (uid, gid) = (Uid::from_raw(0), Gid::from_raw(0));
    setresgid(gid, gid, gid).map_err(|e| format!("setresgid 0: {e}"))?;
    setresuid(uid, uid, uid).map_err(|e| format!("setresuid 0: {e}"))
}

/// Becomes the process's user, keeping exactly the capabilities the spec grants.
pub fn become_user(process: &ProcessSpec) -> Result<(), String> {
    let caps = &process.capabilities;
    // Drop from the bounding set first: it needs CAP_SETPCAP, which setresuid may take away.
    for cap in caps::all() {
        if !caps.bounding.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
        }
    }
    let groups: Vec<Gid> = process
        .additional_gids
        .iter()
        .copied()
        .map(Gid::from_raw)
        .collect();
    setgroups(&groups).map_err(|e| format!("setgroups {:?}: {e}", process.additional_gids))?;
    let gid = Gid::from_raw(process.gid);
    setresgid(gid, gid, gid).map_err(|e| format!("setresgid {}: {e}", process.gid))?;
    // Keep the permitted set across the uid change; the sets are then cut to the spec's.
    nix::sys::prctl::set_keepcaps(true).map_err(|e| format!("PR_SET_KEEPCAPS: {e}"))?;
    let uid = Uid::from_raw(process.uid);
    setresuid(uid, uid, uid).map_err(|e| format!("setresuid {}: {e}", process.uid))?;
    set_capabilities(caps)
}

fn set_capabilities(caps: &Capabilities) -> Result<(), String> {
    let set = |which: CapSet, wanted: &caps::CapsHashSet| {
        caps::set(None, which, wanted).map_err(|e| format!("setting {which:?} capabilities: {e}"))
    };
    // capset(2) wants effective ⊆ permitted after every call: shrink effective first.
    set(CapSet::Effective, &caps.effective)?;
    set(CapSet::Permitted, &caps.permitted)?;
    set(CapSet::Inheritable, &caps.inheritable)?;
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    // The kernel only lets a capability be ambient when it is permitted and inheritable.
    // runc's default spec lists ambient capabilities without inheritable ones and runc skips
    // them; do the same rather than refuse every such bundle.
    for cap in ambient_raisable(caps) {
        caps::raise(None, CapSet::Ambient, cap)
            .map_err(|e| format!("raising ambient {cap}: {e}"))?;
    }
    Ok(())
}

fn ambient_raisable(caps: &Capabilities) -> impl Iterator<Item = Capability> + '_ {
    caps.ambient
        .iter()
        .copied()
        .filter(|cap| caps.permitted.contains(cap) && caps.inheritable.contains(cap))
}

/// The last steps before `execve`: umask, working directory, no_new_privs.
pub fn finish(process: &ProcessSpec) -> Result<(), String> {
    if let Some(mask) = process.umask {
        umask(Mode::from_bits_truncate(mask));
    }
    nix::unistd::chdir(&process.cwd)
        .map_err(|e| format!("chdir to {}: {e}", process.cwd.display()))?;
    if process.no_new_privileges {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    }
    Ok(())
}

/// Replaces the init with the container's process; returns only on failure.
pub fn exec(path: &Path, process: &ProcessSpec) -> String {
    match CString::new(path.as_os_str().as_bytes()) {
        Ok(path) => exec_path(&path, process),
        Err(_) => format!("{} contains a NUL byte", path.display()),
    }
}

/// [`exec`] with the path already a C string (what a forked child can use without allocating
/// the path again).
pub fn exec_path(path: &CStr, process: &ProcessSpec) -> String {
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let args: Vec<CString> = process.args.iter().map(|a| to_c(a)).collect();
    let env: Vec<CString> = process.env.iter().map(|e| to_c(e)).collect();
    match nix::unistd::execve(path, &args, &env) {
        Err(e) => format!("exec {}: {e}", path.to_string_lossy()),
        Ok(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::tests::minimal_spec;

    fn process(args: &[&str], env: &[&str]) -> ProcessSpec {
        let mut p = minimal_spec(vec![], vec![]).process;
        p.args = args.iter().map(|s| s.to_string()).collect();
        p.env = env.iter().map(|s| s.to_string()).collect();
        p
    }

    #[test]
    fn a_bare_name_is_found_in_path() {
        let found = resolve_executable(&process(&["sh"], &["PATH=/nonexistent:/bin:/usr/bin"]));
        assert!(found.unwrap().ends_with("sh"));
    }

    #[test]
    fn an_absolute_program_needs_no_path() {
        let found = resolve_executable(&process(&["/bin/sh"], &[])).unwrap();
        assert_eq!(found, Path::new("/bin/sh"));
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = resolve_executable(&process(&["no-such-prog"], &["PATH=/bin"])).unwrap_err();
        assert_eq!(err, "\"no-such-prog\": executable file not found in $PATH");
        let err = resolve_executable(&process(&["/no/such"], &[])).unwrap_err();
        assert!(err.contains("/no/such"), "{err}");
    }
}
