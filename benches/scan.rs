//! Benchmarks of the scan stages on one large mbox, each against a baseline measured in the same
//! run: a bare SIMD count of `\nFrom ` (what `rg -c '^From '` does, the floor for any splitter).
//!
//! The mbox is the real corpora in ../shared concatenated (repeated to ~128 MB), or the shipped
//! sample repeated when ../shared is absent. Run: `cargo bench --bench scan`.

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailcensus::aggregate::Totals;
use mailcensus::headers::{HeaderLimits, Headers, parse_headers};
use mailcensus::message::{Facts, ReadOptions, Reader};
use mailcensus::output::Formats;
use mailcensus::scan::{ScanOptions, UnitOutput};
use mailcensus::split::{self, SplitLimits};
use mailcensus::work::Item;
use rayon::prelude::*;

const TARGET_BYTES: usize = 128 << 20;

fn corpus() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/corpora");
    let parts: Vec<std::path::PathBuf> = if shared.is_dir() {
        vec![
            shared.join("dkimpy-signed-trap/corpus.mbox"),
            shared.join("nazario-phishing-mbox/phishing0.mbox"),
            shared.join("nazario-phishing-mbox/20051114.mbox"),
        ]
    } else {
        eprintln!("benches: ../shared/corpora not found; using the shipped sample only");
        vec![root.join("data/mailbox-perl/mbox.src")]
    };
    let mut one = Vec::new();
    for p in parts {
        let mut d = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if !d.ends_with(b"\n\n") {
            d.extend_from_slice(b"\n");
        }
        one.extend_from_slice(&d);
    }
    let mut all = Vec::with_capacity(TARGET_BYTES + one.len());
    while all.len() < TARGET_BYTES {
        all.extend_from_slice(&one);
    }
    all
}

fn items(data: &[u8]) -> Vec<Item> {
    split::split_all(data, &SplitLimits::default())
        .iter()
        .map(|e| Item::from_entry(e, 0))
        .collect()
}

fn benches(c: &mut Criterion) {
    let data = corpus();
    let all = items(&data);
    eprintln!("benches: {} MB, {} messages", data.len() >> 20, all.len());
    let mut g = c.benchmark_group("mbox");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(data.len() as u64));

    g.bench_function("baseline_memmem_count_from_lines", |b| {
        b.iter(|| memchr::memmem::find_iter(&data, b"\nFrom ").count())
    });
    g.bench_function("split", |b| {
        b.iter(|| split::split_all(&data, &SplitLimits::default()).len())
    });
    g.bench_function("split_and_headers", |b| {
        let limits = HeaderLimits::default();
        b.iter(|| {
            let mut h = Headers::default();
            let mut n = 0usize;
            for e in split::split_all(&data, &SplitLimits::default()) {
                let (_, _, msg) = split::entry_message(&data, &e);
                if parse_headers(msg, &limits, &mut h).is_ok() {
                    n += h.received.len();
                }
            }
            n
        })
    });
    // Messages read into typed records and encoded as rows, in one format at a time.
    let rows = |formats: Formats, items: &[Item]| {
        let opts = ScanOptions {
            formats,
            campaigns: None,
            ..ScanOptions::default()
        };
        let mut out = UnitOutput::new(&opts);
        let mut reader = Reader::new(ReadOptions::default(), None, None, 0);
        let (mut totals, mut facts) = (Totals::default(), Facts::default());
        for it in items {
            if reader.read("bench.mbox", &data, it, &mut totals, &mut facts) {
                out.add(&reader.message, false);
            }
        }
        out.messages.csv.len()
            + out
                .messages
                .parquet
                .as_mut()
                .map_or(0, |b| b.take().num_rows())
    };
    g.bench_function("rows_one_thread", |b| {
        b.iter(|| rows(Formats::default(), &all))
    });
    let parquet = Formats {
        csv: false,
        parquet: true,
        jsonl: false,
    };
    g.bench_function("rows_parquet_batches_one_thread", |b| {
        b.iter(|| rows(parquet, &all))
    });
    g.bench_function("rows_all_threads", |b| {
        b.iter(|| {
            all.par_chunks(512)
                .map(|chunk| rows(Formats::default(), chunk))
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(scan_benches, benches);
criterion_main!(scan_benches);
