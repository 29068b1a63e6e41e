//! Relay evidence of one message: which infrastructure each Received hop belongs to, whether the
//! message passed through Microsoft 365 and then a secure email gateway, and whether its M365
//! tenant belongs to the brand it claims.
//!
//! Takes the parsed hops (topmost first), the tenant headers, the From domain and whether a
//! From-aligned DKIM signature passed; gives [`RelayEvidence`]: the fixed, per-message part of
//! the EchoSpoofing test. The corpus-wide part (is this tenant usual for this brand?) is decided
//! when the whole corpus has been seen, in [`crate::campaign`].

use super::received::{Hop, is_public};
use super::rules::{HopClass, Rules};

/// Evidence bits, as stored per message and written in `relay_abuse_reasons`.
pub mod bits {
    /// A DKIM signature whose d= shares the From organizational domain passed.
    pub const ALIGNED_PASS: u16 = 1 << 0;
    /// A hop ran through Microsoft 365 (Exchange Online).
    pub const M365: u16 = 1 << 1;
    /// A secure email gateway received the message after (above) a Microsoft 365 hop.
    pub const SEG_AFTER_M365: u16 = 1 << 2;
    /// The tenant's domain (X-OriginatorOrg) is another organization than the From domain's.
    pub const FOREIGN_TENANT: u16 = 1 << 3;
    /// A hop address lies in Microsoft's high-risk delivery pool.
    pub const HRDP_IP: u16 = 1 << 4;
    /// The tenant domain is a default `*.onmicrosoft.com` name.
    pub const ONMICROSOFT_TENANT: u16 = 1 << 5;
    /// Decided over the corpus: the tenant is seen with this brand only rarely.
    pub const TENANT_NOT_BASELINE: u16 = 1 << 6;
    /// The aligned pass comes from the trap's recorded Authentication-Results, not from our own
    /// verification (DKIM off or no key).
    pub const RECORDED_PASS: u16 = 1 << 7;

    /// The tenant's domain is the From domain's organization (not written; feeds the baseline).
    pub const OWN_TENANT: u16 = 1 << 8;
    /// A hop was received by PowerMTA, the bulk mailer of EchoSpoofing's injectors: extra
    /// evidence for a reader, not part of the verdict (legitimate bulk senders run it too).
    pub const POWERMTA: u16 = 1 << 9;

    /// Names in `relay_abuse_reasons`, in the order written.
    pub const NAMES: [(u16, &str); 9] = [
        (ALIGNED_PASS, "aligned-dkim-pass"),
        (RECORDED_PASS, "recorded-dkim-pass"),
        (M365, "m365-origin"),
        (SEG_AFTER_M365, "seg-after-m365"),
        (FOREIGN_TENANT, "foreign-tenant"),
        (TENANT_NOT_BASELINE, "tenant-not-brand-baseline"),
        (ONMICROSOFT_TENANT, "onmicrosoft-tenant"),
        (HRDP_IP, "hrdp-ip"),
        (POWERMTA, "powermta"),
    ];
}

/// What the Received chain and the tenant headers say about one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayEvidence {
    /// [`bits`] that hold.
    pub bits: u16,
}

impl RelayEvidence {
    /// Whether the fixed rule needs only the corpus baseline to call this relay abuse: an
    /// aligned pass that came through Microsoft 365 and then a gateway (or the high-risk pool).
    pub fn is_candidate(self) -> bool {
        let b = self.bits;
        b & (bits::ALIGNED_PASS | bits::RECORDED_PASS) != 0
            && b & bits::M365 != 0
            && b & (bits::SEG_AFTER_M365 | bits::HRDP_IP) != 0
    }

    /// The verdict once the baseline bit is known: a candidate whose tenant is not the brand's.
    pub fn is_abuse(self) -> bool {
        self.is_candidate() && self.bits & (bits::FOREIGN_TENANT | bits::TENANT_NOT_BASELINE) != 0
    }

    /// `relay_abuse_reasons`: the names of the bits that hold, `;`-separated.
    pub fn write_reasons(self, out: &mut Vec<u8>) {
        let mut first = true;
        for (bit, name) in bits::NAMES {
            if self.bits & bit != 0 {
                if !first {
                    out.push(b';');
                }
                out.extend_from_slice(name.as_bytes());
                first = false;
            }
        }
    }
}

/// The class of the server that received the message at this hop (`by`).
pub fn receiver_class(rules: &Rules, hop: &Hop<'_>) -> HopClass {
    hop.by_host
        .and_then(|h| rules.host(h))
        .map_or(HopClass::Other, |m| m.class)
}

/// The class of the server that handed the message over at this hop (`from`): by its address,
/// else by the reverse-DNS name the receiver looked up. The HELO name is the sender's own claim
/// (spam forges `from x.pphosted.com`), so it is not used.
pub fn sender_class(rules: &Rules, hop: &Hop<'_>) -> HopClass {
    sender_class_with(
        rules,
        hop,
        hop.ip.and_then(|ip| rules.ip(&ip)).map(|m| m.class),
    )
}

/// [`sender_class`] when the class of the hop's address is known already.
fn sender_class_with(rules: &Rules, hop: &Hop<'_>, ip_class: Option<HopClass>) -> HopClass {
    ip_class
        .or_else(|| hop.from_rdns.and_then(|h| rules.host(h)).map(|m| m.class))
        .unwrap_or(HopClass::Other)
}

/// Gather the fixed evidence of one message.
///
/// `tenant_domain` is X-OriginatorOrg (any case), `from_org` the From domain's organizational
/// domain (lowercase, empty when unknown), `aligned_pass` whether a From-aligned signature
/// passed (ours, or `recorded` when it comes from the trap's Authentication-Results).
pub fn evidence(
    rules: &Rules,
    hops: &[Hop<'_>],
    tenant_domain: Option<&str>,
    from_org: &str,
    aligned_pass: bool,
    recorded: bool,
) -> RelayEvidence {
    let mut b = 0u16;
    if aligned_pass {
        b |= if recorded {
            bits::RECORDED_PASS
        } else {
            bits::ALIGNED_PASS
        };
    }
    // Walk from the bottom (oldest hop) up: a gateway counts only after Microsoft 365 was seen.
    let mut m365_seen = false;
    for hop in hops.iter().rev() {
        let ip_class = hop.ip.and_then(|ip| rules.ip(&ip)).map(|m| m.class);
        let sent_by = sender_class_with(rules, hop, ip_class);
        let received_by = receiver_class(rules, hop);
        let hrdp_ip =
            ip_class == Some(HopClass::M365Hrdp) && hop.ip.is_some_and(|ip| is_public(&ip));
        if sent_by == HopClass::M365Hrdp || hrdp_ip {
            b |= bits::HRDP_IP;
        }
        if sent_by.is_m365() {
            m365_seen = true;
        }
        if received_by == HopClass::Seg && m365_seen {
            b |= bits::SEG_AFTER_M365;
        }
        if received_by.is_m365() {
            m365_seen = true;
        }
        if hop.by_powermta {
            b |= bits::POWERMTA;
        }
    }
    if m365_seen {
        b |= bits::M365;
    }
    if let Some(t) = tenant_domain.map(|t| t.trim().trim_end_matches('.').to_ascii_lowercase())
        && !t.is_empty()
    {
        if t.ends_with(".onmicrosoft.com") {
            b |= bits::ONMICROSOFT_TENANT;
        }
        if !from_org.is_empty() {
            b |= if crate::auth::organizational_domain(&t) == from_org {
                bits::OWN_TENANT
            } else {
                bits::FOREIGN_TENANT
            };
        }
    }
    RelayEvidence { bits: b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::received::parse_received;

    const RULES: &str = "\
suffix m365-frontend microsoft .mail.protection.outlook.com
suffix m365-outbound microsoft .outbound.protection.outlook.com
suffix m365-internal microsoft .prod.outlook.com
suffix seg proofpoint .pphosted.com
net m365-hrdp microsoft 40.95.0.0/16
";

    /// An EchoSpoofing-shaped chain, topmost first: trap ← pphosted ← M365 outbound ← M365
    /// internal ← M365 front end ← VPS.
    const ECHO: [&[u8]; 5] = [
        b"from mx0b-00123401.pphosted.com (mx0b-00123401.pphosted.com [148.163.159.10]) by mx.trap.example with ESMTPS id 1; Tue, 4 Jun 2024 10:00:09 +0000",
        b"from EUR05-AM6-obe.outbound.protection.outlook.com (mail-am6eur05on2101.outbound.protection.outlook.com [40.107.22.101]) by mx0b-00123401.pphosted.com with ESMTPS id 2; Tue, 4 Jun 2024 10:00:07 +0000",
        b"from DB9PR01MB1234.eurprd01.prod.outlook.com ([fe80::1]) by DB9PR01MB5678.eurprd01.prod.outlook.com with mapi id 3; Tue, 4 Jun 2024 10:00:05 +0000",
        b"from AM6EUR05FT011.eop-eur05.prod.protection.outlook.com (2603:10a6:20b:1::1) by DB9PR01MB1234.eurprd01.prod.outlook.com with Microsoft SMTP Server id 4; Tue, 4 Jun 2024 10:00:04 +0000",
        b"from vps-2291.example-hosting.net (203.0.113.77) by tenant123.mail.protection.outlook.com (10.167.16.1) with Microsoft SMTP Server id 5; Tue, 4 Jun 2024 10:00:02 +0000",
    ];

    #[test]
    fn echospoofing_chain_with_a_foreign_tenant_is_abuse() {
        let rules = Rules::parse(RULES).unwrap();
        let hops: Vec<_> = ECHO.iter().map(|f| parse_received(f)).collect();
        let e = evidence(
            &rules,
            &hops,
            Some("freshdeals8812.onmicrosoft.com"),
            "bestbuy.com",
            true,
            false,
        );
        assert!(e.is_candidate() && e.is_abuse(), "{e:?}");
        let mut reasons = Vec::new();
        e.write_reasons(&mut reasons);
        assert_eq!(
            String::from_utf8(reasons).unwrap(),
            "aligned-dkim-pass;m365-origin;seg-after-m365;foreign-tenant;onmicrosoft-tenant"
        );
    }

    #[test]
    fn a_powermta_injector_is_noted_but_decides_nothing() {
        let rules = Rules::parse(RULES).unwrap();
        let mut fields: Vec<&[u8]> = ECHO.to_vec();
        // The VPS's own stamp under the M365 front end, as PowerMTA writes it.
        fields.push(b"by vps-2291.example-hosting.net (PowerMTA(TM) v5.0r1) id hbc1k20e0a8i for <x@trap.example>; Tue, 4 Jun 2024 10:00:01 +0000 (envelope-from <bounce@freshdeals8812.onmicrosoft.com>)");
        let hops: Vec<_> = fields.iter().map(|f| parse_received(f)).collect();
        let with = evidence(
            &rules,
            &hops,
            Some("freshdeals8812.onmicrosoft.com"),
            "bestbuy.com",
            true,
            false,
        );
        let mut reasons = Vec::new();
        with.write_reasons(&mut reasons);
        assert!(String::from_utf8(reasons).unwrap().ends_with(";powermta"));
        let hops: Vec<_> = ECHO.iter().map(|f| parse_received(f)).collect();
        let without = evidence(
            &rules,
            &hops,
            Some("freshdeals8812.onmicrosoft.com"),
            "bestbuy.com",
            true,
            false,
        );
        assert_eq!(with.bits & !bits::POWERMTA, without.bits);
        assert_eq!(with.is_abuse(), without.is_abuse());
    }

    #[test]
    fn the_brands_own_tenant_and_unsigned_mail_are_not_abuse() {
        let rules = Rules::parse(RULES).unwrap();
        let hops: Vec<_> = ECHO.iter().map(|f| parse_received(f)).collect();
        let own = evidence(
            &rules,
            &hops,
            Some("BestBuy.com"),
            "bestbuy.com",
            true,
            false,
        );
        assert!(own.is_candidate() && !own.is_abuse(), "{own:?}");
        let unsigned = evidence(
            &rules,
            &hops,
            Some("x.onmicrosoft.com"),
            "bestbuy.com",
            false,
            false,
        );
        assert!(!unsigned.is_candidate() && !unsigned.is_abuse());
        // A gateway below Microsoft 365 (inbound filtering before the mailbox) is not relaying.
        let reversed: Vec<_> = ECHO.iter().rev().map(|f| parse_received(f)).collect();
        let r = evidence(
            &rules,
            &reversed[..1],
            Some("x.onmicrosoft.com"),
            "bestbuy.com",
            true,
            false,
        );
        assert_eq!(r.bits & bits::SEG_AFTER_M365, 0, "{r:?}");
    }

    #[test]
    fn high_risk_pool_addresses_are_noted() {
        let rules = Rules::parse(RULES).unwrap();
        let hops = [parse_received(
            b"from mail.example (mail.example [40.95.3.4]) by gw.hygiene.example; Tue, 4 Jun 2024 10:00:02 +0000",
        )];
        let e = evidence(&rules, &hops, None, "brand.example", true, false);
        assert_ne!(e.bits & bits::HRDP_IP, 0);
        assert_ne!(e.bits & bits::M365, 0, "the pool is Microsoft 365");
    }
}
