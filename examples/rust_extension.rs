//! An external Lambda extension on the AWS `lambda-extension` crate, unmodified. It registers for
//! INVOKE and SHUTDOWN, subscribes to the Telemetry API for `platform` and `function` records,
//! and appends one line per event to the file named by `EXTENSION_LOG` (default
//! `/tmp/extension.log`):
//!
//! ```text
//! INVOKE <requestId>
//! TELEMETRY <type>          e.g. TELEMETRY platform.start, TELEMETRY function
//! SHUTDOWN <reason>
//! ```
//!
//! `cargo build --release --example rust_extension`, then copy the binary into a layer's
//! `extensions/` directory (it becomes `/opt/extensions/rust_extension`). The crate registers
//! under the executable's file name and receives telemetry on port 9003 inside the environment
//! (`http://sandbox.localdomain:9003`), batched for at most 25 ms.

use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use lambda_extension::{
    service_fn, Error, Extension, LambdaEvent, LambdaTelemetry, LogBuffering, NextEvent,
    SharedService,
};

/// How long to keep receiving telemetry after SHUTDOWN before exiting on our own (the platform
/// would otherwise SIGKILL us at the end of the shutdown budget).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);

/// Appends one line to the log file; opened per line so every line reaches the file at once.
fn log_line(line: &str) -> Result<(), Error> {
    let path = std::env::var("EXTENSION_LOG").unwrap_or_else(|_| "/tmp/extension.log".into());
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

async fn on_event(event: LambdaEvent) -> Result<(), Error> {
    match event.next {
        NextEvent::Invoke(invoke) => log_line(&format!("INVOKE {}", invoke.request_id)),
        NextEvent::Shutdown(shutdown) => {
            log_line(&format!("SHUTDOWN {}", shutdown.shutdown_reason))?;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
            std::process::exit(0);
        }
    }
}

async fn on_telemetry(batch: Vec<LambdaTelemetry>) -> Result<(), Error> {
    for event in batch {
        // The record enum serializes with its wire tag, e.g. {"type":"platform.start",...}.
        let value = serde_json::to_value(&event.record)?;
        let kind = value["type"].as_str().unwrap_or("unknown");
        log_line(&format!("TELEMETRY {kind}"))?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    Extension::new()
        .with_events(&["INVOKE", "SHUTDOWN"])
        .with_events_processor(service_fn(on_event))
        .with_telemetry_types(&["platform", "function"])
        // The shortest batching Lambda allows (25 ms; the default is 1 s), so tests see records soon.
        .with_telemetry_buffering(LogBuffering {
            timeout_ms: 25,
            max_bytes: 262_144,
            max_items: 1_000,
        })
        .with_telemetry_processor(SharedService::new(service_fn(on_telemetry)))
        .run()
        .await
}
