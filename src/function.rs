//! A Lambda function directory (the `provided` layout: `bootstrap` at its root) turned into an
//! OCI bundle: the host's `/usr`, `/lib*`, `/bin`, `/sbin` and `/etc` read-only as the OS, the
//! function at `/var/task`, a layer at `/opt`, every namespace, and the function's settings as
//! annotations.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// Lambda's sandbox user (`sbx_user1051`); functions do not run as root.
pub const FUNCTION_UID: u32 = 993;
pub const FUNCTION_GID: u32 = 990;

/// The environment's `/etc/hosts`: Lambda's names for the environment itself.
const HOSTS: &str = "127.0.0.1\tlocalhost sandbox.localdomain sandbox\n::1\tlocalhost\n";

/// The host directories that make up the environment's operating system.
const OS_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];

/// The function's settings as `runlambda run` was given them; `None` takes the default.
#[derive(Debug, Clone, Default)]
pub struct FunctionOptions {
    pub name: String,
    pub memory_mb: Option<u32>,
    pub ephemeral_storage_mb: Option<u32>,
    pub timeout_s: Option<u32>,
    pub idle_timeout_s: Option<u32>,
    pub freeze_delay_ms: Option<u32>,
    pub env: Vec<String>,
    pub layer: Option<PathBuf>,
}

/// Errors of preparing a function's bundle; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    #[error("{0} has no executable bootstrap at its root (the Lambda \"provided\" layout)")]
    NoBootstrap(PathBuf),
    #[error("cannot unpack {path}")]
    Zip {
        path: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("cannot prepare the bundle at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Whether `path` is a `.zip` deployment package (or layer) rather than a directory.
pub fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
        && path.is_file()
}

/// Unpacks a `.zip` deployment package or layer into `dest`, keeping the files' modes (a
/// `bootstrap` must stay executable), as Lambda does.
pub fn unpack_zip(zip: &Path, dest: &Path) -> Result<PathBuf, FunctionError> {
    let bad = |source: zip::result::ZipError| FunctionError::Zip {
        path: zip.to_path_buf(),
        source,
    };
    let file = fs::File::open(zip).map_err(|source| FunctionError::Io {
        path: zip.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    archive.extract(dest).map_err(bad)?;
    Ok(dest.to_path_buf())
}

/// Whether `dir` is an OCI bundle (has a config.json) rather than a function directory.
pub fn is_bundle(dir: &Path) -> bool {
    dir.join("config.json").is_file()
}

/// Writes a bundle for the function in `code` under `bundle` (created) and returns it.
pub fn write_bundle(
    code: &Path,
    bundle: &Path,
    options: &FunctionOptions,
) -> Result<PathBuf, FunctionError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FunctionError::Io { path, source }
    };
    let code = fs::canonicalize(code).map_err(io_err(code))?;
    if !code.join("bootstrap").is_file() {
        return Err(FunctionError::NoBootstrap(code));
    }
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ];
    for dir in OS_DIRS {
        let host = Path::new("/").join(dir);
        match fs::symlink_metadata(&host) {
            // A usr-merged host has /lib -> usr/lib: the same link inside.
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&host).map_err(io_err(&host))?;
                let link = rootfs.join(dir);
                if fs::symlink_metadata(&link).is_err() {
                    std::os::unix::fs::symlink(&target, &link).map_err(io_err(&link))?;
                }
            }
            Ok(meta) if meta.is_dir() => mounts.push(read_only_bind(&host, &host)),
            _ => {}
        }
    }
    // Extensions reach the Telemetry API's subscribers as sandbox.localdomain.
    let hosts = bundle.join("hosts");
    fs::write(&hosts, HOSTS).map_err(io_err(&hosts))?;
    mounts.push(read_only_bind(&hosts, Path::new("/etc/hosts")));
    mounts.push(read_only_bind(&code, Path::new("/var/task")));
    if let Some(layer) = &options.layer {
        let layer = fs::canonicalize(layer).map_err(io_err(layer))?;
        mounts.push(read_only_bind(&layer, Path::new("/opt")));
    }
    let config = config_json(&rootfs, mounts, options);
    let path = bundle.join("config.json");
    fs::write(&path, serde_json::to_vec_pretty(&config).expect("json")).map_err(io_err(&path))?;
    Ok(bundle.to_path_buf())
}

fn read_only_bind(source: &Path, destination: &Path) -> Value {
    json!({"destination": destination, "type": "bind", "source": source,
           "options": ["rbind", "ro", "nosuid", "nodev"]})
}

fn config_json(rootfs: &Path, mounts: Vec<Value>, options: &FunctionOptions) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("com.runlambda.mode".into(), "lambda".into());
    annotations.insert(
        "com.runlambda.function-name".into(),
        options.name.clone().into(),
    );
    for (key, value) in [
        ("memory-mb", options.memory_mb),
        ("ephemeral-storage-mb", options.ephemeral_storage_mb),
        ("timeout-s", options.timeout_s),
        ("idle-timeout-s", options.idle_timeout_s),
        ("freeze-delay-ms", options.freeze_delay_ms),
    ] {
        if let Some(value) = value {
            annotations.insert(format!("com.runlambda.{key}"), value.to_string().into());
        }
    }
    let no_caps: [&str; 0] = [];
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": FUNCTION_UID, "gid": FUNCTION_GID},
            "args": ["/var/task/bootstrap"],
            "env": options.env,
            "cwd": "/var/task",
            "capabilities": {"bounding": no_caps, "effective": no_caps, "permitted": no_caps,
                             "inheritable": no_caps, "ambient": no_caps},
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": true},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": crate::template::MASKED_PATHS,
            "readonlyPaths": crate::template::READONLY_PATHS
        },
        "annotations": annotations
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuntimeConfig;
    use std::os::unix::fs::PermissionsExt;

    fn options() -> FunctionOptions {
        FunctionOptions {
            name: "echo".into(),
            memory_mb: Some(256),
            timeout_s: Some(5),
            env: vec!["GREETING=hi".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_function_directory_becomes_a_lambda_bundle_the_loader_accepts() {
        let work = tempfile::tempdir().unwrap();
        let code = work.path().join("code");
        fs::create_dir(&code).unwrap();
        fs::write(code.join("bootstrap"), "#!/bin/sh\n").unwrap();
        let bundle = write_bundle(&code, &work.path().join("bundle"), &options()).unwrap();
        let spec = crate::bundle::load(&bundle, &RuntimeConfig::default(), false).unwrap();
        assert!(spec.is_lambda());
        assert_eq!(spec.function.memory_mb, Some(256));
        assert_eq!(spec.function.timeout_s, Some(5));
        // Defaults from the runtime config fill what the options left out.
        assert_eq!(spec.function.ephemeral_storage_mb, Some(512));
        assert_eq!(spec.process.uid, FUNCTION_UID);
        assert!(spec.root_readonly);
        let task = spec
            .mounts
            .iter()
            .find(|m| m.destination == Path::new("/var/task"))
            .unwrap();
        assert_eq!(task.source, fs::canonicalize(&code).unwrap());
        assert!(spec
            .mounts
            .iter()
            .any(|m| m.destination == Path::new("/tmp")));
    }

    #[test]
    fn a_zip_unpacks_with_its_modes() {
        use std::io::Write;
        let work = tempfile::tempdir().unwrap();
        let zip_path = work.path().join("fn.zip");
        let mut writer = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
        let executable = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        writer.start_file("bootstrap", executable).unwrap();
        writer.write_all(b"#!/bin/sh\n").unwrap();
        writer
            .start_file("lib/data.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        writer.write_all(b"data").unwrap();
        writer.finish().unwrap();
        assert!(is_zip(&zip_path));
        let code = unpack_zip(&zip_path, &work.path().join("code")).unwrap();
        let mode = fs::metadata(code.join("bootstrap"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            fs::read_to_string(code.join("lib/data.txt")).unwrap(),
            "data"
        );
        let err = unpack_zip(&code.join("lib/data.txt"), &work.path().join("x")).unwrap_err();
        assert!(err.to_string().contains("data.txt"), "{err}");
    }

    #[test]
    fn a_directory_without_bootstrap_is_refused_by_name() {
        let work = tempfile::tempdir().unwrap();
        let err = write_bundle(work.path(), &work.path().join("b"), &options()).unwrap_err();
        assert!(err.to_string().contains("no executable bootstrap"), "{err}");
    }
}
