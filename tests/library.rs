//! The library: typed records handed to the caller's sink are the rows `scan` writes, and a
//! sink can stop a scan.

mod common;

use std::path::PathBuf;

use common::*;
use mailcensus::schema::MESSAGE_COLUMNS;
use mailcensus::{Message, ScanOptions, Value, scan_messages};

#[test]
fn records_handed_to_a_sink_are_the_rows_scan_writes() {
    let inputs = vec![data_dir().join("mailbox-perl"), data_dir()];
    let opts = ScanOptions::builder()
        .threads(2)
        .campaigns(None)
        .build()
        .unwrap();
    let mut records: Vec<Message> = Vec::new();
    let totals = scan_messages(&inputs, &opts, &mut |m: &Message| {
        records.push(m.clone());
        true
    })
    .unwrap();
    assert_eq!(totals.messages as usize, records.len());
    assert!(records.len() > 100, "{} records", records.len());

    let out = tempfile::tempdir().unwrap();
    let args: Vec<&std::ffi::OsStr> = inputs
        .iter()
        .map(|p| p.as_os_str())
        .chain([os("--no-campaigns"), os("--no-dkim"), os("--raw-cells")])
        .collect();
    scan_ok(&args, out.path());
    let rows = rows(&out.path().join("messages.csv"));
    assert_eq!(rows.len(), records.len());
    for (m, row) in records.iter().zip(&rows) {
        for c in MESSAGE_COLUMNS {
            let mut cell = Vec::new();
            mailcensus::output::csv::write_value(&mut cell, (c.get)(m), true);
            // The CSV reader gives back the cell's text; an unquoted cell is its bytes.
            let cell = String::from_utf8(cell).unwrap();
            let cell = match (c.get)(m) {
                Value::Text(t) | Value::List(t) => t.to_string(),
                _ => cell,
            };
            if c.name == "dkim" || c.name == "dmarc_aligned" {
                continue; // verified by the sink's run (no --no-dkim there), not by this one
            }
            assert_eq!(
                row[c.name], cell,
                "{} of {}:{}",
                c.name, m.source, m.entry_offset
            );
        }
    }
}

#[test]
fn a_sink_can_stop_the_scan() {
    let inputs: Vec<PathBuf> = vec![data_dir()];
    let opts = ScanOptions::builder().threads(2).build().unwrap();
    let mut seen = 0;
    let _ = scan_messages(&inputs, &opts, &mut |_: &Message| {
        seen += 1;
        seen < 5
    });
    assert_eq!(seen, 5, "no message after the sink said stop");
}

#[test]
fn options_that_cannot_work_are_refused() {
    assert!(ScanOptions::builder().max_header_bytes(0).build().is_err());
    assert!(ScanOptions::builder().max_message_bytes(0).build().is_err());
    let opts = ScanOptions::builder()
        .max_header_bytes(4096)
        .max_message_bytes(1 << 20)
        .build()
        .unwrap();
    // One limit, set once, reaches every stage that applies it.
    assert_eq!(opts.read.header_limits.max_header_bytes, 4096);
    assert_eq!(opts.stream.split.max_header_bytes, 4096);
    assert_eq!(opts.stream.max_message_bytes, 1 << 20);
    assert_eq!(opts.stream.split.max_entry_bytes, 1 << 20);
}
