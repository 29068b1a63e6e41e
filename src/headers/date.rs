//! Dates in mail: takes the bytes of a Date: header value, the date part of a
//! Received: header (after its last `;`), an mbox From_ line's asctime, or an
//! ISO 8601 timestamp, and gives Unix seconds (UTC); also formats Unix
//! seconds as RFC 3339 UTC. Lenient, token based, allocation free.

/// Earliest instant `format_rfc3339` writes (0000-01-01T00:00:00Z); anything
/// earlier is clamped so the year always has four digits.
const MIN_TS: i64 = -62_167_219_200;
/// Latest instant `format_rfc3339` writes (9999-12-31T23:59:59Z).
const MAX_TS: i64 = 253_402_300_799;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// A run of digits: saturated value and how many digits were written,
    /// because "06" vs "2006" vs "0600" changes the meaning.
    Num(u32, u32),
    Word(&'a [u8]),
    Plus,
    Minus,
    Colon,
    Dot,
    Slash,
    Comma,
    Other,
}

/// Copyable so that look-ahead is just a copy of the position.
#[derive(Clone, Copy)]
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Lexer<'a> {
    fn next_tok(&mut self) -> Option<Tok<'a>> {
        let s = self.s;
        loop {
            let &b = s.get(self.i)?;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                // Comments such as "(PDT)" are informational only (RFC 5322 §3.3);
                // the numeric zone is what counts.
                b'(' => self.skip_comment(),
                _ => break,
            }
        }
        let start = self.i;
        let b = s[start];
        self.i += 1;
        let tok = match b {
            b'0'..=b'9' => {
                let mut val = u32::from(b - b'0');
                let mut digits = 1u32;
                while let Some(&d) = s.get(self.i) {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    val = val.saturating_mul(10).saturating_add(u32::from(d - b'0'));
                    digits = digits.saturating_add(1);
                    self.i += 1;
                }
                Tok::Num(val, digits)
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                while s.get(self.i).is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.i += 1;
                }
                Tok::Word(&s[start..self.i])
            }
            b'+' => Tok::Plus,
            b'-' => Tok::Minus,
            b':' => Tok::Colon,
            b'.' => Tok::Dot,
            b'/' => Tok::Slash,
            b',' => Tok::Comma,
            _ => Tok::Other,
        };
        Some(tok)
    }

    fn skip_comment(&mut self) {
        let mut depth = 0usize;
        while let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            match b {
                b'\\' => self.i += 1,
                b'(' => depth += 1,
                b')' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn peek(&self) -> Option<Tok<'a>> {
        let mut p = *self;
        p.next_tok()
    }
}

const MONTHS: [&[u8]; 12] = [
    b"january",
    b"february",
    b"march",
    b"april",
    b"may",
    b"june",
    b"july",
    b"august",
    b"september",
    b"october",
    b"november",
    b"december",
];

/// ASCII month abbreviations of localised mailers (French, German, Spanish,
/// Italian, Dutch, Polish, Portuguese, Turkish) that are not also English
/// prefixes; seen in the trec07p Date headers ("Pzt, 09 Nis 2007").
const FOREIGN_MONTHS: &[(&[u8], u32)] = &[
    (b"janv", 1),
    (b"ene", 1),
    (b"gen", 1),
    (b"sty", 1),
    (b"oca", 1),
    (b"fev", 2),
    (b"lut", 2),
    (b"mrz", 3),
    (b"mrt", 3),
    (b"avr", 4),
    (b"abr", 4),
    (b"kwi", 4),
    (b"nis", 4),
    (b"mai", 5),
    (b"mag", 5),
    (b"mei", 5),
    (b"maj", 5),
    (b"juin", 6),
    (b"giu", 6),
    (b"cze", 6),
    (b"haz", 6),
    (b"juil", 7),
    (b"lug", 7),
    (b"lip", 7),
    (b"tem", 7),
    (b"ago", 8),
    (b"sie", 8),
    (b"set", 9),
    (b"wrz", 9),
    (b"eyl", 9),
    (b"okt", 10),
    (b"ott", 10),
    (b"out", 10),
    (b"eki", 10),
    (b"lis", 11),
    (b"kas", 11),
    (b"dez", 12),
    (b"dic", 12),
    (b"gru", 12),
    (b"ara", 12),
];

/// Month name: English, 3 letters or more of the full name ("Sep", "Sept",
/// "September"), or one of the foreign abbreviations above.
fn month_of(w: &[u8]) -> Option<u32> {
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.len() >= w.len() && m[..w.len()].eq_ignore_ascii_case(w))
        .map(|i| i as u32 + 1)
        .or_else(|| {
            FOREIGN_MONTHS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(w))
                .map(|&(_, m)| m)
        })
}

/// Named zones in minutes east of UTC. North American names follow RFC 5322;
/// the rest are the ones seen in real mail. Ambiguous abbreviations get one
/// documented reading: CST = US Central (not China), IST = India (not
/// Ireland/Israel), BST = British Summer Time.
const ZONES: &[(&[u8], i32)] = &[
    (b"ut", 0),
    (b"utc", 0),
    (b"gmt", 0),
    (b"z", 0),
    (b"wet", 0),
    (b"west", 60),
    (b"bst", 60),
    (b"cet", 60),
    (b"cest", 120),
    (b"met", 60),
    (b"mest", 120),
    (b"mez", 60),
    (b"mesz", 120),
    (b"wat", 60),
    (b"eet", 120),
    (b"eest", 180),
    (b"cat", 120),
    (b"sast", 120),
    (b"msk", 180),
    (b"msd", 240),
    (b"eat", 180),
    (b"pkt", 300),
    (b"ist", 330),
    (b"wib", 420),
    (b"hkt", 480),
    (b"sgt", 480),
    (b"awst", 480),
    (b"jst", 540),
    (b"kst", 540),
    (b"acst", 570),
    (b"acdt", 630),
    (b"aest", 600),
    (b"aedt", 660),
    (b"nzst", 720),
    (b"nzdt", 780),
    (b"nst", -210),
    (b"ndt", -150),
    (b"brt", -180),
    (b"art", -180),
    (b"ast", -240),
    (b"adt", -180),
    (b"edt", -240),
    (b"est", -300),
    (b"cdt", -300),
    (b"cst", -360),
    (b"mdt", -360),
    (b"mst", -420),
    (b"pdt", -420),
    (b"pst", -480),
    (b"akdt", -480),
    (b"akst", -540),
    (b"hst", -600),
];

fn zone_of(w: &[u8]) -> Option<i32> {
    if let Some(&(_, off)) = ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(w)) {
        return Some(off);
    }
    // Military letters: RFC 5322 §4.3 says their sign was botched so often
    // that they must be taken as -0000, i.e. UTC.
    if w.len() == 1 && !w[0].eq_ignore_ascii_case(&b'j') {
        return Some(0);
    }
    None
}

const WEEKDAYS: [&[u8]; 7] = [
    b"monday",
    b"tuesday",
    b"wednesday",
    b"thursday",
    b"friday",
    b"saturday",
    b"sunday",
];

fn is_weekday(w: &[u8]) -> bool {
    w.len() >= 2
        && WEEKDAYS
            .iter()
            .any(|d| d.len() >= w.len() && d[..w.len()].eq_ignore_ascii_case(w))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days_from_civil algorithm: shift the year to start in March so the leap
/// day is last, then count 400-year eras).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of `days_from_civil`: (year, month 1-12, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A numeric zone after its sign: `hhmm`, `hmm` (seen as "--500"), `hh`,
/// `hh:mm`. Returns minutes, or None for values that cannot be an offset.
fn numeric_zone(lx: &mut Lexer<'_>, val: u32, digits: u32) -> Option<i32> {
    let (h, m) = match digits {
        3 | 4 => (val / 100, val % 100),
        1 | 2 => {
            let mut p = *lx;
            if p.next_tok() == Some(Tok::Colon)
                && let Some(Tok::Num(mm, 2)) = p.next_tok()
            {
                *lx = p;
                (val, mm)
            } else {
                (val, 0)
            }
        }
        _ => return None,
    };
    (h <= 23 && m <= 59).then(|| (h * 60 + m) as i32)
}

/// Parse a date as found in mail into Unix seconds (UTC).
///
/// Lenient and token based: optional day of week, day, English month name,
/// 2/3/4-digit year, `hh:mm[:ss]` with optional AM/PM, numeric or named zone
/// (unknown names and military letters are UTC, missing zone is UTC);
/// comments and trailing junk are ignored. Also takes the asctime form of
/// mbox From_ lines and ISO 8601 (`2024-05-06T00:10:11Z`). Returns None
/// without a day, month and year, or for impossible values. A leap second
/// (60) is read as 59.
pub fn parse_date(raw: &[u8]) -> Option<i64> {
    // Nearly all real dates are in the canonical RFC 5322 shape; read those without the
    // general tokenizer (it costs several times more per date, and a message has several).
    if let Some(ts) = parse_canonical(raw) {
        return Some(ts);
    }
    parse_lenient(raw)
}

/// `[Ddd, ]D[D] Mmm YYYY hh:mm:ss (+|-)hhmm` with an optional trailing comment or `GMT`/`UT`/
/// `UTC` zone, and nothing else; None for any other shape (the lenient parser then decides).
fn parse_canonical(raw: &[u8]) -> Option<i64> {
    let mut s = raw.trim_ascii();
    if s.len() >= 5 && s[3] == b',' && s[..3].iter().all(u8::is_ascii_alphabetic) {
        s = s[4..].trim_ascii_start();
    }
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let (day, rest) = match s {
        [a, b' ', ..] => (digit(*a)?, &s[2..]),
        [a, b, b' ', ..] => (digit(*a)? * 10 + digit(*b)?, &s[3..]),
        _ => return None,
    };
    let [
        m0,
        m1,
        m2,
        b' ',
        y0,
        y1,
        y2,
        y3,
        b' ',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        tail @ ..,
    ] = rest
    else {
        return None;
    };
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let month = MONTHS.iter().position(|m| **m == [*m0, *m1, *m2])? as u32 + 1;
    let year = digit(*y0)? * 1000 + digit(*y1)? * 100 + digit(*y2)? * 10 + digit(*y3)?;
    let hour = digit(*h0)? * 10 + digit(*h1)?;
    let minute = digit(*i0)? * 10 + digit(*i1)?;
    let second = digit(*s0)? * 10 + digit(*s1)?;
    let tail = tail.trim_ascii_start();
    let (offset_minutes, after) = match tail {
        [sign @ (b'+' | b'-'), a, b, c, d, after @ ..] => {
            let hh = digit(*a)? * 10 + digit(*b)?;
            let mm = digit(*c)? * 10 + digit(*d)?;
            if hh > 23 || mm > 59 {
                return None;
            }
            let v = (hh * 60 + mm) as i64;
            (if *sign == b'-' { -v } else { v }, after)
        }
        [b'G', b'M', b'T', after @ ..] | [b'U', b'T', b'C', after @ ..] => (0, after),
        [b'U', b'T', after @ ..] => (0, after),
        _ => return None,
    };
    let after = after.trim_ascii();
    // Only a parenthesised comment may follow the zone.
    if !(after.is_empty() || (after.starts_with(b"(") && after.ends_with(b")"))) {
        return None;
    }
    if !(1900..=9999).contains(&year)
        || day == 0
        || day > days_in_month(year as i64, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let second = second.min(59);
    let days = days_from_civil(year as i64, month, day);
    Some(days * 86400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60)
}

fn parse_lenient(raw: &[u8]) -> Option<i64> {
    let mut lx = Lexer { s: raw, i: 0 };
    let mut month: Option<u32> = None;
    // A month name in the day-of-week slot ("Jan, 8 Apr 2007") is kept only
    // until a better one shows up.
    let mut month_weak = false;
    let mut ymd: Option<(u32, u32, u32, u32)> = None; // ISO: (year, digits, month, day)
    let mut time: Option<(u32, u32, u32)> = None;
    let mut zone_num: Option<i32> = None;
    let mut zone_name: Option<i32> = None;
    let mut ampm: Option<bool> = None; // Some(true) = PM
    let mut nums = [(0u32, 0u32); 3];
    let mut n_nums = 0;
    let mut first = true;

    while let Some(tok) = lx.next_tok() {
        let was_first = std::mem::replace(&mut first, false);
        match tok {
            Tok::Num(val, digits) => {
                if digits == 4
                    && ymd.is_none()
                    && month.is_none()
                    && n_nums == 0
                    && let Some((m, d)) = iso_tail(&mut lx)
                {
                    ymd = Some((val, 4, m, d));
                    continue;
                }
                if digits <= 2
                    && ymd.is_none()
                    && month.is_none()
                    && n_nums == 0
                    && let Some((sep, second, y, ydigits)) = numeric_tail(&mut lx)
                {
                    // Day and month are told apart only when one of them is
                    // above 12 (dots are always day.month): a guess would put
                    // wrong dates in the output, so ambiguity gives up.
                    let (d, m) = if sep == Tok::Dot || val > 12 || val == second {
                        (val, second)
                    } else if second > 12 {
                        (second, val)
                    } else {
                        return None;
                    };
                    ymd = Some((y, ydigits, m, d));
                    continue;
                }
                if time.is_none()
                    && digits <= 2
                    && let Some(t) = time_tail(&mut lx, val, month.is_some() || ymd.is_some())
                {
                    time = Some(t);
                    continue;
                }
                if digits <= 4 && n_nums < nums.len() {
                    nums[n_nums] = (val, digits);
                    n_nums += 1;
                }
            }
            Tok::Word(w) => {
                if let Some(m) = month_of(w) {
                    let dow_slot = was_first && matches!(lx.peek(), Some(Tok::Comma | Tok::Dot));
                    if month.is_none() || month_weak {
                        month = Some(m);
                        month_weak = dow_slot;
                    }
                } else if time.is_some() {
                    // Only after the time: before it, a letter is the ISO "T"
                    // or a day name, not a zone.
                    if w.eq_ignore_ascii_case(b"am") || w.eq_ignore_ascii_case(b"pm") {
                        ampm = Some(w[0].eq_ignore_ascii_case(&b'p'));
                    } else if zone_name.is_none() && !is_weekday(w) {
                        zone_name = zone_of(w);
                    }
                }
            }
            Tok::Plus | Tok::Minus if zone_num.is_none() && (time.is_some() || n_nums >= 2) => {
                // "+-0500" and "--500" come from broken Outlook builds; the
                // sign nearest the digits is the meant one.
                let mut neg = tok == Tok::Minus;
                let mut p = lx;
                while let Some(t) = p.next_tok() {
                    match t {
                        Tok::Plus => neg = false,
                        Tok::Minus => neg = true,
                        // Without a time yet, only `hhmm` is safe: "- 10:00"
                        // is more likely a time than a zone.
                        Tok::Num(_, d) if time.is_none() && d != 4 => break,
                        Tok::Num(val, digits) => {
                            if let Some(z) = numeric_zone(&mut p, val, digits) {
                                zone_num = Some(if neg { -z } else { z });
                                lx = p;
                            }
                            break;
                        }
                        _ => break,
                    }
                }
            }
            _ => {}
        }
        let have_date = ymd.is_some() || (month.is_some() && n_nums >= 2);
        if have_date && time.is_some() && zone_num.is_some() {
            // Everything after is junk (SpamAssassin markers, fractions...).
            break;
        }
    }

    let (year, ydigits, month, day) = match ymd {
        Some(v) => v,
        None => {
            let month = month?;
            let nums = &nums[..n_nums];
            let (year, day) = match nums.iter().position(|&(_, d)| d >= 3) {
                Some(yi) => {
                    let day = nums
                        .iter()
                        .enumerate()
                        .find(|&(i, &(_, d))| i != yi && d <= 2)?
                        .1;
                    (nums[yi], *day)
                }
                None => (*nums.get(1)?, nums[0]),
            };
            (year.0, year.1, month, day.0)
        }
    };
    let year = i64::from(match ydigits {
        1 | 2 if year < 50 => year + 2000,
        1 | 2 => year + 1900,
        // A struct tm year printed as is: "102" or, zero-padded, "0102".
        _ if year < 1000 => year + 1900,
        _ => year,
    });
    if !(1900..=9999).contains(&year) || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let (mut h, mi, s) = time.unwrap_or((0, 0, 0));
    match ampm {
        Some(true) if (1..12).contains(&h) => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let s = s.min(59);
    let offset = zone_num.or(zone_name).unwrap_or(0);
    let days = days_from_civil(year, month, day);
    Some(
        days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
            - i64::from(offset) * 60,
    )
}

/// After a 4-digit year: `-MM-DD` or `/MM/DD`.
fn iso_tail(lx: &mut Lexer<'_>) -> Option<(u32, u32)> {
    let mut p = *lx;
    let sep = p.next_tok()?;
    if !matches!(sep, Tok::Minus | Tok::Slash) {
        return None;
    }
    let Tok::Num(m, 1..=2) = p.next_tok()? else {
        return None;
    };
    if p.next_tok()? != sep {
        return None;
    }
    let Tok::Num(d, 1..=2) = p.next_tok()? else {
        return None;
    };
    *lx = p;
    Some((m, d))
}

/// After a 1-2 digit number: `/NN/YYYY`, `-NN-YY`, `.NN.YYYY` (same
/// separator twice, year of 2 or 4 digits).
fn numeric_tail<'a>(lx: &mut Lexer<'a>) -> Option<(Tok<'a>, u32, u32, u32)> {
    let mut p = *lx;
    let sep = p.next_tok()?;
    if !matches!(sep, Tok::Minus | Tok::Slash | Tok::Dot) {
        return None;
    }
    let Tok::Num(second, 1..=2) = p.next_tok()? else {
        return None;
    };
    if p.next_tok()? != sep {
        return None;
    }
    let Tok::Num(y, yd @ (2 | 4)) = p.next_tok()? else {
        return None;
    };
    *lx = p;
    Some((sep, second, y, yd))
}

/// After an hour: `:mm` and optionally `:ss` and a fraction. With
/// `allow_dots` (the date is already known, so `06.05.24` cannot be a date)
/// also `.mm.ss`, all three parts required.
fn time_tail(lx: &mut Lexer<'_>, hour: u32, allow_dots: bool) -> Option<(u32, u32, u32)> {
    let mut p = *lx;
    let sep = p.next_tok()?;
    if !(sep == Tok::Colon || (allow_dots && sep == Tok::Dot)) {
        return None;
    }
    let Tok::Num(min, 1..=2) = p.next_tok()? else {
        return None;
    };
    let mut sec = 0;
    let mut q = p;
    if q.next_tok() == Some(sep)
        && let Some(Tok::Num(s, 1..=2)) = q.next_tok()
    {
        sec = s;
        p = q;
        let mut f = p;
        if f.next_tok() == Some(Tok::Dot) && matches!(f.next_tok(), Some(Tok::Num(..))) {
            p = f;
        }
    } else if sep == Tok::Dot {
        return None;
    }
    *lx = p;
    Some((hour, min, sec))
}

/// Format Unix seconds as RFC 3339 UTC: `2024-05-06T00:10:11Z`. Values
/// outside years 0000..=9999 are clamped so the year keeps four digits.
pub fn format_rfc3339(ts: i64) -> String {
    let mut v = Vec::with_capacity(20);
    write_rfc3339(ts, &mut v);
    // Only ASCII digits and separators are written.
    String::from_utf8(v).unwrap_or_default()
}

/// Same as `format_rfc3339`, appended to a byte buffer without allocating
/// anything besides growing `out`.
pub fn write_rfc3339(ts: i64, out: &mut Vec<u8>) {
    let ts = ts.clamp(MIN_TS, MAX_TS);
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    let (h, mi, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let two = |v: u32| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    let [y0, y1] = two(y / 100);
    let [y2, y3] = two(y);
    let [m0, m1] = two(m);
    let [d0, d1] = two(d);
    let [h0, h1] = two(h);
    let [i0, i1] = two(mi);
    let [s0, s1] = two(s);
    out.extend_from_slice(&[
        y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b'T', h0, h1, b':', i0, i1, b':', s0, s1, b'Z',
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Option<String> {
        parse_date(s.as_bytes()).map(format_rfc3339)
    }

    fn is(s: &str, want: &str) {
        assert_eq!(p(s).as_deref(), Some(want), "input {s:?}");
    }

    #[test]
    fn rfc5322_forms() {
        // dkimpy-signed-trap message 0: Date and topmost Received date part.
        is("Mon, 06 May 2024 02:04:47 +0200", "2024-05-06T00:04:47Z");
        is(
            " Mon, 06 May 2024 00:10:11 +0000 (UTC)",
            "2024-05-06T00:10:11Z",
        );
        is("Sun, 05 May 2024 19:07:34 -0500", "2024-05-06T00:07:34Z");
        // spamassassin-public / trec07p shapes.
        is("Thu, 22 Aug 2002 18:26:25 +0700", "2002-08-22T11:26:25Z");
        is("22 Aug 2002 18:26:25 -0000", "2002-08-22T18:26:25Z");
        is("\tMon, 9 Apr 2007 01:47:42 +0300", "2007-04-08T22:47:42Z");
        is("Wed,22 May 2002 11:30:01 +0100", "2002-05-22T10:30:01Z");
        is("Mon, 9 Dec 2002 10:25 -0500", "2002-12-09T15:25:00Z");
        is("Thu, 8 Aug 2002 9:05:03 +0100", "2002-08-08T08:05:03Z");
    }

    #[test]
    fn named_and_odd_zones() {
        is("Tue, 23 Jul 2002 13:58:15 EDT", "2002-07-23T17:58:15Z");
        is("Wed, 11 Dec 2002 10:13:14 GMT", "2002-12-11T10:13:14Z");
        is("Sat, 18 May 2002 12:00:00 UT", "2002-05-18T12:00:00Z");
        is("Sun, 7 Apr 2002 07:00:00 pst", "2002-04-07T15:00:00Z");
        is("Mon, 1 Jul 2002 00:00:00 CEST", "2002-06-30T22:00:00Z");
        is("Fri, 07 Jun 2002 16:35:51 GMT+1", "2002-06-07T15:35:51Z");
        is("Mon, 10 Jun 2002 15:24:14 +-0500", "2002-06-10T20:24:14Z");
        is(
            "Mon, 09 Apr 2007 04:11:51 --500 (EET)",
            "2007-04-09T09:11:51Z",
        );
        is(
            "Sun, 16 Jul 2023 21:54:31 +0000.562272",
            "2023-07-16T21:54:31Z",
        );
        is("Thu, 1 Jan 2004 00:00:00 +05:30", "2003-12-31T18:30:00Z");
        // Military letter and unknown names are UTC.
        is("Thu, 1 Jan 2004 00:00:00 A", "2004-01-01T00:00:00Z");
        is(
            "Thu, 06 Jun 2002 01:38:14 Eastern Daylight Time",
            "2002-06-06T01:38:14Z",
        );
        // Numeric zone wins over a comment or a name.
        is(
            "Tue, 02 Apr 2002 23:00:00 -0800 (PST)",
            "2002-04-03T07:00:00Z",
        );
        is(
            "Tue, 02 Apr 2002 23:00:00 CET -0800",
            "2002-04-03T07:00:00Z",
        );
        // No zone.
        is("Wed, 17 Jul 2002 20:05:34", "2002-07-17T20:05:34Z");
    }

    #[test]
    fn junk_around() {
        // SpamAssassin appends rule names after a fold.
        is(
            "Thu, 18 Jul 2002 14:57:14 +-0800\n    MSG_ID_ADDED_BY_MTA_3,MISSING_MIMEOLE version=2.40",
            "2002-07-18T22:57:14Z",
        );
        is(
            "Thu, 25 Jul 2002 10:02:05\n    version=2.40",
            "2002-07-25T10:02:05Z",
        );
        is(
            "Tue, 7 Apr 2026 10:00:t <rimap-test@example.test>",
            "2026-04-07T10:00:00Z",
        );
        is("Jan, 8 Apr 2007 16:04:29 -0400", "2007-04-08T20:04:29Z");
        is("Mo, 09 Apr 2007 10:51:45 +0200", "2007-04-09T08:51:45Z");
        // trec07p: localised month names.
        is("Pzt, 09 Nis 2007 01:47:42 +0300", "2007-04-08T22:47:42Z");
        is("Pn, 09 kwi 2007 10:51:45 +0200", "2007-04-09T08:51:45Z");
        is("mar., 10 avr. 2007 03:05:42 +0200", "2007-04-10T01:05:42Z");
        is("Tue, 06 Aug 2002 06:50:21 PM -0400", "2002-08-06T22:50:21Z");
        is("Mon, 6 May 2024 10.25.30 +0200", "2024-05-06T08:25:30Z");
        is("6 May 2024 - 10:00", "2024-05-06T10:00:00Z");
    }

    #[test]
    fn two_digit_years_and_ampm() {
        // spamassassin-public spam_2.
        is("02 Aug 01 3:11:43 AM", "2001-08-02T03:11:43Z");
        is("28 Jun 01 10:05:15 PM", "2001-06-28T22:05:15Z");
        is("03 Jul 01 12:47:50 AM", "2001-07-03T00:47:50Z");
        is(
            "Sat, 13 Apr 02 18:49:02 Arabian Standard Time",
            "2002-04-13T18:49:02Z",
        );
        is("1 Jan 99 00:00:00 +0000", "1999-01-01T00:00:00Z");
        is("1 Jan 102 00:00:00 +0000", "2002-01-01T00:00:00Z");
        // spamassassin-public spam_2/00159: tm_year zero-padded to 4 digits.
        is("Sat, 02 Feb 0102 11:39:51 +0200", "2002-02-02T09:39:51Z");
        is("1 September 2003", "2003-09-01T00:00:00Z");
        is("1 Sept 2003", "2003-09-01T00:00:00Z");
    }

    #[test]
    fn asctime_and_iso() {
        is("Mon May  6 00:10:11 2024", "2024-05-06T00:10:11Z");
        is("Wed Feb  9 22:02 MET 2000", "2000-02-09T21:02:00Z");
        is("Mon Apr 29 14:02:01 2002", "2002-04-29T14:02:01Z");
        is("2024-05-06T00:10:11Z", "2024-05-06T00:10:11Z");
        is("2024-05-06 00:10:11 +0000", "2024-05-06T00:10:11Z");
        is("2024-05-06T02:10:11.123+02:00", "2024-05-06T00:10:11Z");
        is("2024/05/06", "2024-05-06T00:00:00Z");
        // spamassassin-public Received date parts.
        is("22/08/2002 10:25:57", "2002-08-22T10:25:57Z");
        is("08/22/2002 10:25:57", "2002-08-22T10:25:57Z");
        is("02.10.2002 08:56", "2002-10-02T08:56:00Z");
        // phishing-pot sample-24: day equals month, so no ambiguity.
        is("09-09-2022", "2022-09-09T00:00:00Z");
    }

    #[test]
    fn rejects() {
        for s in [
            "",
            "Whenever",
            "%M5DATE",
            "_smtpDate . 286071244",
            // phishing-pot: day and month cannot be told apart.
            "04-11-2023",
            "12/11/2023 10:00:00",
            "Mon, 06 Foo 2024 00:00:00 +0000",
            "Mon, 32 May 2024 00:00:00 +0000",
            "Mon, 30 Feb 2024 00:00:00 +0000",
            "Mon, 06 May 2024 25:00:00 +0000",
            "Mon, 06 May 2024 23:60:00 +0000",
            "Mon, 06 May 1899 00:00:00 +0000",
            "2024-13-01",
            "May 2024",
        ] {
            assert_eq!(parse_date(s.as_bytes()), None, "input {s:?}");
        }
        // A date without time is fine; midnight.
        is("Mon, 06 May 2024", "2024-05-06T00:00:00Z");
        is("29 Feb 2024 00:00:00", "2024-02-29T00:00:00Z");
    }

    #[test]
    fn leap_second_and_bounds() {
        is("Sat, 31 Dec 2016 23:59:60 +0000", "2016-12-31T23:59:59Z");
        is("1 Jan 1900 00:00:00 +0000", "1900-01-01T00:00:00Z");
        is("31 Dec 9999 23:59:59 +0000", "9999-12-31T23:59:59Z");
        assert_eq!(parse_date(b"1 Jan 1970 00:00:00 GMT"), Some(0));
    }

    #[test]
    fn non_utf8_bytes() {
        is("\u{c9}\u{f9}, 06 May 2024 00:00:00", "2024-05-06T00:00:00Z");
        assert_eq!(
            parse_date(b"\xc9\xf9, 06 Feb 2002 10:00:00 +0900"),
            parse_date(b"06 Feb 2002 10:00:00 +0900")
        );
        assert_eq!(parse_date(b"\0\0\0"), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_714_954_211), "2024-05-06T00:10:11Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(-2_208_988_800), "1900-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        let mut buf = b"x=".to_vec();
        write_rfc3339(86_399, &mut buf);
        assert_eq!(buf, b"x=1970-01-01T23:59:59Z");
    }

    #[test]
    fn civil_round_trip() {
        for days in (-800_000i64..3_000_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
        }
    }

    proptest! {
        #[test]
        fn parse_date_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..120)) {
            if let Some(ts) = parse_date(&raw) {
                // Years 1900..=9999 shifted by at most a day of zone offset.
                prop_assert!((-2_208_988_800 - 86_400..=MAX_TS + 86_400).contains(&ts));
            }
        }

        /// Token soup (words, numbers, separators, comments): whatever it parses to is in range,
        /// the same whichever whitespace separates the tokens (the lexer skips it all), and
        /// where the fast path answers, the general parser gives the same.
        #[test]
        fn parse_date_token_soup(
            parts in proptest::collection::vec(
                "(?i:mon|tue|may|sept|december|gmt|pdt|am|pm|z|[a-z]{1,4})|[0-9]{1,5}|[-+:.,/() ]",
                0..16)
        ) {
            let raw = parts.join(" ");
            let parsed = parse_date(raw.as_bytes());
            if let Some(ts) = parsed {
                prop_assert!((-2_208_988_800 - 86_400..=MAX_TS + 86_400).contains(&ts), "{:?}", raw);
            }
            let other_space = parts.join("\t\r\n ");
            prop_assert_eq!(parse_date(other_space.as_bytes()), parsed, "{:?} vs {:?}", raw, other_space);
            let glued = parts.concat();
            for text in [&raw, &other_space, &glued] {
                if let Some(fast) = parse_canonical(text.as_bytes()) {
                    prop_assert_eq!(Some(fast), parse_lenient(text.as_bytes()), "{:?}", text);
                }
            }
        }

        /// Dates written the ways mail writes them (RFC 5322 with its variants, asctime, ISO
        /// 8601), each piece drawn on its own, with CFWS and junk where they may be: each parses
        /// to the instant it was made from, and the canonical ones through the fast path.
        #[test]
        fn parse_date_tokens(w in written_date()) {
            prop_assert_eq!(parse_lenient(w.text.as_bytes()), Some(w.want), "{:?}", w);
            prop_assert_eq!(parse_date(w.text.as_bytes()), Some(w.want), "{:?}", w);
            if w.canonical {
                prop_assert_eq!(parse_canonical(w.text.as_bytes()), Some(w.want), "{:?}", w);
            }
        }

        #[test]
        fn rfc3339_round_trips(ts in MIN_TS + 86_400..MAX_TS - 86_400) {
            let s = format_rfc3339(ts);
            prop_assert_eq!(s.len(), 20);
            if ts >= -2_208_988_800 {
                prop_assert_eq!(parse_date(s.as_bytes()), Some(ts));
            }
        }

        #[test]
        fn write_appends(ts in any::<i64>(), prefix in proptest::collection::vec(any::<u8>(), 0..8)) {
            let mut buf = prefix.clone();
            write_rfc3339(ts, &mut buf);
            prop_assert_eq!(&buf[..prefix.len()], &prefix[..]);
            let formatted = format_rfc3339(ts);
            prop_assert_eq!(&buf[prefix.len()..], formatted.as_bytes());
        }

        #[test]
        fn format_any_i64(ts in any::<i64>()) {
            let s = format_rfc3339(ts);
            prop_assert_eq!(s.len(), 20);
            prop_assert!(s.ends_with('Z'));
        }
    }
    proptest! {
        /// Dates in the canonical RFC 5322 shape, valid by construction: the fast path must
        /// answer them itself (not leave them to the general parser), with the right instant.
        #[test]
        fn canonical_fast_path_fires_on_canonical_dates(
            (year, month, day) in calendar_date(),
            time in (0u32..24, 0u32..60, 0u32..=60),
            dow in prop_oneof![Just(None), Just(Some("")), Just(Some(" ")), Just(Some("  ")), Just(Some("\t"))],
            two_digit_day in any::<bool>(),
            (zone, offset) in canonical_zone(),
            before_zone in prop_oneof![Just(" "), Just("  "), Just("\t")],
            comment in prop_oneof![Just(""), Just(" (UTC)"), Just("(PDT)"), Just(" (via mx1 10:00:00 +0100)")],
            outside in prop_oneof![Just(""), Just(" "), Just("\t"), Just("\r\n")],
        ) {
            let dow = dow.map_or(String::new(), |sep| format!("{},{sep}", &weekday(year, month, day)[..3]));
            let d = if two_digit_day { format!("{day:02}") } else { day.to_string() };
            let (h, mi, s) = time;
            let text = format!(
                "{outside}{dow}{d} {} {year} {h:02}:{mi:02}:{s:02}{before_zone}{zone}{comment}{outside}",
                &MONTH_NAMES[month as usize - 1][..3]
            );
            let want = expected_ts(year, month, day, time, offset);
            prop_assert_eq!(parse_canonical(text.as_bytes()), Some(want), "{:?}", text);
            prop_assert_eq!(parse_lenient(text.as_bytes()), Some(want), "{:?}", text);
            prop_assert_eq!(parse_date(text.as_bytes()), Some(want), "{:?}", text);
        }

        /// Canonically shaped dates whose values may be out of range: the fast path and the
        /// general parser give the same answer on every one (None when out of range), and the
        /// fast path answers exactly when the values are valid.
        #[test]
        fn canonical_fast_path_agrees_with_lenient(
            dow in prop_oneof![Just(""), Just("Mon, "), Just("Sun,  ")],
            day in 0u32..33, month in 0usize..12, year in 1890u32..2200,
            hour in 0u32..25, minute in 0u32..61, second in 0u32..62,
            zone in prop_oneof![
                Just("+0000".to_string()), Just("-0000".to_string()), Just("GMT".to_string()),
                Just("UT".to_string()), Just("UTC".to_string()),
                (0u32..24, 0u32..60, any::<bool>()).prop_map(|(h, m, neg)| format!("{}{h:02}{m:02}", if neg { '-' } else { '+' })),
            ],
            comment in prop_oneof![Just(""), Just(" (UTC)"), Just(" (PDT)"), Just("  ")],
            two_digit_day in any::<bool>(),
        ) {
            const M: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            let d = if two_digit_day { format!("{day:02}") } else { format!("{day}") };
            let text = format!("{dow}{d} {} {year} {hour:02}:{minute:02}:{second:02} {zone}{comment}", M[month]);
            let fast = parse_canonical(text.as_bytes());
            prop_assert_eq!(fast, parse_lenient(text.as_bytes()), "{}", text);
            let valid = (1900..=9999).contains(&year)
                && (1..=days_in_month(i64::from(year), month as u32 + 1)).contains(&day)
                && hour <= 23
                && minute <= 59
                && second <= 60;
            prop_assert_eq!(fast.is_some(), valid, "{}", text);
        }

        /// Arbitrary input: a canonical date with one byte changed, inserted or removed, and
        /// random bytes. The fast path may decline any of it, but whenever it answers, the
        /// general parser gives the same.
        #[test]
        fn canonical_fast_path_agrees_on_arbitrary_input(
            (year, month, day) in calendar_date(),
            (h, mi, s) in (0u32..24, 0u32..60, 0u32..=60),
            (zone, _) in canonical_zone(),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![b'0'..=b'9', Just(b' '), Just(b'\t'), Just(b','), any::<u8>()],
            edit in 0u8..3,
            noise in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut raw = format!(
                "{}, {day} {} {year} {h:02}:{mi:02}:{s:02} {zone}",
                &weekday(year, month, day)[..3],
                &MONTH_NAMES[month as usize - 1][..3]
            )
            .into_bytes();
            let i = at.index(raw.len());
            match edit {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                _ => {
                    raw.remove(i);
                }
            }
            for input in [&raw[..], &noise[..]] {
                if let Some(fast) = parse_canonical(input) {
                    prop_assert_eq!(Some(fast), parse_lenient(input), "{:?}", String::from_utf8_lossy(input));
                }
            }
        }
    }

    const MONTH_NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    /// By days since 1970-01-01 modulo 7: that day was a Thursday.
    const DAY_NAMES: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    /// Zone names with their offsets in minutes east of UTC (a sample of `ZONES`, and the
    /// military `Z`).
    const NAMED_ZONES: [(&str, i32); 12] = [
        ("GMT", 0),
        ("UT", 0),
        ("UTC", 0),
        ("Z", 0),
        ("EDT", -240),
        ("EST", -300),
        ("PDT", -420),
        ("PST", -480),
        ("CET", 60),
        ("CEST", 120),
        ("JST", 540),
        ("IST", 330),
    ];

    fn weekday(year: i64, month: u32, day: u32) -> &'static str {
        DAY_NAMES[days_from_civil(year, month, day).rem_euclid(7) as usize]
    }

    /// The instant a date stands for, `offset` minutes east of UTC (a leap second reads as 59).
    fn expected_ts(
        year: i64,
        month: u32,
        day: u32,
        (h, mi, s): (u32, u32, u32),
        offset: i32,
    ) -> i64 {
        days_from_civil(year, month, day) * 86_400 + i64::from(h * 3600 + mi * 60 + s.min(59))
            - i64::from(offset) * 60
    }

    #[test]
    fn expected_ts_matches_known_dates() {
        // The helper the properties compare against, checked on dates known independently.
        assert_eq!(expected_ts(1970, 1, 1, (0, 0, 0), 0), 0);
        assert_eq!(expected_ts(2024, 5, 6, (2, 4, 47), 120), 1_714_953_887);
        assert_eq!(expected_ts(2016, 12, 31, (23, 59, 60), 0), 1_483_228_799);
        assert_eq!(weekday(2024, 5, 6), "Monday");
        assert_eq!(weekday(1900, 1, 1), "Monday");
    }

    /// A real calendar day in the years the parser takes, mostly in the years mail has (where
    /// two-digit years are read too).
    fn calendar_date() -> impl Strategy<Value = (i64, u32, u32)> {
        let year = prop_oneof![1 => 1900i64..=9999, 2 => 1950i64..=2049];
        (year, 1u32..=12).prop_flat_map(|(y, m)| (Just(y), Just(m), 1..=days_in_month(y, m)))
    }

    /// A zone the canonical shape allows (`+hhmm`, `-hhmm`, `GMT`, `UT`, `UTC`) and its offset.
    fn canonical_zone() -> impl Strategy<Value = (String, i32)> {
        prop_oneof![
            (0u32..24, 0u32..60, any::<bool>()).prop_map(|(h, m, neg)| {
                let v = (h * 60 + m) as i32;
                (
                    format!("{}{h:02}{m:02}", if neg { '-' } else { '+' }),
                    if neg { -v } else { v },
                )
            }),
            Just(("GMT".to_string(), 0)),
            Just(("UT".to_string(), 0)),
            Just(("UTC".to_string(), 0)),
        ]
    }

    /// A date as written, the instant it stands for, and whether it is in the canonical shape
    /// (which the fast path must answer).
    #[derive(Debug, Clone)]
    struct Written {
        text: String,
        want: i64,
        canonical: bool,
    }

    /// The pieces of a written date, drawn independently (see [`write_date`]).
    #[derive(Debug, Clone)]
    struct Pieces {
        date: (i64, u32, u32),
        time: (u32, u32, u32),
        /// 0: RFC 5322 shape, 1: asctime, 2: ISO 8601.
        layout: u8,
        /// Force every RFC 5322 choice to the canonical one.
        canonical_style: bool,
        /// RFC 5322: 0 none, 1 `Ddd,`, 2 `DDD,`, 3 full name and comma, 4 `Ddd` without comma.
        dow: u8,
        two_digit_day: bool,
        /// Letters of the month name beyond 3, and its case (0 title, 1 lower, 2 upper).
        month_len: usize,
        month_case: u8,
        two_digit_year: bool,
        /// 0 `hh:mm:ss`, 1 `h:mm:ss`, 2 `hh:mm`, 3 `hh.mm.ss`, 4 `hh:mm:ss.fff`, 5 `h:mm:ss AM`;
        /// ISO: 0 the date alone, 4 with a fraction, else `hh:mm:ss`.
        time_form: u8,
        /// 0 none, 1 `+hhmm`, 2 `+hh:mm`, 3 named (asctime: 3 a name before the year, else
        /// none); ISO: 0 none, 1 ` +hhmm`, 2 `+hh:mm`, 3 `Z`.
        zone_form: u8,
        zone_offset: (u32, u32, bool),
        named: usize,
        lower_zone: bool,
        /// A comment before token `n` (past the end: after the last), or none.
        comment: Option<(prop::sample::Index, usize)>,
        /// Junk after a numeric zone.
        junk: Option<usize>,
        seps: Vec<&'static str>,
        outside: &'static str,
    }

    fn pieces() -> impl Strategy<Value = Pieces> {
        let seps = prop_oneof![Just(" "), Just("  "), Just("\t"), Just("\r\n ")];
        (
            (
                calendar_date(),
                (0u32..24, 0u32..60, 0u32..=60),
                0u8..3,
                any::<bool>(),
            ),
            (
                0u8..5,
                any::<bool>(),
                0usize..7,
                0u8..3,
                any::<bool>(),
                0u8..6,
            ),
            (
                0u8..4,
                (0u32..24, 0u32..60, any::<bool>()),
                0..NAMED_ZONES.len(),
                any::<bool>(),
            ),
            (
                proptest::option::of((any::<prop::sample::Index>(), 0usize..4)),
                proptest::option::of(0usize..4),
                proptest::collection::vec(seps, 12),
                prop_oneof![Just(""), Just(" "), Just("\t"), Just("\r\n")],
            ),
        )
            .prop_map(|(a, b, c, d)| Pieces {
                date: a.0,
                time: a.1,
                layout: a.2,
                canonical_style: a.3,
                dow: b.0,
                two_digit_day: b.1,
                month_len: b.2,
                month_case: b.3,
                two_digit_year: b.4,
                time_form: b.5,
                zone_form: c.0,
                zone_offset: c.1,
                named: c.2,
                lower_zone: c.3,
                comment: d.0,
                junk: d.1,
                seps: d.2,
                outside: d.3,
            })
    }

    fn written_date() -> impl Strategy<Value = Written> {
        pieces().prop_map(write_date)
    }

    const COMMENTS: [&str; 4] = [
        "(PDT)",
        "(Eastern Daylight Time)",
        "(via mx1 10:00:00 +0100)",
        "(nested (one) 2024)",
    ];
    const JUNK: [&str; 4] = [
        "MSG_ID_ADDED_BY_MTA_3,MISSING_MIMEOLE version=2.40",
        "+0100",
        "12:00:00 2025",
        ".562272",
    ];

    fn write_date(mut p: Pieces) -> Written {
        let (year, month, day) = p.date;
        let (h, mi, s) = p.time;
        let month_name = MONTH_NAMES[month as usize - 1];
        let dow_name = weekday(year, month, day);
        let signed = |(hh, mm, neg): (u32, u32, bool), colon: bool| {
            let v = (hh * 60 + mm) as i32;
            let sign = if neg { '-' } else { '+' };
            let text = if colon {
                format!("{sign}{hh:02}:{mm:02}")
            } else {
                format!("{sign}{hh:02}{mm:02}")
            };
            (text, if neg { -v } else { v })
        };
        match p.layout {
            0 => {
                if p.canonical_style {
                    p.dow = p.dow.min(1);
                    p.month_len = 0;
                    p.month_case = 0;
                    p.two_digit_year = false;
                    p.time_form = 0;
                    // A named zone stays only if it is GMT, UT or UTC (the first three).
                    p.zone_form = if p.zone_form == 3 && p.named <= 2 {
                        3
                    } else {
                        1
                    };
                    p.lower_zone = false;
                    p.junk = None;
                }
                let mut canonical = true;
                let mut tokens: Vec<String> = Vec::new();
                match p.dow {
                    0 => {}
                    1 => tokens.push(format!("{},", &dow_name[..3])),
                    2 => tokens.push(format!("{},", dow_name[..3].to_uppercase())),
                    3 => {
                        tokens.push(format!("{dow_name},"));
                        canonical = false;
                    }
                    _ => {
                        tokens.push(dow_name[..3].to_string());
                        canonical = false;
                    }
                }
                // The gap before token `i` is `seps[i]`; the canonical shape wants one space
                // before the month, the year and the time.
                let first_date_token = tokens.len();
                let date_gaps = first_date_token + 1..=first_date_token + 3;
                if p.canonical_style {
                    for gap in date_gaps.clone() {
                        p.seps[gap] = " ";
                    }
                }
                tokens.push(if p.two_digit_day {
                    format!("{day:02}")
                } else {
                    day.to_string()
                });
                let len = (3 + p.month_len).min(month_name.len());
                let name = &month_name[..len];
                tokens.push(match p.month_case {
                    0 => name.to_string(),
                    1 => name.to_lowercase(),
                    _ => name.to_uppercase(),
                });
                canonical &= len == 3 && p.month_case == 0;
                let year_for_two = (1950..=2049).contains(&year) && p.two_digit_year;
                tokens.push(if year_for_two {
                    format!("{:02}", year % 100)
                } else {
                    year.to_string()
                });
                canonical &= !year_for_two;
                let mut seconds = s;
                match p.time_form {
                    0 => tokens.push(format!("{h:02}:{mi:02}:{s:02}")),
                    1 => {
                        tokens.push(format!("{h}:{mi:02}:{s:02}"));
                        canonical &= h >= 10;
                    }
                    2 => {
                        tokens.push(format!("{h:02}:{mi:02}"));
                        seconds = 0;
                        canonical = false;
                    }
                    3 => {
                        tokens.push(format!("{h:02}.{mi:02}.{s:02}"));
                        canonical = false;
                    }
                    4 => {
                        tokens.push(format!("{h:02}:{mi:02}:{s:02}.{:03}", (h * 7 + mi) % 1000));
                        canonical = false;
                    }
                    _ => {
                        let h12 = if h % 12 == 0 { 12 } else { h % 12 };
                        tokens.push(format!("{h12}:{mi:02}:{s:02}"));
                        tokens.push(if h < 12 { "AM" } else { "pm" }.to_string());
                        canonical = false;
                    }
                }
                let offset = match p.zone_form {
                    0 => {
                        canonical = false;
                        0
                    }
                    1 | 2 => {
                        let (text, v) = signed(p.zone_offset, p.zone_form == 2);
                        tokens.push(text);
                        canonical &= p.zone_form == 1;
                        if let Some(j) = p.junk {
                            tokens.push(JUNK[j].to_string());
                            canonical = false;
                        }
                        v
                    }
                    _ => {
                        let (name, v) = NAMED_ZONES[p.named];
                        tokens.push(if p.lower_zone {
                            name.to_lowercase()
                        } else {
                            name.to_string()
                        });
                        canonical &= ["GMT", "UT", "UTC"].contains(&name) && !p.lower_zone;
                        v
                    }
                };
                canonical &= date_gaps.into_iter().all(|i| p.seps[i] == " ");
                if let Some((at, c)) = p.comment {
                    // Canonical style keeps a comment at the end, the one place the shape
                    // allows it.
                    let i = if p.canonical_style {
                        tokens.len()
                    } else {
                        at.index(tokens.len() + 1)
                    };
                    tokens.insert(i, COMMENTS[c].to_string());
                    canonical &= i == tokens.len() - 1;
                }
                let mut text = p.outside.to_string();
                for (i, t) in tokens.iter().enumerate() {
                    if i > 0 {
                        text.push_str(p.seps[i]);
                    }
                    text.push_str(t);
                }
                text.push_str(p.outside);
                Written {
                    text,
                    want: expected_ts(year, month, day, (h, mi, seconds), offset),
                    canonical,
                }
            }
            1 => {
                // asctime, as in mbox From_ lines; a zone name may stand before the year.
                let zone = (p.zone_form == 3).then(|| NAMED_ZONES[p.named]);
                let text = format!(
                    "{}{} {} {day:>2} {h:02}:{mi:02}:{s:02} {}{year}{}",
                    p.outside,
                    &dow_name[..3],
                    &month_name[..3],
                    zone.map_or(String::new(), |(n, _)| format!("{n} ")),
                    p.outside
                );
                Written {
                    text,
                    want: expected_ts(year, month, day, p.time, zone.map_or(0, |z| z.1)),
                    canonical: false,
                }
            }
            _ => {
                // ISO 8601: a date alone is midnight UTC.
                let date = format!("{year}-{month:02}-{day:02}");
                let (text, want) = if p.time_form == 0 {
                    (date, expected_ts(year, month, day, (0, 0, 0), 0))
                } else {
                    // (The day's flag doubles as the choice of separator here.)
                    let sep = if p.two_digit_day { "T" } else { " " };
                    let frac = if p.time_form == 4 { ".123" } else { "" };
                    let (zone, offset) = match p.zone_form {
                        0 => (String::new(), 0),
                        1 => {
                            let (z, v) = signed(p.zone_offset, false);
                            (format!(" {z}"), v)
                        }
                        2 => signed(p.zone_offset, true),
                        _ => ("Z".to_string(), 0),
                    };
                    (
                        format!("{date}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}"),
                        expected_ts(year, month, day, p.time, offset),
                    )
                };
                Written {
                    text: format!("{}{text}{}", p.outside, p.outside),
                    want,
                    canonical: false,
                }
            }
        }
    }
}
