# lib.sh -- what the benchmark scripts share; sourced (bash), not run.
#
# Sets WORK (a temporary directory) and PIDS (background processes to stop),
# installs an exit trap that stops them and removes WORK, and defines:
#   free_port             a TCP port free on 127.0.0.1 now
#   wait_port PORT PID    until PORT accepts or PID dies (false then)
#   context               "commit C, N cores, load average ..." for reports
#   USER_FLAG             (-u root) when run as root, for memcached

WORK=$(mktemp -d -t bc-bench-XXXXXX)
PIDS=()
bench_cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {  # port pid
  for _ in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

USER_FLAG=()
[ "$(id -u)" = 0 ] && USER_FLAG=(-u root)

# what the figures were taken on: source commit, cores, load at the start
context() {
  local commit
  commit=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "commit $commit, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}
