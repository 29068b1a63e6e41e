//! The pipeline: input → split → message → group → output, wired across all cores.
//!
//! Takes input paths and options and gives the result files in the output directory plus a
//! [`ScanReport`]. One producer thread walks the inputs, maps or streams each file and cuts it
//! into [`Work`] units in input order; a Rayon pool turns units into rows in parallel; the calling
//! thread writes the rows back in unit order. A bounded number of units is in flight at once, so
//! memory depends on the thread count, not on the corpus size, and the output bytes never depend
//! on scheduling.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::aggregate::Totals;
use crate::auth::Verifier;
use crate::campaign::{CampaignReport, Grouping};
use crate::classify::received::Hop;
use crate::classify::rules::Rules;
use crate::headers::Headers;
use crate::input::stream::StreamLimits;
use crate::input::units;
use crate::message::{Facts, ReadOptions, Reader};
use crate::output::{self, Formats, OutputError, PendingFile, Rows, TableFiles, spill};
use crate::schema::{
    self, DECIDED_COLUMNS, Decided, HopRow, MESSAGE_COLUMNS, Message, RECEIVED_COLUMNS,
    SIGNATURE_COLUMNS, SignatureRow, Value,
};
use crate::work::{Note, Work};

pub use crate::work::Cancel;

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Memory-map regular files (default). Off: buffered reads, for filesystems where a file
    /// may shrink while mapped.
    pub mmap: bool,
    /// What the message stage reads (header limits, Received hops).
    pub read: ReadOptions,
    /// The formats of the result tables.
    pub formats: Formats,
    /// Write CSV cells as they are, without neutralising spreadsheet formulas.
    pub raw_cells: bool,
    pub stream: StreamLimits,
    /// Files smaller than this are read whole by a worker, in batches, instead of mapped.
    pub small_file_bytes: u64,
    /// DKIM verification (None: `--no-dkim`).
    pub dkim: Option<Arc<Verifier>>,
    /// Campaign grouping and relay-abuse detection with these hop rules (None:
    /// `--no-campaigns`).
    pub campaigns: Option<Arc<Rules>>,
    /// The run's start time (Unix seconds), the verification time of `--verify-at now`.
    pub now: i64,
    /// Stops the run early when cancelled.
    pub cancel: Cancel,
    /// Write a shard's partial rows ([`crate::cluster`]): the message stage's columns of every
    /// message, with the campaign facts kept for the merge.
    pub partial: bool,
    /// The `source` of standard input's messages.
    pub stdin_name: String,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: 0,
            mmap: true,
            read: ReadOptions::default(),
            formats: Formats::default(),
            raw_cells: false,
            stream: StreamLimits::default(),
            small_file_bytes: 1 << 20,
            dkim: None,
            campaigns: Some(Arc::new(Rules::builtin())),
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            cancel: Cancel::default(),
            partial: false,
            stdin_name: "-".to_string(),
        }
    }
}

impl ScanOptions {
    /// Options made and checked in one place: the limits shared by several stages (the header
    /// block cap is the splitter's and the header parser's) are set once here.
    pub fn builder() -> OptionsBuilder {
        OptionsBuilder {
            opts: ScanOptions::default(),
            max_message_bytes: None,
            max_header_bytes: None,
        }
    }
}

/// Builds [`ScanOptions`]; see [`ScanOptions::builder`].
#[derive(Debug, Clone)]
pub struct OptionsBuilder {
    opts: ScanOptions,
    max_message_bytes: Option<usize>,
    max_header_bytes: Option<usize>,
}

/// Options that cannot work together or at all.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OptionsError {
    #[error("the largest message must be at least 1 byte")]
    NoMessageRoom,
    #[error("the largest header block must be at least 1 byte")]
    NoHeaderRoom,
    #[error("no output format")]
    NoFormat,
}

impl OptionsBuilder {
    /// Worker threads (0: one per core).
    pub fn threads(mut self, threads: usize) -> Self {
        self.opts.threads = threads;
        self
    }
    /// Memory-map regular files (the default) or read them with buffered reads.
    pub fn mmap(mut self, mmap: bool) -> Self {
        self.opts.mmap = mmap;
        self
    }
    /// The formats of the result tables.
    pub fn formats(mut self, formats: Formats) -> Self {
        self.opts.formats = formats;
        self
    }
    /// Write CSV cells as they are (no spreadsheet formula guard).
    pub fn raw_cells(mut self, raw: bool) -> Self {
        self.opts.raw_cells = raw;
        self
    }
    /// Also describe every Received hop (the `received` table).
    pub fn received(mut self, hops: bool) -> Self {
        self.opts.read.hops = hops;
        self
    }
    /// The largest message kept (larger ones are `too-large`).
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }
    /// The largest header block (larger ones are `header-too-large`).
    pub fn max_header_bytes(mut self, bytes: usize) -> Self {
        self.max_header_bytes = Some(bytes);
        self
    }
    /// Verify DKIM with this verifier (None: no verification, no signatures table).
    pub fn dkim(mut self, verifier: Option<Arc<Verifier>>) -> Self {
        self.opts.dkim = verifier;
        self
    }
    /// Group campaigns and look for relay abuse with these hop rules (None: off).
    pub fn campaigns(mut self, rules: Option<Arc<Rules>>) -> Self {
        self.opts.campaigns = rules;
        self
    }
    /// The run's start time (Unix seconds): the verification time of "now".
    pub fn now(mut self, now: i64) -> Self {
        self.opts.now = now;
        self
    }
    /// The `source` of standard input's messages (default `-`).
    pub fn stdin_name(mut self, name: &str) -> Self {
        self.opts.stdin_name = name.to_string();
        self
    }
    /// A token that stops the run when cancelled.
    pub fn cancel(mut self, cancel: Cancel) -> Self {
        self.opts.cancel = cancel;
        self
    }

    /// The options, checked.
    pub fn build(self) -> Result<ScanOptions, OptionsError> {
        let mut opts = self.opts;
        if !(opts.formats.csv || opts.formats.parquet || opts.formats.jsonl) {
            return Err(OptionsError::NoFormat);
        }
        if let Some(bytes) = self.max_message_bytes {
            if bytes == 0 {
                return Err(OptionsError::NoMessageRoom);
            }
            opts.stream = opts.stream.with_max_message(bytes);
        }
        if let Some(bytes) = self.max_header_bytes {
            if bytes == 0 {
                return Err(OptionsError::NoHeaderRoom);
            }
            opts.read.header_limits.max_header_bytes = bytes;
            opts.stream.split.max_header_bytes = bytes;
        }
        Ok(opts)
    }
}

/// Errors that stop a scan.
#[derive(Debug, Error)]
pub enum ScanError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("cannot start worker threads: {0}")]
    Threads(String),
    #[error("interrupted")]
    Interrupted,
    #[error("internal error: not every work unit came back; no output was committed")]
    Incomplete,
}

/// What a finished scan reports.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub totals: Totals,
    pub elapsed: Duration,
    /// Of `elapsed`, the time spent deciding campaigns after the corpus was read (zero with
    /// `--no-campaigns`): the serial tail of a run.
    pub grouping_elapsed: Duration,
    pub threads: usize,
    /// Result files written, in commit order.
    pub outputs: Vec<PathBuf>,
    /// Campaigns and relay abuse (None with `--no-campaigns`).
    pub campaigns: Option<CampaignReport>,
}

/// Run a scan of `inputs` into `out_dir`. `progress` is called from the writing thread after
/// each unit with the totals so far. `summary` builds the `summary.json` bytes from the report.
pub fn scan(
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &ScanOptions,
    progress: &mut dyn FnMut(&Totals),
    summary: &dyn Fn(&ScanReport) -> Vec<u8>,
) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    output::ensure_dir(out_dir)?;
    // One run at a time per directory: two runs would mix their files.
    let _lock = output::DirLock::acquire(out_dir)?;
    let mut collector = Collector::create(out_dir, opts.into())?;
    let threads = thread_count(opts);
    let mut write_error: Option<OutputError> = None;
    let ran = pipeline(
        Input::Walk {
            inputs,
            out_dir: Some(out_dir),
        },
        opts,
        threads,
        &mut |out| {
            if write_error.is_some() {
                return false;
            }
            match collector.write(out) {
                Ok(()) => true,
                Err(e) => {
                    write_error = Some(e);
                    false
                }
            }
        },
        progress,
    )?;
    // On every early return the pending files are dropped, which removes them.
    if ran.lost_units && !opts.cancel.is_cancelled() {
        return Err(ScanError::Incomplete);
    }
    if let Some(e) = write_error {
        return Err(e.into());
    }
    collector.finish(ran.totals, started, threads, &opts.cancel, summary)
}

/// What the result tables of a run hold, and how they are written.
#[derive(Debug, Clone, Copy)]
pub struct Tables {
    pub formats: Formats,
    pub raw_cells: bool,
    /// Campaigns and relay abuse are decided (the messages' rows wait for them).
    pub campaigns: bool,
    /// The `signatures` table (DKIM verified).
    pub signatures: bool,
    /// The `received` table.
    pub received: bool,
}

impl From<&ScanOptions> for Tables {
    fn from(opts: &ScanOptions) -> Tables {
        Tables {
            formats: opts.formats,
            raw_cells: opts.raw_cells,
            campaigns: opts.campaigns.is_some(),
            signatures: opts.dkim.is_some(),
            received: opts.read.hops,
        }
    }
}

/// The writing side of a run: fed every unit's rows and facts in input order, it writes the
/// tables (the messages' rows wait in a scratch file while campaigns are on), then decides the
/// campaigns and commits every file together. A scan and a merge of shards both end here.
pub struct Collector {
    dir: PathBuf,
    tables: Tables,
    messages: Option<TableFiles>,
    spilled: Option<PendingFile>,
    grouping: Option<Grouping>,
    signatures: Option<TableFiles>,
    received: Option<TableFiles>,
}

impl Collector {
    /// Start the tables of a run in `dir` (locked by the caller).
    pub fn create(dir: &Path, tables: Tables) -> Result<Collector, OutputError> {
        // With campaigns on, the messages' typed rows first go to a scratch file: their last
        // three cells are decided once the whole corpus has been seen.
        let (messages, spilled, grouping) = match tables.campaigns {
            true => (
                None,
                Some(PendingFile::create(dir, "messages-spilled.bin")?),
                Some(Grouping::new(dir)?),
            ),
            false => (
                Some(TableFiles::create(
                    dir,
                    "messages",
                    &schema::message_columns(),
                    tables.formats,
                )?),
                None,
                None,
            ),
        };
        let table = |on: bool, name: &str, columns: Vec<schema::ColumnInfo>| match on {
            true => TableFiles::create(dir, name, &columns, tables.formats).map(Some),
            false => Ok(None),
        };
        Ok(Collector {
            dir: dir.to_path_buf(),
            tables,
            messages,
            spilled,
            grouping,
            signatures: table(
                tables.signatures,
                "signatures",
                columns_of(SIGNATURE_COLUMNS),
            )?,
            received: table(tables.received, "received", columns_of(RECEIVED_COLUMNS))?,
        })
    }

    /// An empty unit output whose rows this collector takes.
    pub fn unit_output(&self) -> UnitOutput {
        UnitOutput::with(self.tables.formats, self.tables.raw_cells, false)
    }

    /// Take one unit's rows and facts (units in input order).
    pub fn write(&mut self, out: &mut UnitOutput) -> Result<(), OutputError> {
        match (&mut self.messages, &mut self.spilled) {
            (Some(files), _) => files.write(&mut out.messages)?,
            (None, Some(scratch)) => scratch.write_all(&out.spilled)?,
            (None, None) => {}
        }
        if let Some(g) = &mut self.grouping {
            g.add_unit(&out.facts)?;
        }
        if let Some(files) = &mut self.received {
            files.write(&mut out.received)?;
        }
        if let Some(files) = &mut self.signatures {
            files.write(&mut out.signatures)?;
        }
        Ok(())
    }

    /// Decide campaigns, write `summary.json` with `summary` and commit every file. `totals`
    /// are the run's; `started` and `threads` go into the report.
    pub fn finish(
        self,
        mut totals: Totals,
        started: Instant,
        threads: usize,
        cancel: &Cancel,
        summary: &dyn Fn(&ScanReport) -> Vec<u8>,
    ) -> Result<ScanReport, ScanError> {
        if cancel.is_cancelled() || output::aborted() {
            return Err(ScanError::Interrupted);
        }
        totals.notes.sort();
        let out_dir = &self.dir;
        let grouping_started = Instant::now();
        let (messages, group_files, campaigns, details) = match (self.grouping, self.spilled) {
            (Some(g), Some(mut spilled)) => {
                spilled.flush()?;
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("mailcensus-group-{i}"))
                    .build()
                    .map_err(|e| ScanError::Threads(e.to_string()))?;
                let grouped = g.finish(
                    spilled.temp_path(),
                    out_dir,
                    self.tables.formats,
                    self.tables.raw_cells,
                    &pool,
                )?;
                // The spilled rows are scratch; dropping the file removes it.
                drop(spilled);
                (
                    grouped.messages,
                    grouped.files,
                    Some(grouped.report),
                    Some(grouped.details),
                )
            }
            _ => (
                self.messages.ok_or(ScanError::Incomplete)?.finish()?,
                Vec::new(),
                None,
                None,
            ),
        };
        let received = match self.received {
            Some(files) => files.finish()?,
            None => Vec::new(),
        };
        let mut signatures = match self.signatures {
            Some(files) => files.finish()?,
            None => Vec::new(),
        };
        if self.tables.signatures {
            // Every key name a signature needed and no source had, one per line, sorted: the
            // list to look up in an archive of keys.
            let mut missing = PendingFile::create(out_dir, "missing_keys.txt")?;
            for name in &totals.missing_keys {
                missing.write_all(name.as_bytes())?;
                missing.write_all(b"\n")?;
            }
            signatures.push(missing);
        }
        let mut report_file = PendingFile::create(out_dir, "report.html")?;
        let page = crate::report::render(&crate::report::ReportInput {
            totals: &totals,
            dkim: self.tables.signatures,
            campaigns: details.as_ref(),
        });
        report_file.write_all(page.as_bytes())?;
        signatures.push(report_file);
        if cancel.is_cancelled() || output::aborted() {
            return Err(ScanError::Interrupted);
        }
        let mut report = ScanReport {
            totals,
            elapsed: started.elapsed(),
            grouping_elapsed: match campaigns {
                Some(_) => grouping_started.elapsed(),
                None => Duration::ZERO,
            },
            threads,
            outputs: messages
                .iter()
                .chain(received.iter())
                .chain(signatures.iter())
                .chain(group_files.iter())
                .map(|f| f.path().to_path_buf())
                .collect(),
            campaigns,
        };
        let mut summary_file = PendingFile::create(out_dir, "summary.json")?;
        report.outputs.push(summary_file.path().to_path_buf());
        summary_file.write_all(&summary(&report))?;
        let files = messages
            .into_iter()
            .chain(received)
            .chain(signatures)
            .chain(group_files)
            .chain(std::iter::once(summary_file));
        output::commit(files.collect(), &run_outputs()).map_err(|e| match e {
            OutputError::Interrupted => ScanError::Interrupted,
            e => ScanError::Output(e),
        })?;
        Ok(report)
    }
}

/// Receives each message's typed record, in input order ([`scan_messages`]).
pub trait MessageSink {
    /// One message; return false to stop the scan.
    fn message(&mut self, message: &Message) -> bool;
}

impl<F: FnMut(&Message) -> bool> MessageSink for F {
    fn message(&mut self, message: &Message) -> bool {
        self(message)
    }
}

/// Read `inputs` and hand every message's typed record to `sink`, in input order, on the calling
/// thread, writing no files. Parsing, Received classification and DKIM (when `opts.dkim` is
/// set) run across all cores as in [`scan`]; campaigns and relay abuse, which are decided over
/// the whole corpus, are not (they are in [`scan`]'s output). Gives the run's totals.
pub fn scan_messages(
    inputs: &[PathBuf],
    opts: &ScanOptions,
    sink: &mut dyn MessageSink,
) -> Result<Totals, ScanError> {
    let mut opts = opts.clone();
    opts.campaigns = None;
    opts.formats = Formats {
        csv: false,
        parquet: false,
        jsonl: false,
    };
    let mut stopped = false;
    let ran = pipeline(
        Input::Walk {
            inputs,
            out_dir: None,
        },
        &opts,
        thread_count(&opts),
        &mut |out| {
            for m in &out.records {
                if !sink.message(m) {
                    stopped = true;
                    return false;
                }
            }
            true
        },
        &mut |_| {},
    )?;
    if opts.cancel.is_cancelled() {
        return Err(ScanError::Interrupted);
    }
    if ran.lost_units && !stopped {
        return Err(ScanError::Incomplete);
    }
    let mut totals = ran.totals;
    totals.notes.sort();
    Ok(totals)
}

/// The tables a scan writes in every format asked for.
pub const TABLES: [&str; 5] = [
    "messages",
    "signatures",
    "received",
    "campaigns",
    "campaign_evidence",
];

/// Every file a scan may write into its output directory. A run removes the ones it does not
/// write this time, so the directory always describes one run.
pub fn run_outputs() -> Vec<String> {
    let all = Formats {
        csv: true,
        parquet: true,
        jsonl: true,
    };
    TABLES
        .iter()
        .flat_map(|t| all.file_names(t))
        .chain(
            [
                "timeline.csv",
                "timeline.svg",
                "missing_keys.txt",
                "report.html",
                "summary.json",
            ]
            .map(String::from),
        )
        .collect()
}

/// The name, type and meaning of each of `columns`.
fn columns_of<T: schema::Table + ?Sized>(columns: &[schema::Column<T>]) -> Vec<schema::ColumnInfo> {
    columns.iter().map(schema::Column::info).collect()
}

/// What a worker gives back for one unit: its rows, its counts and its messages' facts.
pub struct UnitOutput {
    /// `messages` rows in each format (campaigns off: they are final).
    pub messages: Rows,
    /// The messages' rows for the grouping stage (campaigns on), one per fact.
    pub spilled: Vec<u8>,
    spill: spill::Spill,
    /// A shard's output: `messages` holds the message stage's columns only.
    partial: bool,
    pub signatures: Rows,
    pub received: Rows,
    pub totals: Totals,
    /// The grouping stage's facts, one per message (campaigns on).
    pub facts: Facts,
    /// The messages themselves, for a [`MessageSink`] (kept when no file format is asked for).
    pub records: Vec<Message>,
    /// A plan's pieces before this index are done once this unit is written (a shard commits
    /// there).
    pub done: Option<u64>,
}

impl UnitOutput {
    /// An empty unit output for a run with `opts`.
    pub fn new(opts: &ScanOptions) -> UnitOutput {
        UnitOutput::with(opts.formats, opts.raw_cells, opts.partial)
    }

    /// An empty unit output writing `formats`; `partial`: a shard's (the message stage's
    /// columns of every message, the corpus-wide ones left to the merge).
    pub fn with(formats: Formats, raw_cells: bool, partial: bool) -> UnitOutput {
        let message_columns = match partial {
            true => columns_of(MESSAGE_COLUMNS),
            false => schema::message_columns(),
        };
        UnitOutput {
            messages: Rows::new(&message_columns, formats, raw_cells),
            spilled: Vec::new(),
            spill: spill::Spill::for_formats(formats, raw_cells),
            partial,
            signatures: Rows::new(&columns_of(SIGNATURE_COLUMNS), formats, raw_cells),
            received: Rows::new(&columns_of(RECEIVED_COLUMNS), formats, raw_cells),
            totals: Totals::default(),
            facts: Facts::default(),
            records: Vec::new(),
            done: None,
        }
    }

    /// Add one message's row as it stands before campaigns are decided: spilled for the
    /// grouping stage (its fact is the last one), or (no campaigns) with empty decided cells.
    pub fn add_message_row<'v, I>(&mut self, values: I, campaigns: bool)
    where
        I: IntoIterator<Item = Value<'v>>,
        I::IntoIter: Clone,
    {
        if campaigns {
            let start = self.spilled.len();
            self.spill.write(values, &mut self.spilled);
            if let Some(f) = self.facts.facts.last_mut() {
                f.row_len = (self.spilled.len() - start) as u32;
            }
        } else {
            // Nothing decided: all three cells empty.
            const UNDECIDED: Decided<'static> = Decided {
                relay_abuse: None,
                relay_abuse_reasons: "",
                campaign: "",
            };
            self.messages.push(
                values
                    .into_iter()
                    .chain(DECIDED_COLUMNS.iter().map(|c| (c.get)(&UNDECIDED))),
            );
        }
    }

    /// Empty it for the next unit, keeping its buffers.
    pub fn clear(&mut self) {
        self.messages.clear();
        self.spilled.clear();
        self.signatures.clear();
        self.received.clear();
        self.totals = Totals::default();
        self.facts.facts.clear();
        self.facts.keys.clear();
        self.facts.text.clear();
        self.facts.key_names.clear();
        self.records.clear();
        self.done = None;
    }

    /// Add one message's rows: its `messages` row (spilled when campaigns are on), a
    /// `signatures` row per signature and a `received` row per hop.
    pub fn add(&mut self, m: &Message, campaigns: bool) {
        if !(self.messages.formats().csv
            || self.messages.formats().parquet
            || self.messages.formats().jsonl)
        {
            self.records.push(m.clone());
            return;
        }
        if self.partial {
            self.messages
                .push(MESSAGE_COLUMNS.iter().map(|c| (c.get)(m)));
        } else {
            self.add_message_row(MESSAGE_COLUMNS.iter().map(|c| (c.get)(m)), campaigns);
        }
        for verdict in &m.signatures {
            let row = SignatureRow {
                message: m,
                verdict,
            };
            self.signatures
                .push(SIGNATURE_COLUMNS.iter().map(|c| (c.get)(&row)));
        }
        for (k, data) in m.received.iter().rev().enumerate() {
            let row = HopRow {
                message: m,
                hop: k as u64 + 1,
                data,
            };
            self.received
                .push(RECEIVED_COLUMNS.iter().map(|c| (c.get)(&row)));
        }
    }
}

/// Unit outputs handed back by the writer for the next units: reusing their buffers saves the
/// page faults of fresh megabyte-sized allocations for every unit.
struct BufferPool {
    spare: Mutex<Vec<UnitOutput>>,
    keep: usize,
}

impl BufferPool {
    fn new(keep: usize) -> Self {
        BufferPool {
            spare: Mutex::new(Vec::new()),
            keep,
        }
    }
    fn take(&self, opts: &ScanOptions) -> UnitOutput {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        spare.pop().unwrap_or_else(|| UnitOutput::new(opts))
    }
    fn give(&self, mut out: UnitOutput) {
        out.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < self.keep {
            spare.push(out);
        }
    }
}

/// The DKIM key names (`selector._domainkey.domain.`) the signatures in `inputs` need, found by
/// a header-only pass over the same inputs (the first step of live DNS lookups).
pub fn collect_key_names(
    inputs: &[PathBuf],
    opts: &ScanOptions,
) -> Result<std::collections::BTreeSet<String>, ScanError> {
    let mut pass = opts.clone();
    pass.dkim = None;
    pass.read.key_names_only = true;
    let ran = pipeline(
        Input::Walk {
            inputs,
            out_dir: None,
        },
        &pass,
        thread_count(opts),
        &mut |_| true,
        &mut |_| {},
    )?;
    if opts.cancel.is_cancelled() {
        return Err(ScanError::Interrupted);
    }
    Ok(ran.totals.key_names)
}

/// What a run reads: the inputs' walk, or a plan's pieces.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// The files and directories `inputs`, walked; `out_dir`, when the run writes one, is left
    /// out of the walk.
    Walk {
        inputs: &'a [PathBuf],
        out_dir: Option<&'a Path>,
    },
    /// A plan's pieces, in order, with a `Done` mark at least every `mark_bytes`.
    Pieces {
        pieces: &'a [(u64, units::Piece)],
        mark_bytes: u64,
    },
}

/// What [`pipeline`] gives back.
pub(crate) struct Ran {
    pub(crate) totals: Totals,
    /// A unit went missing (a bug): the output must not be committed.
    pub(crate) lost_units: bool,
}

pub(crate) fn thread_count(opts: &ScanOptions) -> usize {
    if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
}

/// The parallel part of a run: the producer cuts the inputs into units, the pool turns them into
/// rows, and `deliver` receives every unit's output in input order on the calling thread. When
/// `deliver` returns false (its output failed) the producer stops.
/// `out_dir`, when the run writes one, is left out of the walk: it holds the run's own scratch
/// files and an earlier run's results, never mail.
pub(crate) fn pipeline(
    input: Input<'_>,
    opts: &ScanOptions,
    threads: usize,
    deliver: &mut dyn FnMut(&mut UnitOutput) -> bool,
    progress: &mut dyn FnMut(&Totals),
) -> Result<Ran, ScanError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mailcensus-worker-{i}"))
        .build()
        .map_err(|e| ScanError::Threads(e.to_string()))?;

    let window = Window::new(4 * threads + 2, opts.cancel.clone());
    let buffers = Arc::new(BufferPool::new(2 * (4 * threads + 2)));
    let (tx, rx) = mpsc::channel::<(u64, UnitOutput)>();
    let mut totals = Totals::default();
    let mut failed = false;
    let mut lost_units = false;

    std::thread::scope(|s| {
        let window = &window;
        let pool = &pool;
        let producer_buffers = buffers.clone();
        let producer = s.spawn(move || {
            let buffers = producer_buffers;
            let mut seq = 0u64;
            let reading = units::Reading {
                mmap: opts.mmap,
                small_file_bytes: opts.small_file_bytes,
                stream: &opts.stream,
                cancel: &opts.cancel,
                stdin_name: &opts.stdin_name,
            };
            let mut emit = |work: Work| {
                if !window.acquire() {
                    return false;
                }
                let tx = tx.clone();
                let opts = opts.clone();
                let buffers = buffers.clone();
                let this = seq;
                seq += 1;
                pool.spawn(move || {
                    let mut out = buffers.take(&opts);
                    let what = work.source_name();
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run(work, &opts, &mut out)
                    }));
                    if let Err(panic) = ran {
                        // A bug, not bad input: report the unit's source loudly instead of
                        // aborting the whole run; its rows are dropped and the run is partial.
                        let why = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        out = UnitOutput::new(&opts);
                        out.totals.notes.push(Note {
                            path: what,
                            status: "unreadable",
                            reason: format!("internal error while parsing: {why}"),
                        });
                    }
                    let _ = tx.send((this, out));
                });
                true
            };
            match input {
                Input::Walk { inputs, out_dir } => {
                    units::produce(inputs, &reading, out_dir, &mut emit)
                }
                Input::Pieces { pieces, mark_bytes } => {
                    units::produce_pieces(pieces, &reading, mark_bytes, &mut emit)
                }
            }
            // Dropping the producer's sender lets the writer's loop end after the last unit.
            drop(tx);
            seq
        });

        let mut next = 0u64;
        let mut parked: BTreeMap<u64, UnitOutput> = BTreeMap::new();
        for (seq, out) in rx.iter() {
            parked.insert(seq, out);
            while let Some(mut out) = parked.remove(&next) {
                next += 1;
                if !failed && !deliver(&mut out) {
                    failed = true;
                    window.close();
                }
                totals.merge(std::mem::take(&mut out.totals));
                buffers.give(out);
                window.release();
                progress(&totals);
            }
        }
        let produced = producer.join().unwrap_or(u64::MAX);
        if !failed && !window.is_closed() && (next != produced || !parked.is_empty()) {
            lost_units = true;
        }
    });
    Ok(Ran { totals, lost_units })
}

/// A counting window: at most `max` units between production and writing.
struct Window {
    state: Mutex<(usize, bool)>,
    cond: Condvar,
    max: usize,
    cancel: Cancel,
}

impl Window {
    fn new(max: usize, cancel: Cancel) -> Self {
        Window {
            state: Mutex::new((0, false)),
            cond: Condvar::new(),
            max,
            cancel,
        }
    }
    /// Wait for room; false when the window was closed (stop producing).
    fn acquire(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.0 >= self.max && !st.1 {
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.1 || self.cancel.is_cancelled() {
            return false;
        }
        st.0 += 1;
        true
    }
    fn release(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.0 = st.0.saturating_sub(1);
        self.cond.notify_all();
    }
    fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1
    }
    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = true;
        self.cond.notify_all();
    }
}

/// Turn one unit into rows and counts.
pub fn run(work: Work, opts: &ScanOptions, out: &mut UnitOutput) {
    match work {
        Work::Messages {
            source,
            data,
            items,
        } => {
            let mut reader = Reader::new(
                opts.read,
                opts.dkim.as_deref(),
                opts.campaigns.as_deref(),
                opts.now,
            );
            let mut headers: Headers<'_> = Headers::default();
            let mut hops: Vec<Hop<'_>> = Vec::new();
            let cap = opts.stream.max_message_bytes;
            let campaigns = opts.campaigns.is_some();
            for item in &items {
                let item = item.within(cap);
                let read = reader.read_with(
                    &source,
                    &data,
                    &item,
                    &mut headers,
                    &mut hops,
                    &mut out.totals,
                    &mut out.facts,
                );
                if read {
                    out.add(&reader.message, campaigns);
                }
            }
            // The unit's bytes are read for good: a mapped file's pages leave resident memory.
            let kept = items.iter().filter(|i| i.start < i.end);
            let start = kept.clone().map(|i| i.start).min();
            let end = kept.map(|i| i.end).max();
            if let (Some(start), Some(end)) = (start, end) {
                data.release(start..end);
            }
        }
        Work::Files(jobs) => {
            for job in jobs {
                out.totals.files += 1;
                out.totals.bytes += job.data.len() as u64;
                match units::small_file(job, &opts.stream) {
                    Ok(work) => run(work, opts, out),
                    Err(note) => out.totals.notes.push(note),
                }
            }
        }
        Work::Note(note) => out.totals.notes.push(note),
        Work::Done(pieces) => out.done = Some(pieces),
        Work::FileOpened { bytes } => {
            out.totals.files += 1;
            out.totals.bytes += bytes;
        }
    }
}
