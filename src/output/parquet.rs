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
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

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

/// A Parquet file being written, batch by batch, in row order. Rows are gathered into row
/// groups of [`ROW_GROUP_ROWS`] and handed to an encoder thread, so encoding one row group
/// overlaps gathering the next; the columns of a row group are encoded and compressed in
/// parallel (on the Rayon pool) and appended in column order, so the bytes do not depend on the
/// thread count.
pub struct ParquetFile<W: Write + Send + 'static> {
    /// Batches of the row group being gathered, and their rows.
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    /// Rows per row group.
    group_rows: usize,
    /// Full row groups to the encoder (at most one waits: memory stays at a few row groups).
    to_encoder: Option<std::sync::mpsc::SyncSender<Vec<RecordBatch>>>,
    encoder: Option<std::thread::JoinHandle<Result<W, ParquetError>>>,
}

/// The encoding side of a [`ParquetFile`].
struct Encoder<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    row_groups: usize,
}

impl<W: Write + Send + 'static> ParquetFile<W> {
    /// Start a file of a table with `columns`.
    pub fn new(out: W, columns: &[ColumnInfo]) -> Result<Self, ParquetError> {
        Self::with_row_groups_of(out, columns, ROW_GROUP_ROWS)
    }

    /// As [`ParquetFile::new`], with row groups of `rows` rows.
    pub fn with_row_groups_of(
        out: W,
        columns: &[ColumnInfo],
        rows: usize,
    ) -> Result<Self, ParquetError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).map_err(|e| ParquetError(e.to_string()))?,
            ))
            .set_max_row_group_row_count(Some(rows))
            // Min/max statistics where filters use them (numbers, times): computing them for
            // every text value costs more than they save.
            .set_statistics_enabled(EnabledStatistics::None)
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
            ]));
        let props = columns
            .iter()
            .filter(|c| matches!(c.ty, Type::Int | Type::Time | Type::Day))
            .fold(props, |p, c| {
                p.set_column_statistics_enabled(ColumnPath::from(c.name), EnabledStatistics::Chunk)
            })
            .build();
        let schema = schema(columns);
        // The high-level writer sets up the file (the Arrow schema goes into its metadata); the
        // row groups are then written through its low-level parts.
        let (writer, factory) = ArrowWriter::try_new(out, schema.clone(), Some(props))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(|e| ParquetError(e.to_string()))?;
        let mut encoder = Encoder {
            writer,
            factory,
            schema,
            row_groups: 0,
        };
        let (to_encoder, row_groups) = std::sync::mpsc::sync_channel::<Vec<RecordBatch>>(1);
        let encoder = std::thread::Builder::new()
            .name("mailcensus-parquet".into())
            .spawn(move || {
                for group in row_groups {
                    encoder.row_group(&group)?;
                }
                encoder
                    .writer
                    .into_inner()
                    .map_err(|e| ParquetError(e.to_string()))
            })
            .map_err(|e| ParquetError(e.to_string()))?;
        Ok(ParquetFile {
            pending: Vec::new(),
            pending_rows: 0,
            group_rows: rows.max(1),
            to_encoder: Some(to_encoder),
            encoder: Some(encoder),
        })
    }

    /// Append a batch of rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            let room = self.group_rows - self.pending_rows;
            let take = room.min(batch.num_rows());
            self.pending.push(batch.slice(0, take));
            self.pending_rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if self.pending_rows == self.group_rows {
                self.send_row_group()?;
            }
        }
        Ok(())
    }

    /// Hand the gathered rows to the encoder.
    fn send_row_group(&mut self) -> Result<(), ParquetError> {
        if self.pending_rows == 0 {
            return Ok(());
        }
        self.pending_rows = 0;
        let group = std::mem::take(&mut self.pending);
        let sent = self.to_encoder.as_ref().map(|tx| tx.send(group));
        match sent {
            Some(Ok(())) => Ok(()),
            // The encoder stopped: its error says why.
            _ => Err(self
                .join()
                .err()
                .unwrap_or_else(|| ParquetError("the Parquet encoder stopped early".into()))),
        }
    }

    /// Wait for the encoder; gives the output with the footer written.
    fn join(&mut self) -> Result<W, ParquetError> {
        self.to_encoder = None;
        match self.encoder.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ParquetError("the Parquet encoder panicked".into())),
            None => Err(ParquetError("the Parquet file was already finished".into())),
        }
    }

    /// Write the last row group and the footer; gives back the output.
    pub fn finish(mut self) -> Result<W, ParquetError> {
        self.send_row_group()?;
        self.join()
    }
}

impl<W: Write + Send> Encoder<W> {
    /// Encode one row group: each column on its own task, appended in column order.
    fn row_group(&mut self, batches: &[RecordBatch]) -> Result<(), ParquetError> {
        use rayon::prelude::*;
        let err = |e: parquet::errors::ParquetError| ParquetError(e.to_string());
        let writers = self
            .factory
            .create_column_writers(self.row_groups)
            .map_err(err)?;
        let schema = &self.schema;
        // Every column of the registry is one leaf (text, numbers, lists of text): writer `i`
        // takes field `i`.
        let chunks: Vec<Result<ArrowColumnChunk, parquet::errors::ParquetError>> = writers
            .into_par_iter()
            .enumerate()
            .map(|(i, mut writer)| {
                for batch in batches {
                    for leaf in compute_leaves(schema.field(i), batch.column(i))? {
                        writer.write(&leaf)?;
                    }
                }
                writer.close()
            })
            .collect();
        let mut row_group = self.writer.next_row_group().map_err(err)?;
        for chunk in chunks {
            chunk
                .map_err(err)?
                .append_to_row_group(&mut row_group)
                .map_err(err)?;
        }
        row_group.close().map_err(err)?;
        self.row_groups += 1;
        Ok(())
    }
}

/// Read back, in order, the rows of a Parquet file this tool wrote for a table with `columns`,
/// handing each row's values to `each` (a shard's partial rows, [`crate::cluster`]). The values
/// are the ones written: text and lists come back as written (no value as empty text), numbers,
/// times and days exactly. A file with other columns or another schema version is refused.
/// Gives the number of rows.
pub fn read_rows(
    path: &std::path::Path,
    columns: &[ColumnInfo],
    each: &mut dyn FnMut(&[Value<'_>]) -> Result<(), super::OutputError>,
) -> Result<u64, super::OutputError> {
    read_row_groups(path, columns, None, each)
}

/// The number of row groups of a Parquet file (the units [`read_row_groups`] reads).
pub fn row_groups(path: &std::path::Path) -> Result<usize, super::OutputError> {
    let file = std::fs::File::open(path).map_err(|source| super::OutputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| ParquetError(format!("{}: {e}", path.display())))?;
    Ok(builder.metadata().num_row_groups())
}

/// As [`read_rows`], for the row groups `groups` only (None: all), in file order.
pub fn read_row_groups(
    path: &std::path::Path,
    columns: &[ColumnInfo],
    groups: Option<&[usize]>,
    each: &mut dyn FnMut(&[Value<'_>]) -> Result<(), super::OutputError>,
) -> Result<u64, super::OutputError> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let fail =
        |why: String| super::OutputError::from(ParquetError(format!("{}: {why}", path.display())));
    let file = std::fs::File::open(path).map_err(|source| super::OutputError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(e.to_string()))?;
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "mailcensus.schema_version"))
        .and_then(|k| k.value.clone());
    if version.as_deref() != Some(SCHEMA_VERSION.to_string().as_str()) {
        return Err(fail(format!(
            "written with schema version {}, this mailcensus reads version {SCHEMA_VERSION}",
            version.as_deref().unwrap_or("(none)")
        )));
    }
    let expected = schema(columns);
    let found = builder.schema().clone();
    let same = found.fields().len() == expected.fields().len()
        && found
            .fields()
            .iter()
            .zip(expected.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if !same {
        let names = |s: &Schema| {
            s.fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        return Err(fail(format!(
            "its columns are {}, expected {}",
            names(&found),
            names(&expected)
        )));
    }
    let builder = match groups {
        Some(groups) => builder.with_row_groups(groups.to_vec()),
        None => builder,
    };
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut rows = 0u64;
    let mut lists: Vec<String> = vec![String::new(); columns.len()];
    for batch in reader {
        let batch = batch.map_err(|e| fail(e.to_string()))?;
        for i in 0..batch.num_rows() {
            // Lists are joined first, so the row's values can borrow them.
            for (c, column) in columns.iter().enumerate() {
                if let Type::List { separator } = column.ty {
                    let joined = &mut lists[c];
                    joined.clear();
                    let array = batch.column(c).as_list::<i32>();
                    if array.is_valid(i) {
                        let items = array.value(i);
                        let items = items.as_string::<i32>();
                        for k in 0..items.len() {
                            if k > 0 {
                                joined.push_str(separator);
                            }
                            joined.push_str(items.value(k));
                        }
                    }
                }
            }
            let mut values: Vec<Value<'_>> = Vec::with_capacity(columns.len());
            for (c, column) in columns.iter().enumerate() {
                let array = batch.column(c);
                let valid = array.is_valid(i);
                values.push(match column.ty {
                    Type::Text => Value::Text(if valid {
                        array.as_string::<i32>().value(i)
                    } else {
                        ""
                    }),
                    Type::Ip => Value::Ip(match valid {
                        true => {
                            let text = array.as_string::<i32>().value(i);
                            Some(text.parse().map_err(|_| {
                                fail(format!(
                                    "{:?} in column {} is no address",
                                    text, column.name
                                ))
                            })?)
                        }
                        false => None,
                    }),
                    Type::Int => Value::Int(
                        valid.then(|| array.as_primitive::<Int64Type>().value(i).max(0) as u64),
                    ),
                    Type::Bool => Value::Bool(valid.then(|| array.as_boolean().value(i))),
                    Type::Time => Value::Time(valid.then(|| {
                        array.as_primitive::<TimestampMicrosecondType>().value(i) / 1_000_000
                    })),
                    Type::Day => Value::Day(
                        valid.then(|| i64::from(array.as_primitive::<Date32Type>().value(i))),
                    ),
                    Type::Share => Value::Share(if valid {
                        array.as_primitive::<Float64Type>().value(i)
                    } else {
                        0.0
                    }),
                    Type::List { .. } => Value::List(&lists[c]),
                });
            }
            each(&values)?;
            rows += 1;
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn columns() -> Vec<ColumnInfo> {
        let col = |name, ty| ColumnInfo {
            name,
            ty,
            nullable: true,
            meaning: "",
        };
        vec![
            col("n", Type::Int),
            col("t", Type::Text),
            col("l", Type::List { separator: ";" }),
            col("at", Type::Time),
            col("ok", Type::Bool),
        ]
    }

    /// 70 rows in batches of 7, into row groups of `group` rows.
    fn file(group: usize) -> Vec<u8> {
        let mut file = ParquetFile::with_row_groups_of(Vec::new(), &columns(), group).unwrap();
        let mut batch = Batch::new(&columns());
        for b in 0..10u64 {
            for r in 0..7u64 {
                let n = b * 7 + r;
                let text = format!("row {n}");
                let list = if n % 3 == 0 {
                    String::new()
                } else {
                    format!("a{n};b")
                };
                batch.append([
                    Value::Int(Some(n)),
                    Value::Text(&text),
                    Value::List(&list),
                    Value::Time((n % 2 == 0).then_some(n as i64 * 86_400)),
                    Value::Bool(Some(n % 5 == 0)),
                ]);
            }
            file.write(&batch.take()).unwrap();
        }
        file.finish().unwrap()
    }

    #[test]
    fn rows_come_back_in_order_across_row_groups() {
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &file(16)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(tmp).unwrap();
        assert_eq!(
            reader.metadata().num_row_groups(),
            5,
            "70 rows in groups of 16"
        );
        let mut next = 0i64;
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            let n = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            let t = batch
                .column(1)
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            for i in 0..batch.num_rows() {
                assert_eq!(n.value(i), next);
                assert_eq!(t.value(i), format!("row {next}"));
                next += 1;
            }
        }
        assert_eq!(next, 70);
    }

    #[test]
    fn the_same_rows_give_the_same_bytes() {
        // Columns are encoded in parallel; the file must not show it.
        assert_eq!(file(16), file(16));
        assert_eq!(file(1000), file(1000));
    }
    /// One row of every type: texts, number, flag, time, day, address (an index), share, lists.
    type Row = (
        String,
        String,
        Option<u64>,
        Option<bool>,
        Option<i64>,
        Option<i64>,
        usize,
        f64,
        String,
        String,
    );

    #[test]
    fn rows_read_back_are_the_rows_written() {
        let columns = vec![
            ColumnInfo {
                name: "t",
                ty: Type::Text,
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "s",
                ty: Type::Text,
                nullable: false,
                meaning: "",
            },
            ColumnInfo {
                name: "n",
                ty: Type::Int,
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "b",
                ty: Type::Bool,
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "at",
                ty: Type::Time,
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "d",
                ty: Type::Day,
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "ip",
                ty: Type::Ip,
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "x",
                ty: Type::Share,
                nullable: false,
                meaning: "",
            },
            ColumnInfo {
                name: "l",
                ty: Type::List { separator: " " },
                nullable: true,
                meaning: "",
            },
            ColumnInfo {
                name: "m",
                ty: Type::List { separator: ";" },
                nullable: false,
                meaning: "",
            },
        ];
        let ips: [Option<std::net::IpAddr>; 3] = [
            None,
            Some("192.0.2.7".parse().unwrap()),
            Some("2001:db8::ffff:1".parse().unwrap()),
        ];
        let rows: Vec<Row> = (0..300u64)
            .map(|n| {
                (
                    if n % 4 == 0 {
                        String::new()
                    } else {
                        format!("tëxt {n}")
                    },
                    if n % 5 == 0 {
                        String::new()
                    } else {
                        format!("s{n}")
                    },
                    (n % 3 != 0).then_some(n * 1_000_003),
                    (n % 7 != 0).then_some(n % 2 == 0),
                    (n % 6 != 0).then_some(n as i64 * 86_401 - 5_000_000),
                    (n % 8 != 0).then_some(n as i64 - 100),
                    (n % 3) as usize,
                    n as f64 / 301.0,
                    match n % 4 {
                        0 => String::new(),
                        1 => "a".into(),
                        2 => "a b".into(),
                        _ => "a  c".into(),
                    },
                    match n % 3 {
                        0 => String::new(),
                        1 => "x;;y".into(),
                        _ => "z".into(),
                    },
                )
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let mut file =
            ParquetFile::with_row_groups_of(std::fs::File::create(&path).unwrap(), &columns, 64)
                .unwrap();
        let mut batch = Batch::new(&columns);
        fn row_values<'a>(r: &'a Row, ips: &[Option<std::net::IpAddr>; 3]) -> [Value<'a>; 10] {
            [
                Value::Text(&r.0),
                Value::Text(&r.1),
                Value::Int(r.2),
                Value::Bool(r.3),
                Value::Time(r.4),
                Value::Day(r.5),
                Value::Ip(ips[r.6]),
                Value::Share(r.7),
                Value::List(&r.8),
                Value::List(&r.9),
            ]
        }
        for r in &rows {
            batch.append(row_values(r, &ips));
            if batch.rows() == 50 {
                file.write(&batch.take()).unwrap();
            }
        }
        file.write(&batch.take()).unwrap();
        file.finish().unwrap();
        let mut back = 0usize;
        let n = read_rows(&path, &columns, &mut |values| {
            assert_eq!(values, row_values(&rows[back], &ips), "row {back}");
            back += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((n, back), (300, 300));
        // Another table's columns are refused, naming both.
        let err = read_rows(&path, &columns[..3], &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("t,s,n"), "{err}");
    }
}
