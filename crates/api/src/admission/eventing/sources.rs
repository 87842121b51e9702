//! Defaulting and validation of `sources.knative.dev/v1` (knative/eventing
//! `pkg/apis/sources/v1/{ping,apiserver,container,sinkbinding}_{defaults,validation}.go`).

use serde_json::Value;

use super::duck::{self, Parent};
use super::{cron, finish, metadata, same_namespace};
use crate::admission::{AdmissionContext, AdmissionError, decode};
use crate::eventing::sources::{MODE_REFERENCE, MODE_RESOURCE};
use crate::eventing::{ApiServerSource, ContainerSource, PingSource, SinkBinding};
use crate::naming;
use crate::validation::{FieldErrors, Reason};

/// PingSource's default schedule: every minute.
pub const DEFAULT_PING_SCHEDULE: &str = "* * * * *";
/// ApiServerSource's default service account.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// `sink` and `ceOverrides`, relative to the spec (`SourceSpec.Validate`).
fn source_spec(
    sink: &crate::eventing::Destination,
    ce: &Option<crate::eventing::CloudEventOverrides>,
    parent: Parent<'_>,
) -> FieldErrors {
    let mut errs = duck::destination(sink, parent).via_field("sink");
    if let Some(o) = ce {
        errs.also(duck::ce_overrides(o).via_field("ceOverrides"));
    }
    errs
}

/// Go's `base64.StdEncoding.DecodeString` (padding required; CR and LF ignored).
pub(super) fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut quad = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for (i, b) in s.bytes().enumerate() {
        if b == b'\r' || b == b'\n' {
            continue;
        }
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' if n >= 2 => {
                pad += 1;
                0
            }
            _ => return Err(format!("illegal base64 data at input byte {i}")),
        };
        if pad > 0 && b != b'=' {
            return Err(format!("illegal base64 data at input byte {i}"));
        }
        quad[n] = v;
        n += 1;
        if n == 4 {
            let word = (u32::from(quad[0]) << 18)
                | (u32::from(quad[1]) << 12)
                | (u32::from(quad[2]) << 6)
                | u32::from(quad[3]);
            let bytes = [(word >> 16) as u8, (word >> 8) as u8, word as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
            n = 0;
            if pad > 0 {
                // Only the last quantum may be padded.
                if let Some(j) = s[i + 1..].find(|c| c != '\r' && c != '\n') {
                    return Err(format!("illegal base64 data at input byte {}", i + 1 + j));
                }
                return Ok(out);
            }
        }
    }
    if n != 0 {
        return Err(format!("illegal base64 data at input byte {}", s.len()));
    }
    Ok(out)
}

/// With `contentType: application/json`, data must decode into a JSON object (Knative
/// unmarshals it into a `map[string]interface{}`).
fn json_object(data: &[u8]) -> Result<(), String> {
    serde_json::from_slice::<serde_json::Map<String, Value>>(data)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `ping_defaults.go`, `ping_validation.go`.
pub(crate) fn admit_ping_source(
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut p, unknown): (PingSource, _) = decode(new)?;
    let ns = p.metadata.namespace.clone();

    if p.spec.schedule.is_empty() {
        p.spec.schedule = DEFAULT_PING_SCHEDULE.to_string();
    }
    duck::default_destination(&mut p.spec.sink, &ns);

    let spec = &p.spec;
    let mut errs = metadata(&p.metadata);
    let mut s = FieldErrors::new();
    // Knative parses `CRON_TZ={timezone} {schedule}`; a zone with a space would then be
    // blamed on the schedule, so the zone is checked on its own first.
    let zone = match spec.timezone.as_str() {
        "" => Ok(()),
        tz => cron::timezone(tz),
    };
    let schedule = match zone {
        Ok(()) if !spec.timezone.is_empty() => {
            format!("CRON_TZ={} {}", spec.timezone, spec.schedule)
        }
        _ => spec.schedule.clone(),
    };
    if let Err(why) = zone {
        s.also(FieldErrors::invalid_value(why, "timezone", ""));
    }
    match cron::check(&schedule) {
        Ok(()) => {}
        Err(cron::CronError::Schedule(why)) => {
            s.also(FieldErrors::invalid_value(why, "schedule", ""));
        }
        Err(cron::CronError::Timezone(why)) => {
            let field = if spec.timezone.is_empty() {
                "schedule"
            } else {
                "timezone"
            };
            s.also(FieldErrors::invalid_value(why, field, ""));
        }
    }
    s.also(source_spec(
        &spec.sink,
        &spec.ce_overrides,
        same_namespace(&p.metadata),
    ));
    let max = cfg.ping_data_max_size;
    let too_big = |len: usize, field: &str| {
        if max > -1 && i64::try_from(len).unwrap_or(i64::MAX) > max {
            FieldErrors::invalid_value(
                format!("the {field} length of {len} bytes exceeds limit set at {max}."),
                field,
                "",
            )
        } else {
            FieldErrors::new()
        }
    };
    let is_json = spec.content_type == "application/json";
    if !spec.data.is_empty() && !spec.data_base64.is_empty() {
        s.also(FieldErrors::multiple_one_of(&["data", "dataBase64"]));
    } else if !spec.data_base64.is_empty() {
        s.also(too_big(spec.data_base64.len(), "dataBase64"));
        match base64_decode(&spec.data_base64) {
            Err(why) => {
                s.also(FieldErrors::invalid_value(why, "dataBase64", ""));
            }
            Ok(bytes) if is_json => {
                if let Err(why) = json_object(&bytes) {
                    s.also(FieldErrors::invalid_value(why, "dataBase64", ""));
                }
            }
            Ok(_) => {}
        }
    } else if !spec.data.is_empty() {
        s.also(too_big(spec.data.len(), "data"));
        if is_json && let Err(why) = json_object(spec.data.as_bytes()) {
            s.also(FieldErrors::invalid_value(why, "data", ""));
        }
    }
    errs.also(s.via_field("spec"));
    finish(&p, errs, unknown)
}

/// k8s `schema.ParseGroupVersion`: `v1` or `group/version`. An empty apiVersion parses in Go;
/// wisp requires one (a resource to watch without a version names nothing).
fn group_version(api_version: &str) -> FieldErrors {
    if api_version.is_empty() {
        return FieldErrors::missing(&["apiVersion"]);
    }
    let parts: Vec<&str> = api_version.split('/').collect();
    let ok = match parts.as_slice() {
        [v] => !v.is_empty(),
        [g, v] => !g.is_empty() && !v.is_empty(),
        _ => false,
    };
    if ok {
        FieldErrors::new()
    } else {
        FieldErrors::invalid_value(
            api_version,
            "apiVersion",
            &format!("unexpected GroupVersion string: {api_version}"),
        )
    }
}

/// `apiserver_defaults.go`, `apiserver_validation.go`.
pub(crate) fn admit_api_server_source(
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config.eventing;
    let (mut a, unknown): (ApiServerSource, _) = decode(new)?;
    let ns = a.metadata.namespace.clone();

    if a.spec.mode.is_empty() {
        a.spec.mode = MODE_REFERENCE.to_string();
    }
    if a.spec.service_account_name.is_empty() {
        a.spec.service_account_name = DEFAULT_SERVICE_ACCOUNT.to_string();
    }
    duck::default_destination(&mut a.spec.sink, &ns);

    let spec = &a.spec;
    let mut errs = metadata(&a.metadata);
    let mut s = FieldErrors::new();
    if spec.mode != MODE_REFERENCE && spec.mode != MODE_RESOURCE {
        s.also(FieldErrors::invalid_value(
            &spec.mode,
            "mode",
            "expected Reference or Resource",
        ));
    }
    s.also(source_spec(
        &spec.sink,
        &spec.ce_overrides,
        same_namespace(&a.metadata),
    ));
    if spec.resources.is_empty() {
        s.also(FieldErrors::missing(&["resources"]));
    }
    for (i, r) in spec.resources.iter().enumerate() {
        let mut e = group_version(&r.api_version);
        if r.kind.trim().is_empty() {
            e.also(FieldErrors::missing(&["kind"]));
        }
        if let Some(sel) = &r.selector {
            e.also(duck::label_selector(sel).via_field("selector"));
        }
        s.also(e.via_field_index("resources", i));
    }
    if let Some(o) = &spec.owner {
        let mut e = group_version(&o.api_version);
        if o.kind.trim().is_empty() {
            e.also(FieldErrors::missing(&["kind"]));
        }
        s.also(e.via_field("owner"));
    }
    if let Some(sel) = &spec.namespace_selector {
        s.also(duck::label_selector(sel).via_field("namespaceSelector"));
    }
    if !spec.service_account_name.is_empty() {
        let msgs = naming::is_dns1123_subdomain(&spec.service_account_name);
        if !msgs.is_empty() {
            s.also(FieldErrors::invalid_value(
                &spec.service_account_name,
                "serviceAccountName",
                &msgs.join(", "),
            ));
        }
    }
    if cfg.new_apiserver_filters {
        s.also(duck::filters(&spec.filters, cfg).via_field("filters"));
    } else if !spec.filters.is_empty() {
        s.also(FieldErrors::generic(
            Reason::FieldValueForbidden,
            "Filters is not empty but the NewAPIServerFilters feature is disabled.",
            &["filters"],
        ));
    }
    errs.also(s.via_field("spec"));
    finish(&a, errs, unknown)
}

/// `container_defaults.go`, `container_validation.go`. As for revisions, wisp accepts a
/// container with `command` and no `image` (a host process).
pub(crate) fn admit_container_source(
    new: Value,
    _ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let (mut c, unknown): (ContainerSource, _) = decode(new)?;
    let ns = c.metadata.namespace.clone();

    for (i, container) in c.spec.template.spec.containers.iter_mut().enumerate() {
        if container.name.is_empty() {
            container.name = format!("{}-{i}", c.metadata.name);
        }
    }
    duck::default_destination(&mut c.spec.sink, &ns);

    let spec = &c.spec;
    let mut errs = metadata(&c.metadata);
    let mut s = source_spec(&spec.sink, &spec.ce_overrides, same_namespace(&c.metadata));
    let containers = &spec.template.spec.containers;
    if containers.is_empty() {
        s.also(FieldErrors::missing(&["template.spec.containers"]));
    }
    for (i, container) in containers.iter().enumerate() {
        let mut e = FieldErrors::new();
        if container.name.is_empty() {
            e.also(FieldErrors::missing(&["name"]));
        }
        if container.image.is_empty() && container.command.is_empty() {
            e.also(FieldErrors::missing(&["image"]));
        }
        s.also(e.via_field_index("template.spec.containers", i));
    }
    errs.also(s.via_field("spec"));
    finish(&c, errs, unknown)
}

/// `sinkbinding_defaults.go`, `sinkbinding_validation.go` and knative.dev/pkg
/// `tracker.Reference.Validate` for the subject.
pub(crate) fn admit_sink_binding(
    new: Value,
    _ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let (mut b, unknown): (SinkBinding, _) = decode(new)?;
    let ns = b.metadata.namespace.clone();

    if b.spec.subject.namespace.is_empty() {
        b.spec.subject.namespace = ns.clone();
    }
    duck::default_destination(&mut b.spec.sink, &ns);

    let spec = &b.spec;
    let mut errs = metadata(&b.metadata);
    let mut s = source_spec(&spec.sink, &spec.ce_overrides, same_namespace(&b.metadata));
    let subj = &spec.subject;
    let mut e = FieldErrors::new();
    if subj.api_version.is_empty() {
        e.also(FieldErrors::missing(&["apiVersion"]));
    } else {
        let msgs = naming::is_qualified_name(&subj.api_version);
        if !msgs.is_empty() {
            e.also(FieldErrors::invalid_value(
                msgs.join(", "),
                "apiVersion",
                "",
            ));
        }
    }
    if subj.kind.is_empty() {
        e.also(FieldErrors::missing(&["kind"]));
    } else if !is_c_identifier(&subj.kind) {
        e.also(FieldErrors::invalid_value(
            "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',  or 'MyName', regex used for validation is '[A-Za-z_][A-Za-z0-9_]*')",
            "kind",
            "",
        ));
    }
    if subj.namespace.is_empty() {
        e.also(FieldErrors::missing(&["namespace"]));
    } else {
        let msgs = naming::is_dns1123_label(&subj.namespace);
        if !msgs.is_empty() {
            e.also(FieldErrors::invalid_value(msgs.join(", "), "namespace", ""));
        }
    }
    match (&subj.selector, subj.name.is_empty()) {
        (Some(_), false) => {
            e.also(FieldErrors::multiple_one_of(&["selector", "name"]));
        }
        (Some(sel), true) => {
            e.also(duck::label_selector(sel).via_field("selector"));
        }
        (None, false) => {
            let msgs = naming::is_dns1123_label(&subj.name);
            if !msgs.is_empty() {
                e.also(FieldErrors::invalid_value(msgs.join(", "), "name", ""));
            }
        }
        (None, true) => {
            e.also(FieldErrors::missing_one_of(&["selector", "name"]));
        }
    }
    s.also(e.via_field("subject"));
    errs.also(s.via_field("spec"));
    if !subj.namespace.is_empty() && subj.namespace != ns {
        errs.also(FieldErrors::invalid_value(
            &subj.namespace,
            "spec.subject.namespace",
            "the subject must be in the binding's namespace",
        ));
    }
    finish(&b, errs, unknown)
}

/// k8s `IsCIdentifier`.
fn is_c_identifier(v: &str) -> bool {
    let mut chars = v.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
