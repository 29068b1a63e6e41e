//! One answer whatever the read path: the streamed reader (small blocks, a small per-message cap,
//! bytes arriving a few at a time) gives the same items as the whole-data split a mapped file
//! gets, for any bytes.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use mailcensus::input::stream::{self, StreamLimits};
use mailcensus::input::{self, Format};
use mailcensus::split;
use mailcensus::work::{Item, ItemKind, Work};

/// A reader that hands out at most `step` bytes per read, as a pipe or a decompressor does.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a row is made of: where the item is and what it is (its bytes come from the same input).
fn shape(item: &Item) -> (u64, u64, ItemKind) {
    (item.offset, item.length, item.kind)
}

fuzz_target!(|input: &[u8]| {
    let Some((&knobs, data)) = input.split_first() else {
        return;
    };
    // Compressed and tar bytes are unwrapped by the stream (a mapped file is never those).
    let wrapped = input::sniff(&data[..data.len().min(input::SNIFF_BYTES)]);
    if wrapped.is_compressed() || wrapped == Format::Tar {
        return;
    }
    let cap = 32 + 16 * usize::from(knobs & 0x0f);
    let limits = StreamLimits {
        block_bytes: 16 + 8 * usize::from(knobs >> 4),
        ..StreamLimits::default()
    }
    .with_max_message(cap);
    let mut streamed = Vec::new();
    let mut reader = Trickle {
        data,
        step: 1 + usize::from(knobs % 7),
    };
    stream::read_stream(&mut reader, &"x".into(), 0, &limits, false, &mut |w| {
        if let Work::Messages { items, .. } = w {
            streamed.extend(items.iter().map(|i| shape(&i.within(cap))));
        }
        true
    });
    // The mapped path: the same detection on the same window, then the whole-data split.
    let mapped: Vec<_> = match input::detect(&data[..data.len().min(cap)], true) {
        Format::Mbox => split::split_all(data, &limits.split)
            .iter()
            .map(|e| shape(&Item::from_entry(e, 0).within(cap)))
            .collect(),
        Format::Message => vec![shape(&Item::whole(data.len()).within(cap))],
        // Empty data is a message that lost its bytes; other non-mail is skipped.
        Format::NotMail if data.is_empty() => vec![shape(&Item::whole(0))],
        _ => Vec::new(),
    };
    assert_eq!(streamed, mapped);
});
