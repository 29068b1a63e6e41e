//! mailcensus: a census of very large mail corpora.
//!
//! The pipeline runs in stages, one module each:
//! [`input`] (find and sniff files, decompress streams) → [`split`] (mbox boundaries) →
//! [`headers`] (header fields, decoding) → [`auth`] (DKIM verification) → [`classify`]
//! (Received chain: receipt time, client and origin IP, hop classes, relay and campaign evidence)
//! → [`aggregate`] (totals that merge across workers) and [`campaign`] (campaigns and relay
//! abuse, decided over the whole corpus) → [`output`] (files that appear only when complete). [`record`] turns one message into CSV rows, [`work`] is the unit of
//! parallel work, and [`scan`] wires the stages across all cores. [`generate`] writes synthetic,
//! DKIM-signed trap corpora with their ground truth.

pub mod aggregate;
pub mod auth;
pub mod campaign;
pub mod classify;
pub mod generate;
pub mod headers;
pub mod input;
pub mod message;
pub mod output;
pub mod scan;
pub mod schema;
pub mod split;
pub mod summary;
pub mod work;
