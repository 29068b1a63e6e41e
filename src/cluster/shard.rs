//! One shard of a plan: its pieces read through the scan's pipeline into a partial.
//!
//! Takes a [`Plan`], a shard number, scan options and a directory, and gives the shard's
//! partial there: segments of the message stage's rows, each committed whole (Parquet files of
//! the `messages` (the message stage's columns), `signatures` and `received` rows, and the
//! campaign facts), a journal line per committed segment with its totals, and `partial.json`
//! last. A run with `resume` continues after the last committed segment; one that finds a
//! file changed since the plan stops with an error instead of mixing two versions of it.
//!
//! A segment ends at a piece boundary once [`ShardOptions::segment_bytes`] of input were read,
//! so a killed shard loses at most that much work.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::plan::Plan;
use super::{ClusterError, JOURNAL_FILE, PARTIAL_FILE, PARTIAL_VERSION};
use crate::aggregate::Totals;
use crate::campaign::write_facts;
use crate::output::{self, Formats, OutputError, PendingFile, TableFiles};
use crate::scan::{self, Input, ScanError, ScanOptions, Tables, UnitOutput};
use crate::schema::{self, MESSAGE_COLUMNS, RECEIVED_COLUMNS, SCHEMA_VERSION, SIGNATURE_COLUMNS};
use crate::summary::RunSettings;

/// How a shard runs.
#[derive(Debug, Clone)]
pub struct ShardOptions {
    /// The shard's number, from 0.
    pub shard: u32,
    /// Continue a shard that was stopped (else its directory must hold no earlier shard).
    pub resume: bool,
    /// Commit a segment at the first piece boundary after this many bytes of input.
    pub segment_bytes: u64,
    /// What else the rows depend on (key files, hop rules), as a hash: the merge refuses
    /// shards scanned with different ones.
    pub fingerprint: String,
    /// The key files the shard loaded (what `summary.json` lists).
    pub key_files: Vec<crate::summary::KeyFile>,
    /// For tests of resumption: end the process abruptly after this many segments were
    /// committed in this run, as a killed shard would.
    pub abort_after_segments: Option<u32>,
}

/// What a shard did.
#[derive(Debug, Clone)]
pub struct ShardReport {
    /// The shard's totals (all segments, earlier runs' too).
    pub totals: Totals,
    /// Segments committed by earlier runs (resumed after them) and by this one.
    pub resumed_segments: u32,
    pub new_segments: u32,
    /// The shard was finished already (`--resume` on a finished shard does nothing).
    pub already_finished: bool,
    pub elapsed: Duration,
    pub threads: usize,
}

/// Rows per row group of a partial's Parquet files: the merge reads a row group per task, so
/// this bounds what each task holds (a few MB of rows).
pub const PARTIAL_GROUP_ROWS: usize = 16 * 1024;

/// The segment files' names.
pub fn segment_file(table: &str, segment: u32) -> String {
    match table {
        "facts" => format!("facts-{segment:05}.bin"),
        t => format!("{t}-{segment:05}.parquet"),
    }
}

/// What a shard's partial says about itself (`partial.json`, and the journal's first line).
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub plan: String,
    pub shard: u32,
    pub shards: u32,
    pub tables: TablesOn,
    pub fingerprint: String,
    pub settings: RunSettings,
}

/// Which tables a shard wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TablesOn {
    pub campaigns: bool,
    pub signatures: bool,
    pub received: bool,
}

impl Identity {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "plan": self.plan,
            "shard": self.shard,
            "shards": self.shards,
            "tables": self.tables,
            "fingerprint": self.fingerprint,
            "settings": self.settings,
        })
    }

    fn from_json(v: &serde_json::Value) -> Result<Identity, String> {
        let text = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("no {k}"))
        };
        let number = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("no {k}"))
        };
        Ok(Identity {
            plan: text("plan")?,
            shard: number("shard")?,
            shards: number("shards")?,
            tables: serde_json::from_value(v.get("tables").cloned().unwrap_or_default())
                .map_err(|e| format!("tables: {e}"))?,
            fingerprint: text("fingerprint")?,
            settings: serde_json::from_value(v.get("settings").cloned().unwrap_or_default())
                .map_err(|e| format!("settings: {e}"))?,
        })
    }
}

/// A finished shard's `partial.json`, as the merge reads it.
#[derive(Debug, Clone)]
pub struct Partial {
    pub dir: PathBuf,
    pub identity: Identity,
    /// The plan's inputs (what `summary.json` lists).
    pub inputs: Vec<String>,
    /// Committed segments, in order.
    pub segments: Vec<u32>,
    pub totals: Totals,
}

impl Partial {
    /// Read `dir/partial.json`; a partial of another format or schema version is refused.
    pub fn read(dir: &Path) -> Result<Partial, ClusterError> {
        let path = dir.join(PARTIAL_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ClusterError::Read {
            path: path.clone(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ClusterError::invalid(&path, format!("not a shard's partial ({e})")))?;
        match v.get("mailcensus_partial").and_then(|x| x.as_u64()) {
            Some(n) if n == u64::from(PARTIAL_VERSION) => {}
            Some(n) => {
                return Err(ClusterError::invalid(
                    &path,
                    format!(
                        "a partial of format version {n}; this mailcensus reads version {PARTIAL_VERSION}: scan the shard again with this version"
                    ),
                ));
            }
            None => return Err(ClusterError::invalid(&path, "not a shard's partial")),
        }
        match v.get("schema_version").and_then(|x| x.as_u64()) {
            Some(n) if n == u64::from(SCHEMA_VERSION) => {}
            n => {
                return Err(ClusterError::invalid(
                    &path,
                    format!(
                        "a partial of result schema version {}; this mailcensus writes version {SCHEMA_VERSION}: scan the shard again with this version",
                        n.map_or("(none)".to_string(), |n| n.to_string())
                    ),
                ));
            }
        }
        let bad = |why: String| ClusterError::invalid(&path, why);
        let identity = Identity::from_json(&v).map_err(bad)?;
        let inputs = v
            .get("inputs")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .ok_or_else(|| bad("no inputs".into()))?;
        let segments = v
            .get("segments")
            .and_then(|x| x.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_u64().and_then(|n| u32::try_from(n).ok()))
                    .collect()
            })
            .ok_or_else(|| bad("no segments".into()))?;
        let totals =
            Totals::from_json(v.get("totals").unwrap_or(&serde_json::Value::Null)).map_err(bad)?;
        Ok(Partial {
            dir: dir.to_path_buf(),
            identity,
            inputs,
            segments,
            totals,
        })
    }
}

/// One committed segment, as the journal lists it.
struct Committed {
    segment: u32,
    /// The plan's pieces before this index are read.
    done: u64,
    totals: Totals,
}

/// Scan shard `so.shard` of `plan` into `dir`. `opts` are the scan's options (the plan's
/// reading limits replace theirs; the output is the partial's); `settings` are what the merged
/// `summary.json` will state.
pub fn run_shard(
    plan: &Plan,
    dir: &Path,
    so: &ShardOptions,
    opts: &ScanOptions,
    progress: &mut dyn FnMut(&Totals),
) -> Result<ShardReport, ClusterError> {
    let started = Instant::now();
    if so.shard >= plan.header.shards {
        return Err(ClusterError::Usage(format!(
            "shard {} does not exist: the plan has {} shards (numbered from 0)",
            so.shard, plan.header.shards
        )));
    }
    let mut opts = opts.clone();
    plan.header.limits.apply(&mut opts);
    let mut settings = RunSettings::of(&opts);
    if let Some(dkim) = &mut settings.dkim {
        dkim.key_files = so.key_files.clone();
    }
    opts.partial = true;
    opts.formats = Formats {
        csv: false,
        parquet: true,
        jsonl: false,
    };
    opts.raw_cells = false;
    let tables = Tables::from(&opts);
    let identity = Identity {
        plan: plan.header.id.clone(),
        shard: so.shard,
        shards: plan.header.shards,
        tables: TablesOn {
            campaigns: tables.campaigns,
            signatures: tables.signatures,
            received: tables.received,
        },
        fingerprint: so.fingerprint.clone(),
        settings,
    };
    let threads = scan::thread_count(&opts);
    output::ensure_dir(dir)?;
    let _lock = output::DirLock::acquire(dir)?;

    // A finished shard is not scanned again; an unfinished one only with `resume`.
    if dir.join(PARTIAL_FILE).exists() {
        let done = Partial::read(dir)?;
        if done.identity.plan != identity.plan || done.identity.shard != identity.shard {
            return Err(ClusterError::Usage(format!(
                "{} holds shard {} of another plan; choose an empty directory",
                dir.display(),
                done.identity.shard
            )));
        }
        if !so.resume {
            return Err(ClusterError::Usage(format!(
                "{} holds this shard, finished; remove it to scan the shard again (with --resume a finished shard is left as it is)",
                dir.display()
            )));
        }
        return Ok(ShardReport {
            totals: done.totals,
            resumed_segments: done.segments.len() as u32,
            new_segments: 0,
            already_finished: true,
            elapsed: started.elapsed(),
            threads,
        });
    }
    let journal_path = dir.join(JOURNAL_FILE);
    let earlier = match journal_path.exists() {
        false => Vec::new(),
        true if !so.resume => {
            return Err(ClusterError::Usage(format!(
                "{} holds an unfinished shard ({JOURNAL_FILE}); run with --resume to continue it, or remove the directory",
                dir.display()
            )));
        }
        true => read_journal(&journal_path, &identity)?,
    };
    clean_uncommitted(dir, earlier.len() as u32)?;
    write_journal(&journal_path, &identity, &earlier)?;

    let done_before = earlier.last().map_or(0, |c| c.done);
    let mine = plan.pieces_of(so.shard);
    // Every file of the shard is the one planned, the ones read by an earlier run included.
    for (_, p) in &mine {
        p.check()?;
    }
    let todo: Vec<(u64, crate::input::units::Piece)> = mine
        .iter()
        .filter(|(i, _)| *i >= done_before)
        .map(|(i, p)| (*i, p.piece.clone()))
        .collect();

    let mut totals = Totals::default();
    for c in &earlier {
        totals.merge(c.totals.clone());
    }
    let resumed_segments = earlier.len() as u32;
    let mut segments: Vec<u32> = earlier.iter().map(|c| c.segment).collect();
    let mut writer = SegmentWriter {
        dir,
        tables,
        next: resumed_segments,
        open: None,
        totals: Totals::default(),
        journal: &journal_path,
        abort_after: so.abort_after_segments,
        committed_now: 0,
    };
    let mut write_error: Option<ClusterError> = None;
    let ran = scan::pipeline(
        Input::Pieces {
            pieces: &todo,
            mark_bytes: so.segment_bytes.max(1),
        },
        &opts,
        threads,
        &mut |out| {
            if write_error.is_some() {
                return false;
            }
            match writer.write(out) {
                Ok(Some(segment)) => {
                    segments.push(segment);
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            }
        },
        progress,
    )?;
    if let Some(e) = write_error {
        return Err(e);
    }
    if opts.cancel.is_cancelled() || output::aborted() {
        return Err(ScanError::Interrupted.into());
    }
    if ran.lost_units || writer.open.is_some() {
        return Err(ScanError::Incomplete.into());
    }
    totals.merge(ran.totals);
    let mut partial = PendingFile::create(dir, PARTIAL_FILE)?;
    let mut doc = identity.to_json();
    if let Some(map) = doc.as_object_mut() {
        map.insert("mailcensus_partial".into(), PARTIAL_VERSION.into());
        map.insert("schema_version".into(), SCHEMA_VERSION.into());
        map.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
        map.insert("inputs".into(), json!(plan.header.inputs));
        map.insert("segments".into(), json!(segments));
        map.insert("totals".into(), totals.to_json());
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    bytes.push(b'\n');
    partial.write_all(&bytes)?;
    output::commit(vec![partial], &[])?;
    Ok(ShardReport {
        totals,
        resumed_segments,
        new_segments: writer.committed_now,
        already_finished: false,
        elapsed: started.elapsed(),
        threads,
    })
}

/// The segment being written and the journal of those committed.
struct SegmentWriter<'a> {
    dir: &'a Path,
    tables: Tables,
    /// The number of the next segment.
    next: u32,
    open: Option<Segment>,
    /// The open segment's totals.
    totals: Totals,
    journal: &'a Path,
    abort_after: Option<u32>,
    committed_now: u32,
}

/// The files of one segment, pending until it is committed.
struct Segment {
    messages: TableFiles,
    signatures: Option<TableFiles>,
    received: Option<TableFiles>,
    facts: Option<PendingFile>,
}

impl SegmentWriter<'_> {
    /// Take one unit's rows; at a `Done` mark, commit the segment and give its number.
    fn write(&mut self, out: &mut UnitOutput) -> Result<Option<u32>, ClusterError> {
        if self.open.is_none() {
            self.open = Some(self.start()?);
        }
        let Some(seg) = self.open.as_mut() else {
            return Ok(None);
        };
        seg.messages.write(&mut out.messages)?;
        if let Some(files) = &mut seg.signatures {
            files.write(&mut out.signatures)?;
        }
        if let Some(files) = &mut seg.received {
            files.write(&mut out.received)?;
        }
        if let Some(file) = &mut seg.facts {
            write_facts(&out.facts, |bytes| file.write_all(bytes))?;
        }
        self.totals.merge(out.totals.clone());
        let Some(done) = out.done else {
            return Ok(None);
        };
        let seg = self.open.take().ok_or(ScanError::Incomplete)?;
        let mut files = seg.messages.finish()?;
        for table in [seg.signatures, seg.received].into_iter().flatten() {
            files.extend(table.finish()?);
        }
        files.extend(seg.facts);
        output::commit(files, &[])?;
        let segment = self.next;
        let line = json!({
            "segment": segment,
            "done": done,
            "totals": std::mem::take(&mut self.totals).to_json(),
        });
        append_line(self.journal, &line)?;
        self.next += 1;
        self.committed_now += 1;
        if self.abort_after == Some(self.committed_now) {
            // A test's stand-in for `kill -9`: no unwinding, no cleanup.
            std::process::abort();
        }
        Ok(Some(segment))
    }

    fn start(&self) -> Result<Segment, OutputError> {
        let parquet = Formats {
            csv: false,
            parquet: true,
            jsonl: false,
        };
        let k = self.next;
        let table = |on: bool, name: &str, columns: Vec<schema::ColumnInfo>| match on {
            true => {
                TableFiles::create(self.dir, &format!("{name}-{k:05}"), &columns, parquet).map(Some)
            }
            false => Ok(None),
        };
        Ok(Segment {
            messages: TableFiles::create(
                self.dir,
                &format!("messages-{k:05}"),
                &MESSAGE_COLUMNS
                    .iter()
                    .map(schema::Column::info)
                    .collect::<Vec<_>>(),
                parquet,
            )?,
            signatures: table(
                self.tables.signatures,
                "signatures",
                SIGNATURE_COLUMNS.iter().map(schema::Column::info).collect(),
            )?,
            received: table(
                self.tables.received,
                "received",
                RECEIVED_COLUMNS.iter().map(schema::Column::info).collect(),
            )?,
            facts: match self.tables.campaigns {
                true => Some(PendingFile::create(self.dir, &segment_file("facts", k))?),
                false => None,
            },
        })
    }
}

/// Append one line to the journal and make it durable before going on.
fn append_line(path: &Path, line: &serde_json::Value) -> Result<(), ClusterError> {
    let err = |source| {
        ClusterError::Output(OutputError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(err)?;
    let mut bytes = line.to_string().into_bytes();
    bytes.push(b'\n');
    f.write_all(&bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// The journal: the identity line, then one line per committed segment (rewritten whole).
fn write_journal(
    path: &Path,
    identity: &Identity,
    committed: &[Committed],
) -> Result<(), ClusterError> {
    let mut text = identity.to_json().to_string();
    text.push('\n');
    for c in committed {
        text.push_str(
            &json!({"segment": c.segment, "done": c.done, "totals": c.totals.to_json()})
                .to_string(),
        );
        text.push('\n');
    }
    let tmp = path.with_extension("jsonl.new");
    let err = |source| {
        ClusterError::Output(OutputError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// The segments an earlier run committed. A last line cut short (the run was killed while
/// writing it) is left out: its segment is done again.
fn read_journal(path: &Path, identity: &Identity) -> Result<Vec<Committed>, ClusterError> {
    let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let theirs = serde_json::from_str(first)
        .map_err(|e| e.to_string())
        .and_then(|v| Identity::from_json(&v))
        .map_err(|why| ClusterError::invalid(path, format!("not a shard journal ({why})")))?;
    if theirs != *identity {
        return Err(ClusterError::Usage(format!(
            "{} was started with another plan, shard or options ({}); resume it with the same ones, or remove the directory",
            path.parent().unwrap_or(path).display(),
            differences(&theirs, identity)
        )));
    }
    let lines: Vec<&str> = lines.collect();
    let mut committed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let parsed = serde_json::from_str::<serde_json::Value>(line)
            .map_err(|e| e.to_string())
            .and_then(|v| {
                Ok(Committed {
                    segment: v
                        .get("segment")
                        .and_then(|x| x.as_u64())
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("no segment")?,
                    done: v.get("done").and_then(|x| x.as_u64()).ok_or("no done")?,
                    totals: Totals::from_json(v.get("totals").unwrap_or(&serde_json::Value::Null))?,
                })
            });
        match parsed {
            Ok(c) if c.segment == committed.len() as u32 => committed.push(c),
            Ok(_) => {
                return Err(ClusterError::invalid(
                    path,
                    format!("line {}: segments out of order", i + 2),
                ));
            }
            Err(_) if i + 1 == lines.len() => break,
            Err(why) => {
                return Err(ClusterError::invalid(
                    path,
                    format!("line {}: {why}", i + 2),
                ));
            }
        }
    }
    // Every committed segment's files are there.
    for c in &committed {
        let mut names = vec![segment_file("messages", c.segment)];
        if identity.tables.campaigns {
            names.push(segment_file("facts", c.segment));
        }
        for name in names {
            let file = path.with_file_name(&name);
            if !file.exists() {
                return Err(ClusterError::invalid(
                    &file,
                    format!(
                        "segment {} is in the journal but its file is missing; remove the directory and scan the shard again",
                        c.segment
                    ),
                ));
            }
        }
    }
    Ok(committed)
}

/// What differs between two identities, for the error.
fn differences(a: &Identity, b: &Identity) -> String {
    let mut d = Vec::new();
    if a.plan != b.plan {
        d.push(format!("plan {} now {}", a.plan, b.plan));
    }
    if a.shard != b.shard {
        d.push(format!("shard {} now {}", a.shard, b.shard));
    }
    if a.tables != b.tables {
        d.push("other tables (--no-dkim, --no-campaigns or --received)".into());
    }
    if a.fingerprint != b.fingerprint {
        d.push("other key files or hop rules".into());
    }
    if a.settings != b.settings {
        d.push("other DKIM or reading settings".into());
    }
    d.join("; ")
}

/// Remove what a killed run left: temporary files and the files of segments it did not
/// commit (numbered `committed` and up).
fn clean_uncommitted(dir: &Path, committed: u32) -> Result<(), ClusterError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ClusterError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let ours: BTreeSet<&str> = ["messages", "signatures", "received", "facts"].into();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stray_temp = name.starts_with('.') && name.contains(".partial-");
        let uncommitted = name
            .split_once('-')
            .filter(|(table, _)| ours.contains(table))
            .and_then(|(_, rest)| rest.split('.').next()?.parse::<u32>().ok())
            .is_some_and(|k| k >= committed);
        if stray_temp || uncommitted {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The hash of what, beside the options [`RunSettings`] states, a shard's rows depend on: the
/// key store's records and the hop rules, as text.
pub fn fingerprint_of(keys: &[u8], rules: &[u8]) -> String {
    super::fingerprint(&[keys, rules])
}
