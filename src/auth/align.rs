//! Organizational domains and DKIM alignment (RFC 7489 §3.1.1, §3.2).
//!
//! Takes domain names and gives their organizational domain under the Public Suffix List, and
//! whether a passing signature's `d=` is aligned with the From domain.

/// The organizational domain of `domain` (RFC 7489 §3.2): its registrable domain under the
/// Public Suffix List (the `psl` crate's built-in copy), lowercased; the domain itself when the
/// list has no answer.
pub fn organizational_domain(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&d).map(str::to_string).unwrap_or(d)
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
}
