#!/usr/bin/env python3
"""migration.py -- the bucket migration benchmark, in two parts (the two
figures the migration issue asks for):

  rate    how fast the data path moves a bucket against raw loopback TCP
          measured in the same run: a 4th group joins a 3-group cluster of
          16 buckets holding 2 GiB (128 MiB per bucket, so the per-bucket
          coordination -- two ZooKeeper commits, a fence, an HTTP request
          pair -- is small beside the data), no client traffic;
  load    a 4th group joins a 3-group cluster of 1024 buckets holding 1 GiB
          while libbucketcache traffic (bucketcache_client_traffic: sets and
          checked reads, with the library's retries) runs: time to converge,
          failed operations, the per-bucket write stall; and plain memcached
          clients (no routing, one per node of groups 1-3, so mostly
          forwarded) setting and reading back their keys: their errors.

Every node runs with -L (the memory limit preallocated at start, as
memcached -L does): the destination then stores what it receives in memory
it already has.  BC_BENCH_NODE_ARGS= (empty) measures without it.

Each part reports:

  - the raw loopback TCP bandwidth of this machine, measured in the same run
    (bench_migration_loopback, which also measures how fast never-touched
    memory faults in: a destination without -L stores every byte it
    receives in such memory), and the migration rate against it:
      * aggregate: bytes moved / wall time from the first copy to the last
        cutover (what an operator waits for), also against the lower of
        loopback and the fresh-memory rate: the one measured before the
        load, or the one the destination met (without -L: its prefault
        thread's bytes over its CPU time, from /stats; pages the guest freed
        a moment ago fault in far faster than pages it never used, so the
        figure measured before the load can flatter the limit);
      * per precopy (per copy with --no-precopy): bytes / time of each copy
        that carried the data (POST import to its report), from the
        console's log, summed over the copies; and how long the read-only
        copies took;
  - the time from starting the 4th group to convergence (c == m == d,
    nothing pending or moving; with -L it includes the new node's
    preallocation);
  - the client's failed operations (errors after the library's retries) and
    wrong values (must be 0);
  - the per-bucket read-only stall distribution (p50/p99/max, histogram),
    as the console measures it, and the write pause as the sources
    measure it (their read-only bit in force to the new tables read);
  - the client's view of it: how many of its sets took 20/50/100 ms or more
    (the library retries a write refused as READONLY until the bucket has
    moved) and the longest one.

usage: tests/bench/migration.py [BUILD_DIR]          (default: build)
environment (each setting overrides the defaults of the part(s) that run):
  BC_BENCH_PART=both      rate, load or both
  BC_BENCH_MB             data loaded before the 4th group joins (MiB;
                          rate 2048, load 1024)
  BC_BENCH_VALUE=4000     value bytes of the loaded items
  BC_BENCH_BUCKETS        buckets of the cluster (rate 16, load 1024)
  BC_BENCH_PARALLEL=4     --migrations-parallel of the console
  BC_BENCH_THREADS        client traffic threads (rate 0: none, load 2)
  BC_BENCH_ROUNDS=3       measure this many times on one ZooKeeper (each round a
                          new cluster): the later rounds meet a ZooKeeper whose JVM
                          has compiled its hot paths, as a long-running one has
  BC_BENCH_NODE_ARGS=-L   bucketcache-node flags (e.g. "-L --no-forward"; empty: none)
  BC_BENCH_LOGS=DIR       keep the processes' logs in DIR
  BC_BENCH_CONSOLE_ARGS=  extra bucketcache-console flags (e.g. --log-level debug)
  BC_ZK_FORCE_SYNC=no     ZooKeeper does not fsync its transaction log (default:
                          it does).  A production ZooKeeper has a log disk of its
                          own where an fsync takes about a millisecond; this
                          measures bucketcache rather than a slow shared disk.

ZooKeeper runs from the Debian package with its data directory on tmpfs-like
/tmp; every process binds 127.0.0.1.  Everything is stopped at the end.
"""
import json
import os
import re
import subprocess
import threading
import time

import benchenv  # noqa: E402  (the build directory, the binaries, the harness)
BUILD, SRC, harness = benchenv.BUILD, benchenv.SRC, benchenv.harness

PARTS = {
    # name: (MiB loaded, buckets, client threads)
    "rate": (2048, 16, 0),
    "load": (1024, 1024, 2),
}
VALUE = int(os.environ.get("BC_BENCH_VALUE", "4000"))
PARALLEL = int(os.environ.get("BC_BENCH_PARALLEL", "4"))
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", "3"))
NODE_ARGS = os.environ.get("BC_BENCH_NODE_ARGS", "-L").split()
CONSOLE_ARGS = os.environ.get("BC_BENCH_CONSOLE_ARGS", "").split()
LOOPBACK = os.path.join(BUILD, "tests", "bench_migration_loopback")
LOAD = os.path.join(BUILD, "tests", "bench_migration_load")
TRAFFIC = os.path.join(BUILD, "client", "bucketcache_client_traffic")


# The counters of a run without client traffic (BC_BENCH_THREADS=0).
NO_TRAFFIC = {"sets": 0, "gets": 0, "errors": {}, "wrong": 0, "retries": 0, "refusals": 0,
              "set_ms": [[0, 0]], "set_ms_max": 0}


def run(argv):
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("%s failed: %s %s" % (argv[0], r.stdout, r.stderr))
    return dict(kv.split("=", 1) for kv in r.stdout.split("RESULT", 1)[1].split())


def console_json(con, path):
    return harness.http_json(con.admin_port, "GET", path, timeout=10)[1]


class Part:
    """One part's settings: its defaults, then the environment's overrides."""
    def __init__(self, name):
        mb, nb, threads = PARTS[name]
        self.name = name
        self.mb = int(os.environ.get("BC_BENCH_MB", mb))
        self.nb = int(os.environ.get("BC_BENCH_BUCKETS", nb))
        self.threads = int(os.environ.get("BC_BENCH_THREADS", threads))


class PlainTraffic:
    """Plain memcached clients (no bucket routing): one connection per node
    of groups 1 to 3, each setting and reading back its own keys, so most
    of its requests go through a node that is not the owner (forwarded)
    and some reach the source of a bucket in its migration pause.  Every
    reply that is not the expected one counts as an error."""

    def __init__(self, nodes, keys=2000):
        self.ops = 0
        self.errors = {}
        self.slowest_ms = 0.0
        self.stop_flag = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(n, "p%d_" % i, keys), daemon=True)
                        for i, n in enumerate(nodes)]
        for t in self.threads:
            t.start()

    def run(self, node, prefix, keys):
        c = harness.McConn(node.port, timeout=10)
        i = 0
        while not self.stop_flag.is_set():
            key = "%s%d" % (prefix, i % keys)
            value = "%s:%d" % (key, i)
            t0 = time.time()
            try:
                reply = c.cmd("set %s 0 0 %d" % (key, len(value)), value)
                ok = reply == b"STORED\r\n"
                if ok:
                    reply = c.cmd("get " + key)
                    ok = reply == ("VALUE %s 0 %d\r\n%s\r\nEND\r\n"
                                   % (key, len(value), value)).encode()
            except OSError as e:
                reply, ok = str(e).encode(), False
                c = harness.McConn(node.port, timeout=10)
            self.slowest_ms = max(self.slowest_ms, (time.time() - t0) * 1000)
            self.ops += 2
            if not ok:
                kind = reply.split(b"\r\n")[0][:40].decode(errors="replace")
                self.errors[kind] = self.errors.get(kind, 0) + 1
            i += 1

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)


class Traffic:
    def __init__(self, zk, cluster, threads):
        self.p = subprocess.Popen(
            [TRAFFIC, "--zk", zk.hosts, "--cluster", cluster, "--threads", str(threads),
             "--keys", "2000", "--value-size", "100", "--duration", "3600", "--timeout", "5000",
             "--report-ms", "500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reports = []
        self.err = []
        threading.Thread(target=lambda: [self.reports.append(json.loads(line))
                                         for line in self.p.stdout], daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True).start()

    def stop(self):
        self.p.terminate()
        self.p.wait(30)
        time.sleep(0.2)
        return self.reports[-1]


def main():
    for b in (LOOPBACK, LOAD, TRAFFIC, os.environ["BC_NODE_BIN"]):
        if not os.access(b, os.X_OK):
            raise SystemExit("migration.py: %s not found (build first)" % b)
    which = os.environ.get("BC_BENCH_PART", "both")
    if which not in ("rate", "load", "both"):
        raise SystemExit("migration.py: BC_BENCH_PART must be rate, load or both")
    benchenv.print_header()
    zk_sync = os.environ.get("BC_ZK_FORCE_SYNC") != "no"
    zk = harness.ZooKeeper()
    for name in (("rate", "load") if which == "both" else (which,)):
        part = Part(name)
        print("\n=== part \"%s\": %d MiB in %d-byte values, %d buckets, %s, parallel %d, "
              "nodes %s, ZooKeeper fsync %s" % (
                  name, part.mb, VALUE, part.nb,
                  "%d client threads" % part.threads if part.threads else "no client traffic",
                  PARALLEL, " ".join(NODE_ARGS) or "(no flags)",
                  "on" if zk_sync else "off (BC_ZK_FORCE_SYNC=no)"), flush=True)
        loop = run([LOOPBACK, "--mb", "2048"])
        loop_mbs = float(loop["loopback_mb_per_s"])
        print("loopback TCP: %.0f MiB/s" % loop_mbs)
        print("fresh memory (never-touched pages faulting in): %.0f MiB/s -- what a destination "
              "without -L stores every byte it receives in" % float(loop["fresh_memory_mb_per_s"]))
        rates = []
        for r in range(ROUNDS):
            if ROUNDS > 1:
                print("\n== %s, round %d of %d (same ZooKeeper, a new cluster)" % (
                    name, r + 1, ROUNDS))
            rates.append(run_round(zk, part, "%s%d" % (name, r + 1), loop_mbs,
                                   float(loop["fresh_memory_mb_per_s"]), zk_sync))
        if ROUNDS > 1:
            print("\n%s: aggregate rate per round %s of loopback" % (
                name, " / ".join("%.0f%%" % (100 * x / loop_mbs) for x in rates)))
    zk.stop()


def dest_fault_rate(node):
    """(MiB/s per core, MiB, CPU ms) at which `node`'s prefault thread faulted
    fresh memory in, or None (-L, or too little faulted to tell)."""
    st, body = harness.http_json(node.admin_port, "GET", "/stats")
    mig = (body.get("cluster") or {}).get("migrate") if st == 200 else None
    if not mig or mig.get("prefault_cpu_us", 0) < 20000:
        return None
    mb = mig["prefault_bytes"] / 1048576
    ms = mig["prefault_cpu_us"] / 1000.0
    return (mb / (ms / 1000.0), mb, ms)


def write_pauses(nodes):
    """The sources' write-pause counters (/stats cluster.write_pause), summed
    over nodes: (count, sum_us, max_us, histogram counts, bounds in ms)."""
    count = sum_us = max_us = 0
    hist, bounds = None, None
    for n in nodes:
        wp = harness.http_json(n.admin_port, "GET", "/stats")[1]["cluster"]["write_pause"]
        count += wp["count"]
        sum_us += wp["sum_us"]
        max_us = max(max_us, wp["max_us"])
        counts = [h["count"] for h in wp["histogram"]]
        hist = counts if hist is None else [a + b for a, b in zip(hist, counts)]
        bounds = [h["le_ms"] for h in wp["histogram"]]
    return count, sum_us, max_us, hist, bounds


def migrate_totals(nodes):
    """The nodes' migration counters (/stats cluster.migrate), summed."""
    out = {}
    for n in nodes:
        mig = harness.http_json(n.admin_port, "GET", "/stats")[1]["cluster"]["migrate"]
        for k, v in mig.items():
            out[k] = out.get(k, 0) + v
    return out


def console_commits(con):
    """The console's ZooKeeper transactions so far (/v1/migrations commits),
    in write_pauses()'s shape."""
    c = console_json(con, "/v1/migrations")["commits"]
    return (c["count"], c["sum_us"], c["max_us"], [h["count"] for h in c["histogram"]],
            [h["le_ms"] for h in c["histogram"]])


def pause_summary(before, after):
    """p50 / p99 (as the histogram's bound, "<= X ms"), mean and max of the
    write pauses between two write_pauses() readings."""
    n = after[0] - before[0]
    if n <= 0:
        return None
    hist = [a - b for a, b in zip(after[3], before[3])]

    def pct(p):
        seen = 0
        for bound, c in zip(after[4], hist):
            seen += c
            if seen >= p * n:
                return bound
        return after[4][-1]
    # the longest since the nodes started; when the move set no new record,
    # the bound of the longest bin it filled
    top = max(i for i, c in enumerate(hist) if c)
    mx = after[2] / 1000.0
    if after[2] == before[2] and after[4][top] != "inf":
        mx = after[4][top]
    return n, pct(0.5), pct(0.99), (after[1] - before[1]) / n / 1000.0, mx


def cpu_times():
    """(all, idle) jiffies of every core so far (/proc/stat); iowait counts
    as idle."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[3] + v[4]


def idle_between(a, b):
    """The share of the cores' time idle between two cpu_times()."""
    total = b[0] - a[0]
    return (b[1] - a[1]) / total if total > 0 else 0.0


def run_round(zk, part, name, loop_mbs, fresh_mbs, zk_sync):
    """One round of a part; returns the aggregate rate (MiB/s)."""
    MB, NB, THREADS = part.mb, part.nb, part.threads
    cl = harness.create_cluster(zk, name, buckets=NB)
    con = harness.Console(zk, cl, "--migrations-parallel", str(PARALLEL),
                          "--migration-timeout-ms", "120000", *CONSOLE_ARGS, migrations=True,
                          session_timeout_ms=4000)
    mem = max(128, int(MB / 3 * 1.35) + 64)
    nodes = [harness.ClusterNode(zk, cl, g, *NODE_ARGS, threads=2, memory_mb=mem,
                                 session_timeout_ms=4000) for g in (1, 2, 3)]
    harness.wait_for(lambda: (lambda t, m: t["c"] == t["m"] == t["d"] and set(t["c"]) == {1, 2, 3}
                              and not t["readonly"] and m["moving"] == 0 and m["pending"] == 0)(
        console_json(con, "/v1/tables"), console_json(con, "/v1/migrations")),
        timeout=60, what="3 groups own everything")
    harness.wait_for(lambda: all(harness.http_json(n.admin_port, "GET", "/health")[1].get("role")
                                 == "primary" for n in nodes), what="primaries")
    time.sleep(0.5)
    ld = run([LOAD, "--console", "127.0.0.1:%d" % con.admin_port, "--mb", str(MB),
              "--value-size", str(VALUE)])
    print("loaded %s items (%d MiB) in %s s" % (ld["items"], MB, ld["secs"]))

    # THREADS=0: no client traffic at all -- the migration's own ceiling
    traffic = Traffic(zk, cl, THREADS) if THREADS > 0 else None
    if traffic is not None:
        harness.wait_for(lambda: traffic.reports and traffic.reports[-1]["set_ok"] > 1000,
                         what="client traffic")
    base = traffic.reports[-1] if traffic is not None else NO_TRAFFIC
    plain = PlainTraffic(nodes) if THREADS > 0 else None
    # what the clients alone leave of the cores: the move has that, at most
    cpu0 = cpu_times()
    time.sleep(1.0)
    cpu1 = cpu_times()
    idle_load = idle_between(cpu0, cpu1)
    pauses0 = write_pauses(nodes)
    commits0 = console_commits(con)
    totals0 = migrate_totals(nodes)
    t0 = time.time()
    g4 = harness.ClusterNode(zk, cl, 4, *NODE_ARGS, threads=2, memory_mb=mem,
                             session_timeout_ms=4000)

    def done():
        m = console_json(con, "/v1/migrations")
        t = console_json(con, "/v1/tables")
        return m if (m["done"] > 0 and m["pending"] == 0 and m["moving"] == 0 and 4 in t["c"]
                     and t["c"] == t["m"] == t["d"] and not t["readonly"]) else None
    m = harness.wait_for(done, timeout=1800, interval=0.05, what="convergence")
    converge_s = time.time() - t0
    idle_move = idle_between(cpu1, cpu_times())
    time.sleep(1.0)
    final = traffic.stop() if traffic is not None else NO_TRAFFIC
    if plain is not None:
        plain.stop()
    pauses = pause_summary(pauses0, write_pauses(nodes))
    commits = pause_summary(commits0, console_commits(con))

    # per-copy throughput from the console's log: the precopies carry the
    # data when they run (a final copy over one only carries the changes,
    # though it reports both), the read-only copies otherwise
    log = con.proc.output()
    copies = re.findall(r"precopied to group 4: \d+ items, (\d+) bytes in (\d+) ms", log)
    kind = "per precopy"
    if not copies:
        copies = re.findall(r"copied to group 4 \(epoch \d+\): \d+ items, (\d+) bytes in (\d+) ms",
                            log)
        kind = "per copy"
    finals = sorted(int(ms) for ms in re.findall(
        r"copied to group 4 \(epoch \d+\): \d+ items, \d+ bytes in (\d+) ms", log))
    copy_bytes = sum(int(b) for b, _ in copies)
    copy_ms = sum(int(ms) for _, ms in copies)
    moved = m["bytes_moved"]
    run_s = m["elapsed_s"]
    agg = moved / run_s / 1048576 if run_s else 0
    per_copy = copy_bytes / (copy_ms / 1000.0) / 1048576 if copy_ms else 0
    ops = final["sets"] + final["gets"] - base["sets"] - base["gets"]
    failed = sum(final["errors"].values()) - sum(base["errors"].values())
    st = m["stall_ms"]

    print()
    print("4th group added: %d buckets (%.0f MiB of key+value bytes, %d items) moved" % (
        m["done"], moved / 1048576, m["items_moved"]))
    print("converged %.2f s after the 4th group started; copies ran for %.2f s" % (converge_s, run_s))
    print("migration rate: aggregate %.0f MiB/s (%.0f%% of loopback), %s %.0f MiB/s "
          "(%.0f%% of loopback; %d copies in parallel at most)" % (
              agg, 100 * agg / loop_mbs, kind, per_copy, 100 * per_copy / loop_mbs, PARALLEL))
    if finals:
        print("read-only copies (import request to report): p50 %d ms, p99 %d ms" % (
            finals[len(finals) // 2], finals[min(len(finals) - 1, int(len(finals) * 0.99))]))
    print("client: %d operations during the run, %d failed, %d wrong values, %d retries, "
          "%d refusals" % (ops, failed, final["wrong"], final["retries"] - base["retries"],
                           final["refusals"] - base["refusals"]))
    # the client's view of the stall: how long its sets took (retries on
    # READONLY included) from the 4th group's start to the end
    hist = [(le, n - nb) for (le, n), (_, nb) in zip(final["set_ms"], base["set_ms"])]
    nsets = sum(n for _, n in hist)

    def held(at_least):
        lows = [0] + [le for le, _ in hist[:-1]]
        return sum(n for low, (_, n) in zip(lows, hist) if low >= at_least)
    print("client sets during the run: %d; took >= 20 ms: %d, >= 50 ms: %d, >= 100 ms: %d; "
          "longest %d ms" % (nsets, held(20), held(50), held(100), final["set_ms_max"]))
    if failed:
        print("client errors by kind (whole run): %s" % json.dumps(final["errors"]))
        for line in (traffic.err if traffic is not None else [])[:5]:
            print("  client said: " + line.rstrip())
    if plain is not None:
        print("plain memcached clients (one per node of groups 1-3, mostly forwarded): %d "
              "operations, %d errors %s, slowest set+get %.0f ms" % (
                  plain.ops, sum(plain.errors.values()), json.dumps(plain.errors),
                  plain.slowest_ms))
    # How fast the destination itself faulted fresh memory in, measured where
    # it stored (its prefault thread's bytes over that thread's CPU time).
    # The figure measured before the load can be far higher: pages the guest
    # freed a moment ago are still backed by the host and fault in at memory
    # speed, while pages it never used are backed one by one (on this kind
    # of VM 4x slower).  The lower of the two is the limit that applies.
    dest = dest_fault_rate(g4)
    limit_mbs, limit_what = loop_mbs, "loopback"
    if dest is not None:
        print("fresh memory as the destination faulted it in: %.0f MiB/s per core (%.0f MiB in "
              "%.0f ms of its prefault thread's CPU)" % dest)
        if dest[0] < limit_mbs:
            limit_mbs, limit_what = dest[0], "the destination's fresh-memory rate"
    if "-L" in NODE_ARGS:
        # preallocated: the destination stores into memory it already has
        limit_mbs, limit_what = loop_mbs, "loopback; -L: no fresh memory"
    elif fresh_mbs < limit_mbs:
        limit_mbs, limit_what = fresh_mbs, "the fresh-memory rate measured before the load"
    print("aggregate rate against the lower of loopback and fresh memory (%s, %.0f MiB/s): "
          "%.0f%%" % (limit_what, limit_mbs, 100 * agg / limit_mbs))
    print("read-only stall per bucket (%d buckets): p50 %d ms, p99 %d ms, max %d ms" % (
        st["count"], st["p50"], st["p99"], st["max"]))
    print("stall histogram: " + ", ".join("<=%s ms: %d" % (h["le_ms"], h["count"])
                                          for h in st["histogram"] if h["count"]))
    # The console's stall runs from the round that starts a copy (before its
    # read-only commit) to the round that cuts it over (before that commit);
    # the sources' own measure runs from the read-only bit in force there
    # to the cutover read there: what a writer of the bucket waits.
    # The clients run closed loops: what they leave idle is all the move
    # gets without slowing them, and loopback and fresh memory above are
    # measured on idle cores.
    print("cores idle (of %d): %.0f%% with the clients alone (1 s before the 4th group), "
          "%.0f%% while the move ran" % (os.cpu_count() or 1, 100 * idle_load, 100 * idle_move))
    # Each cutover's pause holds one of these (docs/zookeeper.md).
    if commits is not None:
        print("the console's ZooKeeper transactions (%d; starts, cutovers, aborts): p50 <= %s "
              "ms, p99 <= %s ms, mean %.1f ms, max %.1f ms" % commits)
    if pauses is not None:
        print("write pause at the sources (%d buckets; fence to the new tables read): p50 <= %s "
              "ms, p99 <= %s ms, mean %.1f ms, max %.1f ms" % pauses)
    # What the final copies carried, in the pause: the changes since the
    # precopy's last catch-up (docs/zookeeper.md, step 3).
    mt = migrate_totals(nodes + [g4])
    mt = {k: v - totals0.get(k, 0) for k, v in mt.items()}
    print("precopies %d, caught up %d times while writable (%d changes; %d trackers lost, %d "
          "precopies remade); final copies: %d deltas carrying %d changes, %d full over a "
          "precopy" % (
              mt.get("precopies", 0), mt.get("catchups", 0), mt.get("catchup_items", 0),
              mt.get("catchup_lost", 0), mt.get("precopy_refreshes", 0),
              mt.get("import_deltas", 0), mt.get("import_delta_items", 0),
              mt.get("delta_fallbacks", 0)))
    print("RESULT part=%s loopback_mb_per_s=%.0f agg_mb_per_s=%.0f copy_mb_per_s=%.0f "
          "converge_s=%.2f moved_mb=%.0f buckets=%d failed_ops=%d wrong=%d stall_p50_ms=%d "
          "stall_p99_ms=%d stall_max_ms=%d zk_fsync=%d client_sets=%d client_sets_50ms=%d "
          "client_set_max_ms=%d plain_ops=%d plain_errors=%d dest_fault_mb_per_s=%.0f "
          "limit_mb_per_s=%.0f agg_of_limit_pct=%.0f pause_p50_ms=%s pause_p99_ms=%s "
          "pause_mean_ms=%.1f pause_max_ms=%.1f idle_clients_pct=%.0f idle_move_pct=%.0f "
          "commit_mean_ms=%.1f commit_max_ms=%.1f" % (
              part.name, loop_mbs, agg, per_copy, converge_s, moved / 1048576, m["done"], failed,
              final["wrong"], st["p50"], st["p99"], st["max"], zk_sync, nsets, held(50),
              final["set_ms_max"], plain.ops if plain else 0,
              sum(plain.errors.values()) if plain else 0, dest[0] if dest else 0, limit_mbs,
              100 * agg / limit_mbs, *(pauses[1:] if pauses else ("-", "-", 0, 0)),
              100 * idle_load, 100 * idle_move, *(commits[3:] if commits else (0, 0))))
    for p in nodes + [g4, con]:
        p.stop()
    if os.environ.get("BC_BENCH_LOGS"):
        import shutil
        logs = os.path.join(os.environ["BC_BENCH_LOGS"], name)
        os.makedirs(logs, exist_ok=True)
        for p in nodes + [g4, con]:
            shutil.copy(p.proc.log_path, logs)
        print("logs in %s" % logs)
    return agg


if __name__ == "__main__":
    main()
