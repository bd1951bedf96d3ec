//! Signal names and numbers as `runlambda kill` accepts them: runc's rules (`9`, `KILL`,
//! `SIGKILL` and `kill` all mean the same signal).

use std::str::FromStr;

use nix::sys::signal::Signal;

/// A signal argument that is neither a known number nor a known name.
#[derive(Debug, thiserror::Error)]
#[error("unknown signal {0:?}: give a number (9) or a name (KILL, SIGKILL)")]
pub struct UnknownSignal(pub String);

/// Parses a signal the way runc does: a number is taken as is, a name is upper-cased and
/// prefixed with `SIG` when it lacks it.
pub fn parse(arg: &str) -> Result<Signal, UnknownSignal> {
    let unknown = || UnknownSignal(arg.to_string());
    if let Ok(number) = arg.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| unknown());
    }
    let upper = arg.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| unknown())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_in_every_spelling() {
        for arg in ["9", "KILL", "SIGKILL", "kill", "sigkill"] {
            assert_eq!(parse(arg).unwrap(), Signal::SIGKILL, "{arg}");
        }
        assert_eq!(parse("15").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("usr1").unwrap(), Signal::SIGUSR1);
    }

    #[test]
    fn unknown_signals_are_named_in_the_error() {
        for arg in ["0", "65", "BOGUS", "SIG", ""] {
            let err = parse(arg).unwrap_err();
            assert!(err.to_string().contains(&format!("{arg:?}")), "{err}");
        }
    }
}
