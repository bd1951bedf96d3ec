//! `--console-socket`, the way a caller receives a container process's terminal: `create` and
//! `exec` connect to the caller's unix socket before cloning, and the child that makes the
//! terminal sends its master there (`sandbox::terminal`). A terminal goes nowhere else —
//! runlambda does not relay one to its own stdio — so a terminal needs the socket and, as in
//! runc, the socket needs a terminal.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Why the console socket cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error(
        "process.terminal (or exec --tty) needs --console-socket: runlambda hands a terminal \
         only to a console socket"
    )]
    NoSocket,
    #[error(
        "--console-socket {}: the process has no terminal (set process.terminal, or exec --tty)",
        path.display()
    )]
    NoTerminal { path: PathBuf },
    #[error("cannot connect to console socket {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The caller's console socket, connected, for a process with a terminal; `None` without one.
pub fn connect(terminal: bool, socket: Option<&Path>) -> Result<Option<UnixStream>, ConsoleError> {
    match (terminal, socket) {
        (false, None) => Ok(None),
        (true, None) => Err(ConsoleError::NoSocket),
        (false, Some(path)) => Err(ConsoleError::NoTerminal {
            path: path.to_owned(),
        }),
        (true, Some(path)) => crate::socket_path::connect(path)
            .map(Some)
            .map_err(|source| ConsoleError::Connect {
                path: path.to_owned(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_and_a_socket_go_together() {
        assert!(connect(false, None).unwrap().is_none());
        assert!(matches!(connect(true, None), Err(ConsoleError::NoSocket)));
        let err = connect(false, Some(Path::new("/run/x.sock"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--console-socket /run/x.sock: the process has no terminal (set process.terminal, \
             or exec --tty)"
        );
    }

    #[test]
    fn connects_to_the_callers_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let err = connect(true, Some(&path)).unwrap_err();
        assert!(matches!(err, ConsoleError::Connect { .. }), "{err}");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(connect(true, Some(&path)).unwrap().is_some());
    }
}
