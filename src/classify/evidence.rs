//! Campaign evidence of one message: the facts that stay stable while a campaign rotates sender
//! domains, subjects, recipients and sending addresses.
//!
//! Takes pieces of a parsed message (body bytes and MIME fields, From domain, tenant, origin
//! address) and gives evidence keys: 64-bit hashes of a kind letter and a value, linked into
//! campaigns in [`crate::campaign`]. Kinds:
//! - `L` a landing domain: the registrable domain of a link in the body, or the address of a link
//!   to a bare public IPv4 address (a phishing kit on a hacked server); not the From domain's own
//!   organization nor the same name under another suffix (`ebay.de` in mail From `ebay.com`: a
//!   phishing template copies the phished brand's real sites, which say nothing about who sent
//!   it), not a domain on the shared-infrastructure list;
//! - `I` the mailing list (RFC 2919 `List-Id`, or the older `Mailing-List`) that redistributed the
//!   message; such a message
//!   has no `L` keys, since its links are the list's footer or the poster's discussion;
//! - `T` the Microsoft 365 tenant (X-MS-Exchange-CrossTenant-Id);
//! - `N` the origin network (/24 for IPv4, /48 for IPv6) of the earliest public sender, unless
//!   the address belongs to shared infrastructure named in the relay rules.
//!
//! The From domain is not a key: campaigns rotate and forge it, and a relay-abuse wave uses many
//! brands' real domains. Subject templates and DKIM `d=`/`s=` are not keys: templates are shared by unrelated senders
//! (`Your order # has shipped`), and a brand's own mail and mail laundered through the brand's
//! relay carry the same signing identity.
//!
//! The hash is FNV-1a 64: stable across runs, machines and builds, so campaign ids made from it
//! are too.

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
///
/// The lowest bit tells links from everything else: even for `L` (a landing domain or address),
/// odd for the other kinds, so the grouping can tell a link key from a sender's key without a
/// table ([`is_link`]). Never 0: 0 marks "none" in the per-message records.
pub fn key(kind: u8, value: &[u8]) -> u64 {
    let h = fnv1a(&[&[kind, b':'], value]);
    if kind == b'L' { (h & !1).max(2) } else { h | 1 }
}

/// [`key`] of a value taken ASCII-lowercased, without copying it.
pub fn key_ascii_lowercase(kind: u8, value: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [kind, b':']
        .into_iter()
        .chain(value.iter().map(u8::to_ascii_lowercase))
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if kind == b'L' { (h & !1).max(2) } else { h | 1 }
}

/// Whether an evidence key is a link (`L`) key.
pub fn is_link(key: u64) -> bool {
    key & 1 == 0
}

/// Link hosts that say nothing about who sent a message (sorted by length, then bytes, for a
/// binary search that mostly compares lengths: [`by_length`]): markup
/// namespaces, the big platforms and portals every newsletter and web-mail footer links to, ad
/// servers, public link shorteners, and ESP tracking domains shared by thousands of senders. A prior only: the grouping
/// finds shared platforms this list does not name by their place in the evidence.
const SHARED_LINK_DOMAINS: [&str; 49] = [
    "t.co",
    "is.gd",
    "ow.ly",
    "x.com",
    "aka.ms",
    "bit.ly",
    "goo.gl",
    "w3.org",
    "aol.com",
    "buff.ly",
    "cutt.ly",
    "msn.com",
    "rs6.net",
    "tiny.cc",
    "live.com",
    "purl.org",
    "apple.com",
    "yahoo.com",
    "google.com",
    "office.com",
    "rebrand.ly",
    "gstatic.com",
    "hotmail.com",
    "outlook.com",
    "tinyurl.com",
    "twitter.com",
    "xmlsoap.org",
    "youtube.com",
    "facebook.com",
    "linkedin.com",
    "sendgrid.net",
    "amazonaws.com",
    "geocities.com",
    "instagram.com",
    "mailchimp.com",
    "microsoft.com",
    "googleapis.com",
    "urldefense.com",
    "doubleclick.net",
    "exacttarget.com",
    "list-manage.com",
    "mandrillapp.com",
    "mcusercontent.com",
    "openxmlformats.org",
    "constantcontact.com",
    "google-analytics.com",
    "googlesyndication.com",
    "googleusercontent.com",
    "urldefense.proofpoint.com",
];

/// Names ordered by length, then bytes: most comparisons end on the length.
fn by_length(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Whether a registrable domain is on the shared list or under a name on it
/// (`fonts.googleapis.com`: some platforms are public suffixes themselves, so their hosts'
/// registrable names are longer than the platform's name).
fn is_shared_link_domain(org: &str) -> bool {
    let listed = |name: &str| {
        SHARED_LINK_DOMAINS
            .binary_search_by(|probe| by_length(probe, name))
            .is_ok()
    };
    if listed(org) {
        return true;
    }
    // Only a name of three or more labels can lie under a shared name.
    let Some(first_dot) = org.find('.') else {
        return false;
    };
    if !org[first_dot + 1..].contains('.') {
        return false;
    }
    let mut at = first_dot + 1;
    loop {
        if listed(&org[at..]) {
            return true;
        }
        match org[at..].find('.') {
            Some(dot) => at += dot + 1,
            None => return false,
        }
    }
}

/// The searchers are built once: building one costs more than a search of a short body.
static SCHEME_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"://"));
static DELIMITER_START: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n--"));

/// At most this many body bytes are searched for links; the landing link of a campaign sits near
/// the top, and a bound keeps huge attachments from costing time.
const LINK_SCAN_BYTES: usize = 256 << 10;
/// At most this many distinct landing domains per message.
const MAX_LANDING: usize = 8;

/// Registrable domains of the `http://` and `https://` links in `body` (raw bytes: 7bit, 8bit or
/// quoted-printable text; soft line breaks inside a host are joined), lowercased, and the
/// addresses of links to bare public IPv4 hosts; without the From organization, its name under
/// other suffixes and the shared-infrastructure list; deduplicated, at most 8.
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
    let from_label = org_label(from_org);
    // Hosts already judged in this call: a newsletter links the same host dozens of times.
    let mut seen: [u64; 16] = [0; 16];
    let mut seen_len = 0;
    for at in SCHEME_END.find_iter(body) {
        let before = &body[..at];
        let secure = before.len() >= 5 && before[before.len() - 1].eq_ignore_ascii_case(&b's');
        let scheme_start = before.len().saturating_sub(if secure { 5 } else { 4 });
        let scheme_ok = before.len() >= 4
            && before[scheme_start..scheme_start + 4].eq_ignore_ascii_case(b"http");
        if !scheme_ok {
            continue;
        }
        host.clear();
        let mut i = at + 3;
        loop {
            let run_start = i;
            while i < body.len() && HOST_BYTES[usize::from(body[i])] {
                i += 1;
            }
            host.extend_from_slice(&body[run_start..i]);
            if i >= body.len() || host.len() > 253 {
                break;
            }
            match body[i] {
                // Quoted-printable soft line break inside the host.
                b'=' if body[i + 1..].starts_with(b"\r\n") => i += 3,
                b'=' if body[i + 1..].starts_with(b"\n") => i += 2,
                // user@host: what came before was the user part.
                b'@' => {
                    host.clear();
                    i += 1;
                }
                _ => break,
            }
        }
        host.truncate(254);
        host.make_ascii_lowercase();
        let host_key = quick_hash(&host);
        if seen[..seen_len].contains(&host_key) {
            continue;
        }
        // Judged after the repeat check (a newsletter links one host dozens of times), and not
        // remembered: the same host may be linked for real further on.
        if is_resource(&before[..scheme_start]) {
            continue;
        }
        if seen_len < seen.len() {
            seen[seen_len] = host_key;
            seen_len += 1;
        }
        // Host bytes are ASCII, so this never fails.
        let Ok(h) = std::str::from_utf8(trim_dots(&host)) else {
            continue;
        };
        if !h.contains('.') {
            continue;
        }
        // Only a host ending in a digit can be an address literal (no registrable domain): the
        // address itself is the evidence, when it is a public one.
        let org = if h.ends_with(|c: char| c.is_ascii_digit())
            && let Ok(ip) = h.parse::<std::net::Ipv4Addr>()
        {
            if !crate::classify::received::is_public(&IpAddr::V4(ip)) {
                continue;
            }
            h
        } else {
            let Some(org) = registrable(h) else {
                continue;
            };
            if org == from_org
                || (!from_label.is_empty() && org_label(org) == from_label)
                || is_shared_link_domain(org)
            {
                continue;
            }
            org
        };
        if out.iter().any(|d| d == org) {
            continue;
        }
        out.push(org.to_string());
        if out.len() >= MAX_LANDING {
            break;
        }
    }
}

/// Whether the text before a URL makes it a resource the message embeds (`src=`, `background=`,
/// CSS `url(`), not a link the recipient is sent to: images, scripts and style sheets sit on shared
/// CDNs and copies of the phished brand's servers, and say nothing about where a campaign leads.
/// Reads up to 16 bytes back: an optional quote, `=` or its quoted-printable form `=3D`, the
/// attribute name.
fn is_resource(before: &[u8]) -> bool {
    let mut back = Backwards {
        bytes: before,
        at: before.len(),
    };
    back.skip(|b| b == b'"' || b == b'\'');
    back.skip(|b| b == b' ' || b == b'\t');
    if back.eat(b"url(") {
        return true;
    }
    if !(back.eat(b"=3d") || back.eat(b"=")) {
        return false;
    }
    back.skip(|b| b == b' ' || b == b'\t');
    back.eat(b"src") || back.eat(b"background")
}

/// Reads text backwards from a position, skipping quoted-printable soft line breaks (`=` at a
/// line end): `src=3D=\n"` and `backg=\r\nround=` read as `src=3D"` and `background=`.
struct Backwards<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Backwards<'_> {
    /// The byte before the position, which moves before it.
    fn next(&mut self) -> Option<u8> {
        loop {
            let b = self.bytes[..self.at].last().copied()?;
            if b == b'\n' {
                let line = &self.bytes[..self.at - 1];
                let soft = if line.ends_with(b"=\r") {
                    3
                } else if line.ends_with(b"=") {
                    2
                } else {
                    0
                };
                if soft > 0 {
                    self.at -= soft;
                    continue;
                }
            }
            self.at -= 1;
            return Some(b);
        }
    }

    /// Step back over one byte `wanted` says yes to, if the next one is such a byte.
    fn skip(&mut self, wanted: impl Fn(u8) -> bool) {
        let at = self.at;
        match self.next() {
            Some(b) if wanted(b) => {}
            _ => self.at = at,
        }
    }

    /// Step back over `word` (ASCII case-insensitive) if the text before ends with it; else stay.
    fn eat(&mut self, word: &[u8]) -> bool {
        let at = self.at;
        for &w in word.iter().rev() {
            match self.next() {
                Some(b) if b.eq_ignore_ascii_case(&w) => {}
                _ => {
                    self.at = at;
                    return false;
                }
            }
        }
        true
    }
}

/// Bytes of a host name in a link: ASCII letters and digits, `-` and `.` (a table: the host
/// loop runs for every link in every body).
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric() || c == b'-' || c == b'.';
        i += 1;
    }
    table
};

/// `host` without leading and trailing dots.
fn trim_dots(host: &[u8]) -> &[u8] {
    let start = host.iter().position(|&b| b != b'.').unwrap_or(host.len());
    let end = host
        .iter()
        .rposition(|&b| b != b'.')
        .map_or(start, |i| i + 1);
    &host[start..end]
}

/// A fast hash for telling hosts of one message apart (8 bytes at a time; not stored anywhere).
fn quick_hash(bytes: &[u8]) -> u64 {
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    (h.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// The name of an organization without its public suffix: `ebay` for `ebay.co.uk`.
fn org_label(org: &str) -> &str {
    // A byte search: this runs for every link host.
    org.as_bytes()
        .iter()
        .position(|&b| b == b'.')
        .map_or(org, |dot| &org[..dot])
}

/// The registrable domain of a host: one label below its public suffix (Public Suffix List),
/// with the reserved documentation names counted as suffixes; None under an unknown suffix (a
/// name there names nothing anyone registered). See [`crate::auth::registrable_domain`].
pub fn registrable(host: &str) -> Option<&str> {
    crate::auth::registrable_domain(host, crate::auth::Suffixes::KnownOrReserved)
}

/// Registrable domains of the links a recipient would see in a message body, MIME-aware:
/// text parts (and parts without a type, which are text/plain) are read, quoted-printable and
/// 7/8-bit ones as they are, base64 ones decoded (bulk mail often sends its HTML that way);
/// images, archives and documents are skipped, since a mail client shows no links in them, and so
/// are multipart preambles and epilogues. `content_type` and `transfer_encoding` are the message's
/// own fields. `out` is cleared first; `scratch` holds decoded text. At most 256 KiB
/// of part text are read.
pub fn body_landing_domains(
    body: &[u8],
    content_type: Option<&[u8]>,
    transfer_encoding: Option<&[u8]>,
    from_org: &str,
    scratch: &mut Vec<u8>,
    out: &mut Vec<String>,
) {
    out.clear();
    let multipart = content_type.is_some_and(|t| media_type_is(t, b"multipart/"));
    let mut budget = LINK_SCAN_BYTES;
    if !multipart {
        let kind = PartKind::of(content_type, transfer_encoding);
        scan_part(body, kind, from_org, &mut budget, scratch, out);
        return;
    }
    // Walk the delimiter lines (`--` at a line start); the text between two of them is a part
    // whose header says how to read it. A `--` line not followed by a header (a signature
    // separator, an HTML comment) belongs to the part it is in.
    let mut kind = PartKind::Skip; // the preamble
    let mut part_start = 0;
    let mut at = if body.starts_with(b"--") {
        Some(0)
    } else {
        None
    };
    let mut search = 0;
    loop {
        let line = at.or_else(|| {
            DELIMITER_START
                .find(&body[search..])
                .map(|i| search + i + 1)
        });
        at = None;
        let Some(line) = line else {
            scan_part(
                &body[part_start..],
                kind,
                from_org,
                &mut budget,
                scratch,
                out,
            );
            return;
        };
        let line_end = memchr::memchr(b'\n', &body[line..]).map_or(body.len(), |i| line + i);
        search = line_end;
        let delimiter = body[line..line_end].trim_ascii_end();
        let closing = delimiter.len() > 4 && delimiter.ends_with(b"--");
        let next_kind = if closing {
            Some((PartKind::Skip, (line_end + 1).min(body.len())))
        } else {
            part_header(&body[(line_end + 1).min(body.len())..])
                .map(|(k, len)| (k, (line_end + 1 + len).min(body.len())))
        };
        if let Some((next, next_start)) = next_kind {
            // The line break before the delimiter belongs to it (RFC 2046 §5.1.1).
            let end = line.saturating_sub(1).max(part_start);
            scan_part(
                &body[part_start..end],
                kind,
                from_org,
                &mut budget,
                scratch,
                out,
            );
            kind = next;
            part_start = next_start;
            search = next_start.saturating_sub(1).max(search);
        }
        if budget == 0 || out.len() >= MAX_LANDING {
            return;
        }
    }
}

/// The longest part header read.
const PART_HEADER_BYTES: usize = 8 << 10;

/// How a MIME part's links are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    /// Text as it is (7bit, 8bit, quoted-printable).
    Text,
    /// Base64 text.
    Base64Text,
    /// Not text, or a multipart container's preamble or epilogue.
    Skip,
}

impl PartKind {
    fn of(content_type: Option<&[u8]>, transfer_encoding: Option<&[u8]>) -> PartKind {
        if !content_type.is_none_or(is_text_media) {
            return PartKind::Skip;
        }
        let base64 =
            transfer_encoding.is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"base64"));
        if base64 {
            PartKind::Base64Text
        } else {
            PartKind::Text
        }
    }
}

/// Read a part header at the start of `text`: its kind and its length up to and including the
/// blank line. None when `text` does not start with a header field or a blank line.
fn part_header(text: &[u8]) -> Option<(PartKind, usize)> {
    // A part header longer than this is not one (and every delimiter-like line would otherwise
    // read on to the end of a body without blank lines: quadratic on hostile input).
    let text = &text[..text.len().min(PART_HEADER_BYTES)];
    let mut content_type: Option<&[u8]> = None;
    let mut encoding: Option<&[u8]> = None;
    let mut last: Option<&mut Option<&[u8]>> = None;
    let mut pos = 0;
    let mut first = true;
    while pos < text.len() {
        let end = memchr::memchr(b'\n', &text[pos..]).map_or(text.len(), |i| pos + i);
        let line = &text[pos..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = (end + 1).min(text.len());
        if line.is_empty() {
            return Some((PartKind::of(content_type, encoding), pos));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if first {
                return None;
            }
            // A folded value: only an empty start of one is completed here.
            if let Some(slot) = last.as_mut()
                && slot.is_some_and(|v| v.trim_ascii().is_empty())
            {
                **slot = Some(line);
            }
            continue;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
            return None;
        }
        first = false;
        let value = &line[colon + 1..];
        last = None;
        if name.eq_ignore_ascii_case(b"content-type") {
            content_type = Some(value);
            last = Some(&mut content_type);
        } else if name.eq_ignore_ascii_case(b"content-transfer-encoding") {
            encoding = Some(value);
            last = Some(&mut encoding);
        }
    }
    None
}

/// Add the landing domains of one part's text to `out`.
fn scan_part(
    part: &[u8],
    kind: PartKind,
    from_org: &str,
    budget: &mut usize,
    scratch: &mut Vec<u8>,
    out: &mut Vec<String>,
) {
    if *budget == 0 || part.is_empty() {
        return;
    }
    match kind {
        PartKind::Skip => {}
        PartKind::Text => {
            let part = &part[..part.len().min(*budget)];
            *budget -= part.len();
            add_landing_domains(part, from_org, out);
        }
        PartKind::Base64Text => {
            // Whole lines up to the base64 of the budget (76 characters carry 57 bytes).
            let cap = (*budget / 57 + 1) * 78;
            let part = match part.get(..cap) {
                Some(head) => memchr::memrchr(b'\n', head).map_or(head, |i| &head[..i]),
                None => part,
            };
            join_lines(part, scratch);
            // The usual part is clean base64 in lines: one SIMD pass decodes it in place. A part
            // the forgiving decoder refuses (text after the base64, padding inside) goes line by
            // line, keeping what decodes.
            match base64_simd::forgiving_decode_inplace(scratch) {
                Ok(decoded) => {
                    let n = decoded.len();
                    scratch.truncate(n);
                }
                Err(_) => {
                    scratch.clear();
                    decode_lines(part, scratch);
                }
            }
            scratch.truncate(*budget);
            *budget -= scratch.len();
            add_landing_domains(scratch, from_org, out);
        }
    }
}

/// The lines of `text` without their line breaks, into `out` (cleared first). Encoders write
/// base64 in lines of one length, so while each line ends where the first did no search is
/// needed; from the first line that does not, the breaks are searched for. Whitespace left
/// inside a line is harmless: the forgiving decoder skips it.
fn join_lines(text: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(text.len());
    let mut from = 0;
    if let Some(first) = memchr::memchr(b'\n', text) {
        let stride = first + 1;
        let keep = first - usize::from(text[..first].ends_with(b"\r"));
        while from + stride <= text.len()
            && text[from + first] == b'\n'
            && text[from + keep] == if keep == first { b'\n' } else { b'\r' }
        {
            out.extend_from_slice(&text[from..from + keep]);
            from += stride;
        }
    }
    let rest = &text[from..];
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', rest).chain(std::iter::once(rest.len())) {
        let line = &rest[start..end];
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        start = end + 1;
    }
}

/// Whether a Content-Type value names a text type (`text/html`, `text/plain`, ...).
pub fn is_text_media(value: &[u8]) -> bool {
    media_type_is(value, b"text/")
}

/// Whether a Content-Type value starts with `prefix` (a top-level type and `/`), in any case.
fn media_type_is(value: &[u8], prefix: &[u8]) -> bool {
    let v = value.trim_ascii_start();
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
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

/// The identity of a mailing list from a `List-Id` value (RFC 2919: an optional phrase, then
/// `<list-id>`), lowercased; the whole trimmed value when it has no angle brackets. None when
/// empty.
pub fn list_identity(value: &[u8]) -> Option<String> {
    let inner = match (memchr::memrchr(b'<', value), memchr::memrchr(b'>', value)) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value,
    };
    let id = String::from_utf8_lossy(inner.trim_ascii()).to_lowercase();
    (!id.is_empty()).then_some(id)
}

/// The identity of a mailing list from a `Mailing-List` value (`list forteana@yahoogroups.com;
/// contact forteana-owner@yahoogroups.com`): the first address, lowercased.
pub fn mailing_list_identity(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    text.split(|c: char| c.is_whitespace() || matches!(c, ';' | ',' | '<' | '>'))
        .find(|word| word.contains('@'))
        .map(str::to_lowercase)
}

/// Addresses that never appear on the Internet although they are not private: the documentation
/// ranges (RFC 5737, RFC 3849) and the benchmarking range (RFC 2544). A Received line naming one
/// was written by hand or forged, so it is no evidence of where a message came from.
pub fn never_routed(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8,
    }
}

/// The key of an address's network (`N`): its /24 (IPv4) or /48 (IPv6), from the address bytes
/// (no text formatting on the per-message path).
pub fn network_key(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            key(b'N', &[4, a, b, c])
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            key(b'N', &[6, o[0], o[1], o[2], o[3], o[4], o[5]])
        }
    }
}

/// The network of [`network_key`] as a researcher writes it: `203.0.113.0/24`, `2001:db8:1::/48`.
pub fn network_name(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    }
}

/// The key of one address (`I`), for distinct counts.
pub fn address_key(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => key(b'I', &v4.octets()),
        IpAddr::V6(v6) => key(b'I', &v6.octets()),
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
            "From organization, shared hosts, private IP literals and other schemes are left out"
        );
    }

    #[test]
    fn embedded_resources_and_hosts_under_shared_names_are_not_landing_links() {
        let body = b"<img src=\"https://i.zupimages.example/logo.png\"> <IMG SRC='http://cdn.brand-x.top/a.gif'> \
<td background=3D\"https://bg.host.top/b.jpg\"> <div style=\"background: url(https://css.host.top/c.png)\"> \
<script src=https://js.host.top/x.js></script> <link href=\"https://fonts.googleapis.com/css\"> \
<a href=3D\"https://kit.login-verify.top/ebay\">log in</a> https://storage.googleapis.com/bucket/page.html \
see https://ads.doubleclick.net/x and http://landing.deals.top/";
        let mut out = Vec::new();
        landing_domains(body, "ebay.com", &mut out);
        assert_eq!(out, ["login-verify.top", "deals.top"]);
        // Quoted-printable soft line breaks inside the attribute.
        let body = b"<img src=3D=\r\n\"https://pics.cdn-a.top/x.gif\"> <td backg=\r\nround=3D\"http://bg.cdn-b.top/y.jpg\"> \
<img sr=\nc=3D\"https://pics.cdn-c.top/z.gif\"> <a href=3D=\n\"https://go.kit.top/\">";
        landing_domains(body, "ebay.com", &mut out);
        assert_eq!(out, ["kit.top"]);
        assert!(is_shared_link_domain("fonts.googleapis.com"));
        assert!(is_shared_link_domain("googleapis.com"));
        assert!(!is_shared_link_domain("notgoogleapis.com"));
    }

    #[test]
    fn lowercased_keys_equal_keys_of_the_lowercased_value() {
        for v in ["Jane.Doe@Example.COM", "", "x", "ÄÖ@b.example"] {
            for kind in [b'S', b'L'] {
                assert_eq!(
                    key_ascii_lowercase(kind, v.as_bytes()),
                    key(kind, v.to_ascii_lowercase().as_bytes())
                );
            }
        }
    }

    #[test]
    fn link_keys_are_even_and_other_keys_odd() {
        for v in [&b"a.example"[..], b"", b"x", b"198.51.100.7"] {
            assert!(is_link(key(b'L', v)));
            for kind in [b'T', b'N', b'I', b'B', b'R'] {
                assert!(!is_link(key(kind, v)));
                assert_ne!(key(kind, v), 0);
            }
        }
    }

    #[test]
    fn public_ip_links_are_evidence_and_the_brands_other_sites_are_not() {
        let body = b"Log in at http://198.51.100.23/ebayisapi.dll?x or http://66.135.200.1:8080/a see http://pages.ebay.de/help and https://www.ebay.co.uk/ and http://ebay-secure-login.example.com/ https://192.168.1.1/router https://ebayer.top/";
        let mut out = Vec::new();
        landing_domains(body, "ebay.com", &mut out);
        assert_eq!(
            out,
            [
                "198.51.100.23",
                "66.135.200.1",
                "ebay-secure-login.example.com",
                "ebayer.top"
            ]
        );
    }

    fn links(body: &str, content_type: &str, encoding: Option<&str>) -> Vec<String> {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        body_landing_domains(
            body.as_bytes(),
            Some(content_type.as_bytes()),
            encoding.map(str::as_bytes),
            "brand.example",
            &mut scratch,
            &mut out,
        );
        out
    }

    fn b64(text: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn base64_text_is_decoded_for_links() {
        let enc = b64("<a href=\"https://go-x1.top/c\">x</a>");
        let (a, b) = enc.split_at(10);
        let body = format!(
            "--b\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: BASE64\r\n\r\n{a}\r\n{b}\r\n--b--\r\n"
        );
        assert_eq!(
            links(&body, "multipart/alternative; boundary=b", None),
            ["go-x1.top"]
        );
        let whole = format!("{a}\n{b}\n");
        assert_eq!(links(&whole, "text/html", Some(" base64")), ["go-x1.top"]);
        assert!(links(&whole, "image/png", Some("base64")).is_empty());
    }

    #[test]
    fn only_text_parts_are_read() {
        let body = format!(
            "preamble https://preamble.top/\n\
             --b\nContent-Type:\n text/html; charset=utf-8\nContent-Transfer-Encoding: base64\n\n{}\n\
             --b\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n{}\n\
             --b\nContent-Type: multipart/related; boundary=c\n\n\
             --c\n\nsee https://plain-x.top/ -- and\n-- \nsig https://sig.top/\n--c--\n\
             epilogue https://epilogue.top/\n\
             --b\nContent-Type: image/gif\n\nGIF89a https://gif.top/\n\
             --b\nContent-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n\
             https://qp-lo=\nng.top/\n--b--\n",
            b64("<a href=\"https://go-x1.top/c\">x</a>"),
            b64("%PDF-1.4 /URI (https://pdf-link.top/)"),
        );
        assert_eq!(
            links(&body, "Multipart/Mixed; boundary=b", Some("7bit")),
            ["go-x1.top", "plain-x.top", "sig.top", "qp-long.top"],
            "PDF, GIF, preamble and epilogue are skipped; a signature separator is text"
        );
        // Cut off in a part header or with no delimiter at all: no panic, what is there counts.
        for cut in [5, 40, 90, body.len() - 3] {
            links(&body[..cut], "multipart/mixed", None);
        }
        assert!(links("no parts at all", "multipart/mixed", None).is_empty());
        assert!(is_text_media(b" Text/HTML; charset=x"));
        assert!(!is_text_media(b"image/png"));
    }

    #[test]
    fn hostile_bodies_are_read_within_bounds() {
        // Every line looks like a delimiter and a header field, and no blank line ever comes:
        // each candidate's header read stops at PART_HEADER_BYTES instead of the body's end.
        let body = "--x: y\n".repeat(20_000);
        assert!(links(&body, "multipart/mixed", None).is_empty());
        // A huge base64 text part is decoded only up to the scan budget.
        let big = format!("{}\n", b64(&"https://far-away.top/ ".repeat(200_000)));
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        body_landing_domains(
            big.as_bytes(),
            Some(b"text/plain"),
            Some(b"base64"),
            "x.example",
            &mut scratch,
            &mut out,
        );
        assert_eq!(out, ["far-away.top"]);
        assert!(scratch.len() <= LINK_SCAN_BYTES);
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
        assert_eq!(registrable("internet.e-mail"), None);
        assert_eq!(registrable("deals.top"), Some("deals.top"));
    }

    #[test]
    fn list_identities_are_the_bracketed_id() {
        let id = |v: &str| list_identity(v.as_bytes());
        assert_eq!(
            id("Talk about SpamAssassin <SpamAssassin-Talk.example.sourceforge.net>").as_deref(),
            Some("spamassassin-talk.example.sourceforge.net")
        );
        assert_eq!(id(" fork.xent.com ").as_deref(), Some("fork.xent.com"));
        assert_eq!(id(" <> "), None);
        assert_eq!(
            mailing_list_identity(
                b"list Forteana@yahoogroups.com; contact forteana-owner@yahoogroups.com"
            )
            .as_deref(),
            Some("forteana@yahoogroups.com")
        );
        assert_eq!(mailing_list_identity(b"contact help"), None);
        assert_eq!(id("odd > order <x"), Some("odd > order <x".to_string()));
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        let n = |a: &str| network_key(&a.parse().unwrap());
        assert_eq!(n("203.0.113.7"), n("203.0.113.250"));
        assert_ne!(n("203.0.113.7"), n("203.0.114.7"));
        assert_eq!(n("2001:db8:1:2::1"), n("2001:db8:1:ffff::9"));
        assert_ne!(n("2001:db8:1::1"), n("2001:db8:2::1"));
        assert_ne!(n("0.0.0.0"), n("::"), "families apart");
        let a = |x: &str| address_key(&x.parse().unwrap());
        assert_ne!(a("203.0.113.7"), a("203.0.113.8"));
    }

    #[test]
    fn shared_link_domains_are_sorted() {
        assert!(
            SHARED_LINK_DOMAINS
                .windows(2)
                .all(|w| by_length(w[0], w[1]).is_lt())
        );
    }

    #[test]
    fn keys_are_stable_and_kinded() {
        assert_eq!(key(b'L', b"deals-zone.com"), key(b'L', b"deals-zone.com"));
        assert_ne!(key(b'L', b"x"), key(b'T', b"x"));
        // FNV-1a test vector ("a").
        assert_eq!(fnv1a(&[b"a"]), 0xaf63dc4c8601ec8c);
    }

    const BODY_PIECES: &[&[u8]] = &[
        b"--b\n",
        b"--b--\n",
        b"--b\r\n",
        b"\n--\n",
        b"-- \n",
        b"Content-Type: text/html\n",
        b"Content-Type: image/png\n",
        b"Content-Type:\n text/plain\n",
        b"Content-Type: multipart/alternative; boundary=c\n",
        b"Content-Transfer-Encoding: base64\n",
        b"Content-Transfer-Encoding: quoted-printable\n",
        b"X-Junk\n",
        b"\n",
        b"\r\n",
        b"https://a.Example.com/x ",
        b"http://user@b-2.top/",
        b"https://c.example.co.uk=\n/x",
        b"aHR0cHM6Ly9nby14MS50b3AvYw==\n",
        b"aHR0cHM6Ly9nby14\n",
        b"MS50b3AvYw\n",
        b"=\n",
        b"://",
        b"https://",
        b"https://10.0.0.1/",
        b"\xff\x00\xfe",
        b"text ",
    ];

    fn check_links(body: &[u8], content_type: &[u8], encoding: Option<&[u8]>) {
        let (mut scratch, mut out) = (Vec::new(), Vec::new());
        body_landing_domains(
            body,
            Some(content_type),
            encoding,
            "example.com",
            &mut scratch,
            &mut out,
        );
        assert!(out.len() <= MAX_LANDING);
        for (i, d) in out.iter().enumerate() {
            assert!(d.contains('.'), "{d}");
            assert_eq!(d, &d.to_ascii_lowercase());
            assert_ne!(d, "example.com", "the From organization is left out");
            assert!(!out[..i].contains(d), "duplicate {d}");
        }
    }

    proptest::proptest! {
        #[test]
        fn mime_like_bodies_never_panic(
            pieces in proptest::collection::vec(proptest::sample::select(BODY_PIECES), 0..80),
            multipart: bool,
            base64: bool,
        ) {
            let body = pieces.concat();
            let content_type: &[u8] = if multipart { b"multipart/mixed; boundary=b" } else { b"text/html" };
            check_links(&body, content_type, base64.then_some(&b"base64"[..]));
        }

        #[test]
        fn random_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            check_links(&body, b"multipart/related", None);
            check_links(&body, b"text/plain", Some(b"base64"));
        }

        #[test]
        fn joined_lines_decode_like_lines_joined_one_by_one(
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&b"QUJDRGVm+/=\r \t"[..]), 0..90),
                0..12,
            ),
            crlf: bool,
            trailing: bool,
        ) {
            let sep: &[u8] = if crlf { b"\r\n" } else { b"\n" };
            let mut text = lines.join(sep);
            if trailing {
                text.extend_from_slice(sep);
            }
            let mut slow = Vec::new();
            for line in text.split(|&b| b == b'\n') {
                slow.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
            }
            let mut fast = Vec::new();
            join_lines(&text, &mut fast);
            let strip = |v: &[u8]| v.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect::<Vec<u8>>();
            proptest::prop_assert_eq!(strip(&fast), strip(&slow));
            proptest::prop_assert_eq!(
                base64_simd::forgiving_decode_to_vec(&fast).ok(),
                base64_simd::forgiving_decode_to_vec(&slow).ok()
            );
        }

        #[test]
        fn a_single_text_part_reads_like_the_plain_scan(
            pieces in proptest::collection::vec(proptest::sample::select(BODY_PIECES), 0..40),
        ) {
            let body = pieces.concat();
            let (mut scratch, mut walked, mut plain) = (Vec::new(), Vec::new(), Vec::new());
            body_landing_domains(&body, Some(b"text/plain"), None, "x.example", &mut scratch, &mut walked);
            landing_domains(&body, "x.example", &mut plain);
            proptest::prop_assert_eq!(walked, plain);
        }
    }
}
