//! Offline store of DNS TXT records (DKIM public keys such as `sel._domainkey.example.com`).
//!
//! **Takes** archived key files — DNS master (zone) files, `name value` line files, blaze-style
//! `<name>.dns` cache files, mail-auth-style fixtures (records, blank line, message) — as paths,
//! bytes or text. **Gives** a [`KeyStore`]: lower-case FQDN (single trailing dot) → TXT values in
//! load order (exact duplicates dropped) with their `file:line` origin, plus recorded NXDOMAIN
//! answers. [`KeyStore::write_lines`] writes the store back in the line format, sorted and
//! deterministic; loading that output gives the same names, values, order and negative answers.
//!
//! # Format detection ([`detect_format`], per file)
//! A file is a **zone file** if any line that does not start with whitespace, `#` or `;`
//! * starts with `$` (`$ORIGIN`, `$TTL`, `$INCLUDE`, ...), or
//! * has an RR header: owner, then at most two TTL (`3600`, `1h30m`) / class (`IN`, `CH`, `HS`,
//!   `CS`, `CLASSnn`) tokens in either order, then a record type mnemonic (`TXT`, `A`, `TYPE16`,
//!   ...; case-insensitive), where the type is `TXT`/`TYPE16` or a TTL/class token is present.
//!   So `x. IN TXT "v=DKIM1..."`, `x TXT "..."`, `x 300 IN MX 10 y.` make a zone file, while
//!   `x v=DKIM1; p=...` and `x NXDOMAIN` do not.
//!
//! Otherwise it is a **line file**. [`KeyStore::load_file`] additionally treats a file named
//! `*.dns` whose first non-blank line starts with `word:` (e.g. `txt:v=DKIM1; ...`) as a blaze
//! DNS cache file, the owner name being the file name without `.dns`. Mixing line-format records
//! into a zone file is not supported: they are reported as "unknown record type" errors.
//!
//! # Zone subset (RFC 1035 §5)
//! `$ORIGIN` (default: the root), `$TTL` (checked, ignored), `$INCLUDE` (never followed: reported
//! as an error naming the line), `@`, absolute or relative owners, blank owner = previous owner,
//! optional TTL and class in either order, `( ... )` spanning lines, `;` comments outside quotes,
//! quoted and unquoted character-strings with `\"`, `\\`, `\X` and `\DDD` escapes, RFC 3597
//! `\# len hex` RDATA. The strings of one TXT record are concatenated **without** separator
//! (RFC 6376 §3.6.2.2). Other record types are skipped and counted; the pseudo-type `NXDOMAIN`
//! (`name NXDOMAIN`) records a negative answer, as in line files.
//!
//! # Line format
//! `name value` per line; blank lines and lines starting with `#` or `;` are ignored; a trailing
//! `.` on the name is optional (names are always absolute) and may use `\X`/`\DDD` escapes.
//! The value is either `NXDOMAIN` (any case, unquoted: looked up, does not exist), or, if it
//! starts with `"`, a sequence of character-strings as in zone files (concatenated; a trailing
//! `#`/`;` comment is allowed), or else a bare string taken verbatim up to the end of the line
//! (trailing blanks removed, no escapes). [`KeyStore::write_lines`] always writes quoted values.
//!
//! # Errors
//! Loading never stops at a bad line: each unparsable line (or zone entry) is recorded in
//! [`LoadStats::errors`] with its line number and the rest of the file is still loaded; only
//! I/O failures are returned as `Err`. [`LoadStats::into_result`] turns the first line error
//! into [`KeyStoreError::Syntax`] for strict callers. Input is read as bytes (a leading UTF-8 BOM is
//! ignored); lines that are not valid UTF-8 are decoded lossily (U+FFFD) and counted in
//! [`LoadStats::non_utf8_lines`].

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One TXT record: the concatenated value and where it came from (`file:line`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: String,
    pub origin: String,
}

/// Result of [`KeyStore::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// TXT records known for the name, in load order (a name with records is never `Negative`).
    Found(&'a [Record]),
    /// Recorded negative answer (NXDOMAIN) and no records.
    Negative,
    /// Recorded failed lookup (`SERVFAIL`, `TIMEOUT`) and no records or NXDOMAIN: the key's
    /// fate was unknown when the archive was made, a `temperror`.
    Failed(Failure),
    /// Nothing known: the name was never looked up when the archive was made.
    Unknown,
}

/// A lookup that failed when the archive was made, recorded as `name SERVFAIL` or
/// `name TIMEOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    ServFail,
    Timeout,
}

impl Failure {
    /// The word in key files.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::ServFail => "SERVFAIL",
            Failure::Timeout => "TIMEOUT",
        }
    }

    /// The failure a key-file word names (any case).
    pub fn parse(word: &str) -> Option<Failure> {
        [Failure::ServFail, Failure::Timeout]
            .into_iter()
            .find(|f| word.eq_ignore_ascii_case(f.as_str()))
    }
}

/// Input format of one loaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Zone,
    Lines,
    /// blaze cache file: `txt:<value>` lines, all records for `name`.
    DnsCache {
        name: String,
    },
    /// JSON: the historic keys the DKIM archive at archive.prove.email lists (its API's
    /// `/key?domain=` answer: an array of `{domain, selector, value, firstSeenAt, lastSeenAt}`),
    /// or a mailauth DNS cache (`mailauth report --dns-cache`: `{name: {"TXT": [[chunks]]}}`).
    Json,
}

/// A line (or zone entry starting at `line`) that could not be parsed and was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub source: String,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.reason)
    }
}

/// What one load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStats {
    /// Origin name used in [`Record::origin`] (the path for files).
    pub source: String,
    pub format: Format,
    /// TXT records parsed (including exact duplicates of records already in the store).
    pub records: usize,
    /// Of `records`, how many were new (not an exact duplicate for the same name).
    pub added: usize,
    /// NXDOMAIN entries parsed.
    pub negative: usize,
    /// Records of other types skipped (zone SOA/NS/A/..., non-`txt:` cache lines).
    pub skipped_non_txt: usize,
    /// Input lines that were not valid UTF-8 (decoded lossily).
    pub non_utf8_lines: usize,
    /// Lines that were not loaded, in file order.
    pub errors: Vec<LineError>,
}

impl LoadStats {
    fn new(source: &str, format: Format) -> Self {
        LoadStats {
            source: source.to_string(),
            format,
            records: 0,
            added: 0,
            negative: 0,
            skipped_non_txt: 0,
            non_utf8_lines: 0,
            errors: Vec::new(),
        }
    }

    /// Strict mode: `Err(Syntax)` for the first line error, else the stats.
    pub fn into_result(self) -> Result<LoadStats, KeyStoreError> {
        match self.errors.first() {
            Some(e) => Err(KeyStoreError::Syntax {
                path: e.source.clone(),
                line: e.line,
                reason: e.reason.clone(),
            }),
            None => Ok(self),
        }
    }
}

#[derive(thiserror::Error, Debug)]
pub enum KeyStoreError {
    #[error("cannot read key file {}", .path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: larger than {} MiB; a key file that size is not a key file (split it if it really is)", .path.display(), .limit >> 20)]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Key files larger than this are refused (about half a million 2048-bit keys): a user's typo
/// (`--keys /dev/zero`, a mail archive) must not take the machine's memory.
pub const MAX_KEY_FILE_BYTES: u64 = 256 << 20;

/// Offline TXT store: name → records in load order, plus names with a recorded NXDOMAIN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStore {
    records: BTreeMap<String, Vec<Record>>,
    negative: BTreeSet<String>,
    failures: BTreeMap<String, Failure>,
    count: usize,
}

/// Lower-case ASCII letters, strip surrounding whitespace, exactly one trailing dot
/// (the root is `"."`). Idempotent.
pub fn normalize_name(name: &str) -> String {
    let mut s = name.trim().trim_end_matches('.').to_ascii_lowercase();
    s.push('.');
    s
}

impl KeyStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a record; `false` if the same value is already stored for the name.
    pub fn insert(&mut self, name: &str, value: String, origin: String) -> bool {
        let list = self.records.entry(normalize_name(name)).or_default();
        if list.iter().any(|r| r.value == value) {
            return false;
        }
        list.push(Record { value, origin });
        self.count += 1;
        true
    }

    /// Record that `name` was looked up and does not exist; `false` if already recorded.
    pub fn insert_negative(&mut self, name: &str) -> bool {
        self.negative.insert(normalize_name(name))
    }

    /// Record that looking `name` up failed (`SERVFAIL`, `TIMEOUT`); `false` if already
    /// recorded. A record or an NXDOMAIN for the name outranks it.
    pub fn insert_failure(&mut self, name: &str, failure: Failure) -> bool {
        self.failures.insert(normalize_name(name), failure) != Some(failure)
    }

    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let name = normalize_name(name);
        match self.records.get(&name) {
            Some(list) if !list.is_empty() => Lookup::Found(list),
            _ if self.negative.contains(&name) => Lookup::Negative,
            _ => match self.failures.get(&name) {
                Some(f) => Lookup::Failed(*f),
                None => Lookup::Unknown,
            },
        }
    }

    /// Names whose lookup failed, sorted, with the failure (outranked ones included).
    pub fn failures(&self) -> impl Iterator<Item = (&str, Failure)> {
        self.failures.iter().map(|(n, f)| (n.as_str(), *f))
    }

    /// Number of TXT records (all names).
    pub fn len(&self) -> usize {
        self.count
    }

    /// No TXT records (negative answers are not counted, see [`KeyStore::negative_len`]).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of recorded negative answers.
    pub fn negative_len(&self) -> usize {
        self.negative.len()
    }

    /// Names with records, sorted, each with its records in load order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Record])> {
        self.records.iter().map(|(n, r)| (n.as_str(), r.as_slice()))
    }

    /// Names with a recorded negative answer, sorted.
    pub fn negatives(&self) -> impl Iterator<Item = &str> {
        self.negative.iter().map(String::as_str)
    }

    /// Read and load one file; the format is sniffed (see the module docs).
    /// Only I/O errors are `Err`; bad lines are listed in the returned stats.
    pub fn load_file(&mut self, path: &Path) -> Result<LoadStats, KeyStoreError> {
        self.load_file_within(path, MAX_KEY_FILE_BYTES)
    }

    /// [`KeyStore::load_file`] with a size limit: a file (or device, or pipe) with more than
    /// `limit` bytes is an error, read no further than that.
    pub fn load_file_within(
        &mut self,
        path: &Path,
        limit: u64,
    ) -> Result<LoadStats, KeyStoreError> {
        use std::io::Read as _;
        let io_err = |source| KeyStoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut data = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut data))
            .map_err(io_err)?;
        if data.len() as u64 > limit {
            return Err(KeyStoreError::TooLarge {
                path: path.to_path_buf(),
                limit,
            });
        }
        let origin = path.display().to_string();
        let data = strip_bom(&data);
        let format = match dns_cache_name(path, data) {
            Some(name) => Format::DnsCache { name },
            None => detect_format(&String::from_utf8_lossy(data)),
        };
        Ok(self.load_bytes_as(data, &origin, format))
    }

    /// Load every regular, non-hidden file of a directory (not recursive), in file-name order,
    /// e.g. a blaze `cache/` directory.
    pub fn load_dir(&mut self, dir: &Path) -> Result<Vec<LoadStats>, KeyStoreError> {
        let io_err = |source| KeyStoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        files.iter().map(|p| self.load_file(p)).collect()
    }

    /// Load text; format sniffed with [`detect_format`]. `origin_name` prefixes record origins.
    #[cfg(test)]
    pub(crate) fn load_str(&mut self, text: &str, origin_name: &str) -> LoadStats {
        self.load_bytes(text.as_bytes(), origin_name)
    }

    /// Load bytes (non-UTF-8 lines decoded lossily); format sniffed with [`detect_format`].
    pub fn load_bytes(&mut self, data: &[u8], origin_name: &str) -> LoadStats {
        let data = strip_bom(data);
        let format = detect_format(&String::from_utf8_lossy(data));
        self.load_bytes_as(data, origin_name, format)
    }

    /// Load bytes in the given format (no sniffing).
    pub fn load_bytes_as(&mut self, data: &[u8], origin_name: &str, format: Format) -> LoadStats {
        let lines = split_lines(strip_bom(data));
        let mut ld = Loader {
            store: self,
            stats: LoadStats::new(origin_name, format.clone()),
        };
        ld.stats.non_utf8_lines = lines.iter().filter(|l| l.lossy).count();
        match format {
            Format::Zone => ld.zone(&lines),
            Format::Lines => {
                for l in &lines {
                    ld.line_record(l.no, &l.text);
                }
            }
            Format::DnsCache { name } => ld.dns_cache(&lines, &name),
            Format::Json => ld.json(strip_bom(data)),
        }
        ld.stats
    }

    /// Load a mail-auth-style fixture: line-format records, one empty line, then the message.
    /// Returns the stats and the byte offset of the message in `data`
    /// (see [`split_embedded_records`]).
    pub fn load_embedded(&mut self, data: &[u8], origin_name: &str) -> (LoadStats, usize) {
        let (records, offset) = split_embedded_records(data);
        let stats = self.load_bytes_as(records, origin_name, Format::Lines);
        (stats, offset)
    }

    /// Write every record and negative answer in the line format: names sorted, records in
    /// load order, then `name NXDOMAIN`. Values are always quoted (`\"`, `\\`, `\DDD` for
    /// control characters); names escape blanks, controls and `"\();#$`.
    pub fn write_lines(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "# mailcensus key store: {} TXT record(s), {} NXDOMAIN answer(s), {} failed lookup(s)",
            self.count,
            self.negative.len(),
            self.failures.len()
        )?;
        writeln!(
            out,
            "# format: <name> \"<TXT value>\" | <name> NXDOMAIN | <name> SERVFAIL | <name> TIMEOUT"
        )?;
        let names: BTreeSet<&str> = self
            .records
            .keys()
            .chain(self.negative.iter())
            .chain(self.failures.keys())
            .map(String::as_str)
            .collect();
        for name in names {
            let escaped = escape_name(name);
            for rec in self.records.get(name).map(Vec::as_slice).unwrap_or(&[]) {
                writeln!(out, "{escaped} {}", quote_value(&rec.value))?;
            }
            if self.negative.contains(name) {
                writeln!(out, "{escaped} NXDOMAIN")?;
            }
            if let Some(f) = self.failures.get(name) {
                writeln!(out, "{escaped} {}", f.as_str())?;
            }
        }
        Ok(())
    }
}

/// Split a mail-auth fixture at the first empty line (`""` or `"\r"`): returns the record
/// block (without the empty line) and the offset of the message after it. Without an empty
/// line everything is records and the offset is `data.len()`.
pub fn split_embedded_records(data: &[u8]) -> (&[u8], usize) {
    let mut start = 0;
    while start < data.len() {
        let end = data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |p| start + p);
        let line = &data[start..end];
        if line.is_empty() || line == b"\r" {
            return (&data[..start], (end + 1).min(data.len()));
        }
        start = end + 1;
    }
    (data, data.len())
}

/// Sniff zone vs line format (see the module docs for the rule).
pub fn detect_format(text: &str) -> Format {
    if text.trim_start().starts_with(['[', '{']) {
        return Format::Json;
    }
    for line in text.split('\n') {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim_end_matches('\r');
        if line.starts_with('$') {
            return Format::Zone;
        }
        if line.starts_with(['#', ';']) {
            continue;
        }
        let toks: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
        if toks.len() > 1 && rr_header_like(&toks[1..]) {
            return Format::Zone;
        }
    }
    Format::Lines
}

fn rr_header_like(rest: &[&str]) -> bool {
    let (mut ttl, mut class) = (false, false);
    for t in rest.iter().take(3) {
        if !ttl && is_ttl(t) {
            ttl = true;
        } else if !class && is_class(t) {
            class = true;
        } else {
            return is_type(t) && (ttl || class || is_txt_type(t));
        }
    }
    false
}

fn is_ttl(t: &str) -> bool {
    t.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && t.bytes()
            .all(|b| b.is_ascii_digit() || b"smhdwSMHDW".contains(&b))
}

fn is_class(t: &str) -> bool {
    ["IN", "CH", "CS", "HS"]
        .iter()
        .any(|c| t.eq_ignore_ascii_case(c))
        || numbered(t, "CLASS")
}

/// `PREFIXnnn` with nnn a 16-bit number.
fn numbered(t: &str, prefix: &str) -> bool {
    type_number(t, prefix).is_some()
}

fn type_number(t: &str, prefix: &str) -> Option<u16> {
    let head = t.get(..prefix.len())?;
    let tail = t.get(prefix.len()..)?;
    if !head.eq_ignore_ascii_case(prefix) || tail.is_empty() {
        return None;
    }
    if !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tail.parse().ok()
}

fn is_txt_type(t: &str) -> bool {
    t.eq_ignore_ascii_case("TXT") || type_number(t, "TYPE") == Some(16)
}

#[rustfmt::skip]
const KNOWN_TYPES: &[&str] = &[
    "A", "NS", "MD", "MF", "CNAME", "SOA", "MB", "MG", "MR", "NULL", "WKS", "PTR", "HINFO",
    "MINFO", "MX", "TXT", "RP", "AFSDB", "X25", "ISDN", "RT", "NSAP", "NSAP-PTR", "SIG", "KEY",
    "PX", "GPOS", "AAAA", "LOC", "NXT", "EID", "NIMLOC", "SRV", "ATMA", "NAPTR", "KX", "CERT",
    "A6", "DNAME", "SINK", "APL", "DS", "SSHFP", "IPSECKEY", "RRSIG", "NSEC", "DNSKEY", "DHCID",
    "NSEC3", "NSEC3PARAM", "TLSA", "SMIMEA", "HIP", "NINFO", "RKEY", "TALINK", "CDS", "CDNSKEY",
    "OPENPGPKEY", "CSYNC", "ZONEMD", "SVCB", "HTTPS", "SPF", "UINFO", "UID", "GID", "UNSPEC",
    "NID", "L32", "L64", "LP", "EUI48", "EUI64", "URI", "CAA", "AVC", "DOA", "AMTRELAY", "TA",
    "DLV", "RESINFO", "WALLET",
];

fn is_type(t: &str) -> bool {
    KNOWN_TYPES.iter().any(|k| t.eq_ignore_ascii_case(k)) || numbered(t, "TYPE")
}

/// blaze cache sniffing: `*.dns` file whose first non-blank line is `word:...`.
fn dns_cache_name(path: &Path, data: &[u8]) -> Option<String> {
    let file = path.file_name()?.to_string_lossy().into_owned();
    let stem_len = file.len().checked_sub(4)?;
    if !file.get(stem_len..)?.eq_ignore_ascii_case(".dns") || stem_len == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(data);
    let first = text.split('\n').find(|l| !l.trim().is_empty())?;
    cache_prefix(first)?;
    file.get(..stem_len).map(str::to_string)
}

/// `word:` prefix of a cache line (word = ASCII alphanumerics or `-`, starting with a letter).
fn cache_prefix(line: &str) -> Option<&str> {
    let (word, _) = line.split_once(':')?;
    let ok = word.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then_some(word)
}

/// A leading UTF-8 byte-order mark is ignored.
fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

struct Line<'a> {
    no: usize,
    text: Cow<'a, str>,
    lossy: bool,
}

fn split_lines(data: &[u8]) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    if data.is_empty() {
        return out;
    }
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw);
        let lossy = matches!(text, Cow::Owned(_));
        out.push(Line {
            no: i + 1,
            text,
            lossy,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Lexing (character-strings with RFC 1035 escapes)

#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Zone files: `( ) ;` are special.
    Zone,
    /// Quoted line-format values: `#`/`;` at a token start begin a comment.
    LineValue,
}

struct Tok {
    bytes: Vec<u8>,
    raw: String,
    quoted: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Tokenize one physical line, appending to `out` and tracking parenthesis depth.
fn lex_line(line: &str, mode: Lex, depth: &mut u32, out: &mut Vec<Tok>) -> Result<(), String> {
    let b = line.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            _ if is_blank(c) => i += 1,
            b';' if mode == Lex::Zone => return Ok(()),
            b'#' | b';' if mode == Lex::LineValue => return Ok(()),
            b'(' if mode == Lex::Zone => {
                *depth = depth.saturating_add(1);
                i += 1;
            }
            b')' if mode == Lex::Zone => {
                if *depth == 0 {
                    return Err("unbalanced ')'".into());
                }
                *depth -= 1;
                i += 1;
            }
            b'"' => {
                let (tok, next) = lex_quoted(line, i)?;
                out.push(tok);
                i = next;
            }
            _ => {
                let (tok, next) = lex_word(line, i, mode)?;
                out.push(tok);
                i = next;
            }
        }
    }
    Ok(())
}

/// Unquoted token starting at `start`; returns it and the index after it.
fn lex_word(line: &str, start: usize, mode: Lex) -> Result<(Tok, usize), String> {
    let b = line.as_bytes();
    let mut bytes = Vec::new();
    let mut i = start;
    while let Some(&c) = b.get(i) {
        if is_blank(c) || c == b'"' || (mode == Lex::Zone && matches!(c, b'(' | b')' | b';')) {
            break;
        }
        if c == b'\\' {
            i = unescape(line, i, &mut bytes)?;
        } else {
            bytes.push(c);
            i += 1;
        }
    }
    let raw = line.get(start..i).unwrap_or_default().to_string();
    Ok((
        Tok {
            bytes,
            raw,
            quoted: false,
        },
        i,
    ))
}

/// Quoted string starting at the `"` at `start`.
fn lex_quoted(line: &str, start: usize) -> Result<(Tok, usize), String> {
    let b = line.as_bytes();
    let mut bytes = Vec::new();
    let mut i = start + 1;
    loop {
        match b.get(i) {
            None => return Err("unterminated quoted string".into()),
            Some(b'"') => {
                i += 1;
                break;
            }
            Some(b'\\') => i = unescape(line, i, &mut bytes)?,
            Some(&c) => {
                bytes.push(c);
                i += 1;
            }
        }
    }
    let raw = line.get(start..i).unwrap_or_default().to_string();
    Ok((
        Tok {
            bytes,
            raw,
            quoted: true,
        },
        i,
    ))
}

/// Decode the escape whose backslash is at `i`; returns the index after it.
fn unescape(line: &str, i: usize, out: &mut Vec<u8>) -> Result<usize, String> {
    let b = line.as_bytes();
    match b.get(i + 1) {
        None => Err("backslash at end of line".into()),
        Some(d) if d.is_ascii_digit() => {
            let digits = b
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(u8::is_ascii_digit))
                .ok_or("bad \\DDD escape (need three digits)")?;
            let v = digits
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
            let v = u8::try_from(v).map_err(|_| format!("\\DDD escape out of range: \\{v}"))?;
            out.push(v);
            Ok(i + 4)
        }
        Some(_) => {
            let ch = line
                .get(i + 1..)
                .and_then(|s| s.chars().next())
                .ok_or("bad escape")?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            Ok(i + 1 + ch.len_utf8())
        }
    }
}

fn bytes_to_string(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    }
}

/// Does the raw token end with an unescaped `.` (absolute name)?
fn ends_with_unescaped_dot(raw: &str) -> bool {
    match raw.strip_suffix('.') {
        Some(head) => head.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 0,
        None => false,
    }
}

fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' | '\\' | '(' | ')' | ';' | '#' | '$' => {
                out.push('\\');
                out.push(c);
            }
            ' ' | '\t' => out.push_str(&format!("\\{:03}", c as u32)),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn quote_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_control() => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------------------------
// Loading

struct Loader<'s> {
    store: &'s mut KeyStore,
    stats: LoadStats,
}

impl Loader<'_> {
    fn error(&mut self, line: usize, reason: impl Into<String>) {
        self.stats.errors.push(LineError {
            source: self.stats.source.clone(),
            line,
            reason: reason.into(),
        });
    }

    fn record(&mut self, line: usize, name: &str, value: Vec<u8>) {
        let (value, lossy) = bytes_to_string(value);
        if lossy {
            self.stats.non_utf8_lines += 1;
        }
        self.stats.records += 1;
        let origin = format!("{}:{line}", self.stats.source);
        if self.store.insert(name, value, origin) {
            self.stats.added += 1;
        }
    }

    fn negative(&mut self, name: &str) {
        self.stats.negative += 1;
        self.store.insert_negative(name);
    }

    // ----- JSON: archive.prove.email key listings and mailauth DNS caches

    /// A JSON key file. Entries are numbered from 1 where a line number would go (errors and
    /// origins say `FILE:N`).
    fn json(&mut self, data: &[u8]) {
        let doc: serde_json::Value = match serde_json::from_slice(data) {
            Ok(doc) => doc,
            Err(e) => return self.error(e.line(), format!("not valid JSON: {e}")),
        };
        match doc {
            serde_json::Value::Array(entries) => self.prove_email(&entries),
            serde_json::Value::Object(names)
                if names.values().all(|v| v.is_object()) && !names.is_empty() =>
            {
                self.mailauth_cache(&names)
            }
            other => {
                let text: String = other.to_string().chars().take(80).collect();
                self.error(
                    1,
                    format!("a JSON file that is neither an archive.prove.email key listing (an array) nor a mailauth DNS cache (an object of names): {text}"),
                )
            }
        }
    }

    /// archive.prove.email: one key per entry; the archive lists what it saw, so a name it does
    /// not list is unknown, never a recorded NXDOMAIN.
    fn prove_email(&mut self, entries: &[serde_json::Value]) {
        for (i, entry) in entries.iter().enumerate() {
            let text = |k: &str| entry.get(k).and_then(|v| v.as_str());
            match (text("domain"), text("selector"), text("value")) {
                (Some(domain), Some(selector), Some(value)) => {
                    let name = format!("{selector}._domainkey.{domain}");
                    self.record(i + 1, &name, value.as_bytes().to_vec());
                }
                _ => self.error(
                    i + 1,
                    "an archive.prove.email entry without domain, selector and value",
                ),
            }
        }
    }

    /// mailauth DNS cache: each TXT record is an array of chunks joined without a separator
    /// (or a bare string); `"TXT": null` or `[]` is a name that does not exist. Other record
    /// types are skipped.
    fn mailauth_cache(&mut self, names: &serde_json::Map<String, serde_json::Value>) {
        for (i, (name, types)) in names.iter().enumerate() {
            for (rr, value) in types.as_object().into_iter().flatten() {
                if !rr.eq_ignore_ascii_case("TXT") {
                    self.stats.skipped_non_txt += 1;
                    continue;
                }
                match value {
                    serde_json::Value::Null | serde_json::Value::Bool(false) => self.negative(name),
                    serde_json::Value::Array(records) if records.is_empty() => self.negative(name),
                    serde_json::Value::Array(records) => {
                        for record in records {
                            let joined = match record {
                                serde_json::Value::String(s) => Some(s.clone()),
                                serde_json::Value::Array(chunks) => chunks
                                    .iter()
                                    .map(|c| c.as_str())
                                    .collect::<Option<Vec<&str>>>()
                                    .map(|c| c.concat()),
                                _ => None,
                            };
                            match joined {
                                Some(value) => self.record(i + 1, name, value.into_bytes()),
                                None => self.error(
                                    i + 1,
                                    format!("{name}: a TXT record that is not text or an array of text chunks"),
                                ),
                            }
                        }
                    }
                    _ => self.error(i + 1, format!("{name}: TXT is not an array of records")),
                }
            }
        }
    }

    // ----- line format

    fn line_record(&mut self, no: usize, text: &str) {
        if let Err(e) = self.try_line_record(no, text) {
            self.error(no, e);
        }
    }

    fn try_line_record(&mut self, no: usize, text: &str) -> Result<(), String> {
        let text = text.trim_start_matches([' ', '\t']);
        if text.is_empty() || text.starts_with(['#', ';']) {
            return Ok(());
        }
        if text.starts_with('"') {
            return Err("name must not be quoted".into());
        }
        let (name_tok, end) = lex_word(text, 0, Lex::LineValue)?;
        let rest = text.get(end..).unwrap_or_default();
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            return Err("expected blank after the name".into());
        }
        let (name, lossy) = bytes_to_string(name_tok.bytes);
        if lossy {
            self.stats.non_utf8_lines += 1;
        }
        let value = rest.trim_matches([' ', '\t']);
        if value.is_empty() {
            return Err(format!(
                "missing value after name {name:?} (expected a TXT value or NXDOMAIN)"
            ));
        }
        if value.eq_ignore_ascii_case("NXDOMAIN") {
            self.negative(&name);
        } else if let Some(f) = Failure::parse(value) {
            self.store.insert_failure(&name, f);
        } else if value.starts_with('"') {
            let mut toks = Vec::new();
            lex_line(value, Lex::LineValue, &mut 0, &mut toks)?;
            let joined = toks.into_iter().flat_map(|t| t.bytes).collect();
            self.record(no, &name, joined);
        } else {
            self.record(no, &name, value.as_bytes().to_vec());
        }
        Ok(())
    }

    // ----- blaze cache

    fn dns_cache(&mut self, lines: &[Line<'_>], name: &str) {
        for l in lines {
            if l.text.trim().is_empty() {
                continue;
            }
            match cache_prefix(&l.text) {
                Some(word) if word.eq_ignore_ascii_case("txt") => {
                    let value = l.text.get(word.len() + 1..).unwrap_or_default();
                    self.record(l.no, name, value.as_bytes().to_vec());
                }
                Some(_) => self.stats.skipped_non_txt += 1,
                None => self.error(l.no, "expected `type:value` (blaze DNS cache line)"),
            }
        }
    }

    // ----- zone format

    fn zone(&mut self, lines: &[Line<'_>]) {
        let mut st = ZoneState {
            origin: ".".to_string(),
            last_owner: None,
        };
        let mut toks = Vec::new();
        let mut depth = 0u32;
        let mut start = 0;
        let mut blank_owner = false;
        let mut err: Option<String> = None;
        for l in lines {
            if depth == 0 {
                toks.clear();
                start = l.no;
                blank_owner = l.text.starts_with([' ', '\t']);
                err = None;
            }
            let res = if err.is_none() {
                lex_line(&l.text, Lex::Zone, &mut depth, &mut toks)
            } else {
                // Entry already bad: only keep tracking parentheses to find its end.
                lex_line(&l.text, Lex::Zone, &mut depth, &mut Vec::new())
            };
            if let Err(e) = res {
                err.get_or_insert(e);
            }
            if depth == 0 {
                match err.take() {
                    Some(e) => self.error(start, e),
                    None if toks.is_empty() => {}
                    None => {
                        let entry = std::mem::take(&mut toks);
                        if let Err(e) = self.zone_entry(entry, blank_owner, start, &mut st) {
                            self.error(start, e);
                        }
                    }
                }
            }
        }
        if depth > 0 {
            self.error(
                start,
                "unbalanced '(': entry not closed before end of file".to_string(),
            );
        }
    }

    fn zone_entry(
        &mut self,
        toks: Vec<Tok>,
        blank_owner: bool,
        line: usize,
        st: &mut ZoneState,
    ) -> Result<(), String> {
        let mut it = toks.into_iter().peekable();
        let first_is_directive = it
            .peek()
            .is_some_and(|t| !blank_owner && !t.quoted && t.raw.starts_with('$'));
        if first_is_directive {
            let dir: Vec<Tok> = it.collect();
            return self.directive(&dir, st);
        }
        let owner = if blank_owner {
            st.last_owner
                .clone()
                .ok_or("line starts with a blank but there is no previous owner name")?
        } else {
            let t = it.next().ok_or("empty entry")?;
            if t.quoted {
                return Err("owner name must not be quoted".into());
            }
            resolve_name(&t, &st.origin)
        };
        st.last_owner = Some(owner.clone());
        let (mut ttl, mut class) = (false, false);
        let ty = loop {
            let t = it.next().ok_or("missing record type")?;
            if t.quoted {
                return Err(format!("expected record type, found string {}", t.raw));
            }
            if !ttl && is_ttl(&t.raw) {
                ttl = true;
            } else if !class && is_class(&t.raw) {
                class = true;
            } else {
                break t.raw;
            }
        };
        let rdata: Vec<Tok> = it.collect();
        if is_txt_type(&ty) {
            let value = txt_rdata(&rdata)?;
            self.record(line, &owner, value);
        } else if ty.eq_ignore_ascii_case("NXDOMAIN") {
            if !rdata.is_empty() {
                return Err("unexpected data after NXDOMAIN".into());
            }
            self.negative(&owner);
        } else if let Some(f) = Failure::parse(&ty) {
            if !rdata.is_empty() {
                return Err(format!("unexpected data after {}", f.as_str()));
            }
            self.store.insert_failure(&owner, f);
        } else if is_type(&ty) {
            self.stats.skipped_non_txt += 1;
        } else {
            return Err(format!(
                "unknown record type {ty:?} (line-format record in a zone-format file?)"
            ));
        }
        Ok(())
    }

    fn directive(&mut self, toks: &[Tok], st: &mut ZoneState) -> Result<(), String> {
        let name = toks.first().map(|t| t.raw.to_ascii_uppercase());
        let args = toks.get(1..).unwrap_or_default();
        match name.as_deref() {
            Some("$ORIGIN") => match args {
                [t] if !t.quoted => {
                    st.origin = resolve_name(t, &st.origin);
                    Ok(())
                }
                _ => Err("$ORIGIN needs exactly one domain name".into()),
            },
            Some("$TTL") => match args {
                [t] if !t.quoted && is_ttl(&t.raw) => Ok(()),
                _ => Err("$TTL needs exactly one TTL value".into()),
            },
            Some("$INCLUDE") => Err(
                "$INCLUDE is not followed (for safety only the files given are read); \
                 pass the included file with its own --keys"
                    .into(),
            ),
            _ => Err(format!(
                "unsupported directive {}",
                toks.first().map_or("", |t| t.raw.as_str())
            )),
        }
    }
}

struct ZoneState {
    origin: String,
    last_owner: Option<String>,
}

fn resolve_name(t: &Tok, origin: &str) -> String {
    if t.raw == "@" {
        return origin.to_string();
    }
    let absolute = ends_with_unescaped_dot(&t.raw);
    let text = String::from_utf8_lossy(&t.bytes);
    if absolute || origin == "." {
        normalize_name(&text)
    } else {
        normalize_name(&format!("{text}.{origin}"))
    }
}

/// TXT RDATA: character-strings concatenated, or RFC 3597 `\# len hex`.
fn txt_rdata(toks: &[Tok]) -> Result<Vec<u8>, String> {
    match toks {
        [] => Err("TXT record without character-strings".into()),
        [first, rest @ ..] if !first.quoted && first.raw == "\\#" => generic_txt(rest),
        _ => Ok(toks.iter().flat_map(|t| t.bytes.iter().copied()).collect()),
    }
}

fn generic_txt(toks: &[Tok]) -> Result<Vec<u8>, String> {
    let (len_tok, hex_toks) = toks.split_first().ok_or("\\# needs a length")?;
    let len: usize = len_tok
        .raw
        .parse()
        .map_err(|_| format!("bad \\# length {:?}", len_tok.raw))?;
    let mut hex = Vec::new();
    for t in hex_toks {
        if t.quoted {
            return Err("\\# data must be hex".into());
        }
        hex.extend_from_slice(t.raw.as_bytes());
    }
    if hex.len() % 2 != 0 {
        return Err("\\# hex data has an odd number of digits".into());
    }
    let mut data = Vec::with_capacity(hex.len() / 2);
    if !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err("\\# data must be hex digits".into());
    }
    for pair in hex.chunks(2) {
        let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        data.push(digit(pair[0]) << 4 | digit(pair[1]));
    }
    if data.len() != len {
        return Err(format!("\\# length {len} but {} bytes given", data.len()));
    }
    if data.is_empty() {
        return Err("TXT record without character-strings".into());
    }
    let mut out = Vec::new();
    let mut rest = data.as_slice();
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n);
        let chunk = tail
            .get(..n)
            .ok_or("\\# character-string runs past the end")?;
        out.extend_from_slice(chunk);
        rest = tail.get(n..).unwrap_or_default();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn values<'a>(s: &'a KeyStore, name: &str) -> Vec<&'a str> {
        match s.lookup(name) {
            Lookup::Found(r) => r.iter().map(|r| r.value.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    type Content = (Vec<(String, Vec<String>)>, Vec<String>);

    fn content(s: &KeyStore) -> Content {
        let recs = s
            .iter()
            .map(|(n, r)| (n.to_string(), r.iter().map(|r| r.value.clone()).collect()))
            .collect();
        (recs, s.negatives().map(str::to_string).collect())
    }

    fn written(s: &KeyStore) -> Vec<u8> {
        let mut out = Vec::new();
        s.write_lines(&mut out).unwrap();
        out
    }

    fn round_trip(s: &KeyStore) -> KeyStore {
        let out = written(s);
        let mut back = KeyStore::new();
        let st = back.load_bytes(&out, "rt");
        assert_eq!(st.format, Format::Lines);
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert_eq!(st.non_utf8_lines, 0);
        back
    }

    #[test]
    fn normalize() {
        assert_eq!(
            normalize_name(" Sel._DomainKey.Example.COM "),
            "sel._domainkey.example.com."
        );
        assert_eq!(normalize_name("a.b.."), "a.b.");
        assert_eq!(normalize_name(""), ".");
        assert_eq!(normalize_name("..."), ".");
        assert_eq!(normalize_name("ÄB"), "Äb.");
    }

    #[test]
    fn zone_basics() {
        let zone = "; comment\n\
            $ORIGIN Example.COM.\n\
            $TTL 1h\n\
            @ IN SOA ns hostmaster ( 1 ; serial\n  2 3 4 5 )\n\
            sel._domainkey 300 IN TXT \"v=DKIM1; k=rsa; \" \"p=AB\" ; trailing\n\
            \tIN 60 TXT ( \"p=second\"\n   \"half\" )\n\
            other.example.net. TXT plain word\n\
            esc IN TXT \"a\\\"b\\\\c\\065;d\"\n\
            www A 192.0.2.1\n\
            www IN MX 10 mail\n\
            gone.example.org. NXDOMAIN\n\
            $ORIGIN sub\n\
            k IN TXT \"in sub\"\n\
            gen IN TXT \\# 7 03616263 026465\n\
            bad IN TXT \\# 1 +1\n";
        let mut s = KeyStore::new();
        let st = s.load_str(zone, "z");
        assert_eq!(st.format, Format::Zone);
        assert_eq!(st.errors.len(), 1, "{:?}", st.errors);
        assert_eq!(st.errors[0].line, 17);
        assert_eq!(st.records, 6);
        assert_eq!(st.skipped_non_txt, 3);
        assert_eq!(st.negative, 1);
        assert_eq!(
            values(&s, "sel._domainkey.example.com"),
            ["v=DKIM1; k=rsa; p=AB", "p=secondhalf"]
        );
        assert_eq!(values(&s, "other.example.net"), ["plainword"]);
        assert_eq!(values(&s, "esc.example.com."), ["a\"b\\cA;d"]);
        assert_eq!(values(&s, "k.sub.example.com"), ["in sub"]);
        assert_eq!(values(&s, "gen.sub.example.com"), ["abcde"]);
        assert_eq!(s.lookup("gone.example.org"), Lookup::Negative);
        assert_eq!(s.lookup("www.example.com"), Lookup::Unknown);
        match s.lookup("sel._domainkey.example.com") {
            Lookup::Found(r) => assert_eq!(r[1].origin, "z:7"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zone_errors_keep_going() {
        let zone = "$TTL 3600\n\
            a. IN TXT \"ok1\"\n\
            $INCLUDE other.zone\n\
            b. IN TXT \"unterminated\n\
            c. IN TXT \"ok2\"\n\
            d. v=DKIM1; p=abc\n\
            e. IN TXT \"bad \\999\"\n\
            f. IN TXT\n\
            g. IN TXT ( \"multi\" \n ) )\n\
            h. IN TXT \"ok3\"\n\
            i. IN TXT ( \"never closed\"\n\
            j. IN TXT \"swallowed\"\n";
        let mut s = KeyStore::new();
        let st = s.load_str(zone, "f.zone");
        let lines: Vec<usize> = st.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 6, 7, 8, 9, 12], "{:?}", st.errors);
        assert!(st.errors[0].to_string().starts_with("f.zone:3: $INCLUDE"));
        assert!(st.errors[2].reason.contains("unknown record type"));
        assert_eq!(values(&s, "a"), ["ok1"]);
        assert_eq!(values(&s, "c"), ["ok2"]);
        assert_eq!(values(&s, "h"), ["ok3"]);
        assert_eq!(s.len(), 3);
        let err = st.into_result().unwrap_err();
        assert!(
            matches!(err, KeyStoreError::Syntax { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn zone_blank_owner_without_previous() {
        let mut s = KeyStore::new();
        let st = s.load_bytes_as(b"  IN TXT \"x\"\n", "z", Format::Zone);
        assert_eq!(st.errors.len(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn line_format() {
        let text = "# comment\n\
            \n\
            Sel._domainkey.Example.com v=DKIM1; k=rsa; p=MIGf  \r\n\
            two.example. \"v=DKIM1; \" \"p=AB\" # note\n\
            gone.example nxdomain\n\
            nameonly\n\
            \"quoted.name\" x\n\
            bad.example \"unterminated\n";
        let mut s = KeyStore::new();
        let st = s.load_str(text, "l.txt");
        assert_eq!(st.format, Format::Lines);
        assert_eq!(st.records, 2);
        assert_eq!(st.negative, 1);
        assert_eq!(
            st.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [6, 7, 8]
        );
        assert_eq!(
            values(&s, "sel._domainkey.example.com."),
            ["v=DKIM1; k=rsa; p=MIGf"]
        );
        assert_eq!(values(&s, "two.example"), ["v=DKIM1; p=AB"]);
        assert_eq!(s.lookup("GONE.example."), Lookup::Negative);
    }

    #[test]
    fn detection() {
        assert_eq!(detect_format("a v=DKIM1; p=x\nb NXDOMAIN\n"), Format::Lines);
        assert_eq!(detect_format("a. IN TXT \"x\"\n"), Format::Zone);
        assert_eq!(detect_format("a TXT \"x\"\n"), Format::Zone);
        assert_eq!(detect_format("a 300 in txt x\n"), Format::Zone);
        assert_eq!(detect_format("a IN A 1.2.3.4\n"), Format::Zone);
        assert_eq!(detect_format("a A 1.2.3.4\n"), Format::Lines);
        assert_eq!(detect_format("# x\n$ORIGIN example.\n"), Format::Zone);
        assert_eq!(
            detect_format("a \"IN TXT\"\n  IN TXT x\n; a IN TXT\n"),
            Format::Lines
        );
        // A one-line RR in a line-like file is read as a zone file.
        let mut s = KeyStore::new();
        let st = s.load_str(
            "k._domainkey.example.com. IN TXT \"v=DKIM1; \" \"p=Q\"\n",
            "x",
        );
        assert!(st.errors.is_empty());
        assert_eq!(values(&s, "k._domainkey.example.com"), ["v=DKIM1; p=Q"]);
    }

    #[test]
    fn failed_lookups_are_recorded_and_written_back() {
        let mut s = KeyStore::new();
        let st = s.load_str(
            "a.example SERVFAIL\nb.example. timeout\nc.example \"v=DKIM1; p=x\"\nc.example TIMEOUT\n",
            "f",
        );
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert_eq!(s.lookup("a.example"), Lookup::Failed(Failure::ServFail));
        assert_eq!(s.lookup("B.example"), Lookup::Failed(Failure::Timeout));
        // A record outranks a failure.
        assert!(matches!(s.lookup("c.example"), Lookup::Found(_)));
        let mut out = Vec::new();
        s.write_lines(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("a.example. SERVFAIL\n") && text.contains("b.example. TIMEOUT\n"),
            "{text}"
        );
        let mut again = KeyStore::new();
        again.load_str(&text, "again");
        assert!(again.failures().eq(s.failures()));
        assert_eq!(again.len(), s.len());
        // Zone files take them as pseudo-types, as NXDOMAIN.
        let mut z = KeyStore::new();
        let st = z.load_str(
            "$ORIGIN example.\nsel._domainkey IN TXT \"v=DKIM1; p=x\"\ngone SERVFAIL\n",
            "z",
        );
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert_eq!(z.lookup("gone.example"), Lookup::Failed(Failure::ServFail));
    }

    #[test]
    fn duplicates_order_and_negative_precedence() {
        let mut s = KeyStore::new();
        assert!(s.insert("A.example", "v1".into(), "x:1".into()));
        assert!(s.insert("a.example.", "v2".into(), "x:2".into()));
        assert!(!s.insert("a.EXAMPLE", "v1".into(), "y:1".into()));
        assert!(s.insert_negative("a.example"));
        assert!(!s.insert_negative("a.example."));
        assert_eq!(values(&s, "a.example"), ["v1", "v2"]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.negative_len(), 1);
        let st = s.load_str("a.example v2\na.example v3\n", "f");
        assert_eq!((st.records, st.added), (2, 1));
        assert_eq!(values(&s, "a.example"), ["v1", "v2", "v3"]);
    }

    #[test]
    fn write_is_sorted_quoted_and_round_trips() {
        let mut s = KeyStore::new();
        s.insert("b.example", "v=DKIM1; p=\"x\\y\"\r\n\t".into(), "o".into());
        s.insert("a.example", "NXDOMAIN".into(), "o".into());
        s.insert("a.example", "".into(), "o".into());
        s.insert_negative("a.example");
        s.insert_negative("$odd #name;(x) \"q\"\\\u{1}");
        let out = String::from_utf8(written(&s)).unwrap();
        let body: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body,
            [
                "\\$odd\\032\\#name\\;\\(x\\)\\032\\\"q\\\"\\\\\\001. NXDOMAIN",
                "a.example. \"NXDOMAIN\"",
                "a.example. \"\"",
                "a.example. NXDOMAIN",
                "b.example. \"v=DKIM1; p=\\\"x\\\\y\\\"\\013\\010\\009\"",
            ]
        );
        let back = round_trip(&s);
        assert_eq!(content(&back), content(&s));
        assert_eq!(written(&back), written(&s));
    }

    #[test]
    fn non_utf8_is_lossy_not_fatal() {
        let mut s = KeyStore::new();
        let st = s.load_bytes(
            b"\xEF\xBB\xBFa.example v=DKIM1; p=\xff\xfe\nb.example \"\\255\"\n",
            "b",
        );
        assert_eq!(st.records, 2);
        assert_eq!(st.non_utf8_lines, 2);
        assert_eq!(values(&s, "a.example"), ["v=DKIM1; p=\u{fffd}\u{fffd}"]);
        assert_eq!(values(&s, "b.example"), ["\u{fffd}"]);
    }

    #[test]
    fn dns_cache_and_embedded() {
        let dir = std::env::temp_dir().join(format!("keys-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("s1._domainkey.Example.com.dns"),
            "txt:v=DKIM1; p=AB\nmx:x\n",
        )
        .unwrap();
        std::fs::write(dir.join("lines.txt"), "k.example v=DKIM1; p=CD\n").unwrap();
        let mut s = KeyStore::new();
        let stats = s.load_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(stats.len(), 2);
        assert_eq!(
            stats[1].format,
            Format::DnsCache {
                name: "s1._domainkey.Example.com".into()
            }
        );
        assert_eq!(stats[1].skipped_non_txt, 1);
        assert_eq!(values(&s, "s1._domainkey.example.com"), ["v=DKIM1; p=AB"]);
        assert_eq!(values(&s, "k.example"), ["v=DKIM1; p=CD"]);
        assert!(matches!(
            s.load_file(Path::new("/nonexistent/keys")),
            Err(KeyStoreError::Io { .. })
        ));

        let fixture = b"a.example v=DKIM1; p=1\r\nb.example p=2\r\n\r\nFrom: x\r\n\r\nbody\r\n";
        let (st, off) = s.load_embedded(fixture, "fx");
        assert_eq!((st.records, st.errors.len()), (2, 0));
        assert_eq!(&fixture[off..], b"From: x\r\n\r\nbody\r\n");
        assert_eq!(values(&s, "b.example"), ["p=2"]);
        assert_eq!(split_embedded_records(b"x y"), (&b"x y"[..], 3));
        assert_eq!(split_embedded_records(b"\nmsg"), (&b""[..], 1));
    }

    // ----- real corpora

    fn corpus(rel: &str) -> Option<PathBuf> {
        let base = std::env::var_os("MAILCENSUS_CORPORA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpora"));
        let p = base.join(rel);
        if p.exists() {
            return Some(p);
        }
        if std::env::var_os("CI").is_some() {
            panic!("corpus file {} missing (CI is set)", p.display());
        }
        // Written to the real stderr so the notice shows even when test output is captured.
        let _ = writeln!(
            io::stderr(),
            "\n*** SKIPPED: corpus file {} not found (set MAILCENSUS_CORPORA) ***\n",
            p.display()
        );
        None
    }

    /// Independent oracle for `name value` files.
    fn line_oracle(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (n, v) = l.split_once(' ').unwrap();
                (n.to_string(), v.trim_end().to_string())
            })
            .collect()
    }

    fn check_line_file(rel: &str, expect: usize) -> Option<KeyStore> {
        let path = corpus(rel)?;
        let mut s = KeyStore::new();
        let st = s.load_file(&path).unwrap();
        assert_eq!(st.format, Format::Lines);
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        let oracle = line_oracle(&std::fs::read_to_string(&path).unwrap());
        assert_eq!(oracle.len(), expect);
        assert_eq!(st.records, expect);
        for (n, v) in &oracle {
            assert!(values(&s, n).contains(&v.as_str()), "{n}");
        }
        Some(s)
    }

    #[test]
    fn corpus_dkimpy_signed_trap_zone() {
        let Some(path) = corpus("dkimpy-signed-trap/keys.zone") else {
            return;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains('\\'), "oracle below assumes no escapes");
        // Oracle: every non-comment line with a TXT token; value = text between quote pairs.
        let mut expected = Vec::new();
        for l in text.lines() {
            let toks: Vec<&str> = l.split_whitespace().collect();
            if l.starts_with(';') || !toks.contains(&"TXT") {
                continue;
            }
            let parts: Vec<&str> = l.split('"').skip(1).step_by(2).collect();
            expected.push((toks[0].to_string(), parts.concat(), parts.len()));
        }
        let mut s = KeyStore::new();
        let st = s.load_file(&path).unwrap();
        assert_eq!(st.format, Format::Zone);
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        assert_eq!(st.records, expected.len());
        assert_eq!(st.records, 303, "header says 303 records");
        assert_eq!((st.skipped_non_txt, st.negative), (0, 0));
        let mut multi = 0;
        for (n, v, nparts) in &expected {
            assert_eq!(values(&s, n), [v.as_str()], "{n}");
            if *nparts > 1 {
                multi += 1;
                assert!(!v.contains('"') && v.contains("p=MII"));
            }
        }
        assert!(multi >= 100, "{multi} multi-string records");
        // Spot check one junction: the two strings join with no separator.
        let v = values(&s, "201903._domainkey.beststore83.test.")[0];
        assert!(v.contains("7YracYXylK+Ot4jUKw3h"), "{v}");
        assert!(v.ends_with("SUhGk2QIDAQAB"));
        assert_eq!(
            values(&s, "em-2019._domainkey.bulkmail-relay.example."),
            ["v=DKIM1; k=rsa; p="]
        );
        assert_eq!(content(&round_trip(&s)), content(&s));
    }

    #[test]
    fn corpus_lieser_dns_records() {
        if let Some(s) = check_line_file("dkim-lieser-verifier/dns-records.txt", 8) {
            assert!(values(&s, "fm3._domainkey.fastmail.com")[0].starts_with("v=DKIM1; k=rsa; p="));
        }
    }

    #[test]
    fn corpus_dkimpy_dns_records() {
        if let Some(s) = check_line_file("dkim-dkimpy/dns-records.txt", 7) {
            assert_eq!(
                values(&s, "sed._domainkey.test.ex"),
                ["v=DKIM1; k=ed25519; p=sPs07Vu29FpHT/80UXUcYHFOHifD4o2ZlP2+XUh9g6E="]
            );
        }
    }

    #[test]
    fn corpus_blaze_cache() {
        let Some(dir) = corpus("dkim-blaze-real/cache") else {
            return;
        };
        let mut s = KeyStore::new();
        let stats = s.load_dir(&dir).unwrap();
        assert_eq!(stats.len(), 28);
        for st in &stats {
            assert!(
                matches!(st.format, Format::DnsCache { .. }),
                "{}",
                st.source
            );
            assert!(st.errors.is_empty(), "{:?}", st.errors);
            let file = Path::new(&st.source);
            let name = file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(".dns");
            let text = std::fs::read_to_string(file).unwrap();
            let v = text.trim_end_matches('\n').strip_prefix("txt:").unwrap();
            assert_eq!(values(&s, name), [v]);
        }
        assert_eq!(s.len(), 28);
        assert!(values(&s, "s20150108._domainkey.github.com")[0].starts_with("k=rsa; t=s; p="));
    }

    #[test]
    fn corpus_mail_auth_rs_embedded() {
        let files = [
            ("dkim/001.txt", 2),
            ("dkim/002.txt", 1),
            ("dkim/003.txt", 1),
            ("dkim/004.txt", 1),
            ("dkim/005.txt", 1),
            ("dkim/006.txt", 1),
            ("arc/001.txt", 3),
            ("arc/002.txt", 2),
        ];
        let mut all = KeyStore::new();
        for (rel, n) in files {
            let Some(path) = corpus(&format!("dkim-mail-auth-rs/{rel}")) else {
                return;
            };
            let data = std::fs::read(&path).unwrap();
            let mut s = KeyStore::new();
            let (st, off) = s.load_embedded(&data, rel);
            assert!(st.errors.is_empty(), "{:?}", st.errors);
            assert_eq!(st.records, n, "{rel}");
            let text = String::from_utf8_lossy(&data[..off]);
            for (name, v) in line_oracle(&text) {
                assert_eq!(values(&s, &name), [v.as_str()], "{rel}");
            }
            let msg = &data[off..];
            let colon = msg.iter().position(|&b| b == b':').unwrap();
            assert!(
                msg[..colon]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            );
            all.load_embedded(&data, rel);
        }
        assert_eq!(
            all.len(),
            11,
            "12 records; ietf1._domainkey.ietf.org is in two files"
        );
        assert_eq!(content(&round_trip(&all)), content(&all));
    }

    // ----- property tests

    #[rustfmt::skip]
    const FRAGS: &[&str] = &[
        "$ORIGIN", "$TTL", "$INCLUDE", "$GENERATE", "(", ")", "\"", "\\", "\\0", "\\25",
        "\\256", "\\065", "\\#", "IN", "in", "TXT", "A", "MX", "TYPE16", "TYPE99999", "3600",
        "1h", "@", ";", "#", " ", " ", "\t", "\n", "\n", "\r\n", "NXDOMAIN", "a.example.",
        "sel._domainkey", "\"v=DKIM1; p=abc\"", "é", "\u{85}", ".", "..", "12", "0a", "txt:",
        "\u{fffd}", "x",
    ];

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let mut s = KeyStore::new();
            let st = s.load_bytes(&data, "r");
            prop_assert!(st.added <= st.records);
            for f in [Format::Zone, Format::Lines, Format::DnsCache { name: "n".into() }] {
                let st = s.load_bytes_as(&data, "r", f);
                prop_assert!(st.added <= st.records);
            }
            let _ = s.load_embedded(&data, "e");
            prop_assert_eq!(content(&round_trip(&s)), content(&s));
        }

        #[test]
        fn random_fragments_never_panic(
            frags in prop::collection::vec(prop::sample::select(FRAGS), 0..80)
        ) {
            let text = frags.concat();
            let mut s = KeyStore::new();
            let _ = s.load_str(&text, "f");
            let _ = s.load_bytes_as(text.as_bytes(), "f", Format::Zone);
            let _ = s.load_bytes_as(text.as_bytes(), "f", Format::Lines);
            let _ = detect_format(&text);
            prop_assert_eq!(content(&round_trip(&s)), content(&s));
        }

        #[test]
        fn normalize_is_idempotent(name in any::<String>()) {
            let n = normalize_name(&name);
            prop_assert_eq!(normalize_name(&n), n.clone());
            prop_assert!(n.ends_with('.'));
        }

        #[test]
        fn write_lines_round_trips(
            ops in prop::collection::vec(
                (
                    "[a-zA-Z0-9._ \"\\\\;#$()@\t\u{1}é\u{85}-]{0,12}",
                    any::<String>(),
                    any::<bool>(),
                ),
                0..20,
            )
        ) {
            let mut s = KeyStore::new();
            for (i, (name, value, neg)) in ops.into_iter().enumerate() {
                if neg {
                    s.insert_negative(&name);
                } else {
                    s.insert(&name, value, format!("p:{i}"));
                }
            }
            let back = round_trip(&s);
            prop_assert_eq!(content(&back), content(&s));
            prop_assert_eq!(written(&back), written(&s));
        }

        #[test]
        fn zone_quoting_round_trips(parts in prop::collection::vec(any::<String>(), 1..4)) {
            let quoted: Vec<String> = parts.iter().map(|p| quote_value(p)).collect();
            let text = format!("k.example. IN TXT ( {}\n )\n", quoted.join("\n  "));
            let mut s = KeyStore::new();
            let st = s.load_str(&text, "z");
            prop_assert!(st.errors.is_empty(), "{:?}", st.errors);
            let expected = parts.concat();
            prop_assert_eq!(values(&s, "k.example"), vec![expected.as_str()]);
        }
    }

    /// The archive.prove.email `/key?domain=` answer, by hand from the archive's OpenAPI file
    /// and route: an array of entries, one per historic key (two under `mail`).
    const PROVE_EMAIL: &str = r#"[
      {"domain": "example.com", "selector": "s2023", "firstSeenAt": "2023-11-02T09:14:27.512Z",
       "lastSeenAt": "2025-03-18T04:02:11.930Z", "value": "v=DKIM1; k=rsa; p=pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8"},
      {"domain": "example.com", "selector": "mail", "firstSeenAt": "2022-06-14T17:40:03.118Z",
       "lastSeenAt": null, "value": "k=rsa; p=nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrX"},
      {"domain": "Example.com", "selector": "mail", "firstSeenAt": "2023-09-01T06:12:55.871Z",
       "lastSeenAt": "2025-03-17T23:47:20.266Z", "value": "v=DKIM1; k=rsa; t=s; p=FCegrrP+6SMv"},
      {"domain": "example.com", "value": "p=AAAA"}
    ]"#;

    /// A mailauth DNS cache (`mailauth report --dns-cache`), by hand from its cli.md and
    /// resolver: names without a trailing dot, TXT records as arrays of chunks, `null` for a
    /// name that does not exist, other record types beside.
    const MAILAUTH_CACHE: &str = r#"{
      "s2023._domainkey.example.com": {"TXT": [["v=DKIM1; k=rsa; p=pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8"]]},
      "mail._domainkey.example.org": {"TXT": [["v=DKIM1; k=rsa; p=jkbcjtS3wnZNKlpNdncG+F2GkAJK", "1r2jQBvpyMvMyTX2zR9hImrhUziuGjQA"]]},
      "example.org": {"TXT": [["v=spf1 include:_spf.example.net -all"]], "MX": [{"exchange": "mx1.example.org", "priority": 10}]},
      "old._domainkey.example.org": {"TXT": null}
    }"#;

    #[test]
    fn archive_prove_email_listings_load_every_historic_key() {
        let mut store = KeyStore::new();
        let st = store.load_bytes(PROVE_EMAIL.as_bytes(), "prove.json");
        assert!(matches!(st.format, Format::Json));
        assert_eq!(st.records, 3);
        assert_eq!(
            st.errors.len(),
            1,
            "the entry without a selector: {:?}",
            st.errors
        );
        assert_eq!(st.errors[0].line, 4);
        match store.lookup("mail._domainkey.example.com.") {
            Lookup::Found(r) => {
                assert_eq!(r.len(), 2, "both historic keys, in order");
                assert!(r[0].value.starts_with("k=rsa; p=nVw0"));
                assert_eq!(r[1].origin, "prove.json:3");
            }
            other => panic!("{other:?}"),
        }
        // The archive never says a name does not exist.
        assert_eq!(st.negative, 0);
        assert!(matches!(
            store.lookup("gone._domainkey.example.com."),
            Lookup::Unknown
        ));
    }

    #[test]
    fn mailauth_dns_caches_load_with_chunks_joined_and_missing_names() {
        let mut store = KeyStore::new();
        let st = store.load_bytes(MAILAUTH_CACHE.as_bytes(), "cache.json");
        assert!(matches!(st.format, Format::Json));
        assert_eq!((st.records, st.negative, st.skipped_non_txt), (3, 1, 1));
        assert!(st.errors.is_empty(), "{:?}", st.errors);
        match store.lookup("mail._domainkey.example.org.") {
            Lookup::Found(r) => assert_eq!(
                r[0].value,
                "v=DKIM1; k=rsa; p=jkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQA"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            store.lookup("old._domainkey.example.org."),
            Lookup::Negative
        ));
    }

    #[test]
    fn a_json_file_of_another_kind_is_an_error_not_an_empty_store() {
        for text in [
            r#""Rate limit exceeded""#,
            r#"{"message": "Internal error"}"#,
            "[1, 2",
            "{}",
        ] {
            let mut store = KeyStore::new();
            let st = store.load_bytes(text.as_bytes(), "k.json");
            assert_eq!(st.records, 0);
            assert_eq!(st.errors.len(), 1, "{text}: {:?}", st.errors);
        }
    }
}
