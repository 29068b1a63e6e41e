//! Addresses in From / Sender / Reply-To / To / Cc / Return-Path: takes a raw
//! header field value (bytes, possibly folded, possibly not UTF-8, often
//! malformed) and gives the first mailbox address, the recipient count, the
//! reverse path, or the domain of an address.

/// What one comma-separated mailbox of an address list contains. Ranges are
/// byte ranges into the header value.
#[derive(Default)]
struct Mailbox {
    /// First `<...>` whose content has an `@`.
    angle_at: Option<(usize, usize)>,
    /// First non-blank `<...>` without `@`, e.g. `<MAILER-DAEMON>`.
    angle_plain: Option<(usize, usize)>,
    /// First bare word with an `@` outside quotes, e.g. `a@b (Comment)`.
    bare_at: Option<(usize, usize)>,
    /// An `@` anywhere but in a comment, quoted display names included.
    any_at: bool,
}

impl Mailbox {
    fn counts(&self) -> bool {
        self.any_at || self.angle_plain.is_some()
    }
}

fn is_wsp(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// End (exclusive) of the quoted string opening at `i`, honouring
/// backslash escapes.
fn quote_end(v: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < v.len() {
        match v[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// End (exclusive) of the comment opening at `i`; comments nest.
fn comment_end(v: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j < v.len() {
        match v[j] {
            b'\\' => j += 1,
            b'(' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// An RFC 2047 word is a display name even if its text happens to hold `@`.
fn is_encoded_word(w: &[u8]) -> bool {
    w.len() >= 4 && w.starts_with(b"=?") && w.ends_with(b"?=")
}

/// Walk an address list and hand each mailbox to `f` (which returns false to
/// stop). Groups are flattened: the group name is dropped, members are
/// mailboxes. Unmatched `"`, `(` and `<` are taken as ordinary characters
/// rather than swallowing the rest of the value, which is what real MUAs
/// show for such headers; once a look-ahead for a closing character has
/// failed it is not retried, keeping the walk linear.
///
/// With `open_comments`, parentheses only separate words: the fallback for
/// spam that hides the only address in a comment (`Name,(<a@b>)`).
fn for_each_mailbox(v: &[u8], open_comments: bool, mut f: impl FnMut(&Mailbox) -> bool) {
    let mut mb = Mailbox::default();
    let mut in_group = false;
    // Current word: start and whether it has an `@` outside quotes.
    let mut word: Option<(usize, bool)> = None;
    let (mut quote_fail, mut comment_fail, mut angle_fail) = (false, false, false);

    let end_word = |word: &mut Option<(usize, bool)>, mb: &mut Mailbox, end: usize| {
        if let Some((start, has_at)) = word.take()
            && has_at
            && mb.bare_at.is_none()
            && !is_encoded_word(&v[start..end])
        {
            mb.bare_at = Some((start, end));
        }
    };

    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        match b {
            _ if is_wsp(b) => {
                end_word(&mut word, &mut mb, i);
                i += 1;
                continue;
            }
            b'(' if !comment_fail && !open_comments => match comment_end(v, i) {
                Some(e) => {
                    end_word(&mut word, &mut mb, i);
                    i = e;
                    continue;
                }
                None => comment_fail = true,
            },
            b'"' if !quote_fail => match quote_end(v, i) {
                Some(e) => {
                    mb.any_at |= memchr::memchr(b'@', &v[i..e]).is_some();
                    word.get_or_insert((i, false));
                    i = e;
                    continue;
                }
                None => quote_fail = true,
            },
            b'<' if !angle_fail => match memchr::memchr2(b'<', b'>', &v[i + 1..]) {
                Some(off) if v[i + 1 + off] == b'>' => {
                    end_word(&mut word, &mut mb, i);
                    let (s, e) = (i + 1, i + 1 + off);
                    let content = &v[s..e];
                    if memchr::memchr(b'@', content).is_some() {
                        mb.any_at = true;
                        mb.angle_at.get_or_insert((s, e));
                    } else if !content.iter().all(|&c| is_wsp(c)) {
                        mb.angle_plain.get_or_insert((s, e));
                    }
                    i = e + 1;
                    continue;
                }
                // Another `<` first: this one is stray.
                Some(_) => {}
                None => angle_fail = true,
            },
            b',' | b';' => {
                end_word(&mut word, &mut mb, i);
                if !f(&mb) {
                    return;
                }
                mb = Mailbox::default();
                if b == b';' {
                    in_group = false;
                }
                i += 1;
                continue;
            }
            // A colon opens a group only where a group name can be: before
            // any address in this mailbox. Elsewhere it belongs to the word
            // (source routes, IPv6 literals, "http:" in spam display names).
            b':' if !in_group
                && mb.angle_at.is_none()
                && mb.angle_plain.is_none()
                && mb.bare_at.is_none()
                && !word.is_some_and(|(_, at)| at) =>
            {
                word = None;
                mb = Mailbox::default();
                in_group = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        // A stray angle bracket separates words: in `"Name"<a@b` (closing
        // `>` lost) the address is what follows it.
        if b == b'<' || b == b'>' || (open_comments && (b == b'(' || b == b')')) {
            end_word(&mut word, &mut mb, i);
            i += 1;
            continue;
        }
        // Any other character (including a stray quote or parenthesis)
        // extends the word.
        let w = word.get_or_insert((i, false));
        if b == b'@' {
            w.1 = true;
            mb.any_at = true;
        }
        i += 1;
    }
    end_word(&mut word, &mut mb, v.len());
    f(&mb);
}

/// First `:` outside a quoted string: the end of a source route.
fn unquoted_colon(s: &[u8]) -> Option<usize> {
    let mut in_quote = false;
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b':' if !in_quote => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Turn an address as written into `local@domain`: comments and unquoted
/// whitespace dropped (they are CFWS between tokens), quoted local parts kept
/// as written, a source route `@relay,@relay:` removed, stray `<`/`>` trimmed,
/// domain lowercased. None if nothing is left.
fn clean_addr(raw: &[u8]) -> Option<String> {
    // The usual address is plain printable ASCII with nothing to drop, unquote or trim (no
    // whitespace, comment, quote, bracket or source route): only its domain needs lowercasing.
    if raw.first().is_some_and(|&b| b != b'@')
        && raw
            .iter()
            .all(|&b| b.is_ascii_graphic() && !matches!(b, b'(' | b'"' | b'<' | b'>'))
    {
        let mut text = String::from_utf8(raw.to_vec()).ok()?;
        if let Some(at) = text.rfind('@') {
            text[at + 1..].make_ascii_lowercase();
        }
        return Some(text);
    }
    clean_addr_general(raw)
}

/// [`clean_addr`] for any input.
fn clean_addr_general(raw: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b if is_wsp(b) => i += 1,
            b'(' => i = comment_end(raw, i).unwrap_or(raw.len()),
            b'"' => {
                let e = quote_end(raw, i).unwrap_or(raw.len());
                out.extend_from_slice(&raw[i..e]);
                i = e;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    let mut s: &[u8] = &out;
    if s.first() == Some(&b'@')
        && let Some(colon) = unquoted_colon(s)
    {
        s = &s[colon + 1..];
    }
    // `<"a@b">`: the whole address quoted, as some bulk mailers write it;
    // the quotes hide nothing but the domain.
    if s.len() >= 2
        && s[0] == b'"'
        && quote_end(s, 0) == Some(s.len())
        && memchr::memchr(b'@', s).is_some()
        && !s.iter().any(|&b| b == b'\\' || is_wsp(b))
    {
        s = &s[1..s.len() - 1];
    }
    // Stray brackets, and whitespace left over from an unclosed quote.
    while let [b'<' | b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b'>' | b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    if s.is_empty() {
        return None;
    }
    let mut text = String::from_utf8_lossy(s).into_owned();
    if let Some(at) = text.rfind('@') {
        let domain = &text[at + 1..];
        if domain.is_ascii() {
            text[at + 1..].make_ascii_lowercase();
        } else {
            let lower = domain.to_lowercase();
            text.truncate(at + 1);
            text.push_str(&lower);
        }
    }
    Some(text)
}

/// The first mailbox address in an address-list header value (From, Sender,
/// Reply-To), as `local@domain` with the domain lowercased and the local part
/// as written.
///
/// The first address with an `@` wins, whether in angle brackets or bare; a
/// display name never counts even if it looks like an address. If no
/// mailbox has an `@`, the first non-empty `<...>` is returned as is (e.g.
/// `MAILER-DAEMON`). Failing both, an address hidden in a comment is taken
/// (`Europa Park,(<service@otto.de>)`, seen in phishing). None when there is
/// none of these. Non-UTF-8 bytes are replaced.
pub fn first_address(value: &[u8]) -> Option<String> {
    let search = |open_comments| {
        let mut found: Option<(usize, usize)> = None;
        let mut plain: Option<(usize, usize)> = None;
        for_each_mailbox(value, open_comments, |mb| {
            found = mb.angle_at.or(mb.bare_at);
            if plain.is_none() {
                plain = mb.angle_plain;
            }
            found.is_none()
        });
        found.or(plain)
    };
    let (s, e) = search(false).or_else(|| {
        memchr::memchr(b'(', value)
            .is_some()
            .then(|| search(true))
            .flatten()
    })?;
    clean_addr(&value[s..e])
}

/// The lowercase domain of an address (the part after the last `@`), without
/// trailing dots, `>` or whitespace; None if there is no `@` or nothing after
/// it. Returns a slice of `addr`, so the domain is lowercase when `addr` came
/// from `first_address` or `return_path`; other input is not case-folded.
pub fn domain_of(addr: &str) -> Option<&str> {
    let at = addr.rfind('@')?;
    let d = addr[at + 1..]
        .trim_end_matches(['.', '>', ' ', '\t', '\r', '\n'])
        .trim_start();
    (!d.is_empty()).then_some(d)
}

/// Number of recipient addresses in an address-list value (To, Cc).
///
/// A mailbox counts if it has an `@` outside comments or a non-empty
/// `<...>`; commas and semicolons inside quotes, comments and angle brackets
/// do not split. A group counts its members only, so
/// `undisclosed-recipients:;` is 0. If that finds nothing, addresses inside
/// comments are counted, as `first_address` falls back to them. Unquoted commas inside display names
/// (`Doe, John <j@x>`) leave a fragment without an address, which counts 0.
pub fn count_addresses(value: &[u8]) -> usize {
    let count = |open_comments| {
        let mut n = 0;
        for_each_mailbox(value, open_comments, |mb| {
            n += usize::from(mb.counts());
            true
        });
        n
    };
    match count(false) {
        0 if memchr::memchr(b'(', value).is_some() => count(true),
        n => n,
    }
}

/// The reverse path in a Return-Path value: `<a@b>` gives `a@b` (domain
/// lowercased), `<>` gives `""` (null sender, bounces); a value without angle
/// brackets falls back to `first_address`.
pub fn return_path(value: &[u8]) -> Option<String> {
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b if is_wsp(b) => i += 1,
            b'(' => match comment_end(value, i) {
                Some(e) => i = e,
                None => break,
            },
            _ => break,
        }
    }
    if value.get(i) == Some(&b'<')
        && let Some(off) = memchr::memchr(b'>', &value[i + 1..])
    {
        return Some(clean_addr(&value[i + 1..i + 1 + off]).unwrap_or_default());
    }
    first_address(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fa(v: &[u8]) -> Option<String> {
        first_address(v)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn common_forms() {
        // dkimpy-signed-trap message 0.
        assert_eq!(
            fa(b" \"David Wilson\" <james603@easyrewards-news.example.net>"),
            some("james603@easyrewards-news.example.net")
        );
        assert_eq!(fa(b"\"Display, Name\" <a@B.Example>"), some("a@b.example"));
        assert_eq!(
            fa(b"Name <Mixed.Case@Example.COM>"),
            some("Mixed.Case@example.com")
        );
        // spamassassin-public.
        assert_eq!(
            fa(b" neale@woozle.org (Neale Pickett)"),
            some("neale@woozle.org")
        );
        assert_eq!(
            fa(b" harley@argote.ch ((Robert Harley))"),
            some("harley@argote.ch")
        );
        assert_eq!(fa(b"oceandrive@email.is ()"), some("oceandrive@email.is"));
        assert_eq!(fa(b"bare@example.com"), some("bare@example.com"));
        assert_eq!(
            fa(b"\"Gerald \\(Jerry\\) Carter\" <jerry@samba.org>, simo <idra@samba.org>"),
            some("jerry@samba.org")
        );
    }

    #[test]
    fn groups_routes_and_quotes() {
        assert_eq!(fa(b"grp: a@b, c@d;"), some("a@b"));
        assert_eq!(fa(b"undisclosed-recipients:;, x@y"), some("x@y"));
        assert_eq!(fa(b"<@relay.example:a@B>"), some("a@b"));
        assert_eq!(fa(b"<@r1,@r2:a@b>"), some("a@b"));
        assert_eq!(
            fa(b"\"salestoner@bol.com.br\"@dogma.slashnull.org"),
            some("\"salestoner@bol.com.br\"@dogma.slashnull.org")
        );
        assert_eq!(
            fa(b"<\"john doe\"@Example.com>"),
            some("\"john doe\"@example.com")
        );
        // phishing-pot: the whole address quoted.
        assert_eq!(
            fa(b"\"Nachricht der ADAC\"<\"noreply@ADAC.de\">  "),
            some("noreply@adac.de")
        );
        assert_eq!(
            fa(b"< john . doe @ example.com >"),
            some("john.doe@example.com")
        );
        assert_eq!(
            fa(b"zvfjenphuq@[1086695621], [ufa]@netnoteinc.com"),
            some("zvfjenphuq@[1086695621]")
        );
        assert_eq!(fa(b"a@[IPv6:2001:db8::1]"), some("a@[ipv6:2001:db8::1]"));
    }

    #[test]
    fn spam_shapes() {
        // phishing-pot-sample: addresses in display names are not addresses.
        assert_eq!(
            fa(b"\"phishing@pot\"  <noreply@digid.nl>"),
            some("noreply@digid.nl")
        );
        assert_eq!(
            fa(b"\"Proton Mail Alert\n                 notification@proton.me\"\n <jbkellyjowl@gmail.com>"),
            some("jbkellyjowl@gmail.com")
        );
        assert_eq!(
            fa(b"\"\"\"\"\"''  @phishing@pot  ''\"\"\"\"\"<newsletters.eciql@defyinsurance.com>"),
            some("newsletters.eciql@defyinsurance.com")
        );
        assert_eq!(
            fa(b"\"Play Now\" <><info.562272@travail-independant.biz>"),
            some("info.562272@travail-independant.biz")
        );
        assert_eq!(
            fa(b"Hilton Hotel - Thank You!!   ,_<8ndwym@tharedswwlp.com> "),
            some("8ndwym@tharedswwlp.com")
        );
        assert_eq!(
            fa(b"UPS Partner <Larsen_Don_29151@ali001.sarakzit.za.com >"),
            some("Larsen_Don_29151@ali001.sarakzit.za.com")
        );
        assert_eq!(
            fa(b"Nachricht von T-Online, <service@stayfriends.de>"),
            some("service@stayfriends.de")
        );
        assert_eq!(
            fa(b"=?UTF-8?Q?=4E=61=73=63=68=70=61=6B=65=74?=, jehd\n\t<service@stayfriends.de>"),
            some("service@stayfriends.de")
        );
        assert_eq!(
            fa(b"=?utf-8?q?support@paypal.com?= <evil@x.example>"),
            some("evil@x.example")
        );
        assert_eq!(
            fa(b"qvaC:\"\\\\My Documents\\\\From names.txt\" <bhOurbestmonth@yahoo.com>"),
            some("bhOurbestmonth@yahoo.com")
        );
        // Non-UTF-8 display name (GB2312 in spamassassin-public spam_2).
        assert_eq!(
            fa(b"\xb1\xb8\xb1\xb3\xc7\xd0<return@snine.com>"),
            some("return@snine.com")
        );
        assert_eq!(fa(b"x <r\xe9@Snine.com>"), some("r\u{FFFD}@snine.com"));
    }

    #[test]
    fn unmatched_delimiters() {
        // spamassassin-public: unclosed quote.
        assert_eq!(
            fa(b"\"Mr.Johnnie Taylor <info3@gogies.net>"),
            some("info3@gogies.net")
        );
        assert_eq!(fa(b"Name <a@b"), some("a@b"));
        assert_eq!(fa(b"Name <a@b, Other <c@d>"), some("a@b"));
        assert_eq!(fa(b"a@b (unclosed comment"), some("a@b"));
        assert_eq!(fa(b"(unclosed <a@b>"), some("a@b"));
        // phishing-pot: the only address is inside a comment.
        assert_eq!(
            fa(b" Europa Park,(<service@otto.de>)"),
            some("service@otto.de")
        );
        assert_eq!(count_addresses(b" Europa Park,(<service@otto.de>)"), 1);
        assert_eq!(fa(b"(just a comment)"), None);
        assert_eq!(fa(b"a@b>"), some("a@b"));
        // phishing-pot: closing '>' lost after a quoted encoded name.
        assert_eq!(
            fa(b"\"=?UTF-8?B?VVBzzLfCri1FUw==?=\"<info@austindunlap.allvcddvd.com"),
            some("info@austindunlap.allvcddvd.com")
        );
    }

    #[test]
    fn no_at() {
        assert_eq!(fa(b"<MAILER-DAEMON>"), some("MAILER-DAEMON"));
        assert_eq!(fa(b"Moderator-Address <moderator>"), some("moderator"));
        assert_eq!(
            fa(b"<MAILER-DAEMON>, real@x.example"),
            some("real@x.example")
        );
        assert_eq!(fa(b"\"\" <>"), None);
        assert_eq!(fa(b"MAILER-DAEMON <>"), None);
        assert_eq!(fa(b"Whomever"), None);
        assert_eq!(fa(b""), None);
        assert_eq!(fa(b"\"phishing@pot\""), None);
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@example.com"), Some("example.com"));
        assert_eq!(domain_of("\"x@y\"@example.com"), Some("example.com"));
        assert_eq!(domain_of("service@stayfriends.de."), Some("stayfriends.de"));
        assert_eq!(domain_of("a@b.example>"), Some("b.example"));
        assert_eq!(domain_of("a@"), None);
        assert_eq!(domain_of("a@.."), None);
        assert_eq!(domain_of("MAILER-DAEMON"), None);
        assert_eq!(domain_of(""), None);
        let a = fa(b"Foo <x@Mail.EXAMPLE.org.>").unwrap();
        assert_eq!(domain_of(&a), Some("mail.example.org"));
    }

    #[test]
    fn counting() {
        assert_eq!(count_addresses(b"undisclosed-recipients:;"), 0);
        assert_eq!(count_addresses(b"Undisclosed recipients:;"), 0);
        assert_eq!(
            count_addresses(b"\"OtherRecipients of perl Ticket #41912\": ;"),
            0
        );
        assert_eq!(count_addresses(b"grp: a@b, c@d; e@f"), 3);
        assert_eq!(count_addresses(b""), 0);
        assert_eq!(count_addresses(b"garbage, more garbage"), 0);
        assert_eq!(count_addresses(b"a@b"), 1);
        assert_eq!(count_addresses(b"<moderator>"), 1);
        assert_eq!(count_addresses(b"a@b,,c@d,"), 2);
        // spamassassin-public / phishing-pot To and Cc values.
        assert_eq!(
            count_addresses(b"\"Cressoni, Massimo (NIH/NHLBI) [F]\" <cressonim@nhlbi.nih.gov>"),
            1
        );
        assert_eq!(
            count_addresses(
                b"\"Gerald \\(Jerry\\) Carter\" <jerry@samba.org>, simo <idra@samba.org>,\n   Jeremy Allison <jra@samba.org>, samba-technical@samba.org"
            ),
            4
        );
        assert_eq!(
            count_addresses(
                b"crispin@wirex.com (Crispin Cowan),\n\twebappsec@securityfocus.com (Webappsec Securityfocus.Com),\n\tSECPROG@securityfocus.com (SECPROG     Securityfocus)"
            ),
            3
        );
        assert_eq!(count_addresses(b"phishing@pot; admin@egel.dcdvmkjb.ztr"), 2);
        assert_eq!(
            count_addresses(b"<undisclosed-recipients:;@dogma.slashnull.org>"),
            1
        );
        assert_eq!(
            count_addresses(
                b"Bahngutscheine, <service@stayfriends.de.>, Bahngutscheine,\n\t<service@stayfriends.de>, Office, <service@stayfriends.de>"
            ),
            3
        );
        assert_eq!(
            count_addresses(
                b"=?UTF-8?b?4pyFUGVyc29uYWw=?= \"invitation (Receive $3,300) |\" =?UTF-8?b?4p2X77iPT3BlbiDinqHvuI8=?= https:\n\t\"//ok.me/3BxN1\" =?UTF-8?b?4qyF77iP4p2X77iP?= <phishing@pot>;"
            ),
            1
        );
        assert_eq!(count_addresses(b"Doe, John <j@x>"), 1);
        assert_eq!(count_addresses(b"(a@b), c@d"), 1);
    }

    #[test]
    fn return_paths() {
        assert_eq!(
            return_path(b" <james603@EasyRewards-News.example.net>"),
            some("james603@easyrewards-news.example.net")
        );
        assert_eq!(return_path(b"<>"), some(""));
        assert_eq!(return_path(b" < > "), some(""));
        assert_eq!(return_path(b"(bounce) <>"), some(""));
        assert_eq!(return_path(b"<@relay:a@b>"), some("a@b"));
        assert_eq!(return_path(b"<MAILER-DAEMON>"), some("MAILER-DAEMON"));
        // spamassassin-public / phishing-pot bare values.
        assert_eq!(
            return_path(b" tim.one@comcast.net"),
            some("tim.one@comcast.net")
        );
        assert_eq!(
            return_path(b"phish.me.again+caf_=phishing@pot=hotmail.com@gmail.com"),
            some("phish.me.again+caf_=phishing@pot=hotmail.com@gmail.com")
        );
        assert_eq!(return_path(b"garbage"), None);
        assert_eq!(return_path(b"<unclosed@x"), some("unclosed@x"));
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..120),
            // Mostly address syntax, so the interesting paths are reached.
            proptest::collection::vec(
                prop_oneof![
                    Just(b'<'),
                    Just(b'>'),
                    Just(b'"'),
                    Just(b'('),
                    Just(b')'),
                    Just(b'@'),
                    Just(b','),
                    Just(b';'),
                    Just(b':'),
                    Just(b'\\'),
                    Just(b' '),
                    Just(b'\n'),
                    Just(b'a'),
                    Just(b'B'),
                    Just(b'.'),
                    Just(0xE9u8),
                ],
                0..60
            ),
        ]
    }

    proptest! {
        #[test]
        fn plain_address_shortcut_agrees_with_the_general_path(v in bytes()) {
            prop_assert_eq!(clean_addr(&v), clean_addr_general(&v));
        }

        #[test]
        fn first_address_never_panics(v in bytes()) {
            if let Some(a) = first_address(&v) {
                prop_assert!(!a.is_empty());
                prop_assert!(!a.contains([' ', '\t', '\r', '\n']) || a.contains('"'));
                if let Some(d) = domain_of(&a) {
                    prop_assert!(!d.chars().any(|c| c.is_ascii_uppercase()));
                }
            }
        }

        #[test]
        fn plain_address_is_found(local in "[a-zA-Z0-9._+-]{1,12}", domain in "[a-zA-Z0-9.-]{1,12}",
                                  name in "[a-zA-Z ]{0,12}", angle in any::<bool>()) {
            let v = if angle { format!("{name} <{local}@{domain}>") } else { format!("{local}@{domain} ({name})") };
            let want = format!("{local}@{}", domain.to_ascii_lowercase());
            prop_assert_eq!(first_address(v.as_bytes()), Some(want));
            prop_assert_eq!(count_addresses(v.as_bytes()), 1);
        }

        #[test]
        fn count_never_panics(v in bytes()) {
            let n = count_addresses(&v);
            prop_assert!(n <= v.len());
            if memchr::memchr2(b'@', b'<', &v).is_none() {
                prop_assert_eq!(n, 0);
            }
        }

        #[test]
        fn return_path_never_panics(v in bytes()) {
            if let Some(a) = return_path(&v) {
                prop_assert!(!a.contains([' ', '\t', '\r', '\n']) || a.contains('"'));
            }
        }

        #[test]
        fn domain_of_never_panics(s in "\\PC{0,40}") {
            if let Some(d) = domain_of(&s) {
                prop_assert!(!d.is_empty() && !d.ends_with('.') && !d.ends_with('>'));
                prop_assert!(s.contains('@'));
            }
        }
    }
}
