//! Whole runs over the real public corpora in ../shared/corpora: exact counts from their READMEs,
//! field-by-field agreement with the dkimpy trap's truth.csv, and spot checks read by hand.

mod common;

use common::*;
use std::collections::HashMap;

fn count_of(dir: &std::path::Path) -> (u64, u64, u64) {
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[dir.as_os_str()], out.path());
    (
        total(out.path(), "messages"),
        total(out.path(), "parsed"),
        total(out.path(), "malformed"),
    )
}

#[test]
fn message_counts_match_the_corpus_readmes() {
    let Some(c) = corpora() else { return };
    // (path, messages, malformed). phishing-pot's sample-2227.eml is a zero-byte file: a
    // message that lost its bytes, counted and reported as `empty`.
    let cases: [(&str, u64, u64); 9] = [
        ("spamassassin-public", 3897, 0),
        ("trec07p-sample/data", 2000, 0),
        ("nazario-phishing-mbox/phishing0.mbox", 415, 0),
        ("nazario-phishing-mbox/20051114.mbox", 438, 0),
        ("mailbox-perl-mbox/mbox.src", 45, 0),
        ("mailbox-perl-mbox/mbox.win", 45, 0),
        ("mailbox-perl-mbox/mbox.cpy", 45, 0),
        ("phishing-pot-sample/email", 596, 1),
        ("dkimpy-signed-trap/corpus.mbox", 4000, 0),
    ];
    for (path, want, want_malformed) in cases {
        let (seen, parsed, malformed) = count_of(&c.join(path));
        assert_eq!(seen, want, "{path}: messages seen");
        assert_eq!(
            parsed + malformed,
            seen,
            "{path}: parsed + malformed = seen"
        );
        assert_eq!(malformed, want_malformed, "{path}: malformed");
    }
}

#[test]
fn maildir_tree_counts_every_message_file() {
    let Some(c) = corpora() else { return };
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[c.join("notmuch-test-corpora").as_os_str()], out.path());
    // 320 message files per the README; the two README files are not mail and are skipped.
    assert_eq!(total(out.path(), "messages"), 320);
    let s = summary(out.path());
    assert_eq!(s["totals"]["skipped_by_reason"]["not-mail"], 2, "{s}");
}

/// The trap's truth.csv gives per message: offset, length, receipt time, date, From, envelope,
/// decoded Subject, Message-ID, hop count, origin IP, last-hop IP and size. All must agree.
#[test]
fn dkimpy_trap_agrees_with_truth_csv() {
    let Some(c) = corpora() else { return };
    let dir = c.join("dkimpy-signed-trap");
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[dir.join("corpus.mbox").as_os_str()], out.path());
    let got = rows(&out.path().join("messages.csv"));
    let truth = rows(&dir.join("truth.csv"));
    assert_eq!(got.len(), truth.len());
    let pairs: [(&str, &str); 13] = [
        ("entry_offset", "mbox_offset"),
        ("length", "mbox_length"),
        ("received_at", "arrival_utc"),
        ("date", "date_utc"),
        ("from_addr", "from_addr"),
        ("from_domain", "from_domain"),
        ("envelope_from", "envelope_from"),
        ("subject", "subject"),
        ("message_id", "message_id"),
        ("hops", "n_received"),
        ("origin_ip", "origin_ip"),
        ("client_ip", "last_hop_ip"),
        ("size", "size"),
    ];
    let mut mismatches: HashMap<&str, Vec<String>> = HashMap::new();
    for (g, t) in got.iter().zip(&truth) {
        for (ours, theirs) in pairs {
            let mut mine = g[ours].clone();
            // Cells starting with = + - @ are quoted for spreadsheets; undo that to compare.
            if mine.starts_with('\'') && !t[theirs].starts_with('\'') {
                mine.remove(0);
            }
            if mine != t[theirs] {
                mismatches.entry(ours).or_default().push(format!(
                    "#{} {ours}: ours {:?} truth {:?}",
                    t["index"], mine, t[theirs]
                ));
            }
        }
        assert_eq!(g["malformed"], "", "message {} malformed", t["index"]);
    }
    let report: Vec<String> = mismatches
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}: {} mismatches, e.g. {:?}",
                v.len(),
                &v[..v.len().min(3)]
            )
        })
        .collect();
    assert!(mismatches.is_empty(), "{}", report.join("\n"));
}

/// Every file in every corpus folder goes through: no panic, every message accounted for.
#[test]
fn every_corpus_file_goes_through() {
    let Some(c) = corpora() else { return };
    let out = tempfile::tempdir().unwrap();
    let o = scan(&[c.as_os_str()], out.path());
    assert!(
        o.status.code() == Some(0),
        "exit {:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary(out.path());
    let t = &s["totals"];
    assert_eq!(
        t["parsed"].as_u64().unwrap() + t["malformed"].as_u64().unwrap(),
        t["messages"].as_u64().unwrap()
    );
    let rows = rows(&out.path().join("messages.csv"));
    assert_eq!(rows.len() as u64, t["messages"].as_u64().unwrap());
    assert!(t["messages"].as_u64().unwrap() > 12_000, "{t}");
}
