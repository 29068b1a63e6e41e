//! RSA signatures under keys of 384 to 1023 bits: the keys old archives are signed with.
//!
//! RFC 8301 forbids them and aws-lc, the back end for every other key, refuses to load them, so
//! a signature under one cannot be checked there at all. This module checks them with the
//! RustCrypto `rsa` crate (PKCS #1 v1.5, the DigestInfo of SHA-1 or SHA-256), given the key's
//! `p=` bytes, the digest of the signed data and the signature. Whether the verdict counts is the
//! caller's policy (`--allow-weak-keys`); the cryptography here is the same either way.

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPublicKey};

/// Smallest key checked here; smaller ones are refused outright.
pub const MIN_BITS: usize = 384;

/// Largest key checked here; from 1024 bits on aws-lc checks them.
pub const MAX_BITS: usize = 1023;

/// DER prefix of the DigestInfo for a SHA-1 digest (RFC 8017 §9.2, note 1).
const SHA1_PREFIX: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

/// DER prefix of the DigestInfo for a SHA-256 digest.
const SHA256_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// A public RSA key from a DKIM key record's `p=` (base64-decoded): SubjectPublicKeyInfo, as
/// RFC 6376 says, or a bare PKCS #1 RSAPublicKey, as some signers publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakKey(RsaPublicKey);

impl WeakKey {
    pub fn from_der(der: &[u8]) -> Option<WeakKey> {
        RsaPublicKey::from_public_key_der(der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(der))
            .ok()
            .map(WeakKey)
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.0.n().bits()
    }

    /// Whether `signature` is this key's PKCS #1 v1.5 signature of `digest`, a SHA-1 (20 bytes)
    /// or SHA-256 (32 bytes) digest.
    pub fn verifies(&self, digest: &[u8], signature: &[u8]) -> bool {
        let prefix: &[u8] = match digest.len() {
            20 => &SHA1_PREFIX,
            32 => &SHA256_PREFIX,
            _ => return false,
        };
        let scheme = Pkcs1v15Sign {
            hash_len: Some(digest.len()),
            prefix: prefix.into(),
        };
        self.0.verify(scheme, digest, signature).is_ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aws_lc_rs::signature;
    use proptest::prelude::*;
    use rsa::RsaPrivateKey;
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::DecodePrivateKey;

    /// A deterministic random source for test key generation (SplitMix64).
    pub(crate) struct TestRng(pub(crate) u64);

    impl rsa::rand_core::RngCore for TestRng {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for chunk in dest.chunks_mut(8) {
                let v = self.next_u64().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rsa::rand_core::CryptoRng for TestRng {}

    /// One private key per size, made once: 1024 bits by the `rsa` crate (aws-lc makes none that
    /// small), 2048–4096 by aws-lc and carried over as PKCS #8.
    fn private_key(bits: usize) -> &'static RsaPrivateKey {
        use std::sync::OnceLock;
        static KEYS: OnceLock<Vec<(usize, RsaPrivateKey)>> = OnceLock::new();
        let keys = KEYS.get_or_init(|| {
            use aws_lc_rs::encoding::AsDer;
            let mut keys = vec![(
                1024,
                RsaPrivateKey::new(&mut TestRng(1024), 1024).expect("1024-bit key"),
            )];
            for (b, size) in [
                (2048, aws_lc_rs::rsa::KeySize::Rsa2048),
                (3072, aws_lc_rs::rsa::KeySize::Rsa3072),
                (4096, aws_lc_rs::rsa::KeySize::Rsa4096),
            ] {
                let pair = signature::RsaKeyPair::generate(size).expect("key generation");
                let der = pair.as_der().expect("PKCS #8");
                keys.push((
                    b,
                    RsaPrivateKey::from_pkcs8_der(der.as_ref()).expect("PKCS #8"),
                ));
            }
            keys
        });
        &keys
            .iter()
            .find(|(b, _)| *b == bits)
            .expect("a made size")
            .1
    }

    fn digest(sha1: bool, data: &[u8]) -> Vec<u8> {
        let alg = if sha1 {
            &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY
        } else {
            &aws_lc_rs::digest::SHA256
        };
        aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// On the keys both back ends take (1024–4096 bits) this one and aws-lc give the same
        /// answer: for a right signature, for the signature of other data, for a damaged one.
        #[test]
        fn agrees_with_aws_lc(
            size in 0usize..4,
            sha1 in any::<bool>(),
            data in proptest::collection::vec(any::<u8>(), 0..300),
            flip in any::<usize>(),
        ) {
            let bits = [1024, 2048, 3072, 4096][size];
            let private = private_key(bits);
            let public = RsaPublicKey::from(private);
            let digest_len = if sha1 { 20 } else { 32 };
            let prefix: &[u8] = if sha1 { &SHA1_PREFIX } else { &SHA256_PREFIX };
            let scheme = || Pkcs1v15Sign { hash_len: Some(digest_len), prefix: prefix.into() };
            let sig = private.sign(scheme(), &digest(sha1, &data)).expect("sign");
            let der = public.to_pkcs1_der().expect("PKCS #1");
            let ours = WeakKey::from_der(der.as_bytes()).expect("PKCS #1 public key");
            prop_assert_eq!(ours.bits(), bits);
            let alg: &dyn signature::VerificationAlgorithm = if sha1 {
                &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY
            } else {
                &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY
            };
            let theirs = signature::UnparsedPublicKey::new(alg, der.as_bytes());
            let mut other = data.clone();
            if other.is_empty() { other.push(0) } else { let i = flip % other.len(); other[i] ^= 1; }
            let mut damaged = sig.clone();
            let i = flip % damaged.len();
            damaged[i] ^= 0x40;
            for (bytes, signature, expect) in [(&data, &sig, true), (&other, &sig, false), (&data, &damaged, false)] {
                prop_assert_eq!(theirs.verify(bytes, signature).is_ok(), expect);
                prop_assert_eq!(ours.verifies(&digest(sha1, bytes), signature), expect);
            }
        }
    }

    #[test]
    fn a_512_bit_key_from_a_dkim_record_loads() {
        // The 512-bit key dkimpy's tests serve for example._domainkey.canonical.com.
        use base64::Engine;
        let p = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBANmBe10IgY+u7h3enWTukkqtUD5PR52Tb/mPfjC0QJTocVBq6Za/PlzfV+Py92VaCak19F4WrbVTK5Gg5tW220MCAwEAAQ==";
        let der = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        let key = WeakKey::from_der(&der).expect("SPKI");
        assert_eq!(key.bits(), 512);
        assert!(!key.verifies(&[0u8; 32], &[0u8; 64]));
    }
}
