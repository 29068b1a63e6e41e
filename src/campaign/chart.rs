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

/// The lines to draw: name and messages per day (day number → messages), within [`DRAWN_DAYS`].
#[derive(Debug, Clone, Default)]
pub struct Series {
    pub lines: Vec<(String, BTreeMap<i64, u64>)>,
    /// Relay-abuse messages per day, over all campaigns and outside them.
    pub relay_abuse: BTreeMap<i64, u64>,
    /// Messages (in any campaign or none) dated outside [`DRAWN_DAYS`], not drawn.
    pub undrawn: u64,
}

impl Series {
    /// From campaigns (id, messages, per-day (messages, relay abuse)), largest first, and the
    /// per-day counts of messages outside any campaign.
    pub fn from_campaigns<'a>(
        campaigns: impl Iterator<Item = (&'a str, u64, &'a BTreeMap<i64, (u64, u64)>)>,
        outside: &BTreeMap<i64, (u64, u64)>,
    ) -> Series {
        let mut s = Series::default();
        for (i, (id, messages, per_day)) in campaigns.enumerate() {
            s.undrawn += undrawn(per_day);
            for (d, (_, a)) in per_day.range(DRAWN_DAYS) {
                if *a > 0 {
                    *s.relay_abuse.entry(*d).or_default() += a;
                }
            }
            if i < CHART_CAMPAIGNS {
                let abuse: u64 = per_day.values().map(|(_, a)| a).sum();
                let name = match abuse {
                    0 => format!("campaign {id} ({messages} msgs)"),
                    a => format!("campaign {id} ({messages} msgs, {a} relay abuse)"),
                };
                let drawn = per_day.range(DRAWN_DAYS).map(|(d, (n, _))| (*d, *n));
                s.lines.push((name, drawn.collect()));
            }
        }
        s.undrawn += undrawn(outside);
        for (d, (_, a)) in outside.range(DRAWN_DAYS) {
            if *a > 0 {
                *s.relay_abuse.entry(*d).or_default() += a;
            }
        }
        s
    }
}

/// Messages of a per-day map dated outside [`DRAWN_DAYS`].
fn undrawn(per_day: &BTreeMap<i64, (u64, u64)>) -> u64 {
    let before = per_day.range(..DRAWN_DAYS.start);
    let after = per_day.range(DRAWN_DAYS.end..);
    before.chain(after).map(|(_, (n, _))| n).sum()
}

/// The SVG document.
pub fn render(series: &Series) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 560)).into_drawing_area();
        // Drawing into a string cannot fail for I/O reasons; an error would only lose the chart.
        let _ = draw(&root, series);
        let _ = root.present();
    }
    svg
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    series: &Series,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
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
            "Messages per day (UTC): largest campaigns and relay abuse ({n} dated before 1971 or after 2099 not drawn)"
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
        let total: u64 = series.relay_abuse.values().sum();
        let fill = RED.mix(0.2);
        chart
            .draw_series(
                AreaSeries::new(filled_days(lo, hi, &series.relay_abuse), 0, fill)
                    .border_style(RED.stroke_width(1)),
            )?
            .label(format!("relay abuse, all messages ({total} msgs)"))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], RED.mix(0.35).filled())
            });
    }
    let palette = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(23, 190, 207),
    ];
    for (i, (name, per_day)) in series.lines.iter().enumerate() {
        let color = palette[i % palette.len()];
        // A campaign's line spans its own days (and one either side, down to the axis), so
        // inactive campaigns do not pile up on the x axis.
        let first = per_day.keys().next().map_or(lo, |d| (d - 1).max(lo));
        let last = per_day.keys().next_back().map_or(hi, |d| (d + 1).min(hi));
        chart
            .draw_series(LineSeries::new(
                filled_days(first, last, per_day),
                color.stroke_width(2),
            ))?
            .label(name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
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
        let s = Series::from_campaigns(std::iter::once(("00ab", 14u64, &per_day)), &outside);
        let svg = render(&s);
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("2024-03-18"), "a date label");
        assert!(svg.contains("campaign 00ab (14 msgs, 2 relay abuse)"));
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
        let s = Series::from_campaigns(std::iter::once(("00ab", 24u64, &per_day)), &outside);
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
        let s =
            Series::from_campaigns(std::iter::once(("00ab", 73u64, &per_day)), &BTreeMap::new());
        assert_eq!(s.undrawn, 3);
        assert_eq!(s.lines[0].1.len(), 7);
        assert_eq!(s.relay_abuse.len(), 7);
        let svg = render(&s);
        assert!(svg.contains("3 dated before 1971 or after 2099 not drawn"));
        assert!(svg.contains("2024-03-"), "the axis is the real week's");
        assert!(!svg.contains("9999"));
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
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
