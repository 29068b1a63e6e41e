//! Linking: which messages belong together, by union-find over their evidence keys.
//!
//! Takes each message's sender family and evidence keys (twice, in input order: once to link
//! within families, once to find the groups that several keys join across families) and gives
//! every message a group, and every group its id key (the smallest key in it). The two stages
//! are described in [`super`]; this module holds their mechanics.

use super::{KeyMap, KeySet, MAX_GROUPS_PER_KEY, MIN_SHARED_KEYS};

/// The union-find over (family-scoped) keys.
pub(super) struct Linker {
    /// Keys seen with too many sender families: they link nothing.
    ubiquitous: KeySet<u64>,
    /// Scoped key → node.
    index: KeyMap<u64, u32>,
    parent: Vec<u32>,
    /// Per node: its key; at a root, the smallest key of the group.
    min_key: Vec<u64>,
    /// Scratch for one message's scoped keys.
    scoped: Vec<u64>,
}

impl Linker {
    pub(super) fn new(ubiquitous: KeySet<u64>) -> Linker {
        Linker {
            ubiquitous,
            index: KeyMap::default(),
            parent: Vec::new(),
            min_key: Vec::new(),
            scoped: Vec::new(),
        }
    }

    /// Whether a key may link messages at all.
    pub(super) fn links(&self, key: &u64) -> bool {
        !self.ubiquitous.contains(key)
    }

    /// Stage one: link a message's keys within its sender family.
    pub(super) fn link_within_family(&mut self, family: u64, keys: &[u64]) {
        let mut scoped = std::mem::take(&mut self.scoped);
        scoped.clear();
        scoped.extend(
            keys.iter()
                .filter(|k| self.links(k))
                .map(|&k| scoped_key(k, family)),
        );
        let mut first: Option<u32> = None;
        for &k in &scoped {
            let i = *self.index.entry(k).or_insert_with(|| {
                self.parent.push(self.parent.len() as u32);
                self.min_key.push(k);
                self.parent.len() as u32 - 1
            });
            match first {
                None => first = Some(i),
                Some(f) => union(&mut self.parent, &mut self.min_key, f, i),
            }
        }
        self.scoped = scoped;
    }

    /// Point every node straight at its root, so [`Linker::group_of`] and [`Linker::root`]
    /// answer without changing anything (and from several threads at once). Call after the last
    /// link or join.
    pub(super) fn flatten(&mut self) {
        for i in 0..self.parent.len() as u32 {
            let root = find(&mut self.parent, i);
            self.parent[i as usize] = root;
        }
    }

    /// The group (root node) of a message, None when none of its keys links. Only after
    /// [`Linker::flatten`].
    pub(super) fn group_of(&self, family: u64, keys: &[u64]) -> Option<u32> {
        let node = keys
            .iter()
            .find(|k| self.links(k))
            .and_then(|&k| self.index.get(&scoped_key(k, family)))
            .copied()?;
        Some(self.root(node))
    }

    /// The root of a node. Only after [`Linker::flatten`].
    pub(super) fn root(&self, node: u32) -> u32 {
        let parent = self.parent[node as usize];
        debug_assert_eq!(self.parent[parent as usize], parent, "flatten first");
        parent
    }

    /// Merge two groups ([`Linker::flatten`] again before asking for groups).
    pub(super) fn join(&mut self, a: u32, b: u32) {
        union(&mut self.parent, &mut self.min_key, a, b);
    }

    /// The id key of a group (a root from [`Linker::group_of`]).
    pub(super) fn id_key(&self, group: u32) -> u64 {
        self.min_key[group as usize]
    }
}

/// Stage two's tally: which groups each key joins.
#[derive(Default)]
pub(super) struct FamilyMerger {
    key_groups: KeyMap<u64, Vec<u32>>,
}

impl FamilyMerger {
    /// Note that the message in `group` carries `keys`.
    pub(super) fn add(&mut self, linker: &Linker, group: u32, keys: &[u64]) {
        for k in keys.iter().filter(|k| linker.links(k)) {
            let groups = self.key_groups.entry(*k).or_default();
            if groups.len() <= MAX_GROUPS_PER_KEY && !groups.contains(&group) {
                groups.push(group);
            }
        }
    }

    /// Fold in the tally of a later stretch of the corpus. Keeps what adding those messages
    /// here would have kept: every group of a key while it has at most [`MAX_GROUPS_PER_KEY`],
    /// and past that a key counts for none either way.
    pub(super) fn merge(&mut self, other: FamilyMerger) {
        for (key, theirs) in other.key_groups {
            let groups = self.key_groups.entry(key).or_default();
            for g in theirs {
                if groups.len() <= MAX_GROUPS_PER_KEY && !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
    }

    /// The pairs of groups that at least [`MIN_SHARED_KEYS`] keys join, sorted (the result of
    /// the unions does not depend on their order; sorting keeps runs byte-reproducible anyway).
    /// A key joining more than [`MAX_GROUPS_PER_KEY`] groups is shared infrastructure and counts
    /// for none.
    pub(super) fn joins(self) -> Vec<(u32, u32)> {
        let mut shared: KeyMap<(u32, u32), u32> = KeyMap::default();
        for groups in self.key_groups.values() {
            if groups.len() < 2 || groups.len() > MAX_GROUPS_PER_KEY {
                continue;
            }
            for (i, &a) in groups.iter().enumerate() {
                for &b in &groups[i + 1..] {
                    *shared.entry((a.min(b), a.max(b))).or_default() += 1;
                }
            }
        }
        let mut joins: Vec<(u32, u32)> = shared
            .into_iter()
            .filter(|&(_, n)| n >= MIN_SHARED_KEYS)
            .map(|(pair, _)| pair)
            .collect();
        joins.sort_unstable();
        joins
    }
}

/// A key as seen within one sender family (stage one links only inside a family).
fn scoped_key(key: u64, family: u64) -> u64 {
    let mut x = key ^ family.rotate_left(29);
    x ^= x >> 31;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ (x >> 29)).max(1)
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let p = parent[i as usize];
        parent[i as usize] = parent[p as usize];
        i = p;
    }
    i
}

fn union(parent: &mut [u32], min_key: &mut [u64], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra == rb {
        return;
    }
    // The root is the node with the smaller key, so the group's id needs no extra state.
    let (root, child) = if min_key[ra as usize] <= min_key[rb as usize] {
        (ra, rb)
    } else {
        (rb, ra)
    };
    parent[child as usize] = root;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_tallies_join_what_one_tally_joins() {
        // Groups 0..12; key k joins groups k..k+3 in stretch A and k+1..k+4 in stretch B, key 50
        // joins every group (too many: counts for none).
        let mut l = Linker::new(KeySet::default());
        for g in 0..12u64 {
            l.link_within_family(g + 1, &[1000 + g]);
        }
        l.flatten();
        let group = |l: &Linker, g: u64| l.group_of(g + 1, &[1000 + g]).unwrap();
        let mut whole = FamilyMerger::default();
        let (mut a, mut b) = (FamilyMerger::default(), FamilyMerger::default());
        for k in 0..8u64 {
            for g in k..k + 3 {
                whole.add(&l, group(&l, g), &[k, k + 1, 50]);
                a.add(&l, group(&l, g), &[k, k + 1, 50]);
            }
            for g in k + 1..k + 4 {
                whole.add(&l, group(&l, g), &[k, k + 1, 50]);
                b.add(&l, group(&l, g), &[k, k + 1, 50]);
            }
        }
        a.merge(b);
        let joins = whole.joins();
        assert!(!joins.is_empty());
        assert_eq!(a.joins(), joins);
    }

    #[test]
    fn union_find_keeps_the_smallest_key_as_root() {
        let mut parent = vec![0, 1, 2, 3];
        let mut min_key = vec![40, 10, 30, 20];
        union(&mut parent, &mut min_key, 0, 2);
        union(&mut parent, &mut min_key, 3, 1);
        assert_eq!(min_key[find(&mut parent, 0) as usize], 30);
        union(&mut parent, &mut min_key, 2, 3);
        for i in 0..4 {
            assert_eq!(min_key[find(&mut parent, i) as usize], 10);
        }
    }

    #[test]
    fn families_link_apart_and_merge_on_two_shared_keys() {
        let mut ubiquitous = KeySet::default();
        ubiquitous.insert(99);
        let mut l = Linker::new(ubiquitous);
        // Family 1: two messages share key 5. Family 2: one message with keys 5 and 6, another
        // with 6. Key 99 links nothing.
        l.link_within_family(1, &[5, 99]);
        l.link_within_family(1, &[5, 7]);
        l.link_within_family(2, &[5, 6]);
        l.link_within_family(2, &[6, 99]);
        l.flatten();
        let g1 = l.group_of(1, &[5, 99]).unwrap();
        assert_eq!(l.group_of(1, &[5, 7]), Some(g1));
        let g2 = l.group_of(2, &[6]).unwrap();
        assert_ne!(g1, g2, "stage one keeps families apart");
        assert_eq!(l.group_of(3, &[99]), None);
        // One shared key (5) does not merge the families; two (5 and 7) do.
        let mut m = FamilyMerger::default();
        m.add(&l, g1, &[5, 99]);
        m.add(&l, g2, &[5, 6]);
        assert!(m.joins().is_empty());
        let mut m = FamilyMerger::default();
        m.add(&l, g1, &[5, 7]);
        m.add(&l, g2, &[5, 6, 7]);
        let joins = m.joins();
        assert_eq!(joins, vec![(g1.min(g2), g1.max(g2))]);
        for (a, b) in joins {
            l.join(a, b);
        }
        l.flatten();
        assert_eq!(l.group_of(1, &[5]), l.group_of(2, &[6]));
    }
}
