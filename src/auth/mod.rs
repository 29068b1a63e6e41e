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
//!
//! The parts: `key_record` parses each key record once and judges whether it may verify a
//! signature; `resolver` answers mail-auth's key lookups from those records; `verify` drives
//! mail-auth and turns its outcome into verdicts; `wire` gives the message as it was sent and
//! finds its DKIM-Signature fields; `align` gives organizational domains and DKIM alignment.

mod align;
pub mod canon;
pub mod dns;
mod key_record;
pub mod keys;
mod resolver;
pub mod results;
mod verify;
pub mod weak_rsa;
mod wire;

pub use align::{
    Suffixes, dkim_aligned, organizational_domain, push_organizational_domain, registrable_domain,
};
pub use verify::{AuthError, Verifier, hash_of};
pub use wire::wire_form;

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
    /// SHA-256 (hex) of the decoded `p=` of the key that was used, when one was found.
    pub key_sha256: String,
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

/// The DNS name of a DKIM key, `selector._domainkey.domain.`, lowercased: the one spelling used
/// for lookups, key files and the lists of missing keys.
pub fn key_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}.")
        .to_ascii_lowercase()
        .replace("..", ".")
}

/// The value of a `tag=` in a tag list (`k=rsa; p=...`), trimmed.
fn tag_value<'a>(list: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    list.split(|&b| b == b';').find_map(|part| {
        let eq = memchr::memchr(b'=', part)?;
        (part[..eq].trim_ascii() == tag).then(|| part[eq + 1..].trim_ascii())
    })
}
