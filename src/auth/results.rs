//! The trap's own `Authentication-Results` (RFC 8601): what the receiving server recorded for
//! DKIM, SPF and DMARC when the message arrived, to set beside today's verification.
//!
//! Takes one Authentication-Results field value and gives the recorded result per method.

/// Results recorded for the methods mailcensus reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// `pass` if any `dkim=pass` was recorded, else the first `dkim=` result.
    pub dkim: Option<String>,
    pub spf: Option<String>,
    pub dmarc: Option<String>,
    /// The domains of the `dkim=pass` statements (`header.d=`, else the domain of `header.i=`),
    /// lowercased, so that alignment with the From domain can be judged; at most
    /// [`MAX_PASS_DOMAINS`].
    pub dkim_pass_domains: Vec<String>,
}

/// The most passing-signature domains kept from one field.
pub const MAX_PASS_DOMAINS: usize = 8;

impl Recorded {
    /// Whether the recorded results show a DKIM pass aligned with `from_org` (the From domain's
    /// organizational domain): a passing statement's domain in that organization, or — when the
    /// receiver named no domain for its passes — a recorded `dmarc=pass`. `org_of` gives a
    /// domain's organizational domain.
    pub fn aligned_dkim_pass(&self, from_org: &str, org_of: impl Fn(&str) -> String) -> bool {
        if self.dkim.as_deref() != Some("pass") || from_org.is_empty() {
            return false;
        }
        if self.dkim_pass_domains.is_empty() {
            return self.dmarc.as_deref() == Some("pass");
        }
        self.dkim_pass_domains.iter().any(|d| org_of(d) == from_org)
    }
}

/// Read the `method=result` statements of an Authentication-Results value. Comments in
/// parentheses are ignored, results are lowercased; the authserv-id before the first `;` and
/// property values (`header.d=...`) are not methods.
pub fn parse(value: &[u8]) -> Recorded {
    let text = strip_comments(value);
    let mut recorded = Recorded::default();
    // The first element is the authserv-id (and an optional version) — except in Microsoft's
    // fields, which start right with `spf=...`: a first token with `=` is a method.
    for statement in text.split(';') {
        let statement = statement.trim();
        let Some(first) = statement.split_whitespace().next() else {
            continue;
        };
        let Some((method, result)) = first.split_once('=') else {
            continue;
        };
        // `dkim/1=pass` carries a version.
        let method = method.split('/').next().unwrap_or("").to_ascii_lowercase();
        let result = result.trim().to_ascii_lowercase();
        if result.is_empty() {
            continue;
        }
        match method.as_str() {
            "dkim" if recorded.dkim.is_none() || result == "pass" => {
                if result == "pass"
                    && recorded.dkim_pass_domains.len() < MAX_PASS_DOMAINS
                    && let Some(domain) = signing_domain(statement)
                {
                    recorded.dkim_pass_domains.push(domain);
                }
                recorded.dkim = Some(result);
            }
            "spf" => {
                recorded.spf.get_or_insert(result);
            }
            "dmarc" => {
                recorded.dmarc.get_or_insert(result);
            }
            _ => {}
        }
    }
    recorded
}

/// The signing domain a `dkim=` statement names: its `header.d=` property, else the domain
/// part of `header.i=` (RFC 8601 §2.7.1 and §2.3).
fn signing_domain(statement: &str) -> Option<String> {
    let mut from_i = None;
    for property in statement.split_whitespace().skip(1) {
        let Some((name, value)) = property.split_once('=') else {
            continue;
        };
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "header.d" => return clean_domain(value),
            "header.i" if from_i.is_none() => {
                from_i = value.rsplit_once('@').map_or(Some(value), |(_, d)| Some(d));
            }
            _ => {}
        }
    }
    from_i.and_then(clean_domain)
}

fn clean_domain(d: &str) -> Option<String> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    (!d.is_empty() && d.contains('.') && d.bytes().all(|b| b.is_ascii_graphic())).then_some(d)
}

/// The value with `(comments)` removed (they nest) and line breaks made spaces.
fn strip_comments(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    for &b in value {
        match b {
            b'"' if depth == 0 => {
                in_quote = !in_quote;
                out.push('"');
            }
            b'(' if !in_quote => depth += 1,
            b')' if !in_quote && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            b'\r' | b'\n' | b'\t' => out.push(' '),
            b if b.is_ascii() => out.push(b as char),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmail_style_results() {
        let v = b" mx.google.com;\r\n       dkim=pass header.i=@example.com header.s=s1 header.b=abc;\r\n       spf=pass (google.com: domain of a@example.com designates 1.2.3.4 as permitted sender) smtp.mailfrom=a@example.com;\r\n       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com";
        let r = parse(v);
        assert_eq!(r.dkim.as_deref(), Some("pass"));
        assert_eq!(r.spf.as_deref(), Some("pass"));
        assert_eq!(r.dmarc.as_deref(), Some("pass"));
    }

    #[test]
    fn first_dkim_result_unless_one_passes() {
        let r = parse(b"mx.example; dkim=fail header.d=a.example; dkim=pass header.d=b.example");
        assert_eq!(r.dkim.as_deref(), Some("pass"));
        let r = parse(b"mx.example; dkim=neutral (no key) header.d=a.example; spf=softfail");
        assert_eq!(r.dkim.as_deref(), Some("neutral"));
        assert_eq!(r.spf.as_deref(), Some("softfail"));
        assert_eq!(r.dmarc, None);
    }

    #[test]
    fn authserv_id_and_comments_are_not_methods() {
        let r = parse(b"mx.example (dkim=pass in a comment); none");
        assert_eq!(r, Recorded::default());
        let r = parse(b"mx.example 1; dkim/1=PASS");
        assert_eq!(r.dkim.as_deref(), Some("pass"));
    }

    #[test]
    fn microsoft_fields_without_authserv_id() {
        let r = parse(b"spf=pass (sender IP is 40.107.1.2)\r\n smtp.mailfrom=x.example; dkim=none (message not signed)\r\n header.d=none;dmarc=none action=none header.from=x.example;compauth=pass reason=100");
        assert_eq!(r.spf.as_deref(), Some("pass"));
        assert_eq!(r.dkim.as_deref(), Some("none"));
        assert_eq!(r.dmarc.as_deref(), Some("none"));
    }

    #[test]
    fn passing_signature_domains_are_kept_for_alignment() {
        // The last two labels: enough of an organizational domain for these names.
        let org = |d: &str| {
            let labels: Vec<&str> = d.rsplitn(3, '.').collect();
            match labels.as_slice() {
                [tld, name, ..] => format!("{name}.{tld}"),
                _ => d.to_string(),
            }
        };
        let r = parse(b"mx.trap.example; dkim=pass header.d=Mail.Nike.com header.s=s1; spf=pass");
        assert_eq!(r.dkim_pass_domains, ["mail.nike.com"]);
        assert!(r.aligned_dkim_pass(&org("nike.com"), org));
        assert!(!r.aligned_dkim_pass(&org("adidas.com"), org));
        let r = parse(b"mx.trap.example; dkim=pass header.i=@brand.example; dmarc=fail");
        assert_eq!(r.dkim_pass_domains, ["brand.example"]);
        assert!(r.aligned_dkim_pass(&org("brand.example"), org));
        // A pass for a third party is not aligned, even when DMARC passed (by SPF).
        let r = parse(b"mx.trap.example; dkim=pass header.d=esp.example; dmarc=pass");
        assert!(!r.aligned_dkim_pass(&org("brand.example"), org));
        // No domain named: DMARC's verdict stands in for alignment.
        let r = parse(b"mx.trap.example; dkim=pass; dmarc=pass");
        assert!(r.aligned_dkim_pass(&org("brand.example"), org));
        let r = parse(b"mx.trap.example; dkim=pass");
        assert!(!r.aligned_dkim_pass(&org("brand.example"), org));
        let r = parse(b"mx.trap.example; dkim=fail header.d=brand.example; dmarc=pass");
        assert!(!r.aligned_dkim_pass(&org("brand.example"), org));
    }

    #[test]
    fn arc_instance_tag_is_not_a_method() {
        let r = parse(b"i=1; mx.google.com; dkim=pass header.i=@nike.com; spf=pass; dmarc=pass");
        assert_eq!(r.dkim.as_deref(), Some("pass"));
        assert_eq!(r.dmarc.as_deref(), Some("pass"));
        assert_eq!(r.dkim_pass_domains, ["nike.com"]);
    }

    #[test]
    fn garbage_never_panics() {
        for v in [
            &b""[..],
            b";;;",
            b"((((",
            b"x; =; a=; =b",
            b"\xff\xfe; dkim=\xff",
        ] {
            let _ = parse(v);
        }
    }
}
