//! `timeline.svg`: messages per day for the largest campaigns and for relay abuse, drawn with
//! plotters' SVG backend (axes with dates, a legend, a title), readable without any other file.

use std::collections::BTreeMap;

use plotters::prelude::*;

/// Campaigns drawn, largest first.
pub const CHART_CAMPAIGNS: usize = 6;

/// The days the chart draws: 1971-01-01 (mail older than the first networked mail is a broken
/// or forged date; Unix time 0 is the commonest) up to 2100-01-01 (day numbers since 1970-01-01).
/// Spam carries absurd dates; drawn, one message dated 9999 would squeeze a year of mail into a
/// spike. Mail outside is counted and named on the chart; `timeline.csv` keeps every day.
pub const DRAWN_DAYS: std::ops::Range<i64> = 365..47_482;

/// Share of the mail a time axis may leave out at each end of its span: a few messages with
/// forged or broken dates years away from the rest would otherwise squeeze it into one spike.
pub const TRIMMED_SHARE: f64 = 0.005;

/// The days a time axis covers for mail counted per day (`counts`: day → messages, in day
/// order): within [`DRAWN_DAYS`], leaving out up to [`TRIMMED_SHARE`] of the messages at each
/// end. None when no message is dated within [`DRAWN_DAYS`].
pub fn drawn_span(
    counts: impl Iterator<Item = (i64, u64)> + Clone,
) -> Option<std::ops::RangeInclusive<i64>> {
    let drawn = counts.filter(|(d, n)| DRAWN_DAYS.contains(d) && *n > 0);
    let total: u64 = drawn.clone().map(|(_, n)| n).sum();
    let cut = (total as f64 * TRIMMED_SHARE).floor() as u64;
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut seen = 0;
    // The first day past the trimmed head, the last before the trimmed tail.
    for (d, n) in drawn {
        if seen + n > cut && first == i64::MAX {
            first = d;
        }
        if seen < total - cut {
            last = d;
        }
        seen += n;
    }
    (first <= last).then_some(first..=last)
}

/// The lines to draw: name and messages per day (day number → messages), within the drawn span.
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub lines: Vec<(String, BTreeMap<i64, u64>)>,
    /// Relay-abuse messages per day, over all campaigns and outside them.
    pub relay_abuse: BTreeMap<i64, u64>,
    /// Messages (in any campaign or none) dated outside the drawn span ([`drawn_span`]).
    pub undrawn: u64,
}

/// One campaign as the chart reads it: id, a few words on it (its brands), messages, and
/// messages and relay abuse per day.
pub type ChartCampaign<'a> = (&'a str, String, u64, &'a BTreeMap<i64, (u64, u64)>);

impl Series {
    /// From campaigns, largest first, and the per-day counts of messages outside any campaign.
    pub fn from_campaigns<'a>(
        campaigns: impl Iterator<Item = ChartCampaign<'a>> + Clone,
        outside: &BTreeMap<i64, (u64, u64)>,
    ) -> Series {
        let mut all: BTreeMap<i64, u64> = BTreeMap::new();
        for per_day in campaigns.clone().map(|c| c.3).chain([outside]) {
            for (d, (n, _)) in per_day {
                *all.entry(*d).or_default() += n;
            }
        }
        let span = drawn_span(all.iter().map(|(d, n)| (*d, *n)));
        let drawn = |d: &i64| span.as_ref().is_some_and(|span| span.contains(d));
        let mut s = Series {
            undrawn: all.iter().filter(|(d, _)| !drawn(d)).map(|(_, n)| n).sum(),
            ..Series::default()
        };
        for per_day in campaigns.clone().map(|c| c.3).chain([outside]) {
            for (d, (_, a)) in per_day.iter().filter(|(d, _)| drawn(d)) {
                if *a > 0 {
                    *s.relay_abuse.entry(*d).or_default() += a;
                }
            }
        }
        for (id, about, messages, per_day) in campaigns.take(CHART_CAMPAIGNS) {
            let abuse: u64 = per_day.values().map(|(_, a)| a).sum();
            let mut name = match abuse {
                0 => format!("campaign {id} ({messages} msgs)"),
                a => format!("campaign {id} ({messages} msgs, {a} relay abuse)"),
            };
            if !about.is_empty() {
                name.push_str(": ");
                name.push_str(&about);
            }
            let days = per_day.iter().filter(|(d, _)| drawn(d));
            s.lines
                .push((name, days.map(|(d, (n, _))| (*d, *n)).collect()));
        }
        s
    }
}

/// Height of the plot; the legend goes below it, one line per series, so it never covers a
/// peak.
const PLOT_HEIGHT: u32 = 520;
const LEGEND_LINE: u32 = 22;

/// Colours of the campaign lines.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

/// The SVG document.
pub fn render(series: &Series) -> String {
    let mut svg = String::new();
    let entries = series.lines.len() + usize::from(!series.relay_abuse.is_empty());
    let height = PLOT_HEIGHT + 16 + LEGEND_LINE * entries as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (1100, height)).into_drawing_area();
        let (plot, legend_area) = root.split_vertically(PLOT_HEIGHT);
        // Drawing into a string cannot fail for I/O reasons; an error would only lose the chart.
        let _ = root.fill(&WHITE);
        let _ = draw(&plot, series);
        let _ = legend(&legend_area, series);
        let _ = root.present();
    }
    svg
}

/// The legend, below the plot: a swatch and a name per series.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    series: &Series,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = ("sans-serif", 13).into_font();
    let mut y = 8i32;
    let line = LEGEND_LINE as i32;
    if !series.relay_abuse.is_empty() {
        let total: u64 = series.relay_abuse.values().sum();
        area.draw(&Rectangle::new(
            [(80, y), (104, y + 12)],
            RED.mix(0.35).filled(),
        ))?;
        area.draw(&Text::new(
            format!("relay abuse, all messages ({total} msgs)"),
            (112, y),
            font.clone(),
        ))?;
        y += line;
    }
    for (i, (name, _)) in series.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        area.draw(&PathElement::new(
            vec![(80, y + 6), (104, y + 6)],
            color.stroke_width(2),
        ))?;
        area.draw(&Text::new(name.clone(), (112, y), font.clone()))?;
        y += line;
    }
    Ok(())
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    series: &Series,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let all_days = series
        .lines
        .iter()
        .flat_map(|(_, m)| m.keys())
        .chain(series.relay_abuse.keys());
    let (lo, hi) = all_days.fold((i64::MAX, i64::MIN), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
    let (lo, hi) = if lo > hi {
        (0, 1)
    } else {
        (lo, hi.max(lo + 1))
    };
    let top = series
        .lines
        .iter()
        .flat_map(|(_, m)| m.values())
        .chain(series.relay_abuse.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let caption = match series.undrawn {
        0 => "Messages per day (UTC): largest campaigns and relay abuse".to_string(),
        n => format!(
            "Messages per day (UTC): largest campaigns and relay abuse ({n} dated far from the rest not drawn)"
        ),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(lo..hi, 0u64..(top + top / 10 + 1))?;
    chart
        .configure_mesh()
        .x_desc("day")
        .y_desc("messages")
        .x_labels(8)
        .x_label_formatter(&|d| super::day_text(*d))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    // Relay abuse first, as a light area: the campaign lines stay visible on top of it (a wave
    // that is all relay abuse would otherwise hide under its own red line).
    if !series.relay_abuse.is_empty() {
        let fill = RED.mix(0.2);
        chart.draw_series(
            AreaSeries::new(filled_days(lo, hi, &series.relay_abuse), 0, fill)
                .border_style(RED.stroke_width(1)),
        )?;
    }
    for (i, (_, per_day)) in series.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // A campaign's line spans its own days (and one either side, down to the axis), so
        // inactive campaigns do not pile up on the x axis.
        let first = per_day.keys().next().map_or(lo, |d| (d - 1).max(lo));
        let last = per_day.keys().next_back().map_or(hi, |d| (d + 1).min(hi));
        chart.draw_series(LineSeries::new(
            filled_days(first, last, per_day),
            color.stroke_width(2),
        ))?;
    }
    Ok(())
}

/// The days with mail, and a 0 on the day before and after each run of them (within the
/// range), so lines fall to the axis between waves. Grows with the days that have mail, not with
/// the span: spam dated 1901 and 9999 must not make a chart of three million points.
fn filled_days(lo: i64, hi: i64, per_day: &BTreeMap<i64, u64>) -> Vec<(i64, u64)> {
    let mut points = Vec::with_capacity(per_day.len() * 3);
    for (&d, &n) in per_day.range(lo..=hi) {
        let before = d - 1;
        if before >= lo
            && !per_day.contains_key(&before)
            && points.last().is_none_or(|&(p, _)| p < before)
        {
            points.push((before, 0));
        }
        points.push((d, n));
        let after = d + 1;
        if after <= hi && !per_day.contains_key(&after) {
            points.push((after, 0));
        }
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_dates_a_legend_and_a_line_per_series() {
        let mut per_day = BTreeMap::new();
        per_day.insert(19_800, (5, 2));
        per_day.insert(19_805, (9, 0));
        let outside = BTreeMap::new();
        let s = Series::from_campaigns(
            std::iter::once(("00ab", "shop.example".to_string(), 14u64, &per_day)),
            &outside,
        );
        let svg = render(&s);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("2024-03-18"), "a date label");
        assert!(svg.contains("campaign 00ab (14 msgs, 2 relay abuse): shop.example"));
        assert!(svg.contains("relay abuse, all messages (2 msgs)"));
        assert!(svg.matches("<polyline").count() >= 2, "two lines");
    }

    #[test]
    fn the_chart_grows_with_the_days_that_have_mail_not_with_the_span() {
        let mut per_day = BTreeMap::new();
        // 1901-01-01 to 9999-12-31, 24 days with mail.
        for i in 0..24i64 {
            per_day.insert(-25_202 + i * 120_000, (1, 1));
        }
        let outside = BTreeMap::new();
        let s = Series::from_campaigns(
            std::iter::once(("00ab", String::new(), 24u64, &per_day)),
            &outside,
        );
        let svg = render(&s);
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        assert!(svg.contains("campaign 00ab (24 msgs, 24 relay abuse)"));
    }

    #[test]
    fn absurd_dates_are_counted_not_drawn() {
        // Spam dated 1901, 1970 (Unix time 0) and 9999 beside a week of real mail: the axis
        // covers the real week, and the chart says how many were left out.
        let mut per_day = BTreeMap::new();
        for d in [-25_202, 0, 2_932_896] {
            per_day.insert(d, (1, 0));
        }
        for d in 19_800..19_807 {
            per_day.insert(d, (10, 1));
        }
        let s = Series::from_campaigns(
            std::iter::once(("00ab", String::new(), 73u64, &per_day)),
            &BTreeMap::new(),
        );
        assert_eq!(s.undrawn, 3);
        assert_eq!(s.lines[0].1.len(), 7);
        assert_eq!(s.relay_abuse.len(), 7);
        let svg = render(&s);
        assert!(svg.contains("3 dated far from the rest not drawn"));
        assert!(svg.contains("2024-03-"), "the axis is the real week's");
        assert!(!svg.contains("9999"));
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
    }

    #[test]
    fn a_few_far_dates_do_not_stretch_the_axis() {
        // A year-2024 week of 1,000 messages, and 4 messages dated 2009 and 2031: under 0.5% at
        // either end, left out; the week is drawn and the legend names the campaign's brands.
        let mut per_day = BTreeMap::new();
        for d in 19_800..19_807 {
            per_day.insert(d, (1000 / 7 + 1, 0));
        }
        per_day.insert(14_300, (2, 0));
        per_day.insert(22_300, (2, 0));
        let about = "bestbuy.example, nike.example and 3 more".to_string();
        let s = Series::from_campaigns(
            std::iter::once(("00ab", about, 1005u64, &per_day)),
            &BTreeMap::new(),
        );
        assert_eq!(s.undrawn, 4);
        assert_eq!(
            s.lines[0].1.keys().copied().collect::<Vec<_>>(),
            (19_800..19_807).collect::<Vec<_>>()
        );
        let svg = render(&s);
        assert!(svg.contains("4 dated far from the rest not drawn"));
        assert!(svg.contains("bestbuy.example, nike.example and 3 more"));
        assert!(!svg.contains("2009-"), "the axis is the week's");
    }

    #[test]
    fn the_drawn_span_trims_at_most_half_a_percent_at_each_end() {
        // Oracle: count the messages left out at each end by walking the days.
        let counts: Vec<(i64, u64)> = [(100, 1), (500, 300), (501, 300), (900, 2), (2_000, 1)]
            .iter()
            .map(|&(d, n)| (19_000 + d, n))
            .collect();
        let span = drawn_span(counts.iter().copied()).unwrap();
        let total: u64 = counts.iter().map(|c| c.1).sum();
        let before: u64 = counts
            .iter()
            .filter(|c| c.0 < *span.start())
            .map(|c| c.1)
            .sum();
        let after: u64 = counts
            .iter()
            .filter(|c| c.0 > *span.end())
            .map(|c| c.1)
            .sum();
        assert!(before as f64 <= total as f64 * TRIMMED_SHARE);
        assert!(after as f64 <= total as f64 * TRIMMED_SHARE);
        // 604 messages: up to 3 may go at each end, so the head's 1 and the tail's 2 + 1 do.
        assert_eq!(span, 19_500..=19_501);
        // Too few to trim: everything is drawn.
        assert_eq!(
            drawn_span([(19_010, 1), (19_020, 1)].into_iter()),
            Some(19_010..=19_020)
        );
        assert_eq!(drawn_span(std::iter::empty()), None);
        assert_eq!(
            drawn_span([(0, 5)].into_iter()),
            None,
            "1970-01-01 is never drawn"
        );
    }

    #[test]
    fn filled_days_drop_to_zero_around_each_run() {
        let per_day: BTreeMap<i64, u64> = [(10, 5), (11, 6), (20, 1)].into_iter().collect();
        assert_eq!(
            filled_days(9, 21, &per_day),
            vec![(9, 0), (10, 5), (11, 6), (12, 0), (19, 0), (20, 1), (21, 0)]
        );
        assert_eq!(
            filled_days(10, 20, &per_day),
            vec![(10, 5), (11, 6), (12, 0), (19, 0), (20, 1)]
        );
    }
}
