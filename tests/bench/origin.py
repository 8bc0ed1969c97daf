#!/usr/bin/env python3
"""origin.py -- the read-through benchmark (docs/origin.md): how many
origin requests a key costs, and what reading through adds to a hit.

Figures, not pass/fail.  Everything runs on 127.0.0.1 and is stopped at
the end: the demo origin (deploy/demo-origin.py, which logs every request
it gets), a ZooKeeper, a console, nodes.

1. ORIGIN REQUESTS PER KEY.  A cluster of three groups (one node each),
   every node with --origin pointing at the demo origin.  BC_BENCH_CLIENTS
   client threads, each with one connection to every node, send
   BC_BENCH_REQUESTS gets in all; each get picks its key from
   BC_BENCH_KEYS keys by a Zipf law (exponent BC_BENCH_ZIPF) and its node
   at random, so a hot key is asked through every node at once while its
   first fill is in flight.  Reported: distinct keys asked, origin
   requests, requests per distinct key (target: exactly 1.00), the most
   requests any key got, and the gets that came back without a value
   (target 0).  Then the same with short-lived values (the origin sends
   Cache-Control: max-age=BC_BENCH_TTL, the run lasts a few TTLs): the
   origin's log gives each key's request times, and two requests for one
   key closer than the TTL are "early" (target 0: one request per key per
   TTL).

2. LATENCY ADDED ON A HIT.  Two standalone nodes, one without an origin
   and one with (every key has one); bench_mcbench, gets only, its 20000
   keys preloaded by each run (so every get is a hit), BC_BENCH_CONNS connections, depth 1
   and 16, BC_BENCH_ROUNDS rounds of BC_BENCH_DURATION seconds alternating
   which node goes first.  Reported: median ops/s, p50 and p99 of each and
   the median per-round ratio with/without (only ratios mean anything on
   a shared machine; ~10% is noise).

usage: tests/bench/origin.py [BUILD_DIR]          (default: build)
environment:
  BC_BENCH_KEYS=5000  BC_BENCH_REQUESTS=60000  BC_BENCH_ZIPF=0.99
  BC_BENCH_CLIENTS=32  BC_BENCH_TTL=2  BC_BENCH_TTL_SECS=7
  BC_BENCH_CONNS=50  BC_BENCH_DURATION=2  BC_BENCH_ROUNDS=6  BC_BENCH_PARTS="1 2"
"""
import bisect
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time

import benchenv

BUILD, harness = benchenv.BUILD, benchenv.harness
KEYS = int(os.environ.get("BC_BENCH_KEYS", 5000))
REQUESTS = int(os.environ.get("BC_BENCH_REQUESTS", 60000))
ZIPF = float(os.environ.get("BC_BENCH_ZIPF", 0.99))
CLIENTS = int(os.environ.get("BC_BENCH_CLIENTS", 32))
TTL = int(os.environ.get("BC_BENCH_TTL", 2))
TTL_SECS = float(os.environ.get("BC_BENCH_TTL_SECS", 7))
CONNS = int(os.environ.get("BC_BENCH_CONNS", 50))
DURATION = float(os.environ.get("BC_BENCH_DURATION", 2))
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", 6))
ORIGIN_SCRIPT = os.path.join(benchenv.SRC, "deploy", "demo-origin.py")
MCBENCH = os.path.join(BUILD, "tests", "bench_mcbench")


def start_origin():
    port = harness.free_port()
    proc = harness.Proc("origin", [sys.executable, ORIGIN_SCRIPT, "--port", str(port)])
    harness.wait_port(port, proc=proc.p)
    return port, proc


def zipf_cdf(n, s):
    weights = [1.0 / (i + 1) ** s for i in range(n)]
    total = sum(weights)
    cdf, acc = [], 0.0
    for w in weights:
        acc += w / total
        cdf.append(acc)
    return cdf


def drive(nodes, prefix, total, deadline=None):
    """CLIENTS threads of gets over the nodes; returns (asked keys, misses, secs)."""
    cdf = zipf_cdf(KEYS, ZIPF)
    asked, misses, lock = set(), [0], threading.Lock()
    per = total // CLIENTS

    def client(seed):
        rnd = random.Random(seed)
        conns = [n.conn(timeout=30) for n in nodes]
        mine, missed = set(), 0
        for _ in range(per):
            if deadline is not None and time.time() > deadline:
                break
            k = bisect.bisect_left(cdf, rnd.random())
            key = "%s%d" % (prefix, min(k, KEYS - 1))
            mine.add(key)
            r = rnd.choice(conns).cmd("get " + key)
            if not r.startswith(b"VALUE "):
                missed += 1
        for c in conns:
            c.close()
        with lock:
            asked.update(mine)
            misses[0] += missed

    t0 = time.time()
    ts = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return asked, misses[0], time.time() - t0


def part1():
    print("\n## 1. origin requests per key (Zipf %.2f over %d keys, %d clients, 3 nodes)"
          % (ZIPF, KEYS, CLIENTS), flush=True)
    port, origin = start_origin()
    zk = harness.ZooKeeper()
    cl = harness.create_cluster(zk, "obench", buckets=64)
    args = ["--origin", "http://127.0.0.1:%d/v1/{key}" % port, "--forward-timeout-ms", "5000"]
    nodes = [harness.ClusterNode(zk, cl, g, *args, session_timeout_ms=4000) for g in (1, 2, 3)]
    console = harness.Console(zk, cl)
    harness.wait_tables(zk, cl, lambda t: 0 not in t["c"] and set(t["c"]) == {1, 2, 3},
                        "three groups own buckets")
    try:
        asked, misses, secs = drive(nodes, "img/z/", REQUESTS)
        stats = harness.http_json(port, "GET", "/_stats")[1]
        paths = {p: n for p, n in stats["paths"].items() if p.startswith("/v1/img/z/")}
        reqs = sum(paths.values())
        print("| gets | secs | distinct keys | origin requests | per distinct key | max for one key "
              "| gets without a value |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        print("| %d | %.1f | %d | %d | %.3f | %d | %d |" % (
            REQUESTS // CLIENTS * CLIENTS, secs, len(asked), reqs, reqs / max(1, len(asked)),
            max(paths.values() or [0]), misses), flush=True)
        sts = [n.stats() for n in nodes]
        joined = sum(int(st["origin_joined"]) for st in sts)
        fwd = sum(int(st["forward_requests"]) for st in sts)
        errs = {}
        for st in sts:
            for name, v in st.items():
                if name.startswith("origin_errors_") and int(v):
                    errs[name[len("origin_errors_"):]] = errs.get(name[len("origin_errors_"):], 0) + int(v)
        print("(single-flight: %d misses joined a fill in flight; %d gets forwarded to their owner; "
              "the origin saw %d connections; fill errors: %s)"
              % (joined, fwd, stats["connections"], errs or "none"), flush=True)

        # short-lived values: one request per key per TTL
        harness.http(port, "POST", "/_reset")
        prefix = "ttl/%d/z/" % TTL
        t_start = time.time()
        asked, misses, secs = drive(nodes, prefix, 10 ** 9, deadline=time.time() + TTL_SECS)
        log = harness.http_json(port, "GET", "/_log")[1]
        times = {}
        for t, p in log:
            if p.startswith("/v1/" + prefix):
                times.setdefault(p, []).append(t)
        gaps = [b - a for ts in times.values() for a, b in zip(ts, ts[1:])]
        # Expiry times are whole seconds (memcached's exptime): a value
        # stored at 10.9 s with max-age=2 expires at 12.0 s, so a key's
        # next request comes between TTL-1 and TTL seconds after the last
        # at the soonest; closer than that would be a second request
        # within one lifetime.
        early = sum(1 for g in gaps if g < TTL - 1 - 0.05)
        reqs = sum(len(ts) for ts in times.values())
        sts = [n.stats() for n in nodes]
        not_stored = sum(int(st["origin_fills_not_stored"]) for st in sts)
        fenced = sum(harness.http_json(n.admin_port, "GET", "/stats")[1]["cluster"]
                     .get("fenced_writes", 0) for n in nodes)
        print("\n(fills answered but not stored: %d; writes refused while a node's lease "
              "had lapsed: %d)" % (not_stored, fenced), flush=True)
        print("with max-age=%d for %.0f s: %d distinct keys, %d origin requests (%.2f per key, "
              "at most %d TTL windows in the run); gap between a key's requests: min %.2f s, "
              "median %.2f s; requests within one lifetime (gap < TTL-1 s): %d; gets without a "
              "value: %d" % (
                  TTL, time.time() - t_start, len(asked), reqs, reqs / max(1, len(asked)),
                  int(TTL_SECS / TTL) + 1, min(gaps or [0]), statistics.median(gaps or [0]),
                  early, misses), flush=True)
    finally:
        for n in nodes:
            n.stop()
        console.stop()
        zk.stop()
        origin.kill()


def mcbench(port, depth):
    out = subprocess.run([MCBENCH, "-p", str(port), "-t", "2", "-c", str(CONNS), "-k", "20000",
                          "-r", "1.0", "-w", "-d", str(depth), "-D", str(DURATION), "-P", "hit:"],
                         capture_output=True, text=True, check=True).stdout
    line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    return float(kv["ops_per_sec"]), float(kv["p50_us"]), float(kv["p99_us"]), kv


def part2():
    print("\n## 2. latency added on a hit (gets only, every key preloaded, %d connections)" % CONNS,
          flush=True)
    port, origin = start_origin()
    plain = harness.Node(threads=2, memory_mb=256)
    reading = harness.Node("--origin", "http://127.0.0.1:%d/v1/{key}" % port, threads=2,
                           memory_mb=256)
    try:
        print("| depth | ops/s without | ops/s with origin | ratio | p50 without | p50 with "
              "| p99 without | p99 with |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for depth in (1, 16):
            rows = {"plain": [], "reading": []}
            ratios = []
            for r in range(ROUNDS):
                order = [("plain", plain), ("reading", reading)]
                if r % 2:
                    order.reverse()
                got = {}
                for name, n in order:
                    got[name] = mcbench(n.port, depth)
                    rows[name].append(got[name])
                ratios.append(got["reading"][0] / got["plain"][0])
            med = {k: [statistics.median(x[i] for x in v) for i in range(3)] for k, v in rows.items()}
            print("| %d | %.0f | %.0f | %.3f | %.0f us | %.0f us | %.0f us | %.0f us |" % (
                depth, med["plain"][0], med["reading"][0], statistics.median(ratios),
                med["plain"][1], med["reading"][1], med["plain"][2], med["reading"][2]),
                flush=True)
        st = reading.stats()
        print("(the node with an origin: %s origin requests, %s get_misses: every get was a hit)"
              % (st["origin_requests"], st["get_misses"]), flush=True)
    finally:
        plain.stop()
        reading.stop()
        origin.kill()


if __name__ == "__main__":
    benchenv.print_header()
    for b in (MCBENCH, os.environ["BC_NODE_BIN"]):
        if not os.access(b, os.X_OK):
            sys.exit("origin.py: %s not found (build first)" % b)
    parts = os.environ.get("BC_BENCH_PARTS", "1 2").split()
    if "1" in parts:
        part1()
    if "2" in parts:
        part2()
    harness._cleanup()
