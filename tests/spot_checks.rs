//! Spot checks: single fields of single real messages, compared with values read by hand from
//! the files themselves (every expectation says where in the file it was read).
//!
//! The corpora in `../shared/corpora` are reached only through `common::corpora()` (a loud skip
//! when they are missing locally); the shipped sample in `data/` is always there.
//!
//! Conventions used below, from README.md "Output":
//! - `received_at` is the topmost Received timestamp that parses, in UTC;
//! - `size` is the wire size: without the mbox `From ` line, without the one blank separator
//!   line an mbox writer puts after each message, and without `>From ` quoting;
//! - `from` keeps the local part as written and lowercases the domain;
//! - `relay_path` is written earliest first, host names lowercased;
//! - in `received.csv`, hop 1 is the earliest (bottom) Received field; host names keep their case.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;

type Row = HashMap<String, String>;

/// One scan's output, kept alive with its temporary directory.
struct Scan {
    _out: tempfile::TempDir,
    messages: Vec<Row>,
    received: Vec<Row>,
}

fn scan_paths(paths: &[&Path]) -> Scan {
    let out = tempfile::tempdir().unwrap();
    let mut args: Vec<&std::ffi::OsStr> = paths.iter().map(|p| p.as_os_str()).collect();
    args.push(os("--received"));
    scan_ok(&args, out.path());
    let messages = rows(&out.path().join("messages.csv"));
    let received = rows(&out.path().join("received.csv"));
    Scan {
        _out: out,
        messages,
        received,
    }
}

impl Scan {
    /// The single row whose source ends with `name` (a file name, or `dir/file`).
    fn file(&self, name: &str) -> &Row {
        let found: Vec<&Row> = self
            .messages
            .iter()
            .filter(|r| r["source"].ends_with(name))
            .collect();
        assert_eq!(found.len(), 1, "rows whose source ends with {name:?}");
        found[0]
    }

    /// The row of the message at `offset` in the source ending with `name`.
    fn at(&self, name: &str, offset: u64) -> &Row {
        let offset = offset.to_string();
        let found: Vec<&Row> = self
            .messages
            .iter()
            .filter(|r| r["source"].ends_with(name) && r["entry_offset"] == offset)
            .collect();
        assert_eq!(found.len(), 1, "rows of {name:?} at offset {offset}");
        found[0]
    }

    /// The Received rows of one message, in hop order (1 = earliest).
    fn hops(&self, msg: &Row) -> Vec<&Row> {
        let mut v: Vec<&Row> = self
            .received
            .iter()
            .filter(|r| r["source"] == msg["source"] && r["entry_offset"] == msg["entry_offset"])
            .collect();
        v.sort_by_key(|r| r["hop"].parse::<u64>().expect("hop is a number"));
        v
    }
}

/// Compare every listed field and report all differences at once.
#[track_caller]
fn check(what: &str, row: &Row, expected: &[(&str, &str)]) {
    let bad: Vec<String> = expected
        .iter()
        .filter_map(|(k, want)| {
            let got = row
                .get(*k)
                .unwrap_or_else(|| panic!("{what}: no column {k}"));
            (got != want).then(|| {
                format!(
                    "  {k}: expected {want:?}\n  {:>w$}  got      {got:?}",
                    "",
                    w = k.len()
                )
            })
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} field(s) differ\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// `lossy_fields` as a sorted list of names.
fn lossy(row: &Row) -> Vec<&str> {
    let mut v: Vec<&str> = row["lossy_fields"]
        .split(';')
        .filter(|s| !s.is_empty())
        .collect();
    v.sort_unstable();
    v
}

// ------------------------------------------------------------------------------------------
// spamassassin-public
// ------------------------------------------------------------------------------------------

/// spam_2/00001: a file that begins with an mbox `From ` line, with a six-hop chain whose two
/// top hops are local (Postfix from 127.0.0.1, fetchmail from [127.0.0.1]).
#[test]
fn spamassassin_spam2_mbox_file_envelope_and_chain() {
    let Some(c) = corpora() else { return };
    let name = "00001.317e78fa8ee2f54cd4890fdc09ba8176";
    let s = scan_paths(&[&c.join("spamassassin-public/spam_2").join(name)]);
    assert_eq!(s.messages.len(), 1);
    let r = s.file(name);
    check(
        name,
        r,
        &[
            ("entry_offset", "0"),
            // 4721 bytes on disk (the MD5-named file): one entry.
            ("length", "4721"),
            // 4721 - 51 (the `From ilug-admin@linux.ie  Tue Aug  6 11:51:02 2002` line)
            // - 1 (the blank separator line: the file ends with "\n\n\n").
            ("size", "4669"),
            // Topmost Received: "Tue,  6 Aug 2002 06:48:09 -0400 (EDT)".
            ("received_at", "2002-08-06T10:48:09Z"),
            // Return-Path: <ilug-admin@linux.ie> (the `From ` line says the same).
            ("envelope_from", "ilug-admin@linux.ie"),
            // From: "Start Now" <startnow2002@hotmail.com>
            ("from_addr", "startnow2002@hotmail.com"),
            ("from_domain", "hotmail.com"),
            ("subject", "[ILUG] STOP THE MLM INSANITY"),
            ("message_id", "<1028311679.886@0.57.142>"),
            // To: ilug@linux.ie, no Cc.
            ("recipients", "1"),
            ("hops", "6"),
            // Hop 1 (localhost [127.0.0.1]) and hop 2 (fetchmail, phobos [127.0.0.1]) are local;
            // hop 3 is "from lugh.tuatha.org (root@lugh.tuatha.org [194.125.145.45]) by dogma".
            ("client_ip", "194.125.145.45"),
            // Bottom hop: "from 64.0.57.142 [202.63.165.34] by bettyjagessar.com (SMTPD32)":
            // the HELO name is "64.0.57.142", the connecting address is [202.63.165.34].
            ("origin_ip", "202.63.165.34"),
            (
                "relay_path",
                "202.63.165.34 > bettyjagessar.com > lugh.tuatha.org > lugh.tuatha.org \
                 > dogma.slashnull.org > localhost > phobos.labs.netnoteinc.com",
            ),
            // Content-Type: text/plain; charset="US-ASCII"; format=flowed
            ("content_type", "text/plain"),
            ("dkim_signatures", ""),
            ("malformed", ""),
            ("lossy_fields", ""),
        ],
    );

    let hops = s.hops(r);
    assert_eq!(hops.len(), 6, "received.csv rows for {name}");
    // Hop 1 (bottom, Ipswitch IMail): "from 64.0.57.142 [202.63.165.34] by bettyjagessar.com
    // (SMTPD32-7.06 EVAL) id A42A7FC01F2; Fri, 02 Aug 2002 02:18:18 -0400". The word after
    // `from` is the client's HELO argument (a bare dotted quad is not an RFC 5321
    // address-literal, which needs brackets); the bracketed address is the connection's.
    check(
        "00001 hop 1",
        hops[0],
        &[
            ("from_host", "64.0.57.142"),
            ("ip", "202.63.165.34"),
            ("by_host", "bettyjagessar.com"),
            ("timestamp", "2002-08-02T06:18:18Z"),
        ],
    );
    // Hop 2: "from bettyjagessar.com (w142.z064000057.nyc-ny.dsl.cnc.net [64.0.57.142]) by
    // lugh.tuatha.org (8.9.3/8.9.3) with ESMTP id WAA31201 for <ilug@linux.ie>; Fri, 2 Aug
    // 2002 22:50:11 +0100".
    check(
        "00001 hop 2",
        hops[1],
        &[
            ("from_host", "bettyjagessar.com"),
            ("from_rdns", "w142.z064000057.nyc-ny.dsl.cnc.net"),
            ("ip", "64.0.57.142"),
            ("by_host", "lugh.tuatha.org"),
            ("protocol", "ESMTP"),
            ("timestamp", "2002-08-02T21:50:11Z"),
        ],
    );
    // Hop 5: fetchmail "from phobos [127.0.0.1] by localhost with IMAP (fetchmail-5.9.0) for
    // jm@localhost (single-drop); Tue, 06 Aug 2002 11:48:09 +0100 (IST)".
    check(
        "00001 hop 5",
        hops[4],
        &[
            ("from_host", "phobos"),
            ("ip", "127.0.0.1"),
            ("by_host", "localhost"),
            ("protocol", "IMAP"),
            ("timestamp", "2002-08-06T10:48:09Z"),
        ],
    );
}

/// easy_ham/00001: a ten-hop mailing-list chain with RFC 1918 hops in the middle and at the
/// bottom, a mixed-case From domain, a folded List-Unsubscribe.
#[test]
fn spamassassin_easy_ham_list_message() {
    let Some(c) = corpora() else { return };
    let name = "00001.7c53336b37003a9286aba55d2945844c";
    let s = scan_paths(&[&c.join("spamassassin-public/easy_ham").join(name)]);
    let r = s.file(name);
    check(
        name,
        r,
        &[
            ("entry_offset", "0"),
            ("length", "5216"),
            // 5216 - 61 (From line) - 1 (blank separator at the end of the file).
            ("size", "5154"),
            // Topmost Received: "Thu, 22 Aug 2002 07:36:16 -0400 (EDT)".
            ("received_at", "2002-08-22T11:36:16Z"),
            // Date: Thu, 22 Aug 2002 18:26:25 +0700
            ("date", "2002-08-22T11:26:25Z"),
            // Return-Path: <exmh-workers-admin@spamassassin.taint.org>; the `From ` line says
            // exmh-workers-admin@redhat.com, Return-Path wins.
            ("envelope_from", "exmh-workers-admin@spamassassin.taint.org"),
            // From: Robert Elz <kre@munnari.OZ.AU> (domain lowercased).
            ("from_addr", "kre@munnari.oz.au"),
            ("from_domain", "munnari.oz.au"),
            ("subject", "Re: New Sequences Window"),
            ("message_id", "<13258.1030015585@munnari.OZ.AU>"),
            // To: Chris Garrigues <...>, Cc: exmh-workers@spamassassin.taint.org
            ("recipients", "2"),
            ("hops", "10"),
            // Hops 1-2 are 127.0.0.1; hop 3 "from listman.spamassassin.taint.org
            // (listman.spamassassin.taint.org [66.187.233.211]) by dogma.slashnull.org".
            ("client_ip", "66.187.233.211"),
            // From the bottom: 127.0.0.1 (munnari -> delta), 172.30.0.98 (delta -> ratree,
            // RFC 1918), then "from ratree.psu.ac.th ([202.28.97.6]) by mx1...".
            ("origin_ip", "202.28.97.6"),
            (
                "relay_path",
                "127.0.0.1 > delta.cs.mu.oz.au > ratree.psu.ac.th > mx1.spamassassin.taint.org \
                 > int-mx1.corp.redhat.com > int-mx1.corp.spamassassin.taint.org \
                 > listman.redhat.com > listman.redhat.com > dogma.slashnull.org > localhost \
                 > phobos.labs.netnoteinc.com",
            ),
            ("content_type", "text/plain"),
            ("x_mailer", ""),
            ("malformed", ""),
            ("lossy_fields", ""),
        ],
    );
    // List-Unsubscribe is folded over two lines; both URIs must be in the unfolded cell.
    let lu = &r["list_unsubscribe"];
    assert!(
        lu.starts_with("<https://listman.spamassassin.taint.org/mailman/listinfo/exmh-workers>,")
            && lu.ends_with("<mailto:exmh-workers-request@redhat.com?subject=unsubscribe>")
            && !lu.contains('\n'),
        "list_unsubscribe: {lu:?}"
    );
}

/// Raw 8-bit, non-UTF-8 header bytes: the field is written with U+FFFD and named in
/// `lossy_fields`. spam_2/00271 has Latin-1 "S\xe9bastien" in From; spam_2/00207 has Latin-1
/// "\xe9lections" in Subject.
#[test]
fn spamassassin_raw_8bit_headers_are_named_lossy() {
    let Some(c) = corpora() else { return };
    let dir = c.join("spamassassin-public/spam_2");
    let from8 = "00271.7105f4998a88cbf4036403f61ba60d65";
    let subj8 = "00207.47d129a97b8ce8572c9efb4c18a74192";
    let s = scan_paths(&[&dir.join(from8), &dir.join(subj8)]);

    let r = s.file(from8);
    check(
        from8,
        r,
        &[
            // From: "S\xe9bastien Pochic" <gryydw@aol.com> -- the only 8-bit header bytes.
            ("lossy_fields", "from"),
            ("from_addr", "gryydw@aol.com"),
            ("from_domain", "aol.com"),
            // Return-Path: gryydw@aol.com (no angle brackets)
            ("envelope_from", "gryydw@aol.com"),
            ("subject", "Help Your Body Regain Strength!! drsjc"),
            ("message_id", "<B0001172331@ikjin.co.kr>"),
            // Topmost Received: "Sat, 11 May 2002 22:06:42 +0100".
            ("received_at", "2002-05-11T21:06:42Z"),
            // Date: Sun, 12 May 2002 03:46:17 +0900
            ("date", "2002-05-11T18:46:17Z"),
            // One To address plus 90 separate `Cc:` fields of one address each.
            ("recipients", "91"),
            ("hops", "3"),
            // "from mandark.labs.netnoteinc.com ([213.105.180.140]) by dogma.slashnull.org"
            ("client_ip", "213.105.180.140"),
            // Bottom: "from aol.com (unverified [207.191.164.193]) by ikjin.co.kr"
            ("origin_ip", "207.191.164.193"),
            (
                "relay_path",
                "207.191.164.193 > ikjin.co.kr > mandark.labs.netnoteinc.com > dogma.slashnull.org",
            ),
            ("content_type", "text/html"),
            ("length", "6278"),
            // 6278 - 46 (From line) - 1 (separator).
            ("size", "6231"),
        ],
    );

    let r = s.file(subj8);
    check(
        subj8,
        r,
        &[
            // Subject: Le dernier sondage avant les \xe9lections presidentielles 2002 !
            (
                "subject",
                "Le dernier sondage avant les \u{FFFD}lections presidentielles 2002 !",
            ),
            ("lossy_fields", "subject"),
            // From: "SondageExpress" <sondageexpress3@ifrance.com>
            ("from_addr", "sondageexpress3@ifrance.com"),
            // Topmost Received: "Wed, 24 Apr 2002 20:36:09 +0100".
            ("received_at", "2002-04-24T19:36:09Z"),
            ("hops", "2"),
            ("client_ip", "213.203.124.147"),
            // Bottom: "from ifrance.com (40.105-30-212.9massy1-...9tel.net [212.30.105.40])"
            ("origin_ip", "212.30.105.40"),
        ],
    );
}

/// RFC 2047 subjects in spamassassin-public: ISO-8859-1 Q in easy_ham/02434 and spam_2/00410,
/// Big5 Q in spam_2/00704 (which also has a raw 8-bit Big5 From local part).
#[test]
fn spamassassin_rfc2047_subjects() {
    let Some(c) = corpora() else { return };
    let sa = c.join("spamassassin-public");
    let ham = "02434.37126367f2a918fead5ff8ea834cc334";
    let latin = "00410.fb7b31cdd9d053f8b446da7ce89383fa";
    let big5 = "00704.30306e2e506ca198fe8dea2b3c11346a";
    let s = scan_paths(&[
        &sa.join("easy_ham").join(ham),
        &sa.join("spam_2").join(latin),
        &sa.join("spam_2").join(big5),
    ]);

    // Subject: =?iso-8859-1?Q?Re:_RE:_=5Bzzzzteana=5D_Sitting_Bull_=FCber_alles_=5BLong=5D?=
    check(
        ham,
        s.file(ham),
        &[
            (
                "subject",
                "Re: RE: [zzzzteana] Sitting Bull über alles [Long]",
            ),
            ("lossy_fields", ""),
            ("from_addr", "billjac@earthlink.net"),
            (
                "envelope_from",
                "sentto-2242572-60166-1038789202-yyyy=spamassassin.taint.org@returns.groups.yahoo.com",
            ),
            // Topmost Received: "Mon,  2 Dec 2002 11:23:29 +0000 (GMT)".
            ("received_at", "2002-12-02T11:23:29Z"),
            // Date: Sun, 1 Dec 2002 18:42:59 -0500
            ("date", "2002-12-01T23:42:59Z"),
            ("recipients", "1"),
            ("hops", "9"),
            // Hop 3: "from n37.grp.scd.yahoo.com (n37.grp.scd.yahoo.com [66.218.66.105])".
            ("client_ip", "66.218.66.105"),
            // Bottom (Exim): "from dialup-64.154.74.212...level3.net ([64.154.74.212]
            // helo=oemcomputer) by mallard.mail.pas.earthlink.net".
            ("origin_ip", "64.154.74.212"),
            // "(qmail 96934 invoked from network)" and "(EGP: mail-8_2_3_0)" have no `by`.
            (
                "relay_path",
                "64.154.74.212 > mallard.mail.pas.earthlink.net > mta1.grp.scd.yahoo.com \
                 > m15.grp.scd.yahoo.com > ? > ? > n37.grp.scd.yahoo.com > dogma.slashnull.org \
                 > localhost > jmason.org",
            ),
            ("x_mailer", "Microsoft Outlook Express 5.00.2919.6600"),
            (
                "list_unsubscribe",
                "<mailto:zzzzteana-unsubscribe@yahoogroups.com>",
            ),
            ("content_type", "text/plain"),
        ],
    );

    // Subject: =?iso-8859-1?Q?Fw:_CD_Nua_do_dhamhsa=ED_Ch=E9il=ED?=
    check(
        latin,
        s.file(latin),
        &[
            ("subject", "Fw: CD Nua do dhamhsaí Chéilí"),
            ("from_addr", "rathcairn@eircom.net"),
            // The To field is folded over ~400 lines and holds 311 addresses (311 `<`, 311
            // `@`); several display names hold commas inside quotes ("Tony Parker, BBC",
            // "Morgan, Bernie", "Marrinan, Shonagh \\(CAP, GCF\\)") and encoded words.
            ("recipients", "311"),
            // Topmost Received: "Tue, 21 May 2002 16:10:29 +0100".
            ("received_at", "2002-05-21T15:10:29Z"),
            // Date: Tue, 21 May 2002 16:08:40 +0100
            ("date", "2002-05-21T15:08:40Z"),
            ("hops", "4"),
            ("client_ip", "213.105.180.140"),
            // Bottom (qmail): "from p93.as2.virginia1.eircom.net (HELO r60qn) (159.134.184.93)
            // by mail03.svc.cra.dublin.eircom.net"; above it "(qmail ... invoked from
            // network[...])" has no `by`.
            ("origin_ip", "159.134.184.93"),
            (
                "relay_path",
                "159.134.184.93 > mail03.svc.cra.dublin.eircom.net > ? \
                 > mandark.labs.netnoteinc.com > dogma.slashnull.org",
            ),
            ("x_mailer", "Microsoft Outlook Express 5.00.2919.6600"),
            ("content_type", "multipart/alternative"),
            ("lossy_fields", ""),
        ],
    );

    // Subject: [SA] =?big5?Q?Fw:=A7=DA=C4=B9=BF=FA=A4F?= 9iz5IOamknbO3ql9u1maoutC1cv
    // From: \xa3\xab\xbce@mx.serv.net (raw Big5 bytes in the local part)
    let r = s.file(big5);
    check(
        big5,
        r,
        &[
            ("subject", "[SA] Fw:我贏錢了 9iz5IOamknbO3ql9u1maoutC1cv"),
            ("lossy_fields", "from"),
            ("from_domain", "mx.serv.net"),
            // Return-Path: <spamassassin-sightings-admin@example.sourceforge.net>
            (
                "envelope_from",
                "spamassassin-sightings-admin@example.sourceforge.net",
            ),
            // Topmost Received: "Wed, 17 Jul 2002 12:24:45 -0400 (EDT)".
            ("received_at", "2002-07-17T16:24:45Z"),
            // Date: Fri, 12 Jul 2002 23:32:15 -0700 (PDT)
            ("date", "2002-07-13T06:32:15Z"),
            // To: new-10@mx.serv.net, new-11@mx.serv.net
            ("recipients", "2"),
            ("hops", "15"),
            // Hop 1 is 127.0.0.1; hop 2 is fetchmail "from dogma.slashnull.org [212.17.35.15]
            // by localhost with IMAP": the topmost public address.
            ("client_ip", "212.17.35.15"),
            // Bottom "from hotmail by titan.seed.net.tw" has no address; the one above is
            // "from u-8-cvn2uto (61-223-155-181.HINET-IP.hinet.net [61.223.155.181])".
            ("origin_ip", "61.223.155.181"),
            (
                "relay_path",
                "hotmail > titan.seed.net.tw > mx.serv.net > itchy.serv.net > itchy.serv.net \
                 > drizzle.com > drizzle.com > drizzle.com > mx.serv.net > itchy.serv.net \
                 > itchy.serv.net > usw-sf-list1.sourceforge.net > usw-sf-list2.sourceforge.net \
                 > dogma.slashnull.org > localhost > phobos.labs.netnoteinc.com",
            ),
            ("x_mailer", "WA9c2D478J2W9yTmQNRm"),
            ("content_type", "multipart/related"),
        ],
    );
    assert!(
        r["from_addr"].ends_with("e@mx.serv.net") && r["from_addr"].contains('\u{FFFD}'),
        "from: {:?}",
        r["from_addr"]
    );
}

// ------------------------------------------------------------------------------------------
// trec07p-sample
// ------------------------------------------------------------------------------------------

/// inmail.728: a subject of two adjacent encoded words split by folding whitespace (which
/// RFC 2047 section 6.2 says to drop: "Pe" + "rl"); inmail.1379: KOI8-R base64 subject.
#[test]
fn trec_rfc2047_subjects() {
    let Some(c) = corpora() else { return };
    let d = c.join("trec07p-sample/data");
    let s = scan_paths(&[&d.join("inmail.728"), &d.join("inmail.1379")]);

    // Subject: =?us-ascii?Q?Verified_for_Spam_=2DRODIN=2D_I2R=3A_Problem_Accessing_Pe?=
    //  <TAB>=?us-ascii?Q?rl_Modules_Through_=2Ehtaccess?=
    check(
        "inmail.728",
        s.file("/inmail.728"),
        &[
            (
                "subject",
                "Verified for Spam -RODIN- I2R: Problem Accessing Perl Modules Through .htaccess",
            ),
            ("lossy_fields", ""),
        ],
    );

    // Subject: =?koi8-r?B?5M/Iz8TZIM3P1s7PINrB0MzBzsnSz9fB1Ng=?=
    check(
        "inmail.1379",
        s.file("/inmail.1379"),
        &[
            ("subject", "Доходы можно запланировать"),
            // From: =?koi8-r?B?88XS18nT?= <qacptmeicpgpsb@mbsa.com>
            ("from_addr", "qacptmeicpgpsb@mbsa.com"),
            ("envelope_from", "qacptmeicpgpsb@mbsa.com"),
            // Topmost Received: "Mon, 9 Apr 2007 23:33:52 -0400".
            ("received_at", "2007-04-10T03:33:52Z"),
            // Date: Tue, 10 Apr 2007 09:02:28 +0500
            ("date", "2007-04-10T04:02:28Z"),
            ("recipients", "1"),
            ("hops", "4"),
            // "from plg2.math.uwaterloo.ca (plg2.math.uwaterloo.ca [129.97.186.80])"
            ("client_ip", "129.97.186.80"),
            // Bottom: "from 84.94.77.171.cable.012.net.il ([84.94.77.171]) by
            // i_mtaout1.012.net.il (HyperSendmail v2004.12)"
            ("origin_ip", "84.94.77.171"),
            (
                "relay_path",
                "84.94.77.171 > i_mtaout1.012.net.il > i_mtaout2.012.net.il \
                 > plg2.math.uwaterloo.ca > speedy.uwaterloo.ca",
            ),
            ("x_mailer", "Microsoft Office Outlook, Build 11.0.6353"),
            ("content_type", "multipart/alternative"),
            ("lossy_fields", ""),
        ],
    );
}

/// inmail.728: ten Received fields of many styles: qmail "(qmail N invoked by uid 514)" (the
/// word `by` inside a comment is not a by-clause), qpsmtpd, Postfix, Sun Java System Messaging
/// Server with "([192.122.134.10])by" and "mailhost.lit.org.sg(Sun Java..." written without
/// spaces, a "Received-SPF:" field that is not a Received field.
#[test]
fn trec_received_chain() {
    let Some(c) = corpora() else { return };
    let s = scan_paths(&[&c.join("trec07p-sample/data/inmail.728")]);
    let r = s.file("/inmail.728");
    check(
        "inmail.728",
        r,
        &[
            ("entry_offset", "0"),
            ("length", "5291"),
            // 5291 - 92 (From line) - 1 (separator); Content-Length: 2225 is the body without
            // that separator, so it agrees.
            ("size", "5198"),
            // Topmost Received: "Mon, 9 Apr 2007 10:26:41 -0400".
            ("received_at", "2007-04-09T14:26:41Z"),
            // Date: Mon, 09 Apr 2007 22:25:05 +0800
            ("date", "2007-04-09T14:25:05Z"),
            ("from_addr", "ewijaya@i2r.a-star.edu.sg"),
            ("from_domain", "i2r.a-star.edu.sg"),
            (
                "envelope_from",
                "beginners-return-90776-ktwarwic=speedy.uwaterloo.ca@perl.org",
            ),
            // Message-id: (lowercase "id" in the file)
            (
                "message_id",
                "<3ACF03E372996C4EACD542EA8A05E66A061679@mailbe01.teak.local.net>",
            ),
            ("recipients", "1"),
            ("hops", "10"),
            // Hop 1: "from lists.develooper.com (x6.develooper.com [63.251.223.186])".
            ("client_ip", "63.251.223.186"),
            // Bottom: "from mailbe01.teak.local.net ([192.122.134.10])by mailhost.lit.org.sg"
            // -- 192.122.0.0/16 is public address space (not 192.168/16).
            ("origin_ip", "192.122.134.10"),
            // From the bottom: mailhost.lit.org.sg, rodin..., IMSA, la.mx.develooper.com,
            // "(qmail 1861 invoked by alias)" -> ?, "(qmail 1873 invoked by uid 225)" -> ?,
            // lists.develooper.com, "(qmail 1150 invoked from network)" -> ?,
            // "(qmail 1159 invoked by uid 514)" -> ?, speedy.uwaterloo.ca.
            (
                "relay_path",
                "192.122.134.10 > mailhost.lit.org.sg > rodin.i2r.a-star.edu.sg > imsa \
                 > la.mx.develooper.com > ? > ? > lists.develooper.com > ? > ? \
                 > speedy.uwaterloo.ca",
            ),
            (
                "list_unsubscribe",
                "<mailto:beginners-unsubscribe@perl.org>",
            ),
            // Content-type: text/plain;<LF><TAB>charset=iso-8859-1
            ("content_type", "text/plain"),
        ],
    );

    let hops = s.hops(r);
    assert_eq!(hops.len(), 10, "received.csv rows for inmail.728");
    let nums: Vec<&str> = hops.iter().map(|h| h["hop"].as_str()).collect();
    assert_eq!(nums, ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    // Hop 1 = the bottom field: "from mailbe01.teak.local.net ([192.122.134.10])by
    // mailhost.lit.org.sg(Sun Java System Messaging Server ...)with ESMTP id <...> for
    // beginners@perl.org;Mon, 09 Apr 2007 22:25:50 +0800 (SGT)".
    check(
        "inmail.728 hop 1",
        hops[0],
        &[
            ("from_host", "mailbe01.teak.local.net"),
            ("ip", "192.122.134.10"),
            ("by_host", "mailhost.lit.org.sg"),
            ("protocol", "ESMTP"),
            ("timestamp", "2007-04-09T14:25:50Z"),
        ],
    );
    // Hop 2: "from newpascal.lit.org.sg (unknown [192.122.134.77])by rodin.i2r.a-star.edu.sg
    // (Postfix) with ESMTP id 1B1561DF18Bfor <beginners@perl.org>; Mon,  9 Apr 2007 22:27:14
    // +0800 (SGT)".
    check(
        "inmail.728 hop 2",
        hops[1],
        &[
            ("from_host", "newpascal.lit.org.sg"),
            ("ip", "192.122.134.77"),
            ("by_host", "rodin.i2r.a-star.edu.sg"),
            ("protocol", "ESMTP"),
            ("timestamp", "2007-04-09T14:27:14Z"),
        ],
    );
    // Hop 3: "from rodin.i2r.a-star.edu.sg (localhost.localdomain [127.0.0.1]) by IMSA".
    check(
        "inmail.728 hop 3",
        hops[2],
        &[
            ("from_host", "rodin.i2r.a-star.edu.sg"),
            ("from_rdns", "localhost.localdomain"),
            ("ip", "127.0.0.1"),
            ("by_host", "IMSA"),
        ],
    );
    // Hop 5: "(qmail 1861 invoked by alias); 9 Apr 2007 14:26:10 -0000" -- all comment.
    check(
        "inmail.728 hop 5",
        hops[4],
        &[
            ("from_host", ""),
            ("ip", ""),
            ("by_host", ""),
            ("timestamp", "2007-04-09T14:26:10Z"),
        ],
    );
    // Hop 10 = the topmost field: "from lists.develooper.com (x6.develooper.com
    // [63.251.223.186]) by speedy.uwaterloo.ca (8.12.8/8.12.5) with SMTP id l39EQf0I014939
    // for <ktwarwic@speedy.uwaterloo.ca>; Mon, 9 Apr 2007 10:26:41 -0400".
    check(
        "inmail.728 hop 10",
        hops[9],
        &[
            ("from_host", "lists.develooper.com"),
            ("from_rdns", "x6.develooper.com"),
            ("ip", "63.251.223.186"),
            ("by_host", "speedy.uwaterloo.ca"),
            ("protocol", "SMTP"),
            ("timestamp", "2007-04-09T14:26:41Z"),
        ],
    );
}

// ------------------------------------------------------------------------------------------
// nazario-phishing-mbox/20051114.mbox (Content-Length mbox)
// ------------------------------------------------------------------------------------------

/// Offsets were read with `grep -a -b '^From '` (438 `From ` lines, every one after a blank
/// line, all boundaries). Message #94 holds the file's one quoted body line `>From $1`.
#[test]
fn nazario_content_length_mbox_offsets() {
    let Some(c) = corpora() else { return };
    let s = scan_paths(&[&c.join("nazario-phishing-mbox/20051114.mbox")]);
    let f = "20051114.mbox";
    assert_eq!(s.messages.len(), 438, "messages in {f}");
    let offsets: Vec<&str> = s
        .messages
        .iter()
        .map(|r| r["entry_offset"].as_str())
        .collect();
    assert_eq!(offsets[0], "0");
    assert_eq!(offsets[1], "7130", "offset of message #2");
    assert_eq!(offsets[93], "707746", "offset of message #94");
    assert_eq!(offsets[437], "4053766", "offset of message #438");

    // #94: "From eBay.705443.57667.0@reply3.ebay.com  Wed Jul  6 23:16:34 2005" at byte 707746;
    // the next `From ` line is at 726838. Content-Length: 17794 = the body up to the blank
    // line before that, including the quoted line ">From $1".
    check(
        "20051114.mbox #94",
        s.at(f, 707746),
        &[
            ("length", "19092"),
            // 19092 - 67 (From line) - 1 (separator) - 1 (the `>` of ">From $1").
            ("size", "19023"),
            (
                "subject",
                "Don't Overspend - Summer Dollar Days are here on eBay!",
            ),
            // From: "eBay" <eBay@reply3.ebay.com>
            ("from_addr", "eBay@reply3.ebay.com"),
            ("envelope_from", "eBay.705443.57667.0@reply3.ebay.com"),
            (
                "message_id",
                "<1120706192005.eBay.705443.57667.0@reply3.ebay.com>",
            ),
            // Topmost Received: "Wed,  6 Jul 2005 23:16:33 -0400 (EDT)".
            ("received_at", "2005-07-07T03:16:33Z"),
            // Date: Wed, 6 Jul 2005 20:16:31 -0700
            ("date", "2005-07-07T03:16:31Z"),
            ("hops", "3"),
            // Hop 1 is from mail1.domain.com [10.0.2.3]; hop 2 "from smf-camp10.smf.ebay.com
            // (smfcamppool10.emailebay.com [66.135.215.239])".
            ("client_ip", "66.135.215.239"),
            // Bottom "from [10.108.161.74] (dooby5-snat.smf.ebay.com [10.108.160.74] (may be
            // forged))" is RFC 1918, so the earliest public address is eBay's outbound host.
            ("origin_ip", "66.135.215.239"),
            (
                "relay_path",
                "10.108.160.74 > smf-camp10.smf.ebay.com > mail1.domain.com > naughty.domain.com",
            ),
            ("x_mailer", "Kana Connect 6"),
            ("content_type", "multipart/alternative"),
            ("recipients", "1"),
            ("malformed", ""),
        ],
    );

    // #2: no Content-Length; "From online-banking@lasallebank.com  Wed Jun 15 16:45:29 2005".
    check(
        "20051114.mbox #2",
        s.at(f, 7130),
        &[
            // Next `From ` line at 10993.
            ("length", "3863"),
            // 3863 - 62 (From line) - 1 (separator).
            ("size", "3800"),
            (
                "subject",
                "ATM cards attention. conformation code? yftue  fvkg ts r",
            ),
            // From: "" <online-banking@lasallebank.com>
            ("from_addr", "online-banking@lasallebank.com"),
            ("message_id", "<7xv$03ng4$---$pk22k$s@m6zklvchq>"),
            // Topmost Received: "Wed, 15 Jun 2005 16:45:29 -0400 (EDT)".
            ("received_at", "2005-06-15T20:45:29Z"),
            // Date: Wed, 15 Jun 05 17:36:17 GMT -- a two-digit year, 2005 by RFC 5322 4.3.
            ("date", "2005-06-15T17:36:17Z"),
            ("hops", "3"),
            // "from pcp04337700pcs.stclco01.mi.comcast.net (... [68.60.190.245])"
            ("client_ip", "68.60.190.245"),
            // Bottom: "from [67.38.206.72] by pcp04337700pcs.stclco01.mi.comcast.net SMTP id
            // ...": the sender named only by its address literal.
            ("origin_ip", "67.38.206.72"),
            (
                "relay_path",
                "67.38.206.72 > pcp04337700pcs.stclco01.mi.comcast.net > mail1.domain.com \
                 > naughty.domain.com",
            ),
        ],
    );

    // #438, the last message: "From important-online@ncua.gov  Mon Jun 20 19:15:27 2005".
    check(
        "20051114.mbox #438",
        s.at(f, 4053766),
        &[
            // To the end of the 4,071,556-byte file.
            ("length", "17790"),
            // 17790 - 57 (From line) - 1 (separator); Content-Length: 16523 = body.
            ("size", "17732"),
            ("subject", "IMPORTANT: FCU Verification"),
            ("from_addr", "important-online@ncua.gov"),
            // To: undisclosed-recipients: ;  (an empty group)
            ("recipients", "0"),
            // Topmost Received: "Mon, 20 Jun 2005 19:15:27 -0400 (EDT)".
            ("received_at", "2005-06-20T23:15:27Z"),
            // Date: Tue, 21 Jun 2005 02:15:19 -0700
            ("date", "2005-06-21T09:15:19Z"),
            ("hops", "3"),
            ("client_ip", "65.182.99.22"),
            // Bottom: "from User ([82.79.186.161]) by sendmail2.brinkster.com".
            ("origin_ip", "82.79.186.161"),
            (
                "relay_path",
                "82.79.186.161 > sendmail2.brinkster.com > mail1.domain.com > naughty.domain.com",
            ),
            ("x_mailer", "Microsoft Outlook Express 6.00.2600.0000"),
            ("content_type", "text/html"),
        ],
    );
}

// ------------------------------------------------------------------------------------------
// mailbox-perl-mbox: the same 45 messages with LF (mbox.src) and CRLF (mbox.win) line ends
// ------------------------------------------------------------------------------------------

#[test]
fn mailbox_perl_lf_and_crlf_give_the_same_messages() {
    let Some(c) = corpora() else { return };
    let d = c.join("mailbox-perl-mbox");
    let s = scan_paths(&[&d.join("mbox.src"), &d.join("mbox.win")]);
    let src: Vec<&Row> = s
        .messages
        .iter()
        .filter(|r| r["source"].ends_with("mbox.src"))
        .collect();
    let win: Vec<&Row> = s
        .messages
        .iter()
        .filter(|r| r["source"].ends_with("mbox.win"))
        .collect();
    assert_eq!(src.len(), 45, "messages in mbox.src");
    assert_eq!(win.len(), 45, "messages in mbox.win");

    // Header fields do not depend on the line ends.
    let same = [
        "subject",
        "from_addr",
        "date",
        "received_at",
        "envelope_from",
        "message_id",
        "recipients",
        "hops",
        "client_ip",
        "origin_ip",
        "relay_path",
        "content_type",
        "x_mailer",
        "malformed",
    ];
    let mut diffs = Vec::new();
    for (i, (a, b)) in src.iter().zip(&win).enumerate() {
        for k in same {
            if a[k] != b[k] {
                diffs.push(format!(
                    "message #{}: {k}: mbox.src {:?} / mbox.win {:?}",
                    i + 1,
                    a[k],
                    b[k]
                ));
            }
        }
        for (k, v) in b.iter() {
            assert!(
                !v.contains('\r'),
                "mbox.win #{}: {k} holds a CR: {v:?}",
                i + 1
            );
        }
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));

    // Subjects read with grep in the header blocks: #1 and #2 "Re: File Conversion From HTML
    // to PS and TIFF", #21 and #28 have no Subject field, #45 "Font metrics".
    for rows in [&src, &win] {
        assert_eq!(
            rows[0]["subject"],
            "Re: File Conversion From HTML to PS and TIFF"
        );
        assert_eq!(
            rows[1]["subject"],
            "Re: File Conversion From HTML to PS and TIFF"
        );
        assert_eq!(rows[20]["subject"], "");
        assert_eq!(rows[27]["subject"], "");
        assert_eq!(rows[44]["subject"], "Font metrics");
    }

    // Message #2: "From magick-owner@unca-don.wizards.dupont.com Wed Feb  9 23:15 MET 2000".
    // mbox.src: at byte 2973, next `From ` at 6953; From line 72 bytes, separator "\n".
    // mbox.win: at byte 3043, next `From ` at 7121; From line 73 bytes, separator "\r\n".
    check(
        "mbox.src #2",
        src[1],
        &[
            ("entry_offset", "2973"),
            ("length", "3980"),
            ("size", "3907"),
        ],
    );
    check(
        "mbox.win #2",
        win[1],
        &[
            ("entry_offset", "3043"),
            ("length", "4078"),
            ("size", "4003"),
        ],
    );
    for (what, r) in [("mbox.src #2", src[1]), ("mbox.win #2", win[1])] {
        check(
            what,
            r,
            &[
                // No Return-Path: the sender on the `From ` line.
                ("envelope_from", "magick-owner@unca-don.wizards.dupont.com"),
                // From: "Lincoln, D. E. (Daniel)" <dlincol1@ford.com>
                ("from_addr", "dlincol1@ford.com"),
                ("message_id", "<200002092200.RAA19561@mailfw3.ford.com>"),
                // Topmost Received: "Wed, 9 Feb 2000 23:15:56 +0100 (MET)".
                ("received_at", "2000-02-09T22:15:56Z"),
                // Date: Wed, 09 Feb 2000 17:00:14 -0500
                ("date", "2000-02-09T22:00:14Z"),
                // To: 1 address; Cc: William Park, Mark Sappol, "magick@wizards.dupont.com"
                // <magick@wizards.dupont.com> (folded).
                ("recipients", "4"),
                ("hops", "5"),
                ("client_ip", "195.108.229.25"),
                // "from unca-don.wizards.dupont.com ([204.183.81.133]) by viper...".
                ("origin_ip", "204.183.81.133"),
                // Bottom: "(from majordomo@localhost) by unca-don.wizards.dupont.com": the
                // `from` is in a comment, so the first sender is unknown.
                (
                    "relay_path",
                    "? > unca-don.wizards.dupont.com > viper.oldcity.dca.net \
                     > ns.atcomputing.nl > ns.atcomputing.nl > atcmpg.atcomputing.nl",
                ),
                (
                    "x_mailer",
                    "Mozilla 4.7C-CCK-MCD cf47 [en] (X11; I; SunOS 5.6 sun4u)",
                ),
                ("content_type", "text/plain"),
            ],
        );
    }
}

// ------------------------------------------------------------------------------------------
// phishing-pot-sample: Microsoft 365 / Outlook messages
// ------------------------------------------------------------------------------------------

/// sample-241.eml (CRLF): Outlook.com -> Gmail, with X-OriginatorOrg (mixed case),
/// X-MS-Exchange-CrossTenant-id, one DKIM-Signature (plus ARC sets, which are not DKIM
/// signatures), IPv6 link-local and Microsoft IPv6 hops.
#[test]
fn phishing_pot_microsoft_365_message() {
    let Some(c) = corpora() else { return };
    let name = "sample-241.eml";
    let s = scan_paths(&[&c.join("phishing-pot-sample/email").join(name)]);
    let r = s.file(name);
    check(
        name,
        r,
        &[
            ("entry_offset", "0"),
            ("length", "13265"),
            ("size", "13265"),
            // X-MS-Exchange-CrossTenant-id: 84df9e7f-e9f6-40af-b435-aaaaaaaaaaaa
            ("tenant_id", "84df9e7f-e9f6-40af-b435-aaaaaaaaaaaa"),
            // X-OriginatorOrg: sct-15-20-4755-11-msonline-outlook-edb50.templateTenant
            // X-OriginatorOrg is Outlook.com's placeholder
            // `sct-15-20-4755-11-msonline-outlook-edb50.templateTenant`, not a domain.
            ("tenant_domain", ""),
            // DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=hotmail.com;
            //  s=selector1; ...
            ("dkim_signatures", "hotmail.com:selector1:rsa-sha256"),
            ("hops", "4"),
            // Topmost: "Received: by 2002:a05:612c:711:b0:381:73ac:3a65 with SMTP id ...;
            // Mon, 16 Jan 2023 09:03:44 -0800 (PST)" (no from clause, no client address);
            // next: "from NAM02-DM3-obe.outbound.protection.outlook.com
            // (mail-dm3nam02olkn2040.outbound.protection.outlook.com. [40.92.43.40]) by
            // mx.google.com".
            ("received_at", "2023-01-16T17:03:44Z"),
            ("client_ip", "40.92.43.40"),
            // Bottom: "from SA0PR04MB7370.namprd04.prod.outlook.com
            // ([fe80::6be0:2de4:9316:c0fb]) by SA0PR04MB7370..." is link-local; above it
            // "from SA0PR04MB7370.namprd04.prod.outlook.com (2603:10b6:806:e5::23) by
            // MWHPR04MB0398..." is global unicast.
            ("origin_ip", "2603:10b6:806:e5::23"),
            (
                "relay_path",
                "fe80::6be0:2de4:9316:c0fb > sa0pr04mb7370.namprd04.prod.outlook.com \
                 > mwhpr04mb0398.namprd04.prod.outlook.com > mx.google.com \
                 > 2002:a05:612c:711:b0:381:73ac:3a65",
            ),
            // Date: Mon, 16 Jan 2023 17:03:39 +0000
            ("date", "2023-01-16T17:03:39Z"),
            // From: phishing@pot <phishing@pot>  (the anonymised sender)
            ("from_addr", "phishing@pot"),
            ("from_domain", "pot"),
            ("envelope_from", "phishing@pot"),
            (
                "subject",
                "ENC: D.I.Y. 10-Second Carb Ritual Strips Away Fat",
            ),
            // Message-ID:<CRLF> <SA0PR04MB7370AF8...@SA0PR04MB7370.namprd04.prod.outlook.com>
            (
                "message_id",
                "<SA0PR04MB7370AF8AB2DFDC76884C7E78B3C19@SA0PR04MB7370.namprd04.prod.outlook.com>",
            ),
            ("recipients", "1"),
            ("content_type", "multipart/alternative"),
            ("lossy_fields", ""),
        ],
    );
    // Authentication-Results: mx.google.com;<CRLF>       dkim=pass header.i=@hotmail.com ...
    let ar = &r["auth_results"];
    assert!(
        ar.starts_with("mx.google.com;")
            && ar.contains("dkim=pass header.i=@hotmail.com header.s=selector1")
            && ar.contains("dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=hotmail.com")
            && !ar.contains('\r')
            && !ar.contains('\n'),
        "auth_results: {ar:?}"
    );

    let hops = s.hops(r);
    assert_eq!(hops.len(), 4, "received.csv rows for {name}");
    // Hop 1 (bottom): "from SA0PR04MB7370.namprd04.prod.outlook.com
    // ([fe80::6be0:2de4:9316:c0fb]) by SA0PR04MB7370.namprd04.prod.outlook.com
    // ([fe80::6be0:2de4:9316:c0fb%9]) with mapi id 15.20.5986.023; Mon, 16 Jan 2023
    // 17:03:39 +0000".
    check(
        "sample-241 hop 1",
        hops[0],
        &[
            ("from_host", "SA0PR04MB7370.namprd04.prod.outlook.com"),
            ("ip", "fe80::6be0:2de4:9316:c0fb"),
            ("by_host", "SA0PR04MB7370.namprd04.prod.outlook.com"),
            ("protocol", "mapi"),
            ("timestamp", "2023-01-16T17:03:39Z"),
        ],
    );
    // Hop 2: "from SA0PR04MB7370.namprd04.prod.outlook.com (2603:10b6:806:e5::23) by
    // MWHPR04MB0398.namprd04.prod.outlook.com (2603:10b6:300:72::13) with Microsoft SMTP
    // Server (...) id 15.20.5986.23; Mon, 16 Jan 2023 17:03:39 +0000".
    check(
        "sample-241 hop 2",
        hops[1],
        &[
            ("from_host", "SA0PR04MB7370.namprd04.prod.outlook.com"),
            ("ip", "2603:10b6:806:e5::23"),
            ("by_host", "MWHPR04MB0398.namprd04.prod.outlook.com"),
            ("timestamp", "2023-01-16T17:03:39Z"),
        ],
    );
    // Hop 3: the Gmail MX.
    check(
        "sample-241 hop 3",
        hops[2],
        &[
            ("from_host", "NAM02-DM3-obe.outbound.protection.outlook.com"),
            ("ip", "40.92.43.40"),
            ("by_host", "mx.google.com"),
            ("protocol", "ESMTPS"),
            ("timestamp", "2023-01-16T17:03:44Z"),
        ],
    );
    // Hop 4 (top): "by 2002:a05:612c:711:b0:381:73ac:3a65 with SMTP id ft17csp1634324vqb;
    // Mon, 16 Jan 2023 09:03:44 -0800 (PST)": no from clause, so no client address.
    check(
        "sample-241 hop 4",
        hops[3],
        &[
            ("from_host", ""),
            ("ip", ""),
            ("by_host", "2002:a05:612c:711:b0:381:73ac:3a65"),
            ("protocol", "SMTP"),
            ("timestamp", "2023-01-16T17:03:44Z"),
        ],
    );
}

/// sample-4677.eml (LF): inbound to an Exchange Online mailbox through six Microsoft hops, two
/// DKIM-Signature fields (both d=ehess.fr s=mail), tenant id but no X-OriginatorOrg.
#[test]
fn phishing_pot_exchange_online_inbound_chain() {
    let Some(c) = corpora() else { return };
    let name = "sample-4677.eml";
    let s = scan_paths(&[&c.join("phishing-pot-sample/email").join(name)]);
    let r = s.file(name);
    check(
        name,
        r,
        &[
            ("length", "11879"),
            ("size", "11879"),
            // X-MS-Exchange-CrossTenant-Id: 84df9e7f-e9f6-40af-b435-aaaaaaaaaaaa
            // The only CrossTenant-Id is the receiving stamp (AuthAs: Anonymous,
            // FromEntityHeader: Internet): the Outlook.com tenant, not the sender's.
            ("tenant_id", ""),
            // No X-OriginatorOrg field in this message.
            ("tenant_domain", ""),
            // Two DKIM-Signature fields, in header order, each "a=rsa-sha256; ... d=ehess.fr;
            // s=mail;".
            (
                "dkim_signatures",
                "ehess.fr:mail:rsa-sha256 ehess.fr:mail:rsa-sha256",
            ),
            ("hops", "9"),
            // Topmost: "... with HTTPS; Sun, 5 Jan 2025 10:30:24 +0000".
            ("received_at", "2025-01-05T10:30:24Z"),
            // Date: Sun, 5 Jan 2025 07:55:19 +0100 (CET)
            ("date", "2025-01-05T06:55:19Z"),
            // Hop 1 "from SA6PR02MB10504.namprd02.prod.outlook.com (::1)" is loopback; hop 2
            // "from SY8P300CA0002.AUSP300.PROD.OUTLOOK.COM (2603:10c6:10:29d::11)" is the
            // topmost public address (README: topmost hop with a public IP).
            ("client_ip", "2603:10c6:10:29d::11"),
            // Bottom: "from zimbra.ehess.fr (zimbra.ehess.fr [193.48.45.69]) by
            // drosera.ehess.fr (Postfix)".
            ("origin_ip", "193.48.45.69"),
            (
                "relay_path",
                "193.48.45.69 > drosera.ehess.fr > smtp-relay1.ehess.fr > smtp-relay1.ehess.fr \
                 > hk2pepf00006fb1.mail.protection.outlook.com \
                 > ps2pr01ca0047.outlook.office365.com > sy7p300mb1418.ausp300.prod.outlook.com \
                 > sy8p300ca0002.outlook.office365.com \
                 > sa6pr02mb10504.namprd02.prod.outlook.com \
                 > ia1pr02mb9088.namprd02.prod.outlook.com",
            ),
            // From: "Dr.Michael WU Wei Kuo.Chairman of Hang Seng Bank Ltd, Hong Kong"
            // <mkebe@ehess.fr>
            ("from_addr", "mkebe@ehess.fr"),
            // Return-Path: mkebe@ehess.fr
            ("envelope_from", "mkebe@ehess.fr"),
            (
                "subject",
                "RE:+ Date: 05/01/2025/ REPLY AS SOON AS POSSIBLE",
            ),
            // To: Undisclosed recipients:;  (an empty group)
            ("recipients", "0"),
            (
                "x_mailer",
                "Zimbra 8.8.15_GA_4652 (ZimbraWebClient - GC131 (Win)/8.8.15_GA_4652)",
            ),
            ("content_type", "multipart/alternative"),
        ],
    );
    assert!(
        r["auth_results"].starts_with("spf=pass (sender IP is 193.48.45.158)"),
        "auth_results: {:?}",
        r["auth_results"]
    );

    let hops = s.hops(r);
    assert_eq!(hops.len(), 9, "received.csv rows for {name}");
    // Hop 1 (bottom): "from zimbra.ehess.fr (zimbra.ehess.fr [193.48.45.69]) by
    // drosera.ehess.fr (Postfix) with ESMTP id 4B389E0200; Sun,  5 Jan 2025 07:55:19 +0100".
    check(
        "sample-4677 hop 1",
        hops[0],
        &[
            ("from_host", "zimbra.ehess.fr"),
            ("from_rdns", "zimbra.ehess.fr"),
            ("ip", "193.48.45.69"),
            ("by_host", "drosera.ehess.fr"),
            ("protocol", "ESMTP"),
            ("timestamp", "2025-01-05T06:55:19Z"),
        ],
    );
    // Hop 4: the Exchange Online edge: "from smtp-relay1.ehess.fr (193.48.45.158) by
    // HK2PEPF00006FB1.mail.protection.outlook.com (10.167.8.7) with Microsoft SMTP Server
    // ...; Sun, 5 Jan 2025 10:30:04 +0000" (the by-side address is not the client's).
    check(
        "sample-4677 hop 4",
        hops[3],
        &[
            ("from_host", "smtp-relay1.ehess.fr"),
            ("ip", "193.48.45.158"),
            ("by_host", "HK2PEPF00006FB1.mail.protection.outlook.com"),
            ("timestamp", "2025-01-05T10:30:04Z"),
        ],
    );
    // Hop 9 (top): "from SA6PR02MB10504.namprd02.prod.outlook.com (::1) by
    // IA1PR02MB9088.namprd02.prod.outlook.com with HTTPS; Sun, 5 Jan 2025 10:30:24 +0000".
    check(
        "sample-4677 hop 9",
        hops[8],
        &[
            ("from_host", "SA6PR02MB10504.namprd02.prod.outlook.com"),
            ("ip", "::1"),
            ("by_host", "IA1PR02MB9088.namprd02.prod.outlook.com"),
            ("protocol", "HTTPS"),
            ("timestamp", "2025-01-05T10:30:24Z"),
        ],
    );
}

// ------------------------------------------------------------------------------------------
// notmuch-test-corpora: Maildir
// ------------------------------------------------------------------------------------------

#[test]
fn notmuch_maildir_cur_files() {
    let Some(c) = corpora() else { return };
    let s = scan_paths(&[&c.join("notmuch-test-corpora/default/cur")]);
    // `ls default/cur`: 25 files, 29:2, ... 53:2,
    assert_eq!(s.messages.len(), 25);
    for r in &s.messages {
        assert!(r["source"].ends_with(":2,"), "source {:?}", r["source"]);
        assert_eq!(r["entry_offset"], "0", "{}", r["source"]);
    }

    // 53:2, (717 bytes, no Received field, no `From ` line)
    check(
        "53:2,",
        s.file("/53:2,"),
        &[
            ("length", "717"),
            ("size", "717"),
            // Subject: Essai =?iso-8859-1?Q?accentu=E9?=
            ("subject", "Essai accentué"),
            // Date: Fri, 16 Dec 2010 16:49:59 +0100; no Received, no envelope: received_at
            // falls back to Date.
            ("date", "2010-12-16T15:49:59Z"),
            ("received_at", "2010-12-16T15:49:59Z"),
            ("hops", "0"),
            ("client_ip", ""),
            ("origin_ip", ""),
            ("relay_path", ""),
            ("from_addr", "olivier.berger@it-sudparis.eu"),
            ("envelope_from", ""),
            ("message_id", "<877h1wv7mg.fsf@inf-8657.int-evry.fr>"),
            ("recipients", "1"),
            // User-Agent: Notmuch/0.10.1 ... is not X-Mailer.
            ("x_mailer", ""),
            ("content_type", "text/plain"),
            ("lossy_fields", ""),
        ],
    );

    // 52:2,: From: "=?ISO-8859-1?Q?Fran=E7ois_Boulogne?=" <boulogne.f@gmail.com>, a folded To
    // with two addresses, a subject with a comma.
    check(
        "52:2,",
        s.file("/52:2,"),
        &[
            ("length", "1309"),
            ("from_addr", "boulogne.f@gmail.com"),
            (
                "subject",
                "Re: [aur-general] Guidelines: cp, mkdir vs install",
            ),
            // Date: Thu, 29 Dec 2010 15:07:54 +0100
            ("date", "2010-12-29T14:07:54Z"),
            ("recipients", "2"),
            ("message_id", "<4EFC743A.3060609@april.org>"),
            ("hops", "0"),
        ],
    );
}

// ------------------------------------------------------------------------------------------
// data/ (the shipped sample, always present)
// ------------------------------------------------------------------------------------------

/// data/spamassassin-testdata/nice/cjk/gb2312.2: GB2312 Q-encoded subject, an encoded word in
/// a From comment, a ten-hop Debian list chain.
#[test]
fn data_cjk_gb2312_encoded_subject() {
    let path = data_dir().join("spamassassin-testdata/nice/cjk/gb2312.2");
    let s = scan_paths(&[&path]);
    let r = s.file("/gb2312.2");
    check(
        "gb2312.2",
        r,
        &[
            // Subject: RE: =?GB2312?Q?=D7=B0=D3=B2=B5=FA=CE=CA=CC=E2?=
            ("subject", "RE: 装硬碟问题"),
            // From: Jason Lee (=?GB2312?Q?=C0=EE=D5=B9=B7=E6?=) <Jason_Lee@quantatw.com>
            ("from_addr", "Jason_Lee@quantatw.com"),
            ("from_domain", "quantatw.com"),
            (
                "envelope_from",
                "bounce-debian-chinese-gb=zzz=jmason.org@lists.debian.org",
            ),
            (
                "message_id",
                "<E60F573776CE0148AD3E7FAB07E4C840CC79EC@mail03.quanta.corp>",
            ),
            ("entry_offset", "0"),
            ("length", "4851"),
            // 4851 - 88 (From line) - 1 (separator).
            ("size", "4762"),
            // Topmost Received: "Mon, 10 Feb 2003 11:01:48 +0000 (GMT)".
            ("received_at", "2003-02-10T11:01:48Z"),
            // Date: Mon, 10 Feb 2003 09:48:33 +0800
            ("date", "2003-02-10T01:48:33Z"),
            ("recipients", "1"),
            ("hops", "10"),
            // Hops 1-2 are 127.0.0.1; hop 3 "from murphy.debian.org (murphy.debian.org
            // [65.125.64.134]) by dogma.slashnull.org".
            ("client_ip", "65.125.64.134"),
            // Bottom "from mail03.quanta.corp ([192.168.66.6]) by qcife1.quanta.corp" is RFC
            // 1918; next "from qcife1.quanta.corp (qcife1.quantatw.com [202.145.134.6])".
            ("origin_ip", "202.145.134.6"),
            (
                "relay_path",
                "192.168.66.6 > qcife1.quanta.corp > murphy.debian.org > murphy.debian.org \
                 > master.debian.org > master.debian.org > murphy.debian.org \
                 > murphy.debian.org > dogma.slashnull.org > localhost > jmason.org",
            ),
            (
                "list_unsubscribe",
                "<mailto:debian-chinese-gb-request@lists.debian.org?subject=unsubscribe>",
            ),
            ("content_type", "text/plain"),
            ("lossy_fields", ""),
        ],
    );
}

/// data/spamassassin-testdata/nice/cjk/gb2312.1 (CRLF, no `From ` line): raw GB2312 bytes in
/// both From (display name) and Subject.
#[test]
fn data_cjk_raw_gb2312_headers_are_lossy() {
    let path = data_dir().join("spamassassin-testdata/nice/cjk/gb2312.1");
    let s = scan_paths(&[&path]);
    let r = s.file("/gb2312.1");
    assert_eq!(lossy(r), ["from", "subject"], "lossy_fields");
    assert!(
        r["subject"].contains('\u{FFFD}'),
        "subject {:?}",
        r["subject"]
    );
    check(
        "gb2312.1",
        r,
        &[
            // From: "<GB2312 bytes>" <1234@e34.com>
            ("from_addr", "1234@e34.com"),
            ("from_domain", "e34.com"),
            // Return-Path: <1234@e34.com>
            ("envelope_from", "1234@e34.com"),
            ("message_id", "<1811099-2200312752653615@pc3>"),
            // A one-message file: the whole file is the message.
            ("entry_offset", "0"),
            ("length", "30973"),
            ("size", "30973"),
            // Topmost: "Received: (qmail 21332 invoked by uid 505); 7 Jan 2003 12:01:04 -0000".
            ("received_at", "2003-01-07T12:01:04Z"),
            // Date: Tue, 7 Jan 2003 13:26:53 +0800
            ("date", "2003-01-07T05:26:53Z"),
            ("recipients", "1"),
            ("hops", "3"),
            // Bottom: "from unknown (HELO pc3) (202.108.68.140) by 0 with SMTP" -- the only
            // address in the chain.
            ("client_ip", "202.108.68.140"),
            ("origin_ip", "202.108.68.140"),
            ("content_type", "text/plain"),
        ],
    );
}
