//! Campaign evidence of one message: the facts that stay stable while a campaign rotates sender
//! domains, subjects, recipients and sending addresses.
//!
//! Takes pieces of a parsed message (body bytes, decoded Subject, From domain, DKIM d=/s=, tenant,
//! origin address) and gives evidence keys: 64-bit hashes of `kind:value` strings, linked into
//! campaigns in [`crate::campaign`]. Kinds:
//! - `L` a landing domain: the registrable domain of a link in the body (not the From domain's
//!   own organization, not a domain on the shared-infrastructure list);
//! - `T` the Microsoft 365 tenant (X-MS-Exchange-CrossTenant-Id);
//! - `D` a signing identity: DKIM `d=` and `s=` with the tenant, so that a brand's own mail and
//!   mail laundered through the brand's relay from a foreign tenant stay apart;
//! - `S` the subject template (numbers and tokens with digits normalised) with the sender
//!   domain family (the From organizational domain with digit runs normalised);
//! - `N` the origin network (/24 for IPv4, /48 for IPv6) of the earliest public sender, unless
//!   the address belongs to shared infrastructure named in the relay rules.
//!
//! The hash is FNV-1a 64 over the key text: stable across runs, machines and builds, so campaign
//! ids made from it are too.

use std::net::IpAddr;

/// FNV-1a, 64 bits: stable, so keys and the campaign ids derived from them are the same on every
/// machine and in every version.
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A key of one kind; `kind` is one ASCII letter.
pub fn key(kind: u8, value: &[u8]) -> u64 {
    // Never 0: 0 marks "none" in the per-message records.
    fnv1a(&[&[kind, b':'], value]).max(1)
}

/// Link hosts that say nothing about who sent a message: markup namespaces, the big platforms
/// every newsletter links to, and ESP tracking domains shared by thousands of senders.
const SHARED_LINK_DOMAINS: [&str; 30] = [
    "w3.org",
    "xmlsoap.org",
    "openxmlformats.org",
    "purl.org",
    "microsoft.com",
    "outlook.com",
    "office.com",
    "aka.ms",
    "google.com",
    "gstatic.com",
    "googleapis.com",
    "googleusercontent.com",
    "apple.com",
    "facebook.com",
    "twitter.com",
    "x.com",
    "instagram.com",
    "linkedin.com",
    "youtube.com",
    "list-manage.com",
    "mailchimp.com",
    "sendgrid.net",
    "mcusercontent.com",
    "rs6.net",
    "constantcontact.com",
    "exacttarget.com",
    "mandrillapp.com",
    "amazonaws.com",
    "urldefense.com",
    "urldefense.proofpoint.com",
];

/// At most this many body bytes are searched for links; the landing link of a campaign sits near
/// the top, and a bound keeps huge attachments from costing time.
const LINK_SCAN_BYTES: usize = 256 << 10;
/// At most this many distinct landing domains per message.
const MAX_LANDING: usize = 8;

/// Registrable domains of the `http://` and `https://` links in `body` (raw bytes: 7bit, 8bit or
/// quoted-printable text; soft line breaks inside a host are joined), lowercased, without the
/// From organization and the shared-infrastructure list, deduplicated, at most 8.
pub fn landing_domains(body: &[u8], from_org: &str, out: &mut Vec<String>) {
    out.clear();
    add_landing_domains(body, from_org, out);
}

/// [`landing_domains`] without clearing `out` first: for a second source (a decoded part, the
/// List-Unsubscribe field).
pub fn add_landing_domains(body: &[u8], from_org: &str, out: &mut Vec<String>) {
    if out.len() >= MAX_LANDING {
        return;
    }
    let body = &body[..body.len().min(LINK_SCAN_BYTES)];
    let mut host = Vec::with_capacity(64);
    for at in memchr::memmem::find_iter(body, b"://") {
        let before = &body[..at];
        let scheme_ok = before.len() >= 4 && {
            let b = if before.len() >= 5 && before[before.len() - 1].eq_ignore_ascii_case(&b's') {
                &before[..before.len() - 1]
            } else {
                before
            };
            b.len() >= 4 && b[b.len() - 4..].eq_ignore_ascii_case(b"http")
        };
        if !scheme_ok {
            continue;
        }
        host.clear();
        let mut i = at + 3;
        while i < body.len() {
            let c = body[i];
            if c == b'=' {
                // Quoted-printable soft line break inside the host.
                if body[i + 1..].starts_with(b"\r\n") {
                    i += 3;
                    continue;
                }
                if body[i + 1..].starts_with(b"\n") {
                    i += 2;
                    continue;
                }
                break;
            }
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' {
                host.push(c.to_ascii_lowercase());
            } else if c == b'@' {
                // user@host: what came before was the user part.
                host.clear();
            } else {
                break;
            }
            i += 1;
            if host.len() > 253 {
                break;
            }
        }
        let Ok(h) = std::str::from_utf8(&host) else {
            continue;
        };
        let h = h.trim_matches('.');
        if !h.contains('.') || h.parse::<std::net::Ipv4Addr>().is_ok() {
            continue;
        }
        let Some(org) = registrable(h) else {
            continue;
        };
        if org == from_org || SHARED_LINK_DOMAINS.contains(&org) || out.iter().any(|d| d == org) {
            continue;
        }
        out.push(org.to_string());
        if out.len() >= MAX_LANDING {
            break;
        }
    }
}

/// Names reserved for documentation and testing (RFC 2606, RFC 6761): nobody can register
/// under them, so synthetic corpora use them the way real mail uses public suffixes, and
/// `a.example.com` and `b.example.com` belong to different (made-up) owners.
const RESERVED_SUFFIXES: [&str; 6] = [
    "example.com",
    "example.net",
    "example.org",
    "example",
    "test",
    "invalid",
];

/// The registrable domain of a host: one label below its public suffix (Public Suffix List),
/// with the reserved documentation names counted as suffixes.
pub fn registrable(host: &str) -> Option<&str> {
    for suffix in RESERVED_SUFFIXES {
        if let Some(rest) = host.strip_suffix(suffix)
            && let Some(rest) = rest.strip_suffix('.')
        {
            let label_start = rest.rfind('.').map_or(0, |i| i + 1);
            return (!rest.is_empty()).then(|| &host[label_start..]);
        }
    }
    psl::domain_str(host)
}

/// The text of base64-encoded MIME parts of a message body, decoded and appended to `out`, so
/// links in base64 HTML (common in bulk mail) can be read: the whole body when the message's own
/// `Content-Transfer-Encoding` is base64 (`whole`), else every part whose part header says
/// base64, up to the next boundary line. At most [`LINK_SCAN_BYTES`] are decoded.
pub fn decode_base64_parts(body: &[u8], whole: bool, out: &mut Vec<u8>) {
    out.clear();
    if whole {
        decode_lines(body, out);
        return;
    }
    let mut from = 0;
    while out.len() < LINK_SCAN_BYTES {
        let Some(six) = memchr::memmem::find(&body[from..], b"64").map(|i| from + i) else {
            return;
        };
        from = six + 2;
        if six < 4 || !body[six - 4..six].eq_ignore_ascii_case(b"base") {
            continue;
        }
        let line_start = memchr::memrchr(b'\n', &body[..six]).map_or(0, |i| i + 1);
        let line = &body[line_start..six - 4];
        let is_cte =
            line.len() > 25 && line[..25].eq_ignore_ascii_case(b"content-transfer-encoding");
        if !is_cte {
            continue;
        }
        // The part body: after the blank line that ends the part header, up to a `--` line.
        let Some(blank) = memchr::memmem::find(&body[from..], b"\n\r\n")
            .or_else(|| memchr::memmem::find(&body[from..], b"\n\n"))
        else {
            return;
        };
        let start = from + blank + 2;
        let start = start + usize::from(body.get(start) == Some(&b'\n'));
        let end = memchr::memmem::find(&body[start.min(body.len())..], b"\n--")
            .map_or(body.len(), |i| start + i);
        decode_lines(&body[start.min(end)..end], out);
        from = end;
    }
}

/// Decode base64 text line by line (MIME writes whole 4-character groups per line); a line that
/// is not (a broken encoder's) is carried over to the next. Stops at padding or at the first
/// character that is not base64, keeping what decoded, and after [`LINK_SCAN_BYTES`].
fn decode_lines(text: &[u8], out: &mut Vec<u8>) {
    // Padding was left out of the input below; spam encoders leave stray trailing bits.
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut carry: Vec<u8> = Vec::new();
    let mut start = 0;
    let limit = out.len() + LINK_SCAN_BYTES;
    while start < text.len() && out.len() < limit {
        let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i);
        let mut line = text[start..end].trim_ascii();
        start = end + 1;
        // The usual line: whole groups, valid. The decoder checks every character anyway, so
        // only a line it refuses is searched for where the base64 stops.
        if carry.is_empty() && line.len().is_multiple_of(4) && decode_into(&ENGINE, line, out) {
            continue;
        }
        let stop = line
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
        if let Some(p) = stop {
            line = &line[..p];
        }
        {
            carry.extend_from_slice(line);
            let whole = carry.len() / 4 * 4;
            decode_into(&ENGINE, &carry[..whole], out);
            carry.drain(..whole);
        }
        if stop.is_some() {
            break;
        }
    }
    if carry.len() % 4 >= 2 {
        decode_into(&ENGINE, &carry, out);
    }
}

/// Append the decoding of `text` to `out`; on an error `out` is left as it was.
fn decode_into(engine: &impl base64::Engine, text: &[u8], out: &mut Vec<u8>) -> bool {
    let before = out.len();
    let ok = engine.decode_vec(text, out).is_ok();
    if !ok {
        out.truncate(before);
    }
    ok
}

/// A subject with its variable parts normalised: lowercased, reply/forward prefixes and a
/// leading `[tag]` removed, every word holding a digit replaced by `#`, runs of whitespace and
/// punctuation collapsed. `Your order #4711 has shipped` and `Your order #98122 has shipped`
/// give the same template.
pub fn subject_template(subject: &str, out: &mut String) {
    out.clear();
    let mut s = subject.trim();
    loop {
        let lower = s.get(..4).map(str::to_ascii_lowercase);
        let cut = match lower.as_deref() {
            Some("re: ") | Some("fw: ") => 4,
            Some("fwd:") => 4,
            _ if s.starts_with('[') => s.find(']').map_or(0, |i| i + 1),
            _ => 0,
        };
        if cut == 0 {
            break;
        }
        s = s[cut..].trim_start();
    }
    for word in s.split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '#')) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if word.chars().any(|c| c.is_numeric()) {
            out.push('#');
        } else {
            out.extend(word.chars().flat_map(char::to_lowercase));
        }
    }
}

/// The sender domain family: the first word of the registrable domain's label (up to a `-`,
/// `_` or digit), so `securestore-offers.example`, `securestore54.test` and `securestore.top`
/// are one family, as campaigns rotating sender domains name them. Reserved documentation
/// names count as public suffixes ([`registrable`]).
pub fn sender_family(domain: &str, out: &mut String) {
    out.clear();
    let reg = registrable(domain).unwrap_or(domain);
    let label = match reg.find('.') {
        Some(i) if i > 0 => &reg[..i],
        _ => reg,
    };
    out.extend(
        label
            .chars()
            .take_while(|c| !matches!(c, '-' | '_' | '0'..='9'))
            .flat_map(char::to_lowercase),
    );
    if out.is_empty() {
        out.push_str(label);
    }
}

/// The origin network key text: /24 for IPv4, /48 for IPv6.
pub fn network_text(ip: &IpAddr, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            let _ = write!(out, "{a}.{b}.{c}.0/24");
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let _ = write!(out, "{:x}:{:x}:{:x}::/48", s[0], s[1], s[2]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_domains_from_plain_html_and_quoted_printable_bodies() {
        let body = b"Visit https://Promo.Deals-Zone.com/c/abc?u=1 now\r\n\
<a href=3D\"https://track.lucky-w=\r\nins.top/x\">here</a> http://user@files.example.co.uk/a \
https://www.w3.org/1999/xhtml https://brand.com/logo.png https://a.urldefense.com/v3/ ftp://no.example.com/ https://10.1.2.3/x \
HTTPS://promo.deals-zone.com/again";
        let mut out = Vec::new();
        landing_domains(body, "brand.com", &mut out);
        assert_eq!(
            out,
            ["deals-zone.com", "lucky-wins.top", "example.co.uk"],
            "From organization, shared hosts, IP literals and other schemes are left out"
        );
    }

    #[test]
    fn base64_parts_are_decoded_for_links() {
        use base64::Engine as _;
        let html = b"<a href=\"https://go-x1.top/c\">x</a>";
        let enc = base64::engine::general_purpose::STANDARD.encode(html);
        let (a, b) = enc.split_at(10);
        let body = format!(
            "--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: BASE64\r\n\r\n{a}\r\n{b}\r\n--b--\r\n"
        );
        let mut out = Vec::new();
        decode_base64_parts(body.as_bytes(), false, &mut out);
        assert_eq!(out, html);
        decode_base64_parts(format!("{a}\n{b}\n").as_bytes(), true, &mut out);
        assert_eq!(out, html);
        let mut domains = Vec::new();
        landing_domains(&out, "brand.example", &mut domains);
        assert_eq!(domains, ["go-x1.top"]);
    }

    #[test]
    fn reserved_names_act_as_suffixes() {
        assert_eq!(
            registrable("secure-e5.example.com"),
            Some("secure-e5.example.com")
        );
        assert_eq!(registrable("a.trk-jdb.example"), Some("trk-jdb.example"));
        assert_eq!(registrable("example.com"), Some("example.com"));
        assert_eq!(registrable("www.news.bbc.co.uk"), Some("bbc.co.uk"));
    }

    #[test]
    fn subject_templates_hide_the_variable_parts() {
        let mut t = String::new();
        subject_template("Re: [SPAM] Your order #4711 has shipped!", &mut t);
        assert_eq!(t, "your order # has shipped");
        let mut u = String::new();
        subject_template("Your order #98122 has   shipped", &mut u);
        assert_eq!(t, u);
        subject_template("Économisez 35 % sur votre commande", &mut t);
        assert_eq!(t, "économisez # sur votre commande");
        subject_template("限时优惠：全场8折", &mut t);
        assert_eq!(t, "#", "a word with a digit is a token");
    }

    #[test]
    fn sender_families_take_the_first_word() {
        let mut f = String::new();
        for d in [
            "securestore-offers.example",
            "securestore54.test",
            "mail.securestore.co.uk",
        ] {
            sender_family(d, &mut f);
            assert_eq!(f, "securestore", "{d}");
        }
        sender_family("x.trustedbonus-mail.example.com", &mut f);
        assert_eq!(f, "trustedbonus");
        sender_family("2291.top", &mut f);
        assert_eq!(f, "2291");
    }

    #[test]
    fn keys_are_stable_and_kinded() {
        assert_eq!(key(b'L', b"deals-zone.com"), key(b'L', b"deals-zone.com"));
        assert_ne!(key(b'L', b"x"), key(b'T', b"x"));
        // FNV-1a test vector ("a").
        assert_eq!(fnv1a(&[b"a"]), 0xaf63dc4c8601ec8c);
    }
}
