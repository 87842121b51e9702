//! What the store does to an object's `metadata` on create, update, status update and delete:
//! the Kubernetes storage rules, as pure functions of the stored object, the incoming object and
//! the time. No I/O here, so every backend (SQLite today, etcd later) shares one set of rules and
//! they are unit-tested without a database.

use serde_json::{Map, Value};

use crate::{Preconditions, Result, StoreError};

/// Kubernetes' exact message for an update carrying a stale resourceVersion.
pub(crate) const MODIFIED_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// Metadata fields that only the store writes: an update keeps the stored values.
const SERVER_OWNED_METADATA: [&str; 6] = [
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "resourceVersion",
];

/// Top-level fields that never count as a spec change.
const NOT_SPEC: [&str; 4] = ["apiVersion", "kind", "metadata", "status"];

/// Characters of a `generateName` suffix: Kubernetes' alphabet (no vowels, no look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Length of the random suffix appended to `metadata.generateName`.
pub(crate) const NAME_SUFFIX_LEN: usize = 5;

/// An object's identity inside one resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub namespace: String,
    pub name: String,
}

fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

/// The object's `metadata`, created when missing. `Invalid` when the object or its metadata is
/// not a JSON object.
fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| StoreError::Invalid("the object is not a JSON object".into()))?;
    map.entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| StoreError::Invalid("metadata is not an object".into()))
}

/// `metadata.namespace` (empty for cluster-scoped objects) and `metadata.name` (empty when the
/// object only has a `generateName`).
pub(crate) fn key_of(obj: &Value) -> Result<Key> {
    if !obj.is_object() {
        return Err(StoreError::Invalid(
            "the object is not a JSON object".into(),
        ));
    }
    let meta = match obj.get("metadata") {
        None => return Err(StoreError::Invalid("metadata.name: Required value".into())),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(StoreError::Invalid("metadata is not an object".into())),
    };
    let string = |field: &str| -> Result<String> {
        match meta.get(field) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(StoreError::Invalid(format!(
                "metadata.{field} must be a string"
            ))),
        }
    };
    Ok(Key {
        namespace: string("namespace")?,
        name: string("name")?,
    })
}

/// The key of an object that must already be named (update, status update).
pub(crate) fn named_key_of(obj: &Value) -> Result<Key> {
    let key = key_of(obj)?;
    if key.name.is_empty() {
        return Err(StoreError::Invalid("metadata.name: Required value".into()));
    }
    Ok(key)
}

/// `metadata.generateName`, when the object has no name.
pub(crate) fn generate_name_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "generateName").filter(|s| !s.is_empty())
}

/// `prefix` followed by [`NAME_SUFFIX_LEN`] characters picked by `random` bytes.
pub(crate) fn generated_name(prefix: &str, random: &[u8]) -> String {
    let mut name = String::with_capacity(prefix.len() + NAME_SUFFIX_LEN);
    name.push_str(prefix);
    for b in random.iter().take(NAME_SUFFIX_LEN) {
        name.push(char::from(
            NAME_ALPHABET[usize::from(*b) % NAME_ALPHABET.len()],
        ));
    }
    name
}

pub(crate) fn set_name(obj: &mut Value, name: &str) -> Result<()> {
    metadata_mut(obj)?.insert("name".into(), Value::String(name.into()));
    Ok(())
}

/// `metadata.resourceVersion` as a number; `None` when absent or empty.
pub(crate) fn resource_version_of(obj: &Value) -> Result<Option<u64>> {
    match metadata(obj).and_then(|m| m.get("resourceVersion")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| {
            StoreError::Invalid(format!("metadata.resourceVersion: Invalid value: {s:?}"))
        }),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            StoreError::Invalid(format!("metadata.resourceVersion: Invalid value: {n}"))
        }),
        Some(other) => Err(StoreError::Invalid(format!(
            "metadata.resourceVersion: Invalid value: {other}"
        ))),
    }
}

/// Stores `rv` as the string `metadata.resourceVersion`, as Kubernetes does.
pub(crate) fn set_resource_version(obj: &mut Value, rv: u64) {
    if let Ok(meta) = metadata_mut(obj) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

pub(crate) fn uid_of(obj: &Value) -> Option<&str> {
    meta_str(obj, "uid")
}

/// The uids named by `metadata.ownerReferences`, without duplicates, in order.
pub(crate) fn owner_uids(obj: &Value) -> Vec<String> {
    let mut uids: Vec<String> = Vec::new();
    let refs = metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array);
    for uid in refs
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid"))
        .filter_map(Value::as_str)
    {
        if !uid.is_empty() && !uids.iter().any(|u| u == uid) {
            uids.push(uid.to_owned());
        }
    }
    uids
}

fn finalizers(obj: &Value) -> &[Value] {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(crate) fn has_finalizers(obj: &Value) -> bool {
    !finalizers(obj).is_empty()
}

/// Whether a delete has been requested (`metadata.deletionTimestamp` is set).
pub(crate) fn is_deleting(obj: &Value) -> bool {
    metadata(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// Prepares a new object: stamps `uid`, `creationTimestamp` and `generation: 1`, and drops what
/// a client may not set on create (`resourceVersion`, deletion fields).
pub(crate) fn stamp_new(obj: &mut Value, uid: &str, now: &str) -> Result<()> {
    let meta = metadata_mut(obj)?;
    meta.insert("uid".into(), Value::String(uid.into()));
    meta.insert("creationTimestamp".into(), Value::String(now.into()));
    meta.insert("generation".into(), Value::from(1));
    meta.remove("resourceVersion");
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    Ok(())
}

/// Optimistic concurrency: `Conflict` when `incoming` names a resourceVersion other than the
/// stored one. No resourceVersion means an unconditional write.
pub(crate) fn check_resource_version(
    resource: &str,
    stored: &Value,
    incoming: &Value,
) -> Result<()> {
    let Some(wanted) = resource_version_of(incoming)? else {
        return Ok(());
    };
    if resource_version_of(stored)? == Some(wanted) {
        return Ok(());
    }
    Err(StoreError::Conflict {
        resource: resource.into(),
        name: meta_str(stored, "name").unwrap_or_default().into(),
        message: MODIFIED_MESSAGE.into(),
    })
}

/// Delete preconditions, with Kubernetes' messages.
pub(crate) fn check_preconditions(
    resource: &str,
    stored: &Value,
    pre: &Preconditions,
) -> Result<()> {
    let conflict = |message: String| StoreError::Conflict {
        resource: resource.into(),
        name: meta_str(stored, "name").unwrap_or_default().into(),
        message,
    };
    if let Some(uid) = &pre.uid {
        let actual = uid_of(stored).unwrap_or_default();
        if uid != actual {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            )));
        }
    }
    if let Some(rv) = pre.resource_version {
        let actual = resource_version_of(stored)?.unwrap_or_default();
        if rv != actual {
            return Err(conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
            )));
        }
    }
    Ok(())
}

/// Whether anything outside `apiVersion`, `kind`, `metadata` and `status` differs.
pub(crate) fn spec_changed(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return old != new;
    };
    let fields = |m: &Map<String, Value>| {
        m.iter()
            .filter(|(k, _)| !NOT_SPEC.contains(&k.as_str()))
            .count()
    };
    fields(old) != fields(new)
        || new
            .iter()
            .filter(|(k, _)| !NOT_SPEC.contains(&k.as_str()))
            .any(|(k, v)| old.get(k) != Some(v))
}

fn copy_field(from: &Map<String, Value>, to: &mut Map<String, Value>, field: &str) {
    match from.get(field) {
        Some(v) => to.insert(field.into(), v.clone()),
        None => to.remove(field),
    };
}

/// The object an update of `stored` with `incoming` leaves, still carrying the stored
/// resourceVersion; `None` when the update changes nothing. Keeps `status` and the server-owned
/// metadata of `stored`, bumps `generation` on a spec change, and refuses new finalizers on an
/// object being deleted.
pub(crate) fn merge_update(stored: &Value, incoming: Value) -> Result<Option<Value>> {
    let mut new = incoming;
    let stored_map = stored
        .as_object()
        .ok_or_else(|| StoreError::Backend("stored object is not a JSON object".into()))?;
    let stored_meta = metadata(stored)
        .ok_or_else(|| StoreError::Backend("stored object has no metadata".into()))?;
    {
        let map = new
            .as_object_mut()
            .ok_or_else(|| StoreError::Invalid("the object is not a JSON object".into()))?;
        copy_field(stored_map, map, "status");
    }
    let meta = metadata_mut(&mut new)?;
    for field in SERVER_OWNED_METADATA {
        copy_field(stored_meta, meta, field);
    }
    if is_deleting(stored) {
        let added: Vec<&Value> = finalizers(&new)
            .iter()
            .filter(|f| !finalizers(stored).contains(f))
            .collect();
        if !added.is_empty() {
            let added: Vec<String> = added.iter().map(|f| f.to_string()).collect();
            return Err(StoreError::Invalid(format!(
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [{}]",
                added.join(" ")
            )));
        }
    }
    if spec_changed(stored, &new) {
        let generation = stored_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        metadata_mut(&mut new)?.insert("generation".into(), Value::from(generation + 1));
    }
    Ok((new != *stored).then_some(new))
}

/// The object a status update of `stored` with `incoming` leaves: `stored` with `incoming`'s
/// `status` (none when `incoming` has none); `None` when that changes nothing.
pub(crate) fn merge_status(stored: &Value, incoming: &Value) -> Result<Option<Value>> {
    let mut new = stored.clone();
    let map = new
        .as_object_mut()
        .ok_or_else(|| StoreError::Backend("stored object is not a JSON object".into()))?;
    match incoming.get("status") {
        Some(status) if !status.is_null() => map.insert("status".into(), status.clone()),
        _ => map.remove("status"),
    };
    Ok((new != *stored).then_some(new))
}

/// Records a delete request on an object with finalizers.
pub(crate) fn mark_deleting(obj: &mut Value, now: &str) -> Result<()> {
    let meta = metadata_mut(obj)?;
    meta.insert("deletionTimestamp".into(), Value::String(now.into()));
    meta.insert("deletionGracePeriodSeconds".into(), Value::from(0));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stored() -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                         "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"x": "1"}},
            "data": {"k": "v", "j": "w"},
            "status": {"ready": true}
        })
    }

    #[test]
    fn keys_and_names() {
        let k = key_of(&json!({"metadata": {"name": "a", "namespace": "b"}})).unwrap();
        assert_eq!(
            k,
            Key {
                namespace: "b".into(),
                name: "a".into()
            }
        );
        let k = key_of(&json!({"metadata": {"name": "a"}})).unwrap();
        assert_eq!(k.namespace, "");
        assert!(matches!(key_of(&json!([])), Err(StoreError::Invalid(_))));
        assert!(matches!(
            key_of(&json!({"metadata": {"name": 3}})),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            named_key_of(&json!({"metadata": {}})),
            Err(StoreError::Invalid(_))
        ));
        let name = generated_name("hello-", &[0, 1, 26, 27, 255]);
        assert_eq!(name, "hello-bc9bq");
    }

    #[test]
    fn resource_versions() {
        assert_eq!(resource_version_of(&json!({"metadata": {}})).unwrap(), None);
        assert_eq!(
            resource_version_of(&json!({"metadata": {"resourceVersion": ""}})).unwrap(),
            None
        );
        assert_eq!(
            resource_version_of(&json!({"metadata": {"resourceVersion": "42"}})).unwrap(),
            Some(42)
        );
        assert!(resource_version_of(&json!({"metadata": {"resourceVersion": "x"}})).is_err());
        let mut o = json!({"metadata": {}});
        set_resource_version(&mut o, 9);
        assert_eq!(o["metadata"]["resourceVersion"], "9");
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let s = stored();
        let mut inc = s.clone();
        check_resource_version("configmaps", &s, &inc).unwrap();
        inc["metadata"]["resourceVersion"] = json!("6");
        let err = check_resource_version("configmaps", &s, &inc).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
        );
        inc["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        check_resource_version("configmaps", &s, &inc).unwrap();
    }

    #[test]
    fn update_keeps_server_fields_and_bumps_generation_on_spec_change() {
        let s = stored();
        let inc = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "ns", "uid": "forged", "generation": 99,
                         "creationTimestamp": "1999-01-01T00:00:00Z", "labels": {"x": "1"}},
            "data": {"k": "v2", "j": "w"},
            "status": {"ready": false}
        });
        let new = merge_update(&s, inc).unwrap().unwrap();
        assert_eq!(new["metadata"]["uid"], "u1");
        assert_eq!(new["metadata"]["generation"], 3);
        assert_eq!(new["metadata"]["creationTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(new["metadata"]["resourceVersion"], "7");
        assert_eq!(new["status"], json!({"ready": true}));
        assert_eq!(new["data"]["k"], "v2");
    }

    #[test]
    fn metadata_only_update_keeps_generation() {
        let s = stored();
        let mut inc = s.clone();
        inc["metadata"]["labels"]["x"] = json!("2");
        let new = merge_update(&s, inc).unwrap().unwrap();
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(new["metadata"]["labels"]["x"], "2");
    }

    #[test]
    fn identical_update_in_another_key_order_is_a_no_op() {
        let s = stored();
        let inc = json!({
            "status": {"ready": false},
            "data": {"j": "w", "k": "v"},
            "metadata": {"labels": {"x": "1"}, "namespace": "ns", "name": "a"},
            "kind": "ConfigMap", "apiVersion": "v1"
        });
        assert_eq!(merge_update(&s, inc).unwrap(), None);
    }

    #[test]
    fn removed_spec_field_is_a_spec_change() {
        let s = stored();
        let mut inc = s.clone();
        inc.as_object_mut().unwrap().remove("data");
        let new = merge_update(&s, inc).unwrap().unwrap();
        assert_eq!(new["metadata"]["generation"], 3);
        assert!(spec_changed(&json!({"a": 1}), &json!({"a": 1, "b": null})));
        assert!(!spec_changed(
            &json!({"a": 1, "status": 1}),
            &json!({"a": 1, "kind": "x"})
        ));
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let mut s = stored();
        s["metadata"]["finalizers"] = json!(["a"]);
        mark_deleting(&mut s, "2026-01-01T00:00:01Z").unwrap();
        let mut inc = s.clone();
        inc["metadata"]["finalizers"] = json!(["a", "b"]);
        assert!(matches!(merge_update(&s, inc), Err(StoreError::Invalid(_))));
        let mut inc = s.clone();
        inc["metadata"]["finalizers"] = json!([]);
        inc["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("deletionTimestamp");
        let new = merge_update(&s, inc).unwrap().unwrap();
        assert!(is_deleting(&new));
        assert!(!has_finalizers(&new));
    }

    #[test]
    fn status_merge_touches_only_status() {
        let s = stored();
        let inc = json!({"metadata": {"name": "a", "labels": {}}, "data": {}, "status": {"ready": false}});
        let new = merge_status(&s, &inc).unwrap().unwrap();
        let mut expected = s.clone();
        expected["status"] = json!({"ready": false});
        assert_eq!(new, expected);
        assert_eq!(merge_status(&s, &s).unwrap(), None);
        let cleared = merge_status(&s, &json!({"metadata": {"name": "a"}}))
            .unwrap()
            .unwrap();
        assert!(cleared.get("status").is_none());
    }

    #[test]
    fn preconditions() {
        let s = stored();
        check_preconditions("configmaps", &s, &Preconditions::default()).unwrap();
        let pre = Preconditions {
            uid: Some("u1".into()),
            resource_version: Some(7),
        };
        check_preconditions("configmaps", &s, &pre).unwrap();
        let pre = Preconditions {
            uid: Some("u2".into()),
            resource_version: None,
        };
        let err = check_preconditions("configmaps", &s, &pre)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Precondition failed: UID in precondition: u2, UID in object meta: u1"),
            "{err}"
        );
        let pre = Preconditions {
            uid: None,
            resource_version: Some(6),
        };
        assert!(matches!(
            check_preconditions("configmaps", &s, &pre),
            Err(StoreError::Conflict { .. })
        ));
    }

    #[test]
    fn owner_uids_dedup() {
        let o = json!({"metadata": {"ownerReferences": [{"uid": "a"}, {"uid": "b"}, {"uid": "a"}, {"name": "x"}]}});
        assert_eq!(owner_uids(&o), vec!["a".to_string(), "b".to_string()]);
        assert!(owner_uids(&json!({"metadata": {}})).is_empty());
    }

    #[test]
    fn stamping() {
        let mut o =
            json!({"metadata": {"name": "a", "resourceVersion": "3", "deletionTimestamp": "x"}});
        stamp_new(&mut o, "u", "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(o["metadata"]["uid"], "u");
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(o["metadata"].get("resourceVersion").is_none());
        assert!(!is_deleting(&o));
    }
}
