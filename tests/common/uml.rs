//! The pure cgroup v2 tier: runs one test of the current test binary inside a User-Mode Linux
//! guest booted by `tests/uml/guest.sh`, whose cgroups are pure v2 with the memory, pids, cpu
//! and io controllers enabled (the development hosts are hybrid, and their v1 memory
//! hierarchy is not ours to use). The guest sees the host's root read-only, so a test writes
//! only under the guest's own `/tmp` (which `std::env::temp_dir()` points at there).
//!
//! A test that needs the guest starts like this:
//!
//! ```ignore
//! #[test]
//! fn memory_limit_is_enforced() {
//!     if !uml::in_guest() {
//!         return uml::assert_passes_in_guest("memory_limit_is_enforced");
//!     }
//!     // assertions that run inside the guest
//! }
//! ```
// Each test crate that includes this module uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// Set to `1` in the guest's environment, so the re-executed test knows where it runs.
pub const IN_GUEST_VAR: &str = "RUNLAMBDA_IN_GUEST";

/// Whether this process runs inside the guest.
pub fn in_guest() -> bool {
    std::env::var_os(IN_GUEST_VAR).is_some_and(|v| v == "1")
}

/// The runner script that boots the guest.
pub fn guest_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/uml/guest.sh")
}

/// Runs the test named `test_name` of the current test binary inside a fresh guest and returns
/// what the guest printed. `extra_env` reaches both `guest.sh` (its `RUNLAMBDA_UML_*` knobs,
/// e.g. `RUNLAMBDA_UML_V1_MEMORY=1`) and the test inside the guest.
pub fn run_in_guest(test_name: &str, extra_env: &[(&str, &str)]) -> Output {
    let exe = std::env::current_exe().expect("the path of the running test binary");
    let script = guest_script();
    Command::new(&script)
        .arg("--")
        .arg(exe)
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(IN_GUEST_VAR, "1")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
}

/// Panics with the guest's output unless the test `test_name` ran inside the guest and passed.
pub fn assert_passes_in_guest(test_name: &str) {
    assert_passes_in_guest_with(test_name, &[]);
}

/// [`assert_passes_in_guest`] with extra environment variables, as for [`run_in_guest`].
pub fn assert_passes_in_guest_with(test_name: &str, extra_env: &[(&str, &str)]) {
    let out = run_in_guest(test_name, extra_env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `--exact` with a wrong name runs nothing and still exits 0: require the one test.
    let passed = out.status.success() && stdout.contains("test result: ok. 1 passed;");
    assert!(
        passed,
        "{test_name} did not pass in the UML guest ({}; guest.sh exits 124 on a timeout, 125 \
         when the guest failed)\n--- guest output ---\n{stdout}\n--- guest.sh stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
    );
}
