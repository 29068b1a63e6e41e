//! Stage 6b, group: campaigns and relay abuse, decided over the whole corpus.
//!
//! Takes each message's [`MessageFacts`] (made by the workers: evidence keys from
//! [`crate::classify::evidence`], relay evidence from [`crate::classify::relay`], a few hashed
//! values to count) in input order, and gives, once the corpus is read: the last three
//! `messages.csv` columns (`relay_abuse`, `relay_abuse_reasons`, `campaign`), `campaigns.csv`,
//! `timeline.csv` and `timeline.svg`.
//!
//! **Method** (in full, with its parameters and why each has its value, in `docs/campaigns.md`).
//! Messages are linked by the evidence keys they share (landing domains and link addresses,
//! Microsoft 365 tenants, origin networks; [`crate::classify::evidence`]). A key seen in one
//! message links nothing. Two keys are joined when they occur together more often than chance
//! would put them together (a Poisson test against independence, corrected for the number of
//! pairs tested): an actor's tenants, injector networks and landing domains travel together, while
//! a shortener, a tracker or a CDN appears with every campaign in proportion to its size. A key
//! that still alone joins two parts of the graph that each stand on their own is a shared
//! platform and is taken out. A message then belongs to the group of its most specific key that
//! speaks for that group (its messages are not mostly claimed by another operation's corroborated
//! evidence, and, for an origin network or a tenant, its messages without other evidence do not
//! come from several independent sender organizations: a webmail's outgoing network). A campaign is a group of at
//! least [`MIN_CAMPAIGN_MESSAGES`] messages. Sender domains play no part: a wave spoofing six
//! brands is linked by what the actor controls, and forged From domains cannot split a campaign.
//! The campaign id is the smallest key of the group, in hex: it depends only on the evidence,
//! not on input order or the thread count, and the same campaign gets the same id in another
//! corpus that holds the same evidence.
//!
//! **Relay abuse** (the EchoSpoofing pattern, in general form): a From-aligned DKIM pass, a path
//! through Microsoft 365 followed by a secure email gateway (or an address in Microsoft's
//! high-risk delivery pool), and a tenant that is not the brand's: its domain belongs to another
//! organization (`foreign-tenant`), or, when the tenant's domain is not stated, the tenant is not
//! one the brand was seen with under its own name and carries under [`BASELINE_SHARE`] of the
//! brand's mail through Microsoft 365 (`tenant-not-brand-baseline`).
//!
//! **Memory** grows with the number of distinct evidence keys and campaigns, not with messages:
//! per-message facts go to a temporary file beside the output (about 150 bytes a message: hashes,
//! keys, the From domain and the subject) and are read back in order; distinct counts per campaign
//! are exact up to 4,096 values and a HyperLogLog sketch beyond ([`distinct`]). The linking
//! keeps one count per key seen twice or more and one per pair of such keys seen together.
//!
//! **Passes** once the corpus is read, each over chunks of 2,048 messages in parallel with
//! tallies merged by sums: which keys occur together, whom each key speaks for, how large each
//! group is; then the final rows (chunks in parallel, written in order) while the campaign
//! counters run as one task per share of the campaigns, each seeing its campaigns' messages in
//! input order: the result is the same for any number of threads.
//!
//! **Merging.** Everything kept per key and per brand is a count or a set union, so the state of
//! two workers or two machines folds into the same answer in any order.

pub mod chart;
pub mod distinct;
mod link;
mod parallel;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::classify::relay::{RelayEvidence, bits};
use crate::message::{Facts, MessageFacts};
use crate::output::{Formats, OutputError, PendingFile, Rows, TableFiles, spill};
use crate::schema::{self, Column, DECIDED_COLUMNS, Decided, MESSAGE_COLUMNS, Table, Type, Value};
use distinct::Distinct;
use link::{Evidence, KeyTable, OwnershipTally, PairTally};

/// Groups smaller than this are not campaigns (their messages get `-`).
pub const MIN_CAMPAIGN_MESSAGES: u64 = 3;
pub use link::FAMILY_ERROR;
/// A campaign is reported as a relay-abuse wave when more than this share of its messages are
/// relay abuse (a majority: the wave is what most of its mail is).
pub const WAVE_SHARE: f64 = 0.5;
/// A tenant carrying less than this share of a brand's Microsoft 365 mail is "rare" for it.
pub const BASELINE_SHARE: f64 = 0.10;
/// A brand needs this many Microsoft 365 messages before its baseline says anything.
pub const BASELINE_MIN_MESSAGES: u32 = 10;

/// One campaign as the `campaigns` table shows it.
pub struct CampaignRow<'a> {
    stats: &'a CampaignStats,
    peak_day: Option<i64>,
    peak_day_messages: u64,
    top_brands: String,
    top_from_domains: String,
}

impl<'a> CampaignRow<'a> {
    fn of(stats: &'a CampaignStats) -> CampaignRow<'a> {
        let (peak_day, peak_day_messages) = stats
            .per_day
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(a.0)))
            .map_or((None, 0), |(d, (n, _))| (Some(*d), *n));
        CampaignRow {
            stats,
            peak_day,
            peak_day_messages,
            top_brands: top_text(&stats.top_brands, TOP_BRANDS),
            top_from_domains: top_text(&stats.top_from, TOP_FROM_DOMAINS),
        }
    }
}

/// The `campaigns` table.
pub enum CampaignTable {}
impl Table for CampaignTable {
    type Row<'a> = CampaignRow<'a>;
}

macro_rules! count_column {
    ($name:literal, $meaning:literal, $get:expr) => {
        Column {
            name: $name,
            ty: Type::Int,
            nullable: false,
            meaning: $meaning,
            get: $get,
        }
    };
}

/// Columns of `campaigns`, one row per campaign, largest first.
pub const CAMPAIGN_COLUMNS: &[Column<CampaignTable>] = &[
    Column {
        name: "campaign",
        ty: Type::Text,
        nullable: false,
        meaning: "the campaign id (16 hex digits)",
        get: |r| Value::Text(&r.stats.id),
    },
    Column {
        name: "kind",
        ty: Type::Text,
        nullable: false,
        meaning: "`relay-abuse-wave` when more than half of its messages are relay abuse, else `campaign`",
        get: |r| Value::Text(r.stats.kind()),
    },
    count_column!("messages", "its messages", |r| Value::Int(Some(
        r.stats.messages
    ))),
    Column {
        name: "first_seen",
        ty: Type::Time,
        nullable: true,
        meaning: "its first receipt time, UTC",
        get: |r| Value::Time(r.stats.first_seen),
    },
    Column {
        name: "last_seen",
        ty: Type::Time,
        nullable: true,
        meaning: "its last receipt time, UTC",
        get: |r| Value::Time(r.stats.last_seen),
    },
    Column {
        name: "peak_day",
        ty: Type::Day,
        nullable: true,
        meaning: "its busiest UTC day",
        get: |r| Value::Day(r.peak_day),
    },
    count_column!(
        "peak_day_messages",
        "its messages that day",
        |r| Value::Int(Some(r.peak_day_messages))
    ),
    count_column!("brands", "distinct From organizations", |r| Value::Int(
        Some(r.stats.brands.count())
    )),
    Column {
        name: "top_brands",
        ty: Type::List { separator: " " },
        nullable: true,
        meaning: "the eight commonest From organizations as `name:count`: the brands a wave spoofed",
        get: |r| Value::List(&r.top_brands),
    },
    count_column!("from_domains", "distinct From domains", |r| Value::Int(
        Some(r.stats.from_domains.count())
    )),
    Column {
        name: "top_from_domains",
        ty: Type::List { separator: " " },
        nullable: true,
        meaning: "the three commonest From domains as `name:count`",
        get: |r| Value::List(&r.top_from_domains),
    },
    count_column!("tenants", "distinct Microsoft 365 tenants", |r| Value::Int(
        Some(r.stats.tenants.count())
    )),
    count_column!(
        "origin_ips",
        "distinct origin addresses (the injectors)",
        |r| { Value::Int(Some(r.stats.origin_ips.count())) }
    ),
    count_column!("origin_nets", "distinct origin networks", |r| Value::Int(
        Some(r.stats.origin_nets.count())
    )),
    count_column!(
        "landing_domains",
        "distinct link keys that are evidence of this campaign (platforms and one-off links left out)",
        |r| Value::Int(Some(r.stats.landing.count()))
    ),
    count_column!("recipients", "distinct first recipients", |r| Value::Int(
        Some(r.stats.recipients.count())
    )),
    count_column!("dkim_pass", "messages whose DKIM verdict is pass", |r| {
        Value::Int(Some(r.stats.dkim[1]))
    }),
    count_column!(
        "dkim_fail",
        "messages whose DKIM verdict is a failure",
        |r| { Value::Int(Some(r.stats.dkim[2])) }
    ),
    count_column!("dkim_none", "unsigned messages (or no verdict)", |r| {
        Value::Int(Some(r.stats.dkim[0]))
    }),
    count_column!(
        "aligned_pass",
        "messages with a passing signature aligned with the From domain",
        |r| Value::Int(Some(r.stats.aligned_pass))
    ),
    count_column!("relay_abuse", "relay-abuse messages", |r| Value::Int(Some(
        r.stats.relay_abuse
    ))),
    Column {
        name: "relay_abuse_share",
        ty: Type::Share,
        nullable: false,
        meaning: "their share of the campaign (three decimals in CSV)",
        get: |r| Value::Share(r.stats.relay_abuse_share()),
    },
    Column {
        name: "example_subject",
        ty: Type::Text,
        nullable: true,
        meaning: "the subject of its first message in input order",
        get: |r| Value::Text(&r.stats.example_subject),
    },
];

/// Columns of `timeline.csv`.
pub const TIMELINE_COLUMNS: [&str; 4] = ["day", "campaign", "messages", "relay_abuse"];

use distinct::KeyHasher;

type KeyMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// The corpus-wide campaign and baseline state; fed unit by unit in input order.
pub struct Grouping {
    /// Per-message facts, read back by [`Grouping::finish`]; never committed.
    side_file: PendingFile,
    messages: u64,
    /// Bytes written to the facts file, and of stage-one rows, so far.
    facts_bytes: u64,
    rows_bytes: u64,
    /// Where every [`CHUNK_MESSAGES`] messages begin, for the parallel passes of `finish`.
    chunks: Vec<ChunkStart>,
    /// Messages carrying each key.
    keys: KeyMap<u64, u32>,
    baseline: Baseline,
}

/// Messages per chunk of the group stage's parallel passes: the unit of work and of the memory
/// in flight (nothing a chunk yields depends on where the corpus was cut). One entry per chunk
/// is the only state kept per message count (16 bytes per 2,048 messages).
const CHUNK_MESSAGES: u64 = 2048;

/// Where a chunk of messages starts in the facts file and among the stage-one rows (after the
/// header line).
#[derive(Debug, Clone, Copy)]
struct ChunkStart {
    facts_at: u64,
    rows_at: u64,
}

/// A chunk's byte ranges in both scratch files.
#[derive(Debug, Clone)]
struct Chunk {
    facts: std::ops::Range<u64>,
    rows: std::ops::Range<u64>,
}

/// Which Microsoft 365 tenants each brand's aligned mail usually comes from.
#[derive(Debug, Default)]
struct Baseline {
    /// (brand, tenant) → Microsoft 365 messages with an aligned pass.
    brand_tenant: HashMap<(u64, u64), u32>,
    brand_total: HashMap<u64, u32>,
    /// (brand, tenant) pairs where the tenant's own domain is the brand's.
    own_tenant: HashSet<(u64, u64)>,
}

impl Baseline {
    fn add(&mut self, f: &MessageFacts) {
        if f.relay.bits & bits::M365 != 0 && f.brand != 0 && f.tenant != 0 && f.aligned_pass {
            *self.brand_tenant.entry((f.brand, f.tenant)).or_default() += 1;
            *self.brand_total.entry(f.brand).or_default() += 1;
            if f.relay.bits & bits::OWN_TENANT != 0 {
                self.own_tenant.insert((f.brand, f.tenant));
            }
        }
    }

    /// Whether the tenant carries a rare share of the brand's aligned Microsoft 365 mail.
    fn rare_tenant(&self, brand: u64, tenant: u64) -> bool {
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

/// One message as a campaign counts it: its facts, its keys, its day, whether it is relay abuse
/// and its From domain.
struct Counted<'a> {
    r: &'a Record,
    keys: &'a [u64],
    day: Option<i64>,
    abuse: bool,
    from_text: &'a [u8],
}

/// One campaign's counters.
#[derive(Debug, Default)]
pub struct CampaignStats {
    id: String,
    messages: u64,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    per_day: BTreeMap<i64, (u64, u64)>,
    origin_ips: Distinct,
    origin_nets: Distinct,
    recipients: Distinct,
    from_domains: Distinct,
    top_from: TopCounts,
    brands: Distinct,
    top_brands: TopCounts,
    landing: Distinct,
    dkim: [u64; 3],
    aligned_pass: u64,
    relay_abuse: u64,
    tenants: Distinct,
    example_subject: String,
}

impl CampaignStats {
    /// Count one message of the campaign.
    /// `landing_domains` counts the link keys that are evidence of the campaign's own group.
    fn add(&mut self, m: Counted<'_>, evidence: &Evidence, group: u32) {
        let Counted {
            r,
            keys,
            day,
            abuse,
            from_text,
        } = m;
        self.messages += 1;
        if r.at != i64::MIN {
            self.first_seen = Some(self.first_seen.map_or(r.at, |t| t.min(r.at)));
            self.last_seen = Some(self.last_seen.map_or(r.at, |t| t.max(r.at)));
        }
        if let Some(d) = day {
            let e = self.per_day.entry(d).or_default();
            e.0 += 1;
            e.1 += u64::from(abuse);
        }
        self.origin_ips.insert(r.origin_ip);
        self.origin_nets.insert(r.origin_net);
        self.recipients.insert(r.recipient);
        self.from_domains.insert(r.from_domain);
        if r.from_domain != 0 {
            self.top_from
                .add(r.from_domain, || String::from_utf8_lossy(from_text).into());
        }
        self.brands.insert(r.brand);
        if r.brand != 0 {
            self.top_brands.add(r.brand, || {
                crate::auth::organizational_domain(&String::from_utf8_lossy(from_text)).into()
            });
        }
        for &k in keys {
            if k != r.tenant && k != r.origin_net && evidence.in_group(k, group) {
                self.landing.insert(k);
            }
        }
        self.dkim[usize::from(r.dkim.min(2))] += 1;
        self.aligned_pass += u64::from(r.aligned);
        self.relay_abuse += u64::from(abuse);
        self.tenants.insert(r.tenant);
    }

    fn relay_abuse_share(&self) -> f64 {
        self.relay_abuse as f64 / self.messages.max(1) as f64
    }

    /// `relay-abuse-wave` when most of the campaign is relay abuse, else `campaign`.
    fn kind(&self) -> &'static str {
        if self.relay_abuse_share() > WAVE_SHARE {
            "relay-abuse-wave"
        } else {
            "campaign"
        }
    }

    /// The campaign as summary.json and the end-of-run lines name it.
    fn summary(&self) -> LargestCampaign {
        LargestCampaign {
            campaign: self.id.clone(),
            kind: self.kind(),
            messages: self.messages,
            relay_abuse: self.relay_abuse,
            brands: self
                .top_brands
                .top(TOP_BRANDS)
                .into_iter()
                .map(|(name, _)| name.to_string())
                .collect(),
            tenants: self.tenants.count(),
            origin_nets: self.origin_nets.count(),
            landing_domains: self.landing.count(),
            first_seen: self.first_seen.map(rfc3339).unwrap_or_default(),
            last_seen: self.last_seen.map(rfc3339).unwrap_or_default(),
            example_subject: self.example_subject.clone(),
        }
    }
}

/// Brands named in `top_brands` (and per wave in summary.json).
const TOP_BRANDS: usize = 8;
/// From domains named in `top_from_domains`.
const TOP_FROM_DOMAINS: usize = 3;

/// `name:count` of the `n` commonest, space-separated.
fn top_text(counts: &TopCounts, n: usize) -> String {
    counts
        .top(n)
        .iter()
        .map(|(name, count)| format!("{name}:{count}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the grouping found, for summary.json and the end-of-run lines.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CampaignReport {
    pub campaigns: u64,
    pub messages_in_campaigns: u64,
    pub relay_abuse: u64,
    pub relay_abuse_candidates: u64,
    /// Campaigns most of whose messages are relay abuse.
    pub relay_abuse_waves: u64,
    /// Evidence keys found to be shared platforms (they link nothing).
    pub shared_platforms: u64,
    /// The relay-abuse waves, largest first (at most [`REPORTED_WAVES`]).
    pub waves: Vec<LargestCampaign>,
    /// The largest other campaigns (at most 10).
    pub largest: Vec<LargestCampaign>,
}

/// Relay-abuse waves listed in summary.json at most.
pub const REPORTED_WAVES: usize = 100;

/// One campaign as summary.json names it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LargestCampaign {
    pub campaign: String,
    /// `relay-abuse-wave` or `campaign`.
    pub kind: &'static str,
    pub messages: u64,
    pub relay_abuse: u64,
    /// Its commonest From organizations.
    pub brands: Vec<String>,
    pub tenants: u64,
    pub origin_nets: u64,
    pub landing_domains: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub example_subject: String,
}

/// The finished files of the group stage, still pending (committed with the rest of the run).
pub struct GroupOutput {
    /// The `messages` table's files.
    pub messages: Vec<PendingFile>,
    /// `campaigns` in each format, `timeline.csv`, `timeline.svg`.
    pub files: Vec<PendingFile>,
    pub report: CampaignReport,
}

/// Passes at most that reject groups too small to be campaigns (each pass only rejects; two or
/// three settle real corpora). Should the limit be reached, groups still too small are left out
/// with their messages.
const MAX_PLACEMENT_ROUNDS: usize = 8;

/// Bytes of a facts record before its keys.
const RECORD_FIXED: usize = 80;

fn io_err(path: &Path) -> impl Fn(io::Error) -> OutputError + '_ {
    move |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    }
}

impl Grouping {
    /// Start a grouping whose per-message facts go to a temporary file in `dir`.
    pub fn new(dir: &Path) -> Result<Grouping, OutputError> {
        let side_file = PendingFile::create(dir, "campaign-facts.bin")?;
        Ok(Grouping {
            side_file,
            messages: 0,
            facts_bytes: 0,
            rows_bytes: 0,
            chunks: Vec::new(),
            keys: KeyMap::default(),
            baseline: Baseline::default(),
        })
    }

    /// Take one unit's facts (units must come in input order).
    pub fn add_unit(&mut self, facts: &Facts) -> Result<(), OutputError> {
        for f in &facts.facts {
            if self.messages.is_multiple_of(CHUNK_MESSAGES) {
                self.chunks.push(ChunkStart {
                    facts_at: self.facts_bytes,
                    rows_at: self.rows_bytes,
                });
            }
            self.messages += 1;
            let (keys, from_text, subject) = facts.parts(f);
            self.side_file.write_all(&Record::encode(
                f,
                keys.len(),
                from_text.len(),
                subject.len(),
            ))?;
            self.side_file.write_all(from_text)?;
            self.side_file.write_all(subject)?;
            for k in keys {
                self.side_file.write_all(&k.to_le_bytes())?;
                let n = self.keys.entry(*k).or_default();
                *n = n.saturating_add(1);
            }
            self.facts_bytes +=
                (RECORD_FIXED + from_text.len() + subject.len() + 8 * keys.len()) as u64;
            self.rows_bytes += u64::from(f.row_len);
            self.baseline.add(f);
        }
        Ok(())
    }

    /// Decide campaigns and relay abuse, and write the final `messages` table (from the
    /// messages' typed rows spilled to `spilled`, one per fact, in order) in each of `formats`,
    /// `campaigns`, `timeline.csv` and `timeline.svg` into `dir`, all pending. The passes over
    /// the messages run in chunks on `pool`; the answer does not depend on its size.
    pub fn finish(
        mut self,
        spilled: &Path,
        dir: &Path,
        formats: Formats,
        raw_cells: bool,
        pool: &rayon::ThreadPool,
    ) -> Result<GroupOutput, OutputError> {
        let facts_path = self.side_file.temp_path().to_path_buf();
        self.side_file.flush()?;
        let facts = Scratch::open(&facts_path)?;
        let rows = Scratch::open(spilled)?;
        let rows_start = 0u64;
        let chunks: Vec<Chunk> = self
            .chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let next = self.chunks.get(i + 1);
                Chunk {
                    facts: c.facts_at..next.map_or(self.facts_bytes, |n| n.facts_at),
                    rows: rows_start + c.rows_at
                        ..rows_start + next.map_or(self.rows_bytes, |n| n.rows_at),
                }
            })
            .collect();
        let read_facts = |c: &Chunk| facts.read(&c.facts);
        let ahead = 2 * pool.current_num_threads() + 1;

        // The keys seen twice or more, numbered in key order.
        let table = KeyTable::new(self.keys.iter().map(|(&k, &n)| (k, n)));
        self.keys = KeyMap::default();
        let pass = Pass {
            pool,
            chunks: &chunks,
            ahead,
            facts_path: &facts_path,
            read: &read_facts,
        };
        // Which keys occur together; then the association graph without shared platforms.
        let pairs = pass.tally(
            |t: &mut PairTally, _, keys| t.add(&table, keys),
            PairTally::merge,
        )?;
        let mut evidence = Evidence::build(table, &pairs);
        drop(pairs);
        // Whom each key speaks for.
        let ownership = pass.tally(
            |t: &mut OwnershipTally, r, keys| {
                let sender = link::Sender {
                    organization: r.brand,
                    address: r.sender,
                    through_own_provider: r.origin_is_senders,
                };
                t.add(&evidence, keys, [r.tenant, r.origin_net], sender)
            },
            OwnershipTally::merge,
        )?;
        evidence.settle(ownership);
        // Which groups are campaigns: a group left with fewer than [`MIN_CAMPAIGN_MESSAGES`]
        // is rejected and its messages go to their next key's group; repeated until no group is
        // left that small (rejections only move messages into the groups that remain, so sizes
        // there only grow).
        let mut rejected = vec![false; evidence.keys()];
        let mut group_size = vec![0u64; evidence.keys()];
        for _ in 0..MAX_PLACEMENT_ROUNDS {
            let placed = pass.tally(
                |sizes: &mut KeyMap<u32, u64>, _, keys| {
                    if let Some(g) = evidence.place_in(keys, |g| !rejected[g as usize]) {
                        *sizes.entry(g).or_default() += 1;
                    }
                },
                |sizes, other| {
                    for (g, n) in other {
                        *sizes.entry(g).or_default() += n;
                    }
                },
            )?;
            group_size.iter_mut().for_each(|n| *n = 0);
            let mut small = false;
            for (g, n) in placed {
                group_size[g as usize] = n;
                if n < MIN_CAMPAIGN_MESSAGES {
                    rejected[g as usize] = true;
                    small = true;
                }
            }
            if !small {
                break;
            }
        }

        // Final pass. Rows: chunks in parallel, written in order. Campaign counters: one task
        // per share of the campaigns (by group), each reading the whole corpus in input order
        // and counting only its own campaigns, so every campaign is counted exactly as one
        // sequential pass would (its example subject is its first message's, its From domain
        // summary sees the messages in order) whatever the number of threads.
        let mut failure: Option<OutputError> = None;
        let message_columns = schema::message_columns();
        let mut messages_files = TableFiles::create(dir, "messages", &message_columns, formats)?;
        let mut outside: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        let mut report = CampaignReport::default();
        let decide = Decide {
            spill: spill::Spill::for_formats(formats, raw_cells),
            raw_cells,
            evidence: &evidence,
            group_size: &group_size,
            rejected: &rejected,
            baseline: &self.baseline,
        };
        let shares = pool.current_num_threads().max(1);
        // Row buffers go round: a fresh megabyte costs a page fault per page.
        let spare_buffers: std::sync::Mutex<Vec<Rows>> = std::sync::Mutex::default();
        let counted = std::thread::scope(|scope| {
            let counting = scope.spawn(|| {
                use rayon::prelude::*;
                pool.install(|| {
                    (0..shares)
                        .into_par_iter()
                        .map(|share| -> Result<Vec<CampaignStats>, OutputError> {
                            let mut counter = CampaignCounter::new(&decide, share, shares);
                            for c in &chunks {
                                counter.chunk(&read_facts(c)?, &facts_path)?;
                            }
                            Ok(counter.campaigns)
                        })
                        .collect::<Vec<_>>()
                })
            });
            parallel::in_order(
                pool,
                chunks.len(),
                ahead,
                |i| -> Result<DecidedRows, OutputError> {
                    let c = &chunks[i];
                    let facts_buf = read_facts(c)?;
                    let rows_buf = rows.read(&c.rows)?;
                    let buffer = spare_buffers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop()
                        .unwrap_or_else(|| Rows::new(&message_columns, formats, raw_cells));
                    decide.rows(&facts_buf, &facts_path, &rows_buf, spilled, buffer)
                },
                |decided| {
                    let d = match decided
                        .and_then(|mut d| messages_files.write(&mut d.rows).map(|()| d))
                    {
                        Ok(d) => d,
                        Err(e) => {
                            failure = Some(e);
                            return false;
                        }
                    };
                    report.relay_abuse += d.relay_abuse;
                    report.relay_abuse_candidates += d.candidates;
                    for (day, (n, a)) in d.outside {
                        let e = outside.entry(day).or_default();
                        e.0 += n;
                        e.1 += a;
                    }
                    spare_buffers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(d.rows);
                    true
                },
            );
            counting.join()
        });
        if let Some(e) = failure {
            return Err(e);
        }
        let counted = counted.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let mut campaigns: Vec<CampaignStats> = Vec::new();
        for share in counted {
            campaigns.extend(share?);
        }

        // campaigns.csv, largest first (ties: id).
        campaigns.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.id.cmp(&b.id)));
        report.campaigns = campaigns.len() as u64;
        report.messages_in_campaigns = campaigns.iter().map(|c| c.messages).sum();
        let campaign_columns: Vec<schema::ColumnInfo> =
            CAMPAIGN_COLUMNS.iter().map(Column::info).collect();
        let mut campaigns_files = TableFiles::create(dir, "campaigns", &campaign_columns, formats)?;
        let mut campaign_rows = Rows::new(&campaign_columns, formats, raw_cells);
        for c in &campaigns {
            let row = CampaignRow::of(c);
            campaign_rows.push(CAMPAIGN_COLUMNS.iter().map(|col| (col.get)(&row)));
        }
        campaigns_files.write(&mut campaign_rows)?;

        let timeline = timeline_csv(&campaigns, &outside);
        let mut timeline_file = PendingFile::create(dir, "timeline.csv")?;
        timeline_file.write_all(&timeline)?;

        let series = chart::Series::from_campaigns(
            campaigns
                .iter()
                .map(|c| (c.id.as_str(), c.messages, &c.per_day)),
            &outside,
        );
        let mut svg_file = PendingFile::create(dir, "timeline.svg")?;
        svg_file.write_all(chart::render(&series).as_bytes())?;

        let is_wave = |c: &&CampaignStats| c.kind() == "relay-abuse-wave";
        report.relay_abuse_waves = campaigns.iter().filter(is_wave).count() as u64;
        report.shared_platforms = evidence.platforms() as u64;
        report.waves = campaigns
            .iter()
            .filter(is_wave)
            .take(REPORTED_WAVES)
            .map(CampaignStats::summary)
            .collect();
        report.largest = campaigns
            .iter()
            .filter(|c| !is_wave(c))
            .take(10)
            .map(CampaignStats::summary)
            .collect();
        // The facts file is scratch: dropping it removes it.
        drop(self.side_file);
        let mut files = campaigns_files.finish()?;
        files.extend([timeline_file, svg_file]);
        Ok(GroupOutput {
            messages: messages_files.finish()?,
            files,
            report,
        })
    }
}

/// One pass over the facts file: chunks on the pool, tallies merged in chunk order.
struct Pass<'a, R> {
    pool: &'a rayon::ThreadPool,
    chunks: &'a [Chunk],
    ahead: usize,
    facts_path: &'a Path,
    read: &'a R,
}

impl<R> Pass<'_, R>
where
    R: Fn(&Chunk) -> Result<Vec<u8>, OutputError> + Sync,
{
    /// Tally every message with `each` (one tally per chunk, in parallel) and fold the chunks'
    /// tallies together with `merge`, in chunk order.
    fn tally<T: Send + Default>(
        &self,
        each: impl Fn(&mut T, &Record, &[u64]) + Sync,
        mut merge: impl FnMut(&mut T, T),
    ) -> Result<T, OutputError> {
        let mut total = T::default();
        let mut failure = None;
        parallel::in_order(
            self.pool,
            self.chunks.len(),
            self.ahead,
            |i| -> Result<T, OutputError> {
                let buf = (self.read)(&self.chunks[i])?;
                let mut t = T::default();
                for_each_record(&buf, self.facts_path, |r, keys, _, _| each(&mut t, r, keys))?;
                Ok(t)
            },
            |tallied| match tallied {
                Ok(t) => {
                    merge(&mut total, t);
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            },
        );
        match failure {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }
}

/// What the final pass needs, shared read-only by the chunks.
struct Decide<'a> {
    /// How the message rows were spilled.
    spill: spill::Spill,
    raw_cells: bool,
    evidence: &'a Evidence,
    /// Messages placed in each group, by group number, and the groups rejected as too small.
    group_size: &'a [u64],
    rejected: &'a [bool],
    baseline: &'a Baseline,
}

/// One chunk's share of the final `messages` table.
struct DecidedRows {
    /// Its final rows.
    rows: Rows,
    /// Messages in no campaign, by day.
    outside: BTreeMap<i64, (u64, u64)>,
    relay_abuse: u64,
    candidates: u64,
}

impl Decide<'_> {
    /// The message's relay evidence with the corpus baseline applied, and whether it is abuse.
    fn relay(&self, r: &Record) -> (RelayEvidence, bool) {
        let mut relay = RelayEvidence { bits: r.bits };
        if relay.is_candidate()
            && relay.bits & bits::FOREIGN_TENANT == 0
            && relay.bits & bits::OWN_TENANT == 0
            && self.baseline.rare_tenant(r.brand, r.tenant)
        {
            relay.bits |= bits::TENANT_NOT_BASELINE;
        }
        let abuse = relay.is_abuse();
        (relay, abuse)
    }

    /// The message's campaign: the group of its most specific speaking key among the groups not
    /// rejected as too small.
    fn campaign(&self, keys: &[u64]) -> Option<u32> {
        self.evidence
            .place_in(keys, |g| !self.rejected[g as usize])
            .filter(|&g| self.group_size[g as usize] >= MIN_CAMPAIGN_MESSAGES)
    }

    /// The final rows of one chunk: its facts records and its spilled rows, in the same order;
    /// written into `rows` (spare ones, emptied first).
    fn rows(
        &self,
        facts: &[u8],
        facts_path: &Path,
        spilled: &[u8],
        spilled_path: &Path,
        mut rows: Rows,
    ) -> Result<DecidedRows, OutputError> {
        rows.clear();
        let mut d = DecidedRows {
            rows,
            outside: BTreeMap::new(),
            relay_abuse: 0,
            candidates: 0,
        };
        let types = || MESSAGE_COLUMNS.iter().map(|c| c.ty);
        let csv_cells = matches!(self.spill, spill::Spill::Csv { .. });
        let mut values: Vec<Value<'_>> = Vec::with_capacity(MESSAGE_COLUMNS.len());
        let (mut reasons, mut id) = (Vec::new(), Vec::new());
        let mut at = 0usize;
        let mut damaged = false;
        for_each_record(facts, facts_path, |r, keys, _, _| {
            let Some(row) = spilled.get(at..at + r.row_len as usize) else {
                damaged = true;
                return;
            };
            at += r.row_len as usize;
            if damaged
                || (csv_cells && !row.ends_with(b"\n"))
                || (!csv_cells && spill::decode(row, types(), &mut values) != Ok(row.len()))
            {
                damaged = true;
                return;
            }
            let (relay, abuse) = self.relay(r);
            d.candidates += u64::from(relay.is_candidate());
            d.relay_abuse += u64::from(abuse);
            let campaign = self.campaign(keys);
            if campaign.is_none() && r.at != i64::MIN {
                let e = d.outside.entry(r.at.div_euclid(86_400)).or_default();
                e.0 += 1;
                e.1 += u64::from(abuse);
            }
            reasons.clear();
            relay.write_reasons(&mut reasons);
            id.clear();
            match campaign {
                Some(g) => push_id(&mut id, self.evidence.id_key(g)),
                None => id.push(b'-'),
            }
            let decided = Decided {
                relay_abuse: Some(abuse),
                // Both are ASCII the tool wrote itself.
                relay_abuse_reasons: std::str::from_utf8(&reasons).unwrap_or_default(),
                campaign: std::str::from_utf8(&id).unwrap_or_default(),
            };
            let decided_values = DECIDED_COLUMNS.iter().map(|c| (c.get)(&decided));
            if csv_cells {
                // The row's own cells as spilled, then the decided ones, as one CSV row.
                let out = &mut d.rows.csv;
                out.extend_from_slice(&row[..row.len() - 1]);
                for v in decided_values {
                    out.push(b',');
                    crate::output::csv::write_value(out, v, self.raw_cells);
                }
                out.push(b'\n');
            } else {
                d.rows.push(values.iter().copied().chain(decided_values));
            }
        })?;
        if damaged || at != spilled.len() {
            return Err(io_err(spilled_path)(io::Error::new(
                io::ErrorKind::InvalidData,
                "spilled rows and campaign facts disagree",
            )));
        }
        Ok(d)
    }
}

/// Counts the campaigns of one share (groups `g` with `g % shares == share`), message by
/// message in input order.
struct CampaignCounter<'a> {
    decide: &'a Decide<'a>,
    share: u32,
    shares: u32,
    campaigns: Vec<CampaignStats>,
    index: KeyMap<u32, usize>,
}

impl<'a> CampaignCounter<'a> {
    fn new(decide: &'a Decide<'a>, share: usize, shares: usize) -> Self {
        CampaignCounter {
            decide,
            share: share as u32,
            shares: shares as u32,
            campaigns: Vec::new(),
            index: KeyMap::default(),
        }
    }

    /// Count the messages of one chunk of facts.
    fn chunk(&mut self, facts: &[u8], facts_path: &Path) -> Result<(), OutputError> {
        for_each_record(facts, facts_path, |r, keys, from_text, subject| {
            let Some(g) = self.decide.campaign(keys) else {
                return;
            };
            if g % self.shares != self.share {
                return;
            }
            let (_, abuse) = self.decide.relay(r);
            let campaigns = &mut self.campaigns;
            let c = *self.index.entry(g).or_insert_with(|| {
                let mut id = Vec::with_capacity(16);
                push_id(&mut id, self.decide.evidence.id_key(g));
                campaigns.push(CampaignStats {
                    id: String::from_utf8(id).unwrap_or_default(),
                    example_subject: String::from_utf8_lossy(subject).into_owned(),
                    ..CampaignStats::default()
                });
                campaigns.len() - 1
            });
            let day = (r.at != i64::MIN).then(|| r.at.div_euclid(86_400));
            let message = Counted {
                r,
                keys,
                day,
                abuse,
                from_text,
            };
            campaigns[c].add(message, self.decide.evidence, g);
        })
    }
}

/// A campaign id: its key in 16 lowercase hex digits.
fn push_id(out: &mut Vec<u8>, key: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((key >> (4 * shift)) & 0xf) as usize]);
    }
}

/// A scratch file of this run (written and flushed before it is read, never written again),
/// read back a range at a time into owned buffers: what the process holds is one chunk per task
/// in flight, never the whole file, so memory stays flat in corpus size (a whole mapping would
/// show as resident memory once read).
struct Scratch {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Scratch {
    fn open(path: &Path) -> Result<Scratch, OutputError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        Ok(Scratch {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// `range` of the file; an error (not a panic) if the file is shorter than what was
    /// written to it.
    fn read(&self, range: &std::ops::Range<u64>) -> Result<Vec<u8>, OutputError> {
        use std::os::unix::fs::FileExt;
        if range.end > self.len || range.start > range.end {
            return Err(io_err(&self.path)(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "scratch file shorter than what was written to it",
            )));
        }
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        self.file
            .read_exact_at(&mut buf, range.start)
            .map_err(io_err(&self.path))?;
        Ok(buf)
    }
}

/// The commonest From domains of a campaign in bounded memory: exact counts while the campaign
/// has at most [`TOP_COUNTERS`] From domains, then the Misra-Gries summary (every domain with
/// more than 1/[`TOP_COUNTERS`] of the messages is kept; its count is a lower bound by at most
/// that share).
#[derive(Debug, Default)]
struct TopCounts {
    counters: Vec<(u64, u64, Box<str>)>,
}

/// Counters kept per campaign for `top_from_domains`.
const TOP_COUNTERS: usize = 256;

impl TopCounts {
    /// Count one value; `name` gives its text when the value gets a counter.
    fn add(&mut self, hash: u64, name: impl FnOnce() -> Box<str>) {
        if let Some(c) = self.counters.iter_mut().find(|c| c.0 == hash) {
            c.1 += 1;
        } else if self.counters.len() < TOP_COUNTERS {
            self.counters.push((hash, 1, name()));
        } else {
            for c in &mut self.counters {
                c.1 -= 1;
            }
            self.counters.retain(|c| c.1 > 0);
        }
    }

    /// The `n` largest, by count, then name.
    fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut all: Vec<(&str, u64)> = self.counters.iter().map(|c| (&*c.2, c.1)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        all.truncate(n);
        all
    }
}

/// `timeline.csv`: by day, then campaign (largest first, as `campaigns` is sorted), then the
/// messages in no campaign.
fn timeline_csv(campaigns: &[CampaignStats], outside: &BTreeMap<i64, (u64, u64)>) -> Vec<u8> {
    let mut lines: Vec<(i64, usize, &str, u64, u64)> = Vec::new();
    for (rank, c) in campaigns.iter().enumerate() {
        for (d, (n, a)) in &c.per_day {
            lines.push((*d, rank, &c.id, *n, *a));
        }
    }
    for (d, (n, a)) in outside {
        lines.push((*d, usize::MAX, "-", *n, *a));
    }
    lines.sort();
    let mut timeline = Vec::new();
    timeline.extend_from_slice(&crate::output::csv::header_line(&TIMELINE_COLUMNS));
    for (d, _, id, n, a) in &lines {
        let _ = writeln!(timeline, "{},{id},{n},{a}", day_text(*d));
    }
    timeline
}

/// One decoded fixed record of the facts file.
struct Record {
    row_len: u32,
    at: i64,
    dkim: u8,
    aligned: bool,
    bits: u16,
    brand: u64,
    tenant: u64,
    from_domain: u64,
    origin_ip: u64,
    origin_net: u64,
    recipient: u64,
    sender: u64,
    origin_is_senders: bool,
}

impl Record {
    /// The fixed part of a message's record; the From domain text (`text_len` bytes), the
    /// subject (`subject_len` bytes) and the keys (`keys` little-endian u64s) follow it.
    fn encode(
        f: &MessageFacts,
        keys: usize,
        text_len: usize,
        subject_len: usize,
    ) -> [u8; RECORD_FIXED] {
        let mut rec = [0u8; RECORD_FIXED];
        rec[0..4].copy_from_slice(&f.row_len.to_le_bytes());
        rec[4..12].copy_from_slice(&f.at.to_le_bytes());
        rec[12] = f.dkim as u8;
        rec[13] = u8::from(f.aligned_pass);
        rec[14..16].copy_from_slice(&f.relay.bits.to_le_bytes());
        rec[16] = keys as u8;
        rec[17] = u8::from(f.origin_is_senders);
        rec[18..20].copy_from_slice(&(text_len as u16).to_le_bytes());
        rec[20..22].copy_from_slice(&(subject_len as u16).to_le_bytes());
        for (i, v) in [
            f.brand,
            f.tenant,
            f.from_domain,
            f.origin_ip,
            f.origin_net,
            f.recipient,
            f.sender,
        ]
        .into_iter()
        .enumerate()
        {
            rec[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        rec
    }

    fn decode(rec: &[u8; RECORD_FIXED]) -> Record {
        let u64_at = |i: usize| u64::from_le_bytes(rec[24 + 8 * i..32 + 8 * i].try_into().unwrap());
        Record {
            row_len: u32::from_le_bytes(rec[0..4].try_into().unwrap()),
            at: i64::from_le_bytes(rec[4..12].try_into().unwrap()),
            dkim: rec[12],
            aligned: rec[13] != 0,
            bits: u16::from_le_bytes(rec[14..16].try_into().unwrap()),
            brand: u64_at(0),
            tenant: u64_at(1),
            from_domain: u64_at(2),
            origin_ip: u64_at(3),
            origin_net: u64_at(4),
            recipient: u64_at(5),
            sender: u64_at(6),
            origin_is_senders: rec[17] != 0,
        }
    }
}

/// Go through the facts records in `buf` (a whole number of them, as a chunk holds): the fixed
/// part, the keys, the From domain text and the subject of each.
fn for_each_record(
    buf: &[u8],
    path: &Path,
    mut each: impl FnMut(&Record, &[u64], &[u8], &[u8]),
) -> Result<(), OutputError> {
    let mut keys: Vec<u64> = Vec::with_capacity(16);
    let mut at = 0;
    while at < buf.len() {
        let Some(fixed) = buf.get(at..at + RECORD_FIXED) else {
            break;
        };
        let fixed: &[u8; RECORD_FIXED] = fixed.try_into().unwrap_or(&[0; RECORD_FIXED]);
        let text_len = usize::from(u16::from_le_bytes([fixed[18], fixed[19]]));
        let subject_len = usize::from(u16::from_le_bytes([fixed[20], fixed[21]]));
        let n = usize::from(fixed[16]);
        let text_at = at + RECORD_FIXED;
        let subject_at = text_at + text_len;
        let keys_at = subject_at + subject_len;
        let Some(raw) = buf.get(keys_at..keys_at + 8 * n) else {
            break;
        };
        keys.clear();
        keys.extend(
            raw.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())),
        );
        each(
            &Record::decode(fixed),
            &keys,
            &buf[text_at..subject_at],
            &buf[subject_at..keys_at],
        );
        at = keys_at + 8 * n;
    }
    if at != buf.len() {
        return Err(io_err(path)(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated campaign facts record",
        )));
    }
    Ok(())
}

fn rfc3339(t: i64) -> String {
    let mut v = Vec::new();
    crate::headers::date::write_rfc3339(t, &mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn day_text(day: i64) -> String {
    let (y, m, d) = crate::headers::date::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_from_domains_stay_bounded_and_keep_the_heavy_ones() {
        let mut t = TopCounts::default();
        // Two heavy senders among 10,000 one-off domains.
        for i in 0..10_000u64 {
            t.add(1_000_000 + i, || format!("rand{i}.example").into());
            if i % 4 == 0 {
                t.add(1, || "heavy-a.example".into());
            }
            if i % 10 == 0 {
                t.add(2, || "heavy-b.example".into());
            }
        }
        assert!(t.counters.len() <= TOP_COUNTERS);
        let top = t.top(2);
        assert_eq!(top[0].0, "heavy-a.example");
        assert_eq!(top[1].0, "heavy-b.example");
        // Misra-Gries: a count is low by at most (all additions) / (counters + 1).
        assert!(
            top[0].1 <= 2_500 && top[0].1 >= 2_500 - 13_500 / 257,
            "{top:?}"
        );
        let mut exact = TopCounts::default();
        for name in ["b.example", "a.example", "b.example"] {
            exact.add(name.len() as u64 + u64::from(name.as_bytes()[0]), || {
                name.into()
            });
        }
        assert_eq!(exact.top(3), vec![("b.example", 2), ("a.example", 1)]);
    }

    #[test]
    fn days_print_as_dates() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(19_878), "2024-06-04");
    }
}
