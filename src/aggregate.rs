//! Stage 6, aggregate: run totals that merge across workers.
//!
//! Takes per-unit counts and gives one [`Totals`] for the run. Every field merges by addition (or
//! concatenation for notes, sorted at the end), so the result is the same for any thread count
//! and for shards merged later.

use std::collections::BTreeMap;

use crate::auth::MessageVerdict;
use crate::auth::SigResult;
use crate::headers::Malformed;
use crate::work::Note;

/// Counts over a run (or a part of one).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Input files opened (an archive counts once, not per member).
    pub files: u64,
    /// Bytes of the input files as stored (compressed size for compressed files).
    pub bytes: u64,
    /// Bytes of all mbox entries and message files, after decompression.
    pub message_bytes: u64,
    /// Messages seen: `parsed + malformed`.
    pub messages: u64,
    pub parsed: u64,
    /// Malformed messages by reason, indexed by [`Malformed::index`].
    pub malformed: [u64; Malformed::ALL.len()],
    /// Received fields read, over all messages.
    pub received_hops: u64,
    /// Messages with at least one field written lossily (non-UTF-8 bytes or unknown charset).
    pub lossy_messages: u64,
    /// Lines inside header blocks that were not fields (skipped).
    pub bad_header_lines: u64,
    /// Messages whose receipt time could not be found from Received, envelope or Date.
    pub no_receipt_time: u64,
    /// DKIM signatures by result, indexed by [`SigResult::index`].
    pub signatures: [u64; SigResult::ALL.len()],
    /// Messages by DKIM verdict (a signature result, or `none` last).
    pub dkim_messages: [u64; MessageVerdict::COUNT],
    /// Messages with a passing signature aligned with the From domain.
    pub dkim_aligned: u64,
    /// Key names (`selector._domainkey.domain.`) that signatures needed and the store lacked.
    pub missing_keys: std::collections::BTreeSet<String>,
    /// Key names seen in signatures (collected by the key-name pass for live DNS).
    pub key_names: std::collections::BTreeSet<String>,
    /// Inputs skipped or unreadable, with reasons.
    pub notes: Vec<Note>,
}

impl Totals {
    /// Add another part's counts into this one.
    pub fn merge(&mut self, other: Totals) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.message_bytes += other.message_bytes;
        self.messages += other.messages;
        self.parsed += other.parsed;
        for (a, b) in self.malformed.iter_mut().zip(other.malformed) {
            *a += b;
        }
        self.received_hops += other.received_hops;
        self.lossy_messages += other.lossy_messages;
        self.bad_header_lines += other.bad_header_lines;
        self.no_receipt_time += other.no_receipt_time;
        self.dkim_aligned += other.dkim_aligned;
        self.missing_keys.extend(other.missing_keys);
        self.key_names.extend(other.key_names);
        for (a, b) in self.signatures.iter_mut().zip(other.signatures) {
            *a += b;
        }
        for (a, b) in self.dkim_messages.iter_mut().zip(other.dkim_messages) {
            *a += b;
        }
        self.notes.extend(other.notes);
    }

    /// Total malformed messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }

    /// Malformed counts by reason name, zero counts left out.
    pub fn malformed_by_reason(&self) -> BTreeMap<&'static str, u64> {
        Malformed::ALL
            .iter()
            .zip(self.malformed)
            .filter(|(_, n)| *n > 0)
            .map(|(m, n)| (m.as_str(), n))
            .collect()
    }

    /// DKIM signature counts by result name, zero counts left out.
    pub fn signatures_by_result(&self) -> BTreeMap<&'static str, u64> {
        SigResult::ALL
            .iter()
            .zip(self.signatures)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str(), n))
            .collect()
    }

    /// Messages by DKIM verdict name, zero counts left out.
    pub fn dkim_messages_by_verdict(&self) -> BTreeMap<&'static str, u64> {
        let names = SigResult::ALL
            .iter()
            .map(|r| r.as_str())
            .chain(std::iter::once("none"));
        names
            .zip(self.dkim_messages)
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Inputs that could not be read.
    pub fn unreadable(&self) -> impl Iterator<Item = &Note> {
        self.notes.iter().filter(|n| n.status == "unreadable")
    }

    /// Inputs skipped on purpose, counted by reason.
    pub fn skipped_by_reason(&self) -> BTreeMap<&str, u64> {
        let mut m = BTreeMap::new();
        for n in self.notes.iter().filter(|n| n.status == "skipped") {
            *m.entry(n.reason.as_str()).or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_everything() {
        let mut a = Totals {
            messages: 3,
            parsed: 2,
            ..Totals::default()
        };
        a.malformed[Malformed::Truncated.index()] = 1;
        let mut b = a.clone();
        b.notes.push(Note::skipped("x", "not-mail"));
        a.merge(b);
        assert_eq!(a.messages, 6);
        assert_eq!(a.malformed_total(), 2);
        assert_eq!(a.malformed_by_reason().get("truncated"), Some(&2));
        assert_eq!(a.skipped_by_reason().get("not-mail"), Some(&1));
    }
}
