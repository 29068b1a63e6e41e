//! `summary.json` and the short human summary: what a run saw, how long it took.
//!
//! Takes a [`ScanReport`] plus the inputs and options and gives JSON bytes (for the file) or a few
//! lines of text (for stderr). Everything except the `run` section is deterministic.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::scan::{ScanOptions, ScanReport};

/// The options of a run that `summary.json` states. A shard keeps them in its partial so the
/// merge states the same ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    pub mmap: bool,
    /// The result formats (`csv`, `parquet`, `jsonl`).
    pub formats: Vec<String>,
    pub raw_cells: bool,
    pub received_rows: bool,
    pub max_message_bytes: usize,
    pub max_header_bytes: usize,
    /// DKIM verification (None: `--no-dkim`).
    pub dkim: Option<DkimSettings>,
}

/// How signatures were judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimSettings {
    /// `receipt`, `now` or the fixed time, as on the command line.
    pub verify_at: String,
    pub min_rsa_bits: usize,
    pub accept_rsa_sha1: bool,
    pub key_names_loaded: usize,
    /// The key files given, in order, with what each gave.
    #[serde(default)]
    pub key_files: Vec<KeyFile>,
}

/// One `--keys` file or directory and what it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub path: String,
    /// Files read (1 for a file; a directory's key files).
    pub files: usize,
    /// TXT records read.
    pub records: usize,
    /// Of those, records that look like DKIM keys (named `selector._domainkey.domain`, with `p=`).
    pub usable: usize,
    /// Lines that could not be read (reported on stderr as FILE:LINE).
    pub bad_lines: usize,
}

impl RunSettings {
    /// The settings of a run with `opts`.
    pub fn of(opts: &ScanOptions) -> RunSettings {
        RunSettings {
            mmap: opts.mmap,
            formats: opts
                .formats
                .file_names("messages")
                .iter()
                .map(|n| n.trim_start_matches("messages.").to_string())
                .collect(),
            raw_cells: opts.raw_cells,
            received_rows: opts.read.hops,
            max_message_bytes: opts.stream.max_message_bytes,
            max_header_bytes: opts.read.header_limits.max_header_bytes,
            dkim: opts.dkim.as_ref().map(|v| DkimSettings {
                verify_at: v.policy().verify_at.as_text(),
                min_rsa_bits: v.policy().min_rsa_bits,
                accept_rsa_sha1: v.policy().accept_rsa_sha1,
                key_names_loaded: v.key_names(),
                key_files: Vec::new(),
            }),
        }
    }
}

/// The run's throughput: (MB/s of message bytes, messages/s).
pub fn throughput(report: &ScanReport) -> (f64, f64) {
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    (
        report.totals.message_bytes as f64 / 1e6 / secs,
        report.totals.messages as f64 / secs,
    )
}

/// Whether every input could be read.
pub fn complete(report: &ScanReport) -> bool {
    report.totals.unreadable().next().is_none()
}

/// The `summary.json` document.
pub fn summary_json(report: &ScanReport, inputs: &[PathBuf], opts: &ScanOptions) -> Vec<u8> {
    let inputs: Vec<String> = inputs
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    summary_document(report, &inputs, &RunSettings::of(opts), None)
}

/// The `summary.json` document of a run with `settings`; `merged`, for a merge of shards, goes
/// into its `run` section.
pub fn summary_document(
    report: &ScanReport,
    inputs: &[String],
    settings: &RunSettings,
    merged: Option<serde_json::Value>,
) -> Vec<u8> {
    let t = &report.totals;
    let (mbps, mps) = throughput(report);
    let unreadable: Vec<_> = t
        .unreadable()
        .map(|n| json!({"path": n.path, "error": n.reason}))
        .collect();
    let skipped: Vec<_> = t
        .notes
        .iter()
        .filter(|n| n.status == "skipped")
        .map(|n| json!({"path": n.path, "reason": n.reason}))
        .collect();
    let doc = json!({
        "tool": {"name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION")},
        "schema_version": crate::schema::SCHEMA_VERSION,
        "complete": complete(report),
        "inputs": inputs,
        "options": {
            "mmap": settings.mmap,
            "formats": settings.formats,
            "raw_cells": settings.raw_cells,
            "received_rows": settings.received_rows,
            "max_message_bytes": settings.max_message_bytes,
            "max_header_bytes": settings.max_header_bytes,
        },
        "totals": {
            "files": t.files,
            "bytes": t.bytes,
            "message_bytes": t.message_bytes,
            "messages": t.messages,
            "parsed": t.parsed,
            "malformed": t.malformed_total(),
            "malformed_by_reason": t.malformed_by_reason(),
            "received_hops": t.received_hops,
            "lossy_messages": t.lossy_messages,
            "bad_header_lines": t.bad_header_lines,
            "no_receipt_time": t.no_receipt_time,
            "skipped_files": skipped.len(),
            "skipped_by_reason": t.skipped_by_reason(),
            "unreadable_inputs": unreadable.len(),
        },
        "dkim": settings.dkim.as_ref().map(|d| json!({
            "verify_at": d.verify_at,
            "min_rsa_bits": d.min_rsa_bits,
            "accept_rsa_sha1": d.accept_rsa_sha1,
            "signatures_by_result": t.signatures_by_result(),
            "messages_by_verdict": t.dkim_messages_by_verdict(),
            "messages_aligned_pass": t.dkim_aligned,
            "key_names_loaded": d.key_names_loaded,
            "key_files": d.key_files,
            "key_names_missing": t.missing_keys.len(),
            // The first thousand; missing_keys.txt lists them all.
            "missing_keys": t.missing_keys.iter().take(1000).collect::<Vec<_>>(),
            "missing_keys_file": "missing_keys.txt",
        })),
        "campaigns": report.campaigns.as_ref(),
        "unreadable": unreadable,
        "skipped": skipped,
        "run": {
            "threads": report.threads,
            "elapsed_seconds": report.elapsed.as_secs_f64(),
            "grouping_seconds": report.grouping_elapsed.as_secs_f64(),
            "messages_per_second": mps.round(),
            "megabytes_per_second": (mbps * 10.0).round() / 10.0,
        },
        "outputs": report.outputs.iter().map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect::<Vec<_>>(),
    });
    let mut doc = doc;
    if let (Some(merged), Some(map)) = (merged, doc.as_object_mut()) {
        // A merge of every shard describes the same run as one scan: only its `run` section
        // tells. Shards left out make the result partial, and say so at the top.
        let left_out = |k: &str| {
            merged
                .get(k)
                .and_then(|v| v.as_array())
                .is_some_and(|a| !a.is_empty())
        };
        if left_out("missing_shards") || left_out("unfinished") {
            map.insert("complete".to_string(), false.into());
            map.insert(
                "missing_shards".to_string(),
                merged["missing_shards"].clone(),
            );
        }
        if let Some(run) = map.get_mut("run").and_then(|r| r.as_object_mut()) {
            run.insert("merge".to_string(), merged);
        }
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// A few lines for stderr at the end of a run.
pub fn human_summary(report: &ScanReport) -> String {
    let t = &report.totals;
    let (mbps, mps) = throughput(report);
    let mut s = format!(
        "mailcensus: {} messages ({} parsed, {} malformed) from {} files, {:.1} MB, in {:.2}s: {:.0} messages/s, {:.1} MB/s on {} threads\n",
        t.messages,
        t.parsed,
        t.malformed_total(),
        t.files,
        t.message_bytes as f64 / 1e6,
        report.elapsed.as_secs_f64(),
        mps,
        mbps,
        report.threads,
    );
    if t.malformed_total() > 0 {
        let reasons: Vec<String> = t
            .malformed_by_reason()
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        s.push_str(&format!("  malformed: {}\n", reasons.join(", ")));
    }
    let sigs = t.signatures_by_result();
    if !sigs.is_empty() {
        let parts: Vec<String> = sigs.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let verdicts: Vec<String> = t
            .dkim_messages_by_verdict()
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        s.push_str(&format!(
            "  DKIM signatures: {}; messages: {}; aligned passes {}\n",
            parts.join(", "),
            verdicts.join(", "),
            t.dkim_aligned
        ));
    }
    if let Some(c) = &report.campaigns {
        s.push_str(&format!(
            "  campaigns: {} ({} messages); relay abuse: {} messages ({} candidates: aligned pass through Microsoft 365 and a gateway)\n",
            c.campaigns, c.messages_in_campaigns, c.relay_abuse, c.relay_abuse_candidates
        ));
        let total_sigs: u64 = sigs.values().sum();
        let no_key = sigs.get("no-key").copied().unwrap_or(0);
        if c.relay_abuse_candidates == 0 && no_key > 0 && no_key * 2 >= total_sigs {
            s.push_str(&format!(
                "  note: relay abuse needs a passing From-aligned DKIM signature, and {no_key} of {total_sigs} signatures had no key: give --keys or --dns (without them the trap's recorded Authentication-Results are used where present)\n"
            ));
        }
        let verified: u64 = t.dkim_messages.iter().sum();
        if verified == 0 && t.messages > 0 {
            s.push_str(
                "  note: DKIM was not verified (--no-dkim), so relay abuse is judged only from the Authentication-Results the trap recorded; verify with --keys or --dns to find waves whose mail has none\n",
            );
        }
        if c.relay_abuse_waves > 0 {
            s.push_str(&format!(
                "  relay-abuse waves: {} (campaigns most of whose mail is relay abuse)\n",
                c.relay_abuse_waves
            ));
            for w in c.waves.iter().take(5) {
                s.push_str(&format!(
                    "    {} {} msgs {} .. {}: brands {}; tenants {}, injector networks {}, landing domains {}\n",
                    w.campaign,
                    w.messages,
                    w.first_seen.get(..10).unwrap_or(""),
                    w.last_seen.get(..10).unwrap_or(""),
                    w.brands.join(" "),
                    w.tenants,
                    w.origin_nets,
                    w.landing_domains
                ));
            }
        }
        if !c.largest.is_empty() {
            s.push_str("  largest other campaigns:\n");
        }
        for l in c.largest.iter().take(5) {
            s.push_str(&format!(
                "    {} {} msgs ({} relay abuse) {} .. {} e.g. {:?}\n",
                l.campaign,
                l.messages,
                l.relay_abuse,
                l.first_seen.get(..10).unwrap_or(""),
                l.last_seen.get(..10).unwrap_or(""),
                l.example_subject.chars().take(60).collect::<String>()
            ));
        }
    }
    let skipped = t.skipped_by_reason();
    if !skipped.is_empty() {
        let reasons: Vec<String> = skipped.iter().map(|(r, n)| format!("{r} {n}")).collect();
        s.push_str(&format!("  skipped files: {}\n", reasons.join(", ")));
    }
    for n in t.unreadable().take(10) {
        s.push_str(&format!("  unreadable: {}: {}\n", n.path, n.reason));
    }
    let more = t.unreadable().count().saturating_sub(10);
    if more > 0 {
        s.push_str(&format!(
            "  ... and {more} more unreadable inputs (see summary.json)\n"
        ));
    }
    if let Some(page) = report
        .outputs
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == "report.html"))
    {
        s.push_str(&format!(
            "  report: {} (open it in a browser)\n",
            page.display()
        ));
    }
    s
}
