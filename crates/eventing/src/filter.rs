//! Trigger filters: compiled once when a Trigger is admitted or changes, then matched against
//! every event the broker fans out.
//!
//! Why compile: validation and matching must agree. Knative validates in the webhook
//! (knative/eventing `pkg/apis/eventing/v1/trigger_validation.go`) and builds the runnable
//! filter separately in the dispatcher (`pkg/eventfilter/subscriptionsapi/create.go`), where
//! anything the webhook let through but the builder rejects is *silently dropped* (an `exact`
//! with an empty value simply stops filtering). Here [`compile`] is the only way to obtain a
//! [`Filter`], and admission calls the same function, so what is stored is what runs.
//!
//! Rules, from Knative unless marked:
//! - A non-empty `spec.filters` wins over `spec.filter.attributes` (`filterEvent` in
//!   `pkg/broker/filter/filter_handler.go`); both are validated regardless, as the webhook
//!   does. With neither, every event matches.
//! - `spec.filters` is an implicit `all`. Each element sets exactly one dialect. Knative's
//!   webhook only refuses *several* dialects; an element with *none* is refused here too
//!   (Knative would treat it as "no filter" and match everything).
//! - `exact`/`prefix`/`suffix` hold exactly one attribute (the CloudEvents Subscriptions API
//!   rule; Knative's dispatcher code assumes it "as validated by the webhook", which does not
//!   check it), whose name matches `^[a-z][a-z0-9]*$` and whose value is not empty (Knative's
//!   `NewExactFilter` and friends refuse empty values at run time).
//! - `cesql` must parse; at run time an evaluation error or a non-Boolean result means "no
//!   match" (`pkg/eventfilter/subscriptionsapi/cesql_filter.go`, CESQL spec §1.2).
//! - Legacy `filter.attributes`: every key must be present with exactly that value
//!   (case-sensitive); the value `""` matches any present, non-empty value
//!   (`pkg/eventfilter/attributes/filter.go`).
//!
//! Matching takes attributes as strings, as they arrive over HTTP, through a look-up closure,
//! and borrows them: exact, prefix, suffix and attribute filters never allocate. Knative also
//! reorders `all`/`any` children at run time by how often they short-circuit; that needs
//! shared mutable state and is left out, so evaluation order is the order written.
//!
//! Error paths are relative to the Trigger's `spec` (`filters[1].exact[Type]`,
//! `filter.attributes[Bad]`); admission prefixes `spec.`.

use std::collections::BTreeMap;

use wisp_api::eventing::SubscriptionsApiFilter;

use crate::cesql::Expression;

/// A compiled trigger filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Everything,
    /// Legacy `filter.attributes`, in key order.
    Attributes(Vec<(String, String)>),
    Exact {
        name: String,
        value: String,
    },
    Prefix {
        name: String,
        value: String,
    },
    Suffix {
        name: String,
        value: String,
    },
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Cesql(Box<Expression>),
}

/// A refused filter: the offending field, relative to the Trigger's `spec`, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> FilterError {
    FilterError {
        field: field.into(),
        message: message.into(),
    }
}

/// Validates and compiles a Trigger's `spec.filters` and legacy `spec.filter.attributes`.
/// Returns the first problem found, in document order.
pub fn compile(
    filters: &[SubscriptionsApiFilter],
    attributes: Option<&BTreeMap<String, String>>,
) -> Result<Filter, FilterError> {
    let mut legacy = Vec::new();
    for (name, value) in attributes.into_iter().flatten() {
        check_attribute_name(name, &format!("filter.attributes[{name}]"))?;
        legacy.push((name.clone(), value.clone()));
    }
    let mut nodes = Vec::with_capacity(filters.len());
    for (i, f) in filters.iter().enumerate() {
        nodes.push(element(f, &format!("filters[{i}]"))?);
    }
    let root = if !nodes.is_empty() {
        all(nodes)
    } else if !legacy.is_empty() {
        Node::Attributes(legacy)
    } else {
        Node::Everything
    };
    Ok(Filter { root })
}

impl Filter {
    /// The filter that lets every event through (a Trigger without filters).
    pub fn everything() -> Filter {
        Filter {
            root: Node::Everything,
        }
    }

    /// Whether this filter lets every event through, so the caller may skip matching.
    pub fn is_everything(&self) -> bool {
        self.root == Node::Everything
    }

    /// Whether the event whose attributes `attr` returns (by name, `None` when absent)
    /// passes.
    pub fn matches<'e>(&self, attr: &dyn Fn(&str) -> Option<&'e str>) -> bool {
        self.root.matches(attr)
    }
}

impl Default for Filter {
    fn default() -> Self {
        Filter::everything()
    }
}

impl Node {
    fn matches<'e>(&self, attr: &dyn Fn(&str) -> Option<&'e str>) -> bool {
        match self {
            Node::Everything => true,
            Node::Attributes(pairs) => pairs.iter().all(|(name, want)| match attr(name) {
                None => false,
                Some(got) if want.is_empty() => !got.is_empty(),
                Some(got) => got == want,
            }),
            Node::Exact { name, value } => attr(name) == Some(value.as_str()),
            Node::Prefix { name, value } => {
                attr(name).is_some_and(|v| v.starts_with(value.as_str()))
            }
            Node::Suffix { name, value } => attr(name).is_some_and(|v| v.ends_with(value.as_str())),
            Node::All(nodes) => nodes.iter().all(|n| n.matches(attr)),
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(attr)),
            Node::Not(node) => !node.matches(attr),
            Node::Cesql(expr) => expr.matches(attr),
        }
    }
}

/// A list with a single element needs no wrapper.
fn all(mut nodes: Vec<Node>) -> Node {
    if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::All(nodes)
    }
}

fn element(f: &SubscriptionsApiFilter, path: &str) -> Result<Node, FilterError> {
    let mut set = Vec::new();
    if !f.exact.is_empty() {
        set.push("exact");
    }
    if !f.prefix.is_empty() {
        set.push("prefix");
    }
    if !f.suffix.is_empty() {
        set.push("suffix");
    }
    if !f.all.is_empty() {
        set.push("all");
    }
    if !f.any.is_empty() {
        set.push("any");
    }
    if f.not.is_some() {
        set.push("not");
    }
    if !f.cesql.is_empty() {
        set.push("cesql");
    }
    match set.as_slice() {
        [] => {
            return Err(refuse(
                path,
                "no dialect set: set exactly one of exact, prefix, suffix, all, any, not, cesql",
            ));
        }
        [_] => {}
        many => {
            return Err(refuse(
                path,
                format!(
                    "multiple dialects found ({}), filters can have only one dialect set",
                    many.join(", ")
                ),
            ));
        }
    }
    if !f.exact.is_empty() {
        let (name, value) = single(&f.exact, path, "exact")?;
        return Ok(Node::Exact { name, value });
    }
    if !f.prefix.is_empty() {
        let (name, value) = single(&f.prefix, path, "prefix")?;
        return Ok(Node::Prefix { name, value });
    }
    if !f.suffix.is_empty() {
        let (name, value) = single(&f.suffix, path, "suffix")?;
        return Ok(Node::Suffix { name, value });
    }
    if !f.all.is_empty() {
        return Ok(Node::All(list(&f.all, &format!("{path}.all"))?));
    }
    if !f.any.is_empty() {
        return Ok(Node::Any(list(&f.any, &format!("{path}.any"))?));
    }
    if let Some(inner) = &f.not {
        return Ok(Node::Not(Box::new(element(inner, &format!("{path}.not"))?)));
    }
    match Expression::parse(&f.cesql) {
        Ok(expr) => Ok(Node::Cesql(Box::new(expr))),
        Err(e) => Err(refuse(
            format!("{path}.cesql"),
            format!("invalid CESQL expression: {e}"),
        )),
    }
}

fn list(filters: &[SubscriptionsApiFilter], path: &str) -> Result<Vec<Node>, FilterError> {
    filters
        .iter()
        .enumerate()
        .map(|(i, f)| element(f, &format!("{path}[{i}]")))
        .collect()
}

/// The one attribute of an `exact`/`prefix`/`suffix` map.
fn single(
    map: &BTreeMap<String, String>,
    path: &str,
    dialect: &str,
) -> Result<(String, String), FilterError> {
    let field = format!("{path}.{dialect}");
    let mut entries = map.iter();
    let (Some((name, value)), None) = (entries.next(), entries.next()) else {
        return Err(refuse(
            field,
            format!(
                "must hold exactly one attribute, found {}: use one {dialect} filter per attribute inside all or any",
                map.len()
            ),
        ));
    };
    let field = format!("{field}[{name}]");
    check_attribute_name(name, &field)?;
    if value.is_empty() {
        return Err(refuse(field, "the value must not be empty"));
    }
    Ok((name.clone(), value.clone()))
}

/// Knative's `validAttributeName`: `^[a-z][a-z0-9]*$`.
fn check_attribute_name(name: &str, field: &str) -> Result<(), FilterError> {
    let mut bytes = name.bytes();
    let valid = bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(refuse(
            field,
            format!(
                "invalid key name {name:?}: attribute names must start with a letter and contain only lowercase letters and digits"
            ),
        ))
    }
}

#[cfg(test)]
mod tests;
