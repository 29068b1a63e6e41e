//! Random numbers for the generator: splitmix64, seeded per message (and per purpose), and the
//! small random values built on it.
//!
//! Takes a seed and a stream number; gives [`Rng`] (uniform draws, ranges, coin flips, picks)
//! and helpers that draw one value each: hex strings, GUIDs, tokens, public IPv4 addresses and
//! /24 networks, and `unique` for values not already taken.

pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub(super) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    pub(super) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub(super) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

pub(super) fn hex(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap_or('0'))
        .collect()
}

pub(super) fn guid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 12)
    )
}

pub(super) fn net24(rng: &mut Rng) -> String {
    let ip = public_ip(rng);
    ip.rsplit_once('.')
        .map_or(ip.clone(), |(n, _)| n.to_string())
}

/// `count` values from `make`, none already in `taken` (which then holds them too).
pub(super) fn unique<T: Ord + Clone>(
    rng: &mut Rng,
    count: usize,
    taken: &mut std::collections::BTreeSet<T>,
    mut make: impl FnMut(&mut Rng) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let v = make(rng);
        if taken.insert(v.clone()) {
            out.push(v);
        }
    }
    out
}

pub(super) fn public_ip(rng: &mut Rng) -> String {
    const FIRST_OCTETS: [u8; 14] = [
        23, 37, 45, 62, 77, 91, 104, 138, 147, 185, 193, 198, 212, 217,
    ];
    format!(
        "{}.{}.{}.{}",
        rng.pick(&FIRST_OCTETS),
        rng.range(1, 254),
        rng.range(0, 255),
        rng.range(1, 254)
    )
}

pub(super) fn token(rng: &mut Rng, len: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len).map(|_| A[rng.below(A.len())] as char).collect()
}
