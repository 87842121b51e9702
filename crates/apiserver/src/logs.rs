//! `GET .../revisions/{name}/log`: the replicas' stdout and stderr, like `pods/{name}/log`.
//!
//! The runtime keeps each replica's output in a size-capped file; this module only reads those
//! files (listed by a [`LogSource`], so the API server knows nothing of the runtime's layout)
//! and streams them: the last `tailLines` lines of each, then, with `follow=true`, what is
//! appended to any of them and to replicas that start later, until the client goes away or the
//! daemon stops. Following polls the files' sizes every quarter second: logs are for people,
//! and a poll keeps the runtime's write path free of any reader.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{StatusCode, header};

use crate::error::ApiError;

/// Where replica logs are: implemented by the daemon over its runtime backend.
pub trait LogSource: Send + Sync + 'static {
    /// Log files of the revision's replicas, oldest first: (replica id, path).
    fn revision_logs(&self, namespace: &str, revision: &str) -> Vec<(String, PathBuf)>;
}

const POLL: Duration = Duration::from_millis(250);
/// Bytes read from the end of a file to find its last lines.
const TAIL_WINDOW: u64 = 1 << 20;

/// Options of a log request (`follow`, `tailLines`, `prefix`, `sinceSeconds` as kubectl
/// names them).
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub prefix: bool,
    /// Only replicas that wrote within this long. Replica lines carry no time of their own,
    /// so the cut is per file (its last write), not per line.
    pub since: Option<Duration>,
    /// Only this replica (its id, as the `[revision/replica]` prefix shows it).
    pub replica: Option<String>,
}

/// Whether a file last written at `modified` is within `since` of `now`.
fn written_since(
    modified: std::time::SystemTime,
    since: Option<Duration>,
    now: std::time::SystemTime,
) -> bool {
    match since {
        None => true,
        Some(since) => now
            .duration_since(modified)
            .map_or(true, |age| age <= since),
    }
}

/// The last `n` lines of `bytes` (all when `n` is `None`).
fn last_lines(bytes: &[u8], n: Option<usize>) -> &[u8] {
    let Some(n) = n else { return bytes };
    if n == 0 {
        return &bytes[bytes.len()..];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

fn with_prefix(prefix: &str, bytes: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    out
}

/// Reads the part of `path` after `offset`; returns the bytes and the new offset. A file that
/// shrank was rotated: read it from the start.
fn read_from(path: &PathBuf, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    Ok((buf, len))
}

/// The first read of a file: its last lines, and where following continues.
fn read_tail(path: &PathBuf, n: Option<usize>) -> std::io::Result<(Vec<u8>, u64)> {
    let len = std::fs::metadata(path)?.len();
    let from = match n {
        Some(_) => len.saturating_sub(TAIL_WINDOW),
        None => 0,
    };
    let (bytes, end) = read_from(path, from)?;
    Ok((last_lines(&bytes, n).to_vec(), end))
}

pub fn respond(
    source: Arc<dyn LogSource>,
    stopping: tokio::sync::watch::Receiver<bool>,
    namespace: String,
    revision: String,
    opts: LogOptions,
) -> Result<Response, ApiError> {
    let only = opts.replica.clone();
    let wanted = move |files: Vec<(String, PathBuf)>| -> Vec<(String, PathBuf)> {
        match &only {
            Some(r) => files.into_iter().filter(|(id, _)| id == r).collect(),
            None => files,
        }
    };
    let files = wanted(source.revision_logs(&namespace, &revision));
    let (with, rev) = (opts.prefix, revision.clone());
    let prefix_of = move |id: &str| {
        if with {
            format!("[{rev}/{id}] ")
        } else {
            String::new()
        }
    };
    let mut offsets: HashMap<PathBuf, u64> = HashMap::new();
    let mut first = Vec::new();
    let now = std::time::SystemTime::now();
    for (id, path) in &files {
        let recent = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .is_ok_and(|m| written_since(m, opts.since, now));
        if !recent {
            // Followed from its end: what it writes from now on is recent.
            if let Ok(m) = std::fs::metadata(path) {
                offsets.insert(path.clone(), m.len());
            }
            continue;
        }
        let Ok((bytes, end)) = read_tail(path, opts.tail_lines) else {
            continue;
        };
        first.extend(with_prefix(&prefix_of(id), &bytes));
        offsets.insert(path.clone(), end);
    }
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
    if !opts.follow {
        return builder
            .body(Body::from(first))
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let mut stopping = stopping;
        if !first.is_empty() && tx.send(Ok(Bytes::from(first))).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopping.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
            }
            let files = wanted(source.revision_logs(&namespace, &revision));
            let mut out = Vec::new();
            for (id, path) in files {
                // A replica that started since: from its beginning.
                let offset = offsets.get(&path).copied().unwrap_or(0);
                let Ok((bytes, end)) = read_from(&path, offset) else {
                    continue;
                };
                // Only whole lines; a partial last line waits for its end.
                let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                out.extend(with_prefix(&prefix_of(&id), &bytes[..whole]));
                offsets.insert(path, end - (bytes.len() - whole) as u64);
            }
            if !out.is_empty() && tx.send(Ok(Bytes::from(out))).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    builder
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        let b = b"a\nb\nc\n";
        assert_eq!(last_lines(b, Some(2)), b"b\nc\n");
        assert_eq!(last_lines(b, Some(5)), b);
        assert_eq!(last_lines(b, None), b);
        assert_eq!(last_lines(b, Some(0)), b"");
        assert_eq!(last_lines(b"a\nb", Some(1)), b"b");
    }

    #[test]
    fn since_cuts_by_last_write() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let at = |s| std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert!(written_since(at(1), None, now));
        assert!(written_since(at(900), Some(Duration::from_secs(100)), now));
        assert!(!written_since(at(899), Some(Duration::from_secs(100)), now));
        // A clock that went back: keep.
        assert!(written_since(at(2000), Some(Duration::from_secs(1)), now));
    }

    #[test]
    fn prefix_goes_on_every_line() {
        assert_eq!(with_prefix("[r] ", b"x\ny\n"), b"[r] x\n[r] y\n");
        assert_eq!(with_prefix("", b"x\n"), b"x\n");
    }

    #[test]
    fn reading_resumes_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let (tail, end) = read_tail(&path, Some(1)).unwrap();
        assert_eq!(tail, b"two\n");
        std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
        let (more, end) = read_from(&path, end).unwrap();
        assert_eq!(more, b"three\n");
        std::fs::write(&path, "new\n").unwrap();
        let (rotated, _) = read_from(&path, end).unwrap();
        assert_eq!(rotated, b"new\n");
    }
}
