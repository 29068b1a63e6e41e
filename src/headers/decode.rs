//! Header text for output: takes a raw header field value (bytes as found in
//! the message, possibly folded, possibly RFC 2047 encoded, possibly not UTF-8)
//! and gives one line of UTF-8 text for a CSV cell plus a flag telling whether
//! anything had to be replaced or guessed.

use std::borrow::Cow;
use std::cell::RefCell;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use encoding_rs::{CoderResult, Encoding, ISO_2022_JP, SHIFT_JIS, UTF_8};

/// Text ready for a CSV cell, plus whether anything had to be replaced or guessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub text: String,
    pub lossy: bool,
}

fn is_wsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn trim_wsp(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_wsp(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_wsp(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Where an RFC 2047 encoded word may start. Built once: a searcher's set-up costs more than
/// searching a short header value.
static ENCODED_WORD_START: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"=?"));

/// Unfold a raw header field value (may contain CRLF/LF followed by space/tab;
/// a CR or LF not followed by WSP also counts as a fold) into one line: each
/// line break and the whitespace run around it become a single space;
/// leading/trailing whitespace trimmed. Zero-copy (`Cow::Borrowed`) when there
/// is nothing to change.
pub fn unfold(raw: &[u8]) -> Cow<'_, [u8]> {
    let s = trim_wsp(raw);
    if memchr::memchr2(b'\r', b'\n', s).is_none() {
        return Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len());
    push_unfolded(s, &mut out);
    Cow::Owned(out)
}

/// Appends `s` with every whitespace run that contains a line break replaced
/// by one space. Shared by `unfold` and the raw-text path of `decode_text` so
/// the two cannot disagree about what a fold is.
fn push_unfolded(s: &[u8], out: &mut Vec<u8>) {
    let mut pos = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &s[pos..]) {
        let brk = pos + off;
        let mut run_start = brk;
        while run_start > pos && matches!(s[run_start - 1], b' ' | b'\t') {
            run_start -= 1;
        }
        let mut run_end = brk;
        while run_end < s.len() && is_wsp(s[run_end]) {
            run_end += 1;
        }
        out.extend_from_slice(&s[pos..run_start]);
        out.push(b' ');
        pos = run_end;
    }
    out.extend_from_slice(&s[pos..]);
}

/// `str` flavour of `push_unfolded`; a whitespace run is ASCII, so cutting
/// around it never splits a character.
fn push_unfolded_str(s: &str, out: &mut String) {
    let b = s.as_bytes();
    let mut pos = 0;
    while let Some(off) = memchr::memchr2(b'\r', b'\n', &b[pos..]) {
        let brk = pos + off;
        let mut run_start = brk;
        while run_start > pos && matches!(b[run_start - 1], b' ' | b'\t') {
            run_start -= 1;
        }
        let mut run_end = brk;
        while run_end < b.len() && is_wsp(b[run_end]) {
            run_end += 1;
        }
        out.push_str(&s[pos..run_start]);
        out.push(' ');
        pos = run_end;
    }
    out.push_str(&s[pos..]);
}

/// Which charset a run of encoded words is in. Unknown labels are compared by
/// name so that two adjacent words in the same unknown charset are still
/// joined before the lossy fallback.
#[derive(Clone, Copy)]
enum Charset<'a> {
    Known(&'static Encoding),
    /// Not in encoding_rs (the WHATWG list leaves it out) but used by
    /// Outlook-era mailers, so decoded here.
    Utf7,
    Unknown(&'a [u8]),
}

impl Charset<'_> {
    fn same(&self, other: &Charset<'_>) -> bool {
        match (self, other) {
            (Charset::Known(a), Charset::Known(b)) => a == b,
            (Charset::Utf7, Charset::Utf7) => true,
            (Charset::Unknown(a), Charset::Unknown(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

struct EncodedWord<'a> {
    charset: Charset<'a>,
    base64: bool,
    text: &'a [u8],
    /// Index just past the closing `?=`.
    end: usize,
}

/// Longest charset label accepted; real labels are far shorter, and the bound
/// keeps a stray `=?` from turning a long run of text into a "label".
const MAX_LABEL: usize = 64;

/// Recognise an encoded word starting at `start` (which points at `=?`).
/// Lenient on purpose: no requirement for surrounding whitespace, any case,
/// and spaces inside the text are accepted because broken senders emit them.
fn parse_encoded_word(s: &[u8], start: usize) -> Option<EncodedWord<'_>> {
    let label_start = start + 2;
    let rest = s.get(label_start..)?;
    let q1 = rest.iter().take(MAX_LABEL + 1).position(|&b| b == b'?')?;
    let label = &rest[..q1];
    if label.is_empty() || label.iter().any(|&b| is_wsp(b) || b == b'=') {
        return None;
    }
    let enc = *rest.get(q1 + 1)?;
    let base64 = match enc {
        b'B' | b'b' => true,
        b'Q' | b'q' => false,
        _ => return None,
    };
    if rest.get(q1 + 2) != Some(&b'?') {
        return None;
    }
    let text_start = label_start + q1 + 3;
    // '?' is not allowed inside encoded text, so the first one must close it.
    let q2 = memchr::memchr(b'?', s.get(text_start..)?)?;
    let text_end = text_start + q2;
    if s.get(text_end + 1) != Some(&b'=') {
        return None;
    }
    // RFC 2231 allows `charset*language`; the language is irrelevant here.
    let label = match memchr::memchr(b'*', label) {
        Some(star) => &label[..star],
        None => label,
    };
    let charset = match Encoding::for_label(label) {
        Some(e) => Charset::Known(e),
        None if label.eq_ignore_ascii_case(b"utf-7") || label.eq_ignore_ascii_case(b"utf7") => {
            Charset::Utf7
        }
        None => Charset::Unknown(label),
    };
    Some(EncodedWord {
        charset,
        base64,
        text: &s[text_start..text_end],
        end: text_end + 2,
    })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the bytes of Q-encoded text; returns false if it was malformed.
fn decode_q(text: &[u8], out: &mut Vec<u8>) -> bool {
    let mut ok = true;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'_' => {
                out.push(b' ');
                i += 1;
            }
            b'=' => {
                let hi = text.get(i + 1).copied().and_then(hex_val);
                let lo = text.get(i + 2).copied().and_then(hex_val);
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                } else {
                    out.push(b'=');
                    ok = false;
                    i += 1;
                }
            }
            // A line break inside an encoded word is a fold the sender put in
            // the wrong place, not content.
            b'\r' | b'\n' => {
                i += 1;
                while i < text.len() && matches!(text[i], b' ' | b'\t') {
                    i += 1;
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    ok
}

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Appends the bytes of B-encoded text; returns false if anything had to be
/// dropped. Each `=`-terminated chunk is decoded on its own because senders
/// sometimes glue several padded base64 strings together.
fn decode_b(text: &[u8], out: &mut Vec<u8>) -> bool {
    let mut ok = true;
    // Four sextets at a time keeps the working set on the stack.
    let mut quad = [0u8; 4];
    let mut n = 0;
    let flush = |quad: &[u8], out: &mut Vec<u8>, ok: &mut bool| {
        match quad.len() {
            0 => {}
            // A single leftover sextet cannot carry a byte.
            1 => *ok = false,
            _ => {
                let mut buf = [0u8; 3];
                match B64.decode_slice(quad, &mut buf) {
                    Ok(len) => out.extend_from_slice(&buf[..len]),
                    Err(_) => *ok = false,
                }
            }
        }
    };
    for &b in text {
        let c = match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => b,
            // URL-safe alphabet shows up in some bulk mailers.
            b'-' => b'+',
            b'_' => b'/',
            b'=' => {
                flush(&quad[..n], out, &mut ok);
                n = 0;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => {
                ok = false;
                continue;
            }
        };
        quad[n] = c;
        n += 1;
        if n == 4 {
            flush(&quad, out, &mut ok);
            n = 0;
        }
    }
    flush(&quad[..n], out, &mut ok);
    ok
}

/// Decodes `bytes` in `charset` onto the end of `out`; returns true if
/// anything was replaced or guessed.
fn decode_charset(charset: Charset<'_>, bytes: &[u8], out: &mut String) -> bool {
    match charset {
        // ISO-2022-JP is 7-bit; high bytes under that label are, in Japanese
        // spam, Shift_JIS sent with the wrong label. Reading them as such is
        // a guess, hence lossy.
        Charset::Known(enc) if enc == ISO_2022_JP && bytes.iter().any(|&b| b >= 0x80) => {
            decode_charset(Charset::Known(SHIFT_JIS), bytes, out);
            true
        }
        Charset::Known(enc) => {
            if enc == UTF_8
                && let Ok(s) = std::str::from_utf8(bytes)
            {
                out.push_str(s.strip_prefix('\u{FEFF}').unwrap_or(s));
                return false;
            }
            let mut decoder = enc.new_decoder_with_bom_removal();
            let mut replaced_any = false;
            let mut src = bytes;
            loop {
                let need = decoder
                    .max_utf8_buffer_length(src.len())
                    .unwrap_or(src.len().saturating_mul(3))
                    .max(16);
                out.reserve(need);
                let (result, read, replaced) = decoder.decode_to_string(src, out, true);
                replaced_any |= replaced;
                src = src.get(read..).unwrap_or_default();
                if let CoderResult::InputEmpty = result {
                    break;
                }
            }
            replaced_any
        }
        Charset::Utf7 => decode_utf7(bytes, out),
        Charset::Unknown(_) => {
            push_lossy(bytes, out);
            true
        }
    }
}

fn b64_val(c: u8) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    }))
}

/// RFC 2152 UTF-7: `+` opens base64 of UTF-16BE up to the first non-base64
/// byte (a closing `-` is absorbed), `+-` is a literal `+`. Returns true if
/// anything was replaced.
fn decode_utf7(bytes: &[u8], out: &mut String) -> bool {
    let mut replaced = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'+' {
            if bytes.get(i + 1) == Some(&b'-') {
                out.push('+');
                i += 2;
                continue;
            }
            let run_len = bytes[i + 1..]
                .iter()
                .take_while(|&&c| b64_val(c).is_some())
                .count();
            let run = &bytes[i + 1..i + 1 + run_len];
            let (mut bits, mut nbits, mut k) = (0u32, 0u32, 0usize);
            let units = std::iter::from_fn(|| {
                while nbits < 16 {
                    let v = b64_val(*run.get(k)?)?;
                    k += 1;
                    // At most 21 significant bits are ever pending.
                    bits = (bits << 6 | v) & 0x3F_FFFF;
                    nbits += 6;
                }
                nbits -= 16;
                Some((bits >> nbits) as u16)
            });
            for c in char::decode_utf16(units) {
                out.push(c.unwrap_or_else(|_| {
                    replaced = true;
                    '\u{FFFD}'
                }));
            }
            i += 1 + run_len;
            if bytes.get(i) == Some(&b'-') {
                i += 1;
            }
        } else if b < 0x80 {
            out.push(char::from(b));
            i += 1;
        } else {
            out.push('\u{FFFD}');
            replaced = true;
            i += 1;
        }
    }
    replaced
}

/// UTF-8 with invalid sequences replaced, without the intermediate `Cow`
/// allocation of `String::from_utf8_lossy`. Returns true if anything was replaced.
fn push_lossy(bytes: &[u8], out: &mut String) -> bool {
    let mut replaced = false;
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            out.push('\u{FFFD}');
            replaced = true;
        }
    }
    replaced
}

/// Raw (not encoded) header bytes: unfolded and made valid UTF-8.
fn push_raw(bytes: &[u8], out: &mut String) -> bool {
    let mut replaced = false;
    for chunk in bytes.utf8_chunks() {
        push_unfolded_str(chunk.valid(), out);
        if !chunk.invalid().is_empty() {
            out.push('\u{FFFD}');
            replaced = true;
        }
    }
    replaced
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7F
}

/// A CSV cell must stay on one line, so control bytes become spaces. Swapping
/// one ASCII byte for another keeps the string valid UTF-8, which is why this
/// can work in place.
fn blank_controls(s: String) -> String {
    if !s.bytes().any(is_ctl) {
        return s;
    }
    let mut bytes = s.into_bytes();
    for b in bytes.iter_mut() {
        if is_ctl(*b) {
            *b = b' ';
        }
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        // Unreachable in practice; degrade instead of panicking.
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

thread_local! {
    /// Byte buffer for joining consecutive encoded words before charset
    /// decoding; reused so that decoding allocates only its output.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Scratch buffers above this size are released after use rather than kept
/// per thread for the life of the program.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Decode an unstructured header value (Subject, X-Mailer, display names...)
/// for output: unfold, then decode RFC 2047 encoded words
/// `=?charset?Q|B?text?=`.
///
/// Whitespace between two adjacent encoded words is dropped, whitespace
/// between an encoded word and plain text kept. Consecutive encoded words in
/// the same charset are joined at the byte level before charset decoding,
/// because senders split multi-byte characters across words. Raw bytes that
/// are not UTF-8, malformed encodings, unknown charsets and malformed bytes in
/// a charset set `lossy`. Control characters become spaces.
pub fn decode_text(raw: &[u8]) -> Decoded {
    let s = trim_wsp(raw);
    if s.iter().all(|&b| (0x20..0x7F).contains(&b) || b == b'\t')
        && ENCODED_WORD_START.find(s).is_none()
    {
        // All printable ASCII, so this cannot fail; no need for a lossy path.
        let text = std::str::from_utf8(s)
            .map(str::to_owned)
            .unwrap_or_default();
        return Decoded { text, lossy: false };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let d = decode_general(s, &mut buf);
            if buf.capacity() > SCRATCH_KEEP {
                *buf = Vec::new();
            }
            d
        }
        // Only reachable through re-entrancy, which this module never does.
        Err(_) => decode_general(s, &mut Vec::new()),
    })
}

fn decode_general(s: &[u8], pending: &mut Vec<u8>) -> Decoded {
    let mut out = String::with_capacity(s.len());
    let mut lossy = false;
    // Charset of the bytes collected in `pending`, if any.
    let mut cur: Option<Charset<'_>> = None;
    // Start of raw text not yet emitted.
    let mut raw_start = 0;
    // True when the last thing seen was an encoded word, so that whitespace
    // alone up to the next encoded word is dropped.
    let mut after_word = false;
    let mut search = 0;

    while let Some(off) = ENCODED_WORD_START.find(&s[search..]) {
        let at = search + off;
        let Some(word) = parse_encoded_word(s, at) else {
            search = at + 1;
            continue;
        };
        let between = &s[raw_start..at];
        let only_ws = between.iter().all(|&b| is_wsp(b));
        if !(after_word && only_ws) {
            if let Some(cs) = cur.take() {
                lossy |= decode_charset(cs, pending, &mut out);
                pending.clear();
            }
            lossy |= push_raw(between, &mut out);
        }
        if let Some(cs) = cur
            && !cs.same(&word.charset)
        {
            lossy |= decode_charset(cs, pending, &mut out);
            pending.clear();
        }
        cur = Some(word.charset);
        let ok = if word.base64 {
            decode_b(word.text, pending)
        } else {
            decode_q(word.text, pending)
        };
        lossy |= !ok;
        after_word = true;
        raw_start = word.end;
        search = word.end;
    }
    if let Some(cs) = cur.take() {
        lossy |= decode_charset(cs, pending, &mut out);
    }
    lossy |= push_raw(&s[raw_start..], &mut out);

    Decoded {
        text: blank_controls(out),
        lossy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dt(s: &[u8]) -> (String, bool) {
        let d = decode_text(s);
        (d.text, d.lossy)
    }

    fn ok(s: &str) -> (String, bool) {
        (s.to_string(), false)
    }

    #[test]
    fn unfold_borrows_when_nothing_to_do() {
        assert!(matches!(
            unfold(b"hello world"),
            Cow::Borrowed(b"hello world")
        ));
        assert!(matches!(unfold(b"  hello \t"), Cow::Borrowed(b"hello")));
        assert!(matches!(unfold(b""), Cow::Borrowed(b"")));
    }

    #[test]
    fn unfold_joins_lines() {
        assert_eq!(&*unfold(b"a\r\n b"), b"a b");
        assert_eq!(&*unfold(b"a  \r\n\t\t b"), b"a b");
        assert_eq!(&*unfold(b"a\nb"), b"a b");
        assert_eq!(&*unfold(b"a\rb"), b"a b");
        assert_eq!(&*unfold(b"a\r\n\r\n b"), b"a b");
        // Whitespace away from a line break is content.
        assert_eq!(&*unfold(b"a  b\r\n c"), b"a  b c");
        assert_eq!(&*unfold(b" x\r\n"), b"x");
    }

    #[test]
    fn plain_ascii() {
        assert_eq!(
            dt(b" Congratulations! Winner #63343736"),
            ok("Congratulations! Winner #63343736")
        );
        assert_eq!(dt(b"a\tb"), ok("a\tb"));
        assert_eq!(dt(b""), ok(""));
        // Not an encoded word: no closing, or bad encoding letter.
        assert_eq!(dt(b"50% off =?"), ok("50% off =?"));
        assert_eq!(dt(b"=?utf-8?x?abc?="), ok("=?utf-8?x?abc?="));
    }

    #[test]
    fn q_words_from_trap() {
        // dkimpy-signed-trap message 3.
        assert_eq!(
            dt(b"=?UTF-8?Q?Exclusive=3A_80=25_off_everything_today_only_?=\n =?UTF-8?Q?=E2=9A=A1?="),
            ok("Exclusive: 80% off everything today only \u{26A1}")
        );
        assert_eq!(
            dt(b"=?UTF-8?Q?=E9=99=90=E6=97=B6_30=25_=E6=8A=98=E6=89=A3_?=\n =?UTF-8?Q?=E2=80=93_8KBA4J3N?="),
            ok("限时 30% 折扣 – 8KBA4J3N")
        );
    }

    #[test]
    fn b_words_from_trap() {
        assert_eq!(
            dt(b"=?UTF-8?B?R2zDvGNrd3Vuc2NoIEphbWVzOiBQcsOkbWll?=\n =?UTF-8?B?IDI1MDAg4oKs?="),
            ok("Glückwunsch James: Prämie 2500 €")
        );
        assert_eq!(
            dt(b"=?UTF-8?B?5oGt5ZacIEpvaG7vvIHpooblj5YgMTAwIA==?=\n =?UTF-8?B?5YWD5aWW5Yqx?="),
            ok("恭喜 John！领取 100 元奖励")
        );
    }

    #[test]
    fn utf8_split_across_words() {
        // U+26A1 is E2 9A A1; split after the first byte, in Q and in B.
        assert_eq!(dt(b"=?utf-8?q?x=E2?= =?utf-8?q?=9A=A1?="), ok("x\u{26A1}"));
        assert_eq!(
            dt(b"=?utf-8?b?eOI=?=\r\n =?UTF-8?B?mqE=?="),
            ok("x\u{26A1}")
        );
        // Mixed Q and B in the same charset still join.
        assert_eq!(dt(b"=?utf-8?q?x=E2?= =?utf-8?b?mqE=?="), ok("x\u{26A1}"));
    }

    #[test]
    fn latin1_and_mixed() {
        // spamassassin-public: From display names.
        assert_eq!(
            dt(b"=?ISO-8859-1?Q?Constant_Depi=E8reux?="),
            ok("Constant Depièreux")
        );
        assert_eq!(dt(b"=?iso-8859-1?q?Paul=20Linehan?="), ok("Paul Linehan"));
        assert_eq!(
            dt(b"=?iso-8859-1?B?U2ltb24g0yBDcvNpbu1u?="),
            ok("Simon Ó Cróinín")
        );
        // Plain text around words keeps its spaces.
        assert_eq!(dt(b"Re: =?utf-8?q?caf=C3=A9?= today"), ok("Re: café today"));
        // Different charsets: words decoded separately, space between dropped.
        assert_eq!(
            dt(b"=?iso-8859-1?q?caf=E9?= =?utf-8?q?_cr=C3=A8me?="),
            ok("café crème")
        );
    }

    #[test]
    fn lenient_forms() {
        // Glued to text, inside quotes, lower case, RFC 2231 language.
        assert_eq!(dt(b"abc=?utf-8?q?=C3=A9?=def"), ok("abcédef"));
        assert_eq!(dt(b"\"=?utf-8?q?Jos=C3=A9?=\" <j@x>"), ok("\"José\" <j@x>"));
        assert_eq!(dt(b"=?UTF-8*en?Q?hi?="), ok("hi"));
        // Missing padding and whitespace in B text.
        assert_eq!(dt(b"=?utf-8?B?SGVs bG8?="), ok("Hello"));
        // Two padded chunks glued together.
        assert_eq!(dt(b"=?utf-8?B?SGVsbG8=V29ybGQ=?="), ok("HelloWorld"));
        // Empty encoded text.
        assert_eq!(dt(b"a =?utf-8?q??= b"), ok("a  b"));
    }

    #[test]
    fn ascii_label_is_windows_1252() {
        assert_eq!(dt(b"=?us-ascii?q?caf=E9?="), ok("café"));
    }

    #[test]
    fn other_charsets() {
        assert_eq!(dt(b"=?koi8-r?b?8NLJ18XU?="), ok("Привет"));
        assert_eq!(dt(b"=?windows-1251?q?=CF=F0=E8=E2=E5=F2?="), ok("Привет"));
        // ISO-2022-JP is stateful: the escape sequence in the first word
        // governs the bytes of the second.
        assert_eq!(
            dt(b"=?ISO-2022-JP?B?GyRCJEs=?= =?iso-2022-jp?B?JFskcyQ0GyhC?="),
            ok("にほんご")
        );
        assert_eq!(dt(b"=?gb2312?b?1tDOxA==?="), ok("中文"));
    }

    #[test]
    fn utf7_from_mail_parser_eml() {
        assert_eq!(
            dt(b"=?utf-7?Q?Die_Hasen_und_die_Fr+APY-sche_=28Microsoft_Outlook_00=29?="),
            ok("Die Hasen und die Frösche (Microsoft Outlook 00)")
        );
        assert_eq!(
            dt(b"=?utf-7?B?SitBUHctcmdlbiBTY2htK0FQdy1yZ2Vu?= <schmuergen@example.com>"),
            ok("Jürgen Schmürgen <schmuergen@example.com>")
        );
        assert_eq!(dt(b"=?UTF-7?Q?1_+-_1?="), ok("1 + 1"));
        // A supplementary character is a surrogate pair: U+1F600.
        assert_eq!(dt(b"=?utf-7?Q?+2D3eAA-?="), ok("\u{1F600}"));
        // A lone surrogate cannot be decoded.
        assert_eq!(dt(b"=?utf-7?Q?+2D0-?="), ("\u{FFFD}".into(), true));
    }

    #[test]
    fn shift_jis_labelled_iso_2022_jp() {
        // trec07p: Shift_JIS bytes under an ISO-2022-JP label.
        assert_eq!(
            dt(b"=?iso-2022-jp?B?gXmPg5CIlrOXv4F6?="),
            ("【純粋無料】".into(), true)
        );
    }

    #[test]
    fn lossy_cases() {
        // Unknown charset: bytes kept as UTF-8.
        assert_eq!(dt(b"=?x-bogus?q?abc?="), ("abc".into(), true));
        assert_eq!(dt(b"=?x-bogus?q?=FF?="), ("\u{FFFD}".into(), true));
        // Raw 8-bit in a header (spamassassin-public GB2312 From).
        assert_eq!(
            dt(b"\xb1\xb8\xb1\xb3\xc7\xd0<return@snine.com>"),
            (
                "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}<return@snine.com>".into(),
                true
            )
        );
        // Malformed UTF-8 in an encoded word.
        assert_eq!(dt(b"=?utf-8?q?a=FFb?="), ("a\u{FFFD}b".into(), true));
        // Malformed Q escape.
        assert_eq!(dt(b"=?utf-8?q?100=%?="), ("100=%".into(), true));
        // Raw valid UTF-8 is not lossy.
        assert_eq!(
            dt("\u{1F514} Bitcoin Auszahlung".as_bytes()),
            ok("\u{1F514} Bitcoin Auszahlung")
        );
    }

    #[test]
    fn controls_become_spaces() {
        assert_eq!(dt(b"a\x00b\x07c\x7fd"), ok("a b c d"));
        assert_eq!(dt(b"=?utf-8?q?a=0D=0Ab?="), ok("a  b"));
        assert_eq!(dt(b"a\r\n\tb"), ok("a b"));
    }

    #[test]
    fn real_folded_from_name() {
        // spamassassin-public To: header, encoded name inside quotes.
        assert_eq!(
            dt(b"\"=?iso-8859-1?B?U+lhbXVzINMgTulpbGw=?=\"\n    <seamusoneill@weandus.com>"),
            ok("\"Séamus Ó Néill\" <seamusoneill@weandus.com>")
        );
        assert_eq!(
            dt(b"=?utf-8?b?TmF0aGFuYcOrbA==?= =?utf-8?b?TMOpY2F1ZMOp?=\n\t<nat-list@studioimaginaire.com>"),
            ok("NathanaëlLécaudé <nat-list@studioimaginaire.com>")
        );
    }

    proptest! {
        #[test]
        fn unfold_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let u = unfold(&raw);
            prop_assert!(!u.contains(&b'\r') && !u.contains(&b'\n'));
            prop_assert!(u.len() <= raw.len());
            prop_assert!(u.first().is_none_or(|&b| !is_wsp(b)));
            prop_assert!(u.last().is_none_or(|&b| !is_wsp(b)));
        }

        #[test]
        fn decode_text_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            let d = decode_text(&raw);
            prop_assert!(!d.text.bytes().any(is_ctl));
            if std::str::from_utf8(&raw).is_err() && ENCODED_WORD_START.find(&raw).is_none() {
                prop_assert!(d.lossy);
            }
        }

        #[test]
        fn decode_text_encoded_words(
            parts in proptest::collection::vec(
                ("(?i:utf-8|iso-8859-1|koi8-r|gbk|shift_jis|iso-2022-jp|x-nope)",
                 "[QqBb]",
                 "[ -~]{0,12}",
                 "[ \t\r\n]{0,3}"), 0..6)
        ) {
            let mut raw = Vec::new();
            for (cs, enc, text, ws) in &parts {
                raw.extend_from_slice(format!("=?{cs}?{enc}?{}?={ws}", text.replace('?', "")).as_bytes());
            }
            let d = decode_text(&raw);
            prop_assert!(!d.text.bytes().any(is_ctl));
        }

        #[test]
        fn ascii_passes_through(s in "[ -~]{0,80}") {
            prop_assume!(!s.contains("=?"));
            let d = decode_text(s.as_bytes());
            prop_assert_eq!(d.text, s.trim_matches(|c| c == ' '));
            prop_assert!(!d.lossy);
        }
    }
}
