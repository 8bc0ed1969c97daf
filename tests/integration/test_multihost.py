"""The multi-host fault suite: partitions, one-way cuts, slow and lossy
links and kill -9 across network namespaces (netns.py), with a ledger of
every acknowledged write (tests/tools/ledger.c).

Topology (one network namespace per host, 10.201.0.0/24 inside the rig):

    zk1 zk2 zk3 .11-.13   a 3-server ZooKeeper ensemble (tickTime 500 ms)
    con1 con2   .21 .22   two consoles: con1 active, con2 standby
    cli         .31       the ledger (libbucketcache, routed by the c table)
    ops         .5        the CLI (cluster create, group config)
    g<G>a g<G>b .1G1 .1G2 group G's nodes; a starts as primary, the others
    g<G>c       .1G3      as backups.  Groups 1 and 3, which the faults hit,
                          have three nodes: in sync mode (min_in_sync 1) a
                          new primary needs a backup in sync to take writes,
                          and with two backups one is left after a failover.
                          Group 2 has two.

Each scenario creates its own cluster (a fresh name in the same ensemble),
starts its nodes and consoles, sets the groups' replication mode with
`bucketcache group config` (and the nodes' --replication flag, so a group
started later has it from its first write), runs the ledger, injects its
fault, heals, waits for the cluster to recover, and has the ledger read
everything back.

Assertions.  sync mode: nothing acknowledged is lost and nothing read was
never written, in every scenario.  async mode: nothing wrong; the loss is
printed, and must stay under what the lag bound (--max-lag-mb, 1 MiB here)
can hold.  Every scenario: the cluster recovers (every key readable).

Running it:
    python3 tests/integration/test_multihost.py                # short schedule
    BC_MULTIHOST_LONG=1 python3 tests/integration/test_multihost.py   # all, longer
    python3 tests/integration/test_multihost.py --list
    python3 tests/integration/test_multihost.py cut_backup_kill:sync oneway_to_zk
(from the repository root with the build in build/, as root; a name
without :mode runs both modes).  Logs are in the temporary directory
printed at the start; it is removed when every scenario passed.

Reading a run.  Each scenario prints:
  * the ledger's block ("ledger: ..."): acknowledged writes by kind, writes
    of unknown outcome, LOST (acknowledged, then not read back: how many,
    in how many keys, about how many bytes of replication stream, when
    they were acknowledged and in which group), WRONG (never written),
    stale reads while writing, keys unreadable at the check, the longest
    time each group went without an acknowledged write (the writer threads
    are shared by the groups: a stall in one shows, shorter, in the
    others), and the first lost keys, each with the primary the library
    had routed it to when the call returned ("via");
  * a timeline: the lines of the node and console logs from the fault on
    that tell what happened (sync set changes, promotions, sessions,
    fencing, copies), repeats counted;
  * its line of the results table, which is printed again for every
    scenario at the end (and kept, as each scenario ends, in
    multihost-results.json in the log directory, or in the file
    $BC_MULTIHOST_RESULTS names).
The ledger's journal (ledger-<cluster>.journal in the log directory) has
every operation with its outcome, to follow one key through the logs.
"""
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netns  # noqa: E402

LONG = os.environ.get("BC_MULTIHOST_LONG", "") not in ("", "0")
LEDGER_BIN = os.environ.get("BC_LEDGER_BIN",
                            os.path.join(harness.BUILD_DIR, "tests", "bucketcache_ledger"))
NB = 128                      # buckets per cluster
SESSION_MS = 4000             # nodes' and consoles' ZooKeeper session (the default)
SYNC_TIMEOUT_MS = 500         # the default: a silent backup leaves the sync set after it
MAX_LAG_MB = 1                # async mode's lag bound in these tests
# The admin ports listen on the namespaces' addresses, a network private to
# this test: no admin token (a node or console refuses a port beyond
# loopback without one unless told, docs/security.md).
OPEN_ADMIN = ["--insecure-no-auth"]
# The ledger: threads x rate operations per second, in the short and long schedule
LEDGER_THREADS = 4
LEDGER_RATE = 150 if not LONG else 250
WARMUP_S = 2.0 if not LONG else 5.0
AFTER_S = 1.5 if not LONG else 4.0      # writing after recovery, before the check
SLOW = harness.SLOW
# The hosts of each group's nodes (g<G><letter>): the first starts as primary
GROUP_NODES = {1: "abc", 2: "ab", 3: "abc"}

RESULTS = []


# ---- the topology ----

class Topology:
    """The rig's hosts and the ZooKeeper ensemble, shared by the scenarios."""

    def __init__(self):
        self.rig = netns.Rig()
        self.zk = netns.ZkEnsemble(self.rig)
        self.ops = self.rig.add_host("ops", 5)
        self.cli = self.rig.add_host("cli", 31)
        for i in (1, 2):
            self.rig.add_host("con%d" % i, 20 + i)
        for g in (1, 2, 3):
            for j, s in enumerate(GROUP_NODES[g]):
                self.rig.add_host("g%d%s" % (g, s), 100 + 10 * g + 1 + j)

    def h(self, name):
        return self.rig.hosts[name]

    def zk_names(self):
        return [h.name for h in self.zk.servers]

    def cli_run(self, cluster, *args):
        return harness.cli("--zk", self.zk.hosts, "--cluster", cluster, *args, ns=self.ops.ns)


TOPO = None


def topo():
    global TOPO
    if TOPO is None:
        if (harness.SANITIZED or harness.TSAN) and not os.environ.get("BC_MULTIHOST_SANITIZED"):
            # Its figures are timings of a 2-core machine: under ASan or
            # TSan every process runs several times slower and the
            # scenarios test the sanitizer's speed, not the cluster.  The
            # normal build runs it (tests/run-all.sh).
            print("SKIP: the multi-host suite runs in the normal build only "
                  "(BC_MULTIHOST_SANITIZED=1 to run it anyway)")
            sys.exit(netns.SKIP)
        netns.skip_unless_available()
        if not os.path.exists(LEDGER_BIN):
            print("SKIP: no ledger binary at %s (build the tests)" % LEDGER_BIN)
            sys.exit(netns.SKIP)
        t0 = time.time()
        TOPO = Topology()
        print("rig %s up in %.1f s (logs in %s)" % (TOPO.rig.run_id, time.time() - t0,
                                                     harness.TMP), flush=True)
    return TOPO


# ---- a cluster of one scenario ----

class Cluster:
    def __init__(self, t, name, mode, groups=(1, 2), migrations=False, node_env=None):
        self.t = t
        self.name = name
        self.mode = mode
        self.nodes = {}             # host name -> ClusterNode
        self.node_env = node_env or {}
        self.first_proc = len(harness._procs)
        rc, out, err = t.cli_run(name, "cluster", "create", "--buckets", str(NB))
        assert rc == 0, (rc, out, err)
        # The console names a group's primary: the first node it finds.
        # Every group's first node, then the consoles, then the backups.
        for g in groups:
            self.start_node("g%da" % g, g)
        self.consoles = [harness.Console(
            t.zk, name, *OPEN_ADMIN, session_timeout_ms=SESSION_MS, migrations=migrations,
            host=t.h(c).ip, ns=t.h(c).ns, admin_port=11290, name="console-" + c)
            for c in ("con1", "con2")]
        harness.wait_for(lambda: self.consoles[0].is_active(), timeout=20,
                         what="con1 active")
        for g in groups:
            self.start_group(g, first=self.nodes["g%da" % g])
        harness.wait_for(lambda: self.owners_all(groups), timeout=20,
                         what="every bucket owned by groups %s" % (groups,))
        for g in groups:
            self.set_mode(g)

    def node_args(self):
        args = OPEN_ADMIN + ["--replication", self.mode]
        if self.mode == "async":
            args += ["--repl-max-lag-mb", str(MAX_LAG_MB)]
        return args

    def start_node(self, host, g, env=None):
        h = self.t.h(host)
        e = dict(self.node_env)
        e.update(env or {})
        n = harness.ClusterNode(self.t.zk, self.name, g, *self.node_args(),
                                session_timeout_ms=SESSION_MS, host=h.ip, ns=h.ns,
                                port=11211, admin_port=11280, name="node-" + host, env=e)
        n.hostname = host
        self.nodes[host] = n
        return n

    def start_group(self, g, env=None, first=None):
        """Group g: g<g>a first (it becomes primary), then its backups, each
        waited for until recorded in the in-sync set."""
        a = first or self.start_node("g%da" % g, g, env)
        harness.wait_primary(a, timeout=20)
        others = [self.start_node("g%d%s" % (g, s), g, env) for s in GROUP_NODES[g][1:]]
        for n in others:
            self.wait_in_sync(g, n, timeout=30)
        return a, others

    def set_mode(self, g):
        args = ["group", "config", str(g), "--replication", self.mode,
                "--sync-timeout-ms", str(SYNC_TIMEOUT_MS)]
        if self.mode == "async":
            args += ["--max-lag-mb", str(MAX_LAG_MB)]
        rc, out, err = self.t.cli_run(self.name, *args)
        assert rc == 0, (rc, out, err)
        p = self.primary(g)
        harness.wait_for(lambda: harness.repl(p)["mode"] == self.mode,
                         what="group %d in %s mode" % (g, self.mode))

    def tables(self):
        return self.active_console().api("GET", "/v1/tables")[1]

    def owners_all(self, groups):
        t = self.active_console().api("GET", "/v1/tables")[1]
        return 0 not in t["c"] and set(t["c"]) <= set(groups) and t["c"] == t["m"]

    def active_console(self):
        for c in self.consoles:
            if c.proc.poll() is None and c.is_active():
                return c
        return self.consoles[0]

    def group_nodes(self, g):
        return [n for h, n in self.nodes.items() if h.startswith("g%d" % g)]

    def hosts(self, nodes):
        return [n.hostname for n in nodes]

    def primary(self, g):
        """The node of group g that is primary and writable now."""
        for n in self.group_nodes(g):
            if n.proc.poll() is None:
                try:
                    r = harness.repl(n, timeout=2)
                except Exception:
                    continue
                if r["role"] == "primary" and r["writable"]:
                    return n
        raise AssertionError("group %d has no writable primary" % g)

    def backups(self, g):
        p = self.primary(g)
        return [n for n in self.group_nodes(g) if n is not p and n.proc.poll() is None]

    def wait_failover(self, g, old, timeout=30):
        """Waits until a node of group g other than old is its writable
        primary; returns it and the seconds waited."""
        t0 = time.time()
        found = []

        def promoted():
            for n in self.group_nodes(g):
                if n is old or n.proc.poll() is not None:
                    continue
                try:
                    r = harness.repl(n, timeout=2)
                except Exception:
                    continue
                if r["role"] == "primary" and r["writable"]:
                    found.append(n)
                    return True
            return False
        harness.wait_for(promoted, timeout=timeout, interval=0.05,
                         what="a new primary of group %d" % g)
        return found[-1], round(time.time() - t0, 1)

    def wait_primary(self, node, timeout=30):
        """Waits until node is a writable primary; returns the seconds waited."""
        t0 = time.time()
        harness.wait_primary(node, timeout=timeout, what="%s promoted" % node.hostname)
        return time.time() - t0

    def wait_backup(self, node, timeout=40):
        """Waits until node follows a primary again (link up, synced)."""
        harness.wait_for(lambda: (lambda r: r["role"] == "backup" and r.get("link_up")
                                  and r["synced"])(harness.repl(node, timeout=2)),
                         timeout=timeout, what="%s back as a backup" % node.hostname)

    def wait_in_sync(self, g, node, timeout=40):
        """Waits until node is in group g's recorded in-sync set, writes
        accepted (sync mode: until then they are refused)."""
        harness.wait_for(lambda: self.recorded(g, node), timeout=timeout,
                         what="%s in group %d's in-sync set" % (node.hostname, g))

    def recorded(self, g, node):
        try:
            p = self.primary(g)
            r, b = harness.repl(p, timeout=2), harness.repl(node, timeout=2)
        except Exception:
            return False
        return b["node"] in r["in_sync"]["members"] and not r["in_sync"]["writes_refused"]

    def restart(self, node, g):
        """The host of a killed node starts it again, as its supervisor
        would: a new process with an empty cache, a new registration; it
        takes a snapshot from the group's primary and is recorded in its
        in-sync set.  Returns the seconds until then.  (Sync mode: until a
        backup is in sync again the group refuses writes -- min_in_sync 1.)"""
        t0 = time.time()
        n = self.start_node(node.hostname, g)
        self.wait_backup(n)
        self.wait_in_sync(g, n)
        return round(time.time() - t0, 1)

    def procs(self):
        return harness._procs[self.first_proc:]

    def stop(self):
        for p in self.procs():
            if not p.name.startswith("zookeeper"):
                p.kill()


# ---- the ledger ----

class Ledger:
    """bucketcache_ledger in the cli host, its progress lines collected."""

    def __init__(self, t, cluster):
        argv = [LEDGER_BIN, "--zk", t.zk.hosts, "--cluster", cluster, "--threads",
                str(LEDGER_THREADS), "--rate", str(LEDGER_RATE), "--timeout", str(int(2000 * SLOW)),
                "--report-ms", "250", "--check-timeout", str(int(30000 * SLOW)),
                "--journal", os.path.join(harness.TMP, "ledger-%s.journal" % cluster)]
        self.log_path = os.path.join(harness.TMP, "ledger-%s.log" % cluster)
        self.err = open(self.log_path, "w")
        self.out = open(os.path.join(harness.TMP, "ledger-%s.out" % cluster), "w")
        self.p = subprocess.Popen(harness.in_ns_argv(t.cli.ns, argv), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.progress = []
        self.lines = []
        self.final = None
        self.th = threading.Thread(target=self._read, daemon=True)
        self.th.start()
        LEDGERS.append(self)

    def _read(self):
        for line in self.p.stdout:
            self.out.write(line)
            self.out.flush()
            if line.startswith("{"):
                d = json.loads(line)
                if d.get("final"):
                    self.final = d
                else:
                    self.progress.append(d)
            else:
                self.lines.append(line.rstrip("\n"))

    def last(self):
        harness.wait_for(lambda: self.progress, what="ledger progress")
        return self.progress[-1]

    def wait_acks(self, n, timeout=30, what="acknowledged writes"):
        """Waits until n more writes are acknowledged than now."""
        base = self.last()["acked"]
        harness.wait_for(lambda: self.progress[-1]["acked"] >= base + n, timeout=timeout,
                         what=what)

    def check(self, timeout=90):
        """Stops the writers, reads everything back; returns the final figures."""
        self.p.stdin.write("check\n")
        self.p.stdin.flush()
        self.p.wait(timeout=timeout * SLOW)
        self.th.join(timeout=10)
        assert self.final is not None, ("no figures from the ledger", self.lines[-20:],
                                        open(self.log_path).read()[-2000:])
        self.final["exit"] = self.p.returncode
        return self.final

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.err.close()


LEDGERS = []


# ---- reading the logs ----

TIMELINE = re.compile(
    r"sync set|promot|elected|active|standby|session|lease|fenc|resync|snapshot|"
    r"primary|backup .*(caught|connect|lost|gone)|link|epoch|precopy|abort|"
    r"copy.*fail|fail.*copy|group \d+ (down|up)|declar|expired|NOT_PRIMARY|in-sync|"
    r"NOT_ENOUGH_IN_SYNC|min_in_sync|back off|not acknowledged|client connections",
    re.I)
# routine lines that match the above but explain nothing
ROUTINE = re.compile(r"^(config:|cluster: tables at epoch|cluster: group \d+'s primary is at .*\d$|"
                     r"migrate: (importing|imported|exporting|exported) bucket)")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\w+)\s+\[(\w+)\] (.*)$")


def timeline(procs, since, limit=80):
    """The log lines of procs from `since` on (UTC stamp text) that explain a
    failover, merged by time; repeated messages are counted, not repeated."""
    out = []
    for p in procs:
        if p.name.startswith(("zookeeper", "delayproxy")):
            continue
        for line in p.output().splitlines():
            m = STAMP.match(line)
            if (not m or m.group(1) < since or not TIMELINE.search(m.group(4))
                    or ROUTINE.search(m.group(4))):
                continue
            out.append((m.group(1), p.name, m.group(2), m.group(4)))
    out.sort()
    merged, seen = [], {}
    for stamp, name, level, msg in out:
        shape = (name, re.sub(r"\d+", "N", msg))
        if shape in seen:
            seen[shape][0] += 1
            continue
        entry = [1, stamp, name, level, msg]
        seen[shape] = entry
        merged.append(entry)
    lines = []
    for n, stamp, name, level, msg in merged[:limit]:
        lines.append("  %s %-15s %-5s %s%s" % (stamp[11:], name, level, msg[:220],
                                                " (x%d)" % n if n > 1 else ""))
    if len(merged) > limit:
        lines.append("  ... %d more" % (len(merged) - limit))
    return lines


def count_lines_between(procs, since, until, pattern):
    """Log lines of procs stamped in [since, until] matching pattern."""
    rx = re.compile(pattern)
    n = 0
    for p in procs:
        for line in p.output().splitlines():
            m = STAMP.match(line)
            if m and since <= m.group(1) <= until and rx.search(m.group(4)):
                n += 1
    return n


def count_lines(procs, pattern):
    rx = re.compile(pattern)
    return sum(len(rx.findall(p.output())) for p in procs)


def utc_now():
    """Now, in the logs' format (UTC, milliseconds)."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000)


# ---- running a scenario ----

def run(key, mode, body, groups=(1, 2), migrations=False, node_env=None, before=None):
    """Runs one scenario in one mode: body(t, cluster, ledger, notes) injects
    the fault, heals and waits for the recovery; then the check."""
    t = topo()
    t.rig.heal()
    t.zk.wait_ready()
    name = "%s-%s-%d" % (key.replace("_", "-"), mode, int(time.time()) % 100000)
    print("==== %s (%s mode), cluster %s" % (key, mode, name), flush=True)
    t0 = time.time()
    if before:
        before(t)
    cl = Cluster(t, name, mode, groups=groups, migrations=migrations, node_env=node_env)
    led = Ledger(t, name)
    notes = {}
    res = {"scenario": key, "mode": mode, "notes": notes}
    since = utc_now()
    try:
        led.wait_acks(200, what="the ledger writing")
        time.sleep(WARMUP_S)
        since = utc_now()
        body(t, cl, led, notes)
        t.rig.heal()
        led.wait_acks(200, timeout=30, what="writes after the recovery")
        time.sleep(AFTER_S)
        f = led.check()
        res.update(f)
    finally:
        res["duration_s"] = round(time.time() - t0, 1)
        res.setdefault("lost", None)
        res["verdict"] = "ok" if not failures(res) else "FAIL"
        RESULTS.append(res)
        save_results()
        print("\n".join(led.lines), flush=True)
        print("---- timeline of %s/%s (UTC) ----" % (key, mode))
        print("\n".join(timeline(cl.procs(), since)))
        print("---- %s" % result_line(res), flush=True)
        led.kill()
        cl.stop()
        t.rig.heal()
    bad = failures(res)
    assert not bad, "; ".join(bad)


def failures(res):
    """What the figures of a scenario break of the promises (empty: none)."""
    if res.get("lost") is None:
        return ["no figures"]
    out = []
    if res["unreadable"]:
        out.append("%d keys unreadable: the cluster did not recover" % res["unreadable"])
    if res["wrong"] or res["wrong_reads"]:
        out.append("values never written were read (%d at the check, %d while writing)"
                   % (res["wrong"], res["wrong_reads"]))
    if res["mode"] == "sync" and res["lost"]:
        out.append("sync mode lost %d acknowledged writes" % res["lost"])
    if res["mode"] == "async" and res["lost_bytes"] > MAX_LAG_MB * 1024 * 1024:
        out.append("async mode lost %d acknowledged writes (about %d bytes), more than the lag "
                   "bound of %d MiB" % (res["lost"], res["lost_bytes"], MAX_LAG_MB))
    return out


def result_line(r):
    gap = r.get("max_gap_ms") or {}
    return ("%-24s %-5s acked %6s lost %5s wrong %3s stale %4s unknown %5s unreadable %3s "
            "max-gap %-14s %5.1f s %-4s %s" % (
                r["scenario"], r["mode"], r.get("acked", "-"), r.get("lost", "-"),
                "-" if r.get("wrong") is None else r["wrong"] + r.get("wrong_reads", 0),
                r.get("stale_reads", "-"), r.get("unknown", "-"), r.get("unreadable", "-"),
                ",".join("g%s:%s" % kv for kv in sorted(gap.items())) or "-",
                r["duration_s"], r.get("verdict", ""),
                " ".join("%s=%s" % kv for kv in r["notes"].items())))


def results_path():
    return os.environ.get("BC_MULTIHOST_RESULTS") or os.path.join(harness.TMP,
                                                                   "multihost-results.json")


def save_results():
    with open(results_path(), "w") as f:
        json.dump(RESULTS, f, indent=1)


def print_table():
    """The results table (at exit: after harness.main, which removes the log
    directory of a run that passed)."""
    if not RESULTS:
        return
    print("\n==== multi-host results (lost/wrong/stale/unknown: acknowledged writes; "
          "max-gap: longest time without an acknowledged write, per group, ms)")
    for r in RESULTS:
        print(result_line(r))
    if os.path.exists(results_path()):
        print("(%s)" % results_path())
    sys.stdout.flush()


# ---- the scenarios ----

def kill_after_cut(t, cl, notes, cut, hold_s=1.5):
    """cut(p, backups) for hold_s, then kill -9 the primary p (still cut),
    heal, and time the promotion of a backup; then p's host restarts it."""
    p, bs = cl.primary(1), cl.backups(1)
    cut(p.hostname, cl.hosts(bs))
    time.sleep(hold_s)
    t0 = time.time()
    p.proc.kill()
    t.rig.heal()
    cl.wait_failover(1, p, timeout=30 * SLOW)
    notes["failover_s"] = round(time.time() - t0, 1)       # from the kill
    notes["rejoin_s"] = cl.restart(p, 1)


def s_cut_backup_kill(t, cl, led, notes):
    """(a) group 1's primary and its backups lose each other for 1.5 s, the
    primary keeping its clients and ZooKeeper; then the primary is killed -9."""
    kill_after_cut(t, cl, notes, t.rig.cut)


def s_cut_from_zk_and_clients(t, cl, led, notes):
    """(b) the primary loses ZooKeeper, the consoles and the clients, but
    not its backup; the backup is promoted; after the heal the old primary
    must step down and follow."""
    p = cl.primary(1)
    t.rig.cut(p.hostname, t.zk_names() + ["cli", "con1", "con2"])
    _, notes["failover_s"] = cl.wait_failover(1, p, timeout=30 * SLOW)
    led.wait_acks(100, what="writes through the new primary")
    t.rig.heal()
    cl.wait_backup(p)


def s_cut_from_zk(t, cl, led, notes):
    """(c) fencing: the primary loses ZooKeeper only; its write lease must
    lapse before the backup is promoted."""
    p = cl.primary(1)
    t0 = time.time()
    t.rig.cut(p.hostname, t.zk_names())
    harness.wait_for(lambda: not harness.repl(p)["writable"], timeout=20,
                     what="the cut-off primary fenced")
    notes["fenced_s"] = round(time.time() - t0, 1)
    cl.wait_failover(1, p, timeout=30 * SLOW)
    notes["failover_s"] = round(time.time() - t0, 1)
    led.wait_acks(100, what="writes through the new primary")
    t.rig.heal()
    cl.wait_backup(p)


def s_console_cut_primary_killed(t, cl, led, notes):
    """(d) group 1's primary is killed -9, and the active console is cut
    off from everything a second before the primary's session expires
    (before it could promote).  The backup, in the in-sync set, promotes
    itself once the primary's registration is gone and no console acted
    (node/cluster/promote.c): failover_s is cut_backup_kill's plus that
    grace, not the cut console's session on top (standby_active_s)."""
    con = cl.active_console()
    others = [c for c in cl.consoles if c is not con]
    p = cl.primary(1)
    conname = "con1" if con is cl.consoles[0] else "con2"
    t0 = time.time()
    p.proc.kill()
    time.sleep(max(0.0, SESSION_MS / 1000.0 - 1.0))
    t.rig.isolate(conname)
    cl.wait_failover(1, p, timeout=30 * SLOW)
    notes["failover_s"] = round(time.time() - t0, 1)
    harness.wait_for(lambda: any(o.is_active() for o in others), timeout=30 * SLOW,
                     what="the standby console active")
    notes["standby_active_s"] = round(time.time() - t0, 1)
    t.rig.heal()
    notes["rejoin_s"] = cl.restart(p, 1)


def s_zk_minority_and_leader(t, cl, led, notes):
    """(e) a ZooKeeper follower is cut off for 3 s, then the leader for 8 s;
    writes go on through both."""
    leader = t.zk.leader()
    follower = next(n for n in t.zk_names() if n != leader)
    t.rig.isolate(follower)
    time.sleep(3.0)
    t.rig.heal()
    t.zk.wait_ready()
    led.wait_acks(100)
    leader = t.zk.leader()
    t0 = time.time()
    t.rig.isolate(leader)
    harness.wait_for(lambda: any(t.zk.mode(n) == "leader" for n in t.zk_names() if n != leader),
                     timeout=30, what="a new ZooKeeper leader")
    notes["zk_reelect_s"] = round(time.time() - t0, 1)
    time.sleep(max(0.0, 8.0 - (time.time() - t0)))
    t.rig.heal()
    t.zk.wait_ready()


def migration_cut(t, cl, led, notes, which):
    """(f) group 3 joins and buckets move to it from groups 1 and 2 (each
    import held 250 ms so copies stay in flight); mid-copy the destination
    (group 3's primary) or a source (group 1's primary) is cut off from
    every host for the session timeout and more; its backup is promoted."""
    env = {"BC_TEST_IMPORT_DELAY_MS": "250"}
    cl.start_group(3, env=env)
    cl.set_mode(3)
    con = cl.active_console()
    harness.wait_for(lambda: (lambda m: m["moving"] > 0 and m["done"] >= 2)(
        con.api("GET", "/v1/migrations")[1]), timeout=30, interval=0.05, what="copies in flight")
    g = 3 if which == "destination" else 1
    victim = cl.primary(g)
    t0 = time.time()
    t.rig.isolate(victim.hostname)
    _, notes["failover_s"] = cl.wait_failover(g, victim, timeout=30 * SLOW)
    time.sleep(2.0)
    t.rig.heal()
    cut_s = time.time() - t0
    harness.wait_for(lambda: (lambda tb: tb["c"] == tb["m"] == tb["d"] and 0 not in tb["c"]
                              and not tb.get("readonly"))(cl.tables()),
                     timeout=90 * SLOW, interval=0.2, what="the migration converged")
    m = cl.active_console().api("GET", "/v1/migrations")[1]
    notes["failed_copies"] = m.get("failed_attempts")
    notes["converged_s"] = round(time.time() - t0, 1)
    # the fault: copies started over and over towards a cut-off node
    notes["copy_failures_logged"] = count_lines(
        [p for p in cl.procs() if p.name.startswith("console")],
        r"(?i)(precopy|copy)[^\n]*fail|fail[^\n]*(precopy|copy)")
    notes["cut_s"] = round(cut_s, 1)


def s_migration_destination_cut(t, cl, led, notes):
    migration_cut(t, cl, led, notes, "destination")


def s_migration_source_cut(t, cl, led, notes):
    migration_cut(t, cl, led, notes, "source")


def s_migration_destination_killed(t, cl, led, notes):
    """(f) as migration_dest_cut, but the destination primary is killed -9:
    its host's kernel refuses connections at once, so every copy towards it
    fails fast until its session expires and its backup is promoted.
    Counts the copies the console started and the epochs it published
    meanwhile (each copy makes a source bucket read-only for a moment)."""
    cl.start_group(3, env={"BC_TEST_IMPORT_DELAY_MS": "250"})
    cl.set_mode(3)
    con = cl.active_console()
    harness.wait_for(lambda: (lambda m: m["moving"] > 0 and m["done"] >= 2)(
        con.api("GET", "/v1/migrations")[1]), timeout=30, interval=0.05, what="copies in flight")
    victim = cl.primary(3)
    t0 = time.time()
    since = utc_now()
    victim.proc.kill()
    cl.wait_failover(3, victim, timeout=30 * SLOW)
    until = utc_now()
    notes["failover_s"] = round(time.time() - t0, 1)
    cl.restart(victim, 3)
    consoles = [p for p in cl.procs() if p.name.startswith("console")]
    notes["copy_failures"] = count_lines_between(
        consoles, since, until, r"(?i)(precopy|copy) of bucket \d+ to group 3 .*failed")
    notes["epochs"] = count_lines_between(consoles, since, until, r"console: epoch \d+:")
    notes["readonly_starts"] = count_lines_between(
        consoles, since, until, r"start copying \(read-only at their source\)")
    harness.wait_for(lambda: (lambda tb: tb["c"] == tb["m"] == tb["d"] and 0 not in tb["c"]
                              and not tb.get("readonly"))(cl.tables()),
                     timeout=90 * SLOW, interval=0.2, what="the migration converged")
    notes["converged_s"] = round(time.time() - t0, 1)


def s_oneway_to_backup(t, cl, led, notes):
    """(g) what the primary sends its backup is lost for 1.5 s (the
    backup's acknowledgements still arrive), then the primary is killed."""
    kill_after_cut(t, cl, notes, t.rig.cut_oneway)


def s_oneway_from_backup(t, cl, led, notes):
    """(g) what the backup sends its primary (its acknowledgements) is lost
    for 1.5 s, then the primary is killed."""
    kill_after_cut(t, cl, notes, lambda p, bs: t.rig.cut_oneway(bs, p))


def s_oneway_to_zk(t, cl, led, notes):
    """(g) the primary's packets to ZooKeeper are lost (it still hears
    ZooKeeper): its session expires, the backup is promoted; after the heal
    the old primary must follow it."""
    p = cl.primary(1)
    t.rig.cut_oneway(p.hostname, t.zk_names())
    _, notes["failover_s"] = cl.wait_failover(1, p, timeout=30 * SLOW)
    led.wait_acks(100, what="writes through the new primary")
    t.rig.heal()
    cl.wait_backup(p)


def slow_links(t):
    """Group 1's primary and backup, and groups 1 and 2, talk over a link
    with 40 ms each way and 3 % loss (set up before the nodes connect)."""
    g1 = ["g1" + x for x in GROUP_NODES[1]]
    g2 = ["g2" + x for x in GROUP_NODES[2]]
    t.rig.delay("g1a", g1[1:], 40)
    t.rig.delay(g1, g2, 40)
    t.rig.loss("g1a", g1[1:], 3)
    t.rig.loss(g1, g2, 3)


def s_slow_lossy_link(t, cl, led, notes):
    """(h) writes over the slow, lossy links for a while, then group 1's
    primary is killed -9."""
    time.sleep(3.0 if not LONG else 8.0)
    p = cl.primary(1)
    rp = harness.repl(p)
    notes["sync_timeouts"] = rp.get("sync_timeouts")
    if rp.get("sync_waits"):
        # the round trip to the backup the delay proxies add to (2 x 40 ms)
        notes["sync_wait_ms"] = round(rp["sync_wait_us"] / rp["sync_waits"] / 1000.0, 1)
    p.proc.kill()
    _, notes["failover_s"] = cl.wait_failover(1, p, timeout=30 * SLOW)
    notes["rejoin_s"] = cl.restart(p, 1)


# name -> (body, options, the modes of the short schedule).  The short
# schedule (the test command) runs every scenario in sync mode, whose
# promise is absolute, and the case in async mode too; the long
# one (BC_MULTIHOST_LONG=1) every scenario in both modes, longer.
S, SA = ("sync",), ("sync", "async")
SCENARIOS = {
    "cut_backup_kill": (s_cut_backup_kill, {}, SA),
    "cut_zk_and_clients": (s_cut_from_zk_and_clients, {}, S),
    "cut_zk_only": (s_cut_from_zk, {}, S),
    "console_cut_kill": (s_console_cut_primary_killed, {}, S),
    "zk_minority_leader": (s_zk_minority_and_leader, {}, S),
    "migration_dest_cut": (s_migration_destination_cut, {"migrations": True}, S),
    "migration_src_cut": (s_migration_source_cut, {"migrations": True}, S),
    "migration_dest_killed": (s_migration_destination_killed, {"migrations": True}, S),
    "oneway_to_backup": (s_oneway_to_backup, {}, S),
    "oneway_from_backup": (s_oneway_from_backup, {}, S),
    "oneway_to_zk": (s_oneway_to_zk, {}, S),
    "slow_lossy_link": (s_slow_lossy_link, {"before": slow_links}, S),
}


def make_test(key, mode):
    body, opts, _ = SCENARIOS[key]

    def test():
        run(key, mode, body, **opts)
    test.__name__ = "test_%s__%s" % (key, mode)
    test.__doc__ = body.__doc__
    return test


def selected(argv):
    """(key, mode) pairs from argv ("name" or "name:mode"), else the schedule."""
    if argv:
        out = []
        for a in argv:
            a = a[len("test_"):] if a.startswith("test_") else a
            key, _, mode = a.replace("__", ":").partition(":")
            if key not in SCENARIOS or mode not in ("", "sync", "async"):
                sys.exit("unknown scenario %r (see --list)" % a)
            out += [(key, m) for m in ((mode,) if mode else ("sync", "async"))]
        return out
    if LONG:
        return [(k, m) for k in SCENARIOS for m in ("sync", "async")]
    return [(k, m) for k, (_, _, modes) in SCENARIOS.items() for m in modes]


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--list" in args:
        for k, (body, _, modes) in SCENARIOS.items():
            print("%-22s short: %-11s %s" % (k, ",".join(modes) or "-",
                                             " ".join((body.__doc__ or "").split())[:100]))
        sys.exit(0)
    tests = {}
    # The rig first: what a failed test started is killed after it, and the
    # ensemble must outlive every test.
    topo()
    for key, mode in selected(args):
        fn = make_test(key, mode)
        tests[fn.__name__] = fn
    # harness.main runs every test_* of the namespace given; argv is ours
    sys.argv = sys.argv[:1]
    import atexit
    atexit.register(print_table)
    try:
        harness.main(tests)
    finally:
        for led in LEDGERS:
            led.kill()
