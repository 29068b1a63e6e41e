//! Parsing of one `Received:` header value.
//!
//! Takes the raw field value as bytes (folding may still be in it, any bytes at all are accepted)
//! and gives a [`Hop`]: the `from` host, the reverse-DNS name and client IP from the TCP-info
//! comment, the `by` host, the `with` protocol and the date text. [`is_public`] decides whether an
//! address can be a message's origin, and [`parse_ip_token`] reads the IP spellings MTAs write.
//! Everything borrows from the input and nothing allocates, because this runs once per header on
//! millions of messages; nothing panics, because spam-trap input is hostile.

use memchr::{memchr, memchr3, memrchr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One parsed `Received:` field. Slices borrow from the raw value (zero-copy); the raw value may
/// still contain folding (CRLF/LF + space/tab): CR, LF, space and tab all count as whitespace, so
/// no unfolding copy is needed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hop<'a> {
    /// The host name (or literal) after `from`, e.g. `mail.example.com`, `[192.168.6.7]`, `unknown`.
    pub from_host: Option<&'a [u8]>,
    /// The reverse-DNS name in the TCP-info comment, when present
    /// (`(rdns.example.net [1.2.3.4])` → `rdns.example.net`; `unknown` is kept). A `user@` or
    /// `IDENT:user@` prefix and the root dot of a fully qualified name are left out.
    pub from_rdns: Option<&'a [u8]>,
    /// The IP address of the connecting client, from the from-clause only: the TCP-info comment's
    /// address if any, else an address-literal `from` host, else another address outside comments,
    /// else one from a HELO comment or `helo=` item.
    pub ip: Option<IpAddr>,
    /// The host after `by`.
    pub by_host: Option<&'a [u8]>,
    /// The first word after `with` (`ESMTP`, `SMTP`, `Microsoft`, `HTTP`, `local`...).
    pub with: Option<&'a [u8]>,
    /// The text after the last `;`, trimmed (possibly empty); `None` if there is no `;`.
    pub date: Option<&'a [u8]>,
    /// The receiving side names itself PowerMTA (`by host (PowerMTA(TM) v5.0r1) id ...`): the
    /// bulk mailer EchoSpoofing's VPS injectors ran, and much legitimate bulk mail besides.
    pub by_powermta: bool,
}

#[inline]
fn is_ws(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] & WS != 0
}

/// Byte classes of the tokenizer, looked up in one table instead of chains of comparisons:
/// this runs over every byte of every Received field.
const WS: u8 = 1;
/// `)`: skipped between items (a stray one closes nothing).
const CLOSE: u8 = 2;
/// `(`, `)` and `[`: end a word (see [`Items`]).
const WORD_END: u8 = 4;

static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b' ' as usize] = WS | WORD_END;
    t[b'\t' as usize] = WS | WORD_END;
    t[b'\r' as usize] = WS | WORD_END;
    t[b'\n' as usize] = WS | WORD_END;
    t[b')' as usize] = CLOSE | WORD_END;
    t[b'(' as usize] = WORD_END;
    t[b'[' as usize] = WORD_END;
    t
};

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s
        && is_ws(*first)
    {
        s = rest;
    }
    while let [rest @ .., last] = s
        && is_ws(*last)
    {
        s = rest;
    }
    s
}

fn strip_prefix_ci<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// A top-level piece of a Received value: a word, or a whole (possibly nested) comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item<'a> {
    Word(&'a [u8]),
    /// The comment's content without its outer parentheses.
    Comment(&'a [u8]),
}

struct Items<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Items<'a> {
    fn new(s: &'a [u8]) -> Self {
        Items { s, pos: 0 }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        let s = self.s;
        // A stray `)` closes nothing; dropping it keeps one typo from hiding the rest.
        while self.pos < s.len() && BYTE_CLASS[usize::from(s[self.pos])] & (WS | CLOSE) != 0 {
            self.pos += 1;
        }
        let start = self.pos;
        if start >= s.len() {
            return None;
        }
        if s[start] == b'(' {
            let end = comment_end(s, start + 1);
            self.pos = end.saturating_add(1).min(s.len());
            return Some(Item::Comment(&s[start + 1..end]));
        }
        // A word also ends at `(` and before a `[` inside it: smap writes `host(1.2.3.4)` and
        // others `host.example[192.0.2.1]`, with no space.
        let mut i = start + 1;
        while i < s.len() && BYTE_CLASS[usize::from(s[i])] & WORD_END == 0 {
            i += 1;
        }
        self.pos = i;
        Some(Item::Word(&s[start..i]))
    }
}

/// Index of the `)` closing a comment whose content starts at `from`, or `s.len()` when it is
/// never closed (an unclosed comment runs to the end, as a reader of the header would take it).
fn comment_end(s: &[u8], from: usize) -> usize {
    let mut depth = 1usize;
    let mut i = from;
    while i < s.len() {
        let Some(off) = memchr3(b'(', b')', b'\\', &s[i..]) else {
            break;
        };
        let j = i + off;
        match s[j] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            // RFC 5322 quoted-pair: the next byte is literal, even a parenthesis.
            _ => {
                i = j.saturating_add(2);
                continue;
            }
        }
        i = j + 1;
    }
    s.len()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    From,
    By,
    With,
    Other,
}

fn keyword(w: &[u8]) -> Option<Kw> {
    let is = |k: &[u8]| w.eq_ignore_ascii_case(k);
    match w.len() {
        2 if is(b"by") => Some(Kw::By),
        2 if is(b"id") => Some(Kw::Other),
        3 if is(b"for") || is(b"via") => Some(Kw::Other),
        4 if is(b"from") => Some(Kw::From),
        4 if is(b"with") => Some(Kw::With),
        _ => None,
    }
}

/// The address a word names, if any, and whether it is only the client's HELO claim
/// (`helo=[1.2.3.4]`), which is the weakest evidence of where a connection came from.
fn ip_in_word(w: &[u8]) -> (bool, Option<IpAddr>) {
    let mut w = w;
    while let [rest @ .., b',' | b';'] = w {
        w = rest;
    }
    let mut helo = false;
    if let Some(eq) = memchr(b'=', w) {
        helo = w[..eq].eq_ignore_ascii_case(b"helo");
        w = &w[eq + 1..];
    }
    // `user@1.2.3.4` (qmail) and `IDENT:user@[1.2.3.4]` (Sendmail) put the ident user first.
    if let Some(at) = memrchr(b'@', w) {
        w = &w[at + 1..];
    }
    (helo, parse_ip_token(w))
}

/// The host part of an rdns word: ident user and the FQDN's root dot are not part of the name.
fn rdns_name(w: &[u8]) -> Option<&[u8]> {
    if memchr(b'=', w).is_some() {
        return None;
    }
    let mut name = match memrchr(b'@', w) {
        Some(at) => &w[at + 1..],
        None => w,
    };
    if let [rest @ .., b'.'] = name {
        name = rest;
    }
    (!name.is_empty()).then_some(name)
}

struct CommentScan<'a> {
    ip: Option<IpAddr>,
    rdns: Option<&'a [u8]>,
    helo_ip: Option<IpAddr>,
}

/// Looks for the client address in one from-clause comment. A comment opening with `HELO`/`EHLO`
/// (qmail, Courier) only repeats what the client claimed, so its addresses rank lowest.
fn scan_comment(c: &[u8]) -> CommentScan<'_> {
    let mut out = CommentScan {
        ip: None,
        rdns: None,
        helo_ip: None,
    };
    let mut first: Option<&[u8]> = None;
    let mut helo_comment = false;
    for (n, item) in Items::new(c).enumerate() {
        // Nested comments are annotations such as Sendmail's `(may be forged)`.
        let Item::Word(w) = item else { continue };
        if n == 0 {
            first = Some(w);
            if w.eq_ignore_ascii_case(b"HELO") || w.eq_ignore_ascii_case(b"EHLO") {
                helo_comment = true;
                continue;
            }
        }
        let (helo, ip) = ip_in_word(w);
        let Some(ip) = ip else { continue };
        if helo || helo_comment {
            out.helo_ip.get_or_insert(ip);
        } else {
            out.ip = Some(ip);
            if n > 0 {
                out.rdns = first.and_then(rdns_name);
            }
            break;
        }
    }
    out
}

/// Parses one `Received:` field value. Never allocates and never panics.
pub fn parse_received(value: &[u8]) -> Hop<'_> {
    let (main, date) = match memrchr(b';', value) {
        Some(i) => (&value[..i], Some(trim_ws(&value[i + 1..]))),
        None => (value, None),
    };
    let mut hop = Hop {
        date,
        ..Hop::default()
    };

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Clause {
        None,
        From,
        By,
        With,
        Other,
    }
    let mut clause = Clause::None;
    // True right after a keyword: the next word is that keyword's argument.
    let mut arg_next = false;
    let (mut seen_from, mut seen_by, mut seen_with) = (false, false, false);
    let mut tcp_ip = None;
    let mut literal_ip = None;
    let mut bare_ip = None;
    let mut announced_ip = None;
    let mut helo_ip = None;

    for item in Items::new(main) {
        match item {
            Item::Word(w) => {
                if let Some(kw) = keyword(w) {
                    // Only the first clause of each kind counts, and `from` only before `by`, so
                    // that no address of the receiving side can pass for the client's.
                    clause = match kw {
                        Kw::From if !seen_from && !seen_by => {
                            seen_from = true;
                            Clause::From
                        }
                        Kw::By if !seen_by => {
                            seen_by = true;
                            Clause::By
                        }
                        Kw::With if !seen_with => {
                            seen_with = true;
                            Clause::With
                        }
                        _ => Clause::Other,
                    };
                    arg_next = true;
                    continue;
                }
                let is_arg = std::mem::replace(&mut arg_next, false);
                match clause {
                    Clause::From if is_arg => {
                        hop.from_host = Some(w);
                        // Only a bracketed literal (RFC 5321 address-literal) names the client; an
                        // unbracketed dotted quad is what the client announced, ranked below any
                        // address the receiving server recorded itself.
                        let ip = parse_ip_token(w);
                        if w.first() == Some(&b'[') {
                            literal_ip = ip;
                        } else {
                            announced_ip = ip;
                        }
                    }
                    Clause::From => {
                        // e.g. fetchmail's `from phobos [127.0.0.1]`, or Exim's `helo=` outside a comment.
                        let (helo, ip) = ip_in_word(w);
                        if let Some(ip) = ip {
                            if helo {
                                helo_ip.get_or_insert(ip);
                            } else {
                                bare_ip.get_or_insert(ip);
                            }
                        }
                    }
                    Clause::By if is_arg => hop.by_host = Some(w),
                    Clause::With if is_arg => hop.with = Some(w),
                    _ => {}
                }
                // Past `by HOST` and `with PROTO` nothing else is read (`id`, `for` and
                // comments there name no client), so the rest need not be tokenized.
                if hop.by_host.is_some() && hop.with.is_some() {
                    break;
                }
            }
            // A comment does not consume the pending argument: `from (HELO x) [1.2.3.4]` still
            // names its host after the comment.
            Item::Comment(c) if clause == Clause::From && tcp_ip.is_none() => {
                let scan = scan_comment(c);
                if scan.ip.is_some() {
                    tcp_ip = scan.ip;
                    hop.from_rdns = scan.rdns;
                }
                if helo_ip.is_none() {
                    helo_ip = scan.helo_ip;
                }
            }
            Item::Comment(c) if clause == Clause::By => {
                hop.by_powermta |= strip_prefix_ci(trim_ws(c), b"PowerMTA").is_some();
            }
            Item::Comment(_) => {}
        }
    }
    hop.ip = tcp_ip
        .or(literal_ip)
        .or(bare_ip)
        .or(announced_ip)
        .or(helo_ip);
    hop
}

/// Whether an address is a public (globally routable) sender address for origin tracking.
///
/// False for loopback, RFC 1918, link-local, shared 100.64.0.0/10, 0.0.0.0/8, multicast,
/// 240.0.0.0/4 (which holds broadcast), and IPv6 unspecified, loopback, ULA fc00::/7, link-local
/// fe80::/10 and multicast. IPv4-mapped IPv6 is judged as its IPv4. Documentation ranges count as
/// public, because synthetic corpora use them as senders.
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(&v4);
            }
            let seg0 = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_loopback()
                || seg0 & 0xfe00 == 0xfc00
                || seg0 & 0xffc0 == 0xfe80
                || seg0 & 0xff00 == 0xff00)
        }
    }
}

fn is_public_v4(ip: &Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(a == 0
        || a == 10
        || a == 127
        || (a == 100 && b & 0xc0 == 64)
        || (a == 169 && b == 254)
        || (a == 172 && b & 0xf0 == 16)
        || (a == 192 && b == 168)
        || a >= 224)
}

/// Parses one IP token as found in Received lines: `1.2.3.4`, `[1.2.3.4]`, `IPv6:2001:db8::1`,
/// `[IPv6:::1]`, `2603:10b6:208:3c8::18`, `::ffff:1.2.3.4` (gives the IPv4), optionally inside
/// brackets or parentheses, with an optional `:port` after an IPv4 or after `]`, and an ignored
/// `%zone` after an IPv6. IPv4 octets with leading zeros are read as decimal.
pub fn parse_ip_token(tok: &[u8]) -> Option<IpAddr> {
    let mut s = trim_ws(tok);
    if let [b'(', rest @ ..] = s {
        s = rest;
    }
    if let [rest @ .., b')'] = s {
        s = rest;
    }
    if let [b'[', rest @ ..] = s {
        let close = memchr(b']', rest)?;
        let after = &rest[close + 1..];
        if !after.is_empty() && !after.strip_prefix(b":").is_some_and(is_port) {
            return None;
        }
        return parse_bare(&rest[..close]);
    }
    parse_bare(s)
}

fn is_port(s: &[u8]) -> bool {
    (1..=5).contains(&s.len()) && s.iter().all(u8::is_ascii_digit)
}

fn parse_bare(s: &[u8]) -> Option<IpAddr> {
    if let Some(v6) = strip_prefix_ci(s, b"IPv6:") {
        return parse_v6(v6);
    }
    let Some(colon) = memrchr(b':', s) else {
        return parse_v4(s).map(IpAddr::V4);
    };
    if is_port(&s[colon + 1..])
        && let Some(v4) = parse_v4(&s[..colon])
    {
        return Some(IpAddr::V4(v4));
    }
    parse_v6(s)
}

/// Dotted-quad only: shorter forms like `10.0.0` are version numbers far more often than
/// addresses in Received lines.
fn parse_v4(s: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    let mut val = 0u16;
    let mut digits = 0;
    for &b in s {
        match b {
            b'0'..=b'9' if digits < 3 => {
                val = val * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'.' if digits > 0 && n < 3 => {
                octets[n] = u8::try_from(val).ok()?;
                n += 1;
                val = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if n != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(val).ok()?;
    Some(Ipv4Addr::from(octets))
}

fn parse_v6(s: &[u8]) -> Option<IpAddr> {
    // A zone (`fe80::1%4`, Exchange) names an interface on the recording host, not the address.
    let s = match memchr(b'%', s) {
        Some(i) => &s[..i],
        None => s,
    };
    // Cheap rejection first: most words reaching here are host names or times, not addresses.
    if !(2..=45).contains(&s.len())
        || memchr(b':', s).is_none()
        || !s
            .iter()
            .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return None;
    }
    let addr: Ipv6Addr = std::str::from_utf8(s).ok()?.parse().ok()?;
    Some(match addr.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(addr),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn b(s: &str) -> Option<&[u8]> {
        Some(s.as_bytes())
    }

    // ---- formats seen in the corpora ----

    #[test]
    fn announced_dotted_quad_ranks_below_the_recorded_address() {
        // spamassassin spam_2/00001: the word after `from` is the client's own claim.
        let h = parse_received(
            b"from 64.0.57.142 [202.63.165.34] by bettyjagessar.com (SMTPD32-7.06 EVAL) id A; Fri, 02 Aug 2002 23:37:59 0530",
        );
        assert_eq!(h.ip, Some("202.63.165.34".parse().unwrap()));
        assert_eq!(h.from_host, Some(&b"64.0.57.142"[..]));
        // With nothing else recorded, the announced address is still better than none.
        let h = parse_received(b"from 64.0.57.142 by mx.example; Fri, 02 Aug 2002 23:37:59 +0000");
        assert_eq!(h.ip, Some("64.0.57.142".parse().unwrap()));
    }

    #[test]
    fn powermta_names_itself_in_the_by_clause() {
        // trec07p inmail.853, spamassassin spam_2/01396 and nazario phishing0, as written.
        for f in [
            &b"by xtinmta05-162.exacttarget.com (PowerMTA(TM) v3.2r10) id h39jg80bng8k for <ktwarwic@speedy.uwaterloo.ca>; Mon, 9 Apr 2007 11:17:04 -0500 (envelope-from <bounce-753884@bounce.exacttarget.com>)"[..],
            b"by sandra.330w.com (PowerMTA(TM) v1.5); Tue, 3 Dec 2002 13:19:58\n    -0800 (envelope-from\n    <a@frugaljoe.330w.com>)",
            b"from 192.168.0.8 (192.168.0.8) by smtp1.local (PowerMTA(TM) v2.0r1) id h2pr32041rgu; Fri, 18 Feb 2005 18:11:44 -0500 (envelope-from <error-2@r.specialgiftcards.com>)",
        ] {
            let h = parse_received(f);
            assert!(h.by_powermta, "{}", String::from_utf8_lossy(f));
        }
        // Only the receiving side's own comment counts, not a client's name or a later comment.
        let h = parse_received(b"from powermta.example (PowerMTA [192.0.2.1]) by mx.example (Postfix) with ESMTP id 1; Mon, 9 Apr 2007 11:17:04 -0500");
        assert!(!h.by_powermta);
    }

    #[test]
    fn postfix_trap_hop() {
        let h = parse_received(
            b" from relay4.mailrelay.example (relay4.mailrelay.example [31.191.18.222])\n \
              by mx1.spamtrap.example (Postfix) with ESMTP id ktFyWMMC6Fbp\n \
              for <barbara.taylor@trap-a.example>; Mon, 06 May 2024 00:10:11 +0000 (UTC)",
        );
        assert_eq!(
            h,
            Hop {
                from_host: b("relay4.mailrelay.example"),
                from_rdns: b("relay4.mailrelay.example"),
                ip: v4("31.191.18.222"),
                by_host: b("mx1.spamtrap.example"),
                with: b("ESMTP"),
                date: b("Mon, 06 May 2024 00:10:11 +0000 (UTC)"),
                by_powermta: false,
            }
        );
    }

    #[test]
    fn postfix_helo_literal_loses_to_tcp_info() {
        let h = parse_received(
            b" from [192.168.6.7] (unknown [162.187.144.18])\r\n by out.easyrewards-news.example.net \
              (Postfix) with ESMTPSA id b9w1mpckThfL;\r\n Mon, 06 May 2024 02:05:06 +0200",
        );
        assert_eq!(h.from_host, b("[192.168.6.7]"));
        assert_eq!(h.from_rdns, b("unknown"));
        assert_eq!(h.ip, v4("162.187.144.18"));
        assert_eq!(h.by_host, b("out.easyrewards-news.example.net"));
        assert_eq!(h.with, b("ESMTPSA"));
        assert_eq!(h.date, b("Mon, 06 May 2024 02:05:06 +0200"));
    }

    #[test]
    fn sendmail_user_at_rdns() {
        let h = parse_received(
            b"from lugh (root@localhost [127.0.0.1]) by lugh.tuatha.org (8.9.3/8.9.3) with ESMTP \
              id KAA14801; Wed, 28 Aug 2002 10:29:09 +0100",
        );
        assert_eq!(h.from_host, b("lugh"));
        assert_eq!(h.from_rdns, b("localhost"));
        assert_eq!(h.ip, v4("127.0.0.1"));
        assert_eq!(h.by_host, b("lugh.tuatha.org"));
    }

    #[test]
    fn sendmail_ident_forms() {
        let h = parse_received(
            b"from austin-jump.vircio.com (IDENT:2iViV5856IJtIfZjXdJ/4WQv+Y4YNzRs@jump-austin.vircio.com \
              [192.12.3.99]) by mx1.redhat.com (8.11.6/8.11.6) with SMTP id g7MGEGl19957 for \
              <exmh-workers@redhat.com>; Thu, 22 Aug 2002 12:14:16 -0400",
        );
        assert_eq!(h.from_rdns, b("jump-austin.vircio.com"));
        assert_eq!(h.ip, v4("192.12.3.99"));
        let h = parse_received(
            b"from 202.111.170.139 (IDENT:squid@[202.111.170.139]) by mandark.labs.netnoteinc.com \
              (8.11.6/8.11.6) with SMTP id g6L8O7p07167 for <jm@netnoteinc.com>; Sun, 21 Jul 2002 09:24:09 +0100",
        );
        assert_eq!(h.from_rdns, None);
        assert_eq!(h.ip, v4("202.111.170.139"));
    }

    #[test]
    fn sendmail_may_be_forged() {
        let h = parse_received(
            b"from cpu59.osdn.com (slashdot.org [64.28.67.73] (may be forged)) by webnote.net \
              (8.9.3/8.9.3) with ESMTP id DAA19725 for <jm-use-perl@jmason.org>; Fri, 6 Sep 2002 03:00:57 +0100",
        );
        assert_eq!(h.from_host, b("cpu59.osdn.com"));
        assert_eq!(h.from_rdns, b("slashdot.org"));
        assert_eq!(h.ip, v4("64.28.67.73"));
        assert_eq!(h.by_host, b("webnote.net"));
        assert_eq!(h.with, b("ESMTP"));
    }

    #[test]
    fn sendmail_local_has_no_from_clause() {
        let h = parse_received(
            b"(from cpunks@localhost) by einstein.ssz.com (8.8.8/8.8.8) id OAA16605 for \
              cypherpunks@ds.pro-ns.net; Tue, 23 Jul 2002 14:58:40 -0500",
        );
        assert_eq!(
            h,
            Hop {
                by_host: b("einstein.ssz.com"),
                date: b("Tue, 23 Jul 2002 14:58:40 -0500"),
                ..Hop::default()
            }
        );
    }

    #[test]
    fn qmail_forms() {
        let h = parse_received(
            b"from unknown (HELO vtn1.victoria.tc.ca) (199.60.222.3) by mta1.grp.scd.yahoo.com \
              with SMTP; 28 Aug 2002 01:14:00 -0000",
        );
        assert_eq!(h.from_host, b("unknown"));
        assert_eq!(h.from_rdns, None);
        assert_eq!(h.ip, v4("199.60.222.3"));
        assert_eq!(h.by_host, b("mta1.grp.scd.yahoo.com"));
        assert_eq!(h.with, b("SMTP"));
        assert_eq!(h.date, b("28 Aug 2002 01:14:00 -0000"));

        let h = parse_received(b"(qmail 26129 invoked from network); 3 Oct 2002 05:16:58 -0000");
        assert_eq!(
            h,
            Hop {
                date: b("3 Oct 2002 05:16:58 -0000"),
                ..Hop::default()
            }
        );

        let h = parse_received(
            b"from p977.as2.cra.dublin.eircom.net (HELO mfrenchw2k) (mfrench42@159.134.179.209 with \
              login) by smtp.mail.vip.sc5.yahoo.com with SMTP; 22 Aug 2002 22:02:25 -0000",
        );
        assert_eq!(h.ip, v4("159.134.179.209"));
        assert_eq!(h.by_host, b("smtp.mail.vip.sc5.yahoo.com"));

        let h = parse_received(
            b"from unknown (HELO smtp051.mail.yahoo.com) ([66.46.22.58]) (envelope-sender \
              <mrchservice@aol.com>) by mail.xsjzx.net (qmail-ldap-1.03) with SMTP for \
              <jm@netcomuk.co.uk>; 29 May 2002 14:43:07 -0000",
        );
        assert_eq!(h.ip, v4("66.46.22.58"));
    }

    #[test]
    fn qmail_helo_literal_is_last_resort() {
        let h = parse_received(b"from unknown (HELO [10.1.1.1]) (203.0.113.9) by mx with SMTP; x");
        assert_eq!(h.ip, v4("203.0.113.9"));
        let h = parse_received(b"from unknown (HELO [10.1.1.1]) by mx with SMTP; x");
        assert_eq!(h.ip, v4("10.1.1.1"));
    }

    #[test]
    fn smap_without_space_before_comment() {
        let h = parse_received(
            b"from viper.oldcity.dca.net(216.158.38.4) by ns.ATComputing.nl via smap (V2.1)\n\
              \tid xma001126; Wed, 9 Feb 00 22:02:01 +0100",
        );
        assert_eq!(h.from_host, b("viper.oldcity.dca.net"));
        assert_eq!(h.ip, v4("216.158.38.4"));
        assert_eq!(h.by_host, b("ns.ATComputing.nl"));
        assert_eq!(h.with, None);
        assert_eq!(h.date, b("Wed, 9 Feb 00 22:02:01 +0100"));
    }

    #[test]
    fn exim_forms() {
        let h = parse_received(
            b"from [66.92.157.3] (helo=www.dudex.net) by bob.dudex.net with esmtp (Exim 3.35 #1) \
              id 17vujG-00018Z-00 for rpm-list@freshrpms.net; Mon, 30 Sep 2002 03:12:30 -0400",
        );
        assert_eq!(h.from_host, b("[66.92.157.3]"));
        assert_eq!(h.from_rdns, None);
        assert_eq!(h.ip, v4("66.92.157.3"));
        assert_eq!(h.with, b("esmtp"));

        let h = parse_received(
            b"from 8ta-150-33-226.telkomadsl.co.za ([41.150.33.226]:7042 helo=[7.7.205.251]) by \
              host.nevosolutions.com with esmtpsa (TLS1) tls TLS_DHE_RSA_WITH_AES_256_CBC_SHA \
              (Exim 4.96.2) (envelope-from <shore@qualitygardening4less.com>) id 1t8wXT-000674-24 \
              for phishing@pot; Thu, 07 Nov 2024 02:02:42 -0500",
        );
        assert_eq!(h.ip, v4("41.150.33.226"));
        assert_eq!(h.from_rdns, None);
        assert_eq!(h.by_host, b("host.nevosolutions.com"));
        assert_eq!(h.with, b("esmtpsa"));

        let h = parse_received(
            b"from localhost ([127.0.0.1] helo=dingo.home.kanga.nu) by dingo.home.kanga.nu with \
              esmtp (Exim 3.35 #1 (Debian)) id 17p2L6-0002bM-00; Wed, 11 Sep 2002 00:55:08 -0700",
        );
        assert_eq!(h.ip, v4("127.0.0.1"));
        // Only a helo= literal: better than nothing.
        let h = parse_received(b"from x (helo=[198.51.100.7]) by y with esmtp; d");
        assert_eq!(h.ip, v4("198.51.100.7"));
    }

    #[test]
    fn exchange_forms() {
        let h = parse_received(
            b"from vps11575.vm-provider.example (194.236.129.63) by\r\n \
              NAM06FT087.mail.protection.outlook.com (10.188.49.199) with Microsoft SMTP Server \
              (version=TLS1_2,\r\n cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.7571.8 \
              via Frontend Transport;\r\n Thu, 09 May 2024 05:20:05 +0000",
        );
        assert_eq!(h.from_host, b("vps11575.vm-provider.example"));
        assert_eq!(h.from_rdns, None);
        assert_eq!(h.ip, v4("194.236.129.63"));
        assert_eq!(h.by_host, b("NAM06FT087.mail.protection.outlook.com"));
        assert_eq!(h.with, b("Microsoft"));
        assert_eq!(h.date, b("Thu, 09 May 2024 05:20:05 +0000"));

        let h = parse_received(
            b"from PA7P264CA0531.FRAP264.PROD.OUTLOOK.COM (2603:10a6:102:3db::12) by \
              BL3PR05MB9187.namprd05.prod.outlook.com (2603:10b6:208:3be::8) with Microsoft SMTP \
              Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8356.13; \
              Sat, 18 Jan 2025 10:00:00 +0000",
        );
        assert_eq!(h.ip, Some("2603:10a6:102:3db::12".parse().unwrap()));
        assert_eq!(h.by_host, b("BL3PR05MB9187.namprd05.prod.outlook.com"));

        let h = parse_received(
            b"from LO6P123MB7190.GBRP123.PROD.OUTLOOK.COM ([fe80::dddc:a960:256d:b63f]) by \
              LO6P123MB7190.GBRP123.PROD.OUTLOOK.COM ([fe80::dddc:a960:256d:b63f%4]) with mapi id \
              15.20.7962.017; Sat, 14 Sep 2024 00:05:06 +0000",
        );
        assert_eq!(h.ip, Some("fe80::dddc:a960:256d:b63f".parse().unwrap()));
        assert_eq!(h.with, b("mapi"));

        let h = parse_received(
            b"from SN7PR10MB6523.namprd10.prod.outlook.com (::1) by \
              MW4PR10MB5749.namprd10.prod.outlook.com with HTTPS; Wed, 11 Feb 2026 14:13:38 +0000",
        );
        assert_eq!(h.ip, Some("::1".parse().unwrap()));
        assert_eq!(h.with, b("HTTPS"));

        let h = parse_received(
            b"from mail-xyz.outbound.protection.outlook.com (HELO EUR05-DB8-obe.outbound.protection.outlook.com) \
              ([40.107.1.2]) by mx.example.org with ESMTPS; Mon, 6 May 2024 00:10:11 +0000",
        );
        assert_eq!(h.ip, v4("40.107.1.2"));
        assert_eq!(h.from_rdns, None);

        let h = parse_received(
            b"from mail pickup service by mail1.insuranceiq.com with Microsoft SMTPSVC; \
              Sun, 28 Jul 2002 22:59:15 -0400",
        );
        assert_eq!(h.from_host, b("mail"));
        assert_eq!(h.ip, None);
        assert_eq!(h.by_host, b("mail1.insuranceiq.com"));
    }

    #[test]
    fn gmail_forms() {
        let h = parse_received(
            b"by 2002:aa7:dcc9:0:b0:51b:d432:f6bf with SMTP id \
              w9-20020aa7dcc9000000b0051bd432f6bfls411871edu.2.-pod-prod-09-eu;\r\n        \
              Fri, 30 Jun 2023 08:03:26 -0700 (PDT)",
        );
        assert_eq!(h.from_host, None);
        assert_eq!(h.ip, None, "the by host's address is not the client's");
        assert_eq!(h.by_host, b("2002:aa7:dcc9:0:b0:51b:d432:f6bf"));
        assert_eq!(h.with, b("SMTP"));

        let h = parse_received(
            b"from mail-sor-f41.google.com (mail-sor-f41.google.com. [209.85.220.41])\r\n        \
              by mx.google.com with SMTPS id f12-20020ac24e4c000000b004cafac82da4sor519807lfr.113\r\n        \
              for <phish.me.again@gmail.com>\r\n        (Google Transport Security);\r\n        \
              Fri, 17 Mar 2023 10:01:53 -0700 (PDT)",
        );
        assert_eq!(h.from_rdns, b("mail-sor-f41.google.com"));
        assert_eq!(h.ip, v4("209.85.220.41"));
        assert_eq!(h.by_host, b("mx.google.com"));
        assert_eq!(h.with, b("SMTPS"));
        assert_eq!(h.date, b("Fri, 17 Mar 2023 10:01:53 -0700 (PDT)"));
    }

    #[test]
    fn ipv6_literals() {
        let h = parse_received(
            b"from darkness.sial.org (localhost. [IPv6:::1]) by mail.sial.org (8.12.5/8.12.5) with \
              ESMTP id g7SF6EQK002946; Wed, 28 Aug 2002 08:06:14 -0700 (PDT)",
        );
        assert_eq!(h.from_rdns, b("localhost"));
        assert_eq!(h.ip, Some("::1".parse().unwrap()));
        let h = parse_received(b"from [IPv6:2001:db8::1] by mx.example with ESMTP; d");
        assert_eq!(h.from_host, b("[IPv6:2001:db8::1]"));
        assert_eq!(h.ip, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn literal_and_bare_from_hosts() {
        let h = parse_received(
            b"from 216.30.74.2 by lw15fd.law15.hotmail.msn.com with HTTP; Mon, 25 Nov 2002 19:34:27 GMT",
        );
        assert_eq!(h.from_host, b("216.30.74.2"));
        assert_eq!(h.ip, v4("216.30.74.2"));
        assert_eq!(h.with, b("HTTP"));

        let h = parse_received(
            b"from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0) for jm@localhost \
              (single-drop); Wed, 28 Aug 2002 14:05:35 +0100 (IST)",
        );
        assert_eq!(h.from_host, b("phobos"));
        assert_eq!(h.ip, v4("127.0.0.1"));
        assert_eq!(h.with, b("IMAP"));

        let h = parse_received(
            b"from infong233.us.perfora.net[217.160.226.16] (helo=infong233) by mrelay.perfora.net \
              with ESMTP (Nemesis), id 0MKyxe-1CvH5T02ii-0008IW; Sun, 30 Jan 2005 10:34:01 +0100",
        );
        assert_eq!(h.from_host, b("infong233.us.perfora.net"));
        assert_eq!(h.ip, v4("217.160.226.16"));

        let h = parse_received(
            b"from cagf97200.com(pb84.zabrze.sdi.tpnet.pl[217.98.193.84]) by WWW2.IBM.IT \
              (IBM OS/400 SMTP V04R05M00) with TCP; Sun, 28 Jul 2002 21:56:09 +0000",
        );
        assert_eq!(h.from_host, b("cagf97200.com"));
        assert_eq!(h.from_rdns, b("pb84.zabrze.sdi.tpnet.pl"));
        assert_eq!(h.ip, v4("217.98.193.84"));

        let h = parse_received(
            b"from (HELO 4sb) [24.112.240.95] by user-0c6sc77.cable.mindspring.com with ESMTP id \
              A8AB3A95C3C; Wed, 24 Aug 2005 13:32:28 -0700",
        );
        assert_eq!(h.ip, v4("24.112.240.95"));
        assert_eq!(h.by_host, b("user-0c6sc77.cable.mindspring.com"));
    }

    #[test]
    fn missing_by_and_missing_date() {
        let h = parse_received(b"from ([127.0.0.1:43887])");
        assert_eq!(h.ip, v4("127.0.0.1"));
        assert_eq!(h.by_host, None);
        assert_eq!(h.date, None);
        let h = parse_received(b"from x.example (x.example [203.0.113.5])");
        assert_eq!(h.ip, v4("203.0.113.5"));
        assert_eq!(h.by_host, None);
    }

    #[test]
    fn by_part_addresses_never_count() {
        let h = parse_received(b"from unknown by mx.example ([198.51.100.1]) with SMTP; d");
        assert_eq!(h.ip, None);
        let h = parse_received(b"by a.example with SMTP from b.example ([198.51.100.1]); d");
        assert_eq!(h.ip, None);
        assert_eq!(h.from_host, None);
    }

    #[test]
    fn keywords_are_case_insensitive_tokens_only() {
        let h =
            parse_received(b"FROM byhost.example (x [192.0.2.1]) BY withhost WITH smtp ID 1; d");
        assert_eq!(h.from_host, b("byhost.example"));
        assert_eq!(h.ip, v4("192.0.2.1"));
        assert_eq!(h.by_host, b("withhost"));
        assert_eq!(h.with, b("smtp"));
        // `from` inside a comment is not the keyword.
        let h = parse_received(b"by lists.samba.org (Postfix, from userid 605) id 171AF162AD8; d");
        assert_eq!(h.from_host, None);
        assert_eq!(h.by_host, b("lists.samba.org"));
    }

    #[test]
    fn last_semicolon_starts_date() {
        let h = parse_received(
            b"from a (b [192.0.2.1]) by c with x id ;2+<0D for d@e; Tue, 10 Apr 2007 ",
        );
        assert_eq!(h.date, b("Tue, 10 Apr 2007"));
        assert_eq!(h.ip, v4("192.0.2.1"));
        assert_eq!(parse_received(b"from a;").date, b(""));
    }

    #[test]
    fn garbage_from_trec() {
        let h = parse_received(
            b"from 196.40.83.68 (HELO mail.1-800-online-sportsbook.com) by plg.uwaterloo.ca with \
              esmtp (9(69A2-54+( )(N0)) id JW(KFH-H7A61Y-X5 for theorize@plg.uwaterloo.ca; \
              Tue, 10 Apr 2007 15:10:46 +0700",
        );
        assert_eq!(h.ip, v4("196.40.83.68"));
        assert_eq!(h.by_host, b("plg.uwaterloo.ca"));
        assert_eq!(h.with, b("esmtp"));
        assert_eq!(h.date, b("Tue, 10 Apr 2007 15:10:46 +0700"));
        // Non-UTF-8 HELO literal, as in trec07p.
        let h = parse_received(
            b"from [\xa8\x0eN\xa8\x01\xa8p\x00\xa80UAIPv6:::1] (dp [66.70.73.150]) by l; d",
        );
        assert_eq!(h.ip, v4("66.70.73.150"));
        assert_eq!(h.from_rdns, b("dp"));
        // Unclosed comment, stray parens, escapes.
        let h = parse_received(b"from a ) (b [192.0.2.9] \\) (c by d");
        assert_eq!(h.from_host, b("a"));
        assert_eq!(h.ip, v4("192.0.2.9"));
        assert_eq!(h.by_host, None);
        assert_eq!(parse_received(b""), Hop::default());
        assert_eq!(parse_received(b"from"), Hop::default());
    }

    #[test]
    fn ip_tokens() {
        let ok: &[(&str, &str)] = &[
            ("1.2.3.4", "1.2.3.4"),
            ("[1.2.3.4]", "1.2.3.4"),
            ("(1.2.3.4)", "1.2.3.4"),
            ("([1.2.3.4])", "1.2.3.4"),
            ("[1.2.3.4]:25", "1.2.3.4"),
            ("1.2.3.4:65535", "1.2.3.4"),
            ("010.001.002.003", "10.1.2.3"),
            ("IPv6:2001:db8::1", "2001:db8::1"),
            ("ipv6:2001:db8::1", "2001:db8::1"),
            ("[IPv6:::1]", "::1"),
            ("[IPv6:2001:db8::1]:587", "2001:db8::1"),
            ("2603:10b6:208:3c8::18", "2603:10b6:208:3c8::18"),
            ("::ffff:1.2.3.4", "1.2.3.4"),
            ("[IPv6:::ffff:192.0.2.1]", "192.0.2.1"),
            ("fe80::1%eth0", "fe80::1"),
            ("[fe80::9b4c:b8b5:6d1b:301b%6]", "fe80::9b4c:b8b5:6d1b:301b"),
        ];
        for (tok, want) in ok {
            assert_eq!(
                parse_ip_token(tok.as_bytes()),
                Some(want.parse().unwrap()),
                "{tok}"
            );
        }
        let bad = [
            "10.0.0",
            "8.9.3/8.9.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.2.3.4.dynamic.example",
            "1..2.3",
            "1.2.3.",
            "0001.2.3.4",
            "[1.2.3.4",
            "[1.2.3.4]x",
            "[1.2.3.4]:",
            "[1.2.3.4]:123456",
            "1.2.3.4:",
            "05:20:07",
            "15.20.7571.8",
            "IPv6:1.2.3.4",
            "",
            "[]",
            "unknown",
            "::ffff:1.2.3",
            "2001:db8::1:25x",
        ];
        for tok in bad {
            assert_eq!(parse_ip_token(tok.as_bytes()), None, "{tok}");
        }
        assert_eq!(parse_ip_token(b"\xff1.2.3.4"), None);
    }

    #[test]
    fn public_ranges() {
        let public = [
            "8.8.8.8",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.0.1",
            "172.32.0.1",
            "169.253.1.1",
            "223.255.255.255",
            "2001:db8::1",
            "2603:10a6::1",
            "::ffff:8.8.8.8",
        ];
        let private = [
            "0.1.2.3",
            "10.1.2.3",
            "127.0.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "224.0.0.1",
            "239.1.1.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ];
        for s in public {
            assert!(is_public(&s.parse().unwrap()), "{s}");
        }
        for s in private {
            assert!(!is_public(&s.parse().unwrap()), "{s}");
        }
    }

    // ---- robustness ----

    fn within(outer: &[u8], inner: Option<&[u8]>) -> bool {
        inner.is_none_or(|i| {
            let (o, i) = (outer.as_ptr_range(), i.as_ptr_range());
            o.start <= i.start && i.end <= o.end
        })
    }

    fn check_invariants(input: &[u8]) {
        let h = parse_received(input);
        for s in [h.from_host, h.from_rdns, h.by_host, h.with, h.date] {
            assert!(within(input, s));
        }
        assert_eq!(h.date.is_some(), input.contains(&b';'));
        let _ = parse_ip_token(input);
        if let Some(ip) = h.ip {
            let _ = is_public(&ip);
        }
    }

    const FRAGMENTS: &[&[u8]] = &[
        b"from",
        b"FROM",
        b"by",
        b"with",
        b"id",
        b"for",
        b"via",
        b" ",
        b"\r\n ",
        b"\n\t",
        b"(",
        b")",
        b"[",
        b"]",
        b";",
        b"\\",
        b"@",
        b"=",
        b":",
        b"%",
        b".",
        b"helo=",
        b"HELO",
        b"IPv6:",
        b"1.2.3.4",
        b"203.0.113.7",
        b"010.0.0.1",
        b"::1",
        b"2001:db8::1",
        b"::ffff:",
        b":25",
        b"host.example",
        b"unknown",
        b"(may be forged)",
        b"(unknown [192.0.2.1])",
        b"[IPv6:::1]",
        b"\xff",
        b"\x00",
        b"\xc3\xa9",
        b"99999",
        b"ESMTP",
        b"Mon, 6 May 2024",
    ];

    proptest! {
        #[test]
        fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600)) {
            check_invariants(&input);
        }

        #[test]
        fn received_like_mixes_never_panic(
            parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..60)
        ) {
            let input: Vec<u8> = parts.concat();
            check_invariants(&input);
        }

        #[test]
        fn any_ipv4_round_trips(a: u8, b_: u8, c: u8, d: u8, port in 0u32..65536) {
            let ip = IpAddr::V4(Ipv4Addr::new(a, b_, c, d));
            prop_assert_eq!(parse_ip_token(ip.to_string().as_bytes()), Some(ip));
            prop_assert_eq!(parse_ip_token(format!("[{ip}]:{port}").as_bytes()), Some(ip));
            prop_assert_eq!(parse_ip_token(format!("{ip}:{port}").as_bytes()), Some(ip));
            let mapped = IpAddr::V6(Ipv4Addr::new(a, b_, c, d).to_ipv6_mapped());
            prop_assert_eq!(is_public(&ip), is_public(&mapped));
        }

        #[test]
        fn any_ipv6_round_trips(segs: [u16; 8]) {
            let addr = Ipv6Addr::from(segs);
            let want = match addr.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(addr),
            };
            prop_assert_eq!(parse_ip_token(addr.to_string().as_bytes()), Some(want));
            prop_assert_eq!(parse_ip_token(format!("[IPv6:{addr}]").as_bytes()), Some(want));
        }

        #[test]
        fn tcp_info_address_is_found(a: u8, b_: u8, c: u8, d: u8, crlf: bool) {
            let ip = IpAddr::V4(Ipv4Addr::new(a, b_, c, d));
            let fold = if crlf { "\r\n " } else { "\n\t" };
            let line = format!("from [10.9.9.9] (rdns.example [{ip}]){fold}by mx.example (1.2.3.4) with ESMTP; d");
            let h = parse_received(line.as_bytes());
            prop_assert_eq!(h.ip, Some(ip));
            prop_assert_eq!(h.from_rdns, Some(&b"rdns.example"[..]));
        }
    }
}
