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
//!
//! **Where things are.** This file takes the [`GenerateOptions`], checks them, and gives the
//! files: it makes the keys and the world, then the messages in parallel chunks, and writes
//! the mbox entries, zone lines, private keys and truth rows, with a [`GenerateReport`]. The
//! parts it draws on: `rng` (the seeded random stream and small random values), `keys`
//! (signing keys and DKIM signing), `world` (domains, selectors, streams, waves: what the
//! messages are made from), `platforms` (the shared platform hosts and links), `text` (word
//! pools, subjects, RFC 2047 encodings, dates) and `message` (one message, signed and damaged,
//! with its truth).

mod keys;
mod message;
mod platforms;
mod rng;
#[cfg(test)]
mod testutil;
mod text;
mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use base64::Engine as _;
use rayon::prelude::*;

pub use keys::KeyKind;
pub use world::BIG_BRAND_COUNT;

use keys::make_keys;
use message::{Expected, GenMessage, make_message};
use text::asctime;
use world::make_world;

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
    use super::testutil::opts;
    use super::*;

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
