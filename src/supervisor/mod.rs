//! The supervisor of one Lambda environment: a host process outside the environment's cgroup
//! that owns the environment's state in a single task. The Runtime, Extensions, Telemetry and
//! Invoke API handlers, the init's messages, the processes' output and the timers all reach
//! that task as [`Command`]s; it drives the pure machine in `lifecycle` and carries out the
//! effects (spawning extensions and the runtime through the init, INVOKE and SHUTDOWN events,
//! telemetry records, freezing, thawing, resets, answers to callers).

pub mod extensions;
mod lease;
mod netns;
mod report;
pub mod serve;
mod spawn;
mod telemetry;

pub use spawn::LD_LIBRARY_PATH;

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use crate::api::extensions::{ErrorKind, ExtensionEvent, Tracing};
use crate::api::relay::{self, Streamed};
use crate::api::telemetry::{
    InitMetrics, Record, ReportMetrics, RuntimeDoneMetrics, Status, TraceContext,
};
use crate::api::wire;
use crate::api::KillSwitch;
use crate::cgroup::{Cgroup, Freezer};
use crate::lifecycle::{self, Effect, Event, Failure, Phase, ShutdownReason};
use crate::sandbox::channel::{receive, Channel, FromInit, ToInit};
use crate::spec::EnvironmentSpec;
use extensions::{ExtensionRequest, Extensions, Refusal as ExtensionRefusal, Registered};
use report::LogBook;
use spawn::Role;
use telemetry::Telemetry;

/// How long Init may take (Lambda's limit).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long extensions (and the runtime, when there are extensions) get to finish after
/// SHUTDOWN before everything is killed.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(2_000);
/// How long the supervisor keeps reading the processes' output after the init is gone.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(200);
/// The account in ARNs and in `register` answers.
const ACCOUNT_ID: &str = "012345678912";
/// `initializationType` of every Init (no provisioned concurrency or SnapStart here).
const INITIALIZATION_TYPE: &str = "on-demand";

/// What the supervisor's task is told.
pub enum Command {
    /// The runtime's `GET next`: answered with the next invocation when there is one.
    Next(oneshot::Sender<Result<Delivery, Refusal>>),
    /// The runtime's `POST {id}/response`.
    Response {
        id: String,
        body: Bytes,
        content_type: Option<String>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// The runtime began a streamed `POST {id}/response`: the caller is handed the stream, the
    /// runtime's handler the sender of its chunks.
    StreamStart {
        id: String,
        content_type: Option<String>,
        reply: oneshot::Sender<Result<mpsc::Sender<Bytes>, Refusal>>,
    },
    /// A streamed response is over: `produced_bytes` were sent, and `error` (type, body) when
    /// its trailers reported one.
    StreamEnd {
        id: String,
        produced_bytes: u64,
        error: Option<(String, Bytes)>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// The runtime's `POST {id}/error` (or a response whose trailers carried an error).
    Error {
        id: String,
        body: Bytes,
        error_type: Option<String>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// The runtime's `POST init/error`.
    InitError {
        body: Bytes,
        error_type: Option<String>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    },
    /// A caller's invocation.
    Invoke(InvokeRequest),
    /// `start` arrived: run Init.
    Start,
    /// One line the runtime or an extension wrote.
    Output { from: Role, line: String },
    /// An output stream of a process reached its end.
    OutputClosed,
    /// The supervisor could not even ask the init to start a process.
    SpawnError { role: Role, reason: String },
    /// An Extensions, Telemetry or Logs API call.
    Extension(ExtensionRequest),
    /// A message from the init.
    Init(FromInit),
    /// The init exited or the channel to it broke: the environment is over.
    InitGone,
    /// A timer fired; `generation` tells stale timers apart.
    Timer { kind: TimerKind, generation: u64 },
}

/// The timers of an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    Init,
    Deadline,
    Idle,
    Shutdown,
    /// The end of `com.runlambda.freeze-delay-ms` after an invocation.
    Freeze,
}

/// A Runtime API call the current state refuses.
#[derive(Debug)]
pub enum Refusal {
    /// No invocation with that id is in flight (400 `InvalidRequestID`).
    InvalidRequestId,
    /// The call is out of turn (403 `InvalidStateTransition`).
    InvalidState(String),
}

/// What a parked `next` receives.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub payload: Bytes,
    pub deadline_ms: u64,
    pub function_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
}

/// A caller's invocation as the Invoke API parsed it.
pub struct InvokeRequest {
    pub payload: Bytes,
    pub client_context: Option<String>,
    pub trace_id: Option<String>,
    /// `X-Amz-Log-Type: Tail`.
    pub tail: bool,
    /// `None` for an `Event` invocation: nobody waits for it.
    pub reply: Option<oneshot::Sender<Result<Outcome, Busy>>>,
}

/// The environment already has an invocation (429 `TooManyRequestsException`).
#[derive(Debug)]
pub struct Busy;

/// The function's answer as its caller receives it.
#[derive(Debug)]
pub enum AnswerBody {
    Whole(Bytes),
    /// A streaming runtime's answer, relayed as it is sent.
    Streamed(Streamed),
}

/// What the caller of a synchronous invocation gets.
#[derive(Debug)]
pub struct Outcome {
    pub request_id: String,
    pub body: AnswerBody,
    pub content_type: Option<String>,
    pub function_error: bool,
    /// The invocation's log (`X-Amz-Log-Result`), when asked for.
    pub log: Option<String>,
}

/// The identity of the function, as its environment variables and ARN show it.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    /// How long an idle environment stays thawed (0: freeze at once, as Lambda does).
    pub freeze_delay: Duration,
    pub region: String,
    pub memory_enforced: bool,
}

impl Function {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{ACCOUNT_ID}:function:{}",
            self.region, self.name
        )
    }
}

/// An invocation that has been accepted.
struct Accepted {
    request: InvokeRequest,
    id: String,
    /// When the invocation started counting against its timeout.
    started: Option<Instant>,
    /// When the runtime received it.
    delivered: Option<Instant>,
    deadline_ms: u64,
    /// An answer held back until the REPORT line exists, for a caller who asked for the log.
    held: Option<Outcome>,
    /// Where the outcome of a streamed answer goes, once the caller has the stream.
    stream_end: Option<oneshot::Sender<Outcome>>,
    /// How the invocation went, for `platform.runtimeDone` and `platform.report`.
    status: Status,
    error_type: Option<String>,
    produced_bytes: u64,
}

impl Accepted {
    /// Hands the caller the outcome: as the end of the stream it is reading, or as the answer.
    fn send(&mut self, outcome: Outcome) {
        if let Some(end) = self.stream_end.take() {
            let _ = end.send(outcome);
        } else if let Some(caller) = self.request.reply.take() {
            let _ = caller.send(Ok(outcome));
        }
    }
}

/// The environment's state, owned by the supervisor task alone.
pub struct Supervisor {
    spec: EnvironmentSpec,
    function: Function,
    cgroup: Cgroup,
    /// The leaf's `cgroup.freeze`, held open for the freeze and thaw around each invocation.
    freezer: Freezer,
    init: Rc<AsyncFd<Channel>>,
    /// The init's pid on the host, to read the environment's `/opt/extensions`.
    init_pid: i32,
    commands: mpsc::UnboundedSender<Command>,
    phase: Phase,
    runtime_pid: Option<i32>,
    /// What the init was asked to start and has not yet reported started, in order.
    spawning: VecDeque<Role>,
    extensions: Extensions,
    /// How the failing extension failed (`Extension.Crash`, …) and why, for the caller.
    extension_failure: Option<(String, String)>,
    telemetry: Telemetry,
    /// Output streams not yet at their end.
    open_streams: usize,
    parked: Option<oneshot::Sender<Result<Delivery, Refusal>>>,
    current: Option<Accepted>,
    queue: VecDeque<Accepted>,
    frozen: bool,
    generation: u64,
    /// The freeze-delay timer's own generation, so that it runs beside the other timer.
    freeze_generation: u64,
    /// The running timers (the environment's one, and the freeze delay's): re-arming one stops
    /// the old task, so timers never pile up however many invocations pass.
    timer: Option<tokio::task::JoinHandle<()>>,
    freeze_timer: Option<tokio::task::JoinHandle<()>>,
    init_started: Option<Instant>,
    /// Init's duration, reported once, in the REPORT of the first invocation after it.
    init_duration: Option<Duration>,
    /// `phase` of the current Init's records: `init`, or `invoke` for an Init inside an
    /// invocation (after a reset).
    init_phase: &'static str,
    /// The leaf's OOM-kill count when last looked at: a rise means the runtime ran out of memory.
    oom_kills: Option<u64>,
    log: LogBook,
    /// Set at each Init from `/opt/disable-extensions-jwigqn8j`.
    kill_switch: KillSwitch,
}

impl Supervisor {
    pub fn new(
        spec: EnvironmentSpec,
        function: Function,
        cgroup: Cgroup,
        init: Channel,
        init_pid: i32,
        commands: mpsc::UnboundedSender<Command>,
    ) -> std::io::Result<Self> {
        init.set_nonblocking()?;
        let netns = std::fs::File::open(format!("/proc/{init_pid}/ns/net"))
            .and_then(netns::Connector::start);
        let connector = match netns {
            Ok(connector) => Some(connector),
            Err(e) => {
                write_log_line(&format!(
                    "runlambda: telemetry cannot be delivered: cannot join the environment's network namespace: {e}"
                ));
                None
            }
        };
        let freezer = cgroup.freezer().map_err(std::io::Error::other)?;
        Ok(Self {
            spec,
            function,
            freezer,
            cgroup,
            init: Rc::new(crate::sys::async_fd(init)?),
            init_pid,
            commands,
            phase: Phase::Created,
            runtime_pid: None,
            spawning: VecDeque::new(),
            extensions: Extensions::default(),
            extension_failure: None,
            telemetry: Telemetry::new(connector),
            open_streams: 0,
            parked: None,
            current: None,
            queue: VecDeque::new(),
            frozen: false,
            generation: 0,
            freeze_generation: 0,
            timer: None,
            freeze_timer: None,
            init_started: None,
            init_duration: None,
            init_phase: "init",
            oom_kills: None,
            log: LogBook::default(),
            kill_switch: KillSwitch::default(),
        })
    }

    /// The extensions kill switch, for the handlers of the APIs it closes.
    pub fn kill_switch(&self) -> KillSwitch {
        self.kill_switch.clone()
    }

    /// Reads the init's messages into the command queue until the channel closes.
    pub async fn forward_init_messages(
        init: Rc<AsyncFd<Channel>>,
        commands: mpsc::UnboundedSender<Command>,
    ) {
        while let Ok(Some((message, _))) = receive::<FromInit>(&init).await {
            if commands.send(Command::Init(message)).is_err() {
                return;
            }
        }
        let _ = commands.send(Command::InitGone);
    }

    pub fn init_channel(&self) -> Rc<AsyncFd<Channel>> {
        self.init.clone()
    }

    /// Runs until the environment is over, then reads what its processes wrote last.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            if !self.handle(command) {
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while self.open_streams > 0 {
            match tokio::time::timeout_at(deadline, commands.recv()).await {
                Ok(Some(Command::Output { from, line })) => self.on_output(from, line),
                Ok(Some(Command::OutputClosed)) => self.open_streams -= 1,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Handles one command; false once the environment is gone.
    fn handle(&mut self, command: Command) -> bool {
        match command {
            Command::Start => self.step(Event::Start),
            Command::Next(reply) => self.on_next(reply),
            Command::Response {
                id,
                body,
                content_type,
                reply,
            } => {
                let produced = body.len() as u64;
                self.on_answer(id, (body, produced), content_type, None, reply)
            }
            Command::StreamStart {
                id,
                content_type,
                reply,
            } => {
                let _ = reply.send(self.on_stream_start(&id, content_type));
            }
            Command::StreamEnd {
                id,
                produced_bytes,
                error: None,
                reply,
            } => self.on_answer(id, (Bytes::new(), produced_bytes), None, None, reply),
            Command::StreamEnd {
                id,
                produced_bytes,
                error: Some((error_type, body)),
                reply,
            } => self.on_answer(
                id,
                (body, produced_bytes),
                Some("application/json".into()),
                Some(error_type),
                reply,
            ),
            // The error type header labels the error in telemetry; the caller gets the body.
            Command::Error {
                id,
                body,
                error_type,
                reply,
            } => {
                let produced = body.len() as u64;
                self.on_answer(
                    id,
                    (body, produced),
                    Some("application/json".into()),
                    Some(error_type.unwrap_or_else(|| "Unhandled".into())),
                    reply,
                )
            }
            Command::InitError { body, reply, .. } => {
                self.log.line(&format!(
                    "runtime reported an init error: {}",
                    String::from_utf8_lossy(&body).trim()
                ));
                let result = match self.phase {
                    Phase::Initializing => {
                        self.step(Event::InitError);
                        Ok(())
                    }
                    phase => Err(Refusal::InvalidState(format!(
                        "State transition from {phase:?} to InitError failed for runtime"
                    ))),
                };
                let _ = reply.send(result);
            }
            Command::Invoke(request) => self.on_invoke(request),
            Command::Output { from, line } => self.on_output(from, line),
            Command::OutputClosed => self.open_streams = self.open_streams.saturating_sub(1),
            Command::SpawnError { role, reason } => self.on_spawn_failure(role, reason),
            Command::Extension(request) => self.on_extension(request),
            Command::Init(message) => self.on_init_message(message),
            Command::InitGone => {
                self.fail_everything();
                return false;
            }
            Command::Timer { kind, generation } => self.on_timer(kind, generation),
        }
        true
    }

    /// Feeds an event to the machine and carries out its effects, then the events that the
    /// new state already implies (every extension waiting, a shutdown finished).
    fn step(&mut self, event: Event) {
        self.transition(event);
        while let Some(implied) = self.implied_event() {
            self.transition(implied);
        }
    }

    fn transition(&mut self, event: Event) {
        let Ok((phase, effects)) = lifecycle::on(self.phase, event) else {
            return;
        };
        self.phase = phase;
        for effect in effects {
            self.apply(*effect);
        }
        if matches!(self.phase, Phase::Ready | Phase::Reset) {
            self.arm(TimerKind::Idle, self.function.idle_timeout);
            self.start_queued();
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Thaw => self.thaw(),
            Effect::SpawnExtensions => self.spawn_extensions(),
            Effect::SpawnRuntime => self.spawn(Role::Runtime),
            Effect::Deliver => self.deliver(),
            Effect::Redeliver => {}
            Effect::Reply => {}
            Effect::Fail(failure) => {
                self.fail_init(failure);
                self.fail_current(failure);
            }
            Effect::InitDone => {
                let duration = self.init_started.map(|t| t.elapsed()).unwrap_or_default();
                self.init_duration = Some(duration);
                self.report_init(duration, Status::Success, None);
            }
            Effect::Complete => {
                self.finish_current();
            }
            Effect::Freeze => self.freeze_if_idle(),
            Effect::Shutdown(reason) => self.begin_shutdown(reason),
            Effect::KillAll => {
                // Nobody may be left waiting for an invocation of an emptied environment.
                self.fail_current(Failure::RuntimeExit);
                self.thaw();
                self.runtime_pid = None;
                self.parked = None;
                self.extensions.clear();
                self.telemetry.clear();
                let _ = self.init.get_ref().send(&ToInit::KillAll);
            }
            Effect::ExitInit => {
                let _ = self.init.get_ref().send(&ToInit::Exit { code: 0 });
            }
        }
    }

    /// Every extension told to shut down is done, and so is the runtime (which is only given
    /// time to end on its own when there are extensions).
    fn shutdown_settled(&self) -> bool {
        let runtime_gone =
            self.runtime_pid.is_none() && !self.spawning.iter().any(|r| *r == Role::Runtime);
        self.extensions.shutdown_settled() && (self.extensions.is_empty() || runtime_gone)
    }

    /// SHUTDOWN to the extensions subscribed to it, SIGTERM to the runtime, and the budget;
    /// without extensions nothing waits and everything is killed at once.
    fn begin_shutdown(&mut self, reason: ShutdownReason) {
        self.telemetry.flush();
        if self.extensions.is_empty() {
            return;
        }
        self.thaw();
        let event = ExtensionEvent::Shutdown {
            shutdown_reason: reason.as_str(),
            deadline_ms: epoch_ms() + SHUTDOWN_BUDGET.as_millis() as u64,
        };
        self.extensions.shutdown(&event);
        if let Some(pid) = self.runtime_pid {
            let _ = self.init.get_ref().send(&ToInit::Signal {
                pid,
                signal: nix::sys::signal::Signal::SIGTERM as i32,
            });
        }
        self.arm(TimerKind::Shutdown, SHUTDOWN_BUDGET);
    }

    fn on_next(&mut self, reply: oneshot::Sender<Result<Delivery, Refusal>>) {
        match self.phase {
            Phase::Invoking => {
                // RAPID hands the same event to a second `next` while it is unanswered.
                if let Some(delivery) = self.delivery() {
                    let _ = reply.send(Ok(delivery));
                }
            }
            Phase::Initializing => {
                self.parked = Some(reply);
                self.telemetry.emit(Record::InitRuntimeDone {
                    initialization_type: INITIALIZATION_TYPE,
                    phase: self.init_phase,
                    status: Status::Success,
                    error_type: None,
                });
                self.step(Event::Next);
            }
            Phase::Responded => {
                self.parked = Some(reply);
                self.runtime_done();
                self.step(Event::Next);
            }
            Phase::Ready | Phase::InitFinishing | Phase::InvokeFinishing => {
                self.parked = Some(reply)
            }
            phase => {
                let _ = reply.send(Err(Refusal::InvalidState(format!(
                    "State transition from {phase:?} to Ready failed for runtime"
                ))));
            }
        }
    }

    /// `platform.runtimeDone` for the current invocation, once.
    fn runtime_done(&mut self) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let Some(delivered) = current.delivered else {
            return;
        };
        let duration = delivered.elapsed();
        let record = Record::RuntimeDone {
            request_id: current.id.clone(),
            status: current.status,
            error_type: current.error_type.clone(),
            metrics: RuntimeDoneMetrics {
                duration_ms: ms(duration),
                produced_bytes: current.produced_bytes,
            },
        };
        current.delivered = None;
        self.telemetry.emit(record);
    }

    /// Whether the runtime may answer invocation `id` now.
    fn check_answer(&self, id: &str) -> Result<(), Refusal> {
        if self.current.as_ref().is_none_or(|c| c.id != id) {
            return Err(Refusal::InvalidRequestId);
        }
        if self.phase != Phase::Invoking {
            return Err(Refusal::InvalidState(format!(
                "State transition from {:?} to InvocationResponse failed for runtime",
                self.phase
            )));
        }
        Ok(())
    }

    /// The caller gets a stream it reads as the runtime writes; its end comes with the answer.
    fn on_stream_start(
        &mut self,
        id: &str,
        content_type: Option<String>,
    ) -> Result<mpsc::Sender<Bytes>, Refusal> {
        self.check_answer(id)?;
        let current = self.current.as_mut().expect("checked");
        if current.stream_end.is_some() {
            return Err(Refusal::InvalidState(
                "State transition from Invoking to InvocationResponse failed for runtime: \
                 the response is already streaming"
                    .into(),
            ));
        }
        let (chunks, end, streamed) = relay::channel();
        current.stream_end = Some(end);
        if let Some(caller) = current.request.reply.take() {
            let _ = caller.send(Ok(Outcome {
                request_id: current.id.clone(),
                body: AnswerBody::Streamed(streamed),
                content_type,
                function_error: false,
                log: None,
            }));
        }
        Ok(chunks)
    }

    /// The runtime's answer: `body` (a streamed answer's error, or empty) and the bytes it
    /// produced in all.
    fn on_answer(
        &mut self,
        id: String,
        (body, produced_bytes): (Bytes, u64),
        content_type: Option<String>,
        error_type: Option<String>,
        reply: oneshot::Sender<Result<(), Refusal>>,
    ) {
        let function_error = error_type.is_some();
        if let Err(refusal) = self.check_answer(&id) {
            let _ = reply.send(Err(refusal));
            return;
        }
        // The deadline keeps running: it covers the extensions' work after the answer too.
        if let Some(current) = self.current.as_mut() {
            current.produced_bytes = produced_bytes;
            if function_error {
                current.status = Status::Error;
                current.error_type = error_type;
            }
        }
        self.answer(Outcome {
            request_id: id,
            body: AnswerBody::Whole(body),
            content_type,
            function_error,
            log: None,
        });
        let _ = reply.send(Ok(()));
        self.step(if function_error {
            Event::Error
        } else {
            Event::Response
        });
    }

    fn on_invoke(&mut self, request: InvokeRequest) {
        let synchronous = request.reply.is_some();
        // Busy means a caller is still waiting: an answered invocation whose runtime has not
        // yet asked for the next one only delays the new one by moments, so it queues.
        let waiting = |a: &Accepted| a.request.reply.is_some();
        let busy = self.current.as_ref().is_some_and(waiting) || self.queue.iter().any(waiting);
        if synchronous && busy {
            if let Some(reply) = request.reply {
                let _ = reply.send(Err(Busy));
            }
            return;
        }
        self.queue.push_back(Accepted {
            request,
            id: uuid::Uuid::new_v4().to_string(),
            started: None,
            delivered: None,
            deadline_ms: 0,
            held: None,
            stream_end: None,
            status: Status::Success,
            error_type: None,
            produced_bytes: 0,
        });
        self.start_queued();
    }

    /// Moves work forward when the environment can take it: an invocation that began during
    /// Init goes to the runtime once it asks, else the first queued one starts.
    fn start_queued(&mut self) {
        match self.phase {
            Phase::Reset if self.current.is_none() && !self.queue.is_empty() => {
                // Init runs inside the invocation, counting against its timeout.
                self.begin_next_invocation();
                self.step(Event::Start);
            }
            Phase::Ready if self.parked.is_some() => {
                if self.current.is_none() {
                    if self.queue.is_empty() {
                        return;
                    }
                    self.begin_next_invocation();
                }
                self.step(Event::Invoke);
            }
            _ => {}
        }
    }

    fn begin_next_invocation(&mut self) {
        let mut accepted = self.queue.pop_front().expect("queue checked");
        let now = Instant::now();
        accepted.started = Some(now);
        accepted.deadline_ms = epoch_ms() + self.function.timeout.as_millis() as u64;
        self.log.start(&accepted.id);
        self.current = Some(accepted);
        self.arm(TimerKind::Deadline, self.function.timeout);
    }

    fn delivery(&self) -> Option<Delivery> {
        let current = self.current.as_ref()?;
        Some(Delivery {
            id: current.id.clone(),
            payload: current.request.payload.clone(),
            deadline_ms: current.deadline_ms,
            function_arn: self.function.arn(),
            trace_id: current
                .request
                .trace_id
                .clone()
                .unwrap_or_else(|| trace_id(&current.id)),
            client_context: current.request.client_context.clone(),
        })
    }

    /// `platform.start`, INVOKE to the extensions subscribed to it, then the event to the
    /// runtime (RAPID releases INVOKE to extensions first).
    fn deliver(&mut self) {
        let (Some(parked), Some(delivery)) = (self.parked.take(), self.delivery()) else {
            return;
        };
        self.telemetry.emit(Record::Start {
            request_id: delivery.id.clone(),
            version: "$LATEST",
            tracing: TraceContext {
                kind: "X-Amzn-Trace-Id",
                value: delivery.trace_id.clone(),
            },
        });
        self.extensions.invoke(&ExtensionEvent::Invoke {
            deadline_ms: delivery.deadline_ms,
            request_id: delivery.id.clone(),
            invoked_function_arn: delivery.function_arn.clone(),
            tracing: Tracing::amzn(delivery.trace_id.clone()),
        });
        if let Some(current) = self.current.as_mut() {
            current.delivered = Some(Instant::now());
        }
        let _ = parked.send(Ok(delivery));
    }

    /// Answers the caller of the current invocation: at once, or — when the caller asked for
    /// the log, which ends with the REPORT line — once the invocation is complete.
    fn answer(&mut self, outcome: Outcome) {
        let Some(current) = self.current.as_mut() else {
            return;
        };
        if current.request.tail {
            current.held = Some(outcome);
        } else {
            current.send(outcome);
        }
    }

    /// The invocation is complete (the runtime asked for the next one, or the environment is
    /// being emptied): write END and REPORT, and hand a held answer its log.
    fn finish_current(&mut self) {
        let Some(mut current) = self.current.take() else {
            return;
        };
        let duration = current.started.map(|t| t.elapsed()).unwrap_or_default();
        let peak = self.cgroup.peak_memory_bytes().ok().flatten();
        let init = self.init_duration.take();
        let figures = report::Report {
            id: &current.id,
            duration,
            memory_mb: self.function.memory_mb,
            peak_bytes: peak,
            memory_enforced: self.function.memory_enforced,
            init,
        };
        let billed = report::billed_ms(&figures);
        let log = self.log.finish(figures);
        self.telemetry.emit(Record::Report {
            request_id: current.id.clone(),
            status: current.status,
            error_type: current.error_type.clone(),
            metrics: ReportMetrics {
                duration_ms: ms(duration),
                billed_duration_ms: billed,
                memory_size_mb: self.function.memory_mb.into(),
                max_memory_used_mb: peak.map_or(0, |p| p.div_ceil(1024 * 1024)),
                init_duration_ms: init.map(ms),
            },
        });
        if let Some(mut outcome) = current.held.take() {
            outcome.log = current.request.tail.then_some(log);
            current.send(outcome);
        }
    }

    /// What the caller and the telemetry are told about a platform failure: the error type,
    /// the status, and the error message.
    fn failure_details(&self, failure: Failure, id: &str) -> (String, Status, String) {
        match failure {
            Failure::Timeout => (
                "Sandbox.Timedout".into(),
                Status::Timeout,
                format!(
                    "RequestId: {id} Error: Task timed out after {:.2} seconds",
                    self.function.timeout.as_secs_f64()
                ),
            ),
            Failure::RuntimeExit => (
                "Runtime.ExitError".into(),
                Status::Error,
                format!("RequestId: {id} Error: Runtime exited without providing a reason"),
            ),
            Failure::InitError => (
                "Runtime.InitError".into(),
                Status::Error,
                format!("RequestId: {id} Error: the runtime failed to initialise"),
            ),
            Failure::OutOfMemory => (
                "Runtime.OutOfMemory".into(),
                Status::Error,
                format!(
                    "RequestId: {id} Error: Runtime exited with error: signal: killed \
                     (out of memory: {} MB)",
                    self.function.memory_mb
                ),
            ),
            Failure::Extension => {
                let (error_type, cause) = self
                    .extension_failure
                    .clone()
                    .unwrap_or_else(|| ("Extension.Crash".into(), "an extension exited".into()));
                (
                    error_type,
                    Status::Error,
                    format!("RequestId: {id} Error: {cause}"),
                )
            }
        }
    }

    fn fail_current(&mut self, failure: Failure) {
        let Some(id) = self.current.as_ref().map(|c| c.id.clone()) else {
            return;
        };
        self.disarm();
        let (error_type, status, message) = self.failure_details(failure, &id);
        if let Some(current) = self.current.as_mut() {
            current.status = status;
            current.error_type = Some(error_type.clone());
        }
        self.runtime_done();
        let Some(mut current) = self.current.take() else {
            return;
        };
        self.log.line(&format!(
            "{} {message}",
            humantime::format_rfc3339_millis(SystemTime::now())
        ));
        let outcome = Outcome {
            request_id: current.id.clone(),
            body: AnswerBody::Whole(wire::function_failure(&error_type, &message)),
            content_type: Some("application/json".into()),
            function_error: true,
            log: None,
        };
        // An invocation the runtime already answered keeps that answer.
        if current.held.is_none() {
            current.held = Some(outcome);
        }
        self.current = Some(current);
        self.finish_current();
    }

    /// An Init that fails reports so, with the runtime's part first if it had not ended.
    fn fail_init(&mut self, failure: Failure) {
        let Some(started) = self.init_started else {
            return;
        };
        let (error_type, status, _) = self.failure_details(failure, "");
        self.report_init(started.elapsed(), status, Some(error_type));
    }

    /// `platform.initRuntimeDone` (when the runtime had not reported) and `platform.initReport`;
    /// the Init is over.
    fn report_init(&mut self, duration: Duration, status: Status, error_type: Option<String>) {
        if status != Status::Success {
            self.telemetry.emit(Record::InitRuntimeDone {
                initialization_type: INITIALIZATION_TYPE,
                phase: self.init_phase,
                status,
                error_type: error_type.clone(),
            });
        }
        self.telemetry.emit(Record::InitReport {
            initialization_type: INITIALIZATION_TYPE,
            phase: self.init_phase,
            status,
            error_type,
            metrics: InitMetrics {
                duration_ms: ms(duration),
            },
        });
        self.telemetry.end_init();
        self.init_started = None;
    }

    fn fail_everything(&mut self) {
        self.fail_current(Failure::RuntimeExit);
        while let Some(next) = self.queue.pop_front() {
            self.current = Some(next);
            self.fail_current(Failure::RuntimeExit);
        }
    }

    fn on_init_message(&mut self, message: FromInit) {
        match message {
            FromInit::Spawned { pid } => match self.spawning.pop_front() {
                Some(Role::Runtime) => self.runtime_pid = Some(pid),
                Some(Role::Extension(name)) => self.extensions.started(&name, pid),
                None => {}
            },
            FromInit::SpawnFailed { reason } => {
                if let Some(role) = self.spawning.pop_front() {
                    self.on_spawn_failure(role, reason);
                }
            }
            FromInit::Exited { pid, code } => {
                if self.runtime_pid == Some(pid) {
                    self.runtime_pid = None;
                    self.log.line(&format!("runtime exited with status {code}"));
                    let oom = self.cgroup.oom_kills().ok().flatten();
                    let killed_by_oom = oom.unwrap_or(0) > self.oom_kills.unwrap_or(0);
                    self.oom_kills = oom;
                    self.step(if killed_by_oom {
                        Event::OutOfMemory
                    } else {
                        Event::RuntimeExit
                    });
                } else if let Some(name) = self.extensions.exited(pid) {
                    let expected = matches!(
                        self.phase,
                        Phase::Resetting | Phase::Emptying | Phase::ShuttingDown | Phase::Exiting
                    );
                    if !expected {
                        self.log
                            .line(&format!("extension {name} exited with status {code}"));
                        self.extension_failure.get_or_insert((
                            "Extension.Crash".into(),
                            format!("extension {name} exited with status {code}"),
                        ));
                    }
                    self.step(Event::ExtensionFailed);
                }
            }
            FromInit::Emptied => self.step(Event::Emptied),
            FromInit::Signaled { .. } => self.step(Event::Shutdown),
            FromInit::Ready | FromInit::Failed { .. } | FromInit::HooksDue => {}
        }
    }

    fn on_spawn_failure(&mut self, role: Role, reason: String) {
        match role {
            Role::Runtime => {
                self.log
                    .line(&format!("cannot start the runtime: {reason}"));
                self.step(Event::RuntimeExit);
            }
            Role::Extension(name) => {
                let cause = format!("cannot start extension {name}: {reason}");
                self.log.line(&cause);
                self.extension_failure
                    .get_or_insert(("Extension.LaunchError".into(), cause));
                self.step(Event::ExtensionFailed);
            }
        }
    }

    /// A line of output: to the environment's log, and to subscribers as a `function` or
    /// `extension` record.
    fn on_output(&mut self, from: Role, line: String) {
        self.log.line(&line);
        self.telemetry.emit(match from {
            Role::Runtime => Record::Function(line),
            Role::Extension(_) => Record::ExtensionLog(line),
        });
    }

    fn on_extension(&mut self, request: ExtensionRequest) {
        match request {
            ExtensionRequest::Register {
                registration,
                reply,
            } => {
                // Registration closes with the runtime's first `next`.
                let open = matches!(self.phase, Phase::StartingExtensions | Phase::Initializing);
                let result = self
                    .extensions
                    .register(&registration, open)
                    .map(|id| Registered {
                        id,
                        function_name: self.function.name.clone(),
                        handler: self.spec.function.handler.clone().unwrap_or_default(),
                        account_id: ACCOUNT_ID.into(),
                    });
                let _ = reply.send(result);
                self.step_if_waiting();
            }
            ExtensionRequest::Next { id, reply } => match self.extensions.next(&id, reply) {
                Ok(first) => {
                    if let (true, Some(extension)) = (first, self.extensions.get(&id)) {
                        let record = Record::Extension {
                            name: extension.name.clone(),
                            state: "Ready",
                            events: extension.events.names(),
                        };
                        self.telemetry.emit(record);
                    }
                    self.step_if_waiting();
                }
                Err((refusal, reply)) => {
                    let _ = reply.send(Err(refusal));
                }
            },
            ExtensionRequest::Error {
                id,
                kind,
                error_type,
                reply,
            } => match self.extensions.failed(&id, kind) {
                Ok(name) => {
                    let _ = reply.send(Ok(()));
                    let what = match kind {
                        ErrorKind::Init => "Extension.InitError",
                        ErrorKind::Exit => "Extension.ExitError",
                    };
                    let cause = format!("extension {name} reported {error_type}");
                    self.log.line(&cause);
                    self.extension_failure.get_or_insert((what.into(), cause));
                    if kind == ErrorKind::Init {
                        self.step(Event::ExtensionFailed);
                    } else {
                        self.step_if_waiting();
                    }
                }
                Err(refusal) => {
                    let _ = reply.send(Err(refusal));
                }
            },
            ExtensionRequest::Subscribe {
                id,
                subscription,
                reply,
            } => {
                let result = match self.extensions.get(&id) {
                    None => Err(ExtensionRefusal::UnknownIdentifier),
                    Some(_) if self.init_started.is_none() => {
                        Err(ExtensionRefusal::SubscriptionClosed(subscription.api))
                    }
                    Some(extension) => {
                        let name = extension.name.clone();
                        self.telemetry.subscribe(&name, subscription);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    /// What the state already implies: every extension waits in `next` (Init goes on, an
    /// invocation ends), or everything told to shut down is done.
    fn implied_event(&self) -> Option<Event> {
        match self.phase {
            Phase::StartingExtensions | Phase::InitFinishing | Phase::InvokeFinishing
                if self.extensions.all_waiting() =>
            {
                Some(Event::ExtensionsReady)
            }
            Phase::Resetting | Phase::ShuttingDown if self.shutdown_settled() => {
                Some(Event::ShutdownDone)
            }
            _ => None,
        }
    }

    /// Re-checks what waiting extensions hold up, after one of them moved.
    fn step_if_waiting(&mut self) {
        if let Some(implied) = self.implied_event() {
            self.step(implied);
        }
    }

    fn on_timer(&mut self, kind: TimerKind, generation: u64) {
        if kind == TimerKind::Freeze {
            if generation == self.freeze_generation {
                self.freeze_now();
            }
            return;
        }
        if generation != self.generation {
            return;
        }
        match kind {
            TimerKind::Deadline
                if matches!(
                    self.phase,
                    Phase::StartingExtensions | Phase::Initializing | Phase::InitFinishing
                ) =>
            {
                self.step(Event::InitTimeout)
            }
            TimerKind::Deadline => self.step(Event::Timeout),
            TimerKind::Init => self.step(Event::InitTimeout),
            TimerKind::Idle if self.current.is_none() && self.queue.is_empty() => {
                self.step(Event::Shutdown)
            }
            TimerKind::Idle | TimerKind::Freeze => {}
            TimerKind::Shutdown => self.step(Event::ShutdownDone),
        }
    }

    /// Arms the one timer of the environment (a new one replaces the old).
    fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.disarm();
        self.timer = Some(self.start_timer(kind, self.generation, after));
    }

    fn start_timer(
        &self,
        kind: TimerKind,
        generation: u64,
        after: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let commands = self.commands.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(after).await;
            let _ = commands.send(Command::Timer { kind, generation });
        })
    }

    fn disarm(&mut self) {
        self.generation += 1;
        if let Some(timer) = self.timer.take() {
            timer.abort();
        }
    }

    fn disarm_freeze(&mut self) {
        self.freeze_generation += 1;
        if let Some(timer) = self.freeze_timer.take() {
            timer.abort();
        }
    }

    /// Init begins: its records start, its timer runs (unless it runs inside an invocation,
    /// whose deadline covers it), and the external extensions start in lexical order.
    fn spawn_extensions(&mut self) {
        self.init_started = Some(Instant::now());
        self.extension_failure = None;
        self.init_phase = if self.current.is_some() {
            "invoke"
        } else {
            self.arm(TimerKind::Init, INIT_TIMEOUT);
            "init"
        };
        self.telemetry.begin_init();
        self.telemetry.emit(Record::InitStart {
            initialization_type: INITIALIZATION_TYPE,
            phase: self.init_phase,
            function_name: self.function.name.clone(),
            function_version: "$LATEST",
        });
        let root = std::path::PathBuf::from(format!("/proc/{}/root", self.init_pid));
        let off = spawn::extensions_switched_off(&root);
        self.kill_switch.set(off);
        if off {
            return;
        }
        let names = spawn::discover_extensions(&root);
        if let Some(extra) = names.get(wire::MAX_EXTENSIONS) {
            // Counted as launched, so Init waits for the failure instead of going on.
            self.extensions.launch(extra);
            let reason = format!(
                "more than {} extensions in {}",
                wire::MAX_EXTENSIONS,
                spawn::EXTENSIONS_DIR
            );
            let _ = self.commands.send(Command::SpawnError {
                role: Role::Extension(extra.clone()),
                reason,
            });
            return;
        }
        for name in names {
            self.extensions.launch(&name);
            self.spawn(Role::Extension(name));
        }
    }

    /// Asks the init to start a process and reads its output.
    fn spawn(&mut self, role: Role) {
        match spawn::spawn(&self.spec, &self.function, self.init.get_ref(), &role) {
            Ok(streams) => {
                self.spawning.push_back(role.clone());
                for stream in streams {
                    self.open_streams += 1;
                    tokio::task::spawn_local(forward_lines(
                        stream,
                        role.clone(),
                        self.commands.clone(),
                    ));
                }
            }
            Err(e) => {
                // Reported through the queue: the machine is in the middle of a transition.
                let _ = self.commands.send(Command::SpawnError {
                    role,
                    reason: e.to_string(),
                });
            }
        }
    }

    /// Freezes an idle environment: at once (without waiting for the kernel to confirm, so the
    /// freeze never sits on an invocation's path), or after the freeze delay.
    fn freeze_if_idle(&mut self) {
        if self.function.freeze_delay.is_zero() {
            self.freeze_now();
        } else {
            self.disarm_freeze();
            self.freeze_timer = Some(self.start_timer(
                TimerKind::Freeze,
                self.freeze_generation,
                self.function.freeze_delay,
            ));
        }
    }

    fn freeze_now(&mut self) {
        // Only a Ready or Reset environment rests; one shutting down must keep running.
        let idle = self.queue.is_empty()
            && self.current.is_none()
            && matches!(self.phase, Phase::Ready | Phase::Reset);
        if idle && !self.frozen && self.freezer.request_freeze().is_ok() {
            self.frozen = true;
        }
    }

    fn thaw(&mut self) {
        // A pending delayed freeze is for an idleness that just ended.
        self.disarm_freeze();
        if self.frozen {
            let _ = self.freezer.request_thaw();
            self.frozen = false;
        }
    }
}

/// Reads one output stream of a process line by line into the command queue.
async fn forward_lines(fd: OwnedFd, from: Role, commands: mpsc::UnboundedSender<Command>) {
    use tokio::io::AsyncBufReadExt;
    if let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let from = from.clone();
            if commands.send(Command::Output { from, line }).is_err() {
                return;
            }
        }
    }
    let _ = commands.send(Command::OutputClosed);
}

/// A duration in milliseconds, as telemetry metrics carry it.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An X-Ray trace header for an invocation that came without one.
fn trace_id(request_id: &str) -> String {
    let hex: String = request_id.chars().filter(|c| *c != '-').collect();
    format!(
        "Root=1-{:08x}-{};Parent={};Sampled=0",
        epoch_ms() / 1000,
        &hex[..24],
        &hex[16..32]
    )
}

/// Writes a line to the environment's log (the container's stdout).
pub fn write_log_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
