//! One message: headers, body, Received chain, DKIM signatures and what is broken after
//! signing, with the truth of each signature.
//!
//! Takes the [`World`], the seed and the message number (its own random stream, so messages
//! are made in parallel); gives a [`GenMessage`]: the CRLF wire form, its envelope and receipt
//! time for the mbox, and its truth (signatures, campaign, EchoSpoofing, platform).

use std::fmt::Write as _;

use mail_auth::common::crypto::Algorithm;

use super::keys::{CANONS, canon_name, sign};
use super::platforms::platform_link;
use super::rng::{Rng, public_ip, token};
use super::text::{
    FIRST, FROM_LINES, LAST, MAILERS, SENTENCES, b_encode, make_subject, q_encode, rfc5322,
};
use super::world::{Domain, Stream, StreamKind, World, landing_host, stream_time, wave_landing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expected {
    Pass,
    FailBody,
    FailSignature,
    NoKey,
    KeyRevoked,
}

impl Expected {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Expected::Pass => "pass",
            Expected::FailBody => "fail-body",
            Expected::FailSignature => "fail-signature",
            Expected::NoKey => "no-key",
            Expected::KeyRevoked => "key-revoked",
        }
    }
}

pub(super) struct SigTruth {
    pub(super) d: String,
    pub(super) s: String,
    pub(super) a: &'static str,
    pub(super) c: String,
    pub(super) l: Option<u64>,
    pub(super) expected: Expected,
    pub(super) detail: String,
}

pub(super) struct GenMessage {
    pub(super) envelope: String,
    pub(super) received_at: i64,
    pub(super) crlf: bool,
    /// The message on the wire (CRLF).
    pub(super) wire: Vec<u8>,
    pub(super) message_id: String,
    pub(super) from_domain: String,
    /// Topmost first.
    pub(super) sigs: Vec<SigTruth>,
    /// Truth campaign id (`-`: noise, in no campaign).
    pub(super) campaign: String,
    /// Made the EchoSpoofing way (VPS → foreign M365 tenant → brand relay → brand signature).
    pub(super) echospoof: bool,
    /// The shared-platform host the body links to, if any.
    pub(super) platform: Option<String>,
}

fn crlf(lines: &[String]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

/// The stream a message comes from, by weight.
fn pick_stream<'w>(world: &'w World, rng: &mut Rng) -> &'w Stream {
    let mut x = rng.below(world.total_weight);
    for s in &world.streams {
        if x < s.weight {
            return s;
        }
        x -= s.weight;
    }
    &world.streams[world.streams.len() - 1]
}

pub(super) fn make_message(world: &World, seed: u64, n: usize) -> GenMessage {
    let rng = &mut Rng::new(seed, n as u64 + 1);
    let stream = pick_stream(world, rng);
    let kind = stream.kind;
    let relayed = matches!(kind, StreamKind::Echo | StreamKind::Legit);
    let sender = rng.below(stream.senders.len());
    let brand = &world.brands[stream.senders[sender]];
    // The gateway of the brand in From (echo and legit).
    let relay = stream.relays.get(sender).map_or("", String::as_str);
    let esp = &world.esps[rng.below(world.esps.len())];
    let t_sign = stream_time(rng, stream);
    let from_user = rng.pick(&["news", "offers", "info", "no-reply", "support", "team"]);
    let first = rng.pick(&FIRST);
    let last = rng.pick(&LAST);
    let to_user = format!(
        "{}.{}{}",
        first.to_lowercase(),
        last.to_lowercase().replace('ü', "ue"),
        rng.range(1, 99)
    );
    let trap = rng.pick(&[
        "spamtrap.example.org",
        "honeypot.example.net",
        "trap.example.com",
    ]);
    let display = match rng.below(6) {
        0 => b_encode(&format!("{} – Kundenservice", brand.brand)),
        1 => q_encode("UTF-8", format!("{} Équipe", brand.brand).as_bytes()),
        2 => format!(
            "\"{}, {}\"",
            brand.brand,
            rng.pick(&["Inc.", "Ltd", "Support"])
        ),
        _ => brand.brand.clone(),
    };
    let template = rng.pick(&stream.subjects).clone();
    let subject = make_subject(&template, &brand.brand, t_sign, rng);
    let message_id = format!("<{}.{}@{}>", token(rng, 16), t_sign, brand.name);
    let tz = *rng.pick(&[0i64, 60, 120, -300, -420, 330, 480, -180]);
    let boundary = format!("----=_Part_{}_{}", rng.range(1000, 99999), token(rng, 10));
    let multipart = rng.chance(0.7);

    // Body.
    let mut text = Vec::new();
    text.push(format!("Dear {first},"));
    text.push(String::new());
    for _ in 0..rng.range(3, 12) {
        let mut line = rng.pick(&SENTENCES).to_string();
        if rng.chance(0.1) {
            line.push_str("  "); // trailing blanks: relaxed and simple differ
        }
        if rng.chance(0.08) {
            line = line.replacen(' ', "   ", 1);
        }
        text.push(line);
        if rng.chance(0.15) {
            text.push(rng.pick(&FROM_LINES).to_string());
        }
        if rng.chance(0.2) {
            text.push(String::new());
        }
    }
    // The landing link: the campaign's hosts, the brand's own site, or a one-off host.
    // A few campaign messages carry no campaign link at all (a plain-text teaser): only their
    // other evidence can place them.
    let teaser = kind == StreamKind::Spam && rng.chance(0.03);
    let landing = match kind {
        StreamKind::Noise => landing_host(rng),
        _ if teaser => landing_host(rng),
        StreamKind::Echo => wave_landing(rng, stream, t_sign).to_string(),
        _ => rng.pick(&stream.landing).clone(),
    };
    let link = format!(
        "https://{landing}/c/{}?u={}",
        token(rng, 12),
        rng.range(100_000, 999_999)
    );
    let link_at = text.len();
    if rng.chance(0.1) {
        // Rewritten by a URL-defense gateway on the way: a host every campaign shares.
        text.push(format!(
            "https://urldefense.example/v3/__{link}__;!!{}$",
            token(rng, 10)
        ));
    } else {
        text.push(link);
    }
    // A shared-platform link beside the landing link (its own random stream: see
    // `platform_link`).
    let platform = platform_link(world, stream, seed, n).map(|p| {
        text.insert(if p.before { link_at } else { link_at + 1 }, p.url);
        p.host
    });
    if relayed && rng.chance(0.5) {
        // Spoofs borrow the brand's images too; its own domain links nothing.
        text.push(format!("https://www.{}/img/logo.png", brand.name));
    }
    let mut body = String::new();
    let content_type;
    if multipart {
        content_type = format!("multipart/alternative; boundary=\"{boundary}\"");
        body.push_str("This is a multi-part message in MIME format.\r\n\r\n");
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        );
        body.push_str(&crlf(&text));
        let _ = write!(
            body,
            "\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<html><body>\r\n"
        );
        for l in &text {
            let _ = write!(body, "<p>{l}</p>\r\n");
        }
        let _ = write!(body, "</body></html>\r\n\r\n--{boundary}--\r\n");
    } else {
        content_type = "text/plain; charset=utf-8".to_string();
        body.push_str(&crlf(&text));
    }
    if rng.chance(0.1) {
        body.push_str("\r\n\r\n"); // trailing empty lines
    }

    // Header block (bottom part, as the sender wrote it).
    let mut h = Vec::new();
    // Campaigns send from their networks, now and then from a stray address elsewhere; a
    // wave's injector is always one of the wave's own networks (its VPS hosts).
    let first_ip = match kind {
        StreamKind::Noise => public_ip(rng),
        StreamKind::Spam | StreamKind::Legit if rng.chance(0.02) => public_ip(rng),
        _ => format!("{}.{}", rng.pick(&stream.nets), rng.range(2, 250)),
    };
    let outbound = format!("smtp-out{}.{}", rng.range(1, 20), esp.name);
    let tenant = (!stream.tenants.is_empty()).then(|| rng.pick(&stream.tenants));
    if relayed {
        // Into Microsoft 365 (the sender's tenant), through it, and out to the brand's relay.
        let region = rng.pick(&["nam11", "eur05", "apc01", "nam12"]);
        let ft = format!(
            "{}{}FT{:03}",
            region.to_uppercase(),
            token(rng, 2).to_uppercase(),
            rng.range(1, 99)
        );
        let be = format!(
            "{}PR{:02}MB{}",
            rng.pick(&["DM6", "AM6", "SA1", "DB9"]),
            rng.range(1, 20),
            rng.range(1000, 9999)
        );
        let vps = if kind == StreamKind::Echo {
            format!(
                "vps-{}.{}",
                rng.range(100, 9999),
                rng.pick(&["cloudvps.example", "hostfleet.example", "rackvm.example"])
            )
        } else {
            format!("mail.{}", brand.name)
        };
        let t0 = t_sign - 9;
        let entry_host = format!(
            "{}.mail.protection.outlook.com",
            tenant.map_or("tenant", |t| t.domain.split('.').next().unwrap_or("tenant"))
        );
        // The three Microsoft 365 hops are made oldest first and put newest first, as each
        // server adds its Received field above the ones before it.
        let m365_hops = h.len();
        h.push(format!(
            "Received: from {vps} ({first_ip}) by {entry_host} (10.167.{}.{}) with Microsoft SMTP Server id 15.20.{}; {}",
            rng.range(1, 250), rng.range(1, 250), rng.range(7000, 8999), rfc5322(t0, 0)
        ));
        h.push(format!(
            "Received: from {ft}.eop-{region}.prod.protection.outlook.com (2603:10b6:{:x}::{:x}) by {be}.{region}prd01.prod.outlook.com (2603:10b6:{:x}::{:x}) with Microsoft SMTP Server id 15.20.{}; {}",
            rng.range(1, 4000), rng.range(1, 4000), rng.range(1, 4000), rng.range(1, 4000), rng.range(7000, 8999), rfc5322(t0 + 1, 0)
        ));
        let out_ip = if stream.hrdp {
            format!("40.95.{}.{}", rng.range(0, 255), rng.range(1, 254))
        } else {
            format!("40.107.{}.{}", rng.range(0, 255), rng.range(1, 254))
        };
        h.push(format!(
            "Received: from {}-obe.outbound.protection.outlook.com (mail-{}.outbound.protection.outlook.com [{out_ip}]) by {} with ESMTPS id {}; {}",
            region.to_uppercase(), token(rng, 10).to_lowercase(), relay, token(rng, 10), rfc5322(t0 + 3, 0)
        ));
        h[m365_hops..].reverse();
        if let Some(t) = tenant {
            h.push(format!("X-MS-Exchange-CrossTenant-Id: {}", t.guid));
            h.push(format!("X-OriginatorOrg: {}", t.domain));
        }
    } else {
        h.push(format!(
            "Received: from [{first_ip}] (unknown [{first_ip}])\r\n\tby {outbound} (Postfix) with ESMTPSA id {}\r\n\tfor <{to_user}@{trap}>; {}",
            token(rng, 10),
            rfc5322(t_sign - 2, 0)
        ));
    }
    h.push(format!(
        "Date: {}",
        rfc5322(t_sign - rng.below(60) as i64, tz)
    ));
    h.push(format!("From: {display} <{from_user}@{}>", brand.name));
    h.push(format!("To: {first} {last} <{to_user}@{trap}>"));
    h.push(format!("Subject: {subject}"));
    h.push(format!("Message-ID: {message_id}"));
    h.push("MIME-Version: 1.0".into());
    h.push(format!("Content-Type: {content_type}"));
    if rng.chance(0.5) {
        h.push(format!(
            "List-Unsubscribe: <https://{}/unsub/{}>, <mailto:unsub@{}>",
            esp.name,
            token(rng, 20),
            esp.name
        ));
    }
    if rng.chance(0.4) {
        h.push(format!("X-Mailer: {}", rng.pick(&MAILERS)));
    }
    let mut msg = format!("{}\r\n{body}", crlf(&h)).into_bytes();

    // Signatures: which, and what will be broken.
    let mut sigs = Vec::new();
    // The brand's relay signs everything it passes on, right before it leaves: nothing breaks.
    let signed = relayed || !rng.chance(0.15);
    if signed {
        let two = !relayed && rng.chance(0.25);
        let damage = if relayed { 99 } else { rng.below(100) };
        let category = match damage {
            0..=7 => Some(Expected::FailBody),
            8..=15 => Some(Expected::FailSignature),
            _ => None,
        };
        let with_l = rng.chance(0.2);
        let footer = !relayed && with_l && category.is_none() && rng.chance(0.5);
        // Brand signs first (lower field), the ESP second (topmost).
        let signers: Vec<&Domain> = if relayed {
            vec![brand]
        } else if two {
            vec![brand, esp]
        } else if rng.chance(0.6) {
            vec![brand]
        } else {
            vec![esp]
        };
        let header_sets: [&[&str]; 3] = [
            &[
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
            ],
            &["from", "subject", "date", "to", "message-id"],
            &[
                "From",
                "From",
                "Subject",
                "Subject",
                "Date",
                "To",
                "Message-ID",
                "List-Unsubscribe",
                "Content-Type",
            ],
        ];
        let t = (t_sign + rng.below(3) as i64) as u64;
        for dom in signers {
            let r = if relayed { 99 } else { rng.below(100) };
            let (s, key, expected, detail) = if category.is_none() && r < 7 {
                (
                    dom.missing.clone(),
                    0,
                    Expected::NoKey,
                    "selector not in keys.zone".to_string(),
                )
            } else if category.is_none() && r < 14 {
                (
                    dom.revoked.0.clone(),
                    dom.revoked.1,
                    Expected::KeyRevoked,
                    "key revoked (empty p=)".to_string(),
                )
            } else {
                let (s, k) = rng.pick(&dom.good);
                let e = category.unwrap_or(Expected::Pass);
                let detail = match e {
                    Expected::FailBody => "body changed after signing".to_string(),
                    Expected::FailSignature => "Subject changed after signing".to_string(),
                    _ if footer => "footer appended beyond l=".to_string(),
                    _ => "ok".to_string(),
                };
                (s.clone(), *k, e, detail)
            };
            let canon = *rng.pick(&CANONS);
            let hs = rng.pick(&header_sets);
            let gk = &world.keys[key];
            let (field, l) = sign(gk, &dom.name, &s, hs, canon, with_l, t, &msg);
            msg.splice(0..0, field);
            sigs.insert(
                0,
                SigTruth {
                    d: dom.name.clone(),
                    s,
                    a: match gk.algorithm() {
                        Algorithm::Ed25519Sha256 => "ed25519-sha256",
                        _ => "rsa-sha256",
                    },
                    c: format!("{}/{}", canon_name(canon.0), canon_name(canon.1)),
                    l,
                    expected,
                    detail,
                },
            );
        }
        match category {
            Some(Expected::FailBody) => {
                let at = memchr::memmem::find(&msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4);
                msg.splice(at..at, b"[This message was scanned] ".iter().copied());
            }
            Some(Expected::FailSignature) => {
                let at = memchr::memmem::find(&msg, b"\r\nSubject: ").expect("Subject") + 11;
                msg.splice(at..at, b"[SPAM] ".iter().copied());
            }
            _ => {}
        }
        if footer {
            msg.extend_from_slice(
                format!(
                    "\r\n-- \r\nSent via {}. Unsubscribe: https://{}/u/{}\r\n",
                    esp.brand,
                    esp.name,
                    token(rng, 8)
                )
                .as_bytes(),
            );
        }
    }

    // Hops added after signing, up to the trap (topmost last added).
    let hops = if relayed { 1 } else { rng.range(1, 4) };
    let mut t_hop = t_sign + 3;
    let (mut from_ip, mut from_host) = if relayed {
        // The relay's own address (Proofpoint's 148.163.128.0/19; another vendor otherwise).
        let ip = if stream.hrdp {
            format!("205.139.{}.{}", rng.range(110, 111), rng.range(1, 254))
        } else {
            format!("148.163.{}.{}", rng.range(128, 159), rng.range(1, 254))
        };
        (ip, relay.to_string())
    } else {
        (public_ip(rng), outbound)
    };
    let mut top = Vec::new();
    for i in 0..hops {
        let by = if i + 1 == hops {
            format!("mx{}.{trap}", rng.range(1, 3))
        } else {
            format!(
                "relay{}.{}",
                rng.range(1, 9),
                rng.pick(&["isp-transit.net", "edge-mx.com", "filter-gw.net"])
            )
        };
        t_hop += rng.range(1, 40) as i64;
        top.insert(
            0,
            format!(
                "Received: from {from_host} ({from_host} [{from_ip}])\r\n\tby {by} with ESMTPS id {}\r\n\tfor <{to_user}@{trap}>; {}",
                token(rng, 12),
                rfc5322(t_hop, if i + 1 == hops { 0 } else { *rng.pick(&[0i64, 60, -300]) })
            ),
        );
        from_host = by;
        from_ip = public_ip(rng);
    }
    let envelope = if relayed {
        format!("{from_user}@{}", brand.name)
    } else {
        format!("bounce-{}@{}", rng.range(10_000, 99_999), esp.name)
    };
    // What the trap recorded at receipt (RFC 8601), consistent with the truth.
    let passing = sigs.iter().find(|s| s.expected == Expected::Pass);
    let dkim_word = match (passing, sigs.first()) {
        (Some(_), _) => "pass",
        (None, Some(s)) => match s.expected {
            Expected::FailBody | Expected::FailSignature => "fail",
            _ => "permerror",
        },
        (None, None) => "none",
    };
    let aligned = sigs
        .iter()
        .any(|s| s.expected == Expected::Pass && s.d == brand.name);
    let header_d = passing
        .or(sigs.first())
        .map_or(String::new(), |s| format!(" header.d={}", s.d));
    top.insert(
        0,
        format!(
            "Authentication-Results: mx1.{trap};\r\n\tdkim={dkim_word}{header_d};\r\n\tspf=pass smtp.mailfrom={};\r\n\tdmarc={} header.from={}",
            envelope.split('@').nth(1).unwrap_or(""),
            if aligned { "pass" } else { "fail" },
            brand.name
        ),
    );
    top.insert(0, format!("Return-Path: <{envelope}>"));
    msg.splice(0..0, crlf(&top).into_bytes());

    GenMessage {
        envelope,
        received_at: t_hop,
        crlf: rng.chance(0.15),
        wire: msg,
        message_id,
        from_domain: brand.name.clone(),
        sigs,
        campaign: stream.id.clone(),
        echospoof: kind == StreamKind::Echo,
        platform,
    }
}
