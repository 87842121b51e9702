//! The admission webhook: what Knative's defaulting and validating webhooks do, as one pure
//! function the API server calls before every create and update.
//!
//! Why one function over JSON: the API server holds request bodies as JSON and must answer
//! with a Kubernetes `Status`; decoding, defaulting and validation must happen in one place so
//! every write path (kubectl, `wisp apply`, the controllers) sees the same rules. Steps:
//! 1. refuse a body of the wrong `apiVersion`/`kind` (400), with a v1 hint for pre-v1 shapes
//!    (see [`legacy_hint`]; wisp refuses rather than converts, see `legacy.rs`);
//! 2. decode strictly with field paths (an unknown or mistyped field is a 422 naming its path,
//!    as `kubectl --validate=strict` would get from Kubernetes); `null` values count as absent,
//!    as in Go;
//! 3. apply Knative's defaults; 4. run Knative's validation and collect every error.
//!
//! Eventing kinds (Broker, Trigger, channels, flows, sources) are admitted by `eventing/`,
//! which follows knative/eventing's webhook; its module docs list where wisp is stricter.
//!
//! wisp's deviations, each deliberate: a container with `command` and no `image` is valid (it
//! runs as a host process); on update, a body that merely lacks the
//! `serving.knative.dev/creator`/`lastModifier` annotations keeps the stored ones (Knative
//! refuses a plain `kubectl replace` there); a BYO-named template that is unchanged *after
//! defaulting* is accepted (Knative compares the undefaulted template). Revisions may be
//! created directly, as Knative's webhook allows; their spec is immutable. Knative's warnings
//! (insecure security-context defaults) are not reported.

mod annotations;
pub mod config;
mod defaults;
mod eventing;
mod legacy;
mod podspec;
mod rules;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use config::{CesqlCheck, Config};
pub use eventing::{DEFAULT_PING_SCHEDULE, DEFAULT_SERVICE_ACCOUNT};
pub use legacy::legacy_hint;

use crate::core::{ConfigMap, Event, Namespace, NamespaceStatus, Secret};
use crate::eventing::{broker, flows, messaging, sources};
use crate::kinds::ResourceInfo;
use crate::meta::ObjectMeta;
use crate::naming;
use crate::serving::{self, Configuration, Revision, RevisionTemplateSpec, Route, Service, keys};
use crate::validation::{FieldError, FieldErrors, Reason};

/// What the request does to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Update,
}

/// Who is asking, and the cluster configuration the rules read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionContext {
    /// Stamped into `serving.knative.dev/creator` / `lastModifier`; empty = stamp nothing.
    pub user: String,
    /// Knative's `config-defaults`, `config-features`, `config-autoscaler` values.
    pub config: Config,
}

impl AdmissionContext {
    /// A context for `user` with Knative's default configuration.
    pub fn new(user: impl Into<String>) -> Self {
        AdmissionContext {
            user: user.into(),
            config: Config::default(),
        }
    }
}

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// HTTP 422 `Invalid`, with one status cause per field error.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// HTTP 400 `BadRequest`: not a document of this resource at all.
    #[error("{0}")]
    BadRequest(String),
}

impl AdmissionError {
    /// The HTTP status code of the Kubernetes `Status` to answer with.
    pub fn code(&self) -> u16 {
        match self {
            AdmissionError::Invalid(_) => 422,
            AdmissionError::BadRequest(_) => 400,
        }
    }

    /// The `reason` of the Kubernetes `Status` (`Invalid` or `BadRequest`).
    pub fn reason(&self) -> &'static str {
        match self {
            AdmissionError::Invalid(_) => "Invalid",
            AdmissionError::BadRequest(_) => "BadRequest",
        }
    }
}

impl From<FieldErrors> for AdmissionError {
    fn from(e: FieldErrors) -> Self {
        AdmissionError::Invalid(e)
    }
}

/// Defaults and validates `new` for a create or an update (`old` = the stored object) of the
/// resource `info`, returning the object to store.
pub fn admit(
    info: &ResourceInfo,
    op: Operation,
    old: Option<&Value>,
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    if !new.is_object() {
        return Err(AdmissionError::BadRequest(
            "the request body is not a JSON object".to_string(),
        ));
    }
    check_type(info, &new)?;
    let old = match (op, old) {
        (Operation::Update, Some(o)) => Some(o),
        _ => None,
    };
    let new = strip_nulls(new);
    let in_create = op == Operation::Create;
    match (info.group, info.kind) {
        (serving::GROUP, "Service") => admit_service(old, new, in_create, ctx),
        (serving::GROUP, "Configuration") => admit_configuration(old, new, in_create, ctx),
        (serving::GROUP, "Route") => admit_route(old, new, ctx),
        (serving::GROUP, "Revision") => admit_revision(old, new, in_create, ctx),
        (broker::GROUP, "Broker") => eventing::admit_broker(old, new, ctx),
        (broker::GROUP, "Trigger") => eventing::admit_trigger(old, new, ctx),
        (messaging::GROUP, "Channel") => eventing::admit_channel(old, new, ctx),
        (messaging::GROUP, "InMemoryChannel") => eventing::admit_in_memory_channel(new, ctx),
        (messaging::GROUP, "Subscription") => eventing::admit_subscription(old, new, ctx),
        (flows::GROUP, "Sequence") => eventing::admit_sequence(new, ctx),
        (flows::GROUP, "Parallel") => eventing::admit_parallel(new, ctx),
        (sources::GROUP, "PingSource") => eventing::admit_ping_source(new, ctx),
        (sources::GROUP, "ApiServerSource") => eventing::admit_api_server_source(new, ctx),
        (sources::GROUP, "ContainerSource") => eventing::admit_container_source(new, ctx),
        (sources::GROUP, "SinkBinding") => eventing::admit_sink_binding(new, ctx),
        ("", "Namespace") => admit_namespace(new, in_create),
        ("", "ConfigMap") => admit_config_map(old, new),
        ("", "Secret") => admit_secret(old, new),
        ("", "Event") => admit_event(new),
        _ => Err(AdmissionError::BadRequest(format!(
            "wisp does not admit {}",
            crate::kinds::storage_key(info)
        ))),
    }
}

fn check_type(info: &ResourceInfo, v: &Value) -> Result<(), AdmissionError> {
    let want_api = info.api_version();
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if api.is_empty() || kind.is_empty() {
        return Err(AdmissionError::BadRequest(format!(
            "Object 'apiVersion' and 'kind' must be set (expected apiVersion: {want_api}, kind: {})",
            info.kind
        )));
    }
    if api != want_api {
        let mut msg = format!(
            "the API version in the data ({api}) does not match the expected API version ({want_api})"
        );
        if let Some(h) = legacy_hint(v) {
            msg.push_str("; ");
            msg.push_str(&h);
        }
        return Err(AdmissionError::BadRequest(msg));
    }
    if kind != info.kind {
        return Err(AdmissionError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            info.kind
        )));
    }
    if info.group == serving::GROUP {
        let issues = legacy::issues(v);
        if !issues.is_empty() {
            return Err(AdmissionError::Invalid(FieldErrors(
                issues
                    .into_iter()
                    .map(|(p, m)| FieldError::new(Reason::FieldValueInvalid, m, p))
                    .collect(),
            )));
        }
    }
    Ok(())
}

/// Go decodes `null` as "absent"; so does wisp (serde would otherwise refuse `null` for a
/// string or a list).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Most unknown fields reported in one answer.
const MAX_UNKNOWN_FIELDS: usize = 50;

/// Removes the key `field` from the object at `path` inside `v`; false if it is not there.
fn remove_field(v: &mut Value, path: &serde_path_to_error::Path, field: &str) -> bool {
    use serde_path_to_error::Segment;
    let mut cur = v;
    let mut segs: Vec<&Segment> = path.iter().collect();
    if matches!(segs.last(), Some(Segment::Map { key }) if key == field) {
        segs.pop();
    }
    for seg in segs {
        let present = match seg {
            Segment::Seq { index } => cur.get(*index).is_some(),
            Segment::Map { key } => cur.get(key.as_str()).is_some(),
            Segment::Enum { .. } | Segment::Unknown => false,
        };
        // A missing step means the path already ends in the unknown field itself.
        cur = match seg {
            Segment::Seq { index } if present => &mut cur[*index],
            Segment::Map { key } if present => &mut cur[key.as_str()],
            _ => break,
        };
    }
    if let Some(obj) = cur.as_object_mut()
        && obj.remove(field).is_some()
    {
        return true;
    }
    false
}

/// Strict decoding. Every unknown field is reported with its path (each is removed and the
/// decoding retried, so one typo does not hide the next, nor the validation errors of the
/// rest, which the caller adds); a value of the wrong type stops decoding at once.
fn decode<T: DeserializeOwned>(mut v: Value) -> Result<(T, FieldErrors), AdmissionError> {
    let mut unknown = FieldErrors::new();
    loop {
        let e = match serde_path_to_error::deserialize::<_, T>(v.clone()) {
            Ok(t) => return Ok((t, unknown)),
            Err(e) => e,
        };
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let inner = e.inner().to_string();
        let Some(rest) = inner.strip_prefix("unknown field `") else {
            unknown.push(FieldError::new(Reason::FieldValueTypeInvalid, inner, path));
            return Err(AdmissionError::Invalid(unknown));
        };
        let field = rest.split('`').next().unwrap_or("").to_string();
        if !path.ends_with(field.as_str()) {
            path = if path.is_empty() {
                field.clone()
            } else {
                format!("{path}.{field}")
            };
        }
        unknown.push(FieldError::new(
            Reason::FieldValueInvalid,
            format!("unknown field {field:?}"),
            path,
        ));
        if unknown.len() >= MAX_UNKNOWN_FIELDS || !remove_field(&mut v, e.path(), &field) {
            return Err(AdmissionError::Invalid(unknown));
        }
    }
}

/// [`decode`] for kinds whose validation adds little: any unknown field is the answer.
fn decode_strict<T: DeserializeOwned>(v: Value) -> Result<T, AdmissionError> {
    let (t, unknown) = decode(v)?;
    unknown.into_result()?;
    Ok(t)
}

fn decode_old<T: DeserializeOwned>(v: Option<&Value>) -> Result<Option<T>, AdmissionError> {
    v.map(|o| {
        serde_json::from_value(strip_nulls(o.clone())).map_err(|e| {
            AdmissionError::BadRequest(format!("the stored object does not decode: {e}"))
        })
    })
    .transpose()
}

fn encode<T: Serialize>(v: &T) -> Result<Value, AdmissionError> {
    serde_json::to_value(v).map_err(|e| AdmissionError::BadRequest(format!("cannot encode: {e}")))
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Defaults a Service's or Configuration's template unless an update keeps its BYO name
/// (Knative leaves such templates alone so a change of defaults cannot alter them).
fn default_template(
    t: &mut RevisionTemplateSpec,
    old: Option<&RevisionTemplateSpec>,
    ctx: &AdmissionContext,
    in_create: bool,
) {
    let keeps_name =
        old.is_some_and(|o| !t.metadata.name.is_empty() && t.metadata.name == o.metadata.name);
    if !keeps_name {
        defaults::revision_spec(&mut t.spec, &ctx.config, in_create);
    }
}

/// `VerifyNameChange`: with an unchanged BYO name the template must not change. wisp compares
/// after defaulting, and on a match stores the old template verbatim. Relative to the
/// template.
fn verify_name_change(
    t: &mut RevisionTemplateSpec,
    old: &RevisionTemplateSpec,
    ctx: &AdmissionContext,
) -> FieldErrors {
    if t.metadata.name.is_empty() || t.metadata.name != old.metadata.name || t == old {
        return FieldErrors::new();
    }
    let mut defaulted = Vec::with_capacity(2);
    for in_create in [true, false] {
        let mut d = t.clone();
        defaults::revision_spec(&mut d.spec, &ctx.config, in_create);
        if d == *old {
            *t = old.clone();
            return FieldErrors::new();
        }
        defaulted.push(d);
    }
    // Show what the user changed, not the defaults the stored template carries.
    let shown = defaulted.first().unwrap_or(t);
    FieldErrors::generic_details(
        Reason::FieldValueInvalid,
        "Saw the following changes without a name change (-old +new)",
        &rules::short_diff(&to_json(old), &to_json(shown)),
        &["metadata.name"],
    )
}

fn admit_service(
    old: Option<&Value>,
    new: Value,
    in_create: bool,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config;
    let (mut svc, unknown_fields): (Service, _) = decode(new)?;
    let old: Option<Service> = decode_old(old)?;

    // Defaulting.
    if let Some(o) = &old {
        rules::keep_user_annotations(&mut svc.metadata, &o.metadata);
    }
    default_template(
        &mut svc.spec.template,
        old.as_ref().map(|o| &o.spec.template),
        ctx,
        in_create,
    );
    defaults::traffic(&mut svc.spec.traffic, true);

    // Validation.
    let mut errs = rules::object_metadata(&svc.metadata, false, cfg);
    errs.also(rollout_duration(&svc.metadata).via_field("annotations"));
    let mut errs = errs.via_field("metadata");
    errs.also(rules::template(&svc.spec.template, &svc.metadata, cfg).via_field("spec.template"));
    errs.also(rules::traffic(&svc.spec.traffic, true).via_field("spec.traffic"));
    if let Some(o) = &old {
        errs.also(
            verify_name_change(&mut svc.spec.template, &o.spec.template, ctx)
                .via_field("spec.template"),
        );
    }
    let spec_changed = old.as_ref().is_none_or(|o| o.spec != svc.spec);
    rules::set_user_info(&mut svc.metadata, &ctx.user, old.is_some(), spec_changed);
    if let Some(o) = &old {
        errs.also(
            rules::creator_and_modifier(
                spec_changed,
                &o.metadata.annotations,
                &svc.metadata.annotations,
            )
            .via_field("metadata.annotations"),
        );
    }
    errs.also(unknown_fields);
    errs.into_result()?;
    encode(&svc)
}

fn rollout_duration(meta: &ObjectMeta) -> FieldErrors {
    annotations::validate_duration_annotation(
        &meta.annotations,
        &[
            keys::ROLLOUT_DURATION_ANNOTATION,
            "serving.knative.dev/rolloutDuration",
        ],
        "rollout-duration",
    )
}

fn admit_configuration(
    old: Option<&Value>,
    new: Value,
    in_create: bool,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config;
    let (mut c, unknown_fields): (Configuration, _) = decode(new)?;
    let old: Option<Configuration> = decode_old(old)?;
    let user_owned = c.metadata.owner_references.is_empty();

    if let Some(o) = &old
        && user_owned
    {
        rules::keep_user_annotations(&mut c.metadata, &o.metadata);
    }
    default_template(
        &mut c.spec.template,
        old.as_ref().map(|o| &o.spec.template),
        ctx,
        in_create,
    );

    let mut errs = rules::object_metadata(&c.metadata, false, cfg);
    errs.also(
        rules::label_owner(
            &c.metadata.labels,
            keys::SERVICE_LABEL,
            "Service",
            &c.metadata.owner_references,
        )
        .via_field("labels"),
    );
    let mut errs = errs.via_field("metadata");
    errs.also(rules::template(&c.spec.template, &c.metadata, cfg).via_field("spec.template"));
    if let Some(o) = &old {
        errs.also(
            verify_name_change(&mut c.spec.template, &o.spec.template, ctx)
                .via_field("spec.template"),
        );
    }
    let spec_changed = old.as_ref().is_none_or(|o| o.spec != c.spec);
    if user_owned {
        rules::set_user_info(&mut c.metadata, &ctx.user, old.is_some(), spec_changed);
        if let Some(o) = &old {
            errs.also(
                rules::creator_and_modifier(
                    spec_changed,
                    &o.metadata.annotations,
                    &c.metadata.annotations,
                )
                .via_field("metadata.annotations"),
            );
        }
    }
    errs.also(unknown_fields);
    errs.into_result()?;
    encode(&c)
}

fn admit_route(
    old: Option<&Value>,
    new: Value,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config;
    let (mut r, unknown_fields): (Route, _) = decode(new)?;
    let old: Option<Route> = decode_old(old)?;
    let user_owned = r.metadata.owner_references.is_empty();

    if let Some(o) = &old
        && user_owned
    {
        rules::keep_user_annotations(&mut r.metadata, &o.metadata);
    }
    defaults::traffic(&mut r.spec.traffic, false);

    let mut errs = rules::object_metadata(&r.metadata, false, cfg);
    errs.also(
        rules::label_owner(
            &r.metadata.labels,
            keys::SERVICE_LABEL,
            "Service",
            &r.metadata.owner_references,
        )
        .via_field("labels"),
    );
    errs.also(rollout_duration(&r.metadata).via_field("annotations"));
    let mut errs = errs.via_field("metadata");
    errs.also(rules::traffic(&r.spec.traffic, false).via_field("spec.traffic"));
    let spec_changed = old.as_ref().is_none_or(|o| o.spec != r.spec);
    if user_owned {
        rules::set_user_info(&mut r.metadata, &ctx.user, old.is_some(), spec_changed);
        if let Some(o) = &old {
            errs.also(
                rules::creator_and_modifier(
                    spec_changed,
                    &o.metadata.annotations,
                    &r.metadata.annotations,
                )
                .via_field("metadata.annotations"),
            );
        }
    }
    errs.also(unknown_fields);
    errs.into_result()?;
    encode(&r)
}

fn admit_revision(
    old: Option<&Value>,
    new: Value,
    in_create: bool,
    ctx: &AdmissionContext,
) -> Result<Value, AdmissionError> {
    let cfg = &ctx.config;
    let (mut r, unknown_fields): (Revision, _) = decode(new)?;
    let old: Option<Revision> = decode_old(old)?;

    if let Some(o) = &old {
        // Knative: no defaulting on update, and the spec may not change at all.
        if o.spec != r.spec {
            return Err(FieldErrors::generic_details(
                Reason::FieldValueForbidden,
                "Immutable fields changed (-old +new)",
                &rules::short_diff(&to_json(&o.spec), &to_json(&r.spec)),
                &["spec"],
            )
            .into());
        }
    } else {
        defaults::revision_spec(&mut r.spec, cfg, in_create);
    }

    let mut errs = rules::object_metadata(&r.metadata, true, cfg);
    errs.also(
        rules::label_owner(
            &r.metadata.labels,
            keys::CONFIGURATION_LABEL,
            "Configuration",
            &r.metadata.owner_references,
        )
        .via_field("labels"),
    );
    let mut errs = errs.via_field("metadata");
    if old.is_none() {
        errs.also(podspec::validate_revision_spec(&r.spec, cfg).via_field("spec"));
    }
    errs.also(unknown_fields);
    errs.into_result()?;
    encode(&r)
}

// ----------------------------------------------------------------- core kinds

fn core_name(meta: &ObjectMeta, check: fn(&str, bool) -> Vec<String>) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if meta.name.is_empty() && meta.generate_name.is_empty() {
        errs.also(FieldErrors::generic(
            Reason::FieldValueRequired,
            "name or generateName is required",
            &["metadata.name"],
        ));
    }
    if !meta.generate_name.is_empty() {
        let msgs = check(&meta.generate_name, true);
        if !msgs.is_empty() {
            errs.also(FieldErrors::invalid_value(
                &meta.generate_name,
                "metadata.generateName",
                &msgs.join(", "),
            ));
        }
    }
    if !meta.name.is_empty() {
        let msgs = check(&meta.name, false);
        if !msgs.is_empty() {
            errs.also(FieldErrors::invalid_value(
                &meta.name,
                "metadata.name",
                &msgs.join(", "),
            ));
        }
    }
    errs
}

fn admit_namespace(new: Value, in_create: bool) -> Result<Value, AdmissionError> {
    let mut ns: Namespace = decode_strict(new)?;
    core_name(&ns.metadata, naming::name_is_dns1123_label).into_result()?;
    if in_create && ns.status.as_ref().is_none_or(|s| s.phase.is_empty()) {
        ns.status = Some(NamespaceStatus {
            phase: "Active".to_string(),
            ..ns.status.unwrap_or_default()
        });
    }
    encode(&ns)
}

/// k8s `IsConfigMapKey`.
fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    match key {
        "." => errs.push("must not be '.'".to_string()),
        ".." => errs.push("must not be '..'".to_string()),
        k if k.starts_with("..") => errs.push("must not start with '..'".to_string()),
        _ => {}
    }
    errs
}

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>, field: &str) -> FieldErrors {
    let mut errs = FieldErrors::new();
    for k in keys {
        let msgs = config_map_key_errors(k);
        if !msgs.is_empty() {
            errs.also(
                FieldErrors::invalid_value(k, "", &msgs.join(", "))
                    .via_key(k)
                    .via_field(field),
            );
        }
    }
    errs
}

fn immutable_changed(old_immutable: Option<bool>, changed: bool, field: &str) -> FieldErrors {
    if old_immutable == Some(true) && changed {
        FieldErrors::generic(
            Reason::FieldValueForbidden,
            "field is immutable when `immutable` is set",
            &[field],
        )
    } else {
        FieldErrors::new()
    }
}

fn admit_config_map(old: Option<&Value>, new: Value) -> Result<Value, AdmissionError> {
    let cm: ConfigMap = decode_strict(new)?;
    let old: Option<ConfigMap> = decode_old(old)?;
    let mut errs = core_name(&cm.metadata, naming::name_is_dns1123_subdomain);
    errs.also(check_keys(cm.data.keys(), "data"));
    errs.also(check_keys(cm.binary_data.keys(), "binaryData"));
    for k in cm.data.keys().filter(|k| cm.binary_data.contains_key(*k)) {
        errs.also(FieldErrors::generic(
            Reason::FieldValueDuplicate,
            format!("duplicate of key present in data: {k}"),
            &[&format!("binaryData[{k}]")],
        ));
    }
    if let Some(o) = &old {
        errs.also(immutable_changed(
            o.immutable,
            o.data != cm.data || o.binary_data != cm.binary_data,
            "data",
        ));
    }
    errs.into_result()?;
    encode(&cm)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Kubernetes writes `stringData` into `data` (base64) and never stores it; the type
/// defaults to `Opaque` and cannot change.
fn admit_secret(old: Option<&Value>, new: Value) -> Result<Value, AdmissionError> {
    let mut s: Secret = decode_strict(new)?;
    let old: Option<Secret> = decode_old(old)?;
    let mut errs = core_name(&s.metadata, naming::name_is_dns1123_subdomain);
    errs.also(check_keys(s.data.keys(), "data"));
    errs.also(check_keys(s.string_data.keys(), "stringData"));
    for (k, v) in std::mem::take(&mut s.string_data) {
        s.data.insert(k, base64(v.as_bytes()));
    }
    if s.type_.is_empty() {
        s.type_ = "Opaque".to_string();
    }
    if let Some(o) = &old {
        if o.type_ != s.type_ {
            errs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                "field is immutable",
                &["type"],
            ));
        }
        errs.also(immutable_changed(o.immutable, o.data != s.data, "data"));
    }
    errs.into_result()?;
    encode(&s)
}

fn admit_event(new: Value) -> Result<Value, AdmissionError> {
    let e: Event = decode_strict(new)?;
    core_name(&e.metadata, naming::name_is_dns1123_subdomain).into_result()?;
    encode(&e)
}

#[cfg(test)]
mod tests;
