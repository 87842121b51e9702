#!/usr/bin/env bash
# Eventing benchmark (issue: durable broker, ingress -> delivery).
#
#   bench/eventing.sh            full: 3 rounds of closed loop at 16, 64 and 256 connections (10 s
#                                each) and open loop at 1,000 events/s (10 s per round);
#                                writes the eventing section of BENCHMARKS.md
#   bench/eventing.sh --quick    every part briefly, prints the table only (CI)
#   options: --no-write, --parts throughput,latency, and any wisp-loadgen eventing option
#            after `--` (e.g. `-- --connections 8,32,128 --rate 2000 --rounds 5`)
#
# Builds wisp in release mode, then bench/loadgen starts its own subscriber (an HTTP server on
# a loopback port), starts `wisp serve` on loopback port 0 with a temporary data dir, applies
# a Broker and a Trigger whose subscriber is that server, and POSTs binary-mode CloudEvents to
# the broker's ingress, alternated with the same POSTs straight to the subscriber (the
# limit). It prints a table: events/s sustained from ingress to delivery, send -> delivery
# latency at a fixed rate, the ingress's 202 latency, the daemon's CPU per event. Everything
# it starts is stopped on exit, whatever the exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/lib.bash
source bench/lib.bash

quick=0 write=1 parts=
args=("$@")
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-write) write=0 ;;
    --parts) parts=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$parts" ] || write=0          # a partial run does not replace the section
[ "${#extra[@]}" = 0 ] || write=0   # nor does a run with other settings

if [ "$quick" = 1 ]; then
  write=0
  mode=(--quick --rounds 1 --connections 16,64 --duration-secs 2 --warmup-secs 0.5
        --latency-secs 2 --latency-slices 1 --drain-secs 60)
  deadline=180
else
  mode=(--rounds 3 --connections 16,64,256 --duration-secs 10 --warmup-secs 2
        --latency-secs 10 --latency-slices 5 --rate 1000 --drain-secs 120)
  deadline=1200
fi
mode+=(--deadline-secs "$deadline")

echo "== building (release)" >&2
cargo build --release -q -p wisp -p wisp-loadgen

workdir=$(mktemp -d "${TMPDIR:-/tmp}/wisp-bench-ev.XXXXXX")
pidfile=$workdir/pids
loadgen_pid=
# On exit, loadgen and our processes (those naming the workdir, where the daemon's data dir
# is) are stopped and the workdir removed (`bench_cleanup`, bench/lib.bash).
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
json=bench/results/eventing-$(date -u +%Y%m%dT%H%M%SZ).json
commit=$(bench_commit)
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
command="bench/eventing.sh${args[*]:+ ${args[*]}}"
for v in $(env | grep -oE '^(GLIBC_TUNABLES|MALLOC_[A-Z_]+|LD_PRELOAD|WISP_[A-Z_]+|TOKIO_[A-Z_]+)=' | tr -d =); do
  command="$v=${!v} $command"
done

echo "== $command: nproc $(nproc), $cpu" >&2
md_args=()
if [ "$write" = 1 ]; then
  md_args=(--benchmarks-md "$root/BENCHMARKS.md")
fi
parts_args=()
[ -z "$parts" ] || parts_args=(--parts "$parts")
target_dir=${CARGO_TARGET_DIR:-$root/target}
timeout --kill-after=10 "$((deadline + 60))" \
  "$target_dir/release/wisp-loadgen" eventing \
  --bin "$target_dir/release/wisp" --workdir "$workdir" --pidfile "$pidfile" --json "$json" \
  "${mode[@]}" "${parts_args[@]}" "${extra[@]}" \
  --date "$stamp" --commit "$commit" --nproc "$(nproc)" --cpu "$cpu" \
  --kernel "$(uname -r)" --fs "$(df -PT "$workdir" | awk 'NR == 2 { print $2 }')" \
  --rustc "$(rustc --version)" \
  --command "$command" --load "$(cut -d" " -f1-3 /proc/loadavg)" \
  "${md_args[@]}" &
loadgen_pid=$!
wait "$loadgen_pid"
loadgen_pid=
echo "raw results: $json" >&2
