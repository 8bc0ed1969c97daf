"""libbucketcache while buckets migrate: traffic flows through the library
while a second group joins a cluster whose data is all on the first; the
console copies half the buckets over (each read-only at its source while
it is copied, then cut over).  Writes to a bucket being copied wait and
retry, reads go on, the client follows every table change, and every value
read is the last one written -- nothing is lost or stale across a move."""
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SESSION_MS = 2000
TRAFFIC_BIN = os.environ.get("BC_CLIENT_TRAFFIC_BIN",
                             os.path.join(harness.BUILD_DIR, "client", "bucketcache_client_traffic"))
zk = harness.ZooKeeper()


class Traffic:
    """The traffic driver, its JSON report lines collected by a thread."""

    def __init__(self, cluster, *args):
        argv = [TRAFFIC_BIN, "--zk", zk.hosts, "--cluster", cluster, "--duration", "600",
                "--report-ms", "200", "--timeout", str(int(1500 * harness.SLOW))] + list(args)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reports = []
        self.err = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.t2 = threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True)
        self.t2.start()

    def _read(self):
        for line in self.p.stdout:
            self.reports.append(json.loads(line))

    def last(self):
        harness.wait_for(lambda: self.reports, what="a traffic report")
        return self.reports[-1]

    def wait_progress(self, n=200, what="traffic progress", timeout=15):
        """Waits until n more reads succeed than now."""
        base = self.last()["get_ok"]
        return harness.wait_for(lambda: self.reports[-1]["get_ok"] >= base + n, timeout=timeout,
                                what=what)

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30 * harness.SLOW)
        self.t.join(timeout=5)
        self.t2.join(timeout=5)
        final = self.reports[-1]
        assert final.get("final"), final
        assert final["wrong"] == 0, (final, "".join(self.err)[-3000:])
        assert self.p.returncode == 0, (self.p.returncode, "".join(self.err)[-3000:])
        return final


def wait_tables(cluster, pred, what, timeout=15):
    return harness.wait_for(lambda: (lambda t: t if pred(t) else None)(harness.tables(zk, cluster)),
                            timeout=timeout, what=what)


def test_buckets_migrate_under_traffic():
    cl = harness.create_cluster(zk, "migrate", buckets=NB)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS, migrations=True)
    t0 = wait_tables(cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    tr = Traffic(cl, "--threads", "3", "--keys", "60")
    tr.wait_progress(n=2000, what="traffic on group 1")
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS)
    t1 = wait_tables(cl, lambda t: t["c"].count(2) == NB // 2 and t["m"] == t["d"] == t["c"]
                     and not t["readonly"], "half the buckets moved to group 2", timeout=60)
    assert t1["epoch"] > t0["epoch"]
    harness.wait_for(lambda: tr.last()["epoch"] >= t1["epoch"], what="client took the final table")
    tr.wait_progress(n=2000, what="traffic on both groups")
    final = tr.stop()
    print("traffic:", json.dumps(final))
    assert final["errors"] == {}, final
    assert final["get_miss"] == 0, final  # every acknowledged write survived its move
    assert final["table_updates"] >= 3, final
    # the moved keys really are on group 2 now
    key = harness.key_in_bucket_owned_by(t1["c"], 2, prefix="t0-", nbuckets=NB)
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cl, "--json", "locate", key)
    assert json.loads(out)["primary"] == "127.0.0.1:%d" % g2.port, out
    for p in (g1, g2, con):
        p.stop()


harness.main(globals())
