//! Helpers shared by the whole-run tests: run the binary, read its CSV, find the corpora.

#![allow(dead_code)]

pub mod read_check;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The public corpora in `../shared/corpora` (or `$MAILCENSUS_CORPORA`). When they are missing
/// the test says so loudly and returns None — except under CI (`CI` set), where it fails, because
/// CI must run every test.
pub fn corpora() -> Option<PathBuf> {
    let dir = std::env::var_os("MAILCENSUS_CORPORA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "corpora not found at {} (set MAILCENSUS_CORPORA); CI must not skip this test",
            dir.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPED: the public corpora are not at {} (set MAILCENSUS_CORPORA).\n!!! This test reads real mail from there; it did not run.\n",
        dir.display()
    );
    None
}

/// The shipped sample in `data/`.
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mailcensus"))
}

/// Run `mailcensus scan ARGS --out OUT -q` and return the process output.
pub fn scan(args: &[&std::ffi::OsStr], out: &Path) -> Output {
    let mut cmd = bin();
    cmd.arg("scan").args(args).arg("--out").arg(out).arg("-q");
    cmd.output().expect("run mailcensus")
}

/// Run a scan that must succeed completely (exit 0).
pub fn scan_ok(args: &[&std::ffi::OsStr], out: &Path) {
    let o = scan(args, out);
    assert!(
        o.status.success(),
        "mailcensus failed: {:?}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Rows of a CSV file as maps from column name to cell.
pub fn rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = r.headers().expect("header row").clone();
    r.records()
        .map(|rec| {
            let rec = rec.expect("csv record");
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A file's bytes (the test fails naming the file when it cannot be read).
pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// messages.csv without the `source` column, which names the path, `-`, or `archive!entry` and
/// so differs between a plain, a piped and a packed copy of the same bytes.
pub fn rows_without_source(out: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(out.join("messages.csv")).unwrap();
    r.records()
        .map(|rec| rec.unwrap().iter().skip(1).map(String::from).collect())
        .collect()
}

/// The parsed summary.json of a run.
pub fn summary(out: &Path) -> serde_json::Value {
    let bytes = std::fs::read(out.join("summary.json")).expect("summary.json");
    serde_json::from_slice(&bytes).expect("summary.json is JSON")
}

/// Totals from summary.json as u64.
pub fn total(out: &Path, key: &str) -> u64 {
    summary(out)["totals"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("totals.{key} missing"))
}

pub fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Whether Python can import duckdb. Missing: a loud skip locally, a failure under CI.
pub fn duckdb() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("python3 cannot import duckdb: .ci/run must `pip install duckdb`");
        }
        eprintln!("\n!!! SKIPPED: DuckDB checks (python3 -m pip install duckdb to run them).\n");
    }
    ok
}
