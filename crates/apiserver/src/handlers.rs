//! The verbs: what each HTTP method does to a resource path.
//!
//! Every handler returns `Result<Response, ApiError>`; errors become `Status` objects in
//! `error.rs` and nowhere else. Writes always go admission → store, so an object the store holds
//! has been defaulted and validated, and a refused request changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use wisp_api::admission::{self, AdmissionContext, AdmissionError, Operation};
use wisp_api::kinds::{self, ResourceInfo};
use wisp_store::{Preconditions, Store, StoreError};

use crate::ApiServer;
use crate::discovery;
use crate::error::ApiError;
use crate::paths::{self, ResourcePath, Target};
use crate::selector::{FieldSelector, LabelSelector};
use crate::table;

type Params = HashMap<String, String>;

/// How many times a PATCH is re-applied when a concurrent writer got in first.
const PATCH_RETRIES: usize = 5;

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

pub(crate) async fn dispatch(
    State(api): State<Arc<ApiServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params: Params = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let result = match paths::parse(uri.path()) {
        None => Err(not_found()),
        Some(_) if method != Method::GET && !is_resource(uri.path()) => Err(
            ApiError::MethodNotAllowed(format!("{method} is not supported on {}", uri.path())),
        ),
        Some(Target::CoreVersions) => Ok(json_response(
            StatusCode::OK,
            &discovery::core_versions(&api.server_address),
        )),
        Some(Target::Groups) => Ok(json_response(StatusCode::OK, &discovery::group_list())),
        Some(Target::Group { group }) => discovery::group(&group)
            .map(|d| json_response(StatusCode::OK, &d))
            .ok_or_else(not_found),
        Some(Target::ResourceList { group, version }) => discovery::resource_list(&group, &version)
            .map(|d| json_response(StatusCode::OK, &d))
            .ok_or_else(not_found),
        Some(Target::Resource(path)) => resource(&api, method, path, &params, &headers, body).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn is_resource(path: &str) -> bool {
    matches!(paths::parse(path), Some(Target::Resource(_)))
}

fn not_found() -> ApiError {
    ApiError::NotFound("the server could not find the requested resource".into())
}

/// The request, resolved against the registry.
struct Req<'a> {
    info: &'static ResourceInfo,
    key: String,
    path: ResourcePath,
    params: &'a Params,
    headers: &'a HeaderMap,
    admission: &'a AdmissionContext,
}

impl Req<'_> {
    fn ns(&self) -> &str {
        self.path.namespace.as_deref().unwrap_or("")
    }

    fn dry_run(&self) -> bool {
        self.params.get("dryRun").is_some_and(|v| v == "All")
    }

    fn wants_table(&self) -> bool {
        table::wants_table(
            self.headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok()),
        )
    }

    fn api_version(&self) -> String {
        if self.info.group.is_empty() {
            self.info.version.to_string()
        } else {
            format!("{}/{}", self.info.group, self.info.version)
        }
    }

    fn store_err(&self, name: &str) -> impl Fn(StoreError) -> ApiError + '_ {
        let what = if self.info.group.is_empty() {
            self.info.plural.to_string()
        } else {
            format!("{}.{}", self.info.plural, self.info.group)
        };
        let name = name.to_string();
        move |e| ApiError::from_store(e, &what, &name)
    }

    fn admission_err(&self, name: &str) -> impl Fn(AdmissionError) -> ApiError + '_ {
        let name = name.to_string();
        move |e| match e {
            AdmissionError::Invalid(errors) => ApiError::Invalid {
                kind: self.info.kind.to_string(),
                group: self.info.group.to_string(),
                name: name.clone(),
                errors,
            },
            AdmissionError::BadRequest(msg) => ApiError::BadRequest(msg),
        }
    }
}

async fn resource(
    api: &ApiServer,
    method: Method,
    path: ResourcePath,
    params: &Params,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let info = kinds::find(&path.group, &path.plural)
        .filter(|i| i.version == path.version)
        .ok_or_else(not_found)?;
    if info.namespaced && path.name.is_some() && path.namespace.is_none() {
        return Err(not_found());
    }
    if !info.namespaced && path.namespace.is_some() {
        return Err(not_found());
    }
    let status = match path.subresource.as_deref() {
        None => false,
        Some("status") if info.has_status => true,
        Some("log") if info.kind == "Revision" && method == Method::GET => {
            return revision_log(api, &path, params).await;
        }
        Some(_) => return Err(not_found()),
    };
    let req = Req {
        info,
        key: kinds::storage_key(info),
        path,
        params,
        headers,
        admission: &api.admission,
    };
    let store = api.store.as_ref();
    match (method, req.path.name.clone()) {
        (Method::GET, None) if is_watch(params) => {
            watch(api.store.clone(), api.stopping.subscribe(), req).await
        }
        (Method::GET, None) => list(store, &req).await,
        (Method::GET, Some(name)) => {
            let obj = store
                .get(&req.key, req.ns(), &name)
                .await
                .map_err(req.store_err(&name))?;
            Ok(respond_one(&req, StatusCode::OK, obj))
        }
        (Method::POST, None) => create(store, &req, decode(headers, &body)?).await,
        (Method::PUT, Some(name)) => {
            let obj = decode(headers, &body)?;
            update(store, &req, &name, obj, status).await
        }
        (Method::PATCH, Some(name)) => patch(store, &req, &name, headers, &body, status).await,
        (Method::DELETE, Some(name)) if !status => delete(store, &req, &name, &body).await,
        (Method::DELETE, None) => delete_collection(store, &req).await,
        (method, _) => Err(ApiError::MethodNotAllowed(format!(
            "{method} is not supported on {}",
            req.info.plural
        ))),
    }
}

/// `GET .../revisions/{name}/log`: the revision must exist; its replicas' output follows.
async fn revision_log(
    api: &ApiServer,
    path: &ResourcePath,
    params: &Params,
) -> Result<Response, ApiError> {
    let (Some(ns), Some(name)) = (path.namespace.clone(), path.name.clone()) else {
        return Err(not_found());
    };
    let key = kinds::storage_key(&kinds::REVISIONS);
    api.store
        .get(&key, &ns, &name)
        .await
        .map_err(|e| ApiError::from_store(e, "revisions.serving.knative.dev", &name))?;
    let Some(source) = api.logs.clone() else {
        return Err(ApiError::NotFound(
            "this server keeps no replica logs (no data plane runs with it)".to_string(),
        ));
    };
    let flag = |k: &str| params.get(k).is_some_and(|v| v == "true" || v == "1");
    let tail_lines = match params.get("tailLines") {
        None => None,
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::BadRequest(format!("tailLines: {v:?} is not a number of lines"))
        })?),
    };
    let since = match params.get("sinceSeconds") {
        None => None,
        Some(v) => Some(Duration::from_secs(v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!("sinceSeconds: {v:?} is not a number of seconds"))
        })?)),
    };
    let opts = crate::logs::LogOptions {
        follow: flag("follow"),
        tail_lines,
        prefix: flag("prefix"),
        since,
        replica: params.get("replica").cloned(),
    };
    crate::logs::respond(source, api.stopping.subscribe(), ns, name, opts)
}

fn is_watch(params: &Params) -> bool {
    params.get("watch").is_some_and(|v| v == "true" || v == "1")
}

fn respond_one(req: &Req, code: StatusCode, obj: Value) -> Response {
    if req.wants_table() {
        json_response(
            code,
            &table::table(req.info, &[obj], None, true, SystemTime::now()),
        )
    } else {
        json_response(code, &obj)
    }
}

/// Decodes a request body as JSON, or YAML when the client says so.
fn decode(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let value: Value = if ctype.contains("yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::BadRequest("request body is not UTF-8".into()))?;
        serde_saphyr::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML body: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding JSON body: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    Ok(value)
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Makes the object's namespace agree with the URL's.
fn set_namespace(req: &Req, obj: &mut Value) -> Result<(), ApiError> {
    if !req.info.namespaced {
        return Ok(());
    }
    let ns = req.ns().to_string();
    let meta = obj
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
        .filter(|m| m.is_object())
        .ok_or_else(|| ApiError::BadRequest("metadata must be an object".into()))?;
    match meta.get("namespace").and_then(Value::as_str) {
        Some(given) if !given.is_empty() && given != ns => Err(ApiError::BadRequest(format!(
            "the namespace of the provided object ({given}) does not match the namespace sent on the request ({ns})"
        ))),
        _ => {
            meta["namespace"] = json!(ns);
            Ok(())
        }
    }
}

/// Namespaces exist on first use, as on a single-user cluster.
pub(crate) async fn ensure_namespace(store: &dyn Store, ns: &str) -> Result<(), ApiError> {
    match store.get("namespaces", "", ns).await {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(ApiError::from_store(e, "namespaces", ns)),
    }
    let obj = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": ns},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    });
    match store.create("namespaces", obj).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(ApiError::from_store(e, "namespaces", ns)),
    }
}

async fn create(store: &dyn Store, req: &Req<'_>, mut obj: Value) -> Result<Response, ApiError> {
    if req.path.namespace.is_none() && req.info.namespaced {
        return Err(ApiError::BadRequest(
            "create needs a namespace in the path: /namespaces/{namespace}/...".into(),
        ));
    }
    set_namespace(req, &mut obj)?;
    let name = name_of(&obj).to_string();
    let obj = admission::admit(req.info, Operation::Create, None, obj, req.admission)
        .map_err(req.admission_err(&name))?;
    if req.dry_run() {
        return Ok(json_response(StatusCode::CREATED, &obj));
    }
    if req.info.namespaced {
        ensure_namespace(store, req.ns()).await?;
    }
    let created = store
        .create(&req.key, obj)
        .await
        .map_err(req.store_err(&name))?;
    tracing::debug!(resource = %req.key, namespace = req.ns(), name = %name_of(&created), "created");
    Ok(respond_one(req, StatusCode::CREATED, created))
}

/// Admits and stores a full object for PUT and PATCH.
async fn write(
    store: &dyn Store,
    req: &Req<'_>,
    name: &str,
    old: &Value,
    mut obj: Value,
    status: bool,
) -> Result<Value, ApiError> {
    set_namespace(req, &mut obj)?;
    if name_of(&obj) != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&obj)
        )));
    }
    if status {
        // The status subresource is written by controllers; spec admission does not apply.
        if req.dry_run() {
            return Ok(obj);
        }
        return store
            .update_status(&req.key, obj)
            .await
            .map_err(req.store_err(name));
    }
    let obj = admission::admit(req.info, Operation::Update, Some(old), obj, req.admission)
        .map_err(req.admission_err(name))?;
    if req.dry_run() {
        return Ok(obj);
    }
    store
        .update(&req.key, obj)
        .await
        .map_err(req.store_err(name))
}

async fn update(
    store: &dyn Store,
    req: &Req<'_>,
    name: &str,
    obj: Value,
    status: bool,
) -> Result<Response, ApiError> {
    let old = store
        .get(&req.key, req.ns(), name)
        .await
        .map_err(req.store_err(name))?;
    let stored = write(store, req, name, &old, obj, status).await?;
    Ok(respond_one(req, StatusCode::OK, stored))
}

/// A decoded PATCH body.
enum Patch {
    Merge(Value),
    Json(json_patch::Patch),
}

impl Patch {
    /// Decodes the body by its media type; refuses what wisp does not apply, before any lookup.
    fn decode(ctype: &str, body: &Bytes) -> Result<Patch, ApiError> {
        match ctype.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => serde_json::from_slice(body)
                .map(Patch::Merge)
                .map_err(|e| ApiError::BadRequest(format!("error decoding merge patch: {e}"))),
            "application/json-patch+json" => serde_json::from_slice(body)
                .map(Patch::Json)
                .map_err(|e| ApiError::BadRequest(format!("error decoding JSON patch: {e}"))),
            "application/strategic-merge-patch+json" => Err(ApiError::UnsupportedMediaType(
                "strategic merge patch is not supported for Knative kinds (as for CRDs); use --type merge or --type json".into(),
            )),
            "application/apply-patch+yaml" => Err(ApiError::UnsupportedMediaType(
                "server-side apply is not supported yet; use client-side apply (kubectl apply without --server-side, or wisp apply)".into(),
            )),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format ({other:?}); accepted: application/merge-patch+json, application/json-patch+json"
            ))),
        }
    }

    /// The current object with the patch applied.
    fn apply(&self, current: &Value) -> Result<Value, ApiError> {
        let mut doc = current.clone();
        match self {
            Patch::Merge(patch) => json_patch::merge(&mut doc, patch),
            Patch::Json(patch) => {
                json_patch::patch(&mut doc, patch).map_err(|e| ApiError::Invalid {
                    kind: String::new(),
                    group: String::new(),
                    name: name_of(current).to_string(),
                    errors: wisp_api::validation::FieldErrors(vec![
                        wisp_api::validation::FieldError::new(
                            wisp_api::validation::Reason::FieldValueInvalid,
                            format!("the JSON patch could not be applied: {}", e.kind),
                            e.path.to_string(),
                        ),
                    ]),
                })?
            }
        }
        Ok(doc)
    }
}

async fn patch(
    store: &dyn Store,
    req: &Req<'_>,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    status: bool,
) -> Result<Response, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let patch = Patch::decode(ctype, body)?;
    let mut attempt = 0;
    loop {
        let current = store
            .get(&req.key, req.ns(), name)
            .await
            .map_err(req.store_err(name))?;
        let mut patched = patch.apply(&current)?;
        let rv_pinned_by_patch = patched.pointer("/metadata/resourceVersion")
            != current.pointer("/metadata/resourceVersion");
        if !rv_pinned_by_patch && patched.get("metadata").is_some_and(Value::is_object) {
            patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        }
        match write(store, req, name, &current, patched, status).await {
            Err(ApiError::Conflict { .. }) if !rv_pinned_by_patch && attempt < PATCH_RETRIES => {
                attempt += 1;
            }
            Err(e) => return Err(e),
            Ok(stored) => return Ok(respond_one(req, StatusCode::OK, stored)),
        }
    }
}

async fn delete(
    store: &dyn Store,
    req: &Req<'_>,
    name: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let opts: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))?
    };
    if opts.get("propagationPolicy").and_then(Value::as_str) == Some("Orphan") {
        return Err(ApiError::BadRequest(
            "propagationPolicy Orphan is not supported: owned objects are always deleted with their owner".into(),
        ));
    }
    let pre = Preconditions {
        uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    };
    let dry_run = req.dry_run()
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    if dry_run {
        let obj = store
            .get(&req.key, req.ns(), name)
            .await
            .map_err(req.store_err(name))?;
        return Ok(json_response(StatusCode::OK, &obj));
    }
    if req.info.group.is_empty() && req.info.plural == "namespaces" {
        // Kubernetes empties a namespace before removing it.
        store
            .get("namespaces", "", name)
            .await
            .map_err(req.store_err(name))?;
        for info in kinds::ALL.iter().filter(|i| i.namespaced) {
            let key = kinds::storage_key(info);
            let list = store
                .list(&key, Some(name))
                .await
                .map_err(req.store_err(name))?;
            for item in list.items {
                let item_name = name_of(&item).to_string();
                match store
                    .delete(&key, name, &item_name, Preconditions::default())
                    .await
                {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(ApiError::from_store(e, &key, &item_name)),
                }
            }
        }
    }
    let deleted = store
        .delete(&req.key, req.ns(), name, pre)
        .await
        .map_err(req.store_err(name))?;
    Ok(json_response(StatusCode::OK, &deleted))
}

async fn delete_collection(store: &dyn Store, req: &Req<'_>) -> Result<Response, ApiError> {
    let (items, _) = selected(store, req).await?;
    let mut deleted = Vec::new();
    for item in items {
        let ns = item
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = name_of(&item).to_string();
        match store
            .delete(&req.key, ns, &name, Preconditions::default())
            .await
        {
            Ok(obj) => deleted.push(obj),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(req.store_err(&name)(e)),
        }
    }
    Ok(json_response(StatusCode::OK, &list_doc(req, deleted, None)))
}

fn selectors(req: &Req) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(req.params.get("labelSelector").map_or("", String::as_str))
        .map_err(ApiError::BadRequest)?;
    let fields = FieldSelector::parse(req.params.get("fieldSelector").map_or("", String::as_str))
        .map_err(ApiError::BadRequest)?;
    Ok((labels, fields))
}

async fn selected(store: &dyn Store, req: &Req<'_>) -> Result<(Vec<Value>, u64), ApiError> {
    let (labels, fields) = selectors(req)?;
    let list = store
        .list(&req.key, req.path.namespace.as_deref())
        .await
        .map_err(req.store_err(""))?;
    let items = list
        .items
        .into_iter()
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    Ok((items, list.resource_version))
}

fn list_doc(req: &Req, items: Vec<Value>, rv: Option<u64>) -> Value {
    let mut meta = serde_json::Map::new();
    if let Some(rv) = rv {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
    // Built by moving the items in: `json!` would deep-copy them.
    let mut doc = serde_json::Map::new();
    doc.insert("apiVersion".into(), json!(req.api_version()));
    doc.insert("kind".into(), json!(format!("{}List", req.info.kind)));
    doc.insert("metadata".into(), Value::Object(meta));
    doc.insert("items".into(), Value::Array(items));
    Value::Object(doc)
}

async fn list(store: &dyn Store, req: &Req<'_>) -> Result<Response, ApiError> {
    let (items, rv) = selected(store, req).await?;
    let doc = if req.wants_table() {
        table::table(req.info, &items, Some(rv), true, SystemTime::now())
    } else {
        list_doc(req, items, Some(rv))
    };
    Ok(json_response(StatusCode::OK, &doc))
}

/// One line of a watch stream.
fn watch_line(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// `?watch=true`: newline-delimited JSON events, first the current objects when no
/// resourceVersion is given (Kubernetes' semantics for "" and "0"), then every change.
async fn watch(
    store: Arc<dyn Store>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    req: Req<'_>,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(&req)?;
    let rv_param = req
        .params
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let (initial, from) = match rv_param {
        "" | "0" => {
            let (items, rv) = selected(store.as_ref(), &req).await?;
            (items, rv)
        }
        s => {
            let rv = s.parse::<u64>().map_err(|_| {
                ApiError::BadRequest(format!("invalid resourceVersion {s:?}: want an integer"))
            })?;
            (Vec::new(), rv)
        }
    };
    let timeout = req
        .params
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30 * 60));
    let as_table = req.wants_table();
    let info = req.info;
    let ns = req.path.namespace.clone();
    let subscription = store.watch(Some(&req.key), ns.as_deref(), from).await;
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut first = true;
        let mut render = |object: Value| -> Value {
            if as_table {
                let t = table::table(info, &[object], None, first, SystemTime::now());
                first = false;
                t
            } else {
                object
            }
        };
        for obj in initial {
            if tx.send(Ok(watch_line("ADDED", render(obj)))).await.is_err() {
                return;
            }
        }
        let mut events = match subscription {
            Ok(events) => events,
            Err(e) => {
                let err = ApiError::from_store(e, info.plural, "");
                let _ = tx.send(Ok(watch_line("ERROR", err.to_status()))).await;
                return;
            }
        };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let event = tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                _ = stopping.wait_for(|stop| *stop) => return,
                event = events.recv() => event,
            };
            let line = match event {
                None => return,
                Some(Err(e)) => watch_line(
                    "ERROR",
                    ApiError::from_store(e, info.plural, "").to_status(),
                ),
                Some(Ok(ev)) => {
                    if !(labels.matches(&ev.object) && fields.matches(&ev.object)) {
                        continue;
                    }
                    watch_line(ev.event_type.as_str(), render(ev.object))
                }
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}
