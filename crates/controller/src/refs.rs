//! Which Routes name which Configurations and Revisions: an index kept from Route events, so
//! a Revision or Configuration change finds the Routes to reconcile without scanning every
//! Route of its namespace (that scan made reconciling grow quadratically with Services).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

type NsName = (String, String);

#[derive(Default)]
struct Inner {
    /// (namespace, configuration or revision name) -> routes naming it.
    by_target: HashMap<NsName, BTreeSet<String>>,
    /// (namespace, route) -> the names it references, to undo them on change.
    by_route: HashMap<NsName, Vec<String>>,
}

/// The index; cheap to query, updated once per Route event.
#[derive(Default)]
pub struct RouteRefs(Mutex<Inner>);

impl RouteRefs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `route` now references exactly `targets` (empty: forget the route).
    pub fn set(&self, namespace: &str, route: &str, targets: Vec<String>) {
        let mut inner = self.lock();
        let key = (namespace.to_string(), route.to_string());
        for old in inner.by_route.remove(&key).unwrap_or_default() {
            let tkey = (namespace.to_string(), old);
            if let Some(routes) = inner.by_target.get_mut(&tkey) {
                routes.remove(route);
                if routes.is_empty() {
                    inner.by_target.remove(&tkey);
                }
            }
        }
        if targets.is_empty() {
            return;
        }
        for t in &targets {
            inner
                .by_target
                .entry((namespace.to_string(), t.clone()))
                .or_default()
                .insert(route.to_string());
        }
        inner.by_route.insert(key, targets);
    }

    /// The routes of `namespace` that name `target`.
    pub fn routes(&self, namespace: &str, target: &str) -> Vec<String> {
        self.lock()
            .by_target
            .get(&(namespace.to_string(), target.to_string()))
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_route_changes() {
        let refs = RouteRefs::default();
        refs.set("a", "r1", vec!["cfg".into(), "cfg-00001".into()]);
        refs.set("a", "r2", vec!["cfg".into()]);
        refs.set("b", "r3", vec!["cfg".into()]);
        assert_eq!(refs.routes("a", "cfg"), ["r1", "r2"]);
        assert_eq!(refs.routes("a", "cfg-00001"), ["r1"]);
        refs.set("a", "r1", vec!["other".into()]);
        assert_eq!(refs.routes("a", "cfg"), ["r2"]);
        assert!(refs.routes("a", "cfg-00001").is_empty());
        refs.set("a", "r2", vec![]);
        assert!(refs.routes("a", "cfg").is_empty());
        assert_eq!(refs.routes("b", "cfg"), ["r3"]);
    }
}
