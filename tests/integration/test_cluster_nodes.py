"""Nodes in groups with a real ZooKeeper and a real console: registration,
primary choice, serving only owned buckets, rebalance on add-group, group
down -> 0 entries, group back -> filled back, orphan grace, a node whose
session expires, and a ZooKeeper restart."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def cluster_view(console):
    return harness.http_json(console.admin_port, "GET", "/v1/cluster")[1]


def group_doc(console, gid):
    for g in cluster_view(console)["groups"]:
        if g["gid"] == gid:
            return g
    return None


def peer_conn(node):
    """A connection that identified as another node's forwarding one."""
    c = node.conn()
    assert c.cmd("bucketcache_peer test") == b"OK\r\n"
    return c


def test_registration_primary_and_ownership():
    cl = harness.create_cluster(zk, "reg", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    assert t["m"] == [1] * NB and t["d"] == [1] * NB
    b = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    g = harness.wait_for(lambda: (lambda g: g if g and len(g["nodes"]) == 2 else None)(group_doc(con, 1)),
                         what="two nodes registered")
    roles = {n["data"]: n["role"] for n in g["nodes"]}
    # what each node registered (the replication offset is not in it: the
    # console asks a node's live offset when it needs one)
    assert all(set(n) == {"name", "role", "data", "admin", "memory", "pid", "in_sync"}
               for n in g["nodes"]), g
    assert {n["pid"] for n in g["nodes"]} == {a.proc.pid, b.proc.pid}, g
    assert roles["127.0.0.1:%d" % a.port] == "primary", roles
    assert roles["127.0.0.1:%d" % b.port] == "backup", roles
    assert g["primary_addr"] == "127.0.0.1:%d" % a.port

    harness.wait_for(lambda: a.conn().cmd("set k1 0 0 1", "x") == b"STORED\r\n", what="primary serves")
    assert a.conn().cmd("get k1") == b"VALUE k1 0 1\r\nx\r\nEND\r\n"
    # a backup never serves: on a peer connection (what another node's
    # forwarding uses) it refuses, and swallows a refused data block
    c = peer_conn(b)
    reply = c.cmd("get k1")
    assert reply.startswith(b"SERVER_ERROR NOT_PRIMARY "), reply
    assert c.cmd("set k2 0 0 3", "abc").startswith(b"SERVER_ERROR NOT_PRIMARY ")
    assert c.cmd("version").startswith(b"VERSION ")
    assert a.conn().cmd("get k2") == b"END\r\n"
    # a plain client is forwarded to the primary
    assert b.conn().cmd("get k1") == b"VALUE k1 0 1\r\nx\r\nEND\r\n"
    for n in (a, b):
        assert n.stop() == 0
    con.stop()


def test_add_group_rebalances_and_non_owner_answers_moved():
    cl = harness.create_cluster(zk, "grow", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, cl, lambda t: 2 in t["d"], "d gives group 2 its share")
    # the planner: equal memory, the highest-numbered half moves to group 2
    assert t["d"] == [1] * (NB // 2) + [2] * (NB // 2), t["d"]
    assert t["m"] == [1] * NB and t["c"] == [1] * NB  # data has not moved
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cl, "rebalance", "--dry-run")
    assert rc == 0 and "nothing written" in out, (out, err)
    # a node asked for a bucket its group does not own names the owner
    # (on a peer connection: requests there are never forwarded) ...
    key = harness.key_in_bucket_owned_by(t["c"], 1)
    reply = peer_conn(g2).cmd("get " + key)
    assert reply == ("SERVER_ERROR MOVED %d 1 %d\r\n" % (harness.bucket_of(key, NB), t["epoch"])).encode(), reply
    assert peer_conn(g2).cmd("set %s 0 0 1" % key, "v").startswith(b"SERVER_ERROR MOVED")
    # ... and forwards a plain client's request to the owner
    assert g2.conn().cmd("set %s 0 0 1" % key, "v") == b"STORED\r\n"
    assert g1.conn().cmd("get " + key) == ("VALUE %s 0 1\r\nv\r\nEND\r\n" % key).encode()
    for p in (g1, g2, con):
        p.stop()


def test_group_down_then_back():
    cl = harness.create_cluster(zk, "downup", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: 2 in t["d"], "rebalance planned")
    # group 2 is live but owns nothing yet (its share waits for migration);
    # group 1 owns every bucket and goes down.
    g1.proc.kill()  # kill -9: gone once its session expires
    t = harness.wait_tables(zk, cl, lambda t: t["c"] == [0] * NB, "group 1's entries become 0",
                    timeout=SESSION_MS / 1000 + 10)
    assert t["m"] == [0] * NB
    key = harness.key_in_bucket_owned_by([1] * NB, 1)
    # a memcached client reads a miss (docs/protocol.md, "A group down reads
    # as misses"); a write, and a peer connection, get the refusal
    assert g2.conn().cmd("get " + key) == b"END\r\n"
    reply = g2.conn().cmd("set %s 0 0 1" % key, "v")
    assert reply.startswith(b"SERVER_ERROR NO_OWNER %d " % harness.bucket_of(key, NB)), reply
    reply = peer_conn(g2).cmd("get " + key)
    assert reply.startswith(b"SERVER_ERROR NO_OWNER %d " % harness.bucket_of(key, NB)), reply
    time.sleep(1.5)  # orphans wait for their group: nothing is reassigned
    assert harness.tables(zk, cl)["c"] == [0] * NB
    g1b = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "filled back to group 1")
    assert t["m"] == [1] * NB
    harness.wait_for(lambda: g1b.conn().cmd("set %s 0 0 1" % key, "v") == b"STORED\r\n",
                     what="group 1 serves again")
    for p in (g1b, g2, con):
        p.stop()


def test_orphan_grace_hands_buckets_to_survivors():
    cl = harness.create_cluster(zk, "grace", buckets=NB)
    con = harness.Console(zk, cl, "--orphan-grace-ms", "1000", session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: 2 in t["d"], "rebalance planned")
    g1.proc.kill()
    t = harness.wait_tables(zk, cl, lambda t: t["c"] == [2] * NB, "orphans handed to group 2",
                    timeout=SESSION_MS / 1000 + 12)
    assert t["m"] == [2] * NB and t["d"] == [2] * NB
    # group 1 returns after its buckets moved: it joins as a new group
    g1b = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, cl, lambda t: 1 in t["d"], "group 1 rejoins as new")
    assert t["c"] == [2] * NB
    for p in (g1b, g2, con):
        p.stop()


def test_node_session_expiry_reregisters():
    cl = harness.create_cluster(zk, "expiry", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    a.proc.signal(signal.SIGSTOP)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [0] * NB, "group down while paused",
                timeout=SESSION_MS / 1000 + 10)
    a.proc.signal(signal.SIGCONT)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "re-registered and filled back")
    harness.wait_for(lambda: a.conn().cmd("set z 0 0 1", "1") == b"STORED\r\n", what="serves again")
    assert "registered as" in a.proc.output()
    a.stop()
    con.stop()


def test_zookeeper_restart():
    cl = harness.create_cluster(zk, "zkrestart", buckets=NB)
    # Sessions that outlive the restart: ZooKeeper's JVM may take seconds
    # to start and to take the clients' reconnections on a loaded machine,
    # and a node whose session expires meanwhile stops being primary (its
    # data then follows a new primary): not what this test is about.
    session_ms = 5 * SESSION_MS
    con = harness.Console(zk, cl, session_timeout_ms=session_ms)
    a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=session_ms)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    harness.wait_for(lambda: a.conn().cmd("set k 0 0 1", "1") == b"STORED\r\n", what="serving")
    zk.restart()
    # the node keeps serving from its last table while ZooKeeper is away
    assert a.conn().cmd("get k") == b"VALUE k 0 1\r\n1\r\nEND\r\n"
    harness.wait_for(con.is_active, timeout=20, what="console active again")
    t = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "tables intact")
    assert t["m"] == [1] * NB
    a.stop()
    con.stop()


def test_restarted_node_replaces_its_stale_registration():
    cl = harness.create_cluster(zk, "stale", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    # a long session: its ephemeral registration would outlive a crash by 20 s
    a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=20000)
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    port, admin = a.port, a.admin_port
    a.proc.kill()
    b = harness.ClusterNode(zk, cl, 1, session_timeout_ms=20000, port=port, admin_port=admin)
    assert "removing stale registration" in harness.wait_for(
        lambda: (lambda o: o if "removing stale registration" in o else None)(b.proc.output()),
        what="the stale registration removed")
    g = harness.wait_for(lambda: (lambda g: g if g and len(g["nodes"]) == 1 and
                                  g["primary_addr"] == "127.0.0.1:%d" % port and
                                  g["nodes"][0]["pid"] == b.proc.pid else None)(group_doc(con, 1)),
                         what="one live registration, the new process, primary")
    harness.wait_for(lambda: b.conn().cmd("set s 0 0 1", "1") == b"STORED\r\n", what="serving")
    b.stop()
    con.stop()


def test_malformed_table_in_zookeeper_is_survived():
    cl = harness.create_cluster(zk, "corrupt", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    good = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    # the node reads the table a moment after ZooKeeper has it
    harness.wait_for(lambda: a.conn().cmd("set k 0 0 1", "1") == b"STORED\r\n", what="serving")
    path = "/bucketcache/%s/tables/c" % cl
    original = harness.zk_get(zk, path)
    harness.zk_shell(zk, "set", path, '{"table":"c","epoch":99,"buckets":3,"owners":[2,2,2]}')
    harness.wait_for(lambda: "cannot read table c" in a.proc.output(),
                     what="the node read the malformed table")
    time.sleep(1.0)          # and the console had time to see it too
    # the node keeps its last good table: no crash, no wrong route
    assert a.proc.poll() is None and con.proc.poll() is None
    assert a.conn().cmd("get k") == b"VALUE k 0 1\r\n1\r\nEND\r\n"
    harness.zk_shell(zk, "set", path, original)
    harness.wait_tables(zk, cl, lambda t: t["c"] == good["c"], "restored")
    assert a.conn().cmd("get k") == b"VALUE k 0 1\r\n1\r\nEND\r\n"
    a.stop()
    con.stop()


def test_stop_while_the_admin_port_is_busy():
    """A node stopped while admin requests that read its ZooKeeper state
    (/health) keep coming: it leaves the cluster (closing its session)
    before the admin port stops, and no request may touch the session
    once it is gone (the sanitizer builds see it if one does)."""
    import threading
    cl = harness.create_cluster(zk, "busystop", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    for _ in range(3):
        a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
        stop = threading.Event()
        answered = [0]

        def hammer():
            while not stop.is_set():
                try:
                    harness.http(a.admin_port, "GET", "/health", timeout=1)
                    answered[0] += 1
                except Exception:   # the port closes under it: expected
                    pass
        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        harness.wait_for(lambda: answered[0] >= 20, what="/health answering")
        try:
            assert a.stop() == 0, a.proc.output()[-3000:]
        finally:
            stop.set()
            for t in threads:
                t.join()
        out = a.proc.output()
        assert "Sanitizer" not in out, out[-4000:]
    con.stop()


def test_bad_cluster_flags():
    import subprocess
    for args, needle in [
        (["--zk", zk.hosts, "--cluster", "nosuch", "--group", "1"], "does not exist"),
        (["--zk", zk.hosts, "--cluster", "reg", "--group", "0"], "group"),
        (["--zk", zk.hosts, "--group", "1"], "cluster"),
    ]:
        r = subprocess.run([harness.NODE_BIN, "-p", str(harness.free_port()), "--admin-port", "0"] + args,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and needle in r.stderr, (args, r.returncode, r.stderr[-800:])


harness.main(globals())
