#!/usr/bin/env bash
# compare_memcached.sh -- bucketcache-node vs real memcached, side by side.
#
# Starts a memcached 1.6 and a bucketcache-node with the same worker threads
# and memory limit on free 127.0.0.1 ports, runs the same mcbench load
# against each (90% get / 10% set, 100-byte values, 100k keys preloaded,
# 50 connections), first without pipelining and then 16 deep, and prints a
# markdown table: ops/s of each, the ratio node/memcached, p50 and p99 of
# each.
#
# HOW NOISE IS KEPT DOWN: the machine is shared, so absolute figures move
# between runs; only the ratio of two servers measured in the same run
# means something.  Each configuration runs ROUNDS short rounds, alternating
# which server goes first (mc,node / node,mc / ...); the ratio shown is the
# median of the per-round ratios, latencies the medians over rounds.  Both servers stay up for the whole run (an idle server
# costs nothing).
#
# A third server, an earlier build of the node (BC_BEFORE_NODE_BIN), can
# run in the same rounds: the table then also shows its ops/s and its own
# ratio to memcached, so a change is judged by the ratio it moves, not by
# absolute figures taken at different times.
#
# usage: tests/bench/compare_memcached.sh [BUILD_DIR]      (default: build)
# environment:
#   BC_BENCH_THREADS=2         server worker threads (-t), the same for both
#   BC_BENCH_MEMORY=256        server memory (-m, MB), the same for both
#   BC_BENCH_CLIENT_THREADS=2  mcbench threads
#   BC_BENCH_CONNS=50          connections
#   BC_BENCH_DURATION=2        seconds per measured run
#   BC_BENCH_ROUNDS=6          runs per server and depth
#   BC_BENCH_DEPTHS="1 16"     pipelining depths to run
#   BC_BENCH_SERVER_FLAGS=     extra flags for both servers (memcached's, e.g. -L)
#   MEMCACHED_BIN=/usr/bin/memcached
#   BC_NODE_BIN=BUILD_DIR/node/bucketcache-node
#   BC_BEFORE_NODE_BIN=        an earlier node build to measure alongside
set -euo pipefail

BUILD_DIR=${1:-${BC_BUILD_DIR:-build}}
THREADS=${BC_BENCH_THREADS:-2}
MEMORY=${BC_BENCH_MEMORY:-256}
CLIENT_THREADS=${BC_BENCH_CLIENT_THREADS:-2}
CONNS=${BC_BENCH_CONNS:-50}
DURATION=${BC_BENCH_DURATION:-2}
ROUNDS=${BC_BENCH_ROUNDS:-6}
DEPTHS=${BC_BENCH_DEPTHS:-"1 16"}
read -r -a SERVER_FLAGS <<<"${BC_BENCH_SERVER_FLAGS:-}"
KEYS=100000
VALUE=100
GET_RATIO=0.9
MEMCACHED=${MEMCACHED_BIN:-/usr/bin/memcached}
NODE_BIN=${BC_NODE_BIN:-$BUILD_DIR/node/bucketcache-node}
BEFORE_BIN=${BC_BEFORE_NODE_BIN:-}
MCBENCH=$BUILD_DIR/tests/bench_mcbench

for bin in "$MEMCACHED" "$NODE_BIN" "$MCBENCH"; do
  [ -x "$bin" ] || { echo "compare_memcached: $bin not found (build first: cmake --build $BUILD_DIR)" >&2; exit 1; }
done

. "$(dirname "$0")/lib.sh"

MC_PORT=$(free_port)
"$MEMCACHED" "${USER_FLAG[@]}" -U 0 -l 127.0.0.1 -p "$MC_PORT" -t "$THREADS" -m "$MEMORY" -c 4096 \
  "${SERVER_FLAGS[@]}" >"$WORK/memcached.log" 2>&1 &
MC_PID=$!
PIDS+=("$MC_PID")
NODE_PORT=$(free_port)
"$NODE_BIN" -l 127.0.0.1 -p "$NODE_PORT" -t "$THREADS" -m "$MEMORY" -c 4096 --admin-port 0 \
  "${SERVER_FLAGS[@]}" >"$WORK/node.log" 2>&1 &
NODE_PID=$!
PIDS+=("$NODE_PID")
SERVERS=(memcached node)
if [ -n "$BEFORE_BIN" ]; then
  BEFORE_PORT=$(free_port)
  "$BEFORE_BIN" -l 127.0.0.1 -p "$BEFORE_PORT" -t "$THREADS" -m "$MEMORY" -c 4096 --admin-port 0 \
    "${SERVER_FLAGS[@]}" >"$WORK/before.log" 2>&1 &
  BEFORE_PID=$!
  PIDS+=("$BEFORE_PID")
  wait_port "$BEFORE_PORT" "$BEFORE_PID" || { echo "$BEFORE_BIN did not start:" >&2; cat "$WORK/before.log" >&2; exit 1; }
  SERVERS+=(before)
fi
wait_port "$MC_PORT" "$MC_PID" || { echo "memcached did not start:" >&2; cat "$WORK/memcached.log" >&2; exit 1; }
wait_port "$NODE_PORT" "$NODE_PID" || { echo "bucketcache-node did not start:" >&2; cat "$WORK/node.log" >&2; exit 1; }

MC_VERSION=$("$MEMCACHED" -V 2>/dev/null | awk '{print $2}')
echo "# bucketcache-node vs memcached $MC_VERSION ($(date -u '+%Y-%m-%d %H:%M UTC'); $(context))"
[ ${#SERVER_FLAGS[@]} -eq 0 ] || echo "# both servers started with: ${SERVER_FLAGS[*]}"
[ -z "$BEFORE_BIN" ] || echo "# before: $BEFORE_BIN, in the same rounds"
echo "# both: -t $THREADS -m $MEMORY; mcbench: $CLIENT_THREADS threads, $CONNS conns, $KEYS keys" \
     "preloaded, $VALUE-byte values, $GET_RATIO get ratio, ${DURATION}s x $ROUNDS rounds per cell"

# run_one NAME PORT PID DEPTH: one mcbench run; appends
# "NAME DEPTH ROUND ops p50 p99 errors" to $WORK/results
run_one() {
  local name=$1 port=$2 pid=$3 depth=$4 out line
  out="$WORK/run-$name-$depth-$round.txt"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "!! $name is not running any more; its log:" >&2
    tail -n 20 "$WORK/$name.log" >&2
    exit 1
  fi
  "$MCBENCH" -p "$port" -t "$CLIENT_THREADS" -c "$CONNS" -k "$KEYS" -v "$VALUE" -r "$GET_RATIO" \
    -d "$depth" -D "$DURATION" -w >"$out" 2>&1 || true
  line=$(grep '^RESULT ' "$out" || true)
  if [ -z "$line" ]; then
    echo "!! mcbench against $name failed:" >&2
    cat "$out" >&2
    exit 1
  fi
  echo "  $name depth=$depth round=$round: $(grep -E '^(ops|latency)' "$out" | tr '\n' ' ')"
  if grep -q 'errors: [1-9]' "$out"; then
    echo "  !! $name: $(grep 'errors:' "$out" | tr '\n' ' ')"
  fi
  echo "$line" | awk -v n="$name" -v d="$depth" -v r="$round" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      print n, d, r, v["ops_per_sec"], v["p50_us"], v["p99_us"], v["errors"] }' >>"$WORK/results"
}

# run_server NAME DEPTH
run_server() {
  case $1 in
    memcached) run_one memcached "$MC_PORT" "$MC_PID" "$2" ;;
    node) run_one node "$NODE_PORT" "$NODE_PID" "$2" ;;
    before) run_one before "$BEFORE_PORT" "$BEFORE_PID" "$2" ;;
  esac
}

: >"$WORK/results"
n=${#SERVERS[@]}
for depth in $DEPTHS; do
  for round in $(seq "$ROUNDS"); do
    # each round starts with the next server and goes the other way every
    # other round: every server is first, middle and last as often
    for i in $(seq 0 $((n - 1))); do
      if [ $((round % 2)) -eq 1 ]; then j=$(( (round / 2 + i) % n )); else j=$(( (round / 2 + n - i) % n )); fi
      run_server "${SERVERS[$j]}" "$depth"
    done
  done
done

# Per depth: mean ops/s of each server; the ratio is the median of the
# per-round ratios (each round's two runs are back to back, so background
# load mostly cancels); latencies are medians over the rounds.
echo
if [ -n "$BEFORE_BIN" ]; then
  echo "| depth | memcached ops/s | node ops/s | node/memcached (median of rounds) | before ops/s | before/memcached | memcached p50 us | node p50 us | before p50 us | memcached p99 us | node p99 us | before p99 us | errors mc/node/before |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
else
  echo "| depth | memcached ops/s | node ops/s | node/memcached (median of rounds) | memcached p50 us | node p50 us | memcached p99 us | node p99 us | errors mc/node |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
fi
awk -v with_before="${BEFORE_BIN:+1}" '
  function median(a, n,    i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  { k = $1 " " $2 " " $3; ops[k] = $4; p50[k] = $5; p99[k] = $6; err[$1 " " $2] += $7
    if (!seen[$2]++) order[++nd] = $2
    if ($3 > rounds) rounds = $3 }
  END {
    for (i = 1; i <= nd; i++) {
      d = order[i]; mo = bo = fo = 0
      for (r = 1; r <= rounds; r++) {
        m = "memcached " d " " r; b = "node " d " " r; f = "before " d " " r
        mo += ops[m]; bo += ops[b]; fo += ops[f]
        ratio[r] = ops[m] > 0 ? ops[b] / ops[m] : 0
        fratio[r] = ops[m] > 0 ? ops[f] / ops[m] : 0
        mp50[r] = p50[m]; bp50[r] = p50[b]; mp99[r] = p99[m]; bp99[r] = p99[b]
        fp50[r] = p50[f]; fp99[r] = p99[f]
      }
      if (with_before)
        printf "| %s | %.0f | %.0f | %.2f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %d/%d/%d |\n", d,
               mo / rounds, bo / rounds, median(ratio, rounds), fo / rounds, median(fratio, rounds),
               median(mp50, rounds), median(bp50, rounds), median(fp50, rounds),
               median(mp99, rounds), median(bp99, rounds), median(fp99, rounds),
               err["memcached " d], err["node " d], err["before " d]
      else
        printf "| %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %d/%d |\n", d,
               mo / rounds, bo / rounds, median(ratio, rounds), median(mp50, rounds),
               median(bp50, rounds), median(mp99, rounds), median(bp99, rounds),
               err["memcached " d], err["node " d]
    }
  }' "$WORK/results"

for name in "${SERVERS[@]}"; do
  case $name in memcached) pid=$MC_PID ;; node) pid=$NODE_PID ;; *) pid=$BEFORE_PID ;; esac
  kill -0 "$pid" 2>/dev/null || { echo "!! $name died during the run; log:"; tail -n 20 "$WORK/$name.log"; }
done
