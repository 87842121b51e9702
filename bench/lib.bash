# Shared by the benchmark scripts: sourced, not run (not `*.sh`, so .ci/run does not run it).

# Our processes: the pids recorded in $pidfile that still name $workdir, and any process whose
# command line names $workdir (daemons, proxies, registries, runc and the test apps all get
# their files or a symlinked binary from it), one per line.
ours() {
  local pid
  if [ -f "$pidfile" ]; then
    while read -r pid; do
      grep -qF "$workdir" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
    done <"$pidfile"
  fi
  # (Read by bash itself: a grep here would find its own command line.)
  local f argv
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    { mapfile -d '' -t argv <"$f"; } 2>/dev/null || continue
    case "${argv[*]}" in
      *"$workdir"*) echo "$pid" ;;
    esac
  done | sort -u
}

# The commit measured, as the results record it: "abc1234", or "abc1234 + uncommitted changes".
bench_commit() {
  local commit
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit + uncommitted changes"
  fi
  echo "$commit"
}

# The EXIT trap of a script that runs wisp-loadgen in the background ($loadgen_pid): stop it,
# then our processes (TERM, then KILL after 2 s), remove $workdir, keep the exit status.
bench_cleanup() {
  local status=$? pid
  trap - EXIT INT TERM
  if [ -n "$loadgen_pid" ] && kill -0 "$loadgen_pid" 2>/dev/null; then
    kill -TERM "$loadgen_pid" 2>/dev/null || true
    wait "$loadgen_pid" 2>/dev/null || true
  fi
  for pid in $(ours); do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -z "$(ours)" ] && break
    sleep 0.2
  done
  for pid in $(ours); do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$workdir"
  exit "$status"
}
