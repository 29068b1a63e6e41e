//! The relay-abuse baseline: which Microsoft 365 tenants each brand's aligned mail comes from.
//!
//! Takes every message's facts in input order, and gives, once the corpus is read, whether a
//! tenant carries a rare share of a brand's mail (`tenant-not-brand-baseline`, when the tenant's
//! own domain is not stated). Everything kept is a count or a set union, so it merges in any
//! order.

use std::collections::{HashMap, HashSet};

use crate::classify::relay::bits;
use crate::message::MessageFacts;

/// A tenant carrying less than this share of a brand's Microsoft 365 mail is "rare" for it.
pub const BASELINE_SHARE: f64 = 0.10;

/// A brand needs this many Microsoft 365 messages before its baseline says anything.
pub const BASELINE_MIN_MESSAGES: u32 = 10;

/// Which Microsoft 365 tenants each brand's aligned mail usually comes from.
#[derive(Debug, Default)]
pub(super) struct Baseline {
    /// (brand, tenant) → Microsoft 365 messages with an aligned pass.
    brand_tenant: HashMap<(u64, u64), u32>,
    brand_total: HashMap<u64, u32>,
    /// (brand, tenant) pairs where the tenant's own domain is the brand's.
    own_tenant: HashSet<(u64, u64)>,
}

impl Baseline {
    pub(super) fn add(&mut self, f: &MessageFacts) {
        if f.relay.bits & bits::M365 != 0 && f.brand != 0 && f.tenant != 0 && f.aligned_pass {
            *self.brand_tenant.entry((f.brand, f.tenant)).or_default() += 1;
            *self.brand_total.entry(f.brand).or_default() += 1;
            if f.relay.bits & bits::OWN_TENANT != 0 {
                self.own_tenant.insert((f.brand, f.tenant));
            }
        }
    }

    /// Whether the tenant carries a rare share of the brand's aligned Microsoft 365 mail.
    pub(super) fn rare_tenant(&self, brand: u64, tenant: u64) -> bool {
        if brand == 0 || tenant == 0 || self.own_tenant.contains(&(brand, tenant)) {
            return false;
        }
        let total = self.brand_total.get(&brand).copied().unwrap_or(0);
        if total < BASELINE_MIN_MESSAGES {
            return false;
        }
        let seen = self
            .brand_tenant
            .get(&(brand, tenant))
            .copied()
            .unwrap_or(0);
        f64::from(seen) < BASELINE_SHARE * f64::from(total)
    }
}
