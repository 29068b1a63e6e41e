//! Work units from every kind of source: the input stage's output.
//!
//! Takes the paths to scan and gives [`Work`] units in input order: small files read and batched
//! (a worker sniffs and splits them, [`small_file`]), large files mapped and cut into blocks of
//! whole messages at the splitter's boundaries, compressed files, tar archives, pipes and
//! standard input streamed ([`super::stream`]), and notes for what is skipped or unreadable. A
//! file that changes while it is read ends in a read error, never in a silent mix.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::stream::{self, Sink, StreamLimits};
use super::{Format, Found, SNIFF_BYTES, detect, sniff, walk};
use crate::headers::Malformed;
use crate::split;
use crate::work::{Bytes, Cancel, FileJob, Item, ItemKind, Note, Work};

/// How inputs are read.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    /// Memory-map regular files (else buffered reads).
    pub mmap: bool,
    /// Files smaller than this are read whole and batched.
    pub small_file_bytes: u64,
    pub stream: &'a StreamLimits,
    /// Stops the walk when cancelled.
    pub cancel: &'a Cancel,
    /// The `source` of standard input's messages (`-` unless the user names it).
    pub stdin_name: &'a str,
}

fn source_name(path: &Path) -> Arc<str> {
    path.to_string_lossy().into()
}

/// Walk the inputs and cut them into work units, in input order. `emit` returns false when the
/// scan is stopping; the walk then ends early.
pub fn produce(
    inputs: &[PathBuf],
    opts: &Reading<'_>,
    out_dir: Option<&Path>,
    emit: &mut Sink<'_>,
) {
    let mut producer = Producer::new(opts, emit);
    let mut going = true;
    walk(inputs, out_dir, |found| {
        going = going && !opts.cancel.is_cancelled() && producer.found(found);
    });
    if going {
        producer.flush();
    }
}

/// A piece of the input as a plan lists it ([`crate::cluster::plan`]): a file as the walk
/// found it, a byte range of a large mbox file, or a note the walk made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A whole file.
    File {
        path: PathBuf,
        size: Option<u64>,
        in_maildir: bool,
    },
    /// The messages of an mbox file from `start` to `end`, both boundaries where the splitter
    /// starts a block ([`mbox_cuts`]); the file is counted with the range that starts at 0.
    Range { path: PathBuf, start: u64, end: u64 },
    /// Something the walk reported instead of a file.
    Note(Note),
}

/// Cut `pieces` into work units, in order, as [`produce`] cuts the files of a walk (the same
/// pieces give the same messages in the same order). After the pieces `..n` are all emitted,
/// at least every `mark_bytes` of input and after the last piece, `Work::Done(n)` follows
/// them: where a shard may commit what it has.
pub fn produce_pieces(
    pieces: &[(u64, Piece)],
    opts: &Reading<'_>,
    mark_bytes: u64,
    emit: &mut Sink<'_>,
) {
    let mut producer = Producer::new(opts, emit);
    let mut since_mark = 0u64;
    for (i, (index, piece)) in pieces.iter().enumerate() {
        if opts.cancel.is_cancelled() {
            return;
        }
        let going = match piece {
            Piece::File {
                path,
                size,
                in_maildir,
            } => {
                since_mark += size.unwrap_or(0);
                producer.found(Found::File {
                    path: path.clone(),
                    size: *size,
                    in_maildir: *in_maildir,
                })
            }
            Piece::Range { path, start, end } => {
                since_mark += end - start;
                producer.flush() && read_range(path, *start..*end, opts, producer.emit)
            }
            Piece::Note(note) => (producer.emit)(Work::Note(note.clone())),
        };
        if !going {
            return;
        }
        let last = i + 1 == pieces.len();
        if (since_mark >= mark_bytes || last)
            && !(producer.flush() && (producer.emit)(Work::Done(index + 1)))
        {
            return;
        }
        if since_mark >= mark_bytes {
            since_mark = 0;
        }
    }
}

/// Turns what the walk finds into work units: small files are read and batched, large ones
/// mapped and cut (or streamed).
struct Producer<'o, 'e, 's> {
    opts: &'o Reading<'o>,
    emit: &'e mut Sink<'s>,
    batch: Vec<FileJob>,
    batch_bytes: u64,
}

impl<'o, 'e, 's> Producer<'o, 'e, 's> {
    fn new(opts: &'o Reading<'o>, emit: &'e mut Sink<'s>) -> Self {
        Producer {
            opts,
            emit,
            batch: Vec::new(),
            batch_bytes: 0,
        }
    }

    /// Emit the batch of small files gathered so far; false when the scan is stopping.
    fn flush(&mut self) -> bool {
        self.batch_bytes = 0;
        self.batch.is_empty() || (self.emit)(Work::Files(std::mem::take(&mut self.batch)))
    }

    /// Take one thing the walk found; false when the scan is stopping.
    fn found(&mut self, found: Found) -> bool {
        let opts = self.opts;
        match found {
            Found::File {
                path,
                size: Some(size),
                in_maildir,
            } if size < opts.small_file_bytes => {
                // Small files are read here (one open per file) and sniffed: compressed and tar
                // files go to the streaming path, whatever their size, so their expansion is
                // split into bounded units like any large input.
                let source = source_name(&path);
                match read_file(&path) {
                    Err(e) => (self.emit)(Work::Note(Note::unreadable(&source, &e))),
                    Ok(data) => {
                        let format = sniff(&data[..data.len().min(SNIFF_BYTES)]);
                        if format.is_compressed() || format == Format::Tar {
                            self.flush()
                                && (self.emit)(Work::FileOpened {
                                    bytes: data.len() as u64,
                                })
                                && stream::read_stream(
                                    &mut std::io::Cursor::new(data),
                                    &source,
                                    0,
                                    opts.stream,
                                    in_maildir,
                                    self.emit,
                                )
                        } else {
                            self.batch_bytes += size;
                            self.batch.push(FileJob {
                                source,
                                data,
                                in_maildir,
                            });
                            if self.batch_bytes >= opts.stream.block_bytes as u64
                                || self.batch.len() >= 512
                            {
                                self.flush()
                            } else {
                                true
                            }
                        }
                    }
                }
            }
            Found::File {
                path,
                size,
                in_maildir,
            } => self.flush() && read_large(&path, size, in_maildir, opts, self.emit),
            Found::Stdin => {
                self.flush() && (self.emit)(Work::FileOpened { bytes: 0 }) && {
                    let stdin = std::io::stdin();
                    let mut lock = stdin.lock();
                    stream::read_stream(
                        &mut lock,
                        &opts.stdin_name.into(),
                        0,
                        opts.stream,
                        false,
                        self.emit,
                    )
                }
            }
            Found::Skipped { path, reason } => {
                (self.emit)(Work::Note(Note::skipped(&path.to_string_lossy(), reason)))
            }
            Found::Unreadable { path, error } => (self.emit)(Work::Note(Note {
                path: path.to_string_lossy().into_owned(),
                status: "unreadable",
                reason: error,
            })),
        }
    }
}

/// A file too large to batch: map it and split it here, or stream it.
fn read_large(
    path: &Path,
    size: Option<u64>,
    in_maildir: bool,
    opts: &Reading<'_>,
    emit: &mut Sink<'_>,
) -> bool {
    let source = source_name(path);
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    if !emit(Work::FileOpened {
        bytes: size.unwrap_or(0),
    }) {
        return false;
    }
    let opened = match size.and_then(|_| Snapshot::of(&file).ok()) {
        Some(snapshot) => snapshot,
        None => {
            // A pipe or a device: a stream with no size to hold it to.
            let mut reader = BufReader::with_capacity(1 << 20, file);
            return stream::read_stream(&mut reader, &source, 0, opts.stream, in_maildir, emit);
        }
    };
    if !opts.mmap {
        let mut reader = BufReader::with_capacity(1 << 20, Watched::new(file, opened));
        return stream::read_stream(&mut reader, &source, 0, opts.stream, in_maildir, emit);
    }
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = match read_head(&file, &mut head) {
        Ok(n) => n,
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    let format = sniff(&head[..n]);
    if format.is_compressed() || format == Format::Tar {
        let mut reader = BufReader::with_capacity(1 << 20, Watched::new(file, opened));
        return stream::read_stream(&mut reader, &source, 0, opts.stream, in_maildir, emit);
    }
    let map = match map_file(&file) {
        Ok(m) => m,
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    let len = map.len();
    let cap = opts.stream.max_message_bytes;
    let format = detect(&map[..len.min(cap)], !in_maildir);
    if format == Format::NotMail && !in_maildir {
        return emit(Work::Note(Note::skipped(&source, "not-mail")));
    }
    let mut cut = Cutter::new(source, map, file, opened);
    if format != Format::Mbox {
        cut.send(vec![Item::whole(len)], emit) && cut.finish(emit)
    } else {
        cut.mbox(0..len, opts, emit) && cut.finish(emit)
    }
}

/// The messages of `path` from byte `range.start` to `range.end`, both block starts of the
/// splitter (a plan's [`Piece::Range`]); the file counts as opened with the range at 0.
fn read_range(
    path: &Path,
    range: std::ops::Range<u64>,
    opts: &Reading<'_>,
    emit: &mut Sink<'_>,
) -> bool {
    let source = source_name(path);
    let opened = File::open(path).and_then(|file| {
        let snapshot = Snapshot::of(&file)?;
        let map = map_file(&file)?;
        Ok((file, snapshot, map))
    });
    let (file, snapshot, map) = match opened {
        Ok(o) => o,
        Err(e) => return emit(Work::Note(Note::unreadable(&source, &e))),
    };
    if range.start == 0
        && !emit(Work::FileOpened {
            bytes: snapshot.size,
        })
    {
        return false;
    }
    let len = map.len();
    let to = usize::try_from(range.end).map_or(len, |end| end.min(len));
    let from = usize::try_from(range.start).map_or(len, |start| start.min(to));
    let mut cut = Cutter::new(source, map, file, snapshot);
    cut.mbox(from..to, opts, emit) && cut.finish(emit)
}

/// Map a whole file, read-only, for sequential reading.
fn map_file(file: &File) -> std::io::Result<Arc<Mmap>> {
    // SAFETY: the map is read-only and private to this process. If another process truncates
    // the file while it is mapped, reading the lost pages raises SIGBUS and the run stops; the
    // README says so and offers --no-mmap for such filesystems.
    let map = Arc::new(unsafe { Mmap::map(file) }?);
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Cuts a mapped file into units of whole messages. The last unit is held back until the file
/// is known not to have changed under the map ([`Cutter::finish`]).
struct Cutter {
    source: Arc<str>,
    map: Arc<Mmap>,
    file: File,
    opened: Snapshot,
    pending: Option<Vec<Item>>,
}

impl Cutter {
    fn new(source: Arc<str>, map: Arc<Mmap>, file: File, opened: Snapshot) -> Cutter {
        Cutter {
            source,
            map,
            file,
            opened,
            pending: None,
        }
    }

    /// Queue one unit, emitting the one queued before it.
    fn send(&mut self, items: Vec<Item>, emit: &mut Sink<'_>) -> bool {
        let unit = self.pending.replace(items).map(|items| Work::Messages {
            source: self.source.clone(),
            data: Bytes::Mapped(self.map.clone()),
            items,
        });
        unit.is_none_or(&mut *emit)
    }

    /// The mbox entries that start in `range` (from the file's first entry when it starts at 0,
    /// else from `range.start`, a block start), in blocks of the splitter's budget.
    fn mbox(
        &mut self,
        range: std::ops::Range<usize>,
        opts: &Reading<'_>,
        emit: &mut Sink<'_>,
    ) -> bool {
        let map = self.map.clone();
        let data: &[u8] = &map;
        let mut items: Vec<Item> = Vec::new();
        let mut pos = range.start;
        if pos == 0 {
            let first = split::first_entry(data).unwrap_or(data.len());
            items.extend(split::leading_entry(data, first).map(|e| Item::from_entry(&e, 0)));
            pos = first;
        }
        let mut entries = Vec::new();
        while pos < range.end {
            let next = next_block(data, pos, opts, &mut entries);
            items.extend(entries.iter().map(|e| Item::from_entry(e, 0)));
            if !self.send(std::mem::take(&mut items), emit) {
                return false;
            }
            pos = next;
        }
        items.is_empty() || self.send(items, emit)
    }

    /// Emit the held-back unit, its last message a read error (and a note) when the file
    /// changed while it was mapped.
    fn finish(mut self, emit: &mut Sink<'_>) -> bool {
        let Some(mut last) = self.pending.take() else {
            return true;
        };
        if let Err(e) = self.opened.check(&self.file) {
            if let Some(item) = last.last_mut() {
                item.kind = ItemKind::Failed(Malformed::ReadError);
            }
            if !emit(Work::Note(Note::unreadable(&self.source, &e))) {
                return false;
            }
        }
        emit(Work::Messages {
            source: self.source,
            data: Bytes::Mapped(self.map),
            items: last,
        })
    }
}

/// The entries of the block of a mapped mbox that starts at `pos` (an entry start), into
/// `entries` (emptied first); gives where the next block starts. A scan's blocks and a plan's
/// cut points both come from here, so a range that starts at a cut point reads the same blocks.
fn next_block(
    data: &[u8],
    pos: usize,
    opts: &Reading<'_>,
    entries: &mut Vec<split::Entry>,
) -> usize {
    entries.clear();
    split::plan_entries(
        data,
        pos,
        true,
        opts.stream.block_bytes,
        &opts.stream.split,
        entries,
    )
    .next
}

/// Where a plan may cut the mbox file at `path` into ranges: block starts of the splitter (the
/// offsets a scan of the whole file starts its blocks at, so the ranges hold exactly the
/// messages of the whole file, each once), at least `every` bytes apart, not counting 0 and
/// the end. None when the file is not a plain mbox file (it is read whole).
pub fn mbox_cuts(
    path: &Path,
    in_maildir: bool,
    every: u64,
    opts: &Reading<'_>,
) -> std::io::Result<Option<Vec<u64>>> {
    let file = File::open(path)?;
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = read_head(&file, &mut head)?;
    let format = sniff(&head[..n]);
    if format.is_compressed() || format == Format::Tar {
        return Ok(None);
    }
    let map = map_file(&file)?;
    let data: &[u8] = &map;
    let len = data.len();
    if detect(&data[..len.min(opts.stream.max_message_bytes)], !in_maildir) != Format::Mbox {
        return Ok(None);
    }
    let mut cuts = Vec::new();
    let mut last_cut = 0u64;
    let mut pos = split::first_entry(data).unwrap_or(len);
    let mut entries = Vec::new();
    let bytes = Bytes::Mapped(map.clone());
    let mut released = 0usize;
    while pos < len {
        // What was read is not needed again: it leaves resident memory.
        bytes.release(released..pos & !4095);
        released = released.max(pos & !4095);
        pos = next_block(data, pos, opts, &mut entries);
        if pos < len && pos as u64 - last_cut >= every {
            cuts.push(pos as u64);
            last_cut = pos as u64;
        }
    }
    Ok(Some(cuts))
}

/// A file's size and modification time when it was opened, to tell whether it changed while read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    size: u64,
    modified: Option<std::time::SystemTime>,
}

impl Snapshot {
    pub(crate) fn of(file: &File) -> std::io::Result<Snapshot> {
        let meta = file.metadata()?;
        Ok(Snapshot {
            size: meta.len(),
            modified: meta.modified().ok(),
        })
    }

    /// An error when the file no longer has the size and modification time it was opened with.
    fn check(&self, file: &File) -> std::io::Result<()> {
        let now = Snapshot::of(file)?;
        if now.size != self.size || now.modified != self.modified {
            return Err(std::io::Error::other(format!(
                "the file changed while it was read ({} bytes when opened, {} now{})",
                self.size,
                now.size,
                if now.modified != self.modified {
                    ", modified since"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }
}

/// A regular file read as a stream, held to what it was when opened: it yields at most the bytes
/// it had then, and its end is an error when it came short or the file's size or modification
/// time changed meanwhile — so a file truncated, grown or rewritten during the read makes its
/// last message a `read-error` and the run partial, never a silent short answer.
pub(crate) struct Watched {
    file: File,
    opened: Snapshot,
    read: u64,
    /// The end, once checked (readers ask again after the end).
    ended: Option<Result<(), String>>,
}

impl Watched {
    pub(crate) fn new(file: File, opened: Snapshot) -> Watched {
        Watched {
            file,
            opened,
            read: 0,
            ended: None,
        }
    }

    fn end(&mut self) -> std::io::Result<usize> {
        let ended = self.ended.get_or_insert_with(|| {
            if self.read < self.opened.size {
                return Err(format!(
                    "the file changed while it was read (it ended after {} of its {} bytes)",
                    self.read, self.opened.size
                ));
            }
            self.opened.check(&self.file).map_err(|e| e.to_string())
        });
        match ended {
            Ok(()) => Ok(0),
            Err(message) => Err(std::io::Error::other(message.clone())),
        }
    }
}

impl Read for Watched {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let room = self.opened.size - self.read;
        if room == 0 || buf.is_empty() {
            return if buf.is_empty() { Ok(0) } else { self.end() };
        }
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        match self.file.read(&mut buf[..want])? {
            0 => self.end(),
            n => {
                self.read += n as u64;
                Ok(n)
            }
        }
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

/// The messages of a small file the producer read (and found not compressed, not tar): a unit
/// of them, or the note that it is not mail. An empty file in a tree of messages is a message
/// that lost its bytes and is counted as such.
pub fn small_file(job: FileJob, limits: &StreamLimits) -> Result<Work, Note> {
    let data = job.data;
    let cap = limits.max_message_bytes;
    let format = detect(&data[..data.len().min(cap)], !job.in_maildir);
    let len = data.len();
    let items = match format {
        Format::Mbox => split::split_all(&data, &limits.split)
            .iter()
            .map(|e| Item::from_entry(e, 0))
            .collect(),
        Format::NotMail if !job.in_maildir && !data.is_empty() => {
            return Err(Note::skipped(&job.source, "not-mail"));
        }
        _ => vec![Item::whole(len)],
    };
    Ok(Work::Messages {
        source: job.source,
        data: Bytes::Owned(data),
        items,
    })
}

fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::EntryKind;
    use std::io::Write;

    const MBOX: &[u8] = b"From a@b Mon May  6 00:10:11 2024\nSubject: one\n\nfirst body\n\nFrom c@d Mon May  6 00:11:11 2024\nSubject: two\n\nsecond body, long enough to be cut in two\n\nFrom e@f Mon May  6 00:12:11 2024\nSubject: three\n\nthird\n";

    /// Read `path` as `--no-mmap` does, after `change` has done its work on the open file.
    fn read_watched(change: impl FnOnce(&Path)) -> (Vec<Item>, Vec<Note>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changing.mbox");
        std::fs::write(&path, MBOX).unwrap();
        let file = File::open(&path).unwrap();
        let opened = Snapshot::of(&file).unwrap();
        change(&path);
        let mut reader = BufReader::new(Watched::new(file, opened));
        let (mut items, mut notes) = (Vec::new(), Vec::new());
        let limits = StreamLimits::default();
        stream::read_stream(&mut reader, &"x".into(), 0, &limits, false, &mut |w| {
            match w {
                Work::Messages { items: i, .. } => items.extend(i),
                Work::Note(n) => notes.push(n),
                _ => {}
            }
            true
        });
        (items, notes)
    }

    #[test]
    fn an_unchanged_file_reads_whole() {
        let (items, notes) = read_watched(|_| {});
        assert_eq!(items.len(), 3);
        assert!(
            items
                .iter()
                .all(|i| i.kind == ItemKind::Entry(EntryKind::Message))
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn a_file_that_shrinks_while_read_ends_in_a_read_error() {
        let cut = MBOX.len() - 30;
        let (items, notes) = read_watched(|p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(cut as u64).unwrap();
        });
        let last = items.last().unwrap();
        assert_eq!(last.kind, ItemKind::Failed(Malformed::ReadError));
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].status, "unreadable");
        assert!(
            notes[0].reason.contains("changed while it was read"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_file_that_grows_while_read_ends_in_a_read_error() {
        let (items, notes) = read_watched(|p| {
            let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
            f.write_all(b"\nFrom g@h Mon May  6 00:13:11 2024\nSubject: four\n\nx\n")
                .unwrap();
        });
        // Only the bytes the file had when opened are read, and the change is reported.
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].kind, ItemKind::Failed(Malformed::ReadError));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].reason.contains("changed while it was read"),
            "{notes:?}"
        );
    }
}
