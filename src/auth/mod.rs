//! Stage 4, auth: DKIM verification of every signature, offline, with the mail-auth crate.
//!
//! Takes one message as stored (mbox quoting and LF line ends allowed), the keys of a
//! [`keys::KeyStore`] and a verification time, and gives one [`SignatureVerdict`] per
//! DKIM-Signature, in header order, with a result from a fixed vocabulary and a reason.
//!
//! How the crate is driven (facts checked in its source, mail-auth 0.13.3):
//! - Every key lookup is answered from our store (an unknown name is NXDOMAIN), so the verify
//!   future completes on its first poll and no runtime or network is involved.
//! - The signature's `x=` is cleared before verifying and expiry is judged here against the
//!   verification time (receipt time by default), so archived mail is not failed for the checker's
//!   clock, and an expired signature still reports its body-hash and signature outcome.
//! - Body hashes are computed here ([`canon`]): `l=` counts canonical octets (RFC 6376 §3.5) and
//!   relaxed canonicalization drops trailing whitespace-only lines (§3.4.4).
//! - The message is verified as it was on the wire: mboxrd `>From ` quoting removed, bare LF
//!   turned into CRLF (simple header canonicalization hashes the raw bytes).

pub mod canon;
pub mod dns;
pub mod keys;
pub mod results;
pub mod weak_rsa;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use mail_auth::common::crypto::{Algorithm, HashAlgorithm};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Canonicalization, DkimError};
use mail_auth::{
    AuthenticatedMessage, DkimResult, DnsError, Error, MessageAuthenticator, Parameters,
    ResolverCache, Txt,
};

use canon::BodyCanon;
use keys::KeyStore;

/// The result of verifying one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SigResult {
    Pass,
    /// The body hash does not match: the body changed after signing.
    FailBody,
    /// The body hash matches but the signature does not verify: a signed header changed.
    FailSignature,
    /// No key record at the selector.
    NoKey,
    /// The key record has an empty `p=`.
    KeyRevoked,
    /// `x=` is before the verification time.
    Expired,
    /// The signature or key cannot be used (syntax, algorithm, key too small...).
    PermError,
    /// A key lookup failed for a transient reason (DNS timeout).
    TempError,
}

impl SigResult {
    pub const ALL: [SigResult; 8] = [
        SigResult::Pass,
        SigResult::FailBody,
        SigResult::FailSignature,
        SigResult::NoKey,
        SigResult::KeyRevoked,
        SigResult::Expired,
        SigResult::PermError,
        SigResult::TempError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SigResult::Pass => "pass",
            SigResult::FailBody => "fail-body",
            SigResult::FailSignature => "fail-signature",
            SigResult::NoKey => "no-key",
            SigResult::KeyRevoked => "key-revoked",
            SigResult::Expired => "expired",
            SigResult::PermError => "permerror",
            SigResult::TempError => "temperror",
        }
    }

    pub fn index(self) -> usize {
        SigResult::ALL.iter().position(|&r| r == self).unwrap_or(0)
    }
}

/// The verdict on one DKIM-Signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureVerdict {
    /// Position among the message's DKIM-Signature fields, 1 = topmost.
    pub index: usize,
    pub d: String,
    pub s: String,
    pub a: String,
    pub c: String,
    /// The `l=` body length, if any.
    pub l: Option<u64>,
    pub result: SigResult,
    /// Why, in a few words (`ok`, `legacy rsa-sha1`, `key too small: 512 bits`, ...).
    pub detail: String,
    /// Size of the key that was used, when one was found.
    pub key_bits: Option<usize>,
}

/// A message's DKIM verdict: a signature's result (`pass` when any passes, else the first
/// signature's), or `none` for an unsigned message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageVerdict {
    Signature(SigResult),
    None,
}

impl MessageVerdict {
    pub const COUNT: usize = SigResult::ALL.len() + 1;

    pub fn index(self) -> usize {
        match self {
            MessageVerdict::Signature(r) => r.index(),
            MessageVerdict::None => SigResult::ALL.len(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageVerdict::Signature(r) => r.as_str(),
            MessageVerdict::None => "none",
        }
    }
}

/// When signatures are judged (for `x=` expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyAt {
    /// The message's receipt time (falls back to now when unknown).
    Receipt,
    /// The wall clock of the run.
    Now,
    /// A fixed instant, Unix seconds.
    Fixed(i64),
}

impl VerifyAt {
    /// As `--verify-at` takes it: `receipt`, `now`, or an RFC 3339 instant.
    pub fn as_text(self) -> String {
        match self {
            VerifyAt::Receipt => "receipt".into(),
            VerifyAt::Now => "now".into(),
            VerifyAt::Fixed(t) => crate::headers::date::format_rfc3339(t),
        }
    }
}

/// Verification policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub verify_at: VerifyAt,
    /// RSA keys smaller than this are `permerror` (RFC 8301 §3.2: at least 1024).
    pub min_rsa_bits: usize,
    /// Count verified rsa-sha1 signatures as `pass` (marked legacy) instead of `permerror`
    /// (RFC 8301 §3.1 makes them historic: "permanently failed evaluation").
    pub accept_rsa_sha1: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            verify_at: VerifyAt::Receipt,
            min_rsa_bits: 1024,
            accept_rsa_sha1: false,
        }
    }
}

/// One key record, parsed once for all messages.
struct Key {
    /// What mail-auth is given for the name.
    txt: Txt,
    /// What the record's tags allow (RFC 6376 §3.6.1; mail-auth leaves these out).
    tags: RecordTags,
    bits: Option<usize>,
    /// Why the record cannot be used, when it cannot (shown as the verdict's detail).
    refused: Option<String>,
    /// `p=` is empty: the key was revoked.
    revoked: bool,
    /// An RSA key of 384–1023 bits, which aws-lc refuses: checked by [`weak_rsa`] instead,
    /// its verdict counted under `--allow-weak-keys` and reported beside the refusal otherwise.
    weak: Option<weak_rsa::WeakKey>,
}

/// Parsed keys by DNS name (lowercase, trailing dot), in store order.
struct KeyCache {
    keys: HashMap<Box<str>, Vec<Key>>,
}

impl KeyCache {
    fn build(store: &KeyStore, policy: &Policy) -> KeyCache {
        let mut keys: HashMap<Box<str>, Vec<Key>> = HashMap::new();
        for (name, records) in store.iter() {
            let parsed = records
                .iter()
                .map(|r| parse_key(r.value.as_bytes(), policy))
                .collect();
            keys.insert(name.into(), parsed);
        }
        // Lookups that failed when the archive was made: temperror, as they were then.
        for (name, failure) in store.failures() {
            if matches!(store.lookup(name), keys::Lookup::Failed(_)) {
                let why = format!("{} recorded in the key archive", failure.as_str());
                keys.insert(name.into(), vec![Key::lookup_failed(why)]);
            }
        }
        KeyCache { keys }
    }
}

fn parse_key(value: &[u8], policy: &Policy) -> Key {
    let is_ed25519 = tag_value(value, b"k").is_some_and(|k| k.eq_ignore_ascii_case(b"ed25519"));
    let record = RecordTags::read(value);
    match DomainKey::parse(value) {
        Ok(key) => {
            // Ed25519 keys are always 256 bits (RFC 8463); the crate reports no size for them.
            let bits = if is_ed25519 {
                256
            } else {
                key.p.public_key_bits()
            };
            // mail-auth takes any bytes as an RSA key and finds out when verifying, after the
            // body hash: a p= that is no RSA public key is refused here, as a key problem.
            if !is_ed25519
                && public_key_der(value)
                    .and_then(|der| weak_rsa::WeakKey::from_der(&der))
                    .is_none()
            {
                return Key {
                    txt: Txt::Error(Error::Dkim(DkimError::UnsupportedKeyType)),
                    tags: record,
                    bits: None,
                    refused: Some("unusable key record: p= is not an RSA public key".into()),
                    revoked: false,
                    weak: None,
                };
            }
            let small = !is_ed25519 && bits > 0 && bits <= weak_rsa::MAX_BITS;
            let weak = (small && bits >= weak_rsa::MIN_BITS)
                .then(|| public_key_der(value).and_then(|der| weak_rsa::WeakKey::from_der(&der)))
                .flatten();
            let refused = if small && weak.is_none() {
                Some(format!(
                    "rsa key too small: {bits} bits (under {} bits not verified)",
                    weak_rsa::MIN_BITS
                ))
            } else if !is_ed25519 && bits > 0 && bits < policy.min_rsa_bits {
                Some(format!(
                    "rsa key too small: {bits} bits (RFC 8301 needs 1024)"
                ))
            } else {
                None
            };
            // mail-auth never gets a small key: aws-lc cannot check it (the verdict is made
            // with `weak`), and it must not be mistaken for a failed signature.
            let txt = if small || refused.is_some() {
                Txt::Error(Error::Dkim(DkimError::UnsupportedKeyType))
            } else {
                Txt::DomainKey(Arc::new(key))
            };
            Key {
                txt,
                tags: record,
                bits: (bits > 0).then_some(bits),
                refused,
                revoked: false,
                weak,
            }
        }
        Err(e) => Key {
            txt: Txt::Error(e.clone()),
            tags: record,
            bits: None,
            revoked: matches!(e, Error::Dkim(DkimError::RevokedPublicKey)),
            refused: match e {
                Error::Dkim(DkimError::RevokedPublicKey) => None,
                e => Some(format!("unusable key record: {e}")),
            },
            weak: None,
        },
    }
}

impl Key {
    fn is_lookup_failure(&self) -> bool {
        matches!(self.txt, Txt::Error(Error::Dns(DnsError::Resolver(_))))
    }

    /// A lookup that failed (a timeout, SERVFAIL): `temperror` with `why`.
    fn lookup_failed(why: String) -> Key {
        Key {
            txt: Txt::Error(Error::Dns(DnsError::Resolver(why))),
            tags: RecordTags::default(),
            bits: None,
            refused: None,
            revoked: false,
            weak: None,
        }
    }
}

/// The DER bytes of a key record's `p=` (base64, whitespace allowed inside).
fn public_key_der(record: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let p: Vec<u8> = tag_value(record, b"p")?
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(p).ok()
}

/// What a key record's tags allow, read once when the key is loaded (RFC 6376 §3.6.1).
#[derive(Debug, Default)]
struct RecordTags {
    /// Why `v=`, `k=` or `s=` make the record unusable for mail signatures, if they do.
    unusable: Option<String>,
    /// `h=`: the hash algorithms the key may be used with, lower case (None: any).
    hashes: Option<Vec<Box<[u8]>>>,
    /// `t=s`: the signature's `i=` must be in `d=` itself, not a subdomain.
    same_domain: bool,
}

impl RecordTags {
    fn read(record: &[u8]) -> RecordTags {
        let list = |tag: &[u8]| {
            tag_value(record, tag).map(|v| {
                v.split(|&b| b == b':')
                    .map(|w| w.trim_ascii().to_ascii_lowercase().into_boxed_slice())
                    .collect::<Vec<_>>()
            })
        };
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let unusable = if let Some(v) = tag_value(record, b"v")
            && v != b"DKIM1"
        {
            Some(format!(
                "key record v={} is not DKIM1 (RFC 6376 §3.6.1)",
                text(v)
            ))
        } else if let Some(k) = tag_value(record, b"k")
            && !k.eq_ignore_ascii_case(b"rsa")
            && !k.eq_ignore_ascii_case(b"ed25519")
        {
            Some(format!("key record k={} is no known key type", text(k)))
        } else if let Some(services) = list(b"s")
            && !services.iter().any(|s| **s == *b"*" || **s == *b"email")
        {
            Some(format!(
                "key record s={} is not for email (RFC 6376 §3.6.1)",
                services
                    .iter()
                    .map(|s| text(s))
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        } else {
            None
        };
        RecordTags {
            unusable,
            hashes: list(b"h"),
            same_domain: list(b"t").is_some_and(|flags| flags.iter().any(|f| **f == *b"s")),
        }
    }
}

/// RFC 6376 §6.1.2: whether the key found for a signature can verify it, judged before any hash
/// is compared (§6.1.3) — a body hash under a key that cannot be used proves nothing. `None`:
/// the key is usable. `key` is None when the store has no record for the name.
fn key_stage(
    key: Option<&Key>,
    sig: &mail_auth::dkim::Signature,
    raw_sig: &[u8],
) -> Option<(SigResult, String)> {
    let Some(key) = key else {
        return Some((SigResult::NoKey, "no key record".into()));
    };
    if let Txt::Error(Error::Dns(DnsError::Resolver(why))) = &key.txt {
        return Some((SigResult::TempError, why.clone()));
    }
    if key.revoked {
        return Some((SigResult::KeyRevoked, "empty p=".into()));
    }
    if let Some(why) = &key.refused
        && key.weak.is_none()
    {
        return Some((SigResult::PermError, why.clone()));
    }
    if let Some(why) = &key.tags.unusable {
        return Some((SigResult::PermError, why.clone()));
    }
    let hash: &[u8] = match sig.a {
        Algorithm::RsaSha1 => b"sha1",
        _ => b"sha256",
    };
    if let Some(allowed) = &key.tags.hashes
        && !allowed.iter().any(|h| **h == *hash)
    {
        return Some((
            SigResult::PermError,
            format!(
                "key record h={} does not allow {} (RFC 6376 §3.6.1)",
                allowed
                    .iter()
                    .map(|h| String::from_utf8_lossy(h))
                    .collect::<Vec<_>>()
                    .join(":"),
                String::from_utf8_lossy(hash)
            ),
        ));
    }
    if key.tags.same_domain
        && let Some(i) = tag_value(raw_sig, b"i")
    {
        let domain = i.rsplit(|&b| b == b'@').next().unwrap_or(i);
        if !domain.eq_ignore_ascii_case(sig.d.as_bytes()) {
            return Some((
                SigResult::PermError,
                "i= is a subdomain of d= but the key's t=s asks for d= itself (RFC 6376 §3.6.1)"
                    .into(),
            ));
        }
    }
    None
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

/// The value of a `tag=` in a tag list (`k=rsa; p=...`), trimmed.
fn tag_value<'a>(list: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    list.split(|&b| b == b';').find_map(|part| {
        let eq = memchr::memchr(b'=', part)?;
        (part[..eq].trim_ascii() == tag).then(|| part[eq + 1..].trim_ascii())
    })
}

/// The TXT cache handed to mail-auth for one verification: always answers, choosing for each
/// name the key alternative in `choice` (index into the name's records), NXDOMAIN for names the
/// store does not have.
struct Answers<'k> {
    cache: &'k KeyCache,
    choice: HashMap<Box<str>, usize>,
}

impl ResolverCache<Box<str>, Txt> for Answers<'_> {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let found = self.cache.keys.get_key_value(name).and_then(|(key, alts)| {
            let i = self.choice.get::<str>(key.as_ref()).copied().unwrap_or(0);
            alts.get(i).map(|k| k.txt.clone())
        });
        Some(found.unwrap_or_else(nxdomain))
    }
    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

fn nxdomain() -> Txt {
    Txt::Error(Error::Dns(DnsError::RecordNotFound(
        mail_auth::hickory_resolver::proto::op::ResponseCode::NXDomain,
    )))
}

/// Poll a future once: with every lookup answered from memory it is ready at once. A future that
/// is not ready would mean a network lookup, which offline verification must never make.
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

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

/// The DNS name of a DKIM key, `selector._domainkey.domain.`, lowercased: the one spelling used
/// for lookups, key files and the lists of missing keys.
pub fn key_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}.")
        .to_ascii_lowercase()
        .replace("..", ".")
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
    }
}

/// The DKIM-Signature fields of a wire-form header block: each field's address range, its
/// value, and why a parser that stops at malformed lines may not reach it.
fn signature_fields(header: &[u8]) -> Vec<(std::ops::Range<usize>, &[u8], String)> {
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
fn header_block_len(stored: &[u8]) -> usize {
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

/// Hash algorithms are re-exported for the canonicalization tests.
pub fn hash_of(ha: HashAlgorithm, data: &[u8]) -> Vec<u8> {
    ha.hash(data).as_ref().to_vec()
}

/// The organizational domain of `domain` (RFC 7489 §3.2): its registrable domain under the
/// Public Suffix List (the `psl` crate's built-in copy), lowercased; the domain itself when the
/// list has no answer.
pub fn organizational_domain(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&d).map(str::to_string).unwrap_or(d)
}

/// Relaxed DKIM alignment (RFC 7489 §3.1.1): a passing signature's `d=` shares the organizational
/// domain of the From domain.
pub fn dkim_aligned(from_domain: &str, passing_domains: &[&str]) -> bool {
    if from_domain.is_empty() {
        return false;
    }
    let from = organizational_domain(from_domain);
    passing_domains
        .iter()
        .any(|d| organizational_domain(d) == from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains() {
        assert_eq!(organizational_domain("mail.Example.COM."), "example.com");
        assert_eq!(organizational_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(
            organizational_domain("mta2.firstmart-news.test"),
            "firstmart-news.test"
        );
        assert!(dkim_aligned("news.bestbuy.com", &["bestbuy.com"]));
        assert!(dkim_aligned("bestbuy.com", &["e.bestbuy.com"]));
        assert!(!dkim_aligned("bestbuy.com", &["bestbuy.co.uk"]));
        assert!(!dkim_aligned("", &["x.com"]));
    }

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

    #[test]
    fn rsa_keys_under_1024_bits_are_refused_unless_allowed() {
        // The 512-bit key dkimpy's tests serve for example._domainkey.canonical.com.
        let record = b"k=rsa; s=email;p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANmBe10IgY+u7h3enWTukkqtUD5PR52Tb/mPfjC0QJTocVBq6Za/PlzfV+Py92VaCak19F4WrbVTK5Gg5tW220MCAwEAAQ==";
        let strict = parse_key(record, &Policy::default());
        assert_eq!(strict.bits, Some(512));
        assert!(strict.refused.as_deref().unwrap_or("").contains("512 bits"));
        let lenient = parse_key(
            record,
            &Policy {
                min_rsa_bits: 0,
                ..Policy::default()
            },
        );
        assert!(lenient.refused.is_none());
        // Both keep the key for the weak-RSA check: its verdict counts only when allowed.
        assert!(lenient.weak.is_some() && strict.weak.is_some());
        let revoked = parse_key(b"v=DKIM1; k=rsa; p=", &Policy::default());
        assert!(
            revoked.refused.is_none(),
            "revoked is its own result, not a refusal"
        );
    }

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
