"""libbucketcache under change, with traffic flowing: a group dies and the
console hands its buckets to the survivors (the c table changes under the
client), and a group's primary dies and its backup takes over (the primary
record changes).  A driver process (bucketcache_client_traffic) sets and
reads its own keys through the library from several threads and checks
every value: reads may miss (the data of a dead group is gone), but a value
other than the last one written is a failure."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def test_group_dies_and_buckets_move_during_traffic():
    cl = harness.create_cluster(zk, "move", buckets=NB)
    nodes = {g: harness.ClusterNode(zk, cl, g, session_timeout_ms=SESSION_MS) for g in (1, 2, 3)}
    con = harness.Console(zk, cl, "--orphan-grace-ms", "500", session_timeout_ms=SESSION_MS)
    t0 = harness.wait_tables(zk, cl, lambda t: 0 not in t["c"] and len(set(t["c"])) == 3, "three owners")
    tr = harness.ClientTraffic(zk, cl, "--threads", "3", "--keys", "60")
    tr.wait_progress(what="traffic before the change")
    nodes[2].proc.kill()
    t1 = harness.wait_tables(zk, cl, lambda t: 0 not in t["c"] and 2 not in t["c"], "group 2's buckets moved",
                     timeout=SESSION_MS / 1000 + 15)
    assert t1["epoch"] > t0["epoch"]
    # the client follows the new table and every key is served again
    harness.wait_for(lambda: tr.last()["epoch"] >= t1["epoch"], what="client took the new table")
    tr.wait_progress(n=500, what="traffic after the change")
    mark = tr.last()
    time.sleep(0.5)
    after = tr.last()
    assert after["errors"] == mark["errors"], (mark, after)  # no more errors once moved
    final = tr.stop()
    assert final["table_updates"] >= 2 and final["refreshes"] >= 2, final
    print("traffic:", json.dumps(final))
    for p in (nodes[1], nodes[3], con):
        p.stop()


def test_primary_dies_backup_takes_over():
    cl = harness.create_cluster(zk, "failover", buckets=NB)
    # sync replication: the backups in sync have every write the client saw
    # acknowledged, so after the switch no read may return an older value
    # (with async, the last few milliseconds of writes would be lost).  Two
    # backups: the one promoted has the other in sync at once, so writes go
    # on (sync mode, min_in_sync 1, refuses them with no backup in sync).
    a = harness.ClusterNode(zk, cl, 1, "--replication", "sync", session_timeout_ms=SESSION_MS)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    harness.wait_primary(a)
    backups = [harness.ClusterNode(zk, cl, 1, "--replication", "sync",
                                   session_timeout_ms=SESSION_MS) for _ in range(2)]
    for b in backups:
        harness.wait_recorded(a, b)
    tr = harness.ClientTraffic(zk, cl, "--threads", "2", "--keys", "40")
    tr.wait_progress(what="traffic through the first primary")
    a.proc.kill()
    addrs = {"127.0.0.1:%d" % b.port: b for b in backups}
    harness.wait_for(lambda: json.loads(harness.cli("--zk", zk.hosts, "--cluster", cl, "--json",
                                                    "locate", "k")[1])["primary"] in addrs,
                     timeout=SESSION_MS / 1000 + 15, what="a backup promoted")
    new = addrs[json.loads(harness.cli("--zk", zk.hosts, "--cluster", cl, "--json", "locate",
                                       "k")[1])["primary"]]
    tr.wait_progress(n=300, what="traffic through the new primary", timeout=20)
    final = tr.stop()
    print("traffic:", json.dumps(final))
    assert final["refreshes"] >= 2, final
    # everything after the switch went to the new primary
    assert int(new.stats()["cmd_set"]) > 0
    for p in backups + [con]:
        p.stop()


harness.main(globals())
