//! Stage 4, message: one item of a work unit → one typed [`Message`].
//!
//! Takes an item's bytes and where they came from, and fills the reader's [`Message`]: header
//! fields (parsed by [`crate::headers`]), the Received chain classified ([`crate::classify`]),
//! DKIM verified ([`crate::auth`]), the sending Microsoft 365 tenant (`tenant`) and, when
//! campaigns are on, the facts the grouping stage needs ([`facts`]). Only the fields written out
//! are decoded. Outputs read the [`Message`]; nothing reads encoded rows back.

pub mod facts;
mod tenant;

use crate::aggregate::Totals;
use crate::auth::{self, MessageVerdict, SigResult, Verifier, VerifyAt};
use crate::classify::{self, received::Hop as RawHop, rules::Rules};
use crate::headers::{self, HeaderLimits, Headers, Malformed, address, date, decode};
use crate::schema::{Hop, Message};
use crate::split::{self, Entry, EntryKind};
use crate::work::{Item, ItemKind};

pub use facts::{DkimClass, Facts, MessageFacts};

/// What the message stage reads besides the bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Also describe each Received hop ([`Message::received`]).
    pub hops: bool,
    /// Read only the DKIM key names the signatures need (the first pass of live DNS).
    pub key_names_only: bool,
    pub header_limits: HeaderLimits,
}

/// Reads the items of a unit into [`Message`]s; keeps its scratch buffers between messages.
pub struct Reader<'o> {
    opts: ReadOptions,
    verifier: Option<&'o Verifier>,
    /// Hop classification rules; `None` when campaigns and relay abuse are off.
    rules: Option<&'o Rules>,
    /// Verification time for `VerifyAt::Now`: the start of the run, the same for every message.
    now: i64,
    /// The message just read.
    pub message: Message,
    wire: Vec<u8>,
    /// Timestamp of each Received hop of the current message, topmost first.
    times: Vec<Option<i64>>,
    /// Domains of the current message's recorded `dkim=pass` statements (for alignment).
    recorded_pass_domains: Vec<String>,
    scratch: facts::Scratch,
    lossy: Vec<&'static str>,
}

impl<'o> Reader<'o> {
    /// A reader that verifies DKIM with `verifier` when given (`now`: the run's start time) and
    /// gathers campaign and relay facts when given hop `rules`.
    pub fn new(
        opts: ReadOptions,
        verifier: Option<&'o Verifier>,
        rules: Option<&'o Rules>,
        now: i64,
    ) -> Self {
        Reader {
            opts,
            verifier,
            rules,
            now,
            message: Message::default(),
            wire: Vec::new(),
            times: Vec::new(),
            recorded_pass_domains: Vec::new(),
            scratch: facts::Scratch::default(),
            lossy: Vec::new(),
        }
    }

    /// Read one item of a unit whose bytes are `data` into [`Reader::message`]; counts go to
    /// `totals`, campaign facts (when rules are set) to `facts`. Returns false when only key
    /// names were read.
    pub fn read(
        &mut self,
        source: &str,
        data: &[u8],
        item: &Item,
        totals: &mut Totals,
        facts: &mut Facts,
    ) -> bool {
        let mut headers = Headers::default();
        let mut hops = Vec::new();
        self.read_with(source, data, item, &mut headers, &mut hops, totals, facts)
    }

    /// As [`Reader::read`], reusing the caller's header and hop buffers across items.
    #[allow(clippy::too_many_arguments)]
    pub fn read_with<'a>(
        &mut self,
        source: &str,
        data: &'a [u8],
        item: &Item,
        headers: &mut Headers<'a>,
        hops: &mut Vec<RawHop<'a>>,
        totals: &mut Totals,
        facts: &mut Facts,
    ) -> bool {
        self.lossy.clear();
        totals.messages += 1;
        totals.message_bytes += item.length;
        let bytes = &data[item.start..item.end];
        let (envelope, msg, forced) = entry_parts(bytes, item.kind);
        let parsed = if forced.is_some() && msg.is_empty() {
            headers.clear();
            Err(forced.unwrap_or(Malformed::Empty))
        } else {
            headers::parse_headers(msg, &self.opts.header_limits, headers)
        };
        let malformed = forced.or(parsed.err());
        if self.opts.key_names_only {
            for sig in &headers.dkim_signatures {
                let tags = headers::dkim_tags(sig);
                if let (Some(d), Some(s)) = (tags.d, tags.s) {
                    let name =
                        auth::key_name(&String::from_utf8_lossy(s), &String::from_utf8_lossy(d));
                    totals.key_names.insert(name);
                }
            }
            return false;
        }
        let envelope = envelope.or(headers.envelope);
        // The size on the wire: without the envelope line, and without mbox `>From ` quoting.
        let mut size = msg.len() - headers.message_start.min(msg.len());
        if matches!(
            item.kind,
            ItemKind::Entry(EntryKind::Message | EntryKind::Headless)
        ) {
            let quoted = item
                .quoted_lines
                .map_or_else(|| split::quoted_from_lines(msg), |n| n as usize);
            size -= quoted.min(size);
        }
        match malformed {
            Some(m) => totals.malformed[m.index()] += 1,
            None => totals.parsed += 1,
        }
        totals.bad_header_lines += u64::from(headers.bad_lines);

        hops.clear();
        hops.extend(
            headers
                .received
                .iter()
                .map(|v| classify::received::parse_received(v)),
        );
        totals.received_hops += hops.len() as u64;
        classify::hop_times(hops, &mut self.times);

        self.fill_fields(source, item, envelope, headers, hops, size, malformed);
        if self.message.received_at.is_none() {
            totals.no_receipt_time += 1;
        }
        self.recorded_pass_domains.clear();
        if let Some(ar) = headers.recorded_results() {
            let recorded = auth::results::parse(ar);
            self.recorded_pass_domains = recorded.dkim_pass_domains;
            let m = &mut self.message;
            for (field, value) in [
                (&mut m.ar_dkim, recorded.dkim),
                (&mut m.ar_spf, recorded.spf),
                (&mut m.ar_dmarc, recorded.dmarc),
            ] {
                if let Some(v) = value {
                    field.push_str(&v);
                }
            }
        }
        if let Some(verifier) = self.verifier {
            if headers.dkim_signatures.is_empty() {
                self.message.dkim = Some(MessageVerdict::None);
                self.message.dmarc_aligned = Some(false);
            } else {
                let unquote = matches!(item.kind, ItemKind::Entry(_) | ItemKind::Failed(_));
                // Blank lines the header walker tolerated before the first field are not part
                // of the message as signed.
                let mut start = headers.message_start.min(msg.len());
                while start < msg.len() && matches!(msg[start], b'\r' | b'\n') {
                    start += 1;
                }
                self.verify_dkim(verifier, &msg[start..], unquote, totals);
            }
            let verdict = self.message.dkim.unwrap_or(MessageVerdict::None);
            totals.dkim_messages[verdict.index()] += 1;
        }
        if !self.lossy.is_empty() {
            totals.lossy_messages += 1;
        }
        if self.opts.hops {
            self.describe_hops(hops);
        }
        if let Some(rules) = self.rules {
            let body = &msg[headers.body_start.min(msg.len())..];
            let judged = self.verifier.is_some();
            let recorded = std::mem::take(&mut self.recorded_pass_domains);
            facts::gather(
                facts::Input {
                    message: &self.message,
                    judged,
                    recorded_pass_domains: &recorded,
                    rules,
                    body,
                    headers,
                    hops,
                },
                &mut self.scratch,
                facts,
            );
            self.recorded_pass_domains = recorded;
            let landing = &mut self.message.landing_domains;
            for (i, d) in self.scratch.landing().iter().enumerate() {
                if i > 0 {
                    landing.push(' ');
                }
                landing.push_str(d);
            }
        }
        true
    }

    /// Verify the message's DKIM signatures: its verdict, passing domains, alignment and one
    /// [`crate::auth::SignatureVerdict`] per signature.
    fn verify_dkim(&mut self, verifier: &Verifier, msg: &[u8], unquote: bool, totals: &mut Totals) {
        let at = match verifier.policy().verify_at {
            VerifyAt::Receipt => self.message.received_at.unwrap_or(self.now),
            VerifyAt::Now => self.now,
            VerifyAt::Fixed(t) => t,
        };
        let verdicts = verifier.verify_stored(msg, unquote, at, &mut self.wire);
        let m = &mut self.message;
        let verdict = if verdicts.iter().any(|v| v.result == SigResult::Pass) {
            MessageVerdict::Signature(SigResult::Pass)
        } else {
            verdicts.first().map_or(MessageVerdict::None, |v| {
                MessageVerdict::Signature(v.result)
            })
        };
        m.dkim = Some(verdict);
        let mut domains: Vec<&str> = Vec::new();
        for v in verdicts.iter().filter(|v| v.result == SigResult::Pass) {
            if !domains.contains(&v.d.as_str()) {
                domains.push(&v.d);
            }
        }
        m.dkim_domains
            .push_str(&domains.join(" ").to_ascii_lowercase());
        let aligned = auth::dkim_aligned(&m.from_domain, &domains);
        m.dmarc_aligned = Some(aligned);
        totals.dkim_aligned += u64::from(aligned);
        for v in &verdicts {
            totals.add_signature(&v.d, v.result);
            if v.result == SigResult::NoKey {
                totals.missing_keys.insert(auth::key_name(&v.s, &v.d));
            }
        }
        m.signatures = verdicts;
    }

    /// Fill the message's header-derived fields.
    #[allow(clippy::too_many_arguments)]
    fn fill_fields(
        &mut self,
        source: &str,
        item: &Item,
        envelope: Option<&[u8]>,
        h: &Headers<'_>,
        hops: &[RawHop<'_>],
        size: usize,
        malformed: Option<Malformed>,
    ) {
        let m = &mut self.message;
        clear(m);
        let lossy = &mut self.lossy;
        m.source.push_str(source);
        m.entry_offset = item.offset;
        m.length = item.length;
        let (env_sender, env_date) = envelope.map(split_envelope).unwrap_or((None, None));
        let sent = h.date.and_then(date::parse_date);
        m.received_at = classify::receipt_from_hops(&self.times)
            .or_else(|| env_date.and_then(date::parse_date))
            .or(sent);
        m.date = sent;
        if let (Some(raw), None) = (h.date, sent) {
            // Kept as written (trimmed, unfolded), so a researcher can see what did not parse.
            let raw = String::from_utf8_lossy(raw);
            let mut words = raw.split_whitespace();
            if let Some(first) = words.next() {
                m.date_raw.push_str(first);
                for w in words {
                    m.date_raw.push(' ');
                    m.date_raw.push_str(w);
                }
            }
            if std::str::from_utf8(h.date.unwrap_or_default()).is_err() {
                lossy.push("date");
            }
        }
        if let Some(from) = h.from {
            if let Some(addr) = address::first_address(from) {
                if let Some(d) = address::domain_of(&addr) {
                    m.from_domain.push_str(d);
                    auth::push_organizational_domain(d, &mut m.from_org);
                }
                m.from_addr.push_str(&addr);
            }
            if std::str::from_utf8(from).is_err() {
                lossy.push("from");
            }
        }
        let envelope_from = h
            .return_path
            .and_then(address::return_path)
            .or_else(|| env_sender.map(|s| String::from_utf8_lossy(s).into_owned()));
        if let Some(e) = envelope_from {
            m.envelope_from
                .push_str(if e.is_empty() { "<>" } else { e.as_str() });
        }
        if let Some(s) = h.subject {
            let d = decode::decode_text(s);
            if d.lossy {
                lossy.push("subject");
            }
            m.subject.push_str(&d.text);
        }
        if let Some(id) = h.message_id {
            push_text(id, &mut m.message_id, "message_id", lossy);
        }
        m.recipients =
            h.to.iter()
                .chain(h.cc.iter())
                .map(|v| address::count_addresses(v))
                .sum::<usize>() as u64;
        m.client_ip = classify::client_ip(hops);
        m.origin_ip = classify::origin_ip(hops);
        m.hops = hops.len() as u64;
        classify::relay_path(hops, &mut m.relay_path);
        m.size = size as u64;
        m.malformed = malformed;
        for (i, sig) in h.dkim_signatures.iter().enumerate() {
            let headers::DkimTags { d, s, a } = headers::dkim_tags(sig);
            if i > 0 {
                m.dkim_signatures.push(' ');
            }
            for (j, part) in [d, s, a].into_iter().enumerate() {
                if j > 0 {
                    m.dkim_signatures.push(':');
                }
                if let Some(p) = part {
                    m.dkim_signatures.extend(
                        p.iter()
                            .filter(|b| b.is_ascii_graphic() && **b != b':')
                            .map(|&b| char::from(b)),
                    );
                }
            }
        }
        if let Some(ar) = h.recorded_results() {
            push_text(ar, &mut m.auth_results, "auth_results", lossy);
        }
        tenant::sending_tenant(h, &mut m.tenant_id, &mut m.tenant_domain, lossy);
        if let Some(v) = h.x_mailer {
            let d = decode::decode_text(v);
            if d.lossy {
                lossy.push("x_mailer");
            }
            m.x_mailer.push_str(&d.text);
        }
        if let Some(v) = h.list_unsubscribe {
            push_text(v, &mut m.list_unsubscribe, "list_unsubscribe", lossy);
        }
        if let Some(v) = h.content_type {
            let media = v.split(|&b| b == b';').next().unwrap_or(v);
            push_text(media, &mut m.content_type, "content_type", lossy);
            m.content_type.make_ascii_lowercase();
        }
        for (i, name) in lossy.iter().enumerate() {
            if i > 0 {
                m.lossy_fields.push(';');
            }
            m.lossy_fields.push_str(name);
        }
    }

    /// Each Received hop of the message, earliest last (as the header lists them).
    fn describe_hops(&mut self, hops: &[RawHop<'_>]) {
        use crate::classify::relay::{receiver_class, sender_class};
        let m = &mut self.message;
        m.received.clear();
        for (hop, time) in hops.iter().zip(&self.times) {
            let host = |part: Option<&[u8]>| {
                part.map(|p| {
                    p.iter()
                        .map(|&b| {
                            if b.is_ascii_graphic() {
                                char::from(b)
                            } else {
                                '?'
                            }
                        })
                        .collect::<String>()
                })
                .unwrap_or_default()
            };
            m.received.push(Hop {
                from_host: host(hop.from_host),
                from_rdns: host(hop.from_rdns),
                ip: hop.ip,
                by_host: host(hop.by_host),
                protocol: host(hop.with),
                timestamp: *time,
                from_class: self.rules.map(|r| sender_class(r, hop)),
                by_class: self.rules.map(|r| receiver_class(r, hop)),
            });
        }
    }
}

/// Empty every field of a message, keeping the text buffers' memory.
fn clear(m: &mut Message) {
    for text in [
        &mut m.source,
        &mut m.from_addr,
        &mut m.from_domain,
        &mut m.from_org,
        &mut m.landing_domains,
        &mut m.envelope_from,
        &mut m.subject,
        &mut m.message_id,
        &mut m.relay_path,
        &mut m.dkim_signatures,
        &mut m.auth_results,
        &mut m.date_raw,
        &mut m.tenant_id,
        &mut m.tenant_domain,
        &mut m.x_mailer,
        &mut m.list_unsubscribe,
        &mut m.content_type,
        &mut m.lossy_fields,
        &mut m.dkim_domains,
        &mut m.ar_dkim,
        &mut m.ar_spf,
        &mut m.ar_dmarc,
    ] {
        text.clear();
    }
    m.received_at = None;
    m.date = None;
    m.client_ip = None;
    m.origin_ip = None;
    m.malformed = None;
    m.dkim = None;
    m.dmarc_aligned = None;
    m.signatures.clear();
    m.received.clear();
}

/// An item's envelope line (after `From `), its message bytes, and the reason it is malformed
/// when its kind already says so.
fn entry_parts(bytes: &[u8], kind: ItemKind) -> (Option<&[u8]>, &[u8], Option<Malformed>) {
    let whole = |kind| Entry {
        start: 0,
        end: bytes.len(),
        kind,
        quoted_lines: None,
    };
    match kind {
        ItemKind::Failed(reason) => {
            let (env, _, msg) = if bytes.is_empty() {
                (&b""[..], 0, &b""[..])
            } else {
                split::entry_message(bytes, &whole(EntryKind::Message))
            };
            let env = env.strip_prefix(b"From ").unwrap_or(env);
            (Some(env), msg, Some(reason))
        }
        ItemKind::Entry(EntryKind::Preamble) => (None, bytes, Some(Malformed::MboxPreamble)),
        ItemKind::Entry(EntryKind::CutStart) => (None, bytes, Some(Malformed::Truncated)),
        ItemKind::Entry(EntryKind::TooLarge) => (None, &b""[..], Some(Malformed::TooLarge)),
        ItemKind::Entry(EntryKind::Headless) => (
            None,
            split::entry_message(bytes, &whole(EntryKind::Headless)).2,
            None,
        ),
        ItemKind::Entry(kind) => {
            let (env, _, msg) = split::entry_message(bytes, &whole(kind));
            let env = env.strip_prefix(b"From ").unwrap_or(env);
            (Some(env), msg, None)
        }
        ItemKind::Whole => (None, bytes, None),
    }
}

/// The envelope line after `From `: (sender, date text).
fn split_envelope(env: &[u8]) -> (Option<&[u8]>, Option<&[u8]>) {
    let env = env.trim_ascii_start();
    let end = memchr::memchr2(b' ', b'\t', env).unwrap_or(env.len());
    let sender = &env[..end];
    let rest = env[end..].trim_ascii();
    (
        (!sender.is_empty()).then_some(sender),
        (!rest.is_empty()).then_some(rest),
    )
}

/// An unfolded, trimmed, structured value (Message-ID, tenant, ...), lossy if not UTF-8;
/// control characters become spaces.
fn push_text(raw: &[u8], out: &mut String, name: &'static str, lossy: &mut Vec<&'static str>) {
    let unfolded = decode::unfold(raw);
    let text = unfolded.trim_ascii();
    let start = out.len();
    match std::str::from_utf8(text) {
        Ok(s) => out.push_str(s),
        Err(_) => {
            lossy.push(name);
            out.push_str(&String::from_utf8_lossy(text));
        }
    }
    spaces_for_controls(out, start);
}

/// Replace ASCII control characters from byte `start` on with spaces.
fn spaces_for_controls(text: &mut String, start: usize) {
    // Without an early exit, so the check compiles to a vectorized loop (control characters
    // are rare).
    let has_control = text.as_bytes()[start..]
        .iter()
        .fold(false, |seen, &b| seen | (b < 0x20) | (b == 0x7f));
    if !has_control {
        return;
    }
    let replaced: String = text[start..]
        .chars()
        .map(|c| if c < ' ' || c == '\x7f' { ' ' } else { c })
        .collect();
    text.truncate(start);
    text.push_str(&replaced);
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn read(msg: &[u8], kind: ItemKind) -> Message {
        let item = Item {
            offset: 0,
            length: msg.len() as u64,
            start: 0,
            end: msg.len(),
            kind,
            quoted_lines: None,
        };
        let mut reader = Reader::new(ReadOptions::default(), None, None, 0);
        let (mut totals, mut facts) = (Totals::default(), Facts::default());
        reader.read("src", msg, &item, &mut totals, &mut facts);
        reader.message
    }

    #[test]
    fn arc_authentication_results_stand_in_for_a_missing_authentication_results() {
        let m = b"ARC-Authentication-Results: i=1; mx.trap.example;\r\n dkim=pass header.d=brand.example; spf=pass smtp.mailfrom=brand.example; dmarc=pass\r\nFrom: a@brand.example\r\nSubject: s\r\n\r\nbody\r\n";
        let r = read(m, ItemKind::Whole);
        assert_eq!(r.ar_dkim, "pass");
        assert_eq!(r.ar_dmarc, "pass");
        assert!(r.auth_results.starts_with("i=1; mx.trap.example;"), "{r:?}");
        // An Authentication-Results field, when there is one, is what counts.
        let m = b"Authentication-Results: mx.trap.example; dkim=fail header.d=brand.example\r\nARC-Authentication-Results: i=1; mx.trap.example; dkim=pass\r\nFrom: a@brand.example\r\n\r\nbody\r\n";
        assert_eq!(read(m, ItemKind::Whole).ar_dkim, "fail");
    }

    #[test]
    fn mbox_entry_fields() {
        let m = b"From a@b.example Mon May  6 00:10:11 2024\nFrom: \"A\" <a@B.Example>\nTo: x@y, z@w\nSubject: =?utf-8?q?caf=C3=A9?=\nDate: Mon, 06 May 2024 02:04:47 +0200\nMessage-ID: <m1@b>\n\nbody\n\n";
        let r = read(m, ItemKind::Entry(EntryKind::Message));
        assert_eq!(r.received_at, Some(1_714_954_211));
        assert_eq!(r.date, Some(1_714_953_887));
        assert_eq!(r.from_addr, "a@b.example");
        assert_eq!(r.from_domain, "b.example");
        assert_eq!(r.envelope_from, "a@b.example");
        assert_eq!(r.subject, "café");
        assert_eq!(r.message_id, "<m1@b>");
        assert_eq!(r.recipients, 2);
    }

    #[test]
    fn malformed_messages_say_why() {
        assert_eq!(
            read(b"\0\0\0junk", ItemKind::Whole).malformed,
            Some(Malformed::BinaryJunk)
        );
        assert_eq!(
            read(b"", ItemKind::Failed(Malformed::TooLarge)).malformed,
            Some(Malformed::TooLarge)
        );
    }

    #[test]
    fn control_characters_become_spaces_and_the_rest_is_kept() {
        let mut s = String::from("keep\t");
        s.push_str("a\u{1}b\u{7f}é");
        spaces_for_controls(&mut s, 5);
        assert_eq!(s, "keep\ta b é");
    }
}
