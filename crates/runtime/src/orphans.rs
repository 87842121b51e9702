//! No orphans: a record per running replica, and the sweep that kills what a previous daemon
//! left behind.
//!
//! Every replica runs as the leader of its own session and process group (`setsid`), so the
//! group id is the leader's pid and one `kill(-pgid)` reaches every process it started. While a
//! run is alive, `{data_dir}/run/{namespace}/{revision}/{replica}.pid` holds its pid and its
//! start time (field 22 of `/proc/PID/stat`, clock ticks since boot): the pair names a process
//! unambiguously even after the pid is reused. The record is written right after the spawn and
//! removed once the run's group is dead.
//!
//! After a daemon crash, most replicas are already dead: each is started with
//! `PR_SET_PDEATHSIG = SIGKILL` (see `spawn.rs`). What survives is (a) processes the replicas
//! started themselves, which inherit no death signal but stay in the replica's process group,
//! and (b) replicas spawned in the window between fork and prctl (the child checks for it, but
//! belt and braces). [`reap`] handles both, once, at daemon start:
//! - the leader is alive and its start time matches: the group is ours, kill it;
//! - the leader is alive with another start time: the pid was reused by a stranger; leave it;
//! - the leader is gone: any process still in group `pgid` is ours (Linux does not hand out a
//!   pid while a process group of that number exists, so a stranger cannot have taken the
//!   number in between unless our whole group was already gone); kill the group.
//!
//! Killing is SIGTERM to the group, up to [`ORPHAN_GRACE`] for it to go, then SIGKILL. Zombies
//! count as gone (their parent, not us, must reap them).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::process::{Pid, Signal};

/// How long an orphaned group gets between SIGTERM and SIGKILL. Short: nobody can reach an
/// orphan any more (the gateway that routed to it died with the old daemon).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// What the record of a running replica says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidRecord {
    pub pid: u32,
    /// Field 22 of `/proc/PID/stat`.
    pub start_time: u64,
    /// `namespace/revision/replica`, for messages.
    pub replica: String,
}

impl PidRecord {
    fn render(&self) -> String {
        format!(
            "pid={}\nstart_time={}\nreplica={}\n",
            self.pid, self.start_time, self.replica
        )
    }

    fn parse(text: &str) -> Option<PidRecord> {
        let mut pid = None;
        let mut start_time = None;
        let mut replica = String::new();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("start_time", v)) => start_time = v.trim().parse().ok(),
                Some(("replica", v)) => replica = v.to_string(),
                _ => {}
            }
        }
        Some(PidRecord {
            pid: pid.filter(|p| *p > 1)?,
            start_time: start_time?,
            replica,
        })
    }

    /// Reads a record; `None` when there is none or it is not valid.
    pub fn read(path: &Path) -> Option<PidRecord> {
        PidRecord::parse(&std::fs::read_to_string(path).ok()?)
    }

    /// Writes the record (atomically: a crash mid-write leaves no half record).
    pub fn write(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("pid.tmp");
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(&tmp, path)
    }
}

/// The fields of `/proc/PID/stat` wisp uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub start_time: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), fields[1] field 4 (ppid), fields[2] field 5 (pgrp),
    // fields[19] field 22 (starttime).
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// `/proc/PID/stat` of a live process, or `None` when there is none (or only a zombie).
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).filter(|s| s.state != 'Z' && s.state != 'X')
}

/// The live (non-zombie) processes of a process group.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| proc_stat(*pid).is_some_and(|s| s.pgrp == pgid))
        .collect()
}

/// Sends `signal` to process group `pgid`; a group that is already gone is not an error.
pub fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let Some(pid) = i32::try_from(pgid).ok().and_then(Pid::from_raw) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid process group",
        ));
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::SRCH => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Every record under `run_dir`, with its path.
pub fn read_records(run_dir: &Path) -> Vec<(PathBuf, Option<PidRecord>)> {
    let mut out = Vec::new();
    let mut stack = vec![run_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "pid" || x == "tmp") {
                let rec = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| PidRecord::parse(&t));
                out.push((path, rec));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// What [`reap`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// Replicas (`namespace/revision/replica`) whose leftover processes were killed.
    pub killed: Vec<String>,
    /// Records removed without killing anything (already dead, or pid reused by a stranger).
    pub stale: usize,
}

/// Kills every recorded group still alive and removes the records; see the module docs.
pub async fn reap(run_dir: &Path, grace: Duration) -> ReapReport {
    let mut report = ReapReport::default();
    let mut doomed: Vec<(u32, String)> = Vec::new();
    for (path, rec) in read_records(run_dir) {
        let Some(rec) = rec else {
            let _ = std::fs::remove_file(&path);
            report.stale += 1;
            continue;
        };
        let ours = match proc_stat(rec.pid) {
            Some(stat) => stat.start_time == rec.start_time,
            None => !group_members(rec.pid).is_empty(),
        };
        if ours {
            tracing::warn!(replica = %rec.replica, pgid = rec.pid, "killing a replica left over by a previous daemon");
            let _ = signal_group(rec.pid, Signal::TERM);
            doomed.push((rec.pid, rec.replica.clone()));
        } else {
            report.stale += 1;
            let _ = std::fs::remove_file(&path);
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    while !doomed.is_empty() {
        doomed.retain(|(pgid, replica)| {
            if group_members(*pgid).is_empty() {
                report.killed.push(replica.clone());
                false
            } else {
                true
            }
        });
        if doomed.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for (pgid, replica) in doomed.drain(..) {
                let _ = signal_group(pgid, Signal::KILL);
                report.killed.push(replica);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (path, _) in read_records(run_dir) {
        let _ = std::fs::remove_file(path);
    }
    report.killed.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let text = "1234 (my (weird) app) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(text),
            Some(ProcStat {
                state: 'S',
                ppid: 1,
                pgrp: 1234,
                start_time: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn reads_our_own_stat() {
        let me = std::process::id();
        let stat = proc_stat(me).expect("our own /proc entry");
        assert!(stat.start_time > 0);
        assert!(group_members(stat.pgrp).contains(&me));
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rec = PidRecord {
            pid: 4242,
            start_time: 77,
            replica: "default/hello-00001/abc".into(),
        };
        let path = dir.path().join("default/hello-00001/abc.pid");
        rec.write(&path).expect("write");
        let all = read_records(dir.path());
        assert_eq!(all, vec![(path, Some(rec))]);
        assert_eq!(PidRecord::parse("pid=1\nstart_time=3\n"), None);
        assert_eq!(PidRecord::parse("start_time=3\n"), None);
    }

    #[tokio::test]
    async fn stale_records_are_removed_without_killing() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Our own pid with a wrong start time: a "reused" pid. Must not be signalled.
        let me = PidRecord {
            pid: std::process::id(),
            start_time: 1,
            replica: "ns/rev/reused".into(),
        };
        me.write(&dir.path().join("ns/rev/reused.pid"))
            .expect("write");
        std::fs::write(dir.path().join("junk.pid"), "nonsense").expect("write");
        let report = reap(dir.path(), Duration::from_millis(10)).await;
        assert_eq!(
            report,
            ReapReport {
                killed: vec![],
                stale: 2
            }
        );
        assert!(read_records(dir.path()).is_empty());
    }
}
