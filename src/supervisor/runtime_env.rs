//! Starting the runtime: the environment variables Lambda gives a runtime, and the request to
//! the init that forks it with its stdout and stderr on pipes the supervisor reads.

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

/// Variables a function may override (Lambda's unreserved defaults).
const UNRESERVED: &[(&str, &str)] = &[
    ("LANG", "en_US.UTF-8"),
    ("PATH", "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
    (
        "LD_LIBRARY_PATH",
        "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    ),
];

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

fn set(vars: &mut Vec<(String, String)>, key: &str, value: &str) {
    match vars.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value.to_string(),
        None => vars.push((key.to_string(), value.to_string())),
    }
}

/// Asks the init to start the runtime (`process.args` of the bundle); returns the read ends of
/// its stdout and stderr.
pub fn spawn_runtime(
    spec: &EnvironmentSpec,
    function: &Function,
    init: &Channel,
) -> io::Result<[OwnedFd; 2]> {
    let (out_read, out_write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    // The runtime's ends must block: many runtimes do not expect EAGAIN on stdout.
    for fd in [&out_write, &err_write] {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))?;
    }
    init.send_with_fds(
        &ToInit::Spawn {
            args: spec.process.args.clone(),
            env: runtime_env(spec, function),
            cwd: spec.process.cwd.clone(),
        },
        &[out_write.as_raw_fd(), err_write.as_raw_fd()],
    )?;
    Ok([out_read, err_read])
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
    }
}
