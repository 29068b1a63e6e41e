//! The message as it was on the wire, and the DKIM-Signature fields of its header block.
//!
//! Takes a message as stored (mboxrd `>From ` quoting, LF or CRLF line ends) and gives its wire
//! form (CRLF, unquoted), the length of its header block, and the DKIM-Signature fields a lenient
//! reader finds there, so that every signature gets a verdict even where mail-auth's parser
//! stops.

/// The DKIM-Signature fields of a wire-form header block: each field's address range, its
/// value, and why a parser that stops at malformed lines may not reach it.
pub(super) fn signature_fields(header: &[u8]) -> Vec<(std::ops::Range<usize>, &[u8], String)> {
    let base = header.as_ptr() as usize;
    let mut fields = Vec::new();
    let mut bad_line: Option<usize> = None;
    let mut current: Option<(usize, usize)> = None; // (field start, value start)
    let mut finish = |current: Option<(usize, usize)>, end: usize, bad: Option<usize>| {
        if let Some((start, value)) = current {
            let why = match bad {
                Some(line) => format!(
                    "header line {line} has no colon (RFC 5322 §2.2): the header block is \
                     malformed before this signature, which cannot be verified"
                ),
                None => "signature field not parsed".to_string(),
            };
            fields.push((base + start..base + end, &header[value..end], why));
        }
    };
    let mut start = 0;
    let mut line_no = 0;
    while start < header.len() {
        let end = memchr::memchr(b'\n', &header[start..]).map_or(header.len(), |i| start + i + 1);
        let line = &header[start..end];
        line_no += 1;
        let content = line.trim_ascii_end();
        if content.is_empty() {
            break;
        }
        if matches!(line[0], b' ' | b'\t') && line_no > 1 {
            // A continuation of the field above (folding, RFC 5322 §2.2.3).
            start = end;
            continue;
        }
        finish(current.take(), start, bad_line);
        match memchr::memchr(b':', line) {
            Some(colon) if !matches!(line[0], b' ' | b'\t') => {
                if line[..colon]
                    .trim_ascii()
                    .eq_ignore_ascii_case(b"DKIM-Signature")
                {
                    current = Some((start, start + colon + 1));
                }
            }
            _ => {
                bad_line.get_or_insert(line_no);
            }
        }
        start = end;
    }
    finish(current.take(), start.min(header.len()), bad_line);
    fields
}

/// Length of the header block of a stored message, its blank line included (LF or CRLF); the
/// whole message when it has no body.
pub(super) fn header_block_len(stored: &[u8]) -> usize {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', stored) {
        let line = &stored[start..nl];
        if line.is_empty() || line == b"\r" {
            return nl + 1;
        }
        start = nl + 1;
    }
    stored.len()
}

/// The message as it was on the wire: mboxrd `>From ` quoting removed (when `unquote`), bare LF
/// turned into CRLF. Borrowed when nothing needs changing.
pub fn wire_form<'a>(msg: &'a [u8], unquote: bool, buf: &'a mut Vec<u8>) -> &'a [u8] {
    let unquoted = if unquote {
        crate::split::unquote_mboxrd(msg)
    } else {
        std::borrow::Cow::Borrowed(msg)
    };
    let needs_crlf =
        memchr::memchr_iter(b'\n', &unquoted).any(|i| i == 0 || unquoted[i - 1] != b'\r');
    if !needs_crlf {
        return match unquoted {
            std::borrow::Cow::Borrowed(b) => b,
            std::borrow::Cow::Owned(v) => {
                *buf = v;
                buf
            }
        };
    }
    buf.clear();
    buf.reserve(unquoted.len() + unquoted.len() / 32);
    // Copy line by line (memchr), adding the CR that a bare LF lacks.
    let mut from = 0;
    for nl in memchr::memchr_iter(b'\n', &unquoted) {
        buf.extend_from_slice(&unquoted[from..nl]);
        if nl == 0 || unquoted[nl - 1] != b'\r' {
            buf.push(b'\r');
        }
        buf.push(b'\n');
        from = nl + 1;
    }
    buf.extend_from_slice(&unquoted[from..]);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_converts_lf_and_unquotes() {
        let mut buf = Vec::new();
        assert_eq!(wire_form(b"a\r\nb\r\n", true, &mut buf), b"a\r\nb\r\n");
        let mut buf = Vec::new();
        assert_eq!(
            wire_form(b"a\n>From x\n", true, &mut buf),
            b"a\r\nFrom x\r\n"
        );
        let mut buf = Vec::new();
        assert_eq!(
            wire_form(b"a\n>From x\n", false, &mut buf),
            b"a\r\n>From x\r\n"
        );
    }
}
