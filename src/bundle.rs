//! OCI bundles: `<bundle>/config.json` (read with oci-spec) and its root filesystem, turned into
//! one checked [`EnvironmentSpec`].
//!
//! The rule is runc's contract without its leniency: what runlambda honours is converted and
//! validated here, and a field that is set but not implemented is an error naming the field —
//! a seccomp profile or a hook that silently did nothing would be a security or correctness bug
//! the user never sees. Properties that the runtime-spec itself does not define are ignored, as
//! the spec requires. The conversion is split by part of config.json: `process`, `mounts`,
//! `linux` (namespaces, id mappings, resources, sysctl, paths), `seccomp` and `hooks` each have
//! a submodule; this file holds the whole-file checks and the `com.runlambda.*` settings that
//! reshape the result, such as the default seccomp profile of a Lambda environment
//! (`lambda_seccomp`).

mod hooks;
mod lambda_seccomp;
mod linux;
mod mounts;
mod process;
mod seccomp;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Root, Spec};
use oci_spec::OciSpecError;

use crate::annotations::{self, AnnotationError, FunctionSettings, Mode};
use crate::cgroup::Limits;
use crate::config::RuntimeConfig;
use crate::spec::{EnvironmentSpec, NamespaceKind, NamespaceSpec};

/// Why a bundle could not be loaded. The sources say which field and why.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot resolve bundle directory {}", path.display())]
    BundleDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot load {}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: OciSpecError,
    },
    #[error("invalid {}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: FieldError,
    },
}

/// What is wrong with one field of config.json; fields are named as config.json spells them.
#[derive(Debug, thiserror::Error)]
pub enum FieldError {
    #[error("{field} is set but not supported by runlambda")]
    Unsupported { field: String },
    /// A Lambda environment's init starts its processes with pipes, never a terminal.
    #[error("process.terminal: a Lambda environment's processes have no terminal")]
    LambdaTerminal,
    #[error("{field} is required")]
    Missing { field: String },
    #[error("ociVersion {version:?} is not supported (runlambda reads 1.0.0 to 1.3.x)")]
    Version { version: String },
    #[error("{field} = {value}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
    #[error("root.path {}: cannot access the root filesystem", path.display())]
    Rootfs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("root.path {}: not a directory", path.display())]
    RootfsNotDirectory { path: PathBuf },
    #[error("{field}: capability {name} cannot be applied by runlambda")]
    Capability { field: &'static str, name: String },
    #[error("process.rlimits: {name} soft limit {soft} exceeds its hard limit {hard}")]
    RlimitSoftAboveHard {
        name: &'static str,
        soft: u64,
        hard: u64,
    },
    #[error("mounts[{index}] at {}: type {typ:?} is not supported (bind, tmpfs, proc, sysfs, devpts, mqueue, cgroup, cgroup2)", destination.display())]
    MountType {
        index: usize,
        destination: PathBuf,
        typ: String,
    },
    #[error("mounts[{index}] at {}: option {option:?} is not supported", destination.display())]
    MountOption {
        index: usize,
        destination: PathBuf,
        option: String,
    },
    #[error("{field} needs a {} namespace in linux.namespaces", namespace.name())]
    NeedsNamespace {
        field: String,
        namespace: NamespaceKind,
    },
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
}

impl FieldError {
    fn missing(field: impl Into<String>) -> Self {
        Self::Missing {
            field: field.into(),
        }
    }

    fn unsupported(field: impl Into<String>) -> Self {
        Self::Unsupported {
            field: field.into(),
        }
    }

    fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Debug,
        reason: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            field: field.into(),
            value: format!("{value:?}"),
            reason: reason.into(),
        }
    }
}

/// Loads `<bundle_dir>/config.json` and checks it against what runlambda implements.
///
/// `bundle_dir` may be relative (to the current directory); the spec holds it absolute. The
/// runtime config is not consulted yet: a plain container gets exactly what its config.json
/// and annotations say, and the defaults it holds apply to Lambda environments.
pub fn load(
    bundle_dir: &Path,
    config: &RuntimeConfig,
    force_lambda: bool,
) -> Result<EnvironmentSpec, BundleError> {
    let bundle = std::path::absolute(bundle_dir).map_err(|source| BundleError::BundleDir {
        path: bundle_dir.to_owned(),
        source,
    })?;
    let path = bundle.join("config.json");
    let spec = match Spec::load(&path) {
        Ok(spec) => spec,
        Err(source) => return Err(BundleError::Load { path, source }),
    };
    convert(&spec, &bundle, config, force_lambda)
        .map_err(|source| BundleError::Invalid { path, source })
}

/// The whole conversion; `bundle` is absolute.
fn convert(
    spec: &Spec,
    bundle: &Path,
    config: &RuntimeConfig,
    force_lambda: bool,
) -> Result<EnvironmentSpec, FieldError> {
    check_version(spec.version())?;
    reject_unsupported(spec)?;
    let (rootfs, root_readonly) = root(spec.root().as_ref(), bundle)?;
    let process = process::convert(
        spec.process()
            .as_ref()
            .ok_or_else(|| FieldError::missing("process"))?,
    )?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| FieldError::missing("linux"))?;
    linux::reject_unsupported(linux)?;
    let namespaces = linux::namespaces(linux.namespaces().as_deref())?;
    let hostname = uts_name("hostname", spec.hostname(), &namespaces)?;
    let domainname = uts_name("domainname", spec.domainname(), &namespaces)?;
    let (uid_mappings, gid_mappings) = linux::id_mappings(linux, &namespaces)?;
    let mut mounts = mounts::convert(spec.mounts().as_deref(), bundle)?;
    let mut limits = linux::resources(linux.resources().as_ref())?;

    let annotations: BTreeMap<String, String> = spec
        .annotations()
        .iter()
        .flatten()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let mut function = annotations::parse(&annotations)?;
    let mut seccomp = linux.seccomp().as_ref().map(seccomp::convert).transpose()?;
    let hooks = hooks::convert(spec.hooks().as_ref())?;
    if lambda_mode(&function, &annotations, force_lambda) {
        if process.terminal {
            return Err(FieldError::LambdaTerminal);
        }
        apply_lambda_defaults(&mut function, config);
        seccomp.get_or_insert_with(lambda_seccomp::profile);
    }
    if let Some(mb) = function.memory_mb {
        // The function's memory replaces linux.resources.memory and .cpu; pids stay.
        let pids = limits.pids;
        limits = Limits::for_function_memory(mb);
        limits.pids = pids;
    }
    if let Some(mb) = function.ephemeral_storage_mb {
        mounts::set_tmp(&mut mounts, mb);
    }

    Ok(EnvironmentSpec {
        bundle: bundle.to_owned(),
        rootfs,
        root_readonly,
        process,
        hostname,
        domainname,
        mounts,
        uid_mappings,
        gid_mappings,
        cgroups_path: linux
            .cgroups_path()
            .clone()
            .filter(|path| !path.as_os_str().is_empty()),
        limits,
        masked_paths: linux::absolute_paths("linux.maskedPaths", linux.masked_paths().as_deref())?,
        readonly_paths: linux::absolute_paths(
            "linux.readonlyPaths",
            linux.readonly_paths().as_deref(),
        )?,
        rootfs_propagation: linux::rootfs_propagation(linux.rootfs_propagation().as_deref())?,
        sysctl: linux::sysctl(linux.sysctl().as_ref(), &namespaces)?,
        namespaces,
        annotations,
        listen_fds: 0,
        preserve_fds: 0,
        function,
        seccomp,
        hooks,
    })
}

/// Accepts runtime-spec 1.0.0 through 1.3.x, including pre-release tags such as `1.0.2-dev`
/// (what `runc spec` writes): those versions only added fields, which the checks below cover.
fn check_version(version: &str) -> Result<(), FieldError> {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let numbers: Vec<Option<u32>> = core.split('.').map(|part| part.parse().ok()).collect();
    match numbers.as_slice() {
        [Some(1), Some(0..=3), Some(_)] => Ok(()),
        _ => Err(FieldError::Version {
            version: version.to_owned(),
        }),
    }
}

/// Fields of the top level (and its other platforms) that runlambda does not implement.
// The top-level id mappings are deprecated in oci-spec because the runtime-spec never had
// them; a config that carries them still must not have them ignored.
#[allow(deprecated)]
fn reject_unsupported(spec: &Spec) -> Result<(), FieldError> {
    let set = [
        ("solaris", spec.solaris().is_some()),
        ("windows", spec.windows().is_some()),
        ("vm", spec.vm().is_some()),
        ("zos", spec.zos().is_some()),
        (
            "uidMappings",
            spec.uid_mappings().as_ref().is_some_and(|m| !m.is_empty()),
        ),
        (
            "gidMappings",
            spec.gid_mappings().as_ref().is_some_and(|m| !m.is_empty()),
        ),
    ];
    match set.iter().find(|(_, is_set)| *is_set) {
        Some((field, _)) => Err(FieldError::unsupported(*field)),
        None => Ok(()),
    }
}

/// The root filesystem, resolved against the bundle, and whether it is read-only.
fn root(root: Option<&Root>, bundle: &Path) -> Result<(PathBuf, bool), FieldError> {
    let root = root.ok_or_else(|| FieldError::missing("root"))?;
    if root.path().as_os_str().is_empty() {
        return Err(FieldError::missing("root.path"));
    }
    let given = bundle.join(root.path());
    // Resolved once here so that the sandbox pivots into the directory that was checked, not
    // into whatever a symlink points at later.
    let rootfs = given.canonicalize().map_err(|source| FieldError::Rootfs {
        path: given.clone(),
        source,
    })?;
    if !rootfs.is_dir() {
        return Err(FieldError::RootfsNotDirectory { path: given });
    }
    Ok((rootfs, root.readonly().unwrap_or(false)))
}

/// `hostname` or `domainname`: setting one needs a UTS namespace, as in runc, or it would
/// rename the host.
fn uts_name(
    field: &'static str,
    name: &Option<String>,
    namespaces: &[NamespaceSpec],
) -> Result<Option<String>, FieldError> {
    // The kernel's limit for both names (__NEW_UTS_LEN).
    const MAX_LEN: usize = 64;
    let Some(name) = name.as_ref().filter(|name| !name.is_empty()) else {
        return Ok(None);
    };
    if !namespaces.iter().any(|ns| ns.kind == NamespaceKind::Uts) {
        return Err(FieldError::NeedsNamespace {
            field: field.to_owned(),
            namespace: NamespaceKind::Uts,
        });
    }
    if name.len() > MAX_LEN {
        return Err(FieldError::invalid(
            field,
            name,
            format!("longer than {MAX_LEN} bytes"),
        ));
    }
    Ok(Some(name.clone()))
}

/// `linux.resources` as `update -r` gives it, checked as in a bundle.
pub fn resources(json: &[u8], path: &Path) -> Result<Limits, BundleError> {
    let invalid = |source| BundleError::Invalid {
        path: path.to_path_buf(),
        source,
    };
    let resources: oci_spec::runtime::LinuxResources =
        serde_json::from_slice(json).map_err(|e| {
            let shown: String = String::from_utf8_lossy(json).chars().take(80).collect();
            invalid(FieldError::invalid("linux.resources", shown, e.to_string()))
        })?;
    linux::resources(Some(&resources)).map_err(invalid)
}

/// Whether the container is a Lambda environment: the pod's sandbox (pause) container never
/// is; otherwise `runlambda run` or the `com.runlambda.mode` annotation decides.
fn lambda_mode(
    function: &FunctionSettings,
    annotations: &BTreeMap<String, String>,
    force_lambda: bool,
) -> bool {
    let pod_sandbox = annotations
        .get("io.kubernetes.cri.container-type")
        .is_some_and(|t| t == "sandbox");
    !pod_sandbox && (force_lambda || function.mode == Some(Mode::Lambda))
}

/// A Lambda environment always has a memory size, a `/tmp`, a timeout and an idle timeout:
/// what the annotations did not say comes from the runtime config.
fn apply_lambda_defaults(function: &mut FunctionSettings, config: &RuntimeConfig) {
    let defaults = &config.defaults;
    function.mode = Some(Mode::Lambda);
    function.memory_mb.get_or_insert(defaults.memory_mb);
    function
        .ephemeral_storage_mb
        .get_or_insert(defaults.ephemeral_storage_mb);
    function.timeout_s.get_or_insert(defaults.timeout_s);
    function
        .idle_timeout_s
        .get_or_insert(defaults.idle_timeout_s);
}

/// Checks the `process` of an `exec` (a process JSON, or config.json's process with the
/// command line's changes) exactly as [`load`] checks config.json's; `path` is where it came
/// from.
pub fn check_process(
    process: &oci_spec::runtime::Process,
    path: &Path,
) -> Result<crate::spec::ProcessSpec, BundleError> {
    process::convert(process).map_err(|source| BundleError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// The seccomp actions and filter flags [`load`] accepts in `linux.seccomp`.
pub fn seccomp_actions_and_flags() -> (&'static [&'static str], &'static [&'static str]) {
    (seccomp::ACTIONS, seccomp::FLAGS)
}

/// The mount option words [`load`] accepts (filesystem data such as `mode=755` aside).
pub fn mount_options() -> impl Iterator<Item = &'static str> {
    mounts::supported_options()
}

#[cfg(test)]
mod tests;
