//! Invoke benchmark of `runlambda run` with the Rust example function (`examples/rust_echo.rs`,
//! on the unmodified `lambda_runtime` crate), beside a reference measured in the same run: the
//! floor of the same invoke shape without containers.
//!
//! ```text
//! cargo build --release --example rust_echo    # the bench builds it (twice) when missing
//! tests/cgroup-view.sh cargo bench --bench invoke
//! ```
//!
//! It needs root, and refuses to run where the host's v1 memory cgroup hierarchy is visible
//! (runlambda creates cgroups): run it through `tests/cgroup-view.sh`. runlambda gets its own
//! config file (`--config`) with a private `state_root` and `cgroup_parent` in a temporary
//! directory and `allow_unenforced_memory = true` (a hybrid host has no memory controller to
//! enforce the function's memory).
//!
//! Parts, each printed as a table:
//!
//! - (a) **cold start**: `runlambda run DIR --provisioned 1 --listen 127.0.0.1:0`, timed from
//!   the spawn of `run` to (1) its `listening on` line (run's own start, `create` and `start` of
//!   the environment: Init has begun), (2) the answer to a first invoke sent as soon as that
//!   line appears on a new connection (it waits inside the environment until the runtime's first
//!   `next`), and (3) the same minus the median warm invoke that follows in that run (an estimate
//!   of spawn → ready). Also the `Init Duration` of the first REPORT line (the supervisor's
//!   clock: runtime spawned → its first `next`) and the time from SIGINT to run's exit (the
//!   Shutdown phase). The reference row runs `rust_echo` as a plain process against a TCP
//!   listener in the bench: spawn → its first `GET next` arrives. `rust_echo` is linked
//!   statically, as everything `.cargo/config.toml` builds; the rows "linked dynamically" run a
//!   second build with cargo's default linking (built once into `target/dynamic`), as most
//!   functions are: its loader searches Lambda's `LD_LIBRARY_PATH`, which runlambda gives the
//!   runtime as Lambda does (the plain references get it too). Each round runs a `run` with the
//!   state root on tmpfs, one with it on disk, one with the dynamically linked function, and
//!   the references; every `run` after a quiet spell, so that it finds the kernel as a user's
//!   first one does (some kernel steps are quicker right after others of their kind).
//! - (b) **warm invoke latency**: one environment (`--provisioned 1`), a sequential keep-alive
//!   HTTP/1.1 client (std `TcpStream`, `TCP_NODELAY`) posting a small JSON event to the Invoke
//!   API. The client being `run`'s only caller, its connection is lent to the environment,
//!   whose supervisor serves it (`run` is not on the path; see `src/lease.rs`). In the row
//!   "runlambda run, from frozen" the client waits, before each invoke, until the leaf's
//!   `cgroup.events` reads `frozen 1` (a wait neither timed nor counted): every invoke thaws a
//!   frozen environment and freezing follows it, the cycle of a function invoked now and then.
//!   In the row "runlambda run, back-to-back" (another environment) the client sends each
//!   invoke as soon as the last is answered, which is before the runtime asks for the next
//!   event: the environment then has an invoke waiting and is not frozen in between, as in
//!   Lambda. The row "runlambda, freeze delay" runs with `--freeze-delay-ms 10`. The reference
//!   ("floor") is a separate process (this bench binary re-executed) running a tokio
//!   current-thread hyper server with a Runtime API port, where a plain `rust_echo` process parks
//!   its `next`, and an Invoke API port for the same client: caller → server → runtime → server
//!   → caller, no containers, no freezing, no logs. All are warmed up, then measured in
//!   alternating blocks of 500 invokes so that machine noise hits all alike. If the AWS
//!   emulator (`aws-lambda-rie`) is on `PATH` it gets a row too (in the same blocks). The row
//!   "floor, from frozen" adds freezing to the floor: its runtime sits in a cgroup2 leaf of its
//!   own, which the floor server thaws before each delivery and asks to freeze (without
//!   waiting, through a `cgroup.freeze` file it keeps open) when the runtime waits in `next`;
//!   its client waits for `frozen 1` as the first row's does.
//!   The row "runlambda --memory 128" runs the function at Lambda's default size, whose CPU
//!   share (`cpu.max` 7.2 ms per 100 ms) throttles the runtime. Below the table: the CPU time
//!   each process used per invoke (`/proc/PID/task/*/schedstat`, the client's thread CPU
//!   clock), which machine noise disturbs far less than latency.
//! - (c) **throughput** with `--concurrency 2` and `4` (as many environments provisioned):
//!   that many client threads, each a sequential keep-alive client (with more than one caller,
//!   `run` routes every invocation itself); the floor serves the same
//!   clients with as many `rust_echo` processes. Alternating blocks again.
//! - (d) **memory**: `Rss` and `Pss` from `/proc/PID/smaps_rollup` of the supervisor and the
//!   init of an idle (frozen) environment, after one invoke and again after part (b); and per
//!   environment with four idle environments after part (c). The init is the process of the
//!   environment's leaf (`<cgroup2 mount>/<cgroup_parent>/<id>/cgroup.procs`) whose parent is
//!   `run`; the supervisor is the process outside the leaf whose command line is
//!   `runlambda … create … <id>`. The runtime (`rust_echo`, also in the leaf) and `run` itself are
//!   shown for reference.
//!
//! runlambda's state root is a tmpfs that the bench mounts in a mount namespace of its own, as
//! `/run` (the default state root, like runc's) is on a usual host; part (a) also times cold
//! starts with the state root on the temporary directory's file system, as on a host whose
//! `/run` is on disk.
//!
//! Every `run` gets `--memory 1769` (`RUNLAMBDA_BENCH_MEMORY` to change it) unless said:
//! Lambda's size for one full vCPU, so the runtime's CPU bandwidth (`cpu.max`) does not hide
//! runlambda's own costs.
//!
//! Counts: `RUNLAMBDA_BENCH_INVOKES` (default 5000) timed invokes per system in (b) and per
//! system and concurrency level in (c); `RUNLAMBDA_BENCH_COLD` (default 20) timed cold starts
//! per system in (a), after 2 warm-up rounds. The defaults take about a minute on an idle
//! machine. The load average is printed at the start and the end: on a busy machine the figures
//! are noisy, the ratios less so.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// The function's name: `run` names it after its directory.
const FUNCTION: &str = "rust-echo";
const PAYLOAD: &[u8] = br#"{"hello":"world","n":42}"#;
const DEFAULT_INVOKES: usize = 5000;
const DEFAULT_COLD: usize = 20;
/// One full vCPU in Lambda's proportion (cpu.max = the whole period): the runtime is not
/// throttled, so the figures show runlambda's own costs.
const DEFAULT_MEMORY: usize = 1769;
/// Lambda's (and runlambda's) default function memory.
const LAMBDA_DEFAULT_MEMORY: u32 = 128;
const COLD_WARMUPS: usize = 2;
/// The idle time before each cold start: longer than the kernel's RCU grace periods, after
/// which a cgroup move has no recent one to ride on.
const COLD_QUIET: Duration = Duration::from_millis(100);
/// Invokes per measured block; systems alternate block by block.
const BLOCK: usize = 500;
/// Untimed invokes per system before the blocks.
const WARMUP_INVOKES: usize = 500;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// The label of the reference rows.
const FLOOR: &str = "floor (no containers)";
/// The label of the goal's row: every invoke thaws a frozen environment.
const FROZEN: &str = "runlambda run, from frozen";
/// The label of the row whose caller sends each invoke as soon as the last is answered.
const BACK_TO_BACK: &str = "runlambda run, back-to-back";
/// The label of the rows where several callers are routed by `run`.
const ROUTED: &str = "runlambda run";
/// How often a paced client looks whether the environment froze.
const PACE_POLL: Duration = Duration::from_micros(20);
/// The role of a re-executed bench binary.
const ROLE_VAR: &str = "RUNLAMBDA_BENCH_ROLE";
/// For the floor server: the cgroup2 leaf of its runtime, to freeze and thaw.
const FREEZE_VAR: &str = "RUNLAMBDA_BENCH_FREEZE";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    if std::env::var_os(ROLE_VAR).is_some_and(|r| r == "floor-server") {
        return floor::main();
    }
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("invoke bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mounts = Mounts::read()?;
    if mounts.v1_memory {
        return Err(
            "the host's v1 memory cgroup hierarchy is visible, and runlambda would \
                    create cgroups beside it: run the bench through the cgroup view, \
                    `tests/cgroup-view.sh cargo bench --bench invoke`"
                .into(),
        );
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the bench needs root".into());
    }
    let unified = mounts
        .unified
        .clone()
        .ok_or("no cgroup2 mount: runlambda needs one")?;
    let invokes = count_from_env("RUNLAMBDA_BENCH_INVOKES", DEFAULT_INVOKES)?;
    let cold_runs = count_from_env("RUNLAMBDA_BENCH_COLD", DEFAULT_COLD)?;
    let memory = u32::try_from(count_from_env("RUNLAMBDA_BENCH_MEMORY", DEFAULT_MEMORY)?)
        .map_err(|_| "RUNLAMBDA_BENCH_MEMORY is too large")?;
    let load_start = load_average();
    let started = Instant::now();

    // While the bench is still single-threaded.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot make a mount namespace for the state root: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("runlambda-bench-invoke")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let bench = Bench::prepare(dir.path(), unified)?;
    println!();
    println!(
        "runlambda invoke bench: function {FUNCTION} (examples/rust_echo.rs, lambda_runtime), \
         event {} bytes, --memory {memory} unless said, {} CPUs, load average at start \
         {load_start}",
        PAYLOAD.len(),
        thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let rie = find_on_path("aws-lambda-rie");

    let cold = cold_starts(&bench, cold_runs, memory)?;
    print_cold(&cold, cold_runs);

    // (b) and the first half of (d): one environment.
    let mut single = RunServer::start(&bench, 1, memory)?;
    // One invoke on a connection closed at once, as a one-off caller makes it.
    check_echo(&mut Client::connect(single.endpoint)?)?;
    let fresh = bench.memory(&single)?;
    let floor1 = Floor::start(&bench, 1)?;
    let floor_freeze = Floor::with_freezing(&bench)?;
    let mut rie_server = match &rie {
        Some(path) => Some(Rie::start(path, &bench)?),
        None => None,
    };
    // Lambda's CPU share: 128 MB gets 7.2 ms of CPU per 100 ms period (cpu.max).
    let mut small = match memory {
        LAMBDA_DEFAULT_MEMORY => None,
        _ => Some(RunServer::start(&bench, 1, LAMBDA_DEFAULT_MEMORY)?),
    };
    // Its caller sends the next invoke as soon as an answer arrives, before the runtime asks
    // for the next event: the environment has an invoke waiting and does not freeze.
    let back_to_back = RunServer::start(&bench, 1, memory)?;
    // Back-to-back invokes within the delay never freeze.
    let delayed = RunServer::start_with(&bench, 1, memory, &["--freeze-delay-ms", "10"])?;
    let mut targets = vec![
        Target::new(FROZEN, single.endpoint, bench.cpu_pids(&single)?).paced(&bench.leaf(&single)?),
        Target::new(
            BACK_TO_BACK,
            back_to_back.endpoint,
            bench.cpu_pids(&back_to_back)?,
        ),
        Target::new(
            "runlambda, freeze delay",
            delayed.endpoint,
            bench.cpu_pids(&delayed)?,
        ),
        Target::new(FLOOR, floor1.endpoint, floor1.pids()),
    ];
    let floor_frozen = Target::new(
        "floor, from frozen",
        floor_freeze.endpoint,
        floor_freeze.pids(),
    );
    targets.push(match &floor_freeze.leaf {
        Some(leaf) => floor_frozen.paced(leaf),
        None => floor_frozen,
    });
    if let Some(s) = &small {
        targets.push(Target::new(
            "runlambda --memory 128",
            s.endpoint,
            bench.cpu_pids(s)?,
        ));
    }
    if let Some(r) = &rie_server {
        targets.push(Target::new("aws-lambda-rie", r.endpoint, r.pids()));
    }
    let warm = measure(&mut targets, 1, invokes)?;
    print_throughput(
        "(b) warm invoke latency, one environment, sequential keep-alive client over TCP",
        &warm,
        invokes,
        1,
        rie.is_none(),
    );
    let after_b = bench.memory(&single)?;
    if let Some(leaf) = &floor_freeze.leaf {
        let frozen = wait_frozen(leaf).is_ok();
        println!(
            "the floor's freezing leaf read `frozen 1` when idle: {}",
            if frozen {
                "yes"
            } else {
                "NO (its row is not what it says)"
            }
        );
    }
    let floor1_memory = floor1.memory();
    drop(floor1);
    drop(back_to_back);
    drop(delayed);
    drop(floor_freeze);
    if let Some(r) = rie_server.as_mut() {
        r.stop();
    }
    if let Some(s) = small.as_mut() {
        s.stop();
    }
    single.stop();

    // (c) and the rest of (d).
    let mut concurrent = Vec::new();
    let mut many_memory = None;
    for level in [2, 4] {
        let mut server = RunServer::start(&bench, level, memory)?;
        let floor = Floor::start(&bench, level)?;
        let mut targets = vec![
            Target::new(ROUTED, server.endpoint, bench.cpu_pids(&server)?),
            Target::new(FLOOR, floor.endpoint, floor.pids()),
        ];
        let results = measure(&mut targets, level, invokes)?;
        if level == 4 {
            many_memory = Some(bench.memory(&server)?);
        }
        server.stop();
        concurrent.push((level, results));
    }
    print_concurrency(&warm, &concurrent, invokes);
    print_memory(&fresh, &after_b, many_memory.as_ref(), &floor1_memory);

    bench.cleanup(&mounts);
    println!();
    println!(
        "load average at end {} (bench took {:.0} s)",
        load_average(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn count_from_env(var: &str, default: usize) -> Result<usize> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(value) => match value.parse() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{var}={value:?}: expected a positive number")),
        },
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The cgroup mounts this process sees.
struct Mounts {
    unified: Option<PathBuf>,
    v1: Vec<PathBuf>,
    v1_memory: bool,
}

impl Mounts {
    fn read() -> Result<Mounts> {
        let text = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mut mounts = Mounts {
            unified: None,
            v1: Vec::new(),
            v1_memory: false,
        };
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(point) = left.split(' ').nth(4).map(PathBuf::from) else {
                continue;
            };
            let fields: Vec<&str> = right.split(' ').collect();
            match fields.first() {
                Some(&"cgroup2") => mounts.unified = Some(point),
                Some(&"cgroup") => {
                    let options = fields.get(2).copied().unwrap_or_default();
                    mounts.v1_memory |= options.split(',').any(|o| o == "memory");
                    mounts.v1.push(point);
                }
                _ => {}
            }
        }
        Ok(mounts)
    }
}

/// The temporary directory: runlambda's config and state, the function.
struct Bench {
    runlambda: PathBuf,
    rust_echo: PathBuf,
    /// The same, linked dynamically.
    rust_echo_dynamic: PathBuf,
    /// State root on a tmpfs.
    config: PathBuf,
    /// State root on the temporary directory's disk.
    config_on_disk: PathBuf,
    function: PathBuf,
    /// The same function with `rust_echo_dynamic` as its `bootstrap`.
    function_dynamic: PathBuf,
    cgroup_parent: String,
    /// `<cgroup2 mount>/<cgroup_parent>`.
    leaves: PathBuf,
}

impl Bench {
    fn prepare(dir: &Path, unified: PathBuf) -> Result<Bench> {
        let runlambda = PathBuf::from(env!("CARGO_BIN_EXE_runlambda"));
        let rust_echo = rust_echo_binary(&runlambda, Linking::Static)?;
        let rust_echo_dynamic = rust_echo_binary(&runlambda, Linking::Dynamic)?;
        let cgroup_parent = format!("runlambda-bench-invoke-{}", std::process::id());
        let state = dir.join("state");
        fs::create_dir(&state).map_err(|e| format!("cannot create {}: {e}", state.display()))?;
        // Seen by the bench and what it starts alone (the caller unshared the mount namespace).
        use nix::mount::{mount, MsFlags};
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .and_then(|()| {
            mount(
                Some("tmpfs"),
                &state,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0700"),
            )
        })
        .map_err(|e| format!("cannot mount a tmpfs on {}: {e}", state.display()))?;
        let write_config = |name: &str, state_root: &Path| -> Result<PathBuf> {
            let config = dir.join(name);
            let toml = format!(
                "state_root = {:?}\ncgroup_parent = {cgroup_parent:?}\nallow_unenforced_memory = true\n",
                state_root.display().to_string()
            );
            fs::write(&config, toml)
                .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
            Ok(config)
        };
        let config = write_config("runlambda.toml", &state)?;
        let config_on_disk = write_config("runlambda-disk.toml", &dir.join("state-on-disk"))?;
        // The `provided` layout, readable by the sandbox user as Lambda's unzip leaves it.
        let make_function = |function: PathBuf, binary: &Path| -> Result<PathBuf> {
            let bootstrap = function.join("bootstrap");
            fs::create_dir_all(&function)
                .and_then(|()| fs::copy(binary, &bootstrap).map(drop))
                .and_then(|()| fs::set_permissions(&function, fs::Permissions::from_mode(0o755)))
                .and_then(|()| fs::set_permissions(&bootstrap, fs::Permissions::from_mode(0o755)))
                .map_err(|e| format!("cannot make {}: {e}", function.display()))?;
            Ok(function)
        };
        let function = make_function(dir.join(FUNCTION), &rust_echo)?;
        let function_dynamic =
            make_function(dir.join("dynamic").join(FUNCTION), &rust_echo_dynamic)?;
        Ok(Bench {
            runlambda,
            rust_echo,
            rust_echo_dynamic,
            config,
            config_on_disk,
            function,
            function_dynamic,
            leaves: unified.join(&cgroup_parent),
            cgroup_parent,
        })
    }

    /// `runlambda --config CONFIG run FUNCTION --listen 127.0.0.1:0 ...`.
    fn run_command(&self, provisioned: usize, concurrency: usize, memory: u32) -> Command {
        self.run_command_with(
            &self.config,
            &self.function,
            provisioned,
            concurrency,
            memory,
        )
    }

    fn run_command_with(
        &self,
        config: &Path,
        function: &Path,
        provisioned: usize,
        concurrency: usize,
        memory: u32,
    ) -> Command {
        let mut cmd = Command::new(&self.runlambda);
        cmd.arg("--config")
            .arg(config)
            .arg("run")
            .arg(function)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--provisioned", &provisioned.to_string()])
            .args(["--concurrency", &concurrency.to_string()])
            .args(["--memory", &memory.to_string()]);
        cmd
    }

    /// `binary` (a `rust_echo`) as a plain process whose Runtime API is `api`, with the
    /// loader's search path Lambda gives a runtime.
    fn plain_runtime(binary: &Path, api: SocketAddr) -> Result<Child> {
        Command::new(binary)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LD_LIBRARY_PATH", runlambda::supervisor::LD_LIBRARY_PATH)
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))
    }

    /// The processes of every environment of `server`.
    fn environments(&self, server: &RunServer) -> Result<Vec<EnvPids>> {
        let run = server.child.id() as i32;
        let prefix = format!("{FUNCTION}-{run}-");
        let mut ids: Vec<String> = fs::read_dir(&self.leaves)
            .map_err(|e| format!("cannot list {}: {e}", self.leaves.display()))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.starts_with(&prefix))
            .collect();
        ids.sort();
        let processes = all_processes();
        let mut found = Vec::new();
        for id in ids {
            let leaf = self.leaves.join(&id);
            let procs = fs::read_to_string(leaf.join("cgroup.procs"))
                .map_err(|e| format!("cannot read {}/cgroup.procs: {e}", leaf.display()))?;
            let in_leaf: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            let init = in_leaf
                .iter()
                .copied()
                .find(|&p| parent_of(p) == Some(run))
                .ok_or_else(|| format!("{id}: no process of the leaf is a child of run"))?;
            let supervisor = processes
                .iter()
                .find(|(pid, args)| {
                    // `create` (run's child) forks the supervisor and exits.
                    !in_leaf.contains(pid)
                        && parent_of(*pid) != Some(run)
                        && args.iter().any(|a| a == "create")
                        && args.last().is_some_and(|a| *a == id)
                })
                .map(|(pid, _)| *pid)
                .ok_or_else(|| format!("{id}: no `runlambda … create … {id}` process"))?;
            found.push(EnvPids {
                leaf,
                run,
                supervisor,
                init,
                runtimes: in_leaf.into_iter().filter(|&p| p != init).collect(),
            });
        }
        if found.is_empty() {
            return Err(format!(
                "no environment of run {run} under {}",
                self.leaves.display()
            ));
        }
        Ok(found)
    }

    /// Memory of every environment of `server`, once each is idle and frozen.
    fn memory(&self, server: &RunServer) -> Result<Vec<EnvMemory>> {
        let mut found = Vec::new();
        for env in self.environments(server)? {
            wait_frozen(&env.leaf)?;
            found.push(EnvMemory {
                supervisor: rollup(env.supervisor)?,
                init: rollup(env.init)?,
                runtime: env
                    .runtimes
                    .iter()
                    .map(|&p| rollup(p))
                    .collect::<Result<Vec<_>>>()?,
                run: rollup(env.run)?,
            });
        }
        Ok(found)
    }

    /// The cgroup2 leaf of `server`'s (first) environment.
    fn leaf(&self, server: &RunServer) -> Result<PathBuf> {
        Ok(self.environments(server)?.swap_remove(0).leaf)
    }

    /// The processes whose CPU time part (b) and (c) account per invoke.
    fn cpu_pids(&self, server: &RunServer) -> Result<Vec<(&'static str, i32)>> {
        let envs = self.environments(server)?;
        let mut pids = vec![("run (front)", envs[0].run)];
        for env in &envs {
            pids.push(("supervisor", env.supervisor));
            pids.push(("init", env.init));
            pids.extend(env.runtimes.iter().map(|&p| ("runtime", p)));
        }
        Ok(pids)
    }

    /// Removes the parent cgroups runlambda made (their leaves are gone with the runs).
    fn cleanup(&self, mounts: &Mounts) {
        for mount in mounts.v1.iter().chain(&mounts.unified) {
            let parent = mount.join(&self.cgroup_parent);
            match fs::remove_dir(&parent) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    eprintln!("note: {} left in place: {e}", parent.display());
                }
                _ => {}
            }
        }
    }
}

/// How the `rust_echo` under test is linked.
#[derive(Clone, Copy)]
enum Linking {
    /// As `.cargo/config.toml` builds everything here: `target/<triple>/<profile>/examples/`,
    /// beside the runlambda binary.
    Static,
    /// Cargo's default, as most functions are built: `target/dynamic/<triple>/<profile>/examples/`.
    Dynamic,
}

/// The `rust_echo` example, linked as asked; built (release profile only) when missing.
fn rust_echo_binary(runlambda: &Path, linking: Linking) -> Result<PathBuf> {
    let bin_dir = runlambda
        .parent()
        .ok_or("the runlambda binary has no directory")?;
    let profile = bin_dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let triple_dir = bin_dir
        .parent()
        .ok_or("the profile directory has no parent")?;
    let dynamic_dir = triple_dir
        .parent()
        .ok_or("the target directory has no parent")?
        .join("dynamic");
    let path = match linking {
        Linking::Static => bin_dir.join("examples/rust_echo"),
        Linking::Dynamic => dynamic_dir
            .join(triple_dir.file_name().unwrap_or_default())
            .join(profile)
            .join("examples/rust_echo"),
    };
    if path.is_file() {
        return Ok(path);
    }
    if profile != "release" {
        return Err(format!(
            "{} is missing: build it with `cargo build --example rust_echo` (same profile)",
            path.display()
        ));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "--example",
            "rust_echo",
            "--manifest-path",
        ])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    if let Linking::Dynamic = linking {
        // Set, even empty, these replace the config's static flags and libseccomp archive.
        build
            .arg("--target-dir")
            .arg(&dynamic_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", "")
            .env("LIBSECCOMP_LINK_TYPE", "dylib");
    }
    eprintln!("building the rust_echo example: {build:?}");
    let status = build
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() || !path.is_file() {
        return Err(format!(
            "building {} failed ({status}); build it by hand",
            path.display()
        ));
    }
    Ok(path)
}

/// Waits (up to 2 s) for `frozen 1` in `events` (a `cgroup.events`), looking every
/// [`PACE_POLL`].
fn until_frozen(events: &Path) -> std::result::Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let text = fs::read_to_string(events)
            .map_err(|e| format!("cannot read {}: {e}", events.display()))?;
        if text.lines().any(|l| l == "frozen 1") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{} never read `frozen 1`", events.display()));
        }
        thread::sleep(PACE_POLL);
    }
}

/// Waits (up to 2 s) for `frozen 1` in the leaf's `cgroup.events`, then lets the supervisor's
/// own bookkeeping after the last invoke settle.
fn wait_frozen(leaf: &Path) -> Result<()> {
    until_frozen(&leaf.join("cgroup.events"))?;
    thread::sleep(Duration::from_millis(50));
    Ok(())
}

/// Every process's pid and command line.
fn all_processes() -> Vec<(i32, Vec<String>)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// The parent pid, from `/proc/PID/stat` (the fields after the command's closing parenthesis).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `Rss` and `Pss` in KiB from `/proc/PID/smaps_rollup`.
#[derive(Clone, Copy, Default)]
struct Rollup {
    rss_kib: u64,
    pss_kib: u64,
}

impl std::ops::Add for Rollup {
    type Output = Rollup;
    fn add(self, other: Rollup) -> Rollup {
        Rollup {
            rss_kib: self.rss_kib + other.rss_kib,
            pss_kib: self.pss_kib + other.pss_kib,
        }
    }
}

fn rollup(pid: i32) -> Result<Rollup> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("{path}: no {name}"))
    };
    Ok(Rollup {
        rss_kib: field("Rss:")?,
        pss_kib: field("Pss:")?,
    })
}

/// The processes of one environment, and its `run`.
struct EnvPids {
    leaf: PathBuf,
    run: i32,
    supervisor: i32,
    init: i32,
    runtimes: Vec<i32>,
}

/// CPU time a process (all its threads) has used, from `/proc/PID/task/*/schedstat`.
fn cpu_ns(pid: i32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU time of the calling thread.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Memory of one idle environment and of its `run`.
struct EnvMemory {
    supervisor: Rollup,
    init: Rollup,
    runtime: Vec<Rollup>,
    run: Rollup,
}

// ---------------------------------------------------------------------------------------------
// `runlambda run`

/// A running `runlambda run`; stopped with SIGINT (Ctrl-C) when dropped.
struct RunServer {
    child: Child,
    endpoint: SocketAddr,
    spawned: Instant,
    /// When the `listening on` line was read.
    listening: Instant,
    watch: Arc<Mutex<Watch>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stopped: bool,
}

/// What the stdout reader saw: the environments' logs (START/END/REPORT, the runtime's lines).
#[derive(Default)]
struct Watch {
    reports: usize,
    /// `Init Duration` of REPORT lines, in ms.
    init_ms: Vec<f64>,
    /// Lines that are not START/END/REPORT (the runtime's own output, runlambda's notes).
    other: VecDeque<String>,
}

impl RunServer {
    /// `run` with `level` environments provisioned, `--concurrency level` and `--memory`,
    /// once every environment has finished Init (its runtime waits in `next`, frozen).
    fn start(bench: &Bench, level: usize, memory: u32) -> Result<RunServer> {
        Self::start_with(bench, level, memory, &[])
    }

    /// `start` with more options for `run`.
    fn start_with(bench: &Bench, level: usize, memory: u32, extra: &[&str]) -> Result<RunServer> {
        let mut command = bench.run_command(level, level, memory);
        command.args(extra);
        let server = Self::spawn(command)?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            // Until then an environment may lack its runtime, or `create` still be running.
            let envs = bench.environments(&server).unwrap_or_default();
            let ready = envs.len() == level
                && envs.iter().all(|e| {
                    !e.runtimes.is_empty()
                        && fs::read_to_string(e.leaf.join("cgroup.events"))
                            .is_ok_and(|t| t.lines().any(|l| l == "frozen 1"))
                });
            if ready {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "the {level} environment(s) of run never all finished Init; stderr:\n{}",
                    server.stderr()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn spawn(mut cmd: Command) -> Result<RunServer> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot spawn runlambda: {e}"))?;
        let watch = Arc::new(Mutex::new(Watch::default()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        let sink = watch.clone();
        thread::spawn(move || watch_stdout(out, sink, tx));
        let err = child.stderr.take().expect("piped");
        let sink = stderr.clone();
        thread::spawn(move || drain(err, sink));
        let mut server = RunServer {
            child,
            endpoint: SocketAddr::from(([127, 0, 0, 1], 0)),
            spawned,
            listening: spawned,
            watch,
            stderr,
            stopped: false,
        };
        match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok((endpoint, at)) => {
                server.endpoint = endpoint;
                server.listening = at;
                Ok(server)
            }
            Err(_) => {
                server.stop();
                Err(format!(
                    "runlambda run never printed `listening on http://...`; stderr:\n{}",
                    server.stderr()
                ))
            }
        }
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// SIGINT, then SIGKILL after 10 s; returns how long the exit took.
    fn stop(&mut self) -> Duration {
        let asked = Instant::now();
        if self.stopped {
            return Duration::ZERO;
        }
        self.stopped = true;
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = asked + SHUTDOWN_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    eprintln!("note: runlambda run {pid} ignored SIGINT for 10 s: killed");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(1)),
            }
        }
        asked.elapsed()
    }
}

impl Drop for RunServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn watch_stdout(out: impl Read, watch: Arc<Mutex<Watch>>, tx: mpsc::Sender<(SocketAddr, Instant)>) {
    let mut reader = BufReader::new(out);
    let mut tx = Some(tx);
    let mut line = String::new();
    while let Ok(n) = reader.read_line(&mut line) {
        if n == 0 {
            break;
        }
        let text = line.trim_end();
        if let Some(endpoint) = listening_endpoint(text) {
            if let Some(tx) = tx.take() {
                let _ = tx.send((endpoint, Instant::now()));
            }
        }
        let mut w = watch.lock().unwrap();
        if text.starts_with("REPORT RequestId: ") {
            w.reports += 1;
            if let Some(ms) = init_duration(text) {
                w.init_ms.push(ms);
            }
        } else if !text.starts_with("START RequestId: ") && !text.starts_with("END RequestId: ") {
            if w.other.len() == 20 {
                w.other.pop_front();
            }
            w.other.push_back(text.to_string());
        }
        drop(w);
        line.clear();
    }
}

fn listening_endpoint(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let authority = rest
        .split_whitespace()
        .next()?
        .trim_end_matches(['.', ',', '/']);
    authority.parse().ok()
}

/// The `Init Duration: X ms` of a REPORT line.
fn init_duration(report: &str) -> Option<f64> {
    let rest = &report[report.find("Init Duration: ")? + "Init Duration: ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn drain(mut from: impl Read, sink: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let mut s = sink.lock().unwrap();
        s.extend_from_slice(&buf[..n]);
        let excess = s.len().saturating_sub(16 * 1024);
        s.drain(..excess);
    }
}

// ---------------------------------------------------------------------------------------------
// The client

/// A sequential keep-alive HTTP/1.1 client of the Invoke API.
struct Client {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Client {
    fn connect(endpoint: SocketAddr) -> Result<Client> {
        let connected = TcpStream::connect(endpoint).and_then(|stream| {
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            stream.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(stream)
        });
        let stream = connected.map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
        let mut request = format!(
            "POST /2015-03-31/functions/{FUNCTION}/invocations HTTP/1.1\r\nHost: {endpoint}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            PAYLOAD.len()
        )
        .into_bytes();
        request.extend_from_slice(PAYLOAD);
        Ok(Client {
            stream,
            request,
            buf: Vec::with_capacity(4096),
        })
    }

    /// One invoke; returns the status and the body.
    fn invoke(&mut self) -> io::Result<(u16, &[u8])> {
        self.stream.write_all(&self.request)?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("non-UTF-8 head"))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| bad("no Content-Length"))?;
        while self.buf.len() < head_end + length {
            self.fill()?;
        }
        Ok((status, &self.buf[head_end..head_end + length]))
    }

    fn fill(&mut self) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.resize(start + 4096, 0);
        let n = self.stream.read(&mut self.buf[start..])?;
        self.buf.truncate(start + n);
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One invoke whose answer must be the echo of the event.
fn check_echo(client: &mut Client) -> Result<()> {
    let (status, body) = client.invoke().map_err(|e| format!("invoke: {e}"))?;
    let text = String::from_utf8_lossy(body);
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("invoke answered {status} {text}: {e}"))?;
    let expected: serde_json::Value = serde_json::from_slice(PAYLOAD).expect("JSON payload");
    if status != 200 || value["echo"] != expected {
        return Err(format!("invoke answered {status} {text}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// One system under test with its results.
struct Target {
    label: String,
    endpoint: SocketAddr,
    /// Latencies in µs.
    samples: Vec<f64>,
    /// Wall time of the measured blocks.
    busy: Duration,
    errors: usize,
    first_error: Option<String>,
    /// The server side's processes, whose CPU time is accounted per invoke.
    pids: Vec<(&'static str, i32)>,
    /// CPU time of the client threads in the measured blocks.
    client_cpu_ns: u64,
    /// `cgroup.events` of a leaf that must read `frozen 1` before each invoke is sent.
    pace: Option<PathBuf>,
}

impl Target {
    fn new(label: &str, endpoint: SocketAddr, pids: Vec<(&'static str, i32)>) -> Target {
        Target {
            label: label.to_string(),
            endpoint,
            samples: Vec::new(),
            busy: Duration::ZERO,
            errors: 0,
            first_error: None,
            pids,
            client_cpu_ns: 0,
            pace: None,
        }
    }

    /// Each invoke waits until `leaf` is frozen (the wait is neither timed nor counted).
    fn paced(mut self, leaf: &Path) -> Target {
        self.pace = Some(leaf.join("cgroup.events"));
        self
    }

    fn per_second(&self) -> f64 {
        self.samples.len() as f64 / self.busy.as_secs_f64()
    }
}

/// Warms every target up, then runs blocks of `BLOCK` invokes (spread over `threads`
/// sequential keep-alive clients) target after target until each has `invokes` samples.
fn measure(targets: &mut [Target], threads: usize, invokes: usize) -> Result<Vec<Summary>> {
    let mut clients: Vec<Vec<Client>> = targets
        .iter()
        .map(|t| (0..threads).map(|_| Client::connect(t.endpoint)).collect())
        .collect::<Result<_>>()?;
    for (target, clients) in targets.iter().zip(clients.iter_mut()) {
        for client in clients.iter_mut() {
            check_echo(client).map_err(|e| format!("{}: {e}", target.label))?;
        }
    }
    for (target, clients) in targets.iter_mut().zip(clients.iter_mut()) {
        let mut scratch = Target::new(&target.label, target.endpoint, Vec::new());
        scratch.pace = target.pace.clone();
        block(&mut scratch, clients, WARMUP_INVOKES);
        if scratch.errors > 0 {
            return Err(format!(
                "{}: {} of {WARMUP_INVOKES} warm-up invokes failed: {}",
                target.label,
                scratch.errors,
                scratch.first_error.unwrap_or_default()
            ));
        }
    }
    let cpu_before: Vec<Vec<u64>> = targets
        .iter()
        .map(|t| t.pids.iter().map(|&(_, pid)| cpu_ns(pid)).collect())
        .collect();
    let mut done = 0;
    while done < invokes {
        let n = BLOCK.min(invokes - done);
        for (target, clients) in targets.iter_mut().zip(clients.iter_mut()) {
            block(target, clients, n);
        }
        done += n;
    }
    Ok(targets
        .iter()
        .zip(cpu_before)
        .map(|(target, before)| {
            let mut summary = Summary::of(target);
            let per_invoke = |ns: u64| ns as f64 / 1e3 / target.samples.len().max(1) as f64;
            summary
                .cpu
                .push(("client", per_invoke(target.client_cpu_ns)));
            for (&(label, pid), before) in target.pids.iter().zip(before) {
                let used = per_invoke(cpu_ns(pid).saturating_sub(before));
                match summary.cpu.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, sum)) => *sum += used,
                    None => summary.cpu.push((label, used)),
                }
            }
            summary
        })
        .collect())
}

/// `n` invokes spread over the clients, each on its own thread; records into `target`.
fn block(target: &mut Target, clients: &mut [Client], n: usize) {
    let per = n.div_ceil(clients.len());
    let pace = target.pace.as_deref();
    type Done = (Vec<f64>, usize, Option<String>, Duration, u64);
    let results: Vec<Done> = thread::scope(|s| {
        let handles: Vec<_> = clients
            .iter_mut()
            .map(|client| {
                s.spawn(move || {
                    let mut samples = Vec::with_capacity(per);
                    let mut errors = 0;
                    let mut first_error = None;
                    let (mut cpu, mut wall) = (0, Duration::ZERO);
                    for _ in 0..per {
                        if let Some(events) = pace {
                            if let Err(e) = until_frozen(events) {
                                errors += 1;
                                first_error.get_or_insert(e);
                                break;
                            }
                        }
                        let (cpu_start, t) = (thread_cpu_ns(), Instant::now());
                        match client.invoke() {
                            Ok((200, _)) => samples.push(t.elapsed().as_secs_f64() * 1e6),
                            Ok((status, body)) => {
                                errors += 1;
                                first_error.get_or_insert_with(|| {
                                    format!("{status} {}", String::from_utf8_lossy(body))
                                });
                            }
                            Err(e) => {
                                errors += 1;
                                first_error.get_or_insert_with(|| e.to_string());
                                break; // the connection is unusable
                            }
                        }
                        wall += t.elapsed();
                        cpu += thread_cpu_ns().saturating_sub(cpu_start);
                    }
                    (samples, errors, first_error, wall, cpu)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // The clients run side by side: the block lasts as long as the busiest one.
    target.busy += results.iter().map(|r| r.3).max().expect("one client");
    for (samples, errors, first_error, _, cpu) in results {
        target.client_cpu_ns += cpu;
        target.samples.extend(samples);
        target.errors += errors;
        if target.first_error.is_none() {
            target.first_error = first_error;
        }
    }
}

/// The figures of one target.
struct Summary {
    label: String,
    count: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    /// Invokes that took 5 ms or more.
    slow: usize,
    per_second: f64,
    errors: usize,
    first_error: Option<String>,
    /// CPU time per invoke, µs, by process (the client first).
    cpu: Vec<(&'static str, f64)>,
}

impl Summary {
    fn of(target: &Target) -> Summary {
        let sorted = sorted(&target.samples);
        Summary {
            label: target.label.clone(),
            count: sorted.len(),
            p50: percentile(&sorted, 0.50),
            p90: percentile(&sorted, 0.90),
            p99: percentile(&sorted, 0.99),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            slow: sorted.iter().filter(|&&us| us >= 5000.0).count(),
            per_second: target.per_second(),
            errors: target.errors,
            first_error: target.first_error.clone(),
            cpu: Vec::new(),
        }
    }
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The nearest-rank percentile of sorted samples (the median of an even count is the mean of
/// the middle two).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if q == 0.5 && n.is_multiple_of(2) {
        return (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
    }
    sorted[((q * n as f64).ceil() as usize).clamp(1, n) - 1]
}

// ---------------------------------------------------------------------------------------------
// (a) Cold start

struct ColdSample {
    listening_ms: f64,
    first_answer_ms: f64,
    ready_ms: f64,
    init_ms: Option<f64>,
    shutdown_ms: f64,
}

struct Cold {
    runlambda: Vec<ColdSample>,
    /// The same with the state root on disk.
    on_disk: Vec<ColdSample>,
    /// The same with the function linked dynamically.
    dynamic: Vec<ColdSample>,
    /// spawn → first `GET next` of a plain `rust_echo`, in ms.
    plain: Vec<f64>,
    /// The same, linked dynamically.
    plain_dynamic: Vec<f64>,
}

fn cold_starts(bench: &Bench, runs: usize, memory: u32) -> Result<Cold> {
    let mut cold = Cold {
        runlambda: Vec::new(),
        on_disk: Vec::new(),
        dynamic: Vec::new(),
        plain: Vec::new(),
        plain_dynamic: Vec::new(),
    };
    for round in 0..COLD_WARMUPS + runs {
        let keep = round >= COLD_WARMUPS;
        thread::sleep(COLD_QUIET);
        let sample = cold_runlambda(bench, &bench.config, &bench.function, memory)?;
        thread::sleep(COLD_QUIET);
        let on_disk = cold_runlambda(bench, &bench.config_on_disk, &bench.function, memory)?;
        thread::sleep(COLD_QUIET);
        let dynamic = cold_runlambda(bench, &bench.config, &bench.function_dynamic, memory)?;
        let plain = cold_plain(&bench.rust_echo)?;
        let plain_dynamic = cold_plain(&bench.rust_echo_dynamic)?;
        if keep {
            cold.runlambda.push(sample);
            cold.on_disk.push(on_disk);
            cold.dynamic.push(dynamic);
            cold.plain.push(plain);
            cold.plain_dynamic.push(plain_dynamic);
        }
    }
    Ok(cold)
}

/// Spawn of `run --provisioned 1` → `listening on` → first answer; then a few warm invokes;
/// then SIGINT → exit.
fn cold_runlambda(
    bench: &Bench,
    config: &Path,
    function: &Path,
    memory: u32,
) -> Result<ColdSample> {
    let mut server = RunServer::spawn(bench.run_command_with(config, function, 1, 1, memory))?;
    let listening_ms = ms(server.listening - server.spawned);
    let mut client = Client::connect(server.endpoint)?;
    check_echo(&mut client).map_err(|e| format!("first invoke: {e}\n{}", server.stderr()))?;
    let first_answer_ms = ms(server.spawned.elapsed());
    let mut warm = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        check_echo(&mut client)?;
        warm.push(ms(t.elapsed()));
    }
    let warm_ms = percentile(&sorted(&warm), 0.5);
    // The REPORT of the first invoke is written when the runtime asks for the next one, so it
    // is on stdout by now; give the reader thread a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    let init_ms = loop {
        let seen = server.watch.lock().unwrap().init_ms.first().copied();
        if seen.is_some() || Instant::now() >= deadline {
            break seen;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let shutdown_ms = ms(server.stop());
    Ok(ColdSample {
        listening_ms,
        first_answer_ms,
        ready_ms: first_answer_ms - warm_ms,
        init_ms,
        shutdown_ms,
    })
}

/// Spawn of a plain `rust_echo` → its first `GET .../invocation/next` has arrived.
fn cold_plain(rust_echo: &Path) -> Result<f64> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a listener: {e}"))?;
    let api = listener.local_addr().map_err(|e| e.to_string())?;
    let spawned = Instant::now();
    let mut child = Bench::plain_runtime(rust_echo, api)?;
    let result = (|| -> io::Result<f64> {
        let (stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let at = spawned.elapsed();
        if !line.starts_with("GET /2018-06-01/runtime/invocation/next") {
            return Err(bad(&format!("unexpected first request {line:?}")));
        }
        Ok(ms(at))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result.map_err(|e| format!("plain rust_echo: {e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------------------------
// The floor: the invoke shape without containers

/// The floor server process and its runtimes.
struct Floor {
    server: Child,
    runtimes: Vec<Child>,
    endpoint: SocketAddr,
    /// The cgroup the runtime is frozen in, for the variant with freezing.
    leaf: Option<PathBuf>,
}

impl Floor {
    /// The floor server (this binary re-executed) with `runtimes` plain `rust_echo` processes.
    fn start(bench: &Bench, runtimes: usize) -> Result<Floor> {
        Self::start_with(bench, runtimes, None)
    }

    /// The floor whose runtime sits in cgroup2 leaf `<cgroup_parent>/floor-freeze`, thawed
    /// before each delivery and frozen (without waiting) when the runtime waits in `next`.
    fn with_freezing(bench: &Bench) -> Result<Floor> {
        let leaf = bench.leaves.join("floor-freeze");
        fs::create_dir_all(&leaf)
            .map_err(|e| format!("cannot make cgroup {}: {e}", leaf.display()))?;
        Self::start_with(bench, 1, Some(leaf))
    }

    fn start_with(bench: &Bench, runtimes: usize, leaf: Option<PathBuf>) -> Result<Floor> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = Command::new(exe);
        if let Some(leaf) = &leaf {
            command.env(FREEZE_VAR, leaf);
        }
        let mut server = command
            .env(ROLE_VAR, "floor-server")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the floor server: {e}"))?;
        let mut line = String::new();
        let read = BufReader::new(server.stdout.take().expect("piped")).read_line(&mut line);
        let ports: Vec<u16> = line
            .strip_prefix("ports ")
            .map(|p| {
                p.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut floor = Floor {
            server,
            runtimes: Vec::new(),
            endpoint: SocketAddr::from(([127, 0, 0, 1], 0)),
            leaf,
        };
        let (Ok(_), &[runtime_port, invoke_port]) = (read, ports.as_slice()) else {
            return Err(format!("the floor server said {line:?}"));
        };
        floor.endpoint = SocketAddr::from(([127, 0, 0, 1], invoke_port));
        for _ in 0..runtimes {
            let api = SocketAddr::from(([127, 0, 0, 1], runtime_port));
            let runtime = Bench::plain_runtime(&bench.rust_echo, api)?;
            let pid = runtime.id();
            floor.runtimes.push(runtime);
            if let Some(leaf) = &floor.leaf {
                fs::write(leaf.join("cgroup.procs"), pid.to_string())
                    .map_err(|e| format!("cannot move {pid} into {}: {e}", leaf.display()))?;
            }
        }
        Ok(floor)
    }

    fn pids(&self) -> Vec<(&'static str, i32)> {
        let mut pids = vec![("server", self.server.id() as i32)];
        pids.extend(self.runtimes.iter().map(|c| ("runtime", c.id() as i32)));
        pids
    }

    /// The server's and the first runtime's memory.
    fn memory(&self) -> (Rollup, Rollup) {
        let read = |pid: u32| rollup(pid as i32).unwrap_or_default();
        (
            read(self.server.id()),
            self.runtimes
                .first()
                .map_or(Rollup::default(), |c| read(c.id())),
        )
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        // The server first, so that it freezes nothing any more.
        for child in [&mut self.server]
            .into_iter()
            .chain(self.runtimes.iter_mut())
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(leaf) = &self.leaf {
            let _ = fs::write(leaf.join("cgroup.freeze"), "0");
            let _ = fs::remove_dir(leaf);
        }
    }
}

/// The AWS Lambda runtime interface emulator serving `rust_echo`, when installed.
struct Rie {
    child: Child,
    endpoint: SocketAddr,
}

impl Rie {
    fn start(rie: &Path, bench: &Bench) -> Result<Rie> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot pick a port: {e}"))?
            .port();
        let endpoint = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(rie)
            .arg("--runtime-interface-emulator-address")
            .arg(endpoint.to_string())
            .arg(&bench.rust_echo)
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", rie.display()))?;
        let mut rie = Rie { child, endpoint };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while TcpStream::connect(endpoint).is_err() {
            if Instant::now() >= deadline {
                rie.stop();
                return Err("aws-lambda-rie never listened".into());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(rie)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The emulator and its children (the runtime).
    fn pids(&self) -> Vec<(&'static str, i32)> {
        let rie = self.child.id() as i32;
        let mut pids = vec![("aws-lambda-rie", rie)];
        for (pid, _) in all_processes() {
            if parent_of(pid) == Some(rie) {
                pids.push(("runtime", pid));
            }
        }
        pids
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The floor server: a tokio current-thread hyper server with a Runtime API port (where the
/// runtimes park their `next`) and an Invoke API port; it does only what the shape needs.
mod floor {
    use super::*;

    struct Job {
        id: String,
        payload: Bytes,
    }

    #[derive(Default)]
    struct State {
        parked: VecDeque<oneshot::Sender<Job>>,
        pending: VecDeque<Job>,
        inflight: HashMap<String, oneshot::Sender<Bytes>>,
        next_id: u64,
        /// `cgroup.freeze` of the runtimes' leaf, kept open, when freezing.
        freezer: Option<fs::File>,
        frozen: bool,
    }

    impl State {
        fn set_frozen(&mut self, frozen: bool) {
            use std::os::unix::fs::FileExt;
            if let Some(file) = &self.freezer {
                if frozen != self.frozen {
                    let value: &[u8] = if frozen { b"1" } else { b"0" };
                    if let Err(e) = file.write_at(value, 0) {
                        eprintln!("floor server: cgroup.freeze: {e}");
                    }
                    self.frozen = frozen;
                }
            }
        }
    }

    type Shared = Rc<RefCell<State>>;

    #[derive(Clone, Copy)]
    enum Api {
        Runtime,
        Invoke,
    }

    pub fn main() -> ExitCode {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let local = tokio::task::LocalSet::new();
        let served = local.block_on(&runtime, async {
            let runtime_api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let invoke_api = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            println!(
                "ports {} {}",
                runtime_api.local_addr()?.port(),
                invoke_api.local_addr()?.port()
            );
            io::stdout().flush()?;
            let state = Shared::default();
            if let Some(leaf) = std::env::var_os(FREEZE_VAR) {
                let path = Path::new(&leaf).join("cgroup.freeze");
                state.borrow_mut().freezer = Some(fs::OpenOptions::new().write(true).open(path)?);
            }
            tokio::task::spawn_local(accept(runtime_api, state.clone(), Api::Runtime));
            tokio::task::spawn_local(accept(invoke_api, state, Api::Invoke));
            // Serve until the bench closes our stdin (or dies).
            let (tx, rx) = oneshot::channel::<()>();
            thread::spawn(move || {
                let _ = io::copy(&mut io::stdin(), &mut io::sink());
                let _ = tx.send(());
            });
            let _ = rx.await;
            Ok::<(), io::Error>(())
        });
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("floor server: {e}");
                ExitCode::FAILURE
            }
        }
    }

    async fn accept(listener: tokio::net::TcpListener, state: Shared, api: Api) {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move {
                    Ok::<_, Infallible>(match api {
                        Api::Runtime => runtime_api(request, state).await,
                        Api::Invoke => invoke_api(request, state).await,
                    })
                }
            });
            tokio::task::spawn_local(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    fn respond(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
    }

    async fn collect(request: Request<Incoming>) -> Bytes {
        request
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default()
    }

    async fn invoke_api(request: Request<Incoming>, state: Shared) -> Response<Full<Bytes>> {
        let payload = collect(request).await;
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut s = state.borrow_mut();
            s.next_id += 1;
            let id = format!("00000000-0000-4000-8000-{:012x}", s.next_id);
            s.inflight.insert(id.clone(), tx);
            id
        };
        dispatch(&state, Job { id, payload });
        match rx.await {
            Ok(body) => {
                let mut response = respond(StatusCode::OK, body);
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                response
            }
            Err(_) => respond(StatusCode::BAD_GATEWAY, Bytes::from_static(b"{}")),
        }
    }

    /// Hands the job to a parked `next`, or queues it.
    fn dispatch(state: &Shared, mut job: Job) {
        let mut s = state.borrow_mut();
        s.set_frozen(false);
        while let Some(parked) = s.parked.pop_front() {
            match parked.send(job) {
                Ok(()) => return,
                Err(back) => job = back, // that runtime's connection went away
            }
        }
        s.pending.push_back(job);
    }

    async fn runtime_api(request: Request<Incoming>, state: Shared) -> Response<Full<Bytes>> {
        const PREFIX: &str = "/2018-06-01/runtime/";
        let path = request.uri().path().to_string();
        let Some(rest) = path.strip_prefix(PREFIX) else {
            return respond(StatusCode::NOT_FOUND, Bytes::new());
        };
        if rest == "invocation/next" {
            let queued = state.borrow_mut().pending.pop_front();
            let job = match queued {
                Some(job) => job,
                None => {
                    let (tx, rx) = oneshot::channel();
                    {
                        let mut s = state.borrow_mut();
                        s.parked.push_back(tx);
                        if s.inflight.is_empty() {
                            // Idle: the runtime waits in `next` with nothing to do.
                            s.set_frozen(true);
                        }
                    }
                    match rx.await {
                        Ok(job) => job,
                        Err(_) => return respond(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()),
                    }
                }
            };
            return delivery(job);
        }
        let body = collect(request).await;
        if let Some(id) = rest.strip_prefix("invocation/").and_then(|r| {
            r.strip_suffix("/response")
                .or_else(|| r.strip_suffix("/error"))
        }) {
            return match state.borrow_mut().inflight.remove(id) {
                Some(caller) => {
                    let _ = caller.send(body);
                    respond(
                        StatusCode::ACCEPTED,
                        Bytes::from_static(b"{\"status\":\"OK\"}"),
                    )
                }
                None => respond(StatusCode::BAD_REQUEST, Bytes::new()),
            };
        }
        eprintln!("floor server: {path}: {}", String::from_utf8_lossy(&body));
        respond(StatusCode::ACCEPTED, Bytes::new())
    }

    fn delivery(job: Job) -> Response<Full<Bytes>> {
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
            + 3000;
        let mut response = respond(StatusCode::OK, job.payload);
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("content-type", "application/json".into());
        set("lambda-runtime-aws-request-id", job.id);
        set("lambda-runtime-deadline-ms", deadline.to_string());
        set(
            "lambda-runtime-invoked-function-arn",
            format!("arn:aws:lambda:us-east-1:012345678912:function:{FUNCTION}"),
        );
        set(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
        );
        response
    }
}

// ---------------------------------------------------------------------------------------------
// Tables

fn print_cold(cold: &Cold, runs: usize) {
    println!();
    println!(
        "(a) cold start: {runs} runs per row after {COLD_WARMUPS} warm-ups, rows alternating \
         (ms)"
    );
    println!("{:<62} {:>9} {:>9} {:>9}", "", "median", "p99", "ratio");
    let column = |samples: &[ColdSample], f: &dyn Fn(&ColdSample) -> Option<f64>| -> Vec<f64> {
        sorted(&samples.iter().filter_map(f).collect::<Vec<_>>())
    };
    let plain = sorted(&cold.plain);
    let plain_dynamic = sorted(&cold.plain_dynamic);
    // The ratio is to the reference linked as the row's function is.
    let row = |label: &str, v: &[f64], reference: Option<&[f64]>| {
        let median = percentile(v, 0.5);
        let ratio = match reference {
            Some(reference) => format!("{:>9.2}", median / percentile(reference, 0.5)),
            None => format!("{:>9}", ""),
        };
        println!(
            "{label:<62} {median:>9.2} {:>9.2} {ratio}",
            percentile(v, 0.99)
        );
    };
    let init_row = |label: &str, samples: &[ColdSample], reference: &[f64]| {
        let init = column(samples, &|s| s.init_ms);
        if init.len() == samples.len() {
            row(label, &init, Some(reference));
        } else {
            println!(
                "  Init Duration found in only {} of {} runs",
                init.len(),
                samples.len()
            );
        }
    };
    let ready = |s: &ColdSample| Some(s.ready_ms);
    row(
        "run spawned -> `listening on` (environment created, started)",
        &column(&cold.runlambda, &|s| Some(s.listening_ms)),
        None,
    );
    row(
        "run spawned -> first invoke answered",
        &column(&cold.runlambda, &|s| Some(s.first_answer_ms)),
        Some(&plain),
    );
    row(
        "  the same minus that run's warm invoke median (ready)",
        &column(&cold.runlambda, &ready),
        Some(&plain),
    );
    init_row(
        "  Init Duration of the first REPORT (runtime -> next)",
        &cold.runlambda,
        &plain,
    );
    row(
        "  ready, with the state root on disk instead of tmpfs",
        &column(&cold.on_disk, &ready),
        Some(&plain),
    );
    row(
        "  ready, with the function linked dynamically",
        &column(&cold.dynamic, &ready),
        Some(&plain_dynamic),
    );
    init_row(
        "    its Init Duration (runtime -> next)",
        &cold.dynamic,
        &plain_dynamic,
    );
    row(
        "SIGINT -> run exited (Shutdown of the environment)",
        &column(&cold.runlambda, &|s| Some(s.shutdown_ms)),
        None,
    );
    row(
        "reference: plain rust_echo spawned -> first `GET next`",
        &plain,
        Some(&plain),
    );
    row(
        "reference, linked dynamically",
        &plain_dynamic,
        Some(&plain_dynamic),
    );
    println!(
        "ratio = median / the reference's median (the reference linked as the row's function); \
         every plain rust_echo gets Lambda's LD_LIBRARY_PATH, which a dynamically linked one searches"
    );
}

fn print_throughput(title: &str, rows: &[Summary], invokes: usize, threads: usize, no_rie: bool) {
    println!();
    println!(
        "{title}: {invokes} invokes per row after {WARMUP_INVOKES} warm-up, blocks of {BLOCK} \
         alternating between rows ({threads} client thread{})",
        if threads == 1 { "" } else { "s" }
    );
    print_rows(rows);
    if no_rie {
        println!("{:<28} not installed", "aws-lambda-rie");
    }
    println!(
        "ratio = median / the floor's median; the floor has no containers, no freeze, no logs; \
         \"from frozen\" rows wait for `frozen 1` in the leaf's cgroup.events before each invoke \
         (the wait is neither timed nor counted in invokes/s or CPU)"
    );
    println!();
    println!("CPU time per invoke (µs, all threads, from schedstat), in the measured blocks:");
    for r in rows {
        let parts: Vec<String> = r
            .cpu
            .iter()
            .map(|(label, us)| format!("{label} {us:.0}"))
            .collect();
        println!(
            "{:<28} total {:>4.0} = {}",
            r.label,
            total_cpu(r),
            parts.join(" + ")
        );
    }
    if rows.iter().any(|r| r.label.contains("--memory 128")) {
        println!(
            "--memory 128 is Lambda's default size, whose CPU share (cpu.max 7235 of 100000 µs) \
             throttles the runtime"
        );
    }
}

fn total_cpu(r: &Summary) -> f64 {
    r.cpu.iter().map(|(_, us)| us).sum()
}

fn print_rows(rows: &[Summary]) {
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>8}",
        "", "p50 µs", "p90 µs", "p99 µs", "max µs", ">=5 ms", "invokes/s", "ratio"
    );
    let floor = rows
        .iter()
        .find(|r| r.label == FLOOR)
        .map_or(f64::NAN, |r| r.p50);
    for r in rows {
        println!(
            "{:<28} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>7} {:>10.0} {:>8.2}",
            r.label,
            r.p50,
            r.p90,
            r.p99,
            r.max,
            r.slow,
            r.per_second,
            r.p50 / floor
        );
        if r.errors > 0 {
            println!(
                "{:<28} {} failed invokes (first: {}), {} timed",
                "",
                r.errors,
                r.first_error.as_deref().unwrap_or(""),
                r.count
            );
        }
    }
}

fn print_concurrency(warm: &[Summary], levels: &[(usize, Vec<Summary>)], invokes: usize) {
    println!();
    println!(
        "(c) throughput with --concurrency N (N provisioned), N sequential keep-alive clients: \
         {invokes} invokes per row after {WARMUP_INVOKES} warm-up, blocks of {BLOCK} alternating"
    );
    println!(
        "{:<4} {:<28} {:>9} {:>9} {:>10} {:>13} {:>13} {:>7}",
        "N", "", "p50 µs", "p99 µs", "invokes/s", "vs floor (/s)", "CPU µs/invoke", "failed"
    );
    let mut all: Vec<(usize, &[Summary])> = vec![(1, warm)];
    all.extend(levels.iter().map(|(n, rows)| (*n, rows.as_slice())));
    for (n, rows) in all {
        let floor = rows
            .iter()
            .find(|r| r.label == FLOOR)
            .map_or(f64::NAN, |r| r.per_second);
        // At N = 1 the back-to-back row: the paced ones wait between invokes.
        let shown = |r: &&Summary| [FLOOR, BACK_TO_BACK, ROUTED].contains(&r.label.as_str());
        for r in rows.iter().filter(shown) {
            println!(
                "{n:<4} {:<28} {:>9.0} {:>9.0} {:>10.0} {:>13.2} {:>13.0} {:>7}",
                r.label,
                r.p50,
                r.p99,
                r.per_second,
                r.per_second / floor,
                total_cpu(r),
                r.errors
            );
        }
    }
    println!(
        "N = 1 is part (b); vs floor = invokes/s / the floor's invokes/s at the same N; \
         CPU = client + every server-side process"
    );
}

fn print_memory(
    fresh: &[EnvMemory],
    after_b: &[EnvMemory],
    many: Option<&Vec<EnvMemory>>,
    floor: &(Rollup, Rollup),
) {
    println!();
    println!("(d) memory of idle (frozen) environments, from /proc/PID/smaps_rollup (MiB)");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "", "sup Rss", "sup Pss", "init Rss", "init Pss", "sup+init", "sup+init"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
        "", "", "", "", "", "Rss", "Pss"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let row = |label: &str, envs: &[EnvMemory]| {
        let n = envs.len() as u64;
        let sum = |f: &dyn Fn(&EnvMemory) -> Rollup| {
            envs.iter().map(f).fold(Rollup::default(), |a, b| a + b)
        };
        let sup = sum(&|e| e.supervisor);
        let init = sum(&|e| e.init);
        println!(
            "{label:<44} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>10.2}",
            mib(sup.rss_kib / n),
            mib(sup.pss_kib / n),
            mib(init.rss_kib / n),
            mib(init.pss_kib / n),
            mib((sup.rss_kib + init.rss_kib) / n),
            mib((sup.pss_kib + init.pss_kib) / n),
        );
    };
    row("1 environment, after Init and 1 invoke", fresh);
    row("1 environment, after part (b)", after_b);
    if let Some(many) = many {
        row(
            &format!("{} environments after (c), per environment", many.len()),
            many,
        );
    }
    println!("for reference (Rss / Pss):");
    let pair = |r: Rollup| format!("{:.2} / {:.2}", mib(r.rss_kib), mib(r.pss_kib));
    if let Some(e) = after_b.first() {
        println!(
            "  {:<52} {}",
            "runlambda run (the front), after part (b)",
            pair(e.run)
        );
        for r in &e.runtime {
            println!(
                "  {:<52} {}",
                "the runtime (rust_echo) in the environment",
                pair(*r)
            );
        }
    }
    println!(
        "  {:<52} {}",
        "floor server (tokio + hyper, two TCP listeners)",
        pair(floor.0)
    );
    println!(
        "  {:<52} {}",
        "plain rust_echo under the floor server",
        pair(floor.1)
    );
}
