//! The supervisor of one Lambda environment: a host process outside the environment's cgroup
//! that owns the environment's state in a single task. The Runtime and Invoke API handlers,
//! the init's messages, the runtime's output and the timers all reach that task as
//! [`Command`]s; it drives the pure machine in `lifecycle` and carries out the effects
//! (spawning the runtime through the init, freezing, thawing, resets, answers to callers).

mod report;
mod runtime_env;
pub mod serve;

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};

use crate::api::wire;
use crate::cgroup::Cgroup;
use crate::lifecycle::{self, Effect, Event, Failure, Phase};
use crate::sandbox::channel::{Channel, FromInit, ToInit};
use crate::spec::EnvironmentSpec;
use report::LogBook;

/// How long Init may take (Lambda's limit).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// One line the runtime wrote.
    Log(String),
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

/// What the caller of a synchronous invocation gets.
#[derive(Debug)]
pub struct Outcome {
    pub request_id: String,
    pub body: Bytes,
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
            "arn:aws:lambda:{}:012345678912:function:{}",
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
    deadline_ms: u64,
    /// An answer held back until the REPORT line exists, for a caller who asked for the log.
    held: Option<Outcome>,
}

/// The environment's state, owned by the supervisor task alone.
pub struct Supervisor {
    spec: EnvironmentSpec,
    function: Function,
    cgroup: Cgroup,
    init: Rc<AsyncFd<Channel>>,
    commands: mpsc::UnboundedSender<Command>,
    phase: Phase,
    runtime_pid: Option<i32>,
    parked: Option<oneshot::Sender<Result<Delivery, Refusal>>>,
    current: Option<Accepted>,
    queue: VecDeque<Accepted>,
    frozen: bool,
    generation: u64,
    /// The freeze-delay timer's own generation, so that it runs beside the other timer.
    freeze_generation: u64,
    init_started: Option<Instant>,
    /// Init's duration, reported once, in the REPORT of the first invocation after it.
    init_duration: Option<Duration>,
    /// The leaf's OOM-kill count when last looked at: a rise means the runtime ran out of memory.
    oom_kills: Option<u64>,
    log: LogBook,
}

impl Supervisor {
    pub fn new(
        spec: EnvironmentSpec,
        function: Function,
        cgroup: Cgroup,
        init: Channel,
        commands: mpsc::UnboundedSender<Command>,
    ) -> std::io::Result<Self> {
        set_nonblocking(&init)?;
        Ok(Self {
            spec,
            function,
            cgroup,
            init: Rc::new(crate::sys::async_fd(init)?),
            commands,
            phase: Phase::Created,
            runtime_pid: None,
            parked: None,
            current: None,
            queue: VecDeque::new(),
            frozen: false,
            generation: 0,
            freeze_generation: 0,
            init_started: None,
            init_duration: None,
            oom_kills: None,
            log: LogBook::default(),
        })
    }

    /// Reads the init's messages into the command queue until the channel closes.
    pub async fn forward_init_messages(
        init: Rc<AsyncFd<Channel>>,
        commands: mpsc::UnboundedSender<Command>,
    ) {
        loop {
            let Ok(mut ready) = init.readable().await else {
                break;
            };
            match ready.try_io(|fd| fd.get_ref().recv::<FromInit>()) {
                Ok(Ok(Some(message))) => {
                    if commands.send(Command::Init(message)).is_err() {
                        return;
                    }
                }
                Ok(Ok(None)) | Ok(Err(_)) => break,
                Err(_would_block) => continue,
            }
        }
        let _ = commands.send(Command::InitGone);
    }

    pub fn init_channel(&self) -> Rc<AsyncFd<Channel>> {
        self.init.clone()
    }

    /// Runs until the environment is over; returns the init's exit code to use.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        while let Some(command) = commands.recv().await {
            if !self.handle(command) {
                break;
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
            } => self.on_answer(id, body, content_type, false, reply),
            // The error type header only labels the error internally; the caller gets the body.
            Command::Error {
                id,
                body,
                error_type: _,
                reply,
            } => self.on_answer(id, body, Some("application/json".into()), true, reply),
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
            Command::Log(line) => self.log.line(&line),
            Command::Init(message) => self.on_init_message(message),
            Command::InitGone => {
                self.fail_everything();
                return false;
            }
            Command::Timer { kind, generation } => self.on_timer(kind, generation),
        }
        true
    }

    /// Feeds an event to the machine and carries out its effects.
    fn step(&mut self, event: Event) {
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
            Effect::SpawnRuntime => self.spawn_runtime(),
            Effect::Deliver => self.deliver(),
            Effect::Redeliver => {}
            Effect::Reply => {}
            Effect::Fail(failure) => self.fail_current(failure),
            Effect::InitDone => {
                self.init_duration = self.init_started.map(|t| t.elapsed());
            }
            Effect::Freeze => self.freeze_if_idle(),
            Effect::KillAll => {
                // An answered invocation whose runtime dies before its next `next` is complete.
                self.finish_current();
                self.thaw();
                self.runtime_pid = None;
                self.parked = None;
                let _ = self.init.get_ref().send(&ToInit::KillAll);
            }
            Effect::ExitInit => {
                let _ = self.init.get_ref().send(&ToInit::Exit { code: 0 });
            }
        }
    }

    fn on_next(&mut self, reply: oneshot::Sender<Result<Delivery, Refusal>>) {
        match self.phase {
            Phase::Invoking => {
                // RAPID hands the same event to a second `next` while it is unanswered.
                if let Some(delivery) = self.delivery() {
                    let _ = reply.send(Ok(delivery));
                }
            }
            Phase::Initializing | Phase::Responded => {
                self.parked = Some(reply);
                let event = Event::Next;
                if self.phase == Phase::Responded {
                    self.finish_current();
                }
                self.step(event);
            }
            Phase::Ready => self.parked = Some(reply),
            phase => {
                let _ = reply.send(Err(Refusal::InvalidState(format!(
                    "State transition from {phase:?} to Ready failed for runtime"
                ))));
            }
        }
    }

    fn on_answer(
        &mut self,
        id: String,
        body: Bytes,
        content_type: Option<String>,
        function_error: bool,
        reply: oneshot::Sender<Result<(), Refusal>>,
    ) {
        let matches = self.current.as_ref().is_some_and(|c| c.id == id);
        if !matches {
            let _ = reply.send(Err(Refusal::InvalidRequestId));
            return;
        }
        if self.phase != Phase::Invoking {
            let _ = reply.send(Err(Refusal::InvalidState(format!(
                "State transition from {:?} to InvocationResponse failed for runtime",
                self.phase
            ))));
            return;
        }
        self.disarm();
        self.answer(Outcome {
            request_id: id,
            body,
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
            deadline_ms: 0,
            held: None,
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

    fn deliver(&mut self) {
        let (Some(parked), Some(delivery)) = (self.parked.take(), self.delivery()) else {
            return;
        };
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
        } else if let Some(caller) = current.request.reply.take() {
            let _ = caller.send(Ok(outcome));
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
        let log = self.log.finish(report::Report {
            id: &current.id,
            duration,
            memory_mb: self.function.memory_mb,
            peak_bytes: peak,
            memory_enforced: self.function.memory_enforced,
            init: self.init_duration.take(),
        });
        if let (Some(mut outcome), Some(caller)) =
            (current.held.take(), current.request.reply.take())
        {
            outcome.log = current.request.tail.then_some(log);
            let _ = caller.send(Ok(outcome));
        }
    }

    fn fail_current(&mut self, failure: Failure) {
        let Some(mut current) = self.current.take() else {
            return;
        };
        self.disarm();
        let (error_type, message): (&str, String) = match failure {
            Failure::Timeout => (
                "Sandbox.Timedout",
                format!(
                    "RequestId: {} Error: Task timed out after {:.2} seconds",
                    current.id,
                    self.function.timeout.as_secs_f64()
                ),
            ),
            Failure::RuntimeExit => (
                "Runtime.ExitError",
                format!(
                    "RequestId: {} Error: Runtime exited without providing a reason",
                    current.id
                ),
            ),
            Failure::InitError => (
                "Runtime.InitError",
                format!(
                    "RequestId: {} Error: the runtime failed to initialise",
                    current.id
                ),
            ),
            Failure::OutOfMemory => (
                "Runtime.OutOfMemory",
                format!(
                    "RequestId: {} Error: Runtime exited with error: signal: killed \
                     (out of memory: {} MB)",
                    current.id, self.function.memory_mb
                ),
            ),
        };
        self.log.line(&format!(
            "{} {message}",
            humantime::format_rfc3339_millis(SystemTime::now())
        ));
        let outcome = Outcome {
            request_id: current.id.clone(),
            body: wire::function_failure(error_type, &message),
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

    fn fail_everything(&mut self) {
        self.fail_current(Failure::RuntimeExit);
        while let Some(next) = self.queue.pop_front() {
            self.current = Some(next);
            self.fail_current(Failure::RuntimeExit);
        }
    }

    fn on_init_message(&mut self, message: FromInit) {
        match message {
            FromInit::Spawned { pid } => self.runtime_pid = Some(pid),
            FromInit::SpawnFailed { reason } => {
                self.log
                    .line(&format!("cannot start the runtime: {reason}"));
                self.step(Event::RuntimeExit);
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
                }
            }
            FromInit::Emptied => self.step(Event::Emptied),
            FromInit::Signaled { .. } => self.step(Event::Shutdown),
            FromInit::Ready | FromInit::Failed { .. } => {}
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
            TimerKind::Deadline if self.phase == Phase::Initializing => {
                self.step(Event::InitTimeout)
            }
            TimerKind::Deadline => self.step(Event::Timeout),
            TimerKind::Init => self.step(Event::InitTimeout),
            TimerKind::Idle if self.current.is_none() && self.queue.is_empty() => {
                self.step(Event::Shutdown)
            }
            TimerKind::Idle | TimerKind::Freeze => {}
        }
    }

    /// Arms the one timer of the environment (a new one replaces the old).
    fn arm(&mut self, kind: TimerKind, after: Duration) {
        self.generation += 1;
        self.start_timer(kind, self.generation, after);
    }

    fn start_timer(&self, kind: TimerKind, generation: u64, after: Duration) {
        let commands = self.commands.clone();
        tokio::task::spawn_local(async move {
            tokio::time::sleep(after).await;
            let _ = commands.send(Command::Timer { kind, generation });
        });
    }

    fn disarm(&mut self) {
        self.generation += 1;
    }

    fn spawn_runtime(&mut self) {
        self.init_started = Some(Instant::now());
        if self.current.is_none() {
            self.arm(TimerKind::Init, INIT_TIMEOUT);
        }
        match runtime_env::spawn_runtime(&self.spec, &self.function, self.init.get_ref()) {
            Ok(streams) => {
                for stream in streams {
                    tokio::task::spawn_local(forward_lines(stream, self.commands.clone()));
                }
            }
            Err(e) => {
                self.log.line(&format!("cannot start the runtime: {e}"));
                let _ = self.commands.send(Command::Init(FromInit::SpawnFailed {
                    reason: e.to_string(),
                }));
            }
        }
    }

    /// Freezes an idle environment: at once (without waiting for the kernel to confirm, so the
    /// freeze never sits on an invocation's path), or after the freeze delay.
    fn freeze_if_idle(&mut self) {
        if self.function.freeze_delay.is_zero() {
            self.freeze_now();
        } else {
            self.freeze_generation += 1;
            self.start_timer(
                TimerKind::Freeze,
                self.freeze_generation,
                self.function.freeze_delay,
            );
        }
    }

    fn freeze_now(&mut self) {
        let idle = self.queue.is_empty() && self.current.is_none();
        if idle && !self.frozen && self.cgroup.request_freeze().is_ok() {
            self.frozen = true;
        }
    }

    fn thaw(&mut self) {
        // A pending delayed freeze is for an idleness that just ended.
        self.freeze_generation += 1;
        if self.frozen {
            let _ = self.cgroup.thaw(Duration::from_secs(5));
            self.frozen = false;
        }
    }
}

/// Reads one output stream of the runtime line by line into the command queue.
async fn forward_lines(fd: OwnedFd, commands: mpsc::UnboundedSender<Command>) {
    use tokio::io::AsyncBufReadExt;
    let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return;
    };
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if commands.send(Command::Log(line)).is_err() {
            return;
        }
    }
}

fn set_nonblocking(channel: &Channel) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fd = channel.fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    let _ = fd.as_raw_fd();
    Ok(())
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
