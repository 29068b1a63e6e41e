//! Key files on any bytes (zone files, `name "value"` lines, DNS caches): loading never fails
//! hard, and what was loaded, written in the line format (`--keys-out`) and read back, is the
//! same key store.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailcensus::auth::keys::KeyStore;

type Contents = (Vec<(String, Vec<String>)>, Vec<String>, Vec<(String, &'static str)>);

fn contents(store: &KeyStore) -> Contents {
    (
        store
            .iter()
            .map(|(n, rs)| (n.to_string(), rs.iter().map(|r| r.value.clone()).collect()))
            .collect(),
        store.negatives().map(str::to_string).collect(),
        store.failures().map(|(n, f)| (n.to_string(), f.as_str())).collect(),
    )
}

fuzz_target!(|data: &[u8]| {
    let mut store = KeyStore::new();
    let _ = store.load_bytes(data, "fuzz");
    let mut written = Vec::new();
    store.write_lines(&mut written).unwrap();
    let mut again = KeyStore::new();
    let _ = again.load_bytes(&written, "again");
    assert_eq!(contents(&store), contents(&again), "written:\n{}", String::from_utf8_lossy(&written));
    let _ = KeyStore::new().load_embedded(data, "fuzz");
});
