//! Kubernetes object metadata and Knative status conditions.
//!
//! Every stored object carries the same `metadata` and (for Knative kinds) the same condition
//! list, so the rules for them live once, here. Conditions follow knative.dev/pkg's
//! `apis.ConditionSet`: a "happy" condition (`Ready`) is derived from dependent conditions, and
//! `lastTransitionTime` only moves when a condition actually changes. Time is an argument
//! (`now`, RFC 3339 with seconds and `Z`) so reconcilers stay deterministic under test.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `metadata` of every object, with Kubernetes' JSON names. Empty strings and empty maps are
/// omitted on output, as Go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub self_link: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub generation: i64,
    /// RFC 3339, e.g. `2026-01-02T03:04:05Z`. `null` (what `kubectl create --dry-run` prints)
    /// reads as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Server-side apply bookkeeping, kept verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields: Option<serde_json::Value>,
}

impl ObjectMeta {
    /// The owner reference marked `controller: true`, if any.
    pub fn controller_ref(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|r| r.controller == Some(true))
    }
}

pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// `metadata.ownerReferences[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// The owner reference a parent puts on the children it controls (Knative's
/// `kmeta.NewControllerRef`): `controller` and `blockOwnerDeletion` both true.
pub fn controller_owner_ref(
    api_version: &str,
    kind: &str,
    name: &str,
    uid: &str,
) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `metav1.LabelSelector`: `matchLabels` and `matchExpressions`, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry: `In`, `NotIn` (with values), `Exists`, `DoesNotExist`
/// (without).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// `True`, `False` or `Unknown`, as Kubernetes spells them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to read a non-True condition. `Error` (serialised as `""` and omitted) is the only one
/// that drags `Ready` down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Severity {
    #[default]
    #[serde(rename = "")]
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn is_error(&self) -> bool {
        *self == Severity::Error
    }
}

/// One entry of `status.conditions` (knative.dev/pkg `apis.Condition`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Severity::is_error")]
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Condition {
    pub fn new(type_: &str, status: ConditionStatus) -> Self {
        Condition {
            type_: type_.to_string(),
            status,
            ..Condition::default()
        }
    }
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
    pub fn is_false(&self) -> bool {
        self.status == ConditionStatus::False
    }
    pub fn is_unknown(&self) -> bool {
        self.status == ConditionStatus::Unknown
    }
}

/// The condition type every Knative object reports.
pub const READY: &str = "Ready";

/// Finds a condition by type.
pub fn get_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets `cond` in `conditions` (replacing one of the same type) and keeps the list sorted by
/// type, as knative.dev/pkg does. If nothing but the time would change, the old entry (and its
/// `lastTransitionTime`) is kept; otherwise the time becomes `now`. Returns whether anything
/// changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut cond: Condition, now: &str) -> bool {
    if let Some(old) = conditions.iter().find(|c| c.type_ == cond.type_) {
        cond.last_transition_time = old.last_transition_time.clone();
        if *old == cond {
            return false;
        }
    }
    cond.last_transition_time = Some(now.to_string());
    conditions.retain(|c| c.type_ != cond.type_);
    conditions.push(cond);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    true
}

/// A happy condition and the conditions it depends on (knative.dev/pkg
/// `NewLivingConditionSet`).
/// Restores `lastTransitionTime` on every condition of `new` that ends where it was in `old`
/// (same status, reason, message and severity). Recomputing a status step by step may pass
/// through other states on the way; only a real change of a condition is a transition, and
/// an unchanged status must compare equal so nothing is written.
pub fn keep_transition_times(old: &[Condition], new: &mut [Condition]) {
    for c in new.iter_mut() {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_)
            && o.status == c.status
            && o.reason == c.reason
            && o.message == c.message
            && o.severity == c.severity
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionSet {
    pub happy: &'static str,
    pub dependents: &'static [&'static str],
}

/// Service: Ready <- ConfigurationsReady + RoutesReady.
pub const SERVICE_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["ConfigurationsReady", "RoutesReady"],
};
/// Configuration: Ready only.
pub const CONFIGURATION_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &[],
};
/// Revision: Ready <- ResourcesAvailable + ContainerHealthy (`Active` is informational).
pub const REVISION_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &["ResourcesAvailable", "ContainerHealthy"],
};
/// Route: Ready <- AllTrafficAssigned + IngressReady + CertificateProvisioned.
pub const ROUTE_CONDITIONS: ConditionSet = ConditionSet {
    happy: READY,
    dependents: &[
        "AllTrafficAssigned",
        "IngressReady",
        "CertificateProvisioned",
    ],
};

impl ConditionSet {
    /// A manager that edits `conditions` with this set's rules, stamping changes with `now`.
    pub fn manage<'a>(
        &self,
        conditions: &'a mut Vec<Condition>,
        now: &'a str,
    ) -> ConditionManager<'a> {
        ConditionManager {
            set: *self,
            conditions,
            now,
        }
    }

    fn is_terminal(&self, t: &str) -> bool {
        t == self.happy || self.dependents.contains(&t)
    }

    fn severity(&self, t: &str) -> Severity {
        if self.is_terminal(t) {
            Severity::Error
        } else {
            Severity::Info
        }
    }
}

/// Knative's condition manager: marking a dependent recomputes the happy condition.
pub struct ConditionManager<'a> {
    set: ConditionSet,
    conditions: &'a mut Vec<Condition>,
    now: &'a str,
}

impl ConditionManager<'_> {
    pub fn get(&self, t: &str) -> Option<&Condition> {
        get_condition(self.conditions, t)
    }

    /// True when the happy condition is True.
    pub fn is_happy(&self) -> bool {
        self.get(self.set.happy).is_some_and(Condition::is_true)
    }

    fn set(&mut self, t: &str, status: ConditionStatus, reason: &str, message: &str) {
        let cond = Condition {
            type_: t.to_string(),
            status,
            severity: self.set.severity(t),
            last_transition_time: None,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        set_condition(self.conditions, cond, self.now);
    }

    /// Adds the happy condition and every dependent as Unknown (True if happy already is),
    /// leaving existing ones alone.
    pub fn initialize(&mut self) {
        let happy_status = match self.get(self.set.happy) {
            Some(c) => c.status,
            None => {
                self.set(self.set.happy, ConditionStatus::Unknown, "", "");
                ConditionStatus::Unknown
            }
        };
        let status = if happy_status == ConditionStatus::True {
            ConditionStatus::True
        } else {
            ConditionStatus::Unknown
        };
        for t in self.set.dependents {
            if self.get(t).is_none() {
                self.set(t, status, "", "");
            }
        }
    }

    pub fn mark_true(&mut self, t: &str) {
        self.set(t, ConditionStatus::True, "", "");
        self.recompute_happiness(t);
    }

    pub fn mark_true_with_reason(&mut self, t: &str, reason: &str, message: &str) {
        self.set(t, ConditionStatus::True, reason, message);
        self.recompute_happiness(t);
    }

    /// Marks `t` Unknown; the happy condition follows unless some dependent is already False.
    pub fn mark_unknown(&mut self, t: &str, reason: &str, message: &str) {
        self.set(t, ConditionStatus::Unknown, reason, message);
        let mut is_dependent = false;
        for d in self.set.dependents {
            if let Some(failed) = self.get(d).filter(|c| c.is_false()) {
                if !self.get(self.set.happy).is_some_and(Condition::is_false) {
                    // Knative copies the Unknown's reason; keep the failure's when it has none.
                    let reason = if reason.is_empty() {
                        failed.reason.clone()
                    } else {
                        reason.to_string()
                    };
                    self.set(self.set.happy, ConditionStatus::False, &reason, message);
                }
                return;
            }
            if *d == t {
                is_dependent = true;
            }
        }
        if is_dependent {
            self.set(self.set.happy, ConditionStatus::Unknown, reason, message);
        }
    }

    /// Marks `t` False (and the happy condition too when `t` is a dependent). A False
    /// condition must carry a `reason`.
    pub fn mark_false(&mut self, t: &str, reason: &str, message: &str) {
        debug_assert!(
            !reason.is_empty(),
            "a False condition must carry a reason ({t})"
        );
        self.set(t, ConditionStatus::False, reason, message);
        if self.set.dependents.contains(&t) {
            self.set(self.set.happy, ConditionStatus::False, reason, message);
        }
    }

    /// Removes a non-terminal condition (terminal ones cannot be cleared).
    pub fn clear(&mut self, t: &str) -> bool {
        if self.set.is_terminal(t) {
            return false;
        }
        let before = self.conditions.len();
        self.conditions.retain(|c| c.type_ != t);
        before != self.conditions.len()
    }

    fn recompute_happiness(&mut self, t: &str) {
        if let Some(c) = self.find_unhappy_dependent() {
            let (status, reason, message) = (c.status, c.reason.clone(), c.message.clone());
            self.set(self.set.happy, status, &reason, &message);
        } else if t != self.set.happy {
            self.set(self.set.happy, ConditionStatus::True, "", "");
        }
    }

    fn find_unhappy_dependent(&self) -> Option<Condition> {
        if self.set.dependents.is_empty() {
            return None;
        }
        let mut conds: Vec<&Condition> = self
            .conditions
            .iter()
            .filter(|c| c.severity == Severity::Error && c.type_ != self.set.happy)
            .collect();
        // Newest transition first (RFC 3339 UTC strings sort as times).
        conds.sort_by(|a, b| b.last_transition_time.cmp(&a.last_transition_time));
        if let Some(c) = conds.iter().find(|c| c.is_false()) {
            return Some((*c).clone());
        }
        if let Some(c) = conds.iter().find(|c| c.is_unknown()) {
            return Some((*c).clone());
        }
        if self.set.dependents.len() > conds.len() {
            return Some(Condition::new("", ConditionStatus::Unknown));
        }
        None
    }
}

/// `status` fields every Knative object shares (knative.dev/pkg `duckv1.Status`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Status {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub observed_generation: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-01-01T00:00:01Z";
    const T2: &str = "2026-01-01T00:00:02Z";
    const T3: &str = "2026-01-01T00:00:03Z";

    #[test]
    fn set_condition_keeps_time_when_unchanged() {
        let mut cs = Vec::new();
        assert!(set_condition(
            &mut cs,
            Condition::new("A", ConditionStatus::True),
            T1
        ));
        assert!(!set_condition(
            &mut cs,
            Condition::new("A", ConditionStatus::True),
            T2
        ));
        assert_eq!(cs[0].last_transition_time.as_deref(), Some(T1));
        let mut c = Condition::new("A", ConditionStatus::False);
        c.reason = "Broke".into();
        assert!(set_condition(&mut cs, c, T3));
        assert_eq!(cs[0].last_transition_time.as_deref(), Some(T3));
    }

    #[test]
    fn conditions_sorted_by_type() {
        let mut cs = Vec::new();
        set_condition(
            &mut cs,
            Condition::new("Ready", ConditionStatus::Unknown),
            T1,
        );
        set_condition(
            &mut cs,
            Condition::new("Active", ConditionStatus::Unknown),
            T1,
        );
        let types: Vec<_> = cs.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Active", "Ready"]);
    }

    #[test]
    fn happy_follows_dependents() {
        // (marks applied in order, expected Ready status)
        type Mark = (&'static str, ConditionStatus);
        let table: &[(&[Mark], ConditionStatus)] = &[
            (&[], ConditionStatus::Unknown),
            (
                &[("ConfigurationsReady", ConditionStatus::True)],
                ConditionStatus::Unknown,
            ),
            (
                &[
                    ("ConfigurationsReady", ConditionStatus::True),
                    ("RoutesReady", ConditionStatus::True),
                ],
                ConditionStatus::True,
            ),
            (
                &[
                    ("ConfigurationsReady", ConditionStatus::True),
                    ("RoutesReady", ConditionStatus::False),
                ],
                ConditionStatus::False,
            ),
            (
                &[
                    ("RoutesReady", ConditionStatus::False),
                    ("ConfigurationsReady", ConditionStatus::Unknown),
                ],
                ConditionStatus::False,
            ),
            (
                &[
                    ("RoutesReady", ConditionStatus::True),
                    ("ConfigurationsReady", ConditionStatus::Unknown),
                ],
                ConditionStatus::Unknown,
            ),
        ];
        for (i, (marks, want)) in table.iter().enumerate() {
            let mut cs = Vec::new();
            let mut m = SERVICE_CONDITIONS.manage(&mut cs, T1);
            m.initialize();
            for (t, s) in marks.iter() {
                match s {
                    ConditionStatus::True => m.mark_true(t),
                    ConditionStatus::False => m.mark_false(t, "Failed", "it failed"),
                    ConditionStatus::Unknown => m.mark_unknown(t, "Waiting", "wait"),
                }
            }
            let ready = get_condition(&cs, READY).map(|c| c.status);
            assert_eq!(ready, Some(*want), "case {i}");
        }
    }

    #[test]
    fn false_dependent_copies_reason_to_ready() {
        let mut cs = Vec::new();
        let mut m = ROUTE_CONDITIONS.manage(&mut cs, T1);
        m.initialize();
        m.mark_false(
            "AllTrafficAssigned",
            "RevisionMissing",
            "Revision \"x\" not found.",
        );
        let ready = get_condition(&cs, READY).cloned().unwrap_or_default();
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(ready.reason, "RevisionMissing");
    }

    #[test]
    fn non_dependent_is_info_and_does_not_affect_ready() {
        let mut cs = Vec::new();
        let mut m = REVISION_CONDITIONS.manage(&mut cs, T1);
        m.mark_true("ResourcesAvailable");
        m.mark_true("ContainerHealthy");
        m.mark_false("Active", "NoTraffic", "no traffic");
        assert!(m.is_happy());
        let active = get_condition(&cs, "Active").cloned().unwrap_or_default();
        assert_eq!(active.severity, Severity::Info);
        let json = serde_json::to_value(&active).unwrap_or_default();
        assert_eq!(json["severity"], "Info");
    }

    #[test]
    fn condition_json_shape() {
        let c: Condition = serde_json::from_str(
            r#"{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:01Z"}"#,
        )
        .unwrap_or_default();
        assert_eq!(c.severity, Severity::Error);
        let back = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(
            back,
            r#"{"type":"Ready","status":"True","lastTransitionTime":"2026-01-01T00:00:01Z"}"#
        );
    }

    #[test]
    fn controller_ref() {
        let r = controller_owner_ref("serving.knative.dev/v1", "Service", "hello", "u1");
        let mut m = ObjectMeta::default();
        m.owner_references.push(r.clone());
        assert_eq!(m.controller_ref(), Some(&r));
    }
}
