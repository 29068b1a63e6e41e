#!/usr/bin/env bash
# Submit a sharded mailcensus census to Slurm: one array job that scans the plan's N shards
# (scan.sbatch, task I = shard I), then a merge job (merge.sbatch) that starts only when every
# shard succeeded (afterok). Prints both job ids.
#
#   mailcensus plan /srv/mail --shards 64 --out plan.jsonl
#   examples/slurm/submit.sh plan.jsonl parts results [scan options, e.g. --keys keys.zone]
#
# Environment:
#   MAILCENSUS    mailcensus binary for the jobs (default: `mailcensus` on PATH)
#   SHARDS        shard count N (default: the "shards" field of the plan's first line)
#   MAX_RUNNING   at most this many scan tasks at once (sbatch --array=0-(N-1)%MAX_RUNNING)
#   SCAN_SBATCH_ARGS  extra sbatch options for the scan array, split on spaces; they override the
#                 #SBATCH lines (e.g. "--cpus-per-task=8 --mem=16G --time=2:00:00")
#   MERGE_ARGS    extra options for `mailcensus merge`, split on spaces (e.g. "--format csv,parquet")
#   WAIT=1        block until the merge job has ended; exit 0 only if it COMPLETED (a failed scan
#                 task cancels the merge job, reported with each scan task's state)
#   SBATCH_*      sbatch's own variables (SBATCH_PARTITION, SBATCH_ACCOUNT, ...) apply to both jobs
# PLAN, PARTS and OUT are made absolute, exported, and passed to the jobs with --export=ALL
# (not as --export=ALL,PLAN=... whose list would split a path at a comma). Job logs
# (mailcensus-scan-<job>_<task>.out, mailcensus-merge-<job>.out) go to the current directory.
set -euo pipefail

die() { echo "submit.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

[ $# -ge 3 ] || die "usage: submit.sh PLAN PARTS OUT [scan options...]"
command -v sbatch >/dev/null 2>&1 || die "sbatch not found (is this a Slurm submit host?)"
PLAN=$(realpath -m -- "$1")
PARTS=$(realpath -m -- "$2")
OUT=$(realpath -m -- "$3")
shift 3
[ -r "$PLAN" ] || die "plan file not readable: $PLAN"

MAILCENSUS=${MAILCENSUS:-mailcensus}
# A path relative to here would not resolve the same way everywhere: make it absolute.
if [[ $MAILCENSUS == */* ]]; then
  MAILCENSUS=$(realpath -- "$MAILCENSUS") || die "MAILCENSUS not found: $MAILCENSUS"
fi

N=${SHARDS:-}
if [ -z "$N" ]; then
  # The plan's first line is a JSON header object holding "shards": N.
  N=$(head -n 1 -- "$PLAN" | grep -o '"shards"[[:space:]]*:[[:space:]]*[0-9][0-9]*' | head -n 1 |
      grep -o '[0-9][0-9]*$' || true)
  [ -n "$N" ] || die "no \"shards\": N in the first line of $PLAN (set SHARDS=N to override)"
fi
[[ $N =~ ^[1-9][0-9]*$ ]] || die "bad shard count: '$N'"

range="0-$((N - 1))"
if [ -n "${MAX_RUNNING:-}" ]; then
  [[ $MAX_RUNNING =~ ^[1-9][0-9]*$ ]] || die "bad MAX_RUNNING: '$MAX_RUNNING'"
  range="$range%$MAX_RUNNING"
fi

mkdir -p -- "$PARTS"
export PLAN PARTS OUT MAILCENSUS

# --parsable prints "jobid" or "jobid;cluster".
read -r -a scan_sbatch_args <<<"${SCAN_SBATCH_ARGS:-}"
ARRAY=$(sbatch --parsable --export=ALL --array="$range" "${scan_sbatch_args[@]}" \
          "$here/scan.sbatch" "$@") ||
  die "sbatch of the scan array failed"
ARRAY=${ARRAY%%;*}
echo "scan array job: $ARRAY ($N shards)"

read -r -a merge_args <<<"${MERGE_ARGS:-}"
merge_cmd=(sbatch --parsable --export=ALL --dependency="afterok:$ARRAY" --kill-on-invalid-dep=yes)

if [ "${WAIT:-0}" != 1 ]; then
  MERGE=$("${merge_cmd[@]}" "$here/merge.sbatch" "${merge_args[@]}") ||
    die "sbatch of the merge job failed (scan array $ARRAY is queued; scancel $ARRAY to drop it)"
  echo "merge job: ${MERGE%%;*}"
  exit 0
fi

# WAIT=1: sbatch --wait prints the id at once and returns when the job ends. Its exit code is
# not enough: a job cancelled before it ran (here: the merge, when a scan task failed) gives 0.
idfile=$(mktemp)
trap 'rm -f "$idfile"' EXIT
"${merge_cmd[@]}" --wait "$here/merge.sbatch" "${merge_args[@]}" >"$idfile" &
sb=$!
while [ ! -s "$idfile" ] && kill -0 "$sb" 2>/dev/null; do sleep 0.2; done
rc=0
if [ -s "$idfile" ]; then
  MERGE=$(head -n 1 "$idfile")
  MERGE=${MERGE%%;*}
  echo "merge job: $MERGE (waiting)"
  wait "$sb" || rc=$?
else
  wait "$sb" || rc=$?
  die "sbatch of the merge job failed (exit $rc; scan array $ARRAY is queued; scancel $ARRAY to drop it)"
fi

state=$(scontrol show job -o "$MERGE" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -n 1 || true)
state=${state#JobState=}
if [ -z "$state" ] && command -v sacct >/dev/null 2>&1; then
  state=$(sacct -n -X -P -j "$MERGE" -o State 2>/dev/null | head -n 1 | cut -d' ' -f1 || true)
fi
if [ "$rc" = 0 ] && [ "$state" = COMPLETED ]; then
  echo "merge job $MERGE completed: $OUT"
  exit 0
fi
if [ "$rc" = 0 ] && [ -z "$state" ]; then
  echo "submit.sh: merge job $MERGE ended with exit 0; its state is no longer known to Slurm" >&2
  exit 0
fi
{
  echo "submit.sh: merge job $MERGE ended ${state:-in an unknown state} (sbatch --wait exit $rc)"
  scontrol show job -o "$ARRAY" 2>/dev/null |
    sed -n 's/.*ArrayTaskId=\([0-9,%-]*\).*JobState=\([A-Z_]*\).*ExitCode=\([0-9:]*\).*/  scan task \1: \2 (exit \3)/p' || true
  echo "  logs: mailcensus-scan-${ARRAY}_*.out, mailcensus-merge-$MERGE.out"
} >&2
[ "$rc" != 0 ] && exit "$rc"
exit 1
