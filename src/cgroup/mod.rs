//! The cgroup of one environment: a leaf that holds its processes and carries its limits, on a
//! pure cgroup v2 host or on a hybrid one.
//!
//! Membership, freeze, kill and the process list always use the cgroup2 hierarchy; the
//! resource limits go where this host keeps each controller: the cgroup2 leaf on a pure v2
//! host, a leaf of the same relative path in each v1 hierarchy a limit needs on a hybrid host.
//! [`CgroupHost`] finds the hierarchies, `plan` turns [`Limits`] into file writes as plain
//! data, and [`Cgroup`] applies them and drives the leaf afterwards.

mod control;
mod error;
#[cfg(test)]
mod fake;
mod file;
mod host;
mod leaf;
mod plan;
mod usage;

pub mod systemd;

pub use control::Freezer;
pub use error::CgroupError;
pub use host::{CgroupHost, HostKind, MemoryBackend};
pub use leaf::{Cgroup, V1Entry};
pub use usage::{CpuUsage, MemoryUsage, PidsUsage, Usage};

/// Memory that buys one full vCPU in Lambda, in MB.
const ONE_CPU_MB: u64 = 1_769;
/// The cgroup2 default `cpu.weight`: an environment with one vCPU weighs as much as any
/// ordinary cgroup of the host.
const DEFAULT_WEIGHT: u64 = 100;
/// The kernel rejects a CFS quota below one millisecond.
const MIN_QUOTA_US: u64 = 1_000;

/// Resource limits for an environment's cgroup leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Hard memory limit in bytes (`memory.max`, or v1 `memory.limit_in_bytes`).
    pub memory_bytes: Option<u64>,
    /// When set together with `memory_bytes`, swap is forbidden (`memory.swap.max` = 0).
    pub no_swap: bool,
    /// Maximum number of tasks (`pids.max`); `None` = unlimited.
    pub pids: Option<u64>,
    /// CPU weight and bandwidth; `None` leaves the host's defaults.
    pub cpu: Option<CpuLimits>,
}

impl Limits {
    /// The limits of a Lambda function with `mb` MB of memory: that much memory and no swap,
    /// and CPU in proportion, 1,769 MB being one full vCPU both in bandwidth (`cpu.max`) and in
    /// weight against the host's other cgroups.
    pub fn for_function_memory(mb: u32) -> Limits {
        let mb = u64::from(mb);
        Limits {
            memory_bytes: Some(mb << 20),
            no_swap: true,
            pids: None,
            cpu: Some(CpuLimits {
                weight: Some((DEFAULT_WEIGHT * mb / ONE_CPU_MB).clamp(1, 10_000)),
                quota_us: Some((plan::DEFAULT_PERIOD_US * mb / ONE_CPU_MB).max(MIN_QUOTA_US)),
                period_us: Some(plan::DEFAULT_PERIOD_US),
            }),
        }
    }
}

/// CPU share and bandwidth, in cgroup v2 terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuLimits {
    /// `cpu.weight`, 1–10000.
    pub weight: Option<u64>,
    /// `cpu.max` quota in microseconds per period; `None` = "max".
    pub quota_us: Option<u64>,
    /// `cpu.max` period in microseconds (default 100000).
    pub period_us: Option<u64>,
}

impl CpuLimits {
    /// The `cpu.weight` for OCI's v1-style `cpu.shares`, mapping 2–262144 linearly onto
    /// 1–10000 exactly as runc does, so a bundle gets the same weight under either runtime.
    /// Shares outside the kernel's range are clamped to it first.
    pub fn weight_from_shares(shares: u64) -> u64 {
        1 + (shares.clamp(2, 262_144) - 2) * 9_999 / 262_142
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_memory_gives_proportional_cpu() {
        let cases = [
            // mb, weight, quota
            (128, 7, 7_235),
            (1_769, 100, 100_000),
            (10_240, 578, 578_858),
        ];
        for (mb, weight, quota) in cases {
            assert_eq!(
                Limits::for_function_memory(mb),
                Limits {
                    memory_bytes: Some(u64::from(mb) * 1024 * 1024),
                    no_swap: true,
                    pids: None,
                    cpu: Some(CpuLimits {
                        weight: Some(weight),
                        quota_us: Some(quota),
                        period_us: Some(100_000),
                    }),
                },
                "{mb} MB"
            );
        }
    }

    #[test]
    fn tiny_function_memory_stays_within_kernel_bounds() {
        let cpu = Limits::for_function_memory(1).cpu.unwrap();
        assert_eq!(cpu.weight, Some(1));
        assert_eq!(cpu.quota_us, Some(1_000));
    }

    #[test]
    fn shares_clamp_to_the_kernel_range() {
        assert_eq!(CpuLimits::weight_from_shares(0), 1);
        assert_eq!(CpuLimits::weight_from_shares(1 << 40), 10_000);
    }
}
