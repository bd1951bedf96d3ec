//! Container lifecycle benchmark: create + start + wait for exit + delete of a busybox
//! `/bin/true` bundle, timed for runlambda and, when they are on `PATH`, for `crun` and `runc`,
//! on the same machine in the same run.
//!
//! Run it as root through the project's cgroup view, which hides the host's v1 memory hierarchy
//! (runc creates a cgroup in every v1 hierarchy it can see, memory included):
//!
//! ```text
//! tests/cgroup-view.sh cargo bench --bench lifecycle
//! ```
//!
//! The bench refuses to run when a v1 `memory` cgroup mount is visible. `RUNLAMBDA_BENCH_RUNS`
//! sets the number of timed runs per runtime (default 50); a few warm-up runs come first. Runs
//! are interleaved round-robin across runtimes, so machine noise hits all of them alike.
//!
//! Every runtime gets the same bundle: `config.json` in the shape `runc spec` writes, with
//! `terminal: false`, args `["/bin/true"]`, the pid, network, ipc, uts and mount namespaces (no
//! cgroup namespace, as in `runc spec`), no `linux.resources` beyond the devices deny-all, no
//! `/sys/fs/cgroup` mount, and `linux.cgroupsPath` = `/runlambda-bench/<id>`. Each runtime has
//! its own `--root` in a temporary directory.
//!
//! crun refuses hybrid hosts (v1 controllers plus a cgroup2 mount with a controller in it). On
//! such a host crun runs in a second mount namespace, made by this bench, in which the cgroup2
//! mount is hidden too, so crun sees pure cgroup v1: once with its cgroups ("crun") and once
//! with `--cgroup-manager=disabled` ("crun (no cgroups)"). The output says which view and mode
//! each runtime ran in.
//!
//! The bench process is a child subreaper, so every container's init is its child once `create`
//! has returned (runlambda's init is its child from the start, through `CLONE_PARENT`); the time
//! to exit is a `waitpid` on the pid from `--pid-file`.

use std::ffi::OsString;
use std::fs::{self, File};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::prctl::set_child_subreaper;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};

/// The cgroup every runtime puts its containers under, relative to each hierarchy's root.
const CGROUP_PARENT: &str = "runlambda-bench";
const WARMUPS: usize = 3;
const DEFAULT_RUNS: usize = 50;
const BUSYBOX: &str = "/bin/busybox";

type Result<T> = std::result::Result<T, String>;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("lifecycle bench: a runtime failed (see the table)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("lifecycle bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole bench; `Ok(false)` when an installed runtime failed.
fn run() -> Result<bool> {
    let layout = CgroupLayout::read()?;
    if layout.v1_memory {
        return Err(
            "the host's v1 memory cgroup hierarchy is visible, and runc would create \
                    cgroups in it: run the bench through the cgroup view, \
                    `tests/cgroup-view.sh cargo bench --bench lifecycle`"
                .into(),
        );
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("the bench needs root".into());
    }
    let runs = runs_from_env()?;
    set_child_subreaper(true).map_err(|e| format!("cannot become a child subreaper: {e}"))?;
    let dir = tempfile::Builder::new()
        .prefix("runlambda-bench")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let bench = Bench::prepare(dir.path())?;
    let views = Views::new(&layout)?;
    let mut entries = runtimes(&bench, &layout, &views);

    for round in 0..WARMUPS {
        measure_round(&mut entries, &bench, &views, &format!("w{round}"), false);
    }
    for round in 0..runs {
        measure_round(&mut entries, &bench, &views, &round.to_string(), true);
    }
    remove_cgroup_parents(&layout);

    print_report(&entries, runs);
    Ok(!entries
        .iter()
        .any(|e| matches!(e.outcome, Outcome::Failed(_))))
}

fn runs_from_env() -> Result<usize> {
    match std::env::var("RUNLAMBDA_BENCH_RUNS") {
        Err(_) => Ok(DEFAULT_RUNS),
        Ok(value) => match value.parse() {
            Ok(runs) if runs > 0 => Ok(runs),
            _ => Err(format!(
                "RUNLAMBDA_BENCH_RUNS={value:?}: expected a positive number of runs"
            )),
        },
    }
}

/// The cgroup hierarchies this process sees, from `/proc/self/mountinfo`.
struct CgroupLayout {
    /// Mount points of the v1 hierarchies, with their controllers.
    v1: Vec<(PathBuf, String)>,
    /// Mount point of the cgroup2 hierarchy, if any.
    unified: Option<PathBuf>,
    v1_memory: bool,
}

impl CgroupLayout {
    fn read() -> Result<CgroupLayout> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mut layout = CgroupLayout {
            v1: Vec::new(),
            unified: None,
            v1_memory: false,
        };
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let Some(mount_point) = left.split(' ').nth(4).map(PathBuf::from) else {
                continue;
            };
            let fields: Vec<&str> = right.split(' ').collect();
            match fields.first() {
                Some(&"cgroup2") => layout.unified = Some(mount_point),
                Some(&"cgroup") => {
                    let options = fields.get(2).copied().unwrap_or_default();
                    let controllers: Vec<&str> = options
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro"))
                        .collect();
                    layout.v1_memory |= controllers.contains(&"memory");
                    layout.v1.push((mount_point, controllers.join(",")));
                }
                _ => {}
            }
        }
        Ok(layout)
    }

    /// v1 hierarchies beside a cgroup2 mount: the layout crun refuses.
    fn is_hybrid(&self) -> bool {
        !self.v1.is_empty() && self.unified.is_some()
    }

    fn describe(&self, hide_unified: bool) -> String {
        let v1: Vec<&str> = self.v1.iter().map(|(_, c)| c.as_str()).collect();
        match (&self.unified, v1.is_empty()) {
            (Some(unified), true) => format!("cgroup v2 at {}", unified.display()),
            (Some(_), false) if hide_unified => {
                format!("v1-only view (cgroup2 mount hidden): {}", v1.join(" "))
            }
            (Some(unified), false) => format!(
                "hybrid view: v1 {} + cgroup2 at {}",
                v1.join(" "),
                unified.display()
            ),
            (None, _) => format!("cgroup v1: {}", v1.join(" ")),
        }
    }
}

/// The mount namespaces runtimes run in: the bench's own, and on hybrid hosts a copy of it
/// without the cgroup2 mount, for crun.
struct Views {
    own: File,
    v1_only: Option<File>,
}

impl Views {
    fn new(layout: &CgroupLayout) -> Result<Views> {
        let own = open_mount_ns()?;
        let v1_only = match (&layout.unified, layout.is_hybrid()) {
            (Some(unified), true) => Some(make_view_without(unified, &own)?),
            _ => None,
        };
        Ok(Views { own, v1_only })
    }

    /// Enters the v1-only view when `v1_only` is set; the guard returns to the bench's own.
    fn enter(&self, v1_only: bool) -> Result<ViewGuard<'_>> {
        let target = if v1_only { self.v1_only.as_ref() } else { None };
        if let Some(view) = target {
            setns(view, CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("cannot enter the v1-only cgroup view: {e}"))?;
        }
        Ok(ViewGuard {
            own: target.map(|_| &self.own),
        })
    }
}

struct ViewGuard<'a> {
    own: Option<&'a File>,
}

impl Drop for ViewGuard<'_> {
    fn drop(&mut self) {
        if let Some(own) = self.own {
            // Carrying on in the wrong view would run the next runtime there: stop instead.
            setns(own, CloneFlags::CLONE_NEWNS).expect("cannot return to the bench's mount ns");
        }
    }
}

fn open_mount_ns() -> Result<File> {
    File::open("/proc/self/ns/mnt").map_err(|e| format!("cannot open /proc/self/ns/mnt: {e}"))
}

/// A new mount namespace in which `hidden` is unmounted; the bench returns to `own` afterwards.
fn make_view_without(hidden: &Path, own: &File) -> Result<File> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Private first, so that the unmount cannot propagate to the namespace we came from.
    let made = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make / private in the v1-only view: {e}"))
    .and_then(|()| {
        umount2(hidden, MntFlags::MNT_DETACH)
            .map_err(|e| format!("cannot unmount {}: {e}", hidden.display()))
    })
    .and_then(|()| open_mount_ns());
    setns(own, CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("cannot return to the bench's mount namespace: {e}"))?;
    made
}

/// The temporary directory: the bundle, the runtimes' roots, runlambda's config file.
struct Bench {
    dir: PathBuf,
    bundle: PathBuf,
    runlambda_config: PathBuf,
}

impl Bench {
    fn prepare(dir: &Path) -> Result<Bench> {
        let bundle = dir.join("bundle");
        write_rootfs(&bundle.join("rootfs"))
            .map_err(|e| format!("cannot build the busybox rootfs: {e}"))?;
        let runlambda_config = dir.join("runlambda.toml");
        let toml = format!(
            "state_root = {:?}\ncgroup_parent = {CGROUP_PARENT:?}\n",
            dir.join("runlambda").display().to_string()
        );
        fs::write(&runlambda_config, toml)
            .map_err(|e| format!("cannot write {}: {e}", runlambda_config.display()))?;
        Ok(Bench {
            dir: dir.to_path_buf(),
            bundle,
            runlambda_config,
        })
    }

    /// Points the bundle's cgroupsPath at this container's own leaf.
    fn configure(&self, id: &str) -> Result<()> {
        let path = self.bundle.join("config.json");
        let text = serde_json::to_vec_pretty(&bundle_config(id)).expect("JSON of a json! value");
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// `rootfs/bin/busybox` with `true` and `sh` linked to it, and the usual mount points.
fn write_rootfs(rootfs: &Path) -> std::io::Result<()> {
    if !Path::new(BUSYBOX).exists() {
        return Err(std::io::Error::other(format!(
            "{BUSYBOX} is missing (Debian package busybox-static)"
        )));
    }
    for dir in ["bin", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    fs::copy(BUSYBOX, rootfs.join("bin/busybox"))?;
    symlink("busybox", rootfs.join("bin/true"))?;
    symlink("busybox", rootfs.join("bin/sh"))
}

/// `runc spec`'s config.json, running `/bin/true` without a terminal, in leaf
/// `/runlambda-bench/<id>`. Its `/sys/fs/cgroup` mount is left out: runlambda supports no
/// `cgroup` mount type.
fn bundle_config(id: &str) -> Value {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "cgroupsPath": format!("/{CGROUP_PARENT}/{id}"),
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": runlambda::template::MASKED_PATHS,
            "readonlyPaths": runlambda::template::READONLY_PATHS
        }
    })
}

/// How to call one runtime.
struct Runtime {
    /// Short name used in container ids and state directories.
    name: &'static str,
    program: PathBuf,
    global_args: Vec<OsString>,
    /// Runs in the view without the cgroup2 mount.
    v1_only: bool,
}

/// One row of the table.
struct Entry {
    label: String,
    mode: String,
    outcome: Outcome,
}

enum Outcome {
    NotInstalled,
    Failed(String),
    Measured(Runtime, Vec<Duration>),
}

/// runlambda first (the reference), then crun and runc when installed.
fn runtimes(bench: &Bench, layout: &CgroupLayout, views: &Views) -> Vec<Entry> {
    let root = |name: &str| -> Vec<OsString> {
        vec!["--root".into(), bench.dir.join(name).into_os_string()]
    };
    let mut runlambda_args = root("runlambda");
    runlambda_args.extend(["--config".into(), bench.runlambda_config.clone().into()]);
    let crun_v1_only = views.v1_only.is_some();
    let crun_view = layout.describe(crun_v1_only);
    let own_view = layout.describe(false);
    let crun_no_cgroups = [root("crun-nocg"), vec!["--cgroup-manager=disabled".into()]].concat();

    let mut entries = vec![entry(
        "runlambda",
        format!("cgroup_parent {CGROUP_PARENT} from --config; {own_view}"),
        Some(PathBuf::from(env!("CARGO_BIN_EXE_runlambda"))),
        "runlambda",
        runlambda_args,
        false,
    )];
    let crun = find_on_path("crun");
    entries.push(entry(
        "crun",
        format!("its cgroups; {crun_view}"),
        crun.clone(),
        "crun",
        root("crun"),
        crun_v1_only,
    ));
    entries.push(entry(
        "crun (no cgroups)",
        format!("--cgroup-manager=disabled; {crun_view}"),
        crun,
        "crun-nocg",
        crun_no_cgroups,
        crun_v1_only,
    ));
    entries.push(entry(
        "runc",
        format!("its cgroups; {own_view}"),
        find_on_path("runc"),
        "runc",
        root("runc"),
        false,
    ));
    entries
}

fn entry(
    label: &str,
    mode: String,
    program: Option<PathBuf>,
    name: &'static str,
    global_args: Vec<OsString>,
    v1_only: bool,
) -> Entry {
    let outcome = match program {
        None => Outcome::NotInstalled,
        Some(program) => Outcome::Measured(
            Runtime {
                name,
                program,
                global_args,
                v1_only,
            },
            Vec::new(),
        ),
    };
    Entry {
        label: label.to_string(),
        mode,
        outcome,
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// One lifecycle of every runtime still in the race; a failure takes the runtime out.
fn measure_round(entries: &mut [Entry], bench: &Bench, views: &Views, round: &str, keep: bool) {
    for entry in entries.iter_mut() {
        let Outcome::Measured(runtime, samples) = &mut entry.outcome else {
            continue;
        };
        let id = format!("{}-{}-{round}", runtime.name, std::process::id());
        match lifecycle(runtime, bench, views, &id) {
            Ok(elapsed) if keep => samples.push(elapsed),
            Ok(_) => {}
            Err(e) => entry.outcome = Outcome::Failed(e),
        }
        reap_strays();
    }
}

/// Times create + start + wait for exit + delete of container `id`; after a failure,
/// force-deletes whatever is left of it.
fn lifecycle(runtime: &Runtime, bench: &Bench, views: &Views, id: &str) -> Result<Duration> {
    bench.configure(id)?;
    let _view = views.enter(runtime.v1_only)?;
    let timed = timed_lifecycle(runtime, bench, id);
    if timed.is_err() {
        let _ = runtime.call(bench, &["delete".into(), "--force".into(), id.into()]);
    }
    timed
}

fn timed_lifecycle(runtime: &Runtime, bench: &Bench, id: &str) -> Result<Duration> {
    let pid_file = bench.dir.join(format!("{id}.pid"));
    let create = [
        "create".into(),
        "--bundle".into(),
        bench.bundle.clone().into(),
        "--pid-file".into(),
        pid_file.clone().into(),
        id.into(),
    ];
    let start = Instant::now();
    runtime.call(bench, &create)?;
    let pid = read_pid(&pid_file)?;
    runtime.call(bench, &["start".into(), id.into()])?;
    wait_for_success(pid)?;
    runtime.call(bench, &["delete".into(), id.into()])?;
    Ok(start.elapsed())
}

impl Runtime {
    /// Runs one verb with stdio on /dev/null (the container keeps `create`'s stdio) and its
    /// standard error in a file, quoted when it fails.
    fn call(&self, bench: &Bench, args: &[OsString]) -> Result<()> {
        let log_path = bench.dir.join("stderr");
        let what = format!("{} {}", self.program.display(), args[0].to_string_lossy());
        let log = File::create(&log_path).map_err(|e| format!("{what}: stderr file: {e}"))?;
        let status = Command::new(&self.program)
            .args(&self.global_args)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .map_err(|e| format!("{what}: {e}"))?;
        if status.success() {
            return Ok(());
        }
        let stderr = fs::read_to_string(&log_path).unwrap_or_default();
        Err(format!("{what}: {status}: {}", stderr.trim()))
    }
}

fn read_pid(pid_file: &Path) -> Result<Pid> {
    let text = fs::read_to_string(pid_file)
        .map_err(|e| format!("cannot read {}: {e}", pid_file.display()))?;
    text.trim()
        .parse()
        .map(Pid::from_raw)
        .map_err(|e| format!("{}: {text:?}: {e}", pid_file.display()))
}

/// Waits for the container's init, our child as subreaper, and requires exit status 0.
fn wait_for_success(pid: Pid) -> Result<()> {
    match waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(status) => Err(format!("container init {pid}: {status:?}")),
        Err(e) => Err(format!("waitpid({pid}): {e}")),
    }
}

/// Reaps orphans a runtime left to us as subreaper (helpers that outlived their parent, the
/// init of a failed run).
fn reap_strays() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Removes the (by now empty) parent cgroups the runtimes created; busy or absent ones stay.
fn remove_cgroup_parents(layout: &CgroupLayout) {
    let mounts = layout.v1.iter().map(|(m, _)| m).chain(&layout.unified);
    for mount_point in mounts {
        let parent = mount_point.join(CGROUP_PARENT);
        match fs::remove_dir(&parent) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                eprintln!("note: {} left in place: {e}", parent.display());
            }
            _ => {}
        }
    }
}

/// Median and p99 of `samples`, in milliseconds.
fn stats(samples: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let median = if n % 2 == 1 {
        ms[n / 2]
    } else {
        (ms[n / 2 - 1] + ms[n / 2]) / 2.0
    };
    let p99 = ms[(0.99 * n as f64).ceil() as usize - 1];
    (median, p99)
}

fn print_report(entries: &[Entry], runs: usize) {
    let medians: Vec<Option<(f64, f64)>> = entries
        .iter()
        .map(|e| match &e.outcome {
            Outcome::Measured(_, samples) if !samples.is_empty() => Some(stats(samples)),
            _ => None,
        })
        .collect();
    // runlambda is the reference; while it cannot run, the first runtime that did.
    let reference = medians.iter().position(Option::is_some);

    println!();
    println!(
        "create + start + wait for exit + delete of busybox /bin/true: {runs} timed runs per \
         runtime after {WARMUPS} warm-ups, interleaved round-robin"
    );
    println!(
        "bundle: `runc spec` shape, read-only root, namespaces pid network ipc uts mount (no \
         cgroup namespace), cgroupsPath /{CGROUP_PARENT}/<id>"
    );
    println!();
    println!(
        "{:<20} {:>10} {:>10} {:>14}",
        "runtime", "median ms", "p99 ms", "median ratio"
    );
    for (i, (entry, figures)) in entries.iter().zip(&medians).enumerate() {
        let row = match (&entry.outcome, figures, reference) {
            (Outcome::NotInstalled, _, _) => "not installed".to_string(),
            (Outcome::Failed(_), _, _) => "failed (below)".to_string(),
            (_, Some((median, p99)), Some(r)) => {
                let ratio = median / medians[r].expect("reference measured").0;
                let note = if i == r { " (reference)" } else { "" };
                format!("{median:>10.2} {p99:>10.2} {ratio:>14.2}{note}")
            }
            _ => "no samples".to_string(),
        };
        println!("{:<20} {row}", entry.label);
    }
    match reference {
        Some(0) => println!("median ratio = median / runlambda's median"),
        Some(r) => println!(
            "runlambda did not run: median ratio = median / {}'s median",
            entries[r].label
        ),
        None => {}
    }
    println!();
    println!("how each ran (all in the same cgroup view unless said):");
    for entry in entries {
        println!("  {:<20} {}", entry.label, entry.mode);
    }
    for entry in entries {
        if let Outcome::Failed(e) = &entry.outcome {
            println!("  {} failed: {e}", entry.label);
        }
    }
}
