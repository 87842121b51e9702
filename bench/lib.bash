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
