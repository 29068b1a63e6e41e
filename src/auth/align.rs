//! Registrable and organizational domains, and DKIM alignment (RFC 7489 §3.1.1, §3.2).
//!
//! Takes domain names and gives their registrable domain under the Public Suffix List (the `psl`
//! crate's built-in copy) — the one implementation for the whole crate: the organizational
//! domains of DMARC alignment and brands here, the landing domains of campaign evidence in
//! [`crate::classify::evidence`] — and whether a passing signature's `d=` is aligned with the
//! From domain.

/// Which names count as public suffixes for [`registrable_domain`]: the two readings the crate
/// uses, each giving the answers its callers have always had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suffixes {
    /// The list with its default rule (`*`): a top-level label the list does not have is a
    /// public suffix as well, as DMARC reads it (RFC 7489 §3.2), so every name with two labels
    /// or more has an organizational domain.
    ListOrTopLevel,
    /// Only suffixes the list has, plus the names reserved for documentation and testing
    /// (`example.com`, `example.net`, `example.org`, `example`, `test`, `invalid`): a name under
    /// no known suffix (`internet.e-mail` from a browser's "saved from" comment, a typo) names
    /// nothing anyone registered, and has none.
    KnownOrReserved,
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

/// The registrable domain of `host`: one label below its public suffix, as `suffixes` counts
/// them; None when `host` is a suffix itself or (with [`Suffixes::KnownOrReserved`]) under no
/// known one. `host` is read as written — the list is lower case, and a trailing dot stays on
/// the answer — so callers normalize first when their input needs it.
pub fn registrable_domain(host: &str, suffixes: Suffixes) -> Option<&str> {
    let known_only = suffixes == Suffixes::KnownOrReserved;
    if known_only {
        for suffix in RESERVED_SUFFIXES {
            if let Some(rest) = host.strip_suffix(suffix)
                && let Some(rest) = rest.strip_suffix('.')
            {
                let label_start = rest.rfind('.').map_or(0, |i| i + 1);
                return (!rest.is_empty()).then(|| &host[label_start..]);
            }
        }
    }
    let domain = psl::domain(host.as_bytes())?;
    if known_only && !domain.suffix().is_known() {
        return None;
    }
    std::str::from_utf8(domain.as_bytes()).ok()
}

/// The organizational domain of `domain` (RFC 7489 §3.2): its registrable domain under the
/// Public Suffix List read with its default rule ([`Suffixes::ListOrTopLevel`]), lowercased; the
/// domain itself when the list has no answer.
pub fn organizational_domain(domain: &str) -> String {
    // Without trailing dots, so the list's answer has none either.
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    registrable_domain(&d, Suffixes::ListOrTopLevel)
        .map(str::to_string)
        .unwrap_or(d)
}

/// [`organizational_domain`] appended to `out`. A name already in its normal form (lower case,
/// no surrounding blanks or trailing dot: nearly every From domain) is looked up as it is,
/// without a copy; anything else goes through [`organizational_domain`], the oracle.
pub fn push_organizational_domain(domain: &str, out: &mut String) {
    let normal = !domain.is_empty()
        && !domain.ends_with(['.', ' ', '\t'])
        && !domain.starts_with([' ', '\t'])
        && !domain.bytes().any(|b| b.is_ascii_uppercase());
    if normal {
        out.push_str(registrable_domain(domain, Suffixes::ListOrTopLevel).unwrap_or(domain));
    } else {
        out.push_str(&organizational_domain(domain));
    }
}

/// Relaxed DKIM alignment (RFC 7489 §3.1.1): a passing signature's `d=` shares the organizational
/// domain of the From domain.
pub fn dkim_aligned(from_domain: &str, passing_domains: &[&str]) -> bool {
    if from_domain.is_empty() {
        return false;
    }
    let from = organizational_domain(from_domain);
    passing_domains
        .iter()
        .any(|d| organizational_domain(d) == from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_free_organizational_domain_agrees_with_the_plain_one() {
        for d in [
            "mail.shop.example",
            "Mail.Shop.Example",
            "shop.co.uk.",
            " a.b.co.uk",
            "x.blogspot.com",
            "com",
            "localhost",
            "a..b",
            "\u{e9}cole.fr",
            "xn--e1afmkfd.xn--p1ai",
            "a.b.c.d.e.f",
            "bestbuy.com",
            "em.bestbuy.com",
            "123.45.67.89",
            "[1.2.3.4]",
            "",
        ] {
            let mut fast = String::from("kept:");
            push_organizational_domain(d, &mut fast);
            assert_eq!(fast, format!("kept:{}", organizational_domain(d)), "{d:?}");
        }
    }
    use proptest::prelude::*;

    #[test]
    fn organizational_domains() {
        assert_eq!(organizational_domain("mail.Example.COM."), "example.com");
        assert_eq!(organizational_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(
            organizational_domain("mta2.firstmart-news.test"),
            "firstmart-news.test"
        );
        assert!(dkim_aligned("news.bestbuy.com", &["bestbuy.com"]));
        assert!(dkim_aligned("bestbuy.com", &["e.bestbuy.com"]));
        assert!(!dkim_aligned("bestbuy.com", &["bestbuy.co.uk"]));
        assert!(!dkim_aligned("", &["x.com"]));
    }

    #[test]
    fn the_two_readings_of_the_list() {
        let both = |h| {
            (
                registrable_domain(h, Suffixes::ListOrTopLevel),
                registrable_domain(h, Suffixes::KnownOrReserved),
            )
        };
        assert_eq!(
            both("www.news.bbc.co.uk"),
            (Some("bbc.co.uk"), Some("bbc.co.uk"))
        );
        assert_eq!(
            both("a.b.example.com"),
            (Some("example.com"), Some("b.example.com"))
        );
        assert_eq!(both("internet.e-mail"), (Some("internet.e-mail"), None));
        assert_eq!(both("co.uk"), (None, None));
        assert_eq!(
            both("x.example.com."),
            (Some("example.com."), Some("example.com."))
        );
    }

    /// Host names as they come: labels of letters, digits and hyphens (any case, now and then
    /// an empty one), under a suffix that is on the list (plain, multi-label, private, wildcard
    /// and exception rules), reserved, or unknown; sometimes with trailing dots or blanks.
    fn host_names() -> impl Strategy<Value = String> {
        let label = prop_oneof![
            8 => "[a-zA-Z0-9-]{1,12}",
            1 => Just(String::new()),
        ];
        let suffix = prop::sample::select(vec![
            "com",
            "COM",
            "co.uk",
            "github.io",
            "org",
            "de",
            "top",
            "jp",
            "kawasaki.jp",
            "www.ck",
            "ck",
            "blogspot.com",
            "example.com",
            "Example.COM",
            "example.net",
            "example.org",
            "example",
            "test",
            "invalid",
            "e-mail",
            "localdomain",
            "",
        ]);
        (
            prop::collection::vec(label, 0..4),
            suffix,
            prop::sample::select(vec!["", "", "", ".", ".."]),
            prop::sample::select(vec!["", "", "", " "]),
            any::<bool>(),
        )
            .prop_map(|(labels, suffix, dots, blank, upper)| {
                let mut name = labels.join(".");
                if !suffix.is_empty() {
                    if !labels.is_empty() {
                        name.push('.');
                    }
                    name.push_str(suffix);
                }
                if upper {
                    name = name.to_ascii_uppercase();
                }
                format!("{blank}{name}{dots}{blank}")
            })
    }

    /// `organizational_domain` as it was before [`registrable_domain`] existed.
    fn organizational_domain_before(domain: &str) -> String {
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        psl::domain_str(&d).map(str::to_string).unwrap_or(d)
    }

    /// `classify::evidence::registrable` as it was before it called [`registrable_domain`].
    fn evidence_registrable_before(host: &str) -> Option<&str> {
        const RESERVED_SUFFIXES: [&str; 6] = [
            "example.com",
            "example.net",
            "example.org",
            "example",
            "test",
            "invalid",
        ];
        for suffix in RESERVED_SUFFIXES {
            if let Some(rest) = host.strip_suffix(suffix)
                && let Some(rest) = rest.strip_suffix('.')
            {
                let label_start = rest.rfind('.').map_or(0, |i| i + 1);
                return (!rest.is_empty()).then(|| &host[label_start..]);
            }
        }
        let domain = psl::domain(host.as_bytes())?;
        if !domain.suffix().is_known() {
            return None;
        }
        std::str::from_utf8(domain.as_bytes()).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// One implementation, and both callers' answers as they were.
        #[test]
        fn both_readings_answer_as_before(host in host_names()) {
            prop_assert_eq!(organizational_domain(&host), organizational_domain_before(&host));
            prop_assert_eq!(
                registrable_domain(&host, Suffixes::KnownOrReserved),
                evidence_registrable_before(&host)
            );
            // The link evidence reads hosts trimmed of dots and blanks.
            let trimmed = host.trim().trim_matches('.');
            prop_assert_eq!(
                registrable_domain(trimmed, Suffixes::KnownOrReserved),
                evidence_registrable_before(trimmed)
            );
        }
    }
}
