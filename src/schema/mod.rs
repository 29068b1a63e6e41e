//! The column registry: every column of every result table, defined once.
//!
//! Takes a typed row (a message, a signature, a hop, a campaign) and gives its cells as typed
//! [`Value`]s, column by column. A column is its name, its type, whether it may be empty, a
//! one-line meaning and the function that reads its value from the row; the CSV header, the
//! Arrow/Parquet schema, the JSON keys and the README's column tables all come from here.

use std::net::IpAddr;

mod rows;

pub use rows::{
    DECIDED_COLUMNS, Decided, DecidedTable, Hop, HopRow, MESSAGE_COLUMNS, Message, MessageTable,
    RECEIVED_COLUMNS, ReceivedTable, SIGNATURE_COLUMNS, SignatureRow, SignatureTable,
};

/// Version of the result tables' layout (names, types, order). Written into `summary.json` and
/// the Parquet file metadata; raised whenever a column is added, removed, renamed or retyped.
pub const SCHEMA_VERSION: u32 = 4;

/// A column's type, as every format writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// UTF-8 text. Empty text is no value (an empty CSV cell, `null` in Parquet and JSON).
    Text,
    /// A whole number (`BIGINT`).
    Int,
    /// `true` or `false`.
    Bool,
    /// A UTC instant: RFC 3339 with a `Z` in CSV and JSON, a timestamp (microseconds, UTC) in
    /// Parquet.
    Time,
    /// A day, `YYYY-MM-DD`: text in CSV and JSON, a `DATE` in Parquet.
    Day,
    /// An IPv4 or IPv6 address in its usual text form.
    Ip,
    /// A share between 0 and 1, three decimals in CSV (`DOUBLE`).
    Share,
    /// A list of text items. CSV writes them joined by the separator (which no item contains);
    /// Parquet and JSON write a real list.
    List { separator: &'static str },
}

impl Type {
    /// The type as the README's tables and `--help` name it.
    pub fn name(self) -> &'static str {
        match self {
            Type::Text => "text",
            Type::Int => "integer",
            Type::Bool => "boolean",
            Type::Time => "timestamp",
            Type::Day => "date",
            Type::Ip => "ip",
            Type::Share => "decimal",
            Type::List { .. } => "list",
        }
    }
}

/// One cell's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Text(&'a str),
    Int(Option<u64>),
    Bool(Option<bool>),
    Time(Option<i64>),
    /// Days since 1970-01-01.
    Day(Option<i64>),
    Ip(Option<IpAddr>),
    Share(f64),
    /// The items joined by the column's separator (empty: no items).
    List(&'a str),
}

/// A table's row type, which may borrow what it shows (a signature row borrows its message).
pub trait Table {
    type Row<'a>;
}

/// One column of table `T`.
pub struct Column<T: Table + ?Sized> {
    pub name: &'static str,
    pub ty: Type,
    /// Whether the cell may be empty (no value).
    pub nullable: bool,
    /// What the column holds, in one line (the README's tables).
    pub meaning: &'static str,
    /// The cell's value in a row.
    pub get: for<'a> fn(&'a T::Row<'a>) -> Value<'a>,
}

impl<T: Table + ?Sized> Column<T> {
    /// The column without its reader: what schemas and headers need.
    pub fn info(&self) -> ColumnInfo {
        ColumnInfo {
            name: self.name,
            ty: self.ty,
            nullable: self.nullable,
            meaning: self.meaning,
        }
    }
}

/// A column's name, type and meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: &'static str,
    pub ty: Type,
    pub nullable: bool,
    pub meaning: &'static str,
}

/// The columns of the `messages` table: the message stage's, then the corpus-wide ones.
pub fn message_columns() -> Vec<ColumnInfo> {
    MESSAGE_COLUMNS
        .iter()
        .map(Column::info)
        .chain(DECIDED_COLUMNS.iter().map(Column::info))
        .collect()
}

/// A table's columns as a Markdown table (name, type, meaning), as the README shows them.
pub fn markdown_table(columns: &[ColumnInfo]) -> String {
    let mut out = String::from("| column | type | meaning |\n|---|---|---|\n");
    for c in columns {
        let ty = match c.ty {
            Type::List { separator } => {
                if separator == " " {
                    "list (CSV: space-separated)".to_string()
                } else {
                    format!("list (CSV: `{separator}`-separated)")
                }
            }
            ty => ty.name().to_string(),
        };
        let meaning = c.meaning.replace('|', "\\|");
        out.push_str(&format!("| `{}` | {ty} | {meaning} |\n", c.name));
    }
    out
}

/// The names of a table's columns.
pub fn names(columns: &[ColumnInfo]) -> Vec<&'static str> {
    columns.iter().map(|c| c.name).collect()
}

/// The items of a list value.
pub fn list_items<'a>(joined: &'a str, separator: &'static str) -> ListItems<'a> {
    ListItems {
        rest: (!joined.is_empty()).then_some(joined),
        separator,
    }
}

/// Iterator of [`list_items`]: finds each separator's first byte with `memchr` (lists are split
/// once per row and output format, so the general substring search's set-up would dominate).
pub struct ListItems<'a> {
    rest: Option<&'a str>,
    separator: &'static str,
}

impl<'a> Iterator for ListItems<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = self.rest?;
        let sep = self.separator.as_bytes();
        let Some(&first) = sep.first() else {
            self.rest = None;
            return Some(rest);
        };
        let bytes = rest.as_bytes();
        let mut from = 0;
        while let Some(i) = memchr::memchr(first, &bytes[from..]) {
            let at = from + i;
            if bytes[at..].starts_with(sep) {
                // The separator is ASCII, so both sides are on character boundaries.
                self.rest = Some(&rest[at + sep.len()..]);
                return Some(&rest[..at]);
            }
            from = at + 1;
        }
        self.rest = None;
        Some(rest)
    }
}

/// Names that SQL engines (DuckDB, PostgreSQL, SQLite) reserve: a column named so needs quoting
/// in every query, so none of ours is.
pub const SQL_RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "index",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "pivot",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "show",
    "some",
    "summarize",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "unpivot",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
];

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn list_items_split_like_str_split(
            joined in "[a >;:b]{0,30}",
            separator in proptest::sample::select(vec![" ", ";", " > ", ":"]),
        ) {
            let want: Vec<&str> = if joined.is_empty() {
                Vec::new()
            } else {
                joined.split(separator).collect()
            };
            let got: Vec<&str> = list_items(&joined, separator).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn list_items_split_only_non_empty_lists() {
        assert_eq!(list_items("", " ").count(), 0);
        assert_eq!(list_items("a", " ").collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            list_items("a > b > c", " > ").collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
    }
}
