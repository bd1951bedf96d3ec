//! The extensions of one environment, as the supervisor's task tracks them: the external ones
//! it launched from `/opt/extensions` (and their pids), every registration (external or
//! internal) with its identifier and events, and where each stands — working, or parked in
//! `event/next` with the reply that will carry its next event. Pure bookkeeping: the supervisor
//! decides when to deliver what.

use tokio::sync::oneshot;

use crate::api::extensions::{ErrorKind, Events, ExtensionEvent, Registration};
use crate::api::telemetry::{Api, Subscription};
use crate::api::wire::MAX_EXTENSIONS;

/// An Extensions, Telemetry or Logs API call, for the supervisor's task.
pub enum ExtensionRequest {
    Register {
        registration: Registration,
        reply: oneshot::Sender<Result<Registered, Refusal>>,
    },
    Next {
        id: String,
        reply: oneshot::Sender<Result<ExtensionEvent, Refusal>>,
    },
    Error {
        id: String,
        kind: ErrorKind,
        error_type: String,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    Subscribe {
        id: String,
        subscription: Subscription,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
}

/// What a successful registration answers.
#[derive(Debug, Clone)]
pub struct Registered {
    pub id: String,
    pub function_name: String,
    pub handler: String,
    pub account_id: String,
}

/// Why a call was refused (each is a 403 with its `Extension.*` error type).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    UnknownIdentifier,
    InvalidState(String),
    RegistrationClosed,
    TooMany,
    ShutdownForInternal,
    SubscriptionClosed(Api),
}

/// Where an extension stands.
enum State {
    /// Registered; has not asked for an event yet.
    Registered,
    /// Working on the last event it received.
    Busy,
    /// Waiting in `event/next`.
    Parked(oneshot::Sender<Result<ExtensionEvent, Refusal>>),
    /// Received SHUTDOWN and asked for another event, or reported an error: nothing more
    /// is expected of it.
    Done,
}

/// One registered extension.
pub struct Extension {
    pub id: String,
    pub name: String,
    pub events: Events,
    /// Launched from `/opt/extensions` (else internal: it lives in the runtime's process).
    pub external: bool,
    state: State,
    /// SHUTDOWN waiting for its next `next`.
    owed: Option<ExtensionEvent>,
    /// Told to shut down (its SHUTDOWN was delivered or is owed).
    told: bool,
    /// Has asked for an event at least once.
    pub ready: bool,
}

/// An external extension the supervisor asked the init to start.
struct Launched {
    name: String,
    pid: Option<i32>,
    registered: bool,
}

/// The environment's extensions for one Init (emptied by a reset).
#[derive(Default)]
pub struct Extensions {
    launched: Vec<Launched>,
    registered: Vec<Extension>,
}

impl Extensions {
    /// Forgets everything: the processes are gone.
    pub fn clear(&mut self) {
        self.launched.clear();
        self.registered.clear();
    }

    /// No extension was launched or registered.
    pub fn is_empty(&self) -> bool {
        self.launched.is_empty() && self.registered.is_empty()
    }

    /// Records that the external extension `name` is being started.
    pub fn launch(&mut self, name: &str) {
        self.launched.push(Launched {
            name: name.to_string(),
            pid: None,
            registered: false,
        });
    }

    /// The init started the external extension `name` as `pid`.
    pub fn started(&mut self, name: &str, pid: i32) {
        if let Some(launched) = self
            .launched
            .iter_mut()
            .find(|l| l.name == name && l.pid.is_none())
        {
            launched.pid = Some(pid);
        }
    }

    /// The name of the external extension whose process `pid` was; it is forgotten.
    pub fn exited(&mut self, pid: i32) -> Option<String> {
        let at = self.launched.iter().position(|l| l.pid == Some(pid))?;
        let launched = self.launched.remove(at);
        self.registered
            .retain(|e| !(e.external && e.name == launched.name));
        Some(launched.name)
    }

    /// A registration; `open` is false once the runtime has asked for its first event.
    pub fn register(&mut self, registration: &Registration, open: bool) -> Result<String, Refusal> {
        if !open {
            return Err(Refusal::RegistrationClosed);
        }
        if self.registered.iter().any(|e| e.name == registration.name) {
            return Err(Refusal::InvalidState(format!(
                "extension {} is already registered",
                registration.name
            )));
        }
        if self.registered.len() >= MAX_EXTENSIONS {
            return Err(Refusal::TooMany);
        }
        let launched = self
            .launched
            .iter_mut()
            .find(|l| l.name == registration.name && !l.registered);
        let external = launched.is_some();
        if !external && registration.events.shutdown {
            return Err(Refusal::ShutdownForInternal);
        }
        if let Some(launched) = launched {
            launched.registered = true;
        }
        let id = uuid::Uuid::new_v4().to_string();
        self.registered.push(Extension {
            id: id.clone(),
            name: registration.name.clone(),
            events: registration.events,
            external,
            state: State::Registered,
            owed: None,
            told: false,
            ready: false,
        });
        Ok(id)
    }

    pub fn get(&self, id: &str) -> Option<&Extension> {
        self.registered.iter().find(|e| e.id == id)
    }

    /// An extension's `next`: it gets an owed SHUTDOWN at once, or parks. Returns whether
    /// this was its first `next`.
    pub fn next(
        &mut self,
        id: &str,
        reply: oneshot::Sender<Result<ExtensionEvent, Refusal>>,
    ) -> Result<bool, (Refusal, oneshot::Sender<Result<ExtensionEvent, Refusal>>)> {
        let Some(extension) = self.registered.iter_mut().find(|e| e.id == id) else {
            return Err((Refusal::UnknownIdentifier, reply));
        };
        match extension.state {
            State::Parked(_) => {
                return Err((
                    Refusal::InvalidState(format!(
                        "extension {} is already waiting for an event",
                        extension.name
                    )),
                    reply,
                ))
            }
            State::Done if !extension.told => {
                return Err((
                    Refusal::InvalidState(format!(
                        "extension {} reported an error",
                        extension.name
                    )),
                    reply,
                ))
            }
            _ => {}
        }
        let first = !extension.ready;
        extension.ready = true;
        if let Some(event) = extension.owed.take() {
            let _ = reply.send(Ok(event));
            extension.state = State::Busy;
        } else if extension.told {
            // After SHUTDOWN nothing more comes; the shutdown waits no longer for it.
            extension.state = State::Done;
            drop(reply);
        } else {
            extension.state = State::Parked(reply);
        }
        Ok(first)
    }

    /// An extension reported `init/error` or `exit/error`: no further call of it succeeds.
    pub fn failed(&mut self, id: &str, kind: ErrorKind) -> Result<String, Refusal> {
        let extension = self
            .registered
            .iter_mut()
            .find(|e| e.id == id)
            .ok_or(Refusal::UnknownIdentifier)?;
        if matches!(extension.state, State::Done) && !extension.told {
            return Err(Refusal::InvalidState(format!(
                "extension {} already reported an error",
                extension.name
            )));
        }
        if kind == ErrorKind::Init && extension.ready {
            return Err(Refusal::InvalidState(format!(
                "extension {} is past Init",
                extension.name
            )));
        }
        extension.state = State::Done;
        extension.told = false;
        Ok(extension.name.clone())
    }

    /// Every launched external extension has registered, and every registered extension
    /// waits in `next` (or is done).
    pub fn all_waiting(&self) -> bool {
        self.launched.iter().all(|l| l.registered)
            && self
                .registered
                .iter()
                .all(|e| matches!(e.state, State::Parked(_) | State::Done))
    }

    /// Hands INVOKE to every extension subscribed to it (all of them wait in `next` then).
    pub fn invoke(&mut self, event: &ExtensionEvent) {
        for extension in self.registered.iter_mut().filter(|e| e.events.invoke) {
            if let State::Parked(reply) = std::mem::replace(&mut extension.state, State::Busy) {
                let _ = reply.send(Ok(event.clone()));
            }
        }
    }

    /// Tells every external extension subscribed to SHUTDOWN: at once if it waits in `next`,
    /// else when it next asks. Returns whether any was told.
    pub fn shutdown(&mut self, event: &ExtensionEvent) -> bool {
        let mut any = false;
        for extension in self
            .registered
            .iter_mut()
            .filter(|e| e.external && e.events.shutdown && !e.told)
        {
            extension.told = true;
            any = true;
            match std::mem::replace(&mut extension.state, State::Busy) {
                State::Parked(reply) => {
                    let _ = reply.send(Ok(event.clone()));
                }
                State::Done => extension.state = State::Done,
                _ => extension.owed = Some(event.clone()),
            }
        }
        any
    }

    /// Every extension told to shut down has exited or asked for another event.
    pub fn shutdown_settled(&self) -> bool {
        self.registered
            .iter()
            .filter(|e| e.told)
            .all(|e| matches!(e.state, State::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(name: &str, invoke: bool, shutdown: bool) -> Registration {
        Registration {
            name: name.into(),
            events: Events { invoke, shutdown },
            account_id: false,
        }
    }

    fn invoke_event() -> ExtensionEvent {
        ExtensionEvent::Invoke {
            deadline_ms: 1,
            request_id: "r".into(),
            invoked_function_arn: "arn".into(),
            tracing: crate::api::extensions::Tracing::amzn("Root=1".into()),
        }
    }

    #[test]
    fn registration_rules() {
        let mut extensions = Extensions::default();
        extensions.launch("ext");
        let id = extensions
            .register(&registration("ext", true, true), true)
            .unwrap();
        assert!(extensions.get(&id).unwrap().external);
        assert!(matches!(
            extensions.register(&registration("ext", true, false), true),
            Err(Refusal::InvalidState(_))
        ));
        assert_eq!(
            extensions.register(&registration("internal", true, true), true),
            Err(Refusal::ShutdownForInternal)
        );
        assert_eq!(
            extensions.register(&registration("late", true, false), false),
            Err(Refusal::RegistrationClosed)
        );
        for n in 1..MAX_EXTENSIONS {
            extensions
                .register(&registration(&format!("internal-{n}"), true, false), true)
                .unwrap();
        }
        assert_eq!(
            extensions.register(&registration("eleventh", false, false), true),
            Err(Refusal::TooMany)
        );
    }

    #[test]
    fn init_waits_for_every_launched_extension_to_register_and_ask() {
        let mut extensions = Extensions::default();
        extensions.launch("a");
        assert!(!extensions.all_waiting());
        let id = extensions
            .register(&registration("a", true, true), true)
            .unwrap();
        assert!(!extensions.all_waiting());
        let (reply, _answer) = oneshot::channel();
        assert_eq!(extensions.next(&id, reply).ok(), Some(true));
        assert!(extensions.all_waiting());
    }

    #[test]
    fn invoke_and_shutdown_reach_the_subscribers() {
        let mut extensions = Extensions::default();
        extensions.launch("a");
        let id = extensions
            .register(&registration("a", true, true), true)
            .unwrap();
        let (reply, mut answer) = oneshot::channel();
        extensions.next(&id, reply).ok().unwrap();
        extensions.invoke(&invoke_event());
        assert_eq!(answer.try_recv().unwrap(), Ok(invoke_event()));
        assert!(!extensions.all_waiting(), "busy with the invocation");
        // SHUTDOWN while it works waits for its next `next`.
        let shutdown = ExtensionEvent::Shutdown {
            shutdown_reason: "timeout",
            deadline_ms: 2,
        };
        assert!(extensions.shutdown(&shutdown));
        assert!(!extensions.shutdown_settled());
        let (reply, mut answer) = oneshot::channel();
        extensions.next(&id, reply).ok().unwrap();
        assert_eq!(answer.try_recv().unwrap(), Ok(shutdown));
        assert!(!extensions.shutdown_settled());
        let (reply, _answer) = oneshot::channel();
        extensions.next(&id, reply).ok().unwrap();
        assert!(extensions.shutdown_settled());
    }

    #[test]
    fn an_exited_extension_is_forgotten() {
        let mut extensions = Extensions::default();
        extensions.launch("a");
        extensions.started("a", 7);
        extensions
            .register(&registration("a", false, true), true)
            .unwrap();
        assert_eq!(extensions.exited(8), None);
        assert_eq!(extensions.exited(7).as_deref(), Some("a"));
        assert!(extensions.is_empty());
        assert!(extensions.shutdown_settled());
    }

    #[test]
    fn unknown_identifiers_and_errors() {
        let mut extensions = Extensions::default();
        let (reply, _answer) = oneshot::channel();
        assert!(matches!(
            extensions.next("nobody", reply),
            Err((Refusal::UnknownIdentifier, _))
        ));
        let id = extensions
            .register(&registration("i", true, false), true)
            .unwrap();
        assert_eq!(extensions.failed(&id, ErrorKind::Init).as_deref(), Ok("i"));
        let (reply, _answer) = oneshot::channel();
        assert!(matches!(
            extensions.next(&id, reply),
            Err((Refusal::InvalidState(_), _))
        ));
    }
}
