//! The plan: a scan's inputs as an ordered list of pieces, each given to one of N shards.
//!
//! Takes the inputs and options of a scan and gives a [`Plan`]: the walk's files in scan order
//! (the order of `messages.csv`), large mbox files cut into byte ranges where the splitter starts
//! a block (so the ranges hold exactly the file's messages, each once, [`units::mbox_cuts`]),
//! and the walk's notes. Each file's size and modification time are recorded: a shard refuses a
//! file that changed since. Shards get consecutive pieces, balanced by bytes, so the merge reads
//! the shards one after another in plan order.
//!
//! The file is JSON Lines: a header object (format version, schema version, the reading limits
//! every shard must use, the inputs, the shard count, the plan's identity), then one object per
//! piece.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ClusterError, PLAN_VERSION, fingerprint};
use crate::input::units::{self, Piece, Reading};
use crate::input::{Found, walk};
use crate::schema::SCHEMA_VERSION;
use crate::work::Note;

/// The reading limits a plan was cut with; every shard reads with them (the cut points and the
/// messages depend on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub block_bytes: usize,
    pub max_message_bytes: usize,
    pub max_header_bytes: usize,
    pub small_file_bytes: u64,
}

impl Limits {
    /// The limits of a scan with `opts`.
    pub fn of(opts: &crate::scan::ScanOptions) -> Limits {
        Limits {
            block_bytes: opts.stream.block_bytes,
            max_message_bytes: opts.stream.max_message_bytes,
            max_header_bytes: opts.read.header_limits.max_header_bytes,
            small_file_bytes: opts.small_file_bytes,
        }
    }

    /// `opts` with these limits.
    pub fn apply(&self, opts: &mut crate::scan::ScanOptions) {
        opts.stream.block_bytes = self.block_bytes;
        opts.stream = opts.stream.with_max_message(self.max_message_bytes);
        opts.stream.split.max_header_bytes = self.max_header_bytes;
        opts.read.header_limits.max_header_bytes = self.max_header_bytes;
        opts.small_file_bytes = self.small_file_bytes;
    }
}

/// The plan file's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The plan format's version ([`PLAN_VERSION`]).
    pub mailcensus_plan: u32,
    pub schema_version: u32,
    pub tool_version: String,
    /// The plan's identity: a hash of its shard count, limits and pieces.
    pub id: String,
    pub shards: u32,
    /// The inputs as given (what `summary.json` lists).
    pub inputs: Vec<String>,
    pub limits: Limits,
    pub pieces: u64,
    /// Bytes of all files.
    pub bytes: u64,
}

/// A file's size and modification time when planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    /// Seconds and nanoseconds since 1970 (None where the filesystem keeps no time).
    pub modified: Option<(i64, u32)>,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        let meta = std::fs::metadata(path)?;
        let modified =
            meta.modified()
                .ok()
                .map(|t| match t.duration_since(std::time::UNIX_EPOCH) {
                    Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                    Err(e) => (
                        -(e.duration().as_secs() as i64),
                        e.duration().subsec_nanos(),
                    ),
                });
        Ok(Stamp {
            size: meta.len(),
            modified,
        })
    }
}

/// One piece of the plan and the shard that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub shard: u32,
    pub piece: Piece,
    /// The file as planned (None for notes and for files that are not regular).
    pub stamp: Option<Stamp>,
}

impl Planned {
    /// An error when the piece's file is no longer the one planned.
    pub fn check(&self) -> Result<(), ClusterError> {
        let (Some(stamp), Some(path)) = (self.stamp, piece_path(&self.piece)) else {
            return Ok(());
        };
        let now = Stamp::of(path).map_err(|source| ClusterError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if now != stamp {
            return Err(ClusterError::Changed {
                path: path.to_path_buf(),
                why: format!(
                    "the file changed since it was planned ({} bytes then, {} now{}); make a new plan",
                    stamp.size,
                    now.size,
                    if now.modified != stamp.modified {
                        ", modified since"
                    } else {
                        ""
                    }
                ),
            });
        }
        Ok(())
    }

    /// Bytes of input the piece reads.
    pub fn bytes(&self) -> u64 {
        match &self.piece {
            Piece::File { size, .. } => size.unwrap_or(0),
            Piece::Range { start, end, .. } => end - start,
            Piece::Note(_) => 0,
        }
    }
}

fn piece_path(piece: &Piece) -> Option<&Path> {
    match piece {
        Piece::File { path, .. } | Piece::Range { path, .. } => Some(path),
        Piece::Note(_) => None,
    }
}

/// A plan: its header and its pieces in scan order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub header: Header,
    pub pieces: Vec<Planned>,
}

/// How to plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub shards: u32,
    /// Cut mbox files larger than this into ranges of about this size (None: an eighth of a
    /// shard's share, at least 16 MiB, so one large file is spread over the shards while each
    /// range stays large enough to read at full speed).
    pub range_bytes: Option<u64>,
}

impl Plan {
    /// Plan a scan of `inputs` read with `opts`' limits.
    pub fn make(
        inputs: &[PathBuf],
        opts: &crate::scan::ScanOptions,
        plan: PlanOptions,
    ) -> Result<Plan, ClusterError> {
        if plan.shards == 0 {
            return Err(ClusterError::Usage(
                "a plan needs at least one shard".into(),
            ));
        }
        let mut found = Vec::new();
        walk(inputs, None, |f| found.push(f));
        let mut total = 0u64;
        for f in &found {
            match f {
                Found::Stdin => {
                    return Err(ClusterError::Usage(
                        "standard input (-) cannot be planned: shards read their pieces on other machines; save it to a file first".into(),
                    ));
                }
                Found::File {
                    path, size: None, ..
                } => {
                    return Err(ClusterError::Usage(format!(
                        "{} is not a regular file (a pipe or device) and cannot be planned: it can be read only once",
                        path.display()
                    )));
                }
                Found::File {
                    size: Some(size), ..
                } => total += size,
                _ => {}
            }
        }
        let range_bytes = plan
            .range_bytes
            .unwrap_or_else(|| (total / (8 * u64::from(plan.shards))).max(16 << 20))
            .max(1);
        let reading = Reading {
            mmap: true,
            small_file_bytes: opts.small_file_bytes,
            stream: &opts.stream,
            cancel: &opts.cancel,
            stdin_name: "-",
        };
        let mut pieces = Vec::new();
        for f in found {
            match f {
                Found::File {
                    path,
                    size: Some(size),
                    in_maildir,
                } => {
                    let stamp = Stamp::of(&path).ok();
                    let cuts = match size > range_bytes && size >= opts.small_file_bytes {
                        true => units::mbox_cuts(&path, in_maildir, range_bytes, &reading)
                            .ok()
                            .flatten()
                            .filter(|c| !c.is_empty()),
                        false => None,
                    };
                    match cuts {
                        // A file that cannot be read is planned whole: the shard reports it
                        // as a scan does.
                        None => pieces.push(Planned {
                            shard: 0,
                            piece: Piece::File {
                                path,
                                size: Some(size),
                                in_maildir,
                            },
                            stamp,
                        }),
                        Some(cuts) => {
                            let ends = cuts.iter().copied().chain([size]);
                            let mut start = 0;
                            for end in ends {
                                pieces.push(Planned {
                                    shard: 0,
                                    piece: Piece::Range {
                                        path: path.clone(),
                                        start,
                                        end,
                                    },
                                    stamp,
                                });
                                start = end;
                            }
                        }
                    }
                }
                Found::Skipped { path, reason } => pieces.push(Planned {
                    shard: 0,
                    piece: Piece::Note(Note::skipped(&path.to_string_lossy(), reason)),
                    stamp: None,
                }),
                Found::Unreadable { path, error } => pieces.push(Planned {
                    shard: 0,
                    piece: Piece::Note(Note {
                        path: path.to_string_lossy().into_owned(),
                        status: "unreadable",
                        reason: error,
                    }),
                    stamp: None,
                }),
                Found::File { .. } | Found::Stdin => {}
            }
        }
        // Consecutive runs of pieces, by bytes: a piece goes to the shard its middle byte
        // falls in.
        let shards = u64::from(plan.shards);
        let mut before = 0u64;
        for p in &mut pieces {
            let bytes = p.bytes();
            let middle = u128::from(before) * 2 + u128::from(bytes);
            p.shard = match total {
                0 => 0,
                _ => (middle * u128::from(shards) / (2 * u128::from(total)))
                    .min(u128::from(shards - 1)) as u32,
            };
            before += bytes;
        }
        let header = Header {
            mailcensus_plan: PLAN_VERSION,
            schema_version: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            id: String::new(),
            shards: plan.shards,
            inputs: inputs
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            limits: Limits::of(opts),
            pieces: pieces.len() as u64,
            bytes: total,
        };
        let mut plan = Plan { header, pieces };
        plan.header.id = plan.identity();
        Ok(plan)
    }

    /// The pieces' lines.
    fn piece_lines(&self) -> Vec<String> {
        self.pieces.iter().map(piece_line).collect()
    }

    /// The hash of what the shards' results depend on.
    fn identity(&self) -> String {
        let head = json!({
            "shards": self.header.shards,
            "limits": self.header.limits,
            "inputs": self.header.inputs,
        })
        .to_string();
        let lines = self.piece_lines();
        let mut parts: Vec<&[u8]> = vec![head.as_bytes()];
        parts.extend(lines.iter().map(|l| l.as_bytes()));
        fingerprint(&parts)
    }

    /// The plan as JSON Lines.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec(&self.header).unwrap_or_default();
        out.push(b'\n');
        for line in self.piece_lines() {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Write the plan to `path` (whole, under a temporary name, then renamed).
    pub fn write(&self, path: &Path) -> Result<(), ClusterError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".into());
        let tmp = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let err = |source| {
            ClusterError::Output(crate::output::OutputError::Write {
                path: path.to_path_buf(),
                source,
            })
        };
        std::fs::write(&tmp, self.to_bytes()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }

    /// Read a plan file; a plan of another format or schema version, or one whose pieces do not
    /// match its identity (edited, cut short), is refused.
    pub fn read(path: &Path) -> Result<Plan, ClusterError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClusterError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines = text.lines();
        let first = lines
            .next()
            .ok_or_else(|| ClusterError::invalid(path, "empty file, not a plan"))?;
        let version: serde_json::Value = serde_json::from_str(first)
            .map_err(|e| ClusterError::invalid(path, format!("not a mailcensus plan ({e})")))?;
        match version.get("mailcensus_plan").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(PLAN_VERSION) => {}
            Some(v) => {
                return Err(ClusterError::invalid(
                    path,
                    format!(
                        "a plan of format version {v}; this mailcensus reads version {PLAN_VERSION}: make the plan again"
                    ),
                ));
            }
            None => return Err(ClusterError::invalid(path, "not a mailcensus plan")),
        }
        let header: Header = serde_json::from_value(version)
            .map_err(|e| ClusterError::invalid(path, format!("bad plan header: {e}")))?;
        if header.schema_version != SCHEMA_VERSION {
            return Err(ClusterError::invalid(
                path,
                format!(
                    "a plan for result schema version {}; this mailcensus writes version {SCHEMA_VERSION}: make the plan again",
                    header.schema_version
                ),
            ));
        }
        let mut pieces = Vec::new();
        for (i, line) in lines.enumerate() {
            let piece = parse_piece(line)
                .map_err(|why| ClusterError::invalid(path, format!("line {}: {why}", i + 2)))?;
            if piece.shard >= header.shards {
                return Err(ClusterError::invalid(
                    path,
                    format!("line {}: shard {} of {}", i + 2, piece.shard, header.shards),
                ));
            }
            pieces.push(piece);
        }
        let plan = Plan { header, pieces };
        if plan.pieces.len() as u64 != plan.header.pieces || plan.identity() != plan.header.id {
            return Err(ClusterError::invalid(
                path,
                "the pieces do not match the plan's header (edited or cut short): make the plan again",
            ));
        }
        Ok(plan)
    }

    /// The pieces of shard `shard`, with their index in the plan.
    pub fn pieces_of(&self, shard: u32) -> Vec<(u64, &Planned)> {
        self.pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| p.shard == shard)
            .map(|(i, p)| (i as u64, p))
            .collect()
    }
}

/// A path as JSON: its text, or (not UTF-8) its bytes in base64.
fn path_json(path: &Path) -> (&'static str, String) {
    use std::os::unix::ffi::OsStrExt;
    match path.to_str() {
        Some(text) => ("path", text.to_string()),
        None => (
            "path_b64",
            base64::engine::general_purpose::STANDARD.encode(path.as_os_str().as_bytes()),
        ),
    }
}

fn piece_line(p: &Planned) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("shard".into(), p.shard.into());
    let mut put_path = |path: &Path| {
        let (key, value) = path_json(path);
        obj.insert(key.into(), value.into());
    };
    let kind = match &p.piece {
        Piece::File {
            path, in_maildir, ..
        } => {
            put_path(path);
            obj.insert("maildir".into(), (*in_maildir).into());
            "file"
        }
        Piece::Range { path, start, end } => {
            put_path(path);
            obj.insert("start".into(), (*start).into());
            obj.insert("end".into(), (*end).into());
            "range"
        }
        Piece::Note(note) => {
            obj.insert("path".into(), note.path.clone().into());
            obj.insert("status".into(), note.status.into());
            obj.insert("reason".into(), note.reason.clone().into());
            "note"
        }
    };
    obj.insert("kind".into(), kind.into());
    if let Some(stamp) = p.stamp {
        obj.insert("size".into(), stamp.size.into());
        if let Some((secs, nanos)) = stamp.modified {
            obj.insert("mtime".into(), json!([secs, nanos]));
        }
    }
    serde_json::Value::Object(obj).to_string()
}

fn parse_piece(line: &str) -> Result<Planned, String> {
    use std::os::unix::ffi::OsStringExt;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let num = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_u64())
            .ok_or_else(|| format!("no {k}"))
    };
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .ok_or_else(|| format!("no {k}"))
    };
    let path = || -> Result<PathBuf, String> {
        match (
            v.get("path").and_then(|x| x.as_str()),
            v.get("path_b64").and_then(|x| x.as_str()),
        ) {
            (Some(p), _) => Ok(PathBuf::from(p)),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(|bytes| PathBuf::from(std::ffi::OsString::from_vec(bytes)))
                .map_err(|e| format!("bad path_b64: {e}")),
            (None, None) => Err("no path".into()),
        }
    };
    let shard = u32::try_from(num("shard")?).map_err(|_| "bad shard".to_string())?;
    let stamp = match v.get("size") {
        Some(size) => Some(Stamp {
            size: size.as_u64().ok_or("bad size")?,
            modified: match v.get("mtime").and_then(|m| m.as_array()) {
                Some(m) if m.len() == 2 => Some((
                    m[0].as_i64().ok_or("bad mtime")?,
                    m[1].as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or("bad mtime")?,
                )),
                Some(_) => return Err("bad mtime".into()),
                None => None,
            },
        }),
        None => None,
    };
    let piece = match text("kind")? {
        "file" => Piece::File {
            path: path()?,
            size: stamp.map(|s| s.size),
            in_maildir: v.get("maildir").and_then(|m| m.as_bool()).unwrap_or(false),
        },
        "range" => {
            let (start, end) = (num("start")?, num("end")?);
            if start > end {
                return Err("a range that ends before it starts".into());
            }
            Piece::Range {
                path: path()?,
                start,
                end,
            }
        }
        "note" => Piece::Note(Note {
            path: text("path")?.to_string(),
            status: match text("status")? {
                "skipped" => "skipped",
                "unreadable" => "unreadable",
                other => return Err(format!("unknown note status {other:?}")),
            },
            reason: text("reason")?.to_string(),
        }),
        other => return Err(format!("unknown piece kind {other:?}")),
    };
    Ok(Planned {
        shard,
        piece,
        stamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::ScanOptions;

    fn mbox(messages: usize) -> Vec<u8> {
        let mut m = Vec::new();
        for i in 0..messages {
            m.extend_from_slice(
                format!(
                    "From sender{i}@example.com Mon May  6 00:10:11 2024\nSubject: number {i}\nMessage-ID: <{i}@example.com>\n\n{}\n\n",
                    "body line\n".repeat(i % 7 + 1)
                )
                .as_bytes(),
            );
        }
        m
    }

    #[test]
    fn a_plan_reads_back_as_written_and_refuses_edits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mbox"), mbox(400)).unwrap();
        std::fs::write(dir.path().join("b.txt"), b"not mail at all").unwrap();
        let mut opts = ScanOptions {
            small_file_bytes: 1000,
            ..ScanOptions::default()
        };
        opts.stream.block_bytes = 2000;
        let plan = Plan::make(
            &[dir.path().to_path_buf()],
            &opts,
            PlanOptions {
                shards: 3,
                range_bytes: Some(5000),
            },
        )
        .unwrap();
        let ranges = plan
            .pieces
            .iter()
            .filter(|p| matches!(p.piece, Piece::Range { .. }))
            .count();
        assert!(ranges >= 4, "{plan:?}");
        // Consecutive shards, every shard used.
        let shards: Vec<u32> = plan.pieces.iter().map(|p| p.shard).collect();
        assert!(shards.windows(2).all(|w| w[0] <= w[1]), "{shards:?}");
        assert_eq!(shards.last(), Some(&2));
        let path = dir.path().join("census.plan");
        plan.write(&path).unwrap();
        assert_eq!(Plan::read(&path).unwrap(), plan);
        // An edited piece is refused.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("\"start\":0", "\"start\":1", 1)).unwrap();
        let err = Plan::read(&path).unwrap_err().to_string();
        assert!(err.contains("make the plan again"), "{err}");
        // So is another format version.
        std::fs::write(
            &path,
            text.replacen("\"mailcensus_plan\":1", "\"mailcensus_plan\":99", 1),
        )
        .unwrap();
        let err = Plan::read(&path).unwrap_err().to_string();
        assert!(err.contains("format version 99"), "{err}");
    }

    #[test]
    fn the_ranges_of_a_file_cover_it_at_message_starts() {
        let dir = tempfile::tempdir().unwrap();
        let data = mbox(300);
        std::fs::write(dir.path().join("a.mbox"), &data).unwrap();
        let mut opts = ScanOptions {
            small_file_bytes: 100,
            ..ScanOptions::default()
        };
        opts.stream.block_bytes = 1000;
        for every in [1u64, 999, 4000, 50_000] {
            let plan = Plan::make(
                &[dir.path().join("a.mbox")],
                &opts,
                PlanOptions {
                    shards: 2,
                    range_bytes: Some(every),
                },
            )
            .unwrap();
            let mut at = 0;
            for p in &plan.pieces {
                match &p.piece {
                    Piece::Range { start, end, .. } => {
                        assert_eq!(*start, at);
                        assert!(*start == 0 || data[*start as usize..].starts_with(b"From "));
                        at = *end;
                    }
                    Piece::File { .. } => at = data.len() as u64,
                    Piece::Note(_) => unreachable!(),
                }
            }
            assert_eq!(at, data.len() as u64, "every {every}");
        }
    }
}
