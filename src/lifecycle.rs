//! The Lambda lifecycle as a pure state machine: `(phase, event) → (phase, effects)` or a named
//! error. No I/O happens here; the supervisor feeds events in and carries the effects out, so
//! every transition is tested as a table.

use std::fmt;

/// Where an environment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Built, waiting for `start`.
    Created,
    /// External extensions are starting; each must register and ask for its first event
    /// before the runtime starts.
    StartingExtensions,
    /// The runtime is starting; it has not asked for its first event yet.
    Initializing,
    /// The runtime asked for its first event; an extension has yet to ask for its own.
    InitFinishing,
    /// The runtime and every extension wait in `next` with nothing to do (the environment may
    /// be frozen).
    Ready,
    /// An invocation is with the runtime.
    Invoking,
    /// The runtime answered the invocation; its next `next` completes it.
    Responded,
    /// The runtime asked for the next event; an extension is still working on the invocation.
    InvokeFinishing,
    /// After a failure: extensions have been told to shut down; waiting for them (and the
    /// runtime) to finish, within the shutdown budget.
    Resetting,
    /// After a failure: every process is being killed.
    Emptying,
    /// Emptied after a failure: the next invocation runs Init again first.
    Reset,
    /// Shutdown in progress: extensions have been told; waiting for them within the budget.
    ShuttingDown,
    /// Shutdown is over: the init is killing everything and exiting.
    Exiting,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `start` (or the first invocation after a reset): run Init.
    Start,
    /// The runtime called `GET /runtime/invocation/next`.
    Next,
    /// An invocation arrived from a caller.
    Invoke,
    /// The runtime posted `/response` for the current invocation.
    Response,
    /// The runtime posted `/error` for the current invocation.
    Error,
    /// The runtime posted `/init/error`.
    InitError,
    /// Init took longer than its limit.
    InitTimeout,
    /// The invocation's deadline passed.
    Timeout,
    /// The runtime process exited.
    RuntimeExit,
    /// The OOM killer killed the runtime.
    OutOfMemory,
    /// Every extension waits in `/extension/event/next` (always true without extensions).
    ExtensionsReady,
    /// An extension failed: its process exited or could not start, or it posted `init/error`.
    ExtensionFailed,
    /// Every extension told to shut down has exited or asked for the next event (and the
    /// runtime has exited), or the shutdown budget ran out.
    ShutdownDone,
    /// Every process of the environment is gone (after `KillAll`).
    Emptied,
    /// Idle too long, or told to stop.
    Shutdown,
}

/// Why the current invocation failed, as the caller is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// `Sandbox.Timedout`.
    Timeout,
    /// `Runtime.ExitError`.
    RuntimeExit,
    /// `Runtime.InitError` (the runtime reported an Init failure).
    InitError,
    /// `Runtime.OutOfMemory`.
    OutOfMemory,
    /// `Extension.Crash`, `Extension.LaunchError`, `Extension.InitError` … (the supervisor
    /// knows which extension failed how).
    Extension,
}

/// The `shutdownReason` extensions receive with SHUTDOWN (lowercase on the wire, as RAPID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Spindown,
    Timeout,
    Failure,
}

impl ShutdownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// What the supervisor must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Start the external extensions (`/opt/extensions/*`) and the Init timer.
    SpawnExtensions,
    /// Start the runtime process.
    SpawnRuntime,
    /// Thaw the cgroup (a no-op when it is not frozen).
    Thaw,
    /// Hand the invocation to the parked `next` (and INVOKE to extensions) and arm its deadline.
    Deliver,
    /// Give the same invocation to a second `next` (RAPID allows it).
    Redeliver,
    /// Answer the caller with the runtime's response or error.
    Reply,
    /// Answer the caller (if an invocation is waiting) with this platform failure.
    Fail(Failure),
    /// Init finished: record its duration.
    InitDone,
    /// The invocation is complete: END, REPORT, and a held answer goes out.
    Complete,
    /// Freeze the cgroup unless more work is queued.
    Freeze,
    /// SHUTDOWN with this reason to the extensions subscribed to it, SIGTERM to the runtime
    /// (only when there are extensions), and the shutdown budget starts.
    Shutdown(ShutdownReason),
    /// Kill every process of the environment but the init.
    KillAll,
    /// End the environment: the init kills everything and exits.
    ExitInit,
}

/// An event that makes no sense in the phase (a runtime calling out of turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongPhase {
    pub phase: Phase,
    pub event: Event,
}

impl fmt::Display for WrongPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not allowed while {:?}", self.event, self.phase)
    }
}

impl std::error::Error for WrongPhase {}

/// The transition for `event` in `phase`.
pub fn on(phase: Phase, event: Event) -> Result<(Phase, &'static [Effect]), WrongPhase> {
    use Effect::*;
    use Event as E;
    use Phase as P;
    use ShutdownReason as R;
    let next: (Phase, &'static [Effect]) = match (phase, event) {
        (P::Created | P::Reset, E::Start) => (P::StartingExtensions, &[Thaw, SpawnExtensions]),
        (P::StartingExtensions, E::ExtensionsReady) => (P::Initializing, &[SpawnRuntime]),
        (P::Initializing, E::Next) => (P::InitFinishing, &[]),
        (P::InitFinishing, E::ExtensionsReady) => (P::Ready, &[InitDone, Freeze]),
        (P::Initializing, E::InitError) => (
            P::Resetting,
            &[Fail(Failure::InitError), Shutdown(R::Failure)],
        ),
        (P::StartingExtensions | P::Initializing | P::InitFinishing, E::InitTimeout) => (
            P::Resetting,
            &[Fail(Failure::Timeout), Shutdown(R::Timeout)],
        ),
        (P::Initializing | P::InitFinishing, E::RuntimeExit) => (
            P::Resetting,
            &[Fail(Failure::RuntimeExit), Shutdown(R::Failure)],
        ),
        (P::Initializing | P::InitFinishing, E::OutOfMemory) => (
            P::Resetting,
            &[Fail(Failure::OutOfMemory), Shutdown(R::Failure)],
        ),
        (
            P::StartingExtensions
            | P::Initializing
            | P::InitFinishing
            | P::Invoking
            | P::Responded
            | P::InvokeFinishing,
            E::ExtensionFailed,
        ) => (
            P::Resetting,
            &[Fail(Failure::Extension), Shutdown(R::Failure)],
        ),
        (P::Ready, E::ExtensionFailed) => (P::Resetting, &[Shutdown(R::Failure)]),
        (P::Ready, E::Invoke) => (P::Invoking, &[Thaw, Deliver]),
        (P::Invoking, E::Next) => (P::Invoking, &[Redeliver]),
        (P::Invoking, E::Response | E::Error) => (P::Responded, &[Reply]),
        // The timeout covers the whole invoke phase, extensions' work after the answer too.
        (P::Invoking | P::Responded | P::InvokeFinishing, E::Timeout) => (
            P::Resetting,
            &[Fail(Failure::Timeout), Shutdown(R::Timeout)],
        ),
        // After an answer the caller keeps it; a crash before the next `next` only costs the
        // next Init.
        (P::Invoking | P::Responded | P::InvokeFinishing, E::RuntimeExit) => (
            P::Resetting,
            &[Fail(Failure::RuntimeExit), Shutdown(R::Failure)],
        ),
        (P::Invoking | P::Responded | P::InvokeFinishing, E::OutOfMemory) => (
            P::Resetting,
            &[Fail(Failure::OutOfMemory), Shutdown(R::Failure)],
        ),
        (P::Ready, E::RuntimeExit | E::OutOfMemory) => (P::Resetting, &[Shutdown(R::Failure)]),
        (P::Responded, E::Next) => (P::InvokeFinishing, &[]),
        (P::InvokeFinishing, E::ExtensionsReady) => (P::Ready, &[Complete, Freeze]),
        (P::Resetting, E::ShutdownDone) => (P::Emptying, &[KillAll]),
        (P::Emptying, E::Emptied) => (P::Reset, &[Freeze]),
        // Exits reported while shutting down or emptying are expected.
        (P::Resetting | P::Emptying, E::RuntimeExit | E::OutOfMemory | E::ExtensionFailed) => {
            (phase, &[])
        }
        (P::ShuttingDown, E::ShutdownDone) => (P::Exiting, &[ExitInit]),
        (
            P::ShuttingDown | P::Exiting,
            E::RuntimeExit | E::OutOfMemory | E::ExtensionFailed | E::Emptied | E::Shutdown,
        ) => (phase, &[]),
        (P::Exiting, E::ShutdownDone) => (P::Exiting, &[]),
        (_, E::Shutdown) => (
            P::ShuttingDown,
            &[Thaw, Fail(Failure::RuntimeExit), Shutdown(R::Spindown)],
        ),
        _ => return Err(WrongPhase { phase, event }),
    };
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Effect::*;
    use Event as E;
    use Phase as P;
    use ShutdownReason as R;

    const PHASES: [Phase; 13] = [
        P::Created,
        P::StartingExtensions,
        P::Initializing,
        P::InitFinishing,
        P::Ready,
        P::Invoking,
        P::Responded,
        P::InvokeFinishing,
        P::Resetting,
        P::Emptying,
        P::Reset,
        P::ShuttingDown,
        P::Exiting,
    ];
    const EVENTS: [Event; 15] = [
        E::Start,
        E::Next,
        E::Invoke,
        E::Response,
        E::Error,
        E::InitError,
        E::InitTimeout,
        E::Timeout,
        E::RuntimeExit,
        E::OutOfMemory,
        E::ExtensionsReady,
        E::ExtensionFailed,
        E::ShutdownDone,
        E::Emptied,
        E::Shutdown,
    ];

    /// Every allowed (phase, event) pair with its outcome; every pair not listed is an error.
    fn table() -> Vec<(Phase, Event, Phase, Vec<Effect>)> {
        let fail = |failure, reason| vec![Fail(failure), Shutdown(reason)];
        let mut rows = vec![
            (
                P::Created,
                E::Start,
                P::StartingExtensions,
                vec![Thaw, SpawnExtensions],
            ),
            (
                P::Reset,
                E::Start,
                P::StartingExtensions,
                vec![Thaw, SpawnExtensions],
            ),
            (
                P::StartingExtensions,
                E::ExtensionsReady,
                P::Initializing,
                vec![SpawnRuntime],
            ),
            (P::Initializing, E::Next, P::InitFinishing, vec![]),
            (
                P::InitFinishing,
                E::ExtensionsReady,
                P::Ready,
                vec![InitDone, Freeze],
            ),
            (
                P::Initializing,
                E::InitError,
                P::Resetting,
                fail(Failure::InitError, R::Failure),
            ),
            (P::Ready, E::Invoke, P::Invoking, vec![Thaw, Deliver]),
            (P::Invoking, E::Next, P::Invoking, vec![Redeliver]),
            (P::Invoking, E::Response, P::Responded, vec![Reply]),
            (P::Invoking, E::Error, P::Responded, vec![Reply]),
            (P::Responded, E::Next, P::InvokeFinishing, vec![]),
            (
                P::InvokeFinishing,
                E::ExtensionsReady,
                P::Ready,
                vec![Complete, Freeze],
            ),
            (
                P::Ready,
                E::ExtensionFailed,
                P::Resetting,
                vec![Shutdown(R::Failure)],
            ),
            (
                P::Ready,
                E::RuntimeExit,
                P::Resetting,
                vec![Shutdown(R::Failure)],
            ),
            (
                P::Ready,
                E::OutOfMemory,
                P::Resetting,
                vec![Shutdown(R::Failure)],
            ),
            (P::Resetting, E::ShutdownDone, P::Emptying, vec![KillAll]),
            (P::Emptying, E::Emptied, P::Reset, vec![Freeze]),
            (P::ShuttingDown, E::ShutdownDone, P::Exiting, vec![ExitInit]),
            (P::Exiting, E::ShutdownDone, P::Exiting, vec![]),
        ];
        for phase in [P::StartingExtensions, P::Initializing, P::InitFinishing] {
            rows.push((
                phase,
                E::InitTimeout,
                P::Resetting,
                fail(Failure::Timeout, R::Timeout),
            ));
        }
        for phase in [P::Initializing, P::InitFinishing] {
            rows.push((
                phase,
                E::RuntimeExit,
                P::Resetting,
                fail(Failure::RuntimeExit, R::Failure),
            ));
            rows.push((
                phase,
                E::OutOfMemory,
                P::Resetting,
                fail(Failure::OutOfMemory, R::Failure),
            ));
        }
        for phase in [P::Invoking, P::Responded, P::InvokeFinishing] {
            rows.push((
                phase,
                E::Timeout,
                P::Resetting,
                fail(Failure::Timeout, R::Timeout),
            ));
            rows.push((
                phase,
                E::RuntimeExit,
                P::Resetting,
                fail(Failure::RuntimeExit, R::Failure),
            ));
            rows.push((
                phase,
                E::OutOfMemory,
                P::Resetting,
                fail(Failure::OutOfMemory, R::Failure),
            ));
        }
        for phase in [
            P::StartingExtensions,
            P::Initializing,
            P::InitFinishing,
            P::Invoking,
            P::Responded,
            P::InvokeFinishing,
        ] {
            rows.push((
                phase,
                E::ExtensionFailed,
                P::Resetting,
                fail(Failure::Extension, R::Failure),
            ));
        }
        for phase in [P::Resetting, P::Emptying] {
            for event in [E::RuntimeExit, E::OutOfMemory, E::ExtensionFailed] {
                rows.push((phase, event, phase, vec![]));
            }
        }
        for phase in [P::ShuttingDown, P::Exiting] {
            for event in [
                E::RuntimeExit,
                E::OutOfMemory,
                E::ExtensionFailed,
                E::Emptied,
                E::Shutdown,
            ] {
                rows.push((phase, event, phase, vec![]));
            }
        }
        let shutdown = vec![Thaw, Fail(Failure::RuntimeExit), Shutdown(R::Spindown)];
        for phase in PHASES
            .into_iter()
            .filter(|p| !matches!(p, P::ShuttingDown | P::Exiting))
        {
            rows.push((phase, E::Shutdown, P::ShuttingDown, shutdown.clone()));
        }
        rows
    }

    #[test]
    fn every_phase_and_event_pair_has_its_outcome() {
        let table = table();
        for phase in PHASES {
            for event in EVENTS {
                let expected = table
                    .iter()
                    .find(|(p, e, _, _)| *p == phase && *e == event)
                    .map(|(_, _, next, effects)| (*next, effects.clone()));
                let got = on(phase, event).map(|(next, effects)| (next, effects.to_vec()));
                match expected {
                    Some(want) => assert_eq!(got, Ok(want), "{phase:?} × {event:?}"),
                    None => assert_eq!(
                        got,
                        Err(WrongPhase { phase, event }),
                        "{phase:?} × {event:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn a_wrong_phase_error_names_the_phase_and_the_call() {
        let err = on(P::Ready, E::Response).unwrap_err();
        assert_eq!(err.to_string(), "Response is not allowed while Ready");
    }

    fn run(events: &[Event]) -> Phase {
        events
            .iter()
            .fold(P::Created, |phase, event| on(phase, *event).unwrap().0)
    }

    #[test]
    fn a_timed_out_invocation_leads_to_a_new_init() {
        let phase = run(&[
            E::Start,
            E::ExtensionsReady,
            E::Next,
            E::ExtensionsReady,
            E::Invoke,
            E::Timeout,
            E::ShutdownDone,
            E::Emptied,
            E::Start,
            E::ExtensionsReady,
            E::Next,
            E::ExtensionsReady,
        ]);
        assert_eq!(phase, P::Ready);
    }

    #[test]
    fn an_invocation_completes_only_when_extensions_are_done_too() {
        let before = [
            E::Start,
            E::ExtensionsReady,
            E::Next,
            E::ExtensionsReady,
            E::Invoke,
            E::Response,
            E::Next,
        ];
        assert_eq!(run(&before), P::InvokeFinishing);
        let (phase, effects) = on(P::InvokeFinishing, E::ExtensionsReady).unwrap();
        assert_eq!((phase, effects), (P::Ready, &[Complete, Freeze][..]));
    }

    #[test]
    fn shutdown_waits_for_extensions_before_the_init_exits() {
        let (phase, effects) = on(P::Ready, E::Shutdown).unwrap();
        assert_eq!(phase, P::ShuttingDown);
        assert!(effects.contains(&Shutdown(R::Spindown)));
        assert!(!effects.contains(&ExitInit));
        assert_eq!(
            on(P::ShuttingDown, E::ShutdownDone).unwrap(),
            (P::Exiting, &[ExitInit][..])
        );
    }
}
