//! Stage 7, report: `report.html`, one self-contained page a researcher opens first.
//!
//! Takes the run's [`Totals`] and, when campaigns are on, the grouping's [`CampaignDetails`], and
//! gives an HTML page with its styles, charts (inline SVG) and a few lines of script (sortable
//! tables) inside: it loads nothing from the network and opens from a mail folder or an
//! air-gapped machine. Sections: what was read; relay abuse per time bin by spoofed brand; mail
//! per time bin in and outside campaigns; the largest campaigns with the evidence that linked
//! them and a small timeline each; DKIM results by signing domain; malformed and unreadable
//! inputs. Time axes choose day, week or month bins by the span of the mail ([`Bins`]).
//!
//! The page holds no timings, paths of the output or other facts of one run, so the same corpus
//! gives the same bytes whatever the thread or shard count. Every text from the mail is escaped.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::aggregate::Totals;
use crate::auth::SigResult;
use crate::campaign::chart::{DRAWN_DAYS, drawn_span};
use crate::campaign::{CampaignCard, CampaignDetails, day_text};
use crate::headers::Malformed;

/// Signing domains listed in the DKIM table, most signatures first.
pub const REPORTED_SIGNING_DOMAINS: usize = 40;
/// Brands drawn apart in the relay-abuse chart; the rest are drawn as one "other".
const CHART_BRANDS: usize = 8;
/// Unreadable inputs listed by name.
const LISTED_UNREADABLE: usize = 100;
/// Evidence values named per kind in a campaign's card.
const NAMED_EVIDENCE: usize = 4;

/// Colours of the chart series (colour-blind safe, after Okabe and Ito), then grey for "other".
const PALETTE: [&str; 9] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
    "#999999",
];

/// What the report shows.
pub struct ReportInput<'a> {
    pub totals: &'a Totals,
    /// DKIM was verified by this run (else the DKIM section says how to turn it on).
    pub dkim: bool,
    /// None with `--no-campaigns`.
    pub campaigns: Option<&'a CampaignDetails>,
}

/// The width of a time bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bin {
    Day,
    /// Weeks starting on Monday (ISO 8601).
    Week,
    Month,
}

/// Time bins over a span of days: days up to three months, weeks up to three years, months
/// beyond, so that a chart has between a handful and about 150 bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bins {
    pub bin: Bin,
    /// First and last day of the mail drawn.
    pub first: i64,
    pub last: i64,
}

impl Bins {
    /// The bins for mail dated from `first` to `last` (day numbers).
    pub fn for_span(first: i64, last: i64) -> Bins {
        let span = last - first + 1;
        let bin = if span <= 92 {
            Bin::Day
        } else if span <= 3 * 366 {
            Bin::Week
        } else {
            Bin::Month
        };
        Bins { bin, first, last }
    }

    /// The first day of the bin holding `day`.
    pub fn start(&self, day: i64) -> i64 {
        match self.bin {
            Bin::Day => day,
            // 1970-01-01 was a Thursday: Monday is 3 days before it.
            Bin::Week => day - (day + 3).rem_euclid(7),
            Bin::Month => {
                let (y, m, _) = crate::headers::date::civil_from_days(day);
                crate::headers::date::days_from_civil(y, m, 1)
            }
        }
    }

    /// The first day of the bin after the one starting on `start`.
    pub fn next(&self, start: i64) -> i64 {
        match self.bin {
            Bin::Day => start + 1,
            Bin::Week => start + 7,
            Bin::Month => {
                let (y, m, _) = crate::headers::date::civil_from_days(start);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                crate::headers::date::days_from_civil(y, m, 1)
            }
        }
    }

    /// Every bin's first day, in order.
    pub fn starts(&self) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = self.start(self.first);
        while at <= self.last {
            out.push(at);
            at = self.next(at);
        }
        out
    }

    /// The bin's name in the page: `per day`, `per week`, `per month`.
    pub fn per(&self) -> &'static str {
        match self.bin {
            Bin::Day => "per day",
            Bin::Week => "per week (from Monday)",
            Bin::Month => "per month",
        }
    }

    /// A bin's label: the day, the week's Monday, or `YYYY-MM`.
    fn label(&self, start: i64) -> String {
        let text = day_text(start);
        match self.bin {
            Bin::Month => text[..7].to_string(),
            _ => text,
        }
    }
}

/// Render the report.
pub fn render(input: &ReportInput<'_>) -> String {
    let t = input.totals;
    let mut page = String::with_capacity(64 << 10);
    page.push_str(HEAD);
    let _ = write!(
        page,
        "<h1>mailcensus report</h1>\n<p class=\"lead\">{} messages from {} input files ({}). \
         Every number here is also in the output tables; <code>summary.json</code> has the totals.</p>\n",
        n(t.messages),
        n(t.files),
        bytes(t.message_bytes),
    );
    overview(&mut page, input);
    match input.campaigns {
        Some(c) => {
            relay_abuse_chart(&mut page, c);
            volume_chart(&mut page, c);
            campaign_cards(&mut page, c);
        }
        None => page.push_str(
            "<h2>Campaigns and relay abuse</h2>\n<p>Not decided in this run \
             (<code>--no-campaigns</code>).</p>\n",
        ),
    }
    dkim_table(&mut page, input);
    input_problems(&mut page, t);
    page.push_str(TAIL);
    page
}

/// The headline numbers.
fn overview(page: &mut String, input: &ReportInput<'_>) {
    let t = input.totals;
    let mut cards: Vec<(String, &str)> = vec![
        (n(t.messages), "messages"),
        (n(t.malformed_total()), "malformed"),
    ];
    if input.dkim {
        let pass = t.signatures[SigResult::Pass.index()];
        let all: u64 = t.signatures.iter().sum();
        cards.push((format!("{} / {}", n(pass), n(all)), "DKIM signatures pass"));
        cards.push((n(t.dkim_aligned), "messages with an aligned pass"));
    }
    if let Some(c) = input.campaigns {
        cards.push((n(c.relay_abuse), "relay-abuse messages"));
        cards.push((n(c.relay_abuse_waves), "relay-abuse waves"));
        cards.push((n(c.campaigns), "campaigns"));
        cards.push((n(c.messages_in_campaigns), "messages in campaigns"));
    }
    page.push_str("<div class=\"cards\">\n");
    for (value, what) in cards {
        let _ = writeln!(
            page,
            "<div class=\"card\"><b>{value}</b><span>{}</span></div>",
            esc(what)
        );
    }
    page.push_str("</div>\n");
}

/// The bins for mail counted per day (`counts`: day → messages, in day order), over the span a
/// time axis covers ([`drawn_span`]); None when no message has a usable date.
fn bins_for(counts: impl Iterator<Item = (i64, u64)> + Clone) -> Option<Bins> {
    drawn_span(counts).map(|span| Bins::for_span(*span.start(), *span.end()))
}

/// Relay-abuse messages per bin, a stacked bar per bin by spoofed brand.
fn relay_abuse_chart(page: &mut String, c: &CampaignDetails) {
    page.push_str("<h2 id=\"relay-abuse\">Relay abuse by spoofed brand</h2>\n");
    let bins = bins_for(
        c.relay_abuse_by_day
            .iter()
            .map(|(d, brands)| (*d, brands.values().sum())),
    );
    let (Some(bins), true) = (bins.as_ref(), c.relay_abuse > 0) else {
        page.push_str(
            "<p>No relay-abuse messages: no message carried a From-aligned DKIM pass through \
             a Microsoft 365 tenant that is not the brand's and on through a gateway.</p>\n",
        );
        return;
    };
    let mut by_brand: BTreeMap<&str, u64> = BTreeMap::new();
    for brands in c.relay_abuse_by_day.values() {
        for (brand, n) in brands {
            *by_brand.entry(brand.as_str()).or_default() += n;
        }
    }
    let mut brands: Vec<(&str, u64)> = by_brand.into_iter().collect();
    brands.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let named: Vec<&str> = brands.iter().take(CHART_BRANDS).map(|b| b.0).collect();
    let mut series: Vec<(String, BTreeMap<i64, u64>)> = named
        .iter()
        .map(|b| ((*b).to_string(), BTreeMap::new()))
        .collect();
    let mut other = BTreeMap::new();
    let mut undrawn = 0;
    for (&day, brands) in &c.relay_abuse_by_day {
        for (brand, &count) in brands {
            if !DRAWN_DAYS.contains(&day) || day < bins.first || day > bins.last {
                undrawn += count;
                continue;
            }
            let bin = bins.start(day);
            let target = match named.iter().position(|b| *b == brand) {
                Some(i) => &mut series[i].1,
                None => &mut other,
            };
            *target.entry(bin).or_default() += count;
        }
    }
    if !other.is_empty() {
        series.push((
            format!("{} other brands", brands.len() - named.len()),
            other,
        ));
    }
    let _ = writeln!(
        page,
        "<p>{} relay-abuse messages, spoofing {} brands (the From organization), {} from {} \
         to {}. The waves' campaigns are listed below.</p>",
        n(c.relay_abuse),
        n(brands.len() as u64),
        bins.per(),
        day_text(bins.first),
        day_text(bins.last)
    );
    chart(
        page,
        bins,
        &series,
        ("relay-abuse message", "relay-abuse messages"),
        undrawn,
    );
}

/// All mail per bin: relay abuse, other mail in campaigns, mail in no campaign.
fn volume_chart(page: &mut String, c: &CampaignDetails) {
    page.push_str("<h2 id=\"volume\">Mail over time</h2>\n");
    let bins = bins_for(c.per_day.iter().map(|(d, v)| (*d, v.0)));
    let Some(bins) = bins.as_ref() else {
        page.push_str("<p>No message has a usable date.</p>\n");
        return;
    };
    let mut series: Vec<(String, BTreeMap<i64, u64>)> = vec![
        ("relay abuse".into(), BTreeMap::new()),
        ("other mail in campaigns".into(), BTreeMap::new()),
        ("in no campaign".into(), BTreeMap::new()),
    ];
    for (&day, &(messages, abuse, outside)) in c.per_day.range(bins.first..bins.last + 1) {
        let bin = bins.start(day);
        let in_campaigns = messages - outside;
        // Relay abuse outside campaigns is counted with it, not twice.
        *series[0].1.entry(bin).or_default() += abuse;
        *series[1].1.entry(bin).or_default() += in_campaigns.saturating_sub(abuse);
        *series[2].1.entry(bin).or_default() +=
            outside.saturating_sub(abuse.saturating_sub(in_campaigns));
    }
    let undated: u64 = c
        .per_day
        .iter()
        .filter(|(d, _)| **d < bins.first || **d > bins.last)
        .map(|(_, v)| v.0)
        .sum();
    let _ = writeln!(
        page,
        "<p>Messages {}, from {} to {}, by their receipt time.</p>",
        bins.per(),
        day_text(bins.first),
        day_text(bins.last)
    );
    chart(page, bins, &series, ("message", "messages"), undated);
}

/// A chart with its legend above it, and a note on the messages of `what` (singular, plural)
/// dated outside its span when there are any.
fn chart(
    page: &mut String,
    bins: &Bins,
    series: &[(String, BTreeMap<i64, u64>)],
    what: (&str, &str),
    undrawn: u64,
) {
    legend(page, series.iter().map(|s| s.0.as_str()));
    stacked_bars(page, bins, series, what.1);
    if undrawn > 0 {
        let _ = writeln!(
            page,
            "<p class=\"note\">{} dated far outside the rest (or before 1971 or after 2099) \
             not drawn; <code>timeline.csv</code> has every day.</p>",
            count_of(undrawn, what.0, what.1)
        );
    }
}

/// A legend above a chart, as HTML (it never covers a bar).
fn legend<'s>(page: &mut String, names: impl Iterator<Item = &'s str>) {
    page.push_str("<div class=\"legend\">");
    for (i, name) in names.enumerate() {
        let _ = write!(
            page,
            "<span><i style=\"background:{}\"></i>{}</span>",
            PALETTE[i.min(PALETTE.len() - 1)],
            esc(name)
        );
    }
    page.push_str("</div>\n");
}

/// Stacked bars, one per bin, series in order from the bottom; an axis with a few labels.
fn stacked_bars(
    page: &mut String,
    bins: &Bins,
    series: &[(String, BTreeMap<i64, u64>)],
    what: &str,
) {
    let starts = bins.starts();
    let totals: Vec<u64> = starts
        .iter()
        .map(|s| {
            series
                .iter()
                .map(|(_, m)| m.get(s).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let (width, height, left, bottom, top) = (960.0, 260.0, 56.0, 28.0, 8.0);
    let plot_w = width - left - 8.0;
    let plot_h = height - bottom - top;
    let step = plot_w / starts.len().max(1) as f64;
    let bar = (step * 0.8).max(1.0);
    let _ = writeln!(
        page,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{} {}\">",
        esc(what),
        bins.per()
    );
    // Value axis: 0, half and the maximum.
    for frac in [0.0, 0.5, 1.0] {
        let y = top + plot_h * (1.0 - frac);
        let value = (max as f64 * frac).round() as u64;
        let _ = writeln!(
            page,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{}</text>",
            width - 8.0,
            left - 4.0,
            y + 4.0,
            n(value)
        );
    }
    for (i, start) in starts.iter().enumerate() {
        let x = left + step * i as f64 + (step - bar) / 2.0;
        let mut y = top + plot_h;
        for (k, (name, counts)) in series.iter().enumerate() {
            let count = counts.get(start).copied().unwrap_or(0);
            if count == 0 {
                continue;
            }
            let h = plot_h * count as f64 / max as f64;
            y -= h;
            let _ = writeln!(
                page,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" \
                 fill=\"{}\"><title>{}: {} {} ({})</title></rect>",
                PALETTE[k.min(PALETTE.len() - 1)],
                bins.label(*start),
                n(count),
                esc(what),
                esc(name)
            );
        }
    }
    // About eight labels on the time axis, never overlapping.
    let every = starts.len().div_ceil(8).max(1);
    for (i, start) in starts.iter().enumerate().step_by(every) {
        let x = left + step * i as f64 + step / 2.0;
        let _ = writeln!(
            page,
            "<text x=\"{x:.1}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">{}</text>",
            height - 8.0,
            bins.label(*start)
        );
    }
    page.push_str("</svg>\n");
}

/// The largest campaigns (relay-abuse waves first), each with its evidence and timeline.
fn campaign_cards(page: &mut String, c: &CampaignDetails) {
    let _ = writeln!(
        page,
        "<h2 id=\"campaigns\">Largest campaigns</h2>\n<p>{} campaigns hold {} messages; \
         the {} largest are shown, relay-abuse waves first. A campaign is linked by what its \
         sender controls (landing domains, Microsoft 365 tenants, origin networks, a mailing \
         list), never by From domains; <code>campaign_evidence.csv</code> lists every key.</p>",
        n(c.campaigns),
        n(c.messages_in_campaigns),
        c.shown.len()
    );
    if c.shown.is_empty() {
        return;
    }
    page.push_str(
        "<div class=\"wide\"><table class=\"sortable\">\n<thead><tr><th>campaign</th><th>kind</th>\
         <th class=\"num\">messages</th><th class=\"num\">relay abuse</th><th>first seen</th>\
         <th>last seen</th><th>brands (From organizations)</th><th>linked by</th>\
         <th>timeline</th><th>example subject</th></tr></thead>\n<tbody>\n",
    );
    for card in &c.shown {
        campaign_row(page, card);
    }
    page.push_str("</tbody></table></div>\n");
}

fn campaign_row(page: &mut String, card: &CampaignCard) {
    let brands = card
        .brands
        .iter()
        .map(|(b, n_)| format!("{} ({})", esc(b), n(*n_)))
        .collect::<Vec<_>>()
        .join("<br>");
    let mut linked = String::new();
    for (label, values, total) in [
        ("landing", &card.landing, card.landing_count),
        ("tenants", &card.tenants, card.tenant_count),
        ("networks", &card.networks, card.network_count),
        ("list", &card.lists, card.lists.len() as u64),
    ] {
        if values.is_empty() {
            continue;
        }
        let named = values
            .iter()
            .take(NAMED_EVIDENCE)
            .map(|(v, n_)| format!("<code>{}</code> ({})", esc(v), n(*n_)))
            .collect::<Vec<_>>()
            .join(", ");
        let more = total.saturating_sub(values.len().min(NAMED_EVIDENCE) as u64);
        let _ = write!(linked, "<div><em>{label}:</em> {named}");
        if more > 0 {
            let _ = write!(linked, " and {} more", n(more));
        }
        linked.push_str("</div>");
    }
    let time = |t: Option<i64>| {
        t.map(|t| day_text(t.div_euclid(86_400)))
            .unwrap_or_default()
    };
    let _ = writeln!(
        page,
        "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\" data-v=\"{}\">{}</td>\
         <td class=\"num\" data-v=\"{}\">{}</td><td>{}</td><td>{}</td><td>{brands}</td>\
         <td class=\"evidence\">{linked}</td><td>{}</td><td class=\"subject\">{}</td></tr>",
        esc(&card.id),
        esc(card.kind),
        card.messages,
        n(card.messages),
        card.relay_abuse,
        n(card.relay_abuse),
        time(card.first_seen),
        time(card.last_seen),
        sparkline(card),
        esc(&card.example_subject),
    );
}

/// A campaign's messages per bin over its own span, as a small bar chart (bins where most mail
/// is relay abuse in red).
fn sparkline(card: &CampaignCard) -> String {
    let Some(bins) = bins_for(card.per_day.iter().map(|(d, v)| (*d, v.0))) else {
        return String::new();
    };
    let bins = &bins;
    let starts = bins.starts();
    let mut per_bin: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
    for (&day, &(messages, abuse)) in card.per_day.range(bins.first..bins.last + 1) {
        let e = per_bin.entry(bins.start(day)).or_default();
        e.0 += messages;
        e.1 += abuse;
    }
    let max = per_bin.values().map(|v| v.0).max().unwrap_or(0).max(1);
    let (w, h) = (160.0, 28.0);
    let step = w / starts.len().max(1) as f64;
    let mut svg = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\">\
         <title>messages {}</title>",
        bins.per()
    );
    for (i, start) in starts.iter().enumerate() {
        let Some(&(messages, abuse)) = per_bin.get(start) else {
            continue;
        };
        let x = step * i as f64;
        let bh = (h * messages as f64 / max as f64).max(1.0);
        let _ = write!(
            svg,
            "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{}\">\
             <title>{}: {}</title></rect>",
            h - bh,
            step.max(0.5),
            if abuse * 2 > messages {
                PALETTE[5]
            } else {
                PALETTE[0]
            },
            bins.label(*start),
            n(messages)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// DKIM results by signing domain (`d=`), most signatures first.
fn dkim_table(page: &mut String, input: &ReportInput<'_>) {
    page.push_str("<h2 id=\"dkim\">DKIM results by signing domain</h2>\n");
    let t = input.totals;
    if !input.dkim {
        page.push_str(
            "<p>DKIM was not verified in this run. Give the keys with <code>--keys</code> \
             (a zone file, a directory of key files, or archive JSON), or look them up live with \
             <code>--dns</code>.</p>\n",
        );
        return;
    }
    let mut domains: Vec<(&String, &[u64; SigResult::ALL.len()])> =
        t.signing_domains.iter().collect();
    let total = |c: &[u64]| c.iter().sum::<u64>();
    domains.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then(a.0.cmp(b.0)));
    // Only the results that occur, in their usual order.
    let shown: Vec<SigResult> = SigResult::ALL
        .iter()
        .copied()
        .filter(|r| t.signatures[r.index()] > 0)
        .collect();
    let _ = writeln!(
        page,
        "<p>{} signatures from {} signing domains; the {} with the most signatures are shown \
         (<code>signatures.csv</code> has every signature, with the hash of the key that \
         verified it).</p>",
        n(total(&t.signatures)),
        n(domains.len() as u64),
        domains.len().min(REPORTED_SIGNING_DOMAINS)
    );
    if domains.is_empty() {
        return;
    }
    page.push_str(
        "<div class=\"wide\"><table class=\"sortable\">\n<thead><tr><th>signing domain</th>\
         <th class=\"num\">signatures</th>",
    );
    for r in &shown {
        let _ = write!(page, "<th class=\"num\">{}</th>", esc(r.as_str()));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for (domain, counts) in domains.iter().take(REPORTED_SIGNING_DOMAINS) {
        let all = total(*counts);
        let _ = write!(
            page,
            "<tr><td><code>{}</code></td><td class=\"num\" data-v=\"{all}\">{}</td>",
            esc(domain),
            n(all)
        );
        for r in &shown {
            let c = counts[r.index()];
            let _ = write!(page, "<td class=\"num\" data-v=\"{c}\">{}</td>", n(c));
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>\n");
}

/// Malformed messages by reason, unreadable and skipped inputs.
fn input_problems(page: &mut String, t: &Totals) {
    page.push_str("<h2 id=\"inputs\">Malformed and unreadable input</h2>\n");
    let malformed = t.malformed_by_reason();
    let unreadable: Vec<_> = t.unreadable().collect();
    let skipped = t.skipped_by_reason();
    let _ = writeln!(
        page,
        "<p>{} malformed messages (kept, with the reason in <code>messages.csv</code>), \
         {} unreadable inputs, {} inputs skipped as not mail, {} messages with fields written \
         lossily (bytes that were not text), {} without any receipt time.</p>",
        n(t.malformed_total()),
        n(unreadable.len() as u64),
        n(skipped.values().sum()),
        n(t.lossy_messages),
        n(t.no_receipt_time),
    );
    if !malformed.is_empty() {
        page.push_str(
            "<table>\n<thead><tr><th>malformed: reason</th><th class=\"num\">messages</th>\
             </tr></thead>\n<tbody>\n",
        );
        for m in Malformed::ALL {
            if let Some(count) = malformed.get(m.as_str()) {
                let _ = writeln!(
                    page,
                    "<tr><td><code>{}</code></td><td class=\"num\">{}</td></tr>",
                    esc(m.as_str()),
                    n(*count)
                );
            }
        }
        page.push_str("</tbody></table>\n");
    }
    if !skipped.is_empty() {
        page.push_str(
            "<table>\n<thead><tr><th>skipped: reason</th><th class=\"num\">inputs</th>\
             </tr></thead>\n<tbody>\n",
        );
        for (reason, count) in &skipped {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(reason),
                n(*count)
            );
        }
        page.push_str("</tbody></table>\n");
    }
    if !unreadable.is_empty() {
        page.push_str(
            "<table>\n<thead><tr><th>unreadable input</th><th>why</th></tr></thead>\n<tbody>\n",
        );
        for note in unreadable.iter().take(LISTED_UNREADABLE) {
            let _ = writeln!(
                page,
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                esc(&note.path),
                esc(&note.reason)
            );
        }
        page.push_str("</tbody></table>\n");
        if unreadable.len() > LISTED_UNREADABLE {
            let _ = writeln!(
                page,
                "<p class=\"note\">and {} more (all in <code>summary.json</code>).</p>",
                n((unreadable.len() - LISTED_UNREADABLE) as u64)
            );
        }
    }
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped (mail text is anything).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A count with thousands separators: `1,234,567`.
fn n(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 message`, `2,000 messages`.
fn count_of(value: u64, one: &str, many: &str) -> String {
    format!("{} {}", n(value), if value == 1 { one } else { many })
}

/// Bytes in the largest unit that keeps a number of at least 1.
fn bytes(value: u64) -> String {
    let units = ["bytes", "KB", "MB", "GB", "TB"];
    let mut v = value as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < units.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} bytes")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

const HEAD: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>mailcensus report</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px; padding: 0 16px; color: #1b1b1b; }
h1 { font-size: 24px; margin-bottom: 4px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.lead { color: #444; } .note { color: #666; font-size: 12px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card b { display: block; font-size: 20px; } .card span { color: #555; font-size: 12px; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 6px 0; font-size: 12px; }
.legend i { display: inline-block; width: 11px; height: 11px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }
svg.chart { width: 100%; height: auto; max-height: 300px; }
svg .grid { stroke: #e5e5e5; } svg .axis { font-size: 11px; fill: #555; }
table { border-collapse: collapse; margin: 10px 0; font-size: 13px; }
.wide { overflow-x: auto; max-width: 100%; }
th, td { border-bottom: 1px solid #eee; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; position: sticky; top: 0; }
table.sortable th { cursor: pointer; } table.sortable th:hover { background: #ececec; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.evidence { font-size: 12px; min-width: 280px; max-width: 420px; } td.evidence div { margin: 1px 0; }
td.subject { max-width: 240px; }
code { font-size: 12px; word-break: break-all; }
</style>
</head>
<body>
"#;

/// Sortable tables (click a heading), and a mark that the page's script ran, read by the
/// browser test.
const TAIL: &str = r#"<script>
"use strict";
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = th.getAttribute("data-order") !== "down";
      var key = function (row) {
        var cell = row.cells[column];
        var v = cell.getAttribute("data-v");
        return v === null ? cell.textContent : Number(v);
      };
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var c = x < y ? -1 : x > y ? 1 : 0;
        return down ? -c : c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
      th.setAttribute("data-order", down ? "down" : "up");
    });
  });
});
document.body.setAttribute("data-report-ready", "yes");
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_text_is_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(n(0), "0");
        assert_eq!(n(999), "999");
        assert_eq!(n(1000), "1,000");
        assert_eq!(n(14_000_000), "14,000,000");
    }

    /// Day numbers of civil dates.
    fn day(y: i64, m: u32, d: u32) -> i64 {
        crate::headers::date::days_from_civil(y, m, d)
    }

    #[test]
    fn bins_follow_the_span() {
        let start = day(2024, 7, 1);
        assert_eq!(Bins::for_span(start, start).bin, Bin::Day);
        assert_eq!(Bins::for_span(start, start + 91).bin, Bin::Day);
        assert_eq!(Bins::for_span(start, start + 92).bin, Bin::Week);
        assert_eq!(Bins::for_span(start, start + 3 * 366 - 1).bin, Bin::Week);
        assert_eq!(Bins::for_span(start, start + 3 * 366).bin, Bin::Month);
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        // 2024-07-03 was a Wednesday; its week began on Monday 2024-07-01.
        let weeks = Bins::for_span(day(2024, 7, 3), day(2024, 12, 31));
        assert_eq!(weeks.start(day(2024, 7, 3)), day(2024, 7, 1));
        assert_eq!(weeks.start(day(2024, 7, 1)), day(2024, 7, 1));
        assert_eq!(weeks.start(day(2024, 7, 7)), day(2024, 7, 1));
        assert_eq!(weeks.start(day(1970, 1, 1)), day(1969, 12, 29));
        let months = Bins::for_span(day(2019, 12, 31), day(2024, 3, 2));
        assert_eq!(months.start(day(2019, 12, 31)), day(2019, 12, 1));
        assert_eq!(months.next(day(2019, 12, 1)), day(2020, 1, 1));
        let starts = months.starts();
        assert_eq!(starts.first(), Some(&day(2019, 12, 1)));
        assert_eq!(starts.last(), Some(&day(2024, 3, 1)));
        assert_eq!(starts.len(), 52);
        assert_eq!(months.label(day(2020, 2, 1)), "2020-02");
    }

    #[test]
    fn every_day_falls_in_exactly_one_bin() {
        // Oracle: walk the days one by one against the bins' starts.
        for (first, last) in [
            (day(2023, 1, 5), day(2023, 2, 1)),
            (day(2020, 2, 10), day(2021, 9, 9)),
            (day(2015, 6, 30), day(2024, 1, 1)),
        ] {
            let bins = Bins::for_span(first, last);
            let starts = bins.starts();
            for d in first..=last {
                let s = bins.start(d);
                assert!(s <= d && d < bins.next(s), "day {d} in bin {s}");
                assert!(starts.contains(&s), "bin {s} of day {d} is listed");
            }
        }
    }
}
