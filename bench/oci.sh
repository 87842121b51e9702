#!/usr/bin/env bash
# Image benchmark (issue: OCI images run with runc).
#
#   bench/oci.sh            full: 100 cold starts, 10 first pulls, 10 replicas sharing an image;
#                           writes the OCI section of BENCHMARKS.md
#   bench/oci.sh --quick    every part briefly, prints the table only (CI)
#   options: --no-write, --parts cold,pull,share, and any wisp-loadgen oci option after `--`
#            (e.g. `-- --cold-trials 300 --pull-rounds 20 --runc-poll-us 1000`)
#
# Needs root (runc, overlay mounts, cgroups). Builds wisp in release mode, installs runc,
# docker-registry and busybox-static (Debian packages) if they are missing, then bench/loadgen
# starts a docker-registry on loopback with its own config, pushes two images made by
# `wisp build`, starts `wisp serve` on loopback port 0 with temporary data dirs, and prints a
# table: cold start of a cached image from zero replicas against `runc run` alone on an
# equivalent bundle; the first pull of a ~10 MB image against the registry alone; the disk
# used by 10 replicas of one image against 10 copies. Everything it starts (daemons, their
# containers, the registry, runc) is stopped on exit, whatever the exit, and its mounts and
# cgroups are removed.
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
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ -z "$parts" ] || write=0          # a partial run does not replace the section
[ "${#extra[@]}" = 0 ] || write=0   # nor does a run with other settings

if [ "$(id -u)" != 0 ]; then
  echo "OCI benchmark: must run as root (runc, overlay mounts, cgroups)" >&2
  exit 1
fi
apt_install() {
  if command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "cannot install $* (no apt-get)" >&2
    return 1
  fi
}
find_bin() { # name, then fallback paths
  local name=$1 p
  shift
  p=$(command -v "$name" || true)
  if [ -z "$p" ]; then
    for p in "$@" ""; do [ -z "$p" ] || [ ! -x "$p" ] || break; done
  fi
  echo "$p"
}
runc_bin=$(find_bin runc /usr/sbin/runc)
registry_bin=$(find_bin docker-registry /usr/bin/docker-registry)
busybox_bin=
for p in /bin/busybox /usr/bin/busybox; do
  # The images are FROM scratch: the busybox in them must be static (busybox-static).
  if [ -x "$p" ] && ! ldd "$p" >/dev/null 2>&1; then busybox_bin=$p; break; fi
done
missing=()
[ -n "$runc_bin" ] || missing+=(runc)
[ -n "$registry_bin" ] || missing+=(docker-registry)
[ -n "$busybox_bin" ] || missing+=(busybox-static)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]} (Debian packages)" >&2
  apt_install "${missing[@]}" || true
  runc_bin=$(find_bin runc /usr/sbin/runc)
  registry_bin=$(find_bin docker-registry /usr/bin/docker-registry)
  for p in /bin/busybox /usr/bin/busybox; do
    if [ -x "$p" ] && ! ldd "$p" >/dev/null 2>&1; then busybox_bin=$p; break; fi
  done
fi
[ -n "$runc_bin" ] || { echo "OCI benchmark: runc is required (apt-get install runc)" >&2; exit 1; }
[ -n "$registry_bin" ] || { echo "OCI benchmark: docker-registry is required (apt-get install docker-registry)" >&2; exit 1; }
[ -n "$busybox_bin" ] || { echo "OCI benchmark: a static busybox is required (apt-get install busybox-static)" >&2; exit 1; }

if [ "$quick" = 1 ]; then
  write=0
  mode=(--quick --cold-trials 5 --pull-rounds 1 --share-replicas 10)
  deadline=150
else
  mode=(--cold-trials 100 --pull-rounds 10 --share-replicas 10)
  deadline=900
fi
mode+=(--deadline-secs "$deadline")

echo "== building (release)" >&2
cargo build --release -q -p wisp -p wisp-loadgen

workdir=$(mktemp -d "${TMPDIR:-/tmp}/wisp-bench-oci.XXXXXX")
pidfile=$workdir/pids
loadgen_pid=
# Our processes: the ones recorded in the pid file, and any whose command line names our
# workdir (daemons, the registry, every runc: their data dirs, configs and state are in it).
# (`ours`, from bench/lib.bash)
# Containers outlive runc and the daemon (their init is in a pid namespace of its own): kill
# and delete every container of the runc state dirs in our workdir, then remove the pod
# cgroups wisp made for them (empty by then; rmdir refuses anything else).
containers_down() {
  local state id ctrl
  for state in "$workdir"/runc-alone/state "$workdir"/*/data/runc; do
    [ -d "$state" ] || continue
    for id in $("$runc_bin" --root "$state" list -q 2>/dev/null); do
      "$runc_bin" --root "$state" kill "$id" KILL 2>/dev/null || true
      "$runc_bin" --root "$state" delete --force "$id" 2>/dev/null || true
      for ctrl in /sys/fs/cgroup /sys/fs/cgroup/*; do
        [ -d "$ctrl/wisp/$id" ] || continue
        find "$ctrl/wisp/$id" -depth -type d -exec rmdir {} + 2>/dev/null || true
      done
    done
  done
}
# Overlay roots the daemons left mounted (only if one was killed), deepest first.
mounts_down() {
  local m
  awk -v w="$workdir" 'index($2, w "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$(printf '%b' "$m")" 2>/dev/null || true; done
}
cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [ -n "$loadgen_pid" ] && kill -0 "$loadgen_pid" 2>/dev/null; then
    kill -TERM "$loadgen_pid" 2>/dev/null || true
    wait "$loadgen_pid" 2>/dev/null || true
  fi
  # TERM first: wisp stops its replicas (their shell exits on TERM), runc forwards it.
  for pid in $(ours); do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    [ -z "$(ours)" ] && break
    sleep 0.2
  done
  for pid in $(ours); do kill -KILL "$pid" 2>/dev/null || true; done
  containers_down
  mounts_down
  rm -rf "$workdir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
json=bench/results/oci-$(date -u +%Y%m%dT%H%M%SZ).json
commit=$(bench_commit)
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
runc_version=$("$runc_bin" --version 2>/dev/null | head -1 | awk '{print $3}')
registry_version=$( ("$registry_bin" --version 2>&1 || true) | head -1 | awk '{print $NF}')
busybox_version=$( ("$busybox_bin" 2>&1 || true) | head -1 | awk '{print $2}')
cgroups=v1
[ ! -f /sys/fs/cgroup/cgroup.controllers ] || cgroups=v2
command="bench/oci.sh${args[*]:+ ${args[*]}}"
for v in $(env | grep -oE '^(GLIBC_TUNABLES|MALLOC_[A-Z_]+|LD_PRELOAD|WISP_[A-Z_]+)=' | tr -d =); do
  command="$v=${!v} $command"
done

echo "== $command: nproc $(nproc), $cpu, runc $runc_version, docker-registry $registry_version, busybox $busybox_version, cgroup $cgroups" >&2
md_args=()
if [ "$write" = 1 ]; then
  md_args=(--benchmarks-md "$root/BENCHMARKS.md")
fi
parts_args=()
[ -z "$parts" ] || parts_args=(--parts "$parts")
target_dir=${CARGO_TARGET_DIR:-$root/target}
timeout --kill-after=10 "$((deadline + 60))" \
  "$target_dir/release/wisp-loadgen" oci \
  --bin "$target_dir/release/wisp" --workdir "$workdir" --pidfile "$pidfile" \
  --runc "$runc_bin" --registry "$registry_bin" --busybox "$busybox_bin" --json "$json" \
  "${mode[@]}" "${parts_args[@]}" "${extra[@]}" \
  --date "$stamp" --commit "$commit" --nproc "$(nproc)" --cpu "$cpu" \
  --kernel "$(uname -r)" --fs "$(df -PT "$workdir" | awk 'NR == 2 { print $2 }')" \
  --rustc "$(rustc --version)" \
  --tools "runc $runc_version · docker-registry $registry_version · busybox $busybox_version · cgroup $cgroups" \
  --command "$command" --load "$(cut -d" " -f1-3 /proc/loadavg)" \
  "${md_args[@]}" &
loadgen_pid=$!
wait "$loadgen_pid"
loadgen_pid=
echo "raw results: $json" >&2
