#!/usr/bin/env python3
"""The peers of `scripts/bench`, and the timing driver that runs them beside mailcensus.

    bench_peers.py stdlib MBOX [--procs P]        header census with mailbox + email
    bench_peers.py dkimpy MBOX ZONE [--procs P]   every DKIM-Signature verified by dkimpy
    bench_peers.py run --mailcensus BIN --corpus DIR --work DIR ...   (what scripts/bench calls)

`stdlib` and `dkimpy` print one JSON object of counts on standard output. `run` times every
tool R times, interleaved (round 1 of every tool, then round 2, ...), prints the table and the
machine facts, and with --record writes them as a markdown file.

The dkimpy peer never uses the network: its dnsfunc answers from the TXT records of the zone
file (`mailcensus generate` writes keys.zone).
"""

import argparse
import datetime
import json
import mmap
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

# ---------------------------------------------------------------------------------------------
# mbox splitting (mboxrd, as `mailcensus generate` writes it; mboxo reads the same way)


def byte_ranges(path, parts):
    """Cut the mbox into at most `parts` byte ranges, each starting at a "From " line."""
    size = os.path.getsize(path)
    if size == 0:
        return []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        first = 0 if m[:5] == b"From " else m.find(b"\nFrom ") + 1
        if first == 0 and m[:5] != b"From ":
            return []  # no message at all
        cuts = [first]
        for k in range(1, max(1, parts)):
            at = m.find(b"\nFrom ", max(cuts[-1], k * size // parts - 1))
            if at < 0:
                break
            if at + 1 > cuts[-1]:
                cuts.append(at + 1)
        cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def mbox_chunks(path, start, end):
    """Yield each message of [start, end) as bytes, its "From " line included."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        at = start
        while at < end:
            nxt = m.find(b"\nFrom ", at, end)
            stop = end if nxt < 0 else nxt + 1
            yield m[at:stop]
            at = stop


_MBOXRD_QUOTE = re.compile(rb"(?m)^>(>*From )")


def wire_message(chunk):
    """The message as it was on the wire: no "From " line, no separator line, unquoted."""
    nl = chunk.find(b"\n")
    body = chunk[nl + 1:] if nl >= 0 else b""
    # The mbox writer adds one empty line after each message.
    if body.endswith(b"\n\n") or body.endswith(b"\r\n\n"):
        body = body[:-1]
    if b">From " in body:
        body = _MBOXRD_QUOTE.sub(rb"\1", body)
    return body


def run_parallel(worker, args_list, procs):
    """Run worker(*args) for each args in args_list, in `procs` processes, and add the counts."""
    if procs <= 1 or len(args_list) <= 1:
        results = [worker(*a) for a in args_list]
    else:
        import multiprocessing

        with multiprocessing.Pool(procs) as pool:
            results = pool.starmap(worker, args_list)
    total = {}
    for r in results:
        add_counts(total, r)
    return total


def add_counts(total, part):
    for k, v in part.items():
        if isinstance(v, dict):
            add_counts(total.setdefault(k, {}), v)
        else:
            total[k] = total.get(k, 0) + v


# ---------------------------------------------------------------------------------------------
# Peer 1: the header census with Python's standard library


def header_census(msg, counts):
    """What a researcher's script reads of each message: From, Subject, Date, Message-ID, Received."""
    from email.header import decode_header, make_header
    from email.utils import parseaddr, parsedate_to_datetime

    counts["messages"] += 1
    _, addr = parseaddr(str(msg.get("From", "")))
    if "@" in addr:
        counts["from_address"] += 1
    subject = msg.get("Subject")
    if subject is not None:
        try:
            str(make_header(decode_header(str(subject))))
            counts["subject"] += 1
        except Exception:
            counts["subject_undecodable"] += 1
    date = msg.get("Date")
    if date is not None:
        try:
            parsedate_to_datetime(str(date))
            counts["date"] += 1
        except Exception:
            counts["date_unparsable"] += 1
    if msg.get("Message-ID") is not None:
        counts["message_id"] += 1
    for hop in msg.get_all("Received") or []:
        counts["received_hops"] += 1
        hop = str(hop)
        semi = hop.rfind(";")
        if semi >= 0:
            try:
                parsedate_to_datetime(hop[semi + 1:].strip())
                counts["received_dates"] += 1
            except Exception:
                pass


def new_census_counts():
    keys = ("messages", "from_address", "subject", "subject_undecodable", "date",
            "date_unparsable", "message_id", "received_hops", "received_dates")
    return dict.fromkeys(keys, 0)


def stdlib_range(path, start, end):
    """One process's share of the multi-process census: a byte range, parsed as mailbox would."""
    import mailbox

    counts = new_census_counts()
    for chunk in mbox_chunks(path, start, end):
        # mboxMessage parses bytes the way mailbox.mbox does (the "From " line becomes unixfrom).
        header_census(mailbox.mboxMessage(chunk), counts)
    return counts


def cmd_stdlib(args):
    if args.procs <= 1:
        import mailbox

        counts = new_census_counts()
        box = mailbox.mbox(args.mbox, create=False)
        try:
            for msg in box:
                header_census(msg, counts)
        finally:
            box.close()
    else:
        ranges = byte_ranges(args.mbox, args.procs)
        counts = run_parallel(stdlib_range, [(args.mbox, a, b) for a, b in ranges], args.procs)
    print(json.dumps(counts, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Peer 2: dkimpy, with keys from the zone file instead of DNS


def zone_tokens(text):
    """Tokens of a zone file: (kind, text) with kind 'word', 'quoted' or 'newline'.
    Handles quoted strings with backslash escapes, ';' comments and ( ) line continuation."""
    out = []
    i, n, depth = 0, len(text), 0
    while i < n:
        c = text[i]
        if c == "\n":
            if depth == 0:
                out.append(("newline", ""))
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == ";":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "(":
            depth += 1
            i += 1
        elif c == ")":
            depth = max(0, depth - 1)
            i += 1
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    m = re.match(r"\\(\d{3})", text[j:])
                    if m:
                        buf.append(chr(int(m.group(1))))
                        j += 4
                        continue
                    buf.append(text[j + 1])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            out.append(("quoted", "".join(buf)))
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n;()\"":
                j += 1
            out.append(("word", text[i:j]))
            i = j
    out.append(("newline", ""))
    return out


OTHER_TYPES = {"A", "AAAA", "MX", "NS", "CNAME", "SOA", "SPF", "PTR", "SRV", "CAA", "DNAME", "HINFO"}


def parse_zone(path):
    """{name (lower case, no trailing dot): [TXT value, ...]} from a zone file.
    Also takes `name "value"` / `name value` lines (the --keys-out format of mailcensus)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    records, line, origin, last_name = {}, [], "", None
    classes = {"IN", "CH", "HS", "CS"}

    def absolute(name):
        if name == "@":
            return origin
        if name.endswith("."):
            return name[:-1]
        return f"{name}.{origin}" if origin else name

    for kind, tok in zone_tokens(text):
        if kind != "newline":
            line.append((kind, tok))
            continue
        if not line:
            continue
        words = line
        line = []
        if words[0][0] == "word" and words[0][1].startswith("$"):
            if words[0][1].upper() == "$ORIGIN" and len(words) > 1:
                origin = words[1][1].rstrip(".")
            continue
        # Owner name (a line starting with blanks reuses the last one: not tracked by the
        # tokenizer, so every record here is expected to name its owner, as generate does).
        name = absolute(words[0][1]) if words[0][0] == "word" else last_name
        if name is None:
            continue
        last_name = name
        rest = words[1:]
        # Skip TTL and class, in either order, then expect the type.
        while rest and rest[0][0] == "word" and (rest[0][1].isdigit() or rest[0][1].upper() in classes):
            rest = rest[1:]
        if rest and rest[0][0] == "word" and rest[0][1].upper() == "TXT":
            value = "".join(t for _, t in rest[1:])
        elif rest and rest[0][0] == "word" and rest[0][1].upper() in OTHER_TYPES:
            continue  # another record type
        elif rest:
            value = "".join(t for _, t in rest)  # `name value` line
        else:
            continue
        records.setdefault(name.lower(), []).append(value)
    return records


def make_dnsfunc(records):
    """dkimpy calls dnsfunc(name, timeout=...) with name as bytes, e.g. b'sel._domainkey.d.example.',
    and takes the TXT value back as bytes (str also works since dkimpy 1.0); None means no record."""
    table = {}
    for name, values in records.items():
        dkim_values = [v for v in values if v.lstrip().startswith("v=DKIM1") or "p=" in v]
        table[name] = (dkim_values or values)[0].encode("utf-8")

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return table.get(name.rstrip(".").lower())

    return dnsfunc


def new_dkim_counts():
    return {"messages": 0, "signed_messages": 0, "signatures": 0, "pass": 0, "fail": 0,
            "error": 0, "errors": {}}


def dkimpy_range(path, zone, start, end):
    import logging

    import dkim

    logger = logging.getLogger("bench-dkimpy")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.setLevel(logging.CRITICAL)
    dnsfunc = make_dnsfunc(parse_zone(zone))
    counts = new_dkim_counts()
    for chunk in mbox_chunks(path, start, end):
        raw = wire_message(chunk)
        counts["messages"] += 1
        try:
            d = dkim.DKIM(raw, logger=logger, minkey=1024)
        except dkim.DKIMException as e:
            counts["errors"][type(e).__name__] = counts["errors"].get(type(e).__name__, 0) + 1
            continue
        nsig = sum(1 for k, _ in d.headers if k.lower() == b"dkim-signature")
        if nsig:
            counts["signed_messages"] += 1
        for idx in range(nsig):
            counts["signatures"] += 1
            try:
                ok = d.verify(idx=idx, dnsfunc=dnsfunc)
            except dkim.DKIMException as e:
                # dkimpy raises for some failures (a body hash mismatch is a ValidationError).
                counts["error"] += 1
                why = f"{type(e).__name__}: {str(e).split('(')[0].split(':')[0].strip()[:50]}"
                counts["errors"][why] = counts["errors"].get(why, 0) + 1
                continue
            counts["pass" if ok else "fail"] += 1
    return counts


def cmd_dkimpy(args):
    ranges = byte_ranges(args.mbox, max(1, args.procs))
    counts = run_parallel(dkimpy_range, [(args.mbox, args.zone, a, b) for a, b in ranges], args.procs)
    print(json.dumps(counts, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# The driver


def read_first(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def machine_facts(mailcensus):
    facts = {}
    try:
        facts["cores (nproc)"] = str(len(os.sched_getaffinity(0)))
    except AttributeError:
        facts["cores (nproc)"] = str(os.cpu_count())
    cpu = ""
    for line in read_first("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware", "cpu model") and value.strip():
            cpu = value.strip()
            break
    if not cpu and shutil.which("sysctl"):
        try:
            cpu = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    facts["cpu"] = cpu or platform.processor() or platform.machine() or "unknown"
    mem = re.search(r"MemTotal:\s+(\d+) kB", read_first("/proc/meminfo"))
    if mem:
        facts["memory"] = f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB"
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]*)', read_first("/etc/os-release"), re.M)
    facts["os"] = f"{os_name.group(1) if os_name else platform.system()} (kernel {platform.release()}, {platform.machine()})"
    facts["mailcensus"] = subprocess.run([mailcensus, "--version"], capture_output=True, text=True,
                                         check=True).stdout.strip()
    facts["python"] = platform.python_version()
    try:
        from importlib.metadata import version

        facts["dkimpy"] = version("dkimpy")
        facts["dnspython"] = version("dnspython")
        try:
            facts["pynacl"] = version("PyNaCl")
        except Exception:
            facts["pynacl"] = "not installed (ed25519 signatures fail in dkimpy)"
    except Exception as e:  # pragma: no cover
        facts["dkimpy"] = f"unknown ({e})"
    facts["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return facts


def timed(cmd, out_path, err_path):
    """Run cmd; return (wall seconds, CPU seconds of it and its children, exit code)."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, p.returncode


def ratio_text(r):
    if r >= 10:
        return f"{r:.0f}×"
    return f"{r:.1f}×"


def fmt_int(n):
    return f"{n:,.0f}"


def pipe_table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    right = [False] + [False] + [True] * (len(header) - 2)

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w) if rj else str(c).ljust(w)
                                 for c, w, rj in zip(cells, widths, right)) + " |"

    sep = "|" + "|".join(("-" * (w + 1) + ":") if rj else ("-" * (w + 2))
                         for w, rj in zip(widths, right)) + "|"
    return "\n".join([line(header), sep] + [line(r) for r in rows])


def cmd_run(args):
    mc = args.mailcensus
    corpus = args.corpus
    mbox = os.path.join(corpus, "corpus.mbox")
    zone = os.path.join(corpus, "keys.zone")
    work = args.work
    os.makedirs(work, exist_ok=True)
    me = os.path.abspath(__file__)
    py = sys.executable
    procs = args.procs

    tools = [
        {"id": "mc-header", "name": "mailcensus header census", "mc": True,
         "what": "scan --no-dkim --no-campaigns: a messages.csv row per message (From, Subject, "
                 "Date, Message-ID, Received path, links, ...)",
         "cmd": [mc, "scan", mbox, "--no-dkim", "--no-campaigns", "--out", os.path.join(work, "mc-header"), "-q"]},
        {"id": "mc-full", "name": "mailcensus full scan", "mc": True,
         "what": "scan --keys: the census + every DKIM signature verified + campaigns and relay "
                 "abuse, every table written",
         "cmd": [mc, "scan", mbox, "--keys", zone, "--out", os.path.join(work, "mc-full"), "-q"]},
        {"id": "stdlib-1", "name": "Python stdlib email (1 process)", "peer_of": "mc-header",
         "what": "mailbox.mbox + email: From, Subject, Date, Message-ID, Received decoded",
         "cmd": [py, me, "stdlib", mbox, "--procs", "1"]},
    ]
    if procs > 1:
        tools.append({"id": f"stdlib-{procs}", "name": f"Python stdlib email ({procs} processes)",
                      "peer_of": "mc-header",
                      "what": "the same, the mbox cut into byte ranges at From lines",
                      "cmd": [py, me, "stdlib", mbox, "--procs", str(procs)]})
    tools.append({"id": "dkimpy-1", "name": "dkimpy (1 process)", "peer_of": "mc-full",
                  "what": "dkim.DKIM(msg).verify(idx=i) for every signature, keys from keys.zone",
                  "cmd": [py, me, "dkimpy", mbox, zone, "--procs", "1"]})
    if procs > 1:
        tools.append({"id": f"dkimpy-{procs}", "name": f"dkimpy ({procs} processes)", "peer_of": "mc-full",
                      "what": "the same, the mbox cut into byte ranges at From lines",
                      "cmd": [py, me, "dkimpy", mbox, zone, "--procs", str(procs)]})

    # Warm the page cache so that no tool pays for the first read of the corpus.
    with open(mbox, "rb") as f:
        while f.read(1 << 24):
            pass

    for t in tools:
        t["walls"], t["cpus"] = [], []
    for rnd in range(args.runs):
        for t in tools:
            if t.get("mc"):
                shutil.rmtree(t["cmd"][t["cmd"].index("--out") + 1], ignore_errors=True)
            out_path = os.path.join(work, t["id"] + ".out")
            err_path = os.path.join(work, t["id"] + ".err")
            wall, cpu, code = timed(t["cmd"], out_path, err_path)
            if code != 0:
                sys.stderr.write(f"bench: {t['name']} failed (exit {code}): {' '.join(t['cmd'])}\n")
                sys.stderr.write(read_first(err_path)[-4000:])
                sys.exit(1)
            t["walls"].append(wall)
            t["cpus"].append(cpu)
            print(f"  round {rnd + 1}/{args.runs}  {t['name']:<36} {wall:8.2f} s", file=sys.stderr, flush=True)
            if not t.get("mc"):
                try:
                    t["counts"] = json.loads(read_first(out_path))
                except ValueError:
                    sys.stderr.write(f"bench: {t['name']} printed no counts; see {out_path}\n")
                    sys.exit(1)

    summary = json.loads(read_first(os.path.join(work, "mc-full", "summary.json")))
    header_summary = json.loads(read_first(os.path.join(work, "mc-header", "summary.json")))
    n_messages = summary.get("totals", {}).get("messages", args.messages)
    corpus_mb = os.path.getsize(mbox) / 1e6

    by_id = {t["id"]: t for t in tools}
    rows = []
    for t in tools:
        t["median"] = statistics.median(t["walls"])
        t["cpu"] = statistics.median(t["cpus"])
        if "peer_of" in t:
            mine = by_id[t["peer_of"]]
            vs = f"{ratio_text(t['median'] / mine['median'])} ({mine['name'].replace('mailcensus ', '')})"
        else:
            vs = "—"
        rows.append([t["name"], t["what"], f"{t['median']:.2f}", f"{t['cpu']:.2f}",
                     fmt_int(n_messages / t["median"]), vs])
    table = pipe_table(["tool", "what it does", "median s", "CPU s", "msgs/s", "mailcensus is faster by"], rows)

    ratios = []
    for t in tools:
        if "peer_of" in t:
            mine = by_id[t["peer_of"]]
            ratios.append(f"{mine['name']} vs {t['name']}: {ratio_text(t['median'] / mine['median'])}")
    for t in tools:
        if t["id"].startswith("stdlib"):
            mine = by_id["mc-full"]
            ratios.append(f"{mine['name']}, DKIM included, vs {t['name']}, headers only: "
                          f"{ratio_text(t['median'] / mine['median'])}")

    # What each tool found, so that a wrong setup shows (the counts should agree).
    mc_dkim = summary.get("dkim", {}).get("signatures_by_result", {})
    checks = [f"messages: mailcensus {fmt_int(n_messages)} (header census "
              f"{fmt_int(header_summary.get('totals', {}).get('messages', 0))})"]
    for t in tools:
        c = t.get("counts", {})
        if t["id"].startswith("stdlib"):
            checks.append(f"messages: {t['name']} {fmt_int(c.get('messages', 0))}, "
                          f"{fmt_int(c.get('received_hops', 0))} Received hops "
                          f"(mailcensus {fmt_int(summary.get('totals', {}).get('received_hops', 0))})")
    mc_sigs = sum(mc_dkim.values())
    checks.append(f"DKIM signatures: mailcensus {fmt_int(mc_sigs)}, pass {fmt_int(mc_dkim.get('pass', 0))} "
                  f"({', '.join(f'{k} {v}' for k, v in sorted(mc_dkim.items()) if k != 'pass')})")
    for t in tools:
        c = t.get("counts", {})
        if t["id"].startswith("dkimpy"):
            errs = ", ".join(f"{k} {v}" for k, v in sorted(c.get("errors", {}).items()))
            checks.append(f"DKIM signatures: {t['name']} {fmt_int(c.get('signatures', 0))}, "
                          f"pass {fmt_int(c.get('pass', 0))}, fail {fmt_int(c.get('fail', 0))}, "
                          f"raised {fmt_int(c.get('error', 0))}" + (f" ({errs})" if errs else ""))

    facts = machine_facts(mc)
    fact_lines = [f"{k}: {v}" for k, v in facts.items()]
    corpus_line = (f"corpus: {fmt_int(n_messages)} messages, {corpus_mb:.1f} MB "
                   f"(mailcensus generate --messages {args.messages} --seed {args.seed}); "
                   f"median of {args.runs} run(s), warm page cache; mailcensus uses every core")

    print()
    print("\n".join(fact_lines))
    print(corpus_line)
    print()
    print(table)
    print()
    print("\n".join(ratios))
    print()
    print("what each tool found (these should agree):")
    print("\n".join("  " + c for c in checks))

    if args.record:
        os.makedirs(os.path.dirname(args.record), exist_ok=True)
        existed = os.path.exists(args.record)
        runs = "\n".join(f"- {t['name']}: " + ", ".join(f"{w:.2f}" for w in t["walls"]) + " s"
                         for t in tools)
        text = "\n".join([
            f"# mailcensus against its peers: {args.machine}, {facts['date'][:10]}",
            "",
            "## Machine",
            "",
            *[f"- {line}" for line in fact_lines],
            "",
            "## Command",
            "",
            "```",
            args.command,
            "```",
            "",
            corpus_line + ".",
            "",
            "## Results",
            "",
            table,
            "",
            *[f"- {r}" for r in ratios],
            "",
            "Wall time of every run:",
            "",
            runs,
            "",
            "What each tool found:",
            "",
            *[f"- {c}" for c in checks],
            "",
        ])
        with open(args.record, "w", encoding="utf-8") as f:
            f.write(text)
        print()
        print(("replaced " if existed else "recorded ") + args.record)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stdlib", help="header census with mailbox + email")
    s.add_argument("mbox")
    s.add_argument("--procs", type=int, default=1)
    d = sub.add_parser("dkimpy", help="verify every DKIM-Signature with dkimpy")
    d.add_argument("mbox")
    d.add_argument("zone")
    d.add_argument("--procs", type=int, default=1)
    r = sub.add_parser("run", help="time mailcensus and the peers (called by scripts/bench)")
    r.add_argument("--mailcensus", required=True)
    r.add_argument("--corpus", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--runs", type=int, default=3)
    r.add_argument("--procs", type=int, default=1)
    r.add_argument("--messages", type=int, required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--record", default="")
    r.add_argument("--machine", default=socket.gethostname())
    r.add_argument("--command", default="scripts/bench")
    args = ap.parse_args()
    {"stdlib": cmd_stdlib, "dkimpy": cmd_dkimpy, "run": cmd_run}[args.cmd](args)


if __name__ == "__main__":
    main()
