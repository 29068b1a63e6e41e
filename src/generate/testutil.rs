//! Test helpers shared by the generator's unit tests: fast keys, default options, and a world
//! with its messages made in memory.

use std::path::PathBuf;

use rayon::prelude::*;

use super::GenerateOptions;
use super::keys::{GenKey, KeyKind, make_keys};
use super::message::{GenMessage, make_message};
use super::world::{World, make_world};

/// Fresh Ed25519 keys (fast to make), and copies of them for a second world.
pub(super) fn fast_keys() -> Vec<GenKey> {
    make_keys(None, Some(KeyKind::Ed25519)).expect("keys")
}

pub(super) fn copy_keys(keys: &[GenKey]) -> Vec<GenKey> {
    keys.iter()
        .map(|k| GenKey::build(k.id.clone(), k.kind, Some(k.private_der.clone())).unwrap())
        .collect()
}

/// The world of `opts` and its messages, made in memory.
pub(super) fn sample(opts: &GenerateOptions, keys: Vec<GenKey>) -> (World, Vec<GenMessage>) {
    let world = make_world(opts, keys);
    let msgs = (0..opts.messages)
        .into_par_iter()
        .map(|n| make_message(&world, opts.seed, n))
        .collect();
    (world, msgs)
}

pub(super) fn opts(messages: usize, seed: u64) -> GenerateOptions {
    GenerateOptions::new(messages, seed, PathBuf::from("unused"))
}
