#!/usr/bin/env bash
# bucket_counters.sh -- what the per-bucket counters and the hot-key
# sampling cost: bucketcache-node with them (the default) against the same
# binary with them off (BC_BUCKET_COUNTERS=off), in the same run.
#
# It is compare_memcached.sh with the "memcached" side replaced by the node
# with its counters off: same load (90% get / 10% set, 100-byte values,
# 100k keys, 50 connections, depth 1 and 16), same alternating rounds, and
# the ratio is the median of the per-round ratios on/off.  Differences of
# a few percent are at the edge of what a shared 2-core machine can show:
# run it with more rounds (BC_BENCH_ROUNDS=10) and read several runs.
#
# usage: tests/bench/bucket_counters.sh [BUILD_DIR]     (default: build)
# environment: as compare_memcached.sh (BC_BENCH_ROUNDS, BC_BENCH_DURATION, ...)
set -euo pipefail

BUILD_DIR=${1:-${BC_BUILD_DIR:-build}}
NODE_BIN=${BC_NODE_BIN:-$BUILD_DIR/node/bucketcache-node}
[ -x "$NODE_BIN" ] || { echo "bucket_counters: $NODE_BIN not found (build first)" >&2; exit 1; }
NODE_BIN=$(cd "$(dirname "$NODE_BIN")" && pwd)/$(basename "$NODE_BIN")
WRAP=$(mktemp -d)
trap 'rm -rf "$WRAP"' EXIT
# The "memcached" of compare_memcached.sh: the node, counters off.
cat >"$WRAP/node-counters-off" <<WRAPPER
#!/bin/sh
[ "\$1" = "-V" ] && { echo "bucketcache-node counters-off"; exit 0; }
BC_BUCKET_COUNTERS=off exec "$NODE_BIN" --admin-port 0 "\$@"
WRAPPER
chmod +x "$WRAP/node-counters-off"
MEMCACHED_BIN="$WRAP/node-counters-off" BC_NODE_BIN="$NODE_BIN" \
  "$(dirname "$0")/compare_memcached.sh" "$BUILD_DIR" |
  sed -e 's/^# bucketcache-node vs memcached .*counters-off (/# bucketcache-node, per-bucket counters on vs off (/' \
      -e 's/| depth | memcached ops\/s | node ops\/s | node\/memcached (median of rounds) | memcached p50 us | node p50 us | memcached p99 us | node p99 us | errors mc\/node |/| depth | off ops\/s | on ops\/s | on\/off (median of rounds) | off p50 us | on p50 us | off p99 us | on p99 us | errors off\/on |/' \
      -e 's/^  memcached /  off /' -e 's/^  node /  on  /'
