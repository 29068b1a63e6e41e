//! DKIM body canonicalization and body hashes (RFC 6376 §3.4.3, §3.4.4, §3.5 `l=`).
//!
//! Takes a message body as it was on the wire (CRLF line ends) and gives the canonical body,
//! truncated to `l=` octets of the *canonical* form, as the RFC requires. mailcensus computes body
//! hashes itself because the verifier crate it uses cuts `l=` on the raw body and, in the version
//! that builds on this toolchain, mishandles trailing whitespace-only lines in relaxed mode.

/// Which body canonicalization a signature asks for (`c=.../simple` or `c=.../relaxed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyCanon {
    Simple,
    Relaxed,
}

/// Write the canonical form of `body` into `out` (cleared first). The body may be stored with LF
/// line ends (read as CRLF). With `unquote`, mbox `>From ` quoting is undone on the way (one `>`
/// dropped from every `^>+From ` line), so an mbox message needs no wire-form copy.
pub fn canonical_body(body: &[u8], canon: BodyCanon, unquote: bool, out: &mut Vec<u8>) {
    out.clear();
    match canon {
        BodyCanon::Simple => simple(body, unquote, out),
        BodyCanon::Relaxed => relaxed(body, unquote, out),
    }
}

/// A body line as it was before mbox quoting.
#[inline]
fn unquoted(line: &[u8], unquote: bool) -> &[u8] {
    if unquote && line.first() == Some(&b'>') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            return &line[1..];
        }
    }
    line
}

/// The first `l` octets of the canonical body (`l == 0` or absent means all of it).
pub fn limit(canonical: &[u8], l: Option<u64>) -> &[u8] {
    match l {
        Some(l) if (l as usize) < canonical.len() => &canonical[..l as usize],
        _ => canonical,
    }
}

/// Lines of a body: split on CRLF. A bare LF also ends a line (the message was converted to CRLF
/// before, so this only matters for robustness).
fn lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = body;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                Some(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => {
                let line = rest;
                rest = &[];
                Some(line)
            }
        }
    })
}

/// §3.4.3: the body unchanged except that trailing empty lines are removed and a body that is
/// empty or lacks a final CRLF gets one.
fn simple(body: &[u8], unquote: bool, out: &mut Vec<u8>) {
    let mut pending_empty = 0usize;
    for line in lines(body) {
        let line = unquoted(line, unquote);
        if line.is_empty() {
            pending_empty += 1;
            continue;
        }
        for _ in 0..pending_empty {
            out.extend_from_slice(b"\r\n");
        }
        pending_empty = 0;
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    if out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
}

/// §3.4.4: trailing whitespace of every line removed, runs of whitespace inside a line reduced
/// to one space, trailing empty lines removed; an empty body stays empty.
fn relaxed(body: &[u8], unquote: bool, out: &mut Vec<u8>) {
    let mut pending_empty = 0usize;
    let mut line_buf: Vec<u8> = Vec::new();
    let double_space = memchr::memmem::Finder::new(b"  ");
    for line in lines(body) {
        let line = unquoted(line, unquote);
        // Most lines need no change: no tab, no double space, no trailing space.
        if !line.is_empty()
            && !line.ends_with(b" ")
            && memchr::memchr(b'\t', line).is_none()
            && double_space.find(line).is_none()
        {
            for _ in 0..pending_empty {
                out.extend_from_slice(b"\r\n");
            }
            pending_empty = 0;
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
            continue;
        }
        line_buf.clear();
        let mut in_space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                in_space = true;
            } else {
                if in_space {
                    line_buf.push(b' ');
                    in_space = false;
                }
                line_buf.push(b);
            }
        }
        if line_buf.is_empty() {
            pending_empty += 1;
            continue;
        }
        for _ in 0..pending_empty {
            out.extend_from_slice(b"\r\n");
        }
        pending_empty = 0;
        out.extend_from_slice(&line_buf);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(body: &[u8], c: BodyCanon) -> Vec<u8> {
        let mut out = Vec::new();
        canonical_body(body, c, false, &mut out);
        out
    }

    #[test]
    fn rfc6376_section_3_4_5_example() {
        // The RFC's example body: " C \r\nD \t E\r\n\r\n\r\n"
        let body = b" C \r\nD \t E\r\n\r\n\r\n";
        assert_eq!(canon(body, BodyCanon::Relaxed), b" C\r\nD E\r\n");
        assert_eq!(canon(body, BodyCanon::Simple), b" C \r\nD \t E\r\n");
    }

    #[test]
    fn empty_and_unterminated_bodies() {
        assert_eq!(canon(b"", BodyCanon::Simple), b"\r\n");
        assert_eq!(canon(b"", BodyCanon::Relaxed), b"");
        assert_eq!(canon(b"\r\n\r\n", BodyCanon::Relaxed), b"");
        assert_eq!(canon(b"abc", BodyCanon::Simple), b"abc\r\n");
        assert_eq!(canon(b"abc", BodyCanon::Relaxed), b"abc\r\n");
        // whitespace-only lines at the end are empty lines in relaxed mode
        assert_eq!(canon(b"a\r\n \t\r\n  \r\n", BodyCanon::Relaxed), b"a\r\n");
        assert_eq!(
            canon(b"a\r\n \t\r\nb\r\n", BodyCanon::Relaxed),
            b"a\r\n\r\nb\r\n"
        );
    }

    /// The RFC's relaxed rules applied literally, for checking the fast paths.
    fn relaxed_reference(body: &[u8]) -> Vec<u8> {
        let text: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        for (i, l) in text.iter().enumerate() {
            if i + 1 == text.len() && l.is_empty() {
                break;
            }
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            let mut out = Vec::new();
            let mut ws = false;
            for &b in l {
                if b == b' ' || b == b'\t' {
                    ws = true;
                } else {
                    if ws {
                        out.push(b' ');
                    }
                    ws = false;
                    out.push(b);
                }
            }
            lines.push(out);
        }
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(&l);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn relaxed_matches_the_literal_rules(body in proptest::collection::vec(
            proptest::prop_oneof![proptest::prelude::Just(b' '), proptest::prelude::Just(b'\t'), proptest::prelude::Just(b'\r'), proptest::prelude::Just(b'\n'), proptest::prelude::Just(b'a'), proptest::prelude::Just(b'b')], 0..60)) {
            // Bodies reach the canonicalizer with CRLF line ends.
            let mut crlf = Vec::new();
            for &b in &body {
                if b == b'\n' { crlf.extend_from_slice(b"\r\n"); } else if b != b'\r' { crlf.push(b); }
            }
            proptest::prop_assert_eq!(canon(&crlf, BodyCanon::Relaxed), relaxed_reference(&crlf));
        }
    }

    #[test]
    fn lf_bodies_and_mbox_quoting() {
        assert_eq!(canon(b"a \nb\n\n", BodyCanon::Relaxed), b"a\r\nb\r\n");
        assert_eq!(canon(b"a \nb\n\n", BodyCanon::Simple), b"a \r\nb\r\n");
        let mut out = Vec::new();
        canonical_body(
            b">From x\n>>From y\n>Fromage\n",
            BodyCanon::Simple,
            true,
            &mut out,
        );
        assert_eq!(out, b"From x\r\n>From y\r\n>Fromage\r\n");
    }

    #[test]
    fn length_limit_counts_canonical_octets() {
        let c = canon(b"a  b\r\n", BodyCanon::Relaxed);
        assert_eq!(limit(&c, Some(3)), b"a b");
        assert_eq!(limit(&c, Some(100)), b"a b\r\n");
        assert_eq!(limit(&c, None), b"a b\r\n");
    }
}
