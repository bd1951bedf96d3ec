//! Seccomp filters: a checked profile ([`Seccomp`]) compiled to a BPF program with libseccomp
//! in the runtime's own process — `create` compiles it while the init builds the environment
//! and hands it over on their channel — and loaded with a single `seccomp(2)` call by the
//! process it confines: the last thing that process does before `execve`, so none of the
//! runtime's own setup runs under the container's rules.
//!
//! The compilation follows runc's, so that profiles written for docker, podman and runc mean
//! the same here: syscall names unknown to libseccomp are skipped (profiles name syscalls newer
//! than the library), a rule whose action is the default action is dropped (libseccomp refuses
//! it, and it would change nothing), and a rule that compares one argument more than once is
//! added as one rule per comparison (libseccomp cannot AND two tests of one argument).

use std::io::{self, Read, Seek};

use base64::Engine;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{Arch, LinuxSeccompOperator};
use serde::{Deserialize, Serialize};

use crate::spec::{Seccomp, SeccompAction, SeccompFlag, SyscallRule};

/// Why a profile could not be compiled; each names the part of `linux.seccomp` concerned.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot create a seccomp filter")]
    Create(#[source] libseccomp::error::SeccompError),
    #[error("linux.seccomp.architectures: cannot add {arch}")]
    Arch {
        arch: Arch,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("linux.seccomp.syscalls[{index}]: cannot add the rule for {name}")]
    Rule {
        index: usize,
        name: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    #[error("cannot export the seccomp filter as BPF")]
    Export(#[source] libseccomp::error::SeccompError),
    #[error("cannot read back the seccomp filter")]
    Read(#[source] io::Error),
}

/// A compiled filter, ready to load. It crosses the channel to the init as the program's
/// bytes in base64: the largest program the kernel loads (4,096 instructions) fits in one
/// message.
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "Program", try_from = "Program")]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
}

/// A [`Filter`] as it travels.
#[derive(Serialize, Deserialize)]
struct Program {
    bpf: String,
    flags: libc::c_ulong,
}

impl From<Filter> for Program {
    fn from(filter: Filter) -> Program {
        let bytes: Vec<u8> = filter
            .program
            .iter()
            .flat_map(|insn| {
                let mut bytes = [0u8; 8];
                bytes[..2].copy_from_slice(&insn.code.to_ne_bytes());
                bytes[2] = insn.jt;
                bytes[3] = insn.jf;
                bytes[4..].copy_from_slice(&insn.k.to_ne_bytes());
                bytes
            })
            .collect();
        Program {
            bpf: base64::engine::general_purpose::STANDARD.encode(bytes),
            flags: filter.flags,
        }
    }
}

impl TryFrom<Program> for Filter {
    type Error = String;

    fn try_from(program: Program) -> Result<Filter, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&program.bpf)
            .map_err(|e| format!("seccomp program: {e}"))?;
        if bytes.len() % std::mem::size_of::<libc::sock_filter>() != 0 {
            return Err(format!(
                "seccomp program: {} bytes is not a whole number of instructions",
                bytes.len()
            ));
        }
        Ok(Filter {
            program: instructions(&bytes),
            flags: program.flags,
        })
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("instructions", &self.program.len())
            .field("flags", &self.flags)
            .finish()
    }
}

impl Filter {
    /// Compiles `profile` for this host's kernel.
    pub fn compile(profile: &Seccomp) -> Result<Filter, SeccompError> {
        let mut ctx =
            ScmpFilterContext::new(action(profile.default_action)).map_err(SeccompError::Create)?;
        // A binary tree on the syscall number instead of a chain of tests: a runtime's syscalls
        // take O(log n) tests, and the kernel, which runs the filter for every syscall number
        // when a process loads it (to cache the constant answers), loads it in half the time.
        ctx.set_ctl_optimize(2).map_err(SeccompError::Create)?;
        for &arch in &profile.architectures {
            let arch_error = |source| SeccompError::Arch { arch, source };
            // A new filter already holds the native architecture; adding it twice is an error.
            if !ctx.is_arch_present(scmp_arch(arch)).map_err(arch_error)? {
                ctx.add_arch(scmp_arch(arch)).map_err(arch_error)?;
            }
        }
        for rule in &profile.rules {
            if rule.action == profile.default_action {
                continue;
            }
            for name in &rule.names {
                let Ok(syscall) = ScmpSyscall::from_name(name) else {
                    continue;
                };
                add_rule(&mut ctx, syscall, rule).map_err(|source| SeccompError::Rule {
                    index: rule.index,
                    name: name.clone(),
                    source,
                })?;
            }
        }
        let flags = profile.flags.iter().fold(0, |flags, flag| {
            flags
                | match flag {
                    SeccompFlag::Tsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
                    SeccompFlag::Log => libc::SECCOMP_FILTER_FLAG_LOG,
                    SeccompFlag::SpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
                }
        });
        Ok(Filter {
            program: export(&ctx)?,
            flags,
        })
    }

    /// Confines the calling thread (and what it execs) to the filter. Needs no_new_privs, or
    /// CAP_SYS_ADMIN in the process's user namespace.
    pub fn load(&self) -> io::Result<()> {
        crate::sys::seccomp_set_filter(&self.program, self.flags)
    }
}

fn add_rule(
    ctx: &mut ScmpFilterContext,
    syscall: ScmpSyscall,
    rule: &SyscallRule,
) -> Result<(), libseccomp::error::SeccompError> {
    let action = action(rule.action);
    let conditions: Vec<ScmpArgCompare> = rule
        .args
        .iter()
        .map(|arg| {
            let op = match arg.op {
                LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                // config.json's value is the mask, valueTwo what the masked argument equals.
                LinuxSeccompOperator::ScmpCmpMaskedEq => {
                    return ScmpArgCompare::new(
                        arg.index,
                        ScmpCompareOp::MaskedEqual(arg.value),
                        arg.value_two,
                    )
                }
            };
            ScmpArgCompare::new(arg.index, op, arg.value)
        })
        .collect();
    let repeats_an_argument = rule
        .args
        .iter()
        .enumerate()
        .any(|(i, arg)| rule.args[..i].iter().any(|a| a.index == arg.index));
    if conditions.is_empty() {
        ctx.add_rule(action, syscall)?;
    } else if repeats_an_argument {
        for condition in conditions {
            ctx.add_rule_conditional(action, syscall, &[condition])?;
        }
    } else {
        ctx.add_rule_conditional(action, syscall, &conditions)?;
    }
    Ok(())
}

/// The program as the kernel takes it. libseccomp 2.5 (Debian 12's) exports only to a file
/// descriptor: a memfd holds it.
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"runlambda-seccomp", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| SeccompError::Read(e.into()))?;
    ctx.export_bpf(&fd).map_err(SeccompError::Export)?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .map_err(SeccompError::Read)?;
    Ok(instructions(&bytes))
}

/// The instructions of a program of whole instructions, in the kernel's layout.
fn instructions(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(std::mem::size_of::<libc::sock_filter>())
        .map(|insn| libc::sock_filter {
            code: u16::from_ne_bytes([insn[0], insn[1]]),
            jt: insn[2],
            jf: insn[3],
            k: u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]),
        })
        .collect()
}

fn action(action: SeccompAction) -> ScmpAction {
    match action {
        SeccompAction::Allow => ScmpAction::Allow,
        SeccompAction::Errno(errno) => ScmpAction::Errno(errno.into()),
        SeccompAction::KillThread => ScmpAction::KillThread,
        SeccompAction::KillProcess => ScmpAction::KillProcess,
        SeccompAction::Trap => ScmpAction::Trap,
        SeccompAction::Log => ScmpAction::Log,
    }
}

/// Every architecture config.json can name, in libseccomp's terms.
fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// The architecture names a profile may list, for `features`.
pub fn architectures() -> Vec<String> {
    use Arch::*;
    [
        ScmpArchX86,
        ScmpArchX86_64,
        ScmpArchX32,
        ScmpArchArm,
        ScmpArchAarch64,
        ScmpArchMips,
        ScmpArchMips64,
        ScmpArchMips64n32,
        ScmpArchMipsel,
        ScmpArchMipsel64,
        ScmpArchMipsel64n32,
        ScmpArchPpc,
        ScmpArchPpc64,
        ScmpArchPpc64le,
        ScmpArchS390,
        ScmpArchS390x,
        ScmpArchParisc,
        ScmpArchParisc64,
        ScmpArchRiscv64,
        ScmpArchLoongarch64,
        ScmpArchM68k,
        ScmpArchSh,
        ScmpArchSheb,
    ]
    .iter()
    .map(|arch| arch.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ArgCondition;

    fn profile(rules: Vec<SyscallRule>) -> Seccomp {
        Seccomp {
            default_action: SeccompAction::Errno(libc::ENOSYS as u16),
            architectures: vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            flags: vec![SeccompFlag::Log],
            rules,
        }
    }

    fn rule(index: usize, names: &[&str], action: SeccompAction) -> SyscallRule {
        SyscallRule {
            index,
            names: names.iter().map(|n| n.to_string()).collect(),
            action,
            args: vec![],
        }
    }

    #[test]
    fn unknown_names_and_default_actions_are_skipped() {
        let filter = Filter::compile(&profile(vec![
            rule(0, &["read", "no_such_syscall_yet"], SeccompAction::Allow),
            rule(1, &["mkdir"], SeccompAction::Errno(libc::ENOSYS as u16)),
        ]))
        .unwrap();
        assert!(!filter.program.is_empty());
        assert_eq!(filter.flags, libc::SECCOMP_FILTER_FLAG_LOG);
    }

    #[test]
    fn repeated_arguments_become_alternatives() {
        let mut personality = rule(0, &["personality"], SeccompAction::Allow);
        personality.args = [0, 8]
            .iter()
            .map(|&value| ArgCondition {
                index: 0,
                op: LinuxSeccompOperator::ScmpCmpEq,
                value,
                value_two: 0,
            })
            .collect();
        Filter::compile(&profile(vec![personality])).unwrap();
    }

    #[test]
    fn a_filter_crosses_the_channel_unchanged() {
        let filter = Filter::compile(&profile(vec![rule(
            0,
            &["read", "write"],
            SeccompAction::Allow,
        )]))
        .unwrap();
        let json = serde_json::to_vec(&filter).unwrap();
        let back: Filter = serde_json::from_slice(&json).unwrap();
        let fields = |f: &Filter| {
            let insns: Vec<_> = f
                .program
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect();
            (insns, f.flags)
        };
        assert_eq!(fields(&back), fields(&filter));
        // The kernel's longest program still fits in one channel message.
        let longest = Filter {
            program: vec![filter.program[0]; 4096],
            flags: 0,
        };
        assert!(serde_json::to_vec(&longest).unwrap().len() < super::super::channel::MAX_MESSAGE);
    }

    #[test]
    fn a_program_cut_mid_instruction_is_refused() {
        let err = serde_json::from_str::<Filter>(r#"{"bpf":"AAAA","flags":0}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("not a whole number of instructions"),
            "{err}"
        );
    }

    #[test]
    fn features_name_the_architectures_as_config_json_does() {
        let arches = architectures();
        assert!(
            arches.contains(&"SCMP_ARCH_X86_64".to_string()),
            "{arches:?}"
        );
        assert!(
            arches.contains(&"SCMP_ARCH_MIPS64N32".to_string()),
            "{arches:?}"
        );
    }
}
