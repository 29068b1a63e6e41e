//! Rows: one message's facts as CSV rows of `messages.csv` and `received.csv`.
//!
//! Takes one item of a work unit (its bytes, where it came from) and gives the rows, appending
//! them to the unit's CSV buffers and its counts. Headers are parsed here (stage 3), the Received
//! chain classified (stage 5), and only the fields written out are decoded.

use std::io::Write as _;
use std::net::IpAddr;

use crate::aggregate::Totals;
use crate::auth::{self, SigResult, Verifier, VerifyAt};
use crate::campaign::MessageFacts;
use crate::classify::{self, received::Hop, rules::Rules};
use crate::headers::{self, HeaderLimits, Headers, Malformed, address, date, decode};
use crate::output::is_formula_like;
use crate::split::{self, Entry, EntryKind};
use crate::work::{Item, ItemKind};

/// Indices into [`MESSAGE_COLUMNS`] of the cells the campaign stage reads back.
mod col {
    pub const FROM: usize = 5;
    pub const FROM_DOMAIN: usize = 6;
    pub const SUBJECT: usize = 8;
    pub const TENANT_ID: usize = 19;
    pub const TENANT_DOMAIN: usize = 20;
    pub const DKIM: usize = 25;
    pub const DMARC_ALIGNED: usize = 27;
    pub const AR_DKIM: usize = 28;
    pub const AR_DMARC: usize = 30;
}

/// Bytes of a subject kept as a campaign's example (cut at a character boundary).
const MAX_EXAMPLE_SUBJECT: usize = 2048;

/// Columns of `messages.csv`, in order.
pub const MESSAGE_COLUMNS: [&str; 34] = [
    "source",
    "offset",
    "length",
    "received_at",
    "date",
    "from",
    "from_domain",
    "envelope_from",
    "subject",
    "message_id",
    "recipients",
    "client_ip",
    "origin_ip",
    "hops",
    "relay_path",
    "size",
    "malformed",
    "dkim_signatures",
    "auth_results",
    "tenant_id",
    "tenant_domain",
    "x_mailer",
    "list_unsubscribe",
    "content_type",
    "lossy_fields",
    "dkim",
    "dkim_domains",
    "dmarc_aligned",
    "ar_dkim",
    "ar_spf",
    "ar_dmarc",
    "relay_abuse",
    "relay_abuse_reasons",
    "campaign",
];

/// Cells a worker fills; the last three columns are decided over the whole corpus
/// ([`crate::campaign`]) and appended to each row afterwards.
pub const WORKER_COLUMNS: usize = 31;

/// Columns of `signatures.csv`, in order.
pub const SIGNATURE_COLUMNS: [&str; 12] = [
    "source",
    "offset",
    "message_id",
    "index",
    "d",
    "s",
    "a",
    "c",
    "l",
    "result",
    "detail",
    "key_bits",
];

/// Columns of `received.csv`, in order.
pub const RECEIVED_COLUMNS: [&str; 11] = [
    "source",
    "offset",
    "hop",
    "from_host",
    "from_rdns",
    "ip",
    "by_host",
    "with",
    "timestamp",
    "from_class",
    "by_class",
];

/// Per-unit output: CSV bytes for each file and the unit's counts.
#[derive(Default)]
pub struct UnitOutput {
    pub messages_csv: Vec<u8>,
    pub received_csv: Vec<u8>,
    pub signatures_csv: Vec<u8>,
    pub totals: Totals,
    /// One per message row, when campaigns are on.
    pub facts: Vec<MessageFacts>,
    /// Evidence keys of the facts (each fact names its slice).
    pub fact_keys: Vec<u64>,
    /// From-domain texts of the facts.
    pub fact_text: Vec<u8>,
}

/// Settings that shape rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowOptions {
    /// Write cells as they are, without neutralising spreadsheet formulas.
    pub raw_cells: bool,
    /// Also write `received.csv`, one row per Received hop.
    pub received_rows: bool,
    /// Write no rows: only collect the DKIM key names the signatures need.
    pub key_names_only: bool,
    pub header_limits: HeaderLimits,
}

/// Builds rows for the items of one unit; keeps scratch buffers between messages.
pub struct RowWriter<'o> {
    opts: RowOptions,
    verifier: Option<&'o Verifier>,
    /// Hop classification rules; `None` when campaigns and relay abuse are off.
    rules: Option<&'o Rules>,
    landing: Vec<String>,
    decoded: Vec<u8>,
    /// Verification time for `VerifyAt::Now`: the start of the run, the same for every message.
    now: i64,
    wire: Vec<u8>,
    out: &'o mut UnitOutput,
    cells: Vec<Vec<u8>>,
    lossy: Vec<&'static str>,
    /// Timestamp of each Received hop of the current message, topmost first.
    times: Vec<Option<i64>>,
    /// `source,offset,` of the current message's received.csv rows.
    hop_prefix: Vec<u8>,
    /// Domains of the current message's recorded `dkim=pass` statements (for alignment).
    recorded_pass_domains: Vec<String>,
}

/// One cell being filled; `text` cells get formula neutralisation, numbers do not.
impl<'o> RowWriter<'o> {
    pub fn new(opts: RowOptions, out: &'o mut UnitOutput) -> Self {
        Self::with_verifier(opts, None, 0, out)
    }

    /// A row writer that also verifies DKIM signatures; `now` is the run's start time.
    pub fn with_verifier(
        opts: RowOptions,
        verifier: Option<&'o Verifier>,
        now: i64,
        out: &'o mut UnitOutput,
    ) -> Self {
        RowWriter {
            opts,
            verifier,
            rules: None,
            landing: Vec::new(),
            decoded: Vec::new(),
            now,
            wire: Vec::new(),
            out,
            cells: vec![Vec::new(); MESSAGE_COLUMNS.len()],
            lossy: Vec::new(),
            times: Vec::new(),
            hop_prefix: Vec::new(),
            recorded_pass_domains: Vec::new(),
        }
    }

    /// Also gather campaign and relay-abuse facts, classifying hops with `rules`.
    pub fn with_rules(mut self, rules: Option<&'o Rules>) -> Self {
        self.rules = rules;
        self
    }

    /// Write the rows for one item of a unit whose bytes are `data`.
    pub fn item(&mut self, source: &str, data: &[u8], item: &Item) {
        let mut headers = Headers::default();
        let mut hops = Vec::new();
        self.item_with(source, data, item, &mut headers, &mut hops);
    }

    /// As [`RowWriter::item`], reusing the caller's header and hop buffers across items.
    pub fn item_with<'a>(
        &mut self,
        source: &str,
        data: &'a [u8],
        item: &Item,
        headers: &mut Headers<'a>,
        hops: &mut Vec<Hop<'a>>,
    ) {
        for c in &mut self.cells {
            c.clear();
        }
        self.lossy.clear();
        let t = &mut self.out.totals;
        t.messages += 1;
        t.message_bytes += item.length;
        let bytes = &data[item.start..item.end];
        let (envelope, msg, forced): (Option<&[u8]>, &[u8], Option<Malformed>) = match item.kind {
            ItemKind::Failed(reason) => {
                let entry = Entry {
                    start: 0,
                    end: bytes.len(),
                    kind: EntryKind::Message,
                    quoted_lines: None,
                };
                let (env, _, msg) = if bytes.is_empty() {
                    (&b""[..], 0, &b""[..])
                } else {
                    split::entry_message(bytes, &entry)
                };
                let env = env.strip_prefix(b"From ").unwrap_or(env);
                (Some(env), msg, Some(reason))
            }
            ItemKind::Entry(EntryKind::Preamble) => (None, bytes, Some(Malformed::MboxPreamble)),
            ItemKind::Entry(EntryKind::CutStart) => (None, bytes, Some(Malformed::Truncated)),
            ItemKind::Entry(EntryKind::TooLarge) => (None, &b""[..], Some(Malformed::TooLarge)),
            ItemKind::Entry(EntryKind::Headless) => {
                let entry = Entry {
                    start: 0,
                    end: bytes.len(),
                    kind: EntryKind::Headless,
                    quoted_lines: None,
                };
                (None, split::entry_message(bytes, &entry).2, None)
            }
            ItemKind::Entry(kind) => {
                let entry = Entry {
                    start: 0,
                    end: bytes.len(),
                    kind,
                    quoted_lines: None,
                };
                let (env, _, msg) = split::entry_message(bytes, &entry);
                let env = env.strip_prefix(b"From ").unwrap_or(env);
                (Some(env), msg, None)
            }
            ItemKind::Whole => (None, bytes, None),
        };
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
                    let name = format!(
                        "{}._domainkey.{}.",
                        String::from_utf8_lossy(s),
                        String::from_utf8_lossy(d)
                    );
                    self.out.totals.key_names.insert(name.to_ascii_lowercase());
                }
            }
            return;
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
            Some(m) => self.out.totals.malformed[m.index()] += 1,
            None => self.out.totals.parsed += 1,
        }
        self.out.totals.bad_header_lines += u64::from(headers.bad_lines);

        hops.clear();
        hops.extend(
            headers
                .received
                .iter()
                .map(|v| classify::received::parse_received(v)),
        );
        self.out.totals.received_hops += hops.len() as u64;
        classify::hop_times(hops, &mut self.times);

        let received_at = self.fill_cells(source, item, envelope, headers, hops, size, malformed);
        self.recorded_pass_domains.clear();
        if let Some(ar) = headers.recorded_results() {
            let recorded = auth::results::parse(ar);
            self.recorded_pass_domains = recorded.dkim_pass_domains;
            for (cell, value) in [
                (28, recorded.dkim),
                (29, recorded.spf),
                (30, recorded.dmarc),
            ] {
                if let Some(v) = value {
                    self.cells[cell].extend_from_slice(v.as_bytes());
                }
            }
        }
        if let Some(verifier) = self.verifier
            && !headers.dkim_signatures.is_empty()
        {
            let unquote = matches!(item.kind, ItemKind::Entry(_) | ItemKind::Failed(_));
            // Blank lines the header walker tolerated before the first field are not part of
            // the message as signed.
            let mut start = headers.message_start.min(msg.len());
            while start < msg.len() && matches!(msg[start], b'\r' | b'\n') {
                start += 1;
            }
            self.verify_dkim(
                verifier,
                source,
                item.offset,
                &msg[start..],
                unquote,
                received_at,
            );
        } else if self.verifier.is_some() {
            self.cells[25].extend_from_slice(b"none");
            self.cells[27].extend_from_slice(b"false");
            self.out.totals.dkim_messages[SigResultOrNone::None.index()] += 1;
        }
        if !self.lossy.is_empty() {
            self.out.totals.lossy_messages += 1;
        }
        let row_start = self.out.messages_csv.len();
        self.write_message_row();
        if let Some(rules) = self.rules {
            let body = &msg[headers.body_start.min(msg.len())..];
            let row_len = (self.out.messages_csv.len() - row_start) as u32;
            self.campaign_facts(rules, body, headers, hops, received_at, row_len);
        }
        if self.opts.received_rows {
            self.write_hop_rows(source, item.offset, hops);
        }
    }

    /// Verify the message's DKIM signatures: fills the `dkim` and `dkim_domains` cells and writes
    /// one signatures.csv row per signature.
    fn verify_dkim(
        &mut self,
        verifier: &Verifier,
        source: &str,
        offset: u64,
        msg: &[u8],
        unquote: bool,
        received_at: Option<i64>,
    ) {
        let at = match verifier.policy().verify_at {
            VerifyAt::Receipt => received_at.unwrap_or(self.now),
            VerifyAt::Now => self.now,
            VerifyAt::Fixed(t) => t,
        };
        let mut wire_buf = std::mem::take(&mut self.wire);
        let verdicts = verifier.verify_stored(msg, unquote, at, &mut wire_buf);
        self.wire = wire_buf;
        let verdict = if verdicts.iter().any(|v| v.result == SigResult::Pass) {
            SigResultOrNone::Some(SigResult::Pass)
        } else {
            verdicts
                .first()
                .map_or(SigResultOrNone::None, |v| SigResultOrNone::Some(v.result))
        };
        self.out.totals.dkim_messages[verdict.index()] += 1;
        self.cells[25].extend_from_slice(verdict.as_str().as_bytes());
        let mut domains: Vec<&str> = Vec::new();
        for v in verdicts.iter().filter(|v| v.result == SigResult::Pass) {
            if !domains.contains(&v.d.as_str()) {
                domains.push(&v.d);
            }
        }
        self.cells[26].extend_from_slice(domains.join(" ").to_ascii_lowercase().as_bytes());
        let from_domain = String::from_utf8_lossy(&self.cells[6]).into_owned();
        let aligned = auth::dkim_aligned(&from_domain, &domains);
        self.cells[27].extend_from_slice(if aligned { b"true" } else { b"false" });
        if aligned {
            self.out.totals.dkim_aligned += 1;
        }
        let raw = self.opts.raw_cells;
        let out = &mut self.out.signatures_csv;
        for v in &verdicts {
            self.out.totals.signatures[v.result.index()] += 1;
            if v.result == SigResult::NoKey {
                let name = format!("{}._domainkey.{}.", v.s, v.d).to_ascii_lowercase();
                self.out.totals.missing_keys.insert(name);
            }
            for (i, cell) in [
                source.as_bytes(),
                &[],
                &self.cells[9],
                &[],
                v.d.as_bytes(),
                v.s.as_bytes(),
                v.a.as_bytes(),
                v.c.as_bytes(),
            ]
            .iter()
            .enumerate()
            {
                if i > 0 {
                    out.push(b',');
                }
                match i {
                    1 => push_u64(out, offset),
                    3 => push_u64(out, v.index as u64),
                    _ => write_text_cell(out, cell, raw),
                }
            }
            out.push(b',');
            if let Some(l) = v.l {
                push_u64(out, l);
            }
            out.push(b',');
            out.extend_from_slice(v.result.as_str().as_bytes());
            out.push(b',');
            write_text_cell(out, v.detail.as_bytes(), raw);
            out.push(b',');
            if let Some(bits) = v.key_bits {
                push_u64(out, bits as u64);
            }
            out.push(b'\n');
        }
    }

    /// Fill the message's cells; returns its receipt time.
    #[allow(clippy::too_many_arguments)]
    fn fill_cells(
        &mut self,
        source: &str,
        item: &Item,
        envelope: Option<&[u8]>,
        h: &Headers<'_>,
        hops: &[Hop<'_>],
        size: usize,
        malformed: Option<Malformed>,
    ) -> Option<i64> {
        let c = &mut self.cells;
        let lossy = &mut self.lossy;
        c[0].extend_from_slice(source.as_bytes());
        push_u64(&mut c[1], item.offset);
        push_u64(&mut c[2], item.length);
        let (env_sender, env_date) = envelope.map(split_envelope).unwrap_or((None, None));
        let sent = h.date.and_then(date::parse_date);
        let received_at = classify::receipt_from_hops(&self.times)
            .or_else(|| env_date.and_then(date::parse_date))
            .or(sent);
        match received_at {
            Some(ts) => date::write_rfc3339(ts, &mut c[3]),
            None => self.out.totals.no_receipt_time += 1,
        }
        if let Some(ts) = sent {
            date::write_rfc3339(ts, &mut c[4]);
        }
        if let Some(from) = h.from {
            if let Some(addr) = address::first_address(from) {
                if let Some(d) = address::domain_of(&addr) {
                    c[6].extend_from_slice(d.as_bytes());
                }
                c[5].extend_from_slice(addr.as_bytes());
            }
            note_lossy(from, "from", lossy);
        }
        let envelope_from = h
            .return_path
            .and_then(address::return_path)
            .or_else(|| env_sender.map(|s| String::from_utf8_lossy(s).into_owned()));
        if let Some(e) = envelope_from {
            if e.is_empty() {
                c[7].extend_from_slice(b"<>");
            } else {
                c[7].extend_from_slice(e.as_bytes());
            }
        }
        if let Some(s) = h.subject {
            let d = decode::decode_text(s);
            if d.lossy {
                lossy.push("subject");
            }
            c[8].extend_from_slice(d.text.as_bytes());
        }
        if let Some(id) = h.message_id {
            push_text(id, &mut c[9], "message_id", lossy);
        }
        let recipients: usize =
            h.to.iter()
                .chain(h.cc.iter())
                .map(|v| address::count_addresses(v))
                .sum();
        push_u64(&mut c[10], recipients as u64);
        push_ip(classify::client_ip(hops), &mut c[11]);
        push_ip(classify::origin_ip(hops), &mut c[12]);
        push_u64(&mut c[13], hops.len() as u64);
        classify::write_relay_path(hops, &mut c[14]);
        push_u64(&mut c[15], size as u64);
        if let Some(m) = malformed {
            c[16].extend_from_slice(m.as_str().as_bytes());
        }
        for (i, sig) in h.dkim_signatures.iter().enumerate() {
            let headers::DkimTags { d, s, a } = headers::dkim_tags(sig);
            if i > 0 {
                c[17].push(b' ');
            }
            for (j, part) in [d, s, a].into_iter().enumerate() {
                if j > 0 {
                    c[17].push(b':');
                }
                if let Some(p) = part {
                    c[17].extend(p.iter().filter(|b| b.is_ascii_graphic() && **b != b':'));
                }
            }
        }
        if let Some(ar) = h.recorded_results() {
            push_text(ar, &mut c[18], "auth_results", lossy);
        }
        let (before, after) = c.split_at_mut(20);
        write_sending_tenant(h, &mut before[19], &mut after[0], lossy);
        if let Some(v) = h.x_mailer {
            let d = decode::decode_text(v);
            if d.lossy {
                lossy.push("x_mailer");
            }
            c[21].extend_from_slice(d.text.as_bytes());
        }
        if let Some(v) = h.list_unsubscribe {
            push_text(v, &mut c[22], "list_unsubscribe", lossy);
        }
        if let Some(v) = h.content_type {
            let media = v.split(|&b| b == b';').next().unwrap_or(v);
            push_text(media, &mut c[23], "content_type", lossy);
            c[23].make_ascii_lowercase();
        }
        for (i, name) in lossy.iter().enumerate() {
            if i > 0 {
                c[24].push(b';');
            }
            c[24].extend_from_slice(name.as_bytes());
        }
        received_at
    }

    fn write_message_row(&mut self) {
        const NUMERIC: [usize; 5] = [1, 2, 10, 13, 15];
        let raw = self.opts.raw_cells;
        let out = &mut self.out.messages_csv;
        for (i, cell) in self.cells[..WORKER_COLUMNS].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if NUMERIC.contains(&i) {
                write_cell(out, cell, false);
            } else {
                write_text_cell(out, cell, raw);
            }
        }
        if self.rules.is_none() {
            // Campaigns off: the corpus-wide columns stay empty.
            out.extend_from_slice(b",,,");
        }
        out.push(b'\n');
    }

    /// The message's facts for the corpus-wide stage: relay evidence, evidence keys, hashed
    /// values to count. Reads the cells already filled for the row.
    fn campaign_facts(
        &mut self,
        rules: &Rules,
        body: &[u8],
        h: &Headers<'_>,
        hops: &[Hop<'_>],
        received_at: Option<i64>,
        row_len: u32,
    ) {
        use crate::campaign::DkimClass;
        use crate::classify::evidence::{self, key};
        let cell = |c: &Vec<Vec<u8>>, i: usize| String::from_utf8_lossy(&c[i]).into_owned();
        let from_domain = cell(&self.cells, col::FROM_DOMAIN).to_ascii_lowercase();
        let from_org = if from_domain.is_empty() {
            String::new()
        } else {
            auth::organizational_domain(&from_domain)
        };
        // Our own verdict when we have one; otherwise what the trap recorded at receipt.
        let ours = &self.cells[col::DKIM];
        let judged =
            self.verifier.is_some() && !matches!(ours.as_slice(), b"" | b"no-key" | b"temperror");
        let (dkim, aligned, recorded) = if judged {
            let class = match ours.as_slice() {
                b"pass" => DkimClass::Pass,
                b"none" => DkimClass::None,
                _ => DkimClass::Fail,
            };
            (class, self.cells[col::DMARC_ALIGNED] == b"true", false)
        } else {
            let ar_dkim = self.cells[col::AR_DKIM].as_slice();
            let class = match ar_dkim {
                b"pass" => DkimClass::Pass,
                b"" | b"none" => DkimClass::None,
                _ => DkimClass::Fail,
            };
            let recorded = auth::results::Recorded {
                dkim: (ar_dkim == b"pass").then(|| "pass".to_string()),
                dmarc: (self.cells[col::AR_DMARC] == b"pass").then(|| "pass".to_string()),
                spf: None,
                dkim_pass_domains: std::mem::take(&mut self.recorded_pass_domains),
            };
            let aligned = recorded.aligned_dkim_pass(&from_org, auth::organizational_domain);
            self.recorded_pass_domains = recorded.dkim_pass_domains;
            (class, aligned, true)
        };
        let tenant_domain = (!self.cells[col::TENANT_DOMAIN].is_empty())
            .then(|| cell(&self.cells, col::TENANT_DOMAIN));
        let relay = crate::classify::relay::evidence(
            rules,
            hops,
            tenant_domain.as_deref(),
            &from_org,
            aligned,
            recorded,
        );
        let tenant_text = cell(&self.cells, col::TENANT_ID)
            .trim()
            .trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase();
        let tenant = if tenant_text.is_empty() {
            0
        } else {
            key(b'T', tenant_text.as_bytes())
        };

        let keys_start = self.out.fact_keys.len();
        let keys = &mut self.out.fact_keys;
        let list = h
            .list_id
            .and_then(evidence::list_identity)
            .or_else(|| h.mailing_list.and_then(evidence::mailing_list_identity));
        if let Some(list) = list {
            // Redistributed by a mailing list: the list is what sent it to the trap, and the
            // links in it are the list's footer or the poster's discussion, not a campaign's.
            keys.push(key(b'I', list.as_bytes()));
        } else {
            evidence::body_landing_domains(
                body,
                h.content_type,
                h.content_transfer_encoding,
                &from_org,
                &mut self.decoded,
                &mut self.landing,
            );
            if let Some(v) = h.list_unsubscribe {
                evidence::add_landing_domains(v, &from_org, &mut self.landing);
            }
            for d in &self.landing {
                keys.push(key(b'L', d.as_bytes()));
            }
        }
        if tenant != 0 {
            keys.push(tenant);
        }
        let origin_hop = hops
            .iter()
            .rev()
            .find(|h| h.ip.as_ref().is_some_and(classify::received::is_public));
        let origin = origin_hop.and_then(|h| h.ip);
        let mut origin_net = 0;
        let mut origin_keyed = false;
        if let (Some(ip), Some(hop)) = (origin, origin_hop) {
            origin_net = evidence::network_key(&ip);
            // Shared infrastructure (Microsoft, gateways, mailbox providers), known by its
            // address or by the name it gave, links nothing; nor does an address that is never
            // routed (a hand-written or forged line).
            // The reverse-DNS name when the receiver recorded one, else the name the sender gave.
            let named_shared = || {
                hop.from_rdns
                    .or(hop.from_host)
                    .is_some_and(|name| rules.host(name).is_some())
            };
            if rules.ip(&ip).is_none() && !evidence::never_routed(&ip) && !named_shared() {
                keys.push(origin_net);
                origin_keyed = true;
            }
        }
        // Whether the message left through its sender's own provider: the origin host is named
        // under the From organization (reverse DNS, else HELO) and so is the server that took it
        // from there — handled inside the sender's organization before it reached the Internet
        // (a webmail, an ISP's smarthost, a company's gateway). Read with the From addresses: a
        // webmail's users each write a little, a company repeats a few addresses.
        let org = from_org.as_bytes();
        let under_from_org = |name: Option<&[u8]>| {
            name.is_some_and(|n| {
                let n = n.strip_suffix(b".").unwrap_or(n);
                n.len() >= org.len()
                    && n[n.len() - org.len()..].eq_ignore_ascii_case(org)
                    && (n.len() == org.len() || n[n.len() - org.len() - 1] == b'.')
            })
        };
        let origin_is_senders = origin_keyed
            && !org.is_empty()
            && origin_hop.is_some_and(|h| {
                under_from_org(h.by_host) && under_from_org(h.from_rdns.or(h.from_host))
            });
        let from_address = &self.cells[col::FROM];
        // Only read for mail that left through its sender's own provider.
        let sender = if from_address.is_empty() || !origin_is_senders {
            0
        } else {
            evidence::key_ascii_lowercase(b'S', from_address)
        };
        let keys_len = (keys.len() - keys_start).min(255);
        keys.truncate(keys_start + keys_len);
        let recipient = h.to.first().map_or(0, |v| recipient_key(v));
        let text_start = self.out.fact_text.len();
        let from_bytes = &from_domain.as_bytes()[..from_domain.len().min(1024)];
        self.out.fact_text.extend_from_slice(from_bytes);
        // The subject cell as written (a campaign's example subject is its first message's);
        // cut at a character boundary.
        let subject = &self.cells[col::SUBJECT];
        let mut subject_len = subject.len().min(MAX_EXAMPLE_SUBJECT);
        while subject_len < subject.len() && subject_len > 0 && subject[subject_len] & 0xC0 == 0x80
        {
            subject_len -= 1;
        }
        let subject_start = self.out.fact_text.len();
        self.out
            .fact_text
            .extend_from_slice(&subject[..subject_len]);
        self.out.facts.push(MessageFacts {
            row_len,
            at: received_at.unwrap_or(i64::MIN),
            dkim,
            aligned_pass: aligned,
            relay,
            brand: if from_org.is_empty() {
                0
            } else {
                key(b'B', from_org.as_bytes())
            },
            tenant,
            from_domain: if from_domain.is_empty() {
                0
            } else {
                key(b'F', from_domain.as_bytes())
            },
            origin_ip: origin.as_ref().map_or(0, evidence::address_key),
            origin_net,
            recipient,
            sender,
            origin_is_senders,
            keys: (keys_start as u32, keys_len as u8),
            from_text: (text_start as u32, from_bytes.len() as u16),
            subject_text: (subject_start as u32, subject_len as u16),
        });
    }

    fn write_hop_rows(&mut self, source: &str, offset: u64, hops: &[Hop<'_>]) {
        let raw = self.opts.raw_cells;
        let n = hops.len();
        // `source,offset,` is the same for every hop of the message: build it once.
        let prefix = &mut self.hop_prefix;
        prefix.clear();
        write_text_cell(prefix, source.as_bytes(), raw);
        prefix.push(b',');
        push_u64(prefix, offset);
        prefix.push(b',');
        let out = &mut self.out.received_csv;
        for (k, hop) in hops.iter().rev().enumerate() {
            out.extend_from_slice(prefix);
            push_u64(out, k as u64 + 1);
            for part in [hop.from_host, hop.from_rdns] {
                out.push(b',');
                push_host_cell(out, part, raw);
            }
            out.push(b',');
            push_ip(hop.ip, out);
            for part in [hop.by_host, hop.with] {
                out.push(b',');
                push_host_cell(out, part, raw);
            }
            out.push(b',');
            if let Some(ts) = self.times[n - 1 - k] {
                date::write_rfc3339(ts, out);
            }
            if let Some(rules) = self.rules {
                use crate::classify::relay::{receiver_class, sender_class};
                out.push(b',');
                out.extend_from_slice(sender_class(rules, hop).as_str().as_bytes());
                out.push(b',');
                out.extend_from_slice(receiver_class(rules, hop).as_str().as_bytes());
            } else {
                out.extend_from_slice(b",,");
            }
            out.push(b'\n');
        }
    }
}

/// The key of a To field's first address (`R`), for distinct recipient counts. The common
/// field (one address, bare or in angle brackets, no quotes, comments or groups) is read
/// directly; anything else goes through the full address parser.
fn recipient_key(value: &[u8]) -> u64 {
    use crate::classify::evidence::key;
    let simple = !value
        .iter()
        .any(|&b| matches!(b, b'"' | b'(' | b',' | b';' | b':' | b'\\'))
        && memchr::memchr_iter(b'@', value).count() == 1;
    if simple {
        let addr = match memchr::memchr(b'<', value) {
            Some(open) => value[open + 1..]
                .iter()
                .position(|&b| b == b'>')
                .map(|close| &value[open + 1..open + 1 + close]),
            None => Some(value),
        };
        if let Some(addr) = addr.map(<[u8]>::trim_ascii)
            && !addr.is_empty()
            && addr.len() <= 256
            && !addr.iter().any(u8::is_ascii_whitespace)
        {
            let mut buf = [0u8; 256];
            let lower = &mut buf[..addr.len()];
            lower.copy_from_slice(addr);
            lower.make_ascii_lowercase();
            return key(b'R', lower);
        }
    }
    address::first_address(value).map_or(0, |a| key(b'R', a.to_ascii_lowercase().as_bytes()))
}

/// A host name or protocol word as a cell: printable ASCII only (others become `?`), quoted only
/// when it must be. Written straight into the row in the common case.
fn push_host_cell(out: &mut Vec<u8>, part: Option<&[u8]>, raw: bool) {
    let Some(p) = part else { return };
    let plain = p
        .iter()
        .all(|&b| b.is_ascii_graphic() && b != b',' && b != b'"');
    if plain && !needs_guard(p, raw) {
        out.extend_from_slice(p);
        return;
    }
    let mut cell = Vec::with_capacity(p.len());
    push_host_text(p, &mut cell);
    write_text_cell(out, &cell, raw);
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

/// The Microsoft 365 tenant that sent the message: its id (`tenant_id`) and domain
/// (`tenant_domain`), lowercased.
///
/// Exchange Online stamps `X-MS-Exchange-CrossTenant-Id` on the way out of the sending tenant
/// and again on the way into a receiving tenant (removing the sender's stamp). A receiving stamp
/// says `AuthAs: Anonymous` with `FromEntityHeader: Internet`; it names the trap's tenant, not the
/// sender's, and is not used. The receiving side's attribution
/// (`...OriginalAttributedTenantConnectingIp: TenantId=...`) names the sender and wins. The
/// domain is `X-OriginatorOrg` (not Outlook.com's `*.templateTenant` placeholder), else the
/// attribution's `Helo=[*.onmicrosoft.com]`, else the tenant's own signing domain
/// `d=*.onmicrosoft.com`.
fn write_sending_tenant(
    h: &Headers<'_>,
    id: &mut Vec<u8>,
    domain: &mut Vec<u8>,
    lossy: &mut Vec<&'static str>,
) {
    let is = |v: Option<&[u8]>, word: &[u8]| {
        v.is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(word))
    };
    let receiving_stamp = is(h.ms_auth_as, b"anonymous") && is(h.ms_from_entity, b"internet");
    let attributed = h.ms_attributed_tenant.and_then(|v| {
        let at = v
            .windows(9)
            .position(|w| w.eq_ignore_ascii_case(b"tenantid="))?;
        let rest = &v[at + 9..];
        let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        Some(rest[..end].trim_ascii()).filter(|t| !t.is_empty())
    });
    match (attributed, h.cross_tenant_id) {
        (Some(t), _) => push_text(t, id, "tenant_id", lossy),
        (None, Some(t)) if !receiving_stamp => push_text(t, id, "tenant_id", lossy),
        _ => {}
    }
    id.make_ascii_lowercase();
    if let Some(v) = h.originator_org.filter(|_| !receiving_stamp) {
        push_text(v, domain, "tenant_domain", lossy);
        domain.make_ascii_lowercase();
        if domain.ends_with(b".templatetenant") || !domain.contains(&b'.') {
            domain.clear();
        }
    }
    if domain.is_empty()
        && let Some(v) = h.ms_attributed_tenant
        && let Some(at) = v.windows(6).position(|w| w.eq_ignore_ascii_case(b"helo=["))
    {
        let rest = &v[at + 6..];
        let helo = &rest[..rest.iter().position(|&b| b == b']').unwrap_or(rest.len())];
        let helo = helo.trim_ascii().to_ascii_lowercase();
        if helo.ends_with(b".onmicrosoft.com") && helo.iter().all(|b| b.is_ascii_graphic()) {
            domain.extend_from_slice(&helo);
        }
    }
    if domain.is_empty() && !id.is_empty() {
        for sig in &h.dkim_signatures {
            if let Some(d) = headers::dkim_tags(sig).d {
                let d = d.trim_ascii().to_ascii_lowercase();
                if d.ends_with(b".onmicrosoft.com") && d.iter().all(|b| b.is_ascii_graphic()) {
                    domain.extend_from_slice(&d);
                    break;
                }
            }
        }
    }
}

/// An unfolded, trimmed, structured value (Message-ID, tenant, ...), lossy if not UTF-8.
fn push_text(raw: &[u8], cell: &mut Vec<u8>, name: &'static str, lossy: &mut Vec<&'static str>) {
    let unfolded = decode::unfold(raw);
    let text = unfolded.trim_ascii();
    let start = cell.len();
    match std::str::from_utf8(text) {
        Ok(_) => cell.extend_from_slice(text),
        Err(_) => {
            lossy.push(name);
            cell.extend_from_slice(String::from_utf8_lossy(text).as_bytes());
        }
    }
    // Control characters become spaces (in place: a loop the compiler vectorizes).
    for b in &mut cell[start..] {
        if *b < 0x20 || *b == 0x7f {
            *b = b' ';
        }
    }
}

fn note_lossy(raw: &[u8], name: &'static str, lossy: &mut Vec<&'static str>) {
    if std::str::from_utf8(raw).is_err() {
        lossy.push(name);
    }
}

/// Host names and protocol words: printable ASCII only.
fn push_host_text(p: &[u8], cell: &mut Vec<u8>) {
    let start = cell.len();
    cell.extend_from_slice(p);
    for b in &mut cell[start..] {
        if !b.is_ascii_graphic() {
            *b = b'?';
        }
    }
}

/// An IP address in its usual text form (dotted quad, or RFC 5952 IPv6), if any.
pub(crate) fn push_ip(ip: Option<IpAddr>, cell: &mut Vec<u8>) {
    match ip {
        // The common case, written without the formatting machinery.
        Some(IpAddr::V4(v4)) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    cell.push(b'.');
                }
                push_u64(cell, u64::from(octet));
            }
        }
        Some(ip @ IpAddr::V6(_)) => {
            let _ = write!(cell, "{ip}");
        }
        None => {}
    }
}

/// A number in decimal.
#[inline]
pub(crate) fn push_u64(cell: &mut Vec<u8>, n: u64) {
    cell.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Whether a text cell gets the spreadsheet formula guard: always, unless `--raw-cells`, when a
/// spreadsheet would run it. The one place the decision is made.
#[inline]
pub(crate) fn needs_guard(cell: &[u8], raw: bool) -> bool {
    !raw && is_formula_like(cell)
}

/// One CSV cell of text that comes from the input (mail, file names, key records): every text
/// cell of every CSV file is written here (host-name cells that need no quoting ask
/// [`needs_guard`] first). Cells the tool makes itself — numbers, ids, dates, verdict words — go
/// to [`write_cell`] unguarded.
pub(crate) fn write_text_cell(out: &mut Vec<u8>, cell: &[u8], raw: bool) {
    write_cell(out, cell, needs_guard(cell, raw));
}

/// One CSV cell: quoted when it holds a comma, quote or line break (RFC 4180), prefixed with `'`
/// when `guard` is set so spreadsheets show it as text instead of running it.
pub(crate) fn write_cell(out: &mut Vec<u8>, cell: &[u8], guard: bool) {
    let needs_quotes = guard || has_csv_special(cell);
    if !needs_quotes {
        out.extend_from_slice(cell);
        return;
    }
    out.push(b'"');
    if guard {
        out.push(b'\'');
    }
    // Runs between quotes are copied whole; each quote is doubled.
    let mut rest = cell;
    while let Some(q) = memchr::memchr(b'"', rest) {
        out.extend_from_slice(&rest[..=q]);
        out.push(b'"');
        rest = &rest[q + 1..];
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

/// Whether a cell holds a byte that RFC 4180 quoting is for: comma, quote, CR or LF.
#[inline]
fn has_csv_special(cell: &[u8]) -> bool {
    // Most cells are short: eight bytes at a time in a machine word (a byte is zero in
    // `x ^ pattern` exactly where it equals the pattern byte) beats the set-up of SIMD searches.
    if cell.len() > 64 {
        return memchr::memchr3(b',', b'"', b'\n', cell).is_some()
            || memchr::memchr(b'\r', cell).is_some();
    }
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut words = cell.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_ne_bytes(w.try_into().expect("chunks of eight"));
        if has_zero_byte(x ^ (ONES * u64::from(b',')))
            || has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\n')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\r')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// The CSV header line of a file with these columns.
pub fn header_line(columns: &[&str]) -> Vec<u8> {
    let mut v = columns.join(",").into_bytes();
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(msg: &[u8], kind: ItemKind) -> String {
        let mut out = UnitOutput::default();
        let item = Item {
            offset: 0,
            length: msg.len() as u64,
            start: 0,
            end: msg.len(),
            kind,
            quoted_lines: None,
        };
        RowWriter::new(RowOptions::default(), &mut out).item("src", msg, &item);
        String::from_utf8(out.messages_csv).unwrap()
    }

    #[test]
    fn arc_authentication_results_stand_in_for_a_missing_authentication_results() {
        let m = b"ARC-Authentication-Results: i=1; mx.trap.example;\r\n dkim=pass header.d=brand.example; spf=pass smtp.mailfrom=brand.example; dmarc=pass\r\nFrom: a@brand.example\r\nSubject: s\r\n\r\nbody\r\n";
        let r = row(m, ItemKind::Whole);
        let cells: Vec<&str> = r.trim_end().split(',').collect();
        assert_eq!(cells[col::AR_DKIM], "pass", "{r}");
        assert_eq!(cells[col::AR_DMARC], "pass", "{r}");
        assert!(cells[18].starts_with("i=1; mx.trap.example;"), "{r}");
        // An Authentication-Results field, when there is one, is what counts.
        let m = b"Authentication-Results: mx.trap.example; dkim=fail header.d=brand.example\r\nARC-Authentication-Results: i=1; mx.trap.example; dkim=pass\r\nFrom: a@brand.example\r\n\r\nbody\r\n";
        let r = row(m, ItemKind::Whole);
        let cells: Vec<&str> = r.trim_end().split(',').collect();
        assert_eq!(cells[col::AR_DKIM], "fail", "{r}");
    }

    proptest::proptest! {
        #[test]
        fn csv_special_bytes_are_found_wherever_they_are(
            cell in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b','),
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::Just(b'\r'),
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::any::<u8>(),
                ],
                0..100,
            )
        ) {
            let plain = cell.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
            proptest::prop_assert_eq!(has_csv_special(&cell), plain);
        }

        #[test]
        fn a_written_cell_reads_back_as_itself(
            cell in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::Just(b','),
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\n'),
                    proptest::prelude::any::<u8>(),
                ],
                0..80,
            ),
            guard in proptest::prelude::any::<bool>(),
        ) {
            // A CSV reader gives back the cell (after the `'` the guard adds), whatever it holds.
            let mut line = Vec::new();
            write_cell(&mut line, &cell, guard);
            line.extend_from_slice(b",end\n");
            let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(&line[..]);
            let record = reader.byte_records().next().expect("one record").expect("valid CSV");
            let mut want = Vec::new();
            if guard {
                want.push(b'\'');
            }
            want.extend_from_slice(&cell);
            proptest::prop_assert_eq!(&record[0], &want[..]);
            proptest::prop_assert_eq!(&record[1], b"end");
        }
    }

    #[test]
    fn mbox_entry_row() {
        let m = b"From a@b.example Mon May  6 00:10:11 2024\nFrom: \"A\" <a@B.Example>\nTo: x@y, z@w\nSubject: =?utf-8?q?caf=C3=A9?=\nDate: Mon, 06 May 2024 02:04:47 +0200\nMessage-ID: <m1@b>\n\nbody\n\n";
        let r = row(m, ItemKind::Entry(EntryKind::Message));
        assert!(r.starts_with("src,0,"), "{r}");
        assert!(r.contains(",2024-05-06T00:10:11Z,2024-05-06T00:04:47Z,a@b.example,b.example,a@b.example,café,<m1@b>,2,"), "{r}");
    }

    #[test]
    fn recipient_keys_read_the_first_address_like_the_parser() {
        use crate::classify::evidence::key;
        let parsed = |v: &str| {
            address::first_address(v.as_bytes())
                .map_or(0, |a| key(b'R', a.to_ascii_lowercase().as_bytes()))
        };
        for v in [
            "trap@Honeypot.example",
            " Jane Doe <Jane.Doe@Trap.example> ",
            "<j@x.example>",
            "j @ x.example",
            "\"Doe, Jane\" <jane@x.example>",
            "a@x.example, b@y.example",
            "undisclosed-recipients:;",
            "(comment) j@x.example",
            "Jane <jane@x.example",
            "",
        ] {
            assert_eq!(recipient_key(v.as_bytes()), parsed(v), "{v:?}");
        }
    }

    #[test]
    fn column_indices_name_their_columns() {
        for (i, name) in [
            (col::FROM_DOMAIN, "from_domain"),
            (col::TENANT_ID, "tenant_id"),
            (col::TENANT_DOMAIN, "tenant_domain"),
            (col::DKIM, "dkim"),
            (col::DMARC_ALIGNED, "dmarc_aligned"),
            (col::AR_DKIM, "ar_dkim"),
            (col::AR_DMARC, "ar_dmarc"),
        ] {
            assert_eq!(MESSAGE_COLUMNS[i], name);
        }
    }

    #[test]
    fn formula_cells_are_guarded() {
        let m = b"Subject: =1+1\nFrom: a@b\n\n";
        let r = row(m, ItemKind::Whole);
        assert!(r.contains(",\"'=1+1\","), "{r}");
    }

    #[test]
    fn malformed_rows_are_written() {
        let r = row(b"\0\0\0junk", ItemKind::Whole);
        assert!(r.contains(",binary-junk,"), "{r}");
        let r = row(b"", ItemKind::Failed(Malformed::TooLarge));
        assert!(r.contains(",too-large,"), "{r}");
    }
}

/// A message's DKIM verdict: a signature result, or `none` for an unsigned message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigResultOrNone {
    Some(SigResult),
    None,
}

impl SigResultOrNone {
    pub const COUNT: usize = SigResult::ALL.len() + 1;

    pub fn index(self) -> usize {
        match self {
            SigResultOrNone::Some(r) => r.index(),
            SigResultOrNone::None => SigResult::ALL.len(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SigResultOrNone::Some(r) => r.as_str(),
            SigResultOrNone::None => "none",
        }
    }
}
