#!/usr/bin/env bash
# Data-plane benchmark (issue: gateway, scale from zero, autoscaling).
#
#   bench/data-plane.sh            full: 3 rounds, 50 cold starts, 100 idle Services, bursts
#                                  with Knative's default windows and with short ones; writes
#                                  the data-plane section of BENCHMARKS.md
#   bench/data-plane.sh --quick    every part briefly, prints the table only (CI)
#   options: --no-write, --parts throughput,idle,cold,burst, and any wisp-loadgen data-plane
#            option after `--` (e.g. `-- --rates 2000,5000 --rounds 5`)
#
# Builds wisp and its test app in release mode, installs wrk and nginx (Debian: wrk,
# nginx-light) if they are missing, then bench/loadgen starts `wisp serve` on loopback port 0
# with temporary data dirs, nginx with bench/nginx/proxy.conf.in, and wrk, and prints a table:
# throughput and latency through wisp's gateway vs the app called directly vs nginx; cold
# start from zero replicas minus the app's own start; replicas under a burst and the way back
# to zero; the daemon's memory and CPU with 100 Services at zero. Everything it starts is
# stopped on exit, whatever the exit.
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

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "cannot install $* (need root and apt-get)" >&2
    return 1
  fi
}
wrk_bin=$(command -v wrk || true)
if [ -z "$wrk_bin" ]; then
  echo "== installing wrk (Debian package wrk)" >&2
  apt_install wrk || true
  wrk_bin=$(command -v wrk || true)
fi
nginx_bin=$(command -v nginx || true)
[ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ]; then
  echo "== installing nginx (Debian package nginx-light)" >&2
  apt_install nginx-light || true
  nginx_bin=$(command -v nginx || true)
  [ -n "$nginx_bin" ] || [ ! -x /usr/sbin/nginx ] || nginx_bin=/usr/sbin/nginx
fi
[ -n "$wrk_bin" ] || { echo "data-plane benchmark: wrk is required (apt-get install wrk)" >&2; exit 1; }
[ -n "$nginx_bin" ] || { echo "data-plane benchmark: nginx is required (apt-get install nginx-light)" >&2; exit 1; }

if [ "$quick" = 1 ]; then
  write=0
  mode=(--quick --rounds 1 --connections 16,64 --duration-secs 1 --latency-secs 1
        --rates 5000 --open-loop-secs 1 --open-loop-slices 1 --idle-services 10 --idle-window-secs 2
        --cold-trials 5 --burst-clients 200 --burst-load-secs 5
        --burst "short:stable-window=6s,scale-to-zero-grace-period=1s"
        --burst-zero-deadline-secs 60)
  deadline=240
else
  mode=(--rounds 3 --connections 16,64 --duration-secs 10 --latency-secs 5
        --rates 5000,10000 --open-loop-secs 5 --idle-services 100 --idle-window-secs 10
        --cold-trials 50 --burst-clients 200 --burst-load-secs 10
        --burst "short:stable-window=6s,scale-to-zero-grace-period=1s"
        --burst "Knative defaults:"
        --burst-zero-deadline-secs 240)
  deadline=1800
fi
mode+=(--deadline-secs "$deadline")

echo "== building (release)" >&2
cargo build --release -q -p wisp -p wisp-testapp -p wisp-loadgen

workdir=$(mktemp -d "${TMPDIR:-/tmp}/wisp-bench-dp.XXXXXX")
pidfile=$workdir/pids
loadgen_pid=
# Our processes: the ones recorded in the pid file, and any whose command line names our
# workdir (daemons, nginx, and every copy of the test app, started through $workdir/bin).
# (`ours`, from bench/lib.bash)
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [ -n "$loadgen_pid" ] && kill -0 "$loadgen_pid" 2>/dev/null; then
    kill -TERM "$loadgen_pid" 2>/dev/null || true
    wait "$loadgen_pid" 2>/dev/null || true
  fi
  # TERM first: nginx's master then stops its workers, wisp its replicas.
  for pid in $(ours); do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -z "$(ours)" ] && break
    sleep 0.2
  done
  for pid in $(ours); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
json=bench/results/data-plane-$(date -u +%Y%m%dT%H%M%SZ).json
commit=$(bench_commit)
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
wrk_version=$( ("$wrk_bin" -v 2>&1 || true) | head -1 | awk '{print $2}')
nginx_version=$( ("$nginx_bin" -v 2>&1 || true) | sed 's/.*nginx\///')
command="bench/data-plane.sh${args[*]:+ ${args[*]}}"
for v in $(env | grep -oE '^(GLIBC_TUNABLES|MALLOC_[A-Z_]+|LD_PRELOAD|WISP_[A-Z_]+)=' | tr -d =); do
  command="$v=${!v} $command"
done

echo "== $command: nproc $(nproc), $cpu, wrk $wrk_version, nginx $nginx_version" >&2
md_args=()
if [ "$write" = 1 ]; then
  md_args=(--benchmarks-md "$root/BENCHMARKS.md")
fi
parts_args=()
[ -z "$parts" ] || parts_args=(--parts "$parts")
target_dir=${CARGO_TARGET_DIR:-$root/target}
timeout --kill-after=10 "$((deadline + 60))" \
  "$target_dir/release/wisp-loadgen" data-plane \
  --bin "$target_dir/release/wisp" --testapp "$target_dir/release/wisp-testapp" \
  --workdir "$workdir" --pidfile "$pidfile" --wrk "$wrk_bin" --nginx "$nginx_bin" \
  --nginx-template "$root/bench/nginx/proxy.conf.in" --json "$json" \
  "${mode[@]}" "${parts_args[@]}" "${extra[@]}" \
  --date "$stamp" --commit "$commit" --nproc "$(nproc)" --cpu "$cpu" \
  --kernel "$(uname -r)" --fs "$(df -PT "$workdir" | awk 'NR == 2 { print $2 }')" \
  --rustc "$(rustc --version)" --tools "wrk $wrk_version · nginx $nginx_version" \
  --command "$command" --load "$(cut -d" " -f1-3 /proc/loadavg)" \
  "${md_args[@]}" &
loadgen_pid=$!
wait "$loadgen_pid"
loadgen_pid=
echo "raw results: $json" >&2
