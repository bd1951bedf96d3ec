//! The runtime's own log (`--log FILE --log-format text|json`). The JSON shape is logrus's
//! (`{"level","msg","time"}`, one object a line), because containerd reads the last line whose
//! level is `error` and shows its `msg` to the user.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::SystemTime;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where log lines go: the `--log` file, or standard error.
pub struct Logger {
    file: Option<File>,
    format: LogFormat,
}

impl Logger {
    pub fn open(path: Option<&Path>, format: LogFormat) -> io::Result<Self> {
        let file = path
            .map(|p| OpenOptions::new().create(true).append(true).open(p))
            .transpose()?;
        Ok(Self { file, format })
    }

    /// Logs an error. Standard error always gets it too: podman and people read it there.
    pub fn error(&mut self, msg: &str) {
        self.log("error", msg);
        eprintln!("runlambda: {msg}");
    }

    /// Logs a warning: something failed that the command goes on without.
    pub fn warn(&mut self, msg: &str) {
        self.log("warning", msg);
        eprintln!("runlambda: warning: {msg}");
    }

    fn log(&mut self, level: &str, msg: &str) {
        if let Some(file) = &mut self.file {
            let _ =
                file.write_all(format_line(self.format, level, msg, SystemTime::now()).as_bytes());
        }
    }
}

fn format_line(format: LogFormat, level: &str, msg: &str, at: SystemTime) -> String {
    let time = humantime::format_rfc3339_seconds(at).to_string();
    match format {
        LogFormat::Json => {
            let line = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{line}\n")
        }
        LogFormat::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_lines_have_logrus_shape() {
        let at = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let line = format_line(LogFormat::Json, "error", "container x does not exist", at);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["level"], "error");
        assert_eq!(value["msg"], "container x does not exist");
        assert_eq!(value["time"], "2026-11-18T11:06:40Z");
        assert!(line.ends_with('\n'));
    }
}
