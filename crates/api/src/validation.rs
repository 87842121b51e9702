//! Field errors with paths, in Knative's style and with Kubernetes' cause types.
//!
//! Why both: users read Knative's messages ("missing field(s): spec.template.spec.containers[0].image")
//! and scripts read Kubernetes' `Status.details.causes[{reason, message, field}]`. One error
//! value carries what both need. Rules build errors relative to the object they check and
//! prefix paths on the way out (`via_field`, `via_index`), as knative.dev/pkg `apis.FieldError`
//! does, so each rule stays small and testable; every error is collected, never just the first.

use std::fmt;

/// Kubernetes `metav1.CauseType` values used for field errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// A required field is empty.
    FieldValueRequired,
    /// A value is malformed or out of range.
    FieldValueInvalid,
    /// A value is not one of the supported ones.
    FieldValueNotSupported,
    /// A value must be unique and is not.
    FieldValueDuplicate,
    /// A field may not be set (or changed) here.
    FieldValueForbidden,
    /// A value has the wrong JSON type, or the field is unknown.
    FieldValueTypeInvalid,
}

impl Reason {
    /// The `reason` string of a Kubernetes status cause.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::FieldValueRequired => "FieldValueRequired",
            Reason::FieldValueInvalid => "FieldValueInvalid",
            Reason::FieldValueNotSupported => "FieldValueNotSupported",
            Reason::FieldValueDuplicate => "FieldValueDuplicate",
            Reason::FieldValueForbidden => "FieldValueForbidden",
            Reason::FieldValueTypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// One problem at one path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldError {
    /// Dotted path from the object root, e.g. `spec.template.spec.containers[0].image`.
    /// Empty means the object itself.
    pub path: String,
    /// Knative's message, e.g. `missing field(s)` or `invalid value: 70000`.
    pub message: String,
    pub reason: Reason,
    /// Knative's optional extra line ("Details"), empty if none.
    pub details: String,
}

impl FieldError {
    pub fn new(reason: Reason, message: impl Into<String>, path: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            message: message.into(),
            reason,
            details: String::new(),
        }
    }

    /// The message of a Kubernetes status cause: message and details together.
    pub fn cause_message(&self) -> String {
        if self.details.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.message, self.details)
        }
    }
}

/// Every problem found in one object. Empty means valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        FieldErrors(Vec::new())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.0.iter()
    }
    /// `Ok(())` when empty.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Appends all of `other`.
    pub fn also(&mut self, other: FieldErrors) -> &mut Self {
        self.0.extend(other.0);
        self
    }
    pub fn push(&mut self, e: FieldError) -> &mut Self {
        self.0.push(e);
        self
    }

    /// Prefixes every path with `field` (which may itself be dotted or end in `[i]`).
    pub fn via_field(mut self, field: &str) -> Self {
        for e in &mut self.0 {
            e.path = join(field, &e.path);
        }
        self
    }
    /// Prefixes every path with `[index]`.
    pub fn via_index(self, index: usize) -> Self {
        self.via_field(&format!("[{index}]"))
    }
    /// Prefixes every path with `field[index]`.
    pub fn via_field_index(self, field: &str, index: usize) -> Self {
        self.via_index(index).via_field(field)
    }
    /// Prefixes every path with `[key]` (annotations, labels).
    pub fn via_key(self, key: &str) -> Self {
        self.via_field(&format!("[{key}]"))
    }
    /// Prefixes every path with `field[key]`.
    pub fn via_field_key(self, field: &str, key: &str) -> Self {
        self.via_key(key).via_field(field)
    }

    // Knative's constructors (knative.dev/pkg apis/field_error.go), one error per path.

    fn each(reason: Reason, message: String, details: &str, paths: &[&str]) -> Self {
        let paths: &[&str] = if paths.is_empty() { &[""] } else { paths };
        FieldErrors(
            paths
                .iter()
                .map(|p| FieldError {
                    path: (*p).to_string(),
                    message: message.clone(),
                    reason,
                    details: details.to_string(),
                })
                .collect(),
        )
    }
    /// `missing field(s)`.
    pub fn missing(paths: &[&str]) -> Self {
        Self::each(
            Reason::FieldValueRequired,
            "missing field(s)".into(),
            "",
            paths,
        )
    }
    /// `must not set the field(s)`.
    pub fn disallowed(paths: &[&str]) -> Self {
        Self::each(
            Reason::FieldValueForbidden,
            "must not set the field(s)".into(),
            "",
            paths,
        )
    }
    /// `invalid value: {value}`.
    pub fn invalid_value(value: impl fmt::Display, path: &str, details: &str) -> Self {
        Self::each(
            Reason::FieldValueInvalid,
            format!("invalid value: {value}"),
            details,
            &[path],
        )
    }
    /// `expected {lower} <= {value} <= {upper}`.
    pub fn out_of_bounds(
        value: impl fmt::Display,
        lower: impl fmt::Display,
        upper: impl fmt::Display,
        path: &str,
    ) -> Self {
        Self::each(
            Reason::FieldValueInvalid,
            format!("expected {lower} <= {value} <= {upper}"),
            "",
            &[path],
        )
    }
    /// `expected exactly one, got neither`.
    pub fn missing_one_of(paths: &[&str]) -> Self {
        Self::each(
            Reason::FieldValueRequired,
            "expected exactly one, got neither".into(),
            "",
            paths,
        )
    }
    /// `expected exactly one, got both`.
    pub fn multiple_one_of(paths: &[&str]) -> Self {
        Self::each(
            Reason::FieldValueInvalid,
            "expected exactly one, got both".into(),
            "",
            paths,
        )
    }
    /// `invalid key name "{key}"`.
    pub fn invalid_key_name(key: &str, path: &str, details: &str) -> Self {
        Self::each(
            Reason::FieldValueInvalid,
            format!("invalid key name {key:?}"),
            details,
            &[path],
        )
    }
    /// Any other message.
    pub fn generic(reason: Reason, message: impl Into<String>, paths: &[&str]) -> Self {
        Self::each(reason, message.into(), "", paths)
    }
    /// Any other message with details.
    pub fn generic_details(
        reason: Reason,
        message: impl Into<String>,
        details: &str,
        paths: &[&str],
    ) -> Self {
        Self::each(reason, message.into(), details, paths)
    }
}

impl From<FieldError> for FieldErrors {
    fn from(e: FieldError) -> Self {
        FieldErrors(vec![e])
    }
}

impl IntoIterator for FieldErrors {
    type Item = FieldError;
    type IntoIter = std::vec::IntoIter<FieldError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Joins two path parts the way knative.dev/pkg flattens them: indices stick to the part
/// before them, empty parts vanish.
fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

/// Knative's rendering: errors with the same message and details are merged into one line
/// listing their (sorted, de-duplicated) paths; lines are sorted by message and joined with
/// `"; "`. Details, when present, follow in parentheses.
impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
        for e in &self.0 {
            match groups
                .iter_mut()
                .find(|(m, d, _)| *m == e.message && *d == e.details)
            {
                Some((_, _, paths)) => {
                    if !paths.contains(&e.path.as_str()) {
                        paths.push(&e.path);
                    }
                }
                None => groups.push((&e.message, &e.details, vec![&e.path])),
            }
        }
        for (_, _, paths) in &mut groups {
            paths.sort_unstable();
        }
        groups.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (i, (message, details, paths)) in groups.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{message}: {}", paths.join(", "))?;
            if !details.is_empty() {
                write!(f, " ({details})")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_flatten_like_knative() {
        let e = FieldErrors::missing(&["image"])
            .via_field_index("containers", 0)
            .via_field("spec")
            .via_field("template")
            .via_field("spec");
        assert_eq!(e.0[0].path, "spec.template.spec.containers[0].image");
        let e = FieldErrors::generic(Reason::FieldValueInvalid, "x", &[""]).via_field("traffic");
        assert_eq!(e.0[0].path, "traffic");
        let e = FieldErrors::invalid_value("bad", "", "")
            .via_field_key("annotations", "autoscaling.knative.dev/min-scale")
            .via_field("metadata");
        assert_eq!(
            e.0[0].path,
            "metadata.annotations[autoscaling.knative.dev/min-scale]"
        );
    }

    #[test]
    fn display_merges_and_sorts() {
        let mut e = FieldErrors::missing(&["spec.b"]);
        e.also(FieldErrors::invalid_value(70000, "spec.port", "too big"));
        e.also(FieldErrors::missing(&["spec.a"]));
        assert_eq!(
            e.to_string(),
            "invalid value: 70000: spec.port (too big); missing field(s): spec.a, spec.b"
        );
    }

    #[test]
    fn reasons() {
        assert_eq!(
            FieldErrors::missing(&["a"]).0[0].reason,
            Reason::FieldValueRequired
        );
        assert_eq!(
            FieldErrors::disallowed(&["a"]).0[0].reason,
            Reason::FieldValueForbidden
        );
        assert_eq!(Reason::FieldValueDuplicate.as_str(), "FieldValueDuplicate");
    }
}
