//! Spilled rows: a message's typed cells kept on disk until the corpus-wide cells are decided.
//!
//! Two encodings, chosen by the run's formats ([`Spill`]): when CSV is the only format the row is
//! kept as its CSV cells (the final row is those cells and the decided ones, exactly what the
//! typed path writes; a test compares the two), else as the typed encoding below, which every
//! format is written from.
//!
//! Takes a row's [`Value`]s and gives compact bytes; gives the values back, borrowing those
//! bytes, given the columns' types. Scratch only: written and read by the same run.
//!
//! Each cell: text and lists as a varint length and UTF-8 bytes; a number, time or day as a
//! presence byte and a varint (zigzag for times); a boolean as one byte (0 none, 1 false,
//! 2 true); an address as a byte (0 none, 4 or 16 for its length) and its octets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::schema::{Type, Value};

/// How a run spills its message rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spill {
    /// The row's CSV cells, guarded unless `raw_cells`, ending in a newline.
    Csv { raw_cells: bool },
    /// The typed encoding.
    Typed,
}

impl Spill {
    /// The spill for a run writing `formats`.
    pub fn for_formats(formats: super::Formats, raw_cells: bool) -> Spill {
        if formats.csv && !formats.parquet && !formats.jsonl {
            Spill::Csv { raw_cells }
        } else {
            Spill::Typed
        }
    }

    /// Append one row.
    pub fn write<'v, I>(self, values: I, out: &mut Vec<u8>)
    where
        I: IntoIterator<Item = Value<'v>>,
    {
        match self {
            Spill::Csv { raw_cells } => super::csv::write_row(out, values, raw_cells),
            Spill::Typed => encode(values, out),
        }
    }
}

/// A spilled row that does not decode: the scratch file was damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a spilled row is damaged")]
pub struct Damaged;

/// Append one row.
pub fn encode<'v>(values: impl IntoIterator<Item = Value<'v>>, out: &mut Vec<u8>) {
    for v in values {
        match v {
            Value::Text(s) | Value::List(s) => {
                push_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Int(n) => push_optional(out, n),
            Value::Time(t) | Value::Day(t) => push_optional(out, t.map(zigzag)),
            Value::Bool(b) => out.push(match b {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            }),
            Value::Ip(None) => out.push(0),
            Value::Ip(Some(IpAddr::V4(a))) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            Value::Ip(Some(IpAddr::V6(a))) => {
                out.push(16);
                out.extend_from_slice(&a.octets());
            }
            Value::Share(x) => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
}

/// Read one row of cells of `types` from the start of `bytes` into `values` (emptied first);
/// returns the bytes it took.
pub fn decode<'b>(
    bytes: &'b [u8],
    types: impl IntoIterator<Item = Type>,
    values: &mut Vec<Value<'b>>,
) -> Result<usize, Damaged> {
    values.clear();
    let mut at = 0usize;
    for ty in types {
        let value = match ty {
            Type::Text | Type::List { .. } => {
                let len = read_varint(bytes, &mut at)? as usize;
                let text = bytes
                    .get(at..at.checked_add(len).ok_or(Damaged)?)
                    .ok_or(Damaged)?;
                at += len;
                let text = std::str::from_utf8(text).map_err(|_| Damaged)?;
                if matches!(ty, Type::Text) {
                    Value::Text(text)
                } else {
                    Value::List(text)
                }
            }
            Type::Int => Value::Int(read_optional(bytes, &mut at)?),
            Type::Time => Value::Time(read_optional(bytes, &mut at)?.map(unzigzag)),
            Type::Day => Value::Day(read_optional(bytes, &mut at)?.map(unzigzag)),
            Type::Bool => {
                let b = *bytes.get(at).ok_or(Damaged)?;
                at += 1;
                Value::Bool(match b {
                    0 => None,
                    1 => Some(false),
                    2 => Some(true),
                    _ => return Err(Damaged),
                })
            }
            Type::Ip => {
                let n = *bytes.get(at).ok_or(Damaged)? as usize;
                at += 1;
                let octets = bytes.get(at..at + n).ok_or(Damaged)?;
                at += n;
                Value::Ip(match n {
                    0 => None,
                    4 => Some(IpAddr::V4(Ipv4Addr::from(
                        <[u8; 4]>::try_from(octets).map_err(|_| Damaged)?,
                    ))),
                    16 => Some(IpAddr::V6(Ipv6Addr::from(
                        <[u8; 16]>::try_from(octets).map_err(|_| Damaged)?,
                    ))),
                    _ => return Err(Damaged),
                })
            }
            Type::Share => {
                let b = bytes.get(at..at + 8).ok_or(Damaged)?;
                at += 8;
                Value::Share(f64::from_le_bytes(b.try_into().map_err(|_| Damaged)?))
            }
        };
        values.push(value);
    }
    Ok(at)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn push_optional(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            push_varint(out, v);
        }
    }
}

fn read_optional(bytes: &[u8], at: &mut usize) -> Result<Option<u64>, Damaged> {
    let flag = *bytes.get(*at).ok_or(Damaged)?;
    *at += 1;
    match flag {
        0 => Ok(None),
        1 => read_varint(bytes, at).map(Some),
        _ => Err(Damaged),
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, Damaged> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(Damaged)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = (Type, ValueOwned)> {
        prop_oneof![
            ".{0,40}".prop_map(|s| (Type::Text, ValueOwned::Text(s))),
            ".{0,40}".prop_map(|s| (Type::List { separator: " " }, ValueOwned::List(s))),
            proptest::option::of(any::<u64>()).prop_map(|n| (Type::Int, ValueOwned::Int(n))),
            proptest::option::of(any::<i64>()).prop_map(|n| (Type::Time, ValueOwned::Time(n))),
            proptest::option::of(any::<i64>()).prop_map(|n| (Type::Day, ValueOwned::Day(n))),
            proptest::option::of(any::<bool>()).prop_map(|b| (Type::Bool, ValueOwned::Bool(b))),
            proptest::option::of(any::<IpAddr>()).prop_map(|a| (Type::Ip, ValueOwned::Ip(a))),
            any::<f64>()
                .prop_filter("comparable", |x| !x.is_nan())
                .prop_map(|x| (Type::Share, ValueOwned::Share(x))),
        ]
    }

    #[derive(Debug, Clone)]
    enum ValueOwned {
        Text(String),
        List(String),
        Int(Option<u64>),
        Time(Option<i64>),
        Day(Option<i64>),
        Bool(Option<bool>),
        Ip(Option<IpAddr>),
        Share(f64),
    }

    impl ValueOwned {
        fn get(&self) -> Value<'_> {
            match self {
                ValueOwned::Text(s) => Value::Text(s),
                ValueOwned::List(s) => Value::List(s),
                ValueOwned::Int(n) => Value::Int(*n),
                ValueOwned::Time(n) => Value::Time(*n),
                ValueOwned::Day(n) => Value::Day(*n),
                ValueOwned::Bool(b) => Value::Bool(*b),
                ValueOwned::Ip(a) => Value::Ip(*a),
                ValueOwned::Share(x) => Value::Share(*x),
            }
        }
    }

    proptest! {
        #[test]
        fn rows_read_back_as_written(rows in proptest::collection::vec(
            proptest::collection::vec(value(), 0..12), 1..4)
        ) {
            // Rows one after another, as in a spill file; each reads back whole and in place.
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for row in &rows {
                encode(row.iter().map(|(_, v)| v.get()), &mut bytes);
                ends.push(bytes.len());
            }
            let mut at = 0;
            let mut values = Vec::new();
            for (row, end) in rows.iter().zip(ends) {
                let used = decode(&bytes[at..], row.iter().map(|(t, _)| *t), &mut values).unwrap();
                prop_assert_eq!(at + used, end);
                let want: Vec<Value<'_>> = row.iter().map(|(_, v)| v.get()).collect();
                prop_assert_eq!(&values, &want);
                at = end;
            }
        }

        #[test]
        fn damaged_rows_are_refused_not_misread(
            row in proptest::collection::vec(value(), 1..8),
            cut in any::<proptest::sample::Index>(),
        ) {
            let mut bytes = Vec::new();
            encode(row.iter().map(|(_, v)| v.get()), &mut bytes);
            let short = &bytes[..cut.index(bytes.len())];
            let mut values = Vec::new();
            // A row cut anywhere is refused (every cell's bytes are needed), never misread.
            prop_assert!(decode(short, row.iter().map(|(t, _)| *t), &mut values).is_err());
        }
    }
}
