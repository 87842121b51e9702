//! kn's human-readable `describe` output for services, revisions and routes, as pure
//! functions of the objects and `now`.
//!
//! The layout is kn's `PrefixWriter` over a Go tabwriter (min width 0, padding 2): an
//! attribute is `Label:\tvalue`, a nested attribute is indented by two spaces, a row opened
//! with `write_cols` continues in a tab-aligned column; the buffer is flushed where kn
//! flushes, so column widths match kn's.

use std::collections::BTreeMap;
use std::time::SystemTime;

use wisp_api::core::Container;
use wisp_api::meta::{Condition, ConditionStatus, ObjectMeta, Severity};
use wisp_api::serving::{Revision, RevisionSpec, Route, Service, TrafficTarget, keys};

use crate::age;
use crate::table::tabwriter;

/// kn truncates compact values at this length.
const TRUNCATE_AT: usize = 100;

/// A tabwriter buffer with kn's flush points.
#[derive(Default)]
pub(crate) struct Out {
    pending: String,
    done: String,
}

impl Out {
    pub(crate) fn write(&mut self, prefix: &str, text: &str) {
        self.pending.push_str(prefix);
        self.pending.push_str(text);
    }
    /// `WriteColsLn`: the columns tab-separated; returns the prefix for the row's sub-items.
    pub(crate) fn cols_ln(&mut self, prefix: &str, cols: &[&str]) -> String {
        self.write(prefix, &cols.join("\t"));
        self.pending.push('\n');
        format!("{prefix}\t")
    }
    /// `WriteAttribute`: `Label:\tvalue`; returns the prefix for sub-attributes.
    pub(crate) fn attribute(&mut self, prefix: &str, label: &str, value: &str) -> String {
        self.cols_ln(prefix, &[&format!("{label}:"), value]);
        format!("{prefix}  ")
    }
    pub(crate) fn line(&mut self) {
        self.pending.push('\n');
    }
    pub(crate) fn flush(&mut self) {
        self.done.push_str(&tabwriter(&self.pending, 0, 2));
        self.pending.clear();
    }
    pub(crate) fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

/// Keys of these domains are hidden from compact label/annotation lines.
fn boring(key: &str) -> bool {
    key.split_once('/').is_some_and(|(domain, _)| {
        matches!(
            domain,
            "serving.knative.dev" | "client.knative.dev" | "kubectl.kubernetes.io"
        )
    })
}

/// kn's `WriteMapDesc`.
pub(crate) fn write_map(
    out: &mut Out,
    prefix: &str,
    map: &BTreeMap<String, String>,
    label: &str,
    details: bool,
) {
    let keys: Vec<&String> = map.keys().filter(|k| details || !boring(k)).collect();
    if keys.is_empty() {
        return;
    }
    if details {
        for (i, k) in keys.iter().enumerate() {
            let l = if i == 0 {
                format!("{label}:")
            } else {
                String::new()
            };
            out.cols_ln(prefix, &[&l, &format!("{k}={}", map[*k])]);
        }
        return;
    }
    let width = TRUNCATE_AT.saturating_sub(label.len() + 2);
    let mut joined = String::new();
    for k in keys {
        joined.push_str(&format!("{k}={}, ", map[k]));
        if joined.len() > width {
            break;
        }
    }
    let joined = joined.trim_end_matches([',', ' ']).to_string();
    let value = if joined.chars().count() <= width {
        joined
    } else {
        let cut: String = joined.chars().take(width.saturating_sub(4)).collect();
        format!("{cut} ...")
    };
    out.cols_ln(prefix, &[&format!("{label}:"), &value]);
}

/// kn's `WriteSliceDesc`.
fn write_slice(out: &mut Out, prefix: &str, items: &[String], label: &str, details: bool) {
    if items.is_empty() {
        return;
    }
    if details {
        for (i, v) in items.iter().enumerate() {
            let l = if i == 0 {
                format!("{label}:")
            } else {
                String::new()
            };
            out.cols_ln(prefix, &[&l, v]);
        }
        return;
    }
    let mut joined = items.join(", ");
    if joined.chars().count() > TRUNCATE_AT {
        joined = format!(
            "{} ...",
            joined.chars().take(TRUNCATE_AT - 4).collect::<String>()
        );
    }
    out.attribute(prefix, label, &joined);
}

/// kn's `WriteMetadata`.
pub(crate) fn write_metadata(out: &mut Out, m: &ObjectMeta, details: bool, now: SystemTime) {
    out.attribute("", "Name", &m.name);
    out.attribute("", "Namespace", &m.namespace);
    write_map(out, "", &m.labels, "Labels", details);
    write_map(out, "", &m.annotations, "Annotations", details);
    out.attribute(
        "",
        "Age",
        &age::short_age(m.creation_timestamp.as_deref(), now),
    );
}

/// kn's condition marker: `++` True, `!!` False (error), ` W`/` I` warnings, `??` Unknown.
pub fn condition_marker(c: &Condition) -> &'static str {
    match c.status {
        ConditionStatus::True => "++",
        ConditionStatus::False => match c.severity {
            Severity::Error => "!!",
            Severity::Warning => " W",
            Severity::Info => " I",
        },
        ConditionStatus::Unknown => "??",
    }
}

/// Ready first, then errors, warnings, infos, each by type (kn's `sortConditions`).
fn sorted_conditions(conditions: &[Condition]) -> Vec<&Condition> {
    let rank = |c: &Condition| match c.severity {
        Severity::Error => 0,
        Severity::Warning => 1,
        Severity::Info => 2,
    };
    let mut v: Vec<&Condition> = conditions.iter().collect();
    v.sort_by(|a, b| {
        let (ar, br) = (a.type_ == "Ready", b.type_ == "Ready");
        br.cmp(&ar)
            .then(rank(a).cmp(&rank(b)))
            .then(a.type_.cmp(&b.type_))
    });
    v
}

/// kn's `WriteConditions`.
pub(crate) fn write_conditions(
    out: &mut Out,
    conditions: &[Condition],
    details: bool,
    now: SystemTime,
) {
    let prefix = out.attribute("", "Conditions", "");
    let conditions = sorted_conditions(conditions);
    let w = conditions
        .iter()
        .map(|c| c.type_.chars().count())
        .max()
        .unwrap_or(0);
    out.write(
        &prefix,
        &format!("{:<2} {:<w$} {:>6} {}\n", "OK", "TYPE", "AGE", "REASON"),
    );
    for c in conditions {
        let mut reason = c.reason.clone();
        if details && !reason.is_empty() {
            reason = format!("{reason} ({})", c.message);
        }
        let age = age::short_age(c.last_transition_time.as_deref(), now);
        out.write(
            &prefix,
            &format!(
                "{:<2} {:<w$} {:>6} {}\n",
                condition_marker(c),
                c.type_,
                age,
                reason
            ),
        );
    }
}

/// The serving container (kn's `ContainerOfRevisionSpec`).
fn container(spec: &RevisionSpec) -> Option<&Container> {
    spec.serving_container()
}

/// `Image:` or, for a host process, `Command:`.
fn write_image(out: &mut Out, prefix: &str, rev: &Revision) {
    let Some(c) = container(&rev.spec) else {
        out.attribute(prefix, "Image", "Unknown");
        return;
    };
    if c.image.is_empty() && !c.command.is_empty() {
        let words: Vec<&str> = c
            .command
            .iter()
            .chain(&c.args)
            .map(String::as_str)
            .collect();
        out.attribute(prefix, "Command", &words.join(" "));
        return;
    }
    let mut image = c.image.clone();
    let digest = rev
        .status
        .container_statuses
        .first()
        .map(|s| s.image_digest.as_str())
        .unwrap_or("");
    if !digest.is_empty() {
        let short = digest
            .split_once("sha256:")
            .map(|(_, h)| h.chars().take(6).collect::<String>())
            .unwrap_or_else(|| digest.to_string());
        image = format!("{image} (at {short})");
    }
    out.attribute(prefix, "Image", &image);
}

fn write_replicas(out: &mut Out, prefix: &str, rev: &Revision) {
    if let (Some(a), Some(d)) = (rev.status.actual_replicas, rev.status.desired_replicas) {
        out.attribute(prefix, "Replicas", &format!("{a}/{d}"));
    }
}

fn write_port(out: &mut Out, prefix: &str, rev: &Revision) {
    if let Some(p) = container(&rev.spec).and_then(|c| c.ports.first()) {
        out.attribute(prefix, "Port", &p.container_port.to_string());
    }
}

fn write_env(out: &mut Out, prefix: &str, rev: &Revision, details: bool) {
    let Some(c) = container(&rev.spec) else {
        return;
    };
    let env: Vec<String> = c
        .env
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e.name,
                if e.value_from.is_some() {
                    "[ref]"
                } else {
                    &e.value
                }
            )
        })
        .collect();
    write_slice(out, prefix, &env, "Env", details);
    let from: Vec<String> = c
        .env_from
        .iter()
        .flat_map(|s| {
            let cm = s.config_map_ref.as_ref().map(|r| format!("cm:{}", r.name));
            let secret = s.secret_ref.as_ref().map(|r| format!("secret:{}", r.name));
            cm.into_iter().chain(secret)
        })
        .collect();
    write_slice(out, prefix, &from, "EnvFrom", details);
}

fn annotation_int(m: &ObjectMeta, key: &str) -> Option<Result<i64, String>> {
    m.annotations
        .get(key)
        .map(|v| v.parse::<i64>().map_err(|e| format!("{v:?}: {e}")))
}

fn write_scale(out: &mut Out, prefix: &str, rev: &Revision) {
    let min = annotation_int(&rev.metadata, keys::MIN_SCALE_ANNOTATION);
    let max = annotation_int(&rev.metadata, keys::MAX_SCALE_ANNOTATION);
    match (&min, &max) {
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            out.attribute(prefix, "Scale", &format!("Misformatted: {e}"));
        }
        (None, None) => {}
        _ => {
            let min = min.and_then(Result::ok).unwrap_or(0);
            let max = max
                .and_then(Result::ok)
                .map(|m| m.to_string())
                .unwrap_or_else(|| "∞".into());
            out.attribute(prefix, "Scale", &format!("{min} ... {max}"));
        }
    }
}

fn write_concurrency(out: &mut Out, prefix: &str, rev: &Revision) {
    let target = annotation_int(&rev.metadata, keys::TARGET_ANNOTATION).and_then(Result::ok);
    let limit = rev.spec.container_concurrency.filter(|l| *l != 0);
    let window = rev.metadata.annotations.get(keys::WINDOW_ANNOTATION);
    let utilization = annotation_int(
        &rev.metadata,
        keys::TARGET_UTILIZATION_PERCENTAGE_ANNOTATION,
    )
    .and_then(Result::ok);
    if target.is_none() && limit.is_none() && window.is_none() && utilization.is_none() {
        return;
    }
    let section = out.attribute(prefix, "Concurrency", "");
    if let Some(l) = limit {
        out.attribute(&section, "Limit", &l.to_string());
    }
    if let Some(t) = target {
        out.attribute(&section, "Target", &t.to_string());
    }
    if let Some(w) = window {
        out.attribute(&section, "Window", w);
    }
    if let Some(u) = utilization {
        out.attribute(&section, "TargetUtilization", &u.to_string());
    }
}

fn write_resources(out: &mut Out, prefix: &str, rev: &Revision) {
    let Some(c) = container(&rev.spec) else {
        return;
    };
    for (label, key) in [("Memory", "memory"), ("CPU", "cpu")] {
        let request = c.resources.requests.get(key).map(|q| q.0.as_str());
        let limit = c.resources.limits.get(key).map(|q| q.0.as_str());
        let value = match (request, limit) {
            (Some(r), Some(l)) => format!("{r} ... {l}"),
            (Some(v), None) | (None, Some(v)) => v.to_string(),
            (None, None) => continue,
        };
        out.attribute(prefix, label, &value);
    }
}

fn ready_status(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == "Ready")
}

/// A revision as a line of `service describe`: its traffic, tag and status.
#[derive(Debug, Clone)]
pub struct RevisionDesc {
    pub revision: Revision,
    pub percent: i64,
    pub tag: String,
    pub latest_traffic: Option<bool>,
    pub generation: i64,
    pub latest_created: bool,
    pub latest_ready: bool,
}

/// The revisions `service describe` shows: every traffic target's revision, then the latest
/// created and ready ones, then (with `all`) every other revision of the service; newest
/// first. `revisions` holds whatever the caller could fetch.
pub fn revision_descs(service: &Service, revisions: &[Revision], all: bool) -> Vec<RevisionDesc> {
    let find = |name: &str| revisions.iter().find(|r| r.metadata.name == name);
    let new_desc = |rev: &Revision, target: Option<&TrafficTarget>| RevisionDesc {
        revision: rev.clone(),
        percent: target.and_then(|t| t.percent).unwrap_or(0),
        tag: target.map(|t| t.tag.clone()).unwrap_or_default(),
        latest_traffic: target.and_then(|t| t.latest_revision),
        generation: rev
            .metadata
            .labels
            .get(keys::CONFIGURATION_GENERATION_LABEL)
            .and_then(|g| g.parse().ok())
            .unwrap_or(0),
        latest_created: rev.metadata.name == service.status.latest_created_revision_name,
        latest_ready: rev.metadata.name == service.status.latest_ready_revision_name,
    };
    let mut seen: Vec<String> = Vec::new();
    let mut descs = Vec::new();
    for target in &service.status.traffic {
        if let Some(rev) = find(&target.revision_name) {
            seen.push(rev.metadata.name.clone());
            descs.push(new_desc(rev, Some(target)));
        }
    }
    let latest = [
        &service.status.latest_created_revision_name,
        &service.status.latest_ready_revision_name,
    ];
    for name in latest {
        if name.is_empty() || seen.contains(name) {
            continue;
        }
        if let Some(rev) = find(name) {
            seen.push(name.clone());
            descs.push(new_desc(rev, None));
        }
    }
    if all {
        for rev in revisions {
            if !seen.contains(&rev.metadata.name) {
                seen.push(rev.metadata.name.clone());
                descs.push(new_desc(rev, None));
            }
        }
    }
    descs.sort_by_key(|d| std::cmp::Reverse(d.generation));
    descs
}

/// kn's traffic bullet: `100%`, `  +`, `  !`, `  ?`.
fn bullet(percent: i64, status: ConditionStatus) -> String {
    let symbol = match status {
        ConditionStatus::True if percent > 0 => "%",
        ConditionStatus::True => "+",
        ConditionStatus::False => "!",
        ConditionStatus::Unknown => "?",
    };
    if percent == 0 {
        format!("   {symbol}")
    } else {
        format!("{percent:>3}{symbol}")
    }
}

fn revision_header(d: &RevisionDesc, now: SystemTime) -> String {
    let name = &d.revision.metadata.name;
    let mut header = if d.latest_traffic == Some(true) {
        format!("@latest ({name})")
    } else if d.latest_ready {
        format!("{name} (current @latest)")
    } else if d.latest_created {
        format!("{name} (latest created)")
    } else {
        name.clone()
    };
    if !d.tag.is_empty() {
        header = format!("{header} #{}", d.tag);
    }
    let age = age::short_age(d.revision.metadata.creation_timestamp.as_deref(), now);
    format!("{header} [{}] ({age})", d.generation)
}

/// `service describe`.
pub fn describe_service(
    service: &Service,
    revisions: &[RevisionDesc],
    details: bool,
    now: SystemTime,
) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &service.metadata, details, now);
    out.attribute("", "URL", service.status.url.as_deref().unwrap_or(""));
    if details
        && let Some(url) = service
            .status
            .address
            .as_ref()
            .and_then(|a| a.url.as_deref())
    {
        out.attribute("", "Cluster", url);
    }
    let spec = &service.spec.template.spec;
    if !spec.service_account_name.is_empty() {
        out.attribute("", "Service Account", &spec.service_account_name);
    }
    if let Some(secret) = spec.image_pull_secrets.first() {
        out.attribute("", "Image Pull Secret", &secret.name);
    }
    out.line();
    out.flush();

    let section = out.attribute("", "Revisions", "");
    out.flush();
    for d in revisions {
        let ready = ready_status(&d.revision.status.conditions);
        let status = ready.map(|c| c.status).unwrap_or(ConditionStatus::Unknown);
        let sub = out.cols_ln(
            &section,
            &[&bullet(d.percent, status), &revision_header(d, now)],
        );
        if let Some(c) = ready.filter(|c| c.status == ConditionStatus::False) {
            out.attribute(&sub, "Error", &c.reason);
        }
        write_image(&mut out, &sub, &d.revision);
        write_replicas(&mut out, &sub, &d.revision);
        if details {
            write_port(&mut out, &sub, &d.revision);
            write_env(&mut out, &sub, &d.revision, details);
            write_scale(&mut out, &sub, &d.revision);
            write_concurrency(&mut out, &sub, &d.revision);
            write_resources(&mut out, &sub, &d.revision);
        }
    }
    out.line();
    out.flush();
    write_conditions(&mut out, &service.status.conditions, details, now);
    out.finish()
}

/// `revision describe`; `service` (with `details`) adds its traffic and tags.
pub fn describe_revision(
    rev: &Revision,
    service: Option<&Service>,
    details: bool,
    now: SystemTime,
) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &rev.metadata, details, now);
    write_image(&mut out, "", rev);
    write_replicas(&mut out, "", rev);
    write_port(&mut out, "", rev);
    write_env(&mut out, "", rev, details);
    write_scale(&mut out, "", rev);
    write_concurrency(&mut out, "", rev);
    write_resources(&mut out, "", rev);
    if let Some(name) = rev.metadata.labels.get(keys::SERVICE_LABEL) {
        let section = out.attribute("", "Service", name);
        if details && let Some(svc) = service {
            let generation = rev
                .metadata
                .labels
                .get(keys::CONFIGURATION_GENERATION_LABEL)
                .cloned()
                .unwrap_or_default();
            out.attribute(&section, "Configuration Generation", &generation);
            let me = &rev.metadata.name;
            out.attribute(
                &section,
                "Latest Created",
                &(*me == svc.status.latest_created_revision_name).to_string(),
            );
            out.attribute(
                &section,
                "Latest Ready",
                &(*me == svc.status.latest_ready_revision_name).to_string(),
            );
            let (percent, tags) = traffic_and_tags(me, svc);
            if percent != 0 {
                out.attribute(&section, "Traffic", &format!("{percent}%"));
            }
            write_slice(&mut out, &section, &tags, "Tags", details);
        }
    }
    out.line();
    write_conditions(&mut out, &rev.status.conditions, details, now);
    out.finish()
}

/// A revision's share of a service's traffic and its tags (kn's `trafficAndTagsForRevision`).
pub fn traffic_and_tags(revision: &str, service: &Service) -> (i64, Vec<String>) {
    let mut percent = 0;
    let mut tags = Vec::new();
    for t in service
        .status
        .traffic
        .iter()
        .filter(|t| t.revision_name == revision)
    {
        percent += t.percent.unwrap_or(0);
        if !t.tag.is_empty() {
            tags.push(t.tag.clone());
        }
    }
    (percent, tags)
}

/// `route describe`.
pub fn describe_route(route: &Route, details: bool, now: SystemTime) -> String {
    let mut out = Out::default();
    write_metadata(&mut out, &route.metadata, details, now);
    out.attribute("", "URL", route.status.url.as_deref().unwrap_or(""));
    for owner in &route.metadata.owner_references {
        if owner.kind == "Service" {
            let name = if details {
                format!("{} ({})", owner.name, owner.api_version)
            } else {
                owner.name.clone()
            };
            out.attribute("", "Service", &name);
        }
    }
    out.line();
    let section = out.attribute("", "Traffic Targets", "");
    out.flush();
    for t in &route.status.traffic {
        let mut header = t.revision_name.clone();
        if t.latest_revision == Some(true) {
            header = format!("@latest ({header})");
        }
        if !t.tag.is_empty() {
            header = format!("{header} #{}", t.tag);
        }
        let sub = out.cols_ln(
            &section,
            &[&format!("{:>3}%", t.percent.unwrap_or(0)), &header],
        );
        if !t.tag.is_empty() {
            out.attribute(&sub, "URL", t.url.as_deref().unwrap_or(""));
        }
    }
    out.line();
    write_conditions(&mut out, &route.status.conditions, details, now);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn now() -> SystemTime {
        age::parse_timestamp("2026-01-02T03:10:05Z").unwrap_or(SystemTime::UNIX_EPOCH)
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "hello", "namespace": "default", "generation": 2,
                         "creationTimestamp": "2026-01-02T03:04:05Z",
                         "labels": {"team": "blue"},
                         "annotations": {"serving.knative.dev/creator": "me"}},
            "spec": {"template": {"spec": {"containers": [{"image": "busybox"}]}}},
            "status": {
                "observedGeneration": 2,
                "url": "http://hello.default.localhost",
                "latestCreatedRevisionName": "hello-00002",
                "latestReadyRevisionName": "hello-00002",
                "traffic": [
                    {"revisionName": "hello-00002", "latestRevision": true, "percent": 90},
                    {"revisionName": "hello-00001", "latestRevision": false, "percent": 10, "tag": "old",
                     "url": "http://old-hello.default.localhost"}
                ],
                "conditions": [
                    {"type": "ConfigurationsReady", "status": "True", "lastTransitionTime": "2026-01-02T03:05:05Z"},
                    {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing", "message": "m",
                     "lastTransitionTime": "2026-01-02T03:05:05Z"},
                    {"type": "RoutesReady", "status": "False", "reason": "RevisionMissing",
                     "lastTransitionTime": "2026-01-02T03:05:05Z"}
                ]
            }
        }))
        .unwrap_or_default()
    }

    fn revision(name: &str, generation: u32, ready: &str, spec: serde_json::Value) -> Revision {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2026-01-02T03:04:05Z",
                         "labels": {"serving.knative.dev/service": "hello",
                                    "serving.knative.dev/configurationGeneration": generation.to_string()},
                         "annotations": {"autoscaling.knative.dev/min-scale": "1"}},
            "spec": spec,
            "status": {"actualReplicas": 1, "desiredReplicas": 1,
                       "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap_or_default()
    }

    fn revisions() -> Vec<Revision> {
        vec![
            revision(
                "hello-00001",
                1,
                "True",
                json!({"containers": [{"image": "busybox"}]}),
            ),
            revision(
                "hello-00002",
                2,
                "Unknown",
                json!({"containerConcurrency": 5, "containers": [{"command": ["python3", "-m", "http.server"], "args": ["8080"],
                                        "env": [{"name": "A", "value": "1"}]}]}),
            ),
        ]
    }

    #[test]
    fn service_describe_like_kn() {
        let svc = service();
        let descs = revision_descs(&svc, &revisions(), false);
        let got = describe_service(&svc, &descs, false, now());
        let want = [
            "Name:       hello",
            "Namespace:  default",
            "Labels:     team=blue",
            "Age:        6m",
            "URL:        http://hello.default.localhost",
            "",
            "Revisions:",
            "   90?  @latest (hello-00002) [2] (6m)",
            "        Command:   python3 -m http.server 8080",
            "        Replicas:  1/1",
            "   10%  hello-00001 #old [1] (6m)",
            "        Image:     busybox",
            "        Replicas:  1/1",
            "",
            "Conditions:",
            "  OK TYPE                   AGE REASON",
            "  ?? Ready                   5m RevisionMissing",
            "  ++ ConfigurationsReady     5m",
            "  !! RoutesReady             5m RevisionMissing",
            "",
        ]
        .join("\n");
        assert_eq!(got, want);
    }

    #[test]
    fn service_describe_verbose() {
        let svc = service();
        let descs = revision_descs(&svc, &revisions(), true);
        let got = describe_service(&svc, &descs, true, now() + Duration::from_secs(0));
        assert!(
            got.contains("Annotations:  serving.knative.dev/creator=me"),
            "{got}"
        );
        assert!(got.contains("        Env:          A=1"), "{got}");
        assert!(got.contains("        Scale:        1 ... ∞"), "{got}");
        assert!(
            got.contains("        Concurrency:  \n          Limit:      5")
                || got.contains("Limit:"),
            "{got}"
        );
        assert!(
            got.contains("  ?? Ready                   5m RevisionMissing (m)"),
            "{got}"
        );
    }

    #[test]
    fn revision_describe_like_kn() {
        let revs = revisions();
        let got = describe_revision(&revs[0], Some(&service()), true, now());
        // Go's tabwriter aligns the nested "Service" attributes with everything above them,
        // exactly as kn prints it.
        let want = [
            "Name:                        hello-00001",
            "Namespace:                   default",
            "Labels:                      serving.knative.dev/configurationGeneration=1",
            "                             serving.knative.dev/service=hello",
            "Annotations:                 autoscaling.knative.dev/min-scale=1",
            "Age:                         6m",
            "Image:                       busybox",
            "Replicas:                    1/1",
            "Scale:                       1 ... ∞",
            "Service:                     hello",
            "  Configuration Generation:  1",
            "  Latest Created:            false",
            "  Latest Ready:              false",
            "  Traffic:                   10%",
            "  Tags:                      old",
            "",
            "Conditions:",
            "  OK TYPE     AGE REASON",
            "  ++ Ready",
            "",
        ];
        let got_lines: Vec<&str> = got.split('\n').collect();
        assert_eq!(got_lines.len(), want.len(), "{got}");
        for (g, w) in got_lines.iter().zip(want) {
            assert_eq!(g.trim_end(), w.trim_end(), "{got}");
        }
    }

    #[test]
    fn route_describe_like_kn() {
        let route: Route = serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": "2026-01-02T03:04:05Z",
                         "ownerReferences": [{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                              "name": "hello", "uid": "u", "controller": true}]},
            "status": {"url": "http://hello.default.localhost",
                       "traffic": [{"revisionName": "hello-00002", "latestRevision": true, "percent": 100},
                                   {"revisionName": "hello-00001", "latestRevision": false, "percent": 0,
                                    "tag": "old", "url": "http://old-hello.default.localhost"}],
                       "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap_or_default();
        let got = describe_route(&route, false, now());
        let want = [
            "Name:       hello",
            "Namespace:  default",
            "Age:        6m",
            "URL:        http://hello.default.localhost",
            "Service:    hello",
            "",
            "Traffic Targets:",
            "  100%  @latest (hello-00002)",
            "    0%  hello-00001 #old",
            "        URL:  http://old-hello.default.localhost",
            "",
            "Conditions:",
            "  OK TYPE     AGE REASON",
            "  ++ Ready",
            "",
        ]
        .join("\n");
        assert_eq!(got, want);
    }

    #[test]
    fn markers_and_bullets() {
        let c = |status, severity| Condition {
            type_: "X".into(),
            status,
            severity,
            ..Condition::default()
        };
        assert_eq!(
            condition_marker(&c(ConditionStatus::True, Severity::Error)),
            "++"
        );
        assert_eq!(
            condition_marker(&c(ConditionStatus::False, Severity::Error)),
            "!!"
        );
        assert_eq!(
            condition_marker(&c(ConditionStatus::False, Severity::Warning)),
            " W"
        );
        assert_eq!(
            condition_marker(&c(ConditionStatus::Unknown, Severity::Error)),
            "??"
        );
        assert_eq!(bullet(100, ConditionStatus::True), "100%");
        assert_eq!(bullet(0, ConditionStatus::True), "   +");
        assert_eq!(bullet(5, ConditionStatus::False), "  5!");
    }
}
