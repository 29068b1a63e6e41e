//! The unit of parallel work: a block of bytes and the messages in it.
//!
//! The input stage makes [`Work`] in input order; workers turn each into rows; the output stage
//! writes the rows back in that same order, so output never depends on scheduling.

use std::sync::Arc;

use memmap2::Mmap;

use crate::headers::Malformed;
use crate::split::EntryKind;

/// Bytes a work unit reads from: a shared read-only memory map, or an owned buffer.
pub enum Bytes {
    Mapped(Arc<Mmap>),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// One message (or one place where a message should have been) inside a work unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Offset of the entry's start in its source (the `From ` line of an mbox entry; 0 for a
    /// one-message file).
    pub offset: u64,
    /// Length of the entry in its source, separator line included.
    pub length: u64,
    /// Range of the entry in the unit's bytes (empty for items whose bytes were not kept).
    pub start: usize,
    pub end: usize,
    pub kind: ItemKind,
    /// The splitter's count of `>From ` quoted lines in an mbox entry, if it made one
    /// ([`crate::split::Entry::quoted_lines`]).
    pub quoted_lines: Option<u32>,
}

impl Item {
    /// The item for an mbox entry found in a block whose first byte is at stream offset `base`.
    /// An entry over the cap keeps no bytes: it is `too-large` whichever path read it.
    pub fn from_entry(entry: &crate::split::Entry, base: u64) -> Item {
        let offset = base + entry.start as u64;
        let length = (entry.end - entry.start) as u64;
        if entry.kind == EntryKind::TooLarge {
            return Item::failed(offset, length, Malformed::TooLarge);
        }
        Item {
            offset,
            length,
            start: entry.start,
            end: entry.end,
            kind: ItemKind::Entry(entry.kind),
            quoted_lines: entry.quoted_lines,
        }
    }

    /// The item as the per-message cap leaves it: longer than `max_bytes`, it is `too-large` and
    /// keeps no bytes, so a mapped, a read and a streamed copy of one message give one row.
    pub fn within(self, max_bytes: usize) -> Item {
        if self.length > max_bytes as u64 && !matches!(self.kind, ItemKind::Failed(_)) {
            Item::failed(self.offset, self.length, Malformed::TooLarge)
        } else {
            self
        }
    }

    /// A whole one-message file (or stream) of `len` bytes.
    pub fn whole(len: usize) -> Item {
        Item {
            offset: 0,
            length: len as u64,
            start: 0,
            end: len,
            kind: ItemKind::Whole,
            quoted_lines: None,
        }
    }

    /// An item whose bytes were not kept, already known to be malformed.
    pub fn failed(offset: u64, length: u64, reason: Malformed) -> Item {
        Item {
            offset,
            length,
            start: 0,
            end: 0,
            kind: ItemKind::Failed(reason),
            quoted_lines: None,
        }
    }
}

/// What an item's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// An mbox entry: `From ` line, message, separator.
    Entry(EntryKind),
    /// A whole one-message file (it may still begin with an envelope line).
    Whole,
    /// Known malformed before parsing (bytes not kept, or cut short by a read error).
    Failed(Malformed),
}

/// A small file read by the walk, left for a worker to parse (batched).
#[derive(Debug, Clone)]
pub struct FileJob {
    pub source: Arc<str>,
    pub data: Vec<u8>,
    /// In a Maildir `cur/` or `new/` folder: a message even when sniffing is unsure.
    pub in_maildir: bool,
}

/// Something to report about an input that is not a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Note {
    pub path: String,
    /// `skipped` or `unreadable`.
    pub status: &'static str,
    pub reason: String,
}

impl Note {
    pub fn skipped(path: &str, reason: &str) -> Note {
        Note {
            path: path.to_string(),
            status: "skipped",
            reason: reason.to_string(),
        }
    }
    pub fn unreadable(path: &str, error: &std::io::Error) -> Note {
        Note {
            path: path.to_string(),
            status: "unreadable",
            reason: error.to_string(),
        }
    }
}

/// A unit of work, in input order.
pub enum Work {
    /// Messages held in `data`.
    Messages {
        source: Arc<str>,
        data: Bytes,
        items: Vec<Item>,
    },
    /// Small files, read, for the worker to sniff and parse.
    Files(Vec<FileJob>),
    /// A note about an input.
    Note(Note),
    /// An input file was opened: count it and its bytes.
    FileOpened { bytes: u64 },
}

impl Work {
    /// The source a unit reads from, for error reports.
    pub fn source_name(&self) -> String {
        match self {
            Work::Messages { source, .. } => source.to_string(),
            Work::Files(jobs) => jobs
                .first()
                .map(|j| format!("{} (batch of {} files)", j.source, jobs.len()))
                .unwrap_or_default(),
            Work::Note(note) => note.path.clone(),
            Work::FileOpened { .. } => String::new(),
        }
    }
}
