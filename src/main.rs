//! The `runlambda` binary: parses the command line, runs the verb from the library, and is the
//! one place that reports an error (to standard error, and to `--log` in the caller's format).

use std::process::ExitCode;

use clap::Parser;
use runlambda::cli::{Cli, Command, ListFormat, PsFormat};
use runlambda::container::{Runtime, OCI_VERSION};
use runlambda::logging::Logger;
use runlambda::{config, error, function, invoke_client, run, signal, stats, Error, Result};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut logger = match Logger::open(cli.log.as_deref(), cli.log_format) {
        Ok(logger) => logger,
        Err(e) => {
            eprintln!("runlambda: cannot open log file: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli, &mut logger) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logger.error(&error::chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, logger: &mut Logger) -> Result<()> {
    let prints_only = matches!(
        cli.command,
        None | Some(
            Command::State { .. }
                | Command::List { .. }
                | Command::Ps { .. }
                | Command::Events { .. }
                | Command::Features
                | Command::Invoke(_)
        )
    );
    if prints_only {
        runlambda::sys::default_sigpipe();
    }
    if cli.version {
        println!("runlambda version {}", env!("CARGO_PKG_VERSION"));
        println!("spec: {OCI_VERSION}");
        return Ok(());
    }
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_help().ok();
        return Ok(());
    };
    let mut config = config::load(
        cli.config.as_deref(),
        std::env::var_os("RUNLAMBDA_CONFIG").as_deref(),
    )?;
    config.allow_unenforced_memory |= cli.allow_unenforced_memory;
    let runtime = Runtime {
        root: cli
            .root
            .clone()
            .unwrap_or_else(|| config.state_root.clone()),
        config,
        systemd_cgroup: cli.systemd_cgroup,
    };
    match command {
        Command::Create {
            bundle,
            pid_file,
            console_socket,
            preserve_fds,
            no_pivot: _,
            no_new_keyring: _,
            lambda,
            start,
            id,
        } => {
            let bundle = std::path::absolute(&bundle).unwrap_or(bundle);
            let options = runlambda::container::CreateOptions {
                pid_file,
                lambda,
                listen_fds: runlambda::activation::inherited(),
                preserve_fds,
                console_socket,
                start,
            };
            runtime.create(&id, &bundle, &options)
        }
        Command::Start { id } => runtime.start(&id),
        Command::Run(args) => run_function(runtime, args, cli.config.as_deref()),
        Command::Invoke(args) => invoke(args),
        Command::State { id } => {
            let report = runtime.state(&id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("state serialises")
            );
            Ok(())
        }
        Command::Kill { all, id, signal } => runtime.kill(&id, signal::parse(&signal)?, all),
        Command::Delete { force, id } => {
            for failed in runtime.delete(&id, force)? {
                logger.warn(&error::chain(&failed));
            }
            Ok(())
        }
        Command::Pause { id } => runtime.pause(&id),
        Command::Update(args) => update(&runtime, &args),
        Command::Resume { id } => runtime.resume(&id),
        Command::List { format, quiet } => {
            let reports = runtime.list()?;
            if quiet {
                reports.iter().for_each(|r| println!("{}", r.id));
            } else if format == ListFormat::Json {
                println!(
                    "{}",
                    serde_json::to_string(&reports).expect("state serialises")
                );
            } else {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32}",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                );
                for r in &reports {
                    println!(
                        "{:<20} {:<8} {:<10} {:<40} {:<32}",
                        r.id,
                        r.pid,
                        r.status,
                        r.bundle.display(),
                        r.created
                    );
                }
            }
            Ok(())
        }
        Command::Exec(args) => {
            let status = runtime.exec(&args)?.finish()?;
            if status != 0 {
                // Passed on as the process's own; nothing is left to report or clean up.
                std::process::exit(status);
            }
            Ok(())
        }
        Command::Ps { format, id } => {
            let pids = runtime.pids(&id)?;
            if format == PsFormat::Json {
                println!("{}", serde_json::to_string(&pids).expect("pids serialise"));
            } else {
                print!("{}", stats::ps_table(&pids));
            }
            Ok(())
        }
        Command::Events {
            stats: once,
            interval,
            id,
        } => loop {
            println!("{}", stats::stats_event(&id, &runtime.usage(&id)?));
            if once {
                return Ok(());
            }
            std::thread::sleep(interval);
        },
        Command::Features => {
            let features = runlambda::features::features();
            println!(
                "{}",
                serde_json::to_string_pretty(&features).expect("features serialise")
            );
            Ok(())
        }
        Command::Spec { bundle, lambda } => Ok(runlambda::template::write(&bundle, lambda)?),
    }
}

/// `runlambda run`: prepares the bundle (a function directory or zip becomes one) in a scratch
/// directory of the state root, serves it, and removes the scratch directory.
fn run_function(
    runtime: Runtime,
    args: runlambda::cli::RunArgs,
    config: Option<&std::path::Path>,
) -> Result<()> {
    let scratch = runtime.root.join(format!("run-{}", std::process::id()));
    let served = serve_function(runtime, args, config, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    served
}

fn serve_function(
    runtime: Runtime,
    args: runlambda::cli::RunArgs,
    config: Option<&std::path::Path>,
    scratch: &std::path::Path,
) -> Result<()> {
    let code = std::path::absolute(&args.function).unwrap_or(args.function.clone());
    let name = match args.name {
        Some(name) => name,
        None => code
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".into()),
    };
    let code = if function::is_zip(&code) {
        function::unpack_zip(&code, &scratch.join("code"))?
    } else {
        code
    };
    let layer = match args.layer {
        Some(layer) if function::is_zip(&layer) => {
            Some(function::unpack_zip(&layer, &scratch.join("layer"))?)
        }
        other => other,
    };
    let bundle = if function::is_bundle(&code) {
        code.clone()
    } else {
        let options = function::FunctionOptions {
            name: name.clone(),
            memory_mb: args.memory,
            ephemeral_storage_mb: args.ephemeral_storage,
            timeout_s: args.timeout,
            idle_timeout_s: args.idle_timeout,
            freeze_delay_ms: args.freeze_delay_ms,
            env: args.env,
            layer,
        };
        function::write_bundle(&code, &scratch.join("bundle"), &options)?
    };
    let mut global_args = vec!["--root".to_string(), runtime.root.display().to_string()];
    if let Some(config) = config {
        global_args.extend(["--config".to_string(), config.display().to_string()]);
    }
    if runtime.config.allow_unenforced_memory {
        global_args.push("--allow-unenforced-memory".to_string());
    }
    let options = run::RunOptions {
        bundle,
        name,
        listen: args.listen,
        concurrency: args.concurrency.max(1),
        provisioned: args.provisioned,
        global_args,
        scratch: scratch.to_path_buf(),
    };
    run::run(runtime, options)
}

/// `runlambda invoke`: exits 0 when the function answered without error.
fn invoke(args: runlambda::cli::InvokeArgs) -> Result<()> {
    let payload = if args.payload == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).map_err(|source| {
            Error::Io {
                what: "read the event from standard input".into(),
                source,
            }
        })?;
        bytes
    } else {
        args.payload.into_bytes()
    };
    let answer = invoke_client::invoke(&args.endpoint, &args.name, payload, args.log_tail)?;
    if let Some(log) = &answer.log {
        eprint!("{log}");
    }
    println!("{}", String::from_utf8_lossy(&answer.body));
    if answer.status >= 300 || answer.function_error.is_some() {
        std::process::exit(1);
    }
    Ok(())
}

/// `runlambda update`: the resources from `-r` (a file, or `-` for standard input) or from
/// the flags, checked as a bundle's `linux.resources` are.
fn update(runtime: &Runtime, args: &runlambda::cli::UpdateArgs) -> Result<()> {
    let read_err = |what: String| move |source| Error::Io { what, source };
    let (json, source) = match &args.resources {
        Some(path) if path.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .map_err(read_err("read resources from standard input".into()))?;
            (bytes, std::path::PathBuf::from("standard input"))
        }
        Some(path) => (
            std::fs::read(path).map_err(read_err(format!("read {}", path.display())))?,
            path.clone(),
        ),
        None => (
            args.resources_json().to_string().into_bytes(),
            std::path::PathBuf::from("the update flags"),
        ),
    };
    let limits = runlambda::bundle::resources(&json, &source)?;
    runtime.update(&args.id, &limits)
}
