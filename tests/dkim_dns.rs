//! Live DNS against a real server on loopback (Knot, started by .ci/run with the dkimpy trap's
//! key zone; address in MAILCENSUS_TEST_DNS): live results equal offline ones, `--keys-out` then
//! `--keys` reproduces them, and a server that does not answer gives `temperror`, not a hang.

mod common;

use common::*;
use std::path::PathBuf;

/// The loopback DNS server's address. Missing: a loud skip locally, a failure under CI.
fn dns_server() -> Option<String> {
    match std::env::var("MAILCENSUS_TEST_DNS") {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ if std::env::var_os("CI").is_some() => {
            panic!("MAILCENSUS_TEST_DNS is not set: .ci/run must start the DNS server")
        }
        _ => {
            eprintln!(
                "\n!!! SKIPPED: no DNS server (set MAILCENSUS_TEST_DNS=ADDR:PORT; .ci/run starts one with .ci/dns-server.sh).\n"
            );
            None
        }
    }
}

/// CI never skips: the live-DNS tests above must be compiled in (not ignored) there.
#[test]
fn under_ci_the_live_dns_tests_run() {
    if std::env::var_os("CI").is_some() {
        let built_with_it = cfg!(mailcensus_test_dns);
        assert!(
            built_with_it,
            "MAILCENSUS_TEST_DNS was not set when the tests were built: .ci/run must start the DNS server first"
        );
    }
}

fn trap() -> Option<PathBuf> {
    corpora().map(|c| c.join("dkimpy-signed-trap"))
}

#[test]
#[cfg_attr(
    not(mailcensus_test_dns),
    ignore = "no DNS server: set MAILCENSUS_TEST_DNS=ADDR:PORT when building the tests (.ci/run starts one with .ci/dns-server.sh)"
)]
fn live_dns_equals_offline_and_keys_out_reproduces_it() {
    let (Some(dir), Some(server)) = (trap(), dns_server()) else {
        return;
    };
    let mbox = dir.join("corpus.mbox");
    let offline = tempfile::tempdir().unwrap();
    scan_ok(
        &[
            mbox.as_os_str(),
            os("--keys"),
            dir.join("keys.zone").as_os_str(),
        ],
        offline.path(),
    );
    let live = tempfile::tempdir().unwrap();
    let fetched = live.path().join("fetched-keys.txt");
    scan_ok(
        &[
            mbox.as_os_str(),
            os("--dns"),
            os(&server),
            os("--keys-out"),
            fetched.as_os_str(),
        ],
        live.path(),
    );
    for f in ["signatures.csv", "messages.csv"] {
        let a = std::fs::read(offline.path().join(f)).unwrap();
        let b = std::fs::read(live.path().join(f)).unwrap();
        assert!(a == b, "{f}: live DNS differs from the offline key store");
    }
    // The fetched records (and the names that did not exist) replay offline.
    let replay = tempfile::tempdir().unwrap();
    scan_ok(
        &[mbox.as_os_str(), os("--keys"), fetched.as_os_str()],
        replay.path(),
    );
    for f in ["signatures.csv", "messages.csv"] {
        let a = std::fs::read(live.path().join(f)).unwrap();
        let b = std::fs::read(replay.path().join(f)).unwrap();
        assert!(
            a == b,
            "{f}: --keys-out then --keys differs from the live run"
        );
    }
    let text = std::fs::read_to_string(&fetched).unwrap();
    assert!(
        text.contains("NXDOMAIN"),
        "absent selectors are recorded as NXDOMAIN"
    );
}

#[test]
#[cfg_attr(
    not(mailcensus_test_dns),
    ignore = "no DNS server: set MAILCENSUS_TEST_DNS=ADDR:PORT when building the tests (.ci/run starts one with .ci/dns-server.sh)"
)]
fn a_server_that_does_not_answer_gives_temperror() {
    if dns_server().is_none() {
        return;
    }
    // Signed mail from the shipped sample; nothing answers DNS on 127.0.0.1:9.
    let input = data_dir();
    let out = tempfile::tempdir().unwrap();
    let keys_out = out.path().join("archived-keys.txt");
    let started = std::time::Instant::now();
    scan_ok(
        &[
            input.as_os_str(),
            os("--dns"),
            os("127.0.0.1:9"),
            os("--dns-timeout-ms"),
            os("300"),
            os("--keys-out"),
            keys_out.as_os_str(),
        ],
        out.path(),
    );
    // Not a speed test: a hang guard, far above timeout × batches.
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    let sigs = rows(&out.path().join("signatures.csv"));
    // RFC 6376 §6.1: the key is judged before the body hash, so a changed body cannot say more
    // than the failed lookup; only unusable signatures (permerror) never reach a lookup.
    // rsa-sha1 signatures are permerror whatever the lookup gives (RFC 8301), with the
    // lookup's outcome in detail.
    let looked_up: Vec<_> = sigs.iter().filter(|s| s["result"] != "permerror").collect();
    assert!(
        sigs.iter()
            .filter(|s| s["a"] == "rsa-sha1" && !s["c"].is_empty())
            .all(|s| s["detail"].ends_with("otherwise temperror")),
        "{sigs:?}"
    );
    assert!(
        looked_up.len() >= 3,
        "the sample has DKIM signatures: {sigs:?}"
    );
    for s in &looked_up {
        assert_eq!(s["result"], "temperror", "{s:?}");
    }
    // The archived keys replay the failures offline: the same verdicts without the network.
    let archived = std::fs::read_to_string(&keys_out).unwrap();
    assert!(archived.contains(" TIMEOUT\n"), "{archived}");
    let offline = tempfile::tempdir().unwrap();
    scan_ok(
        &[input.as_os_str(), os("--keys"), keys_out.as_os_str()],
        offline.path(),
    );
    let replayed = rows(&offline.path().join("signatures.csv"));
    let verdicts = |r: &[std::collections::HashMap<String, String>]| -> Vec<String> {
        r.iter().map(|s| s["result"].clone()).collect()
    };
    assert_eq!(verdicts(&replayed), verdicts(&sigs));
}
