//! Every header-field parser on any bytes: the header walk, unfolding and RFC 2047 decoding,
//! addresses, dates, Received lines and IP tokens, DKIM-Signature tags, list identities, and the
//! MIME walk that finds landing links in a body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailcensus::classify::{evidence, received};
use mailcensus::headers::{self, address, date, decode};

fuzz_target!(|data: &[u8]| {
    let mut parsed = headers::Headers::default();
    let _ = headers::parse_headers(data, &headers::HeaderLimits::default(), &mut parsed);
    for value in &parsed.received {
        let hop = received::parse_received(value);
        std::hint::black_box(&hop);
    }
    for sig in &parsed.dkim_signatures {
        std::hint::black_box(headers::dkim_tags(sig));
    }
    let _ = decode::unfold(data);
    let _ = decode::decode_text(data);
    if let Some(a) = address::first_address(data) {
        let _ = address::domain_of(&a);
    }
    let _ = address::count_addresses(data);
    let _ = address::return_path(data);
    if let Some(t) = date::parse_date(data) {
        // Every date that parses can be written back.
        assert!(!date::format_rfc3339(t).is_empty());
    }
    let _ = received::parse_received(data);
    let _ = received::parse_ip_token(data);
    let _ = headers::dkim_tags(data);
    let _ = evidence::list_identity(data);
    let _ = evidence::mailing_list_identity(data);
    let _ = evidence::is_text_media(data);
    let mut links = Vec::new();
    evidence::landing_domains(data, "example.com", &mut links);
    // The MIME walk with the message's own type fields, as the scan calls it.
    let (mut scratch, mut out) = (Vec::new(), Vec::new());
    let split = data.iter().position(|&b| b == 0).unwrap_or(0);
    let (head, body) = data.split_at(split);
    evidence::body_landing_domains(body, Some(head), Some(b"base64"), "example.com", &mut scratch, &mut out);
    evidence::body_landing_domains(data, Some(b"multipart/mixed; boundary=b"), None, "example.com", &mut scratch, &mut out);
});
