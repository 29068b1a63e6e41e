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
