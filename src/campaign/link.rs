//! Linking: which messages belong to one operation, from the evidence keys they share.
//!
//! Takes every message's evidence keys (three times over, in chunks: to count which keys occur
//! together, to see whom each key speaks for, and to place each message) and gives every message
//! its group, and every group its id key. The method is described in [`super`] and in
//! `docs/campaigns.md`; this module holds its mechanics:
//!
//! 1. [`KeyTable`]: the keys seen in two or more messages (a key of one message links nothing),
//!    numbered in key order so that every later answer is independent of input order.
//! 2. [`PairTally`]: how many messages carry each pair of those keys.
//! 3. [`Evidence::build`]: the key graph. Two keys are joined when they occur together more often
//!    than chance would put them together (a Poisson tail test against independence, corrected
//!    for the number of pairs tested); then a key that alone joins two parts of the graph which
//!    each stand on their own is a *shared platform* and is taken out (articulation points, with
//!    the support rule of [`stands_alone`]), until none is left. The groups are what remains
//!    connected.
//! 4. [`OwnershipTally`]: whether a key speaks for its group: its messages that carry other
//!    corroborated evidence (a key of a group of two or more keys) pointing to another group are
//!    not more than the rest, and, for sending infrastructure (an origin network, a tenant), its
//!    messages without such evidence do not come from several independent sender organizations
//!    (each with a campaign's worth of them and none agreeing with the key otherwise).
//! 5. [`Evidence::place_in`]: a message belongs to the group of its most specific key that speaks
//!    for its group.

use super::{KeyMap, MIN_CAMPAIGN_MESSAGES};
use crate::classify::evidence::is_link;

/// Family-wise error rate of the association test over all pairs tested: a pair of keys is
/// joined only when independence would produce its co-occurrence count with a probability
/// below `FAMILY_ERROR / pairs tested` (Bonferroni).
pub const FAMILY_ERROR: f64 = 1e-3;

/// Messages a part of the graph needs, beyond those carrying the key under test, to count as an
/// operation of its own (the size of the smallest campaign).
const SUPPORT: u32 = MIN_CAMPAIGN_MESSAGES as u32;

/// Rounds of platform removal at most: removing platforms can expose another that ran in
/// parallel with them; the rounds stop as soon as one finds none.
const MAX_ROUNDS: usize = 16;

/// The keys seen in at least two messages, in key order.
pub(super) struct KeyTable {
    keys: Vec<u64>,
    count: Vec<u32>,
    index: KeyMap<u64, u32>,
}

impl KeyTable {
    /// The table of the keys in `counts` (key, messages) that occur at least twice.
    pub(super) fn new(counts: impl Iterator<Item = (u64, u32)>) -> KeyTable {
        let mut repeated: Vec<(u64, u32)> = counts.filter(|&(_, n)| n >= 2).collect();
        repeated.sort_unstable();
        let index = repeated
            .iter()
            .enumerate()
            .map(|(i, &(k, _))| (k, i as u32))
            .collect();
        KeyTable {
            keys: repeated.iter().map(|&(k, _)| k).collect(),
            count: repeated.iter().map(|&(_, n)| n).collect(),
            index,
        }
    }

    fn len(&self) -> usize {
        self.keys.len()
    }

    /// The numbers of a message's repeated keys, sorted, without duplicates, into `out`.
    fn numbers(&self, keys: &[u64], out: &mut Vec<u32>) {
        out.clear();
        out.extend(keys.iter().filter_map(|k| self.index.get(k).copied()));
        out.sort_unstable();
        out.dedup();
    }
}

/// Two key numbers as one map key (smaller first).
fn pair(a: u32, b: u32) -> u64 {
    (u64::from(a.min(b)) << 32) | u64::from(a.max(b))
}

/// Co-occurrence counts of repeated keys over a stretch of messages; stretches merge by sums.
#[derive(Default)]
pub(super) struct PairTally {
    pairs: KeyMap<u64, u32>,
    /// Messages carrying at least one repeated key.
    messages: u64,
    scratch: Vec<u32>,
}

impl PairTally {
    /// Count one message's keys.
    pub(super) fn add(&mut self, table: &KeyTable, keys: &[u64]) {
        let mut numbers = std::mem::take(&mut self.scratch);
        table.numbers(keys, &mut numbers);
        if !numbers.is_empty() {
            self.messages += 1;
        }
        for (i, &a) in numbers.iter().enumerate() {
            for &b in &numbers[i + 1..] {
                *self.pairs.entry(pair(a, b)).or_default() += 1;
            }
        }
        self.scratch = numbers;
    }

    /// Fold in the tally of another stretch (sums: the order of stretches does not matter).
    pub(super) fn merge(&mut self, other: PairTally) {
        self.messages += other.messages;
        if self.pairs.len() < other.pairs.len() {
            let mine = std::mem::replace(&mut self.pairs, other.pairs);
            for (p, n) in mine {
                *self.pairs.entry(p).or_default() += n;
            }
        } else {
            for (p, n) in other.pairs {
                *self.pairs.entry(p).or_default() += n;
            }
        }
    }
}

/// `ln(n!)`: summed exactly for small `n`, Stirling's series beyond (error below 1e-10).
fn ln_factorial(n: u32) -> f64 {
    if n < 64 {
        (2..=n).map(|i| f64::from(i).ln()).sum()
    } else {
        let x = f64::from(n);
        x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
            - 1.0 / (360.0 * x * x * x)
    }
}

/// `ln P(X >= c)` for X Poisson with mean `expected`, bounded from above (exact enough for a
/// test: the bound is within a factor `(c+1)/(c+1-expected)` of the tail). 0 when `c` is not
/// above the mean.
fn ln_poisson_tail(c: u32, expected: f64) -> f64 {
    let cf = f64::from(c);
    if expected <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if cf <= expected {
        return 0.0;
    }
    let ln_pmf = -expected + cf * expected.ln() - ln_factorial(c);
    let ratio = (cf + 1.0) / (cf + 1.0 - expected);
    (ln_pmf + ratio.ln()).min(0.0)
}

/// Whether two keys seen in `n_a` and `n_b` of `messages` messages, together in `c`, are
/// associated beyond chance at the corrected level `ln_level`.
fn associated(c: u32, n_a: u32, n_b: u32, messages: u64, ln_level: f64) -> bool {
    if c < 2 || messages == 0 {
        return false;
    }
    let expected = f64::from(n_a) * f64::from(n_b) / messages as f64;
    ln_poisson_tail(c, expected) < ln_level
}

/// Whether key `j` holds up a part of the graph on its own, relative to the key `v` under test:
/// at least [`SUPPORT`] of its messages do not carry `v`, and they are not fewer than those that
/// do (a part that mostly travels with `v` is `v`'s own, like the landing pages of one network).
/// A part must also be an operation, with two or more keys: a single key hanging on `v` is
/// corroborated by nothing on its side (often a platform that `v`'s operation uses more than
/// others do), and counting it would let removals cascade through an operation whose keys
/// only meet through each other.
fn stands_alone(count_j: u32, with_v: u32) -> bool {
    let without = count_j.saturating_sub(with_v);
    without >= SUPPORT && without >= with_v
}

/// What linking decided: per repeated key, whether it is a shared platform, its group and
/// whether it speaks for that group.
pub(super) struct Evidence {
    table: KeyTable,
    /// Per key: a shared platform (joins nothing, places nothing).
    platform: Vec<bool>,
    /// Per key: its group, the smallest key number connected to it.
    group: Vec<u32>,
    /// Per key: it speaks for its group (see [`OwnershipTally`]).
    speaks: Vec<bool>,
    /// Per group (by its number): it holds two or more keys, so its evidence is corroborated.
    corroborated: Vec<bool>,
    /// Per key: its place in the order [`Evidence::place_in`] prefers keys in (smaller first), or
    /// `u64::MAX` when it places nothing; made by [`Evidence::settle`].
    rank: Vec<u64>,
}

/// Adjacency lists of the association graph (compressed rows).
struct Graph {
    start: Vec<u32>,
    next: Vec<u32>,
}

impl Graph {
    fn new(nodes: usize, edges: &[(u32, u32)], removed: &[bool]) -> Graph {
        let mut degree = vec![0u32; nodes + 1];
        let live = |&&(a, b): &&(u32, u32)| !removed[a as usize] && !removed[b as usize];
        for &(a, b) in edges.iter().filter(live) {
            degree[a as usize] += 1;
            degree[b as usize] += 1;
        }
        let mut start = vec![0u32; nodes + 1];
        for i in 0..nodes {
            start[i + 1] = start[i] + degree[i];
        }
        let mut fill = start.clone();
        let mut next = vec![0u32; start[nodes] as usize];
        for &(a, b) in edges.iter().filter(live) {
            next[fill[a as usize] as usize] = b;
            fill[a as usize] += 1;
            next[fill[b as usize] as usize] = a;
            fill[b as usize] += 1;
        }
        Graph { start, next }
    }

    fn neighbours(&self, v: u32) -> &[u32] {
        &self.next[self.start[v as usize] as usize..self.start[v as usize + 1] as usize]
    }
}

impl Evidence {
    /// Build the association graph from the tally and take shared platforms out of it.
    pub(super) fn build(table: KeyTable, tally: &PairTally) -> Evidence {
        let nodes = table.len();
        let candidates = tally.pairs.values().filter(|&&c| c >= 2).count().max(1);
        let ln_level = (FAMILY_ERROR / candidates as f64).ln();
        let mut edges: Vec<(u32, u32)> = tally
            .pairs
            .iter()
            .filter_map(|(&p, &c)| {
                let (a, b) = ((p >> 32) as u32, p as u32);
                let (na, nb) = (table.count[a as usize], table.count[b as usize]);
                associated(c, na, nb, tally.messages, ln_level).then_some((a, b))
            })
            .collect();
        edges.sort_unstable();
        let with = |a: u32, b: u32| tally.pairs.get(&pair(a, b)).copied().unwrap_or(0);
        let mut platform = vec![false; nodes];
        let mut graph = Graph::new(nodes, &edges, &platform);
        for _ in 0..MAX_ROUNDS {
            let found = platforms(&graph, &table.keys, &table.count, &with, &platform);
            if found.is_empty() {
                break;
            }
            for v in found {
                platform[v as usize] = true;
            }
            graph = Graph::new(nodes, &edges, &platform);
        }
        let group = groups(&graph, nodes);
        let mut corroborated = vec![false; nodes];
        for (i, &g) in group.iter().enumerate() {
            if g as usize != i {
                corroborated[g as usize] = true;
            }
        }
        Evidence {
            table,
            platform,
            group,
            speaks: vec![true; nodes],
            corroborated,
            rank: Vec::new(),
        }
    }

    /// The key number of `key` when it links at all (repeated, not a platform).
    fn linking(&self, key: u64) -> Option<u32> {
        let i = *self.table.index.get(&key)?;
        (!self.platform[i as usize]).then_some(i)
    }

    /// Take the ownership tally: from now on a key places messages only if it speaks for its
    /// group.
    pub(super) fn settle(&mut self, tally: OwnershipTally) {
        // Sender organizations independent of a key: a campaign's worth of its messages with
        // no other evidence, and none of its messages with evidence agreeing with the key.
        let mut senders: KeyMap<u32, u32> = KeyMap::default();
        for ((key, _), (alone, agreeing)) in tally.by_sender {
            if alone >= SUPPORT && agreeing == 0 {
                *senders.entry(key).or_default() += 1;
            }
        }
        // A mailbox provider's network: mail of one organization leaves through that
        // organization's own servers from many addresses that each write little (a company's
        // gateway sends from a few addresses again and again).
        let mut by_organization: KeyMap<(u32, u64), (u32, u32)> = KeyMap::default();
        for ((key, organization, _), n) in tally.own_provider {
            let a = by_organization.entry((key, organization)).or_default();
            a.0 += 1;
            a.1 += n;
        }
        let mut providers: KeyMap<u32, ()> = KeyMap::default();
        for ((key, _), (distinct, sent)) in by_organization {
            if distinct >= SUPPORT && 2 * distinct >= sent {
                providers.insert(key, ());
            }
        }
        for (i, speaks) in self.speaks.iter_mut().enumerate() {
            let (agree, disagree) = tally.votes.get(&(i as u32)).copied().unwrap_or((0, 0));
            let independent_senders = senders.get(&(i as u32)).copied().unwrap_or(0);
            let provider = providers.contains_key(&(i as u32));
            // Messages with no other corroborated evidence do not contradict the key.
            let unclaimed = self.table.count[i].saturating_sub(agree + disagree);
            *speaks = agree + unclaimed >= disagree && independent_senders < 2 && !provider;
        }
        // Keys of corroborated groups first, then fewer messages, then the smaller number.
        self.rank = (0..self.speaks.len())
            .map(|i| {
                if self.platform[i] || !self.speaks[i] {
                    return u64::MAX;
                }
                let uncorroborated = !self.corroborated[self.group[i] as usize];
                (u64::from(uncorroborated) << 63)
                    | (u64::from(self.table.count[i]) << 32)
                    | i as u64
            })
            .collect();
    }

    /// The group a message belongs to: that of its most specific key (fewest messages, then
    /// smallest) among those that speak for their group, keys of corroborated groups first (a
    /// tenant seen a few times may not be associated with anything yet while the wave's networks
    /// and landing domains are), among the groups `accept` takes (a message whose most specific
    /// key's group is rejected as too small goes to its next key's). None when no key speaks.
    pub(super) fn place_in(&self, keys: &[u64], accept: impl Fn(u32) -> bool) -> Option<u32> {
        let mut best = u64::MAX;
        for k in keys {
            if let Some(&i) = self.table.index.get(k) {
                let rank = self.rank[i as usize];
                if rank < best && accept(self.group[i as usize]) {
                    best = rank;
                }
            }
        }
        (best != u64::MAX).then(|| self.group[(best & 0xffff_ffff) as usize])
    }

    /// Number of keys (and so of possible groups): group numbers are below it.
    pub(super) fn keys(&self) -> usize {
        self.table.len()
    }

    /// Whether `key` is evidence of `group` (a key of the group that is not a platform).
    pub(super) fn in_group(&self, key: u64, group: u32) -> bool {
        self.linking(key)
            .is_some_and(|i| self.group[i as usize] == group)
    }

    /// The id key of a group (a value of [`Evidence::place_in`]): its smallest key.
    pub(super) fn id_key(&self, group: u32) -> u64 {
        self.table.keys[group as usize]
    }

    /// Keys found to be shared platforms (for the run's report).
    pub(super) fn platforms(&self) -> usize {
        self.platform.iter().filter(|&&p| p).count()
    }
}

/// Who sent a message, as the ownership tally reads it (hashes, 0 when unknown).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sender {
    /// The From organization.
    pub organization: u64,
    /// The From address.
    pub address: u64,
    /// The origin host is named under the From organization (it left through its own
    /// provider's servers).
    pub through_own_provider: bool,
}

/// Whom each key speaks for, tallied over a stretch of messages; stretches merge by sums.
#[derive(Default)]
pub(super) struct OwnershipTally {
    /// Per key number: messages whose other evidence lies in the key's group, and messages
    /// whose other evidence lies only in other groups.
    votes: KeyMap<u32, (u32, u32)>,
    /// Per (sending-infrastructure key, sender organization): the key's messages with no other
    /// corroborated evidence, and those whose other evidence agrees with the key's group.
    by_sender: KeyMap<(u32, u64), (u32, u32)>,
    /// Per (origin network key, From organization, From address): messages that left through
    /// their sender's own provider from that network.
    own_provider: KeyMap<(u32, u64, u64), u32>,
    scratch: Vec<u32>,
}

impl OwnershipTally {
    /// Count one message: its keys, which of them are sending infrastructure (its tenant and
    /// origin network keys, 0 when none) and who sent it.
    pub(super) fn add(
        &mut self,
        evidence: &Evidence,
        keys: &[u64],
        infrastructure: [u64; 2],
        who: Sender,
    ) {
        let sender = who.organization;
        let mut linking = std::mem::take(&mut self.scratch);
        linking.clear();
        let mut has_own_destination = false;
        for &k in keys {
            match evidence.table.index.get(&k) {
                Some(&i) if !evidence.platform[i as usize] => linking.push(i),
                Some(_) => {}
                None => has_own_destination |= is_link(k),
            }
        }
        linking.sort_unstable();
        linking.dedup();
        for &k in &linking {
            let own = evidence.group[k as usize];
            // Other evidence counts when it is corroborated (its group has two or more keys):
            // one uncorroborated key cannot outvote another.
            let mut others = linking
                .iter()
                .filter(|&&j| j != k && evidence.corroborated[evidence.group[j as usize] as usize])
                .peekable();
            // A link key in a message that also links a destination of its own (a link seen in
            // no other message) is a reference the message shares, not where it leads: the
            // brand's real site in a phishing kit, an image host.
            let own_destination = is_link(evidence.table.keys[k as usize]) && has_own_destination;
            let alone = others.peek().is_none() && !own_destination;
            let agrees =
                !alone && !own_destination && others.any(|&j| evidence.group[j as usize] == own);
            if sender != 0
                && infrastructure.contains(&evidence.table.keys[k as usize])
                && (alone || agrees)
            {
                let s = self.by_sender.entry((k, sender)).or_default();
                if alone {
                    s.0 += 1;
                } else {
                    s.1 += 1;
                }
            }
            if who.through_own_provider
                && who.address != 0
                && evidence.table.keys[k as usize] == infrastructure[1]
            {
                *self
                    .own_provider
                    .entry((k, who.organization, who.address))
                    .or_default() += 1;
            }
            if alone {
                continue;
            }
            let v = self.votes.entry(k).or_default();
            if agrees {
                v.0 += 1;
            } else {
                v.1 += 1;
            }
        }
        self.scratch = linking;
    }

    pub(super) fn merge(&mut self, other: OwnershipTally) {
        for (k, (a, d)) in other.votes {
            let v = self.votes.entry(k).or_default();
            v.0 += a;
            v.1 += d;
        }
        for (k, (alone, agreeing)) in other.by_sender {
            let s = self.by_sender.entry(k).or_default();
            s.0 += alone;
            s.1 += agreeing;
        }
        for (k, n) in other.own_provider {
            *self.own_provider.entry(k).or_default() += n;
        }
    }
}

/// Whether key `j`, on one side of a link key `v`, is a destination of its own: a link key with a
/// campaign's worth of messages, narrower than `v`. Two destinations that never appear together,
/// joined only by a site both link to, are two operations referencing one site (the phished
/// brand's real pages, a shared redirector), even when each always carries that site. A broader
/// link hanging on `v` is the other way round: a platform `v`'s operation uses.
fn separate_destination(keys: &[u64], count: &[u32], v: u32, j: u32) -> bool {
    let (v, j) = (v as usize, j as usize);
    is_link(keys[v]) && is_link(keys[j]) && count[j] >= SUPPORT && count[j] < count[v]
}

/// The shared platforms of a graph: vertices whose removal leaves two or more parts that each
/// stand on their own ([`stands_alone`]) and hold two or more keys — or, around a link key,
/// hold a destination of their own ([`separate_destination`]). Vertices already `removed` are
/// not in the graph.
/// Articulation points by an iterative depth-first search (Hopcroft and Tarjan); the parts around
/// an articulation point are the subtrees of the children it separates, plus (when it is not the
/// root) the rest of its component.
fn platforms(
    graph: &Graph,
    keys: &[u64],
    count: &[u32],
    with: &impl Fn(u32, u32) -> u32,
    removed: &[bool],
) -> Vec<u32> {
    const UNSEEN: u32 = u32::MAX;
    let nodes = count.len();
    let mut disc = vec![UNSEEN; nodes];
    let mut low = vec![0u32; nodes];
    // Vertices in discovery order; a subtree is a contiguous run of it.
    let mut order: Vec<u32> = Vec::new();
    let mut subtree_end = vec![0u32; nodes];
    let mut found = Vec::new();
    let mut stack: Vec<(u32, u32, u32)> = Vec::new(); // (vertex, parent, next neighbour index)
    // Per vertex of the current component: the children it separates.
    let mut separated: Vec<(u32, u32)> = Vec::new();
    for root in 0..nodes as u32 {
        if disc[root as usize] != UNSEEN || removed[root as usize] {
            continue;
        }
        let component_start = order.len();
        separated.clear();
        disc[root as usize] = order.len() as u32;
        low[root as usize] = disc[root as usize];
        order.push(root);
        stack.push((root, UNSEEN, 0));
        while let Some(&mut (v, parent, ref mut at)) = stack.last_mut() {
            let neighbours = graph.neighbours(v);
            if let Some(&w) = neighbours.get(*at as usize) {
                *at += 1;
                if disc[w as usize] == UNSEEN {
                    disc[w as usize] = order.len() as u32;
                    low[w as usize] = disc[w as usize];
                    order.push(w);
                    stack.push((w, v, 0));
                } else if w != parent {
                    low[v as usize] = low[v as usize].min(disc[w as usize]);
                }
                continue;
            }
            stack.pop();
            subtree_end[v as usize] = order.len() as u32;
            if parent != UNSEEN {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
                if low[v as usize] >= disc[parent as usize] {
                    separated.push((parent, v));
                }
            }
        }
        let component = &order[component_start..];
        separated.sort_unstable();
        for run in separated.chunk_by(|a, b| a.0 == b.0) {
            let v = run[0].0;
            let is_root = v == root;
            if is_root && run.len() < 2 {
                continue;
            }
            let holds = |side: &mut dyn Iterator<Item = u32>| {
                let (mut keys_seen, mut standing, mut destination) = (0, false, false);
                for j in side {
                    keys_seen += 1;
                    standing |= stands_alone(count[j as usize], with(v, j));
                    destination |= separate_destination(keys, count, v, j);
                    if destination || (standing && keys_seen >= 2) {
                        return true;
                    }
                }
                false
            };
            let mut parts = 0;
            let mut inside: Vec<std::ops::Range<usize>> = Vec::new();
            for &(_, child) in run {
                let range = disc[child as usize] as usize..subtree_end[child as usize] as usize;
                inside.push(range.clone());
                if parts < 2 && holds(&mut order[range].iter().copied()) {
                    parts += 1;
                }
            }
            if parts < 2 && !is_root {
                // The rest of the component: everything outside v's separated subtrees (disjoint
                // runs of the discovery order, searched by their starts).
                inside.sort_unstable_by_key(|r| r.start);
                let outside = |&(i, &j): &(usize, &u32)| {
                    let at = component_start + i;
                    let before = inside.partition_point(|r| r.start <= at);
                    j != v && !(before > 0 && inside[before - 1].contains(&at))
                };
                let rest = holds(
                    &mut component
                        .iter()
                        .enumerate()
                        .filter(outside)
                        .map(|(_, &j)| j),
                );
                parts += usize::from(rest);
            }
            if parts >= 2 {
                found.push(v);
            }
        }
    }
    found.sort_unstable();
    found
}

/// Connected groups of a graph: each vertex gets the smallest vertex number of its component.
fn groups(graph: &Graph, nodes: usize) -> Vec<u32> {
    const NONE: u32 = u32::MAX;
    let mut group = vec![NONE; nodes];
    let mut stack = Vec::new();
    for root in 0..nodes as u32 {
        if group[root as usize] != NONE {
            continue;
        }
        group[root as usize] = root;
        stack.push(root);
        while let Some(v) = stack.pop() {
            for &w in graph.neighbours(v) {
                if group[w as usize] == NONE {
                    group[w as usize] = root;
                    stack.push(w);
                }
            }
        }
    }
    group
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the whole linking over messages given as key lists (sender 0), as `finish` does.
    fn link(messages: &[Vec<u64>]) -> (Evidence, Vec<Option<u32>>) {
        let mut counts: KeyMap<u64, u32> = KeyMap::default();
        for m in messages {
            let mut seen = m.clone();
            seen.sort_unstable();
            seen.dedup();
            for k in seen {
                *counts.entry(k).or_default() += 1;
            }
        }
        let table = KeyTable::new(counts.iter().map(|(&k, &n)| (k, n)));
        let mut tally = PairTally::default();
        for m in messages {
            tally.add(&table, m);
        }
        let mut evidence = Evidence::build(table, &tally);
        let mut own = OwnershipTally::default();
        for m in messages {
            own.add(&evidence, m, [0, 0], Sender::default());
        }
        evidence.settle(own);
        let placed = messages
            .iter()
            .map(|m| evidence.place_in(m, |_| true))
            .collect();
        (evidence, placed)
    }

    #[test]
    fn poisson_tail_matches_direct_sums() {
        for (c, mean) in [(3u32, 0.5f64), (10, 2.0), (40, 20.0), (200, 150.0)] {
            let mut pmf = (-mean).exp();
            let mut tail_below = 0.0;
            for i in 0..c {
                tail_below += pmf;
                pmf *= mean / f64::from(i + 1);
            }
            let exact = (1.0 - tail_below).max(1e-300).ln();
            let bound = ln_poisson_tail(c, mean);
            assert!(bound >= exact - 1e-6, "{c} {mean}: {bound} < {exact}");
            assert!(bound - exact < 2.5, "{c} {mean}: {bound} vs {exact}");
        }
        assert_eq!(ln_poisson_tail(2, 5.0), 0.0);
        let exact: f64 = (2..=100u32).map(|i| f64::from(i).ln()).sum();
        assert!((ln_factorial(100) - exact).abs() < 1e-8);
    }

    /// Campaigns A and B (their own landing key and network key), a wave W whose messages pick
    /// one of 12 tenants, 3 networks and 3 landing keys, and a platform P linked from a sixth of
    /// everything, one-off mail included.
    #[test]
    fn a_platform_used_by_everyone_joins_nothing_and_a_wave_is_one_group() {
        let messages = three_groups_and_one_offs(1200, |i| i % 6 == 5 || i % 6 == 2 && i % 4 == 0);
        let (_, placed) = link(&messages);
        check_groups(&messages, &placed);
    }

    /// The same with a platform that two campaigns use for 45% of their messages and nothing
    /// else uses: it is associated with both and found as a platform by the articulation test.
    #[test]
    fn a_platform_two_campaigns_lean_on_is_found_and_joins_nothing() {
        let messages = three_groups_and_one_offs(2400, |i| i % 4 < 2 && (i / 4) % 20 < 9);
        let (evidence, placed) = link(&messages);
        assert_eq!(evidence.platforms(), 1);
        assert!(evidence.platform[evidence.table.index[&7] as usize]);
        check_groups(&messages, &placed);
    }

    /// `count` messages: `i % 4` = 0 campaign A (a landing and a network key), 1 campaign B (one
    /// landing key, two networks), 2 a wave (12 tenants, 3 networks, 3 landing keys), 3 one-off
    /// mail; message `i` also carries the platform key 7 when `platform(i)`.
    fn three_groups_and_one_offs(count: u64, platform: impl Fn(u64) -> bool) -> Vec<Vec<u64>> {
        (0..count)
            .map(|i| {
                let mut m = match i % 4 {
                    0 => vec![10, 11],
                    1 => vec![20, 21 + i % 2],
                    2 => vec![100 + i % 12, 200 + i % 3, 300 + (i / 3) % 3],
                    _ => vec![1_000_000 + i],
                };
                if platform(i) {
                    m.push(7);
                }
                m
            })
            .collect()
    }

    /// Messages `i % 4` = 0, 1, 2 are three separate groups, 3 in none.
    fn check_groups(messages: &[Vec<u64>], placed: &[Option<u32>]) {
        let (a, b, w) = (placed[0].unwrap(), placed[1].unwrap(), placed[2].unwrap());
        assert!(a != b && b != w && a != w);
        for (i, g) in placed.iter().enumerate() {
            let expected = match i % 4 {
                0 => Some(a),
                1 => Some(b),
                2 => Some(w),
                _ => None,
            };
            assert_eq!(*g, expected, "message {i}: {:?}", messages[i]);
        }
    }

    /// Keys of one operation that only meet through each other (two networks serving three
    /// landing keys) stay one group; a key carried by every message of its group is not a
    /// platform.
    #[test]
    fn bipartite_operations_are_not_platforms() {
        let mut messages = Vec::new();
        for i in 0..300u64 {
            messages.push(vec![1 + i % 2, 10 + i % 3]);
            messages.push(vec![50, 60]); // another campaign, unrelated
        }
        let (evidence, placed) = link(&messages);
        assert_eq!(evidence.platforms(), 0);
        let first = placed[0].unwrap();
        for (i, g) in placed.iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(*g, Some(first));
            } else {
                assert_ne!(*g, Some(first));
                assert!(g.is_some());
            }
        }
    }

    /// A landing key whose every message comes from a different network and sender (forged
    /// From, botnet) is still one group.
    #[test]
    fn a_landing_key_alone_groups_its_messages() {
        let mut messages: Vec<Vec<u64>> = (0..40u64).map(|i| vec![5, 1000 + i]).collect();
        messages.extend((0..400u64).map(|i| vec![2000 + i % 200, 3000 + i % 7]));
        let (_, placed) = link(&messages);
        assert!(placed[..40].iter().all(|g| *g == placed[0] && g.is_some()));
    }

    /// An origin network whose messages carry no other evidence and come from several sender
    /// organizations that each send a few (a webmail's outgoing network, a smarthost several
    /// companies send through) groups nothing; one organization alone is one operation.
    #[test]
    fn a_network_of_independent_senders_speaks_for_none() {
        let messages: Vec<(Vec<u64>, u64)> = (0..30u64).map(|i| (vec![9], 70 + i % 5)).collect();
        let mut counts: KeyMap<u64, u32> = KeyMap::default();
        counts.insert(9, 30);
        let table = KeyTable::new(counts.iter().map(|(&k, &n)| (k, n)));
        let tally = PairTally::default();
        let mut evidence = Evidence::build(table, &tally);
        // Settle with each message's sender organization given by `organization`; then whether
        // every message is placed.
        let all_placed = |evidence: &mut Evidence, organization: &dyn Fn(u64) -> u64| {
            let mut own = OwnershipTally::default();
            for (m, sender) in &messages {
                let who = Sender {
                    organization: organization(*sender),
                    ..Sender::default()
                };
                own.add(evidence, m, [9, 0], who);
            }
            evidence.settle(own);
            messages
                .iter()
                .map(|(m, _)| evidence.place_in(m, |_| true).is_some())
                .collect::<Vec<_>>()
        };
        assert!(all_placed(&mut evidence, &|s| s).iter().all(|p| !p));
        // One sender alone is one operation.
        assert!(all_placed(&mut evidence, &|_| 70).iter().all(|p| *p));
    }

    /// Link keys are even, sender keys odd (as [`crate::classify::evidence::key`] makes them).
    fn link_key(n: u64) -> u64 {
        n * 2
    }
    fn sender_key(n: u64) -> u64 {
        n * 2 + 1
    }

    /// Four phishing kits, each at its own address (a link key) and sent from its own network,
    /// all linking the phished brand's real site: the site joins nothing, each kit is a group.
    #[test]
    fn a_brand_site_linked_by_separate_kits_joins_none_of_them() {
        let site = link_key(1);
        let mut messages = Vec::new();
        for kit in 0..4u64 {
            for i in 0..12u64 {
                let mut m = vec![link_key(100 + kit), sender_key(200 + kit)];
                if i % 3 != 2 {
                    m.push(site);
                }
                messages.push(m);
            }
        }
        // The brand's own mail: its site and its own network; and unrelated mail around.
        for _ in 0..10 {
            messages.push(vec![site, sender_key(300)]);
        }
        for i in 0..600u64 {
            messages.push(vec![link_key(400 + i % 20), sender_key(500 + i % 20)]);
        }
        let (evidence, placed) = link(&messages);
        assert_eq!(evidence.platforms(), 1);
        assert!(evidence.platform[evidence.table.index[&site] as usize]);
        for kit in 0..4usize {
            let first = placed[kit * 12];
            assert!(first.is_some());
            assert!(placed[kit * 12..kit * 12 + 12].iter().all(|g| *g == first));
            for other in 0..kit {
                assert_ne!(placed[other * 12], first, "kits {other} and {kit}");
            }
        }
    }

    /// An image host or shared site linked from messages that each lead somewhere of their own
    /// (a link seen once) speaks for none of them, while a landing key that is the only link of
    /// its messages (forged senders, botnet networks) groups them.
    #[test]
    fn a_shared_link_beside_one_off_destinations_groups_nothing() {
        let shared = link_key(1);
        let landing = link_key(2);
        let mut messages: Vec<Vec<u64>> = (0..30u64)
            .map(|i| vec![shared, link_key(1_000 + i), sender_key(5_000 + i)])
            .collect();
        messages.extend((0..30u64).map(|i| vec![landing, sender_key(6_000 + i)]));
        let (_, placed) = link(&messages);
        assert!(placed[..30].iter().all(Option::is_none));
        assert!(placed[30..].iter().all(|g| *g == placed[30] && g.is_some()));
    }

    /// A network whose mail leaves through its senders' own provider from many addresses that
    /// each write once (a webmail server) speaks for none; the same network sending one address's
    /// newsletter again and again is one operation.
    #[test]
    fn a_mailbox_providers_network_speaks_for_none() {
        let net = sender_key(9);
        let mut counts: KeyMap<u64, u32> = KeyMap::default();
        counts.insert(net, 12);
        let table = KeyTable::new(counts.iter().map(|(&k, &n)| (k, n)));
        let mut evidence = Evidence::build(table, &PairTally::default());
        let settle = |evidence: &mut Evidence, address: &dyn Fn(u64) -> u64| {
            let mut own = OwnershipTally::default();
            for i in 0..12u64 {
                let who = Sender {
                    organization: 5,
                    address: address(i),
                    through_own_provider: true,
                };
                own.add(evidence, &[net], [0, net], who);
            }
            evidence.settle(own);
        };
        settle(&mut evidence, &|i| 100 + i);
        assert_eq!(evidence.place_in(&[net], |_| true), None);
        settle(&mut evidence, &|i| 100 + i % 2);
        assert!(evidence.place_in(&[net], |_| true).is_some());
    }

    #[test]
    fn merged_tallies_equal_one_tally() {
        let messages: Vec<Vec<u64>> = (0..500u64)
            .map(|i| vec![i % 7, 10 + i % 5, 20 + i % 3])
            .collect();
        let mut counts: KeyMap<u64, u32> = KeyMap::default();
        for m in &messages {
            for &k in m {
                *counts.entry(k).or_default() += 1;
            }
        }
        let table = KeyTable::new(counts.iter().map(|(&k, &n)| (k, n)));
        let mut whole = PairTally::default();
        let (mut a, mut b) = (PairTally::default(), PairTally::default());
        for (i, m) in messages.iter().enumerate() {
            whole.add(&table, m);
            if i < 170 {
                a.add(&table, m)
            } else {
                b.add(&table, m)
            }
        }
        a.merge(b);
        assert_eq!(a.messages, whole.messages);
        let mut x: Vec<_> = a.pairs.into_iter().collect();
        let mut y: Vec<_> = whole.pairs.into_iter().collect();
        x.sort_unstable();
        y.sort_unstable();
        assert_eq!(x, y);
    }
}
