//! The Lambda lifecycle as a pure state machine: `(phase, event) → (phase, effects)` or a named
//! error. No I/O happens here; the supervisor feeds events in and carries the effects out, so
//! every transition is tested as a table.

use std::fmt;

/// Where an environment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Built, waiting for `start`.
    Created,
    /// The runtime is starting; it has not asked for its first event yet.
    Initializing,
    /// The runtime waits in `next` with nothing to do (the environment may be frozen).
    Ready,
    /// An invocation is with the runtime.
    Invoking,
    /// The runtime answered the invocation; its next `next` completes it.
    Responded,
    /// The environment is being emptied after a failure.
    Resetting,
    /// Emptied after a failure: the next invocation runs Init again first.
    Reset,
    /// Shutdown in progress: the environment is being emptied for good.
    ShuttingDown,
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
}

/// What the supervisor must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Start the runtime process and the Init timer.
    SpawnRuntime,
    /// Thaw the cgroup (a no-op when it is not frozen).
    Thaw,
    /// Hand the invocation to the parked `next` and arm its deadline.
    Deliver,
    /// Give the same invocation to a second `next` (RAPID allows it).
    Redeliver,
    /// Answer the caller with the runtime's response or error.
    Reply,
    /// Answer the caller (if an invocation is waiting) with this platform failure.
    Fail(Failure),
    /// Init finished: record its duration.
    InitDone,
    /// Freeze the cgroup unless more work is queued.
    Freeze,
    /// Kill every process of the environment but the init.
    KillAll,
    /// End the environment: the init exits.
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
    let next: (Phase, &'static [Effect]) = match (phase, event) {
        (P::Created | P::Reset, E::Start) => (P::Initializing, &[Thaw, SpawnRuntime]),
        (P::Initializing, E::Next) => (P::Ready, &[InitDone, Freeze]),
        (P::Initializing, E::InitError) => (P::Resetting, &[Fail(Failure::InitError), KillAll]),
        (P::Initializing, E::InitTimeout) => (P::Resetting, &[Fail(Failure::Timeout), KillAll]),
        (P::Initializing, E::RuntimeExit) => (P::Resetting, &[Fail(Failure::RuntimeExit), KillAll]),
        (P::Ready, E::Invoke) => (P::Invoking, &[Thaw, Deliver]),
        (P::Invoking, E::Next) => (P::Invoking, &[Redeliver]),
        (P::Invoking, E::Response | E::Error) => (P::Responded, &[Reply]),
        (P::Invoking, E::Timeout) => (P::Resetting, &[Fail(Failure::Timeout), KillAll]),
        (P::Invoking, E::RuntimeExit) => (P::Resetting, &[Fail(Failure::RuntimeExit), KillAll]),
        (P::Initializing | P::Invoking, E::OutOfMemory) => {
            (P::Resetting, &[Fail(Failure::OutOfMemory), KillAll])
        }
        (P::Responded, E::Next) => (P::Ready, &[Freeze]),
        // The answer is out; a crash before the next `next` only costs the next Init.
        (P::Responded | P::Ready, E::RuntimeExit | E::OutOfMemory) => (P::Resetting, &[KillAll]),
        (P::Resetting, E::Emptied) => (P::Reset, &[Freeze]),
        // Exits reported while emptying are expected.
        (P::Resetting, E::RuntimeExit | E::OutOfMemory) => (P::Resetting, &[]),
        (P::ShuttingDown, E::RuntimeExit | E::OutOfMemory | E::Emptied) => (P::ShuttingDown, &[]),
        (P::ShuttingDown, E::Shutdown) => (P::ShuttingDown, &[]),
        (_, E::Shutdown) => (
            P::ShuttingDown,
            &[Thaw, Fail(Failure::RuntimeExit), ExitInit],
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

    const PHASES: [Phase; 8] = [
        P::Created,
        P::Initializing,
        P::Ready,
        P::Invoking,
        P::Responded,
        P::Resetting,
        P::Reset,
        P::ShuttingDown,
    ];
    const EVENTS: [Event; 12] = [
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
        E::Emptied,
        E::Shutdown,
    ];

    /// Every allowed (phase, event) pair with its outcome; every pair not listed is an error.
    fn table() -> Vec<(Phase, Event, Phase, Vec<Effect>)> {
        let shutdown = vec![Thaw, Fail(Failure::RuntimeExit), ExitInit];
        let mut rows = vec![
            (
                P::Created,
                E::Start,
                P::Initializing,
                vec![Thaw, SpawnRuntime],
            ),
            (
                P::Reset,
                E::Start,
                P::Initializing,
                vec![Thaw, SpawnRuntime],
            ),
            (P::Initializing, E::Next, P::Ready, vec![InitDone, Freeze]),
            (
                P::Initializing,
                E::InitError,
                P::Resetting,
                vec![Fail(Failure::InitError), KillAll],
            ),
            (
                P::Initializing,
                E::InitTimeout,
                P::Resetting,
                vec![Fail(Failure::Timeout), KillAll],
            ),
            (
                P::Initializing,
                E::RuntimeExit,
                P::Resetting,
                vec![Fail(Failure::RuntimeExit), KillAll],
            ),
            (P::Ready, E::Invoke, P::Invoking, vec![Thaw, Deliver]),
            (P::Invoking, E::Next, P::Invoking, vec![Redeliver]),
            (P::Invoking, E::Response, P::Responded, vec![Reply]),
            (P::Invoking, E::Error, P::Responded, vec![Reply]),
            (
                P::Invoking,
                E::Timeout,
                P::Resetting,
                vec![Fail(Failure::Timeout), KillAll],
            ),
            (
                P::Invoking,
                E::RuntimeExit,
                P::Resetting,
                vec![Fail(Failure::RuntimeExit), KillAll],
            ),
            (
                P::Initializing,
                E::OutOfMemory,
                P::Resetting,
                vec![Fail(Failure::OutOfMemory), KillAll],
            ),
            (
                P::Invoking,
                E::OutOfMemory,
                P::Resetting,
                vec![Fail(Failure::OutOfMemory), KillAll],
            ),
            (P::Responded, E::Next, P::Ready, vec![Freeze]),
            (P::Responded, E::RuntimeExit, P::Resetting, vec![KillAll]),
            (P::Responded, E::OutOfMemory, P::Resetting, vec![KillAll]),
            (P::Ready, E::RuntimeExit, P::Resetting, vec![KillAll]),
            (P::Ready, E::OutOfMemory, P::Resetting, vec![KillAll]),
            (P::Resetting, E::Emptied, P::Reset, vec![Freeze]),
            (P::Resetting, E::RuntimeExit, P::Resetting, vec![]),
            (P::Resetting, E::OutOfMemory, P::Resetting, vec![]),
            (P::ShuttingDown, E::RuntimeExit, P::ShuttingDown, vec![]),
            (P::ShuttingDown, E::OutOfMemory, P::ShuttingDown, vec![]),
            (P::ShuttingDown, E::Emptied, P::ShuttingDown, vec![]),
            (P::ShuttingDown, E::Shutdown, P::ShuttingDown, vec![]),
        ];
        for phase in PHASES.into_iter().filter(|p| *p != P::ShuttingDown) {
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

    #[test]
    fn a_timed_out_invocation_leads_to_a_new_init() {
        let mut phase = P::Created;
        for event in [
            E::Start,
            E::Next,
            E::Invoke,
            E::Timeout,
            E::Emptied,
            E::Start,
            E::Next,
        ] {
            phase = on(phase, event).unwrap().0;
        }
        assert_eq!(phase, P::Ready);
    }
}
