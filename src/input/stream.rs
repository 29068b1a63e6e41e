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
            max_message_bytes: 64 << 20,
            block_bytes: 4 << 20,
            max_depth: 4,
            split: SplitLimits::default(),
        }
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

/// Read everything a stream holds, as one source named `source`: sniff it, unwrap compression
/// and tar, and hand the messages to `sink` in order.
pub fn read_stream(
    reader: &mut dyn Read,
    source: &Arc<str>,
    depth: u32,
    limits: &StreamLimits,
    force_message: bool,
    sink: &mut dyn FnMut(Work),
) {
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let eof = match fill(reader, &mut head, SNIFF_BYTES) {
        Ok(eof) => eof,
        Err(e) => {
            sink(Work::Note(Note::unreadable(source, &e)));
            return;
        }
    };
    let format = sniff(&head);
    let mut chained = io::Cursor::new(head).chain(reader);
    match format {
        f if f.is_compressed() || f == Format::Tar => {
            if depth >= limits.max_depth {
                sink(Work::Note(Note::skipped(source, "nested-too-deep")));
                return;
            }
            if f == Format::Tar {
                read_tar(&mut chained, source, depth + 1, limits, sink);
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
        Format::NotMail if force_message || (eof && chained.get_ref().0.get_ref().is_empty()) => {
            read_message(&mut chained, source, limits, sink)
        }
        Format::NotMail => sink(Work::Note(Note::skipped(source, "not-mail"))),
        _ => unreachable!("all formats handled above"),
    }
}

fn read_tar(
    reader: &mut dyn Read,
    source: &Arc<str>,
    depth: u32,
    limits: &StreamLimits,
    sink: &mut dyn FnMut(Work),
) {
    let mut archive = tar::Archive::new(reader);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            sink(Work::Note(Note::unreadable(source, &e)));
            return;
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // A broken tar header ends the archive: later entries cannot be located.
                sink(Work::Note(Note::unreadable(source, &e)));
                return;
            }
        };
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let inner: Arc<str> = format!("{source}!{name}").into();
        let base = name.rsplit('/').next().unwrap_or("").as_bytes();
        if crate::input::is_maildir_metadata(base) {
            sink(Work::Note(Note::skipped(&inner, "maildir-metadata")));
            continue;
        }
        read_stream(&mut entry, &inner, depth, limits, false, sink);
    }
}

/// A single message from a stream: read it whole, up to the cap.
fn read_message(
    reader: &mut dyn Read,
    source: &Arc<str>,
    limits: &StreamLimits,
    sink: &mut dyn FnMut(Work),
) {
    let cap = limits.max_message_bytes;
    let mut buf = Vec::new();
    let result = fill(&mut reader.take(cap as u64 + 1), &mut buf, cap + 1);
    let len = buf.len();
    let item = match result {
        Err(_) => Item::failed(0, len as u64, Malformed::ReadError),
        Ok(_) if len > cap => Item::failed(0, len as u64, Malformed::TooLarge),
        Ok(_) => Item {
            offset: 0,
            length: len as u64,
            start: 0,
            end: len,
            kind: ItemKind::Whole,
        },
    };
    if let Err(e) = result {
        sink(Work::Note(Note::unreadable(source, &e)));
    }
    let data = if matches!(item.kind, ItemKind::Whole) {
        buf
    } else {
        Vec::new()
    };
    sink(Work::Messages {
        source: source.clone(),
        data: Bytes::Owned(data),
        items: vec![item],
    });
}

/// An mbox from a stream: cut into blocks on message boundaries, with bounded memory.
pub fn read_mbox(
    reader: &mut dyn Read,
    source: &Arc<str>,
    limits: &StreamLimits,
    sink: &mut dyn FnMut(Work),
) {
    let mut buf: Vec<u8> = Vec::new();
    // Stream offset of buf[0].
    let mut base: u64 = 0;
    let mut eof = false;
    let mut want = limits.block_bytes + (64 << 10);
    let mut started = false;
    let mut entries = Vec::new();
    loop {
        if !eof {
            match fill(reader, &mut buf, want) {
                Ok(e) => eof = e,
                Err(e) => {
                    sink(Work::Note(Note::unreadable(source, &e)));
                    // What was read so far is still split; the last message is marked below.
                    if !buf.is_empty() {
                        emit_rest_as_read_error(&mut buf, base, source, limits, started, sink);
                    }
                    return;
                }
            }
        }
        let mut pos = 0;
        if !started {
            match split::first_entry(&buf) {
                Some(first) => {
                    if buf[..first].iter().any(|b| !b.is_ascii_whitespace()) {
                        sink(Work::Messages {
                            source: source.clone(),
                            data: Bytes::Owned(buf[..first].to_vec()),
                            items: vec![Item {
                                offset: base,
                                length: first as u64,
                                start: 0,
                                end: first,
                                kind: ItemKind::Entry(EntryKind::Preamble),
                            }],
                        });
                    }
                    pos = first;
                    started = true;
                }
                None if eof => {
                    // Sniffed as mbox but no entry start: keep it as one preamble item.
                    let len = buf.len();
                    sink(Work::Messages {
                        source: source.clone(),
                        data: Bytes::Owned(buf),
                        items: vec![Item {
                            offset: base,
                            length: len as u64,
                            start: 0,
                            end: len,
                            kind: ItemKind::Entry(EntryKind::Preamble),
                        }],
                    });
                    return;
                }
                None => {
                    want = buf.len() * 2;
                    continue;
                }
            }
        }
        entries.clear();
        let planned = split::plan_entries(
            &buf,
            pos,
            eof,
            limits.block_bytes,
            &limits.split,
            &mut entries,
        );
        if !entries.is_empty() {
            let rest = buf[planned.next..].to_vec();
            let mut block = std::mem::replace(&mut buf, rest);
            block.truncate(planned.next);
            let items = entries
                .iter()
                .map(|e| Item {
                    offset: base + e.start as u64,
                    length: (e.end - e.start) as u64,
                    start: e.start,
                    end: e.end,
                    kind: ItemKind::Entry(e.kind),
                })
                .collect();
            sink(Work::Messages {
                source: source.clone(),
                data: Bytes::Owned(block),
                items,
            });
            base += planned.next as u64;
            pos = 0;
        }
        if eof && pos >= buf.len() {
            return;
        }
        if planned.needs_more || entries.is_empty() {
            let pending = buf.len() - pos;
            if pending > limits.max_message_bytes {
                // Drop `pos` bytes already emitted, then skip the oversize message.
                buf.drain(..pos);
                match skip_oversize(reader, &mut buf, &mut base, &mut eof, limits) {
                    Ok(skipped) => sink(Work::Messages {
                        source: source.clone(),
                        data: Bytes::Owned(Vec::new()),
                        items: vec![Item::failed(skipped.0, skipped.1, Malformed::TooLarge)],
                    }),
                    Err(e) => {
                        sink(Work::Note(Note::unreadable(source, &e)));
                        return;
                    }
                }
                if eof && buf.is_empty() {
                    return;
                }
                want = limits.block_bytes + (64 << 10);
            } else {
                want = (buf.len() * 2).max(limits.block_bytes);
            }
        } else {
            want = buf.len() + limits.block_bytes;
        }
    }
}

/// The oversize message starts at buf[0]: read on, discarding, until the next entry start.
/// Returns (stream offset, length) of the skipped message; afterwards buf starts at the next entry.
fn skip_oversize(
    reader: &mut dyn Read,
    buf: &mut Vec<u8>,
    base: &mut u64,
    eof: &mut bool,
    limits: &StreamLimits,
) -> io::Result<(u64, u64)> {
    let start = *base;
    // Keep enough overlap that a `\n\nFrom ...` line split across reads is still seen whole.
    const KEEP: usize = 2048;
    let mut search_from = 1;
    loop {
        if let Some(next) = split::next_candidate(buf, search_from.min(buf.len()), buf.len())
            .filter(|&n| {
                // Need the whole envelope line to trust the candidate, unless at the end.
                *eof || memchr::memchr(b'\n', &buf[n..]).is_some()
            })
        {
            buf.drain(..next);
            *base += next as u64;
            return Ok((start, *base - start));
        }
        if *eof {
            let len = buf.len();
            buf.clear();
            *base += len as u64;
            return Ok((start, *base - start));
        }
        if buf.len() > KEEP {
            let cut = buf.len() - KEEP;
            buf.drain(..cut);
            *base += cut as u64;
        }
        search_from = 0;
        let target = buf.len() + limits.block_bytes;
        *eof = fill(reader, buf, target)?;
        let _ = limits;
    }
}

/// After a read error mid-mbox: split what was read, and mark the last message as a read error.
fn emit_rest_as_read_error(
    buf: &mut Vec<u8>,
    base: u64,
    source: &Arc<str>,
    limits: &StreamLimits,
    started: bool,
    sink: &mut dyn FnMut(Work),
) {
    let pos = if started {
        0
    } else {
        split::first_entry(buf).unwrap_or(0)
    };
    let mut entries = Vec::new();
    split::plan_entries(buf, pos, true, usize::MAX, &limits.split, &mut entries);
    let n = entries.len();
    let items = entries
        .iter()
        .enumerate()
        .map(|(i, e)| Item {
            offset: base + e.start as u64,
            length: (e.end - e.start) as u64,
            start: e.start,
            end: e.end,
            kind: if i + 1 == n {
                ItemKind::Failed(Malformed::ReadError)
            } else {
                ItemKind::Entry(e.kind)
            },
        })
        .collect();
    sink(Work::Messages {
        source: source.clone(),
        data: Bytes::Owned(std::mem::take(buf)),
        items,
    });
}
