//! Stage 5, classify: what the Received chain says about where a message came from.
//!
//! Takes a message's parsed Received hops (topmost first, as in the header) and gives the receipt
//! time, the client IP (who handed the message to the trap), the origin IP (the earliest public
//! address in the chain) and a readable relay path. Parsing one Received field is in [`received`];
//! what infrastructure a hop belongs to in [`rules`]; the relay-abuse evidence of a message in
//! [`relay`]; the campaign evidence keys in [`evidence`].

pub mod evidence;
pub mod received;
pub mod relay;
pub mod rules;

use std::net::IpAddr;

use received::{Hop, is_public};

/// The timestamp of each hop (Unix seconds), parsed once, in the hops' order.
pub fn hop_times(hops: &[Hop<'_>], out: &mut Vec<Option<i64>>) {
    out.clear();
    out.extend(
        hops.iter()
            .map(|h| h.date.and_then(crate::headers::date::parse_date)),
    );
}

/// Receipt time: the topmost Received timestamp that parses (`times` from [`hop_times`]).
pub fn receipt_from_hops(times: &[Option<i64>]) -> Option<i64> {
    times.iter().find_map(|t| *t)
}

/// The address that handed the message to the trap: from the topmost hop that names a public
/// client. Hops added inside the trap (fetchmail, local delivery from 127.0.0.1 or a private
/// relay) are passed over; when no hop has a public address, the topmost address is used.
pub fn client_ip(hops: &[Hop<'_>]) -> Option<IpAddr> {
    hops.iter()
        .filter_map(|h| h.ip)
        .find(is_public)
        .or_else(|| hops.iter().find_map(|h| h.ip))
}

/// The claimed original sender: the earliest (bottom-most) public address in the chain.
pub fn origin_ip(hops: &[Hop<'_>]) -> Option<IpAddr> {
    hops.iter().rev().filter_map(|h| h.ip).find(is_public)
}

/// The relay path, earliest first: the first sender (its address, else its name), then the host
/// that received the message at each hop, joined by ` > `. A hop without a `by` host shows `?`.
pub fn relay_path(hops: &[Hop<'_>], out: &mut String) {
    let Some(bottom) = hops.last() else { return };
    // Built as bytes: every byte written is printable ASCII, so the text stays UTF-8.
    let mut path = std::mem::take(out).into_bytes();
    match (bottom.ip, bottom.from_host) {
        (Some(ip), _) => push_ip(ip, &mut path),
        (None, Some(host)) => push_host(host, &mut path),
        (None, None) => path.push(b'?'),
    }
    for hop in hops.iter().rev() {
        path.extend_from_slice(b" > ");
        match hop.by_host {
            Some(h) => push_host(h, &mut path),
            None => path.push(b'?'),
        }
    }
    *out = String::from_utf8(path).unwrap_or_else(|e| {
        // Unreachable (UTF-8 text plus ASCII); keep what is valid rather than fail a message.
        let valid = e.utf8_error().valid_up_to();
        let mut bytes = e.into_bytes();
        bytes.truncate(valid);
        String::from_utf8(bytes).unwrap_or_default()
    });
}

/// A host name for output: printable ASCII only, lowercased, so a path never breaks a CSV line
/// or a terminal.
fn push_host(host: &[u8], out: &mut Vec<u8>) {
    // Copied, then mapped in place: a loop over a slice the compiler can vectorize.
    let start = out.len();
    out.extend_from_slice(host);
    for b in &mut out[start..] {
        *b = if b.is_ascii_graphic() {
            b.to_ascii_lowercase()
        } else {
            b'?'
        };
    }
}

/// Text that ASCII can be appended to: a `String`, or the bytes of a row being written.
pub trait PushAscii {
    fn push_ascii(&mut self, ascii: &str);
}

impl PushAscii for String {
    fn push_ascii(&mut self, ascii: &str) {
        self.push_str(ascii);
    }
}

impl PushAscii for Vec<u8> {
    fn push_ascii(&mut self, ascii: &str) {
        self.extend_from_slice(ascii.as_bytes());
    }
}

/// An IP address in its usual text form: a dotted quad, or RFC 5952 IPv6.
pub fn push_ip(ip: IpAddr, out: &mut impl PushAscii) {
    match ip {
        // The common case, written without the formatting machinery.
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push_ascii(".");
                }
                out.push_ascii(itoa::Buffer::new().format(octet));
            }
        }
        IpAddr::V6(_) => out.push_ascii(&ip.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use received::parse_received;

    #[test]
    fn chain_facts() {
        let fields: [&[u8]; 3] = [
            b" from relay4.mailrelay.example (relay4.mailrelay.example [31.191.18.222])\n by mx1.spamtrap.example (Postfix) with ESMTP id k\n for <b@t>; Mon, 06 May 2024 00:10:11 +0000 (UTC)",
            b" from out.example.net (out.example.net [194.227.147.230])\n by relay4.mailrelay.example with ESMTP id d;\n Mon, 06 May 2024 01:08:26 +0100",
            b" from [192.168.6.7] (unknown [162.187.144.18])\n by out.example.net (Postfix) with ESMTPSA id b;\n Mon, 06 May 2024 02:05:06 +0200",
        ];
        let hops: Vec<_> = fields.iter().map(|f| parse_received(f)).collect();
        assert_eq!(client_ip(&hops), Some("31.191.18.222".parse().unwrap()));
        assert_eq!(origin_ip(&hops), Some("162.187.144.18".parse().unwrap()));
        let mut times = Vec::new();
        hop_times(&hops, &mut times);
        assert_eq!(receipt_from_hops(&times), Some(1714954211));
        let mut path = String::new();
        relay_path(&hops, &mut path);
        assert_eq!(
            path,
            "162.187.144.18 > out.example.net > relay4.mailrelay.example > mx1.spamtrap.example"
        );
    }

    #[test]
    fn local_top_hop_is_passed_over() {
        let fields: [&[u8]; 2] = [
            b" from localhost (localhost [127.0.0.1]) by mx.local (Postfix) with ESMTP; Tue, 6 Aug 2002 11:51:02 +0100",
            b" from mail.example.com (mail.example.com [64.12.1.2]) by mx.local; Tue, 6 Aug 2002 11:50:00 +0100",
        ];
        let hops: Vec<_> = fields.iter().map(|f| parse_received(f)).collect();
        assert_eq!(client_ip(&hops), Some("64.12.1.2".parse().unwrap()));
    }
}
