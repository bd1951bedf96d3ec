//! The environment's log: every line the runtime writes, framed per invocation by Lambda's
//! `START`, `END` and `REPORT` lines, written to the container's stdout. The lines of the
//! current invocation are also kept, for callers who ask for them (`X-Amz-Log-Type: Tail`).

use std::time::Duration;

use base64::Engine;

use crate::api::wire::LOG_TAIL;

/// The figures of one REPORT line.
pub struct Report<'a> {
    pub id: &'a str,
    pub duration: Duration,
    pub memory_mb: u32,
    pub peak_bytes: Option<u64>,
    pub memory_enforced: bool,
    /// Init's duration, on the first invocation after an Init.
    pub init: Option<Duration>,
}

/// Writes log lines and keeps the current invocation's.
#[derive(Default)]
pub struct LogBook {
    current: Option<String>,
}

impl LogBook {
    /// A line from the runtime (or about it).
    pub fn line(&mut self, text: &str) {
        super::write_log_line(text);
        if let Some(buffer) = &mut self.current {
            buffer.push_str(text);
            buffer.push('\n');
        }
    }

    /// `START`: from here the lines belong to invocation `id`.
    pub fn start(&mut self, id: &str) {
        self.current = Some(String::new());
        self.line(&format!("START RequestId: {id} Version: $LATEST"));
    }

    /// `END` and `REPORT`; returns the invocation's log (its last 4 KB), base64-encoded.
    pub fn finish(&mut self, report: Report<'_>) -> String {
        self.line(&format!("END RequestId: {}", report.id));
        self.line(&report_line(&report));
        let text = self.current.take().unwrap_or_default();
        let tail = &text.as_bytes()[text.len().saturating_sub(LOG_TAIL)..];
        base64::engine::general_purpose::STANDARD.encode(tail)
    }
}

/// The billed duration: the invocation rounded up to the millisecond, plus Init on a cold start.
pub fn billed_ms(report: &Report<'_>) -> u64 {
    let ms = report.duration.as_secs_f64() * 1000.0;
    ms.ceil().max(1.0) as u64 + report.init.map_or(0, |d| d.as_millis() as u64)
}

/// Lambda's REPORT line (tab-separated, as CloudWatch shows it).
pub fn report_line(report: &Report<'_>) -> String {
    let ms = report.duration.as_secs_f64() * 1000.0;
    let billed = billed_ms(report);
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\t",
        report.id, report.memory_mb
    );
    match (report.peak_bytes, report.memory_enforced) {
        (Some(peak), true) => line.push_str(&format!(
            "Max Memory Used: {} MB\t",
            peak.div_ceil(1024 * 1024)
        )),
        (Some(peak), false) => line.push_str(&format!(
            "Max Memory Used: {} MB (memory limit not enforced on this host)\t",
            peak.div_ceil(1024 * 1024)
        )),
        (None, _) => {
            line.push_str("Max Memory Used: unknown (memory limit not enforced on this host)\t")
        }
    }
    if let Some(init) = report.init {
        line.push_str(&format!(
            "Init Duration: {:.2} ms\t",
            init.as_secs_f64() * 1000.0
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(init: Option<Duration>, peak: Option<u64>, enforced: bool) -> String {
        report_line(&Report {
            id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
            duration: Duration::from_micros(2_346),
            memory_mb: 128,
            peak_bytes: peak,
            memory_enforced: enforced,
            init,
        })
    }

    #[test]
    fn report_lines_have_lambdas_fields() {
        assert_eq!(
            report(None, Some(37 << 20), true),
            "REPORT RequestId: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\tDuration: 2.35 ms\t\
             Billed Duration: 3 ms\tMemory Size: 128 MB\tMax Memory Used: 37 MB\t"
        );
    }

    #[test]
    fn a_cold_start_reports_and_bills_its_init() {
        let line = report(Some(Duration::from_micros(120_330)), Some(1), true);
        assert!(line.ends_with("Init Duration: 120.33 ms\t"), "{line}");
        assert!(line.contains("Billed Duration: 123 ms"), "{line}");
    }

    #[test]
    fn an_unenforced_limit_is_said_in_every_report() {
        assert!(report(None, None, false).contains("not enforced"));
        assert!(report(None, Some(5 << 20), false).contains("not enforced"));
    }
}
