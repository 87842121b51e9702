//! In-memory caches of the objects reconcilers read (client-go's informers and listers).
//!
//! Reconcilers read only from here, never from the store, so a reconcile costs no I/O until it
//! decides to write. Caches hold typed objects behind `Arc`: parsed once per change, shared by
//! every reader, and far smaller than the JSON documents they came from.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::de::DeserializeOwned;
use wisp_api::meta::ObjectMeta;
use wisp_api::serving::{Configuration, Revision, Route, Service};

/// The cached objects of one kind, keyed by `(namespace, name)`.
pub struct Indexer<T> {
    items: RwLock<BTreeMap<(String, String), Arc<T>>>,
}

impl<T> Default for Indexer<T> {
    fn default() -> Self {
        Indexer {
            items: RwLock::new(BTreeMap::new()),
        }
    }
}

/// What the cache needs to know about an object.
pub trait Object: DeserializeOwned + Clone + Send + Sync + 'static {
    fn meta(&self) -> &ObjectMeta;
}

macro_rules! object {
    ($t:ty) => {
        impl Object for $t {
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    };
}
object!(Service);
object!(Configuration);
object!(Revision);
object!(Route);

fn rv(meta: &ObjectMeta) -> u64 {
    meta.resource_version.parse().unwrap_or(0)
}

impl<T: Object> Indexer<T> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(String, String), Arc<T>>> {
        self.items.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(String, String), Arc<T>>> {
        self.items.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Every object of one namespace.
    pub fn list(&self, namespace: &str) -> Vec<Arc<T>> {
        self.read()
            .range((namespace.to_string(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Stores `obj` unless the cache already holds a newer version of it (events replayed
    /// after a relist must not roll the cache back).
    pub fn upsert(&self, obj: T) {
        let key = (obj.meta().namespace.clone(), obj.meta().name.clone());
        let mut items = self.write();
        if items
            .get(&key)
            .is_some_and(|cur| rv(cur.meta()) > rv(obj.meta()))
        {
            return;
        }
        items.insert(key, Arc::new(obj));
    }

    /// Removes the object if the deletion is newer than what is cached.
    pub fn remove(&self, namespace: &str, name: &str, deleted_rv: u64) {
        let key = (namespace.to_string(), name.to_string());
        let mut items = self.write();
        if items
            .get(&key)
            .is_some_and(|cur| rv(cur.meta()) <= deleted_rv)
        {
            items.remove(&key);
        }
    }

    /// Replaces the whole content after a (re)list.
    pub fn replace(&self, objects: Vec<Arc<T>>) {
        let map = objects
            .into_iter()
            .map(|o| ((o.meta().namespace.clone(), o.meta().name.clone()), o))
            .collect();
        *self.write() = map;
    }
}

/// The caches of every kind the serving reconcilers read.
#[derive(Default)]
pub struct Caches {
    pub services: Indexer<Service>,
    pub configurations: Indexer<Configuration>,
    pub revisions: Indexer<Revision>,
    pub routes: Indexer<Route>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ns: &str, name: &str, rv: &str) -> Service {
        let mut s = Service::new(ns, name);
        s.metadata.resource_version = rv.into();
        s
    }

    #[test]
    fn never_rolls_back_and_lists_by_namespace() {
        let idx = Indexer::<Service>::default();
        idx.upsert(svc("a", "x", "5"));
        idx.upsert(svc("a", "x", "3"));
        assert_eq!(idx.get("a", "x").unwrap().metadata.resource_version, "5");
        idx.upsert(svc("a", "y", "6"));
        idx.upsert(svc("ab", "z", "7"));
        idx.upsert(svc("b", "z", "8"));
        let names: Vec<String> = idx
            .list("a")
            .iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        assert_eq!(names, ["x", "y"]);
        idx.remove("a", "x", 4);
        assert!(
            idx.get("a", "x").is_some(),
            "a stale delete must not remove a newer object"
        );
        idx.remove("a", "x", 9);
        assert!(idx.get("a", "x").is_none());
        assert_eq!(idx.len(), 3);
    }
}
