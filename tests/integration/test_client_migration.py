"""libbucketcache while buckets migrate: traffic flows through the library
while a second group joins a cluster whose data is all on the first; the
console copies half the buckets over (each read-only at its source while
it is copied, then cut over).  Writes to a bucket being copied wait and
retry, reads go on, the client follows every table change, and every value
read is the last one written -- nothing is lost or stale across a move."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def test_buckets_migrate_under_traffic():
    cl = harness.create_cluster(zk, "migrate", buckets=NB)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS, migrations=True)
    t0 = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    tr = harness.ClientTraffic(zk, cl, "--threads", "3", "--keys", "60")
    tr.wait_progress(n=2000, what="traffic on group 1")
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS)
    t1 = harness.wait_tables(zk, cl, lambda t: t["c"].count(2) == NB // 2 and t["m"] == t["d"] == t["c"]
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
