//! The merge: the partials of a plan's shards into the result files of one scan.
//!
//! Takes the shards' directories and gives, in the output directory, exactly the files a `scan`
//! of the plan's inputs writes (`summary.json`'s `run` section aside): the partials' rows are
//! read back in plan order (shard by shard, segment by segment) into the writing side of a scan
//! ([`Collector`]), which decides campaigns and relay abuse over all of them. Rows stream
//! through in blocks; what is kept grows with the evidence keys and campaigns.
//!
//! Shards must come from one plan, with the same options; a missing or unfinished shard stops
//! the merge, naming it, unless the caller allows a partial result (then `summary.json` lists
//! what is missing).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;

use super::shard::{Partial, segment_file};
use super::{ClusterError, JOURNAL_FILE, PARTIAL_FILE};
use crate::aggregate::Totals;
use crate::campaign::FactsReader;
use crate::message::Facts;
use crate::output::{self, Formats, parquet};
use crate::scan::{Cancel, Collector, ScanError, ScanReport, Tables, UnitOutput};
use crate::schema::{Column, ColumnInfo, MESSAGE_COLUMNS, RECEIVED_COLUMNS, SIGNATURE_COLUMNS};
use crate::summary::summary_document;

/// How a merge writes.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub formats: Formats,
    pub raw_cells: bool,
    /// Merge the shards that are there when some are missing or unfinished (else an error).
    pub allow_partial: bool,
    /// Threads of the grouping passes (0: one per core).
    pub threads: usize,
    pub cancel: Cancel,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct Merged {
    pub report: ScanReport,
    pub shards: u32,
    /// Shards left out (allowed with `allow_partial` only).
    pub missing: Vec<u32>,
    /// Shard directories left out as unfinished.
    pub unfinished: Vec<PathBuf>,
}

/// Merge the partials in `parts` into `out_dir`.
pub fn merge(parts: &[PathBuf], out_dir: &Path, mo: &MergeOptions) -> Result<Merged, ClusterError> {
    let started = Instant::now();
    let (partials, unfinished) = read_partials(parts, mo.allow_partial)?;
    let Some(first) = partials.first() else {
        return Err(ClusterError::Incomplete(
            "no finished shard to merge".to_string(),
        ));
    };
    let shards = first.identity.shards;
    let missing: Vec<u32> = (0..shards)
        .filter(|i| !partials.iter().any(|p| p.identity.shard == *i))
        .collect();
    if !missing.is_empty() && !mo.allow_partial {
        return Err(ClusterError::Incomplete(format!(
            "shard{} {} of {shards} missing (no finished partial among the directories given); scan {} or merge with --allow-partial",
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() > 1 { "them" } else { "it" }
        )));
    }

    output::ensure_dir(out_dir)?;
    let _lock = output::DirLock::acquire(out_dir)?;
    let on = first.identity.tables;
    let tables = Tables {
        formats: mo.formats,
        raw_cells: mo.raw_cells,
        campaigns: on.campaigns,
        signatures: on.signatures,
        received: on.received,
    };
    let mut collector = Collector::create(out_dir, tables)?;
    let threads = match mo.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mailcensus-merge-{i}"))
        .build()
        .map_err(|e| ScanError::Threads(e.to_string()))?;
    let columns = Columns {
        messages: MESSAGE_COLUMNS.iter().map(Column::info).collect(),
        signatures: SIGNATURE_COLUMNS.iter().map(Column::info).collect(),
        received: RECEIVED_COLUMNS.iter().map(Column::info).collect(),
    };
    // Messages first (with their facts), in plan order, then the other tables likewise: each
    // table's rows are in plan order, which is all its files show.
    let mut jobs = Vec::new();
    for (table, wanted) in [
        (Table::Messages, true),
        (Table::Signatures, on.signatures),
        (Table::Received, on.received),
    ] {
        if !wanted {
            continue;
        }
        for p in &partials {
            for &k in &p.segments {
                let path = p.dir.join(segment_file(table.name(), k));
                for group in 0..parquet::row_groups(&path)? {
                    jobs.push(Job {
                        table,
                        path: path.clone(),
                        group,
                        facts: (table == Table::Messages && on.campaigns)
                            .then(|| p.dir.join(segment_file("facts", k))),
                    });
                }
            }
        }
    }
    // Row groups are read and encoded on the pool, and handed to the collector in order with
    // their messages' facts, read here from each segment's facts file.
    let mut facts: Option<(PathBuf, FactsReader)> = None;
    let mut failure: Option<ClusterError> = None;
    let read = |i: usize| {
        read_job(&jobs[i], &columns, tables, on.campaigns).map(|(out, lens)| (i, out, lens))
    };
    crate::campaign::parallel::in_order(&pool, jobs.len(), 2 * threads + 1, read, |block| {
        let step = || -> Result<(), ClusterError> {
            let (i, mut out, lens) = block?;
            if let Some(path) = &jobs[i].facts {
                if facts.as_ref().is_none_or(|(p, _)| p != path) {
                    if let Some((done, mut reader)) = facts.take() {
                        end_of_facts(&done, &mut reader)?;
                    }
                    facts = Some((path.clone(), FactsReader::open(path)?));
                }
                let (path, reader) = facts.as_mut().ok_or(ScanError::Incomplete)?;
                for len in lens {
                    if !reader.next_into(&mut out.facts)? {
                        return Err(damaged(
                            path,
                            "it has fewer records than its segment has messages",
                        )
                        .into());
                    }
                    if let Some(f) = out.facts.facts.last_mut() {
                        f.row_len = len;
                    }
                }
            }
            collector.write(&mut out)?;
            Ok(())
        };
        match step() {
            Ok(()) => !mo.cancel.is_cancelled(),
            Err(e) => {
                failure = Some(e);
                false
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    if mo.cancel.is_cancelled() {
        return Err(ScanError::Interrupted.into());
    }
    if let Some((done, mut reader)) = facts.take() {
        end_of_facts(&done, &mut reader)?;
    }
    let mut totals = Totals::default();
    for p in &partials {
        totals.merge(p.totals.clone());
    }

    let mut settings = first.identity.settings.clone();
    settings.formats = mo
        .formats
        .file_names("messages")
        .iter()
        .map(|n| n.trim_start_matches("messages.").to_string())
        .collect();
    settings.raw_cells = mo.raw_cells;
    let inputs = first.inputs.clone();
    let merge_section = json!({
        "plan": first.identity.plan,
        "shards": shards,
        "merged": partials.len(),
        "missing_shards": missing,
        "unfinished": unfinished.iter().map(|d| d.to_string_lossy()).collect::<Vec<_>>(),
    });
    let report = collector.finish(totals, started, threads, &mo.cancel, &|r| {
        summary_document(r, &inputs, &settings, Some(merge_section.clone()))
    })?;
    Ok(Merged {
        report,
        shards,
        missing,
        unfinished,
    })
}

/// The tables a partial holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    Messages,
    Signatures,
    Received,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Messages => "messages",
            Table::Signatures => "signatures",
            Table::Received => "received",
        }
    }
}

/// The partials' columns, per table.
struct Columns {
    messages: Vec<ColumnInfo>,
    signatures: Vec<ColumnInfo>,
    received: Vec<ColumnInfo>,
}

/// One row group of one partial file: the merge's unit of work.
struct Job {
    table: Table,
    path: PathBuf,
    group: usize,
    /// The segment's facts file (messages, with campaigns on).
    facts: Option<PathBuf>,
}

/// Read one row group into rows as a scan's workers make them: the messages' spilled rows
/// (campaigns on; their lengths are given back, for the facts read on the calling thread) or
/// final rows, or signature or hop rows.
fn read_job(
    job: &Job,
    columns: &Columns,
    tables: Tables,
    campaigns: bool,
) -> Result<(UnitOutput, Vec<u32>), ClusterError> {
    let mut out = UnitOutput::with(tables.formats, tables.raw_cells, false);
    let mut lens = Vec::new();
    let table_columns = match job.table {
        Table::Messages => &columns.messages,
        Table::Signatures => &columns.signatures,
        Table::Received => &columns.received,
    };
    parquet::read_row_groups(
        &job.path,
        table_columns,
        Some(&[job.group]),
        &mut |values| {
            match job.table {
                Table::Messages => {
                    let before = out.spilled.len();
                    out.add_message_row(values.iter().copied(), campaigns);
                    if campaigns {
                        lens.push((out.spilled.len() - before) as u32);
                    }
                }
                Table::Signatures => out.signatures.push(values.iter().copied()),
                Table::Received => out.received.push(values.iter().copied()),
            }
            Ok(())
        },
    )?;
    Ok((out, lens))
}

/// An error unless the facts file `path` has no record left.
fn end_of_facts(path: &Path, reader: &mut FactsReader) -> Result<(), ClusterError> {
    if reader.next_into(&mut Facts::default())? {
        return Err(damaged(path, "it has more records than its segment has messages").into());
    }
    Ok(())
}

fn damaged(path: &Path, why: &str) -> output::OutputError {
    output::OutputError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, why.to_string()),
    }
}

/// The finished partials among `parts`, in shard order, and the unfinished directories (an
/// error unless `allow_partial`). Partials of different plans or options are refused.
fn read_partials(
    parts: &[PathBuf],
    allow_partial: bool,
) -> Result<(Vec<Partial>, Vec<PathBuf>), ClusterError> {
    let mut partials: Vec<Partial> = Vec::new();
    let mut unfinished = Vec::new();
    for dir in parts {
        if !dir.join(PARTIAL_FILE).exists() {
            if dir.join(JOURNAL_FILE).exists() {
                if allow_partial {
                    unfinished.push(dir.clone());
                    continue;
                }
                return Err(ClusterError::Incomplete(format!(
                    "{} is an unfinished shard (no {PARTIAL_FILE}): finish it with `scan --plan ... --resume`, or merge with --allow-partial",
                    dir.display()
                )));
            }
            return Err(ClusterError::invalid(
                dir,
                format!("no {PARTIAL_FILE}: not a shard's directory"),
            ));
        }
        let p = Partial::read(dir)?;
        if let Some(first) = partials.first() {
            let (a, b) = (&first.identity, &p.identity);
            if a.plan != b.plan || a.shards != b.shards {
                return Err(ClusterError::Usage(format!(
                    "{} and {} are shards of different plans",
                    first.dir.display(),
                    dir.display()
                )));
            }
            if a.tables != b.tables || a.fingerprint != b.fingerprint || a.settings != b.settings {
                return Err(ClusterError::Usage(format!(
                    "{} and {} were scanned with different options (DKIM keys or settings, hop rules, --no-dkim, --no-campaigns or --received); scan every shard with the same ones",
                    first.dir.display(),
                    dir.display()
                )));
            }
        }
        if let Some(twin) = partials
            .iter()
            .find(|q| q.identity.shard == p.identity.shard)
        {
            return Err(ClusterError::Usage(format!(
                "{} and {} are both shard {}",
                twin.dir.display(),
                dir.display(),
                p.identity.shard
            )));
        }
        partials.push(p);
    }
    partials.sort_by_key(|p| p.identity.shard);
    Ok((partials, unfinished))
}
