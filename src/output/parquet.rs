//! Parquet: typed columns through Apache Arrow, compressed with zstd.
//!
//! Takes rows of typed [`Value`]s in batches ([`Batch`]) and gives a Parquet file whose schema
//! comes from the column registry: text as UTF-8 strings, numbers as 64-bit integers, booleans,
//! times as UTC timestamps (microseconds), days as dates, lists as lists of strings. The file's
//! metadata names the schema version and the tool. Cells are written exactly as read (no
//! spreadsheet guard).

use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::classify::push_ip;
use crate::schema::{ColumnInfo, SCHEMA_VERSION, Type, Value, list_items};

/// Rows per row group: large enough for fast scans, small enough that a reader can skip.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Errors writing Parquet.
#[derive(Debug, thiserror::Error)]
#[error("cannot write Parquet: {0}")]
pub struct ParquetError(String);

/// The Arrow schema of a table.
pub fn schema(columns: &[ColumnInfo]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, data_type(c.ty), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

fn list_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, true))
}

fn data_type(ty: Type) -> DataType {
    match ty {
        Type::Text | Type::Ip => DataType::Utf8,
        Type::Int => DataType::Int64,
        Type::Bool => DataType::Boolean,
        Type::Time => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::Day => DataType::Date32,
        Type::Share => DataType::Float64,
        Type::List { .. } => DataType::List(list_item()),
    }
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Bool(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
    Day(Date32Builder),
    Share(Float64Builder),
    List(ListBuilder<StringBuilder>),
}

/// Rows being gathered into one Arrow record batch.
pub struct Batch {
    columns: Vec<ColumnInfo>,
    builders: Vec<Builder>,
    rows: usize,
    ip: String,
}

impl Batch {
    pub fn new(columns: &[ColumnInfo]) -> Batch {
        let builders = columns
            .iter()
            .map(|c| match c.ty {
                Type::Text | Type::Ip => Builder::Text(StringBuilder::new()),
                Type::Int => Builder::Int(Int64Builder::new()),
                Type::Bool => Builder::Bool(BooleanBuilder::new()),
                Type::Time => Builder::Time(TimestampMicrosecondBuilder::new()),
                Type::Day => Builder::Day(Date32Builder::new()),
                Type::Share => Builder::Share(Float64Builder::new()),
                Type::List { .. } => {
                    Builder::List(ListBuilder::new(StringBuilder::new()).with_field(list_item()))
                }
            })
            .collect();
        Batch {
            columns: columns.to_vec(),
            builders,
            rows: 0,
            ip: String::new(),
        }
    }

    /// Rows appended since the batch was made or last taken.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Append one row, its values in column order.
    pub fn append<'v>(&mut self, values: impl IntoIterator<Item = Value<'v>>) {
        for ((builder, column), value) in self.builders.iter_mut().zip(&self.columns).zip(values) {
            match (builder, value) {
                (Builder::Text(b), Value::Text(s)) => {
                    if s.is_empty() && column.nullable {
                        b.append_null();
                    } else {
                        b.append_value(s);
                    }
                }
                (Builder::Text(b), Value::Ip(ip)) => match ip {
                    Some(ip) => {
                        self.ip.clear();
                        push_ip(ip, &mut self.ip);
                        b.append_value(&self.ip);
                    }
                    None => b.append_null(),
                },
                (Builder::Int(b), Value::Int(n)) => {
                    b.append_option(n.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                }
                (Builder::Bool(b), Value::Bool(v)) => b.append_option(v),
                (Builder::Time(b), Value::Time(t)) => {
                    b.append_option(t.map(|t| t.saturating_mul(1_000_000)))
                }
                (Builder::Day(b), Value::Day(d)) => {
                    b.append_option(d.and_then(|d| i32::try_from(d).ok()))
                }
                (Builder::Share(b), Value::Share(x)) => b.append_value(x),
                (Builder::List(b), Value::List(s)) => {
                    let separator = match column.ty {
                        Type::List { separator } => separator,
                        _ => " ",
                    };
                    if s.is_empty() && column.nullable {
                        b.append_null();
                    } else {
                        for item in list_items(s, separator) {
                            b.values().append_value(item);
                        }
                        b.append(true);
                    }
                }
                (b, v) => unreachable!(
                    "column {} is {:?} but its value is {v:?} ({})",
                    column.name,
                    column.ty,
                    match b {
                        Builder::Text(_) => "text builder",
                        _ => "other builder",
                    }
                ),
            }
        }
        self.rows += 1;
    }

    /// The rows as a record batch; the batch starts empty again.
    pub fn take(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Text(b) => Arc::new(b.finish()),
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                    Builder::Time(b) => Arc::new(b.finish()),
                    Builder::Day(b) => Arc::new(b.finish()),
                    Builder::Share(b) => Arc::new(b.finish()),
                    Builder::List(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(schema(&self.columns), arrays)
            .expect("builders follow the schema they were made from")
    }
}

/// A Parquet file being written, batch by batch, in row order.
pub struct ParquetFile<W: Write + Send> {
    writer: ArrowWriter<W>,
}

impl<W: Write + Send> ParquetFile<W> {
    /// Start a file of a table with `columns`.
    pub fn new(out: W, columns: &[ColumnInfo]) -> Result<Self, ParquetError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(3).map_err(|e| ParquetError(e.to_string()))?,
            ))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("mailcensus {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new(
                    "mailcensus.schema_version".to_string(),
                    SCHEMA_VERSION.to_string(),
                ),
                KeyValue::new(
                    "mailcensus.version".to_string(),
                    env!("CARGO_PKG_VERSION").to_string(),
                ),
            ]))
            .build();
        let writer = ArrowWriter::try_new(out, schema(columns), Some(props))
            .map_err(|e| ParquetError(e.to_string()))?;
        Ok(ParquetFile { writer })
    }

    /// Append a batch of rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.writer
            .write(batch)
            .map_err(|e| ParquetError(e.to_string()))
    }

    /// Write the footer; gives back the output.
    pub fn finish(self) -> Result<W, ParquetError> {
        self.writer
            .into_inner()
            .map_err(|e| ParquetError(e.to_string()))
    }
}
