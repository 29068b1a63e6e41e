//! mailcensus: a census of very large mail corpora.
//!
//! Read mbox files, Maildir folders, `.eml` trees, compressed files and tar archives, and get one
//! typed [`Message`] per message — key headers, where it entered the mail system, whether its
//! DKIM signatures verify — plus, over the whole corpus, campaigns and EchoSpoofing-style relay
//! abuse. [`scan()`] writes the result tables (CSV, Parquet, JSON Lines) into a directory;
//! [`scan_messages`] hands the typed records to your code instead.
//!
//! ```
//! use mailcensus::{Message, ScanOptions, scan_messages};
//!
//! let dir = std::env::temp_dir().join(format!("mailcensus-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let mbox = dir.join("trap.mbox");
//! std::fs::write(
//!     &mbox,
//!     "From a@shop.example Mon May  6 00:10:11 2024\n\
//!      From: Shop <a@shop.example>\nSubject: Your order\n\nHello\n\n\
//!      From b@prize.example Mon May  6 00:11:00 2024\n\
//!      From: b@prize.example\nSubject: You won\n\nClick\n",
//! )?;
//! let opts = ScanOptions::builder().threads(2).max_header_bytes(64 << 10).build()?;
//! let mut seen = Vec::new();
//! let totals = scan_messages(&[mbox], &opts, &mut |m: &Message| {
//!     seen.push((m.from_domain.clone(), m.subject.clone(), m.received_at));
//!     true // go on
//! })?;
//! assert_eq!(totals.messages, 2);
//! assert_eq!(seen[0], ("shop.example".to_string(), "Your order".to_string(), Some(1714954211)));
//! assert_eq!(seen[1].1, "You won");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The pipeline runs in stages, one module each, read top to bottom:
//! [`input`] (find and sniff files, decompress streams) → [`split`] (mbox boundaries) →
//! [`message`] (one typed [`Message`] per message, from [`headers`], [`classify`] for the
//! Received chain and [`auth`] for DKIM) → [`campaign`] (campaigns and relay abuse, decided over
//! the whole corpus) → [`output`] (CSV, Parquet and JSON Lines files that appear only when
//! complete) and [`report`] (`report.html`, the page a researcher opens first). [`schema`] defines every output column once; [`aggregate`] holds the totals that
//! merge across workers; [`work`] is the unit of parallel work, and [`mod@scan`] wires the stages
//! across all cores. [`generate`] writes synthetic, DKIM-signed trap corpora with their ground
//! truth.

pub mod aggregate;
pub mod auth;
pub mod campaign;
pub mod classify;
pub mod cluster;
pub mod generate;
pub mod headers;
pub mod input;
pub mod message;
pub mod output;
pub mod report;
pub mod scan;
pub mod schema;
pub mod split;
pub mod summary;
pub mod work;

pub use aggregate::Totals;
pub use auth::{MessageVerdict, Policy, SigResult, SignatureVerdict, Verifier, VerifyAt};
pub use output::Formats;
pub use scan::{
    Cancel, MessageSink, OptionsBuilder, OptionsError, ScanError, ScanOptions, ScanReport, scan,
    scan_messages,
};
pub use schema::{Column, ColumnInfo, Decided, Message, SCHEMA_VERSION, Type, Value};
