//! What campaign grouping and relay-abuse detection cost: whole scans (DKIM off) with and without
//! them, in the same run, so the ratio can be quoted. The scan without campaigns is the baseline.
//!
//! Corpora: a generated trap with campaigns and EchoSpoofing waves (`mailcensus generate`,
//! 20,000 messages), and the dkimpy trap from ../shared repeated five times (20,000 messages)
//! when ../shared is present. Run: `cargo bench --bench campaigns`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailcensus::classify::rules::Rules;
use mailcensus::generate::{GenerateOptions, generate};
use mailcensus::scan::{ScanOptions, scan};

fn corpora(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let generated = dir.join("generated");
    generate(&GenerateOptions::new(20_000, 4242, generated.clone())).expect("generate a corpus");
    let mut list = vec![("generated_20k", generated.join("corpus.mbox"))];
    let trap = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpora/dkimpy-signed-trap/corpus.mbox");
    match std::fs::read(&trap) {
        Ok(one) => {
            let five = dir.join("trap-x5.mbox");
            std::fs::write(&five, one.repeat(5)).expect("write the repeated trap");
            list.push(("dkimpy_trap_x5", five));
        }
        Err(e) => eprintln!(
            "benches: {} unreadable ({e}); only the generated corpus is measured",
            trap.display()
        ),
    }
    list
}

fn run(input: &Path, out: &Path, campaigns: bool) -> u64 {
    let opts = ScanOptions {
        campaigns: campaigns.then(|| Arc::new(Rules::builtin())),
        ..ScanOptions::default()
    };
    let report = scan(&[input.to_path_buf()], out, &opts, &mut |_| {}, &|_| {
        b"{}\n".to_vec()
    })
    .expect("scan");
    report.totals.messages
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    for (name, input) in corpora(dir.path()) {
        let bytes = std::fs::metadata(&input).map_or(0, |m| m.len());
        let mut g = c.benchmark_group(name);
        g.sample_size(20);
        g.throughput(Throughput::Bytes(bytes));
        let out = dir.path().join(format!("out-{name}"));
        g.bench_function("baseline_scan_no_campaigns", |b| {
            b.iter(|| run(&input, &out, false))
        });
        g.bench_function("scan_with_campaigns", |b| {
            b.iter(|| run(&input, &out, true))
        });
        g.finish();
    }
}

criterion_group!(campaign_benches, benches);
criterion_main!(campaign_benches);
