//! The mbox splitter on any bytes: entries are in order, within the data and contiguous from the
//! first entry on; planning in two pieces gives the whole split; a small entry cap ends oversize
//! entries where the streamed reader ends them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailcensus::input;
use mailcensus::split::{self, SplitLimits};

fuzz_target!(|data: &[u8]| {
    let _ = input::detect(data, true);
    let _ = input::detect(data, false);
    let cap = data.first().map_or(usize::MAX, |&b| 16 + 8 * usize::from(b));
    for limits in [
        SplitLimits::default(),
        SplitLimits {
            max_entry_bytes: cap,
            max_header_bytes: 64,
            ..SplitLimits::default()
        },
    ] {
        let whole = split::split_all(data, &limits);
        let mut at = None;
        for e in &whole {
            assert!(e.start <= e.end && e.end <= data.len(), "{e:?}");
            if let Some(prev) = at {
                assert_eq!(e.start, prev, "entries are contiguous");
            }
            at = Some(e.end);
        }
        if let Some(last) = whole.last() {
            assert_eq!(last.end, data.len(), "the split covers the data");
        }
        // Planned in two pieces (the streamed reader's way), the entries are the same.
        let Some(first) = split::first_entry(data) else {
            continue;
        };
        let cut = first + data.len().saturating_sub(first) / 2;
        let mut pieces = Vec::new();
        let p = split::plan_entries(&data[..cut], first, false, usize::MAX, &limits, &mut pieces);
        split::plan_entries(data, p.next, true, usize::MAX, &limits, &mut pieces);
        let from_first: Vec<_> = whole.into_iter().filter(|e| e.start >= first).collect();
        assert_eq!(pieces, from_first);
    }
});
