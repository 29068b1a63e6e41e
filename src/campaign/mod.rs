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
//!
//! **Parts.** This file holds the grouping passes ([`Grouping`]); `facts_file` the per-message
//! records they read, `scratch` the reading back of scratch files, `link` the linking of keys into
//! groups, `baseline` the brands' usual tenants, `stats` a campaign's counters and the
//! `campaigns` and `timeline` tables, [`distinct`] the distinct counts, [`chart`] the SVG.

mod baseline;
pub mod chart;
pub mod distinct;
mod facts_file;
mod link;
pub(crate) mod parallel;
mod scratch;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use crate::classify::relay::{RelayEvidence, bits};
use crate::message::Facts;
use crate::output::{Formats, OutputError, PendingFile, Rows, TableFiles, spill};
use crate::schema::{self, Column, DECIDED_COLUMNS, Decided, MESSAGE_COLUMNS, Value};
use baseline::Baseline;
use distinct::KeyHasher;
pub use facts_file::{FactsReader, write_facts};
use facts_file::{Record, for_each_record, write_record};
use link::{Evidence, KeyTable, OwnershipTally, PairTally};
use scratch::Scratch;
use stats::{Counted, timeline_csv};

pub use baseline::{BASELINE_MIN_MESSAGES, BASELINE_SHARE};
pub use link::FAMILY_ERROR;
pub use stats::{
    CAMPAIGN_COLUMNS, CampaignCard, CampaignRow, CampaignStats, CampaignTable, EVIDENCE_COLUMNS,
    EvidenceRow, EvidenceTable, LargestCampaign, TIMELINE_COLUMNS, day_text,
};

/// Groups smaller than this are not campaigns (their messages get `-`).
pub const MIN_CAMPAIGN_MESSAGES: u64 = 3;
/// A campaign is reported as a relay-abuse wave when more than this share of its messages are
/// relay abuse (a majority: the wave is what most of its mail is).
pub const WAVE_SHARE: f64 = 0.5;

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
    /// Each key's name, written once when the key is first seen (a key, a length byte, the
    /// name): read back for the keys that end up as a campaign's evidence.
    names_file: PendingFile,
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

/// The finished files of the group stage, still pending (committed with the rest of the run).
pub struct GroupOutput {
    /// The `messages` table's files.
    pub messages: Vec<PendingFile>,
    /// `campaigns` and `campaign_evidence` in each format, `timeline.csv`, `timeline.svg`.
    pub files: Vec<PendingFile>,
    pub report: CampaignReport,
    /// What the HTML report draws.
    pub details: CampaignDetails,
}

/// Campaigns shown in the HTML report (relay-abuse waves first, then the largest others).
pub const SHOWN_CAMPAIGNS: usize = 20;

/// What the grouping found, in the detail the HTML report draws.
#[derive(Debug, Clone, Default)]
pub struct CampaignDetails {
    pub campaigns: u64,
    pub messages_in_campaigns: u64,
    pub relay_abuse: u64,
    pub relay_abuse_waves: u64,
    /// The campaigns shown: relay-abuse waves first, then the largest others, at most
    /// [`SHOWN_CAMPAIGNS`].
    pub shown: Vec<CampaignCard>,
    /// Day → (messages, relay abuse, messages in no campaign), over the whole corpus.
    pub per_day: BTreeMap<i64, (u64, u64, u64)>,
    /// Day → spoofed brand (the From organization) → relay-abuse messages.
    pub relay_abuse_by_day: BTreeMap<i64, BTreeMap<String, u64>>,
}

/// Passes at most that reject groups too small to be campaigns (each pass only rejects; two or
/// three settle real corpora). Should the limit be reached, groups still too small are left out
/// with their messages.
const MAX_PLACEMENT_ROUNDS: usize = 8;

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
        let names_file = PendingFile::create(dir, "campaign-keys.bin")?;
        Ok(Grouping {
            side_file,
            names_file,
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
            self.facts_bytes += write_record(f, keys, from_text, subject, None, |bytes| {
                self.side_file.write_all(bytes)
            })?;
            for (k, name) in keys.iter().zip(facts.key_names(f)) {
                let n = self.keys.entry(*k).or_default();
                if *n == 0 {
                    self.names_file.write_all(&k.to_le_bytes())?;
                    self.names_file.write_all(&[name.len() as u8])?;
                    self.names_file.write_all(name)?;
                }
                *n = n.saturating_add(1);
            }
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
        let mut abuse_brands: BTreeMap<i64, BTreeMap<String, u64>> = BTreeMap::new();
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
                    for ((day, brand), n) in d.abuse_brands {
                        *abuse_brands
                            .entry(day)
                            .or_default()
                            .entry(brand)
                            .or_default() += n;
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

        // campaign_evidence: the keys that linked each campaign's messages, named.
        self.names_file.flush()?;
        let names = read_key_names(
            self.names_file.temp_path(),
            campaigns.iter().flat_map(|c| c.evidence.keys().copied()),
        )?;
        let evidence_columns: Vec<schema::ColumnInfo> =
            EVIDENCE_COLUMNS.iter().map(Column::info).collect();
        let mut evidence_files =
            TableFiles::create(dir, "campaign_evidence", &evidence_columns, formats)?;
        let mut evidence_rows = Rows::new(&evidence_columns, formats, raw_cells);
        let mut pending_rows = 0;
        for c in &mut campaigns {
            c.name_evidence(&names);
            for row in c.evidence_rows() {
                evidence_rows.push(EVIDENCE_COLUMNS.iter().map(|col| (col.get)(&row)));
                pending_rows += 1;
            }
            if pending_rows >= 16_384 {
                evidence_files.write(&mut evidence_rows)?;
                pending_rows = 0;
            }
        }
        evidence_files.write(&mut evidence_rows)?;

        let timeline = timeline_csv(&campaigns, &outside);
        let mut timeline_file = PendingFile::create(dir, "timeline.csv")?;
        timeline_file.write_all(&timeline)?;

        let series = chart::Series::from_campaigns(
            campaigns
                .iter()
                .map(|c| (c.id.as_str(), c.about(), c.messages, &c.per_day)),
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
        let mut details = CampaignDetails {
            campaigns: report.campaigns,
            messages_in_campaigns: report.messages_in_campaigns,
            relay_abuse: report.relay_abuse,
            relay_abuse_waves: report.relay_abuse_waves,
            shown: campaigns
                .iter()
                .filter(is_wave)
                .chain(campaigns.iter().filter(|c| !is_wave(c)))
                .take(SHOWN_CAMPAIGNS)
                .map(CampaignStats::card)
                .collect(),
            per_day: BTreeMap::new(),
            relay_abuse_by_day: abuse_brands,
        };
        for per_day in campaigns.iter().map(|c| &c.per_day) {
            for (&day, &(n, a)) in per_day {
                let e = details.per_day.entry(day).or_default();
                e.0 += n;
                e.1 += a;
            }
        }
        for (&day, &(n, a)) in &outside {
            let e = details.per_day.entry(day).or_default();
            e.0 += n;
            e.1 += a;
            e.2 += n;
        }
        // The facts and names files are scratch: dropping them removes them.
        drop(self.side_file);
        drop(self.names_file);
        let mut files = campaigns_files.finish()?;
        files.extend(evidence_files.finish()?);
        files.extend([timeline_file, svg_file]);
        Ok(GroupOutput {
            messages: messages_files.finish()?,
            files,
            report,
            details,
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
    /// Relay-abuse messages by day and spoofed brand.
    abuse_brands: BTreeMap<(i64, String), u64>,
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
            abuse_brands: BTreeMap::new(),
            relay_abuse: 0,
            candidates: 0,
        };
        let types = || MESSAGE_COLUMNS.iter().map(|c| c.ty);
        let csv_cells = matches!(self.spill, spill::Spill::Csv { .. });
        let mut values: Vec<Value<'_>> = Vec::with_capacity(MESSAGE_COLUMNS.len());
        let (mut reasons, mut id) = (Vec::new(), Vec::new());
        let mut at = 0usize;
        let mut damaged = false;
        for_each_record(facts, facts_path, |r, keys, from_text, _| {
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
            if abuse && r.at != i64::MIN {
                let brand = crate::auth::organizational_domain(&String::from_utf8_lossy(from_text));
                *d.abuse_brands
                    .entry((r.at.div_euclid(86_400), brand))
                    .or_default() += 1;
            }
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
                campaigns.push(CampaignStats::new(
                    String::from_utf8(id).unwrap_or_default(),
                    String::from_utf8_lossy(subject).into_owned(),
                ));
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

/// The names of the `wanted` keys, read from the names file [`Grouping::add_unit`] wrote.
fn read_key_names(
    path: &Path,
    wanted: impl Iterator<Item = u64>,
) -> Result<KeyMap<u64, String>, OutputError> {
    use io::Read;
    let mut names: KeyMap<u64, String> = wanted.map(|k| (k, String::new())).collect();
    if names.is_empty() {
        return Ok(names);
    }
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; 9];
    let mut name = [0u8; 255];
    loop {
        match reader.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(io_err(path)(e)),
        }
        let key = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
        let name = &mut name[..usize::from(head[8])];
        reader.read_exact(name).map_err(io_err(path))?;
        if let Some(slot) = names.get_mut(&key) {
            *slot = String::from_utf8_lossy(name).into_owned();
        }
    }
    Ok(names)
}

/// A campaign id: its key in 16 lowercase hex digits.
fn push_id(out: &mut Vec<u8>, key: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(HEX[((key >> (4 * shift)) & 0xf) as usize]);
    }
}
