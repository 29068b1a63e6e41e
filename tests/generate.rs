//! `mailcensus generate` against `mailcensus scan`: a synthetic corpus signed with known keys and
//! broken in known ways must be verified exactly as its truth files say, signature by signature.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn generate(out: &Path, messages: usize, seed: u64, keys_from: Option<&Path>) {
    let mut cmd = bin();
    cmd.arg("generate")
        .arg("--messages")
        .arg(messages.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .arg("-q");
    if let Some(dir) = keys_from {
        cmd.arg("--keys-from").arg(dir);
    }
    let o = cmd.output().expect("run mailcensus generate");
    assert!(
        o.status.success(),
        "generate failed: {:?}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

const MESSAGES: usize = 3_000;

#[test]
fn scan_agrees_with_generated_truth() {
    let gen_dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let g = gen_dir.path();
    generate(g, MESSAGES, 20240601, None);
    scan_ok(
        &[
            g.join("corpus.mbox").as_os_str(),
            os("--keys"),
            g.join("keys.zone").as_os_str(),
        ],
        out.path(),
    );
    let truth = rows(&g.join("truth.csv"));
    let mtruth = rows(&g.join("messages-truth.csv"));
    let sigs = rows(&out.path().join("signatures.csv"));
    let messages = rows(&out.path().join("messages.csv"));

    assert_eq!(mtruth.len(), MESSAGES);
    assert_eq!(messages.len(), MESSAGES, "one messages.csv row per message");
    assert_eq!(
        sigs.len(),
        truth.len(),
        "one signatures.csv row per signature"
    );

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let by_key: HashMap<(&str, &str), &HashMap<String, String>> = sigs
        .iter()
        .map(|r| ((r["entry_offset"].as_str(), r["signature"].as_str()), r))
        .collect();
    let mut problems = Vec::new();
    for t in &truth {
        *counts.entry(t["expected"].as_str()).or_default() += 1;
        let Some(ours) = by_key.get(&(t["mbox_offset"].as_str(), t["index"].as_str())) else {
            problems.push(format!(
                "message {} sig {}: no row in signatures.csv",
                t["message_index"], t["index"]
            ));
            continue;
        };
        for (field, theirs) in [
            ("message_id", "message_id"),
            ("d", "d"),
            ("s", "s"),
            ("a", "a"),
            ("c", "c"),
            ("l", "l"),
            ("result", "expected"),
        ] {
            if ours[field] != t[theirs] {
                problems.push(format!(
                    "message {} sig {} {field}: ours {:?} ({}) truth {:?} ({})",
                    t["message_index"],
                    t["index"],
                    ours[field],
                    ours["detail"],
                    t[theirs],
                    t["detail"]
                ));
            }
        }
    }
    for (t, m) in mtruth.iter().zip(&messages) {
        assert_eq!(
            t["mbox_offset"], m["entry_offset"],
            "message {}",
            t["message_index"]
        );
        for (field, theirs) in [
            ("message_id", "message_id"),
            ("from_domain", "from_domain"),
            ("dkim", "dkim_expected"),
        ] {
            if m[field] != t[theirs] {
                problems.push(format!(
                    "message {} {field}: ours {:?} truth {:?}",
                    t["message_index"], m[field], t[theirs]
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} disagreements, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(15)].join("\n")
    );

    for r in [
        "pass",
        "fail-body",
        "fail-signature",
        "no-key",
        "key-revoked",
    ] {
        assert!(
            counts.get(r).copied().unwrap_or(0) > 0,
            "no {r} signatures: {counts:?}"
        );
    }
    assert_eq!(counts.values().sum::<usize>(), truth.len());
    // The corpus exercises what it claims to: unsigned messages, two signatures, l= (with
    // footers beyond it), every canonicalization and algorithm, RSA-1024 and -2048 keys.
    let unsigned = mtruth
        .iter()
        .filter(|t| t["dkim_expected"] == "none")
        .count();
    assert!(
        unsigned > MESSAGES / 10 && unsigned < MESSAGES / 5,
        "{unsigned} unsigned"
    );
    assert!(truth.iter().any(|t| t["index"] == "2"));
    assert!(truth.iter().any(|t| t["detail"].contains("footer")));
    for c in ["relaxed/relaxed", "simple/simple", "relaxed/simple"] {
        assert!(truth.iter().any(|t| t["c"] == c), "no {c}");
    }
    for a in ["rsa-sha256", "ed25519-sha256"] {
        assert!(truth.iter().any(|t| t["a"] == a), "no {a}");
    }
    for bits in ["1024", "2048", "256"] {
        assert!(
            sigs.iter().any(|s| s["key_bits"] == bits),
            "no {bits}-bit key used"
        );
    }
    let summary = summary(out.path());
    assert_eq!(summary["totals"]["messages"], MESSAGES as u64, "{summary}");
}

#[test]
fn same_seed_and_keys_give_the_same_corpus() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    generate(a.path(), 300, 42, None);
    // Same seed, keys of run a: byte-identical output (RSA PKCS#1 v1.5 and Ed25519 signatures
    // are deterministic).
    generate(b.path(), 300, 42, Some(a.path()));
    for f in [
        "corpus.mbox",
        "keys.zone",
        "keys.private",
        "truth.csv",
        "messages-truth.csv",
    ] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        assert!(
            x == y,
            "{f} differs between two runs with the same seed and keys"
        );
    }
    // Another seed, same keys: a different corpus.
    generate(c.path(), 300, 43, Some(a.path()));
    let x = std::fs::read(a.path().join("corpus.mbox")).unwrap();
    let z = std::fs::read(c.path().join("corpus.mbox")).unwrap();
    assert_ne!(x, z, "seeds 42 and 43 gave the same corpus");
    let ta = std::fs::read(a.path().join("truth.csv")).unwrap();
    let tc = std::fs::read(c.path().join("truth.csv")).unwrap();
    assert_ne!(ta, tc);
}
