"""A batch of bucket copies interrupted by kill -9 at each of its steps, in
sync replication mode (every group a primary and an in-sync backup), with a
writer running throughout:

- the source primary killed during the batch's catch-up (its buckets fenced,
  their changes not yet sent);
- the destination primary killed after receiving the batch but before
  acknowledging it;
- the one console killed between the batch's read-only commit and its
  cutover commit, and started again.

Each time the cluster converges to c == m == d with no bucket read-only,
every write acknowledged before, during and after the kill reads back (sync
mode: the backup that takes over has it), no node holds data of a bucket
its group does not own, and no bucket ever had two owners (c names one
group per bucket; the old owner dropped what it gave away)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import migration_util as mu  # noqa: E402

NB = 32
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def cli(cl, *args):
    return harness.cli("--zk", zk.hosts, "--cluster", cl, *args)


def sync_mode(cl, gid):
    """Group gid in sync mode; min_in_sync 0 lets a lone primary left by a
    kill take writes (each acknowledged once every backup in sync has it)."""
    rc, out, err = cli(cl, "group", "config", str(gid), "--replication", "sync",
                       "--min-in-sync", "0")
    assert rc == 0, (rc, out, err)


def group(cl, gid, env=None):
    """A primary and its backup, recorded in sync."""
    p = harness.ClusterNode(zk, cl, gid, session_timeout_ms=SESSION_MS, env=env)
    harness.wait_primary(p)
    sync_mode(cl, gid)
    b = harness.ClusterNode(zk, cl, gid, session_timeout_ms=SESSION_MS)
    harness.wait_for(lambda: harness.repl(p)["mode"] == "sync", what="group %d in sync mode" % gid)
    harness.wait_recorded(p, b)
    return p, b


def start(name, src_env=None, dst_env=None):
    """Group 1 loaded and written to; group 2 joins with migrations paused
    and they are resumed once its backup is in sync: the copies then run
    in batches from group 1 to group 2."""
    cl = harness.create_cluster(zk, name, buckets=NB)
    con = harness.Console(zk, cl, migrations=True, session_timeout_ms=SESSION_MS)
    p1, b1 = group(cl, 1, env=src_env)
    mu.wait_converged(con, what="group 1 owns everything")
    data = mu.load(p1, ["k%d" % i for i in range(3000)], 100)
    rc, out, err = cli(cl, "migrations", "pause")
    assert rc == 0, (rc, out, err)
    writer = mu.Writer(con, NB, ["w%d" % i for i in range(300)])
    writer.start()
    p2, b2 = group(cl, 2, env=dst_env)
    harness.wait_for(lambda: 2 in mu.console_json(con, "/v1/tables")["d"], what="the plan")
    rc, out, err = cli(cl, "migrations", "resume")
    assert rc == 0, (rc, out, err)
    return cl, con, [p1, b1, p2, b2], data, writer


def wait_batch(con):
    """Until a batch of at least two copies is between its read-only commit
    and its cutover commit (and one batch has been cut over before it)."""
    return harness.wait_for(
        lambda: (lambda m: m if m["moving"] >= 2 and m["done"] >= 2 else None)(
            mu.console_json(con, "/v1/migrations")),
        timeout=30, interval=0.01, what="a batch of copies in flight")


def finish(con, nodes, data, writer):
    t = mu.wait_converged(con, timeout=60)
    writer.stop()
    assert sorted(set(t["c"])) == [1, 2] and t["c"].count(2) == NB // 2, t["c"]
    expected = dict(data)
    expected.update(writer.acked)
    mu.check_reads(con, NB, expected, writer.unknown)
    mu.check_nothing_held_by_non_owners(con, nodes)
    # writes go on everywhere, and read back
    w2 = mu.Writer(con, NB, ["after%d" % i for i in range(100)])
    w2.start()
    harness.wait_for(lambda: w2.writes > 300, what="writes after recovery")
    w2.stop()
    mu.check_reads(con, NB, w2.acked, w2.unknown)
    return t


def primary_killed(name, gid, env, what):
    """Group gid's primary (1: the source, 2: the destination, slowed by
    env) killed with a batch in flight: its backup takes over with every
    acknowledged write, the copies of the batch fail, their buckets go back
    to group 1 (writable) and are copied again."""
    cl, con, nodes, data, writer = start(name, **{("src_env" if gid == 1 else "dst_env"): env})
    p1, b1, p2, b2 = nodes
    victim, backup = (p1, b1) if gid == 1 else (p2, b2)
    m = wait_batch(con)
    victim.proc.kill()
    harness.wait_primary(backup, timeout=SESSION_MS / 1000 + 15)
    m2 = harness.wait_for(lambda: (lambda x: x if x["failed_attempts"] > 0 else None)(
        mu.console_json(con, "/v1/migrations")), what=what)
    survivors = [n for n in nodes if n is not victim]
    finish(con, survivors, data, writer)
    print("batch in flight at the kill: %d copies; failed attempts: %d"
          % (m["moving"], m2["failed_attempts"]))
    for p in survivors + [con]:
        p.stop()


def test_source_killed_during_a_batch_catch_up():
    # the source holds each fenced export 400 ms before sending its
    # changes: the batch is killed in its catch-up
    primary_killed("srcbatch", 1, {"BC_TEST_EXPORT_DELAY_MS": "400"},
                   "the interrupted copies noticed")


def test_destination_killed_after_receiving_a_batch():
    # the destination holds each import 400 ms after receiving it, before
    # reporting it done: the batch was never acknowledged, and what was cut
    # over before is on group 2's backup
    primary_killed("dstbatch", 2, {"BC_TEST_IMPORT_DELAY_MS": "400"},
                   "the unacknowledged copies noticed")


def test_console_killed_between_the_batch_commits():
    # every import holds 400 ms before its report: the console dies with a
    # batch read-only and not cut over
    cl, con, (p1, b1, p2, b2), data, writer = start(
        "conbatch", dst_env={"BC_TEST_IMPORT_DELAY_MS": "400"})
    m = wait_batch(con)
    con.kill()
    # with no console the tables stay as they were: the batch read-only at
    # its source, nothing cut over; every other bucket takes writes
    at_kill = harness.tables(zk, cl)
    assert at_kill["readonly"], at_kill
    prim = {1: p1, 2: p2}
    for b in range(NB):
        key = mu.keys_in_bucket(b, 1, NB, "nocon")[0]
        reply = prim[at_kill["c"][b]].conn().cmd("set %s 0 0 1" % key, "x")
        if b in at_kill["readonly"]:
            # held for the pause's wait, then refused: never hung
            assert reply.startswith(b"SERVER_ERROR READONLY %d " % b), (b, reply)
        else:
            assert reply == b"STORED\r\n", (b, reply)
            data[key] = "x"
    later = harness.tables(zk, cl)
    assert (later["c"], later["readonly"]) == (at_kill["c"], at_kill["readonly"]), (at_kill, later)
    # a console again: it resumes the batch's copies and cuts them over
    con2 = harness.Console(zk, cl, migrations=True, session_timeout_ms=SESSION_MS)
    writer.router.console = con2
    harness.wait_for(con2.is_active, timeout=SESSION_MS / 1000 + 15, what="the console back")
    finish(con2, [p1, b1, p2, b2], data, writer)
    print("batch in flight at the kill: %d copies, %d buckets read-only"
          % (m["moving"], len(at_kill["readonly"])))
    for p in (p1, b1, p2, b2, con2):
        p.stop()


harness.main(globals())
