//! A census cut into shards: `plan`, `scan --plan --shard` and `merge` give the files of one
//! `scan` of the same inputs, byte for byte (`summary.json`'s `run` section aside), on the
//! dkimpy trap with its keys (one mbox cut into byte ranges), on a generated trap with
//! relay-abuse waves, and on every corpus format; a shard killed part-way and resumed gives the
//! same result; what cannot be merged exactly is refused, naming why. The shards also run as a
//! real Slurm array job with the merge as a dependent job (when .ci/run has started Slurm:
//! MAILCENSUS_TEST_SLURM) and with GNU parallel, through the scripts in `examples/`.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run mailcensus")
}

fn ok(o: Output, what: &str) -> Output {
    assert!(
        o.status.success(),
        "{what} failed: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `mailcensus plan INPUTS --shards N --out PLAN [extra]`.
fn plan(inputs: &[&Path], shards: u32, plan: &Path, extra: &[&str]) {
    let mut cmd = bin();
    cmd.arg("plan")
        .args(inputs)
        .arg("--shards")
        .arg(shards.to_string())
        .arg("--out")
        .arg(plan)
        .arg("-q")
        .args(extra);
    ok(run(&mut cmd), "plan");
}

/// `mailcensus scan --plan PLAN --shard I/N --out PARTS/I OPTIONS`.
fn shard(plan: &Path, i: u32, n: u32, parts: &Path, options: &[OsString]) -> Output {
    let mut cmd = bin();
    cmd.arg("scan")
        .arg("--plan")
        .arg(plan)
        .arg("--shard")
        .arg(format!("{i}/{n}"))
        .arg("--out")
        .arg(parts.join(i.to_string()))
        .arg("-q")
        .args(options);
    run(&mut cmd)
}

fn merge(parts: &[PathBuf], out: &Path, extra: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.arg("merge")
        .args(parts)
        .arg("--out")
        .arg(out)
        .arg("-q")
        .args(extra);
    run(&mut cmd)
}

fn dirs_in(parts: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    // Any order will do: the merge orders shards by the number inside each.
    dirs.sort();
    dirs.reverse();
    dirs
}

/// Every file of `single` is in `merged` with the same bytes, `summary.json` apart from its
/// `run` section; and `merged` holds nothing more.
fn assert_same_result(single: &Path, merged: &Path) {
    let names = |d: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(single), names(merged), "the same files");
    for name in names(single) {
        let (a, b) = (read(&single.join(&name)), read(&merged.join(&name)));
        if name == "summary.json" {
            let mut a: serde_json::Value = serde_json::from_slice(&a).unwrap();
            let mut b: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert!(b["run"]["merge"]["shards"].as_u64().is_some(), "{b}");
            a.as_object_mut().unwrap().remove("run");
            b.as_object_mut().unwrap().remove("run");
            assert_eq!(a, b, "summary.json outside its run section");
        } else {
            assert!(a == b, "{name} differs between the scan and the merge");
        }
    }
}

/// Plan `inputs` into `shards` shards, scan each with `options`, merge (in `formats`), scan
/// once the same way, and compare. Gives the merged directory's parent for further checks.
fn sharded_equals_single(
    inputs: &[&Path],
    shards: u32,
    plan_extra: &[&str],
    options: &[OsString],
    formats: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("census.plan");
    plan(inputs, shards, &plan_file, plan_extra);
    let parts = dir.path().join("parts");
    for i in 0..shards {
        // Shards differ in thread count and segment size: neither may show in the result.
        let mut opts = options.to_vec();
        opts.extend(["--threads".into(), (1 + i % 2).to_string().into()]);
        if i % 2 == 1 {
            opts.extend(["--segment-bytes".into(), "300000".into()]);
        }
        ok(shard(&plan_file, i, shards, &parts, &opts), "shard");
    }
    let merged = dir.path().join("merged");
    ok(
        merge(&dirs_in(&parts), &merged, &["--format", formats]),
        "merge",
    );
    let single = dir.path().join("single");
    let mut cmd = bin();
    cmd.arg("scan")
        .args(inputs)
        .args(options)
        .args(["--format", formats, "-q", "--out"])
        .arg(&single);
    let o = run(&mut cmd);
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "scan failed: {}",
        stderr(&o)
    );
    assert_same_result(&single, &merged);
    dir
}

#[test]
fn the_dkimpy_trap_cut_into_byte_ranges_merges_into_one_scan() {
    let Some(c) = corpora() else { return };
    let trap = c.join("dkimpy-signed-trap");
    let keys = trap.join("keys.zone");
    let dir = sharded_equals_single(
        &[&trap.join("corpus.mbox")],
        4,
        // Blocks of 64 KiB (the single scan reads 4 MiB blocks: blocks must not show).
        &["--range-bytes", "1000000", "--block-bytes", "65536"],
        &["--keys".into(), keys.into_os_string(), "--received".into()],
        "csv,parquet,jsonl",
    );
    // The mbox was cut into many byte ranges, spread over all four shards.
    let plan_text = std::fs::read_to_string(dir.path().join("census.plan")).unwrap();
    let ranges = plan_text.matches("\"kind\":\"range\"").count();
    assert!(ranges >= 20, "{ranges} ranges");
    for i in 0..4 {
        assert!(
            plan_text.contains(&format!("\"shard\":{i}")),
            "shard {i} has pieces"
        );
    }
    // The relay-abuse waves survive the cut.
    let merged = rows(&dir.path().join("merged/messages.csv"));
    let abuse = merged.iter().filter(|r| r["relay_abuse"] == "true").count();
    assert_eq!(abuse, 460);
}

#[test]
fn a_generated_trap_with_relay_abuse_waves_merges_into_one_scan() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("gen");
    ok(
        run(bin()
            .args([
                "generate",
                "--messages",
                "6000",
                "--seed",
                "811",
                "--waves",
                "4",
            ])
            .args([
                "--wave-brands",
                "2-5",
                "--wave-tenants",
                "3-9",
                "-q",
                "--out",
            ])
            .arg(&corpus)),
        "generate",
    );
    let result = sharded_equals_single(
        &[&corpus.join("corpus.mbox")],
        3,
        &["--range-bytes", "2000000"],
        &["--keys".into(), corpus.join("keys.zone").into_os_string()],
        "csv",
    );
    let campaigns = rows(&result.path().join("merged/campaigns.csv"));
    assert!(
        campaigns.iter().any(|c| c["kind"] == "relay-abuse-wave"),
        "the waves are found across shards"
    );
}

#[test]
fn every_corpus_format_merges_into_one_scan() {
    let Some(c) = corpora() else { return };
    // Maildir, .eml trees, gzip/zstd/xz/bzip2, tar and mbox files, and the walk's notes.
    sharded_equals_single(&[&c], 5, &[], &["--no-dkim".into()], "csv,parquet");
}

#[test]
fn a_killed_shard_resumes_after_its_last_segment_and_the_merge_is_the_same() {
    let Some(c) = corpora() else { return };
    let trap = c.join("dkimpy-signed-trap");
    let keys: OsString = trap.join("keys.zone").into_os_string();
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("census.plan");
    plan(
        &[&trap.join("corpus.mbox")],
        2,
        &plan_file,
        &["--range-bytes", "500000"],
    );
    let parts = dir.path().join("parts");
    let opts = |extra: &[&str]| -> Vec<OsString> {
        let mut o: Vec<OsString> = vec![
            "--keys".into(),
            keys.clone(),
            "--segment-bytes".into(),
            "1000000".into(),
        ];
        o.extend(extra.iter().map(OsString::from));
        o
    };
    // Shard 1 ends abruptly (abort, as kill -9: no cleanup) after two segments.
    let killed = shard(
        &plan_file,
        1,
        2,
        &parts,
        &opts(&["--abort-after-segments", "2"]),
    );
    assert!(!killed.status.success(), "the shard was stopped");
    let journal = std::fs::read_to_string(parts.join("1/journal.jsonl")).unwrap();
    assert_eq!(
        journal.lines().count(),
        3,
        "identity and two segments: {journal}"
    );
    assert!(!parts.join("1/partial.json").exists());
    // A merge now names the unfinished shard.
    ok(shard(&plan_file, 0, 2, &parts, &opts(&[])), "shard 0");
    let merged = dir.path().join("merged");
    let refused = merge(&dirs_in(&parts), &merged, &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("unfinished shard"),
        "{}",
        stderr(&refused)
    );
    // Without --resume the shard's directory is not reused.
    let again = shard(&plan_file, 1, 2, &parts, &opts(&[]));
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
    // Resumed, it does only what was left, and the merge equals one scan.
    let mut cmd = bin();
    cmd.arg("scan")
        .arg("--plan")
        .arg(&plan_file)
        .args(["--shard", "1/2", "--resume", "--out"])
        .arg(parts.join("1"))
        .args(opts(&[]));
    let resumed = ok(run(&mut cmd), "resumed shard");
    assert!(
        stderr(&resumed).contains("2 from the earlier run, resumed"),
        "{}",
        stderr(&resumed)
    );
    ok(merge(&dirs_in(&parts), &merged, &[]), "merge");
    let single = dir.path().join("single");
    scan_ok(
        &[trap.join("corpus.mbox").as_os_str(), os("--keys"), &keys],
        &single,
    );
    assert_same_result(&single, &merged);
    // --resume on a finished shard leaves it as it is.
    let done = ok(run(&mut cmd), "resume of a finished shard");
    assert!(
        stderr(&done).contains("finished already"),
        "{}",
        stderr(&done)
    );
}

#[test]
fn what_cannot_be_merged_exactly_is_refused_naming_why() {
    let Some(c) = corpora() else { return };
    let trap = c.join("dkimpy-signed-trap");
    let dir = tempfile::tempdir().unwrap();
    let mbox_copy = dir.path().join("trap.mbox");
    std::fs::copy(trap.join("corpus.mbox"), &mbox_copy).unwrap();
    let plan_file = dir.path().join("census.plan");
    plan(&[&mbox_copy], 3, &plan_file, &["--range-bytes", "2000000"]);
    let parts = dir.path().join("parts");
    let none: Vec<OsString> = vec!["--no-dkim".into()];
    ok(shard(&plan_file, 0, 3, &parts, &none), "shard 0");
    ok(shard(&plan_file, 2, 3, &parts, &none), "shard 2");
    let merged = dir.path().join("merged");

    // A missing shard is named; with --allow-partial the result says it is partial.
    let refused = merge(&dirs_in(&parts), &merged, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("shard 1 of 3 missing"),
        "{}",
        stderr(&refused)
    );
    assert!(!merged.join("messages.csv").exists(), "nothing written");
    let partial = merge(&dirs_in(&parts), &merged, &["--allow-partial"]);
    assert_eq!(partial.status.code(), Some(3), "{}", stderr(&partial));
    let summary: serde_json::Value =
        serde_json::from_slice(&read(&merged.join("summary.json"))).unwrap();
    assert_eq!(summary["complete"], false);
    assert_eq!(summary["missing_shards"], serde_json::json!([1]));

    // A shard scanned with other options does not mix.
    let other = shard(&plan_file, 1, 3, &parts, &[]);
    ok(other, "shard 1 with DKIM");
    let mixed = merge(&dirs_in(&parts), &merged, &[]);
    assert_eq!(mixed.status.code(), Some(2), "{}", stderr(&mixed));
    assert!(
        stderr(&mixed).contains("different options"),
        "{}",
        stderr(&mixed)
    );
    std::fs::remove_dir_all(parts.join("1")).unwrap();

    // Shards of another plan do not mix either.
    let plan_b = dir.path().join("other.plan");
    // (another input: the key zone, which the walk notes as not mail)
    plan(
        &[&mbox_copy, &trap.join("keys.zone")],
        3,
        &plan_b,
        &["--range-bytes", "2000000"],
    );
    ok(
        shard(&plan_b, 1, 3, &parts, &none),
        "shard 1 of another plan",
    );
    let foreign = merge(&dirs_in(&parts), &merged, &[]);
    assert!(
        stderr(&foreign).contains("different plans"),
        "{}",
        stderr(&foreign)
    );
    std::fs::remove_dir_all(parts.join("1")).unwrap();

    // A partial of another schema version is refused, naming the versions.
    let p0 = parts.join("0/partial.json");
    let text = std::fs::read_to_string(&p0).unwrap();
    let version = format!("\"schema_version\": {}", mailcensus::SCHEMA_VERSION);
    std::fs::write(&p0, text.replace(&version, "\"schema_version\": 1")).unwrap();
    let old = merge(&dirs_in(&parts), &merged, &["--allow-partial"]);
    assert!(
        stderr(&old).contains("schema version 1"),
        "{}",
        stderr(&old)
    );
    std::fs::write(&p0, text).unwrap();

    // A file changed since the plan is an error for the shard that reads it, not a silent mix.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&mbox_copy)
        .unwrap();
    std::io::Write::write_all(
        &mut f,
        b"\nFrom x@y Mon May  6 00:10:11 2024\nSubject: late\n\nx\n",
    )
    .unwrap();
    drop(f);
    let changed = shard(&plan_file, 1, 3, &parts, &none);
    assert_eq!(changed.status.code(), Some(1), "{}", stderr(&changed));
    assert!(
        stderr(&changed).contains("changed since it was planned"),
        "{}",
        stderr(&changed)
    );

    // Standard input cannot be planned; a shard number outside the plan is refused; --dns
    // with a plan is refused (every shard must verify with the same keys).
    let o = run(bin()
        .args(["plan", "-", "--shards", "2", "--out"])
        .arg(dir.path().join("x")));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("standard input"), "{}", stderr(&o));
    let o = shard(&plan_file, 3, 3, &parts, &none);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = shard(&plan_file, 0, 4, &parts, &none);
    assert!(
        stderr(&o).contains("the plan has 3 shards"),
        "{}",
        stderr(&o)
    );
    let o = shard(
        &plan_file,
        0,
        3,
        &parts,
        &["--dns".into(), "127.0.0.1:1".into()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--keys-out"), "{}", stderr(&o));
}

/// The shards' Parquet files can be queried before the merge.
#[test]
fn duckdb_reads_the_partials_before_the_merge() {
    let Some(c) = corpora() else { return };
    let ok_duckdb = Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok_duckdb {
        if std::env::var_os("CI").is_some() {
            panic!("python3 cannot import duckdb: .ci/run must `pip install duckdb`");
        }
        eprintln!("\n!!! SKIPPED: DuckDB query of the partials (python3 -m pip install duckdb).\n");
        return;
    }
    let trap = c.join("dkimpy-signed-trap");
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("census.plan");
    plan(
        &[&trap.join("corpus.mbox")],
        2,
        &plan_file,
        &["--range-bytes", "4000000"],
    );
    let parts = dir.path().join("parts");
    let keys: Vec<OsString> = vec!["--keys".into(), trap.join("keys.zone").into_os_string()];
    for i in 0..2 {
        ok(shard(&plan_file, i, 2, &parts, &keys), "shard");
    }
    let script = r#"
import duckdb, sys
parts = sys.argv[1]
n = duckdb.sql(f"SELECT count(*) FROM '{parts}/*/messages-*.parquet'").fetchall()[0][0]
p = duckdb.sql(f"SELECT count(*) FROM '{parts}/*/signatures-*.parquet' WHERE result = 'pass'").fetchall()[0][0]
print(n, p)
"#;
    let o = ok(
        run(Command::new("python3").args(["-c", script]).arg(&parts)),
        "DuckDB",
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "4000 4295");
}

/// Whether a command runs (`which`).
fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[cfg_attr(
    not(mailcensus_test_slurm),
    ignore = "no Slurm cluster: .ci/slurm.sh install && .ci/slurm.sh start DIR, and set MAILCENSUS_TEST_SLURM=1 when building the tests"
)]
fn a_slurm_array_job_and_a_dependent_merge_give_one_scan() {
    let Some(c) = corpora() else { return };
    if std::env::var_os("MAILCENSUS_TEST_SLURM").is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("MAILCENSUS_TEST_SLURM is not set: .ci/run must start Slurm (.ci/slurm.sh)");
        }
        eprintln!(
            "\n!!! SKIPPED: no Slurm cluster (.ci/slurm.sh install && .ci/slurm.sh start DIR, then set MAILCENSUS_TEST_SLURM=1).\n"
        );
        return;
    }
    let (_dir, parts) = example_script_gives_one_scan(
        &c.join("dkimpy-signed-trap"),
        "examples/slurm/submit.sh",
        4,
        "census.plan",
        &[("WAIT", "1"), ("SCAN_SBATCH_ARGS", "--cpus-per-task=1")],
    );
    for i in 0..4 {
        assert!(
            parts.join(format!("{i}/partial.json")).exists(),
            "shard {i} ran"
        );
    }
}

/// CI never skips: the Slurm test above must be compiled in (not ignored) there.
#[test]
fn under_ci_the_slurm_test_runs() {
    if std::env::var_os("CI").is_some() {
        let built_with_it = cfg!(mailcensus_test_slurm);
        assert!(
            built_with_it,
            "MAILCENSUS_TEST_SLURM was not set when the tests were built: .ci/run must start Slurm first"
        );
    }
}

#[test]
fn gnu_parallel_runs_the_shards_and_the_merge_gives_one_scan() {
    let Some(c) = corpora() else { return };
    if !have("parallel") {
        if std::env::var_os("CI").is_some() {
            panic!("GNU parallel is not installed: .ci/run must install it (.ci/slurm.sh install)");
        }
        eprintln!("\n!!! SKIPPED: GNU parallel is not installed (apt-get install parallel).\n");
        return;
    }
    // Names with spaces: the script must quote them.
    example_script_gives_one_scan(
        &c.join("dkimpy-signed-trap"),
        "examples/parallel.sh",
        3,
        "census plan",
        &[("JOBS", "2"), ("THREADS", "1"), ("MERGE_ARGS", "-q")],
    );
}

/// Plan `trap` (the dkimpy trap) into `shards` shards in a file named `plan_name`, run the
/// example `script` as a user would (`script PLAN PARTS OUT --keys KEYS`, with `env`), and check
/// the result equals one scan of the trap. Gives the temporary directory and the parts.
fn example_script_gives_one_scan(
    trap: &Path,
    script: &str,
    shards: u32,
    plan_name: &str,
    env: &[(&str, &str)],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join(plan_name);
    let range = (12_000_000 / shards).to_string();
    plan(
        &[&trap.join("corpus.mbox")],
        shards,
        &plan_file,
        &["--range-bytes", &range],
    );
    let parts = dir.path().join("the parts");
    let merged = dir.path().join("merged");
    let mut cmd = Command::new("bash");
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script))
        .arg(&plan_file)
        .arg(&parts)
        .arg(&merged)
        .arg("--keys")
        .arg(trap.join("keys.zone"))
        .current_dir(dir.path())
        .env("MAILCENSUS", env!("CARGO_BIN_EXE_mailcensus"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    ok(run(&mut cmd), script);
    let single = dir.path().join("single");
    scan_ok(
        &[
            trap.join("corpus.mbox").as_os_str(),
            os("--keys"),
            trap.join("keys.zone").as_os_str(),
        ],
        &single,
    );
    assert_same_result(&single, &merged);
    (dir, parts)
}
