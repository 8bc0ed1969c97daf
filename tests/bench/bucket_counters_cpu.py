#!/usr/bin/env python3
"""bucket_counters_cpu.py -- the per-bucket counters' and hot-key sampling's
cost on a node, as server CPU time per request: two bucketcache-nodes from
the same binary, one with BC_BUCKET_COUNTERS=off, the same mcbench load
(90% get / 10% set, 100-byte values, 100k keys, 50 connections, depth 16)
against each in alternating rounds; each round reads the node's user +
system CPU time (/proc/PID/stat) before and after.  CPU per request does
not move with the time the node waits for a core, which makes it far
steadier than throughput on a shared machine; the result is the median of
the per-round ratios on/off.

usage: tests/bench/bucket_counters_cpu.py [BUILD_DIR] (env BC_BENCH_ROUNDS=10,
       BC_BENCH_DURATION=2, BC_BENCH_DEPTH=16)
"""
import os
import re
import statistics
import subprocess

import benchenv

BUILD, harness = benchenv.BUILD, benchenv.harness
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", "10"))
DURATION = os.environ.get("BC_BENCH_DURATION", "2")
DEPTH = os.environ.get("BC_BENCH_DEPTH", "16")
MCBENCH = os.path.join(BUILD, "tests", "bench_mcbench")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def run(node):
    before = cpu_s(node.proc.pid)
    out = subprocess.run([MCBENCH, "-p", str(node.port), "-t", "2", "-c", "50", "-k", "100000",
                          "-v", "100", "-r", "0.9", "-d", DEPTH, "-D", DURATION, "-w"],
                         capture_output=True, text=True, timeout=120).stdout
    cpu = cpu_s(node.proc.pid) - before
    m = re.search(r"^RESULT ops=(\d+)", out, re.M)
    assert m, out
    ops = int(m.group(1))
    return ops, cpu


def main():
    benchenv.print_header()
    on = harness.Node(threads=2, memory_mb=256)
    off = harness.Node(threads=2, memory_mb=256, env={"BC_BUCKET_COUNTERS": "off"})
    ratios, rows = [], []
    for r in range(ROUNDS):
        order = [("on", on), ("off", off)] if r % 2 else [("off", off), ("on", on)]
        res = {}
        for name, node in order:
            ops, cpu = run(node)
            res[name] = (ops, cpu, cpu / ops * 1e6)
        ratios.append(res["on"][2] / res["off"][2])
        rows.append(res)
        print("round %2d: off %.2f us CPU/request (%d requests), on %.2f us CPU/request (%d); "
              "on/off %.3f" % (r + 1, res["off"][2], res["off"][0], res["on"][2], res["on"][0],
                               ratios[-1]), flush=True)
    print("\n| depth | off us CPU/request | on us CPU/request | on/off CPU per request (median of %d rounds) |"
          % ROUNDS)
    print("|---:|---:|---:|---:|")
    print("| %s | %.2f | %.2f | %.3f |" % (DEPTH, statistics.median(x["off"][2] for x in rows),
                                          statistics.median(x["on"][2] for x in rows),
                                          statistics.median(ratios)))
    on.stop()
    off.stop()


main()
