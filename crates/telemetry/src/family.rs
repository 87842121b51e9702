//! Label sets with a bound.
//!
//! Label values that come from users (revision, trigger and broker names, event types) must
//! not grow the exposition without limit: a typo loop creating revisions, or a sender making up
//! event types, would otherwise make every scrape larger and the daemon's memory with it. So a
//! [`Bounded`] set holds at most `cap` label sets; past that, new ones share one series whose
//! every label is [`OVERFLOW`], which says "more of these than the cap" without losing counts.
//!
//! Lookups happen when a subject appears (a revision, a trigger) and the returned handle is
//! kept, so the request path never comes here; the event ingress, whose labels include the
//! event's type, looks up per event under a read lock.
//!
//! [`ByCode`] is the per-subject part keyed by response code: a few slots claimed by the
//! first codes seen, so that recording a response is a scan of a few atomics, not a lookup.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// The value of every label of the series that collects label sets beyond the cap.
pub const OVERFLOW: &str = "overflow";

/// The default cap of a family: 1,000 revisions, triggers, ...
pub const DEFAULT_CAP: usize = 1000;

type Key = Box<[Box<str>]>;
/// Label sets by the hash of their values; colliding sets share a bucket.
type Sets<M> = HashMap<u64, Vec<(Key, Arc<M>)>>;

/// At most `cap` label sets of one family, each with its metrics `M`.
#[derive(Debug)]
pub struct Bounded<M> {
    cap: usize,
    hasher: RandomState,
    sets: RwLock<Sets<M>>,
    len: std::sync::atomic::AtomicUsize,
    overflow: OnceLock<Arc<M>>,
    new: fn() -> M,
}

impl<M> Bounded<M> {
    pub fn new(cap: usize, new: fn() -> M) -> Bounded<M> {
        Bounded {
            cap,
            hasher: RandomState::new(),
            sets: RwLock::default(),
            len: Default::default(),
            overflow: OnceLock::new(),
            new,
        }
    }

    fn hash(&self, values: &[&str]) -> u64 {
        let mut h = self.hasher.build_hasher();
        for v in values {
            v.hash(&mut h);
        }
        h.finish()
    }

    /// The metrics of `values` (created when new; the overflow series' past the cap).
    pub fn get(&self, values: &[&str]) -> Arc<M> {
        let hash = self.hash(values);
        let same =
            |k: &Key| k.len() == values.len() && k.iter().zip(values).all(|(a, b)| **a == **b);
        {
            let sets = self.sets.read().unwrap_or_else(|e| e.into_inner());
            if let Some(m) = sets
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|(k, _)| same(k)))
            {
                return m.1.clone();
            }
        }
        let mut sets = self.sets.write().unwrap_or_else(|e| e.into_inner());
        let bucket = sets.entry(hash).or_default();
        if let Some((_, m)) = bucket.iter().find(|(k, _)| same(k)) {
            return m.clone();
        }
        if self.len.load(Ordering::Relaxed) >= self.cap {
            return self.overflow.get_or_init(|| Arc::new((self.new)())).clone();
        }
        let m = Arc::new((self.new)());
        bucket.push((values.iter().map(|v| Box::from(*v)).collect(), m.clone()));
        self.len.fetch_add(1, Ordering::Relaxed);
        m
    }

    /// Forgets `values` (a deleted revision): its series leave the exposition and make room.
    /// Handles still held keep counting, unseen.
    pub fn remove(&self, values: &[&str]) {
        let hash = self.hash(values);
        let mut sets = self.sets.write().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = sets.get_mut(&hash) {
            let before = bucket.len();
            bucket.retain(|(k, _)| {
                !(k.len() == values.len() && k.iter().zip(values).all(|(a, b)| **a == **b))
            });
            if bucket.len() < before {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
            if bucket.is_empty() {
                sets.remove(&hash);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every label set and its metrics, sorted by labels (a stable exposition), the overflow
    /// series last. The lock is held only to clone the handles.
    pub fn snapshot(&self, labels: usize) -> Vec<(Vec<String>, Arc<M>)> {
        let mut all: Vec<(Vec<String>, Arc<M>)> = {
            let sets = self.sets.read().unwrap_or_else(|e| e.into_inner());
            sets.values()
                .flatten()
                .map(|(k, m)| (k.iter().map(|v| v.to_string()).collect(), m.clone()))
                .collect()
        };
        all.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(m) = self.overflow.get() {
            all.push((vec![OVERFLOW.to_string(); labels], m.clone()));
        }
        all
    }
}

/// How many distinct response codes one subject gets its own series for.
pub const CODE_SLOTS: usize = 8;

/// Metrics of one subject by response code, without a lock: the first [`CODE_SLOTS`] codes
/// seen claim a slot each (a compare-and-swap, once); later codes share an overflow slot.
#[derive(Debug)]
pub struct ByCode<M> {
    slots: [Slot<M>; CODE_SLOTS],
    overflow: OnceLock<Box<M>>,
    new: fn() -> M,
}

#[derive(Debug)]
struct Slot<M> {
    /// The code plus one; 0 = free (so that code 0, "no response", has a slot too).
    code: AtomicU32,
    metrics: OnceLock<Box<M>>,
}

impl<M> ByCode<M> {
    pub fn new(new: fn() -> M) -> ByCode<M> {
        ByCode {
            slots: std::array::from_fn(|_| Slot {
                code: AtomicU32::new(0),
                metrics: OnceLock::new(),
            }),
            overflow: OnceLock::new(),
            new,
        }
    }

    /// The metrics of `code`. Usually the first slot or two: one load each.
    pub fn get(&self, code: u16) -> &M {
        let want = u32::from(code) + 1;
        for slot in &self.slots {
            let mut seen = slot.code.load(Ordering::Acquire);
            if seen == 0 {
                seen =
                    match slot
                        .code
                        .compare_exchange(0, want, Ordering::AcqRel, Ordering::Acquire)
                    {
                        Ok(_) => want,
                        Err(other) => other,
                    };
            }
            if seen == want {
                return slot.metrics.get_or_init(|| Box::new((self.new)()));
            }
        }
        self.overflow.get_or_init(|| Box::new((self.new)()))
    }

    /// `(Some(code), metrics)` per claimed slot, then `(None, metrics)` for the overflow.
    pub fn each(&self) -> Vec<(Option<u16>, &M)> {
        let mut out: Vec<(Option<u16>, &M)> = self
            .slots
            .iter()
            .filter_map(|s| {
                let code = s.code.load(Ordering::Acquire);
                let m = s.metrics.get()?;
                Some((u16::try_from(code - 1).ok(), &**m))
            })
            .collect();
        out.sort_by_key(|(c, _)| *c);
        if let Some(m) = self.overflow.get() {
            out.push((None, &**m));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Counter;

    #[test]
    fn label_sets_beyond_the_cap_share_the_overflow_series() {
        let f: Bounded<Counter> = Bounded::new(3, Counter::default);
        for i in 0..5 {
            f.get(&["ns", &format!("rev-{i}")]).inc();
        }
        f.get(&["ns", "rev-0"]).inc();
        assert_eq!(f.len(), 3);
        let snap = f.snapshot(2);
        assert_eq!(snap.len(), 4);
        assert_eq!(snap[0].0, ["ns", "rev-0"]);
        assert_eq!(snap[0].1.get(), 2);
        assert_eq!(snap[3].0, [OVERFLOW, OVERFLOW]);
        assert_eq!(snap[3].1.get(), 2);
        // A removed set makes room for a new one.
        f.remove(&["ns", "rev-1"]);
        assert_eq!(f.len(), 2);
        f.get(&["ns", "rev-9"]).inc();
        assert_eq!(f.len(), 3);
        assert!(f.snapshot(2).iter().any(|(k, _)| k == &["ns", "rev-9"]));
    }

    #[test]
    fn the_same_values_give_the_same_handle() {
        let f: Bounded<Counter> = Bounded::new(10, Counter::default);
        let a = f.get(&["a", "b"]);
        let b = f.get(&["a", "b"]);
        assert!(Arc::ptr_eq(&a, &b));
        // Values are compared whole, not concatenated.
        let c = f.get(&["ab", ""]);
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn codes_claim_slots_then_overflow() {
        let by: ByCode<Counter> = ByCode::new(Counter::default);
        by.get(200).inc();
        by.get(200).inc();
        by.get(0).inc();
        for code in 400..410 {
            by.get(code).inc();
        }
        let each = by.each();
        assert_eq!(each[0].0, Some(0));
        assert_eq!(each[1].0, Some(200));
        assert_eq!(each[1].1.get(), 2);
        // 200, 0 and six 4xx codes fill the eight slots; 406..409 overflow.
        assert_eq!(each.len(), CODE_SLOTS + 1);
        assert_eq!(each.last().unwrap().0, None);
        assert_eq!(each.last().unwrap().1.get(), 4);
    }

    #[test]
    fn concurrent_claims_of_one_code_share_a_slot() {
        let by: Arc<ByCode<Counter>> = Arc::new(ByCode::new(Counter::default));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let by = by.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        by.get(200).inc();
                        by.get(503).inc();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let each = by.each();
        assert_eq!(each.len(), 2);
        assert!(each.iter().all(|(_, c)| c.get() == 4000));
    }
}
