#!/usr/bin/env bash
# Observability benchmark (issue: metrics, request logs and tracing): the gateway's throughput
# with per-request metrics, the request log and span export (OTLP to a sink the load generator
# runs) on, against the same gateway with all three off.
#
#   bench/observability.sh           full: 5 rounds at 16 and 64 wrk connections, 10 s per run;
#                                    writes the observability section of BENCHMARKS.md
#   bench/observability.sh --quick   one short round, prints the table only (CI)
#   options: --no-write, and any wisp-loadgen observability option after `--`
#            (e.g. `-- --rounds 9 --duration-secs 20`)
#
# Builds wisp and its test app in release mode, installs wrk (Debian: wrk) if it is missing,
# then bench/loadgen starts two `wisp serve` on loopback port 0 with temporary data dirs (one
# with the defaults and `--otlp-endpoint`, one with `--request-metrics off --request-log off`),
# the test app behind each, and alternates wrk between them. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/lib.bash
source bench/lib.bash

quick=0 write=1
args=("$@")
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-write) write=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "${#extra[@]}" = 0 ] || write=0   # a run with other settings does not replace the section

wrk_bin=$(command -v wrk || true)
if [ -z "$wrk_bin" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing wrk (Debian package wrk)" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || true
  wrk_bin=$(command -v wrk || true)
fi
[ -n "$wrk_bin" ] || { echo "observability benchmark: wrk is required (apt-get install wrk)" >&2; exit 1; }

if [ "$quick" = 1 ]; then
  write=0
  mode=(--quick --rounds 1 --connections 16 --duration-secs 1)
  deadline=180
else
  mode=(--rounds 5 --connections 16,64 --duration-secs 10)
  deadline=900
fi

echo "== building (release)" >&2
cargo build --release -q -p wisp -p wisp-testapp -p wisp-loadgen

workdir=$(mktemp -d "${TMPDIR:-/tmp}/wisp-bench-obs.XXXXXX")
pidfile=$workdir/pids
loadgen_pid=
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
json=bench/results/observability-$(date -u +%Y%m%dT%H%M%SZ).json
commit=$(bench_commit)
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
wrk_version=$( ("$wrk_bin" -v 2>&1 || true) | head -1 | awk '{print $2}')
command="bench/observability.sh${args[*]:+ ${args[*]}}"
echo "== $command: nproc $(nproc), $cpu, wrk $wrk_version" >&2
md_args=()
[ "$write" = 0 ] || md_args=(--benchmarks-md "$root/BENCHMARKS.md")
# The test app is started through a link in the workdir, so `ours` finds its processes.
mkdir -p "$workdir/bin"
target_dir=${CARGO_TARGET_DIR:-$root/target}
ln -s "$(readlink -f "$target_dir/release/wisp-testapp")" "$workdir/bin/wisp-testapp"
timeout --kill-after=10 "$((deadline + 60))" \
  "$target_dir/release/wisp-loadgen" observability \
  --bin "$target_dir/release/wisp" --testapp "$workdir/bin/wisp-testapp" \
  --workdir "$workdir" --pidfile "$pidfile" --wrk "$wrk_bin" --json "$json" \
  "${mode[@]}" "${extra[@]}" \
  --date "$stamp" --commit "$commit" --nproc "$(nproc)" --cpu "$cpu" \
  --kernel "$(uname -r)" --rustc "$(rustc --version)" --tools "wrk $wrk_version" \
  --command "$command" --load "$(cut -d" " -f1-3 /proc/loadavg)" \
  "${md_args[@]}" &
loadgen_pid=$!
wait "$loadgen_pid"
loadgen_pid=
echo "raw results: $json" >&2
