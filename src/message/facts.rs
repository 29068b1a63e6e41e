//! A message's facts for the grouping stage: relay evidence, evidence keys and hashed values.
//!
//! Takes a read [`Message`] with its parsed headers, Received hops and body, and gives one
//! [`MessageFacts`] (plus its keys and texts in the unit's [`Facts`] buffers). The grouping stage
//! ([`crate::campaign`]) decides campaigns and relay abuse from these alone.

use crate::auth::{self, MessageVerdict, SigResult};
use crate::classify::evidence::{self, key};
use crate::classify::received::Hop;
use crate::classify::relay::RelayEvidence;
use crate::classify::{self, rules::Rules};
use crate::headers::{Headers, address};
use crate::schema::Message;

/// Bytes of a subject kept as a campaign's example (cut at a character boundary).
const MAX_EXAMPLE_SUBJECT: usize = 2048;

/// The message's DKIM verdict, as counted per campaign.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum DkimClass {
    #[default]
    None = 0,
    Pass = 1,
    Fail = 2,
}

/// What a worker hands over per message. Hashes are [`crate::classify::evidence::fnv1a`]
/// values, 0 for "none".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageFacts {
    /// Bytes of the message's spilled row (see [`crate::output::spill`]).
    pub row_len: u32,
    /// Receipt time (Unix seconds), `i64::MIN` when unknown.
    pub at: i64,
    pub dkim: DkimClass,
    pub aligned_pass: bool,
    pub relay: RelayEvidence,
    /// From organizational domain.
    pub brand: u64,
    /// Tenant (CrossTenant-Id).
    pub tenant: u64,
    /// From domain (its text is in the unit's `text`).
    pub from_domain: u64,
    pub origin_ip: u64,
    pub origin_net: u64,
    pub recipient: u64,
    /// The From address (lowercased) when the message left through its sender's own provider
    /// (the only use of it), else 0.
    pub sender: u64,
    /// The origin host's name (reverse DNS, else HELO) lies under the From organization: the
    /// message left through its sender's own provider (a webmail's server, a brand's gateway).
    pub origin_is_senders: bool,
    /// This message's keys: `keys[keys.0 .. keys.0 + keys.1]`.
    pub keys: (u32, u8),
    /// The From domain text: `text[from_text.0 .. from_text.0 + from_text.1]`.
    pub from_text: (u32, u16),
    /// The subject (up to 2,048 bytes), likewise in `text`.
    pub subject_text: (u32, u16),
}

/// The facts of a unit's messages, in order, with their keys and texts.
#[derive(Debug, Default)]
pub struct Facts {
    pub facts: Vec<MessageFacts>,
    /// Evidence keys of the facts (each fact names its slice).
    pub keys: Vec<u64>,
    /// From-domain and subject texts of the facts, and the keys' names.
    pub text: Vec<u8>,
    /// Each key's name in `text` (parallel to `keys`): its kind letter, `:` and its value as a
    /// researcher reads it (`L:example.com`, `N:203.0.113.0/24`), at most 255 bytes.
    pub key_names: Vec<(u32, u8)>,
}

impl Facts {
    /// The keys, From domain text and subject of one fact of this unit.
    pub fn parts(&self, f: &MessageFacts) -> (&[u64], &[u8], &[u8]) {
        let keys = &self.keys[f.keys.0 as usize..f.keys.0 as usize + f.keys.1 as usize];
        let text = |(at, len): (u32, u16)| &self.text[at as usize..at as usize + len as usize];
        (keys, text(f.from_text), text(f.subject_text))
    }

    /// The names of one fact's keys, in the order of its keys.
    pub fn key_names<'s>(&'s self, f: &MessageFacts) -> impl Iterator<Item = &'s [u8]> + 's {
        let range = f.keys.0 as usize..f.keys.0 as usize + f.keys.1 as usize;
        self.key_names[range]
            .iter()
            .map(|&(at, len)| &self.text[at as usize..at as usize + usize::from(len)])
    }

    /// Append a key and its name (kind letter, `:`, value; cut to 255 bytes at a character
    /// boundary).
    pub fn push_key(&mut self, key: u64, kind: u8, value: &str) {
        let mut len = value.len().min(253);
        while !value.is_char_boundary(len) {
            len -= 1;
        }
        let at = self.text.len();
        self.text.extend_from_slice(&[kind, b':']);
        self.text.extend_from_slice(&value.as_bytes()[..len]);
        self.keys.push(key);
        self.key_names.push((at as u32, (len + 2) as u8));
    }
}

/// Buffers kept between messages.
#[derive(Debug, Default)]
pub struct Scratch {
    landing: Vec<String>,
    decoded: Vec<u8>,
}

impl Scratch {
    /// The landing domains keyed for the message last gathered (none for mailing-list mail).
    pub fn landing(&self) -> &[String] {
        &self.landing
    }
}

/// What [`gather`] reads.
pub struct Input<'m, 'a> {
    pub message: &'m Message,
    /// DKIM was verified by this run.
    pub judged: bool,
    /// Domains of the trap's recorded `dkim=pass` statements.
    pub recorded_pass_domains: &'m [String],
    pub rules: &'m Rules,
    pub body: &'a [u8],
    pub headers: &'m Headers<'a>,
    pub hops: &'m [Hop<'a>],
}

/// Append the message's facts to `out`.
pub fn gather(input: Input<'_, '_>, scratch: &mut Scratch, out: &mut Facts) {
    let Input {
        message: m,
        judged,
        recorded_pass_domains,
        rules,
        body,
        headers: h,
        hops,
    } = input;
    let from_domain = m.from_domain.to_ascii_lowercase();
    let from_org = m.from_org.as_str();
    // Our own verdict when we have one; otherwise what the trap recorded at receipt.
    let ours = m.dkim.filter(|v| {
        judged
            && !matches!(
                v,
                MessageVerdict::Signature(SigResult::NoKey | SigResult::TempError)
            )
    });
    let (dkim, aligned, recorded) = match ours {
        Some(verdict) => {
            let class = match verdict {
                MessageVerdict::Signature(SigResult::Pass) => DkimClass::Pass,
                MessageVerdict::None => DkimClass::None,
                MessageVerdict::Signature(_) => DkimClass::Fail,
            };
            (class, m.dmarc_aligned == Some(true), false)
        }
        None => {
            let class = match m.ar_dkim.as_str() {
                "pass" => DkimClass::Pass,
                "" | "none" => DkimClass::None,
                _ => DkimClass::Fail,
            };
            let recorded = auth::results::Recorded {
                dkim: (m.ar_dkim == "pass").then(|| "pass".to_string()),
                dmarc: (m.ar_dmarc == "pass").then(|| "pass".to_string()),
                spf: None,
                dkim_pass_domains: recorded_pass_domains.to_vec(),
            };
            let aligned = recorded.aligned_dkim_pass(from_org, auth::organizational_domain);
            (class, aligned, true)
        }
    };
    let tenant_domain = (!m.tenant_domain.is_empty()).then_some(m.tenant_domain.as_str());
    let relay = classify::relay::evidence(rules, hops, tenant_domain, from_org, aligned, recorded);
    let tenant_text = m
        .tenant_id
        .trim()
        .trim_matches(|c| c == '{' || c == '}')
        .to_ascii_lowercase();
    let tenant = if tenant_text.is_empty() {
        0
    } else {
        key(b'T', tenant_text.as_bytes())
    };

    let keys_start = out.keys.len();
    let list = h
        .list_id
        .and_then(evidence::list_identity)
        .or_else(|| h.mailing_list.and_then(evidence::mailing_list_identity));
    scratch.landing.clear();
    if let Some(list) = list {
        // Redistributed by a mailing list: the list is what sent it to the trap, and the links
        // in it are the list's footer or the poster's discussion, not a campaign's.
        out.push_key(key(b'I', list.as_bytes()), b'I', &list);
    } else {
        evidence::body_landing_domains(
            body,
            h.content_type,
            h.content_transfer_encoding,
            from_org,
            &mut scratch.decoded,
            &mut scratch.landing,
        );
        if let Some(v) = h.list_unsubscribe {
            evidence::add_landing_domains(v, from_org, &mut scratch.landing);
        }
        for d in &scratch.landing {
            out.push_key(key(b'L', d.as_bytes()), b'L', d);
        }
    }
    if tenant != 0 {
        out.push_key(tenant, b'T', &tenant_text);
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
        // Shared infrastructure (Microsoft, gateways, mailbox providers), known by its address
        // or by the name it gave, links nothing; nor does an address that is never routed (a
        // hand-written or forged line). The reverse-DNS name when the receiver recorded one,
        // else the name the sender gave.
        let named_shared = || {
            hop.from_rdns
                .or(hop.from_host)
                .is_some_and(|name| rules.host(name).is_some())
        };
        if rules.ip(&ip).is_none() && !evidence::never_routed(&ip) && !named_shared() {
            out.push_key(origin_net, b'N', &evidence::network_name(&ip));
            origin_keyed = true;
        }
    }
    // Whether the message left through its sender's own provider: the origin host is named
    // under the From organization (reverse DNS, else HELO) and so is the server that took it
    // from there — handled inside the sender's organization before it reached the Internet (a
    // webmail, an ISP's smarthost, a company's gateway). Read with the From addresses: a
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
    // Only read for mail that left through its sender's own provider.
    let sender = if m.from_addr.is_empty() || !origin_is_senders {
        0
    } else {
        evidence::key_ascii_lowercase(b'S', m.from_addr.as_bytes())
    };
    let keys_len = (out.keys.len() - keys_start).min(255);
    out.keys.truncate(keys_start + keys_len);
    out.key_names.truncate(keys_start + keys_len);
    let recipient = h.to.first().map_or(0, |v| recipient_key(v));
    let text_start = out.text.len();
    let from_bytes = &from_domain.as_bytes()[..from_domain.len().min(1024)];
    out.text.extend_from_slice(from_bytes);
    // A campaign's example subject is its first message's; cut at a character boundary.
    let subject = m.subject.as_bytes();
    let mut subject_len = subject.len().min(MAX_EXAMPLE_SUBJECT);
    while !m.subject.is_char_boundary(subject_len) {
        subject_len -= 1;
    }
    let subject_start = out.text.len();
    out.text.extend_from_slice(&subject[..subject_len]);
    out.facts.push(MessageFacts {
        row_len: 0,
        at: m.received_at.unwrap_or(i64::MIN),
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

/// The key of a To field's first address (`R`), for distinct recipient counts. The common field
/// (one address, bare or in angle brackets, no quotes, comments or groups) is read directly;
/// anything else goes through the full address parser (`recipient_key_parsed`, the oracle).
pub fn recipient_key(value: &[u8]) -> u64 {
    match simple_address(value) {
        Some(addr) if addr.len() <= 256 => {
            let mut buf = [0u8; 256];
            let lower = &mut buf[..addr.len()];
            lower.copy_from_slice(addr);
            lower.make_ascii_lowercase();
            key(b'R', lower)
        }
        _ => recipient_key_parsed(value),
    }
}

/// The address of a field that holds one plain address and nothing else: `local@domain`, bare or
/// in angle brackets after a display name of words, both parts of atoms and dots only. `None`
/// for anything else (the parser decides those).
fn simple_address(value: &[u8]) -> Option<&[u8]> {
    let atom = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-');
    let value = value.trim_ascii();
    let addr = match memchr::memchr(b'<', value) {
        Some(open) => {
            let name = &value[..open];
            let close = open + 1 + memchr::memchr(b'>', &value[open + 1..])?;
            let name_is_words = name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b' ');
            if !name_is_words || close + 1 != value.len() {
                return None;
            }
            &value[open + 1..close]
        }
        None => value,
    };
    let at = memchr::memchr(b'@', addr)?;
    let (local, domain) = (&addr[..at], &addr[at + 1..]);
    let well_formed = !local.is_empty()
        && !domain.is_empty()
        && local.iter().all(|&b| atom(b))
        && domain.iter().all(|&b| atom(b) && b != b'+')
        && !local.starts_with(b".")
        && !local.ends_with(b".")
        && !local.windows(2).any(|w| w == b"..")
        && !domain.starts_with(b".")
        && !domain.ends_with(b".")
        && !domain.windows(2).any(|w| w == b"..");
    well_formed.then_some(addr)
}

/// [`recipient_key`] through the full address parser.
fn recipient_key_parsed(value: &[u8]) -> u64 {
    address::first_address(value).map_or(0, |a| key(b'R', a.to_ascii_lowercase().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recipient_keys_read_the_first_address_like_the_parser() {
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
            assert_eq!(
                recipient_key(v.as_bytes()),
                recipient_key_parsed(v.as_bytes()),
                "{v:?}"
            );
        }
    }

    /// To-field-like values: names, angle brackets, spaces, case, dots and a few of the bytes
    /// that push a value off the fast path.
    fn to_field() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            "[a-zA-Z0-9._+-]{1,12}".prop_map(String::into_bytes),
            Just(b"@".to_vec()),
            Just(b"<".to_vec()),
            Just(b">".to_vec()),
            Just(b" ".to_vec()),
            Just(b"\t".to_vec()),
            Just(b"\"".to_vec()),
            Just(b",".to_vec()),
            Just(b"(c)".to_vec()),
            Just("É".as_bytes().to_vec()),
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_recipient_fast_path_agrees_with_the_parser(value in to_field()) {
            prop_assert_eq!(recipient_key(&value), recipient_key_parsed(&value));
        }

        #[test]
        fn simple_addresses_take_the_fast_path_and_agree(
            local in "[a-zA-Z0-9_+-]{1,10}(\\.[a-zA-Z0-9_+-]{1,8})?",
            domain in "[a-zA-Z0-9-]{1,12}\\.[a-z]{2,6}",
            name in proptest::option::of("[A-Za-z]{1,10}"),
        ) {
            let addr = format!("{local}@{domain}");
            let value = match name {
                Some(n) => format!("{n} <{addr}>"),
                None => addr.clone(),
            };
            let want = key(b'R', addr.to_ascii_lowercase().as_bytes());
            prop_assert_eq!(simple_address(value.as_bytes()), Some(addr.as_bytes()));
            prop_assert_eq!(recipient_key(value.as_bytes()), want);
            prop_assert_eq!(recipient_key_parsed(value.as_bytes()), want);
        }
    }

    #[test]
    fn facts_of_a_message_name_its_brand_and_recipient() {
        let msg = b"From: A <a@Mail.Brand.example>\r\nTo: Trap <t@trap.example>\r\nSubject: s\r\n\r\nsee https://land.example/x\r\n";
        let item = crate::work::Item::whole(msg.len());
        let rules = Rules::builtin();
        let mut reader = super::super::Reader::new(Default::default(), None, Some(&rules), 0);
        let mut totals = crate::aggregate::Totals::default();
        let mut facts = Facts::default();
        reader.read("src", msg, &item, &mut totals, &mut facts);
        assert_eq!(facts.facts.len(), 1);
        let f = facts.facts[0];
        assert_eq!(f.brand, key(b'B', b"brand.example"));
        assert_eq!(f.recipient, key(b'R', b"t@trap.example"));
        let (keys, from, subject) = facts.parts(&f);
        assert_eq!(from, b"mail.brand.example");
        assert_eq!(subject, b"s");
        assert!(keys.contains(&key(b'L', b"land.example")), "{keys:?}");
    }
}
