//! Stage 2, split: cut an mbox byte stream into message entries.
//!
//! Takes bytes of an mbox (a memory map, or a window of a stream) and gives [`Entry`] byte ranges,
//! one per message, each starting at its `From ` line and ending where the next entry starts.
//!
//! The rules, in the order they are applied:
//! - An entry starts at a `From ` line that is at the start of the data or follows a blank line
//!   (`\n\n` or `\n\r\n`), and that looks like an envelope line (a `hh:mm` time and a month name).
//!   A `From ` line in a body that does not follow a blank line, or that carries no date, is text.
//! - `Content-Length:` (mboxcl/mboxcl2) is trusted only when the body it measures ends exactly on
//!   a valid boundary (a `From ` envelope line, optionally after one line break, or the end of the
//!   data); then candidate `From ` lines inside that body are skipped. Otherwise it is ignored.
//! - Candidate `From ` lines are found with `memchr::memmem` (SIMD); header lines with `memchr`.

use memchr::memmem;

/// One message entry of an mbox, in offsets relative to the data handed to the splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Offset of the entry's first byte (its `From ` line, or 0 for preamble junk).
    pub start: usize,
    /// Offset one past the entry's last byte: the next entry's start, or the end of data.
    pub end: usize,
    /// What the entry is.
    pub kind: EntryKind,
    /// How many of the message's lines carry mbox `>From ` quoting, when the splitter counted
    /// them while searching for the entry's end (it passes every `From ` in the entry then);
    /// `None` when it did not read the whole entry (a trusted `Content-Length` jumped over the
    /// body, or preamble junk), and the reader counts them itself ([`quoted_from_lines`]).
    pub quoted_lines: Option<u32>,
}

/// How an entry came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A message that begins with a `From ` envelope line.
    Message,
    /// Before the first envelope line: a header block, that is a message whose envelope line is
    /// missing or broken (a header-first file with later `From ` boundaries). Read as a message.
    Headless,
    /// Before the first envelope line: text that is not a header block, the end of a message
    /// whose start is missing (a file cut mid-message: a slice, a `split -b` part, a recovered
    /// disk image). Reported as `truncated`.
    CutStart,
    /// Before the first envelope line: binary bytes that are no part of a message. Reported as
    /// `mbox-preamble`.
    Preamble,
    /// A message longer than the per-message cap ([`SplitLimits::max_entry_bytes`]): it ends at
    /// its first envelope line (its bytes are not kept, so MIME structure and `Content-Length`
    /// are not followed through it), and is reported `too-large`.
    TooLarge,
}

/// The word every envelope line and every mbox-quoted `>From ` line starts with. One search for
/// it finds both the candidate entry starts and the quoted lines, so a message's bytes are
/// searched once, not once per needle.
const FROM_WORD: &[u8] = b"From ";

static FROM_FINDER: std::sync::LazyLock<memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memmem::Finder::new(FROM_WORD));

/// Longest line still taken as an envelope line; longer ones are body text.
const MAX_FROM_LINE: usize = 1000;

/// Whether `line` (without its line ending) is an mbox envelope line: `From ` followed by a sender
/// and an asctime-style date. The date test — a `h:mm` time, a three-letter English month and a
/// four-digit year, each a word of its own — is what separates
/// `From sender Mon May  6 00:10:11 2024` from body text such as `From Marketing: call 10:30`.
pub fn is_from_line(line: &[u8]) -> bool {
    if !line.starts_with(b"From ") || line.len() > MAX_FROM_LINE {
        return false;
    }
    let rest = &line[5..];
    has_time(rest) && date_words(rest)
}

fn has_time(s: &[u8]) -> bool {
    memchr::memchr_iter(b':', s).any(|i| {
        i >= 1
            && s[i - 1].is_ascii_digit()
            && s.len() > i + 2
            && s[i + 1].is_ascii_digit()
            && s[i + 2].is_ascii_digit()
    })
}

/// A three-letter month word and a four-digit year word.
fn date_words(s: &[u8]) -> bool {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let (mut month, mut year) = (false, false);
    for word in s.split(|&b| b == b' ' || b == b'\t' || b == b',') {
        month |= word.len() == 3 && MONTHS.iter().any(|m| word.eq_ignore_ascii_case(&m[..]));
        year |= word.len() == 4 && word.iter().all(u8::is_ascii_digit);
    }
    month && year
}

/// The line starting at `pos`, without its line ending, and the offset just past its `\n`
/// (or the end of data when the line is unterminated).
#[inline]
pub fn line_at(data: &[u8], pos: usize) -> (&[u8], usize) {
    match memchr::memchr(b'\n', &data[pos..]) {
        Some(i) => {
            let mut line = &data[pos..pos + i];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            (line, pos + i + 1)
        }
        None => {
            let mut line = &data[pos..];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            (line, data.len())
        }
    }
}

/// Whether the byte before `nl` (the `\n` that ends the previous line) closes a blank line.
#[inline]
fn blank_line_ends_at(data: &[u8], nl: usize) -> bool {
    // `nl` is the newline just before a candidate `From `; the line it ends is blank when the
    // byte before it is another newline, or CR after a newline (CRLF blank line).
    match nl {
        0 => true, // the data starts with a blank line
        1 => data[0] == b'\n' || data[0] == b'\r',
        _ => data[nl - 1] == b'\n' || (data[nl - 1] == b'\r' && data[nl - 2] == b'\n'),
    }
}

/// Offset of the next entry start strictly after `from`, searching up to `limit` (exclusive
/// bound on the `From` offset).
pub fn next_candidate(data: &[u8], from: usize, limit: usize) -> Option<usize> {
    next_candidate_counting(data, from, limit, &mut 0)
}

/// [`next_candidate`], also adding to `quoted` the `>From ` quoted lines passed on the way
/// (lines starting with one or more `>` then `From `, after `from`).
fn next_candidate_counting(
    data: &[u8],
    from: usize,
    limit: usize,
    quoted: &mut u32,
) -> Option<usize> {
    let mut at = from;
    let hay_end = (limit + FROM_WORD.len()).min(data.len());
    while at < hay_end {
        let start = at + FROM_FINDER.find(&data[at..hay_end])?;
        if start >= limit {
            return None;
        }
        if start > from {
            match data[start - 1] {
                b'\n'
                    if blank_line_ends_at(data, start - 1)
                        && is_from_line(line_at(data, start).0) =>
                {
                    return Some(start);
                }
                b'>' => {
                    let quotes = data[from..start]
                        .iter()
                        .rev()
                        .take_while(|&&b| b == b'>')
                        .count();
                    let line_start = start - quotes;
                    if line_start > from && data[line_start - 1] == b'\n' {
                        *quoted += 1;
                    }
                }
                _ => {}
            }
        }
        at = start + 1;
    }
    None
}

/// What a walk over an entry's header block found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeaderScan {
    /// Offset just past the blank line that ends the header block, if it was reached.
    pub body_start: Option<usize>,
    /// The value of the first `Content-Length:` field, if it parsed as a number.
    pub content_length: Option<u64>,
    /// The MIME boundary of a multipart `Content-Type:`, as a range of the data.
    pub boundary: Option<(usize, usize)>,
}

/// The line starts a header walk stops at: a blank line (`\n\n`, `\n\r\n`: the header block
/// ends) or a line opening with `C` or `c` (where `Content-Length:` and `Content-Type:` are).
/// One packed SIMD search (aho-corasick's Teddy) finds them, so the other header lines are never
/// visited one by one.
static HEADER_MARKS: std::sync::LazyLock<HeaderMarks> = std::sync::LazyLock::new(|| {
    let packed = aho_corasick::packed::Config::new()
        .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
        .builder()
        .extend(HEADER_MARK_PATTERNS)
        .build();
    match packed {
        Some(searcher) => HeaderMarks::Packed(searcher),
        // No SIMD Teddy on this target: the automaton finds the same marks.
        None => HeaderMarks::automaton(),
    }
});

const HEADER_MARK_PATTERNS: [&[u8]; 4] = [b"\n\n", b"\n\r\n", b"\nC", b"\nc"];

enum HeaderMarks {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

impl HeaderMarks {
    fn automaton() -> HeaderMarks {
        HeaderMarks::Automaton(
            aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(HEADER_MARK_PATTERNS)
                .expect("four literal patterns always build"),
        )
    }

    /// The first mark in `hay[from..]`: (offset of its `\n`, offset past it, blank line?).
    #[inline]
    fn next(&self, hay: &[u8], from: usize) -> Option<(usize, usize, bool)> {
        let m = match self {
            HeaderMarks::Packed(p) => p.find_in(hay, aho_corasick::Span::from(from..hay.len()))?,
            HeaderMarks::Automaton(a) => {
                a.find(aho_corasick::Input::new(hay).span(from..hay.len()))?
            }
        };
        Some((m.start(), m.end(), m.pattern().as_usize() < 2))
    }
}

/// Walk the header lines that follow the `From ` line at `pos`, stopping at the blank line or
/// after `max_bytes` (lines starting at or past `pos + max_bytes` are not read).
pub fn scan_entry_header(data: &[u8], pos: usize, max_bytes: usize) -> HeaderScan {
    let mut scan = HeaderScan::default();
    let (_, first) = line_at(data, pos);
    let stop = (pos + max_bytes).min(data.len());
    if first >= stop {
        return scan;
    }
    // `first > pos`, so `data[first - 1]` is the envelope line's `\n`: every mark is a `\n`
    // followed by the first byte(s) of the line it starts.
    let hay = &data[..(stop + 2).min(data.len())];
    // Only the first Content-Type counts (spam sometimes carries two).
    let mut seen_content_type = false;
    let mut from = first - 1;
    while let Some((nl, past, blank)) = HEADER_MARKS.next(hay, from) {
        let at = nl + 1;
        if at >= stop {
            break;
        }
        if blank {
            scan.body_start = Some(past);
            return scan;
        }
        from = past;
        let (line, next) = line_at(data, at);
        if scan.content_length.is_none()
            && line.len() > 15
            && line[..15].eq_ignore_ascii_case(b"content-length:")
        {
            scan.content_length = parse_decimal(&line[15..]);
        }
        if !seen_content_type
            && line.len() > 13
            && line[..13].eq_ignore_ascii_case(b"content-type:")
        {
            seen_content_type = true;
            // The value runs on over folded lines, up to the next line that is not folded.
            let mut end = next;
            while end < stop && matches!(data[end], b' ' | b'\t') {
                end = line_at(data, end).1;
            }
            scan.boundary = multipart_boundary(data, at + 13, end.min(data.len()));
        }
    }
    scan
}

/// The `boundary=` parameter of a multipart Content-Type value in `data[start..end]`.
fn multipart_boundary(data: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    let value = &data[start..end];
    let lower_has = |needle: &[u8]| {
        value
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle))
    };
    let media = value.trim_ascii_start();
    if media.len() < 10 || !media[..10].eq_ignore_ascii_case(b"multipart/") {
        return None;
    }
    let at = lower_has(b"boundary")? + 8;
    let mut i = at;
    while i < value.len() && value[i].is_ascii_whitespace() {
        i += 1;
    }
    if value.get(i) != Some(&b'=') {
        return None;
    }
    i += 1;
    while i < value.len() && value[i].is_ascii_whitespace() {
        i += 1;
    }
    let (b, e) = if value.get(i) == Some(&b'"') {
        let close = memchr::memchr(b'"', &value[i + 1..])?;
        (i + 1, i + 1 + close)
    } else {
        let len = value[i..]
            .iter()
            .position(|&c| c == b';' || c.is_ascii_whitespace())
            .unwrap_or(value.len() - i);
        (i, i + len)
    };
    // RFC 2046 boundaries are 1 to 70 characters.
    (e > b && e - b <= 70).then_some((start + b, start + e))
}

/// How far before a candidate entry start the line-by-line look for a closing MIME delimiter goes.
/// (Tiny under test, so that the property tests take the whole-body search too.)
const CLOSE_TAIL_BYTES: usize = if cfg!(test) { 24 } else { 4096 };

/// Whether the candidate entry start `cand` lies inside the still-open MIME body of the entry
/// whose header is `header`: the entry is multipart, no closing delimiter `--B--` appears between
/// `closed_from` and `cand` (earlier parts were checked for earlier candidates), the candidate does
/// not declare the same boundary itself, and a `--B` delimiter line follows the candidate before
/// the next candidate. This keeps an mbox or a `git format-patch` attached as plain text inside
/// one message. `Err(())`: more data is needed to decide.
fn inside_open_mime_body(
    data: &[u8],
    header: &HeaderScan,
    closed_from: usize,
    cand: usize,
    at_eof: bool,
    limits: &SplitLimits,
) -> Result<bool, ()> {
    let (Some(body), Some((bs, be))) = (header.body_start, header.boundary) else {
        return Ok(false);
    };
    if body > cand {
        return Ok(false);
    }
    let boundary = &data[bs..be];
    let lo = closed_from.max(body);
    let closed = closed_before(data, boundary, body, lo, cand);
    if closed {
        return Ok(false);
    }
    let own = scan_entry_header(data, cand, limits.max_header_bytes);
    if let Some((os, oe)) = own.boundary
        && &data[os..oe] == boundary
    {
        return Ok(false);
    }
    let next = next_candidate(data, cand, data.len());
    let region_end = next.unwrap_or(data.len());
    let mut from = cand;
    while let Some(i) = memmem::find(&data[from..region_end], boundary) {
        let hit = from + i;
        if hit >= 3
            && &data[hit - 3..hit] == b"\n--"
            && ends_delimiter(&data[hit + boundary.len()..])
        {
            return Ok(true);
        }
        from = hit + 1;
    }
    if next.is_none() && !at_eof {
        Err(())
    } else {
        Ok(false)
    }
}

/// Whether a closing delimiter line `--B--` for `boundary` lies between `lo` and `cand` in the
/// body that starts at `body`. It is nearly always among the last lines before the candidate:
/// those are read first, line by line, and the rest is searched only when they do not close it.
fn closed_before(data: &[u8], boundary: &[u8], body: usize, lo: usize, cand: usize) -> bool {
    let closes_at = |hit: usize| {
        hit >= body.max(1) + 2
            && hit >= lo
            && hit + boundary.len() + 2 <= cand
            && &data[hit - 3..hit] == b"\n--"
            && data[hit..hit + boundary.len()] == *boundary
            && data[hit + boundary.len()..cand].starts_with(b"--")
    };
    let tail_from = cand.saturating_sub(CLOSE_TAIL_BYTES).max(lo);
    // From 3 bytes earlier, so that a delimiter right at `lo` (its `\n--` before it) is seen.
    let scan_from = tail_from.saturating_sub(3);
    memchr::memrchr_iter(b'\n', &data[scan_from..cand]).any(|nl| closes_at(scan_from + nl + 3))
        || (tail_from > lo
            && memmem::rfind_iter(&data[lo..cand], boundary).any(|rel| closes_at(lo + rel)))
}

/// Whether the bytes after `--B` end a delimiter line (RFC 2046: `--` for the close, then
/// optional whitespace, then the line end), so `--XX_alt` is not taken for `--XX`.
fn ends_delimiter(after: &[u8]) -> bool {
    matches!(
        after.first(),
        None | Some(b'-' | b'\r' | b'\n' | b' ' | b'\t')
    )
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    if s.is_empty() || s.len() > 15 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Where `Content-Length` says the next entry starts: `Some(offset)` when `target` is a valid
/// boundary (a `From ` envelope line, optionally after one line ending, or end of data).
/// `Err(())` when more data is needed to decide.
fn boundary_at(data: &[u8], target: usize, at_eof: bool) -> Result<Option<usize>, ()> {
    let rest = &data[target..];
    let skip = if rest.starts_with(b"\r\n") {
        2
    } else if rest.starts_with(b"\n") {
        1
    } else {
        0
    };
    if skip == 0 && target > 0 && data[target - 1] != b'\n' {
        // A boundary is a line start; a length that lands mid-line is wrong.
        return Ok(None);
    }
    let after = &rest[skip..];
    if after.is_empty() || after.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        // Only line breaks left: the end of data if it is final, else undecided.
        return if at_eof {
            Ok(Some(data.len()))
        } else {
            Err(())
        };
    }
    let line_end = memchr::memchr(b'\n', after);
    if line_end.is_none() && !at_eof {
        return Err(());
    }
    if is_from_line(line_at(data, target + skip).0) {
        Ok(Some(target + skip))
    } else {
        Ok(None)
    }
}

/// Offset of the first entry start in `data` (which begins a stream). When the data opens as a
/// message (a header block), a message is open and the boundary rule holds: an envelope line
/// after a blank line (its body may quote one). Otherwise no message is known to be open, and
/// the first envelope line at any line start is the first entry: a junk line or the cut-off end
/// of a message right before it must not hide it.
pub fn first_entry(data: &[u8]) -> Option<usize> {
    let mut lead = 0;
    while let Some(rest) = data[lead..]
        .strip_prefix(b"\r\n")
        .or_else(|| data[lead..].strip_prefix(b"\n"))
    {
        lead = data.len() - rest.len();
    }
    if is_from_line(line_at(data, lead).0) {
        return Some(lead);
    }
    if looks_like_header_block(data) {
        return next_candidate(data, 0, data.len());
    }
    FROM_FINDER
        .find_iter(data)
        .find(|&at| (at == 0 || data[at - 1] == b'\n') && is_from_line(line_at(data, at).0))
}

/// The entry for the bytes before the first entry start `first` (`None` when they are only
/// blank lines): a message without its envelope line when they open with a header block, the
/// end of a cut message when they are text, preamble junk when they are binary.
pub fn leading_entry(data: &[u8], first: usize) -> Option<Entry> {
    let lead = &data[..first];
    if lead.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let kind = if looks_like_header_block(lead) {
        EntryKind::Headless
    } else if looks_like_text(lead) {
        EntryKind::CutStart
    } else {
        EntryKind::Preamble
    };
    Some(Entry {
        start: 0,
        end: first,
        kind,
        quoted_lines: None,
    })
}

/// Header names that, found at a line start of a header block, mark it as mail.
const MAIL_FIELDS: [&[u8]; 14] = [
    b"received:",
    b"return-path:",
    b"from:",
    b"to:",
    b"subject:",
    b"date:",
    b"message-id:",
    b"delivered-to:",
    b"mime-version:",
    b"content-type:",
    b"x-",
    b"dkim-signature:",
    b"reply-to:",
    b"sender:",
];

/// Whether `text` (after any blank lines) opens with a mail header block: its first line is a
/// header field, or an envelope-like line (`From `, `>From `, whatever follows), and some line
/// before the first blank line starts with a well-known mail field name.
pub fn looks_like_header_block(text: &[u8]) -> bool {
    let mut text = text;
    while let Some(rest) = text
        .strip_prefix(b"\r\n")
        .or_else(|| text.strip_prefix(b"\n"))
    {
        text = rest;
    }
    let first = line_at(text, 0).0;
    let first_is_field = match memchr::memchr(b':', first) {
        Some(c) => {
            let name = first[..c].trim_ascii_end();
            !name.is_empty() && name.iter().all(|&b| (33..=126).contains(&b))
        }
        None => false,
    } || first.starts_with(b"From ")
        || first.starts_with(b">From ");
    if !first_is_field {
        return false;
    }
    let mut pos = 0;
    while pos < text.len() {
        let (line, next) = line_at(text, pos);
        if line.is_empty() {
            break;
        }
        if MAIL_FIELDS
            .iter()
            .any(|f| line.len() >= f.len() && line[..f.len()].eq_ignore_ascii_case(f))
        {
            return true;
        }
        pos = next;
    }
    false
}

/// Whether `bytes` read as text: no NUL and at most one byte in eight a control character other
/// than tab, CR, LF and form feed (8-bit bytes count as text: mail carries raw UTF-8 and Latin-1).
fn looks_like_text(bytes: &[u8]) -> bool {
    let control = bytes
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n' | 0x0c))
        .count();
    !bytes.contains(&0) && control * 8 <= bytes.len()
}

/// Splitter limits.
#[derive(Debug, Clone, Copy)]
pub struct SplitLimits {
    /// How far into an entry the header walk looks for `Content-Length:` and the blank line.
    pub max_header_bytes: usize,
    /// Largest `Content-Length` honoured; larger values are ignored as implausible.
    pub max_content_length: u64,
    /// Longest entry kept; a longer one is [`EntryKind::TooLarge`] and ends at its first
    /// envelope line, the one end a streamed reader can find without holding its bytes.
    pub max_entry_bytes: usize,
}

impl Default for SplitLimits {
    fn default() -> Self {
        SplitLimits {
            max_header_bytes: 1 << 20,
            max_content_length: 1 << 32,
            max_entry_bytes: usize::MAX,
        }
    }
}

/// Where an entry longer than the cap ends: at its first envelope candidate after `pos`, or at
/// the end of the data. `None`: not known before more data comes.
pub fn oversize_end(data: &[u8], pos: usize, at_eof: bool) -> Option<usize> {
    match next_candidate(data, pos, data.len()) {
        Some(cand) if at_eof || memchr::memchr(b'\n', &data[cand..]).is_some() => Some(cand),
        Some(_) => None,
        None if at_eof => Some(data.len()),
        None => None,
    }
}

/// Result of one call to [`plan_entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Offset where the first entry that was not emitted starts (== data.len() when all done).
    pub next: usize,
    /// True when the call stopped because it needs more data after `data` (never at eof).
    pub needs_more: bool,
}

/// Emit the entries that start at `pos` (an entry start) into `out`, until the entries emitted
/// cover at least `budget` bytes or the data ends. With `at_eof` false the last entry in the
/// data is left pending (its end is not known yet) and `needs_more` is set.
pub fn plan_entries(
    data: &[u8],
    mut pos: usize,
    at_eof: bool,
    budget: usize,
    limits: &SplitLimits,
    out: &mut Vec<Entry>,
) -> Planned {
    let start = pos;
    let more = |pos| Planned {
        next: pos,
        needs_more: true,
    };
    while pos < data.len() && pos - start < budget {
        let header = scan_entry_header(data, pos, limits.max_header_bytes);
        let mut next = None;
        if let (Some(body), Some(len)) = (header.body_start, header.content_length)
            && len <= limits.max_content_length
        {
            let target = body as u64 + len;
            if target <= data.len() as u64 {
                match boundary_at(data, target as usize, at_eof) {
                    Ok(found) => next = found,
                    Err(()) => return more(pos),
                }
            } else if !at_eof {
                return more(pos);
            }
        }
        // Counted only when the search below walks the whole entry.
        let mut quoted = 0u32;
        let counted = next.is_none();
        if next.is_none() {
            let mut from = pos;
            let mut closed_from = pos;
            loop {
                match next_candidate_counting(data, from, data.len(), &mut quoted) {
                    // An envelope line cut off by the end of the data may still grow too long.
                    Some(cand) if !at_eof && memchr::memchr(b'\n', &data[cand..]).is_none() => {
                        return more(pos);
                    }
                    Some(cand) => {
                        match inside_open_mime_body(
                            data,
                            &header,
                            closed_from,
                            cand,
                            at_eof,
                            limits,
                        ) {
                            Ok(true) => {
                                from = cand;
                                closed_from = cand;
                            }
                            Ok(false) => {
                                next = Some(cand);
                                break;
                            }
                            Err(()) => return more(pos),
                        }
                    }
                    None if at_eof => {
                        next = Some(data.len());
                        break;
                    }
                    None => return more(pos),
                }
            }
        }
        let next = next.unwrap_or(data.len());
        if next - pos > limits.max_entry_bytes {
            let Some(end) = oversize_end(data, pos, at_eof) else {
                return more(pos);
            };
            out.push(Entry {
                start: pos,
                end,
                kind: EntryKind::TooLarge,
                quoted_lines: None,
            });
            pos = end;
            continue;
        }
        out.push(Entry {
            start: pos,
            end: next,
            kind: EntryKind::Message,
            quoted_lines: counted.then_some(quoted),
        });
        pos = next;
    }
    Planned {
        next: pos,
        needs_more: false,
    }
}

/// Split a whole mbox held in memory: what comes before the first entry (if anything,
/// [`leading_entry`]) and every entry.
pub fn split_all(data: &[u8], limits: &SplitLimits) -> Vec<Entry> {
    let mut out = Vec::new();
    let first = first_entry(data).unwrap_or(data.len());
    out.extend(leading_entry(data, first));
    plan_entries(data, first, true, usize::MAX, limits, &mut out);
    out
}

/// The message inside an entry: the bytes after the `From ` line, without the blank separator
/// line that ends the entry. Returns (envelope line without line ending, message bytes offset,
/// message bytes).
pub fn entry_message<'a>(data: &'a [u8], entry: &Entry) -> (&'a [u8], usize, &'a [u8]) {
    let bytes = &data[entry.start..entry.end];
    let (envelope, body_at) = if entry.kind != EntryKind::Message {
        (&b""[..], 0)
    } else {
        let (line, next) = line_at(bytes, 0);
        (line, next)
    };
    let mut msg = &bytes[body_at..];
    msg = strip_separator(msg);
    (envelope, entry.start + body_at, msg)
}

/// Drop the one blank separator line an mbox writer puts after each message.
fn strip_separator(msg: &[u8]) -> &[u8] {
    let without_last = if msg.ends_with(b"\r\n") {
        &msg[..msg.len() - 2]
    } else if msg.ends_with(b"\n") {
        &msg[..msg.len() - 1]
    } else {
        return msg;
    };
    if without_last.ends_with(b"\n") {
        without_last
    } else {
        msg
    }
}

/// Offsets of the lines of `msg` that an mbox writer quoted (`>From `, `>>From `, ...): the
/// offset of each such line's first `>`. Reading an mboxrd removes one `>` from each; for the
/// usual single `>From ` of mboxo the result is the same.
fn quoted_from_line_starts(msg: &[u8]) -> impl Iterator<Item = usize> + '_ {
    memmem::find_iter(msg, b">From ").filter_map(move |at| {
        let quotes = msg[..=at].iter().rev().take_while(|&&b| b == b'>').count();
        let line_start = at + 1 - quotes;
        (line_start == 0 || msg[line_start - 1] == b'\n').then_some(line_start)
    })
}

/// How many lines of `msg` carry mbox `>From ` quoting (each is one byte longer than on the wire).
pub fn quoted_from_lines(msg: &[u8]) -> usize {
    quoted_from_line_starts(msg).count()
}

/// The message as it was before mbox quoting: one `>` removed from every `^>+From ` line.
/// Borrowed when nothing was quoted.
pub fn unquote_mboxrd(msg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut starts = quoted_from_line_starts(msg).peekable();
    if starts.peek().is_none() {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = Vec::with_capacity(msg.len());
    let mut from = 0;
    for at in starts {
        out.extend_from_slice(&msg[from..at]);
        from = at + 1;
    }
    out.extend_from_slice(&msg[from..]);
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
pub(crate) mod oracle {
    //! A plain byte-by-byte splitter with the same rules, for checking the SIMD one.
    use super::{Entry, EntryKind};

    fn lines(data: &[u8]) -> Vec<(usize, usize)> {
        // (start, end-without-newline) of every line
        let mut v = Vec::new();
        let mut s = 0;
        for (i, &b) in data.iter().enumerate() {
            if b == b'\n' {
                v.push((s, i));
                s = i + 1;
            }
        }
        if s < data.len() {
            v.push((s, data.len()));
        }
        v
    }

    fn text(data: &[u8], (s, e): (usize, usize)) -> &[u8] {
        let l = &data[s..e];
        if l.last() == Some(&b'\r') {
            &l[..l.len() - 1]
        } else {
            l
        }
    }

    fn from_line(l: &[u8]) -> bool {
        if l.len() > 1000 || l.len() < 5 || &l[..5] != b"From " {
            return false;
        }
        let r = &l[5..];
        let mut time = false;
        for i in 1..r.len() {
            if r[i] == b':'
                && r[i - 1].is_ascii_digit()
                && i + 2 < r.len()
                && r[i + 1].is_ascii_digit()
                && r[i + 2].is_ascii_digit()
            {
                time = true;
            }
        }
        let months = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let words: Vec<&[u8]> = r.split(|&b| b == b' ' || b == b'\t' || b == b',').collect();
        let month = words.iter().any(|w| {
            w.len() == 3
                && months
                    .iter()
                    .any(|m| w.to_ascii_lowercase() == m.as_bytes())
        });
        let year = words
            .iter()
            .any(|w| w.len() == 4 && w.iter().all(|c| c.is_ascii_digit()));
        time && month && year
    }

    /// The multipart boundary declared in the header of the entry whose From line is line `i`.
    fn boundary_of(data: &[u8], ls: &[(usize, usize)], i: usize) -> Option<Vec<u8>> {
        let mut j = i + 1;
        let mut ct: Option<Vec<u8>> = None;
        let mut collecting = false;
        while j < ls.len() {
            let t = text(data, ls[j]);
            if t.is_empty() {
                break;
            }
            if t[0] == b' ' || t[0] == b'\t' {
                if collecting {
                    let v = ct.as_mut().unwrap();
                    v.extend_from_slice(&data[ls[j - 1].1..ls[j].1]);
                }
            } else {
                if collecting {
                    break;
                }
                if ct.is_none() && t.len() > 13 && t[..13].eq_ignore_ascii_case(b"content-type:") {
                    ct = Some(data[ls[j].0 + 13..ls[j].1].to_vec());
                    collecting = true;
                }
            }
            j += 1;
        }
        let v = ct?;
        let lower: Vec<u8> = v.to_ascii_lowercase();
        let find = |n: &[u8]| lower.windows(n.len()).position(|w| w == n);
        if !lower.trim_ascii_start().starts_with(b"multipart/") {
            return None;
        }
        let mut k = find(b"boundary")? + 8;
        while k < v.len() && v[k].is_ascii_whitespace() {
            k += 1;
        }
        if v.get(k) != Some(&b'=') {
            return None;
        }
        k += 1;
        while k < v.len() && v[k].is_ascii_whitespace() {
            k += 1;
        }
        let b = if v.get(k) == Some(&b'"') {
            let close = v[k + 1..].iter().position(|&c| c == b'"')?;
            v[k + 1..k + 1 + close].to_vec()
        } else {
            v[k..]
                .iter()
                .take_while(|&&c| c != b';' && !c.is_ascii_whitespace())
                .copied()
                .collect()
        };
        (!b.is_empty() && b.len() <= 70).then_some(b)
    }

    /// Oracle: boundaries by a line walk; Content-Length honoured when it lands on a boundary.
    pub fn split(data: &[u8]) -> Vec<Entry> {
        let ls = lines(data);
        // candidate line indices
        let mut cand = vec![false; ls.len()];
        for (i, &l) in ls.iter().enumerate() {
            let blank_before = i == 0 || text(data, ls[i - 1]).is_empty();
            cand[i] = blank_before && from_line(text(data, l));
        }
        // Before the first entry any envelope line starts one, blank line before it or not,
        // unless the data opens as a message.
        let start_line = if super::looks_like_header_block(data) {
            (0..ls.len()).find(|&i| cand[i])
        } else {
            (0..ls.len()).find(|&i| from_line(text(data, ls[i])))
        };
        let mut out = Vec::new();
        // What leads the first entry is classified by the one rule both sides share; the
        // oracle checks where entries are cut.
        let Some(mut i) = start_line else {
            out.extend(super::leading_entry(data, data.len()));
            return out;
        };
        out.extend(super::leading_entry(data, ls[i].0));
        loop {
            let start = ls[i].0;
            // header walk
            let mut j = i + 1;
            let mut cl: Option<u64> = None;
            let mut body_line = None;
            while j < ls.len() {
                let t = text(data, ls[j]);
                if t.is_empty() {
                    if ls[j].1 < data.len() {
                        body_line = Some(j + 1);
                    }
                    break;
                }
                if cl.is_none() && t.len() > 15 && t[..15].eq_ignore_ascii_case(b"content-length:")
                {
                    let v = std::str::from_utf8(&t[15..]).unwrap_or("").trim();
                    if !v.is_empty() && v.len() <= 15 && v.bytes().all(|b| b.is_ascii_digit()) {
                        cl = v.parse().ok();
                    }
                }
                j += 1;
            }
            let body_start = body_line.map(|b| if b < ls.len() { ls[b].0 } else { data.len() });
            let mut next: Option<usize> = None;
            let cands: Vec<usize> = ((i + 1)..ls.len())
                .filter(|&k| cand[k])
                .map(|k| ls[k].0)
                .collect();
            if let (Some(b), Some(n)) = (body_start, cl)
                && n <= 1 << 32
            {
                let t = b as u64 + n;
                if t <= data.len() as u64 {
                    let t = t as usize;
                    let mut s = t;
                    if data[t..].starts_with(b"\r\n") {
                        s += 2
                    } else if data[t..].starts_with(b"\n") {
                        s += 1
                    }
                    if s == t && t > 0 && data[t - 1] != b'\n' {
                        // mid-line: not a boundary
                    } else if data[s..].iter().all(|&c| c == b'\r' || c == b'\n') {
                        next = Some(data.len());
                    } else {
                        let e = data[s..]
                            .iter()
                            .position(|&c| c == b'\n')
                            .map_or(data.len(), |p| s + p);
                        if from_line(text(data, (s, e))) {
                            next = Some(s);
                        }
                    }
                }
            }
            let boundary = boundary_of(data, &ls, i);
            let next_cand = cands
                .iter()
                .enumerate()
                .find(|&(ci, &c)| {
                    let Some(b) = &boundary else { return true };
                    let Some(body) = body_start else { return true };
                    if body > c {
                        return true;
                    }
                    let mut close = b"\n--".to_vec();
                    close.extend_from_slice(b);
                    close.extend_from_slice(b"--");
                    if data[body - 1..c]
                        .windows(close.len())
                        .any(|w| w == &close[..])
                    {
                        return true;
                    }
                    let ci_line = ls.iter().position(|l| l.0 == c).unwrap();
                    if boundary_of(data, &ls, ci_line).as_ref() == Some(b) {
                        return true;
                    }
                    let end = cands.get(ci + 1).copied().unwrap_or(data.len());
                    let mut needle = b"\n--".to_vec();
                    needle.extend_from_slice(b);
                    // contained when a delimiter of this entry follows the candidate
                    !(c..end).any(|k| {
                        k + needle.len() <= end
                            && data[k..].starts_with(&needle)
                            && matches!(
                                data.get(k + needle.len()),
                                None | Some(b'-' | b'\r' | b'\n' | b' ' | b'\t')
                            )
                    })
                })
                .map(|(_, &c)| c);
            let end = next.or(next_cand).unwrap_or(data.len());
            out.push(Entry {
                start,
                end,
                kind: EntryKind::Message,
                quoted_lines: None,
            });
            if end >= data.len() {
                return out;
            }
            i = ls
                .iter()
                .position(|l| l.0 == end)
                .expect("boundary on a line start");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn starts(data: &[u8]) -> Vec<usize> {
        split_all(data, &SplitLimits::default())
            .iter()
            .map(|e| e.start)
            .collect()
    }

    #[test]
    fn envelope_lines() {
        assert!(is_from_line(b"From a@b Mon May  6 00:10:11 2024"));
        assert!(is_from_line(
            b"From magick-owner@x Wed Feb  9 22:02 MET 2000"
        ));
        assert!(is_from_line(b"From - Thu Jan  1 00:00:00 1970"));
        assert!(!is_from_line(b"From the desk of the director"));
        assert!(!is_from_line(b"From 10:00 until late"));
        assert!(!is_from_line(b"From Marketing: call 10:30 in 2024"));
        assert!(!is_from_line(b"From a@b Mon May  6 00:10:11"));
        assert!(!is_from_line(b">From a@b Mon May  6 00:10:11 2024"));
    }

    #[test]
    fn body_from_without_blank_line_is_text() {
        let m = b"From a@b Mon May  6 00:10:11 2024\nSubject: x\n\nhello\nFrom b@c Mon May  6 00:10:11 2024\nmore\n\nFrom c@d Tue May  7 01:00:00 2024\nSubject: y\n\nbody\n";
        assert_eq!(starts(m), vec![0, 92]);
        assert_eq!(&m[92..97], b"From ");
    }

    #[test]
    fn crlf_and_final_message_without_newline() {
        let m = b"From a@b Mon May  6 00:10:11 2024\r\nSubject: x\r\n\r\nhi\r\n\r\nFrom c@d Tue May  7 01:00:00 2024\r\nSubject: y\r\n\r\nlast";
        let e = split_all(m, &SplitLimits::default());
        assert_eq!(e.len(), 2);
        let (env, _, msg) = entry_message(m, &e[0]);
        assert_eq!(env, b"From a@b Mon May  6 00:10:11 2024");
        assert_eq!(msg, b"Subject: x\r\n\r\nhi\r\n");
        let (_, _, msg) = entry_message(m, &e[1]);
        assert_eq!(msg, b"Subject: y\r\n\r\nlast");
    }

    #[test]
    fn content_length_skips_from_lines_in_body() {
        let body = b"line\n\nFrom x@y Mon May  6 00:10:11 2024\nnot a boundary\n";
        let mut m = Vec::new();
        m.extend_from_slice(b"From a@b Mon May  6 00:10:11 2024\nContent-Length: ");
        m.extend_from_slice(body.len().to_string().as_bytes());
        m.extend_from_slice(b"\n\n");
        m.extend_from_slice(body);
        m.extend_from_slice(b"\nFrom c@d Tue May  7 01:00:00 2024\nSubject: y\n\nb\n");
        let s = starts(&m);
        assert_eq!(s.len(), 2, "{s:?}");
    }

    #[test]
    fn wrong_content_length_falls_back_to_from_lines() {
        let m = b"From a@b Mon May  6 00:10:11 2024\nContent-Length: 3\n\nhello\n\nFrom c@d Tue May  7 01:00:00 2024\nSubject: y\n\nb\n";
        assert_eq!(starts(m).len(), 2);
    }

    #[test]
    fn a_nested_multipart_closing_does_not_close_the_outer_body() {
        // `--YY--` closes the inner part only: the `From ` line after it is still inside the
        // outer body, whose delimiter `--XX` comes later (found by fuzzing the dkimpy trap).
        let m = b"From a@b Mon May  6 00:10:11 2024\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: multipart/alternative; boundary=YY\n\n--YY\ntext\n--YY--\n\nFrom c@d Mon May  6 00:10:11 2024\ninner\n\n--XX--\n";
        assert_eq!(starts(m), vec![0]);
    }

    #[test]
    fn splitter_counts_quoted_lines_unless_content_length_jumped() {
        let m = b"From a@b Mon May  6 00:10:11 2024\n>From x\nSubject: q\n\n>>From y\nz >From w\n\nFrom c@d Tue May  7 01:00:00 2024\nContent-Length: 8\n\n>From v\n";
        let e = split_all(m, &SplitLimits::default());
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].quoted_lines, Some(2));
        assert_eq!(e[1].quoted_lines, None);
        assert_eq!(quoted_from_lines(entry_message(m, &e[1]).2), 1);
    }

    #[test]
    fn mboxrd_unquoting() {
        let m = b">From a\nx >From b\n>>From c\n>>Fromage\n";
        assert_eq!(quoted_from_lines(m), 2);
        assert_eq!(
            &unquote_mboxrd(m)[..],
            b"From a\nx >From b\n>From c\n>>Fromage\n"
        );
        assert!(matches!(
            unquote_mboxrd(b"plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn content_length_past_end_is_ignored() {
        // Stale Content-Length values are common (8-bit conversion after delivery): not trusted.
        let m = b"From a@b Mon May  6 00:10:11 2024\nContent-Length: 300\n\nhello\n";
        let e = split_all(m, &SplitLimits::default());
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].end, m.len());
    }

    #[test]
    fn mbox_attached_inside_an_open_mime_body_stays_inside() {
        let m = b"From a@b Mon May  6 00:10:11 2024\nContent-Type: multipart/mixed;\n boundary=\"=-=-=\"\n\n--=-=-=\nContent-Type: text/plain\n\nsee patch\n\nFrom 123abc Mon Sep 17 00:00:00 2001\nFrom: x@y\nSubject: [PATCH]\n\ndiff\n--=-=-=--\n\nFrom c@d Tue May  7 01:00:00 2024\nSubject: y\n\nb\n";
        let s = starts(m);
        assert_eq!(s.len(), 2, "{s:?}");
        // A closed multipart message does not swallow the next one.
        let m2 = b"From a@b Mon May  6 00:10:11 2024\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n\nhi\n--XX--\n\nFrom c@d Tue May  7 01:00:00 2024\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n\nb\n--XX--\n";
        assert_eq!(starts(m2).len(), 2);
        // An unclosed one followed by a message with the same boundary does not either.
        let m3 = b"From a@b Mon May  6 00:10:11 2024\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n\nhi\n\nFrom c@d Tue May  7 01:00:00 2024\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n\nb\n--XX--\n";
        assert_eq!(starts(m3).len(), 2);
    }

    #[test]
    fn what_leads_the_first_envelope_line_is_an_entry_of_its_own_kind() {
        let next = b"\n\nFrom a@b Mon May  6 00:10:11 2024\nSubject: x\n\nhi\n";
        let lead = |head: &[u8]| {
            let m = [head, &next[..]].concat();
            let e = split_all(&m, &SplitLimits::default());
            assert_eq!(e.len(), 2, "{:?}", String::from_utf8_lossy(&m));
            assert_eq!(e[1].start, head.len() + 2);
            e[0].kind
        };
        // The end of a message whose start was cut off.
        assert_eq!(lead(b"garbage"), EntryKind::CutStart);
        // A junk line right before the first envelope line does not hide it.
        let m = [&b"junk\n"[..], &next[2..]].concat();
        let e = split_all(&m, &SplitLimits::default());
        assert_eq!(
            (e.len(), e[0].kind, e[1].start),
            (2, EntryKind::CutStart, 5)
        );
        assert_eq!(lead(b"ody text\nmore\n--b1--"), EntryKind::CutStart);
        // A message without its envelope line, or with a broken one.
        assert_eq!(lead(b"Subject: x\nFrom: a@b\n\nbody"), EntryKind::Headless);
        assert_eq!(
            lead(b"From nobody\nSubject: x\n\nbody"),
            EntryKind::Headless
        );
        // Binary junk.
        assert_eq!(lead(b"\x00\x01\x02PK\x03\x04"), EntryKind::Preamble);
        // Blank lines are nothing.
        let e = split_all(&next[..], &SplitLimits::default());
        assert_eq!((e.len(), e[0].start), (1, 2));
    }

    #[test]
    fn an_entry_over_the_cap_ends_at_its_first_envelope_line() {
        // A multipart message whose open body holds an mbox: under the cap it is one entry; over
        // it, it ends at the first envelope line, where a streamed reader that cannot hold it
        // finds its end.
        let m = b"From a@b Mon May  6 00:10:11 2024\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\n\nFrom c@d Tue May  7 01:00:00 2024\nSubject: inner\n\n--B--\n\nFrom e@f Tue May  7 02:00:00 2024\nSubject: next\n\nx\n";
        let whole = split_all(m, &SplitLimits::default());
        assert_eq!(whole.len(), 2);
        let inner = memmem::find(m, b"From c@d").unwrap();
        for cap in [inner - 1, 10] {
            let limits = SplitLimits {
                max_entry_bytes: cap,
                ..SplitLimits::default()
            };
            let e = split_all(m, &limits);
            assert_eq!(e[0].kind, EntryKind::TooLarge);
            assert_eq!(e[0].end, inner);
            assert!(
                e[1..]
                    .iter()
                    .all(|e| e.end - e.start <= cap || e.kind == EntryKind::TooLarge)
            );
        }
        let limits = SplitLimits {
            max_entry_bytes: whole[0].end,
            ..SplitLimits::default()
        };
        assert_eq!(split_all(m, &limits), whole);
    }

    #[test]
    fn incremental_planning_matches_whole() {
        let m = b"From a@b Mon May  6 00:10:11 2024\nSubject: x\n\nhi\n\nFrom c@d Tue May  7 01:00:00 2024\nSubject: y\n\nb\n";
        let mut out = Vec::new();
        let p = plan_entries(
            &m[..90],
            0,
            false,
            usize::MAX,
            &SplitLimits::default(),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert!(p.needs_more);
        let p2 = plan_entries(
            m,
            p.next,
            true,
            usize::MAX,
            &SplitLimits::default(),
            &mut out,
        );
        assert_eq!(p2.next, m.len());
        assert_eq!(out, split_all(m, &SplitLimits::default()));
    }

    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"From a@b Mon May  6 00:10:11 2024".to_vec()),
            Just(b"From - Wed Feb  9 22:02 MET 2000".to_vec()),
            Just(b"From the desk".to_vec()),
            Just(b">From a@b Mon May  6 00:10:11 2024".to_vec()),
            Just(b">>From here on".to_vec()),
            Just(b"x >From not quoted".to_vec()),
            Just(b"Subject: hello".to_vec()),
            Just(b"Content-Length: 12".to_vec()),
            Just(b"Content-Length: 0".to_vec()),
            Just(b"content-length: 40".to_vec()),
            Just(b"Content-Type: multipart/mixed; boundary=XX".to_vec()),
            Just(b"Content-Type: multipart/alternative;".to_vec()),
            Just(b" boundary=\"XX\"".to_vec()),
            Just(b"--XX".to_vec()),
            Just(b"--XX--".to_vec()),
            Just(b"--XX_alt".to_vec()),
            // A nested multipart's delimiters: as long as the outer boundary, but another one.
            Just(b"--YY".to_vec()),
            Just(b"--YY--".to_vec()),
            Just(b"Content-Type: text/plain; boundary=XX".to_vec()),
            Just(b"From Marketing: call 10:30 in 2024".to_vec()),
            Just(Vec::new()),
            Just(b"\r".to_vec()),
            Just(b"body text".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn mbox() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(
                (piece(), prop_oneof![Just(&b"\n"[..]), Just(&b"\r\n"[..])]),
                0..40,
            ),
            any::<bool>(),
        )
            .prop_map(|(lines, cut)| {
                let mut v = Vec::new();
                for (l, nl) in lines {
                    v.extend_from_slice(&l);
                    v.extend_from_slice(nl);
                }
                if cut && !v.is_empty() {
                    v.pop();
                }
                v
            })
    }

    /// The header walk as it was before the packed search: every line visited in turn. The
    /// oracle for [`scan_entry_header`].
    fn scan_entry_header_by_lines(data: &[u8], pos: usize, max_bytes: usize) -> HeaderScan {
        let mut scan = HeaderScan::default();
        let (_, mut at) = line_at(data, pos);
        let stop = (pos + max_bytes).min(data.len());
        let mut content_type: Option<usize> = None;
        let mut seen_content_type = false;
        while at < stop {
            let (line, next) = line_at(data, at);
            let folded = matches!(line.first(), Some(b' ' | b'\t'));
            if !folded && let Some(ct) = content_type.take() {
                scan.boundary = multipart_boundary(data, ct, at);
            }
            if line.is_empty() {
                if next > at && data[next - 1] == b'\n' {
                    scan.body_start = Some(next);
                }
                return scan;
            }
            if scan.content_length.is_none()
                && line.len() > 15
                && line[..15].eq_ignore_ascii_case(b"content-length:")
            {
                scan.content_length = parse_decimal(&line[15..]);
            }
            if !seen_content_type
                && line.len() > 13
                && line[..13].eq_ignore_ascii_case(b"content-type:")
            {
                content_type = Some(at + 13);
                seen_content_type = true;
            }
            at = next;
        }
        if let Some(ct) = content_type {
            scan.boundary = multipart_boundary(data, ct, at.min(data.len()));
        }
        scan
    }

    /// Entries without the splitter's by-product counts, for comparing with the oracle.
    fn shape(entries: &[Entry]) -> Vec<(usize, usize, EntryKind)> {
        entries.iter().map(|e| (e.start, e.end, e.kind)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn simd_split_matches_oracle(data in mbox()) {
            let found = split_all(&data, &SplitLimits::default());
            prop_assert_eq!(shape(&found), shape(&oracle::split(&data)));
            // Where the splitter counted quoted lines on its way, the count is the message's own.
            for e in &found {
                if let Some(n) = e.quoted_lines {
                    let (_, _, msg) = entry_message(&data, e);
                    prop_assert_eq!(n as usize, quoted_from_lines(msg));
                }
            }
        }

        #[test]
        fn closing_delimiter_check_matches_a_whole_body_search(
            data in mbox(),
            picks in (0usize..400, 0usize..400, 0usize..400),
        ) {
            // The tail-first search must find exactly what one reverse search over the whole
            // range finds, whatever the positions.
            let n = data.len();
            let mut p = [picks.0 % (n + 1), picks.1 % (n + 1), picks.2 % (n + 1)];
            p.sort_unstable();
            let [body, lo, cand] = p;
            let whole = memmem::rfind_iter(&data[lo..cand], b"XX").any(|rel| {
                let hit = lo + rel;
                hit >= body.max(1) + 2
                    && &data[hit - 3..hit] == b"\n--"
                    && data[hit + 2..cand].starts_with(b"--")
            });
            prop_assert_eq!(closed_before(&data, b"XX", body, lo, cand), whole);
        }

        #[test]
        fn header_walk_by_marks_equals_the_walk_by_lines(
            data in mbox(),
            pos in 0usize..400,
            max_bytes in prop_oneof![Just(1usize << 20), 0usize..300],
        ) {
            let pos = pos.min(data.len().saturating_sub(1));
            if data.is_empty() {
                return Ok(());
            }
            prop_assert_eq!(
                scan_entry_header(&data, pos, max_bytes),
                scan_entry_header_by_lines(&data, pos, max_bytes)
            );
        }

        #[test]
        fn header_marks_agree_on_every_target(data in mbox(), from in 0usize..64) {
            // The packed searcher (x86_64, aarch64) and the automaton (elsewhere) must find the
            // same marks; both are run here, whatever this target is.
            let from = from.min(data.len());
            let automaton = HeaderMarks::automaton();
            prop_assert_eq!(HEADER_MARKS.next(&data, from), automaton.next(&data, from));
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let e = split_all(&data, &SplitLimits::default());
            // entries tile the data from the first start to the end
            for w in e.windows(2) { prop_assert_eq!(w[0].end, w[1].start); }
            if let Some(last) = e.last() { prop_assert_eq!(last.end, data.len()); }
        }

        #[test]
        fn chunked_planning_matches_whole(data in mbox(), cut in 0usize..400) {
            let limits = SplitLimits::default();
            let whole = split_all(&data, &limits);
            let Some(first) = first_entry(&data) else { return Ok(()); };
            let mut out = Vec::new();
            let cut = cut.min(data.len());
            let mut pos = first;
            if cut > first {
                let p = plan_entries(&data[..cut], first, false, usize::MAX, &limits, &mut out);
                pos = p.next;
            }
            plan_entries(&data, pos, true, usize::MAX, &limits, &mut out);
            let whole: Vec<_> = whole.into_iter().filter(|e| e.start >= first).collect();
            prop_assert_eq!(out, whole);
        }
    }
}
