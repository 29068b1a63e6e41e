//! One census across many machines: a plan cuts the inputs into shards, each shard is scanned
//! anywhere (a Slurm array task, a GNU parallel job) into a partial, and a merge makes from the
//! partials the files one `scan` of the same inputs would have made, byte for byte.
//!
//! - [`plan`] walks the inputs as a scan does and lists its pieces in scan order: whole files,
//!   byte ranges of large mbox files cut where the splitter starts a block, and the walk's notes.
//!   It gives each shard a run of consecutive pieces, balanced by bytes.
//! - [`shard`] reads one shard's pieces through the same pipeline as a scan and writes a
//!   *partial*: the message stage's rows in Parquet (queryable as they are), the campaign facts,
//!   and the totals, in segments committed one by one and listed in a journal, so a shard that
//!   was killed resumes after its last segment; `partial.json`, written last, marks it finished.
//! - [`merge`] reads the partials in plan order into the writing side of a scan
//!   ([`crate::scan::Collector`]): the campaigns and relay abuse are decided over all of them,
//!   and every table is written as one scan writes it. Its memory grows with the evidence keys
//!   and campaigns, not with the messages: rows stream through.
//!
//! Plans and partials carry a format version and the tables' schema version; a merge refuses
//! what it cannot read exactly, and names a missing or unfinished shard.

pub mod merge;
pub mod plan;
pub mod shard;

use std::path::PathBuf;

use thiserror::Error;

use crate::output::OutputError;

/// Version of the plan file's layout.
pub const PLAN_VERSION: u32 = 1;
/// Version of a shard's partial (its files and their layout). 2: facts records carry their
/// keys' names.
pub const PARTIAL_VERSION: u32 = 2;

/// Name of the file that marks a shard's partial finished.
pub const PARTIAL_FILE: &str = "partial.json";
/// Name of a shard's journal of committed segments.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// Errors of planning, sharding and merging.
#[derive(Debug, Error)]
pub enum ClusterError {
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {why}", .path.display())]
    Invalid { path: PathBuf, why: String },
    #[error("{}: {why}", .path.display())]
    Changed { path: PathBuf, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Incomplete(String),
}

impl ClusterError {
    fn invalid(path: &std::path::Path, why: impl Into<String>) -> ClusterError {
        ClusterError::Invalid {
            path: path.to_path_buf(),
            why: why.into(),
        }
    }
}

/// FNV-1a over bytes: the identity of a plan (not a security measure, a guard against mixing
/// partials of different plans).
fn fingerprint(parts: &[&[u8]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
