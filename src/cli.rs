//! The command line, with runc's verbs and flags so that containerd's go-runc and podman's
//! conmon can call runlambda exactly as they call runc.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::logging::LogFormat;

/// runlambda: an OCI runtime whose containers are AWS Lambda execution environments.
#[derive(Debug, Parser)]
#[command(name = "runlambda", disable_version_flag = true)]
pub struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the runtime's own log to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of the log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Runtime configuration file (else $RUNLAMBDA_CONFIG, else /etc/runlambda/runlambda.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run Lambda environments even where no memory controller can enforce their memory
    /// (overrides the config's allow_unenforced_memory; `state` and REPORT lines say so).
    #[arg(long, global = true)]
    pub allow_unenforced_memory: bool,
    /// Interpret cgroupsPath as systemd's slice:prefix:name.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Verbose logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print the version and the runtime-spec version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container: build its environment and leave it waiting for `start`.
    Create {
        /// Path to the bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Write the container init's pid to this file.
        #[arg(long, value_name = "FILE")]
        pid_file: Option<PathBuf>,
        /// Socket to send the terminal's master fd to (needs process.terminal).
        #[arg(long, value_name = "PATH")]
        console_socket: Option<PathBuf>,
        /// Pass this many extra file descriptors (3 onwards) to the container.
        #[arg(long, default_value_t = 0)]
        preserve_fds: u32,
        /// Accepted for runc compatibility; runlambda always uses pivot_root.
        #[arg(long)]
        no_pivot: bool,
        /// Accepted for runc compatibility; runlambda creates no session keyring.
        #[arg(long)]
        no_new_keyring: bool,
        /// Make it a Lambda environment whatever its annotations say (used by `run`).
        #[arg(long, hide = true)]
        lambda: bool,
        /// Start it once created, as `start` would; a Lambda environment begins Init at once
        /// (used by `run`).
        #[arg(long, hide = true)]
        start: bool,
        id: String,
    },
    /// Serve a Lambda function (a directory or OCI bundle) behind the AWS Invoke API.
    Run(RunArgs),
    /// Invoke a function through the AWS Invoke API and print its answer.
    Invoke(InvokeArgs),
    /// Run the container's process in a created container.
    Start { id: String },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        /// Send the signal to every process in the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a stopped container (any container with --force).
    Delete {
        /// Kill the container first if it is still running.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a new process inside a created or running container.
    ///
    /// The process joins every namespace and the cgroup of the container's init. A paused
    /// container is refused rather than thawed for the duration: resume it first.
    Exec(ExecArgs),
    /// List the host pids of the processes in a container's cgroup.
    Ps {
        #[arg(short, long, value_enum, default_value_t = PsFormat::Table)]
        format: PsFormat,
        id: String,
    },
    /// Print a container's resource usage (cpu, memory, pids) as JSON, every --interval.
    Events {
        /// Print the usage once and exit.
        #[arg(long)]
        stats: bool,
        /// Time between two reports, such as 5s or 500ms.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        id: String,
    },
    /// Print what this runtime supports, as runtime-spec features JSON.
    Features,
    /// Write a template config.json into the bundle directory.
    Spec {
        /// The bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Make the template a Lambda function (com.runlambda.* annotations).
        #[arg(long)]
        lambda: bool,
    },
}

/// Output formats of `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// Output formats of `ps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PsFormat {
    Table,
    Json,
}

/// The flags of `exec`, runc's names and meanings.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// An OCI process JSON (what containerd and podman pass) instead of the arguments and the
    /// flags that change config.json's process.
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return at once; the process becomes a child of the caller, which reaps it.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's host pid to this file.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Working directory inside the container.
    #[arg(long, value_name = "DIR", conflicts_with = "process")]
    pub cwd: Option<PathBuf>,
    /// Add an environment variable (repeatable).
    #[arg(
        short,
        long = "env",
        value_name = "NAME=VALUE",
        conflicts_with = "process"
    )]
    pub env: Vec<String>,
    /// Run as this user (numeric ids).
    #[arg(short, long, value_name = "UID[:GID]", conflicts_with = "process")]
    pub user: Option<String>,
    /// Add a capability to the bounding, effective and permitted sets (repeatable).
    #[arg(short, long = "cap", value_name = "CAP", conflicts_with = "process")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long, conflicts_with = "process")]
    pub no_new_privs: bool,
    /// Give the process a terminal, sent to --console-socket (a --process file says for itself).
    #[arg(short, long)]
    pub tty: bool,
    /// Socket to send the terminal's master fd to (needs a terminal).
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra file descriptors (3 onwards) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    /// The program and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "process",
        conflicts_with = "process"
    )]
    pub command: Vec<String>,
}

/// `runlambda run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A function directory or `.zip` with a `bootstrap` at its root, or an OCI bundle.
    pub function: PathBuf,
    /// The function's name (default: the directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Function memory in MB (128–10240).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Size of /tmp in MB (512–10240).
    #[arg(long)]
    pub ephemeral_storage: Option<u32>,
    /// Invocation timeout in seconds (1–900).
    #[arg(long)]
    pub timeout: Option<u32>,
    /// Seconds an idle environment lives.
    #[arg(long)]
    pub idle_timeout: Option<u32>,
    /// Milliseconds an environment stays thawed after an invocation (0: freeze at once).
    #[arg(long)]
    pub freeze_delay_ms: Option<u32>,
    /// An environment variable for the function, KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A layer (directory or `.zip`), mounted at /opt.
    #[arg(long)]
    pub layer: Option<PathBuf>,
    /// Where the Invoke API listens.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub listen: std::net::SocketAddr,
    /// The most environments (concurrent invocations) at once; past it, 429.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Environments initialised before the first invocation.
    #[arg(long, default_value_t = 0)]
    pub provisioned: usize,
}

/// `runlambda invoke`.
#[derive(Debug, clap::Args)]
pub struct InvokeArgs {
    /// The Invoke API endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Print the invocation's log (X-Amz-Log-Type: Tail) to standard error.
    #[arg(long)]
    pub log_tail: bool,
    /// The function's name.
    pub name: String,
    /// The event (JSON); `-` reads it from standard input.
    #[arg(default_value = "{}")]
    pub payload: String,
}

/// `runlambda update`: runc's flags, or `linux.resources` JSON.
#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// `linux.resources` JSON from this file (`-` reads standard input); the flags below are
    /// then refused.
    #[arg(
        short = 'r',
        long,
        value_name = "FILE",
        conflicts_with_all = ["memory", "pids_limit", "cpu_shares", "cpu_quota", "cpu_period"]
    )]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    /// The number of tasks the container may have.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    /// CPU quota in microseconds per period.
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPU period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    pub id: String,
}

impl UpdateArgs {
    /// The flags as `linux.resources` JSON, for the same checks a bundle gets.
    pub fn resources_json(&self) -> serde_json::Value {
        let mut resources = serde_json::Map::new();
        if let Some(limit) = self.memory {
            resources.insert("memory".into(), serde_json::json!({ "limit": limit }));
        }
        if let Some(limit) = self.pids_limit {
            resources.insert("pids".into(), serde_json::json!({ "limit": limit }));
        }
        let mut cpu = serde_json::Map::new();
        for (key, value) in [
            ("shares", self.cpu_shares.map(serde_json::Value::from)),
            ("quota", self.cpu_quota.map(serde_json::Value::from)),
            ("period", self.cpu_period.map(serde_json::Value::from)),
        ] {
            if let Some(value) = value {
                cpu.insert(key.into(), value);
            }
        }
        if !cpu.is_empty() {
            resources.insert("cpu".into(), cpu.into());
        }
        resources.into()
    }
}
