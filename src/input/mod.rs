//! Stage 1, input: find the files to read and tell what each one holds.
//!
//! Takes the paths a user gave (files, directories, `-` for standard input) and gives, in a
//! deterministic order (command-line order, then directory entries sorted by name), one
//! [`Found`] per file: a file to read, or a file skipped or unreadable with its reason. Formats are
//! sniffed from content ([`sniff`]), never from the extension alone. Maildir `tmp/` folders and
//! Dovecot/Courier index files are skipped with a reason. Decompressors for streamed inputs are in
//! [`stream`].

pub mod stream;
pub mod units;

use std::io;
use std::path::{Path, PathBuf};

/// What a file (or a decompressed stream) holds, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An mbox: starts with a `From ` envelope line (one or many messages).
    Mbox,
    /// One RFC 5322 message.
    Message,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
    /// A tar archive (ustar or GNU).
    Tar,
    /// Nothing that looks like mail.
    NotMail,
}

impl Format {
    /// Whether the format is a compression wrapper around another format.
    pub fn is_compressed(self) -> bool {
        matches!(
            self,
            Format::Gzip | Format::Zstd | Format::Xz | Format::Bzip2
        )
    }
}

/// How many leading bytes [`sniff`] wants to see.
pub const SNIFF_BYTES: usize = 8192;

/// Tell the format of data from its first bytes (`head`, up to [`SNIFF_BYTES`]).
pub fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Format::Gzip;
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Format::Zstd;
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Format::Xz;
    }
    if head.len() >= 10
        && head.starts_with(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && head[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
    {
        return Format::Bzip2;
    }
    if head.len() >= 263 && &head[257..262] == b"ustar" {
        return Format::Tar;
    }
    // Blank lines before the first line are skipped, exactly as the splitter skips them.
    let mut text = head;
    while let Some(rest) = text
        .strip_prefix(b"\r\n")
        .or_else(|| text.strip_prefix(b"\n"))
    {
        text = rest;
    }
    if crate::split::is_from_line(crate::split::line_at(text, 0).0) {
        return Format::Mbox;
    }
    if crate::split::looks_like_header_block(text) {
        return Format::Message;
    }
    Format::NotMail
}

/// Tell the format of data from its first bytes, as [`sniff`] does, and then look past the
/// first line for mbox boundaries: a header-first file, a file whose first line is junk or a
/// broken envelope line, and a file cut mid-message are still an mbox when an envelope line
/// after a blank line appears in `window`. `window` is the data's first bytes up to the
/// per-message cap (all of them when shorter) — every read path passes the same bytes, so every
/// read path decides alike. `boundaries` is false where a file is one message by its place (a
/// Maildir folder): there only an envelope first line makes an mbox.
pub fn detect(window: &[u8], boundaries: bool) -> Format {
    let format = sniff(&window[..window.len().min(SNIFF_BYTES)]);
    if boundaries
        && matches!(format, Format::Message | Format::NotMail)
        && crate::split::first_entry(window).is_some()
    {
        return Format::Mbox;
    }
    format
}

/// One result of walking the inputs.
#[derive(Debug)]
pub enum Found {
    /// A file to read (regular file, or a FIFO/device named on the command line).
    File {
        path: PathBuf,
        /// Size in bytes for regular files; None for pipes and devices (read as streams).
        size: Option<u64>,
        /// In a Maildir `cur/` or `new/` folder: a message even when sniffing is unsure.
        in_maildir: bool,
    },
    /// Standard input (`-`), read as a stream.
    Stdin,
    /// A file deliberately not read, with the reason.
    Skipped { path: PathBuf, reason: &'static str },
    /// A path that could not be read, with the operating-system error.
    Unreadable { path: PathBuf, error: String },
}

/// File names that Maildir-keeping servers put beside messages; they are not messages.
pub fn is_maildir_metadata(name: &[u8]) -> bool {
    name.starts_with(b"dovecot")
        || name.starts_with(b"courier")
        || name == b"maildirfolder"
        || name == b"subscriptions"
        || name == b".customflags"
        || name == b"maildirsize"
        || name == b".uidvalidity"
        || name == b".mh_sequences"
}

/// Whether `dir` is the `cur` or `new` (or `tmp`) folder of a Maildir: it has that name and its
/// parent has the other Maildir folders.
fn maildir_folder(dir: &Path) -> Option<&'static str> {
    let name = dir.file_name()?.to_str()?;
    let kind = match name {
        "cur" => "cur",
        "new" => "new",
        "tmp" => "tmp",
        _ => return None,
    };
    let parent = dir.parent()?;
    let siblings = ["cur", "new", "tmp"]
        .iter()
        .filter(|s| **s != kind && parent.join(s).is_dir())
        .count();
    // A lone `new/` or `cur/` is still Maildir-like when a sibling exists; require one.
    if siblings >= 1 { Some(kind) } else { None }
}

/// Walk `paths` in order, calling `visit` for every file found. Directories are walked
/// recursively with entries sorted by name; symbolic links are followed (walkdir detects loops).
pub fn walk(paths: &[PathBuf], skip_dir: Option<&Path>, mut visit: impl FnMut(Found)) {
    // The directory to leave out, by its canonical path, compared only with directories of the
    // same name (one canonicalization per such directory, not per file).
    let skip = skip_dir.and_then(|d| Some((d.canonicalize().ok()?, d.file_name()?.to_owned())));
    for root in paths {
        if root.as_os_str() == "-" {
            visit(Found::Stdin);
            continue;
        }
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                visit(Found::Unreadable {
                    path: root.clone(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !meta.is_dir() {
            // Named on the command line: read it whatever it is (file, FIFO, device).
            visit(classify_file(root, &meta, true));
            continue;
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(true)
            .sort_by_file_name();
        let mut it = walker.into_iter();
        while let Some(entry) = it.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    let error = e
                        .io_error()
                        .map(io::Error::to_string)
                        .unwrap_or_else(|| e.to_string());
                    visit(Found::Unreadable { path, error });
                    continue;
                }
            };
            let path = entry.path();
            if entry.file_type().is_dir() {
                if let Some((skip_path, skip_name)) = &skip
                    && path.file_name() == Some(skip_name.as_os_str())
                    && path.canonicalize().is_ok_and(|p| p == *skip_path)
                {
                    visit(Found::Skipped {
                        path: path.to_path_buf(),
                        reason: "output-directory",
                    });
                    it.skip_current_dir();
                    continue;
                }
                if entry.depth() > 0 && maildir_folder(path) == Some("tmp") {
                    // Maildir tmp/ holds deliveries in progress, never finished messages.
                    visit(Found::Skipped {
                        path: path.to_path_buf(),
                        reason: "maildir-tmp",
                    });
                    it.skip_current_dir();
                }
                continue;
            }
            match entry.metadata() {
                Ok(meta) => visit(classify_file(path, &meta, false)),
                Err(e) => visit(Found::Unreadable {
                    path: path.to_path_buf(),
                    error: e.to_string(),
                }),
            }
        }
    }
}

fn classify_file(path: &Path, meta: &std::fs::Metadata, named: bool) -> Found {
    let name = path
        .file_name()
        .map(|n| n.as_encoded_bytes())
        .unwrap_or_default();
    let in_maildir = path
        .parent()
        .and_then(maildir_folder)
        .is_some_and(|k| k != "tmp");
    if !named && is_maildir_metadata(name) {
        return Found::Skipped {
            path: path.to_path_buf(),
            reason: "maildir-metadata",
        };
    }
    if meta.is_file() {
        Found::File {
            path: path.to_path_buf(),
            size: Some(meta.len()),
            in_maildir,
        }
    } else if named {
        Found::File {
            path: path.to_path_buf(),
            size: None,
            in_maildir: false,
        }
    } else {
        Found::Skipped {
            path: path.to_path_buf(),
            reason: "not-a-regular-file",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        assert_eq!(
            sniff(b"From a@b Mon May  6 00:10:11 2024\nX: y\n"),
            Format::Mbox
        );
        assert_eq!(
            sniff(b"Return-Path: <a@b>\nSubject: x\n\nhi"),
            Format::Message
        );
        assert_eq!(sniff(b"X-Foo: 1\nX-Bar: 2\n\n"), Format::Message);
        assert_eq!(sniff(b"# README\n\nhello: world"), Format::NotMail);
        assert_eq!(sniff(b"spam ../data/inmail.1\n"), Format::NotMail);
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Format::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Format::Zstd);
        assert_eq!(sniff(b"\xfd7zXZ\0rest"), Format::Xz);
        assert_eq!(sniff(b"BZh91AY&SYrest"), Format::Bzip2);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Format::Tar);
        assert_eq!(sniff(b""), Format::NotMail);
    }

    #[test]
    fn an_mbox_is_found_past_its_first_line() {
        let entry = b"\n\nFrom a@b Mon May  6 00:10:11 2024\nSubject: x\n\nhi\n";
        for head in [
            &b"junk first line"[..],
            b"From nobody\nSubject: no date on the envelope line\n\nbody",
            b"Subject: header first\n\nbody",
            b"ody text of a message cut at its start\n--boundary--",
        ] {
            let data = [head, &entry[..]].concat();
            assert_eq!(detect(&data, true), Format::Mbox, "{head:?}");
            assert_ne!(detect(&data, false), Format::Mbox, "{head:?}");
        }
        // A From line inside a paragraph is text.
        let text = b"Subject: x\n\nhello\nFrom a@b Mon May  6 00:10:11 2024\n";
        assert_eq!(detect(text, true), Format::Message);
        assert_eq!(detect(b"plain notes\n", true), Format::NotMail);
    }
}
