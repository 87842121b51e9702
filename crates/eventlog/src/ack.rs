//! Turning out-of-order completions into a cursor.
//!
//! A dispatcher delivers several records at once and they finish in any order, but a cursor
//! can only say "everything up to here is done". Committing the highest finished seq would
//! skip the slower ones after a crash; committing only after everything in flight finished
//! would stall behind one slow subscriber. The low-water mark is the highest cursor that is
//! true: the seq just below the oldest delivery still in flight.

use std::collections::BTreeSet;

use crate::Seq;

/// The low-water mark of one consumer's deliveries. Pure bookkeeping: no I/O, no clock.
///
/// Records are tracked in increasing seq order (the order they are read). A record the
/// dispatcher does not deliver (a trigger filter rejected it) is passed with
/// [`AckTracker::skip`], so that the cursor moves past it too.
#[derive(Debug, Clone)]
pub struct AckTracker {
    /// The highest seq tracked or skipped.
    highest: Seq,
    /// Tracked and not yet done.
    in_flight: BTreeSet<Seq>,
}

impl AckTracker {
    /// Starts at the consumer's cursor (as returned by `ensure_consumer`).
    pub fn new(cursor: Seq) -> AckTracker {
        AckTracker {
            highest: cursor,
            in_flight: BTreeSet::new(),
        }
    }

    /// A delivery of `seq` started. Seqs must be tracked in increasing order; a seq at or
    /// below one already tracked is ignored (it cannot be told apart from a duplicate).
    pub fn track(&mut self, seq: Seq) {
        debug_assert!(seq > self.highest, "seq {seq} tracked out of order");
        if seq > self.highest {
            self.highest = seq;
            self.in_flight.insert(seq);
        }
    }

    /// `seq` needs no delivery (filtered out): done as soon as everything before it is.
    pub fn skip(&mut self, seq: Seq) {
        self.highest = self.highest.max(seq);
    }

    /// The delivery of `seq` finished (delivered, or given up on and dead-lettered). Returns
    /// false when `seq` was not in flight.
    pub fn done(&mut self, seq: Seq) -> bool {
        self.in_flight.remove(&seq)
    }

    /// The highest seq such that every tracked seq at or below it is done: the cursor to
    /// commit. Never decreases, as seqs are tracked in increasing order.
    pub fn low_water(&self) -> Seq {
        match self.in_flight.first() {
            Some(&oldest) => oldest - 1,
            None => self.highest,
        }
    }

    /// Deliveries in flight (for a dispatcher's concurrency limit).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_the_cursor() {
        let t = AckTracker::new(41);
        assert_eq!(t.low_water(), 41);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn out_of_order_completion_waits_for_the_oldest() {
        let mut t = AckTracker::new(0);
        for seq in 1..=5 {
            t.track(seq);
        }
        // (done, low water after it)
        let steps = [(3, 0), (5, 0), (1, 1), (4, 1), (2, 5)];
        for (seq, expected) in steps {
            assert!(t.done(seq));
            assert_eq!(t.low_water(), expected, "after done({seq})");
        }
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn skipped_records_pass_with_their_neighbours() {
        let mut t = AckTracker::new(10);
        t.track(11);
        t.skip(12);
        t.track(13);
        t.skip(14);
        assert_eq!(t.low_water(), 10);
        t.done(13);
        assert_eq!(t.low_water(), 10, "11 is still in flight");
        t.done(11);
        assert_eq!(t.low_water(), 14, "the skipped tail is passed too");
        t.skip(20);
        assert_eq!(
            t.low_water(),
            20,
            "nothing in flight: skips move the cursor"
        );
    }

    #[test]
    fn gaps_between_tracked_seqs_are_fine() {
        let mut t = AckTracker::new(0);
        t.track(2);
        t.track(7);
        t.track(100);
        t.done(7);
        assert_eq!(t.low_water(), 1);
        t.done(2);
        assert_eq!(t.low_water(), 99);
        t.done(100);
        assert_eq!(t.low_water(), 100);
    }

    #[test]
    fn unknown_and_repeated_done_change_nothing() {
        let mut t = AckTracker::new(5);
        t.track(6);
        assert!(!t.done(9));
        assert!(t.done(6));
        assert!(!t.done(6));
        assert_eq!(t.low_water(), 6);
    }

    #[test]
    fn low_water_never_decreases_under_any_completion_order() {
        // Every permutation of completing 1..=5, with tracking interleaved.
        let mut perms = vec![vec![]];
        for n in 1..=5u64 {
            perms = perms
                .into_iter()
                .flat_map(|p: Vec<u64>| {
                    (0..=p.len()).map(move |i| {
                        let mut q = p.clone();
                        q.insert(i, n);
                        q
                    })
                })
                .collect();
        }
        assert_eq!(perms.len(), 120);
        for order in perms {
            let mut t = AckTracker::new(0);
            (1..=5).for_each(|s| t.track(s));
            let mut last = 0;
            let mut finished = BTreeSet::new();
            for seq in order {
                t.done(seq);
                finished.insert(seq);
                let lw = t.low_water();
                assert!(lw >= last);
                // Exactly the longest finished prefix.
                let prefix = (1..=5).take_while(|s| finished.contains(s)).count() as u64;
                assert_eq!(lw, prefix);
                last = lw;
            }
        }
    }
}
