//! The whole per-message pipeline on any bytes: key records (the input's first line, as a key
//! file), then a message read through headers, Received classification, DKIM verification
//! against those keys, relay and campaign evidence, and its typed row.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mailcensus::auth::keys::KeyStore;
use mailcensus::auth::{Policy, Verifier};
use mailcensus::scan::{self, ScanOptions, UnitOutput};
use mailcensus::work::{Bytes, Item, Work};

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').map_or(0, |n| n + 1);
    let (keys, message) = data.split_at(split);
    let mut store = KeyStore::new();
    let _ = store.load_bytes_as(keys, "fuzz", mailcensus::auth::keys::Format::Lines);
    let Ok(verifier) = Verifier::new(&store, Policy::default()) else {
        return;
    };
    let opts = ScanOptions {
        dkim: Some(Arc::new(verifier)),
        now: 1_700_000_000,
        ..ScanOptions::default()
    };
    let mut out = UnitOutput::new(&opts);
    scan::run(
        Work::Messages {
            source: "fuzz".into(),
            data: Bytes::Owned(message.to_vec()),
            items: vec![Item::whole(message.len())],
        },
        &opts,
        &mut out,
    );
    assert_eq!(out.totals.messages, 1);
    assert_eq!(out.facts.facts.len(), 1, "one message's facts");
    assert_eq!(out.facts.facts[0].row_len as usize, out.spilled.len(), "one whole spilled row");
});
