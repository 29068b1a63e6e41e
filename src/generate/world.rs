//! The world messages are made from: sending domains and their selectors, the streams (spam
//! campaigns, relay-abuse waves, brand mail, noise) and their time windows.
//!
//! Takes the seed, the wave and platform knobs of [`GenerateOptions`] and the keys; gives a
//! [`World`] (all but the keys a function of the seed and knobs, so every message can be made
//! from it on its own), and the time helpers a message uses to place itself in its stream's
//! window and pick its landing host.

use super::GenerateOptions;
use super::keys::GenKey;
use super::platforms::{make_platforms, platform_habits};
use super::rng::{Rng, guid, hex, net24, token, unique};
use super::text::{YEAR_2024, all_subjects};

pub(super) struct Domain {
    pub(super) name: String,
    pub(super) brand: String,
    /// Selectors with a usable key: (selector, key index).
    pub(super) good: Vec<(String, usize)>,
    /// A selector whose record has an empty `p=`.
    pub(super) revoked: (String, usize),
    /// A selector the zone does not have.
    pub(super) missing: String,
}

const BRAND_WORDS: [&str; 24] = [
    "mega", "deal", "shop", "prime", "lucky", "smart", "health", "crypto", "royal", "golden",
    "fast", "best", "home", "trend", "super", "green", "city", "global", "star", "vita", "secure",
    "bright", "daily", "nova",
];
const BRAND_TAILS: [&str; 16] = [
    "mart", "offers", "pharma", "rewards", "wins", "loans", "store", "outlet", "club", "news",
    "direct", "savings", "gifts", "picks", "zone", "hub",
];
const TLDS: [&str; 10] = [
    "com", "net", "biz", "info", "shop", "top", "xyz", "online", "co.uk", "de",
];
const ESPS: [(&str, &str); 5] = [
    ("mta-relay.net", "Relay"),
    ("bulkpost-mail.com", "BulkPost"),
    ("sendwave-esp.net", "SendWave"),
    ("mailrocket.io", "MailRocket"),
    ("campaign-cloud.net", "CampaignCloud"),
];
const SELECTORS: [&str; 14] = [
    "s1",
    "s2",
    "k1",
    "default",
    "mail",
    "dkim",
    "selector1",
    "selector2",
    "m1",
    "smtp",
    "em",
    "scph0424",
    "mx",
    "key2024",
];
const OLD_SELECTORS: [&str; 4] = ["old2019", "s2018", "legacy", "dkim2020"];
const MISSING_SELECTORS: [&str; 4] = ["s2048", "mx2023", "rotated", "new1"];

fn make_domains(
    rng: &mut Rng,
    nkeys: usize,
    count: usize,
    start_key: usize,
    seen: &mut std::collections::BTreeSet<String>,
) -> Vec<Domain> {
    let mut out = Vec::new();
    let mut k = start_key;
    while out.len() < count {
        let w = rng.pick(&BRAND_WORDS);
        let t = rng.pick(&BRAND_TAILS);
        let name = format!(
            "{w}{}{t}.{}",
            if rng.chance(0.3) { "-" } else { "" },
            rng.pick(&TLDS)
        );
        if !seen.insert(name.clone()) {
            continue;
        }
        let brand = format!("{}{} {}", w[..1].to_uppercase(), &w[1..], capital(t));
        out.push(domain_with_selectors(rng, name, brand, nkeys, &mut k));
    }
    out
}

fn capital(s: &str) -> String {
    format!("{}{}", s[..1].to_uppercase(), &s[1..])
}

fn domain_with_selectors(
    rng: &mut Rng,
    name: String,
    brand: String,
    nkeys: usize,
    next_key: &mut usize,
) -> Domain {
    let mut sels: Vec<&str> = SELECTORS.to_vec();
    let mut good = Vec::new();
    for _ in 0..rng.range(1, 2) {
        let s = sels.remove(rng.below(sels.len()));
        good.push((s.to_string(), *next_key % nkeys));
        *next_key += 1;
    }
    Domain {
        name,
        brand,
        good,
        revoked: (rng.pick(&OLD_SELECTORS).to_string(), rng.below(nkeys)),
        missing: rng.pick(&MISSING_SELECTORS).to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Streams: campaigns, brand mail and noise.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamKind {
    /// A spam campaign: a family of rotating sender domains, a few landing hosts, a few subject
    /// templates, senders in one or two networks.
    Spam,
    /// EchoSpoofing: VPS → attacker M365 tenant → the brand's gateway relay, which signs for the
    /// brand.
    Echo,
    /// The brand's own mail: its own tenant, the same relay.
    Legit,
    /// One-off mail: nothing shared but a pool of sender names and subject templates.
    Noise,
}

pub(super) struct Tenant {
    pub(super) guid: String,
    pub(super) domain: String,
}

pub(super) struct Stream {
    /// Truth campaign id; `-` for noise.
    pub(super) id: String,
    pub(super) kind: StreamKind,
    pub(super) weight: usize,
    /// Indices into `World::brands` of the domains that send (and sign) this stream's mail.
    pub(super) senders: Vec<usize>,
    /// Echo and legit: the gateway relay of each sender (same order as `senders`): a wave that
    /// spoofs several brands goes through each brand's own relay.
    pub(super) relays: Vec<String>,
    /// Landing hosts; a wave's rotate over its time window (see [`wave_landing`]).
    pub(super) landing: Vec<String>,
    pub(super) subjects: Vec<String>,
    /// /24 networks of the first senders (`a.b.c`).
    pub(super) nets: Vec<String>,
    pub(super) tenants: Vec<Tenant>,
    /// The 2025 variant: the message leaves Microsoft from the high-risk pool (40.95.0.0/16)
    /// into another vendor's hygiene relay.
    pub(super) hrdp: bool,
    /// First day (days since 2024-01-01) and length in days.
    pub(super) start_day: i64,
    pub(super) days: i64,
    /// How much more (or less) than `platform_share` this stream links to shared platforms
    /// (0.5–1.5), so platform use is uneven across campaigns.
    pub(super) platform_factor: f64,
    /// The platform (index into `World::platforms`) this stream uses half of the time.
    pub(super) favourite_platform: usize,
}

/// Brands impersonated in the EchoSpoofing waves (reserved `.example` names, no real domains).
/// The first [`LEGIT_BRANDS`] also send their own mail.
const BIG_BRANDS: [(&str, &str); 12] = [
    ("bestbuy.example", "Best Buy"),
    ("nike.example", "Nike"),
    ("ibm.example", "IBM"),
    ("disney.example", "Disney"),
    ("coca-cola.example", "Coca-Cola"),
    ("contoso-shop.example", "Contoso"),
    ("fabrikam.example", "Fabrikam"),
    ("northwind.example", "Northwind Traders"),
    ("adventure-works.example", "Adventure Works"),
    ("tailspin.example", "Tailspin Toys"),
    ("wingtip.example", "Wingtip Toys"),
    ("litware.example", "Litware"),
];
/// How many brands a wave can spoof at most.
pub const BIG_BRAND_COUNT: usize = BIG_BRANDS.len();
/// Brands with their own legitimate mail (the negative controls). Wave `w` always spoofs brand
/// `w % LEGIT_BRANDS` among others, so every wave spoofs a brand whose real mail is in the corpus.
const LEGIT_BRANDS: usize = 3;
const BRAND_SUBJECTS: [&str; 6] = [
    "{brand} order {id} confirmation",
    "Your {brand} reward is waiting – ref {id}",
    "{brand} membership renewal invoice INV-{id}",
    "Action required: your {brand} account {id}",
    "{brand} gift card ${n} – claim by Friday",
    "Ihre {brand} Bestellung {id} wurde versandt",
];
const NEWSLETTER_SUBJECTS: [&str; 4] = [
    "{brand} weekly: new arrivals",
    "Your {brand} receipt",
    "{brand} news for {month}",
    "Members save {n}% this weekend at {brand}",
];
const LANDING_PREFIXES: [&str; 6] = ["secure", "go", "click", "l", "trk", "promo"];
const LANDING_TLDS: [&str; 6] = ["top", "xyz", "shop", "example", "test", "online"];
const VARIANTS: [&str; 7] = ["", "-mail", "-news", "-offers", "-info", "-alerts", "#"];
const TENANT_WORDS: [&str; 8] = [
    "fresh", "nova", "prime", "delta", "orbit", "lumen", "swift", "vector",
];
/// Share of a wave's messages that link to the landing host of their time slice; the rest use
/// any of the wave's hosts (stragglers, reused templates).
const LANDING_IN_SLICE: f64 = 0.85;

pub(super) fn landing_host(rng: &mut Rng) -> String {
    format!(
        "{}-{}.{}",
        rng.pick(&LANDING_PREFIXES),
        token(rng, 6).to_lowercase(),
        rng.pick(&LANDING_TLDS)
    )
}

/// The shape of the relay-abuse waves (from [`GenerateOptions`]).
struct WaveShape {
    waves: usize,
    brands: (usize, usize),
    tenants: (usize, usize),
    nets: (usize, usize),
    landings: (usize, usize),
}

/// The campaigns, brand streams and noise of one corpus, and the domains they send from
/// (appended to `brands`).
fn make_streams(
    rng: &mut Rng,
    nkeys: usize,
    brands: &mut Vec<Domain>,
    shape: &WaveShape,
) -> Vec<Stream> {
    let mut streams = Vec::new();
    let mut taken: std::collections::BTreeSet<String> =
        brands.iter().map(|d| d.name.clone()).collect();
    let mut next_key = brands.len() * 2 + 11;
    let subjects = all_subjects();
    // Spam campaigns, each with its own family of sender domains.
    // Family bases are single words, so no family's name can be another family's variant.
    let families = make_domains(rng, nkeys, 8, next_key, &mut taken);
    next_key += 16;
    for (c, fam) in families.into_iter().enumerate() {
        let base = fam.name.split('.').next().unwrap_or("deals").to_string();
        let mut senders = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        for _ in 0..rng.range(2, 5) {
            let v = rng.pick(&VARIANTS);
            let v = if *v == "#" {
                rng.range(10, 99).to_string()
            } else {
                v.to_string()
            };
            let name = format!("{base}{v}.{}", rng.pick(&TLDS));
            if !used.insert(name.clone()) || !taken.insert(name.clone()) {
                continue;
            }
            brands.push(domain_with_selectors(
                rng,
                name,
                fam.brand.clone(),
                nkeys,
                &mut next_key,
            ));
            senders.push(brands.len() - 1);
        }
        let mut subj = Vec::new();
        for _ in 0..rng.range(2, 3) {
            subj.push(rng.pick(&subjects).to_string());
        }
        streams.push(Stream {
            id: format!("spam-{:02}", c + 1),
            kind: StreamKind::Spam,
            weight: rng.range(6, 20),
            senders,
            relays: Vec::new(),
            landing: (0..rng.range(1, 3)).map(|_| landing_host(rng)).collect(),
            subjects: subj,
            nets: (0..rng.range(1, 2)).map(|_| net24(rng)).collect(),
            tenants: Vec::new(),
            hrdp: false,
            start_day: rng.below(320) as i64,
            days: rng.range(2, 30) as i64,
            platform_factor: 1.0,
            favourite_platform: 0,
        });
    }
    // Big brands: their own mail, and EchoSpoofing waves that launder mail through their relay.
    let mut brand_index = Vec::new();
    for (name, display) in BIG_BRANDS {
        brands.push(domain_with_selectors(
            rng,
            name.to_string(),
            display.to_string(),
            nkeys,
            &mut next_key,
        ));
        brand_index.push(brands.len() - 1);
    }
    // Each brand's gateway: a Proofpoint-style relay, and the other vendor's hygiene relay the
    // 2025 (high-risk pool) variant goes through.
    let relay_of: Vec<String> = (0..BIG_BRANDS.len())
        .map(|_| {
            format!(
                "mx0{}-00{}01.pphosted.com",
                if rng.chance(0.5) { 'a' } else { 'b' },
                hex(rng, 4)
            )
        })
        .collect();
    let hrdp_relay_of: Vec<String> = (0..BIG_BRANDS.len())
        .map(|_| format!("eu-smtp-inbound-{}.mimecast.com", rng.range(1, 4)))
        .collect();
    // Waves: most through Proofpoint-style relays, every third the 2025 variant through another
    // vendor from the high-risk pool. Tenant domains, injector networks and landing hosts are
    // unique across the corpus, so a wave's set is exactly its own.
    let mut tenant_domains = std::collections::BTreeSet::new();
    let mut wave_nets = std::collections::BTreeSet::new();
    for w in 0..shape.waves {
        let hrdp = w % 3 == 2;
        // The lead brand has legitimate mail in the corpus; the others are any other brands.
        let lead = w % LEGIT_BRANDS;
        let mut others: Vec<usize> = (0..BIG_BRANDS.len()).filter(|&b| b != lead).collect();
        let brand_count = rng
            .range(shape.brands.0, shape.brands.1)
            .min(BIG_BRANDS.len());
        let mut spoofed = vec![lead];
        for _ in 1..brand_count {
            spoofed.push(others.remove(rng.below(others.len())));
        }
        let tenant_count = rng.range(shape.tenants.0, shape.tenants.1);
        let tenants = unique(rng, tenant_count, &mut tenant_domains, |rng| {
            format!(
                "{}{}.onmicrosoft.com",
                rng.pick(&TENANT_WORDS),
                rng.range(100, 9999)
            )
        })
        .into_iter()
        .map(|domain| Tenant {
            guid: guid(rng),
            domain,
        })
        .collect();
        let landing_count = rng.range(shape.landings.0, shape.landings.1);
        let net_count = rng.range(shape.nets.0, shape.nets.1);
        streams.push(Stream {
            id: format!("echo-{:02}", w + 1),
            kind: StreamKind::Echo,
            weight: rng.range(12, 24),
            senders: spoofed.iter().map(|&b| brand_index[b]).collect(),
            relays: spoofed
                .iter()
                .map(|&b| {
                    if hrdp {
                        hrdp_relay_of[b].clone()
                    } else {
                        relay_of[b].clone()
                    }
                })
                .collect(),
            landing: unique(rng, landing_count, &mut taken, landing_host),
            subjects: (0..3)
                .map(|_| rng.pick(&BRAND_SUBJECTS).to_string())
                .collect(),
            nets: unique(rng, net_count, &mut wave_nets, net24),
            tenants,
            hrdp,
            start_day: rng.below(300) as i64,
            days: rng.range(3, 20) as i64,
            platform_factor: 1.0,
            favourite_platform: 0,
        });
    }
    // The brands' own mail through their own tenants and the same relays.
    for b in 0..LEGIT_BRANDS {
        let (name, _) = BIG_BRANDS[b];
        streams.push(Stream {
            id: format!("legit-{}", name.split('.').next().unwrap_or("brand")),
            kind: StreamKind::Legit,
            weight: 3,
            senders: vec![brand_index[b]],
            relays: vec![relay_of[b].clone()],
            landing: vec![format!("www.{name}")],
            subjects: NEWSLETTER_SUBJECTS.iter().map(|t| t.to_string()).collect(),
            nets: vec![net24(rng)],
            tenants: vec![Tenant {
                guid: guid(rng),
                domain: name.to_string(),
            }],
            hrdp: false,
            start_day: 0,
            days: 365,
            platform_factor: 1.0,
            favourite_platform: 0,
        });
    }
    // Noise: senders from a pool of one-off names.
    let noise = make_domains(rng, nkeys, 24, next_key, &mut taken);
    let first_noise = brands.len();
    brands.extend(noise);
    let total: usize = streams.iter().map(|s| s.weight).sum();
    streams.push(Stream {
        id: "-".into(),
        kind: StreamKind::Noise,
        weight: total / 4,
        senders: (first_noise..brands.len()).collect(),
        relays: Vec::new(),
        landing: Vec::new(),
        subjects: subjects.iter().map(|t| t.to_string()).collect(),
        nets: Vec::new(),
        tenants: Vec::new(),
        hrdp: false,
        start_day: 0,
        days: 365,
        platform_factor: 1.0,
        favourite_platform: 0,
    });
    streams
}

/// Which of `n` consecutive slices of the stream's time window `t` falls in.
fn time_slice(s: &Stream, t: i64, n: usize) -> usize {
    let span = s.days.max(1) * 86_400;
    let offset = (t - (YEAR_2024 + s.start_day * 86_400)).clamp(0, span - 1);
    ((offset as i128 * n as i128 / span as i128) as usize).min(n.saturating_sub(1))
}

/// A wave's landing host at time `t`: hosts rotate (burnt ones are replaced), so the window is
/// cut into one slice per host and a message mostly links to its slice's host.
pub(super) fn wave_landing<'s>(rng: &mut Rng, s: &'s Stream, t: i64) -> &'s str {
    if rng.chance(LANDING_IN_SLICE) {
        &s.landing[time_slice(s, t, s.landing.len())]
    } else {
        rng.pick(&s.landing).as_str()
    }
}

/// A day and time inside the stream's window, busiest in its middle (a wave).
pub(super) fn stream_time(rng: &mut Rng, s: &Stream) -> i64 {
    let span = s.days.max(1) * 86_400;
    let t = (rng.below(span as usize) + rng.below(span as usize)) as i64 / 2;
    let start = YEAR_2024 + s.start_day * 86_400;
    (start + t).min(YEAR_2024 + 365 * 86_400 - 7200)
}

pub(super) struct World {
    pub(super) keys: Vec<GenKey>,
    /// Sending domains: campaign families, big brands, noise senders.
    pub(super) brands: Vec<Domain>,
    pub(super) esps: Vec<Domain>,
    /// Where messages come from: campaigns, brand mail, noise; picked by weight.
    pub(super) streams: Vec<Stream>,
    pub(super) total_weight: usize,
    /// Shared-platform hosts: link shortener, click tracker, image CDN.
    pub(super) platforms: [String; 3],
    pub(super) platform_share: f64,
}

/// Everything messages are made from: domains, streams and platforms (a function of the seed
/// and the wave and platform knobs), and the keys.
pub(super) fn make_world(opts: &GenerateOptions, keys: Vec<GenKey>) -> World {
    let mut rng = Rng::new(opts.seed, 0);
    let nkeys = keys.len();
    let mut brands = Vec::new();
    let esps: Vec<Domain> = ESPS
        .iter()
        .enumerate()
        .map(|(i, (name, brand))| {
            let mut k = i + 3;
            domain_with_selectors(&mut rng, name.to_string(), brand.to_string(), nkeys, &mut k)
        })
        .collect();
    let shape = WaveShape {
        waves: opts.waves,
        brands: opts.wave_brands,
        tenants: opts.wave_tenants,
        nets: opts.wave_nets,
        landings: opts.wave_landings,
    };
    let mut streams = make_streams(&mut rng, nkeys, &mut brands, &shape);
    platform_habits(opts.seed, &mut streams);
    let total_weight = streams.iter().map(|s| s.weight).sum();
    World {
        keys,
        brands,
        esps,
        streams,
        total_weight,
        platforms: make_platforms(opts.seed),
        platform_share: opts.platform_share,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::generate::message::GenMessage;
    use crate::generate::testutil::{fast_keys, opts, sample};

    /// The header block of a message, one string per field (folds kept).
    fn fields(wire: &[u8]) -> Vec<String> {
        let end = memchr::memmem::find(wire, b"\r\n\r\n").expect("header end");
        let head = String::from_utf8_lossy(&wire[..end]).into_owned();
        let mut out: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            match out.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => {
                    last.push_str("\r\n");
                    last.push_str(line);
                }
                _ => out.push(line.to_string()),
            }
        }
        out
    }

    fn field<'f>(fields: &'f [String], name: &str) -> Vec<&'f str> {
        let prefix = format!("{name}: ");
        fields
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix))
            .collect()
    }

    /// What a wave message shows: From domain, tenant id, injector /24, the relay it left by.
    struct WaveFacts {
        from_domain: String,
        tenant: String,
        injector_net: String,
        relay: String,
    }

    fn wave_facts(m: &GenMessage) -> WaveFacts {
        let f = fields(&m.wire);
        let from = field(&f, "From")[0];
        let from_domain = from
            .rsplit_once('@')
            .and_then(|(_, d)| d.strip_suffix('>'))
            .expect("From address")
            .to_string();
        let tenant = field(&f, "X-MS-Exchange-CrossTenant-Id")[0].to_string();
        let received = field(&f, "Received");
        // The hop into the tenant: `from vps-N.host (a.b.c.d) by T.mail.protection.outlook.com`.
        let into_m365 = received
            .iter()
            .find(|r| r.contains(".mail.protection.outlook.com "))
            .expect("hop into M365");
        let ip = into_m365
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .expect("injector address")
            .0;
        let injector_net = ip.rsplit_once('.').expect("IPv4").0.to_string();
        let out_of_m365 = received
            .iter()
            .find(|r| r.contains("outbound.protection.outlook.com"))
            .expect("M365 outbound hop");
        let relay = out_of_m365
            .split(" by ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("relay host")
            .to_string();
        WaveFacts {
            from_domain,
            tenant,
            injector_net,
            relay,
        }
    }

    fn waves_of(msgs: &[GenMessage]) -> BTreeMap<&str, Vec<&GenMessage>> {
        let mut waves: BTreeMap<&str, Vec<&GenMessage>> = BTreeMap::new();
        for m in msgs.iter().filter(|m| m.campaign.starts_with("echo-")) {
            waves.entry(m.campaign.as_str()).or_default().push(m);
        }
        waves
    }

    #[test]
    fn wave_shape_follows_the_options() {
        let mut o = opts(2_000, 7);
        o.wave_brands = (6, 6);
        o.wave_tenants = (12, 12);
        o.wave_nets = (3, 3);
        let (_, msgs) = sample(&o, fast_keys());
        let legit: std::collections::BTreeSet<&str> =
            BIG_BRANDS[..LEGIT_BRANDS].iter().map(|b| b.0).collect();
        let waves = waves_of(&msgs);
        assert_eq!(waves.len(), 3, "{:?}", waves.keys());
        for (id, ms) in &waves {
            assert!(ms.iter().all(|m| m.echospoof), "{id}");
            let facts: Vec<WaveFacts> = ms.iter().map(|m| wave_facts(m)).collect();
            let distinct = |get: fn(&WaveFacts) -> &str| {
                facts
                    .iter()
                    .map(get)
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let brands = distinct(|f| &f.from_domain);
            assert_eq!(brands.len(), 6, "{id}: {brands:?}");
            assert_eq!(distinct(|f| &f.tenant).len(), 12, "{id}");
            assert_eq!(distinct(|f| &f.injector_net).len(), 3, "{id}");
            assert!(
                brands.iter().any(|b| legit.contains(b)),
                "{id}: spoofs a brand with its own mail"
            );
            // Each brand's messages go through that brand's own relay.
            let mut relay_of: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
            for f in &facts {
                relay_of.entry(&f.from_domain).or_default().insert(&f.relay);
            }
            assert!(
                relay_of.values().all(|r| r.len() == 1),
                "{id}: {relay_of:?}"
            );
        }
        // No tenant or injector network is shared by two waves.
        let mut seen = BTreeMap::new();
        for (id, ms) in &waves {
            for f in ms.iter().map(|m| wave_facts(m)) {
                for key in [f.tenant, f.injector_net] {
                    assert_eq!(*seen.entry(key).or_insert(*id), *id);
                }
            }
        }
    }

    #[test]
    fn default_waves_keep_their_shape_and_controls() {
        let (world, msgs) = sample(&opts(2_000, 3), fast_keys());
        let waves: Vec<&Stream> = world
            .streams
            .iter()
            .filter(|s| s.kind == StreamKind::Echo)
            .collect();
        assert_eq!(waves.len(), 3);
        assert_eq!(
            waves.iter().map(|s| s.hrdp).collect::<Vec<_>>(),
            [false, false, true]
        );
        for s in &waves {
            assert!((1..=2).contains(&s.senders.len()), "{}", s.id);
            assert!((2..=5).contains(&s.tenants.len()), "{}", s.id);
            assert!((1..=2).contains(&s.nets.len()), "{}", s.id);
            assert!((2..=3).contains(&s.landing.len()), "{}", s.id);
        }
        // The legit streams send mail as brands that the waves spoof.
        let legit: std::collections::BTreeSet<&str> = msgs
            .iter()
            .filter(|m| m.campaign.starts_with("legit-"))
            .map(|m| m.from_domain.as_str())
            .collect();
        assert_eq!(legit.len(), LEGIT_BRANDS);
        for (id, ms) in waves_of(&msgs) {
            assert!(
                ms.iter().any(|m| legit.contains(m.from_domain.as_str())),
                "{id}"
            );
        }
    }

    #[test]
    fn wave_landings_rotate_in_time() {
        let mut o = opts(2_000, 11);
        o.wave_landings = (3, 3);
        let (world, msgs) = sample(&o, fast_keys());
        for s in world.streams.iter().filter(|s| s.kind == StreamKind::Echo) {
            assert_eq!(s.landing.len(), 3);
            // Per time slice: how many messages, how many link to the slice's own domain.
            let mut per_slice = [(0usize, 0usize); 3];
            for m in msgs.iter().filter(|m| m.campaign == s.id) {
                // The Message-ID carries the signing time: `<token.TIME@domain>`.
                let t: i64 = m.message_id[1..]
                    .split(['.', '@'])
                    .nth(1)
                    .and_then(|t| t.parse().ok())
                    .expect("time in Message-ID");
                let body = String::from_utf8_lossy(&m.wire);
                let used: Vec<usize> = (0..3)
                    .filter(|&i| body.contains(&format!("https://{}/", s.landing[i])))
                    .collect();
                assert_eq!(used.len(), 1, "{}: one landing domain", s.id);
                let slice = time_slice(s, t, 3);
                per_slice[slice].0 += 1;
                per_slice[slice].1 += usize::from(used[0] == slice);
            }
            for (i, (n, own)) in per_slice.iter().enumerate() {
                assert!(*n >= 10, "{}: slice {i} has {n} messages", s.id);
                assert!(
                    *own as f64 >= 0.75 * *n as f64,
                    "{}: slice {i}: {own} of {n} use domain {i}",
                    s.id
                );
            }
        }
    }
}
