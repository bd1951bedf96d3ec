//! `process` of config.json → [`ProcessSpec`]: arguments, environment, working directory, user,
//! rlimits, capabilities, the terminal and the few process attributes runlambda applies.

use std::collections::HashSet;

use oci_spec::runtime::{
    Capabilities as OciCapabilities, LinuxCapabilities, PosixRlimitType, Process,
};

use super::FieldError;
use crate::spec::{Capabilities, ConsoleSize, ProcessSpec, Rlimit};

/// Converts `process`, refusing the attributes runlambda does not apply.
pub(super) fn convert(process: &Process) -> Result<ProcessSpec, FieldError> {
    reject_unsupported(process)?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(FieldError::missing("process.args"));
    }
    for (i, arg) in args.iter().enumerate() {
        if arg.contains('\0') {
            return Err(FieldError::invalid(
                format!("process.args[{i}]"),
                arg,
                "contains a NUL byte",
            ));
        }
    }
    let env = process.env().clone().unwrap_or_default();
    for (i, entry) in env.iter().enumerate() {
        check_env(entry)
            .map_err(|reason| FieldError::invalid(format!("process.env[{i}]"), entry, reason))?;
    }
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(FieldError::invalid(
            "process.cwd",
            cwd,
            "is not an absolute path",
        ));
    }
    let user = process.user();
    if let Some(umask) = user.umask().filter(|umask| *umask > 0o777) {
        return Err(FieldError::invalid(
            "process.user.umask",
            umask,
            "is not a permission mask (at most 0o777)",
        ));
    }
    if let Some(adj) = process
        .oom_score_adj()
        .filter(|adj| !(-1000..=1000).contains(adj))
    {
        return Err(FieldError::invalid(
            "process.oomScoreAdj",
            adj,
            "is outside -1000..=1000",
        ));
    }
    Ok(ProcessSpec {
        args,
        env,
        cwd: cwd.clone(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits: rlimits(process)?,
        capabilities: capabilities(process.capabilities().as_ref())?,
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        oom_score_adj: process.oom_score_adj(),
        terminal: process.terminal().unwrap_or(false),
        console_size: console_size(process)?,
    })
}

/// `process.consoleSize`, which the kernel takes as 16-bit rows and columns. As in runc, a
/// size with a zero in it sets nothing.
fn console_size(process: &Process) -> Result<Option<ConsoleSize>, FieldError> {
    let Some(size) = process.console_size() else {
        return Ok(None);
    };
    let dimension = |field: &str, value: u64| {
        u16::try_from(value).map_err(|_| {
            FieldError::invalid(
                format!("process.consoleSize.{field}"),
                value,
                "does not fit a terminal (at most 65535)",
            )
        })
    };
    let rows = dimension("height", size.height())?;
    let cols = dimension("width", size.width())?;
    Ok((rows != 0 && cols != 0).then_some(ConsoleSize { rows, cols }))
}

fn reject_unsupported(process: &Process) -> Result<(), FieldError> {
    let non_empty = |text: &Option<String>| text.as_ref().is_some_and(|text| !text.is_empty());
    let set = [
        // Windows-only fields: on Linux they would be silently meaningless.
        ("process.commandLine", non_empty(process.command_line())),
        (
            "process.user.username",
            non_empty(process.user().username()),
        ),
        (
            "process.apparmorProfile",
            non_empty(process.apparmor_profile()),
        ),
        ("process.selinuxLabel", non_empty(process.selinux_label())),
        ("process.ioPriority", process.io_priority().is_some()),
        ("process.scheduler", process.scheduler().is_some()),
        (
            "process.execCPUAffinity",
            process.exec_cpu_affinity().is_some(),
        ),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(FieldError::unsupported(*field)),
        None => Ok(()),
    }
}

/// An environment entry must be `NAME=value` with a non-empty name, as runc requires, and
/// without NUL bytes, which `execve` cannot carry.
fn check_env(entry: &str) -> Result<(), &'static str> {
    match entry.split_once('=') {
        _ if entry.contains('\0') => Err("contains a NUL byte"),
        None => Err("is not NAME=value"),
        Some(("", _)) => Err("has an empty name"),
        Some(_) => Ok(()),
    }
}

/// `process.rlimits`; oci-spec has already refused unknown `RLIMIT_*` names.
fn rlimits(process: &Process) -> Result<Vec<Rlimit>, FieldError> {
    let mut seen = HashSet::new();
    let mut rlimits = Vec::new();
    for limit in process.rlimits().iter().flatten() {
        let (resource, name) = rlimit_resource(limit.typ());
        if !seen.insert(resource) {
            return Err(FieldError::invalid(
                "process.rlimits",
                name,
                "appears more than once",
            ));
        }
        if limit.soft() > limit.hard() {
            return Err(FieldError::RlimitSoftAboveHard {
                name,
                soft: limit.soft(),
                hard: limit.hard(),
            });
        }
        rlimits.push(Rlimit {
            resource,
            name,
            soft: limit.soft(),
            hard: limit.hard(),
        });
    }
    Ok(rlimits)
}

/// The `RLIMIT_*` number and name of an rlimit type.
fn rlimit_resource(typ: PosixRlimitType) -> (u32, &'static str) {
    use nix::sys::resource::Resource as R;
    use PosixRlimitType as T;
    let (resource, name) = match typ {
        T::RlimitCpu => (R::RLIMIT_CPU, "RLIMIT_CPU"),
        T::RlimitFsize => (R::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        T::RlimitData => (R::RLIMIT_DATA, "RLIMIT_DATA"),
        T::RlimitStack => (R::RLIMIT_STACK, "RLIMIT_STACK"),
        T::RlimitCore => (R::RLIMIT_CORE, "RLIMIT_CORE"),
        T::RlimitRss => (R::RLIMIT_RSS, "RLIMIT_RSS"),
        T::RlimitNproc => (R::RLIMIT_NPROC, "RLIMIT_NPROC"),
        T::RlimitNofile => (R::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        T::RlimitMemlock => (R::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        T::RlimitAs => (R::RLIMIT_AS, "RLIMIT_AS"),
        T::RlimitLocks => (R::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        T::RlimitSigpending => (R::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        T::RlimitMsgqueue => (R::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        T::RlimitNice => (R::RLIMIT_NICE, "RLIMIT_NICE"),
        T::RlimitRtprio => (R::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        T::RlimitRttime => (R::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    };
    // The enum's discriminants are the kernel's numbers (unsigned in glibc, signed in musl).
    (resource as u32, name)
}

/// `process.capabilities`; when absent, runc's default set (`CAP_AUDIT_WRITE`, `CAP_KILL`,
/// `CAP_NET_BIND_SERVICE` bounding, effective and permitted; nothing inheritable or ambient).
fn capabilities(given: Option<&LinuxCapabilities>) -> Result<Capabilities, FieldError> {
    let Some(given) = given else {
        let default: caps::CapsHashSet = [
            caps::Capability::CAP_AUDIT_WRITE,
            caps::Capability::CAP_KILL,
            caps::Capability::CAP_NET_BIND_SERVICE,
        ]
        .into();
        return Ok(Capabilities {
            bounding: default.clone(),
            effective: default.clone(),
            permitted: default,
            ..Capabilities::default()
        });
    };
    Ok(Capabilities {
        bounding: capability_set("process.capabilities.bounding", given.bounding())?,
        effective: capability_set("process.capabilities.effective", given.effective())?,
        permitted: capability_set("process.capabilities.permitted", given.permitted())?,
        inheritable: capability_set("process.capabilities.inheritable", given.inheritable())?,
        ambient: capability_set("process.capabilities.ambient", given.ambient())?,
    })
}

/// One capability set, by name through the caps crate, so that a name oci-spec knows but the
/// caps crate (and hence runlambda) cannot apply is refused rather than dropped.
fn capability_set(
    field: &'static str,
    set: &Option<OciCapabilities>,
) -> Result<caps::CapsHashSet, FieldError> {
    set.iter()
        .flatten()
        .map(|capability| {
            // oci-spec displays names without the prefix (`KILL`); caps wants `CAP_KILL`.
            let name = format!("CAP_{capability}");
            name.parse()
                .map_err(|_| FieldError::Capability { field, name })
        })
        .collect()
}
