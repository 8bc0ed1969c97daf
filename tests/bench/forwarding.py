#!/usr/bin/env python3
"""forwarding.py -- what forwarding costs a plain memcached client: the
throughput through a node that owns half the keys (the other half
forwarded to the owning group's primary) against a standalone node that
owns them all, measured in the same run.

Figures, not pass/fail.  Everything runs on 127.0.0.1 and is stopped at
the end: one ZooKeeper (Debian's), a console, a 2-group cluster of
BC_BENCH_BUCKETS buckets (one primary per group, no backups, both
registered before the console's first rebalance so each group owns half
the buckets) and a standalone node; every node -t BC_BENCH_THREADS with
the same memory.

  direct     bench_mcbench against the standalone node;
  forwarded  the same load against group 1's primary: the keys of group
             2's buckets (about half, uniformly spread) are forwarded.

Three workloads, all gets (every key preloaded once, not measured), all
sets, and multi-gets of BC_BENCH_MULTI consecutive keys ("mget": through
the cluster node about half of them forwarded, as one part, the others
served there, the reply put in the keys' order -- mcbench checks the
order), each at every pipelining depth of BC_BENCH_DEPTHS, BC_BENCH_ROUNDS
rounds of BC_BENCH_DURATION seconds; within a round the two targets run
back to back, the order alternating.  Printed per workload and depth: mean
ops/s of each, the median of the per-round ratios forwarded/direct (only
ratios mean anything on a shared machine), median p50 and p99, errors, and
the share of requests the node forwarded (its forward_requests counter
over the operations mcbench completed).  Target (issue 15): ratio >= 0.8
at depth 1 and >= 0.5 at depth 16.

Mind what the ratio includes: on a 2-core machine the forwarded run's
owner node (group 2) shares the cores with the forwarding node and the
load generator, while the direct run has one server; the ratio is what a
client of one node sees, all costs included.

usage: tests/bench/forwarding.py [BUILD_DIR]          (default: build)
environment:
  BC_BENCH_THREADS=2          worker threads of every node
  BC_BENCH_MEMORY=256         memory of every node (MB)
  BC_BENCH_BUCKETS=1024       buckets of the cluster
  BC_BENCH_DEPTHS="1 16"      mcbench pipelining depths
  BC_BENCH_CONNS=50           mcbench connections
  BC_BENCH_CLIENT_THREADS=2   mcbench threads
  BC_BENCH_KEYS=100000        key space
  BC_BENCH_VALUE=100          value bytes
  BC_BENCH_DURATION=2         seconds per mcbench run
  BC_BENCH_ROUNDS=5           rounds per workload and depth
  BC_BENCH_WORKLOADS="get set mget"
  BC_BENCH_MULTI=16           keys per multi-get (mget)
Takes about 3 minutes with the defaults.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

import benchenv  # noqa: E402  (the build directory, the binaries, the harness)
BUILD, harness = benchenv.BUILD, benchenv.harness

THREADS = int(os.environ.get("BC_BENCH_THREADS", "2"))
MEMORY = int(os.environ.get("BC_BENCH_MEMORY", "256"))
NB = int(os.environ.get("BC_BENCH_BUCKETS", "1024"))
DEPTHS = [int(d) for d in os.environ.get("BC_BENCH_DEPTHS", "1 16").split()]
CONNS = int(os.environ.get("BC_BENCH_CONNS", "50"))
CLIENT_THREADS = int(os.environ.get("BC_BENCH_CLIENT_THREADS", "2"))
KEYS = int(os.environ.get("BC_BENCH_KEYS", "100000"))
VALUE = int(os.environ.get("BC_BENCH_VALUE", "100"))
DURATION = float(os.environ.get("BC_BENCH_DURATION", "2"))
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", "5"))
WORKLOADS = os.environ.get("BC_BENCH_WORKLOADS", "get set mget").split()
MULTI = int(os.environ.get("BC_BENCH_MULTI", "16"))
MCBENCH = os.path.join(BUILD, "tests", "bench_mcbench")


def mcbench(port, *args):
    argv = [MCBENCH, "-p", str(port), "-t", str(CLIENT_THREADS), "-c", str(CONNS),
            "-k", str(KEYS), "-v", str(VALUE)] + [str(a) for a in args]
    r = subprocess.run(argv, capture_output=True, text=True)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        raise SystemExit("mcbench failed: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))
    return {k: float(v) for k, v in (kv.split("=", 1) for kv in line[0].split()[1:])}


def run(port, workload, depth):
    ratio = "0" if workload == "set" else "1"
    multi = MULTI if workload == "mget" else 1
    return mcbench(port, "-r", ratio, "-m", multi, "-d", depth, "-D", DURATION, "-W", "0.3")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for b in (MCBENCH, os.environ["BC_NODE_BIN"], os.environ["BC_CONSOLE_BIN"]):
        if not os.path.exists(b):
            raise SystemExit("forwarding.py: %s not found (build first)" % b)
    benchenv.print_header()
    print("# nodes -t %d -m %d; cluster of %d buckets, 2 groups; mcbench: %d threads, %d conns, "
          "%d keys, %d-byte values, %g s x %d rounds per cell" % (
              THREADS, MEMORY, NB, CLIENT_THREADS, CONNS, KEYS, VALUE, DURATION, ROUNDS),
          flush=True)
    t0 = time.time()
    zk = harness.ZooKeeper()
    try:
        cl = harness.create_cluster(zk, "fwdbench", buckets=NB)
        g1 = harness.ClusterNode(zk, cl, 1, threads=THREADS, memory_mb=MEMORY,
                                 session_timeout_ms=10000)
        g2 = harness.ClusterNode(zk, cl, 2, threads=THREADS, memory_mb=MEMORY,
                                 session_timeout_ms=10000)
        console = harness.Console(zk, cl)
        t = harness.wait_for(lambda: (lambda t: t if 0 not in t["c"] and set(t["c"]) == {1, 2}
                                      else None)(harness.tables(zk, cl)),
                             what="both groups own buckets")
        share = sum(1 for g in t["c"] if g == 2) / float(NB)
        print("# group 2 owns %d of %d buckets (%.0f%% of the keys go through a forward)" % (
            sum(1 for g in t["c"] if g == 2), NB, 100 * share), flush=True)
        alone = harness.Node(threads=THREADS, memory_mb=MEMORY)
        targets = [("direct", alone), ("forwarded", g1)]
        # every key stored once, so gets hit
        for _, node in targets:
            mcbench(node.port, "-n", "0", "-w")
        rows = []
        for workload in WORKLOADS:
            for depth in DEPTHS:
                res = {"direct": [], "forwarded": []}
                fwd_share = []
                for rnd in range(ROUNDS):
                    order = targets if rnd % 2 == 0 else targets[::-1]
                    for name, node in order:
                        before = int(g1.stats()["forward_requests"]) if node is g1 else 0
                        x = run(node.port, workload, depth)
                        if node is g1:
                            # warm-up requests are forwarded too: compare with all
                            # the requests of the run, estimated from its rate
                            done = int(g1.stats()["forward_requests"]) - before
                            total = x["ops"] * (1 + 0.3 / DURATION)
                            fwd_share.append(done / total if total else 0)
                        res[name].append(x)
                        print("  %s %s d=%d round %d: %.0f ops/s p50 %.0f us p99 %.0f us errors %d" % (
                            workload, name, depth, rnd + 1, x["ops_per_sec"], x["p50_us"],
                            x["p99_us"], x["errors"]), flush=True)
                ratios = [f["ops_per_sec"] / d["ops_per_sec"]
                          for d, f in zip(res["direct"], res["forwarded"]) if d["ops_per_sec"]]
                rows.append((workload, depth, res, statistics.median(ratios),
                             statistics.median(fwd_share)))
        print()
        print("| workload | depth | direct ops/s | forwarded ops/s | forwarded/direct | "
              "direct p50 / p99 µs | forwarded p50 / p99 µs | errors direct/forwarded | "
              "forwarded share |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for workload, depth, res, ratio, sh in rows:
            d, f = res["direct"], res["forwarded"]
            print("| %s | %d | %.0f | %.0f | **%.2f** | %.0f / %.0f | %.0f / %.0f | %d/%d | %.0f%% |" % (
                workload, depth, statistics.mean(x["ops_per_sec"] for x in d),
                statistics.mean(x["ops_per_sec"] for x in f), ratio,
                statistics.median(x["p50_us"] for x in d), statistics.median(x["p99_us"] for x in d),
                statistics.median(x["p50_us"] for x in f), statistics.median(x["p99_us"] for x in f),
                sum(x["errors"] for x in d), sum(x["errors"] for x in f), 100 * sh))
        for n in (g1, g2, alone):
            if n.proc.poll() is not None:
                print("!! a node died during the run:\n" + n.proc.output()[-2000:])
        console.stop()
    finally:
        zk.stop()
        harness._cleanup()
        shutil.rmtree(harness.TMP, ignore_errors=True)
    print("(%.0f s; load average at the end %s)" % (time.time() - t0, benchenv.load_average()))


if __name__ == "__main__":
    main()
