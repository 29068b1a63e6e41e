//! DKIM verification speed against the raw crypto, measured in the same run: raw aws-lc
//! RSA-2048 verifies per second (the ceiling) versus mailcensus verifying whole messages of an
//! RSA-2048-only generated corpus (1–2 signatures per signed message), on one thread and on all.
//! Run: `cargo bench --bench dkim`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailcensus::auth::keys::KeyStore;
use mailcensus::auth::{Policy, Verifier, wire_form};
use mailcensus::generate::{GenerateOptions, KeyKind, generate};
use mailcensus::split::{self, SplitLimits};
use rayon::prelude::*;

fn corpus() -> (Vec<Vec<u8>>, Verifier) {
    let dir = tempfile::tempdir().expect("temp dir");
    generate(&GenerateOptions {
        only: Some(KeyKind::Rsa2048),
        ..GenerateOptions::new(2_000, 11, dir.path().to_path_buf())
    })
    .expect("generate");
    let mbox = std::fs::read(dir.path().join("corpus.mbox")).expect("corpus");
    let mut store = KeyStore::new();
    store
        .load_file(&dir.path().join("keys.zone"))
        .expect("keys");
    let verifier = Verifier::new(&store, Policy::default()).expect("verifier");
    let wires = split::split_all(&mbox, &SplitLimits::default())
        .iter()
        .map(|e| {
            let (_, _, msg) = split::entry_message(&mbox, e);
            let mut buf = Vec::new();
            wire_form(msg, true, &mut buf).to_vec()
        })
        .collect();
    (wires, verifier)
}

fn benches(c: &mut Criterion) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair};
    let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa key");
    let msg = b"a DKIM header hash input of typical length ........................";
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        msg,
        &mut sig,
    )
    .expect("sign");
    let public = key.public_key().as_ref().to_vec();

    let mut g = c.benchmark_group("dkim");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline_raw_rsa2048_verify", |b| {
        b.iter(|| {
            signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public)
                .verify(msg, &sig)
                .is_ok()
        })
    });
    let (wires, verifier) = corpus();
    g.throughput(Throughput::Elements(wires.len() as u64));
    g.bench_function("messages_rsa2048_one_thread", |b| {
        b.iter(|| {
            wires
                .iter()
                .map(|w| verifier.verify(w, 1_714_953_908).len())
                .sum::<usize>()
        })
    });
    g.bench_function("messages_rsa2048_all_threads", |b| {
        b.iter(|| {
            wires
                .par_iter()
                .map(|w| verifier.verify(w, 1_714_953_908).len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(dkim_benches, benches);
criterion_main!(dkim_benches);
