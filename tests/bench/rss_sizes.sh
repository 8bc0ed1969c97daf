#!/usr/bin/env bash
# rss_sizes.sh -- resident memory while the mix of value sizes shifts:
# bucketcache-node vs memcached (and, optionally, an earlier node build).
#
# Each server starts alone at -m MEMORY (default 64) -t 2 and goes through
# four steps, each a mcbench run:
#
#   1. SMALL_ITEMS (1M) sets of 100-byte values  (-w -n 0: every key once)
#   2. LARGE_SETS (3000) sets of 100 KB values over 1000 keys
#   3. step 1 again (the same small keys)
#   4. step 2 again
#
# VmRSS is sampled every 50 ms during each step (and once after it).  The
# table gives, per step, the peak and the final RSS; "base" is the RSS of
# the fresh, empty server, and the last column the peak over the whole run
# against the bound the storage engine promises: -m x 1.05 + base.
#
# usage: tests/bench/rss_sizes.sh [BUILD_DIR]      (default: build)
# environment:
#   BC_BENCH_MEMORY=64           -m for every server (MB)
#   BC_BENCH_SMALL_ITEMS=1000000
#   BC_BENCH_LARGE_SETS=3000
#   BC_BEFORE_NODE_BIN=          an earlier node build to measure alongside
#   MEMCACHED_BIN=/usr/bin/memcached
#   BC_NODE_BIN=BUILD_DIR/node/bucketcache-node
set -euo pipefail

BUILD_DIR=${1:-${BC_BUILD_DIR:-build}}
MEMORY=${BC_BENCH_MEMORY:-64}
SMALL=${BC_BENCH_SMALL_ITEMS:-1000000}
LARGE=${BC_BENCH_LARGE_SETS:-3000}
MEMCACHED=${MEMCACHED_BIN:-/usr/bin/memcached}
NODE_BIN=${BC_NODE_BIN:-$BUILD_DIR/node/bucketcache-node}
BEFORE_BIN=${BC_BEFORE_NODE_BIN:-}
MCBENCH=$BUILD_DIR/tests/bench_mcbench

for bin in "$MEMCACHED" "$NODE_BIN" "$MCBENCH" ${BEFORE_BIN:+"$BEFORE_BIN"}; do
  [ -x "$bin" ] || { echo "rss_sizes: $bin not found (build first: cmake --build $BUILD_DIR)" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# step PID PORT ARGS...: runs mcbench while sampling RSS; prints "peak end"
step() {
  local pid=$1 port=$2; shift 2
  local peak=0 r
  "$MCBENCH" -p "$port" -t 2 -c 8 "$@" >"$WORK/step.out" 2>&1 &
  local mc=$!
  while kill -0 "$mc" 2>/dev/null; do
    r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.05
  done
  wait "$mc" || true
  grep -q 'errors: 0 ' "$WORK/step.out" || echo "  !! $(grep -E 'errors' "$WORK/step.out" | head -1)" >&2
  sleep 0.5
  r=$(rss_kb "$pid"); [ "$r" -gt "$peak" ] && peak=$r
  echo "$peak $r"
}

# measure NAME ARGV...: one server through the four steps; one results line
measure() {
  local name=$1; shift
  local port pid base line
  port=$(free_port)
  "$@" -l 127.0.0.1 -p "$port" -t 2 -m "$MEMORY" >"$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port" "$pid" || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
  sleep 0.5
  base=$(rss_kb "$pid")
  line="$name $base"
  line="$line $(step "$pid" "$port" -k "$SMALL" -v 100 -w -n 0)"
  line="$line $(step "$pid" "$port" -P big: -k 1000 -v 100000 -r 0 -n "$LARGE")"
  line="$line $(step "$pid" "$port" -k "$SMALL" -v 100 -w -n 0)"
  line="$line $(step "$pid" "$port" -P big: -k 1000 -v 100000 -r 0 -n "$LARGE")"
  kill -0 "$pid" 2>/dev/null || { echo "$name died; log:" >&2; tail -n 20 "$WORK/$name.log" >&2; exit 1; }
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$line"
}

echo "# RSS while value sizes shift ($(date -u '+%Y-%m-%d %H:%M UTC'); $(context))"
echo "# every server: -m $MEMORY -t 2; steps: $SMALL x 100 B, $LARGE x 100 KB (1000 keys), again both"
{
  measure memcached "$MEMCACHED" "${USER_FLAG[@]}"
  [ -z "$BEFORE_BIN" ] || measure node-before "$BEFORE_BIN" --admin-port 0
  measure node "$NODE_BIN" --admin-port 0
} >"$WORK/results"

echo
echo "| server | base MiB | 1: small, peak / end | 2: large, peak / end | 3: small, peak / end | 4: large, peak / end | peak over -m | within -m x 1.05 + base |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
awk -v m="$MEMORY" '
  { peak = 0; for (i = 3; i <= 10; i += 2) if ($i > peak) peak = $i
    bound = m * 1024 * 1.05 + $2
    printf "| %s | %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %+.1f%% | %s |\n", $1, $2 / 1024,
           $3 / 1024, $4 / 1024, $5 / 1024, $6 / 1024, $7 / 1024, $8 / 1024, $9 / 1024, $10 / 1024,
           (peak - $2 - m * 1024) * 100 / (m * 1024), peak <= bound ? "yes" : "no" }' "$WORK/results"
