//! Stage 3, headers: walk one message's header block and pick out the fields mailcensus reports.
//!
//! Takes the bytes of one message (without any mbox `From ` line) and gives [`Headers`]: raw,
//! still-folded value slices borrowed from the input (zero-copy), the Received chain in header
//! order, the DKIM-Signature values, and where the body starts — or a [`Malformed`] reason.
//! Lines are found with `memchr`; field names are matched by length and ASCII case-folding, so no
//! field allocates. Decoding for output lives in [`decode`], [`address`] and [`date`], and runs
//! only on the fields that are written out.

pub mod address;
pub mod date;
pub mod decode;

use crate::split::line_at;

/// Why a message could not be read as a message. Every malformed message is counted with one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Malformed {
    /// Zero bytes, or only blank lines.
    Empty,
    /// The first line is not a header field.
    NoHeaderBlock,
    /// The header block is larger than the limit without ending.
    HeaderTooLarge,
    /// NUL bytes or other binary data in the header block.
    BinaryJunk,
    /// The data ends inside the header block, or before the length its mbox entry promised.
    Truncated,
    /// The message is larger than the per-message cap (decompression bomb guard).
    TooLarge,
    /// Bytes before the first `From ` line of an mbox.
    MboxPreamble,
    /// Reading the message's bytes failed part-way (I/O or decompression error).
    ReadError,
}

impl Malformed {
    /// All reasons, in report order.
    pub const ALL: [Malformed; 8] = [
        Malformed::Empty,
        Malformed::NoHeaderBlock,
        Malformed::HeaderTooLarge,
        Malformed::BinaryJunk,
        Malformed::Truncated,
        Malformed::TooLarge,
        Malformed::MboxPreamble,
        Malformed::ReadError,
    ];

    /// The reason as written in `messages.csv` and `summary.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::Empty => "empty",
            Malformed::NoHeaderBlock => "no-header-block",
            Malformed::HeaderTooLarge => "header-too-large",
            Malformed::BinaryJunk => "binary-junk",
            Malformed::Truncated => "truncated",
            Malformed::TooLarge => "too-large",
            Malformed::MboxPreamble => "mbox-preamble",
            Malformed::ReadError => "read-error",
        }
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        Malformed::ALL.iter().position(|&m| m == self).unwrap_or(0)
    }
}

/// Limits on a header block.
#[derive(Debug, Clone, Copy)]
pub struct HeaderLimits {
    /// Largest header block accepted; a block that has not ended by then is `HeaderTooLarge`.
    pub max_header_bytes: usize,
}

impl Default for HeaderLimits {
    fn default() -> Self {
        HeaderLimits {
            max_header_bytes: 1 << 20,
        }
    }
}

/// The fields of one message that mailcensus reads. Values are raw: everything after the colon,
/// through the end of the last continuation line (line endings excluded at the end, folds kept).
#[derive(Debug, Default, Clone)]
pub struct Headers<'a> {
    pub from: Option<&'a [u8]>,
    pub to: Vec<&'a [u8]>,
    pub cc: Vec<&'a [u8]>,
    pub subject: Option<&'a [u8]>,
    pub date: Option<&'a [u8]>,
    pub message_id: Option<&'a [u8]>,
    pub return_path: Option<&'a [u8]>,
    /// Received fields in header order: index 0 is the topmost (newest) hop.
    pub received: Vec<&'a [u8]>,
    /// DKIM-Signature fields in header order.
    pub dkim_signatures: Vec<&'a [u8]>,
    /// Authentication-Results fields in header order (the topmost is the receiving server's).
    pub authentication_results: Vec<&'a [u8]>,
    /// The first (topmost) ARC-Authentication-Results (RFC 8617): the same statements behind an
    /// `i=` instance tag, kept by receivers that record their results only there.
    pub arc_authentication_results: Option<&'a [u8]>,
    pub cross_tenant_id: Option<&'a [u8]>,
    pub originator_org: Option<&'a [u8]>,
    pub x_mailer: Option<&'a [u8]>,
    pub list_unsubscribe: Option<&'a [u8]>,
    /// `List-Id` (RFC 2919): the message was redistributed by this mailing list.
    pub list_id: Option<&'a [u8]>,
    /// `Mailing-List` (ezmlm, Yahoo Groups: `list NAME@HOST; contact ...`): the same, from list
    /// managers that predate List-Id.
    pub mailing_list: Option<&'a [u8]>,
    pub content_type: Option<&'a [u8]>,
    pub content_transfer_encoding: Option<&'a [u8]>,
    /// `X-MS-Exchange-CrossTenant-AuthAs` (`Anonymous`, `Internal`, ...).
    pub ms_auth_as: Option<&'a [u8]>,
    /// `X-MS-Exchange-CrossTenant-FromEntityHeader` (`Internet`, `Hosted`, ...).
    pub ms_from_entity: Option<&'a [u8]>,
    /// `X-MS-Exchange-CrossTenant-OriginalAttributedTenantConnectingIp`
    /// (`TenantId=<guid>;Ip=[...];Helo=[...]`): the tenant the receiving side attributed the
    /// connection to, i.e. the sender's.
    pub ms_attributed_tenant: Option<&'a [u8]>,
    /// Offset where the body starts (just past the blank line), or the message length when the
    /// message has no body.
    pub body_start: usize,
    /// Lines inside the header block that are not fields (no colon, bad name): skipped, counted.
    pub bad_lines: u32,
    /// Number of header fields seen.
    pub fields: u32,
    /// A leading `From ` envelope line found at the top of the message (single-message files).
    pub envelope: Option<&'a [u8]>,
    /// Offset where the message proper starts: after a leading envelope line, else 0.
    pub message_start: usize,
}

impl<'a> Headers<'a> {
    /// What the receiving server recorded: the topmost Authentication-Results, else the first
    /// ARC-Authentication-Results.
    pub fn recorded_results(&self) -> Option<&'a [u8]> {
        self.authentication_results
            .first()
            .copied()
            .or(self.arc_authentication_results)
    }

    /// Forget everything, keeping the vectors' capacity for the next message.
    pub fn clear(&mut self) {
        let mut to = std::mem::take(&mut self.to);
        let mut cc = std::mem::take(&mut self.cc);
        let mut received = std::mem::take(&mut self.received);
        let mut dkim = std::mem::take(&mut self.dkim_signatures);
        let mut ar = std::mem::take(&mut self.authentication_results);
        to.clear();
        cc.clear();
        received.clear();
        dkim.clear();
        ar.clear();
        *self = Headers {
            to,
            cc,
            received,
            dkim_signatures: dkim,
            authentication_results: ar,
            ..Headers::default()
        };
    }
}

/// The fields we keep, by id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Field {
    From,
    To,
    Cc,
    Subject,
    Date,
    MessageId,
    ReturnPath,
    Received,
    DkimSignature,
    AuthenticationResults,
    ArcAuthenticationResults,
    CrossTenantId,
    OriginatorOrg,
    XMailer,
    ListUnsubscribe,
    ListId,
    MailingList,
    ContentType,
    ContentTransferEncoding,
    MsAuthAs,
    MsFromEntity,
    MsAttributedTenant,
}

/// Match a field name without allocating: dispatch on length, then compare ASCII case-insensitively.
#[inline]
fn field_of(name: &[u8]) -> Option<Field> {
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    let f = match name.len() {
        2 if is(b"to") => Field::To,
        2 if is(b"cc") => Field::Cc,
        4 if is(b"from") => Field::From,
        4 if is(b"date") => Field::Date,
        7 if is(b"subject") => Field::Subject,
        7 if is(b"list-id") => Field::ListId,
        8 if is(b"received") => Field::Received,
        8 if is(b"x-mailer") => Field::XMailer,
        10 if is(b"message-id") => Field::MessageId,
        11 if is(b"return-path") => Field::ReturnPath,
        12 if is(b"content-type") => Field::ContentType,
        12 if is(b"mailing-list") => Field::MailingList,
        14 if is(b"dkim-signature") => Field::DkimSignature,
        15 if is(b"x-originatororg") => Field::OriginatorOrg,
        16 if is(b"list-unsubscribe") => Field::ListUnsubscribe,
        22 if is(b"authentication-results") => Field::AuthenticationResults,
        25 if is(b"content-transfer-encoding") => Field::ContentTransferEncoding,
        26 if is(b"arc-authentication-results") => Field::ArcAuthenticationResults,
        28 if is(b"x-ms-exchange-crosstenant-id") => Field::CrossTenantId,
        32 if is(b"x-ms-exchange-crosstenant-authas") => Field::MsAuthAs,
        42 if is(b"x-ms-exchange-crosstenant-fromentityheader") => Field::MsFromEntity,
        62 if is(b"x-ms-exchange-crosstenant-originalattributedtenantconnectingip") => {
            Field::MsAttributedTenant
        }
        _ => return None,
    };
    Some(f)
}

/// Whether `name` is a syntactically valid field name (RFC 5322 ftext: printable, no colon).
#[inline]
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b) && b != b':')
}

/// Walk the header block of `msg` into `out` (cleared first).
pub fn parse_headers<'a>(
    msg: &'a [u8],
    limits: &HeaderLimits,
    out: &mut Headers<'a>,
) -> Result<(), Malformed> {
    out.clear();
    let mut pos = 0;
    // Blank lines before the first field are tolerated (some archivers add them).
    while pos < msg.len() && (msg[pos] == b'\n' || msg[pos] == b'\r') {
        pos += 1;
    }
    if pos == msg.len() {
        return Err(Malformed::Empty);
    }
    // A single-message file may begin with its mbox envelope line; some archives also keep a
    // quoted `>From ` line there.
    let (first, next) = line_at(msg, pos);
    if first.starts_with(b"From ") || first.starts_with(b">From ") {
        out.envelope = first.strip_prefix(b"From ");
        pos = next;
    }
    let header_start = pos;
    if out.envelope.is_some() {
        out.message_start = pos;
    }
    let header_cap = header_start.saturating_add(limits.max_header_bytes);
    // The field being collected: (id, value start); finished when the next field starts.
    let mut current: Option<(Field, usize)> = None;
    let mut value_end = pos;
    let mut saw_field = false;
    loop {
        if pos >= msg.len() {
            // Ran out of bytes inside the header block.
            finish(out, msg, current.take(), value_end);
            out.body_start = msg.len();
            if !saw_field {
                return Err(Malformed::NoHeaderBlock);
            }
            if !msg.ends_with(b"\n") {
                return Err(Malformed::Truncated);
            }
            return check_binary(&msg[header_start..]);
        }
        if pos > header_cap {
            finish(out, msg, current.take(), value_end);
            return Err(Malformed::HeaderTooLarge);
        }
        let (line, next) = line_at(msg, pos);
        if line.is_empty() {
            finish(out, msg, current.take(), value_end);
            out.body_start = next;
            if !saw_field {
                return Err(Malformed::NoHeaderBlock);
            }
            return check_binary(&msg[header_start..pos]);
        }
        let line_end = pos + line.len();
        if line[0] == b' ' || line[0] == b'\t' {
            // Continuation of the field above (or stray indentation before any field).
            // Continuations of fields we do not keep (or of a bad line) are simply passed over.
            if current.is_some() {
                value_end = line_end;
            } else if !saw_field {
                return Err(Malformed::NoHeaderBlock);
            }
            pos = next;
            continue;
        }
        finish(out, msg, current.take(), value_end);
        // Field names are short: a plain scan finds the colon sooner than a SIMD search set-up.
        match line.iter().position(|&b| b == b':') {
            Some(colon) if valid_name(line[..colon].trim_ascii_end()) => {
                saw_field = true;
                out.fields += 1;
                if let Some(field) = field_of(line[..colon].trim_ascii_end()) {
                    current = Some((field, pos + colon + 1));
                    value_end = line_end;
                }
            }
            _ => {
                if !saw_field {
                    return Err(if line.contains(&0) {
                        Malformed::BinaryJunk
                    } else {
                        Malformed::NoHeaderBlock
                    });
                }
                out.bad_lines += 1;
            }
        }
        pos = next;
    }
}

/// NUL bytes have no business in a header block; a block with them is binary, not mail.
fn check_binary(block: &[u8]) -> Result<(), Malformed> {
    if memchr::memchr(0, block).is_some() {
        Err(Malformed::BinaryJunk)
    } else {
        Ok(())
    }
}

#[inline]
fn finish<'a>(out: &mut Headers<'a>, msg: &'a [u8], field: Option<(Field, usize)>, end: usize) {
    let Some((field, start)) = field else { return };
    let value = &msg[start..end.max(start)];
    let first = |slot: &mut Option<&'a [u8]>| {
        if slot.is_none() {
            *slot = Some(value);
        }
    };
    match field {
        Field::From => first(&mut out.from),
        Field::To => out.to.push(value),
        Field::Cc => out.cc.push(value),
        Field::Subject => first(&mut out.subject),
        Field::Date => first(&mut out.date),
        Field::MessageId => first(&mut out.message_id),
        Field::ReturnPath => first(&mut out.return_path),
        Field::Received => out.received.push(value),
        Field::DkimSignature => out.dkim_signatures.push(value),
        Field::AuthenticationResults => out.authentication_results.push(value),
        Field::ArcAuthenticationResults => first(&mut out.arc_authentication_results),
        Field::CrossTenantId => first(&mut out.cross_tenant_id),
        Field::OriginatorOrg => first(&mut out.originator_org),
        Field::XMailer => first(&mut out.x_mailer),
        Field::ListUnsubscribe => first(&mut out.list_unsubscribe),
        Field::ListId => first(&mut out.list_id),
        Field::MailingList => first(&mut out.mailing_list),
        Field::ContentType => first(&mut out.content_type),
        Field::ContentTransferEncoding => first(&mut out.content_transfer_encoding),
        Field::MsAuthAs => first(&mut out.ms_auth_as),
        Field::MsFromEntity => first(&mut out.ms_from_entity),
        Field::MsAttributedTenant => first(&mut out.ms_attributed_tenant),
    }
}

/// The tags of one DKIM-Signature that the scan reports, raw (RFC 6376 §3.2 tag-list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DkimTags<'a> {
    /// Signing domain (`d=`).
    pub d: Option<&'a [u8]>,
    /// Selector (`s=`).
    pub s: Option<&'a [u8]>,
    /// Algorithm (`a=`).
    pub a: Option<&'a [u8]>,
}

/// Read `d=`, `s=` and `a=` from a DKIM-Signature value: tags are split on `;`, names and values
/// trimmed of whitespace; the first occurrence of a tag wins.
pub fn dkim_tags(value: &[u8]) -> DkimTags<'_> {
    let mut tags = DkimTags::default();
    let mut start = 0;
    // Tags are found with memchr; the walk stops as soon as d, s and a are known, before the
    // long b= and bh= values that usually come last.
    let ends = memchr::memchr_iter(b';', value).chain(std::iter::once(value.len()));
    for end in ends {
        let part = &value[start..end];
        start = end + 1;
        if tags.d.is_some() && tags.s.is_some() && tags.a.is_some() {
            break;
        }
        let Some(eq) = memchr::memchr(b'=', part) else {
            continue;
        };
        let val = Some(part[eq + 1..].trim_ascii());
        match part[..eq].trim_ascii() {
            b"d" => tags.d = tags.d.or(val),
            b"s" => tags.s = tags.s.or(val),
            b"a" => tags.a = tags.a.or(val),
            _ => {}
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(m: &[u8]) -> (Result<(), Malformed>, Headers<'_>) {
        let mut h = Headers::default();
        let r = parse_headers(m, &HeaderLimits::default(), &mut h);
        (r, h)
    }

    #[test]
    fn folded_fields_and_case() {
        let m = b"Received: from a\r\n by b; Mon, 6 May 2024 00:10:11 +0000\r\nSUBJECT: hi\r\n there\r\nfrom: x@y\r\n\r\nbody";
        let (r, h) = parse(m);
        assert_eq!(r, Ok(()));
        assert_eq!(h.subject, Some(&b" hi\r\n there"[..]));
        assert_eq!(h.from, Some(&b" x@y"[..]));
        assert_eq!(h.received.len(), 1);
        assert_eq!(&m[h.body_start..], b"body");
    }

    #[test]
    fn malformed_reasons() {
        assert_eq!(parse(b"").0, Err(Malformed::Empty));
        assert_eq!(parse(b"\n\n").0, Err(Malformed::Empty));
        assert_eq!(
            parse(b"hello world\n\nbody").0,
            Err(Malformed::NoHeaderBlock)
        );
        assert_eq!(parse(b"\0\x01\x02binary\n").0, Err(Malformed::BinaryJunk));
        assert_eq!(parse(b"Subject: a\nFrom: b").0, Err(Malformed::Truncated));
        assert_eq!(
            parse(b"Subject: a\nX: \0\n\nb").0,
            Err(Malformed::BinaryJunk)
        );
        assert_eq!(parse(b"Subject: a\nFrom: b\n").0, Ok(()));
        let big = [b"Subject: a\n".repeat(200_000), b"\nbody".to_vec()].concat();
        assert_eq!(parse(&big).0, Err(Malformed::HeaderTooLarge));
    }

    #[test]
    fn envelope_line_and_bad_lines() {
        let m = b"From x@y  Tue Aug  6 11:51:02 2002\nSubject: s\nnot a header\nTo: a@b, c@d\n\n";
        let (r, h) = parse(m);
        assert_eq!(r, Ok(()));
        assert_eq!(h.envelope, Some(&b"x@y  Tue Aug  6 11:51:02 2002"[..]));
        assert_eq!(h.bad_lines, 1);
        assert_eq!(h.to, vec![&b" a@b, c@d"[..]]);
    }

    #[test]
    fn dkim_tag_list() {
        let v = b" v=1; a=rsa-sha256; c=relaxed/relaxed;\n d=example.com; s=sel;\n b=abc";
        let t = dkim_tags(v);
        assert_eq!(t.d, Some(&b"example.com"[..]));
        assert_eq!(t.s, Some(&b"sel"[..]));
        assert_eq!(t.a, Some(&b"rsa-sha256"[..]));
    }

    /// Plain oracle: split on lines, unfold by hand, compare what the walker found.
    fn oracle_fields(m: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
        let text: Vec<&[u8]> = m.split(|&b| b == b'\n').collect();
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        let mut i = 0;
        // Leading blank lines are tolerated, as in the walker.
        while i < text.len() && text[i].strip_suffix(b"\r").unwrap_or(text[i]).is_empty() {
            i += 1;
        }
        while i < text.len() {
            let l = text[i].strip_suffix(b"\r").unwrap_or(text[i]);
            if l.is_empty() {
                break;
            }
            if l[0] == b' ' || l[0] == b'\t' {
                if let Some(f) = fields.last_mut() {
                    f.1.extend_from_slice(b"\n");
                    f.1.extend_from_slice(l);
                }
            } else if let Some(c) = l.iter().position(|&b| b == b':') {
                let name = l[..c].trim_ascii_end();
                if !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b)) {
                    fields.push((
                        String::from_utf8_lossy(name).to_lowercase(),
                        l[c + 1..].to_vec(),
                    ));
                } else {
                    fields.push(("!bad".into(), Vec::new()));
                }
            } else {
                fields.push(("!bad".into(), Vec::new()));
            }
            i += 1;
        }
        Some(fields)
    }

    fn normalise(v: &[u8]) -> Vec<u8> {
        // compare folded values independently of CR placement
        v.iter().copied().filter(|&b| b != b'\r').collect()
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"Subject: hello".to_vec()),
            Just(b"SUBJECT : spaced".to_vec()),
            Just(b"Received: from a by b; Mon, 6 May 2024 00:10:11 +0000".to_vec()),
            Just(b"received: x".to_vec()),
            Just(b"To: a@b".to_vec()),
            Just(b"X-Other: y".to_vec()),
            Just(b" folded".to_vec()),
            Just(b"\tfolded tab".to_vec()),
            Just(b"no colon here".to_vec()),
            "[ -~]{0,20}".prop_map(|s| s.into_bytes()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn walker_matches_oracle(
            lines in proptest::collection::vec((line(), prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..])]), 1..20),
            body in any::<bool>(),
        ) {
            let mut m = Vec::new();
            for (l, nl) in &lines { m.extend_from_slice(l); m.extend_from_slice(nl); }
            if body { m.extend_from_slice(b"\nbody\n"); }
            let (r, h) = parse(&m);
            let fields = oracle_fields(&m).unwrap();
            if r.is_ok() {
                let subjects: Vec<_> = fields.iter().filter(|f| f.0 == "subject").collect();
                prop_assert_eq!(h.subject.map(normalise), subjects.first().map(|f| normalise(&f.1)));
                let rec: Vec<_> = fields.iter().filter(|f| f.0 == "received").map(|f| normalise(&f.1)).collect();
                let got: Vec<_> = h.received.iter().map(|v| normalise(v)).collect();
                prop_assert_eq!(got, rec);
                prop_assert_eq!(h.bad_lines as usize, fields.iter().filter(|f| f.0 == "!bad").count());
            } else {
                // Only a first line that is not a field (or not valid UTF-8 text) may fail here.
                prop_assert!(matches!(r, Err(Malformed::Empty) | Err(Malformed::NoHeaderBlock) | Err(Malformed::Truncated) | Err(Malformed::BinaryJunk)));
            }
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (r, h) = parse(&data);
            if r.is_ok() { prop_assert!(h.body_start <= data.len()); }
        }
    }
}
