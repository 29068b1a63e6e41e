#!/usr/bin/env bash
# What sharding costs on this machine: one scan of a corpus against plan + N shards (run one
# after another, each with all cores, as they would run on N machines) + merge, for each N given;
# and the merge's time and peak memory. Every merged result is checked to equal the single scan.
#
#   benchmarks/cluster.sh CORPUS_DIR "4 16 64" [scan options, e.g. --keys CORPUS_DIR/keys.zone]
#
# CORPUS_DIR is what `mailcensus generate --out CORPUS_DIR` writes (corpus.mbox, keys.zone) or
# any directory of mail. MAILCENSUS names the binary (default: target/release/mailcensus).
# Prints one line per run: seconds (wall), peak resident memory (MB); then the ratios.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: cluster.sh CORPUS_DIR \"N1 N2 ...\" [scan options]" >&2; exit 2; }
corpus=$1 shard_counts=$2
shift 2
bin=${MAILCENSUS:-target/release/mailcensus}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
input=$corpus
[ -f "$corpus/corpus.mbox" ] && input=$corpus/corpus.mbox

# measure NAME COMMAND...: run it, print "NAME seconds peak-MB", keep the seconds in $secs.
measure() {
  local name=$1
  shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || {
    cat "$work/err" >&2
    exit 1
  }
  read -r secs kb <"$work/time"
  printf '%-28s %8.2f s %8.0f MB\n' "$name" "$secs" "$((kb / 1024))"
}

same() {
  for f in "$1"/*; do
    b=$(basename "$f")
    [ "$b" = summary.json ] && continue
    cmp -s "$f" "$2/$b" || { echo "DIFFERENT: $b" >&2; exit 1; }
  done
}

echo "corpus: $input ($(du -sh "$input" | cut -f1)); $(nproc) cores; $("$bin" --version)"
measure "scan (one process)" "$bin" scan "$input" --out "$work/single" -q "$@"
single=$secs
for n in $shard_counts; do
  rm -rf "$work/parts" "$work/merged"
  measure "plan $n" "$bin" plan "$input" --shards "$n" --out "$work/census.plan" -q
  plan_secs=$secs
  shard_total=0
  shard_max=0
  for ((i = 0; i < n; i++)); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$bin" scan --plan "$work/census.plan" \
      --shard "$i/$n" --out "$work/parts/$i" -q "$@" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r s kb <"$work/time"
    shard_total=$(echo "$shard_total + $s" | bc)
    shard_max=$(echo "if ($s > $shard_max) $s else $shard_max" | bc)
  done
  printf '%-28s %8.2f s (longest shard %.2f s)\n' "$n shards, one after another" "$shard_total" "$shard_max"
  measure "merge $n" "$bin" merge "$work"/parts/* --out "$work/merged" -q
  merge_secs=$secs
  same "$work/single" "$work/merged"
  total=$(echo "$plan_secs + $shard_total + $merge_secs" | bc)
  printf '%-28s %8.2f s = %.2fx the single scan; partials %s\n' "plan + $n shards + merge" "$total" \
    "$(echo "scale=3; $total / $single" | bc)" "$(du -sh "$work/parts" | cut -f1)"
done
