//! The campaign facts file: one record per message, in input order, written once and read back
//! chunk by chunk by the grouping passes.
//!
//! Takes a message's [`MessageFacts`] with its evidence keys, From domain text and subject
//! ([`write_record`], what [`super::Grouping::add_unit`] writes), and gives them back per record
//! ([`for_each_record`]): the fixed part decoded as a [`Record`], then the keys, the From domain
//! text and the subject as slices of the buffer read. A record is [`RECORD_FIXED`] bytes (all
//! numbers little-endian), the From domain text, the subject, the keys as u64s, then the keys'
//! names (each a length byte and the name), which only a shard's partial carries: a run's own
//! scratch file leaves them out, since the grouping keeps each name once
//! ([`super::Grouping::add_unit`]). The file is scratch of one run, or a shard's partial read
//! back by a merge ([`FactsReader`], whole records back into a unit's [`Facts`]); the partial's
//! format version covers the layout.

use std::io;
use std::path::Path;

use crate::classify::relay::RelayEvidence;
use crate::message::{DkimClass, Facts, MessageFacts};
use crate::output::OutputError;

use super::io_err;

/// Bytes of the fixed part of a facts record (its texts and keys follow).
const RECORD_FIXED: usize = 80;

/// One decoded fixed record of the facts file.
pub(super) struct Record {
    pub(super) row_len: u32,
    pub(super) at: i64,
    pub(super) dkim: u8,
    pub(super) aligned: bool,
    pub(super) bits: u16,
    pub(super) brand: u64,
    pub(super) tenant: u64,
    pub(super) from_domain: u64,
    pub(super) origin_ip: u64,
    pub(super) origin_net: u64,
    pub(super) recipient: u64,
    pub(super) sender: u64,
    pub(super) origin_is_senders: bool,
}

impl Record {
    /// The fixed part of a message's record; the From domain text (`text_len` bytes), the
    /// subject (`subject_len` bytes), the keys (`keys` little-endian u64s) and their names
    /// (`names_len` bytes) follow it.
    fn encode(
        f: &MessageFacts,
        keys: usize,
        text_len: usize,
        subject_len: usize,
        names_len: usize,
    ) -> [u8; RECORD_FIXED] {
        let mut rec = [0u8; RECORD_FIXED];
        rec[0..4].copy_from_slice(&f.row_len.to_le_bytes());
        rec[4..12].copy_from_slice(&f.at.to_le_bytes());
        rec[12] = f.dkim as u8;
        rec[13] = u8::from(f.aligned_pass);
        rec[14..16].copy_from_slice(&f.relay.bits.to_le_bytes());
        rec[16] = keys as u8;
        rec[17] = u8::from(f.origin_is_senders);
        rec[18..20].copy_from_slice(&(text_len as u16).to_le_bytes());
        rec[20..22].copy_from_slice(&(subject_len as u16).to_le_bytes());
        rec[22..24].copy_from_slice(&(names_len as u16).to_le_bytes());
        for (i, v) in [
            f.brand,
            f.tenant,
            f.from_domain,
            f.origin_ip,
            f.origin_net,
            f.recipient,
            f.sender,
        ]
        .into_iter()
        .enumerate()
        {
            rec[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        rec
    }

    fn decode(rec: &[u8; RECORD_FIXED]) -> Record {
        let u64_at = |i: usize| u64::from_le_bytes(rec[24 + 8 * i..32 + 8 * i].try_into().unwrap());
        Record {
            row_len: u32::from_le_bytes(rec[0..4].try_into().unwrap()),
            at: i64::from_le_bytes(rec[4..12].try_into().unwrap()),
            dkim: rec[12],
            aligned: rec[13] != 0,
            bits: u16::from_le_bytes(rec[14..16].try_into().unwrap()),
            brand: u64_at(0),
            tenant: u64_at(1),
            from_domain: u64_at(2),
            origin_ip: u64_at(3),
            origin_net: u64_at(4),
            recipient: u64_at(5),
            sender: u64_at(6),
            origin_is_senders: rec[17] != 0,
        }
    }
}

/// Write one message's record with `write`, as [`for_each_record`] reads it: the fixed part, the
/// From domain text, the subject, the keys, then the keys' `names` when given (one per key, at
/// most 255 bytes each). Gives the bytes written.
pub(super) fn write_record<E>(
    f: &MessageFacts,
    keys: &[u64],
    from_text: &[u8],
    subject: &[u8],
    names: Option<&[&[u8]]>,
    mut write: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let names = names.unwrap_or_default();
    let names_len: usize = names.iter().map(|n| 1 + n.len().min(255)).sum();
    write(&Record::encode(
        f,
        keys.len(),
        from_text.len(),
        subject.len(),
        names_len,
    ))?;
    write(from_text)?;
    write(subject)?;
    for k in keys {
        write(&k.to_le_bytes())?;
    }
    for name in names {
        let name = &name[..name.len().min(255)];
        write(&[name.len() as u8])?;
        write(name)?;
    }
    Ok((RECORD_FIXED + from_text.len() + subject.len() + 8 * keys.len() + names_len) as u64)
}

/// Go through the facts records in `buf` (a whole number of them, as a chunk holds): the fixed
/// part, the keys, the From domain text and the subject of each.
pub(super) fn for_each_record(
    buf: &[u8],
    path: &Path,
    mut each: impl FnMut(&Record, &[u64], &[u8], &[u8]),
) -> Result<(), OutputError> {
    let mut keys: Vec<u64> = Vec::with_capacity(16);
    let mut at = 0;
    while at < buf.len() {
        let Some(fixed) = buf.get(at..at + RECORD_FIXED) else {
            break;
        };
        let fixed: &[u8; RECORD_FIXED] = fixed.try_into().unwrap_or(&[0; RECORD_FIXED]);
        let text_len = usize::from(u16::from_le_bytes([fixed[18], fixed[19]]));
        let subject_len = usize::from(u16::from_le_bytes([fixed[20], fixed[21]]));
        let n = usize::from(fixed[16]);
        let text_at = at + RECORD_FIXED;
        let subject_at = text_at + text_len;
        let keys_at = subject_at + subject_len;
        let names_len = usize::from(u16::from_le_bytes([fixed[22], fixed[23]]));
        let Some(raw) = buf.get(keys_at..keys_at + 8 * n) else {
            break;
        };
        if buf.len() < keys_at + 8 * n + names_len {
            break;
        }
        keys.clear();
        keys.extend(
            raw.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())),
        );
        each(
            &Record::decode(fixed),
            &keys,
            &buf[text_at..subject_at],
            &buf[subject_at..keys_at],
        );
        at = keys_at + 8 * n + names_len;
    }
    if at != buf.len() {
        return Err(io_err(path)(io::Error::new(
            io::ErrorKind::InvalidData,
            "truncated campaign facts record",
        )));
    }
    Ok(())
}

/// Write every fact of a unit with `write`, in order; gives the bytes written.
pub fn write_facts<E>(
    facts: &Facts,
    mut write: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let mut n = 0;
    let mut names: Vec<&[u8]> = Vec::new();
    for f in &facts.facts {
        let (keys, from_text, subject) = facts.parts(f);
        names.clear();
        names.extend(facts.key_names(f));
        n += write_record(f, keys, from_text, subject, Some(&names), &mut write)?;
    }
    Ok(n)
}

/// Reads a facts file back record by record, each into a unit's [`Facts`] as the message stage
/// made it.
pub struct FactsReader {
    reader: io::BufReader<std::fs::File>,
    path: std::path::PathBuf,
}

impl FactsReader {
    pub fn open(path: &Path) -> Result<FactsReader, OutputError> {
        let file = std::fs::File::open(path).map_err(|source| OutputError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(FactsReader {
            reader: io::BufReader::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
        })
    }

    /// Append the next record to `facts`; false at the end of the file. A record cut short is
    /// an error.
    pub fn next_into(&mut self, facts: &mut Facts) -> Result<bool, OutputError> {
        use io::Read;
        let err = |source: io::Error| OutputError::Read {
            path: self.path.clone(),
            source,
        };
        let mut fixed = [0u8; RECORD_FIXED];
        let mut got = 0;
        while got < RECORD_FIXED {
            match self.reader.read(&mut fixed[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "truncated campaign facts record",
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(e)),
            }
        }
        let text_len = usize::from(u16::from_le_bytes([fixed[18], fixed[19]]));
        let subject_len = usize::from(u16::from_le_bytes([fixed[20], fixed[21]]));
        let n = usize::from(fixed[16]);
        let text_at = facts.text.len();
        facts.text.resize(text_at + text_len + subject_len, 0);
        self.reader
            .read_exact(&mut facts.text[text_at..])
            .map_err(err)?;
        let names_len = usize::from(u16::from_le_bytes([fixed[22], fixed[23]]));
        let mut raw = vec![0u8; 8 * n + names_len];
        self.reader.read_exact(&mut raw).map_err(err)?;
        let keys_at = facts.keys.len();
        facts.keys.extend(
            raw[..8 * n]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default())),
        );
        // One name per key: a length byte and the name.
        let mut names = &raw[8 * n..];
        while let Some((&len, rest)) = names.split_first() {
            let Some(name) = rest.get(..usize::from(len)) else {
                break;
            };
            facts.key_names.push((facts.text.len() as u32, len));
            facts.text.extend_from_slice(name);
            names = &rest[usize::from(len)..];
        }
        if !names.is_empty() || facts.key_names.len() != facts.keys.len() {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidData,
                "campaign facts record whose key names do not match its keys",
            )));
        }
        let r = Record::decode(&fixed);
        facts.facts.push(MessageFacts {
            row_len: r.row_len,
            at: r.at,
            dkim: match r.dkim {
                1 => DkimClass::Pass,
                2 => DkimClass::Fail,
                _ => DkimClass::None,
            },
            aligned_pass: r.aligned,
            relay: RelayEvidence { bits: r.bits },
            brand: r.brand,
            tenant: r.tenant,
            from_domain: r.from_domain,
            origin_ip: r.origin_ip,
            origin_net: r.origin_net,
            recipient: r.recipient,
            sender: r.sender,
            origin_is_senders: r.origin_is_senders,
            keys: (keys_at as u32, n as u8),
            from_text: (text_at as u32, text_len as u16),
            subject_text: ((text_at + text_len) as u32, subject_len as u16),
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::relay::RelayEvidence;
    use crate::message::{DkimClass, Facts};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A message's facts with its keys (each with its name), From domain text and subject.
    type Message = (MessageFacts, Vec<(u64, Vec<u8>)>, Vec<u8>, Vec<u8>);

    /// One message (every field of its facts, the buffer positions left for [`unit`] to set), at
    /// the sizes the workers allow.
    fn message() -> impl Strategy<Value = Message> {
        let fixed = (
            any::<u32>(),
            any::<i64>(),
            prop::sample::select(vec![DkimClass::None, DkimClass::Pass, DkimClass::Fail]),
            any::<bool>(),
            any::<u16>(),
            prop::array::uniform7(any::<u64>()),
            any::<bool>(),
        );
        (
            fixed,
            vec((any::<u64>(), vec(any::<u8>(), 0..=255)), 0..=255),
            vec(any::<u8>(), 0..=1024),
            vec(any::<u8>(), 0..=2048),
        )
            .prop_map(|(fixed, keys, from, subject)| {
                let (row_len, at, dkim, aligned_pass, bits, hashes, origin_is_senders) = fixed;
                let [
                    brand,
                    tenant,
                    from_domain,
                    origin_ip,
                    origin_net,
                    recipient,
                    sender,
                ] = hashes;
                let f = MessageFacts {
                    row_len,
                    at,
                    dkim,
                    aligned_pass,
                    relay: RelayEvidence { bits },
                    brand,
                    tenant,
                    from_domain,
                    origin_ip,
                    origin_net,
                    recipient,
                    sender,
                    origin_is_senders,
                    keys: (0, 0),
                    from_text: (0, 0),
                    subject_text: (0, 0),
                };
                (f, keys, from, subject)
            })
    }

    /// The messages as a worker hands them over: facts naming their slices of the unit's key
    /// and text buffers.
    fn unit(messages: Vec<Message>) -> Facts {
        let mut unit = Facts::default();
        for (mut f, keys, from, subject) in messages {
            f.keys = (unit.keys.len() as u32, keys.len() as u8);
            f.from_text = (unit.text.len() as u32, from.len() as u16);
            unit.text.extend_from_slice(&from);
            f.subject_text = (unit.text.len() as u32, subject.len() as u16);
            unit.text.extend_from_slice(&subject);
            // The names after the texts, where the reader puts them.
            for (key, name) in keys {
                unit.keys.push(key);
                unit.key_names
                    .push((unit.text.len() as u32, name.len() as u8));
                unit.text.extend_from_slice(&name);
            }
            unit.facts.push(f);
        }
        unit
    }

    /// The unit's facts file as `Grouping::add_unit` writes it (`names`: or a shard does), and
    /// where each record ends.
    fn facts_file(unit: &Facts, names: bool) -> (Vec<u8>, Vec<usize>) {
        let (mut buf, mut ends) = (Vec::new(), Vec::new());
        for f in &unit.facts {
            let (keys, from_text, subject) = unit.parts(f);
            let key_names: Vec<&[u8]> = unit.key_names(f).collect();
            let names = names.then_some(&key_names[..]);
            let written = write_record(f, keys, from_text, subject, names, |bytes| {
                buf.extend_from_slice(bytes);
                Ok::<(), std::convert::Infallible>(())
            });
            let Ok(written) = written;
            assert_eq!(
                written as usize,
                buf.len() - ends.last().copied().unwrap_or(0)
            );
            ends.push(buf.len());
        }
        (buf, ends)
    }

    proptest! {
        #[test]
        fn records_read_back_as_written(
            messages in vec(message(), 1..4),
            cuts in vec(any::<prop::sample::Index>(), 8),
            names in any::<bool>(),
        ) {
            let unit = unit(messages);
            let (buf, ends) = facts_file(&unit, names);
            let path = Path::new("campaign-facts.bin");
            let mut read = Vec::new();
            for_each_record(&buf, path, |r, keys, from_text, subject| {
                read.push((
                    (r.row_len, r.at, r.dkim, r.aligned, r.bits),
                    [r.brand, r.tenant, r.from_domain, r.origin_ip, r.origin_net, r.recipient, r.sender],
                    r.origin_is_senders,
                    (keys.to_vec(), from_text.to_vec(), subject.to_vec()),
                ));
            })
            .unwrap();
            prop_assert_eq!(read.len(), unit.facts.len());
            for (f, got) in unit.facts.iter().zip(&read) {
                // Named field by field, so that a field added to MessageFacts fails to compile
                // here until the record carries it (or this test says why it need not).
                let MessageFacts {
                    row_len,
                    at,
                    dkim,
                    aligned_pass,
                    relay,
                    brand,
                    tenant,
                    from_domain,
                    origin_ip,
                    origin_net,
                    recipient,
                    sender,
                    origin_is_senders,
                    keys: _,
                    from_text: _,
                    subject_text: _,
                } = *f;
                let (keys, from_text, subject) = unit.parts(f);
                prop_assert_eq!(got.0, (row_len, at, dkim as u8, aligned_pass, relay.bits));
                prop_assert_eq!(
                    got.1,
                    [brand, tenant, from_domain, origin_ip, origin_net, recipient, sender]
                );
                prop_assert_eq!(got.2, origin_is_senders);
                prop_assert_eq!(&got.3.0, keys);
                prop_assert_eq!(&got.3.1, from_text);
                prop_assert_eq!(&got.3.2, subject);
            }
            // Cut short: the whole records before the cut are read, and a cut inside a record
            // is an error (a cut between records looks like fewer records, as it must).
            for cut in cuts {
                let len = cut.index(buf.len());
                let whole = ends.iter().filter(|&&end| end <= len).count();
                let mut seen = 0;
                let result = for_each_record(&buf[..len], path, |_, _, _, _| seen += 1);
                prop_assert_eq!(seen, whole);
                prop_assert_eq!(result.is_ok(), len == 0 || ends.contains(&len), "cut at {}", len);
            }
        }

        #[test]
        fn any_bytes_give_records_or_an_error(buf in vec(any::<u8>(), 0..400)) {
            let _ = for_each_record(&buf, Path::new("campaign-facts.bin"), |_, _, _, _| {});
        }
    }

    proptest! {
        #[test]
        fn a_facts_file_reads_back_into_the_same_unit(messages in vec(message(), 0..6)) {
            let unit = unit(messages);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("facts.bin");
            let mut buf = Vec::new();
            let written = write_facts(&unit, |b| {
                buf.extend_from_slice(b);
                Ok::<(), std::convert::Infallible>(())
            });
            let Ok(written) = written;
            prop_assert_eq!(written as usize, buf.len());
            std::fs::write(&path, &buf).unwrap();
            let mut reader = FactsReader::open(&path).unwrap();
            let mut back = Facts::default();
            while reader.next_into(&mut back).unwrap() {}
            prop_assert_eq!(&back.facts, &unit.facts);
            prop_assert_eq!(&back.keys, &unit.keys);
            prop_assert_eq!(&back.text, &unit.text);
            prop_assert_eq!(&back.key_names, &unit.key_names);
            // A record cut short is an error, never a shorter unit.
            if !buf.is_empty() {
                std::fs::write(&path, &buf[..buf.len() - 1]).unwrap();
                let mut reader = FactsReader::open(&path).unwrap();
                let mut back = Facts::default();
                let mut result = Ok(true);
                while let Ok(true) = result {
                    result = reader.next_into(&mut back);
                }
                prop_assert!(result.is_err());
            }
        }
    }
}
