//! The `linux` part of config.json: namespaces, id mappings, cgroup resources → [`Limits`],
//! sysctl, masked and read-only paths, root propagation, and the Linux features runlambda
//! refuses.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Linux, LinuxCpu, LinuxIdMapping, LinuxMemory, LinuxNamespace, LinuxNamespaceType,
    LinuxResources,
};

use super::FieldError;
use crate::cgroup::{CpuLimits, Limits};
use crate::spec::{IdMapping, NamespaceKind, NamespaceSpec, Propagation};

/// Linux features that runlambda does not implement; each one set is an error.
pub(super) fn reject_unsupported(linux: &Linux) -> Result<(), FieldError> {
    let set = [
        // Only the standard /dev nodes are ever created.
        (
            "linux.devices",
            linux.devices().as_ref().is_some_and(|d| !d.is_empty()),
        ),
        (
            "linux.mountLabel",
            linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()),
        ),
        ("linux.intelRdt", linux.intel_rdt().is_some()),
        ("linux.personality", linux.personality().is_some()),
        (
            "linux.timeOffsets",
            linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
        ),
        ("linux.memoryPolicy", linux.memory_policy().is_some()),
        (
            "linux.netDevices",
            linux.net_devices().as_ref().is_some_and(|n| !n.is_empty()),
        ),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(FieldError::unsupported(*field)),
        None => Ok(()),
    }
}

/// `linux.namespaces`: a new mount namespace is required, because the sandbox pivots into the
/// root filesystem; the others are created, or joined when a `path` is given.
pub(super) fn namespaces(
    given: Option<&[LinuxNamespace]>,
) -> Result<Vec<NamespaceSpec>, FieldError> {
    let mut namespaces: Vec<NamespaceSpec> = Vec::new();
    for (i, namespace) in given.unwrap_or_default().iter().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let kind = match namespace.typ() {
            LinuxNamespaceType::Mount => NamespaceKind::Mount,
            LinuxNamespaceType::Cgroup => NamespaceKind::Cgroup,
            LinuxNamespaceType::Uts => NamespaceKind::Uts,
            LinuxNamespaceType::Ipc => NamespaceKind::Ipc,
            LinuxNamespaceType::User => NamespaceKind::User,
            LinuxNamespaceType::Pid => NamespaceKind::Pid,
            LinuxNamespaceType::Network => NamespaceKind::Network,
            LinuxNamespaceType::Time => {
                return Err(FieldError::unsupported(format!("{field} (type time)")))
            }
        };
        if namespaces.iter().any(|ns| ns.kind == kind) {
            return Err(FieldError::invalid(
                field,
                kind.name(),
                "appears more than once",
            ));
        }
        let path = namespace
            .path()
            .clone()
            .filter(|path| !path.as_os_str().is_empty());
        if let Some(path) = &path {
            if kind == NamespaceKind::Mount {
                // Pivoting inside another container's mount namespace would rearrange its
                // mounts under it.
                return Err(FieldError::unsupported(format!(
                    "{field}.path (joining a mount namespace)"
                )));
            }
            if !path.is_absolute() {
                return Err(FieldError::invalid(
                    format!("{field}.path"),
                    path,
                    "is not an absolute path",
                ));
            }
        }
        namespaces.push(NamespaceSpec { kind, path });
    }
    if !namespaces.iter().any(|ns| ns.kind == NamespaceKind::Mount) {
        return Err(FieldError::NeedsNamespace {
            field: "the root filesystem".to_owned(),
            namespace: NamespaceKind::Mount,
        });
    }
    Ok(namespaces)
}

/// `linux.uidMappings` and `.gidMappings`: they belong to a new user namespace, which needs
/// both (a joined one brings its own).
pub(super) fn id_mappings(
    linux: &Linux,
    namespaces: &[NamespaceSpec],
) -> Result<(Vec<IdMapping>, Vec<IdMapping>), FieldError> {
    let uid = mappings("linux.uidMappings", linux.uid_mappings().as_deref())?;
    let gid = mappings("linux.gidMappings", linux.gid_mappings().as_deref())?;
    let user = namespaces.iter().find(|ns| ns.kind == NamespaceKind::User);
    for (field, list) in [("linux.uidMappings", &uid), ("linux.gidMappings", &gid)] {
        match user {
            None if !list.is_empty() => {
                return Err(FieldError::NeedsNamespace {
                    field: field.to_owned(),
                    namespace: NamespaceKind::User,
                })
            }
            Some(NamespaceSpec { path: None, .. }) if list.is_empty() => {
                return Err(FieldError::missing(field))
            }
            Some(NamespaceSpec { path: Some(_), .. }) if !list.is_empty() => {
                return Err(FieldError::invalid(
                    field,
                    list.len(),
                    "mappings cannot be given for a user namespace that is joined by path",
                ))
            }
            _ => {}
        }
    }
    Ok((uid, gid))
}

fn mappings(field: &str, given: Option<&[LinuxIdMapping]>) -> Result<Vec<IdMapping>, FieldError> {
    given
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, mapping)| {
            if mapping.size() == 0 {
                return Err(FieldError::invalid(
                    format!("{field}[{i}].size"),
                    0,
                    "must be at least 1",
                ));
            }
            Ok(IdMapping {
                container_id: mapping.container_id(),
                host_id: mapping.host_id(),
                size: mapping.size(),
            })
        })
        .collect()
}

/// `linux.resources` → cgroup limits: memory limit (and no swap), pids, CPU weight and
/// bandwidth. Device rules are accepted: the environment only ever has the standard device
/// nodes. Everything else that is set is refused.
pub(super) fn resources(resources: Option<&LinuxResources>) -> Result<Limits, FieldError> {
    let Some(resources) = resources else {
        return Ok(Limits::default());
    };
    let set = [
        ("linux.resources.blockIO", resources.block_io().is_some()),
        (
            "linux.resources.hugepageLimits",
            resources
                .hugepage_limits()
                .as_ref()
                .is_some_and(|l| !l.is_empty()),
        ),
        ("linux.resources.network", resources.network().is_some()),
        (
            "linux.resources.rdma",
            resources.rdma().as_ref().is_some_and(|r| !r.is_empty()),
        ),
        (
            "linux.resources.unified",
            resources.unified().as_ref().is_some_and(|u| !u.is_empty()),
        ),
    ];
    if let Some((field, _)) = set.iter().find(|(_, is_set)| *is_set) {
        return Err(FieldError::unsupported(*field));
    }
    let (memory_bytes, no_swap) = match resources.memory() {
        Some(memory) => memory_limits(memory)?,
        None => (None, false),
    };
    let pids = positive_or_unlimited(
        "linux.resources.pids.limit",
        resources.pids().map(|pids| pids.limit()),
    )?;
    let cpu = match resources.cpu() {
        Some(cpu) => cpu_limits(cpu)?,
        None => None,
    };
    Ok(Limits {
        memory_bytes,
        no_swap,
        pids,
        cpu,
    })
}

/// A memory or pids limit: positive, or 0 or -1 for none (both mean "no limit" to runc).
fn positive_or_unlimited(field: &str, given: Option<i64>) -> Result<Option<u64>, FieldError> {
    match given {
        None | Some(-1 | 0) => Ok(None),
        Some(limit) => u64::try_from(limit).map(Some).map_err(|_| {
            FieldError::invalid(field, limit, "must be positive, or 0 or -1 for no limit")
        }),
    }
}

/// The memory limit in bytes and whether swap is forbidden.
fn memory_limits(memory: &LinuxMemory) -> Result<(Option<u64>, bool), FieldError> {
    let set = [
        (
            "linux.resources.memory.reservation",
            memory.reservation().is_some(),
        ),
        ("linux.resources.memory.kernel", memory.kernel().is_some()),
        (
            "linux.resources.memory.kernelTCP",
            memory.kernel_tcp().is_some(),
        ),
        (
            "linux.resources.memory.swappiness",
            memory.swappiness().is_some(),
        ),
        (
            "linux.resources.memory.disableOOMKiller",
            memory.disable_oom_killer().is_some(),
        ),
        (
            "linux.resources.memory.useHierarchy",
            memory.use_hierarchy().is_some(),
        ),
        (
            "linux.resources.memory.checkBeforeUpdate",
            memory.check_before_update().is_some(),
        ),
    ];
    if let Some((field, _)) = set.iter().find(|(_, is_set)| *is_set) {
        return Err(FieldError::unsupported(*field));
    }
    let limit = positive_or_unlimited("linux.resources.memory.limit", memory.limit())?;
    // `swap` is memory plus swap. Equal to the limit means no swap (how containerd and
    // Kubernetes ask for none); the cgroup only knows "no swap" or "as the host allows".
    let no_swap = match memory.swap() {
        None | Some(-1 | 0) => false,
        Some(swap) if u64::try_from(swap).ok() == limit && limit.is_some() => true,
        Some(swap) => {
            return Err(FieldError::invalid(
                "linux.resources.memory.swap",
                swap,
                "only -1, 0 or memory.limit (no swap) are supported",
            ))
        }
    };
    Ok((limit, no_swap))
}

/// CPU weight from `shares` and bandwidth from `quota`/`period`, in cgroup v2 terms.
fn cpu_limits(cpu: &LinuxCpu) -> Result<Option<CpuLimits>, FieldError> {
    let non_empty = |text: &Option<String>| text.as_ref().is_some_and(|text| !text.is_empty());
    let set = [
        (
            "linux.resources.cpu.realtimeRuntime",
            cpu.realtime_runtime().is_some(),
        ),
        (
            "linux.resources.cpu.realtimePeriod",
            cpu.realtime_period().is_some(),
        ),
        ("linux.resources.cpu.cpus", non_empty(cpu.cpus())),
        ("linux.resources.cpu.mems", non_empty(cpu.mems())),
        ("linux.resources.cpu.idle", cpu.idle().is_some()),
        ("linux.resources.cpu.burst", cpu.burst().is_some()),
    ];
    if let Some((field, _)) = set.iter().find(|(_, is_set)| *is_set) {
        return Err(FieldError::unsupported(*field));
    }
    // The kernel's bounds for cpu.max, so that a bad value fails here rather than at create.
    const PERIOD_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
    const MIN_QUOTA_US: u64 = 1_000;
    let weight = cpu
        .shares()
        .filter(|shares| *shares != 0)
        .map(shares_to_weight);
    let quota_us = match cpu.quota() {
        None | Some(-1 | 0) => None,
        Some(quota) => match u64::try_from(quota) {
            Ok(quota) if quota >= MIN_QUOTA_US => Some(quota),
            _ => {
                return Err(FieldError::invalid(
                    "linux.resources.cpu.quota",
                    quota,
                    format!("must be at least {MIN_QUOTA_US} (µs), or -1"),
                ))
            }
        },
    };
    let period_us = match cpu.period() {
        None | Some(0) => None,
        Some(period) if PERIOD_US.contains(&period) => Some(period),
        Some(period) => {
            return Err(FieldError::invalid(
                "linux.resources.cpu.period",
                period,
                format!(
                    "must be in {}..={} (µs)",
                    PERIOD_US.start(),
                    PERIOD_US.end()
                ),
            ))
        }
    };
    if weight.is_none() && quota_us.is_none() && period_us.is_none() {
        return Ok(None);
    }
    Ok(Some(CpuLimits {
        weight,
        quota_us,
        period_us,
    }))
}

/// cgroup v1 `cpu.shares` (2–262144) → v2 `cpu.weight` (1–10000), runc's linear mapping, with
/// out-of-range shares clamped as the v1 kernel clamps them.
fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9_999) / 262_142
}

/// `linux.sysctl`, checked as runc checks it: only keys that belong to a namespace the
/// container has of its own, so that no write reaches the host's kernel settings. Keys are
/// returned in dotted form (`net.ipv4.ip_forward`, also accepted as `net/ipv4/ip_forward`).
pub(super) fn sysctl(
    given: Option<&HashMap<String, String>>,
    namespaces: &[NamespaceSpec],
) -> Result<BTreeMap<String, String>, FieldError> {
    const IPC_KEYS: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let has = |kind| namespaces.iter().any(|ns: &NamespaceSpec| ns.kind == kind);
    let mut checked = BTreeMap::new();
    for (given_key, value) in given.into_iter().flatten() {
        let key = given_key.replace('/', ".");
        let field = format!("linux.sysctl.{given_key}");
        if key.split('.').any(|part| part.is_empty()) {
            return Err(FieldError::invalid(
                field,
                given_key,
                "is not a sysctl name",
            ));
        }
        let namespace = if IPC_KEYS.contains(&key.as_str()) || key.starts_with("fs.mqueue.") {
            NamespaceKind::Ipc
        } else if key.starts_with("net.") {
            NamespaceKind::Network
        } else if key == "kernel.domainname" {
            NamespaceKind::Uts
        } else if key == "kernel.hostname" {
            return Err(FieldError::invalid(
                field,
                value,
                "use the hostname field instead",
            ));
        } else {
            return Err(FieldError::invalid(
                field,
                value,
                "is not in a namespace of the container's own",
            ));
        };
        if !has(namespace) {
            return Err(FieldError::NeedsNamespace { field, namespace });
        }
        checked.insert(key, value.clone());
    }
    Ok(checked)
}

/// `linux.maskedPaths` or `.readonlyPaths`: absolute paths inside the container.
pub(super) fn absolute_paths(
    field: &str,
    given: Option<&[String]>,
) -> Result<Vec<PathBuf>, FieldError> {
    given
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, path)| {
            if Path::new(path).is_absolute() {
                Ok(PathBuf::from(path))
            } else {
                Err(FieldError::invalid(
                    format!("{field}[{i}]"),
                    path,
                    "is not an absolute path",
                ))
            }
        })
        .collect()
}

/// `linux.rootfsPropagation`; like runc, the recursive spellings are accepted too (the root's
/// propagation is always applied recursively).
pub(super) fn rootfs_propagation(given: Option<&str>) -> Result<Option<Propagation>, FieldError> {
    Ok(Some(match given {
        None | Some("") => return Ok(None),
        Some("shared" | "rshared") => Propagation::Shared,
        Some("slave" | "rslave") => Propagation::Slave,
        Some("private" | "rprivate") => Propagation::Private,
        Some("unbindable" | "runbindable") => Propagation::Unbindable,
        Some(other) => {
            return Err(FieldError::invalid(
                "linux.rootfsPropagation",
                other,
                "is not shared, slave, private or unbindable",
            ))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(json: &str) -> Linux {
        serde_json::from_str(json).unwrap()
    }

    fn namespaces_of(json: &str) -> Result<Vec<NamespaceSpec>, FieldError> {
        namespaces(linux(json).namespaces().as_deref())
    }

    fn new(kind: NamespaceKind) -> NamespaceSpec {
        NamespaceSpec { kind, path: None }
    }

    #[test]
    fn namespaces_new_and_joined() {
        let got = namespaces_of(
            r#"{"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/pod"},
                {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "user"}, {"type": "cgroup"}]}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                new(NamespaceKind::Pid),
                NamespaceSpec {
                    kind: NamespaceKind::Network,
                    path: Some("/var/run/netns/pod".into())
                },
                new(NamespaceKind::Mount),
                new(NamespaceKind::Ipc),
                new(NamespaceKind::Uts),
                new(NamespaceKind::User),
                new(NamespaceKind::Cgroup),
            ]
        );
    }

    #[test]
    fn bad_namespaces() {
        let err =
            namespaces_of(r#"{"namespaces": [{"type": "mount"}, {"type": "time"}]}"#).unwrap_err();
        assert!(
            matches!(&err, FieldError::Unsupported { field } if field == "linux.namespaces[1] (type time)"),
            "{err:?}"
        );

        let err = namespaces_of(
            r#"{"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "pid"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.namespaces[2] = \"pid\": appears more than once"
        );

        let err = namespaces_of(r#"{"namespaces": [{"type": "pid"}]}"#).unwrap_err();
        assert!(
            matches!(
                err,
                FieldError::NeedsNamespace {
                    namespace: NamespaceKind::Mount,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(namespaces(None).is_err());

        let err = namespaces_of(r#"{"namespaces": [{"type": "mount", "path": "/proc/1/ns/mnt"}]}"#)
            .unwrap_err();
        assert!(matches!(err, FieldError::Unsupported { .. }), "{err:?}");

        let err = namespaces_of(
            r#"{"namespaces": [{"type": "mount"}, {"type": "network", "path": "netns"}]}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("linux.namespaces[1].path"),
            "{err}"
        );
    }

    #[test]
    fn id_mappings_need_a_new_user_namespace() {
        let with_maps = linux(
            r#"{"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}"#,
        );
        let user = [new(NamespaceKind::Mount), new(NamespaceKind::User)];
        let (uid, gid) = id_mappings(&with_maps, &user).unwrap();
        let expected = [IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }];
        assert_eq!(
            (uid.as_slice(), gid.as_slice()),
            (&expected[..], &expected[..])
        );

        let err = id_mappings(&with_maps, &[new(NamespaceKind::Mount)]).unwrap_err();
        assert!(
            matches!(
                err,
                FieldError::NeedsNamespace {
                    namespace: NamespaceKind::User,
                    ..
                }
            ),
            "{err:?}"
        );

        let joined = [NamespaceSpec {
            kind: NamespaceKind::User,
            path: Some("/proc/1/ns/user".into()),
        }];
        assert!(id_mappings(&with_maps, &joined).is_err());
        assert_eq!(
            id_mappings(&linux("{}"), &joined).unwrap(),
            (vec![], vec![])
        );

        let err = id_mappings(&linux("{}"), &user).unwrap_err();
        assert!(
            matches!(&err, FieldError::Missing { field } if field == "linux.uidMappings"),
            "{err:?}"
        );

        let zero = linux(
            r#"{"uidMappings": [{"containerID": 0, "hostID": 1, "size": 0}],
                "gidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}"#,
        );
        assert!(id_mappings(&zero, &user)
            .unwrap_err()
            .to_string()
            .starts_with("linux.uidMappings[0].size"));
    }

    fn limits(json: &str) -> Result<Limits, FieldError> {
        let given: LinuxResources = serde_json::from_str(json).unwrap();
        resources(Some(&given))
    }

    #[test]
    fn resources_to_limits() {
        let got = limits(
            r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}],
                "memory": {"limit": 268435456, "swap": 268435456},
                "pids": {"limit": 100},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000}}"#,
        )
        .unwrap();
        assert_eq!(
            got,
            Limits {
                memory_bytes: Some(268_435_456),
                no_swap: true,
                pids: Some(100),
                cpu: Some(CpuLimits {
                    weight: Some(39),
                    quota_us: Some(50_000),
                    period_us: Some(100_000),
                }),
            }
        );
        assert_eq!(resources(None).unwrap(), Limits::default());
    }

    #[test]
    fn unlimited_values_mean_no_limit() {
        let got = limits(
            r#"{"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1},
                "cpu": {"shares": 0, "quota": -1, "period": 0}}"#,
        )
        .unwrap();
        assert_eq!(got, Limits::default());
        let swap_allowed = limits(r#"{"memory": {"limit": 1048576}}"#).unwrap();
        assert_eq!(
            (swap_allowed.memory_bytes, swap_allowed.no_swap),
            (Some(1_048_576), false)
        );
    }

    #[test]
    fn shares_map_like_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1_000_000), 10_000);
    }

    #[test]
    fn unsupported_resources_are_named() {
        let cases = [
            (r#"{"blockIO": {"weight": 10}}"#, "linux.resources.blockIO"),
            (
                r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}"#,
                "linux.resources.hugepageLimits",
            ),
            (r#"{"network": {"classID": 1}}"#, "linux.resources.network"),
            (
                r#"{"rdma": {"mlx5_1": {"hcaHandles": 3}}}"#,
                "linux.resources.rdma",
            ),
            (
                r#"{"unified": {"memory.high": "1G"}}"#,
                "linux.resources.unified",
            ),
            (
                r#"{"memory": {"reservation": 1}}"#,
                "linux.resources.memory.reservation",
            ),
            (
                r#"{"memory": {"kernel": 1}}"#,
                "linux.resources.memory.kernel",
            ),
            (
                r#"{"memory": {"kernelTCP": 1}}"#,
                "linux.resources.memory.kernelTCP",
            ),
            (
                r#"{"memory": {"swappiness": 0}}"#,
                "linux.resources.memory.swappiness",
            ),
            (
                r#"{"memory": {"disableOOMKiller": true}}"#,
                "linux.resources.memory.disableOOMKiller",
            ),
            (
                r#"{"memory": {"useHierarchy": true}}"#,
                "linux.resources.memory.useHierarchy",
            ),
            (
                r#"{"memory": {"checkBeforeUpdate": true}}"#,
                "linux.resources.memory.checkBeforeUpdate",
            ),
            (
                r#"{"cpu": {"realtimeRuntime": 1}}"#,
                "linux.resources.cpu.realtimeRuntime",
            ),
            (
                r#"{"cpu": {"realtimePeriod": 1}}"#,
                "linux.resources.cpu.realtimePeriod",
            ),
            (r#"{"cpu": {"cpus": "0-1"}}"#, "linux.resources.cpu.cpus"),
            (r#"{"cpu": {"mems": "0"}}"#, "linux.resources.cpu.mems"),
            (r#"{"cpu": {"idle": 1}}"#, "linux.resources.cpu.idle"),
            (r#"{"cpu": {"burst": 1}}"#, "linux.resources.cpu.burst"),
        ];
        for (json, name) in cases {
            let err = limits(json).unwrap_err();
            assert!(
                matches!(&err, FieldError::Unsupported { field } if field == name),
                "{json}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("{name} is set but not supported by runlambda")
            );
        }
    }

    #[test]
    fn bad_resource_values_are_named() {
        let cases = [
            (
                r#"{"memory": {"limit": -5}}"#,
                "linux.resources.memory.limit",
            ),
            (
                r#"{"memory": {"limit": 1048576, "swap": 2097152}}"#,
                "linux.resources.memory.swap",
            ),
            (
                r#"{"memory": {"swap": 2097152}}"#,
                "linux.resources.memory.swap",
            ),
            (r#"{"pids": {"limit": -2}}"#, "linux.resources.pids.limit"),
            (r#"{"cpu": {"quota": 10}}"#, "linux.resources.cpu.quota"),
            (r#"{"cpu": {"quota": -7}}"#, "linux.resources.cpu.quota"),
            (r#"{"cpu": {"period": 10}}"#, "linux.resources.cpu.period"),
        ];
        for (json, name) in cases {
            let err = limits(json).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{name} = ")),
                "{json}: {err}"
            );
        }
    }

    #[test]
    fn sysctl_needs_the_namespace_it_belongs_to() {
        let all = [
            new(NamespaceKind::Mount),
            new(NamespaceKind::Ipc),
            new(NamespaceKind::Network),
            new(NamespaceKind::Uts),
        ];
        let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let given = map(&[
            ("net/ipv4/ip_forward", "1"),
            ("kernel.shmmax", "1"),
            ("fs.mqueue.msg_max", "10"),
            ("kernel.domainname", "x"),
        ]);
        let got = sysctl(Some(&given), &all).unwrap();
        let keys: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "fs.mqueue.msg_max",
                "kernel.domainname",
                "kernel.shmmax",
                "net.ipv4.ip_forward"
            ]
        );

        let err = sysctl(
            Some(&map(&[("net.core.somaxconn", "1")])),
            &[new(NamespaceKind::Mount)],
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                FieldError::NeedsNamespace {
                    namespace: NamespaceKind::Network,
                    ..
                }
            ),
            "{err:?}"
        );
        for key in [
            "vm.overcommit_memory",
            "kernel.hostname",
            "net..x",
            "net/../../x",
        ] {
            let err = sysctl(Some(&map(&[(key, "1")])), &all).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("linux.sysctl.{key}")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn paths_and_propagation() {
        let paths = ["/proc/kcore".to_owned(), "/sys/firmware".to_owned()];
        assert_eq!(
            absolute_paths("linux.maskedPaths", Some(&paths))
                .unwrap()
                .len(),
            2
        );
        let err =
            absolute_paths("linux.readonlyPaths", Some(&["proc/sys".to_owned()])).unwrap_err();
        assert!(
            err.to_string().starts_with("linux.readonlyPaths[0]"),
            "{err}"
        );

        assert_eq!(
            rootfs_propagation(Some("rslave")).unwrap(),
            Some(Propagation::Slave)
        );
        assert_eq!(
            rootfs_propagation(Some("private")).unwrap(),
            Some(Propagation::Private)
        );
        assert_eq!(rootfs_propagation(None).unwrap(), None);
        assert!(rootfs_propagation(Some("weird")).is_err());
    }

    #[test]
    fn unsupported_linux_fields_are_named() {
        let cases = [
            (
                r#"{"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}"#,
                "linux.devices",
            ),
            (
                r#"{"mountLabel": "system_u:object_r:container_file_t:s0"}"#,
                "linux.mountLabel",
            ),
            (r#"{"intelRdt": {"closID": "x"}}"#, "linux.intelRdt"),
            (
                r#"{"personality": {"domain": "LINUX32"}}"#,
                "linux.personality",
            ),
            (
                r#"{"timeOffsets": {"monotonic": {"secs": 1}}}"#,
                "linux.timeOffsets",
            ),
            (
                r#"{"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0"}}"#,
                "linux.memoryPolicy",
            ),
            (r#"{"netDevices": {"eth1": {}}}"#, "linux.netDevices"),
        ];
        for (json, name) in cases {
            let err = reject_unsupported(&linux(json)).unwrap_err();
            assert!(
                matches!(&err, FieldError::Unsupported { field } if field == name),
                "{json}: {err:?}"
            );
        }
        reject_unsupported(&linux(
            r#"{"devices": [], "mountLabel": "", "timeOffsets": {}}"#,
        ))
        .unwrap();
    }
}
