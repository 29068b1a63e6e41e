//! One DKIM key record, parsed once for all messages, and whether it may verify a signature.
//!
//! Takes a TXT value from the key store and the verification policy, and gives a [`Key`]: what
//! mail-auth is to be told for the name, the key size, what the record's tags allow (RFC 6376
//! §3.6.1), and why it cannot be used, if it cannot. [`key_stage`] then judges a signature's key
//! before any hash is compared (§6.1.2).

use std::sync::Arc;

use mail_auth::common::crypto::Algorithm;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::DkimError;
use mail_auth::{DnsError, Error, Txt};

use super::{Policy, SigResult, tag_value, weak_rsa};

/// One key record, parsed once for all messages.
pub(super) struct Key {
    /// What mail-auth is given for the name.
    pub(super) txt: Txt,
    /// What the record's tags allow (RFC 6376 §3.6.1; mail-auth leaves these out).
    tags: RecordTags,
    pub(super) bits: Option<usize>,
    /// Why the record cannot be used, when it cannot (shown as the verdict's detail).
    pub(super) refused: Option<String>,
    /// `p=` is empty: the key was revoked.
    revoked: bool,
    /// An RSA key of 384–1023 bits, which aws-lc refuses: checked by [`weak_rsa`] instead,
    /// its verdict counted under `--allow-weak-keys` and reported beside the refusal otherwise.
    pub(super) weak: Option<weak_rsa::WeakKey>,
    /// SHA-256 of the decoded `p=`, in hex: which key this is, for provenance (empty when
    /// `p=` is empty or not base64).
    pub(super) sha256: String,
}

pub(super) fn parse_key(value: &[u8], policy: &Policy) -> Key {
    let mut key = parse_key_record(value, policy);
    if let Some(der) = public_key_der(value).filter(|der| !der.is_empty()) {
        key.sha256 = sha256_hex(&der);
    }
    key
}

/// SHA-256 of `bytes` in lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut hex = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn parse_key_record(value: &[u8], policy: &Policy) -> Key {
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
                    sha256: String::new(),
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
                sha256: String::new(),
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
            sha256: String::new(),
        },
    }
}

impl Key {
    pub(super) fn is_lookup_failure(&self) -> bool {
        matches!(self.txt, Txt::Error(Error::Dns(DnsError::Resolver(_))))
    }

    /// A lookup that failed (a timeout, SERVFAIL): `temperror` with `why`.
    pub(super) fn lookup_failed(why: String) -> Key {
        Key {
            txt: Txt::Error(Error::Dns(DnsError::Resolver(why))),
            tags: RecordTags::default(),
            bits: None,
            refused: None,
            revoked: false,
            weak: None,
            sha256: String::new(),
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
pub(super) fn key_stage(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
