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
//!   `message_index,mbox_offset,message_id,from_domain,dkim_expected,campaign,echospoof,platform`
//!   (`dkim_expected`: `pass` if any signature passes, else the first signature's expected
//!   result, else `none`; `campaign`: `spam-NN`, `echo-NN`, `legit-NAME`, or `-` for one-off
//!   noise; `echospoof`: `true` for relay-abuse wave messages; `platform`: the shared-platform
//!   host the body links to, empty if none — last, so older readers keep working).
//!
//! **What the corpus holds.** Messages come from weighted streams: eight spam campaigns (each a
//! family of sender domains, one or two sender networks, a few landing hosts and subjects), the
//! relay-abuse waves, the spoofed brands' own mail, and one-off noise (about a fifth).
//! - *Relay-abuse (EchoSpoofing) waves* (`--waves`, default 3): mail injected from a VPS into
//!   an attacker's Microsoft 365 tenant, out to a brand's gateway relay, which signs it for the
//!   brand. Per wave, drawn uniformly from the given ranges: the brands it spoofs
//!   (`--wave-brands`, default 1-2, at most the 12 reserved `.example` brands; wave `w` always
//!   spoofs brand `w mod 3`, one whose own mail is in the corpus), its tenants
//!   (`--wave-tenants`, default 2-5: a GUID and a `{word}{number}.onmicrosoft.com` domain
//!   each), its injector /24 networks (`--wave-nets`, default 1-2) and its landing domains
//!   (`--wave-landings`, default 2-3). Landing domains rotate: the wave's time window is cut into
//!   one slice per domain, and 85% of a slice's messages link to that slice's domain (the rest
//!   to any of the wave's). A message goes through the relay of the brand in its From: a
//!   Proofpoint-style `mx0a/b-…pphosted.com`, or for every third wave (the 2025 high-risk-pool
//!   variant, leaving Microsoft from 40.95.0.0/16) another vendor's relay. Tenant domains,
//!   networks and landing domains are never shared between waves.
//! - *Legitimate brand mail* (`legit-*`): the first three brands' own mail, through their own
//!   tenants and the same relays — the negative controls for relay-abuse detection.
//! - *Shared platforms* (`--platform-share`, default 0.10): three hosts per corpus named from the
//!   seed — a link shortener (`{word}.link`), a click tracker (`t.{word}.net`) and an image CDN
//!   (`img.{word}-cdn.com`). A message of any stream links to one of them (beside the landing
//!   link, so in the text and the HTML part) with probability `platform_share` times the
//!   stream's factor (uniform in 0.5–1.5, capped at 1); a stream uses its favourite platform half
//!   of the time. These draws have their own random streams, so the share changes nothing else;
//!   `0` gives no platform link at all.
//!
//! **Determinism.** Everything but the key material is a function of `--seed` (and the wave and
//! platform options): domains,
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

/// Options of one `generate` run. Build with [`GenerateOptions::new`] (every knob at its
/// default) and change fields as needed.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub messages: usize,
    pub seed: u64,
    pub out: PathBuf,
    /// Read the private keys from `DIR/keys.private` instead of making new ones.
    pub keys_from: Option<PathBuf>,
    /// Make every key of this kind (e.g. an RSA-2048-only corpus for benchmarks).
    pub only: Option<KeyKind>,
    /// Number of relay-abuse (EchoSpoofing) waves.
    pub waves: usize,
    /// Brands one wave spoofs, `(min, max)`, drawn uniformly per wave (at most
    /// [`BIG_BRAND_COUNT`]): several brands make a wave harder to see as one campaign.
    pub wave_brands: (usize, usize),
    /// Attacker Microsoft 365 tenants per wave, `(min, max)`.
    pub wave_tenants: (usize, usize),
    /// Injector /24 networks (the VPS first hop) per wave, `(min, max)`.
    pub wave_nets: (usize, usize),
    /// Landing domains per wave, `(min, max)`; they rotate over the wave's time window.
    pub wave_landings: (usize, usize),
    /// Share of messages (of every stream) that link to one of three shared platforms (a link
    /// shortener, a click tracker, an image CDN): links that many unrelated campaigns share.
    pub platform_share: f64,
}

impl GenerateOptions {
    /// Options with every knob but the three given at its default — the one place defaults are
    /// set (the CLI falls back to these).
    pub fn new(messages: usize, seed: u64, out: PathBuf) -> GenerateOptions {
        GenerateOptions {
            messages,
            seed,
            out,
            keys_from: None,
            only: None,
            waves: 3,
            wave_brands: (1, 2),
            wave_tenants: (2, 5),
            wave_nets: (1, 2),
            wave_landings: (2, 3),
            platform_share: 0.10,
        }
    }

    /// Refuse ranges the generator cannot honour (or could not make unique names for).
    fn check(&self) -> anyhow::Result<()> {
        let ranges = [
            ("--wave-brands", self.wave_brands, BIG_BRAND_COUNT),
            ("--wave-tenants", self.wave_tenants, MAX_WAVE_TENANTS),
            ("--wave-nets", self.wave_nets, MAX_WAVE_NETS),
            ("--wave-landings", self.wave_landings, MAX_WAVE_LANDINGS),
        ];
        for (flag, (lo, hi), max) in ranges {
            if lo == 0 || lo > hi || hi > max {
                bail!("{flag} {lo}-{hi}: want 1 <= MIN <= MAX <= {max}");
            }
        }
        if self.waves > MAX_WAVES {
            bail!("--waves {}: at most {MAX_WAVES}", self.waves);
        }
        if !(0.0..=1.0).contains(&self.platform_share) {
            bail!(
                "--platform-share {}: want a share from 0 to 1",
                self.platform_share
            );
        }
        Ok(())
    }
}

/// Limits of the wave knobs: enough for hard corpora, small enough that unique tenant domains,
/// networks and landing hosts are always found quickly.
const MAX_WAVES: usize = 100;
const MAX_WAVE_TENANTS: usize = 200;
const MAX_WAVE_NETS: usize = 100;
const MAX_WAVE_LANDINGS: usize = 50;

/// Parse a count range as the CLI takes it: `MIN-MAX`, or `N` for `N-N`.
pub fn parse_count_range(s: &str) -> Result<(usize, usize), String> {
    let num = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}`: want N or MIN-MAX (e.g. 2-5)"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if lo > hi {
        return Err(format!("`{s}`: MIN is larger than MAX"));
    }
    Ok((lo, hi))
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
    /// Echo and legit: the gateway relay of each sender (same order as `senders`): a wave that
    /// spoofs several brands goes through each brand's own relay.
    relays: Vec<String>,
    /// Landing hosts; a wave's rotate over its time window (see [`wave_landing`]).
    landing: Vec<String>,
    subjects: Vec<String>,
    /// /24 networks of the first senders (`a.b.c`).
    nets: Vec<String>,
    tenants: Vec<Tenant>,
    /// The 2025 variant: the message leaves Microsoft from the high-risk pool (40.95.0.0/16)
    /// into another vendor's hygiene relay.
    hrdp: bool,
    /// First day (days since 2024-01-01) and length in days.
    start_day: i64,
    days: i64,
    /// How much more (or less) than `platform_share` this stream links to shared platforms
    /// (0.5–1.5), so platform use is uneven across campaigns.
    platform_factor: f64,
    /// The platform (index into `World::platforms`) this stream uses half of the time.
    favourite_platform: usize,
}

/// Brands impersonated in the EchoSpoofing waves (reserved `.example` names, no real domains).
/// The first [`LEGIT_BRANDS`] also send their own mail.
const BIG_BRANDS: [(&str, &str); 12] = [
    ("bestbuy.example", "Best Buy"),
    ("nike.example", "Nike"),
    ("ibm.example", "IBM"),
    ("disney.example", "Disney"),
    ("coca-cola.example", "Coca-Cola"),
    ("contoso-shop.example", "Contoso"),
    ("fabrikam.example", "Fabrikam"),
    ("northwind.example", "Northwind Traders"),
    ("adventure-works.example", "Adventure Works"),
    ("tailspin.example", "Tailspin Toys"),
    ("wingtip.example", "Wingtip Toys"),
    ("litware.example", "Litware"),
];
/// How many brands a wave can spoof at most.
pub const BIG_BRAND_COUNT: usize = BIG_BRANDS.len();
/// Brands with their own legitimate mail (the negative controls). Wave `w` always spoofs brand
/// `w % LEGIT_BRANDS` among others, so every wave spoofs a brand whose real mail is in the corpus.
const LEGIT_BRANDS: usize = 3;
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
/// Share of a wave's messages that link to the landing host of their time slice; the rest use
/// any of the wave's hosts (stragglers, reused templates).
const LANDING_IN_SLICE: f64 = 0.85;

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

/// `count` values from `make`, none already in `taken` (which then holds them too).
fn unique<T: Ord + Clone>(
    rng: &mut Rng,
    count: usize,
    taken: &mut std::collections::BTreeSet<T>,
    mut make: impl FnMut(&mut Rng) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let v = make(rng);
        if taken.insert(v.clone()) {
            out.push(v);
        }
    }
    out
}

fn all_subjects() -> Vec<&'static str> {
    SUBJECTS
        .iter()
        .chain(SUBJECTS_UTF8.iter())
        .chain(SUBJECTS_LATIN1.iter())
        .copied()
        .collect()
}

/// The shape of the relay-abuse waves (from [`GenerateOptions`]).
struct WaveShape {
    waves: usize,
    brands: (usize, usize),
    tenants: (usize, usize),
    nets: (usize, usize),
    landings: (usize, usize),
}

/// The campaigns, brand streams and noise of one corpus, and the domains they send from
/// (appended to `brands`).
fn make_streams(
    rng: &mut Rng,
    nkeys: usize,
    brands: &mut Vec<Domain>,
    shape: &WaveShape,
) -> Vec<Stream> {
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
            relays: Vec::new(),
            landing: (0..rng.range(1, 3)).map(|_| landing_host(rng)).collect(),
            subjects: subj,
            nets: (0..rng.range(1, 2)).map(|_| net24(rng)).collect(),
            tenants: Vec::new(),
            hrdp: false,
            start_day: rng.below(320) as i64,
            days: rng.range(2, 30) as i64,
            platform_factor: 1.0,
            favourite_platform: 0,
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
    // Each brand's gateway: a Proofpoint-style relay, and the other vendor's hygiene relay the
    // 2025 (high-risk pool) variant goes through.
    let relay_of: Vec<String> = (0..BIG_BRANDS.len())
        .map(|_| {
            format!(
                "mx0{}-00{}01.pphosted.com",
                if rng.chance(0.5) { 'a' } else { 'b' },
                hex(rng, 4)
            )
        })
        .collect();
    let hrdp_relay_of: Vec<String> = (0..BIG_BRANDS.len())
        .map(|_| format!("eu-smtp-inbound-{}.mimecast.com", rng.range(1, 4)))
        .collect();
    // Waves: most through Proofpoint-style relays, every third the 2025 variant through another
    // vendor from the high-risk pool. Tenant domains, injector networks and landing hosts are
    // unique across the corpus, so a wave's set is exactly its own.
    let mut tenant_domains = std::collections::BTreeSet::new();
    let mut wave_nets = std::collections::BTreeSet::new();
    for w in 0..shape.waves {
        let hrdp = w % 3 == 2;
        // The lead brand has legitimate mail in the corpus; the others are any other brands.
        let lead = w % LEGIT_BRANDS;
        let mut others: Vec<usize> = (0..BIG_BRANDS.len()).filter(|&b| b != lead).collect();
        let brand_count = rng
            .range(shape.brands.0, shape.brands.1)
            .min(BIG_BRANDS.len());
        let mut spoofed = vec![lead];
        for _ in 1..brand_count {
            spoofed.push(others.remove(rng.below(others.len())));
        }
        let tenant_count = rng.range(shape.tenants.0, shape.tenants.1);
        let tenants = unique(rng, tenant_count, &mut tenant_domains, |rng| {
            format!(
                "{}{}.onmicrosoft.com",
                rng.pick(&TENANT_WORDS),
                rng.range(100, 9999)
            )
        })
        .into_iter()
        .map(|domain| Tenant {
            guid: guid(rng),
            domain,
        })
        .collect();
        let landing_count = rng.range(shape.landings.0, shape.landings.1);
        let net_count = rng.range(shape.nets.0, shape.nets.1);
        streams.push(Stream {
            id: format!("echo-{:02}", w + 1),
            kind: StreamKind::Echo,
            weight: rng.range(12, 24),
            senders: spoofed.iter().map(|&b| brand_index[b]).collect(),
            relays: spoofed
                .iter()
                .map(|&b| {
                    if hrdp {
                        hrdp_relay_of[b].clone()
                    } else {
                        relay_of[b].clone()
                    }
                })
                .collect(),
            landing: unique(rng, landing_count, &mut taken, landing_host),
            subjects: (0..3)
                .map(|_| rng.pick(&BRAND_SUBJECTS).to_string())
                .collect(),
            nets: unique(rng, net_count, &mut wave_nets, net24),
            tenants,
            hrdp,
            start_day: rng.below(300) as i64,
            days: rng.range(3, 20) as i64,
            platform_factor: 1.0,
            favourite_platform: 0,
        });
    }
    // The brands' own mail through their own tenants and the same relays.
    for b in 0..LEGIT_BRANDS {
        let (name, _) = BIG_BRANDS[b];
        streams.push(Stream {
            id: format!("legit-{}", name.split('.').next().unwrap_or("brand")),
            kind: StreamKind::Legit,
            weight: 3,
            senders: vec![brand_index[b]],
            relays: vec![relay_of[b].clone()],
            landing: vec![format!("www.{name}")],
            subjects: NEWSLETTER_SUBJECTS.iter().map(|t| t.to_string()).collect(),
            nets: vec![net24(rng)],
            tenants: vec![Tenant {
                guid: guid(rng),
                domain: name.to_string(),
            }],
            hrdp: false,
            start_day: 0,
            days: 365,
            platform_factor: 1.0,
            favourite_platform: 0,
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
        relays: Vec::new(),
        landing: Vec::new(),
        subjects: subjects.iter().map(|t| t.to_string()).collect(),
        nets: Vec::new(),
        tenants: Vec::new(),
        hrdp: false,
        start_day: 0,
        days: 365,
        platform_factor: 1.0,
        favourite_platform: 0,
    });
    streams
}

// ---------------------------------------------------------------------------------------------
// Shared platforms: hosts every kind of sender links to, so a link host alone does not tell
// campaigns apart. Drawn from their own random streams (salted seed), so the platform knobs
// change nothing else in the corpus.

/// Salt of the platform random streams.
const PLATFORM_SALT: u64 = 0x706C_6174_666F_726D;
/// Share of a stream's platform links that go to its favourite platform.
const FAVOURITE_PLATFORM: f64 = 0.5;

/// A pronounceable made-up word of `syllables` consonant-vowel pairs (nothing like a real
/// platform's name, and too short to be a generated brand name).
fn made_up_word(rng: &mut Rng, syllables: usize) -> String {
    const C: &[u8] = b"bdfgklmnprstvz";
    const V: &[u8] = b"aeiou";
    (0..syllables)
        .flat_map(|_| [C[rng.below(C.len())], V[rng.below(V.len())]])
        .map(char::from)
        .collect()
}

/// The corpus's three platform hosts: a link shortener, a click tracker and an image CDN, each
/// on its own registrable domain.
fn make_platforms(seed: u64) -> [String; 3] {
    let rng = &mut Rng::new(seed ^ PLATFORM_SALT, 0);
    let mut words = std::collections::BTreeSet::new();
    let w = unique(rng, 3, &mut words, |rng| made_up_word(rng, 3));
    [
        format!("{}.link", w[0]),
        format!("t.{}.net", w[1]),
        format!("img.{}-cdn.com", w[2]),
    ]
}

/// Give every stream its platform habits: how often (relative to the share) and which first.
fn platform_habits(seed: u64, streams: &mut [Stream]) {
    let rng = &mut Rng::new(seed ^ PLATFORM_SALT, 1);
    for s in streams {
        s.platform_factor = 0.5 + rng.below(1001) as f64 / 1000.0;
        s.favourite_platform = rng.below(3);
    }
}

/// A shared-platform link of one message.
struct PlatformLink {
    host: String,
    url: String,
    /// Put before the landing link (else after it).
    before: bool,
}

/// The platform link of message `n`, if it has one.
fn platform_link(world: &World, stream: &Stream, seed: u64, n: usize) -> Option<PlatformLink> {
    if world.platform_share <= 0.0 {
        return None;
    }
    let rng = &mut Rng::new(seed ^ PLATFORM_SALT, n as u64 + 2);
    if !rng.chance((world.platform_share * stream.platform_factor).min(1.0)) {
        return None;
    }
    let which = if rng.chance(FAVOURITE_PLATFORM) {
        stream.favourite_platform
    } else {
        (stream.favourite_platform + rng.range(1, 2)) % 3
    };
    let host = world.platforms[which].clone();
    let url = match which {
        0 => format!("https://{host}/{}", token(rng, 7)),
        1 => format!(
            "https://{host}/r/{}?e={}&u={}",
            token(rng, 10),
            hex(rng, 8),
            rng.range(100_000, 999_999)
        ),
        _ => format!(
            "https://{host}/i/{}/{}",
            hex(rng, 16),
            rng.pick(&["logo.png", "banner.jpg", "hero.png", "pixel.gif"])
        ),
    };
    Some(PlatformLink {
        host,
        url,
        before: rng.chance(0.5),
    })
}

/// Which of `n` consecutive slices of the stream's time window `t` falls in.
fn time_slice(s: &Stream, t: i64, n: usize) -> usize {
    let span = s.days.max(1) * 86_400;
    let offset = (t - (YEAR_2024 + s.start_day * 86_400)).clamp(0, span - 1);
    ((offset as i128 * n as i128 / span as i128) as usize).min(n.saturating_sub(1))
}

/// A wave's landing host at time `t`: hosts rotate (burnt ones are replaced), so the window is
/// cut into one slice per host and a message mostly links to its slice's host.
fn wave_landing<'s>(rng: &mut Rng, s: &'s Stream, t: i64) -> &'s str {
    if rng.chance(LANDING_IN_SLICE) {
        &s.landing[time_slice(s, t, s.landing.len())]
    } else {
        rng.pick(&s.landing).as_str()
    }
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
    /// The shared-platform host the body links to, if any.
    platform: Option<String>,
}

struct World {
    keys: Vec<GenKey>,
    /// Sending domains: campaign families, big brands, noise senders.
    brands: Vec<Domain>,
    esps: Vec<Domain>,
    /// Where messages come from: campaigns, brand mail, noise; picked by weight.
    streams: Vec<Stream>,
    total_weight: usize,
    /// Shared-platform hosts: link shortener, click tracker, image CDN.
    platforms: [String; 3],
    platform_share: f64,
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
    let sender = rng.below(stream.senders.len());
    let brand = &world.brands[stream.senders[sender]];
    // The gateway of the brand in From (echo and legit).
    let relay = stream.relays.get(sender).map_or("", String::as_str);
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
        StreamKind::Echo => wave_landing(rng, stream, t_sign).to_string(),
        _ => rng.pick(&stream.landing).clone(),
    };
    let link = format!(
        "https://{landing}/c/{}?u={}",
        token(rng, 12),
        rng.range(100_000, 999_999)
    );
    let link_at = text.len();
    if rng.chance(0.1) {
        // Rewritten by a URL-defense gateway on the way: a host every campaign shares.
        text.push(format!(
            "https://urldefense.example/v3/__{link}__;!!{}$",
            token(rng, 10)
        ));
    } else {
        text.push(link);
    }
    // A shared-platform link beside the landing link (its own random stream: see
    // `platform_link`).
    let platform = platform_link(world, stream, seed, n).map(|p| {
        text.insert(if p.before { link_at } else { link_at + 1 }, p.url);
        p.host
    });
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
    // Campaigns send from their networks, now and then from a stray address elsewhere; a
    // wave's injector is always one of the wave's own networks (its VPS hosts).
    let first_ip = match kind {
        StreamKind::Noise => public_ip(rng),
        StreamKind::Spam | StreamKind::Legit if rng.chance(0.02) => public_ip(rng),
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
        // The three Microsoft 365 hops are made oldest first and put newest first, as each
        // server adds its Received field above the ones before it.
        let m365_hops = h.len();
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
            region.to_uppercase(), token(rng, 10).to_lowercase(), relay, token(rng, 10), rfc5322(t0 + 3, 0)
        ));
        h[m365_hops..].reverse();
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
        (ip, relay.to_string())
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
        platform,
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

/// Everything messages are made from: domains, streams and platforms (a function of the seed
/// and the wave and platform knobs), and the keys.
fn make_world(opts: &GenerateOptions, keys: Vec<GenKey>) -> World {
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
    let shape = WaveShape {
        waves: opts.waves,
        brands: opts.wave_brands,
        tenants: opts.wave_tenants,
        nets: opts.wave_nets,
        landings: opts.wave_landings,
    };
    let mut streams = make_streams(&mut rng, nkeys, &mut brands, &shape);
    platform_habits(opts.seed, &mut streams);
    let total_weight = streams.iter().map(|s| s.weight).sum();
    World {
        keys,
        brands,
        esps,
        streams,
        total_weight,
        platforms: make_platforms(opts.seed),
        platform_share: opts.platform_share,
    }
}

/// Make the corpus, keys and truth files in `opts.out`.
pub fn generate(opts: &GenerateOptions) -> anyhow::Result<GenerateReport> {
    opts.check()?;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let started = Instant::now();
    let keys = make_keys(opts.keys_from.as_deref(), opts.only)?;
    let key_seconds = started.elapsed().as_secs_f64();
    let world = make_world(opts, keys);

    // keys.zone and keys.private.
    let mut zone = format!(
        "; mailcensus generate --seed {} : DKIM keys ({} keys)\n$TTL 3600\n",
        opts.seed,
        world.keys.len()
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
        "platform",
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
                m.platform.as_deref().unwrap_or(""),
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

    // -----------------------------------------------------------------------------------------
    // Corpus shape: the wave and platform knobs.

    /// Fresh Ed25519 keys (fast to make), and copies of them for a second world.
    fn fast_keys() -> Vec<GenKey> {
        make_keys(None, Some(KeyKind::Ed25519)).expect("keys")
    }

    fn copy_keys(keys: &[GenKey]) -> Vec<GenKey> {
        keys.iter()
            .map(|k| GenKey::build(k.id.clone(), k.kind, Some(k.private_der.clone())).unwrap())
            .collect()
    }

    /// The world of `opts` and its messages, made in memory.
    fn sample(opts: &GenerateOptions, keys: Vec<GenKey>) -> (World, Vec<GenMessage>) {
        let world = make_world(opts, keys);
        let msgs = (0..opts.messages)
            .into_par_iter()
            .map(|n| make_message(&world, opts.seed, n))
            .collect();
        (world, msgs)
    }

    fn opts(messages: usize, seed: u64) -> GenerateOptions {
        GenerateOptions::new(messages, seed, PathBuf::from("unused"))
    }

    /// The header block of a message, one string per field (folds kept).
    fn fields(wire: &[u8]) -> Vec<String> {
        let end = memchr::memmem::find(wire, b"\r\n\r\n").expect("header end");
        let head = String::from_utf8_lossy(&wire[..end]).into_owned();
        let mut out: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            match out.last_mut() {
                Some(last) if line.starts_with([' ', '\t']) => {
                    last.push_str("\r\n");
                    last.push_str(line);
                }
                _ => out.push(line.to_string()),
            }
        }
        out
    }

    fn field<'f>(fields: &'f [String], name: &str) -> Vec<&'f str> {
        let prefix = format!("{name}: ");
        fields
            .iter()
            .filter_map(|f| f.strip_prefix(&prefix))
            .collect()
    }

    /// What a wave message shows: From domain, tenant id, injector /24, the relay it left by.
    struct WaveFacts {
        from_domain: String,
        tenant: String,
        injector_net: String,
        relay: String,
    }

    fn wave_facts(m: &GenMessage) -> WaveFacts {
        let f = fields(&m.wire);
        let from = field(&f, "From")[0];
        let from_domain = from
            .rsplit_once('@')
            .and_then(|(_, d)| d.strip_suffix('>'))
            .expect("From address")
            .to_string();
        let tenant = field(&f, "X-MS-Exchange-CrossTenant-Id")[0].to_string();
        let received = field(&f, "Received");
        // The hop into the tenant: `from vps-N.host (a.b.c.d) by T.mail.protection.outlook.com`.
        let into_m365 = received
            .iter()
            .find(|r| r.contains(".mail.protection.outlook.com "))
            .expect("hop into M365");
        let ip = into_m365
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .expect("injector address")
            .0;
        let injector_net = ip.rsplit_once('.').expect("IPv4").0.to_string();
        let out_of_m365 = received
            .iter()
            .find(|r| r.contains("outbound.protection.outlook.com"))
            .expect("M365 outbound hop");
        let relay = out_of_m365
            .split(" by ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .expect("relay host")
            .to_string();
        WaveFacts {
            from_domain,
            tenant,
            injector_net,
            relay,
        }
    }

    fn waves_of(msgs: &[GenMessage]) -> BTreeMap<&str, Vec<&GenMessage>> {
        let mut waves: BTreeMap<&str, Vec<&GenMessage>> = BTreeMap::new();
        for m in msgs.iter().filter(|m| m.campaign.starts_with("echo-")) {
            waves.entry(m.campaign.as_str()).or_default().push(m);
        }
        waves
    }

    #[test]
    fn wave_shape_follows_the_options() {
        let mut o = opts(2_000, 7);
        o.wave_brands = (6, 6);
        o.wave_tenants = (12, 12);
        o.wave_nets = (3, 3);
        let (_, msgs) = sample(&o, fast_keys());
        let legit: std::collections::BTreeSet<&str> =
            BIG_BRANDS[..LEGIT_BRANDS].iter().map(|b| b.0).collect();
        let waves = waves_of(&msgs);
        assert_eq!(waves.len(), 3, "{:?}", waves.keys());
        for (id, ms) in &waves {
            assert!(ms.iter().all(|m| m.echospoof), "{id}");
            let facts: Vec<WaveFacts> = ms.iter().map(|m| wave_facts(m)).collect();
            let distinct = |get: fn(&WaveFacts) -> &str| {
                facts
                    .iter()
                    .map(get)
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let brands = distinct(|f| &f.from_domain);
            assert_eq!(brands.len(), 6, "{id}: {brands:?}");
            assert_eq!(distinct(|f| &f.tenant).len(), 12, "{id}");
            assert_eq!(distinct(|f| &f.injector_net).len(), 3, "{id}");
            assert!(
                brands.iter().any(|b| legit.contains(b)),
                "{id}: spoofs a brand with its own mail"
            );
            // Each brand's messages go through that brand's own relay.
            let mut relay_of: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
            for f in &facts {
                relay_of.entry(&f.from_domain).or_default().insert(&f.relay);
            }
            assert!(
                relay_of.values().all(|r| r.len() == 1),
                "{id}: {relay_of:?}"
            );
        }
        // No tenant or injector network is shared by two waves.
        let mut seen = BTreeMap::new();
        for (id, ms) in &waves {
            for f in ms.iter().map(|m| wave_facts(m)) {
                for key in [f.tenant, f.injector_net] {
                    assert_eq!(*seen.entry(key).or_insert(*id), *id);
                }
            }
        }
    }

    #[test]
    fn default_waves_keep_their_shape_and_controls() {
        let (world, msgs) = sample(&opts(2_000, 3), fast_keys());
        let waves: Vec<&Stream> = world
            .streams
            .iter()
            .filter(|s| s.kind == StreamKind::Echo)
            .collect();
        assert_eq!(waves.len(), 3);
        assert_eq!(
            waves.iter().map(|s| s.hrdp).collect::<Vec<_>>(),
            [false, false, true]
        );
        for s in &waves {
            assert!((1..=2).contains(&s.senders.len()), "{}", s.id);
            assert!((2..=5).contains(&s.tenants.len()), "{}", s.id);
            assert!((1..=2).contains(&s.nets.len()), "{}", s.id);
            assert!((2..=3).contains(&s.landing.len()), "{}", s.id);
        }
        // The legit streams send mail as brands that the waves spoof.
        let legit: std::collections::BTreeSet<&str> = msgs
            .iter()
            .filter(|m| m.campaign.starts_with("legit-"))
            .map(|m| m.from_domain.as_str())
            .collect();
        assert_eq!(legit.len(), LEGIT_BRANDS);
        for (id, ms) in waves_of(&msgs) {
            assert!(
                ms.iter().any(|m| legit.contains(m.from_domain.as_str())),
                "{id}"
            );
        }
    }

    #[test]
    fn wave_landings_rotate_in_time() {
        let mut o = opts(2_000, 11);
        o.wave_landings = (3, 3);
        let (world, msgs) = sample(&o, fast_keys());
        for s in world.streams.iter().filter(|s| s.kind == StreamKind::Echo) {
            assert_eq!(s.landing.len(), 3);
            // Per time slice: how many messages, how many link to the slice's own domain.
            let mut per_slice = [(0usize, 0usize); 3];
            for m in msgs.iter().filter(|m| m.campaign == s.id) {
                // The Message-ID carries the signing time: `<token.TIME@domain>`.
                let t: i64 = m.message_id[1..]
                    .split(['.', '@'])
                    .nth(1)
                    .and_then(|t| t.parse().ok())
                    .expect("time in Message-ID");
                let body = String::from_utf8_lossy(&m.wire);
                let used: Vec<usize> = (0..3)
                    .filter(|&i| body.contains(&format!("https://{}/", s.landing[i])))
                    .collect();
                assert_eq!(used.len(), 1, "{}: one landing domain", s.id);
                let slice = time_slice(s, t, 3);
                per_slice[slice].0 += 1;
                per_slice[slice].1 += usize::from(used[0] == slice);
            }
            for (i, (n, own)) in per_slice.iter().enumerate() {
                assert!(*n >= 10, "{}: slice {i} has {n} messages", s.id);
                assert!(
                    *own as f64 >= 0.75 * *n as f64,
                    "{}: slice {i}: {own} of {n} use domain {i}",
                    s.id
                );
            }
        }
    }

    /// Platform hosts linked in a message's text.
    fn platforms_in<'w>(world: &'w World, m: &GenMessage) -> Vec<&'w str> {
        let body = String::from_utf8_lossy(&m.wire);
        world
            .platforms
            .iter()
            .filter(|h| body.contains(&format!("https://{h}/")))
            .map(String::as_str)
            .collect()
    }

    #[test]
    fn platform_share_sets_how_many_messages_link_to_platforms() {
        let keys = fast_keys();
        let mut o = opts(2_000, 5);
        o.platform_share = 0.0;
        let (world0, none) = sample(&o, copy_keys(&keys));
        assert!(
            none.iter()
                .all(|m| m.platform.is_none() && platforms_in(&world0, m).is_empty())
        );
        o.platform_share = 0.15;
        let (world, some) = sample(&o, keys);
        assert_eq!(world.platforms, world0.platforms);
        let mut with = 0;
        let mut streams = std::collections::BTreeSet::new();
        for (m, m0) in some.iter().zip(&none) {
            let found = platforms_in(&world, m);
            assert_eq!(found, m.platform.as_deref().into_iter().collect::<Vec<_>>());
            if m.platform.is_some() {
                with += 1;
                streams.insert(m.campaign.clone());
            } else {
                // The share changes nothing else.
                assert_eq!(m.wire, m0.wire);
            }
        }
        let share = with as f64 / some.len() as f64;
        assert!((0.10..=0.20).contains(&share), "share {share}");
        assert!(
            streams.len() > 8,
            "platform links in many streams: {streams:?}"
        );
        // Three distinct registrable domains, none like the well-known shared hosts.
        let [a, b, c] = &world.platforms;
        assert!(a.ends_with(".link") && b.starts_with("t.") && c.starts_with("img."));
        assert!(c.ends_with("-cdn.com"));
        let orgs: std::collections::BTreeSet<&str> = world
            .platforms
            .iter()
            .map(|h| h.trim_start_matches("t.").trim_start_matches("img."))
            .collect();
        assert_eq!(orgs.len(), 3);
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let mut o = GenerateOptions::new(300, 99, a.path().to_path_buf());
        o.only = Some(KeyKind::Ed25519);
        o.wave_brands = (2, 4);
        o.wave_tenants = (3, 8);
        o.platform_share = 0.2;
        generate(&o).unwrap();
        generate(&GenerateOptions {
            out: b.path().to_path_buf(),
            keys_from: Some(a.path().to_path_buf()),
            ..o.clone()
        })
        .unwrap();
        for file in [
            "corpus.mbox",
            "truth.csv",
            "messages-truth.csv",
            "keys.zone",
        ] {
            let x = std::fs::read(a.path().join(file)).unwrap();
            let y = std::fs::read(b.path().join(file)).unwrap();
            assert!(x == y, "{file} differs");
        }
        let truth = std::fs::read_to_string(a.path().join("messages-truth.csv")).unwrap();
        assert!(truth.starts_with(
            "message_index,mbox_offset,message_id,from_domain,dkim_expected,campaign,echospoof,platform\n"
        ));
        assert!(truth.lines().skip(1).any(|l| !l.ends_with(',')));
    }

    #[test]
    fn count_ranges_and_limits() {
        assert_eq!(parse_count_range("2-5"), Ok((2, 5)));
        assert_eq!(parse_count_range("6"), Ok((6, 6)));
        assert!(parse_count_range("5-2").is_err());
        assert!(parse_count_range("x").is_err());
        assert!(parse_count_range("1-").is_err());
        let ok = opts(10, 1);
        assert!(ok.check().is_ok());
        for bad in [
            GenerateOptions {
                wave_brands: (1, BIG_BRAND_COUNT + 1),
                ..ok.clone()
            },
            GenerateOptions {
                wave_tenants: (0, 3),
                ..ok.clone()
            },
            GenerateOptions {
                platform_share: 1.5,
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
