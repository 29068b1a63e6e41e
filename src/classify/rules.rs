//! Hop classification rules: which mail infrastructure a Received hop's host or address belongs
//! to (Microsoft 365 front end / internal / outbound / high-risk pool, a secure email gateway, a
//! free-mail provider).
//!
//! Takes a rules text (`data/relay-rules.txt` is built in; `--rules FILE` replaces it) and gives
//! [`Rules`], which classifies a host name by its longest matching suffix (one aho-corasick pass
//! over the name, ASCII case-insensitive) and an address by the narrowest matching network.
//!
//! Format, one rule per line, `#` starts a comment:
//! ```text
//! # kind  class            provider    pattern
//! suffix  m365-frontend    microsoft   .mail.protection.outlook.com
//! net     m365-hrdp        microsoft   40.95.0.0/16
//! ```
//! A `suffix` pattern matches the name itself (without the leading dot) or any name ending with
//! it at a label boundary; `net` takes an IPv4 or IPv6 network in CIDR notation.

use std::net::IpAddr;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};
use thiserror::Error;

/// The rules shipped with the tool.
pub const BUILTIN_RULES: &str = include_str!("../../data/relay-rules.txt");

/// What kind of infrastructure a hop belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HopClass {
    /// Exchange Online Protection inbound front ends (`*.mail.protection.outlook.com`).
    M365Frontend,
    /// Mailbox and transport servers inside Exchange Online (`*.prod.outlook.com`).
    M365Internal,
    /// Exchange Online outbound (`*.outbound.protection.outlook.com`, EOP outbound ranges).
    M365Outbound,
    /// Microsoft's high-risk delivery pool (40.95.0.0/16).
    M365Hrdp,
    /// A third-party secure email gateway or hygiene relay (Proofpoint, Mimecast, ...).
    Seg,
    /// A large mailbox provider (Gmail, Yahoo, GMX, ...).
    Freemail,
    /// Nothing in the rules.
    Other,
}

impl HopClass {
    pub const ALL: [HopClass; 7] = [
        HopClass::M365Frontend,
        HopClass::M365Internal,
        HopClass::M365Outbound,
        HopClass::M365Hrdp,
        HopClass::Seg,
        HopClass::Freemail,
        HopClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HopClass::M365Frontend => "m365-frontend",
            HopClass::M365Internal => "m365-internal",
            HopClass::M365Outbound => "m365-outbound",
            HopClass::M365Hrdp => "m365-hrdp",
            HopClass::Seg => "seg",
            HopClass::Freemail => "freemail",
            HopClass::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<HopClass> {
        HopClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Part of Microsoft 365 (Exchange Online).
    pub fn is_m365(self) -> bool {
        matches!(
            self,
            HopClass::M365Frontend
                | HopClass::M365Internal
                | HopClass::M365Outbound
                | HopClass::M365Hrdp
        )
    }
}

/// A rules file that cannot be used.
#[derive(Debug, Error)]
pub enum RulesError {
    #[error("rules line {line}: {why}")]
    Syntax { line: usize, why: String },
    #[error("cannot read rules file {}", .path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("rules: {0}")]
    Build(String),
}

/// One classification: the class and the provider named in the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'r> {
    pub class: HopClass,
    pub provider: &'r str,
}

#[derive(Debug, Clone)]
struct Net {
    /// Network address as 128 bits (IPv4 mapped into ::ffff:0:0/96).
    addr: u128,
    /// Prefix length over the 128 bits.
    prefix: u32,
    class: HopClass,
    provider: usize,
}

/// Compiled hop classification rules.
#[derive(Debug, Clone)]
pub struct Rules {
    suffixes: Vec<(String, HopClass, usize)>,
    matcher: AhoCorasick,
    nets: Vec<Net>,
    /// The networks that hold IPv4 addresses, as (network, mask, index into `nets`), in the
    /// same order: the common case is checked with 32-bit operations.
    nets_v4: Vec<(u32, u32, usize)>,
    providers: Vec<String>,
}

impl Rules {
    /// The built-in rules (`data/relay-rules.txt`).
    pub fn builtin() -> Rules {
        Rules::parse(BUILTIN_RULES).expect("the built-in rules parse (checked by a unit test)")
    }

    /// Read a rules file.
    pub fn from_file(path: &std::path::Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Rules::parse(&text)
    }

    /// Parse a rules text (format in the module documentation).
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let mut suffixes = Vec::new();
        let mut nets = Vec::new();
        let mut providers: Vec<String> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let syntax = |why: String| RulesError::Syntax { line: i + 1, why };
            let words: Vec<&str> = line.split_whitespace().collect();
            let [kind, class, provider, pattern] = words[..] else {
                return Err(syntax(format!(
                    "expected `kind class provider pattern`, got {} words",
                    words.len()
                )));
            };
            let class = HopClass::parse(class)
                .filter(|c| *c != HopClass::Other)
                .ok_or_else(|| syntax(format!("unknown class {class:?}")))?;
            let provider = match providers.iter().position(|p| p == provider) {
                Some(p) => p,
                None => {
                    providers.push(provider.to_string());
                    providers.len() - 1
                }
            };
            match kind {
                "suffix" => {
                    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
                    let p = if p.starts_with('.') {
                        p
                    } else {
                        format!(".{p}")
                    };
                    if p.len() < 2 || p.contains("..") {
                        return Err(syntax(format!("bad host suffix {pattern:?}")));
                    }
                    suffixes.push((p, class, provider));
                }
                "net" => {
                    let (addr, prefix) = parse_cidr(pattern)
                        .ok_or_else(|| syntax(format!("bad network {pattern:?}")))?;
                    nets.push(Net {
                        addr,
                        prefix,
                        class,
                        provider,
                    });
                }
                other => return Err(syntax(format!("unknown kind {other:?}"))),
            }
        }
        // The automaton holds the suffixes reversed and runs anchored over the reversed name:
        // the longest suffix is then the leftmost-longest match at position 0, found without
        // scanning the name for matches that cannot end at its end.
        let reversed: Vec<Vec<u8>> = suffixes
            .iter()
            .map(|(p, _, _)| p.bytes().rev().collect())
            .collect();
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .start_kind(StartKind::Anchored)
            .build(&reversed)
            .map_err(|e| RulesError::Build(e.to_string()))?;
        // Narrowest network first, so the first hit is the most specific.
        nets.sort_by(|a, b| b.prefix.cmp(&a.prefix).then(a.addr.cmp(&b.addr)));
        let nets_v4 = nets
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                // A network covers IPv4 when it lies inside ::ffff:0:0/96, or contains all of it.
                if n.prefix >= 96 && n.addr >> 32 == 0xffff {
                    let bits = n.prefix - 96;
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    Some((n.addr as u32 & mask, mask, i))
                } else if n.prefix < 96 && in_net(0xffff << 32, n.addr, n.prefix) {
                    Some((0, 0, i))
                } else {
                    None
                }
            })
            .collect();
        Ok(Rules {
            suffixes,
            matcher,
            nets,
            nets_v4,
            providers,
        })
    }

    /// Number of rules (suffixes and networks).
    pub fn len(&self) -> usize {
        self.suffixes.len() + self.nets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Classify a host name by its longest matching suffix.
    pub fn host(&self, host: &[u8]) -> Option<Match<'_>> {
        let host = host.strip_suffix(b".").unwrap_or(host);
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        // `.` + host, reversed: a suffix `.pphosted.com` then matches `pphosted.com` itself too.
        let mut buf = [0u8; 254];
        let reversed = &mut buf[..host.len() + 1];
        for (slot, &b) in reversed.iter_mut().zip(host.iter().rev()) {
            *slot = b;
        }
        reversed[host.len()] = b'.';
        let m = self
            .matcher
            .find(Input::new(&*reversed).anchored(Anchored::Yes))?;
        let (_, class, provider) = &self.suffixes[m.pattern().as_usize()];
        Some(Match {
            class: *class,
            provider: &self.providers[*provider],
        })
    }

    /// Classify an address by the narrowest network that holds it.
    pub fn ip(&self, ip: &IpAddr) -> Option<Match<'_>> {
        let v4 = match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        let net = match v4 {
            Some(v4) => {
                let a = u32::from(v4);
                self.nets_v4
                    .iter()
                    .find(|&&(net, mask, _)| a & mask == net)
                    .map(|&(_, _, i)| &self.nets[i])
            }
            None => {
                let a = to_u128(ip);
                self.nets.iter().find(|n| in_net(a, n.addr, n.prefix))
            }
        };
        net.map(|n| Match {
            class: n.class,
            provider: &self.providers[n.provider],
        })
    }
}

fn to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(*v6),
        },
    }
}

fn in_net(a: u128, net: u128, prefix: u32) -> bool {
    prefix == 0 || (a ^ net) >> (128 - prefix) == 0
}

fn parse_cidr(s: &str) -> Option<(u128, u32)> {
    let (addr, prefix) = s.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    let (bits, offset) = match ip {
        IpAddr::V4(_) => (32, 96),
        IpAddr::V6(_) => (128, 0),
    };
    if prefix > bits {
        return None;
    }
    let full = prefix + offset;
    let a = to_u128(&ip);
    let masked = if full == 0 {
        0
    } else {
        a & (u128::MAX << (128 - full))
    };
    Some((masked, full))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "\
# test rules
suffix m365-frontend microsoft .mail.protection.outlook.com
suffix m365-outbound microsoft .outbound.protection.outlook.com
suffix m365-internal microsoft .prod.outlook.com
suffix seg proofpoint .pphosted.com   # customer relays
net m365-hrdp microsoft 40.95.0.0/16
net m365-outbound microsoft 40.92.0.0/15
net seg example 2001:db8::/32
";

    #[test]
    fn hosts_take_the_longest_suffix_at_a_label_boundary() {
        let r = Rules::parse(RULES).unwrap();
        let class = |h: &str| r.host(h.as_bytes()).map(|m| m.class);
        assert_eq!(class("mx0b-00123456.pphosted.com"), Some(HopClass::Seg));
        assert_eq!(class("PPHOSTED.COM."), Some(HopClass::Seg));
        assert_eq!(class("notpphosted.com"), None);
        assert_eq!(
            class("AM6EUR05FT012.eop-eur05.prod.protection.outlook.com"),
            None
        );
        assert_eq!(
            class("mail-am6eur05on2100.outbound.protection.outlook.com"),
            Some(HopClass::M365Outbound)
        );
        assert_eq!(
            class("DB8PR04MB1234.eurprd04.prod.outlook.com"),
            Some(HopClass::M365Internal)
        );
        assert_eq!(
            class("contoso-com.mail.protection.outlook.com"),
            Some(HopClass::M365Frontend)
        );
        assert_eq!(
            r.host(b"x.pphosted.com").map(|m| m.provider),
            Some("proofpoint")
        );
    }

    #[test]
    fn nested_suffixes_pick_the_longer_one() {
        let r = Rules::parse(
            "suffix freemail microsoft .outlook.com\nsuffix m365-internal microsoft .prod.outlook.com\n",
        )
        .unwrap();
        let class = |h: &str| r.host(h.as_bytes()).map(|m| m.class);
        assert_eq!(
            class("a.eurprd04.PROD.outlook.com"),
            Some(HopClass::M365Internal)
        );
        assert_eq!(class("prod.outlook.com"), Some(HopClass::M365Internal));
        assert_eq!(class("mail.outlook.com"), Some(HopClass::Freemail));
        assert_eq!(class("outlook.com"), Some(HopClass::Freemail));
        assert_eq!(class("xprod.outlook.com"), Some(HopClass::Freemail));
        assert_eq!(class("outlook.com.evil.net"), None);
        assert_eq!(class(&"a.".repeat(200)), None);
    }

    #[test]
    fn addresses_take_the_narrowest_network() {
        let r = Rules::parse(RULES).unwrap();
        let class = |ip: &str| r.ip(&ip.parse().unwrap()).map(|m| m.class);
        assert_eq!(class("40.95.12.3"), Some(HopClass::M365Hrdp));
        assert_eq!(class("40.93.1.1"), Some(HopClass::M365Outbound));
        assert_eq!(class("40.94.1.1"), None);
        assert_eq!(class("::ffff:40.95.0.1"), Some(HopClass::M365Hrdp));
        assert_eq!(class("2001:db8:1::5"), Some(HopClass::Seg));
        assert_eq!(class("2001:db9::5"), None);
    }

    #[test]
    fn bad_rules_name_their_line() {
        for bad in [
            "suffix m365-frontend microsoft",
            "suffix nonsense x .a.com",
            "net seg x 40.95.0.0/33",
            "host seg x .a.com",
        ] {
            let text = format!("# ok\n{bad}\n");
            match Rules::parse(&text) {
                Err(RulesError::Syntax { line: 2, .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn builtin_rules_parse_and_know_the_echospoofing_hosts() {
        let r = Rules::builtin();
        assert!(r.len() >= 10, "{} rules", r.len());
        let class = |h: &str| r.host(h.as_bytes()).map(|m| m.class);
        assert_eq!(class("mx0a-00252a01.pphosted.com"), Some(HopClass::Seg));
        assert_eq!(
            class("xyz.mail.protection.outlook.com"),
            Some(HopClass::M365Frontend)
        );
        assert_eq!(
            r.ip(&"40.95.1.2".parse().unwrap()).map(|m| m.class),
            Some(HopClass::M365Hrdp)
        );
    }

    /// The plain reading of the rule: the longest suffix that equals the name or ends it at a
    /// label boundary, compared without case.
    fn oracle<'r>(r: &'r Rules, host: &[u8]) -> Option<&'r str> {
        let host = host.strip_suffix(b".").unwrap_or(host).to_ascii_lowercase();
        if host.is_empty() || host.len() > 253 {
            return None;
        }
        r.suffixes
            .iter()
            .filter(|(p, _, _)| {
                let p = p.as_bytes();
                host.ends_with(p) || host == p[1..]
            })
            .max_by_key(|(p, _, _)| p.len())
            .map(|(p, _, _)| p.as_str())
    }

    proptest::proptest! {
        #[test]
        fn host_matching_agrees_with_the_plain_reading(
            labels in proptest::collection::vec(
                proptest::sample::select(&["pphosted", "com", "mx0a-1", "OUTLOOK", "prod", "protection",
                    "outbound", "mail", "", "x\u{e9}", "mimecast", "eop-nam11", "a"][..]),
                0..8,
            ),
            trailing_dot: bool,
        ) {
            let r = Rules::builtin();
            let mut host = labels.join(".");
            if trailing_dot {
                host.push('.');
            }
            let got = r.host(host.as_bytes()).map(|m| m.class);
            let want = oracle(&r, host.as_bytes()).map(|p| {
                r.suffixes.iter().find(|(q, _, _)| q == p).unwrap().1
            });
            proptest::prop_assert_eq!(got, want, "{}", host);
        }

        #[test]
        fn address_matching_agrees_with_the_plain_scan(a: u32, v6: u128, near in 0usize..4) {
            let r = Rules::parse(&format!(
                "{RULES}net seg wide ::/8\nnet seg all-v4 ::ffff:0:0/96\n"
            ))
            .unwrap();
            let builtin = Rules::builtin();
            // Addresses near the networks as well as anywhere.
            let v4 = match near {
                0 => a,
                1 => (40 << 24) | (95 << 16) | (a & 0xffff),
                2 => (40 << 24) | (a & 0x00ff_ffff),
                _ => (148 << 24) | (163 << 16) | (a & 0xffff),
            };
            for rules in [&r, &builtin] {
                for ip in [
                    IpAddr::V4(v4.into()),
                    IpAddr::V6(std::net::Ipv4Addr::from(v4).to_ipv6_mapped()),
                    IpAddr::V6(v6.into()),
                    IpAddr::V6((v6 >> 120).into()),
                ] {
                    let plain = rules
                        .nets
                        .iter()
                        .find(|n| in_net(to_u128(&ip), n.addr, n.prefix))
                        .map(|n| n.class);
                    proptest::prop_assert_eq!(rules.ip(&ip).map(|m| m.class), plain, "{}", ip);
                }
            }
        }

        #[test]
        fn random_names_never_panic(host in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let r = Rules::builtin();
            let _ = r.host(&host);
        }
    }
}
