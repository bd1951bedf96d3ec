//! `--systemd-cgroup`: a `cgroupsPath` of the form `slice:prefix:name` names a systemd unit,
//! and its cgroup sits where systemd would put it (`a-b.slice` lives in `a.slice/a-b.slice`).
//! runlambda does not talk to systemd; it makes the same directory through cgroupfs, so tools
//! that look for the unit's cgroup find it.

use std::path::PathBuf;

/// A `cgroupsPath` that is not `slice:prefix:name`, or a slice name systemd would refuse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cgroupsPath {path:?} with --systemd-cgroup: {reason}")]
pub struct SystemdPathError {
    pub path: String,
    pub reason: &'static str,
}

/// The cgroupfs path, relative to the hierarchy's root, of `slice:prefix:name`.
pub fn expand(cgroups_path: &str) -> Result<PathBuf, SystemdPathError> {
    let err = |reason| SystemdPathError {
        path: cgroups_path.to_string(),
        reason,
    };
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(err("expected slice:prefix:name"));
    };
    if name.is_empty() {
        return Err(err("the name is empty"));
    }
    // runc's default parent, when the path gives none.
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut path = expand_slice(slice).ok_or_else(|| err("invalid slice name"))?;
    // A name that is itself a slice is the unit; otherwise the unit is a scope.
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    path.push(unit);
    Ok(path)
}

/// `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> Option<PathBuf> {
    let stem = slice.strip_suffix(".slice")?;
    if stem == "-" {
        return Some(PathBuf::new());
    }
    if stem.is_empty() || stem.contains('/') || stem.starts_with('-') || stem.ends_with('-') {
        return None;
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return None;
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_nest_the_way_systemd_names_them() {
        let cases = [
            ("system.slice:docker:abc", "system.slice/docker-abc.scope"),
            (
                "kubepods-besteffort-pod12.slice:cri-containerd:c1",
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-c1.scope",
            ),
            (":runlambda:c1", "system.slice/runlambda-c1.scope"),
            ("-.slice::c1", "c1.scope"),
            ("machine.slice::sub.slice", "machine.slice/sub.slice"),
        ];
        for (given, expected) in cases {
            assert_eq!(expand(given).unwrap(), PathBuf::from(expected), "{given}");
        }
    }

    #[test]
    fn malformed_paths_are_refused_with_the_reason() {
        for (given, reason) in [
            ("/plain/path", "expected slice:prefix:name"),
            ("a.slice:b", "expected slice:prefix:name"),
            ("a.slice:b:", "the name is empty"),
            ("notaslice:b:c", "invalid slice name"),
            ("a--b.slice:p:c", "invalid slice name"),
            ("-a.slice:p:c", "invalid slice name"),
        ] {
            let err = expand(given).unwrap_err();
            assert_eq!(err.reason, reason, "{given}");
            assert!(err.to_string().contains(given), "{err}");
        }
    }
}
