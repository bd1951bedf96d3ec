//! `linux.seccomp` → a checked [`Seccomp`] profile. Everything the filter compiler would trip
//! over is caught here with the field's name; what runlambda does not implement (a listener for
//! `SCMP_ACT_NOTIFY`, tracers) is an error rather than a filter that quietly does less.

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSyscall};

use super::FieldError;
use crate::spec::{ArgCondition, Seccomp, SeccompAction, SeccompFlag, SyscallRule};

/// The errno of `SCMP_ACT_ERRNO` when the profile gives none (runc's choice).
const DEFAULT_ERRNO: u16 = libc::EPERM as u16;
/// The kernel returns errnos up to MAX_ERRNO from a filter; larger data would not read back
/// as an error in the process.
const MAX_ERRNO: u32 = 4095;
/// Syscalls take at most six arguments.
const MAX_ARG_INDEX: usize = 5;

pub(super) fn convert(seccomp: &LinuxSeccomp) -> Result<Seccomp, FieldError> {
    if seccomp.listener_path().is_some() {
        return Err(FieldError::unsupported("linux.seccomp.listenerPath"));
    }
    if seccomp
        .listener_metadata()
        .as_ref()
        .is_some_and(|m| !m.is_empty())
    {
        return Err(FieldError::unsupported("linux.seccomp.listenerMetadata"));
    }
    let default_action = action(
        "linux.seccomp.defaultAction",
        seccomp.default_action(),
        "linux.seccomp.defaultErrnoRet",
        seccomp.default_errno_ret(),
    )?;
    let flags = seccomp
        .flags()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, flag)| match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => Ok(SeccompFlag::Tsync),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => Ok(SeccompFlag::Log),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => Ok(SeccompFlag::SpecAllow),
            // Only meaningful with a notify listener, which runlambda does not have.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => Err(
                FieldError::unsupported(format!("linux.seccomp.flags[{i}] ({flag})")),
            ),
        })
        .collect::<Result<_, _>>()?;
    let rules = seccomp
        .syscalls()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, syscall)| rule(i, syscall))
        .collect::<Result<_, _>>()?;
    Ok(Seccomp {
        default_action,
        architectures: seccomp.architectures().clone().unwrap_or_default(),
        flags,
        rules,
    })
}

fn rule(index: usize, syscall: &LinuxSyscall) -> Result<SyscallRule, FieldError> {
    let field = format!("linux.seccomp.syscalls[{index}]");
    if syscall.names().is_empty() {
        return Err(FieldError::missing(format!("{field}.names")));
    }
    if let Some(empty) = syscall.names().iter().position(|name| name.is_empty()) {
        return Err(FieldError::invalid(
            format!("{field}.names[{empty}]"),
            "",
            "is not a syscall name",
        ));
    }
    let action = action(
        &format!("{field}.action"),
        syscall.action(),
        &format!("{field}.errnoRet"),
        syscall.errno_ret(),
    )?;
    let args = syscall
        .args()
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, arg)| {
            if arg.index() > MAX_ARG_INDEX {
                return Err(FieldError::invalid(
                    format!("{field}.args[{j}].index"),
                    arg.index(),
                    format!("syscalls have arguments 0 to {MAX_ARG_INDEX}"),
                ));
            }
            Ok(ArgCondition {
                index: arg.index() as u32,
                op: arg.op(),
                value: arg.value(),
                value_two: arg.value_two().unwrap_or(0),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(SyscallRule {
        index,
        names: syscall.names().clone(),
        action,
        args,
    })
}

/// An action and its errno; `field` and `errno_field` name where they came from.
fn action(
    field: &str,
    action: LinuxSeccompAction,
    errno_field: &str,
    errno: Option<u32>,
) -> Result<SeccompAction, FieldError> {
    if errno.is_some() && action != LinuxSeccompAction::ScmpActErrno {
        return Err(FieldError::invalid(
            errno_field,
            errno.unwrap_or_default(),
            format!("only SCMP_ACT_ERRNO returns an errno, not {action}"),
        ));
    }
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => match errno {
            None => SeccompAction::Errno(DEFAULT_ERRNO),
            Some(errno @ 0..=MAX_ERRNO) => SeccompAction::Errno(errno as u16),
            Some(errno) => {
                return Err(FieldError::invalid(
                    errno_field,
                    errno,
                    format!("an errno is at most {MAX_ERRNO}"),
                ))
            }
        },
        // libseccomp's SCMP_ACT_KILL is the thread-killing action.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        // Both hand the syscall to another process (a tracer, a seccomp agent) that runlambda
        // does not provide: the filter would stop the process for nobody.
        LinuxSeccompAction::ScmpActTrace | LinuxSeccompAction::ScmpActNotify => {
            return Err(FieldError::unsupported(format!("{field} ({action})")))
        }
    })
}

/// The action names [`convert`] accepts, for `features`.
pub(super) const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_LOG",
];

/// The filter flags [`convert`] accepts, for `features`.
pub(super) const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Arch, LinuxSeccompOperator};

    fn parse(json: &str) -> Result<Seccomp, FieldError> {
        convert(&serde_json::from_str(json).unwrap())
    }

    fn error(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    #[test]
    fn a_profile_with_rules_and_arguments_is_converted() {
        let profile = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
                "syscalls": [
                  {"names": ["read", "write", "no_such_call_yet"], "action": "SCMP_ACT_ALLOW"},
                  {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                  {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                   "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                            {"index": 1, "value": 255, "valueTwo": 3, "op": "SCMP_CMP_MASKED_EQ"}]},
                  {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
                  {"names": ["uname"], "action": "SCMP_ACT_ERRNO"}
                ]}"#,
        )
        .unwrap();
        assert_eq!(profile.default_action, SeccompAction::Errno(38));
        assert_eq!(
            profile.architectures,
            [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        assert_eq!(profile.flags, [SeccompFlag::Log, SeccompFlag::Tsync]);
        assert_eq!(profile.rules.len(), 5);
        assert_eq!(
            profile.rules[0].names,
            ["read", "write", "no_such_call_yet"]
        );
        assert_eq!(profile.rules[1].action, SeccompAction::Errno(13));
        assert_eq!(
            profile.rules[2].args,
            [
                ArgCondition {
                    index: 0,
                    op: LinuxSeccompOperator::ScmpCmpEq,
                    value: 8,
                    value_two: 0
                },
                ArgCondition {
                    index: 1,
                    op: LinuxSeccompOperator::ScmpCmpMaskedEq,
                    value: 255,
                    value_two: 3
                },
            ]
        );
        assert_eq!(profile.rules[3].action, SeccompAction::KillThread);
        assert_eq!(
            (profile.rules[4].index, profile.rules[4].action),
            (4, SeccompAction::Errno(1)),
            "errnoRet defaults to EPERM"
        );
    }

    #[test]
    fn unsupported_parts_are_named() {
        for (json, message) in [
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}"#,
                "linux.seccomp.listenerPath is set but not supported",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
                "linux.seccomp.defaultAction (SCMP_ACT_NOTIFY) is set but not supported",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["ptrace"], "action": "SCMP_ACT_TRACE"}]}"#,
                "linux.seccomp.syscalls[1].action (SCMP_ACT_TRACE) is set but not supported",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW",
                    "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
                "linux.seccomp.flags[1] (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) is set but not",
            ),
        ] {
            let text = error(json);
            assert!(text.starts_with(message), "{text}");
        }
    }

    #[test]
    fn invalid_rules_are_named() {
        for (json, message) in [
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": [], "action": "SCMP_ACT_ERRNO"}]}"#,
                "linux.seccomp.syscalls[0].names is required",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["read"], "action": "SCMP_ACT_ERRNO"},
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                     "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
                "linux.seccomp.syscalls[1].args[0].index = 6: syscalls have arguments 0 to 5",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                    {"names": ["mkdir"], "action": "SCMP_ACT_KILL", "errnoRet": 1}]}"#,
                "linux.seccomp.syscalls[0].errnoRet = 1: only SCMP_ACT_ERRNO returns an errno, \
                 not SCMP_ACT_KILL",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}"#,
                "linux.seccomp.defaultErrnoRet = 70000: an errno is at most 4095",
            ),
        ] {
            assert_eq!(error(json), message);
        }
    }
}
