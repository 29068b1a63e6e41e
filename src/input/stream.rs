//! Streamed inputs: decompressors and the bounded reading of messages from a `Read`.
//!
//! Takes a reader (a compressed file, a tar entry, a pipe, or a file read without mmap) and gives
//! owned byte blocks cut on message boundaries, each with its message list ([`Work`]). Nothing is
//! held in memory beyond one block plus one pending message, and a message larger than the
//! per-message cap is reported as `too-large` and skipped, so a decompression bomb is measured,
//! not obeyed.

use std::io::{self, Read};
use std::sync::Arc;

use crate::headers::Malformed;
use crate::input::{Format, SNIFF_BYTES, sniff};
use crate::split::{self, EntryKind, SplitLimits};
use crate::work::{Bytes, Item, ItemKind, Note, Work};

/// Limits for streamed reading.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Largest message (decompressed) kept in memory; larger ones are `too-large`.
    pub max_message_bytes: usize,
    /// Bytes of messages per block handed to a worker.
    pub block_bytes: usize,
    /// Nesting depth of compression/tar wrappers followed (tar.gz is 2).
    pub max_depth: u32,
    pub split: SplitLimits,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_message_bytes: 0,
            block_bytes: 4 << 20,
            max_depth: 4,
            split: SplitLimits::default(),
        }
        .with_max_message(64 << 20)
    }
}

impl StreamLimits {
    /// Set the per-message cap. `Content-Length` values above it are not honoured either, so a
    /// streamed mbox and a mapped one split the same way.
    pub fn with_max_message(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self.split.max_content_length = self.split.max_content_length.min(bytes as u64);
        self.split.max_entry_bytes = bytes;
        self
    }
}

/// Wrap `reader` in the decompressor for `format`.
pub fn decoder<'r>(format: Format, reader: Box<dyn Read + 'r>) -> io::Result<Box<dyn Read + 'r>> {
    Ok(match format {
        // Multi-member gzip files (concatenated .gz, as logrotate makes) are read whole.
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Format::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Format::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(reader)),
        Format::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
        _ => reader,
    })
}

/// Read until `buf` holds at least `want` bytes or the reader ends. Returns whether it ended.
fn fill(reader: &mut dyn Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    while buf.len() < want {
        let have = buf.len();
        let step = (want - have).clamp(64 << 10, 4 << 20);
        buf.resize(have + step, 0);
        match reader.read(&mut buf[have..]) {
            Ok(0) => {
                buf.truncate(have);
                return Ok(true);
            }
            Ok(n) => buf.truncate(have + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(have),
            Err(e) => {
                buf.truncate(have);
                return Err(e);
            }
        }
    }
    Ok(false)
}

/// Where work goes; returns false when the scan is stopping (interrupt, output error), and the
/// readers then return early.
pub type Sink<'s> = dyn FnMut(Work) -> bool + 's;

/// Read everything a stream holds, as one source named `source`: sniff it, unwrap compression
/// and tar, and hand the messages to `sink` in order. Returns false when the sink asked to stop.
pub fn read_stream(
    reader: &mut dyn Read,
    source: &Arc<str>,
    depth: u32,
    limits: &StreamLimits,
    force_message: bool,
    sink: &mut Sink<'_>,
) -> bool {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    // A read that fails after some bytes leaves those bytes to be handled as any stream cut
    // short: the reader behind them replays the error, so the last message is a read error.
    let mut failed: Option<Replay> = None;
    let eof = match fill(reader, &mut head, SNIFF_BYTES) {
        Ok(eof) => eof,
        Err(e) if head.is_empty() => return sink(Work::Note(Note::unreadable(source, &e))),
        Err(e) => {
            failed = Some(Replay::of(&e));
            true
        }
    };
    let mut format = sniff(&head);
    let empty = eof && head.is_empty();
    if !format.is_compressed() && format != Format::Tar {
        // Decide on the same window a mapped file gets: the first bytes up to the per-message
        // cap. Past the first line it is read only when the first bytes show no envelope line.
        let cap = limits.max_message_bytes;
        if !force_message
            && format != Format::Mbox
            && !eof
            && let Err(e) = fill(reader, &mut head, cap)
        {
            failed = Some(Replay::of(&e));
        }
        format = crate::input::detect(&head[..head.len().min(cap)], !force_message);
    }
    let failure = failed
        .as_ref()
        .map(|r| io::Error::new(r.kind, r.message.clone()));
    let rest: Box<dyn Read + '_> = match failed {
        Some(replay) => Box::new(replay),
        None => Box::new(reader),
    };
    let mut chained = io::Cursor::new(head).chain(rest);
    match format {
        f if f.is_compressed() || f == Format::Tar => {
            if depth >= limits.max_depth {
                return sink(Work::Note(Note::skipped(source, "nested-too-deep")));
            }
            if f == Format::Tar {
                read_tar(&mut chained, source, depth + 1, limits, sink)
            } else {
                match decoder(f, Box::new(chained)) {
                    Ok(mut inner) => {
                        read_stream(&mut inner, source, depth + 1, limits, force_message, sink)
                    }
                    Err(e) => sink(Work::Note(Note::unreadable(source, &e))),
                }
            }
        }
        Format::Mbox => read_mbox(&mut chained, source, limits, sink),
        Format::Message => read_message(&mut chained, source, limits, sink),
        // Empty streams are messages that lost their bytes; they are counted as `empty`.
        Format::NotMail if force_message || empty => {
            read_message(&mut chained, source, limits, sink)
        }
        // Not read further; a read that already failed is still reported.
        Format::NotMail => {
            sink(Work::Note(Note::skipped(source, "not-mail")))
                && failure.is_none_or(|e| sink(Work::Note(Note::unreadable(source, &e))))
        }
        _ => unreachable!("all formats handled above"),
    }
}

/// Gives the error a reader gave before, every time it is read.
struct Replay {
    kind: io::ErrorKind,
    message: String,
}

impl Replay {
    fn of(e: &io::Error) -> Replay {
        Replay {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

impl Read for Replay {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(self.kind, self.message.clone()))
    }
}

fn read_tar(
    reader: &mut dyn Read,
    source: &Arc<str>,
    depth: u32,
    limits: &StreamLimits,
    sink: &mut Sink<'_>,
) -> bool {
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return sink(Work::Note(Note::unreadable(source, &e))),
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            // A broken tar header ends the archive: later entries cannot be located.
            Err(e) => return sink(Work::Note(Note::unreadable(source, &e))),
        };
        let kind = entry.header().entry_type();
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let inner: Arc<str> = format!("{source}!{name}").into();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            let reason = if kind.is_hard_link() || kind.is_symlink() {
                "tar-link"
            } else {
                "tar-special-entry"
            };
            if !sink(Work::Note(Note::skipped(&inner, reason))) {
                return false;
            }
            continue;
        }
        let base = name.rsplit('/').next().unwrap_or("").as_bytes();
        let go_on = if crate::input::is_maildir_metadata(base) {
            sink(Work::Note(Note::skipped(&inner, "maildir-metadata")))
        } else {
            read_stream(&mut entry, &inner, depth, limits, false, sink)
        };
        if !go_on {
            return false;
        }
    }
    true
}

/// A single message from a stream: read it whole, up to the cap. A message over the cap is
/// read on without keeping its bytes, to measure it, and reported `too-large` with its length.
fn read_message(
    reader: &mut dyn Read,
    source: &Arc<str>,
    limits: &StreamLimits,
    sink: &mut Sink<'_>,
) -> bool {
    let cap = limits.max_message_bytes;
    let mut buf = Vec::new();
    let mut result = fill(&mut reader.take(cap as u64 + 1), &mut buf, cap + 1);
    let mut len = buf.len() as u64;
    if len > cap as u64 && result.is_ok() {
        buf = Vec::new();
        result = io::copy(reader, &mut io::sink()).map(|rest| {
            len += rest;
            true
        });
    }
    let item = match &result {
        Err(_) => Item::failed(0, len, Malformed::ReadError),
        Ok(_) if len > cap as u64 => Item::failed(0, len, Malformed::TooLarge),
        Ok(_) => Item::whole(buf.len()),
    };
    if let Err(e) = &result
        && !sink(Work::Note(Note::unreadable(source, e)))
    {
        return false;
    }
    if !matches!(item.kind, ItemKind::Whole) {
        buf = Vec::new();
    }
    sink(Work::Messages {
        source: source.clone(),
        data: Bytes::Owned(buf),
        items: vec![item],
    })
}

/// Hand one block of entries to the sink; the block's bytes start at stream offset `base`.
fn emit_block(
    block: Vec<u8>,
    base: u64,
    entries: &[crate::split::Entry],
    source: &Arc<str>,
    sink: &mut Sink<'_>,
) -> bool {
    let items = entries.iter().map(|e| Item::from_entry(e, base)).collect();
    sink(Work::Messages {
        source: source.clone(),
        data: Bytes::Owned(block),
        items,
    })
}

/// An mbox from a stream: cut into blocks on message boundaries, with bounded memory.
pub fn read_mbox(
    reader: &mut dyn Read,
    source: &Arc<str>,
    limits: &StreamLimits,
    sink: &mut Sink<'_>,
) -> bool {
    let mut buf: Vec<u8> = Vec::new();
    // Stream offset of buf[0].
    let mut base: u64 = 0;
    let mut eof = false;
    let mut want = limits.block_bytes + (64 << 10);
    // What comes before the first entry, classified as a mapped file's is.
    let preamble = |bytes: Vec<u8>, base: u64, sink: &mut Sink<'_>| {
        let len = bytes.len();
        let kind = split::leading_entry(&bytes, len).map_or(EntryKind::Preamble, |e| e.kind);
        sink(Work::Messages {
            source: source.clone(),
            data: Bytes::Owned(bytes),
            items: vec![Item {
                offset: base,
                length: len as u64,
                start: 0,
                end: len,
                kind: ItemKind::Entry(kind),
                quoted_lines: None,
            }],
        })
    };

    // Find the first entry; what comes before it is preamble (reported unless blank).
    loop {
        if !eof {
            match fill(reader, &mut buf, want) {
                Ok(e) => eof = e,
                Err(e) => {
                    if !sink(Work::Note(Note::unreadable(source, &e))) {
                        return false;
                    }
                    // Split what was read; its last message is marked as cut short.
                    let Some(first) = split::first_entry(&buf) else {
                        return buf.is_empty() || preamble(buf, base, sink);
                    };
                    if buf[..first].iter().any(|b| !b.is_ascii_whitespace())
                        && !preamble(buf[..first].to_vec(), base, sink)
                    {
                        return false;
                    }
                    let rest = buf.split_off(first);
                    return emit_rest_as_read_error(
                        rest,
                        base + first as u64,
                        source,
                        limits,
                        sink,
                    );
                }
            }
        }
        if let Some(first) = split::first_entry(&buf) {
            if buf[..first].iter().any(|b| !b.is_ascii_whitespace())
                && !preamble(buf[..first].to_vec(), base, sink)
            {
                return false;
            }
            buf.drain(..first);
            base += first as u64;
            break;
        }
        if eof {
            let junk = buf.iter().any(|b| !b.is_ascii_whitespace());
            return !junk || preamble(buf, base, sink);
        }
        if buf.len() > limits.max_message_bytes {
            // No entry start within the cap: report that much as preamble and read on.
            let len = buf.len();
            let kept = buf.split_off(len - 2);
            if !preamble(std::mem::replace(&mut buf, kept), base, sink) {
                return false;
            }
            base += (len - 2) as u64;
        }
        want = (buf.len() * 2).max(limits.block_bytes);
    }

    // buf[0] is always an entry start from here on.
    let mut entries = Vec::new();
    loop {
        entries.clear();
        let planned = split::plan_entries(
            &buf,
            0,
            eof,
            limits.block_bytes,
            &limits.split,
            &mut entries,
        );
        if !entries.is_empty() {
            let rest = buf[planned.next..].to_vec();
            let mut block = std::mem::replace(&mut buf, rest);
            block.truncate(planned.next);
            if !emit_block(block, base, &entries, source, sink) {
                return false;
            }
            base += planned.next as u64;
        }
        if eof && buf.is_empty() {
            return true;
        }
        if planned.needs_more || entries.is_empty() {
            if buf.len() > limits.max_message_bytes {
                let skipped = skip_oversize(reader, &mut buf, &mut base, &mut eof, limits);
                let (item, error) = match skipped {
                    Ok((offset, length)) => {
                        (Item::failed(offset, length, Malformed::TooLarge), None)
                    }
                    Err((offset, length, e)) => {
                        (Item::failed(offset, length, Malformed::ReadError), Some(e))
                    }
                };
                let go = sink(Work::Messages {
                    source: source.clone(),
                    data: Bytes::Owned(Vec::new()),
                    items: vec![item],
                });
                if let Some(e) = error {
                    return go && sink(Work::Note(Note::unreadable(source, &e)));
                }
                if !go {
                    return false;
                }
                if eof && buf.is_empty() {
                    return true;
                }
                want = limits.block_bytes + (64 << 10);
            } else {
                want = (buf.len() * 2).max(limits.block_bytes);
            }
        } else {
            want = buf.len() + limits.block_bytes;
        }
        if !eof {
            match fill(reader, &mut buf, want) {
                Ok(e) => eof = e,
                Err(e) => {
                    // What was read is still split; its last message is marked as cut short.
                    let go = sink(Work::Note(Note::unreadable(source, &e)));
                    return go && emit_rest_as_read_error(buf, base, source, limits, sink);
                }
            }
        }
    }
}

/// The oversize message starts at buf[0]: read on, discarding, until the next entry start.
/// Returns (stream offset, length) of the skipped message; afterwards buf starts at the next
/// entry. The end of an oversize message is found by envelope lines alone (Content-Length and
/// MIME structure are not followed through bytes that are not kept).
fn skip_oversize(
    reader: &mut dyn Read,
    buf: &mut Vec<u8>,
    base: &mut u64,
    eof: &mut bool,
    limits: &StreamLimits,
) -> Result<(u64, u64), (u64, u64, io::Error)> {
    let start = *base;
    // Bytes kept when discarding: enough that an envelope line split across reads is seen
    // whole, plus the two bytes before it that tell whether a blank line precedes it.
    const KEEP: usize = 2048;
    loop {
        let found = split::next_candidate(buf, 2.min(buf.len()), buf.len())
            .filter(|&n| n > 0 && (*eof || memchr::memchr(b'\n', &buf[n..]).is_some()));
        if let Some(next) = found {
            buf.drain(..next);
            *base += next as u64;
            return Ok((start, *base - start));
        }
        if *eof {
            *base += buf.len() as u64;
            buf.clear();
            return Ok((start, *base - start));
        }
        if buf.len() > KEEP {
            let cut = buf.len() - KEEP;
            buf.drain(..cut);
            *base += cut as u64;
        }
        let target = buf.len() + limits.block_bytes;
        match fill(reader, buf, target) {
            Ok(e) => *eof = e,
            Err(e) => {
                *base += buf.len() as u64;
                buf.clear();
                *eof = true;
                return Err((start, *base - start, e));
            }
        }
    }
}

/// After a read error mid-mbox: split what was read (buf[0] is an entry start), and mark the
/// last message as a read error.
fn emit_rest_as_read_error(
    buf: Vec<u8>,
    base: u64,
    source: &Arc<str>,
    limits: &StreamLimits,
    sink: &mut Sink<'_>,
) -> bool {
    if buf.is_empty() {
        return true;
    }
    let mut entries = Vec::new();
    split::plan_entries(&buf, 0, true, usize::MAX, &limits.split, &mut entries);
    let n = entries.len();
    let items = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut item = Item::from_entry(e, base);
            if i + 1 == n {
                item.kind = ItemKind::Failed(Malformed::ReadError);
            }
            item
        })
        .collect();
    sink(Work::Messages {
        source: source.clone(),
        data: Bytes::Owned(buf),
        items,
    })
}
