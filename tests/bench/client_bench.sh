#!/bin/sh
# client_bench.sh -- libbucketcache vs a raw connection to the same node,
# and single-flight (see client_bench.c).  Starts its own ZooKeeper, a
# console and one node group on free 127.0.0.1 ports, runs
# bench_client_bench, and stops everything on exit.
#
#   tests/bench/client_bench.sh [BUILD_DIR] [extra bench_client_bench options]
#
# Takes about a minute.  Use a release build (RelWithDebInfo), never the
# sanitizer build.
set -eu
BUILD_DIR=${1:-build}
[ $# -gt 0 ] && shift
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
export BC_BUILD_DIR="$BUILD_DIR"
export BC_NODE_BIN="$BUILD_DIR/node/bucketcache-node"
export BC_CLI_BIN="$BUILD_DIR/client/bucketcache"
export BC_CONSOLE_BIN="$BUILD_DIR/console/bucketcache-console"
BENCH="$BUILD_DIR/tests/bench_client_bench"
[ -x "$BENCH" ] || { echo "no $BENCH: build first" >&2; exit 1; }

exec python3 - "$HERE/../integration" "$BENCH" "$@" <<'PY'
import subprocess, sys
sys.path.insert(0, sys.argv[1])
import harness
bench, extra = sys.argv[2], sys.argv[3:]
zk = harness.ZooKeeper()
cl = harness.create_cluster(zk, "bench", buckets=1024)
node = harness.ClusterNode(zk, cl, 1, threads=2, memory_mb=256)
con = harness.Console(zk, cl)
harness.wait_for(lambda: harness.tables(zk, cl)["c"] == [1] * 1024, what="group 1 owns every bucket")
print("node 127.0.0.1:%d (2 threads), ZooKeeper %s, cluster %s" % (node.port, zk.hosts, cl), flush=True)
rc = subprocess.call([bench, "--zk", zk.hosts, "--cluster", cl, "--port", str(node.port)] + extra)
node.stop()
con.stop()
zk.stop()
sys.exit(rc)
PY
