//! The typed rows of the result tables and their columns.
//!
//! [`Message`] is the one value per message that the message stage builds and every later stage
//! and output reads; [`Decided`] holds the cells decided over the whole corpus; [`SignatureRow`]
//! and [`HopRow`] are one signature and one Received hop of a message. Each table is a list of
//! [`Column`]s: the only place a column's name, type and meaning are written.

use std::net::IpAddr;

use super::{Column, Table, Type, Value};
use crate::auth::{MessageVerdict, SignatureVerdict};
use crate::classify::rules::HopClass;
use crate::headers::Malformed;

/// One message's facts, as the message stage reads them. Text is UTF-8 (bytes that were not are
/// written with U+FFFD and the field is named in `lossy_fields`); empty text is no value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub source: String,
    pub entry_offset: u64,
    pub length: u64,
    pub received_at: Option<i64>,
    pub date: Option<i64>,
    /// The `Date:` field as written, when it does not parse (else empty).
    pub date_raw: String,
    pub from_addr: String,
    pub from_domain: String,
    /// The From domain's organization (its registrable domain by the Public Suffix List).
    pub from_org: String,
    pub envelope_from: String,
    pub subject: String,
    pub message_id: String,
    pub recipients: u64,
    pub client_ip: Option<IpAddr>,
    pub origin_ip: Option<IpAddr>,
    pub hops: u64,
    /// Hosts joined by ` > `.
    pub relay_path: String,
    pub size: u64,
    pub malformed: Option<Malformed>,
    /// `d:s:a` per signature, joined by a space.
    pub dkim_signatures: String,
    pub auth_results: String,
    pub tenant_id: String,
    pub tenant_domain: String,
    pub x_mailer: String,
    pub list_unsubscribe: String,
    /// The landing domains the grouping keys the message by, joined by a space (empty with
    /// campaigns off).
    pub landing_domains: String,
    pub content_type: String,
    /// Names joined by `;`.
    pub lossy_fields: String,
    /// None when DKIM is not verified (`--no-dkim`).
    pub dkim: Option<MessageVerdict>,
    /// Domains joined by a space.
    pub dkim_domains: String,
    pub dmarc_aligned: Option<bool>,
    pub ar_dkim: String,
    pub ar_spf: String,
    pub ar_dmarc: String,
    /// Each DKIM signature's verdict (empty when DKIM is not verified).
    pub signatures: Vec<SignatureVerdict>,
    /// Each Received hop, topmost first (only when hop rows are asked for).
    pub received: Vec<Hop>,
}

/// One Received hop as the `received` table shows it. Host names and protocol words are
/// printable ASCII (other bytes become `?`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hop {
    pub from_host: String,
    pub from_rdns: String,
    pub ip: Option<IpAddr>,
    pub by_host: String,
    pub protocol: String,
    pub timestamp: Option<i64>,
    /// The relay rules' verdicts (None when campaigns and relay abuse are off).
    pub from_class: Option<HopClass>,
    pub by_class: Option<HopClass>,
}

/// The cells of a message decided over the whole corpus (all empty with `--no-campaigns`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decided<'a> {
    pub relay_abuse: Option<bool>,
    /// Evidence names joined by `;`.
    pub relay_abuse_reasons: &'a str,
    /// The campaign id (16 hex digits); empty for mail in no campaign, written `-`.
    pub campaign: &'a str,
}

/// One signature of a message, for the `signatures` table.
pub struct SignatureRow<'a> {
    pub message: &'a Message,
    pub verdict: &'a SignatureVerdict,
}

/// One hop of a message, for the `received` table; `hop` 1 is the earliest.
pub struct HopRow<'a> {
    pub message: &'a Message,
    pub hop: u64,
    pub data: &'a Hop,
}

/// The `messages` table's cells filled by the message stage.
pub enum MessageTable {}
impl Table for MessageTable {
    type Row<'a> = Message;
}

/// The `messages` table's cells decided over the corpus.
pub enum DecidedTable {}
impl Table for DecidedTable {
    type Row<'a> = Decided<'a>;
}

/// The `signatures` table.
pub enum SignatureTable {}
impl Table for SignatureTable {
    type Row<'a> = SignatureRow<'a>;
}

/// The `received` table.
pub enum ReceivedTable {}
impl Table for ReceivedTable {
    type Row<'a> = HopRow<'a>;
}

fn text(s: &str) -> Value<'_> {
    Value::Text(s)
}

/// Columns of `messages` filled by the message stage, in order.
pub const MESSAGE_COLUMNS: &[Column<MessageTable>] = &[
    Column {
        name: "source",
        ty: Type::Text,
        nullable: false,
        meaning: "file path (`archive.tar!member` inside tar; `-` for standard input, or the name given with `--label`)",
        get: |m| text(&m.source),
    },
    Column {
        name: "entry_offset",
        ty: Type::Int,
        nullable: false,
        meaning: "byte offset of the message's entry in its source (the `From ` line in an mbox; 0 for one-message files); with `source` the key that joins the tables",
        get: |m| Value::Int(Some(m.entry_offset)),
    },
    Column {
        name: "length",
        ty: Type::Int,
        nullable: false,
        meaning: "bytes of the entry in its source (mbox: `From ` line and separator included)",
        get: |m| Value::Int(Some(m.length)),
    },
    Column {
        name: "received_at",
        ty: Type::Time,
        nullable: true,
        meaning: "receipt time, UTC: topmost parseable Received timestamp, else the mbox `From ` line date, else `Date:`",
        get: |m| Value::Time(m.received_at),
    },
    Column {
        name: "date",
        ty: Type::Time,
        nullable: true,
        meaning: "the `Date:` header, UTC (empty when missing or unparseable)",
        get: |m| Value::Time(m.date),
    },
    Column {
        name: "date_raw",
        ty: Type::Text,
        nullable: true,
        meaning: "the `Date:` header as written, when it does not parse (empty when it parses or is missing)",
        get: |m| text(&m.date_raw),
    },
    Column {
        name: "from_addr",
        ty: Type::Text,
        nullable: true,
        meaning: "first address of `From:`",
        get: |m| text(&m.from_addr),
    },
    Column {
        name: "from_domain",
        ty: Type::Text,
        nullable: true,
        meaning: "its domain, lowercased",
        get: |m| text(&m.from_domain),
    },
    Column {
        name: "from_org",
        ty: Type::Text,
        nullable: true,
        meaning: "the From domain's organization (registrable domain by the Public Suffix List): the brand a message claims",
        get: |m| text(&m.from_org),
    },
    Column {
        name: "envelope_from",
        ty: Type::Text,
        nullable: true,
        meaning: "`Return-Path:`, else the sender on the `From ` line; `<>` for the null sender",
        get: |m| text(&m.envelope_from),
    },
    Column {
        name: "subject",
        ty: Type::Text,
        nullable: true,
        meaning: "RFC 2047-decoded Subject",
        get: |m| text(&m.subject),
    },
    Column {
        name: "message_id",
        ty: Type::Text,
        nullable: true,
        meaning: "Message-ID as written (not unique in a trap: use `source` and `entry_offset` to join)",
        get: |m| text(&m.message_id),
    },
    Column {
        name: "recipients",
        ty: Type::Int,
        nullable: false,
        meaning: "number of addresses in To and Cc",
        get: |m| Value::Int(Some(m.recipients)),
    },
    Column {
        name: "client_ip",
        ty: Type::Ip,
        nullable: true,
        meaning: "the address that handed the message to the trap: the topmost Received hop with a public IP (if none is public, the topmost address)",
        get: |m| Value::Ip(m.client_ip),
    },
    Column {
        name: "origin_ip",
        ty: Type::Ip,
        nullable: true,
        meaning: "the earliest public address in the Received chain (the claimed original sender)",
        get: |m| Value::Ip(m.origin_ip),
    },
    Column {
        name: "hops",
        ty: Type::Int,
        nullable: false,
        meaning: "number of Received fields",
        get: |m| Value::Int(Some(m.hops)),
    },
    Column {
        name: "relay_path",
        ty: Type::List { separator: " > " },
        nullable: true,
        meaning: "earliest first: the first sender's IP (or name), then each receiving host",
        get: |m| Value::List(&m.relay_path),
    },
    Column {
        name: "size",
        ty: Type::Int,
        nullable: false,
        meaning: "message size on the wire: without the mbox `From ` line and separator, without `>From ` quoting",
        get: |m| Value::Int(Some(m.size)),
    },
    Column {
        name: "malformed",
        ty: Type::Text,
        nullable: true,
        meaning: "empty, or why the message could not be read as one",
        get: |m| text(m.malformed.map_or("", Malformed::as_str)),
    },
    Column {
        name: "dkim_signatures",
        ty: Type::List { separator: " " },
        nullable: true,
        meaning: "each DKIM-Signature as `d:s:a` (their verdicts: `dkim`, and the signatures table)",
        get: |m| Value::List(&m.dkim_signatures),
    },
    Column {
        name: "auth_results",
        ty: Type::Text,
        nullable: true,
        meaning: "the topmost Authentication-Results (the trap's own verdict); without one, the first ARC-Authentication-Results",
        get: |m| text(&m.auth_results),
    },
    Column {
        name: "tenant_id",
        ty: Type::Text,
        nullable: true,
        meaning: "the Microsoft 365 tenant that sent the message, lowercased (the receiving side's attribution, else X-MS-Exchange-CrossTenant-Id unless it is the trap's own receiving stamp)",
        get: |m| text(&m.tenant_id),
    },
    Column {
        name: "tenant_domain",
        ty: Type::Text,
        nullable: true,
        meaning: "that tenant's domain: X-OriginatorOrg, else the attribution's `Helo=[*.onmicrosoft.com]`, else a `d=*.onmicrosoft.com` signature",
        get: |m| text(&m.tenant_domain),
    },
    Column {
        name: "x_mailer",
        ty: Type::Text,
        nullable: true,
        meaning: "X-Mailer, decoded",
        get: |m| text(&m.x_mailer),
    },
    Column {
        name: "list_unsubscribe",
        ty: Type::Text,
        nullable: true,
        meaning: "List-Unsubscribe",
        get: |m| text(&m.list_unsubscribe),
    },
    Column {
        name: "landing_domains",
        ty: Type::List { separator: " " },
        nullable: true,
        meaning: "registrable domains (or bare addresses) of the body's and List-Unsubscribe's links that are campaign evidence: not the From organization's own, not a listed shared platform; empty for mailing-list mail and with `--no-campaigns`",
        get: |m| Value::List(&m.landing_domains),
    },
    Column {
        name: "content_type",
        ty: Type::Text,
        nullable: true,
        meaning: "media type of Content-Type, lowercased",
        get: |m| text(&m.content_type),
    },
    Column {
        name: "lossy_fields",
        ty: Type::List { separator: ";" },
        nullable: true,
        meaning: "fields whose bytes were not valid text (written with U+FFFD)",
        get: |m| Value::List(&m.lossy_fields),
    },
    Column {
        name: "dkim",
        ty: Type::Text,
        nullable: true,
        meaning: "the message's DKIM verdict: `pass` if any signature passes, else the first signature's result, else `none` (empty with `--no-dkim`)",
        get: |m| text(m.dkim.map_or("", MessageVerdict::as_str)),
    },
    Column {
        name: "dkim_domains",
        ty: Type::List { separator: " " },
        nullable: true,
        meaning: "`d=` of the passing signatures, lowercased",
        get: |m| Value::List(&m.dkim_domains),
    },
    Column {
        name: "dmarc_aligned",
        ty: Type::Bool,
        nullable: true,
        meaning: "a passing signature's `d=` has the From domain's organizational domain (Public Suffix List)",
        get: |m| Value::Bool(m.dmarc_aligned),
    },
    Column {
        name: "ar_dkim",
        ty: Type::Text,
        nullable: true,
        meaning: "the DKIM verdict the trap recorded at receipt (in `auth_results`)",
        get: |m| text(&m.ar_dkim),
    },
    Column {
        name: "ar_spf",
        ty: Type::Text,
        nullable: true,
        meaning: "the SPF verdict the trap recorded",
        get: |m| text(&m.ar_spf),
    },
    Column {
        name: "ar_dmarc",
        ty: Type::Text,
        nullable: true,
        meaning: "the DMARC verdict the trap recorded",
        get: |m| text(&m.ar_dmarc),
    },
];

/// Columns of `messages` decided over the whole corpus, after [`MESSAGE_COLUMNS`].
pub const DECIDED_COLUMNS: &[Column<DecidedTable>] = &[
    Column {
        name: "relay_abuse",
        ty: Type::Bool,
        nullable: true,
        meaning: "EchoSpoofing-style relay abuse (empty with `--no-campaigns`)",
        get: |d| Value::Bool(d.relay_abuse),
    },
    Column {
        name: "relay_abuse_reasons",
        ty: Type::List { separator: ";" },
        nullable: true,
        meaning: "the relay evidence that holds",
        get: |d| Value::List(d.relay_abuse_reasons),
    },
    Column {
        name: "campaign",
        ty: Type::Text,
        nullable: true,
        meaning: "the campaign id (16 hex digits); `-` in CSV (no value elsewhere) for mail in no campaign, empty with `--no-campaigns`",
        get: |d| text(d.campaign),
    },
];

/// Columns of `signatures`, one row per DKIM signature.
pub const SIGNATURE_COLUMNS: &[Column<SignatureTable>] = &[
    Column {
        name: "source",
        ty: Type::Text,
        nullable: false,
        meaning: "the message's source",
        get: |r| text(&r.message.source),
    },
    Column {
        name: "entry_offset",
        ty: Type::Int,
        nullable: false,
        meaning: "the message's entry offset (with `source`, the message's key)",
        get: |r| Value::Int(Some(r.message.entry_offset)),
    },
    Column {
        name: "message_id",
        ty: Type::Text,
        nullable: true,
        meaning: "the message's Message-ID",
        get: |r| text(&r.message.message_id),
    },
    Column {
        name: "signature",
        ty: Type::Int,
        nullable: false,
        meaning: "position among the message's DKIM-Signature fields, 1 = topmost",
        get: |r| Value::Int(Some(r.verdict.index as u64)),
    },
    Column {
        name: "d",
        ty: Type::Text,
        nullable: true,
        meaning: "signing domain",
        get: |r| text(&r.verdict.d),
    },
    Column {
        name: "s",
        ty: Type::Text,
        nullable: true,
        meaning: "selector",
        get: |r| text(&r.verdict.s),
    },
    Column {
        name: "a",
        ty: Type::Text,
        nullable: true,
        meaning: "algorithm",
        get: |r| text(&r.verdict.a),
    },
    Column {
        name: "c",
        ty: Type::Text,
        nullable: true,
        meaning: "canonicalization",
        get: |r| text(&r.verdict.c),
    },
    Column {
        name: "l",
        ty: Type::Int,
        nullable: true,
        meaning: "body length limit, when the signature has one",
        get: |r| Value::Int(r.verdict.l),
    },
    Column {
        name: "result",
        ty: Type::Text,
        nullable: false,
        meaning: "pass, fail-body, fail-signature, no-key, key-revoked, expired, permerror or temperror",
        get: |r| text(r.verdict.result.as_str()),
    },
    Column {
        name: "detail",
        ty: Type::Text,
        nullable: true,
        meaning: "why, in a few words",
        get: |r| text(&r.verdict.detail),
    },
    Column {
        name: "key_bits",
        ty: Type::Int,
        nullable: true,
        meaning: "size of the key used, when one was found",
        get: |r| Value::Int(r.verdict.key_bits.map(|b| b as u64)),
    },
    Column {
        name: "key_sha256",
        ty: Type::Text,
        nullable: true,
        meaning: "SHA-256 (hex) of the base64-decoded `p=` of the key used, when one was found: which key verified, for provenance (`echo P | base64 -d | sha256sum`)",
        get: |r| Value::Text(&r.verdict.key_sha256),
    },
];

/// Columns of `received`, one row per Received hop.
pub const RECEIVED_COLUMNS: &[Column<ReceivedTable>] = &[
    Column {
        name: "source",
        ty: Type::Text,
        nullable: false,
        meaning: "the message's source",
        get: |r| text(&r.message.source),
    },
    Column {
        name: "entry_offset",
        ty: Type::Int,
        nullable: false,
        meaning: "the message's entry offset",
        get: |r| Value::Int(Some(r.message.entry_offset)),
    },
    Column {
        name: "hop",
        ty: Type::Int,
        nullable: false,
        meaning: "1 for the earliest (bottom) hop, so hops read in the order the message travelled",
        get: |r| Value::Int(Some(r.hop)),
    },
    Column {
        name: "from_host",
        ty: Type::Text,
        nullable: true,
        meaning: "the name the sender gave (after `from`)",
        get: |r| text(&r.data.from_host),
    },
    Column {
        name: "from_rdns",
        ty: Type::Text,
        nullable: true,
        meaning: "the reverse-DNS name the receiver recorded",
        get: |r| text(&r.data.from_rdns),
    },
    Column {
        name: "ip",
        ty: Type::Ip,
        nullable: true,
        meaning: "the connecting client's address",
        get: |r| Value::Ip(r.data.ip),
    },
    Column {
        name: "by_host",
        ty: Type::Text,
        nullable: true,
        meaning: "the receiving host (after `by`)",
        get: |r| text(&r.data.by_host),
    },
    Column {
        name: "protocol",
        ty: Type::Text,
        nullable: true,
        meaning: "the first word after `with` (ESMTP, SMTP, Microsoft, HTTP, ...)",
        get: |r| text(&r.data.protocol),
    },
    Column {
        name: "timestamp",
        ty: Type::Time,
        nullable: true,
        meaning: "the hop's time, UTC",
        get: |r| Value::Time(r.data.timestamp),
    },
    Column {
        name: "from_class",
        ty: Type::Text,
        nullable: true,
        meaning: "the relay rules' class of the sender (by IP, else the receiver's reverse-DNS name); empty with `--no-campaigns`",
        get: |r| text(r.data.from_class.map_or("", HopClass::as_str)),
    },
    Column {
        name: "by_class",
        ty: Type::Text,
        nullable: true,
        meaning: "the relay rules' class of the receiving host",
        get: |r| text(r.data.by_class.map_or("", HopClass::as_str)),
    },
];
