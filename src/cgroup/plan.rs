//! Limits as plain data: which interface file of which hierarchy gets which value, for the
//! cgroup2 files of a pure v2 host and the v1 files of a hybrid one. No I/O here, so every
//! combination of limits and host is unit-tested; `Cgroup::create` applies the result in order.

use super::host::{Backend, Controller};
use super::{CgroupError, CpuLimits, Limits};

/// The period the kernel uses when none is given, in microseconds.
pub(super) const DEFAULT_PERIOD_US: u64 = 100_000;

/// Which hierarchy's leaf a write goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Unified,
    V1(Controller),
}

/// One value written to one interface file of the leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LimitWrite {
    pub(super) target: Target,
    pub(super) file: &'static str,
    pub(super) value: String,
    /// A file that only exists with an optional kernel feature (swap accounting); when it is
    /// absent there is nothing to limit and the write is skipped.
    pub(super) optional: bool,
}

impl LimitWrite {
    fn new(target: Target, file: &'static str, value: impl ToString) -> Self {
        LimitWrite {
            target,
            file,
            value: value.to_string(),
            optional: false,
        }
    }

    fn optional(self) -> Self {
        LimitWrite {
            optional: true,
            ..self
        }
    }
}

/// The writes that put `limits` on a leaf, given where each controller lives. A limit whose
/// controller is missing is an error, except memory when the operator allowed that.
pub(super) fn limit_writes(
    limits: &Limits,
    backend: impl Fn(Controller) -> Backend,
    allow_unenforced_memory: bool,
) -> Result<Vec<LimitWrite>, CgroupError> {
    let mut writes = Vec::new();
    if let Some(bytes) = limits.memory_bytes {
        memory_writes(
            &mut writes,
            bytes,
            limits.no_swap,
            backend(Controller::Memory),
            allow_unenforced_memory,
        )?;
    }
    pids_writes(&mut writes, limits.pids, backend(Controller::Pids))?;
    if let Some(cpu) = &limits.cpu {
        cpu_writes(&mut writes, cpu, backend(Controller::Cpu))?;
    }
    Ok(writes)
}

/// The controllers this module uses that cgroup2 offers: each ancestor of a leaf enables them,
/// so the leaf gets their files (limits, and `memory.peak` even without a limit).
pub(super) fn unified_controllers(backend: impl Fn(Controller) -> Backend) -> Vec<&'static str> {
    Controller::ALL
        .into_iter()
        .filter(|&controller| backend(controller) == Backend::V2)
        .map(Controller::name)
        .collect()
}

/// What to write to a `cgroup.subtree_control` that reads `current` to enable `wanted`; `None`
/// when all are enabled already. Writing nothing then matters: a cgroup that holds processes
/// (a delegated or namespaced root) refuses any change with EBUSY.
pub(super) fn subtree_control(current: &str, wanted: &[&str]) -> Option<String> {
    let enable: Vec<String> = wanted
        .iter()
        .filter(|name| !current.split_whitespace().any(|c| c == **name))
        .map(|name| format!("+{name}"))
        .collect();
    (!enable.is_empty()).then(|| enable.join(" "))
}

fn memory_writes(
    writes: &mut Vec<LimitWrite>,
    bytes: u64,
    no_swap: bool,
    backend: Backend,
    allow_unenforced_memory: bool,
) -> Result<(), CgroupError> {
    match backend {
        Backend::V2 => {
            writes.push(LimitWrite::new(Target::Unified, "memory.max", bytes));
            if no_swap {
                writes.push(LimitWrite::new(Target::Unified, "memory.swap.max", 0).optional());
            }
        }
        Backend::V1 => {
            let target = Target::V1(Controller::Memory);
            // memsw is memory + swap, so it must be set after (and be at least) the memory limit.
            writes.push(LimitWrite::new(target, "memory.limit_in_bytes", bytes));
            if no_swap {
                writes
                    .push(LimitWrite::new(target, "memory.memsw.limit_in_bytes", bytes).optional());
            }
        }
        Backend::Missing if allow_unenforced_memory => {}
        Backend::Missing => return Err(CgroupError::MemoryUnavailable),
    }
    Ok(())
}

fn pids_writes(
    writes: &mut Vec<LimitWrite>,
    pids: Option<u64>,
    backend: Backend,
) -> Result<(), CgroupError> {
    let value = pids.map_or_else(|| "max".to_owned(), |n| n.to_string());
    match (backend, pids) {
        (Backend::V2, _) => writes.push(LimitWrite::new(Target::Unified, "pids.max", value)),
        (Backend::V1, Some(_)) => {
            writes.push(LimitWrite::new(
                Target::V1(Controller::Pids),
                "pids.max",
                value,
            ));
        }
        // Unlimited is what a fresh v1 leaf already has: no leaf is made for it.
        (Backend::V1, None) | (Backend::Missing, None) => {}
        (Backend::Missing, Some(_)) => {
            return Err(CgroupError::ControllerUnavailable {
                controller: "pids",
                what: "a task limit",
            })
        }
    }
    Ok(())
}

fn cpu_writes(
    writes: &mut Vec<LimitWrite>,
    cpu: &CpuLimits,
    backend: Backend,
) -> Result<(), CgroupError> {
    let bandwidth = cpu.quota_us.is_some() || cpu.period_us.is_some();
    if cpu.weight.is_none() && !bandwidth {
        return Ok(());
    }
    let period = cpu.period_us.unwrap_or(DEFAULT_PERIOD_US);
    match backend {
        Backend::V2 => {
            if let Some(weight) = cpu.weight {
                writes.push(LimitWrite::new(Target::Unified, "cpu.weight", weight));
            }
            if bandwidth {
                let quota = cpu
                    .quota_us
                    .map_or_else(|| "max".to_owned(), |q| q.to_string());
                writes.push(LimitWrite::new(
                    Target::Unified,
                    "cpu.max",
                    format!("{quota} {period}"),
                ));
            }
        }
        Backend::V1 => {
            let target = Target::V1(Controller::Cpu);
            if let Some(weight) = cpu.weight {
                writes.push(LimitWrite::new(
                    target,
                    "cpu.shares",
                    shares_from_weight(weight),
                ));
            }
            if bandwidth {
                // The kernel checks quota against the current period, so the period goes first.
                writes.push(LimitWrite::new(target, "cpu.cfs_period_us", period));
                let quota = cpu
                    .quota_us
                    .map_or_else(|| "-1".to_owned(), |q| q.to_string());
                writes.push(LimitWrite::new(target, "cpu.cfs_quota_us", quota));
            }
        }
        Backend::Missing => {
            return Err(CgroupError::ControllerUnavailable {
                controller: "cpu",
                what: "a CPU weight or quota",
            })
        }
    }
    Ok(())
}

/// The inverse of [`CpuLimits::weight_from_shares`], for v1's `cpu.shares` (2–262144).
fn shares_from_weight(weight: u64) -> u64 {
    2 + (weight.clamp(1, 10_000) - 1) * 262_142 / 9_999
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pure_v2(_: Controller) -> Backend {
        Backend::V2
    }

    fn hybrid(_: Controller) -> Backend {
        Backend::V1
    }

    fn hybrid_without_memory(controller: Controller) -> Backend {
        match controller {
            Controller::Memory => Backend::Missing,
            _ => Backend::V1,
        }
    }

    fn plan(
        limits: &Limits,
        backend: fn(Controller) -> Backend,
    ) -> Vec<(Target, &'static str, String, bool)> {
        limit_writes(limits, backend, false)
            .unwrap()
            .into_iter()
            .map(|w| (w.target, w.file, w.value, w.optional))
            .collect()
    }

    fn full_limits() -> Limits {
        Limits {
            memory_bytes: Some(128 << 20),
            no_swap: true,
            pids: Some(1024),
            cpu: Some(CpuLimits {
                weight: Some(100),
                quota_us: Some(7235),
                period_us: Some(100_000),
            }),
        }
    }

    #[test]
    fn pure_v2_writes_everything_in_the_unified_leaf() {
        use Target::Unified;
        assert_eq!(
            plan(&full_limits(), pure_v2),
            vec![
                (Unified, "memory.max", "134217728".into(), false),
                (Unified, "memory.swap.max", "0".into(), true),
                (Unified, "pids.max", "1024".into(), false),
                (Unified, "cpu.weight", "100".into(), false),
                (Unified, "cpu.max", "7235 100000".into(), false),
            ]
        );
    }

    #[test]
    fn pure_v2_unset_limits_are_max() {
        let limits = Limits {
            cpu: Some(CpuLimits {
                period_us: Some(50_000),
                ..CpuLimits::default()
            }),
            ..Limits::default()
        };
        assert_eq!(
            plan(&limits, pure_v2),
            vec![
                (Target::Unified, "pids.max", "max".into(), false),
                (Target::Unified, "cpu.max", "max 50000".into(), false),
            ]
        );
    }

    #[test]
    fn hybrid_writes_v1_files_in_each_controllers_leaf() {
        let memory = Target::V1(Controller::Memory);
        let cpu = Target::V1(Controller::Cpu);
        assert_eq!(
            plan(&full_limits(), hybrid),
            vec![
                (memory, "memory.limit_in_bytes", "134217728".into(), false),
                (
                    memory,
                    "memory.memsw.limit_in_bytes",
                    "134217728".into(),
                    true
                ),
                (
                    Target::V1(Controller::Pids),
                    "pids.max",
                    "1024".into(),
                    false
                ),
                (cpu, "cpu.shares", "2597".into(), false),
                (cpu, "cpu.cfs_period_us", "100000".into(), false),
                (cpu, "cpu.cfs_quota_us", "7235".into(), false),
            ]
        );
    }

    #[test]
    fn hybrid_without_limits_touches_no_v1_hierarchy() {
        assert_eq!(plan(&Limits::default(), hybrid), vec![]);
        let swap_only = Limits {
            no_swap: true,
            cpu: Some(CpuLimits::default()),
            ..Limits::default()
        };
        assert_eq!(plan(&swap_only, hybrid), vec![]);
    }

    #[test]
    fn missing_memory_controller_refuses_a_memory_limit_unless_allowed() {
        let err = limit_writes(&full_limits(), hybrid_without_memory, false).unwrap_err();
        assert!(matches!(err, CgroupError::MemoryUnavailable));
        assert!(err.to_string().contains("allow_unenforced_memory = true"));

        let writes = limit_writes(&full_limits(), hybrid_without_memory, true).unwrap();
        assert!(writes
            .iter()
            .all(|w| w.target != Target::V1(Controller::Memory)));
        assert_eq!(writes.len(), 4);
    }

    #[test]
    fn missing_pids_or_cpu_controller_is_an_error_only_when_limited() {
        let missing = |_: Controller| Backend::Missing;
        let err = limit_writes(&full_limits(), missing, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no pids controller on this host: a task limit cannot be set"
        );
        let cpu_only = Limits {
            cpu: full_limits().cpu,
            ..Limits::default()
        };
        let err = limit_writes(&cpu_only, missing, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no cpu controller on this host: a CPU weight or quota cannot be set"
        );
        assert_eq!(
            limit_writes(&Limits::default(), missing, false).unwrap(),
            vec![]
        );
    }

    #[test]
    fn subtree_control_enables_only_what_cgroup2_offers_and_lacks() {
        let wanted = unified_controllers(pure_v2);
        assert_eq!(wanted, ["memory", "pids", "cpu"]);
        assert_eq!(
            subtree_control("", &wanted).as_deref(),
            Some("+memory +pids +cpu")
        );
        assert_eq!(
            subtree_control("cpu io memory\n", &wanted).as_deref(),
            Some("+pids")
        );
        assert_eq!(subtree_control("cpu memory pids\n", &wanted), None);
        assert!(unified_controllers(hybrid).is_empty());
        let no_pids = |c: Controller| match c {
            Controller::Pids => Backend::Missing,
            _ => Backend::V2,
        };
        assert_eq!(unified_controllers(no_pids), ["memory", "cpu"]);
    }

    #[test]
    fn weight_and_shares_convert_both_ways_at_the_ends() {
        assert_eq!(shares_from_weight(1), 2);
        assert_eq!(shares_from_weight(10_000), 262_144);
        assert_eq!(CpuLimits::weight_from_shares(2), 1);
        assert_eq!(CpuLimits::weight_from_shares(262_144), 10_000);
        assert_eq!(CpuLimits::weight_from_shares(1024), 39);
    }
}
