//! What `create` does beyond a plain container for a Lambda environment: the function's
//! identity from its settings, the supervisor's sockets (bound before it forks, so nothing
//! that connects early is refused), and the fork of the supervisor itself.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use nix::mount::MsFlags;
use nix::sched::{setns, CloneFlags};
use nix::unistd::{ForkResult, Pid};

use crate::cgroup::Cgroup;
use crate::sandbox::Spawned;
use crate::spec::{EnvironmentSpec, MountKind, MountSpec, NamespaceKind};
use crate::state::{self, StateDir};
use crate::supervisor::serve::{self, Listeners};
use crate::supervisor::Function;
use crate::{Error, Result};

/// Where the directory of the Runtime API's unix socket appears inside an environment.
pub const RUNTIME_API_DIR: &str = "/run/runlambda";
/// The Runtime API's unix socket in that directory.
pub const RUNTIME_API_SOCKET: &str = "runtime.sock";

/// Binds the Runtime API's unix socket in a directory of its own in the state directory, and
/// returns the spec with that directory bind-mounted at [`RUNTIME_API_DIR`]: the directory, not
/// the socket, so a socket made anew would still be seen. Nothing else of the state directory
/// is reachable from inside.
pub fn runtime_api_socket(
    dir: &StateDir,
    spec: &EnvironmentSpec,
) -> Result<(EnvironmentSpec, UnixListener)> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let host_dir = dir.path().join("runtime-api");
    let path = host_dir.join(RUNTIME_API_SOCKET);
    let listen_err = |source| Error::Listen {
        what: path.display().to_string(),
        source,
    };
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&host_dir)
        .map_err(listen_err)?;
    let listener = crate::socket_path::bind(&path).map_err(listen_err)?;
    // The function's user connects to it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).map_err(listen_err)?;
    let mut spec = spec.clone();
    spec.mounts.push(MountSpec {
        destination: RUNTIME_API_DIR.into(),
        kind: MountKind::Bind { recursive: false },
        source: host_dir,
        flags: (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC).bits(),
        propagation: 0,
        data: String::new(),
    });
    Ok((spec, listener))
}

/// The port of the Runtime API inside every environment.
const RUNTIME_API_PORT: u16 = 9001;

/// The function as the runtime and the caller see it.
pub fn function(spec: &EnvironmentSpec, memory_enforced: bool) -> Function {
    let settings = &spec.function;
    let region = spec
        .process
        .env
        .iter()
        .find_map(|e| e.strip_prefix("AWS_REGION="))
        .unwrap_or("us-east-1");
    Function {
        name: settings
            .function_name
            .clone()
            .unwrap_or_else(|| "function".into()),
        memory_mb: settings.memory_mb.unwrap_or(128),
        timeout: Duration::from_secs(settings.timeout_s.unwrap_or(3).into()),
        idle_timeout: Duration::from_secs(settings.idle_timeout_s.unwrap_or(300).into()),
        freeze_delay: Duration::from_millis(settings.freeze_delay_ms.unwrap_or(0).into()),
        region: region.to_string(),
        memory_enforced,
    }
}

/// Binds the Invoke API socket in the state directory and the TCP listeners inside the
/// environment's network namespace. The init may still be building the environment: the
/// namespace is the one the bundle names, else the one the init was cloned into.
pub fn bind_listeners(
    dir: &StateDir,
    spec: &EnvironmentSpec,
    init: Pid,
    notify: Option<UnixListener>,
    runtime_unix: UnixListener,
) -> Result<Listeners> {
    let invoke = dir.bind_socket(state::INVOKE_SOCKET)?;
    let control = dir.bind_socket(state::CONTROL_SOCKET)?;
    let lease = dir.bind_seqpacket(crate::lease::LEASE_SOCKET)?;
    let named = spec
        .namespaces
        .iter()
        .find(|ns| ns.kind == NamespaceKind::Network)
        .and_then(|ns| ns.path.clone());
    let netns = match named {
        Some(path) => NetNs::Named(path),
        None => NetNs::New(format!("/proc/{init}/ns/net").into()),
    };
    let runtime = bind_in_netns(
        &netns,
        SocketAddr::from((Ipv4Addr::LOCALHOST, RUNTIME_API_PORT)),
    )?;
    let invoke_tcp = spec
        .function
        .invoke_port
        .map(|port| bind_in_netns(&netns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))))
        .transpose()?;
    Ok(Listeners {
        notify,
        invoke,
        runtime,
        invoke_tcp,
        control,
        lease,
        runtime_unix,
    })
}

/// The network namespace the listeners go in.
enum NetNs {
    /// One the bundle names (a pod's), set up by whoever made it.
    Named(PathBuf),
    /// The init's own new one, which the init may still be building.
    New(PathBuf),
}

/// Binds a TCP listener inside the network namespace `netns`: a short-lived thread joins the
/// namespace (setns changes only the calling thread) and the socket stays in it. In a new
/// namespace the init brings `lo` up while it builds, and while that is under way 127.0.0.1
/// can be missing for a moment (a bind then fails with EADDRNOTAVAIL): the thread brings `lo`
/// up itself first, which returns only once the interface is up with its address, whoever
/// began.
fn bind_in_netns(netns: &NetNs, addr: SocketAddr) -> Result<TcpListener> {
    let (NetNs::Named(path) | NetNs::New(path)) = netns;
    let what = format!("{addr} in the network namespace {}", path.display());
    let listen_err = |source| Error::Listen {
        what: what.clone(),
        source,
    };
    let fresh = matches!(netns, NetNs::New(_));
    let netns = File::open(path).map_err(listen_err)?;
    let bound = std::thread::scope(|scope| {
        scope
            .spawn(|| -> std::io::Result<TcpListener> {
                setns(&netns, CloneFlags::CLONE_NEWNET)?;
                if fresh {
                    crate::sys::set_loopback_up()?;
                }
                let listener = TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(listener)
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")))
    });
    bound.map_err(listen_err)
}

/// Forks the supervisor: the child serves the environment for its whole life, the parent
/// (`create`) returns. Called single-threaded (the binding threads have ended).
pub fn start_supervisor(
    spec: &EnvironmentSpec,
    function: Function,
    cgroup: &Cgroup,
    spawned: Spawned,
    listeners: Listeners,
) -> Result<()> {
    let id = spec.bundle.display().to_string();
    match crate::sys::fork_single_threaded() {
        Err(e) => Err(Error::Supervisor {
            id,
            source: e.into(),
        }),
        Ok(ForkResult::Parent { .. }) => Ok(()),
        Ok(ForkResult::Child) => {
            // Out of the caller's session, so a terminal's Ctrl-C reaches `run`, which shuts
            // environments down in order, and not the supervisors directly.
            let _ = nix::unistd::setsid();
            if let Ok(null) = File::open("/dev/null") {
                let _ = nix::unistd::dup2_stdin(null);
            }
            serve::serve(
                spec.clone(),
                function,
                cgroup.clone(),
                spawned.channel,
                spawned.pid.as_raw(),
                spawned.pidfd,
                listeners,
            )
        }
    }
}
