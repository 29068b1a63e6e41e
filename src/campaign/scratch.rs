//! Reading back a scratch file of the run (the facts file, the spilled rows) a range at a time.
//!
//! Takes the path of a file this run wrote and flushed, and gives byte ranges of it as owned
//! buffers, or an error when the file is shorter than what was written to it.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::output::OutputError;

use super::io_err;

/// A scratch file of this run (written and flushed before it is read, never written again),
/// read back a range at a time into owned buffers: what the process holds is one chunk per task
/// in flight, never the whole file, so memory stays flat in corpus size (a whole mapping would
/// show as resident memory once read).
pub(super) struct Scratch {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Scratch {
    pub(super) fn open(path: &Path) -> Result<Scratch, OutputError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        Ok(Scratch {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// `range` of the file; an error (not a panic) if the file is shorter than what was
    /// written to it.
    pub(super) fn read(&self, range: &std::ops::Range<u64>) -> Result<Vec<u8>, OutputError> {
        use std::os::unix::fs::FileExt;
        if range.end > self.len || range.start > range.end {
            return Err(io_err(&self.path)(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "scratch file shorter than what was written to it",
            )));
        }
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        self.file
            .read_exact_at(&mut buf, range.start)
            .map_err(io_err(&self.path))?;
        Ok(buf)
    }
}
