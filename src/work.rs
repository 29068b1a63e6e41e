//! The unit of parallel work: a block of bytes and the messages in it.
//!
//! The input stage makes [`Work`] in input order; workers turn each into rows; the output stage
//! writes the rows back in that same order, so output never depends on scheduling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Mmap;

use crate::headers::Malformed;
use crate::split::EntryKind;

/// Stops a scan early: the scan then commits nothing and says it was interrupted.
/// Clones share one flag (the CLI cancels on Ctrl-C from its signal handler).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }
    /// Ask every scan holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

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

impl Bytes {
    /// Say that `range` has been read for good. Pages of a mapped file behind the scan then leave
    /// the process's resident memory — they stay in the page cache, and a later read maps them
    /// again — so a scan of a file larger than memory shows flat memory in `top` and in Slurm's
    /// MaxRSS. Owned bytes are freed when the unit is dropped.
    pub fn release(&self, range: std::ops::Range<usize>) {
        if let Bytes::Mapped(map) = self
            && range.start < range.end
            && range.end <= map.len()
        {
            // SAFETY: the map is a read-only private mapping of a file, never written, so
            // MADV_DONTNEED only drops this process's page table entries: a later read of these
            // pages (a neighbouring unit sharing a page) reads the same bytes from the file.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    range.start,
                    range.end - range.start,
                )
            };
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
    /// A plan's pieces before this index are all read (every unit of theirs came before).
    Done(u64),
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
            Work::FileOpened { .. } | Work::Done(_) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident kilobytes of the mapping that holds `addr`, from /proc/self/smaps.
    fn resident_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
            } else if inside && let Some(kib) = line.strip_prefix("Rss:") {
                return kib.trim().trim_end_matches(" kB").parse().unwrap();
            }
        }
        panic!("mapping at {addr:#x} not in /proc/self/smaps");
    }

    #[test]
    fn released_pages_of_a_mapped_file_leave_resident_memory() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &vec![b'x'; 16 << 20]).unwrap();
        // SAFETY: a private temporary file of this test, not changed while mapped.
        let map = Arc::new(unsafe { Mmap::map(&file) }.unwrap());
        let bytes = Bytes::Mapped(map.clone());
        let sum: u64 = bytes.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        assert_eq!(sum, u64::from(b'x') * 4096);
        let before = resident_kib(map.as_ptr() as usize);
        assert!(before >= 15 << 10, "{before} KiB resident after reading");
        bytes.release(0..map.len());
        let after = resident_kib(map.as_ptr() as usize);
        assert!(after < 1 << 10, "{after} KiB still resident after release");
        // The bytes are still there to read.
        assert!(bytes.iter().all(|&b| b == b'x'));
    }
}
