#!/usr/bin/env bash
# Run a sharded mailcensus census on one machine with GNU parallel (the same shards as the Slurm
# scripts in examples/slurm/), then merge the shards.
#
#   mailcensus plan /srv/mail --shards 8 --out plan.jsonl
#   examples/parallel.sh plan.jsonl parts results [scan options, e.g. --keys keys.zone]
#
# The same by hand, for N shards:
#   parallel --halt now,fail=1 -j "$(nproc)" mailcensus scan --plan plan.jsonl --shard {}/N \
#     --out parts/{} --resume ::: $(seq 0 $((N-1))) && mailcensus merge parts/* --out results
#
# Environment:
#   MAILCENSUS   mailcensus binary (default: `mailcensus` on PATH)
#   SHARDS       shard count N (default: the "shards" field of the plan's first line)
#   JOBS         shards scanned at once (default: nproc)
#   THREADS      --threads for each scan (default: mailcensus's own; JOBS x THREADS ~ cores)
#   MERGE_ARGS   extra options for `mailcensus merge`, split on spaces (e.g. "--format csv,parquet")
# --halt now,fail=1 stops all scans at the first failure; rerunning resumes (--resume).
# Exit status: parallel's (the number of failed scans, or its own error) or the merge's.
set -euo pipefail

die() { echo "parallel.sh: $*" >&2; exit 2; }

[ $# -ge 3 ] || die "usage: parallel.sh PLAN PARTS OUT [scan options...]"
PLAN=$1 PARTS=$2 OUT=$3
shift 3
[ -r "$PLAN" ] || die "plan file not readable: $PLAN"
parallel --version 2>/dev/null | grep -q 'GNU parallel' ||
  die "GNU parallel not found (moreutils' parallel is a different program): apt-get install parallel"
MAILCENSUS=${MAILCENSUS:-mailcensus}
command -v "$MAILCENSUS" >/dev/null 2>&1 || die "mailcensus binary not found: '$MAILCENSUS' (set MAILCENSUS or PATH)"

N=${SHARDS:-}
if [ -z "$N" ]; then
  # The plan's first line is a JSON header object holding "shards": N.
  N=$(head -n 1 -- "$PLAN" | grep -o '"shards"[[:space:]]*:[[:space:]]*[0-9][0-9]*' | head -n 1 |
      grep -o '[0-9][0-9]*$' || true)
  [ -n "$N" ] || die "no \"shards\": N in the first line of $PLAN (set SHARDS=N to override)"
fi
[[ $N =~ ^[1-9][0-9]*$ ]] || die "bad shard count: '$N'"
JOBS=${JOBS:-$(nproc)}
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

mkdir -p -- "$PARTS"
# -q: quote the command's words, so paths with spaces or shell characters pass through as is
# ({} is still replaced by the shard number).
parallel -q --halt now,fail=1 -j "$JOBS" \
  "$MAILCENSUS" scan --plan "$PLAN" --shard {}/"$N" --out "$PARTS"/{} --resume "${threads[@]}" "$@" \
  ::: $(seq 0 $((N - 1)))

shopt -s nullglob
dirs=()
for d in "$PARTS"/*; do
  [ -d "$d" ] && dirs+=("$d")
done
[ ${#dirs[@]} -gt 0 ] || die "no shard directories in $PARTS"
read -r -a merge_args <<<"${MERGE_ARGS:-}"
exec "$MAILCENSUS" merge "${dirs[@]}" --out "$OUT" "${merge_args[@]}"
