//! The read-path differential, shared by the tests and the `stream` fuzz target: the items the
//! streamed reader makes of some bytes (small blocks, a small cap, a few bytes per read) and the
//! items the mapped path makes of the same bytes.

use std::io::Read;

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
pub type Shape = (u64, u64, ItemKind);

fn shape(item: &Item) -> Shape {
    (item.offset, item.length, item.kind)
}

/// `(streamed, mapped)` for `input`: its first byte sets the cap, the block size and the read
/// step, the rest is the data. `None` for compressed and tar bytes (a mapped file never holds
/// those: they are always streamed).
pub fn streamed_and_mapped(input: &[u8]) -> Option<(Vec<Shape>, Vec<Shape>)> {
    let (&knobs, data) = input.split_first()?;
    let wrapped = input::sniff(&data[..data.len().min(input::SNIFF_BYTES)]);
    if wrapped.is_compressed() || wrapped == Format::Tar {
        return None;
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
    // The mapped path: detection on the window of the first `cap` bytes, then the whole split.
    let mapped = match input::detect(&data[..data.len().min(cap)], true) {
        Format::Mbox => split::split_all(data, &limits.split)
            .iter()
            .map(|e| shape(&Item::from_entry(e, 0).within(cap)))
            .collect(),
        Format::Message => vec![shape(&Item::whole(data.len()).within(cap))],
        // Empty data is a message that lost its bytes; other non-mail is skipped.
        Format::NotMail if data.is_empty() => vec![shape(&Item::whole(0))],
        _ => Vec::new(),
    };
    Some((streamed, mapped))
}
