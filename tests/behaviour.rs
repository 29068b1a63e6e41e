//! Whole runs that check how a scan behaves: same bytes for any thread count, compressed and tar
//! inputs giving the same rows as plain ones, bad inputs reported, Ctrl-C leaving nothing behind.

mod common;

use std::path::Path;

use common::*;
use std::io::Write;
use std::path::PathBuf;

/// Mail from the shipped sample, so these tests run on a fresh clone too.
fn sample_mbox() -> PathBuf {
    data_dir().join("mailbox-perl/mbox.src")
}

#[test]
fn output_is_identical_for_one_and_two_threads() {
    let mut inputs = vec![data_dir().into_os_string()];
    if let Some(c) = corpora() {
        // A large single mbox, split across workers, and a tree of small files.
        inputs.push(c.join("dkimpy-signed-trap/corpus.mbox").into_os_string());
        inputs.push(c.join("spamassassin-public").into_os_string());
    }
    let args: Vec<&std::ffi::OsStr> = inputs.iter().map(|s| s.as_os_str()).collect();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let mut a1 = args.clone();
    a1.extend([os("--threads"), os("1"), os("--received")]);
    let mut a2 = args.clone();
    a2.extend([os("--threads"), os("2"), os("--received")]);
    scan_ok(&a1, one.path());
    scan_ok(&a2, two.path());
    for f in ["messages.csv", "received.csv", "signatures.csv"] {
        let (x, y) = (read(&one.path().join(f)), read(&two.path().join(f)));
        assert!(x.len() > 1000, "{f} has rows");
        assert!(x == y, "{f} differs between --threads 1 and --threads 2");
    }
    // Small blocks force one mbox into many units: still the same bytes.
    let no_mmap = tempfile::tempdir().unwrap();
    let mut a3 = args.clone();
    a3.push(os("--no-mmap"));
    scan_ok(&a3, no_mmap.path());
    assert!(read(&one.path().join("messages.csv")) == read(&no_mmap.path().join("messages.csv")));
}

fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => zstd::encode_all(data, 3).unwrap(),
        "xz" => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => unreachable!(),
    }
}

#[test]
fn compressed_mbox_gives_the_same_rows_as_plain() {
    let plain = read(&sample_mbox());
    let dir = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    scan_ok(&[sample_mbox().as_os_str()], base.path());
    let want = rows_without_source(base.path());
    assert_eq!(want.len(), 45);
    for kind in ["gz", "zst", "xz", "bz2"] {
        // A misleading name: formats are sniffed from content, not extensions.
        let p = dir.path().join(format!("archive-{kind}.txt"));
        std::fs::write(&p, compress(kind, &plain)).unwrap();
        let out = tempfile::tempdir().unwrap();
        scan_ok(&[p.as_os_str()], out.path());
        assert_eq!(rows_without_source(out.path()), want, "{kind}");
        // Streamed with small blocks (many units, messages crossing read boundaries).
    }
}

#[test]
fn tar_of_message_files_gives_the_same_rows_as_the_files() {
    let src = data_dir().join("spamassassin-testdata/spam");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "sample spam folder present");
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("spam.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
        for f in &files {
            b.append_path_with_name(f, f.file_name().unwrap()).unwrap();
        }
        b.finish().unwrap();
    }
    let tgz = dir.path().join("spam.tgz");
    std::fs::write(&tgz, compress("gz", &read(&tar_path))).unwrap();

    let plain = tempfile::tempdir().unwrap();
    let file_args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    scan_ok(&file_args, plain.path());
    let want = rows_without_source(plain.path());
    for packed in [&tar_path, &tgz] {
        let out = tempfile::tempdir().unwrap();
        scan_ok(&[packed.as_os_str()], out.path());
        assert_eq!(
            rows_without_source(out.path()),
            want,
            "{}",
            packed.display()
        );
        let sources: Vec<_> = rows(&out.path().join("messages.csv"))
            .into_iter()
            .map(|r| r["source"].clone())
            .collect();
        assert!(
            sources[0].contains(".t") && sources[0].contains('!'),
            "{:?}",
            sources[0]
        );
    }
}

#[test]
fn unreadable_and_truncated_inputs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    // A mbox cut off in the middle of a header block.
    let mut cut = read(&sample_mbox());
    let at = cut.len() - 1;
    let last_from = cut[..at].windows(6).rposition(|w| w == b"\nFrom ").unwrap();
    cut.truncate(last_from + 1 + 100);
    let cut_path = dir.path().join("cut.mbox");
    std::fs::write(&cut_path, &cut).unwrap();
    // A gzip stream cut short.
    let gz = compress("gz", &read(&sample_mbox()));
    let gz_path = dir.path().join("cut.gz");
    std::fs::write(&gz_path, &gz[..gz.len() / 2]).unwrap();
    let missing = dir.path().join("no-such-file.mbox");
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();

    let out = tempfile::tempdir().unwrap();
    let o = scan(
        &[
            cut_path.as_os_str(),
            gz_path.as_os_str(),
            missing.as_os_str(),
            dangling.as_os_str(),
        ],
        out.path(),
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "partial run exits 3: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = summary(out.path());
    assert_eq!(s["complete"], false);
    let unreadable: Vec<String> = s["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{} {}", u["path"], u["error"]))
        .collect();
    assert!(
        unreadable
            .iter()
            .any(|u| u.contains("no-such-file") && u.contains("No such file")),
        "{unreadable:?}"
    );
    assert!(
        unreadable.iter().any(|u| u.contains("dangling")),
        "{unreadable:?}"
    );
    assert!(
        unreadable.iter().any(|u| u.contains("cut.gz")),
        "{unreadable:?}"
    );
    let by_reason = &s["totals"]["malformed_by_reason"];
    assert_eq!(by_reason["truncated"], 1, "{s}");
    assert!(by_reason["read-error"].as_u64().unwrap_or(0) >= 1, "{s}");
    let rows = rows(&out.path().join("messages.csv"));
    let cut_rows: Vec<_> = rows
        .iter()
        .filter(|r| r["source"].ends_with("cut.mbox"))
        .collect();
    assert_eq!(cut_rows.len(), 45);
    assert_eq!(cut_rows[44]["malformed"], "truncated");
}

#[test]
fn decompression_bomb_is_reported_not_obeyed() {
    let mut mbox = b"From a@b.example Mon May  6 00:10:11 2024\nSubject: bomb\n\n".to_vec();
    let line = [b'A'; 99];
    for _ in 0..(30 << 20) / 100 {
        mbox.extend_from_slice(&line);
        mbox.push(b'\n');
    }
    mbox.extend_from_slice(b"\nFrom c@d.example Tue May  7 01:00:00 2024\nSubject: after\n\nok\n");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bomb.gz");
    std::fs::write(&p, compress("gz", &mbox)).unwrap();
    assert!(std::fs::metadata(&p).unwrap().len() < 1 << 20);
    let out = tempfile::tempdir().unwrap();
    scan_ok(
        &[p.as_os_str(), os("--max-message-mib"), os("2")],
        out.path(),
    );
    let rows = rows(&out.path().join("messages.csv"));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["malformed"], "too-large");
    assert!(rows[0]["length"].parse::<u64>().unwrap() > 29 << 20);
    assert_eq!(rows[1]["subject"], "after");
    assert_eq!(rows[1]["malformed"], "");
}

#[test]
fn ctrl_c_leaves_no_complete_looking_output() {
    // Feed the scan through a pipe so it is certainly still running when the signal comes.
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["scan", "-", "--out"])
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mbox = read(&sample_mbox());
    stdin.write_all(&mbox).unwrap();
    stdin.flush().unwrap();
    // Wait until the run has created its temporary files, then interrupt it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(out.path()).unwrap().count() == 0 {
        assert!(std::time::Instant::now() < deadline, "scan never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let result = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(
        result.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn received_csv_only_on_request() {
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[sample_mbox().as_os_str()], out.path());
    assert!(!out.path().join("received.csv").exists());
    let with = tempfile::tempdir().unwrap();
    scan_ok(&[sample_mbox().as_os_str(), os("--received")], with.path());
    let hops = rows(&with.path().join("received.csv"));
    let messages = rows(&with.path().join("messages.csv"));
    let want: usize = messages
        .iter()
        .map(|m| m["hops"].parse::<usize>().unwrap())
        .sum();
    assert_eq!(hops.len(), want, "one received.csv row per hop");
    assert!(hops.iter().all(|h| h["hop"].parse::<usize>().unwrap() >= 1));
}

#[test]
fn a_rerun_into_the_same_directory_leaves_no_stale_outputs() {
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[sample_mbox().as_os_str(), os("--received")], out.path());
    for name in [
        "campaigns.csv",
        "timeline.csv",
        "timeline.svg",
        "received.csv",
    ] {
        assert!(out.path().join(name).exists(), "{name} after the first run");
    }
    std::fs::write(out.path().join("notes.txt"), b"mine").unwrap();
    scan_ok(
        &[sample_mbox().as_os_str(), os("--no-campaigns")],
        out.path(),
    );
    for name in [
        "campaigns.csv",
        "timeline.csv",
        "timeline.svg",
        "received.csv",
    ] {
        assert!(
            !out.path().join(name).exists(),
            "{name} of the earlier run must not stay beside this run's messages.csv"
        );
    }
    assert!(out.path().join("messages.csv").exists());
    assert!(out.path().join("summary.json").exists());
    assert_eq!(
        read(&out.path().join("notes.txt")),
        b"mine",
        "other files are left alone"
    );
}

#[test]
fn formulas_are_neutralised_unless_raw_cells() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.eml");
    std::fs::write(
        &p,
        b"From: a@b.example\nSubject: =HYPERLINK(\"http://x\")\nX-Mailer: @evil\n\nbody\n",
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[p.as_os_str()], out.path());
    let r = &rows(&out.path().join("messages.csv"))[0];
    assert_eq!(r["subject"], "'=HYPERLINK(\"http://x\")");
    assert_eq!(r["x_mailer"], "'@evil");
    let raw = tempfile::tempdir().unwrap();
    scan_ok(&[p.as_os_str(), os("--raw-cells")], raw.path());
    let r = &rows(&raw.path().join("messages.csv"))[0];
    assert_eq!(r["subject"], "=HYPERLINK(\"http://x\")");
}

#[test]
fn shipped_sample_scans_on_a_fresh_clone() {
    // The README's run command: the shipped trap's signatures verify, its two relay-abuse
    // waves and its campaigns are found, and the real mail is read alongside.
    let out = tempfile::tempdir().unwrap();
    let keys = data_dir().join("generated-trap/keys.zone");
    scan_ok(
        &[data_dir().as_os_str(), os("--keys"), keys.as_os_str()],
        out.path(),
    );
    let s = summary(out.path());
    let t = &s["totals"];
    assert_eq!(
        t["messages"],
        t["parsed"].as_u64().unwrap() + t["malformed"].as_u64().unwrap()
    );
    assert!(t["messages"].as_u64().unwrap() >= 2800, "{t}");
    assert!(
        s["dkim"]["signatures_by_result"]["pass"].as_u64().unwrap() > 2000,
        "{s}"
    );
    let c = &s["campaigns"];
    assert_eq!(c["relay_abuse_waves"], 2, "{c}");
    assert!(c["relay_abuse"].as_u64().unwrap() > 400, "{c}");
    assert!(c["campaigns"].as_u64().unwrap() >= 10, "{c}");
    let brands: usize = c["waves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["brands"].as_array().unwrap().len())
        .sum();
    assert!(brands >= 6, "each wave spoofs several brands: {c}");
    assert!(out.path().join("timeline.svg").exists());
}

#[test]
fn mapped_streamed_and_compressed_mbox_agree_on_odd_starts() {
    // Leading blank lines, a CRLF blank line, and a message large enough to cross the reader's
    // block boundaries: the mapped, buffered and gzip paths must give the same rows and offsets.
    let mut mbox = b"\n\r\n".to_vec();
    mbox.extend_from_slice(&read(&sample_mbox()));
    mbox.extend_from_slice(b"\nFrom big@x.example Tue May  7 01:00:00 2024\nSubject: big\n\n");
    for i in 0..250_000 {
        mbox.extend_from_slice(format!("line {i} of a long body\n").as_bytes());
    }
    mbox.push(b'\n');
    mbox.extend_from_slice(&read(&sample_mbox()));
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("odd.mbox");
    std::fs::write(&plain, &mbox).unwrap();
    let gz = dir.path().join("odd.mbox.gz");
    std::fs::write(&gz, compress("gz", &mbox)).unwrap();
    let mapped = tempfile::tempdir().unwrap();
    scan_ok(&[plain.as_os_str()], mapped.path());
    let want = rows_without_source(mapped.path());
    assert_eq!(want.len(), 91);
    assert_eq!(want[0][0], "3", "first entry offset skips the blank lines");
    let buffered = tempfile::tempdir().unwrap();
    scan_ok(&[plain.as_os_str(), os("--no-mmap")], buffered.path());
    assert_eq!(rows_without_source(buffered.path()), want);
    let streamed = tempfile::tempdir().unwrap();
    scan_ok(&[gz.as_os_str()], streamed.path());
    assert_eq!(rows_without_source(streamed.path()), want);
}

/// A key "file" without end (`--keys /dev/zero`) is refused once it passes the size limit,
/// instead of growing until the kernel kills the run.
#[test]
fn an_endless_key_file_is_refused_at_its_limit() {
    let out = tempfile::tempdir().unwrap();
    let o = scan(
        &[sample_mbox().as_os_str(), os("--keys"), os("/dev/zero")],
        out.path(),
    );
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("larger than 256 MiB"), "{stderr}");
    assert!(!out.path().join("messages.csv").exists());
}

/// An absurd thread count is capped at a few per core, said on stderr, and the run completes.
#[test]
fn an_absurd_thread_count_is_capped_and_said() {
    let out = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["scan"])
        .arg(sample_mbox())
        .args(["--threads", "100000", "--no-dkim", "--out"])
        .arg(out.path());
    let o = cmd.output().expect("run mailcensus");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--threads 100000 is more than 8 per core"),
        "{stderr}"
    );
    assert!(out.path().join("messages.csv").exists());
}

/// Text cells of campaigns.csv that come from the mail (From domains, brands, the example
/// subject) are guarded against spreadsheet formulas like every text cell of messages.csv.
#[test]
fn campaign_text_cells_are_guarded_against_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut mbox = Vec::new();
    for i in 0..4 {
        mbox.extend_from_slice(
            format!(
                "From x@y Mon Jan  1 00:00:0{i} 2024\nFrom: a{i}@=evil{i}.example\nSubject: =HYPERLINK(\"x\")\nMessage-ID: <{i}@x>\n\nhttps://www.landing-formula.top/a\n\n"
            )
            .as_bytes(),
        );
    }
    let input = dir.path().join("f.mbox");
    std::fs::write(&input, &mbox).unwrap();
    scan_ok(&[input.as_os_str(), os("--no-dkim")], out.path());
    let campaigns = rows(&out.path().join("campaigns.csv"));
    assert_eq!(campaigns.len(), 1, "{campaigns:?}");
    let c = &campaigns[0];
    for column in ["top_from_domains", "top_brands", "example_subject"] {
        let cell = &c[column];
        assert!(!cell.is_empty(), "{column}: {c:?}");
        assert!(!cell.starts_with('='), "{column} unguarded: {cell}");
    }
    assert!(c["top_from_domains"].starts_with("'="), "{c:?}");
}

/// An output directory inside a scanned directory is left out of the walk (it holds the run's
/// own scratch files and the last run's results, never mail): a rerun gives the same rows.
#[test]
fn an_output_directory_inside_the_input_is_not_scanned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(sample_mbox(), dir.path().join("mail.mbox")).unwrap();
    let out = dir.path().join("results");
    let run = || {
        scan_ok(&[dir.path().as_os_str(), os("--no-dkim")], &out);
        std::fs::read(out.join("messages.csv")).unwrap()
    };
    let first = run();
    let second = run();
    assert!(first == second, "a rerun read its own output");
    let rows = rows(&out.join("messages.csv"));
    assert!(
        rows.iter().all(|r| !r["source"].contains("results")),
        "{rows:?}"
    );
    let summary = summary(&out);
    assert!(
        summary.to_string().contains("output-directory"),
        "the skipped output directory is reported"
    );
}

/// A key file, rules file or DNS server named on the command line that cannot be used is a bad
/// command line (exit 2, as the README says), not a failed run.
#[test]
fn unusable_files_and_servers_on_the_command_line_exit_2() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("no-such-file");
    for args in [
        vec![os("--keys"), missing.as_os_str()],
        vec![os("--rules"), missing.as_os_str()],
        vec![os("--dns"), os("not an address")],
    ] {
        let mut all = vec![sample_mbox().into_os_string()];
        all.extend(args.iter().map(|a| a.to_os_string()));
        let refs: Vec<&std::ffi::OsStr> = all.iter().map(|a| a.as_os_str()).collect();
        let o = scan(&refs, &out.path().join("o"));
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // One line that says what is wrong, each part once: the file named once, the OS error
        // once, no internal marker.
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("bad command-line argument"), "{err}");
        if !args.contains(&os("--dns")) {
            assert_eq!(err.matches("no-such-file").count(), 1, "{err}");
            assert_eq!(err.matches("os error 2").count(), 1, "{err}");
        }
    }
}

/// A full or closed stderr (a logging pipe gone away) loses the summary lines but not the run.
#[test]
fn a_full_stderr_does_not_stop_the_run() {
    let out = tempfile::tempdir().unwrap();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux");
    let status = bin()
        .arg("scan")
        .arg(sample_mbox())
        .args(["--no-dkim", "--out"])
        .arg(out.path())
        .stderr(full)
        .status()
        .expect("run mailcensus");
    assert_eq!(status.code(), Some(0));
    assert!(out.path().join("messages.csv").exists());
}

/// Two runs into one output directory cannot mix their files: the second finds the first's lock
/// and stops with a clear message; a lock left by a process that no longer runs is taken over.
#[test]
fn a_second_run_into_a_locked_directory_stops_and_a_stale_lock_is_taken_over() {
    let out = tempfile::tempdir().unwrap();
    let lock = out.path().join(".mailcensus.lock");
    // Held by a running process (this test).
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let o = scan(&[sample_mbox().as_os_str(), os("--no-dkim")], out.path());
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("is writing into"), "{stderr}");
    assert!(!out.path().join("messages.csv").exists());
    // Left by a process that has ended.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    scan_ok(&[sample_mbox().as_os_str(), os("--no-dkim")], out.path());
    assert!(out.path().join("messages.csv").exists());
    assert!(!lock.exists(), "the lock is released at the end");
}

/// Every cell of every CSV output of a corpus whose every field (and file name) starts with a
/// spreadsheet formula character: each is guarded, or is a number or the tool's own `-`.
#[test]
fn no_csv_output_carries_a_live_formula() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut mbox = Vec::new();
    for (i, lead) in ["=", "+", "-", "@", "=", "+"].iter().enumerate() {
        mbox.extend_from_slice(
            format!(
                "From {lead}x@y Mon Jan  1 00:00:0{i} 2024\n\
                 Received: from {lead}helo{i} ({lead}rdns.example [203.0.113.{i}]) by {lead}mx.example with {lead}SMTP id {lead}q{i}; Mon, 1 Jan 2024 00:00:0{i} +0000\n\
                 DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={lead}evil.example; s={lead}sel; h=from:subject; bh={lead}AAAA; b={lead}BBBB\n\
                 Authentication-Results: {lead}mx.example; dkim={lead}pass header.d={lead}evil.example; spf={lead}pass\n\
                 From: \"{lead}Name\" <{lead}a{i}@{lead}evil.example>\n\
                 Sender: {lead}s@{lead}evil.example\n\
                 To: {lead}victim@trap.example\n\
                 Subject: {lead}HYPERLINK(\"http://x\") {i}\n\
                 Message-ID: <{lead}{i}@{lead}evil.example>\n\
                 Date: {lead}Mon, 1 Jan 2024 00:00:0{i} +0000\n\
                 X-Mailer: {lead}mailer\n\
                 List-Unsubscribe: <{lead}https://unsub.example/{i}>\n\
                 Content-Type: {lead}text/plain\n\
                 X-MS-Exchange-CrossTenant-Id: {lead}tenant\n\n\
                 {lead}body https://www.landing-formula.top/a\n\n"
            )
            .as_bytes(),
        );
    }
    // Named relative to the working directory, so `source` cells start with the formula too.
    let names = ["=sum.mbox", "-dash.mbox", "+plus.mbox", "@at.mbox"];
    for name in names {
        std::fs::write(dir.path().join(name), &mbox).unwrap();
    }
    let o = bin()
        .current_dir(dir.path())
        .arg("scan")
        .arg("--received")
        .arg("--out")
        .arg(out.path())
        .arg("-q")
        .arg("--")
        .args(names)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut guarded_columns = std::collections::BTreeSet::new();
    let mut files = 0;
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "csv") {
            continue;
        }
        files += 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(&path)
            .unwrap();
        let mut header = Vec::new();
        for (n, rec) in r.records().enumerate() {
            let rec = rec.unwrap();
            if n == 0 {
                header = rec.iter().map(String::from).collect();
            }
            for (col, cell) in rec.iter().enumerate() {
                let live = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
                assert!(
                    !live || cell == "-" || cell.parse::<f64>().is_ok(),
                    "{name} row {n} column {}: live formula {cell:?}",
                    header.get(col).map_or("?", String::as_str)
                );
                if cell.starts_with('\'') {
                    guarded_columns.insert(format!("{name}:{}", header[col]));
                }
            }
        }
    }
    assert_eq!(
        files, 6,
        "messages, signatures, received, campaigns, campaign_evidence, timeline"
    );
    // The corpus really put formulas into the outputs: many columns of every CSV needed the guard.
    for (file, at_least) in [
        ("messages.csv", 10),
        ("signatures.csv", 3),
        ("received.csv", 5),
        ("campaigns.csv", 2),
    ] {
        let n = guarded_columns
            .iter()
            .filter(|c| c.starts_with(file))
            .count();
        assert!(
            n >= at_least,
            "{file}: only {n} guarded columns: {guarded_columns:?}"
        );
    }
}

/// Standard input is the source `-` (a lone minus is no formula), counted as one input file.
#[test]
fn standard_input_is_named_dash_and_counted_as_a_file() {
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args(["scan", "-", "--no-dkim", "-q", "--out"])
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = read(&sample_mbox());
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&data).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let r = rows(&out.path().join("messages.csv"));
    assert!(r.len() > 10);
    assert!(r.iter().all(|m| m["source"] == "-"), "{:?}", r[0]["source"]);
    assert_eq!(summary(out.path())["totals"]["files"], 1);
}

/// `--label NAME` names standard input's messages in the `source` column.
#[test]
fn standard_input_takes_the_name_given_with_label() {
    let out = tempfile::tempdir().unwrap();
    let mut child = bin()
        .args([
            "scan",
            "-",
            "--label",
            "day-2024-05-06.mbox.gz",
            "--no-dkim",
            "-q",
            "--out",
        ])
        .arg(out.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&read(&sample_mbox())).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let r = rows(&out.path().join("messages.csv"));
    assert!(
        r.iter().all(|m| m["source"] == "day-2024-05-06.mbox.gz"),
        "{:?}",
        r[0]["source"]
    );
}

/// A `Date:` that does not parse is kept as written in `date_raw`; one that parses, or none,
/// leaves it empty (so a missing date and a broken one can be told apart).
#[test]
fn an_unparseable_date_is_kept_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("dates.mbox");
    std::fs::write(
        &mbox,
        "From a@b Mon May  6 00:10:11 2024\nDate: Mon, 6 May 2024 00:10:11 +0000\nSubject: good\n\nx\n\n\
         From a@b Mon May  6 00:10:11 2024\nDate: the 32nd of Maytember,\n  year zero\nSubject: bad\n\nx\n\n\
         From a@b Mon May  6 00:10:11 2024\nSubject: none\n\nx\n",
    )
    .unwrap();
    let out = dir.path().join("o");
    scan_ok(&[mbox.as_os_str(), os("--no-dkim")], &out);
    let r = rows(&out.join("messages.csv"));
    let by_subject = |s: &str| r.iter().find(|m| m["subject"] == s).unwrap();
    assert_eq!(by_subject("good")["date_raw"], "");
    assert_ne!(by_subject("good")["date"], "");
    assert_eq!(by_subject("bad")["date"], "");
    assert_eq!(
        by_subject("bad")["date_raw"],
        "the 32nd of Maytember, year zero"
    );
    assert_eq!(by_subject("none")["date"], "");
    assert_eq!(by_subject("none")["date_raw"], "");
}

/// Shell completions and a manual page come from the command-line definition.
#[test]
fn completions_and_the_manual_page_are_generated() {
    let o = bin().args(["completions", "bash"]).output().unwrap();
    assert!(o.status.success());
    let script = String::from_utf8_lossy(&o.stdout);
    assert!(
        script.contains("complete") && script.contains("--keys"),
        "{script}"
    );
    assert!(script.contains("--max-message-mib") && script.contains("merge"));
    let o = bin().args(["completions", "zsh"]).output().unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("#compdef mailcensus")
    );
    let o = bin().arg("man").output().unwrap();
    assert!(o.status.success());
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(
        page.contains(".TH mailcensus") && page.contains("scan"),
        "{page}"
    );
}

/// `scan --help` groups its options by topic and ends with examples.
#[test]
fn scan_help_is_grouped_with_examples() {
    let o = bin().args(["scan", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for heading in [
        "Output:",
        "Reading:",
        "DKIM:",
        "Campaigns and relay abuse:",
        "Examples:",
    ] {
        assert!(help.contains(heading), "no {heading:?} in\n{help}");
    }
    let dkim = help.find("DKIM:").unwrap();
    assert!(help[dkim..].contains("--keys"), "--keys under DKIM");
}

/// A key file that holds no DKIM key (notes, the wrong file) stops the run (exit 2) naming it;
/// a key archive with a few lines that are not keys loads with a warning, and the summary lists
/// each key file with what it gave, and says how the verifier judged (`verify_at` as the flag
/// spells it).
#[test]
fn a_key_file_without_dkim_keys_is_refused_and_key_files_are_summarised() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "garbage line here\n").unwrap();
    let out = dir.path().join("o");
    let scan_with_keys = || {
        bin()
            .arg("scan")
            .arg(sample_mbox())
            .arg("--keys")
            .arg(&keys)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = scan_with_keys();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no usable DKIM key") && err.contains("keys.txt"),
        "{err}"
    );
    assert!(!out.join("summary.json").exists());

    std::fs::write(
        &keys,
        "s1._domainkey.example.com \"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC\"\ngarbage line here\n",
    )
    .unwrap();
    let o = scan_with_keys();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("do not look like DKIM keys"), "{err}");
    let s = summary(&out);
    assert_eq!(s["dkim"]["verify_at"], "receipt");
    let files = s["dkim"]["key_files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["records"], 2);
    assert_eq!(files[0]["usable"], 1);
}

/// The shipped trap's keys, rewritten as an archive.prove.email listing and as a mailauth DNS
/// cache (TXT records cut into two chunks), give the same verdicts as the zone file.
#[test]
fn keys_from_the_dkim_archive_and_mailauth_caches_verify_like_a_zone() {
    use mailcensus::auth::keys::KeyStore;
    let dir = tempfile::tempdir().unwrap();
    let zone = data_dir().join("generated-trap/keys.zone");
    let mut store = KeyStore::new();
    store.load_file(&zone).unwrap();
    let (mut listing, mut cache) = (Vec::new(), serde_json::Map::new());
    for (name, records) in store.iter() {
        let name = name.trim_end_matches('.');
        let (selector, domain) = name.split_once("._domainkey.").unwrap();
        let mut txt = Vec::new();
        for r in records {
            listing.push(serde_json::json!({
                "domain": domain, "selector": selector, "value": r.value,
                "firstSeenAt": "2024-01-01T00:00:00.000Z", "lastSeenAt": null,
            }));
            let cut = r.value.len() / 2;
            let cut = (cut..r.value.len())
                .find(|&i| r.value.is_char_boundary(i))
                .unwrap();
            txt.push(serde_json::json!([&r.value[..cut], &r.value[cut..]]));
        }
        cache.insert(name.to_string(), serde_json::json!({ "TXT": txt }));
    }
    assert!(listing.len() > 20);
    let prove = dir.path().join("prove.json");
    std::fs::write(&prove, serde_json::to_vec(&listing).unwrap()).unwrap();
    let mailauth = dir.path().join("dns-cache.json");
    std::fs::write(&mailauth, serde_json::to_vec(&cache).unwrap()).unwrap();
    let trap = data_dir().join("generated-trap/trap.mbox.zst");
    let verdicts = |keys: &Path, out: &str| {
        let out = dir.path().join(out);
        scan_ok(&[trap.as_os_str(), os("--keys"), keys.as_os_str()], &out);
        read(&out.join("signatures.csv"))
    };
    let from_zone = verdicts(&zone, "zone");
    assert!(String::from_utf8_lossy(&from_zone).contains(",pass,"));
    assert!(
        verdicts(&prove, "prove") == from_zone,
        "archive.prove.email listing"
    );
    assert!(
        verdicts(&mailauth, "mailauth") == from_zone,
        "mailauth DNS cache"
    );
}

#[test]
fn dkim_options_with_no_dkim_are_refused_not_ignored() {
    let out = tempfile::tempdir().unwrap();
    let keys = tempfile::NamedTempFile::new().unwrap();
    let o = scan(
        &[
            data_dir().join("mailbox-perl").as_os_str(),
            os("--no-dkim"),
            os("--keys"),
            keys.path().as_os_str(),
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--no-dkim") && err.contains("--keys"), "{err}");
    assert!(!out.path().join("summary.json").exists());
}

#[test]
fn a_run_without_dkim_says_how_relay_abuse_was_judged() {
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("scan")
        .arg(data_dir().join("mailbox-perl"))
        .args(["--no-dkim", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("DKIM was not verified (--no-dkim)"),
        "the end-of-run summary names what relay abuse was judged from: {err}"
    );
    // With DKIM verified (no keys: every signature no-key) the note is not printed.
    let out = tempfile::tempdir().unwrap();
    let o = bin()
        .arg("scan")
        .arg(data_dir().join("mailbox-perl"))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains("DKIM was not verified"));
}
