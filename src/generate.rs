//! `mailcensus generate`: a synthetic spam-trap corpus, DKIM-signed, with the expected verdict of
//! every signature, so the verifier can be checked end to end on thousands of messages.
//!
//! **Writes** into the output directory:
//! - `corpus.mbox` — mboxrd (`^>*From ` body lines get one more `>`), entries
//!   `From <envelope> <asctime>` + message + one blank separator line; about 15% of the messages
//!   have CRLF line ends, the rest LF.
//! - `keys.zone` — the public keys as a DNS zone file (TXT values split into quoted strings of at
//!   most 255 characters; a revoked key has an empty `p=`; a missing selector has no record).
//! - `keys.private` — the private keys (`id kind base64-DER` lines; RSA as PKCS#1, Ed25519 as
//!   PKCS#8). `--keys-from DIR` reads `DIR/keys.private` instead of making new keys.
//! - `truth.csv` — one row per signature:
//!   `message_index,mbox_offset,message_id,index,d,s,a,c,l,expected,detail` (`message_index`
//!   counts from 1; `index` 1 = topmost DKIM-Signature; `l` is the value of `l=`, empty when
//!   absent; `expected` is `pass`, `fail-body`, `fail-signature`, `no-key` or `key-revoked`).
//! - `messages-truth.csv` — one row per message:
//!   `message_index,mbox_offset,message_id,from_domain,dkim_expected` (`pass` if any signature
//!   passes, else the first signature's expected result, else `none`).
//!
//! **Determinism.** Everything but the key material is a function of `--seed`: domains,
//! selectors, which selectors are revoked or missing, every header and body, the signing times
//! (`t=` in 2024; no `x=`, so expiry never applies) and what is broken after signing. Each
//! message has its own random stream (seed and message number), so messages are made in
//! parallel and the output does not depend on the thread count. Key generation cannot be seeded
//! with the crypto library used, so new keys are made on every run and written beside the
//! corpus; the truth is correct for the keys of that run. RSA PKCS#1 v1.5 and Ed25519 signatures
//! are deterministic, so `--keys-from` with the same seed gives a byte-identical corpus.
//!
//! **Signing.** mail-auth (the crate the verifier uses) canonicalizes the headers and body
//! (`Signature::canonicalize`) and writes the DKIM-Signature field (`Signature::write`); the
//! signing step is ours because mail-auth's signer takes `t=` from the wall clock and only
//! accepts RSA keys of 2048 bits or more (aws-lc-rs refuses smaller keys). RSA keys (1024 and
//! 2048 bits) are made and used through aws-lc-sys (`RSA_generate_key_ex`, `RSA_sign`, the
//! library already linked by aws-lc-rs); Ed25519 keys through mail-auth's `Ed25519Key`. `l=` is
//! the length of the *canonical* body (RFC 6376 §3.5), measured here: mail-auth's signer would
//! write the raw body length, which differs under relaxed canonicalization.
//!
//! **What is broken after signing** (a known share): the body (a tag inserted at its start:
//! `fail-body`), the Subject (a `[SPAM]` tag: `fail-signature`), a selector that the zone lacks
//! (`no-key`) or whose key is revoked (`key-revoked`). Some signatures with `l=` get a footer
//! appended after signing, beyond `l=`; they still pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine as _;
use mail_auth::common::crypto::Algorithm;
use mail_auth::common::crypto::{Ed25519Key, HashAlgorithm, SigningKey};
use mail_auth::common::headers::{HeaderStream, Writable};
use mail_auth::dkim::{Canonicalization, Signature};
use rayon::prelude::*;

/// Options of one `generate` run.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub messages: usize,
    pub seed: u64,
    pub out: PathBuf,
    /// Read the private keys from `DIR/keys.private` instead of making new ones.
    pub keys_from: Option<PathBuf>,
    /// Make every key of this kind (e.g. an RSA-2048-only corpus for benchmarks).
    pub only: Option<KeyKind>,
}

/// What a run wrote.
#[derive(Debug, Clone, Default)]
pub struct GenerateReport {
    pub messages: usize,
    pub signatures: usize,
    /// Signatures by expected result.
    pub expected: BTreeMap<&'static str, usize>,
    pub mbox_bytes: u64,
    pub key_seconds: f64,
    pub message_seconds: f64,
}

// ---------------------------------------------------------------------------------------------
// Random numbers: splitmix64, seeded per message.

struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// The kinds of signing key the generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa1024,
    Rsa2048,
    Ed25519,
}

impl KeyKind {
    fn name(self) -> &'static str {
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

struct GenKey {
    id: String,
    kind: KeyKind,
    private_der: Vec<u8>,
    /// The TXT value published for it.
    record: String,
    signer: Signer,
}

impl GenKey {
    fn build(id: String, kind: KeyKind, private_der: Option<Vec<u8>>) -> anyhow::Result<GenKey> {
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

    fn algorithm(&self) -> Algorithm {
        match self.kind {
            KeyKind::Ed25519 => Algorithm::Ed25519Sha256,
            _ => Algorithm::RsaSha256,
        }
    }

    fn revoked_record(&self) -> String {
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

fn make_keys(keys_from: Option<&Path>, only: Option<KeyKind>) -> anyhow::Result<Vec<GenKey>> {
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

// ---------------------------------------------------------------------------------------------
// Domains and selectors.

struct Domain {
    name: String,
    brand: String,
    /// Selectors with a usable key: (selector, key index).
    good: Vec<(String, usize)>,
    /// A selector whose record has an empty `p=`.
    revoked: (String, usize),
    /// A selector the zone does not have.
    missing: String,
}

const BRAND_WORDS: [&str; 24] = [
    "mega", "deal", "shop", "prime", "lucky", "smart", "health", "crypto", "royal", "golden",
    "fast", "best", "home", "trend", "super", "green", "city", "global", "star", "vita", "secure",
    "bright", "daily", "nova",
];
const BRAND_TAILS: [&str; 16] = [
    "mart", "offers", "pharma", "rewards", "wins", "loans", "store", "outlet", "club", "news",
    "direct", "savings", "gifts", "picks", "zone", "hub",
];
const TLDS: [&str; 10] = [
    "com", "net", "biz", "info", "shop", "top", "xyz", "online", "co.uk", "de",
];
const ESPS: [(&str, &str); 5] = [
    ("mta-relay.net", "Relay"),
    ("bulkpost-mail.com", "BulkPost"),
    ("sendwave-esp.net", "SendWave"),
    ("mailrocket.io", "MailRocket"),
    ("campaign-cloud.net", "CampaignCloud"),
];
const SELECTORS: [&str; 14] = [
    "s1",
    "s2",
    "k1",
    "default",
    "mail",
    "dkim",
    "selector1",
    "selector2",
    "m1",
    "smtp",
    "em",
    "scph0424",
    "mx",
    "key2024",
];
const OLD_SELECTORS: [&str; 4] = ["old2019", "s2018", "legacy", "dkim2020"];
const MISSING_SELECTORS: [&str; 4] = ["s2048", "mx2023", "rotated", "new1"];

fn make_domains(
    rng: &mut Rng,
    nkeys: usize,
    count: usize,
    start_key: usize,
    seen: &mut std::collections::BTreeSet<String>,
) -> Vec<Domain> {
    let mut out = Vec::new();
    let mut k = start_key;
    while out.len() < count {
        let w = rng.pick(&BRAND_WORDS);
        let t = rng.pick(&BRAND_TAILS);
        let name = format!(
            "{w}{}{t}.{}",
            if rng.chance(0.3) { "-" } else { "" },
            rng.pick(&TLDS)
        );
        if !seen.insert(name.clone()) {
            continue;
        }
        let brand = format!("{}{} {}", w[..1].to_uppercase(), &w[1..], capital(t));
        out.push(domain_with_selectors(rng, name, brand, nkeys, &mut k));
    }
    out
}

fn capital(s: &str) -> String {
    format!("{}{}", s[..1].to_uppercase(), &s[1..])
}

fn domain_with_selectors(
    rng: &mut Rng,
    name: String,
    brand: String,
    nkeys: usize,
    next_key: &mut usize,
) -> Domain {
    let mut sels: Vec<&str> = SELECTORS.to_vec();
    let mut good = Vec::new();
    for _ in 0..rng.range(1, 2) {
        let s = sels.remove(rng.below(sels.len()));
        good.push((s.to_string(), *next_key % nkeys));
        *next_key += 1;
    }
    Domain {
        name,
        brand,
        good,
        revoked: (rng.pick(&OLD_SELECTORS).to_string(), rng.below(nkeys)),
        missing: rng.pick(&MISSING_SELECTORS).to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Streams: campaigns, brand mail and noise.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    /// A spam campaign: a family of rotating sender domains, a few landing hosts, a few subject
    /// templates, senders in one or two networks.
    Spam,
    /// EchoSpoofing: VPS → attacker M365 tenant → the brand's gateway relay, which signs for the
    /// brand.
    Echo,
    /// The brand's own mail: its own tenant, the same relay.
    Legit,
    /// One-off mail: nothing shared but a pool of sender names and subject templates.
    Noise,
}

struct Tenant {
    guid: String,
    domain: String,
}

struct Stream {
    /// Truth campaign id; `-` for noise.
    id: String,
    kind: StreamKind,
    weight: usize,
    /// Indices into `World::brands` of the domains that send (and sign) this stream's mail.
    senders: Vec<usize>,
    landing: Vec<String>,
    subjects: Vec<String>,
    /// /24 networks of the first senders (`a.b.c`).
    nets: Vec<String>,
    tenants: Vec<Tenant>,
    /// The brand's gateway relay host (echo and legit).
    relay: String,
    /// The 2025 variant: the message leaves Microsoft from the high-risk pool (40.95.0.0/16)
    /// into another vendor's hygiene relay.
    hrdp: bool,
    /// First day (days since 2024-01-01) and length in days.
    start_day: i64,
    days: i64,
}

/// Brands impersonated in the EchoSpoofing waves (reserved `.example` names, no real domains).
const BIG_BRANDS: [(&str, &str); 6] = [
    ("bestbuy.example", "Best Buy"),
    ("nike.example", "Nike"),
    ("ibm.example", "IBM"),
    ("disney.example", "Disney"),
    ("coca-cola.example", "Coca-Cola"),
    ("contoso-shop.example", "Contoso"),
];
const BRAND_SUBJECTS: [&str; 6] = [
    "{brand} order {id} confirmation",
    "Your {brand} reward is waiting – ref {id}",
    "{brand} membership renewal invoice INV-{id}",
    "Action required: your {brand} account {id}",
    "{brand} gift card ${n} – claim by Friday",
    "Ihre {brand} Bestellung {id} wurde versandt",
];
const NEWSLETTER_SUBJECTS: [&str; 4] = [
    "{brand} weekly: new arrivals",
    "Your {brand} receipt",
    "{brand} news for {month}",
    "Members save {n}% this weekend at {brand}",
];
const LANDING_PREFIXES: [&str; 6] = ["secure", "go", "click", "l", "trk", "promo"];
const LANDING_TLDS: [&str; 6] = ["top", "xyz", "shop", "example", "test", "online"];
const VARIANTS: [&str; 7] = ["", "-mail", "-news", "-offers", "-info", "-alerts", "#"];
const TENANT_WORDS: [&str; 8] = [
    "fresh", "nova", "prime", "delta", "orbit", "lumen", "swift", "vector",
];

fn hex(rng: &mut Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from_digit(rng.below(16) as u32, 16).unwrap_or('0'))
        .collect()
}

fn guid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 4),
        hex(rng, 12)
    )
}

fn net24(rng: &mut Rng) -> String {
    let ip = public_ip(rng);
    ip.rsplit_once('.')
        .map_or(ip.clone(), |(n, _)| n.to_string())
}

fn landing_host(rng: &mut Rng) -> String {
    format!(
        "{}-{}.{}",
        rng.pick(&LANDING_PREFIXES),
        token(rng, 6).to_lowercase(),
        rng.pick(&LANDING_TLDS)
    )
}

fn all_subjects() -> Vec<&'static str> {
    SUBJECTS
        .iter()
        .chain(SUBJECTS_UTF8.iter())
        .chain(SUBJECTS_LATIN1.iter())
        .copied()
        .collect()
}

/// The campaigns, brand streams and noise of one corpus, and the domains they send from
/// (appended to `brands`).
fn make_streams(rng: &mut Rng, nkeys: usize, brands: &mut Vec<Domain>) -> Vec<Stream> {
    let mut streams = Vec::new();
    let mut taken: std::collections::BTreeSet<String> =
        brands.iter().map(|d| d.name.clone()).collect();
    let mut next_key = brands.len() * 2 + 11;
    let subjects = all_subjects();
    // Spam campaigns, each with its own family of sender domains.
    // Family bases are single words, so no family's name can be another family's variant.
    let families = make_domains(rng, nkeys, 8, next_key, &mut taken);
    next_key += 16;
    for (c, fam) in families.into_iter().enumerate() {
        let base = fam.name.split('.').next().unwrap_or("deals").to_string();
        let mut senders = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        for _ in 0..rng.range(2, 5) {
            let v = rng.pick(&VARIANTS);
            let v = if *v == "#" {
                rng.range(10, 99).to_string()
            } else {
                v.to_string()
            };
            let name = format!("{base}{v}.{}", rng.pick(&TLDS));
            if !used.insert(name.clone()) || !taken.insert(name.clone()) {
                continue;
            }
            brands.push(domain_with_selectors(
                rng,
                name,
                fam.brand.clone(),
                nkeys,
                &mut next_key,
            ));
            senders.push(brands.len() - 1);
        }
        let mut subj = Vec::new();
        for _ in 0..rng.range(2, 3) {
            subj.push(rng.pick(&subjects).to_string());
        }
        streams.push(Stream {
            id: format!("spam-{:02}", c + 1),
            kind: StreamKind::Spam,
            weight: rng.range(6, 20),
            senders,
            landing: (0..rng.range(1, 3)).map(|_| landing_host(rng)).collect(),
            subjects: subj,
            nets: (0..rng.range(1, 2)).map(|_| net24(rng)).collect(),
            tenants: Vec::new(),
            relay: String::new(),
            hrdp: false,
            start_day: rng.below(320) as i64,
            days: rng.range(2, 30) as i64,
        });
    }
    // Big brands: their own mail, and EchoSpoofing waves that launder mail through their relay.
    let mut brand_index = Vec::new();
    for (name, display) in BIG_BRANDS {
        brands.push(domain_with_selectors(
            rng,
            name.to_string(),
            display.to_string(),
            nkeys,
            &mut next_key,
        ));
        brand_index.push(brands.len() - 1);
    }
    let relay_of: Vec<String> = (0..BIG_BRANDS.len())
        .map(|_| {
            format!(
                "mx0{}-00{}01.pphosted.com",
                if rng.chance(0.5) { 'a' } else { 'b' },
                hex(rng, 4)
            )
        })
        .collect();
    // Waves: two with Proofpoint-style relays, one 2025-style through another vendor from the
    // high-risk pool; each spoofs one or two brands.
    let waves: [(&[usize], bool); 3] = [(&[0], false), (&[1, 4], false), (&[2], true)];
    for (w, (which, hrdp)) in waves.into_iter().enumerate() {
        let tenants = (0..rng.range(2, 5))
            .map(|_| Tenant {
                guid: guid(rng),
                domain: format!(
                    "{}{}.onmicrosoft.com",
                    rng.pick(&TENANT_WORDS),
                    rng.range(100, 9999)
                ),
            })
            .collect();
        let brand = which[0];
        let relay = if hrdp {
            format!("eu-smtp-inbound-{}.mimecast.com", rng.range(1, 4))
        } else {
            relay_of[brand].clone()
        };
        streams.push(Stream {
            id: format!("echo-{:02}", w + 1),
            kind: StreamKind::Echo,
            weight: rng.range(12, 24),
            senders: which.iter().map(|&b| brand_index[b]).collect(),
            landing: (0..rng.range(2, 3)).map(|_| landing_host(rng)).collect(),
            subjects: (0..3)
                .map(|_| rng.pick(&BRAND_SUBJECTS).to_string())
                .collect(),
            nets: (0..rng.range(1, 2)).map(|_| net24(rng)).collect(),
            tenants,
            relay,
            hrdp,
            start_day: rng.below(300) as i64,
            days: rng.range(3, 20) as i64,
        });
    }
    // The brands' own mail through their own tenants and the same relays.
    for b in [0usize, 1, 2] {
        let (name, _) = BIG_BRANDS[b];
        streams.push(Stream {
            id: format!("legit-{}", name.split('.').next().unwrap_or("brand")),
            kind: StreamKind::Legit,
            weight: 3,
            senders: vec![brand_index[b]],
            landing: vec![format!("www.{name}")],
            subjects: NEWSLETTER_SUBJECTS.iter().map(|t| t.to_string()).collect(),
            nets: vec![net24(rng)],
            tenants: vec![Tenant {
                guid: guid(rng),
                domain: name.to_string(),
            }],
            relay: relay_of[b].clone(),
            hrdp: false,
            start_day: 0,
            days: 365,
        });
    }
    // Noise: senders from a pool of one-off names.
    let noise = make_domains(rng, nkeys, 24, next_key, &mut taken);
    let first_noise = brands.len();
    brands.extend(noise);
    let total: usize = streams.iter().map(|s| s.weight).sum();
    streams.push(Stream {
        id: "-".into(),
        kind: StreamKind::Noise,
        weight: total / 4,
        senders: (first_noise..brands.len()).collect(),
        landing: Vec::new(),
        subjects: subjects.iter().map(|t| t.to_string()).collect(),
        nets: Vec::new(),
        tenants: Vec::new(),
        relay: String::new(),
        hrdp: false,
        start_day: 0,
        days: 365,
    });
    streams
}

/// A day and time inside the stream's window, busiest in its middle (a wave).
fn stream_time(rng: &mut Rng, s: &Stream) -> i64 {
    let span = s.days.max(1) * 86_400;
    let t = (rng.below(span as usize) + rng.below(span as usize)) as i64 / 2;
    let start = YEAR_2024 + s.start_day * 86_400;
    (start + t).min(YEAR_2024 + 365 * 86_400 - 7200)
}

// ---------------------------------------------------------------------------------------------
// Text.

const FIRST: [&str; 12] = [
    "Anna", "James", "Maria", "Chen", "Olga", "Ahmed", "Laura", "Kenji", "Sofia", "David",
    "Fatima", "Lukas",
];
const LAST: [&str; 10] = [
    "Smith", "Novak", "Garcia", "Wang", "Ivanova", "Khan", "Rossi", "Tanaka", "Müller", "Brown",
];
const SUBJECTS: [&str; 14] = [
    "Your order #{id} has shipped",
    "Final notice: account verification required",
    "You have been selected for a $500 gift card",
    "Limited time: {n}% off everything",
    "Re: invoice {id}",
    "Claim your reward before midnight",
    "Lowest prices on meds - save {n}%",
    "Your password expires today",
    "Congratulations! You won",
    "Investment opportunity with guaranteed returns",
    "Delivery failed: reschedule now",
    "Weekly deals just for you",
    "Confirm your subscription",
    "Important security alert",
];
const SUBJECTS_UTF8: [&str; 6] = [
    "Ihre Bestellung ist unterwegs – jetzt verfolgen",
    "Économisez {n} % sur votre commande",
    "¡Oferta exclusiva! Solo hoy",
    "Специальное предложение для вас",
    "限时优惠：全场{n}折",
    "Gratulálunk, ön nyert! 🎉",
];
const SUBJECTS_LATIN1: [&str; 4] = [
    "Última oportunidad: {n}% de descuento",
    "Schöne Grüße und große Rabatte",
    "Votre colis est arrivé à la poste",
    "Offre spéciale pour vous, {n} EUR offerts",
];
const SENTENCES: [&str; 16] = [
    "We are pleased to inform you that your account has been upgraded.",
    "Click the link below to claim your exclusive reward today.",
    "This offer expires in 24 hours, so act now.",
    "Our records show a pending payment that needs your attention.",
    "Thousands of customers have already saved with this deal.",
    "If you did not request this change, please verify your identity.",
    "Shipping is free on all orders over $25.",
    "Reply to this message to speak with an agent.",
    "Your satisfaction is our top priority.",
    "Best prices guaranteed, no prescription needed.",
    "Log in now to avoid suspension of your account.",
    "You are receiving this because you opted in to our newsletter.",
    "All transactions are secured with 256-bit encryption.",
    "Limited stock available, first come first served.",
    "Contact us at any time, our support team is available 24/7.",
    "Please do not reply directly to this automated message.",
];
const FROM_LINES: [&str; 5] = [
    "From the desk of the managing director:",
    "From now on, all orders ship the same day.",
    "From your friends at customer care,",
    "From: a satisfied customer (quoted review)",
    ">From the archive: last year's best sellers",
];
const MAILERS: [&str; 5] = [
    "PHPMailer 6.8.0 (https://github.com/PHPMailer/PHPMailer)",
    "Microsoft Outlook 16.0",
    "MailRocket Campaigns v3",
    "Apple Mail (2.3731.700.6)",
    "sendmail-bulk 2.4",
];

fn fill(template: &str, rng: &mut Rng) -> String {
    let n = rng.range(10, 90).to_string();
    let id = rng.range(100_000, 9_999_999).to_string();
    template.replace("{n}", &n).replace("{id}", &id)
}

fn q_encode(charset: &str, bytes: &[u8]) -> String {
    let mut s = format!("=?{charset}?Q?");
    for &b in bytes {
        match b {
            b' ' => s.push('_'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                s.push(b as char)
            }
            _ => {
                let _ = write!(s, "={b:02X}");
            }
        }
    }
    s.push_str("?=");
    s
}

/// RFC 2047 B encoding in encoded words of at most 75 characters (at most 45 bytes of text
/// each, cut on character boundaries), folded onto continuation lines.
fn b_encode(text: &str) -> String {
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 45).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(&text.as_bytes()[start..end])
        ));
        start = end;
    }
    words.join("\r\n ")
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

fn public_ip(rng: &mut Rng) -> String {
    const FIRST_OCTETS: [u8; 14] = [
        23, 37, 45, 62, 77, 91, 104, 138, 147, 185, 193, 198, 212, 217,
    ];
    format!(
        "{}.{}.{}.{}",
        rng.pick(&FIRST_OCTETS),
        rng.range(1, 254),
        rng.range(0, 255),
        rng.range(1, 254)
    )
}

fn token(rng: &mut Rng, len: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz";
    (0..len).map(|_| A[rng.below(A.len())] as char).collect()
}

// ---------------------------------------------------------------------------------------------
// Dates.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
/// 2024-01-01T00:00:00Z.
const YEAR_2024: i64 = 1_704_067_200;

/// (year, month 1-12, day, hour, minute, second, weekday 0 = Sunday) of a Unix time.
fn civil(t: i64) -> (i64, usize, i64, i64, i64, i64, usize) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = crate::headers::date::civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let wd = (days + 4).rem_euclid(7) as usize;
    (
        y,
        m as usize,
        i64::from(d),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        wd,
    )
}

/// RFC 5322 date in the zone `offset_min` minutes east of UTC.
fn rfc5322(t: i64, offset_min: i64) -> String {
    let (y, m, d, hh, mm, ss, wd) = civil(t + offset_min * 60);
    let sign = if offset_min < 0 { '-' } else { '+' };
    let o = offset_min.abs();
    format!(
        "{}, {d} {} {y} {hh:02}:{mm:02}:{ss:02} {sign}{:02}{:02}",
        DAYS[wd],
        MONTHS[m - 1],
        o / 60,
        o % 60
    )
}

/// The mbox `From ` line date (asctime, UTC).
fn asctime(t: i64) -> String {
    let (y, m, d, hh, mm, ss, wd) = civil(t);
    format!(
        "{} {} {d:>2} {hh:02}:{mm:02}:{ss:02} {y}",
        DAYS[wd],
        MONTHS[m - 1]
    )
}

// ---------------------------------------------------------------------------------------------
// Messages.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Pass,
    FailBody,
    FailSignature,
    NoKey,
    KeyRevoked,
}

impl Expected {
    fn as_str(self) -> &'static str {
        match self {
            Expected::Pass => "pass",
            Expected::FailBody => "fail-body",
            Expected::FailSignature => "fail-signature",
            Expected::NoKey => "no-key",
            Expected::KeyRevoked => "key-revoked",
        }
    }
}

struct SigTruth {
    d: String,
    s: String,
    a: &'static str,
    c: String,
    l: Option<u64>,
    expected: Expected,
    detail: String,
}

struct GenMessage {
    envelope: String,
    received_at: i64,
    crlf: bool,
    /// The message on the wire (CRLF).
    wire: Vec<u8>,
    message_id: String,
    from_domain: String,
    /// Topmost first.
    sigs: Vec<SigTruth>,
    /// Truth campaign id (`-`: noise, in no campaign).
    campaign: String,
    /// Made the EchoSpoofing way (VPS → foreign M365 tenant → brand relay → brand signature).
    echospoof: bool,
}

struct World {
    keys: Vec<GenKey>,
    /// Sending domains: campaign families, big brands, noise senders.
    brands: Vec<Domain>,
    esps: Vec<Domain>,
    /// Where messages come from: campaigns, brand mail, noise; picked by weight.
    streams: Vec<Stream>,
    total_weight: usize,
}

const CANONS: [(Canonicalization, Canonicalization); 3] = [
    (Canonicalization::Relaxed, Canonicalization::Relaxed),
    (Canonicalization::Simple, Canonicalization::Simple),
    (Canonicalization::Relaxed, Canonicalization::Simple),
];

fn canon_name(c: Canonicalization) -> &'static str {
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
fn sign(
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

fn crlf(lines: &[String]) -> String {
    let mut s = String::new();
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s
}

/// The stream a message comes from, by weight.
fn pick_stream<'w>(world: &'w World, rng: &mut Rng) -> &'w Stream {
    let mut x = rng.below(world.total_weight);
    for s in &world.streams {
        if x < s.weight {
            return s;
        }
        x -= s.weight;
    }
    &world.streams[world.streams.len() - 1]
}

/// A subject from a template: `{n}`/`{id}` filled, `{brand}` and `{month}` put in, encoded as an
/// RFC 2047 word when not ASCII (Latin-1 templates as ISO-8859-1 Q words).
fn make_subject(template: &str, brand: &str, t: i64, rng: &mut Rng) -> String {
    let month = MONTHS[civil(t).1 - 1];
    let text = fill(template, rng)
        .replace("{brand}", brand)
        .replace("{month}", month);
    if text.is_ascii() {
        text
    } else if SUBJECTS_LATIN1.contains(&template) {
        q_encode("ISO-8859-1", &latin1(&text))
    } else {
        b_encode(&text)
    }
}

fn make_message(world: &World, seed: u64, n: usize) -> GenMessage {
    let rng = &mut Rng::new(seed, n as u64 + 1);
    let stream = pick_stream(world, rng);
    let kind = stream.kind;
    let relayed = matches!(kind, StreamKind::Echo | StreamKind::Legit);
    let brand = &world.brands[*rng.pick(&stream.senders)];
    let esp = &world.esps[rng.below(world.esps.len())];
    let t_sign = stream_time(rng, stream);
    let from_user = rng.pick(&["news", "offers", "info", "no-reply", "support", "team"]);
    let first = rng.pick(&FIRST);
    let last = rng.pick(&LAST);
    let to_user = format!(
        "{}.{}{}",
        first.to_lowercase(),
        last.to_lowercase().replace('ü', "ue"),
        rng.range(1, 99)
    );
    let trap = rng.pick(&[
        "spamtrap.example.org",
        "honeypot.example.net",
        "trap.example.com",
    ]);
    let display = match rng.below(6) {
        0 => b_encode(&format!("{} – Kundenservice", brand.brand)),
        1 => q_encode("UTF-8", format!("{} Équipe", brand.brand).as_bytes()),
        2 => format!(
            "\"{}, {}\"",
            brand.brand,
            rng.pick(&["Inc.", "Ltd", "Support"])
        ),
        _ => brand.brand.clone(),
    };
    let template = rng.pick(&stream.subjects).clone();
    let subject = make_subject(&template, &brand.brand, t_sign, rng);
    let message_id = format!("<{}.{}@{}>", token(rng, 16), t_sign, brand.name);
    let tz = *rng.pick(&[0i64, 60, 120, -300, -420, 330, 480, -180]);
    let boundary = format!("----=_Part_{}_{}", rng.range(1000, 99999), token(rng, 10));
    let multipart = rng.chance(0.7);

    // Body.
    let mut text = Vec::new();
    text.push(format!("Dear {first},"));
    text.push(String::new());
    for _ in 0..rng.range(3, 12) {
        let mut line = rng.pick(&SENTENCES).to_string();
        if rng.chance(0.1) {
            line.push_str("  "); // trailing blanks: relaxed and simple differ
        }
        if rng.chance(0.08) {
            line = line.replacen(' ', "   ", 1);
        }
        text.push(line);
        if rng.chance(0.15) {
            text.push(rng.pick(&FROM_LINES).to_string());
        }
        if rng.chance(0.2) {
            text.push(String::new());
        }
    }
    // The landing link: the campaign's hosts, the brand's own site, or a one-off host.
    // A few campaign messages carry no campaign link at all (a plain-text teaser): only their
    // other evidence can place them.
    let teaser = kind == StreamKind::Spam && rng.chance(0.03);
    let landing = match kind {
        StreamKind::Noise => landing_host(rng),
        _ if teaser => landing_host(rng),
        _ => rng.pick(&stream.landing).clone(),
    };
    let link = format!(
        "https://{landing}/c/{}?u={}",
        token(rng, 12),
        rng.range(100_000, 999_999)
    );
    if rng.chance(0.1) {
        // Rewritten by a URL-defense gateway on the way: a host every campaign shares.
        text.push(format!(
            "https://urldefense.example/v3/__{link}__;!!{}$",
            token(rng, 10)
        ));
    } else {
        text.push(link);
    }
    if relayed && rng.chance(0.5) {
        // Spoofs borrow the brand's images too; its own domain links nothing.
        text.push(format!("https://www.{}/img/logo.png", brand.name));
    }
    let mut body = String::new();
    let content_type;
    if multipart {
        content_type = format!("multipart/alternative; boundary=\"{boundary}\"");
        body.push_str("This is a multi-part message in MIME format.\r\n\r\n");
        let _ = write!(
            body,
            "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        );
        body.push_str(&crlf(&text));
        let _ = write!(
            body,
            "\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n<html><body>\r\n"
        );
        for l in &text {
            let _ = write!(body, "<p>{l}</p>\r\n");
        }
        let _ = write!(body, "</body></html>\r\n\r\n--{boundary}--\r\n");
    } else {
        content_type = "text/plain; charset=utf-8".to_string();
        body.push_str(&crlf(&text));
    }
    if rng.chance(0.1) {
        body.push_str("\r\n\r\n"); // trailing empty lines
    }

    // Header block (bottom part, as the sender wrote it).
    let mut h = Vec::new();
    // Campaigns send from their networks, now and then from a stray address elsewhere.
    let first_ip = match kind {
        StreamKind::Noise => public_ip(rng),
        _ if rng.chance(0.02) => public_ip(rng),
        _ => format!("{}.{}", rng.pick(&stream.nets), rng.range(2, 250)),
    };
    let outbound = format!("smtp-out{}.{}", rng.range(1, 20), esp.name);
    let tenant = (!stream.tenants.is_empty()).then(|| rng.pick(&stream.tenants));
    if relayed {
        // Into Microsoft 365 (the sender's tenant), through it, and out to the brand's relay.
        let region = rng.pick(&["nam11", "eur05", "apc01", "nam12"]);
        let ft = format!(
            "{}{}FT{:03}",
            region.to_uppercase(),
            token(rng, 2).to_uppercase(),
            rng.range(1, 99)
        );
        let be = format!(
            "{}PR{:02}MB{}",
            rng.pick(&["DM6", "AM6", "SA1", "DB9"]),
            rng.range(1, 20),
            rng.range(1000, 9999)
        );
        let vps = if kind == StreamKind::Echo {
            format!(
                "vps-{}.{}",
                rng.range(100, 9999),
                rng.pick(&["cloudvps.example", "hostfleet.example", "rackvm.example"])
            )
        } else {
            format!("mail.{}", brand.name)
        };
        let t0 = t_sign - 9;
        let entry_host = format!(
            "{}.mail.protection.outlook.com",
            tenant.map_or("tenant", |t| t.domain.split('.').next().unwrap_or("tenant"))
        );
        h.push(format!(
            "Received: from {vps} ({first_ip}) by {entry_host} (10.167.{}.{}) with Microsoft SMTP Server id 15.20.{}; {}",
            rng.range(1, 250), rng.range(1, 250), rng.range(7000, 8999), rfc5322(t0, 0)
        ));
        h.push(format!(
            "Received: from {ft}.eop-{region}.prod.protection.outlook.com (2603:10b6:{:x}::{:x}) by {be}.{region}prd01.prod.outlook.com (2603:10b6:{:x}::{:x}) with Microsoft SMTP Server id 15.20.{}; {}",
            rng.range(1, 4000), rng.range(1, 4000), rng.range(1, 4000), rng.range(1, 4000), rng.range(7000, 8999), rfc5322(t0 + 1, 0)
        ));
        let out_ip = if stream.hrdp {
            format!("40.95.{}.{}", rng.range(0, 255), rng.range(1, 254))
        } else {
            format!("40.107.{}.{}", rng.range(0, 255), rng.range(1, 254))
        };
        h.push(format!(
            "Received: from {}-obe.outbound.protection.outlook.com (mail-{}.outbound.protection.outlook.com [{out_ip}]) by {} with ESMTPS id {}; {}",
            region.to_uppercase(), token(rng, 10).to_lowercase(), stream.relay, token(rng, 10), rfc5322(t0 + 3, 0)
        ));
        if let Some(t) = tenant {
            h.push(format!("X-MS-Exchange-CrossTenant-Id: {}", t.guid));
            h.push(format!("X-OriginatorOrg: {}", t.domain));
        }
    } else {
        h.push(format!(
            "Received: from [{first_ip}] (unknown [{first_ip}])\r\n\tby {outbound} (Postfix) with ESMTPSA id {}\r\n\tfor <{to_user}@{trap}>; {}",
            token(rng, 10),
            rfc5322(t_sign - 2, 0)
        ));
    }
    h.push(format!(
        "Date: {}",
        rfc5322(t_sign - rng.below(60) as i64, tz)
    ));
    h.push(format!("From: {display} <{from_user}@{}>", brand.name));
    h.push(format!("To: {first} {last} <{to_user}@{trap}>"));
    h.push(format!("Subject: {subject}"));
    h.push(format!("Message-ID: {message_id}"));
    h.push("MIME-Version: 1.0".into());
    h.push(format!("Content-Type: {content_type}"));
    if rng.chance(0.5) {
        h.push(format!(
            "List-Unsubscribe: <https://{}/unsub/{}>, <mailto:unsub@{}>",
            esp.name,
            token(rng, 20),
            esp.name
        ));
    }
    if rng.chance(0.4) {
        h.push(format!("X-Mailer: {}", rng.pick(&MAILERS)));
    }
    let mut msg = format!("{}\r\n{body}", crlf(&h)).into_bytes();

    // Signatures: which, and what will be broken.
    let mut sigs = Vec::new();
    // The brand's relay signs everything it passes on, right before it leaves: nothing breaks.
    let signed = relayed || !rng.chance(0.15);
    if signed {
        let two = !relayed && rng.chance(0.25);
        let damage = if relayed { 99 } else { rng.below(100) };
        let category = match damage {
            0..=7 => Some(Expected::FailBody),
            8..=15 => Some(Expected::FailSignature),
            _ => None,
        };
        let with_l = rng.chance(0.2);
        let footer = !relayed && with_l && category.is_none() && rng.chance(0.5);
        // Brand signs first (lower field), the ESP second (topmost).
        let signers: Vec<&Domain> = if relayed {
            vec![brand]
        } else if two {
            vec![brand, esp]
        } else if rng.chance(0.6) {
            vec![brand]
        } else {
            vec![esp]
        };
        let header_sets: [&[&str]; 3] = [
            &[
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
            ],
            &["from", "subject", "date", "to", "message-id"],
            &[
                "From",
                "From",
                "Subject",
                "Subject",
                "Date",
                "To",
                "Message-ID",
                "List-Unsubscribe",
                "Content-Type",
            ],
        ];
        let t = (t_sign + rng.below(3) as i64) as u64;
        for dom in signers {
            let r = if relayed { 99 } else { rng.below(100) };
            let (s, key, expected, detail) = if category.is_none() && r < 7 {
                (
                    dom.missing.clone(),
                    0,
                    Expected::NoKey,
                    "selector not in keys.zone".to_string(),
                )
            } else if category.is_none() && r < 14 {
                (
                    dom.revoked.0.clone(),
                    dom.revoked.1,
                    Expected::KeyRevoked,
                    "key revoked (empty p=)".to_string(),
                )
            } else {
                let (s, k) = rng.pick(&dom.good);
                let e = category.unwrap_or(Expected::Pass);
                let detail = match e {
                    Expected::FailBody => "body changed after signing".to_string(),
                    Expected::FailSignature => "Subject changed after signing".to_string(),
                    _ if footer => "footer appended beyond l=".to_string(),
                    _ => "ok".to_string(),
                };
                (s.clone(), *k, e, detail)
            };
            let canon = *rng.pick(&CANONS);
            let hs = rng.pick(&header_sets);
            let gk = &world.keys[key];
            let (field, l) = sign(gk, &dom.name, &s, hs, canon, with_l, t, &msg);
            msg.splice(0..0, field);
            sigs.insert(
                0,
                SigTruth {
                    d: dom.name.clone(),
                    s,
                    a: match gk.algorithm() {
                        Algorithm::Ed25519Sha256 => "ed25519-sha256",
                        _ => "rsa-sha256",
                    },
                    c: format!("{}/{}", canon_name(canon.0), canon_name(canon.1)),
                    l,
                    expected,
                    detail,
                },
            );
        }
        match category {
            Some(Expected::FailBody) => {
                let at = memchr::memmem::find(&msg, b"\r\n\r\n").map_or(msg.len(), |i| i + 4);
                msg.splice(at..at, b"[This message was scanned] ".iter().copied());
            }
            Some(Expected::FailSignature) => {
                let at = memchr::memmem::find(&msg, b"\r\nSubject: ").expect("Subject") + 11;
                msg.splice(at..at, b"[SPAM] ".iter().copied());
            }
            _ => {}
        }
        if footer {
            msg.extend_from_slice(
                format!(
                    "\r\n-- \r\nSent via {}. Unsubscribe: https://{}/u/{}\r\n",
                    esp.brand,
                    esp.name,
                    token(rng, 8)
                )
                .as_bytes(),
            );
        }
    }

    // Hops added after signing, up to the trap (topmost last added).
    let hops = if relayed { 1 } else { rng.range(1, 4) };
    let mut t_hop = t_sign + 3;
    let (mut from_ip, mut from_host) = if relayed {
        // The relay's own address (Proofpoint's 148.163.128.0/19; another vendor otherwise).
        let ip = if stream.hrdp {
            format!("205.139.{}.{}", rng.range(110, 111), rng.range(1, 254))
        } else {
            format!("148.163.{}.{}", rng.range(128, 159), rng.range(1, 254))
        };
        (ip, stream.relay.clone())
    } else {
        (public_ip(rng), outbound)
    };
    let mut top = Vec::new();
    for i in 0..hops {
        let by = if i + 1 == hops {
            format!("mx{}.{trap}", rng.range(1, 3))
        } else {
            format!(
                "relay{}.{}",
                rng.range(1, 9),
                rng.pick(&["isp-transit.net", "edge-mx.com", "filter-gw.net"])
            )
        };
        t_hop += rng.range(1, 40) as i64;
        top.insert(
            0,
            format!(
                "Received: from {from_host} ({from_host} [{from_ip}])\r\n\tby {by} with ESMTPS id {}\r\n\tfor <{to_user}@{trap}>; {}",
                token(rng, 12),
                rfc5322(t_hop, if i + 1 == hops { 0 } else { *rng.pick(&[0i64, 60, -300]) })
            ),
        );
        from_host = by;
        from_ip = public_ip(rng);
    }
    let envelope = if relayed {
        format!("{from_user}@{}", brand.name)
    } else {
        format!("bounce-{}@{}", rng.range(10_000, 99_999), esp.name)
    };
    // What the trap recorded at receipt (RFC 8601), consistent with the truth.
    let passing = sigs.iter().find(|s| s.expected == Expected::Pass);
    let dkim_word = match (passing, sigs.first()) {
        (Some(_), _) => "pass",
        (None, Some(s)) => match s.expected {
            Expected::FailBody | Expected::FailSignature => "fail",
            _ => "permerror",
        },
        (None, None) => "none",
    };
    let aligned = sigs
        .iter()
        .any(|s| s.expected == Expected::Pass && s.d == brand.name);
    let header_d = passing
        .or(sigs.first())
        .map_or(String::new(), |s| format!(" header.d={}", s.d));
    top.insert(
        0,
        format!(
            "Authentication-Results: mx1.{trap};\r\n\tdkim={dkim_word}{header_d};\r\n\tspf=pass smtp.mailfrom={};\r\n\tdmarc={} header.from={}",
            envelope.split('@').nth(1).unwrap_or(""),
            if aligned { "pass" } else { "fail" },
            brand.name
        ),
    );
    top.insert(0, format!("Return-Path: <{envelope}>"));
    msg.splice(0..0, crlf(&top).into_bytes());

    GenMessage {
        envelope,
        received_at: t_hop,
        crlf: rng.chance(0.15),
        wire: msg,
        message_id,
        from_domain: brand.name.clone(),
        sigs,
        campaign: stream.id.clone(),
        echospoof: kind == StreamKind::Echo,
    }
}

/// The mbox entry of one message: `From ` line, mboxrd-quoted message, blank separator.
fn mbox_entry(m: &GenMessage, out: &mut Vec<u8>) {
    let _ = writeln!(out, "From {} {}", m.envelope, asctime(m.received_at));
    for line in m.wire.split_inclusive(|&b| b == b'\n') {
        let gt = line.iter().take_while(|&&b| b == b'>').count();
        if line[gt..].starts_with(b"From ") {
            out.push(b'>');
        }
        if m.crlf {
            out.extend_from_slice(line);
        } else {
            let l = line.strip_suffix(b"\r\n").unwrap_or(line);
            out.extend_from_slice(l);
            if l.len() != line.len() {
                out.push(b'\n');
            }
        }
    }
    out.push(b'\n');
}

fn zone_line(name: &str, value: &str, out: &mut String) {
    let _ = write!(out, "{name} 3600 IN TXT");
    for chunk in value.as_bytes().chunks(255) {
        let _ = write!(out, " \"{}\"", std::str::from_utf8(chunk).unwrap_or(""));
    }
    out.push('\n');
}

/// Make the corpus, keys and truth files in `opts.out`.
pub fn generate(opts: &GenerateOptions) -> anyhow::Result<GenerateReport> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let started = Instant::now();
    let keys = make_keys(opts.keys_from.as_deref(), opts.only)?;
    let key_seconds = started.elapsed().as_secs_f64();

    let mut rng = Rng::new(opts.seed, 0);
    let nkeys = keys.len();
    let mut brands = Vec::new();
    let esps: Vec<Domain> = ESPS
        .iter()
        .enumerate()
        .map(|(i, (name, brand))| {
            let mut k = i + 3;
            domain_with_selectors(&mut rng, name.to_string(), brand.to_string(), nkeys, &mut k)
        })
        .collect();
    let streams = make_streams(&mut rng, nkeys, &mut brands);
    let total_weight = streams.iter().map(|s| s.weight).sum();
    let world = World {
        keys,
        brands,
        esps,
        streams,
        total_weight,
    };

    // keys.zone and keys.private.
    let mut zone = format!(
        "; mailcensus generate --seed {} : DKIM keys ({} keys)\n$TTL 3600\n",
        opts.seed, nkeys
    );
    for d in world.brands.iter().chain(&world.esps) {
        for (s, k) in &d.good {
            zone_line(
                &format!("{s}._domainkey.{}.", d.name),
                &world.keys[*k].record,
                &mut zone,
            );
        }
        let (s, k) = &d.revoked;
        zone_line(
            &format!("{s}._domainkey.{}.", d.name),
            &world.keys[*k].revoked_record(),
            &mut zone,
        );
        let _ = writeln!(
            zone,
            "; {}._domainkey.{}. is absent on purpose",
            d.missing, d.name
        );
    }
    write_file(&opts.out.join("keys.zone"), zone.as_bytes())?;
    let mut private = String::from("# mailcensus generate private keys: id kind base64-DER\n");
    for k in &world.keys {
        let _ = writeln!(
            private,
            "{} {} {}",
            k.id,
            k.kind.name(),
            base64::engine::general_purpose::STANDARD.encode(&k.private_der)
        );
    }
    write_file(&opts.out.join("keys.private"), private.as_bytes())?;

    // Messages, in parallel chunks, written in order.
    let t_msgs = Instant::now();
    let mut mbox = std::io::BufWriter::new(create(&opts.out.join("corpus.mbox"))?);
    let mut truth = csv::Writer::from_writer(create(&opts.out.join("truth.csv"))?);
    let mut mtruth = csv::Writer::from_writer(create(&opts.out.join("messages-truth.csv"))?);
    truth.write_record([
        "message_index",
        "mbox_offset",
        "message_id",
        "index",
        "d",
        "s",
        "a",
        "c",
        "l",
        "expected",
        "detail",
    ])?;
    mtruth.write_record([
        "message_index",
        "mbox_offset",
        "message_id",
        "from_domain",
        "dkim_expected",
        "campaign",
        "echospoof",
    ])?;
    let mut report = GenerateReport {
        messages: opts.messages,
        key_seconds,
        ..Default::default()
    };
    let mut offset = 0u64;
    const CHUNK: usize = 2048;
    for start in (0..opts.messages).step_by(CHUNK) {
        let end = (start + CHUNK).min(opts.messages);
        let entries: Vec<(GenMessage, Vec<u8>)> = (start..end)
            .into_par_iter()
            .map(|n| {
                let m = make_message(&world, opts.seed, n);
                let mut e = Vec::with_capacity(m.wire.len() + 100);
                mbox_entry(&m, &mut e);
                (m, e)
            })
            .collect();
        for (i, (m, entry)) in entries.iter().enumerate() {
            let idx = (start + i + 1).to_string();
            let off = offset.to_string();
            for (k, s) in m.sigs.iter().enumerate() {
                report.signatures += 1;
                *report.expected.entry(s.expected.as_str()).or_default() += 1;
                truth.write_record([
                    idx.as_str(),
                    off.as_str(),
                    m.message_id.as_str(),
                    &(k + 1).to_string(),
                    &s.d,
                    &s.s,
                    s.a,
                    &s.c,
                    &s.l.map(|l| l.to_string()).unwrap_or_default(),
                    s.expected.as_str(),
                    &s.detail,
                ])?;
            }
            let verdict = if m.sigs.iter().any(|s| s.expected == Expected::Pass) {
                "pass"
            } else {
                m.sigs.first().map_or("none", |s| s.expected.as_str())
            };
            mtruth.write_record([
                idx.as_str(),
                off.as_str(),
                m.message_id.as_str(),
                &m.from_domain,
                verdict,
                &m.campaign,
                if m.echospoof { "true" } else { "false" },
            ])?;
            mbox.write_all(entry)?;
            offset += entry.len() as u64;
        }
    }
    mbox.flush()?;
    truth.flush()?;
    mtruth.flush()?;
    report.mbox_bytes = offset;
    report.message_seconds = t_msgs.elapsed().as_secs_f64();
    Ok(report)
}

fn create(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc5322(YEAR_2024, 0), "Mon, 1 Jan 2024 00:00:00 +0000");
        assert_eq!(
            rfc5322(1_709_640_000, -300),
            "Tue, 5 Mar 2024 07:00:00 -0500"
        );
        assert_eq!(asctime(1_709_640_000), "Tue Mar  5 12:00:00 2024");
    }

    #[test]
    fn encodings() {
        assert_eq!(
            q_encode("ISO-8859-1", &latin1("Grüße a")),
            "=?ISO-8859-1?Q?Gr=FC=DFe_a?="
        );
        assert_eq!(b_encode("é"), "=?UTF-8?B?w6k=?=");
        let long = b_encode(&"é".repeat(30));
        assert_eq!(long.matches("=?UTF-8?B?").count(), 2);
        assert!(long.split("\r\n ").all(|w| w.len() <= 75));
    }
}
