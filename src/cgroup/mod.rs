//! cgroups of one environment (stub: the cgroup module is being written).

/// Resource limits for an environment's cgroup leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Hard memory limit in bytes (`memory.max`, or v1 `memory.limit_in_bytes`).
    pub memory_bytes: Option<u64>,
    /// When set together with `memory_bytes`, swap is forbidden (`memory.swap.max` = 0).
    pub no_swap: bool,
    /// Maximum number of tasks (`pids.max`); `None` = unlimited.
    pub pids: Option<u64>,
    pub cpu: Option<CpuLimits>,
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
