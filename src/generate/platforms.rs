//! Shared platforms: hosts every kind of sender links to, so a link host alone does not tell
//! campaigns apart. Drawn from their own random streams (salted seed), so the platform knobs
//! change nothing else in the corpus.
//!
//! Takes the seed (and, per message, the world and stream); gives the corpus's three platform
//! hosts, each stream's platform habits, and a message's platform link, if it has one.

use super::rng::{Rng, hex, token, unique};
use super::world::{Stream, World};

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
pub(super) fn make_platforms(seed: u64) -> [String; 3] {
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
pub(super) fn platform_habits(seed: u64, streams: &mut [Stream]) {
    let rng = &mut Rng::new(seed ^ PLATFORM_SALT, 1);
    for s in streams {
        s.platform_factor = 0.5 + rng.below(1001) as f64 / 1000.0;
        s.favourite_platform = rng.below(3);
    }
}

/// A shared-platform link of one message.
pub(super) struct PlatformLink {
    pub(super) host: String,
    pub(super) url: String,
    /// Put before the landing link (else after it).
    pub(super) before: bool,
}

/// The platform link of message `n`, if it has one.
pub(super) fn platform_link(
    world: &World,
    stream: &Stream,
    seed: u64,
    n: usize,
) -> Option<PlatformLink> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::message::GenMessage;
    use crate::generate::testutil::{copy_keys, fast_keys, opts, sample};

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
}
