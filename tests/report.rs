//! `report.html`, `campaign_evidence`, the explaining columns (`from_org`, `landing_domains`),
//! `key_sha256` and `missing_keys.txt`, on the shipped trap and on hand-made hostile mail; and
//! the report opened in a real browser (headless Chromium).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The README's run command, into `out`.
fn scan_shipped_trap(out: &Path) {
    let keys = data_dir().join("generated-trap/keys.zone");
    scan_ok(
        &[data_dir().as_os_str(), os("--keys"), keys.as_os_str()],
        out,
    );
}

fn text(path: &Path) -> String {
    String::from_utf8(read(path)).unwrap()
}

#[test]
fn the_report_shows_the_waves_campaigns_and_dkim_and_loads_nothing() {
    let out = tempfile::tempdir().unwrap();
    scan_shipped_trap(out.path());
    let page = text(&out.path().join("report.html"));
    let s = summary(out.path());
    // Self-contained: no script, style, image or frame from anywhere else.
    for outside in ["src=", "href=", "@import", "url("] {
        assert!(!page.contains(outside), "report loads {outside}");
    }
    for section in [
        "Relay abuse by spoofed brand",
        "Mail over time",
        "Largest campaigns",
        "DKIM results by signing domain",
        "Malformed and unreadable input",
    ] {
        assert!(page.contains(section), "no section {section:?}");
    }
    // Every wave, with its brands, and the largest campaigns are on the page.
    for wave in s["campaigns"]["waves"].as_array().unwrap() {
        assert!(page.contains(wave["campaign"].as_str().unwrap()), "{wave}");
        for brand in wave["brands"].as_array().unwrap() {
            assert!(page.contains(brand.as_str().unwrap()), "brand {brand}");
        }
    }
    for c in s["campaigns"]["largest"].as_array().unwrap() {
        assert!(page.contains(c["campaign"].as_str().unwrap()), "{c}");
    }
    // The relay abuse spans about three months: weekly bars, one legend entry per brand.
    assert!(page.contains("per week (from Monday)"));
    let relay = s["campaigns"]["relay_abuse"].as_u64().unwrap();
    assert!(page.contains(&format!("{} relay-abuse messages", group(relay))));
    // The DKIM table names the signing domains with their passes.
    let passes = s["dkim"]["signatures_by_result"]["pass"].as_u64().unwrap();
    assert!(page.contains(&format!("{} / ", group(passes))));
    let sigs = rows(&out.path().join("signatures.csv"));
    let top = most_common(sigs.iter().map(|r| r["d"].to_ascii_lowercase()));
    assert!(page.contains(&format!("<code>{top}</code>")), "{top}");
    // The same corpus gives the same page on one thread.
    let one = tempfile::tempdir().unwrap();
    let keys = data_dir().join("generated-trap/keys.zone");
    scan_ok(
        &[
            data_dir().as_os_str(),
            os("--keys"),
            keys.as_os_str(),
            os("--threads"),
            os("1"),
        ],
        one.path(),
    );
    assert!(read(&one.path().join("report.html")) == page.as_bytes());
}

/// The /24 or /48 of an address, as a researcher writes it.
fn network(ip: &str) -> Option<String> {
    match ip.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            Some(format!("{net}/48"))
        }
    }
}

/// `1,234` as the report writes counts.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn most_common(values: impl Iterator<Item = String>) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for v in values {
        *counts.entry(v).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .unwrap()
        .0
}

#[test]
fn campaign_evidence_explains_every_campaign_by_what_its_messages_carry() {
    let out = tempfile::tempdir().unwrap();
    scan_shipped_trap(out.path());
    let messages = rows(&out.path().join("messages.csv"));
    let campaigns = rows(&out.path().join("campaigns.csv"));
    let evidence = rows(&out.path().join("campaign_evidence.csv"));
    assert!(!evidence.is_empty());
    // Every campaign is explained; every row names a campaign that exists.
    let ids: std::collections::BTreeSet<&str> =
        campaigns.iter().map(|c| c["campaign"].as_str()).collect();
    let explained: std::collections::BTreeSet<&str> =
        evidence.iter().map(|e| e["campaign"].as_str()).collect();
    assert_eq!(ids, explained);
    let mut kinds = std::collections::BTreeSet::new();
    for e in &evidence {
        kinds.insert(e["kind"].as_str());
        // Oracle: count the campaign's messages that carry the value, from messages.csv.
        let members = messages.iter().filter(|m| m["campaign"] == e["campaign"]);
        let value = e["value"].as_str();
        let carried = members
            .filter(|m| match e["kind"].as_str() {
                "landing_domain" => m["landing_domains"].split(' ').any(|d| d == value),
                "tenant" => m["tenant_id"]
                    .trim_matches(['{', '}'])
                    .eq_ignore_ascii_case(value),
                "origin_network" => network(&m["origin_ip"]).is_some_and(|net| net == value),
                // The mailing-list samples: the list id is not a column; its campaigns are
                // checked by their count alone.
                "mailing_list" => true,
                other => panic!("unknown kind {other}"),
            })
            .count();
        let n: usize = e["messages"].parse().unwrap();
        if e["kind"] == "mailing_list" {
            assert!(n >= 2 && n <= carried, "{e:?}");
        } else {
            assert_eq!(n, carried, "{e:?}");
        }
        assert!(n >= 2, "a key in one message links nothing: {e:?}");
    }
    for kind in ["landing_domain", "tenant", "origin_network", "mailing_list"] {
        assert!(kinds.contains(kind), "no {kind} evidence: {kinds:?}");
    }
    // from_org is the brand the relay-abuse wave spoofed: what top_brands counts.
    for c in campaigns.iter().filter(|c| c["kind"] == "relay-abuse-wave") {
        for item in c["top_brands"].split(' ') {
            let (brand, count) = item.rsplit_once(':').unwrap();
            let n = messages
                .iter()
                .filter(|m| m["campaign"] == c["campaign"] && m["from_org"] == brand)
                .count();
            assert_eq!(n.to_string(), count, "{brand} in {}", c["campaign"]);
        }
    }
    // Mailing-list mail (a List-Id in its header) is keyed by its list, not by its links.
    let mut lists = 0;
    for m in messages
        .iter()
        .filter(|m| m["source"].contains("notmuch-lkml"))
    {
        let raw = read(Path::new(&m["source"]));
        let header_end = raw
            .windows(2)
            .position(|w| w == b"\n\n")
            .unwrap_or(raw.len());
        let header = String::from_utf8_lossy(&raw[..header_end]).to_ascii_lowercase();
        if header.contains("\nlist-id:") {
            lists += 1;
            assert!(m["landing_domains"].is_empty(), "{m:?}");
        }
    }
    assert!(lists > 100, "{lists} list messages");
}

#[test]
fn signatures_name_the_key_that_verified_and_missing_keys_are_listed_in_full() {
    let out = tempfile::tempdir().unwrap();
    scan_shipped_trap(out.path());
    let zone = text(&data_dir().join("generated-trap/keys.zone"));
    let sigs = rows(&out.path().join("signatures.csv"));
    let mut checked = 0;
    for sig in sigs.iter().filter(|s| s["result"] == "pass").take(50) {
        // Oracle: the key's p= in the zone file, decoded and hashed by hand.
        let name = format!("{}._domainkey.{}.", sig["s"], sig["d"]);
        let p = zone_key(&zone, &name).unwrap_or_else(|| panic!("no key {name}"));
        assert_eq!(sig["key_sha256"], sha256_hex(&base64(&p)), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 50);
    for sig in sigs.iter().filter(|s| s["result"] == "no-key") {
        assert!(sig["key_sha256"].is_empty(), "{sig:?}");
    }
    let missing = text(&out.path().join("missing_keys.txt"));
    let listed: Vec<&str> = missing.lines().collect();
    let mut want: Vec<String> = sigs
        .iter()
        .filter(|s| s["result"] == "no-key")
        .map(|s| format!("{}._domainkey.{}.", s["s"], s["d"]).to_ascii_lowercase())
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(listed, want);
    let s = summary(out.path());
    assert_eq!(s["dkim"]["key_names_missing"], listed.len());
}

/// The p= of `name`'s TXT record in a zone file (quoted strings joined).
fn zone_key(zone: &str, name: &str) -> Option<String> {
    let line = zone.lines().find(|l| {
        l.split_whitespace()
            .next()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    })?;
    let joined: String = line.split('"').skip(1).step_by(2).collect();
    let p = joined
        .split(';')
        .map(str::trim)
        .find_map(|t| t.strip_prefix("p="))?;
    Some(p.chars().filter(|c| !c.is_whitespace()).collect())
}

/// Standard base64, decoded without a library (the oracle does not share the tool's decoder).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text.as_bytes().iter().filter(|&&c| c != b'=') {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// SHA-256 by the system's `sha256sum`.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum (coreutils)");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Three messages of one campaign (one landing domain, one network) whose subject and From try
/// to inject markup and script into the report.
fn hostile_mbox(dir: &Path) -> PathBuf {
    let mut mbox = String::new();
    for i in 0..3 {
        mbox.push_str(&format!(
            "From x@evil.example Mon May  6 00:1{i}:00 2024\n\
             Received: from vps (vps.example [203.0.113.{i}]) by mx.trap.example; Mon, 6 May 2024 00:1{i}:00 +0000\n\
             From: \"<b>boss</b>\" <a{i}@evil\"><script>.example>\n\
             Subject: <script>document.title='pwned'</script><img src=x onerror=\"alert(1)\">\n\
             Message-ID: <{i}@evil.example>\n\n\
             Go to http://landing-{}.example/<script>x</script>\n\n",
            "z"
        ));
    }
    let path = dir.join("hostile.mbox");
    std::fs::write(&path, mbox).unwrap();
    path
}

#[test]
fn the_report_escapes_what_the_mail_says() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = hostile_mbox(dir.path());
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[mbox.as_os_str()], out.path());
    let page = text(&out.path().join("report.html"));
    assert!(page.contains("landing-z.example"), "the campaign is shown");
    assert!(page.contains("&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;"));
    assert!(!page.contains("<script>document"));
    assert!(!page.contains("<img"));
    // Only the report's own script.
    assert_eq!(page.matches("<script>").count(), 1);
}

/// Headless Chromium, as CI installs it (Debian `chromium`); its path in MAILCENSUS_TEST_BROWSER.
fn browser() -> Option<PathBuf> {
    let path = std::env::var_os("MAILCENSUS_TEST_BROWSER").filter(|p| !p.is_empty())?;
    Some(PathBuf::from(path))
}

/// Open `page` in headless Chromium: the DOM after the page's script ran, and what the browser
/// logged (console messages among it).
fn open_in_browser(browser: &Path, page: &Path, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", browser.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[cfg_attr(
    not(mailcensus_test_browser),
    ignore = "no browser: install Debian's chromium and set MAILCENSUS_TEST_BROWSER=/usr/bin/chromium when building the tests"
)]
fn the_report_loads_in_a_real_browser_without_script_errors() {
    let Some(chromium) = browser() else {
        if std::env::var_os("CI").is_some() {
            panic!("MAILCENSUS_TEST_BROWSER is not set: .ci/run must install chromium");
        }
        eprintln!("\n!!! SKIPPED: MAILCENSUS_TEST_BROWSER is not set (a headless Chromium).\n");
        return;
    };
    let out = tempfile::tempdir().unwrap();
    scan_shipped_trap(out.path());
    let page = out.path().join("report.html");
    let (dom, log) = open_in_browser(&chromium, &page, &["--dump-dom"]);
    // The page's script ran to its end, and nothing went to the console.
    assert!(dom.contains("data-report-ready=\"yes\""), "{log}");
    assert!(!log.contains("CONSOLE"), "console messages: {log}");
    assert!(dom.contains("Relay abuse by spoofed brand"));
    // Sorting is wired: every sortable heading got a click handler without error (the script
    // reached its last line above); the charts are in the DOM as SVG.
    assert!(dom.matches("<svg class=\"chart\"").count() >= 2);
    // A picture of it, for a person to look at (kept under target/).
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.png");
    let _ = std::fs::remove_file(&png);
    let (_, log) = open_in_browser(
        &chromium,
        &page,
        &[
            "--hide-scrollbars",
            "--window-size=1280,2400",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let picture = read(&png);
    assert!(picture.starts_with(b"\x89PNG\r\n\x1a\n"), "{log}");
    assert!(
        picture.len() > 50_000,
        "a near-empty page: {} bytes",
        picture.len()
    );
    eprintln!("report rendered to {}", png.display());

    // Hostile mail: its markup stays text in the browser, the title is the report's own.
    let dir = tempfile::tempdir().unwrap();
    let mbox = hostile_mbox(dir.path());
    let hostile = tempfile::tempdir().unwrap();
    scan_ok(&[mbox.as_os_str()], hostile.path());
    let (dom, log) = open_in_browser(
        &chromium,
        &hostile.path().join("report.html"),
        &["--dump-dom"],
    );
    assert!(dom.contains("<title>mailcensus report</title>"), "{dom}");
    assert!(dom.contains("data-report-ready=\"yes\""), "{log}");
    assert!(!log.contains("CONSOLE"), "console messages: {log}");
}

/// CI never skips: the browser test above must be compiled in (not ignored) there.
#[test]
fn under_ci_the_browser_test_runs() {
    if std::env::var_os("CI").is_some() {
        let built_with_it = cfg!(mailcensus_test_browser);
        assert!(
            built_with_it,
            "MAILCENSUS_TEST_BROWSER was not set when the tests were built: .ci/run must install chromium first"
        );
    }
}

/// The README's DuckDB queries, run as a newcomer would right after the README's run command:
/// each gives rows, and the first agrees with the run's relay-abuse count.
#[test]
fn the_readme_queries_answer_on_the_run_commands_output() {
    if !duckdb() {
        return;
    }
    let readme = text(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let start = readme.find("```sql\n").expect("a sql block in the README") + 7;
    let sql = &readme[start..start + readme[start..].find("```").unwrap()];
    let queries: Vec<String> = sql
        .split(';')
        .map(|q| {
            q.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty())
        .collect();
    assert_eq!(queries.len(), 4, "{sql}");
    let work = tempfile::tempdir().unwrap();
    scan_shipped_trap(&work.path().join("results"));
    let script = r#"
import duckdb, json, sys
out = [duckdb.sql(q).fetchall() for q in json.loads(sys.argv[1])]
print(json.dumps([[len(rows), sum(r[2] for r in rows) if i == 0 else 0] for i, rows in enumerate(out)]))
"#;
    let o = Command::new("python3")
        .current_dir(work.path())
        .args(["-c", script])
        .arg(serde_json::to_string(&queries).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let answers: Vec<(u64, u64)> = serde_json::from_slice(&o.stdout).unwrap();
    for (q, (rows, _)) in queries.iter().zip(&answers) {
        assert!(*rows > 0, "no rows from {q}");
    }
    let relay = summary(&work.path().join("results"))["campaigns"]["relay_abuse"]
        .as_u64()
        .unwrap();
    // Relay abuse per day and brand sums to every relay-abuse message with a receipt time.
    assert!(
        answers[0].1 <= relay && answers[0].1 + 5 >= relay,
        "{answers:?} vs {relay}"
    );
}

#[test]
fn without_dkim_or_campaigns_the_report_says_what_was_not_done() {
    let out = tempfile::tempdir().unwrap();
    scan_ok(
        &[
            data_dir().as_os_str(),
            os("--no-dkim"),
            os("--no-campaigns"),
        ],
        out.path(),
    );
    let page = text(&out.path().join("report.html"));
    assert!(page.contains("Not decided in this run"), "campaigns off");
    assert!(page.contains("DKIM was not verified in this run"));
    assert!(!page.contains("<svg class=\"chart\""));
    // What was read is still reported: the skipped README files and the malformed message.
    assert!(page.contains("Malformed and unreadable input"));
    assert!(page.contains("not-mail"), "skipped inputs by reason");
    let s = summary(out.path());
    let messages = s["totals"]["messages"].as_u64().unwrap();
    assert!(page.contains(&format!("{} messages from", group(messages))));
}
