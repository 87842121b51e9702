//! Spawning replica processes so that they die with the daemon.
//!
//! Each child runs a pre-exec hook (between fork and exec) that:
//! 1. calls `setsid()`: a new session and process group led by the child, so that one signal
//!    to the group reaches everything the replica starts, and the replica has no controlling
//!    terminal (a Ctrl-C in the daemon's terminal does not hit it; the daemon drains it);
//! 2. sets `PR_SET_PDEATHSIG` to SIGKILL: the kernel kills the child when its parent dies, even
//!    when the daemon is killed with SIGKILL and runs no clean-up;
//! 3. checks that the parent is still the daemon: if it died between fork and prctl, the death
//!    signal will never come, so the child gives up before exec.
//!
//! The catch with PDEATHSIG: "parent" is the *thread* that forked, not the process. Tokio forks
//! on whichever thread calls `spawn`: a worker thread (which goes away when its runtime shuts
//! down: in tests each `#[tokio::test]` has its own) or a blocking-pool thread (which exits
//! after 10 s idle). A replica forked there would be killed when that thread ends, long before
//! the daemon does. So every fork happens on one dedicated thread, started on first use and
//! never ending: the death signal then fires exactly when the daemon process dies. The thread
//! enters the caller's runtime before spawning so that tokio registers the child with that
//! runtime's process driver.
//!
//! The cost: std must use fork+exec instead of posix_spawn/vfork once a pre-exec hook is set,
//! and the spawns of all replicas go through one thread. A fork of the daemon takes well under
//! a millisecond, which is acceptable against the cold-start budget.

use std::io;
use std::sync::{Mutex, OnceLock, mpsc};

use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

fn spawner() -> io::Result<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<Option<mpsc::Sender<Job>>>> = OnceLock::new();
    let cell = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("wisp-spawner".to_string())
            .spawn(move || {
                // Lives as long as the process: the channel's sender is in a static.
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        Mutex::new(started.ok().map(|_| tx))
    });
    cell.lock()
        .ok()
        .and_then(|g| g.clone())
        .ok_or_else(|| io::Error::other("the replica spawner thread could not be started"))
}

/// Prepares `cmd` as described in the module docs (own session, death signal).
pub(crate) fn harden(cmd: &mut Command) {
    let daemon = rustix::process::getpid();
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe
    // operations are allowed. It makes three raw system calls through rustix (setsid, prctl,
    // getppid), which neither allocate nor take locks, and it builds its error from a raw errno
    // (`io::Error::from(Errno)` stores the code without allocating). It captures only a `Pid`
    // (a plain integer) by value.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(daemon) {
                // The daemon died before the death signal was armed.
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// Spawns `cmd` (already [`harden`]ed) on the spawner thread, registered with the current
/// tokio runtime.
pub(crate) async fn spawn(mut cmd: Command) -> io::Result<Child> {
    let handle = Handle::current();
    let (tx, rx) = oneshot::channel();
    spawner()?
        .send(Box::new(move || {
            let _guard = handle.enter();
            let _ = tx.send(cmd.spawn());
        }))
        .map_err(|_| io::Error::other("the replica spawner thread is gone"))?;
    rx.await
        .map_err(|_| io::Error::other("the replica spawner thread dropped a spawn"))?
}
