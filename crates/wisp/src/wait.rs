//! Waiting for a Service to take a change: one pure decision, [`wait_state`], over the
//! Service as the server reports it, and the watch loop around it ([`wait_for_service`]).
//!
//! As kn: the wait ends at `Ready=True` once the controller has observed the new generation
//! (and created the expected revision), and fails when Ready stays False longer than an error
//! window (2 s by default), with the condition's reason and message.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use wisp_api::kinds;

use crate::client::{ApiError, Client, collection_path, query};

/// What the change should lead to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// The generation the write produced; the controller must have observed at least it.
    pub generation: i64,
    /// The change edits the revision template, so a new revision must appear.
    pub new_revision: bool,
    /// `status.latestCreatedRevisionName` before the change.
    pub previous_revision: String,
    /// The revision name the template asks for (`--revision-name`), if any.
    pub revision_name: String,
}

/// Where a Service stands with respect to [`Expected`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitState {
    /// Not there yet; `stage` says what is awaited (shown as progress).
    Waiting { stage: String },
    /// The change is reconciled and the Service is Ready.
    Done,
    /// Ready=False: `reason: message`.
    Failed(String),
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The `Ready` condition of an object: (status, reason, message).
pub fn ready_condition(obj: &Value) -> Option<(&str, &str, &str)> {
    condition(obj, "Ready")
}

/// A condition of an object: (status, reason, message).
fn condition<'a>(obj: &'a Value, type_: &str) -> Option<(&'a str, &'a str, &'a str)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        .map(|c| {
            (
                str_at(c, "/status"),
                str_at(c, "/reason"),
                str_at(c, "/message"),
            )
        })
}

/// Decides, from the Service as reported, whether the change is done, failed or pending.
pub fn wait_state(service: &Value, expected: &Expected) -> WaitState {
    let generation = service
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = service
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let ready = ready_condition(service);
    let ready_message = ready.map(|(_, _, m)| m).filter(|m| !m.is_empty());
    let waiting = |what: String| WaitState::Waiting {
        stage: ready_message.map(str::to_string).unwrap_or(what),
    };
    // Like kn: only a status that reflects the latest spec counts (its messages too).
    if observed < expected.generation.max(1) || observed != generation {
        return WaitState::Waiting {
            stage: format!(
                "waiting for the controller to reconcile generation {}",
                generation.max(expected.generation)
            ),
        };
    }
    if let Some(("False", reason, message)) = ready {
        // The Route fails as a consequence of its Configuration, and whichever is marked last
        // names the Service's failure: the Configuration's is the cause a user can act on.
        let (reason, message) = match condition(service, "ConfigurationsReady") {
            Some(("False", r, m)) => (r, m),
            _ => (reason, message),
        };
        return WaitState::Failed(format!("{reason}: {message}"));
    }
    let latest = str_at(service, "/status/latestCreatedRevisionName");
    if latest.is_empty() {
        return waiting("waiting for the first revision to be created".to_string());
    }
    if expected.new_revision {
        if !expected.revision_name.is_empty() && latest != expected.revision_name {
            return waiting(format!(
                "waiting for revision {} to be created",
                expected.revision_name
            ));
        }
        if latest == expected.previous_revision {
            return waiting("waiting for the new revision to be created".to_string());
        }
    }
    if !matches!(ready, Some(("True", _, _))) {
        return waiting(format!("waiting for revision {latest} to become ready"));
    }
    WaitState::Done
}

/// The revision to report after a change: the latest ready one when the Service is Ready
/// (as kn), else the latest created (after `--no-wait`).
pub fn reported_revision(service: &Value) -> String {
    let ready = matches!(ready_condition(service), Some(("True", _, _)));
    let latest_ready = str_at(service, "/status/latestReadyRevisionName");
    if ready && !latest_ready.is_empty() {
        latest_ready.to_string()
    } else {
        str_at(service, "/status/latestCreatedRevisionName").to_string()
    }
}

/// How long to wait.
#[derive(Debug, Clone, Copy)]
pub struct WaitConfig {
    pub timeout: Duration,
    /// How long Ready may stay False before the wait fails (kn's `--wait-window`).
    pub error_window: Duration,
}

/// A one-line progress display on stderr, only when stderr is a terminal.
struct Progress {
    tty: bool,
    start: Instant,
    shown: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            start: Instant::now(),
            shown: false,
        }
    }

    fn show(&mut self, stage: &str) {
        if !self.tty {
            return;
        }
        let secs = self.start.elapsed().as_secs_f64();
        let mut line = format!("{secs:7.3}s {stage}");
        line.truncate(line.char_indices().nth(120).map_or(line.len(), |(i, _)| i));
        let _ = write!(std::io::stderr(), "\r\x1b[K{line}");
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            let _ = std::io::stderr().flush();
            self.shown = false;
        }
    }
}

/// How often a waiting terminal looks at the revision for a pull's progress.
const PULL_POLL: Duration = Duration::from_millis(500);

/// The revision's "Pulling image …: 3.1 MB of 11.0 MB", while its image is being pulled.
async fn pull_progress(client: &Client, namespace: &str, revision: &str) -> Option<String> {
    let rev = client
        .get(&crate::client::object_path(
            &kinds::REVISIONS,
            Some(namespace),
            revision,
        ))
        .await
        .ok()?;
    match condition(&rev, "ResourcesAvailable") {
        Some(("Unknown", "Pulling", message)) => Some(message.to_string()),
        _ => None,
    }
}

/// Why waiting stopped without success.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timeout: service '{name}' not ready after {secs} seconds")]
    Timeout { name: String, secs: u64 },
    #[error("{0}")]
    Failed(String),
    #[error("service '{0}' was deleted while waiting for it")]
    Deleted(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Watches the Service until [`wait_state`] says done or failed, or the timeout passes.
/// Returns the Service as last seen.
pub async fn wait_for_service(
    client: &Client,
    namespace: &str,
    name: &str,
    expected: &Expected,
    config: WaitConfig,
) -> Result<Value, WaitError> {
    let mut progress = Progress::new();
    let result = tokio::time::timeout(
        config.timeout,
        watch_loop(client, namespace, name, expected, config, &mut progress),
    )
    .await;
    progress.clear();
    match result {
        Ok(r) => r,
        Err(_) => Err(WaitError::Timeout {
            name: name.to_string(),
            secs: config.timeout.as_secs(),
        }),
    }
}

async fn watch_loop(
    client: &Client,
    namespace: &str,
    name: &str,
    expected: &Expected,
    config: WaitConfig,
    progress: &mut Progress,
) -> Result<Value, WaitError> {
    let field = format!("metadata.name={name}");
    let path = format!(
        "{}{}",
        collection_path(&kinds::SERVICES, Some(namespace)),
        query(&[("watch", "true"), ("fieldSelector", &field)])
    );
    // Set while Ready is False: when the error window closes, the failure is final.
    let mut failing: Option<(tokio::time::Instant, String)> = None;
    // The revision being waited for, to show a pull's progress (the Service does not carry it).
    let mut revision: Option<String> = None;
    loop {
        let mut stream = client.watch(&path).await?;
        loop {
            let next = match &failing {
                Some((deadline, msg)) => {
                    match tokio::time::timeout_at(*deadline, stream.next()).await {
                        Ok(ev) => ev?,
                        Err(_) => return Err(WaitError::Failed(msg.clone())),
                    }
                }
                None if progress.tty && revision.is_some() => {
                    match tokio::time::timeout(PULL_POLL, stream.next()).await {
                        Ok(ev) => ev?,
                        Err(_) => {
                            if let Some(rev) = &revision
                                && let Some(pulling) = pull_progress(client, namespace, rev).await
                            {
                                progress.show(&pulling);
                            }
                            continue;
                        }
                    }
                }
                None => stream.next().await?,
            };
            let Some(event) = next else { break };
            match event.type_.as_str() {
                "DELETED" => return Err(WaitError::Deleted(name.to_string())),
                "ERROR" => {
                    let msg = str_at(&event.object, "/message");
                    // An expired watch is restarted; anything else is reported.
                    if event.object.get("code").and_then(Value::as_u64) == Some(410) {
                        break;
                    }
                    return Err(WaitError::Failed(format!("watch failed: {msg}")));
                }
                _ => {}
            }
            match wait_state(&event.object, expected) {
                WaitState::Done => return Ok(event.object),
                WaitState::Waiting { stage } => {
                    failing = None;
                    progress.show(&stage);
                    revision = Some(str_at(&event.object, "/status/latestCreatedRevisionName"))
                        .filter(|r| !r.is_empty())
                        .map(str::to_string);
                }
                WaitState::Failed(msg) => {
                    progress.show(&msg);
                    // The window runs from the first failure, but the verdict is the latest
                    // reason: a transient one (a Route reconciled before its Configuration)
                    // must not stand for the real one that follows.
                    let deadline = failing.as_ref().map_or_else(
                        || tokio::time::Instant::now() + config.error_window,
                        |(d, _)| *d,
                    );
                    failing = Some((deadline, msg));
                }
            }
        }
        // The server closed the stream (timeout or restart): watch again after a breath.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(
        generation: i64,
        observed: Option<i64>,
        latest: &str,
        ready: Option<(&str, &str, &str)>,
    ) -> Value {
        let mut v = json!({
            "metadata": {"name": "hello", "generation": generation},
            "status": {}
        });
        if let Some(o) = observed {
            v["status"]["observedGeneration"] = json!(o);
        }
        if !latest.is_empty() {
            v["status"]["latestCreatedRevisionName"] = json!(latest);
        }
        if let Some((status, reason, message)) = ready {
            v["status"]["conditions"] = json!([
                {"type": "ConfigurationsReady", "status": "True"},
                {"type": "Ready", "status": status, "reason": reason, "message": message}
            ]);
        }
        v
    }

    const READY: Option<(&str, &str, &str)> = Some(("True", "", ""));

    fn create() -> Expected {
        Expected {
            generation: 1,
            new_revision: true,
            ..Expected::default()
        }
    }

    #[test]
    fn waits_for_the_controller() {
        let s = wait_state(&svc(1, None, "", None), &create());
        assert_eq!(
            s,
            WaitState::Waiting {
                stage: "waiting for the controller to reconcile generation 1".into()
            }
        );
        let unknown = Some((
            "Unknown",
            "",
            "Configuration \"hello\" is waiting for a Revision to become ready.",
        ));
        let s = wait_state(&svc(1, Some(1), "", unknown), &create());
        assert_eq!(
            s,
            WaitState::Waiting {
                stage: "Configuration \"hello\" is waiting for a Revision to become ready.".into()
            }
        );
        let s = wait_state(&svc(2, Some(1), "hello-00001", unknown), &create());
        assert_eq!(
            s,
            WaitState::Waiting {
                stage: "waiting for the controller to reconcile generation 2".into()
            }
        );
        let s = wait_state(&svc(1, Some(1), "", None), &create());
        assert_eq!(
            s,
            WaitState::Waiting {
                stage: "waiting for the first revision to be created".into()
            }
        );
    }

    #[test]
    fn done_only_when_ready() {
        let unknown = Some(("Unknown", "RevisionMissing", ""));
        assert!(matches!(
            wait_state(&svc(1, Some(1), "hello-00001", unknown), &create()),
            WaitState::Waiting { .. }
        ));
        assert_eq!(
            wait_state(&svc(1, Some(1), "hello-00001", None), &create()),
            WaitState::Waiting {
                stage: "waiting for revision hello-00001 to become ready".into()
            }
        );
        assert_eq!(
            wait_state(&svc(1, Some(1), "hello-00001", READY), &create()),
            WaitState::Done
        );
    }

    #[test]
    fn ready_false_fails_with_reason_and_message() {
        let failed = Some((
            "False",
            "RevisionFailed",
            "Revision \"hello-00001\" failed with message: exec: not found.",
        ));
        assert_eq!(
            wait_state(&svc(1, Some(1), "hello-00001", failed), &create()),
            WaitState::Failed(
                "RevisionFailed: Revision \"hello-00001\" failed with message: exec: not found."
                    .into()
            )
        );
        // The Configuration's failure is the cause, whatever the Route says.
        let mut both = svc(1, Some(1), "hello-00001", failed);
        both["status"]["conditions"] = json!([
            {"type": "ConfigurationsReady", "status": "False", "reason": "RevisionFailed", "message": "image missing"},
            {"type": "RoutesReady", "status": "False", "reason": "RevisionMissing", "message": "no ready revision"},
            {"type": "Ready", "status": "False", "reason": "RevisionMissing", "message": "no ready revision"}
        ]);
        assert_eq!(
            wait_state(&both, &create()),
            WaitState::Failed("RevisionFailed: image missing".into())
        );
        // A False condition of an older generation is not this change's failure.
        assert!(matches!(
            wait_state(&svc(2, Some(1), "hello-00001", failed), &create()),
            WaitState::Waiting { .. }
        ));
    }

    #[test]
    fn update_waits_for_the_new_revision() {
        let update = Expected {
            generation: 2,
            new_revision: true,
            previous_revision: "hello-00001".into(),
            ..Expected::default()
        };
        assert!(matches!(
            wait_state(&svc(2, Some(2), "hello-00001", READY), &update),
            WaitState::Waiting { .. }
        ));
        assert_eq!(
            wait_state(&svc(2, Some(2), "hello-00002", READY), &update),
            WaitState::Done
        );
        // Someone else updated meanwhile: the status must catch up with the newest spec.
        assert!(matches!(
            wait_state(&svc(3, Some(2), "hello-00002", None), &update),
            WaitState::Waiting { .. }
        ));

        let byo = Expected {
            revision_name: "hello-v2".into(),
            ..update.clone()
        };
        assert!(matches!(
            wait_state(&svc(2, Some(2), "hello-00002", READY), &byo),
            WaitState::Waiting { .. }
        ));
        assert_eq!(
            wait_state(&svc(2, Some(2), "hello-v2", READY), &byo),
            WaitState::Done
        );

        let traffic_only = Expected {
            new_revision: false,
            ..update
        };
        assert_eq!(
            wait_state(&svc(2, Some(2), "hello-00001", READY), &traffic_only),
            WaitState::Done
        );
    }

    #[test]
    fn reported_revision_prefers_ready() {
        let mut s = svc(2, Some(2), "hello-00002", Some(("True", "", "")));
        s["status"]["latestReadyRevisionName"] = json!("hello-00002");
        assert_eq!(reported_revision(&s), "hello-00002");
        let mut s = svc(2, Some(2), "hello-00002", Some(("Unknown", "", "")));
        s["status"]["latestReadyRevisionName"] = json!("hello-00001");
        assert_eq!(reported_revision(&s), "hello-00002");
    }
}
