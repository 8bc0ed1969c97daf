#!/usr/bin/env python3
"""failover.py -- the replication benchmark: failover time, and what
replication costs a primary's writes.

Figures, not pass/fail.  Everything runs on 127.0.0.1 (one ZooKeeper from
the Debian package, consoles, nodes) and is stopped at the end.

1. FAILOVER TIME.  A cluster of BC_BENCH_BUCKETS buckets with one group:
   a primary and a backup (--replication BC_BENCH_FAILOVER_REPLICATION,
   ZooKeeper session timeout BC_BENCH_SESSION_MS) and a console.  bench_client_failover_probe writes through
   libbucketcache in a loop (per-call deadline BC_BENCH_PROBE_TIMEOUT_MS)
   and prints, with wall-clock milliseconds, its first failed write after
   a success and its first successful write after failures.  The script
   waits until the backup is synced (GET /v1/repl: "synced": true, offset
   within 64 KiB of the primary's), kills the primary with SIGKILL, notes
   the wall clock of the kill, and measures the time from the kill to the
   probe's first successful write.  Target: <= session timeout + 0.5 s.
   Each failover is split into
     session  kill -> ZooKeeper expires the dead primary's session (its
              "Expiring session" log line; ZooKeeper runs with timestamped
              log lines for this).  Not exactly the session timeout: the
              server counts from the last request it received (a ping
              every third of the timeout, the write-lease renewal every
              quarter) and expires sessions on its tick (500 ms here);
     console  -> the console's transaction naming the backup primary
              commits (its "epoch N: group 1 primary:" log line);
     node     -> the new primary opens writes (its "recording from
              offset" log line);
     client   -> the probe's first successful write (the client's watch
              on the primary record, its reload, its next retry).
   After each failover the probe reads back every key whose last write
   was acknowledged (lost / stale = acknowledged writes the new primary
   does not have: async replication may lose the last few).  The killed
   node is restarted (same ports) as the new backup, and the next round
   kills the other node.  BC_BENCH_FAILOVERS rounds; the median is printed.
   In sync mode the group runs with --min-in-sync 0: with its only backup
   promoted, a group at the default (1) refuses writes until the killed
   node is back and in sync, which is not what this measures
   (docs/replication.md, "The in-sync set").

2. WRITE COST OF REPLICATION.  Three more clusters, one group each, nodes
   with --no-forward so bench_mcbench talks to the primary alone:
     none   a primary without a backup,
     async  a primary and one backup, --replication async,
     sync   a primary and one backup, --replication sync.
   mcbench, all sets (BC_BENCH_VALUE-byte values, 100k keys, BC_BENCH_CONNS
   connections, 2 threads), at each pipelining depth of BC_BENCH_DEPTHS, for
   BC_BENCH_DURATION seconds, BC_BENCH_ROUNDS rounds; the three run one
   after the other within a round, in an order that rotates per round.
   Printed per depth: median ops/s, p50 and p99 of each, and the median of
   the per-round ratios to "none" (only the ratios mean something on a
   shared machine), and the backup's largest lag seen while mcbench ran
   (the primary's lag_bytes for it, polled every 100 ms, and that many
   bytes in ms of the stream's rate: what a failover at that moment would
   lose in async mode).  Then how long each backup took to catch up after
   the last run, and whether primary and backup hold as many items.

usage: tests/bench/failover.py [BUILD_DIR]          (default: build)
environment:
  BC_BENCH_SESSION_MS=4000        nodes' ZooKeeper session timeout (ms)
  BC_BENCH_FAILOVERS=3            failovers measured
  BC_BENCH_FAILOVER_REPLICATION=async   the failover group's --replication
  BC_BENCH_PROBE_TIMEOUT_MS=200   the probe's per-write deadline
  BC_BENCH_BUCKETS=64             buckets of each cluster
  BC_BENCH_DEPTHS="1 16"          mcbench pipelining depths
  BC_BENCH_CONNS=4                mcbench connections
  BC_BENCH_DURATION=2             seconds per mcbench run
  BC_BENCH_ROUNDS=5               mcbench rounds (none/async/sync each)
  BC_BENCH_VALUE=100              value bytes of mcbench's sets
  BC_BENCH_PARTS="failover throughput"   which parts to run
  BC_BENCH_KEEP_LOGS=             set: keep the processes' logs (the path is printed)
Takes about 2 minutes with the defaults.
"""
import atexit
import calendar
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

import benchenv  # noqa: E402  (the build directory, the binaries, the harness)
BUILD, SRC, harness = benchenv.BUILD, benchenv.SRC, benchenv.harness

SESSION_MS = int(os.environ.get("BC_BENCH_SESSION_MS", "4000"))
FAILOVERS = int(os.environ.get("BC_BENCH_FAILOVERS", "3"))
FO_MODE = os.environ.get("BC_BENCH_FAILOVER_REPLICATION", "async")
PROBE_TIMEOUT_MS = int(os.environ.get("BC_BENCH_PROBE_TIMEOUT_MS", "200"))
NB = int(os.environ.get("BC_BENCH_BUCKETS", "64"))
DEPTHS = [int(d) for d in os.environ.get("BC_BENCH_DEPTHS", "1 16").split()]
CONNS = int(os.environ.get("BC_BENCH_CONNS", "4"))
DURATION = float(os.environ.get("BC_BENCH_DURATION", "2"))
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", "5"))
VALUE = int(os.environ.get("BC_BENCH_VALUE", "100"))
PARTS = os.environ.get("BC_BENCH_PARTS", "failover throughput").split()
PROBE = os.path.join(BUILD, "tests", "bench_client_failover_probe")
MCBENCH = os.path.join(BUILD, "tests", "bench_mcbench")
SYNC_SLACK = 64 * 1024          # "close to the primary's offset", bytes


def log_ms(line):
    """Wall-clock ms of a node/console log line (2026-11-22T01:55:09.123Z ...)."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z", line)
    if not m:
        return None
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, h, mi, s)) * 1000 + ms


def zk_log_ms(line):
    """Wall-clock ms of a ZooKeeper log line ("2026-11-22_01:55:09.123+0000 [...")."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)_(\d\d):(\d\d):(\d\d)\.(\d{3})([+-])(\d\d)(\d\d) ", line)
    if not m:
        return None
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups()[:7])
    off = (int(m.group(9)) * 60 + int(m.group(10))) * 60000 * (1 if m.group(8) == "+" else -1)
    return calendar.timegm((y, mo, d, h, mi, s)) * 1000 + ms - off


def first_log(proc, pattern, after_ms, stamp=log_ms):
    """Time of the first line of proc's log matching pattern at or after after_ms."""
    for line in proc.output().splitlines():
        t = stamp(line)
        if t is not None and t >= after_ms and re.search(pattern, line):
            return t
    return None


def new_node(zk, cluster, group, mode, *args, port=None, admin_port=None, memory_mb=128):
    return harness.ClusterNode(zk, cluster, group, "--replication", mode, *args,
                               session_timeout_ms=SESSION_MS, threads=2, memory_mb=memory_mb,
                               port=port, admin_port=admin_port)


def wait_synced(primary, backup, timeout=60):
    """Until the backup reports a complete copy whose offset is within
    SYNC_SLACK of the primary's, and the primary lists it online."""
    def ok():
        p = harness.repl(primary)
        b = harness.repl(backup)
        online = any(x["online"] for x in p.get("backups", []))
        return (p["role"] == "primary" and b["role"] == "backup" and b["synced"] and
                b.get("link_up") and online and p["offset"] - b["offset"] <= SYNC_SLACK)
    t0 = time.time()
    harness.wait_for(ok, timeout=timeout, interval=0.05, what="backup synced")
    return time.time() - t0


class Probe:
    """bench_client_failover_probe, its event lines parsed by a thread."""

    def __init__(self, zk, cluster):
        self.err_path = os.path.join(harness.TMP, "probe.err")
        self.p = subprocess.Popen(
            [PROBE, "--zk", zk.hosts, "--cluster", cluster,
             "--timeout-ms", str(PROBE_TIMEOUT_MS), "--report-ms", "500"],
            stdout=subprocess.PIPE, stderr=open(self.err_path, "w"), text=True)
        atexit.register(self.kill)
        self.events = []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            parts = line.split()
            if not parts:
                continue
            ev = {"kind": parts[0]}
            for kv in re.findall(r'(\w+)=("[^"]*"|\S+)', line):
                k, v = kv
                ev[k] = v.strip('"') if v.startswith('"') else (int(v) if re.fullmatch(r"-?\d+", v) else v)
            with self.cv:
                self.events.append(ev)
                self.cv.notify_all()

    def wait(self, pred, timeout, what):
        deadline = time.time() + timeout
        with self.cv:
            while True:
                for ev in self.events:
                    if pred(ev):
                        return ev
                left = deadline - time.time()
                if left <= 0 or self.p.poll() is not None:
                    raise AssertionError("probe: timed out waiting for %s; stderr: %s" % (
                        what, open(self.err_path).read()[-2000:]))
                self.cv.wait(min(left, 0.5))

    def ok_count(self):
        with self.cv:
            counts = [e for e in self.events if e["kind"] == "COUNT"]
            return counts[-1]["ok"] if counts else 0

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def stop(self):
        self.p.terminate()
        self.p.wait(15)
        time.sleep(0.1)
        done = [e for e in self.events if e["kind"] == "DONE"]
        return done[-1] if done else None


def median(xs):
    return statistics.median(xs) if xs else -1


def part_failover(zk):
    print("## 1. failover time: primary killed with SIGKILL, %s replication, "
          "session timeout %d ms, %d buckets" % (FO_MODE, SESSION_MS, NB))
    cl = harness.create_cluster(zk, "failover", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    a = new_node(zk, cl, 1, FO_MODE)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns every bucket",
                        timeout=30)
    harness.wait_primary(a, timeout=30, what="the first node primary")
    if FO_MODE == "sync":
        rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cl, "group", "config", "1",
                                   "--min-in-sync", "0")
        assert rc == 0, (rc, out, err)
    b = new_node(zk, cl, 1, FO_MODE)
    wait_synced(a, b)
    probe = Probe(zk, cl)
    probe.wait(lambda e: e["kind"] == "READY", 30, "probe ready")
    primary, backup = a, b
    rows = []
    for r in range(FAILOVERS):
        resync_s = wait_synced(primary, backup)
        base = probe.ok_count()
        harness.wait_for(lambda: probe.ok_count() > base + 200, timeout=20,
                         what="probe writing through the primary")
        # a pause of its own so the kill does not fall at the same point of
        # ZooKeeper's tick every round
        time.sleep(0.1 + 0.13 * r)
        t_kill = time.time()
        kill_ms = int(t_kill * 1000)
        primary.proc.kill()
        rec = probe.wait(lambda e: e["kind"] == "RECOVER" and e["ms"] >= kill_ms,
                         SESSION_MS / 1000.0 + 30, "the first write after the kill")
        chk = probe.wait(lambda e: e["kind"] == "CHECK" and e["ms"] >= rec["ms"], 30,
                         "the read-back")
        fails = [e for e in probe.events if e["kind"] == "FAIL" and e["ms"] >= kill_ms]
        fail = fails[0] if fails else None
        expired = first_log(zk.proc, r"Expiring session", kill_ms, stamp=zk_log_ms)
        commit = first_log(con.proc, r"console: epoch \d+: .*group 1 primary:", kill_ms)
        role = first_log(backup.proc, r"this node is now PRIMARY", kill_ms)
        writable = first_log(backup.proc, r"repl: primary of group 1: recording", kill_ms)
        total = rec["ms"] - kill_ms
        row = {"round": r + 1, "total": total, "expired": expired, "commit": commit, "role": role,
               "writable": writable, "kill": kill_ms, "rec": rec, "chk": chk, "fail": fail,
               "resync_s": resync_s}
        rows.append(row)

        def d(x, y):
            return "%5d" % (y - x) if x is not None and y is not None else "    ?"
        print("failover %d: kill -> first ok write %d ms (target <= %d): session %s, console %s, "
              "node %s, client %s ms; first failed write returned %s ms after the kill; "
              "%d writes failed; read-back: %d checked, %d lost, %d stale" % (
                  r + 1, total, SESSION_MS + 500, d(kill_ms, expired), d(expired, commit),
                  d(commit, writable), d(writable, rec["ms"]),
                  (fail["ms"] - kill_ms) if fail else "?", rec["failed"], chk["checked"],
                  chk["lost"], chk["stale"]), flush=True)
        if chk["lost"] + chk["stale"] and fail is not None:
            print("   the acknowledged writes missing on the new primary: seq %d..%d; the last "
                  "write acknowledged before the kill was seq %d" % (
                      chk["gone_min_seq"], chk["gone_max_seq"], fail["seq"] - 1))
        if role is not None and writable is not None and writable - role > 50:
            print("   the new primary took the role %d ms after the commit but opened writes "
                  "only %d ms after that" % (role - commit, writable - role))
        # the killed node comes back, same ports, as the new backup
        old = primary
        primary = backup
        backup = new_node(zk, cl, 1, FO_MODE, port=old.port, admin_port=old.admin_port)
    final_resync = wait_synced(primary, backup)
    done = probe.stop()
    rep = harness.repl(primary)
    totals = [x["total"] for x in rows]
    med = median(totals)
    print()
    print("failover time, kill -> first successful write through libbucketcache: %s ms; "
          "median %d ms (target <= %d ms: %s)" % (
              ", ".join(str(t) for t in totals), med, SESSION_MS + 500,
              "met" if med <= SESSION_MS + 500 else "NOT met"))
    parts = {k: [x[b2] - x[a2] for x in rows if x[a2] is not None and x[b2] is not None]
             for k, a2, b2 in (("session", "kill", "expired"), ("console", "expired", "commit"),
                               ("node", "commit", "writable"))}
    parts["client"] = [x["rec"]["ms"] - x["writable"] for x in rows if x["writable"] is not None]
    rest = [x["rec"]["ms"] - x["expired"] for x in rows if x["expired"] is not None]
    print("  of which the session (kill -> ZooKeeper expired it; timeout %d ms): median %d ms "
          "(%s); the rest (promotion + client follow): median %d ms (%s)" % (
              SESSION_MS, median(parts["session"]), ", ".join(str(t) for t in parts["session"]),
              median(rest), ", ".join(str(t) for t in rest)))
    print("  the rest split (medians): console %d ms, node opens writes %d ms, client follows "
          "%d ms" % (median(parts["console"]), median(parts["node"]), median(parts["client"])))
    print("  acknowledged writes lost over all failovers: %d of %d checked (stale %d); "
          "backup resync after the restart: %s s" % (
              sum(x["chk"]["lost"] for x in rows), sum(x["chk"]["checked"] for x in rows),
              sum(x["chk"]["stale"] for x in rows),
              ", ".join("%.1f" % x["resync_s"] for x in rows[1:]) + (", %.1f" % final_resync)))
    if done:
        print("  probe: %d ok, %d failed writes; library: %d table updates, %d refreshes, "
              "%d retries" % (done["ok"], done["fail"], done["table_updates"], done["refreshes"],
                              done["retries"]))
    print("  primary at the end: full resyncs %d, partial %d" % (
        rep.get("full_resyncs", -1), rep.get("partial_resyncs", -1)))
    print("RESULT failover_ms=%s median_ms=%d session_ms=%d expiry_median_ms=%d "
          "rest_median_ms=%d lost=%d" % (
        ",".join(str(t) for t in totals), med, SESSION_MS, median(parts["session"]), median(rest),
        sum(x["chk"]["lost"] + x["chk"]["stale"] for x in rows)))
    for p in (primary, backup, con):
        p.stop()
    return rows


def mcbench(port, depth):
    r = subprocess.run([MCBENCH, "-p", str(port), "-t", "2", "-c", str(CONNS), "-k", "100000",
                        "-v", str(VALUE), "-r", "0", "-d", str(depth), "-D", str(DURATION),
                        "-W", "0.5"], capture_output=True, text=True)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        raise SystemExit("mcbench failed: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))
    return {k: float(v) for k, v in (kv.split("=", 1) for kv in line[0].split()[1:])}


class LagSampler:
    """Polls the primary's GET /v1/repl every 100 ms while a run goes on:
    the largest lag_bytes of its backup (primary offset - acknowledged),
    and the rate the stream grew at, to turn bytes into time.  (The
    primary's view: a backup's own lag_bytes/lag_ms only follow PINGs,
    which are sent when the stream is idle, so they read ~0 under load.)"""

    def __init__(self, primary):
        self.lag_bytes = 0
        self.first = self.last = None
        self.done = threading.Event()
        self.t = threading.Thread(target=self._run, args=(primary,), daemon=True)
        self.t.start()

    def _run(self, primary):
        while not self.done.wait(0.1):
            try:
                rp = harness.repl(primary)
            except (OSError, ValueError):
                continue
            now = time.time()
            self.lag_bytes = max([self.lag_bytes] + [x["lag_bytes"] for x in rp.get("backups", [])])
            if self.first is None:
                self.first = (now, rp["offset"])
            self.last = (now, rp["offset"])

    def stop(self):
        """(largest lag in bytes, the same in ms of the stream's rate)"""
        self.done.set()
        self.t.join()
        if self.first is None or self.last[0] <= self.first[0] or self.last[1] <= self.first[1]:
            return self.lag_bytes, 0.0
        rate = (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])
        return self.lag_bytes, 1000.0 * self.lag_bytes / rate


def part_throughput(zk):
    print("## 2. write cost of replication: mcbench, all sets, %d-byte values, %d connections, "
          "2 threads, %g s x %d rounds per cell; nodes -t 2 --no-forward" % (
              VALUE, CONNS, DURATION, ROUNDS))
    groups = {}
    cons = []
    for mode in ("none", "async", "sync"):
        cl = harness.create_cluster(zk, "tp-" + mode, buckets=NB)
        cons.append(harness.Console(zk, cl, session_timeout_ms=SESSION_MS))
        rmode = "sync" if mode == "sync" else "async"
        p = new_node(zk, cl, 1, rmode, "--no-forward", memory_mb=256)
        harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "%s owns every bucket" % mode,
                            timeout=30)
        harness.wait_primary(p, timeout=30, what="%s primary" % mode)
        b = None
        if mode != "none":
            b = new_node(zk, cl, 1, rmode, "--no-forward", memory_mb=256)
            wait_synced(p, b)
            if mode == "sync":
                harness.wait_for(lambda: all(x["in_sync"] for x in harness.repl(p)["backups"]),
                                 what="backup in the sync set")
        groups[mode] = (p, b)
    modes = ["none", "async", "sync"]
    res = {(m, d): [] for m in modes for d in DEPTHS}
    for r in range(ROUNDS):
        for d in DEPTHS:
            order = modes[r % 3:] + modes[:r % 3]
            for m in order:
                p, b = groups[m]
                smp = LagSampler(p) if b is not None else None
                x = mcbench(p.port, d)
                if smp is not None:
                    x["lag_bytes"], x["lag_ms"] = smp.stop()
                res[(m, d)].append(x)
    print()
    print("| depth | replication | ops/s | vs none | p50 µs | p99 µs | errors | backup lag (max) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    summary = []
    for d in DEPTHS:
        for m in modes:
            xs = res[(m, d)]
            ratios = [x["ops_per_sec"] / n["ops_per_sec"] for x, n in zip(xs, res[("none", d)])]
            worst = max(xs, key=lambda x: x.get("lag_bytes", 0))
            lagtxt = "-" if m == "none" else "%.1f MB (%.0f ms)" % (
                worst["lag_bytes"] / 1048576.0, worst["lag_ms"])
            print("| %d | %s | %.0f | **%.2f** | %.0f | %.0f | %d | %s |" % (
                d, m, median([x["ops_per_sec"] for x in xs]), median(ratios),
                median([x["p50_us"] for x in xs]), median([x["p99_us"] for x in xs]),
                sum(x["errors"] for x in xs), lagtxt))
            summary.append("%s_d%d=%.2f" % (m, d, median(ratios)))
        print("   per-round ratios, depth %d: %s" % (d, "; ".join(
            "%s %s" % (m, " ".join("%.2f" % (x["ops_per_sec"] / n["ops_per_sec"])
                                   for x, n in zip(res[(m, d)], res[("none", d)])))
            for m in ("async", "sync"))))
    print()
    for m in ("async", "sync"):
        p, b = groups[m]
        t0 = time.time()
        try:
            harness.wait_for(lambda: harness.repl(p)["offset"] == harness.repl(b)["offset"],
                             timeout=30, interval=0.02, what="backup caught up")
            caught = "caught up %.2f s after the last run" % (time.time() - t0)
        except AssertionError:
            caught = "NOT caught up 30 s after the last run"
        rp, rb = harness.repl(p), harness.repl(b)
        sp, sb = p.stats(), b.stats()
        print("%s: backup %s (primary offset %d, backup %d); items primary %s / backup %s; "
              "full resyncs %d, partial %d; sync waits %d, sync timeouts %d, mean wait %.0f µs; "
              "backup apply errors %d" % (
                  m, caught, rp["offset"], rb["offset"], sp.get("curr_items"),
                  sb.get("curr_items"), rp["full_resyncs"], rp["partial_resyncs"],
                  rp["sync_waits"], rp["sync_timeouts"],
                  rp["sync_wait_us"] / rp["sync_waits"] if rp["sync_waits"] else 0,
                  rb["apply_errors"]))
    print("RESULT " + " ".join(summary))
    for p, b in groups.values():
        for n in (p, b):
            if n is not None:
                n.stop()
    for c in cons:
        c.stop()


def main():
    # stop everything on SIGTERM too (atexit handlers and the finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for b in (PROBE, MCBENCH, os.environ["BC_NODE_BIN"], os.environ["BC_CONSOLE_BIN"]):
        if not os.path.exists(b):
            raise SystemExit("failover.py: %s not found (build first)" % b)
    benchenv.print_header()
    t0 = time.time()
    # ZooKeeper's log lines with wall-clock times (the session expiry is read from it)
    saved = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = (
        "-Dorg.slf4j.simpleLogger.showDateTime=true "
        "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd_HH:mm:ss.SSSZ")
    zk = harness.ZooKeeper()
    if saved is None:
        del os.environ["JAVA_TOOL_OPTIONS"]
    else:
        os.environ["JAVA_TOOL_OPTIONS"] = saved
    try:
        if "failover" in PARTS:
            part_failover(zk)
            print(flush=True)
        if "throughput" in PARTS:
            part_throughput(zk)
    finally:
        zk.stop()
        harness._cleanup()
        if os.environ.get("BC_BENCH_KEEP_LOGS"):
            print("logs kept in " + harness.TMP)
        else:
            shutil.rmtree(harness.TMP, ignore_errors=True)
    print("(%.0f s; load average at the end %s)" % (time.time() - t0, benchenv.load_average()))


if __name__ == "__main__":
    main()
