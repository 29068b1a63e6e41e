//! `scripts/bench`, the benchmark a user runs on their own machine, on a small corpus: it runs
//! every tool and they agree on what they found (so its ratios compare the same work).

use std::process::Command;

/// The number after `label` in `text` (thousands separators allowed).
fn number_after(text: &str, label: &str) -> u64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        + label.len();
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {label:?}"))
}

#[test]
fn the_benchmark_script_runs_every_tool_and_they_agree() {
    let root = env!("CARGO_MANIFEST_DIR");
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/bench"))
        .args([
            "--messages",
            "400",
            "--seed",
            "3",
            "--runs",
            "1",
            "--procs",
            "2",
        ])
        .arg("--out")
        .arg(&work)
        .env("MAILCENSUS", env!("CARGO_BIN_EXE_mailcensus"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "mailcensus header census vs Python stdlib email (1 process):",
        "mailcensus full scan vs dkimpy (1 process):",
        "mailcensus full scan vs dkimpy (2 processes):",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
    // The tools did the same work: every message, every hop, every passing signature.
    let found = &stdout[stdout.find("what each tool found").expect("the check")..];
    let line_of = |what: &str| {
        found
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} line in:\n{found}"))
    };
    let mc_pass = number_after(line_of("DKIM signatures: mailcensus"), ", pass");
    assert!(mc_pass > 200, "{found}");
    for peer in ["dkimpy (1 process)", "dkimpy (2 processes)"] {
        let line = line_of(&format!("DKIM signatures: {peer}"));
        assert_eq!(number_after(line, ", pass"), mc_pass, "{line}");
    }
    for peer in [
        "Python stdlib email (1 process)",
        "Python stdlib email (2 processes)",
    ] {
        let line = line_of(&format!("messages: {peer}"));
        assert_eq!(number_after(line, peer), 400, "{line}");
        let hops = number_after(line, "400,");
        assert!(hops > 400, "{line}");
        assert_eq!(number_after(line, "(mailcensus"), hops, "{line}");
    }
}
