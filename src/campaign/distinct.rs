//! Distinct counts that stay small: exact up to [`EXACT_LIMIT`] values, then a HyperLogLog
//! sketch (2^12 registers, about 1.6% standard error). Both forms merge, so per-worker or
//! per-machine counts fold into one.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// Hashing for sets and maps keyed by values that are hashes already (evidence keys): one
/// multiply-rotate mix instead of SipHash.
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Keys are FNV values: mix once so the low bits the table uses are well spread.
        self.0 = (self.0 ^ n)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

type ValueSet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

/// Values counted exactly before switching to the sketch.
pub const EXACT_LIMIT: usize = 4096;
const P: u32 = 12;
const M: usize = 1 << P;

/// A distinct count of 64-bit hashed values.
#[derive(Debug, Clone, Default)]
pub struct Distinct {
    /// The first [`INLINE`] values, kept in place: most campaigns are small, and a few compares
    /// cost less than hashing into a table that must be allocated and grown.
    inline: [u64; INLINE],
    inline_len: u8,
    /// All values once there are more than [`INLINE`] (the inline ones moved here).
    exact: ValueSet,
    /// Registers once the exact set outgrew its limit.
    sketch: Option<Box<[u8; M]>>,
}

/// Values kept inline before a hash set is made.
const INLINE: usize = 8;

impl Distinct {
    /// Count `value` (already a good 64-bit hash; 0 is ignored as "none").
    pub fn insert(&mut self, value: u64) {
        if value == 0 {
            return;
        }
        if let Some(regs) = &mut self.sketch {
            add(regs, value);
            return;
        }
        if self.exact.is_empty() {
            let len = usize::from(self.inline_len);
            if self.inline[..len].contains(&value) {
                return;
            }
            if len < INLINE {
                self.inline[len] = value;
                self.inline_len += 1;
                return;
            }
            self.exact.extend(self.inline);
        }
        self.exact.insert(value);
        if self.exact.len() > EXACT_LIMIT {
            let mut regs = Box::new([0u8; M]);
            for &v in &self.exact {
                add(&mut regs, v);
            }
            self.exact = ValueSet::default();
            self.sketch = Some(regs);
        }
    }

    /// The values held exactly (none once the sketch took over).
    fn values(&self) -> impl Iterator<Item = u64> + '_ {
        let inline = if self.exact.is_empty() && self.sketch.is_none() {
            &self.inline[..usize::from(self.inline_len)]
        } else {
            &[]
        };
        inline.iter().chain(self.exact.iter()).copied()
    }

    /// Fold another count into this one.
    pub fn merge(&mut self, other: &Distinct) {
        match &other.sketch {
            None => other.values().for_each(|v| self.insert(v)),
            Some(theirs) => {
                let mut regs = self.sketch.take().unwrap_or_else(|| {
                    let mut r = Box::new([0u8; M]);
                    for v in self.values() {
                        add(&mut r, v);
                    }
                    r
                });
                for (a, b) in regs.iter_mut().zip(theirs.iter()) {
                    *a = (*a).max(*b);
                }
                self.exact = ValueSet::default();
                self.inline_len = 0;
                self.sketch = Some(regs);
            }
        }
    }

    /// Whether the count is exact.
    #[cfg(test)]
    fn is_exact(&self) -> bool {
        self.sketch.is_none()
    }

    /// The count: exact, or the HyperLogLog estimate (with the small-range correction).
    pub fn count(&self) -> u64 {
        let Some(regs) = &self.sketch else {
            return self.values().count() as u64;
        };
        let m = M as f64;
        let sum: f64 = regs.iter().map(|&r| 2f64.powi(-i32::from(r))).sum();
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let raw = alpha * m * m / sum;
        let zeros = regs.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        };
        estimate.round() as u64
    }
}

/// The values are FNV hashes, whose low bits are good but not avalanche-grade: mix first.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn add(regs: &mut [u8; M], value: u64) {
    let h = mix(value);
    let index = (h >> (64 - P)) as usize;
    let rest = (h << P) | (1 << (P - 1));
    let rank = rest.leading_zeros() as u8 + 1;
    if rank > regs[index] {
        regs[index] = rank;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_estimated_within_a_few_percent() {
        let mut d = Distinct::default();
        for v in 1..=1000u64 {
            d.insert(v);
            d.insert(v);
        }
        assert!(d.is_exact());
        assert_eq!(d.count(), 1000);
        for v in 1..=200_000u64 {
            d.insert(v);
        }
        assert!(!d.is_exact());
        let c = d.count() as f64;
        assert!((c - 200_000.0).abs() / 200_000.0 < 0.05, "estimate {c}");
    }

    #[test]
    fn inline_hash_set_and_sketch_count_alike_through_merges() {
        // Every size around the inline limit, merged in two orders, against a plain set.
        for n in 0..40u64 {
            for split in [0, n / 2, n] {
                let (mut a, mut b, mut whole) = (
                    Distinct::default(),
                    Distinct::default(),
                    Distinct::default(),
                );
                let value = |i: u64| (i % (n / 2 + 1)).wrapping_mul(0x9e37_79b9) + 1;
                for i in 0..n {
                    whole.insert(value(i));
                    if i < split {
                        a.insert(value(i));
                    } else {
                        b.insert(value(i));
                    }
                }
                let truth = (0..n)
                    .map(value)
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                assert_eq!(whole.count(), truth as u64, "n {n}");
                let mut ab = a.clone();
                ab.merge(&b);
                b.merge(&a);
                assert_eq!(
                    (ab.count(), b.count()),
                    (truth as u64, truth as u64),
                    "n {n}"
                );
            }
        }
    }

    #[test]
    fn merging_gives_the_count_of_the_union() {
        let mut a = Distinct::default();
        let mut b = Distinct::default();
        for v in 1..=3000u64 {
            a.insert(v);
        }
        for v in 2001..=5000u64 {
            b.insert(v);
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab.count(), ba.count());
        let c = ab.count() as f64;
        assert!((c - 5000.0).abs() / 5000.0 < 0.05, "estimate {c}");
        let mut small = Distinct::default();
        small.insert(7);
        small.merge(&Distinct::default());
        assert_eq!(small.count(), 1);
    }
}
