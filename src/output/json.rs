//! JSON Lines: one object per row, keys from the column registry.
//!
//! Takes a row's typed [`Value`]s and its columns and gives one line of JSON: empty text and
//! missing values are `null`, numbers and booleans are JSON's own, times are RFC 3339 strings,
//! lists are arrays. Cells are written exactly as read (no spreadsheet guard).

use crate::classify::push_ip;
use crate::headers::date;
use crate::schema::{ColumnInfo, Type, Value, list_items};

/// Append one row as a JSON object and a newline.
pub fn write_row<'v>(
    out: &mut Vec<u8>,
    columns: &[ColumnInfo],
    values: impl IntoIterator<Item = Value<'v>>,
) {
    out.push(b'{');
    for (i, (column, value)) in columns.iter().zip(values).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_string(out, column.name);
        out.push(b':');
        write_value(out, column.ty, value);
    }
    out.extend_from_slice(b"}\n");
}

fn write_value(out: &mut Vec<u8>, ty: Type, value: Value<'_>) {
    const NULL: &[u8] = b"null";
    match value {
        // No value, and no items: null, as in Parquet (an empty CSV cell).
        Value::Text("")
        | Value::List("")
        | Value::Int(None)
        | Value::Bool(None)
        | Value::Time(None) => out.extend_from_slice(NULL),
        Value::Day(None) | Value::Ip(None) => out.extend_from_slice(NULL),
        Value::Text(s) => push_string(out, s),
        Value::List(s) => {
            let separator = match ty {
                Type::List { separator } => separator,
                _ => " ",
            };
            out.push(b'[');
            for (i, item) in list_items(s, separator).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_string(out, item);
            }
            out.push(b']');
        }
        Value::Int(Some(n)) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Bool(Some(b)) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Time(Some(t)) => {
            out.push(b'"');
            date::write_rfc3339(t, out);
            out.push(b'"');
        }
        Value::Day(Some(_)) => {
            out.push(b'"');
            super::csv::write_value(out, value, true);
            out.push(b'"');
        }
        // Full precision (CSV rounds to three decimals); JSON has no NaN or infinity.
        Value::Share(x) if x.is_finite() => {
            use std::io::Write as _;
            let _ = write!(out, "{x}");
        }
        Value::Share(_) => out.extend_from_slice(NULL),
        Value::Ip(Some(ip)) => {
            out.push(b'"');
            push_ip(ip, out);
            out.push(b'"');
        }
    }
}

/// A JSON string (RFC 8259 escaping).
fn push_string(out: &mut Vec<u8>, s: &str) {
    // serde_json writes a str as exactly this; it cannot fail into a Vec.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnInfo;

    #[test]
    fn rows_are_json_objects_with_typed_values() {
        let col = |name, ty| ColumnInfo {
            name,
            ty,
            nullable: true,
            meaning: "",
        };
        let columns = [
            col("s", Type::Text),
            col("e", Type::Text),
            col("n", Type::Int),
            col("b", Type::Bool),
            col("t", Type::Time),
            col("l", Type::List { separator: ";" }),
            col("ip", Type::Ip),
        ];
        let mut out = Vec::new();
        write_row(
            &mut out,
            &columns,
            [
                Value::Text("=\"x\"\n"),
                Value::Text(""),
                Value::Int(Some(7)),
                Value::Bool(Some(true)),
                Value::Time(Some(0)),
                Value::List("a;b"),
                Value::Ip("192.0.2.1".parse().ok()),
            ],
        );
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with("}\n"));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["s"], "=\"x\"\n");
        assert!(v["e"].is_null());
        assert_eq!(v["n"], 7);
        assert_eq!(v["b"], true);
        assert_eq!(v["t"], "1970-01-01T00:00:00Z");
        assert_eq!(v["l"], serde_json::json!(["a", "b"]));
        assert_eq!(v["ip"], "192.0.2.1");
    }
}
