#!/usr/bin/env bash
# memory.sh -- resident memory per stored item: bucketcache-node vs memcached.
#
# For each server: start it on a free 127.0.0.1 port with the same -t and
# -m (large enough that nothing is evicted), read VmRSS from
# /proc/PID/status, store ITEMS items (keys "key:0000000".., VALUE-byte
# values) with mcbench's preload phase, wait for background work to settle
# (memcached grows its hash table in a background thread), read VmRSS
# again and the server's curr_items.  Bytes per item = (RSS after - RSS
# before) / curr_items: everything the process really holds per item
# (item header, key, value, hash-table slot, allocator overhead and slack),
# which is what a user pays for; the overhead per item is that less the
# key and value bytes.  Prints a markdown table per item shape with the
# ratio node/memcached.
#
# Item shapes (BC_BENCH_SHAPES, "key:value" bytes): by default 10:100,
# 30:30 and 10:1000.  -m is large enough for ITEMS items of the shape.
# With BC_BEFORE_NODE_BIN an earlier node build is measured too.
#
# usage: tests/bench/memory.sh [BUILD_DIR]      (default: build)
# environment:
#   BC_BENCH_ITEMS=1000000   items to store
#   BC_BENCH_SHAPES="10:100 30:30 10:1000"
#   BC_BENCH_THREADS=2       -t for every server
#   BC_BEFORE_NODE_BIN=      an earlier node build to measure alongside
#   MEMCACHED_BIN=/usr/bin/memcached
#   BC_NODE_BIN=BUILD_DIR/node/bucketcache-node
set -euo pipefail

BUILD_DIR=${1:-${BC_BUILD_DIR:-build}}
ITEMS=${BC_BENCH_ITEMS:-1000000}
SHAPES=${BC_BENCH_SHAPES:-"10:100 30:30 10:1000"}
THREADS=${BC_BENCH_THREADS:-2}
BEFORE_BIN=${BC_BEFORE_NODE_BIN:-}
MEMCACHED=${MEMCACHED_BIN:-/usr/bin/memcached}
NODE_BIN=${BC_NODE_BIN:-$BUILD_DIR/node/bucketcache-node}
MCBENCH=$BUILD_DIR/tests/bench_mcbench

for bin in "$MEMCACHED" "$NODE_BIN" "$MCBENCH"; do
  [ -x "$bin" ] || { echo "memory: $bin not found (build first: cmake --build $BUILD_DIR)" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# stat PORT NAME: one value of the memcached "stats" command (empty if absent)
stat() {
  local reply
  reply=$(exec 3<>/dev/tcp/127.0.0.1/"$1"; printf 'stats\r\nquit\r\n' >&3; timeout 5 cat <&3 || true)
  printf '%s\n' "$reply" | tr -d '\r' | awk -v n="$2" '$1 == "STAT" && $2 == n {print $3}'
}

# measure NAME ARGV...: prints "NAME rss_before_kb rss_after_kb items"
# (PREFIX, VALUE and MEMORY: the shape being measured)
measure() {
  local name=$1; shift
  local port pid before after items
  port=$(free_port)
  "$@" -l 127.0.0.1 -p "$port" -t "$THREADS" -m "$MEMORY" >"$WORK/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$port" "$pid" || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
  sleep 1
  before=$(rss_kb "$pid")
  "$MCBENCH" -p "$port" -t 2 -c 8 -k "$ITEMS" -v "$VALUE" -P "$PREFIX" -w -n 0 \
    >"$WORK/$name.mcbench" 2>&1 || true
  grep -q '^preload errors: 0 ' "$WORK/$name.mcbench" ||
    echo "  !! $name: $(grep -E '^preload' "$WORK/$name.mcbench" | tr '\n' ' ')" >&2
  sleep 3   # let background hash-table growth finish
  kill -0 "$pid" 2>/dev/null || { echo "$name died; log:" >&2; tail -n 20 "$WORK/$name.log" >&2; exit 1; }
  after=$(rss_kb "$pid")
  items=$(stat "$port" curr_items)
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$name $before $after ${items:-0}"
}

digits=$((ITEMS - 1)); digits=${#digits}
echo "# RSS per item after storing $ITEMS items ($(date -u '+%Y-%m-%d %H:%M UTC'); $(context))"
echo "# every server: -t $THREADS, -m large enough that nothing is evicted"
for shape in $SHAPES; do
  KEY=${shape%%:*}
  VALUE=${shape##*:}
  [ "$KEY" -gt "$digits" ] || { echo "memory: keys of $KEY bytes cannot hold $digits digits" >&2; exit 1; }
  PREFIX=$(printf '%*s' $((KEY - digits)) '' | tr ' ' k)
  # the items, twice over, and 64 MB
  MEMORY=$(( (ITEMS * (KEY + VALUE + 100) * 2 >> 20) + 64 ))
  {
    measure memcached "$MEMCACHED" "${USER_FLAG[@]}" -U 0
    [ -z "$BEFORE_BIN" ] || measure node-before "$BEFORE_BIN" --admin-port 0
    measure node "$NODE_BIN" --admin-port 0
  } >"$WORK/results"
  echo
  echo "$KEY-byte keys, $VALUE-byte values (-m $MEMORY):"
  echo
  echo "| server | RSS before MiB | RSS after MiB | items stored | bytes per item | overhead per item | node/memcached |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  awk -v data=$((KEY + VALUE)) '
    { name[NR] = $1; before[NR] = $2; after[NR] = $3; items[NR] = $4
      per[NR] = $4 > 0 ? ($3 - $2) * 1024 / $4 : 0 }
    END {
      for (i = 1; i <= NR; i++)
        printf "| %s | %.1f | %.1f | %d | %.1f | %.1f | %s |\n", name[i], before[i] / 1024,
               after[i] / 1024, items[i], per[i], per[i] - data,
               (name[i] != "memcached" && per[1] > 0) ? sprintf("%.2f", per[i] / per[1]) : ""
    }' "$WORK/results"
done
