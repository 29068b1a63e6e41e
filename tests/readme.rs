//! The README's column tables are the column registry's: a test fails when they differ. Run with
//! `MAILCENSUS_UPDATE_README=1` to write the registry's tables into the README.

use mailcensus::campaign::{CAMPAIGN_COLUMNS, EVIDENCE_COLUMNS};
use mailcensus::schema::{self, ColumnInfo, RECEIVED_COLUMNS, SIGNATURE_COLUMNS};

fn tables() -> Vec<(&'static str, Vec<ColumnInfo>)> {
    vec![
        ("messages", schema::message_columns()),
        (
            "signatures",
            SIGNATURE_COLUMNS.iter().map(|c| c.info()).collect(),
        ),
        (
            "received",
            RECEIVED_COLUMNS.iter().map(|c| c.info()).collect(),
        ),
        (
            "campaigns",
            CAMPAIGN_COLUMNS.iter().map(|c| c.info()).collect(),
        ),
        (
            "campaign_evidence",
            EVIDENCE_COLUMNS.iter().map(|c| c.info()).collect(),
        ),
    ]
}

/// The README with every marked table replaced by the registry's.
fn with_registry_tables(readme: &str) -> String {
    let mut out = readme.to_string();
    for (name, columns) in tables() {
        let open = format!("<!-- columns:{name} -->\n");
        let close = "<!-- /columns -->";
        let start = out
            .find(&open)
            .unwrap_or_else(|| panic!("README has no {open:?} marker"))
            + open.len();
        let end = start
            + out[start..]
                .find(close)
                .unwrap_or_else(|| panic!("README's {name} table has no closing marker"));
        out.replace_range(start..end, &schema::markdown_table(&columns));
    }
    out
}

#[test]
fn readme_column_tables_are_the_registry() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let want = with_registry_tables(&readme);
    if std::env::var_os("MAILCENSUS_UPDATE_README").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    if readme != want {
        let first = readme
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "README's column tables differ from the registry (first at line {}): run \
             MAILCENSUS_UPDATE_README=1 cargo test --test readme",
            first + 1
        );
    }
}
