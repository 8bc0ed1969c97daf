"""Bucket migration when processes die mid-copy (kill -9), with a writer
running throughout: the active console (a standby resumes the copies it
started), the destination primary and the source primary (each restarted
on its ports).  Every time the cluster converges to c == m == d with no
bucket read-only, no node holds data of a bucket its group does not own,
and every write the writer had acknowledged reads back -- except, when a
primary is killed, the writes of the buckets it held, which die with it
(no replication here)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import migration_util as mu  # noqa: E402

NB = 64
SESSION_MS = harness.SESSION_MS
# Every import waits this long before it reports done: copies stay in
# flight long enough to kill something in the middle of one.
SLOW = {"BC_TEST_IMPORT_DELAY_MS": "250"}
zk = harness.ZooKeeper()


def start(name, consoles=1):
    cl = harness.create_cluster(zk, name, buckets=NB)
    cons = [harness.Console(zk, cl, migrations=True, session_timeout_ms=SESSION_MS)
            for _ in range(consoles)]
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    mu.wait_converged(cons[0], what="group 1 owns everything")
    data = mu.load(g1, ["k%d" % i for i in range(4000)], 100)
    return cl, cons, g1, data


def wait_moving(con, done_at_least=0, moving_at_least=1):
    return harness.wait_for(
        lambda: (lambda m: m if m["moving"] >= moving_at_least and m["done"] >= done_at_least
                 else None)(
            mu.console_json(con, "/v1/migrations")), timeout=20, interval=0.02,
        what="copies in flight")


def owners(con):
    return mu.console_json(con, "/v1/tables")["c"]


def check_kept_and_writable(con, data, writer, at_kill, t, gid, at_least):
    """Every key of a bucket that group gid held at the kill and still holds
    reads back its loaded or last acknowledged value, and the cluster takes
    (and serves back) new writes everywhere."""
    kept = {b for b in range(NB) if at_kill[b] == gid and t["c"][b] == gid}
    expected = {k: v for k, v in list(data.items()) + list(writer.acked.items())
                if harness.bucket_of(k, NB) in kept}
    assert len(expected) > at_least
    mu.check_reads(con, NB, expected, writer.unknown)
    w2 = mu.Writer(con, NB, ["after%d" % i for i in range(200)])
    w2.start()
    harness.wait_for(lambda: w2.writes > 600, what="writes after recovery")
    w2.stop()
    mu.check_reads(con, NB, w2.acked, w2.unknown)


def test_active_console_killed_mid_migration():
    cl, (a, b), g1, data = start("conkill", consoles=2)
    assert a.is_active() and not b.is_active()
    writer = mu.Writer(a, NB, ["w%d" % i for i in range(300)])
    writer.start()
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS, env=SLOW)
    # killed with several copies between their start (read-only at the
    # source) and their cutover: the standby resumes and cuts them over
    m = wait_moving(a, done_at_least=4, moving_at_least=2)
    a.kill()
    t0 = time.time()
    harness.wait_for(b.is_active, timeout=SESSION_MS / 1000 + 10, what="the standby takes over")
    writer.router.console = b
    took = time.time() - t0
    t = mu.wait_converged(b, timeout=40)
    writer.stop()
    assert t["c"].count(2) == NB // 2
    expected = dict(data)
    expected.update(writer.acked)
    mu.check_reads(b, NB, expected, writer.unknown)
    mu.check_nothing_held_by_non_owners(b, [g1, g2])
    m2 = mu.console_json(b, "/v1/migrations")
    # the copies in flight when the leader died were resumed, not lost
    assert m2["done"] == NB // 2, m2
    assert "console: copying bucket" in b.proc.output() or m2["done"] > m["done"]
    print("standby active %.1f s after the kill; moves in flight then: %d; failed attempts: %d"
          % (took, m["moving"], m2["failed_attempts"]))
    for p in (g1, g2, b):
        p.stop()


def destination_killed(name, wait_down):
    """Group 2 joins, its primary is killed mid-copy and restarted on its
    ports -- at once, or (wait_down) only once its session has expired and
    the console has declared the group down."""
    cl, (con,), g1, data = start(name)
    writer = mu.Writer(con, NB, ["w%d" % i for i in range(300)])
    writer.start()
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS, env=SLOW)
    wait_moving(con, done_at_least=2)
    at_kill = owners(con)
    g2.proc.kill()
    # the copies in flight fail; the buckets go back to group 1, writable
    harness.wait_for(lambda: mu.console_json(con, "/v1/migrations")["failed_attempts"] > 0,
                     what="the failed copies noticed")
    if wait_down:
        # down: what it held has no owner, and the moves planned onto it are
        # planned over group 1; back, it must be planned for again
        harness.wait_for(lambda: 2 not in mu.console_json(con, "/v1/tables")["d"],
                         timeout=SESSION_MS / 1000 * 3 + 10, what="group 2 declared down")
    g2b = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS, port=g2.port,
                              admin_port=g2.admin_port)
    t = mu.wait_converged(con, timeout=40, groups=(1, 2))
    writer.stop()
    assert sorted(set(t["c"])) == [1, 2] and t["c"].count(2) == NB // 2, t["c"]
    mu.check_nothing_held_by_non_owners(con, [g1, g2b])
    # what never left group 1 is intact (what group 2 held died with it)
    check_kept_and_writable(con, data, writer, at_kill, t, 1, at_least=1000)
    for p in (g1, g2b, con):
        p.stop()


def test_destination_killed_mid_copy_and_restarted():
    destination_killed("dstkill", wait_down=False)


def test_destination_down_then_back_gets_its_share():
    destination_killed("dstdown", wait_down=True)


def test_source_killed_mid_copy_and_restarted():
    cl, (con,), g1, data = start("srckill")
    writer = mu.Writer(con, NB, ["w%d" % i for i in range(300)])
    writer.start()
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS, env=SLOW)
    wait_moving(con, done_at_least=2)
    at_kill = owners(con)
    g1.proc.kill()
    # group 1 goes down: its buckets lose their owner, the copies stop
    harness.wait_for(lambda: 0 in owners(con), timeout=SESSION_MS / 1000 + 10,
                     what="group 1 down")
    g1b = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS, port=g1.port,
                              admin_port=g1.admin_port)
    t = mu.wait_converged(con, timeout=40, groups=(1, 2))
    writer.stop()
    assert sorted(set(t["c"])) == [1, 2], t["c"]
    mu.check_nothing_held_by_non_owners(con, [g1b, g2])
    # what had moved to group 2 before the kill is intact
    check_kept_and_writable(con, data, writer, at_kill, t, 2, at_least=100)
    for p in (g1b, g2, con):
        p.stop()


harness.main(globals())
