//! CSV: rows as RFC 4180 text, with the spreadsheet formula guard.
//!
//! Takes a row's typed [`Value`]s and gives one CSV line. Text cells that a spreadsheet would run
//! as a formula get a leading `'` unless `--raw-cells`; numbers, times, addresses and words the
//! tool makes itself are never changed.

use crate::classify::push_ip;
use crate::headers::date;
use crate::schema::Value;

use super::is_formula_like;

/// Append one row of `values` and its line end.
pub fn write_row<'v>(out: &mut Vec<u8>, values: impl IntoIterator<Item = Value<'v>>, raw: bool) {
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, value, raw);
    }
    out.push(b'\n');
}

/// One cell.
#[inline]
pub fn write_value(out: &mut Vec<u8>, value: Value<'_>, raw: bool) {
    match value {
        Value::Text(s) | Value::List(s) => write_text_cell(out, s.as_bytes(), raw),
        Value::Int(n) => {
            if let Some(n) = n {
                push_u64(out, n);
            }
        }
        Value::Bool(b) => {
            if let Some(b) = b {
                out.extend_from_slice(if b { b"true" } else { b"false" });
            }
        }
        Value::Time(t) => {
            if let Some(t) = t {
                date::write_rfc3339(t, out);
            }
        }
        Value::Day(d) => {
            if let Some(d) = d {
                let (y, m, d) = date::civil_from_days(d);
                use std::io::Write as _;
                let _ = write!(out, "{y:04}-{m:02}-{d:02}");
            }
        }
        Value::Ip(ip) => {
            if let Some(ip) = ip {
                push_ip(ip, out);
            }
        }
        Value::Share(x) => {
            use std::io::Write as _;
            let _ = write!(out, "{x:.3}");
        }
    }
}

/// A number in decimal.
#[inline]
pub(crate) fn push_u64(cell: &mut Vec<u8>, n: u64) {
    cell.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Whether a text cell gets the spreadsheet formula guard: always, unless `--raw-cells`, when a
/// spreadsheet would run it. The one place the decision is made.
#[inline]
pub(crate) fn needs_guard(cell: &[u8], raw: bool) -> bool {
    !raw && is_formula_like(cell)
}

/// One CSV cell of text that comes from the input (mail, file names, key records): every text
/// cell of every CSV file is written here (host-name cells that need no quoting ask
/// [`needs_guard`] first). Cells the tool makes itself — numbers, ids, dates, verdict words — go
/// to [`write_cell`] unguarded.
pub(crate) fn write_text_cell(out: &mut Vec<u8>, cell: &[u8], raw: bool) {
    write_cell(out, cell, needs_guard(cell, raw));
}

/// One CSV cell: quoted when it holds a comma, quote or line break (RFC 4180), prefixed with `'`
/// when `guard` is set so spreadsheets show it as text instead of running it.
pub(crate) fn write_cell(out: &mut Vec<u8>, cell: &[u8], guard: bool) {
    let needs_quotes = guard || has_csv_special(cell);
    if !needs_quotes {
        out.extend_from_slice(cell);
        return;
    }
    out.push(b'"');
    if guard {
        out.push(b'\'');
    }
    // Runs between quotes are copied whole; each quote is doubled.
    let mut rest = cell;
    while let Some(q) = memchr::memchr(b'"', rest) {
        out.extend_from_slice(&rest[..=q]);
        out.push(b'"');
        rest = &rest[q + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Whether a cell holds a byte that RFC 4180 quoting is for: comma, quote, CR or LF.
#[inline]
fn has_csv_special(cell: &[u8]) -> bool {
    // Most cells are short: eight bytes at a time in a machine word (a byte is zero in
    // `x ^ pattern` exactly where it equals the pattern byte) beats the set-up of SIMD searches.
    if cell.len() > 64 {
        return memchr::memchr3(b',', b'"', b'\n', cell).is_some()
            || memchr::memchr(b'\r', cell).is_some();
    }
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut words = cell.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes(w.try_into().expect("chunks of eight"));
        if has_zero_byte(x ^ (ONES * u64::from(b',')))
            || has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\n')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\r')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// The CSV header line of a table.
pub fn header_line(names: &[&str]) -> Vec<u8> {
    let mut v = names.join(",").into_bytes();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn csv_special_bytes_are_found_wherever_they_are(
            cell in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b','),
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b'\r'),
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::any::<u8>(),
                ],
                0..100,
            )
        ) {
            let plain = cell.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
            proptest::prop_assert_eq!(has_csv_special(&cell), plain);
        }

        #[test]
        fn a_written_cell_reads_back_as_itself(
            cell in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b','),
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::any::<u8>(),
                ],
                0..80,
            ),
            guard in proptest::prelude::any::<bool>(),
        ) {
            // A CSV reader gives back the cell (after the `'` the guard adds), whatever it holds.
            let mut line = Vec::new();
            write_cell(&mut line, &cell, guard);
            line.extend_from_slice(b",end\n");
            let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&line[..]);
            let record = reader.byte_records().next().expect("one record").expect("valid CSV");
            let mut want = Vec::new();
            if guard {
                want.push(b'\'');
            }
            want.extend_from_slice(&cell);
            proptest::prop_assert_eq!(&record[0], &want[..]);
            proptest::prop_assert_eq!(&record[1], b"end");
        }
    }

    #[test]
    fn formula_cells_are_guarded_and_numbers_are_not() {
        let mut out = Vec::new();
        write_row(
            &mut out,
            [
                Value::Text("=1+1"),
                Value::Int(Some(5)),
                Value::Text("-"),
                Value::Bool(None),
            ],
            false,
        );
        assert_eq!(out, b"\"'=1+1\",5,-,\n");
        out.clear();
        write_row(&mut out, [Value::Text("=1+1")], true);
        assert_eq!(out, b"=1+1\n");
    }
}
