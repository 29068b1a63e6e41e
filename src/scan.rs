//! The pipeline: inputs → split → headers → classify → rows → output, across all cores.
//!
//! Takes input paths and options and gives the result files in the output directory plus a
//! [`ScanReport`]. One producer thread walks the inputs, maps or streams each file and cuts it
//! into [`Work`] units in input order; a Rayon pool turns units into rows in parallel; the calling
//! thread writes the rows back in unit order. A bounded number of units is in flight at once, so
//! memory depends on the thread count, not on the corpus size, and the output bytes never depend
//! on scheduling.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use memmap2::Mmap;
use thiserror::Error;

use crate::aggregate::Totals;
use crate::classify::received::Hop;
use crate::headers::Headers;
use crate::input::stream::{self, StreamLimits};
use crate::input::{self, Format, Found, SNIFF_BYTES};
use crate::output::{self, OutputError, PendingFile};
use crate::record::{self, RowOptions, RowWriter, UnitOutput};
use crate::split::{self, EntryKind};
use crate::work::{Bytes, FileJob, Item, ItemKind, Note, Work};

/// Set to stop a scan early (the CLI sets it on Ctrl-C); the scan then commits nothing.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How a scan runs.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Memory-map regular files (default). Off: buffered reads, for filesystems where a file
    /// may shrink while mapped.
    pub mmap: bool,
    pub rows: RowOptions,
    pub stream: StreamLimits,
    /// Files smaller than this are read whole by a worker, in batches, instead of mapped.
    pub small_file_bytes: u64,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: 0,
            mmap: true,
            rows: RowOptions::default(),
            stream: StreamLimits::default(),
            small_file_bytes: 1 << 20,
        }
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
}

/// What a finished scan reports.
#[derive(Debug, Clone)]
pub struct ScanReport {
    pub totals: Totals,
    pub elapsed: Duration,
    pub threads: usize,
    /// Result files written, in commit order.
    pub outputs: Vec<PathBuf>,
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
    let mut messages = PendingFile::create(out_dir, "messages.csv")?;
    let mut received = PendingFile::create(out_dir, "received.csv")?;
    messages.write_all(&record::header_line(&record::MESSAGE_COLUMNS))?;
    received.write_all(&record::header_line(&record::RECEIVED_COLUMNS))?;

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("mailcensus-worker-{i}"))
        .build()
        .map_err(|e| ScanError::Threads(e.to_string()))?;

    let window = Window::new(4 * threads + 2);
    let buffers = Arc::new(BufferPool::new(2 * (4 * threads + 2)));
    let (tx, rx) = mpsc::channel::<(u64, UnitOutput)>();
    let mut totals = Totals::default();
    let mut write_error: Option<OutputError> = None;

    std::thread::scope(|s| {
        let window = &window;
        let pool = &pool;
        let producer_buffers = buffers.clone();
        s.spawn(move || {
            let buffers = producer_buffers;
            let mut seq = 0u64;
            produce(inputs, opts, &mut |work| {
                if !window.acquire() {
                    return;
                }
                let tx = tx.clone();
                let opts = opts.clone();
                let buffers = buffers.clone();
                let this = seq;
                seq += 1;
                pool.spawn(move || {
                    let mut out = UnitOutput {
                        messages_csv: buffers.take(),
                        received_csv: buffers.take(),
                        ..UnitOutput::default()
                    };
                    run(work, &opts, &mut out);
                    let _ = tx.send((this, out));
                });
            });
            // Dropping the producer's sender lets the writer's loop end after the last unit.
            drop(tx);
        });

        let mut next = 0u64;
        let mut parked: BTreeMap<u64, UnitOutput> = BTreeMap::new();
        for (seq, out) in rx.iter() {
            parked.insert(seq, out);
            while let Some(out) = parked.remove(&next) {
                next += 1;
                if write_error.is_none() {
                    let written = messages
                        .write_all(&out.messages_csv)
                        .and_then(|()| received.write_all(&out.received_csv));
                    if let Err(e) = written {
                        write_error = Some(e);
                        window.close();
                    }
                }
                buffers.give(out.messages_csv);
                buffers.give(out.received_csv);
                totals.merge(out.totals);
                window.release();
                progress(&totals);
            }
        }
    });

    if let Some(e) = write_error {
        output::discard(vec![messages, received]);
        return Err(e.into());
    }
    if INTERRUPTED.load(Ordering::SeqCst) || output::aborted() {
        output::discard(vec![messages, received]);
        return Err(ScanError::Interrupted);
    }
    totals.notes.sort();
    let mut report = ScanReport {
        totals,
        elapsed: started.elapsed(),
        threads,
        outputs: vec![messages.path().to_path_buf(), received.path().to_path_buf()],
    };
    let mut summary_file = PendingFile::create(out_dir, "summary.json")?;
    report.outputs.push(summary_file.path().to_path_buf());
    summary_file.write_all(&summary(&report))?;
    output::commit(vec![messages, received, summary_file]).map_err(|e| match e {
        OutputError::Interrupted => ScanError::Interrupted,
        e => ScanError::Output(e),
    })?;
    Ok(report)
}

/// Output buffers handed back by the writer for the next units: reusing them saves the page
/// faults of fresh megabyte-sized allocations for every unit.
struct BufferPool {
    spare: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    fn new(keep: usize) -> Self {
        BufferPool {
            spare: Mutex::new(Vec::new()),
            keep,
        }
    }
    fn take(&self) -> Vec<u8> {
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        spare.pop().unwrap_or_default()
    }
    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < self.keep {
            spare.push(buf);
        }
    }
}

/// A counting window: at most `max` units between production and writing.
struct Window {
    state: Mutex<(usize, bool)>,
    cond: Condvar,
    max: usize,
}

impl Window {
    fn new(max: usize) -> Self {
        Window {
            state: Mutex::new((0, false)),
            cond: Condvar::new(),
            max,
        }
    }
    /// Wait for room; false when the window was closed (stop producing).
    fn acquire(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.0 >= self.max && !st.1 {
            st = self.cond.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.1 || INTERRUPTED.load(Ordering::Relaxed) {
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
    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 = true;
        self.cond.notify_all();
    }
}

fn source_name(path: &Path) -> Arc<str> {
    path.to_string_lossy().into()
}

/// Walk the inputs and cut them into work units, in input order.
fn produce(inputs: &[PathBuf], opts: &ScanOptions, emit: &mut dyn FnMut(Work)) {
    let mut batch: Vec<FileJob> = Vec::new();
    let mut batch_bytes = 0u64;
    let flush = |batch: &mut Vec<FileJob>, bytes: &mut u64, emit: &mut dyn FnMut(Work)| {
        if !batch.is_empty() {
            emit(Work::Files(std::mem::take(batch)));
            *bytes = 0;
        }
    };
    input::walk(inputs, |found| {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return;
        }
        match found {
            Found::File {
                path,
                size: Some(size),
                in_maildir,
            } if size < opts.small_file_bytes => {
                batch_bytes += size;
                batch.push(FileJob {
                    source: source_name(&path),
                    path,
                    in_maildir,
                });
                if batch_bytes >= opts.stream.block_bytes as u64 || batch.len() >= 512 {
                    flush(&mut batch, &mut batch_bytes, emit);
                }
            }
            Found::File {
                path,
                size,
                in_maildir,
            } => {
                flush(&mut batch, &mut batch_bytes, emit);
                read_large(&path, size, in_maildir, opts, emit);
            }
            Found::Stdin => {
                flush(&mut batch, &mut batch_bytes, emit);
                let stdin = std::io::stdin();
                let mut lock = stdin.lock();
                stream::read_stream(&mut lock, &"-".into(), 0, &opts.stream, false, emit);
            }
            Found::Skipped { path, reason } => {
                emit(Work::Note(Note::skipped(&path.to_string_lossy(), reason)));
            }
            Found::Unreadable { path, error } => emit(Work::Note(Note {
                path: path.to_string_lossy().into_owned(),
                status: "unreadable",
                reason: error,
            })),
        }
    });
    flush(&mut batch, &mut batch_bytes, emit);
}

/// A file too large to batch: map it and split it here, or stream it.
fn read_large(
    path: &Path,
    size: Option<u64>,
    in_maildir: bool,
    opts: &ScanOptions,
    emit: &mut dyn FnMut(Work),
) {
    let source = source_name(path);
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    emit(Work::FileOpened {
        bytes: size.unwrap_or(0),
    });
    if size == Some(0) {
        // Counted as an `empty` malformed message, like an empty file in a batch.
        return emit(Work::Messages {
            source,
            data: Bytes::Owned(Vec::new()),
            items: vec![Item {
                offset: 0,
                length: 0,
                start: 0,
                end: 0,
                kind: ItemKind::Whole,
            }],
        });
    }
    let Some(_) = size.filter(|_| opts.mmap) else {
        let mut reader = BufReader::with_capacity(1 << 20, file);
        return stream::read_stream(&mut reader, &source, 0, &opts.stream, in_maildir, emit);
    };
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = match read_head(&file, &mut head) {
        Ok(n) => n,
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    let format = input::sniff(&head[..n]);
    let mappable = matches!(format, Format::Mbox | Format::Message)
        || (format == Format::NotMail && in_maildir);
    if format == Format::NotMail && !in_maildir {
        return emit(Work::Note(Note::skipped(&source, "not-mail")));
    }
    if !mappable {
        let mut reader = BufReader::with_capacity(1 << 20, file);
        return stream::read_stream(&mut reader, &source, 0, &opts.stream, in_maildir, emit);
    }
    // SAFETY: the map is read-only and private to this process. If another process truncates
    // the file while it is mapped, reading the lost pages raises SIGBUS and the run stops; the
    // README says so and offers --no-mmap for such filesystems.
    let map = match unsafe { Mmap::map(&file) } {
        Ok(m) => Arc::new(m),
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    let len = map.len();
    if format != Format::Mbox {
        return emit(Work::Messages {
            source,
            data: Bytes::Mapped(map),
            items: vec![Item {
                offset: 0,
                length: len as u64,
                start: 0,
                end: len,
                kind: ItemKind::Whole,
            }],
        });
    }
    let data: &[u8] = &map;
    let first = split::first_entry(data).unwrap_or(len);
    let mut items = Vec::new();
    if data[..first].iter().any(|b| !b.is_ascii_whitespace()) {
        items.push(Item {
            offset: 0,
            length: first as u64,
            start: 0,
            end: first,
            kind: ItemKind::Entry(EntryKind::Preamble),
        });
    }
    let mut pos = first;
    let mut entries = Vec::new();
    while pos < len && !INTERRUPTED.load(Ordering::Relaxed) {
        entries.clear();
        let planned = split::plan_entries(
            data,
            pos,
            true,
            opts.stream.block_bytes,
            &opts.stream.split,
            &mut entries,
        );
        items.extend(entries.iter().map(|e| Item {
            offset: e.start as u64,
            length: (e.end - e.start) as u64,
            start: e.start,
            end: e.end,
            kind: ItemKind::Entry(e.kind),
        }));
        emit(Work::Messages {
            source: source.clone(),
            data: Bytes::Mapped(map.clone()),
            items: std::mem::take(&mut items),
        });
        pos = planned.next;
    }
    if !items.is_empty() {
        emit(Work::Messages {
            source,
            data: Bytes::Mapped(map),
            items,
        });
    }
}

fn read_head(file: &File, head: &mut [u8]) -> std::io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Turn one unit into rows and counts.
pub fn run(work: Work, opts: &ScanOptions, out: &mut UnitOutput) {
    match work {
        Work::Messages {
            source,
            data,
            items,
        } => {
            let mut rows = RowWriter::new(opts.rows, out);
            let mut headers: Headers<'_> = Headers::default();
            let mut hops: Vec<Hop<'_>> = Vec::new();
            for item in &items {
                rows.item_with(&source, &data, item, &mut headers, &mut hops);
            }
        }
        Work::Files(jobs) => {
            for job in jobs {
                read_small(&job, opts, out);
            }
        }
        Work::Note(note) => out.totals.notes.push(note),
        Work::FileOpened { bytes } => {
            out.totals.files += 1;
            out.totals.bytes += bytes;
        }
    }
}

/// A small file: read whole, sniffed, and handled right here in the worker.
fn read_small(job: &FileJob, opts: &ScanOptions, out: &mut UnitOutput) {
    let data = match read_file(&job.path) {
        Ok(d) => d,
        Err(e) => {
            out.totals.notes.push(Note::unreadable(&job.source, &e));
            return;
        }
    };
    out.totals.files += 1;
    out.totals.bytes += data.len() as u64;
    let format = input::sniff(&data[..data.len().min(SNIFF_BYTES)]);
    let whole = |data: Vec<u8>| {
        let len = data.len();
        Work::Messages {
            source: job.source.clone(),
            data: Bytes::Owned(data),
            items: vec![Item {
                offset: 0,
                length: len as u64,
                start: 0,
                end: len,
                kind: ItemKind::Whole,
            }],
        }
    };
    match format {
        // An empty file in a tree of messages is a message that lost its bytes: counted as such.
        Format::Message => run(whole(data), opts, out),
        Format::NotMail if data.is_empty() => run(whole(data), opts, out),
        Format::NotMail if job.in_maildir => run(whole(data), opts, out),
        Format::NotMail => out
            .totals
            .notes
            .push(Note::skipped(&job.source, "not-mail")),
        Format::Mbox => {
            let entries = split::split_all(&data, &opts.stream.split);
            let items = entries
                .iter()
                .map(|e| Item {
                    offset: e.start as u64,
                    length: (e.end - e.start) as u64,
                    start: e.start,
                    end: e.end,
                    kind: ItemKind::Entry(e.kind),
                })
                .collect();
            run(
                Work::Messages {
                    source: job.source.clone(),
                    data: Bytes::Owned(data),
                    items,
                },
                opts,
                out,
            );
        }
        _ => {
            let mut reader = std::io::Cursor::new(data);
            stream::read_stream(
                &mut reader,
                &job.source,
                0,
                &opts.stream,
                job.in_maildir,
                &mut |w| run(w, opts, out),
            );
        }
    }
}

fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}
