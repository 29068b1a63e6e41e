//! The answer does not depend on how the bytes reach the scan: where a file starts (an mbox cut at
//! any byte, a junk or broken first line, a header-first file), how it is read (mapped, streamed
//! with `--no-mmap`, standard input, gzip, tar) and which per-message limits apply.

mod common;

use common::read_check::streamed_and_mapped;
use common::*;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use mailcensus::input::{self, Format};
use mailcensus::split::{self, EntryKind, SplitLimits};
use proptest::prelude::*;

/// The real mboxes the cut property runs on: the shipped sample always, the public phishing
/// archive when the corpora are there.
fn real_mboxes() -> Vec<PathBuf> {
    let mut v = vec![data_dir().join("mailbox-perl/mbox.src")];
    if let Some(c) = corpora() {
        v.push(c.join("nazario-phishing-mbox/phishing0.mbox"));
    }
    v
}

/// The messages of a whole split that start at or after `cut`, in the cut piece's offsets.
fn messages_from(entries: &[split::Entry], cut: usize) -> Vec<(usize, usize)> {
    entries
        .iter()
        .filter(|e| e.kind == EntryKind::Message && e.start >= cut)
        .map(|e| (e.start - cut, e.end - cut))
        .collect()
}

/// Check one cut of `data`: the piece is an mbox, and every message that starts at or after the
/// cut is an entry of the piece with the same extent.
fn check_cut(data: &[u8], whole: &[split::Entry], cut: usize) -> Result<(), TestCaseError> {
    let piece = &data[cut..];
    let want = messages_from(whole, cut);
    if want.is_empty() {
        return Ok(());
    }
    let cap = 64 << 20;
    prop_assert_eq!(
        input::detect(&piece[..piece.len().min(cap)], true),
        Format::Mbox,
        "cut at {} not recognised as an mbox",
        cut
    );
    let got: Vec<(usize, usize)> = split::split_all(piece, &SplitLimits::default())
        .iter()
        .filter(|e| e.kind == EntryKind::Message)
        .map(|e| (e.start, e.end))
        .collect();
    // The cut message's tail may hold an envelope line of its own (a quoted one); everything
    // from the first whole message on must be exactly the whole split's.
    let from = got.iter().position(|m| *m == want[0]);
    prop_assert!(
        from.is_some(),
        "cut at {}: first whole message {:?} not found",
        cut,
        want[0]
    );
    prop_assert_eq!(&got[from.unwrap()..], &want[..], "cut at {}", cut);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// An mbox cut at any byte (a slice of an archive, a `split -b` part, a recovered image)
    /// loses only the message the cut went through.
    #[test]
    fn every_message_after_any_cut_of_a_real_mbox_is_found(which in 0usize..2, at in any::<prop::sample::Index>()) {
        let paths = real_mboxes();
        let data = read(&paths[which % paths.len()]);
        let whole = split::split_all(&data, &SplitLimits::default());
        check_cut(&data, &whole, at.index(data.len()))?;
    }
}

/// Around every boundary of the real mboxes, byte by byte: the cuts most likely to go wrong.
#[test]
fn cuts_next_to_every_boundary_lose_nothing_after_them() {
    for path in real_mboxes() {
        let data = read(&path);
        let whole = split::split_all(&data, &SplitLimits::default());
        assert!(whole.len() > 40, "{}", path.display());
        for e in whole.iter().take(120) {
            for cut in e.start.saturating_sub(3)..(e.start + 8).min(data.len()) {
                check_cut(&data, &whole, cut).unwrap();
            }
        }
    }
}

/// Files whose first bytes used to hide an mbox: each is read as an mbox with every message.
#[test]
fn an_mbox_is_read_whatever_its_first_line() {
    let sample = read(&data_dir().join("mailbox-perl/mbox.src"));
    let dir = tempfile::tempdir().unwrap();
    let full = tempfile::tempdir().unwrap();
    let plain = dir.path().join("sample.mbox");
    std::fs::write(&plain, &sample).unwrap();
    scan_ok(&[plain.as_os_str(), os("--no-dkim")], full.path());
    let n = rows(&full.path().join("messages.csv")).len();
    assert!(n >= 40);
    let second = split::split_all(&sample, &SplitLimits::default())[1].start;
    let cases: [(&str, Vec<u8>, usize, &str); 4] = [
        // One junk line right before the first envelope line.
        (
            "junk",
            [&b"junk line\n"[..], &sample].concat(),
            n + 1,
            "truncated",
        ),
        // An envelope line without a date, its message, then the mbox.
        (
            "nodate",
            [&b"From nobody\nSubject: no date\n\nbody\n\n"[..], &sample].concat(),
            n + 1,
            "",
        ),
        // A header-first message, then the mbox.
        (
            "headerfirst",
            [
                &b"Subject: first\nFrom: a@b.example\n\nbody\n\n"[..],
                &sample,
            ]
            .concat(),
            n + 1,
            "",
        ),
        // Cut in the middle of the first message.
        ("cut", sample[second / 2..].to_vec(), n, "truncated"),
    ];
    for (name, bytes, messages, first_malformed) in cases {
        let path = dir.path().join(format!("{name}.mbox"));
        std::fs::write(&path, &bytes).unwrap();
        let out = tempfile::tempdir().unwrap();
        scan_ok(&[path.as_os_str(), os("--no-dkim")], out.path());
        let r = rows(&out.path().join("messages.csv"));
        assert_eq!(r.len(), messages, "{name}");
        assert_eq!(r[0]["malformed"], first_malformed, "{name}");
        assert!(r[1..].iter().all(|m| m["malformed"].is_empty()), "{name}");
        assert_eq!(
            summary(out.path())["skipped"],
            serde_json::json!([]),
            "{name}"
        );
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
    b.into_inner().unwrap()
}

/// Rows of one file scanned five ways: mapped, `--no-mmap`, standard input, gzip and tar.
fn scan_five_ways(path: &Path, args: &[&OsStr]) -> Vec<(&'static str, Vec<Vec<String>>)> {
    let data = read(path);
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("input.gz");
    std::fs::write(&gz, gzip(&data)).unwrap();
    let tar = dir.path().join("input.tar");
    std::fs::write(&tar, tar_of("input", &data)).unwrap();
    let mut out = Vec::new();
    for (how, input, extra) in [
        ("mapped", path.as_os_str(), None),
        ("no-mmap", path.as_os_str(), Some("--no-mmap")),
        ("gzip", gz.as_os_str(), None),
        ("tar", tar.as_os_str(), None),
    ] {
        let o = tempfile::tempdir().unwrap();
        let mut a = vec![input];
        a.extend(extra.map(os));
        a.extend_from_slice(args);
        scan_ok(&a, o.path());
        out.push((how, rows_without_source(o.path())));
    }
    let o = tempfile::tempdir().unwrap();
    let mut child = bin()
        .arg("scan")
        .arg("-")
        .args(args)
        .arg("--out")
        .arg(o.path())
        .arg("-q")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(&data);
    });
    assert!(
        child.wait().unwrap().success(),
        "stdin scan of {}",
        path.display()
    );
    feeder.join().unwrap();
    out.push(("stdin", rows_without_source(o.path())));
    out
}

/// An mbox built to hit every limit and every odd start: a junk first line, a message over a
/// 1 MiB cap, a header block over 64 KiB, a multipart message holding an mbox, a trusted
/// Content-Length, a final message without a line end.
fn adversarial_mbox(sample: &[u8]) -> Vec<u8> {
    let mut m = b"junk before the first envelope line\n".to_vec();
    m.extend_from_slice(sample);
    m.extend_from_slice(b"\nFrom big@x.example Tue May  7 01:00:00 2024\nSubject: big\n\n");
    for i in 0..60_000 {
        m.extend_from_slice(format!("line {i} of a long body\n").as_bytes());
    }
    m.extend_from_slice(b"\nFrom wide@x.example Tue May  7 02:00:00 2024\n");
    for i in 0..2_000 {
        m.extend_from_slice(format!("X-Filler-{i}: {}\n", "v".repeat(30)).as_bytes());
    }
    m.extend_from_slice(b"Subject: wide header\n\nbody\n");
    m.extend_from_slice(b"\nFrom mime@x.example Tue May  7 03:00:00 2024\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n\nFrom inner@x.example Tue May  7 03:00:01 2024\nSubject: inner\n\n--B--\n");
    m.extend_from_slice(b"\nFrom cl@x.example Tue May  7 04:00:00 2024\nContent-Length: 46\nSubject: counted\n\nFrom here on the body is counted, not read.\n\n");
    m.extend_from_slice(
        b"\nFrom last@x.example Tue May  7 05:00:00 2024\nSubject: last\n\nno line end",
    );
    m
}

/// Mapped, streamed, standard input, gzip and tar give the same rows for the same bytes, with
/// the default limits and with small ones that every oversize message crosses.
#[test]
fn one_answer_whatever_the_read_path() {
    let sample = read(&data_dir().join("mailbox-perl/mbox.src"));
    let dir = tempfile::tempdir().unwrap();
    let gen_dir = dir.path().join("generated");
    let o = bin()
        .args([
            "generate",
            "-q",
            "--messages",
            "400",
            "--seed",
            "99173",
            "--out",
        ])
        .arg(&gen_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let adversarial = dir.path().join("adversarial.mbox");
    std::fs::write(&adversarial, adversarial_mbox(&sample)).unwrap();
    // One message over the small cap, on its own (a whole file, not an mbox entry).
    let big_message = dir.path().join("big.eml");
    let mut big = b"Subject: one big message\nFrom: a@b.example\n\n".to_vec();
    big.resize(1_600_000, b'x');
    std::fs::write(&big_message, &big).unwrap();
    let mut inputs = vec![
        (adversarial, None),
        (big_message, None),
        (gen_dir.join("corpus.mbox"), Some(gen_dir.join("keys.zone"))),
    ];
    if let Some(c) = corpora() {
        inputs.push((c.join("nazario-phishing-mbox/20051114.mbox"), None));
    }
    let small: [&OsStr; 4] = [
        os("--max-message-mib"),
        os("1"),
        os("--max-header-kib"),
        os("64"),
    ];
    for (path, keys) in &inputs {
        let mut base: Vec<&OsStr> = match keys {
            Some(k) => vec![os("--keys"), k.as_os_str()],
            None => vec![os("--no-dkim")],
        };
        for limits in [&[][..], &small[..]] {
            let mut args = base.clone();
            args.extend_from_slice(limits);
            let ways = scan_five_ways(path, &args);
            let (_, want) = &ways[0];
            assert!(!want.is_empty(), "{}", path.display());
            for (how, got) in &ways[1..] {
                assert!(
                    got == want,
                    "{} read {how} differs from mapped (limits {limits:?}): {} vs {} rows; first difference {:?}",
                    path.display(),
                    got.len(),
                    want.len(),
                    got.iter().zip(want).find(|(g, w)| g != w)
                );
            }
        }
        base.clear();
    }
}

/// The limits bite as documented, on the path that used to ignore them: a mapped file.
#[test]
fn limits_apply_to_mapped_files() {
    let sample = read(&data_dir().join("mailbox-perl/mbox.src"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("adversarial.mbox");
    std::fs::write(&path, adversarial_mbox(&sample)).unwrap();
    let out = tempfile::tempdir().unwrap();
    scan_ok(
        &[
            path.as_os_str(),
            os("--no-dkim"),
            os("--max-message-mib"),
            os("1"),
            os("--max-header-kib"),
            os("64"),
        ],
        out.path(),
    );
    let r = rows(&out.path().join("messages.csv"));
    let malformed: Vec<&str> = r.iter().map(|m| m["malformed"].as_str()).collect();
    assert_eq!(malformed[0], "truncated", "the junk line");
    assert_eq!(malformed.iter().filter(|m| **m == "too-large").count(), 1);
    assert_eq!(
        malformed
            .iter()
            .filter(|m| **m == "header-too-large")
            .count(),
        1
    );
    let big = r.iter().find(|m| m["malformed"] == "too-large").unwrap();
    assert!(
        big["subject"].is_empty(),
        "a too-large message keeps no cells"
    );
    assert!(big["length"].parse::<u64>().unwrap() > 1 << 20);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The streamed reader (small blocks, a small cap, a few bytes per read) and the mapped
    /// path make the same items of mbox-like bytes (the `stream` fuzz target runs this on
    /// anything).
    #[test]
    fn streamed_and_mapped_reads_agree(knobs in any::<u8>(), pieces in proptest::collection::vec(
        prop_oneof![
            Just(&b"From a@b Mon May  6 00:10:11 2024\n"[..]),
            Just(&b"Subject: x\n"[..]),
            Just(&b"Content-Length: 12\n"[..]),
            Just(&b"Content-Type: multipart/mixed; boundary=B\n"[..]),
            Just(&b"--B\n"[..]),
            Just(&b"--B--\n"[..]),
            Just(&b"\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"body text of some length, more than a few bytes\n"[..]),
            Just(&b"From the desk of\n"[..]),
            Just(&b"\x00\x01"[..]),
        ],
        0..40,
    )) {
        let input = [&[knobs][..], &pieces.concat()].concat();
        if let Some((streamed, mapped)) = streamed_and_mapped(&input) {
            prop_assert_eq!(streamed, mapped);
        }
    }
}

/// Inputs the fuzzer found where the read paths disagreed, kept as cases.
#[test]
fn fuzz_regressions_of_the_read_paths() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/stream");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (streamed, mapped) = streamed_and_mapped(&read(&path)).unwrap();
        assert_eq!(streamed, mapped, "{}", path.display());
        n += 1;
    }
    assert!(n >= 1);
}
