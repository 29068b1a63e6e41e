//! DKIM verification of every signature of one message: the [`Verifier`].
//!
//! Takes a message (as on the wire, or as stored) and a verification time, and gives one
//! [`SignatureVerdict`] per DKIM-Signature field, in header order. mail-auth parses the signatures
//! and checks the cryptography with keys from the [`resolver`](super::resolver); body hashes, `l=`,
//! expiry, the key's own rules, weak RSA keys and the checks of the signature field are done
//! here, in the order of RFC 6376 §6.1.

use std::collections::HashMap;

use mail_auth::common::crypto::{Algorithm, HashAlgorithm};
use mail_auth::dkim::{Canonicalization, DkimError};
use mail_auth::{
    AuthenticatedMessage, DkimResult, DnsError, Error, MessageAuthenticator, Parameters,
};

use super::canon::{self, BodyCanon};
use super::key_record::{Key, key_stage};
use super::keys::{self, KeyStore};
use super::resolver::{Answers, KeyCache, poll_once};
use super::wire::{header_block_len, signature_fields, wire_form};
use super::{Policy, SigResult, SignatureVerdict, dns, key_name, tag_value, weak_rsa};

/// Errors setting up verification.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot set up the DKIM verifier: {0}")]
    Setup(String),
}

/// Verifies DKIM signatures against a fixed key store. Shared by all workers.
pub struct Verifier {
    authenticator: MessageAuthenticator,
    cache: KeyCache,
    policy: Policy,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("key_names", &self.cache.keys.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier whose lookups of `failed` names report `temperror` with the given reason (live
    /// DNS lookups that timed out or failed).
    pub fn with_lookup_failures(
        store: &KeyStore,
        policy: Policy,
        failed: &std::collections::BTreeMap<String, String>,
    ) -> Result<Verifier, AuthError> {
        let mut v = Verifier::new(store, policy)?;
        for (name, why) in failed {
            let name: Box<str> = keys::normalize_name(name).into();
            let live = || vec![Key::lookup_failed(why.clone())];
            match v.cache.keys.get_mut(&name) {
                // A failure the store recorded takes the live lookup's own words.
                Some(alts) if alts.iter().all(Key::is_lookup_failure) => *alts = live(),
                Some(_) => {}
                None => {
                    v.cache.keys.insert(name, live());
                }
            }
        }
        Ok(v)
    }

    pub fn new(store: &KeyStore, policy: Policy) -> Result<Verifier, AuthError> {
        // Construction does no I/O; the resolver inside has no servers and is never used, because
        // every lookup is answered from the cache.
        let authenticator = MessageAuthenticator(dns::idle_resolver().map_err(AuthError::Setup)?);
        Ok(Verifier {
            authenticator,
            cache: KeyCache::build(store, &policy),
            policy,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Number of key names in the store.
    pub fn key_names(&self) -> usize {
        self.cache.keys.len()
    }

    /// Verify every DKIM signature of `wire` (the message as sent: CRLF, unquoted), judged at
    /// `at` (Unix seconds). Signatures come back in header order.
    pub fn verify(&self, wire: &[u8], at: i64) -> Vec<SignatureVerdict> {
        let header_len = memchr::memmem::find(wire, b"\r\n\r\n").map_or(wire.len(), |i| i + 4);
        self.verify_parts(&wire[..header_len], &wire[header_len..], false, at)
    }

    /// Verify a message as stored: LF or CRLF line ends, and with `unquote` mboxrd `>From `
    /// quoting in the body. Only the header block is copied (to CRLF, for simple header
    /// canonicalization); the body is canonicalized where it lies. `buf` is scratch space.
    pub fn verify_stored(
        &self,
        stored: &[u8],
        unquote: bool,
        at: i64,
        buf: &mut Vec<u8>,
    ) -> Vec<SignatureVerdict> {
        let header_len = header_block_len(stored);
        let header = wire_form(&stored[..header_len], false, buf);
        if header.ends_with(b"\n") || header.is_empty() {
            return self.verify_parts(header, &stored[header_len..], unquote, at);
        }
        // A message cut off inside its header block: on the wire every field ends with CRLF, and
        // without one the last field (perhaps a signature, or a field it signs) would be lost.
        let mut whole = header.to_vec();
        whole.extend_from_slice(b"\r\n");
        self.verify_parts(&whole, &stored[header_len..], unquote, at)
    }

    /// `header`: the header block as on the wire (CRLF, blank line included); `body`: as stored.
    fn verify_parts(
        &self,
        header: &[u8],
        body: &[u8],
        unquote: bool,
        at: i64,
    ) -> Vec<SignatureVerdict> {
        // mail-auth hashes the body while parsing; it is given the header block only (its body
        // hash of nothing is cheap) and the body hashes are computed here, once, instead.
        let Some(mut msg) = AuthenticatedMessage::parse_with_opts(header, None, false) else {
            return signature_fields(header)
                .into_iter()
                .enumerate()
                .map(|(n, (_, value, _))| SignatureVerdict {
                    detail: "the header block could not be parsed".into(),
                    ..unparsed_verdict(n + 1, value, &Error::ParseError)
                })
                .collect();
        };
        if msg.dkim_headers.is_empty()
            && msg.errors.is_empty()
            && signature_fields(header).is_empty()
        {
            return Vec::new();
        }
        // Our own body hashes (RFC-exact l= and relaxed canonicalization).
        let mut canonical = Vec::new();
        // Canonical body length per body canonicalization, for the `l=` bound check.
        let mut body_len: [Option<u64>; 2] = [None; 2];
        for (c, ha, l, hash) in msg.body_hashes.iter_mut() {
            let (bc, slot) = match c {
                Canonicalization::Simple => (BodyCanon::Simple, 0),
                Canonicalization::Relaxed => (BodyCanon::Relaxed, 1),
            };
            canon::canonical_body(body, bc, unquote, &mut canonical);
            body_len[slot] = Some(canonical.len() as u64);
            let part = canon::limit(&canonical, (*l > 0).then_some(*l));
            *hash = ha.hash(part).as_ref().to_vec();
        }
        // Expiry is judged here; third-party (atps) lookups are not part of the census.
        let expiry: Vec<(u64, u64)> = msg
            .dkim_headers
            .iter()
            .map(|h| (h.header.x, h.header.t))
            .collect();
        for h in msg.dkim_headers.iter_mut() {
            h.header.x = 0;
            h.header.atps = None;
        }
        // An explicit `l=0` signs no body octets at all (RFC 6376 §3.5), but the crate reads 0
        // as "no l=": give such signatures a body-hash entry of their own.
        let explicit_zero: Vec<bool> = msg
            .dkim_headers
            .iter()
            .map(|h| {
                tag_value(h.value, b"l")
                    .is_some_and(|v| !v.is_empty() && v.iter().all(|&b| b == b'0'))
            })
            .collect();
        for (h, &zero) in msg.dkim_headers.iter_mut().zip(&explicit_zero) {
            if zero {
                let ha = HashAlgorithm::from(h.header.a);
                let empty = ha.hash(&b""[..]).as_ref().to_vec();
                let key = (h.header.cb, ha, u64::MAX);
                // A (saturated) huge l= may have claimed the same key; it fails the length
                // bound below whatever its hash, so the entry is the empty body's.
                match msg
                    .body_hashes
                    .iter_mut()
                    .find(|(c, a, l, _)| (*c, *a, *l) == key)
                {
                    Some(entry) => entry.3 = empty,
                    None => msg.body_hashes.push((key.0, key.1, key.2, empty)),
                }
                h.header.l = u64::MAX;
            }
        }
        // RFC 6376 §3.5: l= "MUST NOT be larger than the actual number of octets in the
        // canonicalized message body".
        let length_error: Vec<Option<String>> = msg
            .dkim_headers
            .iter()
            .zip(&explicit_zero)
            .map(|(h, &zero)| {
                let l = h.header.l;
                let slot = match h.header.cb {
                    Canonicalization::Simple => 0,
                    Canonicalization::Relaxed => 1,
                };
                let have = body_len[slot]?;
                (!zero && l > have).then(|| {
                    format!(
                        "l= ({l}) is larger than the canonicalized body ({have} octets) (RFC 6376 §3.5)"
                    )
                })
            })
            .collect();
        let results = self.run(&msg, &HashMap::new());
        let mut verdicts = Vec::with_capacity(results.len() + msg.errors.len());
        // Signatures that did not parse come first in mail-auth's output; put every signature
        // back in header order by the position of its value in the message.
        let mut order: Vec<(usize, Verdictish)> = Vec::new();
        for err in msg.errors.iter() {
            if err
                .name
                .trim_ascii()
                .eq_ignore_ascii_case(b"DKIM-Signature")
            {
                order.push((
                    err.value.as_ptr() as usize,
                    Verdictish::Unparsed(err.value, err.header.clone()),
                ));
            }
        }
        for (i, h) in msg.dkim_headers.iter().enumerate() {
            order.push((
                h.value.as_ptr() as usize,
                Verdictish::Parsed(i, results[i].clone()),
            ));
        }
        // Every DKIM-Signature field gets a verdict, even one mail-auth's parser did not reach
        // (it stops at a header line that is neither a field nor a continuation).
        for (field, value, why) in signature_fields(header) {
            let seen = order.iter().any(|(pos, _)| field.contains(pos));
            if !seen {
                order.push((field.start, Verdictish::Unseen(value, why)));
            }
        }
        order.sort_by_key(|(pos, _)| *pos);
        for (n, (_, v)) in order.into_iter().enumerate() {
            let verdict = match v {
                Verdictish::Unparsed(value, err) => unparsed_verdict(n + 1, value, &err),
                Verdictish::Parsed(i, result) => {
                    let sig = &msg.dkim_headers[i].header;
                    let retried = self.retry_alternatives(&msg, i, &result);
                    let (result, key_index) = retried.unwrap_or((result, 0));
                    let mut verdict =
                        self.parsed_verdict(n + 1, &msg, i, &result, key_index, expiry[i], at);
                    verdict.l = if explicit_zero[i] {
                        Some(0)
                    } else {
                        (sig.l != 0).then_some(sig.l)
                    };
                    if let Some(why) = &length_error[i]
                        && verdict.result != SigResult::PermError
                    {
                        verdict.result = SigResult::PermError;
                        verdict.detail = why.clone();
                    }
                    verdict
                }
                Verdictish::Unseen(value, why) => SignatureVerdict {
                    index: n + 1,
                    result: SigResult::PermError,
                    detail: why,
                    ..unparsed_verdict(n + 1, value, &Error::ParseError)
                },
            };
            verdicts.push(verdict);
        }
        verdicts
    }

    /// Run mail-auth over the parsed signatures; one result per `msg.dkim_headers` entry.
    fn run(
        &self,
        msg: &AuthenticatedMessage<'_>,
        choice: &HashMap<Box<str>, usize>,
    ) -> Vec<DkimResult> {
        let answers = Answers {
            cache: &self.cache,
            choice: choice.clone(),
        };
        let params = Parameters::new(msg).with_txt_cache(&answers);
        // Every lookup is answered from memory, so one poll completes it.
        let outputs = poll_once(self.authenticator.verify_dkim(params)).unwrap_or_default();
        let mut results = vec![DkimResult::None; msg.dkim_headers.len()];
        for o in &outputs {
            let Some(sig) = o.signature() else { continue };
            if let Some(i) = msg
                .dkim_headers
                .iter()
                .position(|h| std::ptr::eq(&h.header, sig))
            {
                results[i] = o.result().clone();
            }
        }
        results
    }

    /// When a name has several key records (rotated keys) and the first did not verify, try the
    /// others. Returns the passing result and its key's index, or, when none passes, the most
    /// telling failure (a key of the right type that does not verify says more than a key of
    /// another type). None: nothing better than `first`.
    fn retry_alternatives(
        &self,
        msg: &AuthenticatedMessage<'_>,
        i: usize,
        first: &DkimResult,
    ) -> Option<(DkimResult, usize)> {
        if matches!(first, DkimResult::Pass) {
            return None;
        }
        let name = domain_key_name(&msg.dkim_headers[i].header);
        let alts = self.cache.keys.get(name.as_str())?;
        if alts.len() < 2 {
            return None;
        }
        // Only this signature is verified again with each other key, not the message's others:
        // a message with many signatures and many rotated keys stays linear in them.
        let mut alone = msg.clone();
        alone.dkim_headers = vec![msg.dkim_headers[i].clone()];
        let mut best: Option<(DkimResult, usize)> = None;
        for k in 1..alts.len() {
            let mut choice = HashMap::new();
            choice.insert(Box::<str>::from(name.as_str()), k);
            let result = self.run(&alone, &choice).swap_remove(0);
            if matches!(result, DkimResult::Pass) {
                return Some((result, k));
            }
            let current = best
                .as_ref()
                .map_or(failure_rank(first), |(r, _)| failure_rank(r));
            if failure_rank(&result) < current {
                best = Some((result, k));
            }
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn parsed_verdict(
        &self,
        index: usize,
        msg: &AuthenticatedMessage<'_>,
        i: usize,
        result: &DkimResult,
        key_index: usize,
        (x, t): (u64, u64),
        at: i64,
    ) -> SignatureVerdict {
        let raw = msg.dkim_headers[i].value;
        let sig = &msg.dkim_headers[i].header;
        let name = domain_key_name(sig);
        let key = self
            .cache
            .keys
            .get(name.as_str())
            .and_then(|alts| alts.get(key_index));
        // RFC 6376 §6.1 in order, the last step first: the cryptography (body hash, then the
        // header signature), overruled by the key (§6.1.2), overruled by the signature field
        // itself (§6.1.1) below.
        let (mut res, mut detail) = match key.and_then(|k| k.weak.as_ref().map(|w| (k, w))) {
            Some((k, weak)) => {
                let (outcome, why) = weak_outcome(msg, i, weak);
                match &k.refused {
                    Some(refusal) => (
                        SigResult::PermError,
                        format!("{refusal}; otherwise {} ({why})", outcome.as_str()),
                    ),
                    None if outcome == SigResult::Pass => (
                        outcome,
                        format!(
                            "weak rsa key ({} bits) accepted with --allow-weak-keys",
                            k.bits.unwrap_or(0)
                        ),
                    ),
                    None => (outcome, why.to_string()),
                }
            }
            None => map_result(result),
        };
        if let Some(refusal) = key_stage(key, sig, raw) {
            (res, detail) = refusal;
        }
        if let Some(tag) = missing_required_tag(raw) {
            res = SigResult::PermError;
            detail = format!("required tag {tag}= missing (RFC 6376 §3.5)");
        } else if let Some(tag) = [("d", &sig.d), ("s", &sig.s)]
            .into_iter()
            .find_map(|(tag, name)| (!is_domain_name(name)).then_some(tag))
        {
            res = SigResult::PermError;
            detail = format!("{tag}= is not a domain name (empty label) (RFC 6376 §3.5)");
        } else if let Some(q) = tag_value(raw, b"q")
            && !q
                .split(|&b| b == b':')
                .any(|m| m.trim_ascii().eq_ignore_ascii_case(b"dns/txt"))
        {
            res = SigResult::PermError;
            detail = format!(
                "q={} names no supported query method (dns/txt) (RFC 6376 §3.5)",
                String::from_utf8_lossy(q)
            );
        }
        if sig.a == Algorithm::RsaSha1 {
            // Verified all the same, so the outcome of the cryptography is still reported.
            if self.policy.accept_rsa_sha1 {
                if res == SigResult::Pass {
                    detail = "legacy rsa-sha1".into();
                }
            } else {
                detail = format!(
                    "rsa-sha1 is historic (RFC 8301 §3.1); otherwise {}",
                    res.as_str()
                );
                res = SigResult::PermError;
            }
        }
        if key_index > 0 && res == SigResult::Pass {
            detail = format!("{detail}; key #{} of {name}", key_index + 1);
        }
        if x != 0 {
            if x <= t {
                res = SigResult::PermError;
                detail = format!("x= ({x}) not after t= ({t})");
            } else if i64::try_from(x).is_ok_and(|x| x < at) && res != SigResult::PermError {
                // Expiry is part of validating the signature field (RFC 6376 §6.1.1), before the
                // key is fetched (§6.1.2): it outranks key results, but not a signature that is
                // unusable anyway (missing tags, rsa-sha1, weak key).
                detail = format!(
                    "x={x} before verification time {at}; otherwise {}{}",
                    res.as_str(),
                    if detail.is_empty() || detail == "ok" {
                        String::new()
                    } else {
                        format!(" ({detail})")
                    }
                );
                res = SigResult::Expired;
            }
        }
        SignatureVerdict {
            index,
            d: sig.d.clone(),
            s: sig.s.clone(),
            a: algorithm_name(sig.a).into(),
            c: format!("{}/{}", canon_name(sig.ch), canon_name(sig.cb)),
            l: (sig.l != 0).then_some(sig.l),
            result: res,
            detail,
            key_bits: key.and_then(|k| k.bits),
            key_sha256: key.map(|k| k.sha256.clone()).unwrap_or_default(),
        }
    }
}

enum Verdictish<'a> {
    Unparsed(&'a [u8], Error),
    Parsed(usize, DkimResult),
    /// A signature field mail-auth's parser never reached, with the reason.
    Unseen(&'a [u8], String),
}

/// A dot-separated name without empty labels (`a..b`, a leading or trailing dot); the label
/// characters are left to the key lookup, which also has to take internationalized names.
fn is_domain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|label| !label.is_empty() && !label.bytes().any(|b| b.is_ascii_whitespace()))
}

fn domain_key_name(sig: &mail_auth::dkim::Signature) -> String {
    key_name(&sig.s, &sig.d)
}

fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

fn canon_name(c: Canonicalization) -> &'static str {
    match c {
        Canonicalization::Simple => "simple",
        Canonicalization::Relaxed => "relaxed",
    }
}

/// How much a failure says about the signature, most telling first: the key had the right type
/// but the signature or body did not match, then a revoked key, then everything else.
fn failure_rank(result: &DkimResult) -> u8 {
    use mail_auth::common::crypto::CryptoError;
    match result {
        DkimResult::Pass => 0,
        DkimResult::Fail(Error::Crypto(
            CryptoError::FailedVerification | CryptoError::Library(_),
        ))
        | DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => 1,
        DkimResult::PermError(Error::Dkim(DkimError::RevokedPublicKey)) => 2,
        _ => 3,
    }
}

/// mail-auth's outcome in our vocabulary.
fn map_result(result: &DkimResult) -> (SigResult, String) {
    use mail_auth::common::crypto::CryptoError;
    match result {
        DkimResult::Pass => (SigResult::Pass, "ok".into()),
        DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            (SigResult::FailBody, "body hash mismatch".into())
        }
        DkimResult::Neutral(e) => (SigResult::PermError, e.to_string()),
        DkimResult::Fail(Error::Crypto(
            CryptoError::FailedVerification | CryptoError::Library(_),
        )) => (SigResult::FailSignature, "signature does not verify".into()),
        DkimResult::Fail(Error::Crypto(CryptoError::IncompatibleAlgorithms)) => (
            SigResult::PermError,
            "key type does not match the signature algorithm".into(),
        ),
        DkimResult::Fail(Error::Dkim(DkimError::FailedAuidMatch)) => (
            SigResult::PermError,
            "i= does not fit d= (not within it, or not equal under the key's t=s)".into(),
        ),
        DkimResult::Fail(e) => (SigResult::FailSignature, e.to_string()),
        DkimResult::PermError(Error::Dns(DnsError::RecordNotFound(_))) => {
            (SigResult::NoKey, "no key record".into())
        }
        DkimResult::PermError(Error::Dns(DnsError::InvalidRecordType)) => {
            (SigResult::NoKey, "record is not a DKIM key".into())
        }
        DkimResult::PermError(Error::Dkim(DkimError::RevokedPublicKey)) => {
            (SigResult::KeyRevoked, "empty p=".into())
        }
        DkimResult::PermError(e) => (SigResult::PermError, e.to_string()),
        DkimResult::TempError(e) => (SigResult::TempError, e.to_string()),
        DkimResult::None => (SigResult::PermError, "not verified".into()),
    }
}

fn unparsed_verdict(index: usize, value: &[u8], err: &Error) -> SignatureVerdict {
    let tags = crate::headers::dkim_tags(value);
    let text = |v: Option<&[u8]>| {
        v.map(|b| String::from_utf8_lossy(b).trim().to_string())
            .unwrap_or_default()
    };
    SignatureVerdict {
        index,
        d: text(tags.d),
        s: text(tags.s),
        a: text(tags.a),
        c: String::new(),
        l: None,
        result: SigResult::PermError,
        detail: format!("unusable signature: {err}"),
        key_bits: None,
        key_sha256: String::new(),
    }
}

/// The value of a DKIM-Signature field as its signature signed it (RFC 6376 §3.7): the `b=`
/// value and the whitespace around it treated as the empty string, and without the field's
/// closing line break.
fn without_b_value(value: &[u8]) -> Vec<u8> {
    let body_end = value
        .strip_suffix(b"\r\n")
        .or_else(|| value.strip_suffix(b"\n"))
        .map_or(value.len(), <[u8]>::len);
    let mut out = Vec::with_capacity(value.len());
    let mut at = 0;
    while at < body_end {
        let end = memchr::memchr(b';', &value[at..body_end]).map_or(body_end, |i| at + i);
        let part = &value[at..end];
        match memchr::memchr(b'=', part) {
            Some(eq) if part[..eq].trim_ascii() == b"b" => out.extend_from_slice(&part[..=eq]),
            _ => out.extend_from_slice(part),
        }
        if end < body_end {
            out.push(b';');
        }
        at = end + 1;
    }
    out
}

/// The verdict on signature `i` under a weak RSA key (RFC 6376 §6.1.3 with [`weak_rsa`] for the
/// cryptography): the body hash first, then the signature over the signed header fields.
fn weak_outcome(
    msg: &AuthenticatedMessage<'_>,
    i: usize,
    key: &weak_rsa::WeakKey,
) -> (SigResult, &'static str) {
    let field = &msg.dkim_headers[i];
    let sig = &field.header;
    if !matches!(sig.a, Algorithm::RsaSha256 | Algorithm::RsaSha1) {
        return (
            SigResult::PermError,
            "key type does not match the signature algorithm",
        );
    }
    let ha = HashAlgorithm::from(sig.a);
    let body_matches = msg
        .body_hashes
        .iter()
        .find(|(c, a, l, _)| *c == sig.cb && *a == ha && *l == sig.l)
        .is_some_and(|entry| entry.3 == sig.bh);
    if !body_matches {
        return (SigResult::FailBody, "body hash mismatch");
    }
    let unsigned = without_b_value(field.value);
    let mut signed = Vec::new();
    sig.ch.canonicalize_headers(
        msg.signed_headers(&sig.h, field.name, &unsigned),
        &mut signed,
    );
    if key.verifies(&hash_of(ha, &signed), &sig.b) {
        (SigResult::Pass, "ok")
    } else {
        (SigResult::FailSignature, "signature does not verify")
    }
}

/// The first tag RFC 6376 §3.5 requires that the signature lacks (`v a b bh d h s`), if any.
fn missing_required_tag(raw: &[u8]) -> Option<&'static str> {
    const REQUIRED: [&str; 7] = ["v", "a", "b", "bh", "d", "h", "s"];
    REQUIRED
        .into_iter()
        .find(|t| tag_value(raw, t.as_bytes()).is_none())
}

/// Hash algorithms are re-exported for the canonicalization tests.
pub fn hash_of(ha: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    ha.hash(data).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message signed here, relaxed/relaxed, with `key` (any size: the `rsa` crate signs
    /// what aws-lc would not). `tags` go before `b=`; `tamper` changes the message afterwards.
    fn signed_message(
        key: &rsa::RsaPrivateKey,
        tags: &str,
        tamper: Option<(&str, &str)>,
    ) -> Vec<u8> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let headers = [
            ("From", "Sender <a@example.com>"),
            ("To", "trap@trap.example"),
            ("Subject", "old mail"),
        ];
        let body = "Hello from 2006.\r\n";
        let bh = b64.encode(hash_of(HashAlgorithm::Sha256, body.as_bytes()));
        let value = format!(
            "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel; h=from:to:subject; bh={bh};{tags} b="
        );
        let mut signed = Vec::new();
        for (name, v) in headers {
            signed.extend_from_slice(format!("{}:{v}\r\n", name.to_ascii_lowercase()).as_bytes());
        }
        signed.extend_from_slice(format!("dkim-signature:{value}").as_bytes());
        let digest = hash_of(HashAlgorithm::Sha256, &signed);
        let scheme = rsa::Pkcs1v15Sign::new_unprefixed();
        let mut info = vec![
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ];
        info.extend_from_slice(&digest);
        let sig = key.sign(scheme, &info).expect("sign");
        let mut msg = format!("DKIM-Signature: {value}{}\r\n", b64.encode(sig));
        for (name, v) in headers {
            msg.push_str(&format!("{name}: {v}\r\n"));
        }
        msg.push_str("\r\n");
        msg.push_str(body);
        if let Some((from, to)) = tamper {
            msg = msg.replace(from, to);
        }
        msg.into_bytes()
    }

    /// The public key of `key` as a `p=` value (SubjectPublicKeyInfo, base64).
    fn p_value(key: &rsa::RsaPrivateKey) -> String {
        use base64::Engine;
        use rsa::pkcs8::EncodePublicKey;
        let der = rsa::RsaPublicKey::from(key).to_public_key_der().unwrap();
        base64::engine::general_purpose::STANDARD.encode(der.as_bytes())
    }

    /// The verdict on the one signature of `msg` with `record` (or no record) at
    /// sel._domainkey.example.com.
    fn verdict(record: Option<&str>, msg: &[u8], allow_weak: bool) -> (SigResult, String) {
        let mut store = KeyStore::new();
        if let Some(r) = record {
            store.insert("sel._domainkey.example.com", r.to_string(), "test".into());
        }
        let policy = Policy {
            min_rsa_bits: if allow_weak { 0 } else { 1024 },
            ..Policy::default()
        };
        let v = Verifier::new(&store, policy).unwrap();
        let verdicts = v.verify(msg, 1_700_000_000);
        assert_eq!(verdicts.len(), 1);
        (verdicts[0].result, verdicts[0].detail.clone())
    }

    fn test_key(bits: usize) -> rsa::RsaPrivateKey {
        rsa::RsaPrivateKey::new(&mut weak_rsa::tests::TestRng(bits as u64), bits).unwrap()
    }

    #[test]
    fn signatures_under_weak_keys_really_verify() {
        let key = test_key(512);
        let record = format!("v=DKIM1; k=rsa; p={}", p_value(&key));
        let good = signed_message(&key, "", None);
        let forged = signed_message(&key, "", Some(("Subject: old mail", "Subject: new mail")));
        let (r, d) = verdict(Some(&record), &good, true);
        assert_eq!((r, d.contains("512 bits")), (SigResult::Pass, true), "{d}");
        assert_eq!(
            verdict(Some(&record), &forged, true).0,
            SigResult::FailSignature
        );
        let (r, d) = verdict(Some(&record), &good, false);
        assert_eq!(r, SigResult::PermError);
        assert!(
            d.contains("RFC 8301") && d.contains("otherwise pass"),
            "{d}"
        );
        let (r, d) = verdict(Some(&record), &forged, false);
        assert_eq!(r, SigResult::PermError);
        assert!(d.contains("otherwise fail-signature"), "{d}");
        // Under 384 bits nothing is verified.
        let tiny = test_key(256);
        let tiny_record = format!("k=rsa; p={}", p_value(&tiny));
        let (r, d) = verdict(Some(&tiny_record), &good, true);
        assert_eq!(r, SigResult::PermError, "{d}");
    }

    #[test]
    fn the_key_is_judged_before_the_body_hash() {
        // RFC 6376 §6.1: with the body changed too, a missing, revoked or broken key decides.
        let key = test_key(1024);
        let body_changed = signed_message(&key, "", Some(("Hello from 2006.", "Hello from 2024.")));
        let good_record = format!("v=DKIM1; k=rsa; p={}", p_value(&key));
        assert_eq!(
            verdict(Some(&good_record), &body_changed, false).0,
            SigResult::FailBody
        );
        assert_eq!(verdict(None, &body_changed, false).0, SigResult::NoKey);
        assert_eq!(
            verdict(Some("v=DKIM1; k=rsa; p="), &body_changed, false).0,
            SigResult::KeyRevoked
        );
        assert_eq!(
            verdict(Some("v=DKIM1; k=rsa; p=bm90IGEga2V5"), &body_changed, false).0,
            SigResult::PermError
        );
    }

    #[test]
    fn recorded_lookup_failures_are_temperror() {
        let key = test_key(1024);
        let msg = signed_message(&key, "", None);
        for (line, says) in [
            ("sel._domainkey.example.com SERVFAIL", "SERVFAIL"),
            ("sel._domainkey.example.com TIMEOUT", "TIMEOUT"),
        ] {
            let mut store = KeyStore::new();
            store.load_str(line, "archive");
            let v = Verifier::new(&store, Policy::default()).unwrap();
            let verdicts = v.verify(&msg, 1_700_000_000);
            assert_eq!(verdicts[0].result, SigResult::TempError, "{line}");
            assert!(verdicts[0].detail.contains(says), "{}", verdicts[0].detail);
        }
    }

    #[test]
    fn key_record_and_signature_tags_are_checked() {
        let key = test_key(1024);
        let p = p_value(&key);
        let plain = signed_message(&key, "", None);
        let cases: [(String, &[u8], SigResult, &str); 10] = [
            (
                format!("v=DKIM1; k=rsa; p={p}"),
                &plain,
                SigResult::Pass,
                "",
            ),
            (
                format!("v=DKIM1; h=sha1; k=rsa; p={p}"),
                &plain,
                SigResult::PermError,
                "h=sha1",
            ),
            (
                format!("v=DKIM1; h=sha1:sha256; k=rsa; p={p}"),
                &plain,
                SigResult::Pass,
                "",
            ),
            (
                format!("v=DKIM1; s=chat; k=rsa; p={p}"),
                &plain,
                SigResult::PermError,
                "s=chat",
            ),
            (
                format!("v=DKIM1; s=email:chat; k=rsa; p={p}"),
                &plain,
                SigResult::Pass,
                "",
            ),
            (
                format!("v=DKIM1; s=*; k=rsa; p={p}"),
                &plain,
                SigResult::Pass,
                "",
            ),
            (
                format!("v=DKIM2; k=rsa; p={p}"),
                &plain,
                SigResult::PermError,
                "record",
            ),
            (format!("k=rsa; p={p}"), &plain, SigResult::Pass, ""),
            (
                format!("v=DKIM1; t=y:s; k=rsa; p={p}"),
                &plain,
                SigResult::Pass,
                "",
            ),
            (
                format!("v=DKIM1; k=rsa; p={p}"),
                &plain,
                SigResult::Pass,
                "",
            ),
        ];
        for (record, msg, want, says) in &cases {
            let (r, d) = verdict(Some(record), msg, false);
            assert_eq!(r, *want, "{record}: {d}");
            assert!(d.contains(says), "{record}: {d}");
        }
        // t=s: i= must be in d= itself, not a subdomain.
        let strict = format!("v=DKIM1; t=s; k=rsa; p={p}");
        let sub = signed_message(&key, " i=@mail.example.com;", None);
        let same = signed_message(&key, " i=@example.com;", None);
        assert_eq!(verdict(Some(&strict), &sub, false).0, SigResult::PermError);
        assert_eq!(verdict(Some(&strict), &same, false).0, SigResult::Pass);
        // q= must name dns/txt.
        let http = signed_message(&key, " q=http;", None);
        let dns = signed_message(&key, " q=dns/txt;", None);
        let (r, d) = verdict(Some(&cases[0].0), &http, false);
        assert_eq!(r, SigResult::PermError, "{d}");
        assert!(d.contains("q=http"), "{d}");
        assert_eq!(verdict(Some(&cases[0].0), &dns, false).0, SigResult::Pass);
    }
}
