//! Stage 6b, group: campaigns and relay abuse, decided over the whole corpus.
//!
//! Takes each message's [`MessageFacts`] (made by the workers: evidence keys from
//! [`crate::classify::evidence`], relay evidence from [`crate::classify::relay`], a few hashed
//! values to count) in input order, and gives, once the corpus is read: the last three
//! `messages.csv` columns (`relay_abuse`, `relay_abuse_reasons`, `campaign`), `campaigns.csv`,
//! `timeline.csv` and `timeline.svg`.
//!
//! **Method.** Messages are linked when they share an evidence key (landing domain, tenant,
//! origin network), in two stages: within one sender family (the first word of the From
//! domain: campaigns rotate `deals-12.top`, `deals-news.xyz`, ...) any shared key links; groups
//! of different families merge only when [`MIN_SHARED_KEYS`] or more keys join them (a wave
//! spoofing two brands from the same tenants, networks and landing hosts), so one news site
//! linked from two mailing lists does not chain them. A campaign is a connected group of at least
//! [`MIN_CAMPAIGN_MESSAGES`] messages (union-find over the keys).
//! A key seen with [`UBIQUITOUS_FAMILIES`] or more sender domain families (From organizational
//! domains with digit runs normalised: `deals-12.top` and `deals-7.xyz` are one family) is
//! shared infrastructure and links nothing. The campaign id is the smallest key hash in the group, in hex: it depends only
//! on which messages are in the group, not on their order or the thread count, and the same
//! campaign gets the same id in another corpus that holds the same evidence.
//!
//! **Relay abuse** (the EchoSpoofing pattern, in general form): a From-aligned DKIM pass, a path
//! through Microsoft 365 followed by a secure email gateway (or an address in Microsoft's
//! high-risk delivery pool), and a tenant that is not the brand's: its domain belongs to another
//! organization (`foreign-tenant`), or, when the tenant's domain is not stated, the tenant is not
//! one the brand was seen with under its own name and carries under [`BASELINE_SHARE`] of the
//! brand's mail through Microsoft 365 (`tenant-not-brand-baseline`).
//!
//! **Memory** grows with the number of distinct evidence keys and campaigns, not with messages:
//! per-message facts go to a temporary file beside the output (about 100 bytes a message) and are
//! read back in order; distinct counts per campaign are exact up to 4,096 values and a
//! HyperLogLog sketch beyond ([`distinct`]).
//!
//! **Merging.** Everything kept per key and per brand is a count or a set union, so the state of
//! two workers or two machines folds into the same answer in any order.

pub mod chart;
pub mod distinct;
mod link;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use crate::classify::relay::{RelayEvidence, bits};
use crate::output::{OutputError, PendingFile};
use crate::record::UnitOutput;
use distinct::Distinct;
use link::{FamilyMerger, Linker};

/// Groups smaller than this are not campaigns (their messages get `-`).
pub const MIN_CAMPAIGN_MESSAGES: u64 = 3;
/// A key seen with this many distinct sender domain families links nothing: it is shared
/// infrastructure (a URL rewriter, a hosting network, the trap's own tenant), not a campaign's.
pub const UBIQUITOUS_FAMILIES: usize = 3;
/// Groups of different sender families merge when this many keys join them.
pub const MIN_SHARED_KEYS: u32 = 2;
/// A key joining more groups than this is shared infrastructure for the second stage.
const MAX_GROUPS_PER_KEY: usize = 8;
/// A tenant carrying less than this share of a brand's Microsoft 365 mail is "rare" for it.
pub const BASELINE_SHARE: f64 = 0.10;
/// A brand needs this many Microsoft 365 messages before its baseline says anything.
pub const BASELINE_MIN_MESSAGES: u32 = 10;

/// Columns of `campaigns.csv`.
pub const CAMPAIGN_COLUMNS: [&str; 18] = [
    "campaign",
    "messages",
    "first_seen",
    "last_seen",
    "peak_day",
    "peak_day_messages",
    "origin_ips",
    "origin_nets",
    "recipients",
    "from_domains",
    "top_from_domains",
    "dkim_pass",
    "dkim_fail",
    "dkim_none",
    "aligned_pass",
    "relay_abuse",
    "tenants",
    "example_subject",
];

/// Columns of `timeline.csv`.
pub const TIMELINE_COLUMNS: [&str; 4] = ["day", "campaign", "messages", "relay_abuse"];

/// The message's DKIM verdict, as counted per campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum DkimClass {
    #[default]
    None = 0,
    Pass = 1,
    Fail = 2,
}

/// What a worker hands over per message. Hashes are [`crate::classify::evidence::fnv1a`]
/// values, 0 for "none".
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageFacts {
    /// Bytes of the message's stage-one `messages.csv` row, newline included.
    pub row_len: u32,
    /// Receipt time (Unix seconds), `i64::MIN` when unknown.
    pub at: i64,
    pub dkim: DkimClass,
    pub aligned_pass: bool,
    pub relay: RelayEvidence,
    /// From organizational domain.
    pub brand: u64,
    /// Sender domain family ([`crate::classify::evidence::sender_family`]).
    pub family: u64,
    /// Tenant (CrossTenant-Id).
    pub tenant: u64,
    /// From domain (its text is in the unit's `fact_text`).
    pub from_domain: u64,
    pub origin_ip: u64,
    pub origin_net: u64,
    pub recipient: u64,
    /// This message's keys: `fact_keys[keys.0 .. keys.0 + keys.1]`.
    pub keys: (u32, u8),
    /// The From domain text: `fact_text[from_text.0 .. from_text.0 + from_text.1]`.
    pub from_text: (u32, u16),
}

use distinct::KeyHasher;

type KeyMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;
type KeySet<K> = HashSet<K, std::hash::BuildHasherDefault<KeyHasher>>;

/// Per-key knowledge gathered while the corpus streams by.
#[derive(Debug, Default)]
struct KeyInfo {
    /// Distinct sender domain families seen with the key: the first
    /// [`UBIQUITOUS_FAMILIES`], of which `seen` are filled.
    families: [u64; UBIQUITOUS_FAMILIES],
    seen: u8,
}

/// The corpus-wide campaign and baseline state; fed unit by unit in input order.
pub struct Grouping {
    /// Per-message facts, read back by [`Grouping::finish`]; never committed.
    side_file: PendingFile,
    messages: u64,
    keys: KeyMap<u64, KeyInfo>,
    /// (brand, tenant) → Microsoft 365 messages with an aligned pass.
    brand_tenant: HashMap<(u64, u64), u32>,
    brand_total: HashMap<u64, u32>,
    /// (brand, tenant) pairs where the tenant's own domain is the brand's.
    own_tenant: HashSet<(u64, u64)>,
}

/// One campaign's counters.
#[derive(Debug, Default)]
struct CampaignStats {
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
    dkim: [u64; 3],
    aligned_pass: u64,
    relay_abuse: u64,
    tenants: Distinct,
    example_subject: String,
}

impl CampaignStats {
    /// Count one message of the campaign.
    fn add(&mut self, r: &Record, day: Option<i64>, abuse: bool, from_text: &[u8]) {
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
            self.top_from.add(r.from_domain, from_text);
        }
        self.dkim[usize::from(r.dkim.min(2))] += 1;
        self.aligned_pass += u64::from(r.aligned);
        self.relay_abuse += u64::from(abuse);
        self.tenants.insert(r.tenant);
    }

    /// The campaign's `campaigns.csv` cells, in [`CAMPAIGN_COLUMNS`] order.
    fn csv_cells(&self) -> Vec<String> {
        let (peak_day, peak) = self
            .per_day
            .iter()
            .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(a.0)))
            .map_or((None, 0), |(d, (n, _))| (Some(*d), *n));
        let top_text = self
            .top_from
            .top(3)
            .iter()
            .map(|(name, n)| format!("{name}:{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        vec![
            self.id.clone(),
            self.messages.to_string(),
            self.first_seen.map(rfc3339).unwrap_or_default(),
            self.last_seen.map(rfc3339).unwrap_or_default(),
            peak_day.map(day_text).unwrap_or_default(),
            peak.to_string(),
            self.origin_ips.count().to_string(),
            self.origin_nets.count().to_string(),
            self.recipients.count().to_string(),
            self.from_domains.count().to_string(),
            top_text,
            self.dkim[1].to_string(),
            self.dkim[2].to_string(),
            self.dkim[0].to_string(),
            self.aligned_pass.to_string(),
            self.relay_abuse.to_string(),
            self.tenants.count().to_string(),
            self.example_subject.clone(),
        ]
    }
}

/// What the grouping found, for summary.json and the end-of-run lines.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CampaignReport {
    pub campaigns: u64,
    pub messages_in_campaigns: u64,
    pub relay_abuse: u64,
    pub relay_abuse_candidates: u64,
    /// The largest campaigns: id, messages, relay-abuse messages, example subject.
    pub largest: Vec<LargestCampaign>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LargestCampaign {
    pub campaign: String,
    pub messages: u64,
    pub relay_abuse: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub example_subject: String,
}

/// The finished files of the group stage, still pending (committed with the rest of the run).
pub struct GroupOutput {
    pub files: Vec<PendingFile>,
    pub report: CampaignReport,
}

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
            keys: KeyMap::default(),
            brand_tenant: HashMap::new(),
            brand_total: HashMap::new(),
            own_tenant: HashSet::new(),
        })
    }

    /// Take one unit's facts (units must come in input order).
    pub fn add_unit(&mut self, out: &UnitOutput) -> Result<(), OutputError> {
        for f in &out.facts {
            self.messages += 1;
            let keys = &out.fact_keys[f.keys.0 as usize..f.keys.0 as usize + f.keys.1 as usize];
            let mut rec = [0u8; RECORD_FIXED];
            rec[0..4].copy_from_slice(&f.row_len.to_le_bytes());
            rec[4..12].copy_from_slice(&f.at.to_le_bytes());
            rec[12] = f.dkim as u8;
            rec[13] = u8::from(f.aligned_pass);
            rec[14..16].copy_from_slice(&f.relay.bits.to_le_bytes());
            rec[16] = keys.len() as u8;
            let (text_at, text_len) = (f.from_text.0 as usize, f.from_text.1 as usize);
            let from_text = &out.fact_text[text_at..text_at + text_len];
            rec[18..20].copy_from_slice(&(from_text.len() as u16).to_le_bytes());
            for (i, v) in [
                f.family,
                f.brand,
                f.tenant,
                f.from_domain,
                f.origin_ip,
                f.origin_net,
                f.recipient,
            ]
            .into_iter()
            .enumerate()
            {
                rec[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
            }
            self.side_file.write_all(&rec)?;
            self.side_file.write_all(from_text)?;
            for k in keys {
                self.side_file.write_all(&k.to_le_bytes())?;
                let info = self.keys.entry(*k).or_default();
                let seen = usize::from(info.seen);
                if f.family != 0
                    && seen < UBIQUITOUS_FAMILIES
                    && !info.families[..seen].contains(&f.family)
                {
                    info.families[seen] = f.family;
                    info.seen += 1;
                }
            }
            if f.relay.bits & bits::M365 != 0 && f.brand != 0 && f.tenant != 0 && f.aligned_pass {
                *self.brand_tenant.entry((f.brand, f.tenant)).or_default() += 1;
                *self.brand_total.entry(f.brand).or_default() += 1;
                if f.relay.bits & bits::OWN_TENANT != 0 {
                    self.own_tenant.insert((f.brand, f.tenant));
                }
            }
        }
        Ok(())
    }

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

    /// Decide campaigns and relay abuse, and write the final `messages.csv` (from the stage-one
    /// rows in `stage_one`, whose first line is the header), `campaigns.csv`, `timeline.csv` and
    /// `timeline.svg` into `dir`, all pending.
    pub fn finish(
        mut self,
        stage_one: &Path,
        dir: &Path,
        raw_cells: bool,
    ) -> Result<GroupOutput, OutputError> {
        let side_path = self.side_file.temp_path().to_path_buf();
        self.side_file.flush()?;
        let ubiquitous: KeySet<u64> = self
            .keys
            .iter()
            .filter(|(_, i)| usize::from(i.seen) >= UBIQUITOUS_FAMILIES)
            .map(|(k, _)| *k)
            .collect();
        let family = |rec: &[u8; RECORD_FIXED]| Record::decode(rec).family;
        // Stage one: link messages of the same sender family through their shared keys.
        let mut linker = Linker::new(ubiquitous);
        read_records(&side_path, |rec, keys, _| {
            linker.link_within_family(family(rec), keys);
        })?;
        // Stage two: groups of different families merge when at least [`MIN_SHARED_KEYS`] keys
        // join them (one shared news site or URL shortener is chance; several landing hosts,
        // networks and tenants are one operation).
        let mut merger = FamilyMerger::default();
        read_records(&side_path, |rec, keys, _| {
            if let Some(g) = linker.group_of(family(rec), keys) {
                merger.add(&linker, g, keys);
            }
        })?;
        for (a, b) in merger.joins() {
            linker.join(a, b);
        }
        // Messages per group.
        let mut group_size: KeyMap<u32, u64> = KeyMap::default();
        read_records(&side_path, |rec, keys, _| {
            if let Some(g) = linker.group_of(family(rec), keys) {
                *group_size.entry(g).or_default() += 1;
            }
        })?;

        // Final pass: rows, campaign counters, timeline.
        let mut messages_file = PendingFile::create(dir, "messages.csv")?;
        let mut rows =
            BufReader::with_capacity(1 << 20, File::open(stage_one).map_err(io_err(stage_one))?);
        let mut header = Vec::new();
        read_line(&mut rows, &mut header).map_err(io_err(stage_one))?;
        messages_file.write_all(&header)?;
        let mut campaigns: Vec<CampaignStats> = Vec::new();
        let mut campaign_of_group: KeyMap<u32, usize> = KeyMap::default();
        let mut outside: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        let mut report = CampaignReport::default();
        let mut row = Vec::new();
        let mut out_buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut failure: Option<OutputError> = None;
        let mut cells = csv_core::Reader::new();
        read_records(&side_path, |rec, keys, from_text| {
            if failure.is_some() {
                return;
            }
            let r = Record::decode(rec);
            row.resize(r.row_len as usize, 0);
            if let Err(e) = rows.read_exact(&mut row) {
                failure = Some(io_err(stage_one)(e));
                return;
            }
            let mut relay = RelayEvidence { bits: r.bits };
            if relay.is_candidate() {
                report.relay_abuse_candidates += 1;
                if relay.bits & bits::FOREIGN_TENANT == 0
                    && relay.bits & bits::OWN_TENANT == 0
                    && self.rare_tenant(r.brand, r.tenant)
                {
                    relay.bits |= bits::TENANT_NOT_BASELINE;
                }
            }
            let abuse = relay.is_abuse();
            if abuse {
                report.relay_abuse += 1;
            }
            let group = linker
                .group_of(r.family, keys)
                .filter(|g| group_size.get(g).copied().unwrap_or(0) >= MIN_CAMPAIGN_MESSAGES);
            let campaign = group.map(|g| {
                *campaign_of_group.entry(g).or_insert_with(|| {
                    campaigns.push(CampaignStats {
                        id: format!("{:016x}", linker.id_key(g)),
                        example_subject: row_cell(&mut cells, &row, 8),
                        ..CampaignStats::default()
                    });
                    campaigns.len() - 1
                })
            });
            let day = (r.at != i64::MIN).then(|| r.at.div_euclid(86_400));
            match campaign {
                Some(c) => campaigns[c].add(&r, day, abuse, from_text),
                None => {
                    if let Some(d) = day {
                        let e = outside.entry(d).or_default();
                        e.0 += 1;
                        e.1 += u64::from(abuse);
                    }
                }
            }
            // The stage-one row without its newline, then the three decided cells.
            let body = row.strip_suffix(b"\n").unwrap_or(&row);
            out_buf.extend_from_slice(body);
            out_buf.extend_from_slice(if abuse { b",true," } else { b",false," });
            relay.write_reasons(&mut out_buf);
            out_buf.push(b',');
            match campaign {
                Some(c) => out_buf.extend_from_slice(campaigns[c].id.as_bytes()),
                None => out_buf.push(b'-'),
            }
            out_buf.push(b'\n');
            if out_buf.len() >= 1 << 20 {
                if let Err(e) = messages_file.write_all(&out_buf) {
                    failure = Some(e);
                }
                out_buf.clear();
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        messages_file.write_all(&out_buf)?;

        // campaigns.csv, largest first (ties: id).
        campaigns.sort_by(|a, b| b.messages.cmp(&a.messages).then_with(|| a.id.cmp(&b.id)));
        report.campaigns = campaigns.len() as u64;
        report.messages_in_campaigns = campaigns.iter().map(|c| c.messages).sum();
        let mut csv_out = Vec::new();
        csv_out.extend_from_slice(&crate::record::header_line(&CAMPAIGN_COLUMNS));
        for c in &campaigns {
            write_row(&mut csv_out, &c.csv_cells(), raw_cells);
        }
        let mut campaigns_file = PendingFile::create(dir, "campaigns.csv")?;
        campaigns_file.write_all(&csv_out)?;

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

        report.largest = campaigns
            .iter()
            .take(10)
            .map(|c| LargestCampaign {
                campaign: c.id.clone(),
                messages: c.messages,
                relay_abuse: c.relay_abuse,
                first_seen: c.first_seen.map(rfc3339).unwrap_or_default(),
                last_seen: c.last_seen.map(rfc3339).unwrap_or_default(),
                example_subject: c.example_subject.clone(),
            })
            .collect();
        // The facts file is scratch: dropping it removes it.
        drop(self.side_file);
        Ok(GroupOutput {
            files: vec![messages_file, campaigns_file, timeline_file, svg_file],
            report,
        })
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
    fn add(&mut self, hash: u64, name: &[u8]) {
        if let Some(c) = self.counters.iter_mut().find(|c| c.0 == hash) {
            c.1 += 1;
        } else if self.counters.len() < TOP_COUNTERS {
            self.counters
                .push((hash, 1, String::from_utf8_lossy(name).into()));
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
    timeline.extend_from_slice(&crate::record::header_line(&TIMELINE_COLUMNS));
    for (d, _, id, n, a) in &lines {
        let _ = writeln!(timeline, "{},{id},{n},{a}", day_text(*d));
    }
    timeline
}

/// One decoded fixed record.
struct Record {
    family: u64,
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
}

impl Record {
    fn decode(rec: &[u8; RECORD_FIXED]) -> Record {
        let u64_at = |i: usize| u64::from_le_bytes(rec[24 + 8 * i..32 + 8 * i].try_into().unwrap());
        Record {
            row_len: u32::from_le_bytes(rec[0..4].try_into().unwrap()),
            at: i64::from_le_bytes(rec[4..12].try_into().unwrap()),
            dkim: rec[12],
            aligned: rec[13] != 0,
            bits: u16::from_le_bytes(rec[14..16].try_into().unwrap()),
            family: u64_at(0),
            brand: u64_at(1),
            tenant: u64_at(2),
            from_domain: u64_at(3),
            origin_ip: u64_at(4),
            origin_net: u64_at(5),
            recipient: u64_at(6),
        }
    }
}

/// Read the facts file record by record: the fixed part, the From domain text and the keys.
fn read_records(
    path: &Path,
    mut each: impl FnMut(&[u8; RECORD_FIXED], &[u64], &[u8]),
) -> Result<(), OutputError> {
    let err = io_err(path);
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(&err)?);
    let mut rec = [0u8; RECORD_FIXED];
    let mut keys: Vec<u64> = Vec::with_capacity(16);
    let mut raw = [0u8; 8 * 255];
    let mut text = vec![0u8; 1 << 16];
    loop {
        match r.read_exact(&mut rec) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(err(e)),
        }
        let text_len = usize::from(u16::from_le_bytes([rec[18], rec[19]]));
        r.read_exact(&mut text[..text_len]).map_err(&err)?;
        let n = rec[16] as usize;
        r.read_exact(&mut raw[..8 * n]).map_err(&err)?;
        keys.clear();
        keys.extend(
            raw[..8 * n]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap())),
        );
        each(&rec, &keys, &text[..text_len]);
    }
}

fn read_line(r: &mut impl io::BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    out.clear();
    r.read_until(b'\n', out)
}

/// One cell of a CSV row (0-based), unquoted; empty when absent. `reader` is reused: building a
/// CSV reader costs more than reading one row.
fn row_cell(reader: &mut csv_core::Reader, row: &[u8], index: usize) -> String {
    reader.reset();
    let mut input = row;
    let mut cell = vec![0u8; row.len() + 1];
    let mut filled = 0;
    let mut n = 0;
    loop {
        let (result, read, written) = reader.read_field(input, &mut cell[filled..]);
        input = &input[read..];
        filled += written;
        match result {
            csv_core::ReadFieldResult::Field { record_end } => {
                if n == index {
                    return String::from_utf8_lossy(&cell[..filled]).into_owned();
                }
                if record_end {
                    return String::new();
                }
                n += 1;
                filled = 0;
            }
            csv_core::ReadFieldResult::End => return String::new(),
            // Input ended inside the last field (no newline): the next call, with no input,
            // finishes it.
            csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
        }
    }
}

fn write_row(out: &mut Vec<u8>, cells: &[String], raw: bool) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // The example subject is already neutralised in messages.csv; ids and numbers are safe.
        let guard = !raw && i == cells.len() - 1 && crate::output::is_formula_like(c.as_bytes());
        crate::record::write_cell(out, c.as_bytes(), guard);
    }
    out.push(b'\n');
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
    fn row_cells_are_unquoted() {
        let mut r = csv_core::Reader::new();
        let row = b"a,\"b,\"\"c\"\"\",,last\n";
        assert_eq!(row_cell(&mut r, row, 0), "a");
        assert_eq!(row_cell(&mut r, row, 1), "b,\"c\"");
        assert_eq!(row_cell(&mut r, row, 2), "");
        assert_eq!(row_cell(&mut r, row, 3), "last");
        assert_eq!(row_cell(&mut r, row, 4), "");
        assert_eq!(row_cell(&mut r, b"x,y", 1), "y");
    }

    #[test]
    fn top_from_domains_stay_bounded_and_keep_the_heavy_ones() {
        let mut t = TopCounts::default();
        // Two heavy senders among 10,000 one-off domains.
        for i in 0..10_000u64 {
            t.add(1_000_000 + i, format!("rand{i}.example").as_bytes());
            if i % 4 == 0 {
                t.add(1, b"heavy-a.example");
            }
            if i % 10 == 0 {
                t.add(2, b"heavy-b.example");
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
            exact.add(
                name.len() as u64 + u64::from(name.as_bytes()[0]),
                name.as_bytes(),
            );
        }
        assert_eq!(exact.top(3), vec![("b.example", 2), ("a.example", 1)]);
    }

    #[test]
    fn days_print_as_dates() {
        assert_eq!(day_text(0), "1970-01-01");
        assert_eq!(day_text(19_878), "2024-06-04");
    }
}
