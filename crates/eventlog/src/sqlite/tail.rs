//! The in-memory tail of one stream: its newest durable records, contiguous by seq, within a
//! byte budget. Only the writer adds to it (after the commit) and only whole prefixes leave it
//! (over budget, or trimmed), so "the tail covers `after + 1`" is one comparison.

use std::collections::VecDeque;

use crate::{Record, Seq};

/// Bytes counted per record besides its payload (the `Record` and the deque slot).
const RECORD_OVERHEAD: usize = 48;

#[derive(Debug, Default)]
pub(super) struct Tail {
    records: VecDeque<Record>,
    bytes: usize,
}

fn cost(record: &Record) -> usize {
    record.payload.len() + RECORD_OVERHEAD
}

impl Tail {
    /// Adds newly committed records (in seq order) and evicts the oldest beyond `budget`.
    pub(super) fn push(&mut self, records: impl IntoIterator<Item = Record>, budget: usize) {
        for record in records {
            if self
                .records
                .back()
                .is_some_and(|last| last.seq + 1 != record.seq)
            {
                // Not contiguous (a commit whose outcome was unknown): start over.
                self.clear();
            }
            self.bytes += cost(&record);
            self.records.push_back(record);
        }
        self.shrink(budget);
    }

    /// Evicts the oldest records until at most `budget` bytes remain.
    pub(super) fn shrink(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= cost(&old);
        }
    }

    /// Drops records at or below `seq` (every consumer has passed them).
    pub(super) fn trim(&mut self, seq: Seq) {
        while self.records.front().is_some_and(|r| r.seq <= seq) {
            if let Some(old) = self.records.pop_front() {
                self.bytes -= cost(&old);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.bytes = 0;
    }

    /// Up to `max` records with `after < seq <= head`, or `None` when the tail does not hold
    /// `after + 1` (the caller reads SQLite instead).
    pub(super) fn read(&self, after: Seq, head: Seq, max: usize) -> Option<Vec<Record>> {
        let first = self.records.front()?.seq;
        if first > after + 1 {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).ok()?;
        Some(
            self.records
                .iter()
                .skip(skip)
                .take_while(|r| r.seq <= head)
                .take(max)
                .cloned()
                .collect(),
        )
    }

    #[cfg(test)]
    fn seqs(&self) -> Vec<Seq> {
        self.records.iter().map(|r| r.seq).collect()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn records(seqs: std::ops::RangeInclusive<Seq>) -> Vec<Record> {
        seqs.map(|seq| Record {
            seq,
            payload: Bytes::from(vec![0u8; 52]),
        })
        .collect()
    }

    /// Each test record costs 100 bytes.
    const ONE: usize = 52 + RECORD_OVERHEAD;

    #[test]
    fn serves_what_it_covers_and_nothing_past_head() {
        let mut tail = Tail::default();
        tail.push(records(5..=9), usize::MAX);
        let seqs = |v: Option<Vec<Record>>| v.map(|v| v.iter().map(|r| r.seq).collect::<Vec<_>>());
        assert_eq!(seqs(tail.read(4, 9, 100)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(seqs(tail.read(6, 9, 2)), Some(vec![7, 8]));
        assert_eq!(
            seqs(tail.read(6, 8, 100)),
            Some(vec![7, 8]),
            "head bounds it"
        );
        assert_eq!(seqs(tail.read(9, 9, 100)), Some(vec![]));
        assert_eq!(seqs(tail.read(3, 9, 100)), None, "4 is not cached");
        assert_eq!(seqs(Tail::default().read(0, 9, 100)), None);
    }

    #[test]
    fn evicts_oldest_beyond_budget() {
        let mut tail = Tail::default();
        tail.push(records(1..=10), 4 * ONE);
        assert_eq!(tail.seqs(), vec![7, 8, 9, 10]);
        tail.shrink(2 * ONE);
        assert_eq!(tail.seqs(), vec![9, 10]);
        tail.push(records(11..=11), 2 * ONE);
        assert_eq!(tail.seqs(), vec![10, 11]);
    }

    #[test]
    fn trim_drops_passed_records() {
        let mut tail = Tail::default();
        tail.push(records(1..=5), usize::MAX);
        tail.trim(3);
        assert_eq!(tail.seqs(), vec![4, 5]);
        tail.trim(9);
        assert!(tail.seqs().is_empty());
        assert_eq!(tail.bytes, 0);
    }

    #[test]
    fn a_gap_restarts_the_tail() {
        let mut tail = Tail::default();
        tail.push(records(1..=3), usize::MAX);
        tail.push(records(6..=7), usize::MAX);
        assert_eq!(tail.seqs(), vec![6, 7]);
        assert_eq!(tail.bytes, 2 * ONE);
    }
}
