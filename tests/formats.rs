//! The result tables in every format: Parquet and JSON Lines read in DuckDB with the declared
//! types and the same rows as the CSV; no column is an SQL reserved word; every format is the
//! same bytes whatever the thread count. DuckDB is the Python package (`pip install duckdb`,
//! done by .ci/run); without it the DuckDB checks skip loudly, and fail under CI.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use mailcensus::schema::{self, ColumnInfo, SQL_RESERVED, Type};

const ALL_FORMATS: &str = "csv,parquet,jsonl";

/// Run a DuckDB script (Python) with `out` as its first argument; panics with its output when
/// it fails.
fn run_duckdb(script: &str, out: &Path, columns_json: &str) {
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(out)
        .arg(columns_json)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "DuckDB check failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The DuckDB type a column must read as from Parquet.
fn duckdb_type(ty: Type) -> &'static str {
    match ty {
        Type::Text | Type::Ip => "VARCHAR",
        Type::Int => "BIGINT",
        Type::Bool => "BOOLEAN",
        Type::Time => "TIMESTAMP",
        Type::Day => "DATE",
        Type::Share => "DOUBLE",
        Type::List { .. } => "VARCHAR[]",
    }
}

fn tables() -> Vec<(&'static str, Vec<ColumnInfo>)> {
    let info = |cols: Vec<ColumnInfo>| cols;
    vec![
        ("messages", schema::message_columns()),
        (
            "signatures",
            info(schema::SIGNATURE_COLUMNS.iter().map(|c| c.info()).collect()),
        ),
        (
            "received",
            info(schema::RECEIVED_COLUMNS.iter().map(|c| c.info()).collect()),
        ),
        (
            "campaigns",
            info(
                mailcensus::campaign::CAMPAIGN_COLUMNS
                    .iter()
                    .map(|c| c.info())
                    .collect(),
            ),
        ),
    ]
}

/// The tables' columns as JSON for the script: {table: [[name, duckdb type, list separator]]}.
fn columns_json() -> String {
    let mut doc = serde_json::Map::new();
    for (table, cols) in tables() {
        let cols: Vec<serde_json::Value> = cols
            .iter()
            .map(|c| {
                let sep = match c.ty {
                    Type::List { separator } => separator,
                    _ => "",
                };
                serde_json::json!([c.name, duckdb_type(c.ty), sep])
            })
            .collect();
        doc.insert(table.to_string(), serde_json::Value::Array(cols));
    }
    serde_json::Value::Object(doc).to_string()
}

/// For each table: the Parquet schema is the declared one; Parquet, JSON Lines and the CSV
/// (lists split on their separator, the formula guard's `'` taken off) hold the same rows.
const SAME_ROWS: &str = r#"
import duckdb, json, sys
out, tables = sys.argv[1], json.loads(sys.argv[2])
con = duckdb.connect()
for table, cols in tables.items():
    pq, js, cs = f"{out}/{table}.parquet", f"{out}/{table}.jsonl", f"{out}/{table}.csv"
    got = [(r[0], r[1]) for r in con.sql(f"DESCRIBE SELECT * FROM '{pq}'").fetchall()]
    want = [(c[0], c[1]) for c in cols]
    assert got == want, f"{table}.parquet schema {got} != {want}"
    n = con.sql(f"SELECT count(*) FROM '{pq}'").fetchall()[0][0]
    # JSON: read with the Parquet file's types.
    types = ", ".join(f"'{c[0]}': '{c[1]}'" for c in cols)
    con.sql(f"CREATE OR REPLACE TABLE j AS SELECT * FROM read_json('{js}', columns={{{types}}}, format='newline_delimited')")
    # Shares: CSV shows three decimals, so all three are compared at three.
    def rounded(c):
        return f"round({c[0]}, 3) AS {c[0]}" if c[1] == "DOUBLE" else c[0]
    select = ", ".join(rounded(c) for c in cols)
    con.sql(f"CREATE OR REPLACE TABLE p AS SELECT {select} FROM '{pq}'")
    con.sql(f"CREATE OR REPLACE TABLE j AS SELECT {select} FROM j")
    # CSV: every cell as text, then typed the way the registry says.
    con.sql(f"CREATE OR REPLACE TABLE c0 AS SELECT * FROM read_csv('{cs}', all_varchar=true, header=true)")
    def typed(c):
        name, ty, sep = c
        raw = f'"{name}"'
        # The formula guard: a cell written as '= ... reads back without the quote.
        text = f"CASE WHEN {raw} LIKE '''%' AND len({raw}) > 1 AND substr({raw}, 2, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) THEN substr({raw}, 2) ELSE {raw} END"
        if ty == "VARCHAR[]":
            return f"CASE WHEN {raw} IS NULL OR {raw} = '' THEN NULL ELSE string_split({text}, '{sep}') END AS {name}"
        if ty == "VARCHAR":
            return f"NULLIF({text}, '') AS {name}"
        if ty == "DOUBLE":
            return f"round(CAST(NULLIF({raw}, '') AS DOUBLE), 3) AS {name}"
        return f"CAST(NULLIF({raw}, '') AS {ty}) AS {name}"
    con.sql("CREATE OR REPLACE TABLE c AS SELECT " + ", ".join(typed(c) for c in cols) + " FROM c0")
    for other in ("j", "c"):
        m = con.sql(f"SELECT count(*) FROM {other}").fetchall()[0][0]
        assert m == n, f"{table}: {m} rows in {other}, {n} in Parquet"
        diff = con.sql(f"SELECT count(*) FROM (SELECT * FROM p EXCEPT ALL SELECT * FROM {other})").fetchall()[0][0]
        back = con.sql(f"SELECT count(*) FROM (SELECT * FROM {other} EXCEPT ALL SELECT * FROM p)").fetchall()[0][0]
        if diff or back:
            sample = con.sql(f"SELECT * FROM p EXCEPT ALL SELECT * FROM {other} LIMIT 2").fetchall()
            raise AssertionError(f"{table}: Parquet and {other} differ in {diff}/{back} rows, e.g. {sample}")
    print(table, n, "rows agree")
# A query a user runs first: relay abuse per day per brand, typed without casts.
con.sql(f"SELECT CAST(received_at AS DATE) AS day, from_domain, count(*) FROM '{out}/messages.parquet' WHERE relay_abuse GROUP BY ALL").fetchall()
meta = dict(con.sql(f"SELECT decode(key), decode(value) FROM parquet_kv_metadata('{out}/messages.parquet')").fetchall())
assert meta.get("mailcensus.schema_version"), meta
"#;

fn scan_all_formats(args: &[&std::ffi::OsStr], out: &Path, threads: &str) {
    let mut all: Vec<&std::ffi::OsStr> = args.to_vec();
    all.extend([
        os("--format"),
        os(ALL_FORMATS),
        os("--received"),
        os("--threads"),
        os(threads),
    ]);
    scan_ok(&all, out);
}

/// A generated trap with relay-abuse waves, signed, with its keys.
fn generated(dir: &Path) {
    let o = bin()
        .args([
            "generate",
            "-q",
            "--messages",
            "3000",
            "--seed",
            "77",
            "--out",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn check_tables(out: &Path) {
    for (table, _) in tables() {
        for ext in ["csv", "parquet", "jsonl"] {
            assert!(
                out.join(format!("{table}.{ext}")).is_file(),
                "{table}.{ext} written"
            );
        }
    }
    if duckdb() {
        run_duckdb(SAME_ROWS, out, &columns_json());
    }
}

#[test]
fn every_format_holds_the_same_rows_with_the_declared_types() {
    let g = tempfile::tempdir().unwrap();
    generated(g.path());
    let out = tempfile::tempdir().unwrap();
    scan_all_formats(
        &[
            g.path().join("corpus.mbox").as_os_str(),
            os("--keys"),
            g.path().join("keys.zone").as_os_str(),
        ],
        out.path(),
        "2",
    );
    check_tables(out.path());
    let s = summary(out.path());
    assert_eq!(s["schema_version"], schema::SCHEMA_VERSION);
}

#[test]
fn the_dkimpy_trap_and_the_real_corpora_read_alike_in_every_format() {
    let Some(c) = corpora() else { return };
    let trap = c.join("dkimpy-signed-trap");
    let out = tempfile::tempdir().unwrap();
    scan_all_formats(
        &[
            trap.join("corpus.mbox").as_os_str(),
            os("--keys"),
            trap.join("keys.zone").as_os_str(),
        ],
        out.path(),
        "2",
    );
    check_tables(out.path());
    // The real corpora: attackers' subjects, broken charsets, formula-like cells.
    let out = tempfile::tempdir().unwrap();
    scan_all_formats(&[c.as_os_str()], out.path(), "2");
    check_tables(out.path());
}

#[test]
fn every_format_is_the_same_bytes_whatever_the_thread_count() {
    let g = tempfile::tempdir().unwrap();
    generated(g.path());
    let args = [
        g.path().join("corpus.mbox").into_os_string(),
        "--keys".into(),
        g.path().join("keys.zone").into_os_string(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    scan_all_formats(&args, one.path(), "1");
    scan_all_formats(&args, two.path(), "2");
    for (table, _) in tables() {
        for ext in ["csv", "parquet", "jsonl"] {
            let name = format!("{table}.{ext}");
            assert!(
                read(&one.path().join(&name)) == read(&two.path().join(&name)),
                "{name} differs between --threads 1 and 2"
            );
        }
    }
}

#[test]
fn no_column_is_an_sql_reserved_word() {
    for (table, cols) in tables() {
        for c in cols {
            assert!(
                !SQL_RESERVED.contains(&c.name),
                "{table}.{} is an SQL reserved word",
                c.name
            );
            assert!(
                c.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{table}.{} needs no quoting",
                c.name
            );
        }
    }
    // And DuckDB agrees: none of them is among its reserved keywords.
    if duckdb() {
        let names: Vec<&str> = tables()
            .into_iter()
            .flat_map(|(_, cols)| cols.into_iter().map(|c| c.name))
            .collect();
        let script = r#"
import duckdb, json, sys
names = set(json.loads(sys.argv[2]))
reserved = {r[0] for r in duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
clash = sorted(names & reserved)
assert not clash, f"reserved in DuckDB: {clash}"
"#;
        run_duckdb(
            script,
            Path::new("."),
            &serde_json::to_string(&names).unwrap(),
        );
    }
}

#[test]
fn an_unknown_format_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let o = scan(
        &[
            data_dir().join("mailbox-perl").as_os_str(),
            os("--format"),
            os("csv,xlsx"),
        ],
        out.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown format 'xlsx'"));
}

/// With CSV alone, message rows are spilled as CSV cells; with another format too, as typed
/// rows written out at the end: both give the same messages.csv, byte for byte.
#[test]
fn the_csv_fast_path_writes_what_the_typed_path_writes() {
    let g = tempfile::tempdir().unwrap();
    generated(g.path());
    let mut inputs = vec![g.path().join("corpus.mbox")];
    if let Some(c) = corpora() {
        inputs.push(c);
    }
    for raw in [false, true] {
        let mut args: Vec<&std::ffi::OsStr> = inputs.iter().map(|p| p.as_os_str()).collect();
        args.extend([
            os("--keys"),
            g.path().join("keys.zone").into_os_string().leak(),
        ]);
        if raw {
            args.push(os("--raw-cells"));
        }
        let fast = tempfile::tempdir().unwrap();
        let typed = tempfile::tempdir().unwrap();
        scan_ok(&args, fast.path());
        let mut with_jsonl = args.clone();
        with_jsonl.extend([os("--format"), os("jsonl,csv")]);
        scan_ok(&with_jsonl, typed.path());
        assert!(
            read(&fast.path().join("messages.csv")) == read(&typed.path().join("messages.csv")),
            "messages.csv differs between the CSV-only and the typed path (raw cells: {raw})"
        );
    }
}
