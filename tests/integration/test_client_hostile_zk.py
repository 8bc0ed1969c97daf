"""libbucketcache and hostile data in ZooKeeper: a malformed c table or
primary record is logged, counted (table_errors) and ignored -- the client
keeps routing by what it knew, with traffic flowing and every value
checked -- and the client takes the good data again once it is restored.
Creating a client (or running the CLI) against a cluster whose table is
malformed fails with a clear error."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def zk_get(path):
    return harness.zk_get(zk, path)


BAD_TABLES = [
    '{"table":"c","epoch":99,"buckets":3,"owners":[2,2,2]}',           # wrong bucket count
    '{"table":"c","epoch":99,"buckets":16,"owners":[1,1,1]}',          # too few owners
    '{"table":"m","epoch":99,"buckets":16,"owners":' + json.dumps([9] * 16) + '}',  # wrong kind
    '{"table":"c","epoch":-1,"buckets":16,"owners":' + json.dumps([9] * 16) + '}',  # bad epoch
    'not json at all',
]


def test_malformed_table_and_primary_record_are_ignored():
    cl = harness.create_cluster(zk, "hostile", buckets=NB)
    node = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    good = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    tr = harness.ClientTraffic(zk, cl, "--threads", "2", "--keys", "40")
    tr.wait_progress(what="traffic before")
    cpath = "/bucketcache/%s/tables/c" % cl
    original = zk_get(cpath)
    errors_before = tr.last()["errors"]
    for bad in BAD_TABLES:
        seen = tr.last()["table_errors"]
        harness.zk_shell(zk, "set", cpath, bad)
        harness.wait_for(lambda: tr.last()["table_errors"] > seen, what="bad table noticed: " + bad)
        tr.wait_progress(n=200, what="traffic with a bad table in ZooKeeper")
        assert tr.last()["epoch"] == good["epoch"], tr.last()
    assert tr.last()["errors"] == errors_before, (errors_before, tr.last())

    # creating a client now fails clearly
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cl, "get", "k")
    assert rc == 1 and "malformed" in err, (rc, out, err)

    harness.zk_shell(zk, "set", cpath, original)
    harness.wait_for(lambda: tr.last()["table_updates"] >= 1 and tr.last()["epoch"] == good["epoch"],
                     what="good table back")
    # a malformed primary record: the group keeps the primary known so far
    ppath = "/bucketcache/%s/groups/1/primary" % cl
    primary = zk_get(ppath)
    seen = tr.last()["table_errors"]
    harness.zk_shell(zk, "set", ppath, '{"node":"n-1","data":42}')
    harness.wait_for(lambda: tr.last()["table_errors"] > seen or zk_get(ppath) != '{"node":"n-1","data":42}',
                     what="bad primary record noticed")
    tr.wait_progress(n=200, what="traffic with a bad primary record")
    if zk_get(ppath) == '{"node":"n-1","data":42}':
        harness.zk_shell(zk, "set", ppath, primary)
    tr.wait_progress(n=200, what="traffic after")
    final = tr.stop()
    print("traffic:", json.dumps(final))
    assert final["errors"] == errors_before, final
    assert final["table_errors"] >= len(BAD_TABLES), final
    node.stop()
    con.stop()


harness.main(globals())
