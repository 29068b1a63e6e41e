//! Campaigns and relay abuse over whole runs: generated corpora with known campaigns (seeds not
//! used while building the method), the dkimpy trap's EchoSpoofing-shaped wave, phishing-pot
//! facts read by hand, and old corpora that must raise no relay-abuse flag.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;

fn generate(out: &Path, messages: usize, seed: u64) {
    generate_with(out, messages, seed, &[]);
}

/// `mailcensus generate` with extra options (wave shape, platform share).
fn generate_with(out: &Path, messages: usize, seed: u64, options: &[&str]) {
    let o = bin()
        .args(["generate", "-q", "--messages"])
        .arg(messages.to_string())
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--out")
        .arg(out)
        .args(options)
        .output()
        .expect("run mailcensus generate");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// One CSV row, by column name.
type Row = HashMap<String, String>;

fn pairs(n: usize) -> u64 {
    (n as u64) * (n as u64).saturating_sub(1) / 2
}

/// Pairwise precision and recall of a grouping against the truth; `-` is in no group.
fn pairwise(truth: &[&str], found: &[&str]) -> (f64, f64) {
    let mut t: HashMap<&str, usize> = HashMap::new();
    let mut f: HashMap<&str, usize> = HashMap::new();
    let mut both: HashMap<(&str, &str), usize> = HashMap::new();
    for (a, b) in truth.iter().zip(found) {
        if *a != "-" {
            *t.entry(a).or_default() += 1;
        }
        if *b != "-" {
            *f.entry(b).or_default() += 1;
        }
        if *a != "-" && *b != "-" {
            *both.entry((a, b)).or_default() += 1;
        }
    }
    let tp: u64 = both.values().map(|&n| pairs(n)).sum();
    let fp_base: u64 = f.values().map(|&n| pairs(n)).sum();
    let fn_base: u64 = t.values().map(|&n| pairs(n)).sum();
    (
        tp as f64 / fp_base.max(1) as f64,
        tp as f64 / fn_base.max(1) as f64,
    )
}

/// Generate a corpus, scan it with its keys, and check the grouping and the relay-abuse flags
/// against the generator's truth: pairwise precision and recall at least `min_p` and `min_r`,
/// relay abuse exact, every wave exactly one campaign holding nothing else, the brands' own
/// mail never in a wave's campaign, and campaigns.csv and summary.json describing the waves.
fn check_generated(messages: usize, seed: u64, options: &[&str], min_p: f64, min_r: f64) {
    let g = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate_with(g.path(), messages, seed, options);
    scan_ok(
        &[
            g.path().join("corpus.mbox").as_os_str(),
            os("--keys"),
            g.path().join("keys.zone").as_os_str(),
        ],
        out.path(),
    );
    let truth = rows(&g.path().join("messages-truth.csv"));
    let found = rows(&out.path().join("messages.csv"));
    assert_eq!(truth.len(), found.len());
    let by_offset: HashMap<&str, &HashMap<String, String>> = found
        .iter()
        .map(|r| (r["entry_offset"].as_str(), r))
        .collect();
    let pairs_of: Vec<(&Row, &Row)> = truth
        .iter()
        .map(|t| (t, by_offset[t["mbox_offset"].as_str()]))
        .collect();
    let t_camp: Vec<&str> = pairs_of
        .iter()
        .map(|(t, _)| t["campaign"].as_str())
        .collect();
    let f_camp: Vec<&str> = pairs_of
        .iter()
        .map(|(_, f)| f["campaign"].as_str())
        .collect();
    let (mut tp, mut fp, mut fneg) = (0u32, 0u32, 0u32);
    for (t, f) in &pairs_of {
        match (t["echospoof"] == "true", f["relay_abuse"] == "true") {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fneg += 1,
            _ => {}
        }
    }
    let (p, r) = pairwise(&t_camp, &f_camp);
    let label = format!("{messages} messages, seed {seed}, {options:?}");
    eprintln!(
        "{label}: grouping pairwise precision {p:.4} recall {r:.4}; relay abuse {tp} found, {fp} false, {fneg} missed"
    );
    assert!(tp > 100, "{label}: the corpus has relay-abuse waves");
    assert!(p >= min_p && r >= min_r, "{label}: grouping {p:.4}/{r:.4}");
    assert_eq!((fp, fneg), (0, 0), "{label}: relay abuse");

    // Every wave is one campaign, and that campaign is only the wave.
    let mut found_of: HashMap<&str, std::collections::BTreeSet<&str>> = HashMap::new();
    let mut truth_of: HashMap<&str, std::collections::BTreeSet<&str>> = HashMap::new();
    for (t, f) in t_camp.iter().zip(&f_camp) {
        found_of.entry(t).or_default().insert(f);
        truth_of.entry(f).or_default().insert(t);
    }
    let waves: Vec<&str> = found_of
        .keys()
        .copied()
        .filter(|t| t.starts_with("echo-"))
        .collect();
    assert!(!waves.is_empty());
    let campaigns = rows(&out.path().join("campaigns.csv"));
    let by_id: HashMap<&str, &HashMap<String, String>> = campaigns
        .iter()
        .map(|c| (c["campaign"].as_str(), c))
        .collect();
    for wave in &waves {
        let ids = &found_of[wave];
        assert_eq!(ids.len(), 1, "{label}: {wave} is split: {ids:?}");
        let id = *ids.iter().next().unwrap();
        assert_ne!(id, "-", "{label}: {wave} is in no campaign");
        assert_eq!(
            truth_of[id].iter().collect::<Vec<_>>(),
            [wave],
            "{label}: {wave}'s campaign {id} holds other mail"
        );
        let c = by_id[id];
        assert_eq!(c["kind"], "relay-abuse-wave", "{label}: {c:?}");
        assert_eq!(c["relay_abuse_share"], "1.000", "{label}: {c:?}");
        let brands: usize = c["brands"].parse().unwrap();
        let named = c["top_brands"].split(' ').count();
        assert_eq!(brands, named, "{label}: {c:?}");
        let senders: std::collections::BTreeSet<&str> = pairs_of
            .iter()
            .filter(|(t, _)| t["campaign"] == *wave)
            .map(|(t, _)| t["from_domain"].as_str())
            .collect();
        assert_eq!(brands, senders.len(), "{label}: {c:?}");
        let tenants: std::collections::BTreeSet<&str> = pairs_of
            .iter()
            .filter(|(t, _)| t["campaign"] == *wave)
            .map(|(_, f)| f["tenant_id"].as_str())
            .collect();
        assert_eq!(c["tenants"], tenants.len().to_string(), "{label}: {c:?}");
    }
    // The brands' own mail through their own tenants is never relay abuse, and never in a wave.
    for (t, f) in &pairs_of {
        if t["campaign"].starts_with("legit-") {
            assert_eq!(f["relay_abuse"], "false", "{t:?}");
            assert!(f["relay_abuse_reasons"].contains("seg-after-m365"), "{f:?}");
            if f["campaign"] != "-" {
                assert!(
                    !truth_of[f["campaign"].as_str()]
                        .iter()
                        .any(|x| x.starts_with("echo-")),
                    "{label}: {t:?} is in a wave's campaign"
                );
            }
        }
    }
    // campaigns.csv agrees with the per-message ids; summary.json names every wave apart.
    for c in &campaigns {
        let n = f_camp.iter().filter(|&&x| x == c["campaign"]).count();
        assert_eq!(c["messages"], n.to_string(), "{c:?}");
    }
    let listed = summary(out.path())["campaigns"]["waves"]
        .as_array()
        .expect("summary.json campaigns.waves")
        .len();
    assert_eq!(listed, waves.len(), "{label}");
    let timeline = rows(&out.path().join("timeline.csv"));
    let total: u64 = timeline
        .iter()
        .map(|r| r["messages"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        total,
        truth.len() as u64,
        "every message is on the timeline"
    );
}

/// Seeds here were never used while the method was built or tuned.
#[test]
fn generated_campaigns_and_relay_abuse_are_found() {
    for seed in [7_001u64, 90_210] {
        check_generated(6_000, seed, &[], 0.99, 0.98);
    }
}

/// Waves spoofing five brands from twelve tenants, with 15% of all mail (waves, campaigns,
/// one-off spam, the brands' own mail) linking to three shared platforms no built-in list names.
#[test]
fn five_brand_waves_are_one_campaign_each_and_platforms_join_nothing() {
    let shape = [
        "--wave-brands",
        "5",
        "--wave-tenants",
        "12",
        "--platform-share",
        "0.15",
    ];
    for seed in [424_242u64, 8_675_309, 31_415_926] {
        check_generated(6_000, seed, &shape, 0.99, 0.98);
    }
}

/// Shapes well past the defaults: up to six brands, forty tenants, four injector networks,
/// eight waves, six rotating landing domains, and 40% of all mail linking to the platforms.
#[test]
fn wave_shapes_far_from_the_defaults_are_grouped() {
    let wide = [
        "--waves",
        "8",
        "--wave-brands",
        "1-6",
        "--wave-tenants",
        "1-40",
        "--wave-nets",
        "1-4",
        "--wave-landings",
        "1-6",
        "--platform-share",
        "0.4",
    ];
    check_generated(8_000, 5_551_212, &wide, 0.99, 0.98);
    check_generated(4_000, 1_234_567, &["--platform-share", "0"], 0.99, 0.98);
}

/// A trap of 50,000 messages: six-brand waves from forty tenants and four networks.
#[test]
fn a_fifty_thousand_message_trap_is_grouped_as_well() {
    let shape = [
        "--wave-brands",
        "6",
        "--wave-tenants",
        "40",
        "--wave-nets",
        "4",
        "--platform-share",
        "0.15",
    ];
    check_generated(50_000, 27_182_818, &shape, 0.99, 0.98);
}

#[test]
fn campaign_outputs_do_not_depend_on_threads() {
    let g = tempfile::tempdir().unwrap();
    generate(g.path(), 1_500, 31_337);
    let runs: Vec<tempfile::TempDir> = ["1", "2", "3"]
        .iter()
        .map(|threads| {
            let out = tempfile::tempdir().unwrap();
            scan_ok(
                &[
                    g.path().join("corpus.mbox").as_os_str(),
                    os("--keys"),
                    g.path().join("keys.zone").as_os_str(),
                    os("--threads"),
                    os(threads),
                ],
                out.path(),
            );
            out
        })
        .collect();
    for file in [
        "messages.csv",
        "campaigns.csv",
        "timeline.csv",
        "timeline.svg",
    ] {
        let first = std::fs::read(runs[0].path().join(file)).unwrap();
        assert!(first.len() > 100, "{file} is not empty");
        for r in &runs[1..] {
            assert!(
                std::fs::read(r.path().join(file)).unwrap() == first,
                "{file} differs between thread counts"
            );
        }
    }
}

/// Campaign ids depend on the evidence, not on the order the mail is read in: the corpus cut in
/// two halves and scanned as (first, second) and as (second, first) puts every message in the
/// same campaign, and campaigns.csv holds the same campaigns.
#[test]
fn campaigns_do_not_depend_on_input_order() {
    let g = tempfile::tempdir().unwrap();
    generate_with(
        g.path(),
        3_000,
        60_601,
        &["--wave-brands", "3-5", "--platform-share", "0.2"],
    );
    let mbox = std::fs::read(g.path().join("corpus.mbox")).unwrap();
    // Cut at a message boundary near the middle (a `From ` line after a blank line).
    let cut = memchr::memmem::find_iter(&mbox, b"\n\nFrom ")
        .find(|&i| i > mbox.len() / 2)
        .unwrap()
        + 2;
    let (first, second) = (g.path().join("a.mbox"), g.path().join("b.mbox"));
    std::fs::write(&first, &mbox[..cut]).unwrap();
    std::fs::write(&second, &mbox[cut..]).unwrap();
    let by_message = |inputs: [&Path; 2]| {
        let out = tempfile::tempdir().unwrap();
        scan_ok(&[inputs[0].as_os_str(), inputs[1].as_os_str()], out.path());
        let campaigns: HashMap<String, String> = rows(&out.path().join("messages.csv"))
            .into_iter()
            .map(|r| (r["message_id"].clone(), r["campaign"].clone()))
            .collect();
        let mut listed: Vec<(String, String)> = rows(&out.path().join("campaigns.csv"))
            .into_iter()
            .map(|c| (c["campaign"].clone(), c["messages"].clone()))
            .collect();
        listed.sort();
        (campaigns, listed)
    };
    let (forward, forward_list) = by_message([&first, &second]);
    let (backward, backward_list) = by_message([&second, &first]);
    assert_eq!(forward.len(), 3_000);
    assert!(forward.values().filter(|c| *c != "-").count() > 1_000);
    assert_eq!(forward, backward);
    assert_eq!(forward_list, backward_list);
}

#[test]
fn no_campaigns_leaves_the_columns_empty_and_writes_no_campaign_files() {
    let g = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(g.path(), 200, 5);
    scan_ok(
        &[
            g.path().join("corpus.mbox").as_os_str(),
            os("--no-campaigns"),
            os("--no-dkim"),
        ],
        out.path(),
    );
    let found = rows(&out.path().join("messages.csv"));
    assert_eq!(found.len(), 200);
    assert!(
        found
            .iter()
            .all(|r| r["campaign"].is_empty() && r["relay_abuse"].is_empty())
    );
    assert!(!out.path().join("campaigns.csv").exists());
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "no scratch files left: {names:?}"
    );
}

/// Without DKIM verification the trap's recorded Authentication-Results stand in for ours.
#[test]
fn relay_abuse_without_dkim_uses_the_recorded_verdicts() {
    let g = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    generate(g.path(), 1_500, 4_242);
    scan_ok(
        &[g.path().join("corpus.mbox").as_os_str(), os("--no-dkim")],
        out.path(),
    );
    let truth = rows(&g.path().join("messages-truth.csv"));
    let found = rows(&out.path().join("messages.csv"));
    let flagged = found.iter().filter(|r| r["relay_abuse"] == "true").count();
    let echo = truth.iter().filter(|r| r["echospoof"] == "true").count();
    assert!(echo > 50);
    assert_eq!(flagged, echo);
    assert!(
        found
            .iter()
            .filter(|r| r["relay_abuse"] == "true")
            .all(|r| r["relay_abuse_reasons"].contains("recorded-dkim-pass"))
    );
}

#[test]
fn dkimpy_trap_relay_abuse_is_its_pphosted_wave() {
    let Some(c) = corpora() else { return };
    let dir = c.join("dkimpy-signed-trap");
    let out = tempfile::tempdir().unwrap();
    scan_ok(
        &[
            dir.join("corpus.mbox").as_os_str(),
            os("--keys"),
            dir.join("keys.zone").as_os_str(),
            os("--received"),
        ],
        out.path(),
    );
    let messages = rows(&out.path().join("messages.csv"));
    let flagged: Vec<_> = messages
        .iter()
        .filter(|r| r["relay_abuse"] == "true")
        .collect();
    // Read from the file: 460 messages reach the trap from mx0a/mx0b-*.pphosted.com after
    // *.outbound.protection.outlook.com, signed by nike/coca-cola/ibm.example, each with an
    // attacker tenant `*.onmicrosoft.com` in X-OriginatorOrg.
    assert_eq!(flagged.len(), 460);
    for r in &flagged {
        assert!(r["relay_path"].contains(".pphosted.com"), "{r:?}");
        assert!(
            ["nike.example", "coca-cola.example", "ibm.example"]
                .contains(&r["from_domain"].as_str()),
            "{r:?}"
        );
        assert!(r["tenant_domain"].ends_with(".onmicrosoft.com"), "{r:?}");
        assert!(r["relay_abuse_reasons"].contains("foreign-tenant"), "{r:?}");
        assert_ne!(r["campaign"], "-");
    }
    // The Nike wave and the Coca-Cola/IBM wave use different tenants, networks and landing
    // hosts: two campaigns, not one.
    let camp = |brand: &str| -> Vec<&str> {
        let mut v: Vec<&str> = flagged
            .iter()
            .filter(|r| r["from_domain"] == brand)
            .map(|r| r["campaign"].as_str())
            .collect();
        v.dedup();
        v
    };
    assert_eq!(camp("nike.example").len(), 1);
    assert_ne!(camp("nike.example"), camp("ibm.example"));
    // Hops are classified in received.csv.
    let hops = rows(&out.path().join("received.csv"));
    assert!(
        hops.iter()
            .any(|h| h["by_class"] == "seg" && h["from_class"] == "m365-outbound")
    );
    assert!(hops.iter().any(|h| h["by_class"] == "m365-frontend"));
}

#[test]
fn old_corpora_have_no_relay_abuse_and_no_giant_campaign() {
    let Some(c) = corpora() else { return };
    for dir in [
        "spamassassin-public",
        "trec07p-sample",
        "nazario-phishing-mbox",
    ] {
        let out = tempfile::tempdir().unwrap();
        scan_ok(&[c.join(dir).as_os_str()], out.path());
        let messages = rows(&out.path().join("messages.csv"));
        assert!(
            messages.iter().all(|r| r["relay_abuse"] == "false"),
            "{dir}: relay abuse flagged in pre-2024 mail"
        );
        let mut sizes: HashMap<&str, usize> = HashMap::new();
        for r in &messages {
            if r["campaign"] != "-" {
                *sizes.entry(r["campaign"].as_str()).or_default() += 1;
            }
        }
        let largest = sizes.values().copied().max().unwrap_or(0);
        eprintln!(
            "{dir}: {} messages, {} campaigns holding {}, largest {largest}",
            messages.len(),
            sizes.len(),
            sizes.values().sum::<usize>()
        );
        assert!(
            largest * 5 < messages.len(),
            "{dir}: one campaign holds {largest} of {} messages",
            messages.len()
        );
    }
}

/// Facts read by hand from the phishing-pot sample (delivered to Outlook.com mailboxes, so the
/// X-MS-Exchange-CrossTenant-Id on most messages is the receiving tenant's).
#[test]
fn phishing_pot_tenants_and_first_external_ips() {
    let Some(c) = corpora() else { return };
    let out = tempfile::tempdir().unwrap();
    scan_ok(&[c.join("phishing-pot-sample").as_os_str()], out.path());
    let messages = rows(&out.path().join("messages.csv"));
    let by_file: HashMap<String, &HashMap<String, String>> = messages
        .iter()
        .map(|r| (r["source"].rsplit('/').next().unwrap().to_string(), r))
        .collect();
    // file, sending tenant, tenant domain, first external IP
    let cases = [
        // VPS straight into Outlook.com: only the receiving stamp (AuthAs Anonymous, Internet).
        ("sample-1.eml", "", "", "137.184.34.4"),
        // Attacker tenant via the high-risk pool; the tenant is in the receiving side's
        // OriginalAttributedTenantConnectingIp, its domain in that field's Helo=[...].
        (
            "sample-1695.eml",
            "cba1030d-af07-487f-8f7b-30d91dbfbfeb",
            "corbett485.onmicrosoft.com",
            "40.95.78.166",
        ),
        (
            "sample-7098.eml",
            "772f1099-bc2b-4797-9c22-94594494461f",
            "san19784407.onmicrosoft.com",
            "23.81.33.39",
        ),
        (
            "sample-4611.eml",
            "db3ec142-1ce5-455d-9906-4d3ceb9e977f",
            "lindt.onmicrosoft.com",
            "4.207.110.32",
        ),
        // A forged `from unrs.pphosted.com` HELO: not a gateway hop.
        ("sample-2508.eml", "", "", "91.219.63.195"),
        // Sent out of Outlook.com (AuthAs Internal): the stamp is the sender's; the
        // X-OriginatorOrg placeholder `*.templateTenant` is no domain.
        (
            "sample-241.eml",
            "84df9e7f-e9f6-40af-b435-aaaaaaaaaaaa",
            "",
            "2603:10b6:806:e5::23",
        ),
        ("sample-830.eml", "", "", "146.70.173.157"),
        ("sample-1161.eml", "", "", "202.53.148.17"),
    ];
    for (file, tenant, domain, ip) in cases {
        let r = by_file[file];
        assert_eq!(r["tenant_id"], tenant, "{file}");
        assert_eq!(r["tenant_domain"], domain, "{file}");
        assert_eq!(r["origin_ip"], ip, "{file}");
    }
    assert!(by_file["sample-1695.eml"]["relay_abuse_reasons"].contains("hrdp-ip"));
    assert!(!by_file["sample-2508.eml"]["relay_abuse_reasons"].contains("seg-after-m365"));
    assert!(messages.iter().all(|r| r["relay_abuse"] == "false"));
    // The receiving tenant is on 575 messages and must not become anyone's campaign key.
    let receiving = messages
        .iter()
        .filter(|r| r["tenant_id"] == "84df9e7f-e9f6-40af-b435-aaaaaaaaaaaa")
        .count();
    assert!(
        receiving < 5,
        "{receiving} messages still carry the receiving tenant"
    );
}
