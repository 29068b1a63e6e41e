//! One answer whatever the read path: the streamed reader (small blocks, a small per-message cap,
//! bytes arriving a few at a time) gives the same items as the whole-data split a mapped file
//! gets, for any bytes. The check is the one `tests/read_paths.rs` runs.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/read_check.rs"]
mod read_check;

fuzz_target!(|input: &[u8]| {
    if let Some((streamed, mapped)) = read_check::streamed_and_mapped(input) {
        assert_eq!(streamed, mapped);
    }
});
