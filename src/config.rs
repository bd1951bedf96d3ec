//! The runtime-wide configuration: where state lives, which cgroup the environments go under,
//! whether unenforced memory is tolerated, and the defaults for per-function settings.
//!
//! It comes from one TOML file (documented in `config/runlambda.toml`), chosen as runc users
//! would expect a global flag to win over the environment: `--config FILE`, else
//! `$RUNLAMBDA_CONFIG`, else `/etc/runlambda/runlambda.toml` when it exists, else the built-in
//! defaults. Unknown keys are errors (a misspelt key silently keeping its default is worse than
//! a refusal), and values are checked against the same ranges as the `com.runlambda.*`
//! annotations. This module never reads the process environment itself, so tests need no
//! `set_var`.

use std::ffi::OsStr;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::annotations::{self, Bounds};

/// The file read when neither `--config` nor `$RUNLAMBDA_CONFIG` names one.
pub const SYSTEM_CONFIG: &str = "/etc/runlambda/runlambda.toml";

/// The environment variable naming the config file; the caller reads it and passes it to
/// [`load`].
pub const CONFIG_ENV: &str = "RUNLAMBDA_CONFIG";

/// Runtime-wide settings, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Directory holding one state directory per container (runc's `--root`); absolute.
    pub state_root: PathBuf,
    /// Parent cgroup of environments whose `linux.cgroupsPath` is relative or absent, relative
    /// to the root of the cgroup hierarchy (a leading `/` is accepted and dropped).
    pub cgroup_parent: PathBuf,
    /// Run environments even where no memory controller can enforce their memory limit.
    pub allow_unenforced_memory: bool,
    /// Defaults for function settings a bundle does not carry.
    pub defaults: FunctionDefaults,
}

/// Defaults for the per-function settings of the `com.runlambda.*` annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionDefaults {
    /// Function memory in MiB, 128–10240.
    pub memory_mb: u32,
    /// Size of `/tmp` in MiB, 512–10240.
    pub ephemeral_storage_mb: u32,
    /// Invocation timeout in seconds, 1–900.
    pub timeout_s: u32,
    /// Seconds an idle Lambda environment lives before its Shutdown, 1–86400.
    pub idle_timeout_s: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            state_root: PathBuf::from("/run/runlambda"),
            cgroup_parent: PathBuf::from("runlambda"),
            allow_unenforced_memory: false,
            defaults: FunctionDefaults::default(),
        }
    }
}

impl Default for FunctionDefaults {
    fn default() -> Self {
        Self {
            memory_mb: 128,
            ephemeral_storage_mb: 512,
            timeout_s: 3,
            idle_timeout_s: 300,
        }
    }
}

/// Why the runtime config could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid config file {}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("config file {}: {key} = {value} is out of range {bounds}", path.display())]
    OutOfRange {
        path: PathBuf,
        key: &'static str,
        value: u32,
        bounds: Bounds,
    },
    #[error("config file {}: {key} = {:?} {reason}", path.display(), value.display())]
    BadPath {
        path: PathBuf,
        key: &'static str,
        value: PathBuf,
        reason: &'static str,
    },
}

/// Loads the runtime config: `explicit` (`--config`), else `from_env` (the value of
/// `$RUNLAMBDA_CONFIG`; empty counts as unset), else [`SYSTEM_CONFIG`] when it exists, else the
/// defaults. A file that was named explicitly must exist.
pub fn load(
    explicit: Option<&Path>,
    from_env: Option<&OsStr>,
) -> Result<RuntimeConfig, ConfigError> {
    load_or_system(explicit, from_env, Path::new(SYSTEM_CONFIG))
}

/// [`load`] with the system-wide path injected, so tests can point it at a temp dir.
fn load_or_system(
    explicit: Option<&Path>,
    from_env: Option<&OsStr>,
    system: &Path,
) -> Result<RuntimeConfig, ConfigError> {
    let from_env = from_env.filter(|value| !value.is_empty()).map(Path::new);
    if let Some(path) = explicit.or(from_env) {
        return read(path);
    }
    match system.try_exists() {
        Ok(true) => read(system),
        Ok(false) => Ok(RuntimeConfig::default()),
        Err(source) => Err(ConfigError::Read {
            path: system.to_owned(),
            source,
        }),
    }
}

fn read(path: &Path) -> Result<RuntimeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and validates the text of a config file; `path` is only for the error messages.
fn parse(text: &str, path: &Path) -> Result<RuntimeConfig, ConfigError> {
    let mut config: RuntimeConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source,
    })?;
    config.validate(path)?;
    Ok(config)
}

impl RuntimeConfig {
    /// Checks every value and normalises `cgroup_parent` to a relative path.
    fn validate(&mut self, path: &Path) -> Result<(), ConfigError> {
        let bad_path = |key, value: &Path, reason| ConfigError::BadPath {
            path: path.to_owned(),
            key,
            value: value.to_owned(),
            reason,
        };
        if !self.state_root.is_absolute() {
            return Err(bad_path(
                "state_root",
                &self.state_root,
                "is not an absolute path",
            ));
        }
        self.cgroup_parent = below_root(&self.cgroup_parent).ok_or_else(|| {
            bad_path(
                "cgroup_parent",
                &self.cgroup_parent,
                "must name a cgroup below the hierarchy root, without `..`",
            )
        })?;

        let d = &self.defaults;
        for (key, value, bounds) in [
            ("defaults.memory_mb", d.memory_mb, annotations::MEMORY_MB),
            (
                "defaults.ephemeral_storage_mb",
                d.ephemeral_storage_mb,
                annotations::EPHEMERAL_STORAGE_MB,
            ),
            ("defaults.timeout_s", d.timeout_s, annotations::TIMEOUT_S),
            (
                "defaults.idle_timeout_s",
                d.idle_timeout_s,
                annotations::IDLE_TIMEOUT_S,
            ),
        ] {
            if !bounds.contains(value) {
                return Err(ConfigError::OutOfRange {
                    path: path.to_owned(),
                    key,
                    value,
                    bounds,
                });
            }
        }
        Ok(())
    }
}

/// `cgroup` as a non-empty path relative to the hierarchy root, or `None` if it climbs with
/// `..` (which could leave the hierarchy) or names the root itself.
fn below_root(cgroup: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in cgroup.components() {
        match component {
            Component::Normal(name) => relative.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!relative.as_os_str().is_empty()).then_some(relative)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its sources, the way `main` prints them.
    fn chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(next) = source {
            text = format!("{text}: {next}");
            source = next.source();
        }
        text
    }

    fn parse_err(text: &str) -> ConfigError {
        parse(text, Path::new("test.toml")).unwrap_err()
    }

    #[test]
    fn shipped_example_is_the_defaults() {
        let shipped = include_str!("../config/runlambda.toml");
        let config = parse(shipped, Path::new("config/runlambda.toml")).unwrap();
        assert_eq!(config, RuntimeConfig::default());
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("", Path::new("x")).unwrap(), RuntimeConfig::default());
    }

    #[test]
    fn reads_every_key() {
        let config = parse(
            r#"
            state_root = "/var/run/rl"
            cgroup_parent = "/system.slice/runlambda"
            allow_unenforced_memory = true
            [defaults]
            memory_mb = 1769
            ephemeral_storage_mb = 10240
            timeout_s = 900
            idle_timeout_s = 600
            "#,
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(
            config,
            RuntimeConfig {
                state_root: "/var/run/rl".into(),
                cgroup_parent: "system.slice/runlambda".into(),
                allow_unenforced_memory: true,
                defaults: FunctionDefaults {
                    memory_mb: 1769,
                    ephemeral_storage_mb: 10240,
                    timeout_s: 900,
                    idle_timeout_s: 600,
                },
            }
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse_err("state_root = \"/run/x\"\nstate_rot = \"/run/y\"\n");
        assert!(matches!(err, ConfigError::Parse { .. }));
        let text = chain(&err);
        assert!(
            text.starts_with("invalid config file test.toml: "),
            "{text}"
        );
        assert!(text.contains("state_rot"), "{text}");

        let text = chain(&parse_err("[defaults]\nmemroy_mb = 256\n"));
        assert!(text.contains("memroy_mb"), "{text}");

        let text = chain(&parse_err("[limits]\npids = 10\n"));
        assert!(text.contains("limits"), "{text}");
    }

    #[test]
    fn wrong_type_is_named() {
        let text = chain(&parse_err("allow_unenforced_memory = \"yes\"\n"));
        assert!(text.contains("allow_unenforced_memory"), "{text}");
        let text = chain(&parse_err("[defaults]\ntimeout_s = -1\n"));
        assert!(text.contains("timeout_s"), "{text}");
    }

    #[test]
    fn out_of_range_defaults_name_key_file_and_range() {
        let cases = [
            (
                "memory_mb = 64",
                "defaults.memory_mb = 64 is out of range 128..=10240 (MB)",
            ),
            (
                "memory_mb = 10241",
                "defaults.memory_mb = 10241 is out of range 128..=10240 (MB)",
            ),
            (
                "ephemeral_storage_mb = 511",
                "defaults.ephemeral_storage_mb = 511 is out of range 512..=10240 (MB)",
            ),
            (
                "timeout_s = 0",
                "defaults.timeout_s = 0 is out of range 1..=900 (s)",
            ),
            (
                "timeout_s = 901",
                "defaults.timeout_s = 901 is out of range 1..=900 (s)",
            ),
        ];
        for (line, message) in cases {
            let err = parse_err(&format!("[defaults]\n{line}\n"));
            assert!(matches!(err, ConfigError::OutOfRange { .. }), "{err:?}");
            assert_eq!(err.to_string(), format!("config file test.toml: {message}"));
        }
    }

    #[test]
    fn bad_paths_are_named() {
        let err = parse_err("state_root = \"run/runlambda\"\n");
        assert_eq!(
            err.to_string(),
            "config file test.toml: state_root = \"run/runlambda\" is not an absolute path"
        );
        for parent in ["/", "", "a/../../b", "."] {
            let err = parse_err(&format!("cgroup_parent = {parent:?}\n"));
            assert!(
                matches!(
                    err,
                    ConfigError::BadPath {
                        key: "cgroup_parent",
                        ..
                    }
                ),
                "{parent}: {err:?}"
            );
        }
    }

    #[test]
    fn explicit_file_wins_over_env_and_system() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, timeout: u32| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("[defaults]\ntimeout_s = {timeout}\n")).unwrap();
            path
        };
        let explicit = write("explicit.toml", 10);
        let env = write("env.toml", 20);
        let system = write("system.toml", 30);
        let timeout = |explicit: Option<&Path>, env: Option<&OsStr>| {
            load_or_system(explicit, env, &system)
                .unwrap()
                .defaults
                .timeout_s
        };
        assert_eq!(timeout(Some(&explicit), Some(env.as_os_str())), 10);
        assert_eq!(timeout(None, Some(env.as_os_str())), 20);
        assert_eq!(timeout(None, Some(OsStr::new(""))), 30);
        assert_eq!(timeout(None, None), 30);
    }

    #[test]
    fn missing_system_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = load_or_system(None, None, &dir.path().join("absent.toml")).unwrap();
        assert_eq!(config, RuntimeConfig::default());
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.toml");
        let system = dir.path().join("system.toml");
        std::fs::write(&system, "").unwrap();
        for (explicit, env) in [
            (Some(absent.as_path()), None),
            (None, Some(absent.as_os_str())),
        ] {
            let err = load_or_system(explicit, env, &system).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Read { path, .. } if *path == absent),
                "{err:?}"
            );
            assert!(err.to_string().contains("absent.toml"));
        }
    }

    #[test]
    fn errors_in_a_loaded_file_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[defaults]\nmemory_mb = 1\n").unwrap();
        let err = load(Some(&path), None).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}
