//! DKIM verification over real vectors: the dkimpy-signed trap (4,000 messages, signatures made
//! by dkimpy, an independent implementation) must agree with its truth.csv on every signature.

mod common;

use common::*;
use std::collections::HashMap;

/// Our result for the trap's expected value. The trap writes a revoked key as
/// `no-key` with detail `key-revoked`; mailcensus has a result of its own for it.
fn expected_result(expected: &str, detail: &str) -> &'static str {
    match (expected, detail) {
        ("no-key", "key-revoked") => "key-revoked",
        ("pass", _) => "pass",
        ("fail-body", _) => "fail-body",
        ("fail-signature", _) => "fail-signature",
        ("no-key", _) => "no-key",
        ("none", _) => "none",
        (other, _) => panic!("unknown expected result {other:?} in truth.csv"),
    }
}

#[test]
fn dkimpy_trap_signatures_agree_with_truth() {
    let Some(c) = corpora() else { return };
    let dir = c.join("dkimpy-signed-trap");
    let out = tempfile::tempdir().unwrap();
    scan_ok(
        &[
            dir.join("corpus.mbox").as_os_str(),
            os("--keys"),
            dir.join("keys.zone").as_os_str(),
        ],
        out.path(),
    );
    let truth = rows(&dir.join("truth.csv"));
    let sigs = rows(&out.path().join("signatures.csv"));
    let messages = rows(&out.path().join("messages.csv"));
    let by_key: HashMap<(String, String), &HashMap<String, String>> = sigs
        .iter()
        .map(|r| ((r["entry_offset"].clone(), r["signature"].clone()), r))
        .collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (t, m) in truth.iter().zip(&messages) {
        assert_eq!(t["mbox_offset"], m["entry_offset"]);
        let n: usize = t["n_sigs"].parse().unwrap();
        for k in 1..=n {
            let p = format!("sig{k}_");
            let Some(ours) = by_key.get(&(t["mbox_offset"].clone(), k.to_string())) else {
                problems.push(format!("#{} sig {k}: no row in signatures.csv", t["index"]));
                continue;
            };
            checked += 1;
            let want = expected_result(&t[&format!("{p}expected")], &t[&format!("{p}detail")]);
            // truth.csv flags l= (1/0); the value itself must be a positive number.
            let has_l = t[&format!("{p}l")] == "1";
            if has_l != ours["l"].parse::<u64>().is_ok_and(|l| l > 0) {
                problems.push(format!(
                    "#{} sig {k} l: ours {:?} truth flag {}",
                    t["index"], ours["l"], has_l
                ));
            }
            for (field, theirs) in [
                ("d", t[&format!("{p}d")].as_str()),
                ("s", t[&format!("{p}s")].as_str()),
                ("a", t[&format!("{p}a")].as_str()),
                ("c", t[&format!("{p}c")].as_str()),
                ("result", want),
            ] {
                if ours[field] != theirs {
                    problems.push(format!(
                        "#{} sig {k} {field}: ours {:?} ({}) truth {:?}",
                        t["index"], ours[field], ours["detail"], theirs
                    ));
                }
            }
        }
        // The message verdict: pass if any signature passes, else the first one's result.
        let mapped: Vec<&str> = (1..=n)
            .map(|k| {
                expected_result(
                    &t[&format!("sig{k}_expected")],
                    &t[&format!("sig{k}_detail")],
                )
            })
            .collect();
        let want = if mapped.contains(&"pass") {
            "pass"
        } else {
            mapped.first().copied().unwrap_or("none")
        };
        assert_eq!(
            expected_result(&t["dkim_expected"], ""),
            if want == "key-revoked" {
                "no-key"
            } else {
                want
            },
            "truth.csv's own message verdict follows the same rule"
        );
        if m["dkim"] != want {
            problems.push(format!(
                "#{} message verdict: ours {:?} truth {:?}",
                t["index"], m["dkim"], want
            ));
        }
    }
    assert_eq!(checked, 4_801, "signatures checked");
    assert_eq!(sigs.len(), 4_801, "one signatures.csv row per signature");
    assert!(
        problems.is_empty(),
        "{} disagreements, e.g.:\n{}",
        problems.len(),
        problems[..problems.len().min(15)].join("\n")
    );
}

/// Several records for one selector (rotated keys): every one is tried and the verdict says which
/// verified. The trap's keys are loaded with, for every name, a wrong key (another name's) first.
#[test]
fn rotated_keys_are_all_tried() {
    let Some(c) = corpora() else { return };
    let dir = c.join("dkimpy-signed-trap");
    let mut store = mailcensus::auth::keys::KeyStore::new();
    store.load_file(&dir.join("keys.zone")).unwrap();
    let records: Vec<(String, Vec<String>)> = store
        .iter()
        .map(|(n, rs)| (n.to_string(), rs.iter().map(|r| r.value.clone()).collect()))
        .collect();
    let decoy = records
        .iter()
        .find(|(_, vs)| vs.iter().any(|v| v.contains("p=MIIB")))
        .map(|(_, vs)| vs[0].clone())
        .unwrap();
    let mut rotated = String::new();
    for (name, values) in &records {
        // A revoked record stays alone: with a decoy before it, the decoy's failure would be
        // the first answer (the first record's result is reported when none verifies).
        let revoked = values.iter().any(|v| v.trim_end().ends_with("p="));
        if !values.contains(&decoy) && !revoked {
            rotated.push_str(&format!("{name} \"{decoy}\"\n"));
        }
        for v in values {
            rotated.push_str(&format!("{name} \"{v}\"\n"));
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("rotated.txt");
    std::fs::write(&keys, rotated).unwrap();
    let plain = tempfile::tempdir().unwrap();
    let with_rotation = tempfile::tempdir().unwrap();
    let mbox = dir.join("corpus.mbox");
    scan_ok(
        &[
            mbox.as_os_str(),
            os("--keys"),
            dir.join("keys.zone").as_os_str(),
        ],
        plain.path(),
    );
    scan_ok(
        &[mbox.as_os_str(), os("--keys"), keys.as_os_str()],
        with_rotation.path(),
    );
    let a = rows(&plain.path().join("signatures.csv"));
    let b = rows(&with_rotation.path().join("signatures.csv"));
    assert_eq!(a.len(), b.len());
    let mut second_key_passes = 0;
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x["result"], y["result"], "{x:?} vs {y:?}");
        if y["result"] == "pass" && y["detail"].contains("key #2") {
            second_key_passes += 1;
        }
    }
    assert!(
        second_key_passes > 1000,
        "passes found with the second key: {second_key_passes}"
    );
}

/// Signatures on damaged messages each still get a row with a reason, never silence: a header
/// line without a colon above the signature, a header block cut off without its final newline,
/// `l=00`, an `l=` beyond the body, a `d=` with an empty label. Built from a generated message
/// whose untouched signature passes (checked first, so the edits are what change the verdict).
#[test]
fn damaged_signatures_get_a_verdict_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = tmp.path().join("gen");
    let ok = bin()
        .args(["generate", "--messages", "60", "--seed", "41", "--out"])
        .arg(&generated)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mbox = std::fs::read(generated.join("corpus.mbox")).unwrap();
    // One-signature messages with `l=` whose signature passes, from the generator's truth.
    let truth = rows(&generated.join("truth.csv"));
    let mut per_message: HashMap<&str, Vec<&HashMap<String, String>>> = HashMap::new();
    for t in &truth {
        per_message
            .entry(t["mbox_offset"].as_str())
            .or_default()
            .push(t);
    }
    let mut offsets: Vec<usize> = mbox
        .windows(5)
        .enumerate()
        .filter(|(i, w)| w == b"From " && (*i == 0 || mbox[i - 1] == b'\n'))
        .map(|(i, _)| i)
        .collect();
    offsets.push(mbox.len());
    let (start, sig) = per_message
        .iter()
        .filter(|(_, sigs)| {
            sigs.len() == 1 && sigs[0]["expected"] == "pass" && !sigs[0]["l"].is_empty()
        })
        .map(|(off, sigs)| (off.parse::<usize>().unwrap(), sigs[0]))
        .min_by_key(|(off, _)| *off)
        .expect("a generated message with one passing l= signature");
    let end = offsets[offsets.iter().position(|&o| o == start).unwrap() + 1];
    let entry = String::from_utf8(mbox[start..end].to_vec()).unwrap();
    let l = &sig["l"];
    let d = &sig["d"];

    let header_end = entry.find("\n\n").unwrap();
    let header = &entry[..header_end];
    let sig_at = header.find("\nDKIM-Signature:").unwrap() + 1;
    let mut sig_end = sig_at + header[sig_at..].find('\n').unwrap() + 1;
    while header[sig_end..].starts_with([' ', '\t']) {
        sig_end += header[sig_end..]
            .find('\n')
            .map_or(header.len() - sig_end, |i| i + 1);
    }
    let signature_field = header[sig_at..sig_end.min(header.len())].trim_end();
    // Header-only, signature last, no final newline (From_ line kept: it is an mbox entry).
    let cut = format!(
        "{}{}\n{}",
        &header[..sig_at],
        &header[sig_end.min(header.len())..].trim_start_matches('\n'),
        signature_field
    )
    .replace("\n\n", "\n");
    // An edit inside the signature field only (Authentication-Results also names header.d=).
    let in_signature = |from: &str, to: &str| {
        entry.replacen(signature_field, &signature_field.replacen(from, to, 1), 1)
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("untouched", entry.clone(), "pass", ""),
        (
            "no-colon",
            entry.replacen(
                "\nDKIM-Signature:",
                "\nThis line has no colon\nDKIM-Signature:",
                1,
            ),
            "permerror",
            "has no colon",
        ),
        (
            "cut",
            cut.trim_end().to_string(),
            "permerror",
            "larger than the canonicalized body",
        ),
        (
            "l-zeros",
            in_signature(&format!("l={l};"), "l=00;"),
            "fail-body",
            "",
        ),
        (
            "l-beyond",
            in_signature(&format!("l={l};"), "l=99999999;"),
            "permerror",
            "larger than the canonicalized body",
        ),
        (
            "d-dot",
            in_signature(&format!(" d={d};"), &format!(" d={d}.;")),
            "permerror",
            "not a domain name",
        ),
    ];
    for (name, text, result, detail) in cases {
        assert!(
            name == "untouched" || text != entry,
            "{name}: the edit did not apply"
        );
        let file = tmp.path().join(format!("{name}.mbox"));
        std::fs::write(&file, text.as_bytes()).unwrap();
        let out = tmp.path().join(format!("out-{name}"));
        scan_ok(
            &[
                file.as_os_str(),
                os("--keys"),
                generated.join("keys.zone").as_os_str(),
            ],
            &out,
        );
        let sigs = rows(&out.join("signatures.csv"));
        assert_eq!(
            sigs.len(),
            1,
            "{name}: one signature row expected, got {sigs:?}"
        );
        assert_eq!(sigs[0]["result"], result, "{name}: {:?}", sigs[0]);
        assert!(sigs[0]["detail"].contains(detail), "{name}: {:?}", sigs[0]);
        assert_eq!(sigs[0]["d"].trim_end_matches('.'), d.as_str(), "{name}");
        if name == "l-zeros" {
            assert_eq!(sigs[0]["l"], "0", "l=00 is an explicit empty body");
        }
    }
}
