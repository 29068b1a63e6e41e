//! Signing keys and DKIM signing.
//!
//! Takes a key kind (or a `keys.private` file to read); gives [`GenKey`]s — the private key,
//! its DER for `keys.private`, the TXT record published for it — and [`sign`], which signs a
//! CRLF message with mail-auth's canonicalization and gives the DKIM-Signature field and its
//! `l=`. RSA keys are made and used through aws-lc-sys, Ed25519 keys through mail-auth.

use std::path::Path;

use anyhow::{Context, bail};
use base64::Engine as _;
use mail_auth::common::crypto::Algorithm;
use mail_auth::common::crypto::{Ed25519Key, HashAlgorithm, SigningKey};
use mail_auth::common::headers::{HeaderStream, Writable};
use mail_auth::dkim::{Canonicalization, Signature};
use rayon::prelude::*;

/// The kinds of signing key the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa1024,
    Rsa2048,
    Ed25519,
}

impl KeyKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            KeyKind::Rsa1024 => "rsa-1024",
            KeyKind::Rsa2048 => "rsa-2048",
            KeyKind::Ed25519 => "ed25519",
        }
    }
    pub fn parse(s: &str) -> Option<KeyKind> {
        [KeyKind::Rsa1024, KeyKind::Rsa2048, KeyKind::Ed25519]
            .into_iter()
            .find(|k| k.name() == s)
    }
}

/// The keys made per run: RSA keygen is slow, so a few keys are shared by all domains.
const KEY_KINDS: [KeyKind; 8] = [
    KeyKind::Rsa1024,
    KeyKind::Rsa2048,
    KeyKind::Ed25519,
    KeyKind::Rsa1024,
    KeyKind::Rsa2048,
    KeyKind::Ed25519,
    KeyKind::Rsa2048,
    KeyKind::Rsa1024,
];

/// An RSA private key held by aws-lc (RSA objects are safe for concurrent private-key use).
struct RsaKey(*mut aws_lc_sys::RSA);

// SAFETY: aws-lc RSA objects may be used from several threads at once for signing (blinding
// and Montgomery caches are locked internally); the pointer is freed only in Drop.
unsafe impl Send for RsaKey {}
unsafe impl Sync for RsaKey {}

impl Drop for RsaKey {
    fn drop(&mut self) {
        // SAFETY: the pointer came from RSA_new / d2i_RSAPrivateKey and is freed once.
        unsafe { aws_lc_sys::RSA_free(self.0) }
    }
}

impl RsaKey {
    fn generate(bits: i32) -> anyhow::Result<RsaKey> {
        // SAFETY: plain aws-lc calls on objects created here; every failure path frees them.
        unsafe {
            let rsa = aws_lc_sys::RSA_new();
            let e = aws_lc_sys::BN_new();
            if rsa.is_null() || e.is_null() || aws_lc_sys::BN_set_u64(e, 65537) != 1 {
                bail!("aws-lc: out of memory");
            }
            let ok = aws_lc_sys::RSA_generate_key_ex(rsa, bits, e, std::ptr::null_mut());
            aws_lc_sys::BN_free(e);
            if ok != 1 {
                aws_lc_sys::RSA_free(rsa);
                bail!("aws-lc: RSA-{bits} key generation failed");
            }
            Ok(RsaKey(rsa))
        }
    }

    fn from_pkcs1(der: &[u8]) -> anyhow::Result<RsaKey> {
        let mut p = der.as_ptr();
        // SAFETY: p points into `der`, which outlives the call; the length bounds the read.
        let rsa =
            unsafe { aws_lc_sys::d2i_RSAPrivateKey(std::ptr::null_mut(), &mut p, der.len() as _) };
        if rsa.is_null() {
            bail!("not an RSA private key (PKCS#1 DER)");
        }
        Ok(RsaKey(rsa))
    }

    fn der(&self, public: bool) -> Vec<u8> {
        let mut p: *mut u8 = std::ptr::null_mut();
        // SAFETY: with *p null aws-lc allocates the output, which is copied and freed here.
        unsafe {
            let n = if public {
                aws_lc_sys::i2d_RSA_PUBKEY(self.0, &mut p)
            } else {
                aws_lc_sys::i2d_RSAPrivateKey(self.0, &mut p)
            };
            if n <= 0 || p.is_null() {
                return Vec::new();
            }
            let v = std::slice::from_raw_parts(p, n as usize).to_vec();
            aws_lc_sys::OPENSSL_free(p.cast());
            v
        }
    }

    fn bits(&self) -> u32 {
        // SAFETY: a valid key.
        unsafe { aws_lc_sys::RSA_bits(self.0) }
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `data`.
    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let digest = HashAlgorithm::Sha256.hash(data);
        let digest = digest.as_ref();
        // SAFETY: a valid key; `out` has RSA_size bytes, as RSA_sign requires.
        unsafe {
            let mut out = vec![0u8; aws_lc_sys::RSA_size(self.0) as usize];
            let mut len: std::os::raw::c_uint = 0;
            let ok = aws_lc_sys::RSA_sign(
                aws_lc_sys::NID_sha256,
                digest.as_ptr(),
                digest.len(),
                out.as_mut_ptr(),
                &mut len,
                self.0,
            );
            assert_eq!(ok, 1, "aws-lc RSA_sign failed");
            out.truncate(len as usize);
            out
        }
    }
}

enum Signer {
    Rsa(RsaKey),
    Ed25519(Ed25519Key),
}

pub(super) struct GenKey {
    pub(super) id: String,
    pub(super) kind: KeyKind,
    pub(super) private_der: Vec<u8>,
    /// The TXT value published for it.
    pub(super) record: String,
    signer: Signer,
}

impl GenKey {
    pub(super) fn build(
        id: String,
        kind: KeyKind,
        private_der: Option<Vec<u8>>,
    ) -> anyhow::Result<GenKey> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        match kind {
            KeyKind::Ed25519 => {
                let der = match private_der {
                    Some(d) => d,
                    None => Ed25519Key::generate_pkcs8()
                        .map_err(|e| anyhow::anyhow!("ed25519 key generation: {e}"))?,
                };
                let key = Ed25519Key::from_pkcs8_der(&der)
                    .map_err(|e| anyhow::anyhow!("key {id}: {e}"))?;
                Ok(GenKey {
                    record: format!("v=DKIM1; k=ed25519; p={}", b64(&key.public_key())),
                    id,
                    kind,
                    private_der: der,
                    signer: Signer::Ed25519(key),
                })
            }
            KeyKind::Rsa1024 | KeyKind::Rsa2048 => {
                let bits = if kind == KeyKind::Rsa1024 { 1024 } else { 2048 };
                let key = match private_der {
                    Some(d) => RsaKey::from_pkcs1(&d).with_context(|| format!("key {id}"))?,
                    None => RsaKey::generate(bits)?,
                };
                if key.bits() != bits as u32 {
                    bail!("key {id}: {} bits, expected {bits}", key.bits());
                }
                Ok(GenKey {
                    record: format!("v=DKIM1; k=rsa; p={}", b64(&key.der(true))),
                    private_der: key.der(false),
                    id,
                    kind,
                    signer: Signer::Rsa(key),
                })
            }
        }
    }

    pub(super) fn algorithm(&self) -> Algorithm {
        match self.kind {
            KeyKind::Ed25519 => Algorithm::Ed25519Sha256,
            _ => Algorithm::RsaSha256,
        }
    }

    pub(super) fn revoked_record(&self) -> String {
        match self.kind {
            KeyKind::Ed25519 => "v=DKIM1; k=ed25519; p=".into(),
            _ => "v=DKIM1; k=rsa; p=".into(),
        }
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(k) => k.sign(data),
            Signer::Ed25519(k) => k.sign(data).expect("ed25519 signing cannot fail"),
        }
    }
}

pub(super) fn make_keys(
    keys_from: Option<&Path>,
    only: Option<KeyKind>,
) -> anyhow::Result<Vec<GenKey>> {
    if let Some(dir) = keys_from {
        let path = dir.join("keys.private");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(id), Some(kind), Some(der)) = (f.first(), f.get(1), f.get(2)) else {
                bail!("{}:{}: expected `id kind base64`", path.display(), n + 1);
            };
            let kind = KeyKind::parse(kind)
                .with_context(|| format!("{}:{}: unknown key kind", path.display(), n + 1))?;
            let der = base64::engine::general_purpose::STANDARD
                .decode(der)
                .with_context(|| format!("{}:{}: bad base64", path.display(), n + 1))?;
            keys.push(GenKey::build(id.to_string(), kind, Some(der))?);
        }
        if keys.is_empty() {
            bail!("{}: no keys", path.display());
        }
        return Ok(keys);
    }
    KEY_KINDS
        .par_iter()
        .enumerate()
        .map(|(i, &kind)| GenKey::build(format!("k{}", i + 1), only.unwrap_or(kind), None))
        .collect()
}

pub(super) const CANONS: [(Canonicalization, Canonicalization); 3] = [
    (Canonicalization::Relaxed, Canonicalization::Relaxed),
    (Canonicalization::Simple, Canonicalization::Simple),
    (Canonicalization::Relaxed, Canonicalization::Simple),
];

pub(super) fn canon_name(c: Canonicalization) -> &'static str {
    match c {
        Canonicalization::Relaxed => "relaxed",
        Canonicalization::Simple => "simple",
    }
}

/// The header fields of a well-formed CRLF message, for mail-auth's canonicalization: the name,
/// and the value from after the colon through the CRLF that ends the field (folds included).
struct Fields<'x> {
    msg: &'x [u8],
    pos: usize,
}

impl<'x> HeaderStream<'x> for Fields<'x> {
    fn next_header(&mut self) -> Option<(&'x [u8], &'x [u8])> {
        let rest = &self.msg[self.pos..];
        if rest.is_empty() || rest.starts_with(b"\r\n") {
            return None;
        }
        let colon = memchr::memchr(b':', rest)?;
        let mut end = 0;
        loop {
            end += memchr::memchr(b'\n', &rest[end..])? + 1;
            if !matches!(rest.get(end), Some(b' ' | b'\t')) {
                break;
            }
        }
        self.pos += end;
        Some((&rest[..colon], &rest[colon + 1..end]))
    }

    fn body(&mut self) -> &'x [u8] {
        let at = memchr::memmem::find(self.msg, b"\r\n\r\n").map_or(self.msg.len(), |i| i + 4);
        &self.msg[at..]
    }
}

/// Sign `msg` (CRLF wire form) and return the DKIM-Signature field (with its CRLF) and `l=`.
#[allow(clippy::too_many_arguments)]
pub(super) fn sign(
    key: &GenKey,
    d: &str,
    s: &str,
    headers: &[&str],
    (ch, cb): (Canonicalization, Canonicalization),
    with_l: bool,
    t: u64,
    msg: &[u8],
) -> (Vec<u8>, Option<u64>) {
    let template = Signature {
        v: 1,
        a: key.algorithm(),
        d: d.into(),
        s: s.into(),
        h: headers.iter().map(|h| h.to_string()).collect(),
        ch,
        cb,
        ..Default::default()
    };
    let (_, canonical_headers, signed_headers, canonical_body) =
        template.canonicalize(Fields { msg, pos: 0 });
    let mut body = Vec::new();
    canonical_body.write(&mut body);
    let mut sig = template;
    sig.bh = HashAlgorithm::Sha256.hash(&body[..]).as_ref().to_vec();
    sig.t = t;
    sig.h = signed_headers;
    // l= counts canonical octets (RFC 6376 §3.5). The whole body is signed.
    let l = with_l.then_some(body.len() as u64);
    sig.l = l.unwrap_or(0);
    let mut data = Vec::new();
    canonical_headers.write(&mut data);
    sig.write(&mut data, false);
    sig.b = key.sign(&data);
    let mut field = Vec::new();
    sig.write(&mut field, true);
    (field, l)
}
