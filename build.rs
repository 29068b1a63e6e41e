//! Marks the builds that can reach the test services .ci/run starts (a loopback DNS server, a
//! Slurm cluster, a headless browser): without them, the tests that need one are compiled as ignored, with the reason,
//! so `cargo test` shows them as ignored instead of passing tests that did nothing.

fn main() {
    for (var, cfg) in [
        ("MAILCENSUS_TEST_DNS", "mailcensus_test_dns"),
        ("MAILCENSUS_TEST_SLURM", "mailcensus_test_slurm"),
        ("MAILCENSUS_TEST_BROWSER", "mailcensus_test_browser"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
