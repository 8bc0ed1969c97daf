#!/usr/bin/env bash
# hitratio.sh -- hit ratio of each eviction policy vs memcached on Zipf(0.99).
#
# At equal memory (the same -m for every server) with the cache holding
# about 10% of the key space:
#
#   1. calibrate: fill a fresh memcached -m MEMORY with VALUE-byte items
#      (more than fit) and read curr_items = C, the number of such items
#      memcached holds at that -m (with -m 64 and 1000-byte values, its
#      1184-byte slab class, C is about 56,600);
#   2. KEYS = C * 10, so memcached holds 10% of the key space;
#   3. on a fresh memcached, then a fresh bucketcache-node per eviction
#      policy (--eviction s3fifo|lru|lfu|fifo), replay the same Zipf(0.99)
#      stream (fixed seed) with bench_hitratio: get, on a miss set;
#      WARMUP requests unrecorded, then REQUESTS measured;
#   4. the same again on the scan-heavy mix: a fraction SCAN of the
#      requests are one-hit wonders (keys requested once, never again)
#      interleaved with the same Zipf core; its table also shows the hit
#      ratio of the core requests alone;
#   5. under each table, what is possible on that stream (bench_hitratio
#      --bound, no server) with as many items as memcached held and as the
#      node's first policy held: the static bound (the most popular keys,
#      known in advance) and the exact-count LFU (counts of every request
#      since the start; the best an online policy can hope for here).
#
# With BC_BEFORE_NODE_BIN set, an earlier node build runs too, with its
# default policy, in the same run.
#
# The node counts all its memory (item headers, hash tables) against -m, as
# memcached does not (its hash table is outside -m), so the node may hold
# fewer items at the same -m: the table shows how many each server held at
# the end and its resident memory, which explain part of any difference.
#
# usage: tests/bench/hitratio.sh [BUILD_DIR]      (default: build)
# environment:
#   BC_BENCH_MEMORY=64          -m for every server (MB)
#   BC_BENCH_VALUE=1000         value bytes
#   BC_BENCH_WARMUP=500000      unrecorded requests
#   BC_BENCH_REQUESTS=1000000   measured requests
#   BC_BENCH_POLICIES="lru lfu fifo s3fifo"
#   BC_BENCH_ZIPF=0.99
#   BC_BENCH_SCAN=0.5           fraction of one-hit wonders in the second mix (0: skip it)
#   BC_BEFORE_NODE_BIN=         an earlier node build, run with its default policy
#   MEMCACHED_BIN=/usr/bin/memcached
#   BC_NODE_BIN=BUILD_DIR/node/bucketcache-node
set -euo pipefail

BUILD_DIR=${1:-${BC_BUILD_DIR:-build}}
MEMORY=${BC_BENCH_MEMORY:-64}
VALUE=${BC_BENCH_VALUE:-1000}
WARMUP=${BC_BENCH_WARMUP:-500000}
REQUESTS=${BC_BENCH_REQUESTS:-1000000}
POLICIES=${BC_BENCH_POLICIES:-"s3fifo lru lfu fifo"}
ZIPF=${BC_BENCH_ZIPF:-0.99}
SCAN=${BC_BENCH_SCAN:-0.5}
BEFORE_BIN=${BC_BEFORE_NODE_BIN:-}
THREADS=2
MEMCACHED=${MEMCACHED_BIN:-/usr/bin/memcached}
NODE_BIN=${BC_NODE_BIN:-$BUILD_DIR/node/bucketcache-node}
HITRATIO=$BUILD_DIR/tests/bench_hitratio

for bin in "$MEMCACHED" "$NODE_BIN" "$HITRATIO"; do
  [ -x "$bin" ] || { echo "hitratio: $bin not found (build first: cmake --build $BUILD_DIR)" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"

# start NAME ARGV...: starts a server on a free port; sets PORT and PID
start() {
  local name=$1; shift
  PORT=$(free_port)
  "$@" -l 127.0.0.1 -p "$PORT" -t "$THREADS" -m "$MEMORY" >"$WORK/$name.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  wait_port "$PORT" "$PID" || { echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1; }
}

stop() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
}

field() { awk -v k="$1" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }'; }

# 1. calibration on memcached: twice as many items as -m could hold raw
start memcached-calibrate "$MEMCACHED" "${USER_FLAG[@]}" -U 0
fill_keys=$(( MEMORY * 1024 * 1024 / VALUE * 2 ))
"$HITRATIO" -p "$PORT" -v "$VALUE" -k "$fill_keys" --fill >"$WORK/calibrate.txt"
stop
CAPACITY=$(grep '^RESULT' "$WORK/calibrate.txt" | field capacity)
[ "${CAPACITY:-0}" -gt 0 ] || { echo "calibration failed:" >&2; cat "$WORK/calibrate.txt" >&2; exit 1; }
KEYS=$(( CAPACITY * 10 ))

echo "# hit ratio on Zipf($ZIPF), get + set on miss ($(date -u '+%Y-%m-%d %H:%M UTC'); $(context))"
echo "# every server: -t $THREADS -m $MEMORY; $VALUE-byte values; memcached holds $CAPACITY of them," \
     "so $KEYS keys (10x); $WARMUP warm-up + $REQUESTS measured requests, same seeded stream"

# run NAME ONE_TIME: replays the stream against the server on $PORT;
# appends to results
run() {
  local name=$1 once=$2 out="$WORK/run-$1-$2.txt"
  if ! "$HITRATIO" -p "$PORT" -k "$KEYS" -v "$VALUE" -z "$ZIPF" -W "$WARMUP" -n "$REQUESTS" \
       -o "$once" >"$out" 2>&1; then
    echo "  !! $name: $(tail -n 1 "$out")"
    kill -0 "$PID" 2>/dev/null || { echo "  !! $name died; log:"; tail -n 20 "$WORK/$name.log"; }
    echo "$name - - - - - - -" >>"$WORK/results-$once"
    [ "$name" != memcached ] || MC_ITEMS=0
    return
  fi
  local line rss
  line=$(grep '^RESULT' "$out")
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$PID/status")
  echo "  $name: $(grep '^hits:' "$out")"
  echo "$name $(echo "$line" | field hit_ratio) $(echo "$line" | field curr_items)" \
       "$(echo "$line" | field evictions) $(echo "$line" | field set_errors)" \
       "$(echo "$line" | field get_errors) ${rss:-0} $(echo "$line" | field core_hit_ratio)" \
       >>"$WORK/results-$once"
  case $name in
    memcached) MC_ITEMS=$(echo "$line" | field curr_items) ;;
    "node-${POLICIES%% *}") NODE_ITEMS=$(echo "$line" | field curr_items) ;;
  esac
}

# bounds ONE_TIME ITEMS LABEL: appends the static and exact-count LFU
# bounds at ITEMS items on the same stream to the mix's results
bounds() {
  local once=$1 items=$2 label=$3 out line
  [ "${items:-0}" -gt 0 ] || return 0
  out=$("$HITRATIO" --bound "$items" -k "$KEYS" -z "$ZIPF" -W "$WARMUP" -n "$REQUESTS" -o "$once")
  line=$(echo "$out" | grep '^RESULT')
  echo "bound:static@$label $(echo "$line" | field static_hit_ratio) $items - - - - $(echo "$line" | field static_core_hit_ratio)" \
       >>"$WORK/results-$once"
  echo "bound:lfu-exact@$label $(echo "$line" | field lfu_exact_hit_ratio) $items - - - - $(echo "$line" | field lfu_exact_core_hit_ratio)" \
       >>"$WORK/results-$once"
}

# table ONE_TIME: the markdown table of one mix
table() {
  local once=$1
  echo
  if [ "$once" = 0 ]; then
    echo "Zipf($ZIPF):"
    echo
    echo "| server | hit ratio | vs memcached (points) | items held at end | evictions | RSS at end MiB | errors (set/get) |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
  else
    echo "scan-heavy mix: $once of the requests are one-hit wonders between Zipf($ZIPF) requests:"
    echo
    echo "| server | hit ratio (all) | Zipf core hit ratio | core vs memcached (points) | items held at end | evictions | RSS at end MiB | errors (set/get) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  fi
  awk -v scan="$once" '
    NR == 1 { base = $2; cbase = $8 }
    { if ($2 == "-") { printf "| %s | failed | | | | | |\n", $1; next }
      if ($4 == "-") {      # a bound: no server, no evictions, no RSS
        if (scan == 0) {
          printf "| %s | %.4f | %+.1f | %d | - | - | - |\n", $1, $2, ($2 - base) * 100, $3
        } else {
          printf "| %s | %.4f | %.4f | %+.1f | %d | - | - | - |\n", $1, $2, $8, ($8 - cbase) * 100, $3
        }
        next
      }
      if (scan == 0) {
        diff = (base != "-" && NR > 1) ? sprintf("%+.1f", ($2 - base) * 100) : ""
        printf "| %s | %.4f | %s | %d | %d | %.1f | %d/%d |\n", $1, $2, diff, $3, $4, $7 / 1024, $5, $6
      } else {
        diff = (cbase != "-" && NR > 1) ? sprintf("%+.1f", ($8 - cbase) * 100) : ""
        printf "| %s | %.4f | %.4f | %s | %d | %d | %.1f | %d/%d |\n", $1, $2, $8, diff, $3, $4, $7 / 1024, $5, $6
      }
    }' "$WORK/results-$once"
}

MIXES="0"
[ "$SCAN" = 0 ] || MIXES="0 $SCAN"
for once in $MIXES; do
  : >"$WORK/results-$once"
  MC_ITEMS=0 NODE_ITEMS=0
  [ "$once" = 0 ] || echo "# scan-heavy mix: --one-time $once"
  start memcached "$MEMCACHED" "${USER_FLAG[@]}" -U 0
  run memcached "$once"
  stop
  if [ -n "$BEFORE_BIN" ]; then
    start "node-before" "$BEFORE_BIN" --admin-port 0
    run "node-before" "$once"
    stop
  fi
  for policy in $POLICIES; do
    start "node-$policy" "$NODE_BIN" --admin-port 0 --eviction "$policy"
    run "node-$policy" "$once"
    stop
  done
  bounds "$once" "$MC_ITEMS" memcached-items
  bounds "$once" "$NODE_ITEMS" "node-${POLICIES%% *}-items"
done
for once in $MIXES; do table "$once"; done
echo
echo "bound:static@N = the N most popular keys held from the start; bound:lfu-exact@N = an online"
echo "cache of N items that counts every request since the start (see tests/bench/hitratio.c, BOUNDS)."
