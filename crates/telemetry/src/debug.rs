//! `GET /debug/requests`: the request log through the API port, filtered, so that the CLI
//! (`wisp logs --requests`) needs nothing but HTTP.
//!
//! Parameters, named as the replica-log endpoint names them: `namespace`, `service`,
//! `revision` (repeatable, or comma-separated), `sinceSeconds`, `tailLines`, `follow`.
//! Filtering is on the line's own fields: `time` compares as a string (fixed-width UTC), the
//! others are read by a borrowed JSON parse, so a line costs no allocation unless it is kept.
//! Following polls the file every quarter second, as the replica logs do: the request path
//! never knows anyone is reading.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::requestlog::{files, timestamp};

const POLL: Duration = Duration::from_millis(250);

/// Which lines to keep.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub namespace: Option<String>,
    pub service: Option<String>,
    pub revisions: Vec<String>,
    /// Lines at or after this `time` (a timestamp as the log writes them).
    pub since: Option<String>,
}

#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow, default)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    service: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    revision: Option<Cow<'a, str>>,
}

impl Filter {
    pub fn keeps(&self, line: &str) -> bool {
        let Ok(v) = serde_json::from_str::<View>(line) else {
            return false;
        };
        let is = |want: &Option<String>, got: &Option<Cow<str>>| match want {
            None => true,
            Some(w) => got.as_deref() == Some(w.as_str()),
        };
        is(&self.namespace, &v.namespace)
            && is(&self.service, &v.service)
            && (self.revisions.is_empty()
                || v.revision
                    .as_deref()
                    .is_some_and(|r| self.revisions.iter().any(|w| w == r)))
            && self.since.as_deref().is_none_or(|s| *v.time >= *s)
    }

    /// The kept lines of `text` (whole lines only), each with its newline.
    pub fn apply(&self, text: &str, out: &mut String) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            if self.keeps(line) {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: Option<usize>) -> &str {
    let Some(n) = n else { return text };
    if n == 0 {
        return "";
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    match body.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &text[i + 1..],
        None => text,
    }
}

/// Reads `path` from `offset`: the bytes up to the last newline, and the offset after them.
/// A file shorter than `offset` was rotated: read it from its start.
fn read_whole_lines(path: &Path, offset: u64) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(len - start).read_to_end(&mut buf)?;
    let whole = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    buf.truncate(whole);
    Ok((
        String::from_utf8_lossy(&buf).into_owned(),
        start + whole as u64,
    ))
}

/// Everything kept so far (both files, oldest first), the last `tail_lines`, and the offset
/// in the current file to follow from.
pub fn read(path: &Path, filter: &Filter, tail_lines: Option<usize>) -> (String, u64) {
    let [old, current] = files(path);
    let mut kept = String::new();
    if let Ok((text, _)) = read_whole_lines(&old, 0) {
        filter.apply(&text, &mut kept);
    }
    let offset = match read_whole_lines(&current, 0) {
        Ok((text, end)) => {
            filter.apply(&text, &mut kept);
            end
        }
        Err(_) => 0,
    };
    (tail(&kept, tail_lines).to_string(), offset)
}

#[derive(Clone)]
pub(crate) struct Endpoint {
    pub path: Option<PathBuf>,
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

pub(crate) async fn requests(
    State(ep): State<Endpoint>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(path) = ep.path.clone() else {
        return (
            StatusCode::NOT_FOUND,
            "the request log is off (wisp serve --request-log off)\n",
        )
            .into_response();
    };
    let number = |k: &str| -> Result<Option<u64>, String> {
        match params.get(k) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{k}: {v:?} is not a whole number\n")),
        }
    };
    let (since, tail_lines) = match (number("sinceSeconds"), number("tailLines")) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let filter = Filter {
        namespace: params.get("namespace").cloned().filter(|s| !s.is_empty()),
        service: params.get("service").cloned().filter(|s| !s.is_empty()),
        revisions: params
            .get("revision")
            .map(|r| {
                r.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        since: since.map(|s| timestamp(SystemTime::now() - Duration::from_secs(s))),
    };
    let follow = params
        .get("follow")
        .is_some_and(|v| v == "true" || v == "1");
    let (first, mut offset) = {
        let (path, filter) = (path.clone(), filter.clone());
        tokio::task::spawn_blocking(move || read(&path, &filter, tail_lines.map(|n| n as usize)))
            .await
            .unwrap_or_default()
    };
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson");
    if !follow {
        return builder
            .body(Body::from(first))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(16);
    let mut stopping = ep.stopping.clone();
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(first)).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopping.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
            }
            let (p, from) = (path.clone(), offset);
            let Ok(Ok((text, end))) =
                tokio::task::spawn_blocking(move || read_whole_lines(&p, from)).await
            else {
                continue;
            };
            offset = end;
            let mut out = String::new();
            filter.apply(&text, &mut out);
            if !out.is_empty() && tx.send(Ok(out)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(time: &str, ns: &str, svc: &str, rev: &str) -> String {
        format!(
            r#"{{"time":"{time}","httpRequest":{{"status":200}},"namespace":"{ns}","service":"{svc}","revision":"{rev}"}}"#
        )
    }

    #[test]
    fn filters_by_namespace_service_revision_and_time() {
        let a = line(
            "2026-01-01T00:00:00.000000Z",
            "default",
            "hello",
            "hello-00001",
        );
        let b = line(
            "2026-01-01T00:05:00.000000Z",
            "default",
            "hello",
            "hello-00002",
        );
        let c = line("2026-01-01T00:06:00.000000Z", "other", "bye", "bye-00001");
        let unrouted = r#"{"time":"2026-01-01T00:07:00.000000Z","httpRequest":{"status":404}}"#;
        let text = format!("{a}\n{b}\n{c}\n{unrouted}\nnot json\n");
        let kept = |f: Filter| {
            let mut out = String::new();
            f.apply(&text, &mut out);
            out.lines().count()
        };
        assert_eq!(kept(Filter::default()), 4);
        let svc = Filter {
            namespace: Some("default".into()),
            service: Some("hello".into()),
            ..Default::default()
        };
        assert_eq!(kept(svc.clone()), 2);
        assert_eq!(
            kept(Filter {
                revisions: vec!["hello-00002".into(), "bye-00001".into()],
                ..Default::default()
            }),
            2
        );
        assert_eq!(
            kept(Filter {
                since: Some("2026-01-01T00:05:00.000000Z".into()),
                ..svc
            }),
            1
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", Some(2)), "b\nc\n");
        assert_eq!(tail("a\nb\nc\n", Some(9)), "a\nb\nc\n");
        assert_eq!(tail("a\nb\nc\n", Some(0)), "");
        assert_eq!(tail("a\nb\nc\n", None), "a\nb\nc\n");
    }

    #[test]
    fn reads_both_files_oldest_first_and_only_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("requests.log");
        let [old, _] = files(&path);
        std::fs::write(&old, format!("{}\n", line("t1", "n", "s", "r1"))).unwrap();
        std::fs::write(
            &path,
            format!("{}\n{{\"partial", line("t2", "n", "s", "r2")),
        )
        .unwrap();
        let (text, offset) = read(&path, &Filter::default(), None);
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with(&line("t1", "n", "s", "r1")));
        let (more, _) = read_whole_lines(&path, offset).unwrap();
        assert_eq!(more, "");
        let (last, _) = read(&path, &Filter::default(), Some(1));
        assert!(last.contains("\"r2\""));
    }
}
