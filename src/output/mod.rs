//! Stage 7, output: result files that appear only when complete.
//!
//! Takes the rows and the run summary and gives files in `--out`. Each file is written under a
//! hidden temporary name (`.NAME.partial-PID`) and renamed to its real name only after every file
//! of the run is written and synced; `summary.json` is renamed last, so its presence marks a
//! complete run. An interrupt (see [`abort_pending`]) removes the temporary files, so an
//! interrupted run leaves nothing that looks complete.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;

pub mod csv;
pub mod json;
pub mod parquet;
pub mod spill;

use crate::schema::{ColumnInfo, Value};

/// Errors of the output stage.
#[derive(Debug, Error)]
pub enum OutputError {
    #[error("cannot create output directory {}", .path.display())]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {}", .path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("the run was interrupted; no output was committed")]
    Interrupted,
    #[error(transparent)]
    Parquet(#[from] parquet::ParquetError),
    #[error("another run (process {pid}) is writing into {}; wait for it or choose another --out", .dir.display())]
    Locked { dir: PathBuf, pid: u32 },
}

/// Temporary files of runs in progress, for [`abort_pending`].
struct Pending {
    paths: Vec<PathBuf>,
    /// Lock files of output directories held by this process ([`DirLock`]).
    locks: Vec<PathBuf>,
    aborted: bool,
    /// Result sets committed by this process.
    committed: usize,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    paths: Vec::new(),
    locks: Vec::new(),
    aborted: false,
    committed: 0,
});

fn pending() -> std::sync::MutexGuard<'static, Pending> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`abort_pending`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted {
    /// Temporary files removed.
    pub removed: usize,
    /// Whether a result set had already been committed (the output is complete).
    pub committed: bool,
}

/// Remove every temporary output file not yet committed, and refuse later commits. Safe to call
/// from a signal-handling thread: it waits for a commit in progress to finish, so afterwards the
/// output directory holds either a complete result set or no new one.
pub fn abort_pending() -> Aborted {
    let mut p = pending();
    p.aborted = true;
    let removed = p.paths.len();
    for path in p.paths.drain(..) {
        let _ = std::fs::remove_file(path);
    }
    for lock in p.locks.drain(..) {
        let _ = std::fs::remove_file(lock);
    }
    Aborted {
        removed,
        committed: p.committed > 0,
    }
}

/// Whether [`abort_pending`] has been called.
pub fn aborted() -> bool {
    pending().aborted
}

/// One output file being written under its temporary name. Dropped without being committed
/// (after an error), it removes its temporary file.
pub struct PendingFile {
    tmp: PathBuf,
    path: PathBuf,
    writer: BufWriter<File>,
    committed: bool,
}

impl PendingFile {
    /// Create `dir/name` under a temporary name.
    pub fn create(dir: &Path, name: &str) -> Result<PendingFile, OutputError> {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.partial-{}", std::process::id()));
        let mut p = pending();
        if p.aborted {
            return Err(OutputError::Interrupted);
        }
        let file = File::create(&tmp).map_err(|source| OutputError::Write {
            path: tmp.clone(),
            source,
        })?;
        p.paths.push(tmp.clone());
        Ok(PendingFile {
            tmp,
            path,
            writer: BufWriter::with_capacity(1 << 20, file),
            committed: false,
        })
    }

    /// The final path of this file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the bytes are while the file is pending (for scratch files that are read back and
    /// never committed).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// Push buffered bytes to the temporary file, so it can be read back.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        let tmp = &self.tmp;
        self.writer.flush().map_err(|source| OutputError::Write {
            path: tmp.clone(),
            source,
        })
    }

    /// Append bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        self.writer
            .write_all(bytes)
            .map_err(|source| OutputError::Write {
                path: self.tmp.clone(),
                source,
            })
    }

    fn flush_and_sync(&mut self) -> Result<(), OutputError> {
        let tmp = &self.tmp;
        let err = |source| OutputError::Write {
            path: tmp.clone(),
            source,
        };
        self.writer.flush().map_err(err)?;
        self.writer.get_ref().sync_all().map_err(err)
    }
}

/// Bytes written through `std::io::Write` (the Parquet writer's way) land in the same buffer.
impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
            pending().paths.retain(|x| x != &self.tmp);
        }
    }
}

/// Flush and sync all files, then rename them into place in the given order (put the summary
/// last). A previous run's copy of the last file is removed first, so a crash part-way through
/// the renames never leaves a mixed set that looks complete. Then every name in `replaced` that
/// this set does not write is removed too: a previous run's `campaigns.csv` must not sit beside
/// the `messages.csv` of a run made with `--no-campaigns` as if it described it. Fails without
/// renaming anything if the run was aborted; on any error the temporary files are removed.
pub fn commit(mut files: Vec<PendingFile>, replaced: &[String]) -> Result<(), OutputError> {
    for f in &mut files {
        f.flush_and_sync()?;
    }
    let mut p = pending();
    if p.aborted {
        return Err(OutputError::Interrupted);
    }
    if let Some(last) = files.last() {
        let _ = std::fs::remove_file(&last.path);
        if let Some(dir) = last.path.parent() {
            for name in replaced {
                if !files
                    .iter()
                    .any(|f| f.path.file_name() == Some(name.as_ref()))
                {
                    let _ = std::fs::remove_file(dir.join(name));
                }
            }
        }
    }
    for f in &mut files {
        std::fs::rename(&f.tmp, &f.path).map_err(|source| OutputError::Write {
            path: f.path.clone(),
            source,
        })?;
        f.committed = true;
        p.paths.retain(|x| x != &f.tmp);
    }
    p.committed += 1;
    Ok(())
}

/// Create the output directory if it is missing.
pub fn ensure_dir(dir: &Path) -> Result<(), OutputError> {
    std::fs::create_dir_all(dir).map_err(|source| OutputError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })
}

/// Name of the lock file a run holds in its output directory.
pub const LOCK_FILE: &str = ".mailcensus.lock";

/// A run's hold on its output directory: the lock file, made with create-new so two runs cannot
/// both take it, naming the holder's process id; removed when dropped. A lock whose process no
/// longer runs (killed, interrupted) is stale and taken over.
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
}

impl DirLock {
    /// Take the lock of `dir` (which must exist).
    pub fn acquire(dir: &Path) -> Result<DirLock, OutputError> {
        let path = dir.join(LOCK_FILE);
        let write_err = |source| OutputError::Write {
            path: path.clone(),
            source,
        };
        // Two attempts: the second after removing a stale lock.
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{}", std::process::id()).map_err(write_err)?;
                    // Ctrl-C ([`abort_pending`]) removes it with the run's temporary files.
                    pending().locks.push(path.clone());
                    return Ok(DirLock { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid != std::process::id() && process_runs(pid) => {
                            return Err(OutputError::Locked {
                                dir: dir.to_path_buf(),
                                pid,
                            });
                        }
                        // Stale (or unreadable, or our own from an earlier scan in this
                        // process): take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(write_err(e)),
            }
        }
        Err(write_err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "lock file keeps coming back",
        )))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        pending().locks.retain(|x| x != &self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a process with this id runs (Linux: it has a /proc entry; elsewhere assume it does,
/// so a lock is never broken by mistake).
fn process_runs(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Spreadsheet programs run a cell that starts with one of these as a formula.
/// The formats a run writes its tables in (`--format`): any non-empty subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub csv: bool,
    pub parquet: bool,
    pub jsonl: bool,
}

impl Default for Formats {
    /// CSV only.
    fn default() -> Self {
        Formats {
            csv: true,
            parquet: false,
            jsonl: false,
        }
    }
}

impl Formats {
    /// Parse a comma-separated list such as `csv,parquet`.
    pub fn parse(list: &str) -> Result<Formats, String> {
        let mut f = Formats {
            csv: false,
            parquet: false,
            jsonl: false,
        };
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "csv" => f.csv = true,
                "parquet" => f.parquet = true,
                "jsonl" | "json" | "ndjson" => f.jsonl = true,
                other => {
                    return Err(format!(
                        "unknown format '{other}' (choose from csv, parquet, jsonl)"
                    ));
                }
            }
        }
        if !(f.csv || f.parquet || f.jsonl) {
            return Err("no format given (choose from csv, parquet, jsonl)".into());
        }
        Ok(f)
    }

    /// The file names of a table in these formats.
    pub fn file_names(self, table: &str) -> Vec<String> {
        [
            (self.csv, "csv"),
            (self.parquet, "parquet"),
            (self.jsonl, "jsonl"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, ext)| format!("{table}.{ext}"))
        .collect()
    }
}

/// Rows of one table, encoded in each format asked for, ready to be appended to its files.
pub struct Rows {
    columns: Vec<ColumnInfo>,
    formats: Formats,
    raw_cells: bool,
    pub csv: Vec<u8>,
    pub jsonl: Vec<u8>,
    pub parquet: Option<parquet::Batch>,
}

impl Rows {
    /// Rows of a table with `columns`; CSV cells guarded unless `raw_cells`.
    pub fn new(columns: &[ColumnInfo], formats: Formats, raw_cells: bool) -> Rows {
        Rows {
            columns: columns.to_vec(),
            formats,
            raw_cells,
            csv: Vec::new(),
            jsonl: Vec::new(),
            parquet: formats.parquet.then(|| parquet::Batch::new(columns)),
        }
    }

    /// Append one row, its values in column order.
    pub fn push<'v, I>(&mut self, values: I)
    where
        I: IntoIterator<Item = Value<'v>>,
        I::IntoIter: Clone,
    {
        let values = values.into_iter();
        if self.formats.csv {
            csv::write_row(&mut self.csv, values.clone(), self.raw_cells);
        }
        if self.formats.jsonl {
            json::write_row(&mut self.jsonl, &self.columns, values.clone());
        }
        if let Some(batch) = &mut self.parquet {
            batch.append(values);
        }
    }

    /// The formats these rows are encoded in.
    pub fn formats(&self) -> Formats {
        self.formats
    }

    /// Empty the rows, keeping their buffers.
    pub fn clear(&mut self) {
        self.csv.clear();
        self.jsonl.clear();
        if let Some(b) = &mut self.parquet
            && b.rows() > 0
        {
            b.take();
        }
    }
}

/// The files of one table (`messages.csv`, `messages.parquet`, ...), written row block by row
/// block in order.
pub struct TableFiles {
    csv: Option<PendingFile>,
    jsonl: Option<PendingFile>,
    parquet: Option<parquet::ParquetFile<PendingFile>>,
}

impl TableFiles {
    /// Create the files of table `name` in `dir`; the CSV starts with its header line.
    pub fn create(
        dir: &Path,
        name: &str,
        columns: &[ColumnInfo],
        formats: Formats,
    ) -> Result<TableFiles, OutputError> {
        Self::create_with_row_groups(dir, name, columns, formats, parquet::ROW_GROUP_ROWS)
    }

    /// As [`TableFiles::create`], Parquet in row groups of `group_rows` rows.
    pub fn create_with_row_groups(
        dir: &Path,
        name: &str,
        columns: &[ColumnInfo],
        formats: Formats,
        group_rows: usize,
    ) -> Result<TableFiles, OutputError> {
        let csv = match formats.csv {
            true => {
                let mut f = PendingFile::create(dir, &format!("{name}.csv"))?;
                let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
                f.write_all(&csv::header_line(&names))?;
                Some(f)
            }
            false => None,
        };
        let jsonl = match formats.jsonl {
            true => Some(PendingFile::create(dir, &format!("{name}.jsonl"))?),
            false => None,
        };
        let parquet = match formats.parquet {
            true => Some(parquet::ParquetFile::with_row_groups_of(
                PendingFile::create(dir, &format!("{name}.parquet"))?,
                columns,
                group_rows,
            )?),
            false => None,
        };
        Ok(TableFiles {
            csv,
            jsonl,
            parquet,
        })
    }

    /// Append rows (and empty them).
    pub fn write(&mut self, rows: &mut Rows) -> Result<(), OutputError> {
        if let Some(f) = &mut self.csv {
            f.write_all(&rows.csv)?;
        }
        if let Some(f) = &mut self.jsonl {
            f.write_all(&rows.jsonl)?;
        }
        if let (Some(f), Some(batch)) = (&mut self.parquet, &mut rows.parquet)
            && batch.rows() > 0
        {
            f.write(&batch.take())?;
        }
        rows.csv.clear();
        rows.jsonl.clear();
        Ok(())
    }

    /// Finish the files (a Parquet file gets its footer); gives them, to be committed.
    pub fn finish(self) -> Result<Vec<PendingFile>, OutputError> {
        let mut files: Vec<PendingFile> = self.csv.into_iter().collect();
        if let Some(p) = self.parquet {
            files.push(p.finish()?);
        }
        files.extend(self.jsonl);
        Ok(files)
    }
}

const FORMULA_START: [u8; 6] = [b'=', b'+', b'-', b'@', b'\t', b'\r'];

/// Whether a text cell must be neutralised before a spreadsheet sees it. A lone `-` (standard
/// input's name, "none") has no operand and is shown as text.
#[inline]
pub fn is_formula_like(cell: &[u8]) -> bool {
    cell.first().is_some_and(|b| FORMULA_START.contains(b)) && cell != b"-"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_renames_and_abort_removes() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = PendingFile::create(dir.path(), "a.csv").unwrap();
        a.write_all(b"x\n").unwrap();
        assert!(!dir.path().join("a.csv").exists());
        commit(vec![a], &[]).unwrap();
        assert_eq!(std::fs::read(dir.path().join("a.csv")).unwrap(), b"x\n");

        let b = PendingFile::create(dir.path(), "b.csv").unwrap();
        drop(b); // an unfinished file removes itself
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only a.csv remains");
    }

    #[test]
    fn commit_removes_what_an_earlier_run_left_and_this_one_does_not_write() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["stale.csv", "mine.csv", "user-notes.txt"] {
            std::fs::write(dir.path().join(name), b"old\n").unwrap();
        }
        let mut mine = PendingFile::create(dir.path(), "mine.csv").unwrap();
        mine.write_all(b"new\n").unwrap();
        commit(
            vec![mine],
            &["stale.csv".to_string(), "mine.csv".to_string()],
        )
        .unwrap();
        assert!(!dir.path().join("stale.csv").exists());
        assert_eq!(
            std::fs::read(dir.path().join("mine.csv")).unwrap(),
            b"new\n"
        );
        // Files the tool does not name are never touched.
        assert!(dir.path().join("user-notes.txt").exists());
    }

    #[test]
    fn formula_cells() {
        assert!(is_formula_like(b"=1+1"));
        assert!(is_formula_like(b"-50% off"));
        assert!(is_formula_like(b"@SUM(A1)"));
        assert!(!is_formula_like(b"hello"));
        assert!(!is_formula_like(b""));
        assert!(!is_formula_like(b"-"));
        assert!(is_formula_like(b"-1+2"));
    }
}
