//! The words a message is written with, and how they are encoded.
//!
//! Takes templates, a random stream and times; gives the word pools (names, subjects,
//! sentences, mailers), filled and RFC 2047-encoded subjects (`q_encode`, `b_encode`, Latin-1),
//! and the dates of the Date: and Received: fields (RFC 5322) and of the mbox `From ` line
//! (asctime).

use std::fmt::Write as _;

use base64::Engine as _;

use super::rng::Rng;

pub(super) const FIRST: [&str; 12] = [
    "Anna", "James", "Maria", "Chen", "Olga", "Ahmed", "Laura", "Kenji", "Sofia", "David",
    "Fatima", "Lukas",
];
pub(super) const LAST: [&str; 10] = [
    "Smith", "Novak", "Garcia", "Wang", "Ivanova", "Khan", "Rossi", "Tanaka", "Müller", "Brown",
];
const SUBJECTS: [&str; 14] = [
    "Your order #{id} has shipped",
    "Final notice: account verification required",
    "You have been selected for a $500 gift card",
    "Limited time: {n}% off everything",
    "Re: invoice {id}",
    "Claim your reward before midnight",
    "Lowest prices on meds - save {n}%",
    "Your password expires today",
    "Congratulations! You won",
    "Investment opportunity with guaranteed returns",
    "Delivery failed: reschedule now",
    "Weekly deals just for you",
    "Confirm your subscription",
    "Important security alert",
];
const SUBJECTS_UTF8: [&str; 6] = [
    "Ihre Bestellung ist unterwegs – jetzt verfolgen",
    "Économisez {n} % sur votre commande",
    "¡Oferta exclusiva! Solo hoy",
    "Специальное предложение для вас",
    "限时优惠：全场{n}折",
    "Gratulálunk, ön nyert! 🎉",
];
const SUBJECTS_LATIN1: [&str; 4] = [
    "Última oportunidad: {n}% de descuento",
    "Schöne Grüße und große Rabatte",
    "Votre colis est arrivé à la poste",
    "Offre spéciale pour vous, {n} EUR offerts",
];
pub(super) const SENTENCES: [&str; 16] = [
    "We are pleased to inform you that your account has been upgraded.",
    "Click the link below to claim your exclusive reward today.",
    "This offer expires in 24 hours, so act now.",
    "Our records show a pending payment that needs your attention.",
    "Thousands of customers have already saved with this deal.",
    "If you did not request this change, please verify your identity.",
    "Shipping is free on all orders over $25.",
    "Reply to this message to speak with an agent.",
    "Your satisfaction is our top priority.",
    "Best prices guaranteed, no prescription needed.",
    "Log in now to avoid suspension of your account.",
    "You are receiving this because you opted in to our newsletter.",
    "All transactions are secured with 256-bit encryption.",
    "Limited stock available, first come first served.",
    "Contact us at any time, our support team is available 24/7.",
    "Please do not reply directly to this automated message.",
];
pub(super) const FROM_LINES: [&str; 5] = [
    "From the desk of the managing director:",
    "From now on, all orders ship the same day.",
    "From your friends at customer care,",
    "From: a satisfied customer (quoted review)",
    ">From the archive: last year's best sellers",
];
pub(super) const MAILERS: [&str; 5] = [
    "PHPMailer 6.8.0 (https://github.com/PHPMailer/PHPMailer)",
    "Microsoft Outlook 16.0",
    "MailRocket Campaigns v3",
    "Apple Mail (2.3731.700.6)",
    "sendmail-bulk 2.4",
];

fn fill(template: &str, rng: &mut Rng) -> String {
    let n = rng.range(10, 90).to_string();
    let id = rng.range(100_000, 9_999_999).to_string();
    template.replace("{n}", &n).replace("{id}", &id)
}

pub(super) fn q_encode(charset: &str, bytes: &[u8]) -> String {
    let mut s = format!("=?{charset}?Q?");
    for &b in bytes {
        match b {
            b' ' => s.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                s.push(b as char)
            }
            _ => {
                let _ = write!(s, "={b:02X}");
            }
        }
    }
    s.push_str("?=");
    s
}

/// RFC 2047 B encoding in encoded words of at most 75 characters (at most 45 bytes of text
/// each, cut on character boundaries), folded onto continuation lines.
pub(super) fn b_encode(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 45).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

pub(super) fn all_subjects() -> Vec<&'static str> {
    SUBJECTS
        .iter()
        .chain(SUBJECTS_UTF8.iter())
        .chain(SUBJECTS_LATIN1.iter())
        .copied()
        .collect()
}

/// A subject from a template: `{n}`/`{id}` filled, `{brand}` and `{month}` put in, encoded as an
/// RFC 2047 word when not ASCII (Latin-1 templates as ISO-8859-1 Q words).
pub(super) fn make_subject(template: &str, brand: &str, t: i64, rng: &mut Rng) -> String {
    let month = MONTHS[civil(t).1 - 1];
    let text = fill(template, rng)
        .replace("{brand}", brand)
        .replace("{month}", month);
    if text.is_ascii() {
        text
    } else if SUBJECTS_LATIN1.contains(&template) {
        q_encode("ISO-8859-1", &latin1(&text))
    } else {
        b_encode(&text)
    }
}

// ---------------------------------------------------------------------------------------------
// Dates.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// 2024-01-01T00:00:00Z.
pub(super) const YEAR_2024: i64 = 1_704_067_200;

/// (year, month 1-12, day, hour, minute, second, weekday 0 = Sunday) of a Unix time.
fn civil(t: i64) -> (i64, usize, i64, i64, i64, i64, usize) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = crate::headers::date::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let wd = (days + 4).rem_euclid(7) as usize;
    (
        y,
        m as usize,
        i64::from(d),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        wd,
    )
}

/// RFC 5322 date in the zone `offset_min` minutes east of UTC.
pub(super) fn rfc5322(t: i64, offset_min: i64) -> String {
    let (y, m, d, hh, mm, ss, wd) = civil(t + offset_min * 60);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let o = offset_min.abs();
    format!(
        "{}, {d} {} {y} {hh:02}:{mm:02}:{ss:02} {sign}{:02}{:02}",
        DAYS[wd],
        MONTHS[m - 1],
        o / 60,
        o % 60
    )
}

/// The mbox `From ` line date (asctime, UTC).
pub(super) fn asctime(t: i64) -> String {
    let (y, m, d, hh, mm, ss, wd) = civil(t);
    format!(
        "{} {} {d:>2} {hh:02}:{mm:02}:{ss:02} {y}",
        DAYS[wd],
        MONTHS[m - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322(YEAR_2024, 0), "Mon, 1 Jan 2024 00:00:00 +0000");
        assert_eq!(
            rfc5322(1_709_640_000, -300),
            "Tue, 5 Mar 2024 07:00:00 -0500"
        );
        assert_eq!(asctime(1_709_640_000), "Tue Mar  5 12:00:00 2024");
    }

    #[test]
    fn encodings() {
        assert_eq!(
            q_encode("ISO-8859-1", &latin1("Grüße a")),
            "=?ISO-8859-1?Q?Gr=FC=DFe_a?="
        );
        assert_eq!(b_encode("é"), "=?UTF-8?B?w6k=?=");
        let long = b_encode(&"é".repeat(30));
        assert_eq!(long.matches("=?UTF-8?B?").count(), 2);
        assert!(long.split("\r\n ").all(|w| w.len() <= 75));
    }
}
