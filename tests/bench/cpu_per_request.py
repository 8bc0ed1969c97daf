#!/usr/bin/env python3
"""cpu_per_request.py -- server CPU time per request: bucketcache-node vs
memcached (and an earlier node build, BC_BEFORE_NODE_BIN), the load of
compare_memcached.sh.

Every server starts once with the same -t and -m; its 100k keys are
stored once (mcbench -w -n 0), then each round runs the same mcbench load
(90% get / 10% set, 100-byte values, 50 connections, 2 client threads,
depth BC_BENCH_DEPTH) against each server in a rotating order and reads
the server's user + system CPU time (/proc/PID/stat) before and after.
CPU per request does not move with the time a server waits for a core,
so on a shared machine it is far steadier than ops/s; the ratios printed
are medians of the per-round ratios.  With a small -m (BC_BENCH_MEMORY=8:
about half the keys fit) it measures the engine under eviction; the hit
ratios are printed too, since a hit costs more than a miss.

usage: tests/bench/cpu_per_request.py [BUILD_DIR]
environment: BC_BENCH_ROUNDS=8, BC_BENCH_DURATION=2, BC_BENCH_DEPTH=16,
             BC_BENCH_MEMORY=256, BC_BENCH_THREADS=2, BC_BEFORE_NODE_BIN=
"""
import os
import re
import statistics
import subprocess

import benchenv

BUILD, harness = benchenv.BUILD, benchenv.harness
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", "8"))
DURATION = os.environ.get("BC_BENCH_DURATION", "2")
DEPTH = os.environ.get("BC_BENCH_DEPTH", "16")
MEMORY = int(os.environ.get("BC_BENCH_MEMORY", "256"))
THREADS = int(os.environ.get("BC_BENCH_THREADS", "2"))
BEFORE = os.environ.get("BC_BEFORE_NODE_BIN", "")
MCBENCH = os.path.join(BUILD, "tests", "bench_mcbench")
TICK = os.sysconf("SC_CLK_TCK")
LOAD = ["-t", "2", "-c", "50", "-k", "100000", "-v", "100", "-r", "0.9"]


def cpu_s(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def mcbench(port, *args):
    out = subprocess.run([MCBENCH, "-p", str(port)] + LOAD + list(args),
                         capture_output=True, text=True, timeout=300).stdout
    m = re.search(r"^RESULT ops=(\d+)", out, re.M)
    assert m, out
    hits = re.search(r"^hits: (\d+) \(([\d.]+)%", out, re.M)
    return int(m.group(1)), float(hits.group(2)) / 100 if hits else 0.0


def run(server):
    before = cpu_s(server.proc.p.pid)
    ops, hit_ratio = mcbench(server.port, "-d", DEPTH, "-D", DURATION)
    return ops, cpu_s(server.proc.p.pid) - before, hit_ratio


def main():
    benchenv.print_header()
    print("# every server: -t %d -m %d; mcbench %s -d %s, %s s x %d rounds"
          % (THREADS, MEMORY, " ".join(LOAD), DEPTH, DURATION, ROUNDS), flush=True)
    servers = [("memcached", harness.Memcached(threads=THREADS, memory_mb=MEMORY)),
               ("node", harness.Node(threads=THREADS, memory_mb=MEMORY))]
    if BEFORE:
        harness.NODE_BIN = BEFORE
        servers.append(("before", harness.Node(threads=THREADS, memory_mb=MEMORY)))
    for _, s in servers:
        mcbench(s.port, "-w", "-n", "0")
    per = {name: [] for name, _ in servers}      # us CPU per request, per round
    hit = {name: [] for name, _ in servers}
    for r in range(ROUNDS):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        line = []
        for name, s in order:
            ops, cpu, hr = run(s)
            per[name].append(cpu / ops * 1e6)
            hit[name].append(hr)
            line.append("%s %.2f us (%d requests, hits %.1f%%)" % (name, per[name][-1], ops,
                                                                   hr * 100))
        print("round %2d: %s" % (r + 1, "; ".join(line)), flush=True)

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(per[a], per[b]))

    names = [n for n, _ in servers]
    print("\n| server | us CPU per request (median) | hit ratio | vs memcached (median of rounds)%s |"
          % (" | vs before" if BEFORE else ""))
    print("|---|---:|---:|---:%s|" % ("|---:" if BEFORE else ""))
    for n in names:
        print("| %s | %.2f | %.3f | %s%s |" % (
            n, statistics.median(per[n]), statistics.median(hit[n]),
            "" if n == "memcached" else "%.2f" % ratio(n, "memcached"),
            (" | %.2f" % ratio(n, "before") if n == "node" else " | ") if BEFORE else ""))
    for _, s in servers:
        s.stop()


main()
