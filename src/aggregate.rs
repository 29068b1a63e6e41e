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
    /// DKIM signatures by signing domain (`d=`, lowercased), then by result.
    pub signing_domains: BTreeMap<String, [u64; SigResult::ALL.len()]>,
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
        for (domain, counts) in other.signing_domains {
            let mine = self.signing_domains.entry(domain).or_default();
            for (a, b) in mine.iter_mut().zip(counts) {
                *a += b;
            }
        }
        for (a, b) in self.signatures.iter_mut().zip(other.signatures) {
            *a += b;
        }
        for (a, b) in self.dkim_messages.iter_mut().zip(other.dkim_messages) {
            *a += b;
        }
        self.notes.extend(other.notes);
    }

    /// Count one signature of domain `d` with `result`.
    pub fn add_signature(&mut self, d: &str, result: SigResult) {
        self.signatures[result.index()] += 1;
        let counts = match self.signing_domains.get_mut(d) {
            Some(counts) => counts,
            None => self
                .signing_domains
                .entry(d.to_ascii_lowercase())
                .or_default(),
        };
        counts[result.index()] += 1;
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

    /// The counts as JSON, every count named (a shard's partial keeps its totals so; read back
    /// with [`Totals::from_json`]). The key names of the key-name pass are not kept.
    pub fn to_json(&self) -> serde_json::Value {
        let named = |names: &mut dyn Iterator<Item = &'static str>, counts: &[u64]| {
            names
                .zip(counts.iter().copied())
                .map(|(n, c)| (n.to_string(), serde_json::Value::from(c)))
                .collect::<serde_json::Map<_, _>>()
        };
        serde_json::json!({
            "files": self.files,
            "bytes": self.bytes,
            "message_bytes": self.message_bytes,
            "messages": self.messages,
            "parsed": self.parsed,
            "malformed": named(&mut Malformed::ALL.iter().map(|m| m.as_str()), &self.malformed),
            "received_hops": self.received_hops,
            "lossy_messages": self.lossy_messages,
            "bad_header_lines": self.bad_header_lines,
            "no_receipt_time": self.no_receipt_time,
            "signatures": named(&mut SigResult::ALL.iter().map(|r| r.as_str()), &self.signatures),
            "dkim_messages": named(
                &mut SigResult::ALL.iter().map(|r| r.as_str()).chain(std::iter::once("none")),
                &self.dkim_messages
            ),
            "dkim_aligned": self.dkim_aligned,
            "missing_keys": self.missing_keys,
            "signing_domains": self.signing_domains.iter().map(|(d, counts)| {
                (d.clone(), named(&mut SigResult::ALL.iter().map(|r| r.as_str()), counts).into())
            }).collect::<serde_json::Map<_, _>>(),
            "notes": self.notes,
        })
    }

    /// Totals written by [`Totals::to_json`]; an error names what is missing or unknown.
    pub fn from_json(v: &serde_json::Value) -> Result<Totals, String> {
        let count = |key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_u64)
                .ok_or_else(|| format!("totals: no count {key:?}"))
        };
        let named = |key: &str, names: &[&'static str], into: &mut [u64]| -> Result<(), String> {
            let map = v
                .get(key)
                .and_then(serde_json::Value::as_object)
                .ok_or_else(|| format!("totals: no {key:?}"))?;
            for (name, n) in map {
                let i = names
                    .iter()
                    .position(|k| k == name)
                    .ok_or_else(|| format!("totals: unknown {key} {name:?}"))?;
                into[i] = n
                    .as_u64()
                    .ok_or_else(|| format!("totals: {key} {name:?} is no count"))?;
            }
            Ok(())
        };
        let mut t = Totals {
            files: count("files")?,
            bytes: count("bytes")?,
            message_bytes: count("message_bytes")?,
            messages: count("messages")?,
            parsed: count("parsed")?,
            received_hops: count("received_hops")?,
            lossy_messages: count("lossy_messages")?,
            bad_header_lines: count("bad_header_lines")?,
            no_receipt_time: count("no_receipt_time")?,
            dkim_aligned: count("dkim_aligned")?,
            ..Totals::default()
        };
        let malformed: Vec<&'static str> = Malformed::ALL.iter().map(|m| m.as_str()).collect();
        named("malformed", &malformed, &mut t.malformed)?;
        let results: Vec<&'static str> = SigResult::ALL.iter().map(|r| r.as_str()).collect();
        named("signatures", &results, &mut t.signatures)?;
        let verdicts: Vec<&'static str> = results.iter().copied().chain(["none"]).collect();
        named("dkim_messages", &verdicts, &mut t.dkim_messages)?;
        for name in v
            .get("missing_keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("totals: no missing_keys")?
        {
            t.missing_keys.insert(
                name.as_str()
                    .ok_or("totals: a missing key is no text")?
                    .to_string(),
            );
        }
        for (domain, counts) in v
            .get("signing_domains")
            .and_then(serde_json::Value::as_object)
            .ok_or("totals: no signing_domains")?
        {
            let mut into = [0u64; SigResult::ALL.len()];
            for (name, n) in counts.as_object().ok_or("totals: signing domain counts")? {
                let i = results
                    .iter()
                    .position(|k| k == name)
                    .ok_or_else(|| format!("totals: unknown signature result {name:?}"))?;
                into[i] = n.as_u64().ok_or("totals: a signature count is no count")?;
            }
            t.signing_domains.insert(domain.clone(), into);
        }
        for note in v
            .get("notes")
            .and_then(serde_json::Value::as_array)
            .ok_or("totals: no notes")?
        {
            let text = |k: &str| {
                note.get(k)
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| format!("totals: a note has no {k:?}"))
            };
            t.notes.push(Note {
                path: text("path")?.to_string(),
                status: match text("status")? {
                    "skipped" => "skipped",
                    "unreadable" => "unreadable",
                    other => return Err(format!("totals: unknown note status {other:?}")),
                },
                reason: text("reason")?.to_string(),
            });
        }
        Ok(t)
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

    #[test]
    fn totals_read_back_from_json_as_written() {
        let mut t = Totals {
            files: 2,
            bytes: 1 << 40,
            message_bytes: 77,
            messages: 9,
            parsed: 7,
            received_hops: 30,
            lossy_messages: 1,
            bad_header_lines: 4,
            no_receipt_time: 2,
            dkim_aligned: 3,
            ..Totals::default()
        };
        t.malformed[Malformed::Truncated.index()] = 2;
        t.signatures[SigResult::ALL.len() - 1] = 5;
        t.dkim_messages[MessageVerdict::COUNT - 1] = 6;
        t.missing_keys.insert("s._domainkey.example.".into());
        t.add_signature("Shop.Example", SigResult::Pass);
        t.add_signature("shop.example", SigResult::ALL[SigResult::ALL.len() - 1]);
        assert_eq!(t.signing_domains.len(), 1, "d= is counted lowercased");
        t.notes.push(Note::skipped("a \"b\"", "not-mail"));
        t.notes.push(Note {
            path: "c".into(),
            status: "unreadable",
            reason: "gone".into(),
        });
        let text = serde_json::to_string(&t.to_json()).unwrap();
        let back = Totals::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, t);
        let mut broken = t.to_json();
        broken["malformed"]["no-such-reason"] = 1.into();
        assert!(
            Totals::from_json(&broken)
                .unwrap_err()
                .contains("no-such-reason")
        );
    }
}
