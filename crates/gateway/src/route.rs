//! Routing phase: host -> route -> a revision, by weighted pick.
//!
//! The daemon's [`RoutingTable`] is compiled into a [`Snapshot`] whose targets point straight
//! at the revisions' state, so a request does one hash lookup (its host) and one random draw.
//! Snapshots are immutable and swapped whole through an `ArcSwap`: a request sees either the
//! old table or the new one, never a table being edited, and never waits for a writer.
//!
//! The pick is [`pick_weighted`], a pure function of the cumulative weights and a random roll;
//! each request (each HTTP/1.1 request, each HTTP/2 stream) draws on its own, as Knative's
//! ingress does, so shares hold whatever the replica counts.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use crate::revision::RevisionState;
use crate::table::{RevisionKey, RoutingTable};

/// An immutable, compiled routing table.
#[derive(Default)]
pub(crate) struct Snapshot {
    hosts: HashMap<Box<str>, CompiledRoute>,
}

pub(crate) struct CompiledRoute {
    pub namespace: Arc<str>,
    pub route: Arc<str>,
    /// Running sums of the weights, one per target; the last is the total.
    cumulative: Box<[u32]>,
    targets: Box<[Target]>,
}

/// A route's target: the revision's live state, or only its key when the gateway has not been
/// told about that revision (yet, or any more).
pub(crate) enum Target {
    Known(Arc<RevisionState>),
    Unknown(RevisionKey),
}

impl Snapshot {
    /// Compiles `table` against the revisions the gateway knows.
    pub fn compile(
        table: &RoutingTable,
        revisions: &HashMap<RevisionKey, Arc<RevisionState>>,
    ) -> Snapshot {
        let hosts = table
            .iter()
            .map(|(host, route)| {
                let weights: Vec<u32> = route.targets.iter().map(|(_, p)| *p).collect();
                let compiled = CompiledRoute {
                    namespace: route.namespace.as_str().into(),
                    route: route.route.as_str().into(),
                    cumulative: cumulative(&weights).into_boxed_slice(),
                    targets: route
                        .targets
                        .iter()
                        .map(|(key, _)| match revisions.get(key) {
                            Some(state) => Target::Known(state.clone()),
                            None => Target::Unknown(key.clone()),
                        })
                        .collect(),
                };
                (Box::from(host), compiled)
            })
            .collect();
        Snapshot { hosts }
    }

    /// The route for a normalised host.
    pub fn lookup(&self, host: &str) -> Option<&CompiledRoute> {
        self.hosts.get(host)
    }
}

impl CompiledRoute {
    /// The target for one request; `None` when the route has no targets.
    pub fn pick(&self) -> Option<&Target> {
        match self.targets.len() {
            0 => None,
            1 => self.targets.first(),
            _ => self
                .targets
                .get(pick_weighted(&self.cumulative, random_u32())),
        }
    }
}

/// Running sums of `weights`. All-zero weights become equal weights, so a route whose
/// percents were all zeroed still serves (each target equally) rather than failing.
pub fn cumulative(weights: &[u32]) -> Vec<u32> {
    let all_zero = weights.iter().all(|w| *w == 0);
    let mut sum = 0u32;
    weights
        .iter()
        .map(|w| {
            sum = sum.saturating_add(if all_zero { 1 } else { *w });
            sum
        })
        .collect()
}

/// The index picked by `roll` (uniform over all `u32`) from running sums of weights: target
/// `i` is picked with probability `weight[i] / total`. Pure; the caller supplies randomness.
///
/// ```
/// # use wisp_gateway::route::{cumulative, pick_weighted};
/// let sums = cumulative(&[90, 0, 10]);
/// assert_eq!(pick_weighted(&sums, 0), 0);
/// assert_eq!(pick_weighted(&sums, u32::MAX), 2);
/// ```
pub fn pick_weighted(cumulative: &[u32], roll: u32) -> usize {
    let Some(&total) = cumulative.last() else {
        return 0;
    };
    // Scale the roll into 0..total without division (Lemire's multiply-shift).
    let point = ((u64::from(roll) * u64::from(total)) >> 32) as u32;
    // Targets are few (a handful of revisions): a linear scan beats a binary search.
    cumulative
        .iter()
        .position(|&sum| point < sum)
        .unwrap_or(cumulative.len() - 1)
}

/// A fast per-thread pseudo-random generator (wyrand), seeded from the standard library's
/// random hasher keys. Not for secrets; for spreading load.
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64));
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(next);
        wymix(next)
    })
}

pub(crate) fn random_u32() -> u32 {
    (random_u64() >> 32) as u32
}

fn wymix(x: u64) -> u64 {
    let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
    ((t >> 64) as u64) ^ (t as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic roll sequence (the same wyrand, fixed seed).
    fn rolls(seed: u64) -> impl Iterator<Item = u32> {
        let mut state = seed;
        std::iter::from_fn(move || {
            state = state.wrapping_add(0xa076_1d64_78bd_642f);
            Some((wymix(state) >> 32) as u32)
        })
    }

    fn shares(weights: &[u32], n: usize, seed: u64) -> Vec<f64> {
        let sums = cumulative(weights);
        let mut counts = vec![0usize; weights.len()];
        for roll in rolls(seed).take(n) {
            counts[pick_weighted(&sums, roll)] += 1;
        }
        counts
            .into_iter()
            .map(|c| 100.0 * c as f64 / n as f64)
            .collect()
    }

    #[test]
    fn ten_thousand_picks_land_within_two_points_of_each_percent() {
        let cases: &[&[u32]] = &[
            &[50, 50],
            &[90, 10],
            &[99, 1],
            &[70, 20, 10],
            &[25, 25, 25, 25],
            &[33, 33, 34],
            &[1, 0, 99],
            &[100],
        ];
        for (i, weights) in cases.iter().enumerate() {
            for seed in [1u64, 42, 0xdead_beef, i as u64 * 7919] {
                let got = shares(weights, 10_000, seed);
                let total: u32 = weights.iter().sum();
                for (w, share) in weights.iter().zip(&got) {
                    let want = 100.0 * f64::from(*w) / f64::from(total);
                    assert!(
                        (share - want).abs() <= 2.0,
                        "weights {weights:?} seed {seed}: got {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_weight_targets_are_never_picked() {
        let sums = cumulative(&[0, 100, 0]);
        for roll in rolls(7).take(10_000) {
            assert_eq!(pick_weighted(&sums, roll), 1);
        }
        for roll in [0, 1, u32::MAX / 2, u32::MAX] {
            assert_eq!(pick_weighted(&sums, roll), 1);
        }
    }

    #[test]
    fn all_zero_weights_share_equally() {
        let got = shares(&[0, 0], 10_000, 3);
        assert!((got[0] - 50.0).abs() <= 2.0, "{got:?}");
    }

    #[test]
    fn the_thread_generator_is_not_constant() {
        let a = random_u64();
        let b = random_u64();
        assert_ne!(a, b);
    }
}
