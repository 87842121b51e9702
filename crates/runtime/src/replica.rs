//! One replica's supervisor: a task that starts the workload, probes it, restarts it with
//! back-off when it ends or fails its liveness probe, and stops it on request. Backends supply
//! the workload through [`Launcher`]/[`Workload`]; the state machine is the same for all.
//!
//! ```text
//!            launch ok                readiness passes
//!  Starting ───────────▶ (running) ─────────────────▶ Ready ◀──▶ NotReady
//!     ▲   │ launch fails     │ exits / liveness or startup probe fails ──▶ Draining(kill)
//!     │   ▼                  ▼                                               │
//!  BackingOff ◀──────── Crashed ◀────────────────────────────────────────────┘
//!
//!  any state ── stop(grace) / handle dropped / backend shutdown ──▶ Draining ──▶ Stopped
//! ```
//!
//! "Running" is the phase `Starting` until the readiness probe first passes. Draining sends
//! SIGTERM to the replica's process group, waits up to the grace period for it to exit, then
//! sends SIGKILL. Status goes out on a `watch` channel: the latest [`ReplicaStatus`] is always
//! there for the controller (ContainerHealthy, reason, exit code) and the gateway (address).

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::backoff::{Backoff, RestartPolicy};
use crate::logs::LogSink;
use crate::probe::{ProbeKind, ProbeSet, ProbeSpec, Verdict};
use crate::prober::{ProbeEvent, Prober, probe_loop};

/// Where a replica is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// The workload is being started, or runs and has not passed its readiness probe yet.
    Starting,
    /// Running and passing its readiness probe: send it requests.
    Ready,
    /// Was ready, now fails its readiness probe (still running; not restarted for that).
    NotReady,
    /// Being terminated: SIGTERM sent, SIGKILL after the grace period.
    Draining,
    /// The workload ended without being asked to (or was killed by a failing probe).
    Crashed,
    /// Waiting before the next start (`ReplicaStatus::backoff` says how long).
    BackingOff,
    /// Final: stopped on request. The supervisor is gone.
    Stopped,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// How a run of the workload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit status, when it exited.
    pub code: Option<i32>,
    /// The signal that killed it, when it was killed.
    pub signal: Option<i32>,
    /// Kubernetes' `terminated.reason`: `Completed` (exit 0), `Error` (any other end),
    /// `OOMKilled` (a container killed for exceeding its memory limit), or wisp's `StartError`
    /// (could not be started), `LivenessProbeFailed`, `StartupProbeFailed`.
    pub reason: String,
    /// Details for users (the spawn error, the failing probe's message); may be empty.
    pub message: String,
}

impl ExitInfo {
    /// From a process exit status.
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let code = status.code();
        ExitInfo {
            code,
            signal: status.signal(),
            reason: if code == Some(0) {
                "Completed"
            } else {
                "Error"
            }
            .to_string(),
            message: String::new(),
        }
    }

    /// A workload that could not be started at all.
    pub fn start_error(message: impl Into<String>) -> Self {
        ExitInfo {
            code: None,
            signal: None,
            reason: "StartError".to_string(),
            message: message.into(),
        }
    }

    /// The exit code as Kubernetes reports it: the status, or 128 + signal.
    pub fn exit_code(&self) -> Option<i32> {
        self.code.or(self.signal.map(|s| 128 + s))
    }

    /// Knative's ContainerHealthy=False reason for this exit (`ExitCode{N}`, as
    /// `v1.ExitCodeReason`), or the reason itself when there is no code.
    pub fn knative_reason(&self) -> String {
        match self.exit_code() {
            Some(c) => format!("ExitCode{c}"),
            None => self.reason.clone(),
        }
    }
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "{} (exit code {c})", self.reason)?,
            (None, Some(s)) => write!(f, "{} (killed by signal {s})", self.reason)?,
            (None, None) => f.write_str(&self.reason)?,
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// What a replica's supervisor publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    pub phase: Phase,
    /// Whether to send it requests (phase `Ready`).
    pub ready: bool,
    /// Where it serves.
    pub addr: SocketAddr,
    /// The pid of the current run's leader (also its process group id).
    pub pid: Option<u32>,
    /// Unexpected ends so far (each followed by a restart, unless stopped meanwhile).
    pub restarts: u32,
    /// The last unexpected end (crash, failed probe, start error): Kubernetes'
    /// `lastState.terminated`. Not set by a requested stop.
    pub last_exit: Option<ExitInfo>,
    /// The last log lines of the run that ended in `last_exit`.
    pub last_log_lines: Vec<String>,
    /// While `BackingOff`: the wait before the next start.
    pub backoff: Option<Duration>,
    /// How the final run ended after a stop (exit 0 for a clean drain, signal 9 when it had to
    /// be killed); set in phase `Stopped` when a run was active.
    pub final_exit: Option<ExitInfo>,
}

impl ReplicaStatus {
    fn new(addr: SocketAddr) -> Self {
        ReplicaStatus {
            phase: Phase::Starting,
            ready: false,
            addr,
            pid: None,
            restarts: 0,
            last_exit: None,
            last_log_lines: Vec::new(),
            backoff: None,
            final_exit: None,
        }
    }
}

/// A handle on a running replica. Dropping it stops the replica (with the spec's grace period)
/// in the background: a replica nobody holds must not run on unaccounted for.
#[derive(Debug)]
pub struct ReplicaHandle {
    id: String,
    addr: SocketAddr,
    status: watch::Receiver<ReplicaStatus>,
    commands: mpsc::UnboundedSender<Command>,
    logs: Arc<LogSink>,
    task: JoinHandle<()>,
}

/// The replica is gone before it became ready.
#[derive(Debug, Clone, thiserror::Error)]
#[error("replica stopped before it became ready")]
pub struct NeverReady(pub ReplicaStatus);

impl ReplicaHandle {
    /// The replica's id, as given in its spec.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where it serves (fixed for its whole life, across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The latest status.
    pub fn status(&self) -> ReplicaStatus {
        self.status.borrow().clone()
    }

    /// A receiver of every status change.
    pub fn subscribe(&self) -> watch::Receiver<ReplicaStatus> {
        self.status.clone()
    }

    /// The replica's log: recent lines, live lines, file path.
    pub fn logs(&self) -> &Arc<LogSink> {
        &self.logs
    }

    /// Waits until the replica is ready (crash loops included: it may still become ready);
    /// fails once it is stopped. Callers bound the wait with a timeout.
    pub async fn ready(&self) -> Result<SocketAddr, NeverReady> {
        let mut rx = self.status.clone();
        let status = rx
            .wait_for(|s| s.ready || s.phase == Phase::Stopped)
            .await
            .map(|s| s.clone())
            .unwrap_or_else(|_| self.status());
        if status.ready {
            Ok(status.addr)
        } else {
            Err(NeverReady(status))
        }
    }

    /// Stops the replica: not ready at once, SIGTERM to its process group, SIGKILL after
    /// `grace`. Returns the final status (phase `Stopped`).
    pub async fn stop(&self, grace: Duration) -> ReplicaStatus {
        let _ = self.commands.send(Command::Stop { grace });
        let mut rx = self.status.clone();
        rx.wait_for(|s| s.phase == Phase::Stopped)
            .await
            .map(|s| s.clone())
            .unwrap_or_else(|_| self.status())
    }

    /// Waits for the supervisor task to end (after a stop).
    pub async fn join(self) {
        let task = self.into_task();
        let _ = task.await;
    }

    fn into_task(self) -> JoinHandle<()> {
        let ReplicaHandle { task, .. } = self;
        task
    }

    /// A weak control on the replica, for backends that must stop everything on shutdown
    /// without keeping replicas alive.
    pub(crate) fn control(&self) -> Control {
        Control {
            commands: self.commands.downgrade(),
            status: self.status.clone(),
        }
    }
}

/// What a backend keeps of each replica it started: enough to stop it, not enough to keep it.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    commands: mpsc::WeakUnboundedSender<Command>,
    status: watch::Receiver<ReplicaStatus>,
}

impl Control {
    /// Whether the replica has not reached `Stopped` yet.
    pub(crate) fn is_live(&self) -> bool {
        self.status.borrow().phase != Phase::Stopped
    }

    /// Asks for a stop (if the replica still runs) and waits until it is stopped.
    pub(crate) async fn stop(mut self, grace: Duration) {
        if let Some(tx) = self.commands.upgrade() {
            let _ = tx.send(Command::Stop { grace });
        }
        let _ = self.status.wait_for(|s| s.phase == Phase::Stopped).await;
    }
}

#[derive(Debug)]
enum Command {
    Stop { grace: Duration },
}

/// Starts runs of a workload (one process, one container...).
#[async_trait]
pub(crate) trait Launcher: Send + Sync + 'static {
    /// Gets what a run needs and may take long (an image pull), before each launch. Must be
    /// cancel-safe: a stop during it drops the future. `Err` is a start error shown to users.
    async fn prepare(&self) -> Result<(), String> {
        Ok(())
    }

    /// Starts one run, sending its output to `logs`. `Err` is a start error shown to users.
    async fn launch(&self, logs: &Arc<LogSink>) -> Result<Box<dyn Workload>, String>;
}

/// One run of a workload.
#[async_trait]
pub(crate) trait Workload: Send {
    /// The leader's pid (the process group id).
    fn pid(&self) -> Option<u32>;
    /// Sends a signal to the whole run (its process group).
    fn signal(&mut self, signal: StopSignal);
    /// Waits for the run's leader to end. Cancel-safe: may be called again.
    async fn wait(&mut self) -> ExitInfo;
    /// After the leader ended: kills what is left of the run, waits (briefly) for its output to
    /// be logged, removes its records.
    async fn cleanup(&mut self);
}

/// The signals a supervisor sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    Term,
    Kill,
}

/// Everything a supervisor needs besides the workload.
pub(crate) struct SupervisorConfig {
    pub id: String,
    pub addr: SocketAddr,
    pub grace: Duration,
    pub probes: ProbeSet,
    pub restart: RestartPolicy,
    pub prober: Arc<dyn Prober>,
    pub logs: Arc<LogSink>,
}

/// Starts a supervisor task; returns its handle.
pub(crate) fn spawn_replica(
    config: SupervisorConfig,
    launcher: Arc<dyn Launcher>,
) -> ReplicaHandle {
    let (status_tx, status_rx) = watch::channel(ReplicaStatus::new(config.addr));
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let id = config.id.clone();
    let addr = config.addr;
    let logs = config.logs.clone();
    let supervisor = Supervisor {
        backoff: Backoff::new(config.restart),
        config,
        launcher,
        status: status_tx,
        commands: cmd_rx,
    };
    let task = tokio::spawn(supervisor.run());
    ReplicaHandle {
        id,
        addr,
        status: status_rx,
        commands: cmd_tx,
        logs,
        task,
    }
}

/// Why a run is being terminated, and so what comes after its exit.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AfterExit {
    /// A requested stop: `Stopped`.
    Stop,
    /// A failing liveness or startup probe: `Crashed` with this reason, then a restart.
    Restart { reason: String, message: String },
}

/// A run in progress and the probe tasks watching it.
struct Run {
    workload: Box<dyn Workload>,
    started: Instant,
    probes: Vec<JoinHandle<()>>,
    events: mpsc::UnboundedReceiver<ProbeEvent>,
    events_tx: mpsc::UnboundedSender<ProbeEvent>,
}

impl Run {
    fn watch(&mut self, spec: &ProbeSpec, prober: &Arc<dyn Prober>) {
        let task = tokio::spawn(probe_loop(
            spec.clone(),
            prober.clone(),
            self.events_tx.clone(),
        ));
        self.probes.push(task);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        for p in &self.probes {
            p.abort();
        }
    }
}

enum State {
    Starting,
    Running(Run),
    Draining {
        run: Run,
        deadline: Instant,
        killed: bool,
        then: AfterExit,
    },
    Crashed {
        exit: ExitInfo,
        ran_for: Duration,
    },
    BackingOff(Duration),
    Stopped,
}

struct Supervisor {
    config: SupervisorConfig,
    launcher: Arc<dyn Launcher>,
    backoff: Backoff,
    status: watch::Sender<ReplicaStatus>,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl Supervisor {
    fn publish(&self, f: impl FnOnce(&mut ReplicaStatus)) {
        self.status.send_modify(f);
    }

    async fn run(mut self) {
        let mut state = State::Starting;
        loop {
            state = match state {
                State::Starting => self.start().await,
                State::Running(run) => self.running(run).await,
                State::Draining {
                    run,
                    deadline,
                    killed,
                    then,
                } => self.draining(run, deadline, killed, then).await,
                State::Crashed { exit, ran_for } => self.crashed(exit, ran_for),
                State::BackingOff(delay) => self.backing_off(delay).await,
                State::Stopped => {
                    self.publish(|s| {
                        s.phase = Phase::Stopped;
                        s.ready = false;
                        s.pid = None;
                        s.backoff = None;
                    });
                    tracing::debug!(replica = %self.config.id, "replica stopped");
                    return;
                }
            };
        }
    }

    /// Starting: launch a run. Success -> Running (probes start); failure -> Crashed.
    async fn start(&mut self) -> State {
        // A stop (or the last handle dropped) before the first start wins.
        match self.commands.try_recv() {
            Ok(Command::Stop { .. }) | Err(mpsc::error::TryRecvError::Disconnected) => {
                return State::Stopped;
            }
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        self.publish(|s| {
            s.phase = Phase::Starting;
            s.ready = false;
            s.backoff = None;
        });
        self.config.logs.clear_recent();
        let started = Instant::now();
        // Preparing (pulling an image) may take minutes: a stop must not wait for it.
        tokio::select! {
            prepared = self.launcher.prepare() => {
                if let Err(message) = prepared {
                    return State::Crashed {
                        exit: ExitInfo::start_error(message),
                        ran_for: Duration::ZERO,
                    };
                }
            }
            // Stop asked, or every handle dropped: nothing runs yet.
            _ = self.commands.recv() => return State::Stopped,
        }
        match self.launcher.launch(&self.config.logs).await {
            Ok(workload) => {
                let pid = workload.pid();
                self.publish(|s| s.pid = pid);
                tracing::debug!(replica = %self.config.id, pid, "replica started");
                let (events_tx, events) = mpsc::unbounded_channel();
                let mut run = Run {
                    workload,
                    started,
                    probes: Vec::new(),
                    events,
                    events_tx,
                };
                // The startup probe gates the others, as in Kubernetes.
                match &self.config.probes.startup {
                    Some(p) => run.watch(p, &self.config.prober),
                    None => self.watch_started(&mut run),
                }
                State::Running(run)
            }
            Err(message) => State::Crashed {
                exit: ExitInfo::start_error(message),
                ran_for: Duration::ZERO,
            },
        }
    }

    fn watch_started(&self, run: &mut Run) {
        run.watch(&self.config.probes.readiness, &self.config.prober);
        if let Some(p) = &self.config.probes.liveness {
            run.watch(p, &self.config.prober);
        }
    }

    /// Running (phases Starting, Ready, NotReady): react to the run's end, probe verdicts and
    /// commands.
    async fn running(&mut self, mut run: Run) -> State {
        loop {
            tokio::select! {
                exit = run.workload.wait() => {
                    // It ended on its own: a crash, whatever the code (restartPolicy Always).
                    run.workload.cleanup().await;
                    return State::Crashed { exit, ran_for: run.started.elapsed() };
                }
                Some(event) = run.events.recv() => match (event.kind, event.verdict) {
                    // Started: now readiness and liveness take over.
                    (ProbeKind::Startup, Verdict::Pass) => self.watch_started(&mut run),
                    // Ready: the gateway may send requests.
                    (ProbeKind::Readiness, Verdict::Pass) => {
                        tracing::debug!(replica = %self.config.id, after = ?run.started.elapsed(), "replica ready");
                        self.publish(|s| { s.phase = Phase::Ready; s.ready = true; });
                    }
                    // Not ready any more (it was): stop sending requests, keep it running.
                    (ProbeKind::Readiness, Verdict::Fail) => {
                        tracing::info!(replica = %self.config.id, reason = %event.message, "replica not ready");
                        self.publish(|s| { s.phase = Phase::NotReady; s.ready = false; });
                    }
                    // Alive, as it was: nothing to do.
                    (ProbeKind::Liveness, Verdict::Pass) => {}
                    // Dead or stuck starting: kill it, then restart.
                    (kind @ (ProbeKind::Liveness | ProbeKind::Startup), Verdict::Fail) => {
                        tracing::info!(replica = %self.config.id, probe = %kind, reason = %event.message, "probe failed; restarting replica");
                        let reason = format!("{kind}ProbeFailed");
                        let probe = if kind == ProbeKind::Startup { &self.config.probes.startup } else { &self.config.probes.liveness };
                        let grace = probe.as_ref().and_then(|p| p.termination_grace).unwrap_or(self.config.grace);
                        return self.terminate(run, grace, AfterExit::Restart { reason, message: event.message });
                    }
                },
                cmd = self.commands.recv() => {
                    // Stop asked, or every handle dropped: drain.
                    let grace = match cmd { Some(Command::Stop { grace }) => grace, None => self.config.grace };
                    return self.terminate(run, grace, AfterExit::Stop);
                }
            }
        }
    }

    /// Begins terminating a run: not ready at once, SIGTERM to the group.
    fn terminate(&mut self, mut run: Run, grace: Duration, then: AfterExit) -> State {
        self.publish(|s| {
            s.phase = Phase::Draining;
            s.ready = false;
        });
        // Probes have nothing left to say about a run being terminated.
        for p in run.probes.drain(..) {
            p.abort();
        }
        run.workload.signal(StopSignal::Term);
        State::Draining {
            run,
            deadline: Instant::now() + grace,
            killed: false,
            then,
        }
    }

    /// Draining: wait for the exit; SIGKILL at the deadline. Exit -> Stopped or Crashed.
    async fn draining(
        &mut self,
        mut run: Run,
        deadline: Instant,
        killed: bool,
        mut then: AfterExit,
    ) -> State {
        let mut deadline = deadline;
        let mut killed = killed;
        let mut commands_open = true;
        loop {
            tokio::select! {
                exit = run.workload.wait() => {
                    run.workload.cleanup().await;
                    return match then {
                        // Stopped as asked.
                        AfterExit::Stop => {
                            self.publish(|s| s.final_exit = Some(exit));
                            State::Stopped
                        }
                        // Killed for a failing probe: a crash with the probe's reason.
                        AfterExit::Restart { reason, message } => State::Crashed {
                            exit: ExitInfo { reason, message, ..exit },
                            ran_for: run.started.elapsed(),
                        },
                    };
                }
                _ = tokio::time::sleep_until(deadline), if !killed => {
                    // Grace period over: SIGKILL the group, then keep waiting for the exit.
                    tracing::info!(replica = %self.config.id, "grace period over; killing replica");
                    run.workload.signal(StopSignal::Kill);
                    killed = true;
                }
                cmd = self.commands.recv(), if commands_open => {
                    // A stop during a probe kill, or a second stop (the daemon shutting down
                    // while a replica drains): stop for good after this exit, within the
                    // shorter of the grace periods.
                    match cmd {
                        Some(Command::Stop { grace }) => {
                            deadline = deadline.min(Instant::now() + grace);
                        }
                        None => commands_open = false,
                    }
                    then = AfterExit::Stop;
                }
            }
        }
    }

    /// Crashed: record the end, pick the back-off -> BackingOff.
    fn crashed(&mut self, exit: ExitInfo, ran_for: Duration) -> State {
        let delay = self.backoff.next(ran_for);
        let lines = self.config.logs.recent();
        tracing::warn!(replica = %self.config.id, exit = %exit, restart_in = ?delay, "replica ended");
        self.publish(|s| {
            s.phase = Phase::Crashed;
            s.ready = false;
            s.pid = None;
            s.restarts = s.restarts.saturating_add(1);
            s.last_exit = Some(exit);
            s.last_log_lines = lines;
        });
        State::BackingOff(delay)
    }

    /// BackingOff: wait, unless stopped meanwhile -> Starting or Stopped.
    async fn backing_off(&mut self, delay: Duration) -> State {
        self.publish(|s| {
            s.phase = Phase::BackingOff;
            s.backoff = Some(delay);
        });
        tokio::select! {
            // Waited long enough: try again.
            _ = tokio::time::sleep(delay) => State::Starting,
            // Nothing runs, so a stop is immediate.
            _ = self.commands.recv() => State::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The state machine with a fake workload on paused time.

    use super::*;
    use crate::probe::{ProbeAction, ProbeTiming};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// What a fake run does.
    #[derive(Clone, Copy)]
    enum Script {
        /// Exits with this code after this long.
        ExitAfter(Duration, i32),
        /// Runs until signalled; exits on SIGTERM if `obeys_term`.
        Serve { obeys_term: bool },
    }

    struct FakeLauncher {
        script: Script,
        launches: AtomicUsize,
        signals: Arc<Mutex<Vec<StopSignal>>>,
    }

    struct FakeRun {
        script: Script,
        started: Instant,
        signals: Arc<Mutex<Vec<StopSignal>>>,
        ended_by: Option<StopSignal>,
    }

    #[async_trait]
    impl Launcher for FakeLauncher {
        async fn launch(&self, logs: &Arc<LogSink>) -> Result<Box<dyn Workload>, String> {
            let n = self.launches.fetch_add(1, Ordering::SeqCst);
            logs.write_line(&format!("run {n}"));
            Ok(Box::new(FakeRun {
                script: self.script,
                started: Instant::now(),
                signals: self.signals.clone(),
                ended_by: None,
            }))
        }
    }

    #[async_trait]
    impl Workload for FakeRun {
        fn pid(&self) -> Option<u32> {
            Some(4242)
        }
        fn signal(&mut self, signal: StopSignal) {
            if let Ok(mut s) = self.signals.lock() {
                s.push(signal);
            }
            match (signal, self.script) {
                (StopSignal::Kill, _) | (StopSignal::Term, Script::Serve { obeys_term: true }) => {
                    self.ended_by = Some(signal)
                }
                _ => {}
            }
        }
        async fn wait(&mut self) -> ExitInfo {
            let signal_exit = |s: StopSignal| ExitInfo {
                code: None,
                signal: Some(if s == StopSignal::Kill { 9 } else { 15 }),
                reason: "Error".into(),
                message: String::new(),
            };
            if let Some(s) = self.ended_by {
                return signal_exit(s);
            }
            match self.script {
                Script::ExitAfter(d, code) => {
                    tokio::time::sleep_until(self.started + d).await;
                    ExitInfo {
                        code: Some(code),
                        signal: None,
                        reason: if code == 0 { "Completed" } else { "Error" }.into(),
                        message: String::new(),
                    }
                }
                Script::Serve { .. } => std::future::pending().await,
            }
        }
        async fn cleanup(&mut self) {}
    }

    /// Readiness passes at once; liveness as given.
    struct FakeProber {
        live: bool,
    }

    #[async_trait]
    impl Prober for FakeProber {
        async fn probe(&self, action: &ProbeAction) -> Result<(), String> {
            match action {
                ProbeAction::Exec { .. } if !self.live => Err("dead".into()),
                _ => Ok(()),
            }
        }
    }

    fn replica(
        script: Script,
        live: bool,
        with_liveness: bool,
    ) -> (ReplicaHandle, Arc<FakeLauncher>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = Arc::new(LogSink::open(dir.path().join("r.log"), 1 << 20).expect("log"));
        let probe = |kind, action| ProbeSpec {
            kind,
            action,
            termination_grace: None,
            timing: ProbeTiming {
                initial_delay: Duration::ZERO,
                period: Some(Duration::from_secs(1)),
                timeout: None,
                success_threshold: 1,
                failure_threshold: 3,
            },
        };
        let launcher = Arc::new(FakeLauncher {
            script,
            launches: AtomicUsize::new(0),
            signals: Arc::new(Mutex::new(Vec::new())),
        });
        let config = SupervisorConfig {
            id: "r".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            grace: Duration::from_secs(30),
            probes: ProbeSet {
                startup: None,
                readiness: probe(
                    ProbeKind::Readiness,
                    ProbeAction::Tcp {
                        host: "127.0.0.1".into(),
                        port: 1,
                    },
                ),
                liveness: with_liveness.then(|| {
                    probe(
                        ProbeKind::Liveness,
                        ProbeAction::Exec {
                            command: vec!["check".into()],
                        },
                    )
                }),
            },
            restart: RestartPolicy::default(),
            prober: Arc::new(FakeProber { live }),
            logs,
        };
        (spawn_replica(config, launcher.clone()), launcher, dir)
    }

    #[tokio::test(start_paused = true)]
    async fn crash_loop_backs_off_exponentially() {
        let (handle, launcher, _dir) =
            replica(Script::ExitAfter(Duration::from_millis(5), 3), true, false);
        let mut rx = handle.subscribe();
        let mut backoffs = Vec::new();
        while backoffs.len() < 5 {
            let s = rx
                .wait_for(|s| s.phase == Phase::BackingOff && s.backoff.is_some())
                .await
                .map(|s| s.clone())
                .expect("status");
            backoffs.push(s.backoff.unwrap_or_default());
            assert_eq!(s.last_exit.as_ref().and_then(|e| e.code), Some(3));
            assert_eq!(
                s.last_exit
                    .as_ref()
                    .map(ExitInfo::knative_reason)
                    .as_deref(),
                Some("ExitCode3")
            );
            assert_eq!(s.restarts as usize, backoffs.len());
            assert_eq!(
                s.last_log_lines,
                vec![format!("run {}", backoffs.len() - 1)]
            );
            rx.wait_for(|s| s.phase != Phase::BackingOff).await.ok();
        }
        let ms = Duration::from_millis;
        assert_eq!(backoffs, vec![ms(100), ms(200), ms(400), ms(800), ms(1600)]);
        assert_eq!(launcher.launches.load(Ordering::SeqCst), 6);
        let end = handle.stop(Duration::from_secs(1)).await;
        assert_eq!(end.phase, Phase::Stopped);
    }

    #[tokio::test(start_paused = true)]
    async fn ready_then_graceful_stop() {
        let (handle, launcher, _dir) = replica(Script::Serve { obeys_term: true }, true, true);
        assert!(handle.ready().await.is_ok());
        let end = handle.stop(Duration::from_secs(10)).await;
        assert_eq!(end.phase, Phase::Stopped);
        assert_eq!(end.restarts, 0);
        assert_eq!(end.final_exit.and_then(|e| e.signal), Some(15));
        let signals = launcher
            .signals
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        assert_eq!(signals, vec![StopSignal::Term]);
    }

    #[tokio::test(start_paused = true)]
    async fn sigkill_after_the_grace_period() {
        let (handle, launcher, _dir) = replica(Script::Serve { obeys_term: false }, true, false);
        assert!(handle.ready().await.is_ok());
        let asked = Instant::now();
        let end = handle.stop(Duration::from_secs(7)).await;
        assert_eq!(asked.elapsed(), Duration::from_secs(7));
        assert_eq!(end.final_exit.and_then(|e| e.signal), Some(9));
        let signals = launcher
            .signals
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        assert_eq!(signals, vec![StopSignal::Term, StopSignal::Kill]);
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_failure_kills_and_restarts() {
        let (handle, launcher, _dir) = replica(Script::Serve { obeys_term: true }, false, true);
        let mut rx = handle.subscribe();
        let s = rx
            .wait_for(|s| s.phase == Phase::BackingOff)
            .await
            .map(|s| s.clone())
            .expect("status");
        let exit = s.last_exit.expect("an exit");
        assert_eq!(exit.reason, "LivenessProbeFailed");
        assert_eq!(exit.message, "dead");
        assert_eq!(exit.signal, Some(15));
        rx.wait_for(|s| s.phase == Phase::Ready).await.ok();
        assert_eq!(launcher.launches.load(Ordering::SeqCst), 2);
        drop(rx);
        // Dropping the handle stops the replica.
        let mut rx = handle.subscribe();
        drop(handle);
        assert!(rx.wait_for(|s| s.phase == Phase::Stopped).await.is_ok());
    }

    /// Prepares forever (a pull that hangs), or fails to.
    struct Preparing {
        fails: bool,
        launches: AtomicUsize,
    }

    #[async_trait]
    impl Launcher for Preparing {
        async fn prepare(&self) -> Result<(), String> {
            if self.fails {
                return Err("pulling image x: not found".into());
            }
            std::future::pending().await
        }
        async fn launch(&self, _: &Arc<LogSink>) -> Result<Box<dyn Workload>, String> {
            self.launches.fetch_add(1, Ordering::SeqCst);
            Err("never launched".into())
        }
    }

    fn preparing(fails: bool) -> (ReplicaHandle, Arc<Preparing>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = Arc::new(LogSink::open(dir.path().join("p.log"), 1 << 20).expect("log"));
        let launcher = Arc::new(Preparing {
            fails,
            launches: AtomicUsize::new(0),
        });
        let config = SupervisorConfig {
            id: "p".into(),
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            grace: Duration::from_secs(30),
            probes: ProbeSet {
                startup: None,
                readiness: ProbeSpec {
                    kind: ProbeKind::Readiness,
                    action: ProbeAction::Tcp {
                        host: "127.0.0.1".into(),
                        port: 1,
                    },
                    timing: ProbeTiming::aggressive(),
                    termination_grace: None,
                },
                liveness: None,
            },
            restart: RestartPolicy::default(),
            prober: Arc::new(FakeProber { live: true }),
            logs,
        };
        (spawn_replica(config, launcher.clone()), launcher, dir)
    }

    #[tokio::test(start_paused = true)]
    async fn stop_while_preparing_is_immediate() {
        let (handle, launcher, _dir) = preparing(false);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(handle.status().phase, Phase::Starting);
        let asked = Instant::now();
        let end = handle.stop(Duration::from_secs(30)).await;
        assert_eq!(asked.elapsed(), Duration::ZERO);
        assert_eq!(end.phase, Phase::Stopped);
        assert_eq!(end.final_exit, None);
        assert_eq!(launcher.launches.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_preparation_is_a_start_error_with_back_off() {
        let (handle, launcher, _dir) = preparing(true);
        let mut rx = handle.subscribe();
        let s = rx
            .wait_for(|s| s.phase == Phase::BackingOff)
            .await
            .map(|s| s.clone())
            .expect("status");
        let exit = s.last_exit.expect("an exit");
        assert_eq!(exit.reason, "StartError");
        assert_eq!(exit.message, "pulling image x: not found");
        assert_eq!(s.backoff, Some(Duration::from_millis(100)));
        assert_eq!(launcher.launches.load(Ordering::SeqCst), 0);
        handle.stop(Duration::from_secs(1)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_while_backing_off_is_immediate() {
        let (handle, _launcher, _dir) = replica(Script::ExitAfter(Duration::ZERO, 1), true, false);
        let mut rx = handle.subscribe();
        rx.wait_for(|s| s.phase == Phase::BackingOff).await.ok();
        let asked = Instant::now();
        let end = handle.stop(Duration::from_secs(30)).await;
        assert_eq!(asked.elapsed(), Duration::ZERO);
        assert_eq!(end.phase, Phase::Stopped);
        assert_eq!(end.final_exit, None);
        assert!(handle.ready().await.is_err());
    }
}
