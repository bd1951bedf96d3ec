//! Starting the runtime and the external extensions: the environment variables Lambda gives
//! each, and the request to the init that forks one with its stdout and stderr on pipes the
//! supervisor reads.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::SystemTime;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use super::Function;
use crate::sandbox::channel::{Channel, ToInit};
use crate::spec::EnvironmentSpec;

/// Where the runtime finds the Runtime API (inside the environment's network namespace).
pub const RUNTIME_API_ADDRESS: &str = "127.0.0.1:9001";

/// Lambda's default library search path for a function's processes.
pub const LD_LIBRARY_PATH: &str =
    "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib";

/// Variables a function may override (Lambda's unreserved defaults).
const UNRESERVED: &[(&str, &str)] = &[
    ("LANG", "en_US.UTF-8"),
    (
        "PATH",
        "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    ),
    ("LD_LIBRARY_PATH", LD_LIBRARY_PATH),
];

/// Variables only the runtime sees: an extension's environment lacks them (RAPID's
/// `AgentExecEnv`), as it lacks every variable starting with `_`.
const RUNTIME_ONLY: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// Where external extensions live inside the environment.
pub const EXTENSIONS_DIR: &str = "/opt/extensions";
/// While this file exists, the environment runs without extensions.
pub const KILL_SWITCH: &str = "/opt/disable-extensions-jwigqn8j";

/// Which process to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The runtime: the bundle's `process.args`.
    Runtime,
    /// The external extension `/opt/extensions/<name>`.
    Extension(String),
}

/// The runtime's environment: Lambda's defaults, then the bundle's `process.env`, then the
/// reserved variables, which always win.
pub fn runtime_env(spec: &EnvironmentSpec, function: &Function) -> Vec<String> {
    let mut vars: Vec<(String, String)> = UNRESERVED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for entry in &spec.process.env {
        if let Some((key, value)) = entry.split_once('=') {
            set(&mut vars, key, value);
        }
    }
    let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let stream = format!(
        "{}/{}/{}/[$LATEST]{}",
        &date[0..4],
        &date[5..7],
        &date[8..10],
        uuid::Uuid::new_v4().simple()
    );
    let reserved = [
        ("AWS_LAMBDA_FUNCTION_NAME", function.name.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            function.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", function.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", stream),
        ("AWS_LAMBDA_RUNTIME_API", RUNTIME_API_ADDRESS.into()),
        (
            "RUNLAMBDA_RUNTIME_API_SOCKET",
            format!(
                "{}/{}",
                crate::lambda::RUNTIME_API_DIR,
                crate::lambda::RUNTIME_API_SOCKET
            ),
        ),
        ("AWS_REGION", function.region.clone()),
        ("AWS_DEFAULT_REGION", function.region.clone()),
        ("LAMBDA_TASK_ROOT", "/var/task".into()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
        (
            "_HANDLER",
            spec.function.handler.clone().unwrap_or_default(),
        ),
    ];
    for (key, value) in reserved {
        set(&mut vars, key, &value);
    }
    vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// An external extension's environment: the runtime's without the runtime-only variables.
pub fn extension_env(spec: &EnvironmentSpec, function: &Function) -> Vec<String> {
    runtime_env(spec, function)
        .into_iter()
        .filter(|entry| {
            let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            !key.starts_with('_') && !RUNTIME_ONLY.contains(&key)
        })
        .collect()
}

fn set(vars: &mut Vec<(String, String)>, key: &str, value: &str) {
    match vars.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_string(),
        None => vars.push((key.to_string(), value.to_string())),
    }
}

/// Asks the init to start the runtime or an extension; returns the read ends of its stdout
/// and stderr.
pub fn spawn(
    spec: &EnvironmentSpec,
    function: &Function,
    init: &Channel,
    role: &Role,
) -> io::Result<[OwnedFd; 2]> {
    let (out_read, out_write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (uid, gid) = host_ids(spec);
    for fd in [&out_write, &err_write] {
        // The process's ends must block: many programs do not expect EAGAIN on stdout.
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
        // Owned by the process's user, so it can reopen them as `/dev/stdout` (as runc's
        // `fixStdioPermissions` allows); our pipes would otherwise be root's, mode 0600. Where
        // we may not (rootless), `/dev/stdout` merely stays unopenable.
        let _ = nix::unistd::fchown(fd, Some(uid.into()), Some(gid.into()));
    }
    let (args, env) = match role {
        Role::Runtime => (spec.process.args.clone(), runtime_env(spec, function)),
        Role::Extension(name) => (
            vec![format!("{EXTENSIONS_DIR}/{name}")],
            extension_env(spec, function),
        ),
    };
    init.send_with_fds(
        &ToInit::Spawn {
            args,
            env,
            cwd: spec.process.cwd.clone(),
        },
        &[out_write.as_raw_fd(), err_write.as_raw_fd()],
    )?;
    Ok([out_read, err_read])
}

/// The process's uid and gid as the host sees them (through the user namespace's maps).
fn host_ids(spec: &EnvironmentSpec) -> (u32, u32) {
    let map = |id: u32, mappings: &[crate::spec::IdMapping]| {
        if mappings.is_empty() {
            return id;
        }
        mappings
            .iter()
            .find(|m| id >= m.container_id && id - m.container_id < m.size)
            .map_or(id, |m| m.host_id + (id - m.container_id))
    };
    (
        map(spec.process.uid, &spec.uid_mappings),
        map(spec.process.gid, &spec.gid_mappings),
    )
}

/// The names of the external extensions in the environment whose root is `root` (on the
/// host, `/proc/<init>/root`): the entries of `/opt/extensions` that are not directories, in
/// lexical order, as RAPID launches them.
pub fn discover_extensions(root: &std::path::Path) -> Vec<String> {
    let dir = root.join(EXTENSIONS_DIR.trim_start_matches('/'));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| !e.path().is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether the environment whose root is `root` has its extensions switched off.
pub fn extensions_switched_off(root: &std::path::Path) -> bool {
    root.join(KILL_SWITCH.trim_start_matches('/')).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reserved_variables_win_over_the_bundle_and_defaults_yield_to_it() {
        let mut spec = crate::spec::tests::minimal_spec(vec![], vec![]);
        spec.process.env = vec![
            "PATH=/custom".into(),
            "AWS_LAMBDA_RUNTIME_API=elsewhere:1".into(),
            "GREETING=hi".into(),
        ];
        let function = Function {
            name: "echo".into(),
            memory_mb: 256,
            timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(300),
            freeze_delay: Duration::ZERO,
            region: "us-east-1".into(),
            memory_enforced: true,
        };
        let env = runtime_env(&spec, &function);
        let get = |key: &str| {
            env.iter()
                .find_map(|e| e.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        assert_eq!(get("PATH").as_deref(), Some("/custom"));
        assert_eq!(get("GREETING").as_deref(), Some("hi"));
        assert_eq!(
            get("AWS_LAMBDA_RUNTIME_API").as_deref(),
            Some("127.0.0.1:9001")
        );
        assert_eq!(
            get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").as_deref(),
            Some("256")
        );
        assert_eq!(
            get("AWS_LAMBDA_FUNCTION_VERSION").as_deref(),
            Some("$LATEST")
        );
        let stream = get("AWS_LAMBDA_LOG_STREAM_NAME").unwrap();
        assert!(stream.contains("/[$LATEST]"), "{stream}");
        let extension = extension_env(&spec, &function);
        let has = |key: &str| extension.iter().any(|e| e.starts_with(&format!("{key}=")));
        assert!(has("AWS_LAMBDA_RUNTIME_API") && has("GREETING") && has("AWS_REGION"));
        assert!(!has("_HANDLER") && !has("LAMBDA_TASK_ROOT") && !has("AWS_LAMBDA_LOG_STREAM_NAME"));
    }

    #[test]
    fn extensions_are_the_files_of_opt_extensions_in_lexical_order() {
        let root = tempfile::tempdir().unwrap();
        assert!(discover_extensions(root.path()).is_empty());
        let dir = root.path().join("opt/extensions");
        std::fs::create_dir_all(dir.join("a-directory")).unwrap();
        for name in ["zeta", "Alpha", "beta"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(discover_extensions(root.path()), ["Alpha", "beta", "zeta"]);
    }
}
