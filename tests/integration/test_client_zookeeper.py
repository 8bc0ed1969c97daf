"""libbucketcache while ZooKeeper is away: with traffic flowing, ZooKeeper
is stopped; the client keeps routing by its last table (no errors, no
wrong values) and says so in its stats; ZooKeeper comes back, the client
reconnects, and table changes made afterwards (a group going down, then
coming back) reach it: its watches were re-armed.  Traffic comes from bucketcache_client_traffic, which
checks every value it reads."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def test_zookeeper_stopped_mid_run():
    cl = harness.create_cluster(zk, "zkaway", buckets=NB)
    # The nodes run without write fencing: this is the client's side of an
    # outage (it keeps routing from its last table); with fencing, the
    # primaries would refuse writes once their lease lapsed
    # (test_replication.py: test_zookeeper_outage_fences_writes).
    nodes = {g: harness.ClusterNode(zk, cl, g, "--no-write-fencing", session_timeout_ms=SESSION_MS)
             for g in (1, 2)}
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    two_owners = lambda t: 0 not in t["c"] and len(set(t["c"])) == 2  # noqa: E731
    t0 = harness.wait_tables(zk, cl, two_owners, "two owners")
    tr = harness.ClientTraffic(zk, cl, "--threads", "2", "--keys", "50", "--session-timeout",
                                str(2 * SESSION_MS))
    tr.wait_progress(what="traffic with ZooKeeper up")
    assert tr.last()["zk"] == 1

    zk.stop()
    harness.wait_for(lambda: tr.last()["zk"] == 0, what="client notices ZooKeeper is gone")
    mark = tr.last()
    tr.wait_progress(n=1000, what="traffic with ZooKeeper down")
    time.sleep(1.0)
    away = tr.last()
    assert away["errors"] == mark["errors"], (mark, away)
    assert away["zk"] == 0 and away["epoch"] == t0["epoch"], away

    zk.start()
    harness.wait_for(lambda: tr.last()["zk"] == 1, timeout=30, what="client reconnected")
    tr.wait_progress(what="traffic after ZooKeeper returned")
    # Changes made now must reach the client: its watches work again.  (A
    # node whose session lapsed while ZooKeeper restarted gets its buckets
    # back: no orphan grace here.)
    harness.wait_for(con.is_active, timeout=30, what="console active again")
    harness.wait_tables(zk, cl, two_owners, "tables intact", timeout=30)
    nodes[2].proc.kill()
    t1 = harness.wait_tables(zk, cl, lambda t: 2 not in t["c"] and 0 in t["c"], "group 2 down",
                     timeout=SESSION_MS / 1000 + 20)
    harness.wait_for(lambda: tr.last()["epoch"] >= t1["epoch"], what="client took the new table")
    tr.wait_progress(n=300, what="group 1's keys still served")
    no_owner = "bucket has no owner (its group is down)"
    harness.wait_for(lambda: tr.last()["errors"].get(no_owner, 0) > 0, what="owner-less buckets reported")
    nodes[2] = harness.ClusterNode(zk, cl, 2, "--no-write-fencing", session_timeout_ms=SESSION_MS)
    t2 = harness.wait_tables(zk, cl, two_owners, "group 2 filled back", timeout=30)
    harness.wait_for(lambda: tr.last()["epoch"] >= t2["epoch"], what="client follows again")
    tr.wait_progress(n=300, what="traffic with both groups")
    mark = tr.last()
    time.sleep(0.5)
    assert tr.last()["errors"] == mark["errors"], (mark, tr.last())
    final = tr.stop()
    print("traffic:", json.dumps(final))
    for p in (nodes[1], nodes[2], con):
        p.stop()


harness.main(globals())
