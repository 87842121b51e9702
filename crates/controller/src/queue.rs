//! The work queue: level-triggered, deduplicated, one reconcile per key at a time.
//!
//! Like client-go's workqueue (and kube-rs' scheduler): a key added many times while it waits
//! is reconciled once; a key added while it is being reconciled is reconciled again afterwards,
//! never concurrently; a failed key comes back after a per-key exponential back-off.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// The kinds the serving controller reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Service,
    Configuration,
    Revision,
    Route,
}

/// One object to reconcile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Key {
        Key {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}/{}", self.kind, self.namespace, self.name)
    }
}

#[derive(Default)]
struct State {
    pending: VecDeque<Key>,
    queued: HashSet<Key>,
    active: HashSet<Key>,
    /// Added again while active: to be re-queued when it finishes.
    dirty: HashSet<Key>,
    failures: HashMap<Key, u32>,
}

#[derive(Default, Clone)]
pub struct Queue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

/// Back-off after `failures` consecutive failures: 10 ms doubling, capped at 10 s.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << failures.min(10))).min(Duration::from_secs(10))
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn add(&self, key: Key) {
        let mut s = self.lock();
        if s.active.contains(&key) {
            s.dirty.insert(key);
        } else if s.queued.insert(key.clone()) {
            s.pending.push_back(key);
            drop(s);
            self.notify.notify_one();
        }
    }

    /// The next key to work on; waits while the queue is empty.
    pub async fn next(&self) -> Key {
        loop {
            let notified = self.notify.notified();
            {
                let mut s = self.lock();
                if let Some(key) = s.pending.pop_front() {
                    s.queued.remove(&key);
                    s.active.insert(key.clone());
                    if !s.pending.is_empty() {
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Marks `key` finished; a failed key is added back after its back-off.
    pub fn done(&self, key: Key, ok: bool) {
        let delay = {
            let mut s = self.lock();
            s.active.remove(&key);
            let again = s.dirty.remove(&key);
            if ok {
                s.failures.remove(&key);
                if !again {
                    return;
                }
                None
            } else {
                let n = s.failures.entry(key.clone()).or_insert(0);
                *n += 1;
                Some(backoff(*n))
            }
        };
        match delay {
            None => self.add(key),
            Some(d) => {
                let q = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    q.add(key);
                });
            }
        }
    }

    /// Keys waiting or being worked on.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.pending.len() + s.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> Key {
        Key::new(Kind::Service, "default", name)
    }

    #[tokio::test]
    async fn dedupes_and_never_runs_a_key_twice_at_once() {
        let q = Queue::default();
        q.add(k("a"));
        q.add(k("a"));
        q.add(k("b"));
        assert_eq!(q.next().await, k("a"));
        q.add(k("a")); // while active: deferred, not handed out
        assert_eq!(q.next().await, k("b"));
        assert_eq!(q.len(), 2);
        q.done(k("b"), true);
        q.done(k("a"), true); // dirty: comes back
        assert_eq!(q.next().await, k("a"));
        q.done(k("a"), true);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_keys_come_back_after_backoff() {
        let q = Queue::default();
        q.add(k("a"));
        let key = q.next().await;
        q.done(key, false);
        assert!(q.is_empty());
        tokio::time::advance(Duration::from_millis(25)).await;
        assert_eq!(q.next().await, k("a"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(20));
        assert_eq!(backoff(3), Duration::from_millis(80));
        assert_eq!(backoff(40), Duration::from_secs(10));
    }
}
