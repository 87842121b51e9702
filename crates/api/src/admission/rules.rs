//! Object-level rules of Knative's webhook: metadata, revision templates, traffic and update
//! checks (`*_validation.go`, `metadata_validation.go`). Paths are from the object root.

use std::collections::BTreeMap;

use serde_json::Value;

use super::annotations;
use super::config::Config;
use super::podspec;
use crate::meta::{ObjectMeta, OwnerReference};
use crate::naming;
use crate::serving::{RevisionTemplateSpec, TrafficTarget, keys};
use crate::validation::{FieldErrors, Reason};

/// Go's `%v` of a `[]string`.
pub(crate) fn go_list(msgs: &[String]) -> String {
    format!("[{}]", msgs.join(" "))
}

/// `apis.ValidateObjectMetadata` (first problem only, as Knative) plus the autoscaling
/// annotation rule: allowed (and checked) on Revisions, refused elsewhere. Relative to
/// `metadata`.
pub(crate) fn object_metadata(
    meta: &ObjectMeta,
    allow_autoscaling: bool,
    cfg: &Config,
) -> FieldErrors {
    let mut errs = name_errors(meta);
    if allow_autoscaling {
        errs.also(
            annotations::validate_autoscaling(&cfg.autoscaler, &meta.annotations)
                .via_field("annotations"),
        );
    } else {
        errs.also(annotations::validate_no_autoscaling(&meta.annotations).via_field("annotations"));
    }
    errs
}

fn name_errors(meta: &ObjectMeta) -> FieldErrors {
    if !meta.generate_name.is_empty() {
        let msgs = naming::name_is_dns1035_label(&meta.generate_name, true);
        if !msgs.is_empty() {
            return FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!("not a DNS 1035 label prefix: {}", go_list(&msgs)),
                &["generateName"],
            );
        }
    }
    if !meta.name.is_empty() {
        let msgs = naming::name_is_dns1035_label(&meta.name, false);
        if !msgs.is_empty() {
            return FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!("not a DNS 1035 label: {}", go_list(&msgs)),
                &["name"],
            );
        }
    }
    if meta.generate_name.is_empty() && meta.name.is_empty() {
        return FieldErrors::generic(
            Reason::FieldValueRequired,
            "name or generateName is required",
            &["name"],
        );
    }
    FieldErrors::new()
}

/// Knative's `verifyLabelOwnerRef`: a `serving.knative.dev/service` (or `/configuration`)
/// label must be backed by an owner reference of that kind and name. Relative to `labels`.
pub(crate) fn label_owner(
    labels: &BTreeMap<String, String>,
    label: &str,
    kind: &str,
    owners: &[OwnerReference],
) -> FieldErrors {
    match labels.get(label) {
        Some(val) if !owners.iter().any(|r| r.kind == kind && r.name == *val) => {
            FieldErrors::missing(&[label])
        }
        _ => FieldErrors::new(),
    }
}

/// `RevisionTemplateSpec.Validate` with the parent's metadata. Relative to the template.
pub(crate) fn template(t: &RevisionTemplateSpec, parent: &ObjectMeta, cfg: &Config) -> FieldErrors {
    let mut errs = podspec::validate_revision_spec(&t.spec, cfg).via_field("spec");
    let anns = &t.metadata.annotations;
    errs.also(
        annotations::validate_autoscaling(&cfg.autoscaler, anns).via_field("metadata.annotations"),
    );
    errs.also(annotations::validate_networking(anns).via_field("metadata.annotations"));
    errs.also(revision_name(
        &t.metadata.name,
        &t.metadata.generate_name,
        parent,
    ));
    errs.also(annotations::validate_queue_sidecar(anns).via_field("metadata.annotations"));
    errs.also(
        annotations::validate_duration_annotation(
            anns,
            &[keys::PROGRESS_DEADLINE_ANNOTATION],
            "progress-deadline",
        )
        .via_field("metadata.annotations"),
    );
    errs
}

/// `validateRevisionName`: a template's own name must be a DNS-1035 label prefixed with
/// `{parent}-`, and is not allowed when the parent uses `generateName`.
fn revision_name(name: &str, generate_name: &str, parent: &ObjectMeta) -> FieldErrors {
    if !generate_name.is_empty() {
        let msgs = naming::name_is_dns1035_label(generate_name, true);
        if !msgs.is_empty() {
            return FieldErrors::invalid_value(
                format!("not a DNS 1035 label prefix: {}", go_list(&msgs)),
                "metadata.generateName",
                "",
            );
        }
    }
    if name.is_empty() {
        return FieldErrors::new();
    }
    let msgs = naming::name_is_dns1035_label(name, false);
    if !msgs.is_empty() {
        return FieldErrors::invalid_value(
            format!("not a DNS 1035 label: {}", go_list(&msgs)),
            "metadata.name",
            "",
        );
    }
    if parent.name.is_empty() && !parent.generate_name.is_empty() {
        return FieldErrors::disallowed(&["metadata.name"]);
    }
    let prefix = format!("{}-", parent.name);
    if !name.starts_with(&prefix) {
        return FieldErrors::invalid_value(
            format!("{name:?} must have prefix {prefix:?}"),
            "metadata.name",
            "",
        );
    }
    FieldErrors::new()
}

/// `validateTrafficList` for a spec. `in_service`: targets implicitly use the Service's
/// Configuration (so `configurationName` is refused and may be omitted). Relative to the
/// traffic list.
pub(crate) fn traffic(traffic: &[TrafficTarget], in_service: bool) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let mut tags: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sum: i64 = 0;
    for (i, tt) in traffic.iter().enumerate() {
        errs.also(target(tt, in_service).via_index(i));
        sum += tt.percent.unwrap_or(0);
        if tt.tag.is_empty() {
            continue;
        }
        let msgs = naming::is_dns1035_label(&tt.tag);
        if !msgs.is_empty() {
            // Knative's ErrInvalidArrayValue puts the index after the field: `tag[i]`.
            errs.also(
                FieldErrors::invalid_value(
                    format!("not a DNS 1035 label: {}", go_list(&msgs)),
                    "",
                    "",
                )
                .via_field_index("tag", i),
            );
        }
        match tags.get(tt.tag.as_str()) {
            Some(idx) => {
                errs.also(FieldErrors::generic(
                    Reason::FieldValueDuplicate,
                    format!("Multiple definitions for {:?}", tt.tag),
                    &[&format!("[{i}].tag"), &format!("[{idx}].tag")],
                ));
            }
            None => {
                tags.insert(&tt.tag, i);
            }
        }
    }
    if sum != 100 {
        errs.also(FieldErrors::generic(
            Reason::FieldValueInvalid,
            format!("Traffic targets sum to {sum}, want 100"),
            &[""],
        ));
    }
    errs
}

fn target(tt: &TrafficTarget, in_service: bool) -> FieldErrors {
    let mut errs = FieldErrors::new();
    if let Some(lr) = tt.latest_revision {
        let pinned = !tt.revision_name.is_empty();
        if pinned == lr {
            errs.also(FieldErrors::generic(
                Reason::FieldValueInvalid,
                format!(
                    "may not set revisionName {:?} when latestRevision is {lr}",
                    tt.revision_name
                ),
                &["latestRevision"],
            ));
        }
    }
    let (rev, cfg) = (&tt.revision_name, &tt.configuration_name);
    if in_service && !cfg.is_empty() {
        errs.also(FieldErrors::disallowed(&["configurationName"]));
    } else if !rev.is_empty() && !cfg.is_empty() {
        errs.also(FieldErrors::multiple_one_of(&[
            "revisionName",
            "configurationName",
        ]));
    } else if !rev.is_empty() {
        let el = naming::is_qualified_name(rev);
        if !el.is_empty() {
            errs.also(FieldErrors::invalid_key_name(
                rev,
                "revisionName",
                &el.join(", "),
            ));
        }
    } else if !cfg.is_empty() {
        let el = naming::is_qualified_name(cfg);
        if !el.is_empty() {
            errs.also(FieldErrors::invalid_key_name(
                cfg,
                "configurationName",
                &el.join(", "),
            ));
        }
    } else if !in_service {
        errs.also(FieldErrors::missing_one_of(&[
            "revisionName",
            "configurationName",
        ]));
    }
    if let Some(p) = tt.percent
        && !(0..=100).contains(&p)
    {
        errs.also(FieldErrors::out_of_bounds(p, 0, 100, "percent"));
    }
    if tt.url.as_deref().is_some_and(|u| !u.is_empty()) {
        errs.also(FieldErrors::disallowed(&["url"]));
    }
    errs
}

/// `apis.ValidateCreatorAndModifier`: the creator annotation never changes; lastModifier
/// changes only with the spec. Relative to `metadata.annotations`.
pub(crate) fn creator_and_modifier(
    spec_changed: bool,
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> FieldErrors {
    let mut errs = FieldErrors::new();
    let (c, u) = (keys::CREATOR_ANNOTATION, keys::UPDATER_ANNOTATION);
    if old.get(c) != new.get(c) {
        errs.also(FieldErrors::generic(
            Reason::FieldValueForbidden,
            "annotation value is immutable",
            &[c],
        ));
    }
    if !spec_changed && old.get(u) != new.get(u) {
        errs.also(FieldErrors::invalid_value(
            new.get(u).map(String::as_str).unwrap_or(""),
            u,
            "",
        ));
    }
    errs
}

/// Knative's `SetUserInfo`: stamp creator and lastModifier on create, lastModifier when an
/// update changes the spec. Nothing when the user is unknown.
pub(crate) fn set_user_info(meta: &mut ObjectMeta, user: &str, update: bool, spec_changed: bool) {
    if user.is_empty() {
        return;
    }
    if update {
        if spec_changed {
            meta.annotations
                .insert(keys::UPDATER_ANNOTATION.to_string(), user.to_string());
        }
    } else {
        meta.annotations
            .insert(keys::CREATOR_ANNOTATION.to_string(), user.to_string());
        meta.annotations
            .insert(keys::UPDATER_ANNOTATION.to_string(), user.to_string());
    }
}

/// wisp's leniency for whole-object replaces (`PUT`, `wisp apply`): a manifest that simply
/// lacks the creator/lastModifier annotations keeps the stored ones instead of failing
/// Knative's immutability check. Changing them to another value is still refused.
pub(crate) fn keep_user_annotations(new: &mut ObjectMeta, old: &ObjectMeta) {
    for k in [keys::CREATOR_ANNOTATION, keys::UPDATER_ANNOTATION] {
        if !new.annotations.contains_key(k)
            && let Some(v) = old.annotations.get(k)
        {
            new.annotations.insert(k.to_string(), v.clone());
        }
    }
}

/// A short `-old +new` listing of what differs between two JSON values, one entry per
/// changed leaf path (stands in for Knative's `kmp.ShortDiff`).
pub(crate) fn short_diff(old: &Value, new: &Value) -> String {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out.join("; ")
}

fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                diff_into(
                    &p,
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_into(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ => {
            let show = |v: &Value| {
                if v.is_null() {
                    "<none>".to_string()
                } else {
                    v.to_string()
                }
            };
            let p = if path.is_empty() { "{}" } else { path };
            out.push(format!("{p}: -{} +{}", show(old), show(new)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tt(
        rev: &str,
        cfg: &str,
        latest: Option<bool>,
        percent: Option<i64>,
        tag: &str,
    ) -> TrafficTarget {
        TrafficTarget {
            tag: tag.into(),
            revision_name: rev.into(),
            configuration_name: cfg.into(),
            latest_revision: latest,
            percent,
            url: None,
        }
    }

    #[test]
    fn traffic_table() {
        let table: Vec<(Vec<TrafficTarget>, bool, &str)> = vec![
            (vec![tt("", "", Some(true), Some(100), "")], true, ""),
            (
                vec![tt("", "", Some(true), Some(90), "")],
                true,
                "Traffic targets sum to 90, want 100: ",
            ),
            (
                vec![
                    tt("s-1", "", Some(false), Some(50), "a"),
                    tt("", "", Some(true), Some(50), "a"),
                ],
                true,
                "Multiple definitions for \"a\": [0].tag, [1].tag",
            ),
            (
                vec![tt("s-1", "", Some(true), Some(100), "")],
                true,
                "may not set revisionName \"s-1\" when latestRevision is true: [0].latestRevision",
            ),
            (
                vec![tt("", "", Some(false), Some(100), "")],
                true,
                "may not set revisionName \"\" when latestRevision is false: [0].latestRevision",
            ),
            (
                vec![tt("", "cfg", Some(true), Some(100), "")],
                true,
                "must not set the field(s): [0].configurationName",
            ),
            (vec![tt("", "cfg", Some(true), Some(100), "")], false, ""),
            (
                vec![tt("", "", Some(true), Some(100), "")],
                false,
                "expected exactly one, got neither: [0].configurationName, [0].revisionName",
            ),
            (
                vec![tt("r-1", "cfg", None, Some(100), "")],
                false,
                "expected exactly one, got both: [0].configurationName, [0].revisionName",
            ),
            (
                vec![tt("", "", Some(true), Some(120), "")],
                true,
                "Traffic targets sum to 120, want 100: ; expected 0 <= 120 <= 100: [0].percent",
            ),
            (
                vec![tt("", "", Some(true), Some(100), "Bad_Tag")],
                true,
                "invalid value: not a DNS 1035 label: [a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')]: tag[0]",
            ),
        ];
        for (input, in_service, want) in table {
            assert_eq!(traffic(&input, in_service).to_string(), want, "{input:?}");
        }
    }

    #[test]
    fn revision_names() {
        let parent = |n: &str, g: &str| ObjectMeta {
            name: n.into(),
            generate_name: g.into(),
            ..ObjectMeta::default()
        };
        let table = [
            ("hello-v1", parent("hello", ""), ""),
            (
                "other-v1",
                parent("hello", ""),
                "invalid value: \"other-v1\" must have prefix \"hello-\": metadata.name",
            ),
            (
                "hello-v1",
                parent("", "hello-"),
                "must not set the field(s): metadata.name",
            ),
            ("", parent("", "hello-"), ""),
        ];
        for (name, p, want) in table {
            assert_eq!(revision_name(name, "", &p).to_string(), want, "{name}");
        }
    }

    #[test]
    fn metadata_names() {
        let m = |n: &str| ObjectMeta {
            name: n.into(),
            ..ObjectMeta::default()
        };
        assert!(name_errors(&m("hello")).is_empty());
        assert_eq!(
            name_errors(&m("")).to_string(),
            "name or generateName is required: name"
        );
        assert!(
            name_errors(&m(&"a".repeat(64)))
                .to_string()
                .starts_with("not a DNS 1035 label: [must be no more than 63 characters")
        );
        assert!(
            name_errors(&m("1abc"))
                .to_string()
                .starts_with("not a DNS 1035 label: [a DNS-1035")
        );
    }

    #[test]
    fn creator_rules() {
        let a = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let old = a(&[
            (keys::CREATOR_ANNOTATION, "alice"),
            (keys::UPDATER_ANNOTATION, "alice"),
        ]);
        assert!(creator_and_modifier(false, &old, &old).is_empty());
        let changed = a(&[
            (keys::CREATOR_ANNOTATION, "bob"),
            (keys::UPDATER_ANNOTATION, "alice"),
        ]);
        assert_eq!(
            creator_and_modifier(true, &old, &changed).to_string(),
            "annotation value is immutable: serving.knative.dev/creator"
        );
        let modder = a(&[
            (keys::CREATOR_ANNOTATION, "alice"),
            (keys::UPDATER_ANNOTATION, "bob"),
        ]);
        assert_eq!(
            creator_and_modifier(false, &old, &modder).to_string(),
            "invalid value: bob: serving.knative.dev/lastModifier"
        );
        assert!(creator_and_modifier(true, &old, &modder).is_empty());
    }

    #[test]
    fn diffs() {
        let a = serde_json::json!({"spec": {"containers": [{"image": "a"}]}, "x": 1});
        let b = serde_json::json!({"spec": {"containers": [{"image": "b"}]}});
        assert_eq!(
            short_diff(&a, &b),
            "spec.containers[0].image: -\"a\" +\"b\"; x: -1 +<none>"
        );
        assert_eq!(short_diff(&a, &a), "");
    }
}
