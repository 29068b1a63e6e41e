//! One campaign's counters, and the `campaigns` and `timeline` tables made from them.
//!
//! Takes the messages of a campaign, one at a time in input order ([`CampaignStats::add`]), and
//! gives its row of the `campaigns` table ([`CampaignRow`], [`CAMPAIGN_COLUMNS`]), its entry in
//! summary.json ([`LargestCampaign`]) and its lines of `timeline.csv` ([`timeline_csv`]). Memory
//! per campaign is bounded: distinct counts by [`Distinct`], the commonest names by
//! [`TopCounts`].

use std::collections::BTreeMap;
use std::io::Write;

use crate::schema::{Column, Table, Type, Value};

use super::WAVE_SHARE;
use super::distinct::Distinct;
use super::facts_file::Record;
use super::link::Evidence;

/// One campaign as the `campaigns` table shows it.
pub struct CampaignRow<'a> {
    stats: &'a CampaignStats,
    peak_day: Option<i64>,
    peak_day_messages: u64,
    top_brands: String,
    top_from_domains: String,
}

impl<'a> CampaignRow<'a> {
    pub(super) fn of(stats: &'a CampaignStats) -> CampaignRow<'a> {
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

/// The kind of an evidence key as `campaign_evidence` names it.
fn evidence_kind(letter: u8) -> &'static str {
    match letter {
        b'L' => "landing_domain",
        b'T' => "tenant",
        b'N' => "origin_network",
        b'I' => "mailing_list",
        _ => "unknown",
    }
}

/// One evidence key of a campaign, for the `campaign_evidence` table.
pub struct EvidenceRow<'a> {
    pub campaign: &'a str,
    pub kind: &'static str,
    pub value: &'a str,
    pub messages: u64,
}

/// The `campaign_evidence` table.
pub enum EvidenceTable {}
impl Table for EvidenceTable {
    type Row<'a> = EvidenceRow<'a>;
}

/// Columns of `campaign_evidence`: why messages were put in one campaign. One row per evidence
/// key of each campaign (campaigns largest first, then keys by messages).
pub const EVIDENCE_COLUMNS: &[Column<EvidenceTable>] = &[
    Column {
        name: "campaign",
        ty: Type::Text,
        nullable: false,
        meaning: "the campaign id, as in `campaigns` and `messages`",
        get: |r| Value::Text(r.campaign),
    },
    Column {
        name: "kind",
        ty: Type::Text,
        nullable: false,
        meaning: "what links its messages: `landing_domain` (a link's registrable domain or bare address), `tenant` (a Microsoft 365 tenant id), `origin_network` (the origin's /24 or /48), `mailing_list` (a List-Id)",
        get: |r| Value::Text(r.kind),
    },
    Column {
        name: "value",
        ty: Type::Text,
        nullable: false,
        meaning: "the domain, tenant id, network or list",
        get: |r| Value::Text(r.value),
    },
    count_column!("messages", "the campaign's messages that carry it", |r| {
        Value::Int(Some(r.messages))
    }),
];

/// Columns of `timeline.csv`.
pub const TIMELINE_COLUMNS: [&str; 4] = ["day", "campaign", "messages", "relay_abuse"];

/// One message as a campaign counts it: its facts, its keys, its day, whether it is relay abuse
/// and its From domain.
pub(super) struct Counted<'a> {
    pub(super) r: &'a Record,
    pub(super) keys: &'a [u64],
    pub(super) day: Option<i64>,
    pub(super) abuse: bool,
    pub(super) from_text: &'a [u8],
}

/// One campaign's counters.
#[derive(Debug, Default)]
pub struct CampaignStats {
    pub(super) id: String,
    pub(super) messages: u64,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    pub(super) per_day: BTreeMap<i64, (u64, u64)>,
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
    /// Messages of the campaign carrying each of its evidence keys.
    pub(super) evidence: super::KeyMap<u64, u64>,
    /// The evidence keys named, most messages first (set by [`CampaignStats::name_evidence`]).
    named_evidence: Vec<(String, u64)>,
}

impl CampaignStats {
    /// A campaign with no messages counted yet.
    pub(super) fn new(id: String, example_subject: String) -> CampaignStats {
        CampaignStats {
            id,
            example_subject,
            ..CampaignStats::default()
        }
    }

    /// Count one message of the campaign.
    /// `landing_domains` counts the link keys that are evidence of the campaign's own group.
    pub(super) fn add(&mut self, m: Counted<'_>, evidence: &Evidence, group: u32) {
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
            if evidence.in_group(k, group) {
                *self.evidence.entry(k).or_default() += 1;
                if k != r.tenant && k != r.origin_net {
                    self.landing.insert(k);
                }
            }
        }
        self.dkim[usize::from(r.dkim.min(2))] += 1;
        self.aligned_pass += u64::from(r.aligned);
        self.relay_abuse += u64::from(abuse);
        self.tenants.insert(r.tenant);
    }

    /// Name the campaign's evidence keys from `names` (kind letter, `:`, value), most messages
    /// first, then by name; the counts per key are dropped.
    pub(super) fn name_evidence(&mut self, names: &super::KeyMap<u64, String>) {
        let mut named: Vec<(String, u64)> = self
            .evidence
            .drain()
            .map(|(k, n)| {
                let name = names
                    .get(&k)
                    .filter(|name| name.len() > 2)
                    .cloned()
                    .unwrap_or_else(|| format!("?:{k:016x}"));
                (name, n)
            })
            .collect();
        named.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.evidence = super::KeyMap::default();
        self.named_evidence = named;
    }

    /// The campaign's rows of `campaign_evidence`, most messages first.
    pub(super) fn evidence_rows(&self) -> impl Iterator<Item = EvidenceRow<'_>> {
        self.named_evidence.iter().map(|(name, messages)| {
            let (kind, value) = name.split_at(2.min(name.len()));
            EvidenceRow {
                campaign: &self.id,
                kind: evidence_kind(kind.as_bytes().first().copied().unwrap_or(b'?')),
                value,
                messages: *messages,
            }
        })
    }

    /// The named evidence of one kind (`L`, `T`, `N`, `I`), most messages first.
    pub fn evidence_of(&self, kind: u8) -> impl Iterator<Item = (&str, u64)> {
        self.named_evidence
            .iter()
            .filter(move |(name, _)| name.as_bytes().first() == Some(&kind))
            .map(|(name, n)| (&name[2..], *n))
    }

    fn relay_abuse_share(&self) -> f64 {
        self.relay_abuse as f64 / self.messages.max(1) as f64
    }

    /// `relay-abuse-wave` when most of the campaign is relay abuse, else `campaign`.
    pub(super) fn kind(&self) -> &'static str {
        if self.relay_abuse_share() > WAVE_SHARE {
            "relay-abuse-wave"
        } else {
            "campaign"
        }
    }

    /// The campaign as the report shows it (its evidence named first).
    pub(super) fn card(&self) -> CampaignCard {
        let named = |kind: u8| -> Vec<(String, u64)> {
            self.evidence_of(kind)
                .take(CARD_EVIDENCE)
                .map(|(v, n)| (v.to_string(), n))
                .collect()
        };
        CampaignCard {
            id: self.id.clone(),
            kind: self.kind(),
            messages: self.messages,
            relay_abuse: self.relay_abuse,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            brands: self
                .top_brands
                .top(TOP_BRANDS)
                .into_iter()
                .map(|(name, n)| (name.to_string(), n))
                .collect(),
            landing: named(b'L'),
            landing_count: self.landing.count(),
            tenants: named(b'T'),
            tenant_count: self.tenants.count(),
            networks: named(b'N'),
            network_count: self.origin_nets.count(),
            lists: named(b'I'),
            per_day: self.per_day.clone(),
            example_subject: self.example_subject.clone(),
        }
    }

    /// A few words on the campaign for the chart's legend: its two commonest brands, and how
    /// many more it has.
    pub(super) fn about(&self) -> String {
        let brands = self.top_brands.top(2);
        let mut about = brands
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        let more = self.brands.count().saturating_sub(brands.len() as u64);
        if more > 0 {
            about.push_str(&format!(" and {more} more"));
        }
        about
    }

    /// The campaign as summary.json and the end-of-run lines name it.
    pub(super) fn summary(&self) -> LargestCampaign {
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

/// Evidence values of each kind a [`CampaignCard`] keeps.
const CARD_EVIDENCE: usize = 8;

/// One campaign as the report shows it: its counts, brands, the evidence that linked it (named,
/// most messages first) and its messages per day.
#[derive(Debug, Clone, Default)]
pub struct CampaignCard {
    pub id: String,
    /// `relay-abuse-wave` or `campaign`.
    pub kind: &'static str,
    pub messages: u64,
    pub relay_abuse: u64,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    /// The commonest From organizations with their messages.
    pub brands: Vec<(String, u64)>,
    /// Landing domains, tenants, origin networks and mailing lists that link it, with their
    /// messages; and how many distinct values of each it has in all.
    pub landing: Vec<(String, u64)>,
    pub landing_count: u64,
    pub tenants: Vec<(String, u64)>,
    pub tenant_count: u64,
    pub networks: Vec<(String, u64)>,
    pub network_count: u64,
    pub lists: Vec<(String, u64)>,
    /// Day → (messages, relay abuse).
    pub per_day: BTreeMap<i64, (u64, u64)>,
    pub example_subject: String,
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
pub(super) fn timeline_csv(
    campaigns: &[CampaignStats],
    outside: &BTreeMap<i64, (u64, u64)>,
) -> Vec<u8> {
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
