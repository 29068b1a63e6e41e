//! The shim that answers mail-auth's key lookups from the key store, without a network.
//!
//! Takes a [`KeyStore`] (and the policy its records are judged under) and gives a [`KeyCache`] of
//! parsed records by name; for each verification, [`Answers`] hands mail-auth the chosen record
//! of each name (NXDOMAIN for names the store does not have), so the verify future is complete on
//! its first poll ([`poll_once`]).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::task::{Context, Poll, Waker};

use mail_auth::{DnsError, Error, ResolverCache, Txt};

use super::Policy;
use super::key_record::{Key, parse_key};
use super::keys::{self, KeyStore};

/// Parsed keys by DNS name (lowercase, trailing dot), in store order.
pub(super) struct KeyCache {
    pub(super) keys: HashMap<Box<str>, Vec<Key>>,
}

impl KeyCache {
    pub(super) fn build(store: &KeyStore, policy: &Policy) -> KeyCache {
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

/// The TXT cache handed to mail-auth for one verification: always answers, choosing for each
/// name the key alternative in `choice` (index into the name's records), NXDOMAIN for names the
/// store does not have.
pub(super) struct Answers<'k> {
    pub(super) cache: &'k KeyCache,
    pub(super) choice: HashMap<Box<str>, usize>,
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
pub(super) fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}
