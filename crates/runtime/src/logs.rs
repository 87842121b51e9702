//! Per-replica logs: stdout and stderr, line by line, into
//! `{data_dir}/logs/{namespace}/{revision}/{replica}.log`, size-capped (when the file would
//! pass the cap it is renamed to `.log.1`, replacing the older one, so a replica uses at most
//! twice the cap on disk), plus the last [`RECENT_LINES`] lines of the current run in memory
//! (reported when the replica crashes) and a broadcast of every line (to follow them live).
//!
//! Lines are written as the program printed them, stdout and stderr interleaved in arrival
//! order, without prefixes (like `kubectl logs`). A line longer than [`MAX_LINE`] bytes is
//! split. Writes go straight to the file without buffering: they land in the page cache, and a
//! replica's last words before a crash must not wait in a buffer.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::broadcast;

use crate::RevisionRef;

/// Default size cap of one log file.
pub const DEFAULT_LOG_CAP: u64 = 10 * 1024 * 1024;
/// Lines of the current run kept in memory.
pub const RECENT_LINES: usize = 20;
/// Longest line kept whole.
pub const MAX_LINE: usize = 16 * 1024;

/// The log of one replica: file, recent lines and live followers.
#[derive(Debug)]
pub struct LogSink {
    path: PathBuf,
    cap: u64,
    inner: Mutex<Inner>,
    tx: broadcast::Sender<String>,
}

#[derive(Debug)]
struct Inner {
    /// `None` after a write error: lines still reach memory and followers.
    file: Option<File>,
    size: u64,
    recent: VecDeque<String>,
}

impl LogSink {
    /// Opens (appends to) the log at `path`, creating its directory.
    pub fn open(path: PathBuf, cap: u64) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        let (tx, _) = broadcast::channel(256);
        Ok(LogSink {
            path,
            cap: cap.max(1),
            inner: Mutex::new(Inner {
                file: Some(file),
                size,
                recent: VecDeque::with_capacity(RECENT_LINES),
            }),
            tx,
        })
    }

    /// The current log file (the previous one is the same path with `.1` appended).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (without its newline).
    pub fn write_line(&self, line: &str) {
        self.write_lines(&[line]);
    }

    /// Appends lines (without their newlines) with one write to the file: a busy replica's
    /// output costs the daemon one system call per read of its pipe, not one per line.
    pub fn write_lines(&self, lines: &[&str]) {
        if lines.is_empty() {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let len: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        if inner.size > 0 && inner.size + len > self.cap {
            inner.file = None;
            match rotate(&self.path) {
                Ok(file) => {
                    inner.file = Some(file);
                    inner.size = 0;
                }
                Err(e) => {
                    // Lines go on reaching memory and followers; no retry on every line.
                    inner.size = 0;
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot rotate replica log; keeping lines in memory only");
                }
            }
        }
        if let Some(file) = inner.file.as_mut() {
            let mut buf = Vec::with_capacity(len as usize);
            for line in lines {
                buf.extend_from_slice(line.as_bytes());
                buf.push(b'\n');
            }
            match file.write_all(&buf) {
                Ok(()) => inner.size += len,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write replica log; keeping lines in memory only");
                    inner.file = None;
                }
            }
        }
        for line in &lines[lines.len().saturating_sub(RECENT_LINES)..] {
            if inner.recent.len() == RECENT_LINES {
                inner.recent.pop_front();
            }
            inner.recent.push_back((*line).to_string());
        }
        drop(inner);
        // Copies only for someone following (`wisp logs -f` reads the file instead).
        if self.tx.receiver_count() > 0 {
            for line in lines {
                let _ = self.tx.send((*line).to_string());
            }
        }
    }

    /// The last lines of the current run, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.recent.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets the recent lines (a new run starts).
    pub fn clear_recent(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.recent.clear();
        }
    }

    /// Every line written from now on. A follower too slow to keep up skips lines (it gets
    /// `RecvError::Lagged`) rather than slowing the replica down.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }
}

fn rotated(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

fn rotate(path: &Path) -> io::Result<File> {
    std::fs::rename(path, rotated(path))?;
    OpenOptions::new().create(true).append(true).open(path)
}

/// The last `n` lines of a replica's log (from the rotated file too when needed); for
/// `wisp logs` and for replicas that are gone.
pub fn read_tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    let read = |p: &Path| match std::fs::read(p) {
        Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e),
    };
    let current = read(path)?;
    let mut lines: Vec<String> = current.lines().map(str::to_string).collect();
    if lines.len() < n {
        let older = read(&rotated(path))?;
        let mut all: Vec<String> = older.lines().map(str::to_string).collect();
        all.append(&mut lines);
        lines = all;
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

/// The log file of a replica under `data_dir` (the same path with `.1` appended is the
/// previous one): `logs/{namespace}/{revision}/{replica}.log`, for every backend.
pub fn log_path(data_dir: &Path, revision: &RevisionRef, replica: &str) -> PathBuf {
    data_dir
        .join("logs")
        .join(&revision.namespace)
        .join(&revision.name)
        .join(format!("{replica}.log"))
}

/// The log files of every replica of `revision` under `data_dir` (current runs and earlier
/// ones), oldest first, as (replica id, path). Rotated halves (`.log.1`) are not listed: they
/// hold older lines of a listed file.
pub fn revision_logs(data_dir: &Path, revision: &RevisionRef) -> Vec<(String, PathBuf)> {
    let dir = data_dir
        .join("logs")
        .join(&revision.namespace)
        .join(&revision.name);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<(std::time::SystemTime, String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path();
            let id = path
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .to_string();
            let created = e
                .metadata()
                .and_then(|m| m.created().or_else(|_| m.modified()))
                .unwrap_or(std::time::UNIX_EPOCH);
            Some((created, id, path))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, id, path)| (id, path)).collect()
}

/// Starts copying a child's piped stdout and stderr into `logs`; the tasks end with the
/// streams.
pub(crate) fn pump_child(
    child: &mut tokio::process::Child,
    logs: &std::sync::Arc<LogSink>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        let logs = logs.clone();
        pumps.push(tokio::spawn(async move { pump(out, &logs).await }));
    }
    if let Some(err) = child.stderr.take() {
        let logs = logs.clone();
        pumps.push(tokio::spawn(async move { pump(err, &logs).await }));
    }
    pumps
}

/// Copies a replica's output stream into its log, line by line, until end of stream. Every
/// complete line of one read goes to the log in one write.
pub(crate) async fn pump<R: AsyncRead + Unpin>(reader: R, sink: &LogSink) {
    let mut r = BufReader::new(reader);
    // A line split across reads waits here for its end.
    let mut partial: Vec<u8> = Vec::new();
    fn trim_cr(line: &[u8]) -> &[u8] {
        line.strip_suffix(b"\r").unwrap_or(line)
    }
    // A read error ends the stream like its end does.
    while let Ok(buf) = r.fill_buf().await {
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
            partial.extend_from_slice(buf);
            r.consume(n);
            if partial.len() >= MAX_LINE {
                sink.write_line(&String::from_utf8_lossy(trim_cr(&partial)));
                partial.clear();
            }
            continue;
        };
        let complete = &buf[..last_nl];
        let mut owned: Vec<String> = Vec::new();
        let mut pieces = complete.split(|b| *b == b'\n');
        if !partial.is_empty() {
            partial.extend_from_slice(pieces.next().unwrap_or_default());
            owned.push(String::from_utf8_lossy(trim_cr(&partial)).into_owned());
            partial.clear();
        }
        owned.extend(pieces.map(|l| String::from_utf8_lossy(trim_cr(l)).into_owned()));
        let lines: Vec<&str> = owned.iter().map(String::as_str).collect();
        sink.write_lines(&lines);
        partial.extend_from_slice(&buf[last_nl + 1..]);
        r.consume(n);
    }
    if !partial.is_empty() {
        sink.write_line(&String::from_utf8_lossy(trim_cr(&partial)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pumps_lines_into_file_ring_and_followers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ns/rev/r1.log");
        let sink = LogSink::open(path.clone(), DEFAULT_LOG_CAP).expect("open");
        let mut follower = sink.subscribe();
        let input: &[u8] = b"one\r\ntwo\n\nthree without newline";
        pump(input, &sink).await;
        assert_eq!(
            sink.recent(),
            vec!["one", "two", "", "three without newline"]
        );
        assert_eq!(follower.recv().await.ok().as_deref(), Some("one"));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            "one\ntwo\n\nthree without newline\n"
        );
        sink.clear_recent();
        assert!(sink.recent().is_empty());
    }

    #[tokio::test]
    async fn lines_split_across_reads_are_joined() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.log");
        let sink = LogSink::open(path.clone(), DEFAULT_LOG_CAP).expect("open");
        // Three reads: a line cut in two, several lines at once, a CRLF cut before its LF.
        let input = (&b"al"[..])
            .chain(&b"pha\nbeta\ngam"[..])
            .chain(&b"ma\r"[..])
            .chain(&b"\nend\n"[..]);
        pump(input, &sink).await;
        assert_eq!(sink.recent(), vec!["alpha", "beta", "gamma", "end"]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap_or_default(),
            "alpha\nbeta\ngamma\nend\n"
        );
    }

    #[tokio::test]
    async fn splits_very_long_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = LogSink::open(dir.path().join("x.log"), DEFAULT_LOG_CAP).expect("open");
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        pump(&long[..], &sink).await;
        let lines = sink.recent();
        assert!(lines.len() >= 2, "{}", lines.len());
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE + 8192));
        assert_eq!(lines.iter().map(String::len).sum::<usize>(), long.len());
    }

    #[test]
    fn keeps_the_last_lines_and_caps_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.log");
        let sink = LogSink::open(path.clone(), 100).expect("open");
        for i in 0..50 {
            sink.write_line(&format!("line {i:03}")); // 9 bytes each with the newline
        }
        let recent = sink.recent();
        assert_eq!(recent.len(), RECENT_LINES);
        assert_eq!(recent.first().map(String::as_str), Some("line 030"));
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        assert!(size(&path) <= 100);
        assert!(size(&rotated(&path)) <= 100 && size(&rotated(&path)) > 0);
        // The tail reads across the rotation.
        let tail = read_tail(&path, 15).expect("tail");
        assert_eq!(tail.len(), 15);
        assert_eq!(tail.last().map(String::as_str), Some("line 049"));
        assert_eq!(tail.first().map(String::as_str), Some("line 035"));
        // Reopening appends.
        drop(sink);
        let sink = LogSink::open(path.clone(), 100).expect("reopen");
        sink.write_line("again");
        assert_eq!(
            read_tail(&path, 1).expect("tail"),
            vec!["again".to_string()]
        );
        assert!(
            read_tail(&dir.path().join("missing.log"), 5)
                .expect("tail")
                .is_empty()
        );
    }
}
