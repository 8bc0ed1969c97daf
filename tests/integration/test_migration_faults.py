"""Bucket migration against faulty peers: an import fed malformed, truncated,
corrupted or misdirected export streams by a fake source fails with an
error that says what was wrong, keeps nothing, and the node carries on; a
destination too slow for the console's timeout, and one that refuses the
data, make the console give the bucket back to its source (writable),
report the error and retry with backoff, until the destination is fixed or
the rebalance is cancelled."""
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import migration_util as mu  # noqa: E402
from migration_util import FakeSource, end, frame, item  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def hello(bucket, epoch, nbuckets=NB):
    return mu.hello(bucket, epoch, nbuckets)

def keys_in_bucket(bucket, n):
    return mu.keys_in_bucket(bucket, n, NB, "fk")


def import_job(node, bucket, epoch, source_port):
    return mu.run_job(node, "/v1/migrate/import?bucket=%d&epoch=%d&from=1&source=127.0.0.1%%3A%d"
                      % (bucket, epoch, source_port), "the import to finish", expect=(202,))


def test_malformed_truncated_and_misdirected_frames():
    cl = harness.create_cluster(zk, "frames", buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)   # migrations off
    a = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    mu.wait_converged(con, what="group 1 owns everything")
    b = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS)
    harness.wait_for(lambda: harness.http_json(b.admin_port, "GET", "/health")[1].get("role")
                     == "primary", what="group 2's primary")
    src = FakeSource()
    bucket, epoch = 3, 7
    ks = keys_in_bucket(bucket, 3)
    good = [item(k.encode(), b"value-" + k.encode()) for k in ks]
    nbytes = sum(len(k) + 6 + len(k) for k in ks)
    far = next(("k-elsewhere-%d" % i).encode() for i in range(100)
               if harness.bucket_of("k-elsewhere-%d" % i, NB) != bucket)

    def stream(e):
        return hello(bucket, e) + b"".join(good) + end(3, nbytes)

    # (what, the reply for an import at epoch e, what the error must say)
    cases = [
        ("truncated body", lambda e: (stream(e)[:-5], len(stream(e))), "truncated"),
        ("corrupted item", lambda e: (hello(bucket, e) + good[0] + item(b"x", b"y", corrupt=True)
                                      + end(2, 0), None), "checksum mismatch"),
        ("no END", lambda e: (hello(bucket, e) + b"".join(good), None), "no END"),
        ("END with wrong counts", lambda e: (hello(bucket, e) + b"".join(good) + end(9, nbytes),
                                             None), "END says"),
        ("another bucket's HELLO", lambda e: (hello(bucket + 1, e) + end(0, 0), None),
         "expected bucket"),
        ("another epoch's HELLO", lambda e: (hello(bucket, e - 1) + end(0, 0), None),
         "expected bucket"),
        ("an item of another bucket", lambda e: (hello(bucket, e) + item(far, b"v") +
                                                 end(1, len(far) + 1), None), "belongs to bucket"),
        ("garbage", lambda e: (b"\x00\x00\x00\x03\x00\x00\x00\x00abc" * 3, None), "checksum"),
        ("not msgpack", lambda e: (frame(b"\xc1\xc1\xc1"), None), "not a msgpack array"),
        ("oversized frame", lambda e: (struct.pack(">II", 0x7FFFFFFF, 0), None), "over the limit"),
        ("empty body", lambda e: (b"", None), "truncated"),
    ]
    for i, (name, reply, needle) in enumerate(cases):
        src.replies.append(reply(epoch + i))
        job = import_job(b, bucket, epoch + i, src.port)   # a new attempt each time
        assert job["state"] == "failed" and needle in job["error"], (name, job)
        assert mu.bucket_items(b, bucket) == 0, name           # nothing kept
        assert b.proc.poll() is None, name
    # the same request again reports the job, it does not run it again;
    # one older than the newest attempt is stale and refused
    path = "/v1/migrate/import?bucket=%d&epoch=%d&from=1&source=127.0.0.1%%3A%d"
    st, doc = harness.http_json(b.admin_port, "POST", path % (bucket, epoch + len(cases) - 1,
                                                              src.port))
    assert st == 200 and doc["state"] == "failed" and "truncated" in doc["error"], doc
    st, doc = harness.http_json(b.admin_port, "POST", path % (bucket, epoch, src.port))
    assert st == 409 and "stale" in doc["error"] and doc["retry"] is False, doc
    # a good stream is stored, then a cancel drops it
    epoch += len(cases)
    src.replies.append((stream(epoch), None))
    job = import_job(b, bucket, epoch, src.port)
    assert job["state"] == "done" and job["items"] == 3, job
    assert mu.bucket_items(b, bucket) == 3
    st, doc = harness.http_json(b.admin_port, "DELETE",
                                "/v1/migrate/import?bucket=%d&epoch=%d" % (bucket, epoch))
    assert st == 200, doc
    assert mu.bucket_items(b, bucket) == 0
    # the node is fine: health, stats, its counters
    st, doc = harness.http_json(b.admin_port, "GET", "/health")
    assert st == 200 and doc["status"] == "ok"
    assert mu.migrate_stats(b)["imports_failed"] >= len(cases)
    # bad requests to the endpoints are refused clearly
    for path, needle in [("/v1/migrate/import?bucket=99&epoch=1&from=1&source=x:1", "bucket"),
                         ("/v1/migrate/import?bucket=1&epoch=0&from=1&source=x:1", "epoch"),
                         ("/v1/migrate/import?bucket=1&epoch=1&source=x:1", "required"),
                         ("/v1/migrate/import?bucket=1&epoch=1&from=1&source=nope", "source")]:
        st, doc = harness.http_json(b.admin_port, "POST", path)
        assert st == 400 and needle in doc["error"], (path, st, doc)
    # an export is refused where the bucket is not read-only (nothing to fence)
    st, doc = harness.http_json(a.admin_port, "GET", "/v1/migrate/export?bucket=1&epoch=1")
    assert st == 409 and doc["retry"] is False and "writable" in doc["error"], doc
    st, doc = harness.http_json(a.admin_port, "GET", "/v1/migrate/export?bucket=1&epoch=999")
    assert st == 409 and doc["retry"] is True and "not fenced" in doc["error"], doc
    # the console's long poll: answered when wait_ms passes while the job
    # runs, and the moment the job finishes
    epoch += 1
    src.replies.append((stream(epoch), None, 0.5))
    start = "/v1/migrate/import?bucket=%d&epoch=%d&from=1&source=127.0.0.1%%3A%d"
    st, doc = harness.http_json(b.admin_port, "POST", start % (bucket, epoch, src.port))
    assert st == 202 and doc["state"] == "running", doc
    poll = "/v1/migrate/import?bucket=%d&epoch=%d&wait_ms=%d"
    t0 = time.time()
    st, doc = harness.http_json(b.admin_port, "GET", poll % (bucket, epoch, 100))
    assert st == 200 and doc["state"] == "running" and time.time() - t0 >= 0.09, doc
    st, doc = harness.http_json(b.admin_port, "GET", poll % (bucket, epoch, 8000))
    assert st == 200 and doc["state"] == "done" and doc["items"] == 3, doc
    assert time.time() - t0 < 4 * harness.SLOW, time.time() - t0
    st, doc = harness.http_json(b.admin_port, "GET", poll % (bucket, epoch, 10001))
    assert st == 400 and "wait_ms" in doc["error"], doc
    src.stop()
    for p in (a, b, con):
        p.stop()


def test_export_ahead_of_the_tables_fences_the_bucket_locally():
    """An export for an epoch the source has not read yet fences that one
    bucket at once (read-only ahead of the tables) instead of waiting for
    the source's agent; once the tables reach that epoch they decide."""
    cl = harness.create_cluster(zk, "localfence", buckets=NB)
    a = harness.ClusterNode(zk, cl, 1, "--no-forward", session_timeout_ms=SESSION_MS)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    harness.wait_for(lambda: harness.http_json(a.admin_port, "GET", "/v1/repl")[1]["writable"],
                     what="primary writable")
    k = harness.key_in_bucket_owned_by(t["c"], 1, prefix="lf")
    other = next(x for x in ("lf-o%d" % i for i in range(1000))
                 if harness.bucket_of(x, NB) != harness.bucket_of(k, NB))
    c = a.conn()
    assert c.cmd("set %s 0 0 1" % k, "1") == b"STORED\r\n"
    bucket = harness.bucket_of(k, NB)
    t0 = time.time()
    st, hdrs, body = harness.http(a.admin_port, "GET", "/v1/migrate/export?bucket=%d&epoch=%d"
                                  % (bucket, t["epoch"] + 1))
    assert st == 200, (st, hdrs, body[:200])
    frames = mu.read_frames(body)
    assert [f[0] for f in frames] == ["HELLO", "ITEM", "END"], frames
    assert frames[1][1] == k.encode() and frames[1][2] == b"1" and frames[2][1] == 1, frames
    assert time.time() - t0 < 1.0 * harness.SLOW
    # that bucket only is read-only now; reads go on
    assert c.cmd("set %s 0 0 1" % k, "2").startswith(b"SERVER_ERROR READONLY %d " % bucket)
    assert c.cmd("get " + k) == b"VALUE %s 0 1\r\n1\r\nEND\r\n" % k.encode()
    assert c.cmd("set %s 0 0 1" % other, "x") == b"STORED\r\n"
    # an epoch far ahead is not believed
    st, doc = harness.http_json(a.admin_port, "GET", "/v1/migrate/export?bucket=%d&epoch=%d"
                                % (bucket, t["epoch"] + 500))
    assert st == 409 and "not fenced" in doc["error"], doc
    # the tables move on (a second group's primary bumps the epoch): the
    # console never made the bucket read-only, so it is writable again
    g2 = harness.ClusterNode(zk, cl, 2, "--no-forward", session_timeout_ms=SESSION_MS)
    harness.wait_tables(zk, cl, lambda u: u["epoch"] > t["epoch"], "the epoch moved on")
    harness.wait_for(lambda: c.cmd("set %s 0 0 1" % k, "3") == b"STORED\r\n",
                     what="the bucket writable again")
    for p in (a, g2, con):
        p.stop()


def test_slow_destination_times_out_and_retries():
    cl = harness.create_cluster(zk, "slow", buckets=NB)
    con = harness.Console(zk, cl, "--migration-timeout-ms", "600", migrations=True,
                          session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    mu.wait_converged(con, what="group 1 owns everything")
    data = mu.load(g1, ["k%d" % i for i in range(500)], 100)
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS,
                             env={"BC_TEST_IMPORT_DELAY_MS": "3000"})
    # a bucket backing off for a while yet (so it cannot restart under us)
    w = harness.wait_for(lambda: next((w for w in mu.console_json(con, "/v1/migrations")["waiting"]
                                       if w["retry_in_ms"] >= 300), None),
                         timeout=30, interval=0.05, what="a failed attempt backing off")
    assert "timed out" in w["error"] and w["attempts"] >= 1, w
    # while it waits to retry, the bucket is writable at its source again
    t = mu.console_json(con, "/v1/tables")
    assert w["bucket"] not in t["readonly"] and t["c"][w["bucket"]] == 1, (w, t)
    key = next(k for k in data if harness.bucket_of(k, NB) == w["bucket"])
    assert g1.conn().cmd("set %s 0 0 3" % key, "new") == b"STORED\r\n"
    data[key] = "new"
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cl, "migrations")
    assert rc == 0 and "timed out" in out, out
    # the destination recovers (restarted without the delay): it converges
    g2.stop()
    g2b = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS, port=g2.port,
                              admin_port=g2.admin_port)
    t = mu.wait_converged(con, timeout=60, groups=(1, 2))
    assert t["c"].count(2) == NB // 2
    mu.check_reads(con, NB, data)
    mu.check_nothing_held_by_non_owners(con, [g1, g2b])
    for p in (g1, g2b, con):
        p.stop()


def test_long_copy_that_keeps_progressing_is_not_timed_out():
    """The migration timeout bounds a copy that stalls, not one that is
    long: a destination that stores slowly but steadily takes several
    times the timeout per bucket and still converges, with no attempt
    called off."""
    cl = harness.create_cluster(zk, "steady", buckets=4)
    con = harness.Console(zk, cl, "--migration-timeout-ms", "400", migrations=True,
                          session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, memory_mb=128, session_timeout_ms=SESSION_MS)
    mu.wait_converged(con, what="group 1 owns everything")
    data = mu.load(g1, ["big%d" % i for i in range(2400)], 4000)     # about 2.4 MiB a bucket
    # every read from the source (at most 256 KiB) waits 150 ms: a bucket takes
    # over a second to cross, several times the timeout
    g2 = harness.ClusterNode(zk, cl, 2, memory_mb=128, session_timeout_ms=SESSION_MS,
                             env={"BC_TEST_IMPORT_STEP_DELAY_MS": "150"})
    t = mu.wait_converged(con, timeout=60, groups=(1, 2))
    assert t["c"].count(2) == 2, t["c"]
    m = mu.console_json(con, "/v1/migrations")
    assert m["failed_attempts"] == 0, m
    took = [int(ms) for ms in re.findall(r"imported bucket \d+ \(precopy[^)]*\) from \S+: "
                                         r"\d+ items, \d+ bytes in (\d+) ms", g2.proc.output())]
    assert len(took) >= 2 and min(took) > 400, took   # each longer than the timeout
    imports = mu.migrate_stats(g2)
    assert imports["imports_failed"] == 0, imports
    mu.check_reads(con, 4, data)
    for p in (g1, g2, con):
        p.stop()


def test_refusing_destination_then_cancel():
    cl = harness.create_cluster(zk, "refuse", buckets=NB)
    con = harness.Console(zk, cl, migrations=True, session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    mu.wait_converged(con, what="group 1 owns everything")
    data = mu.load(g1, ["big%d" % i for i in range(200)], 8 * 1024)
    # the destination accepts no item over 2 KiB: every import fails
    g2 = harness.ClusterNode(zk, cl, 2, "-I", "2k", session_timeout_ms=SESSION_MS)
    m = harness.wait_for(lambda: (lambda m: m if len(m["waiting"]) >= 1 and
                                  m["failed_attempts"] >= 2 else None)(
        mu.console_json(con, "/v1/migrations")), timeout=20, what="refused copies")
    assert all("max item size" in w["error"] for w in m["waiting"]), m["waiting"]
    assert m["done"] == 0 and mu.console_json(con, "/v1/tables")["c"] == [1] * NB
    # the destination backs off as a whole (console/migrate.h): one job per
    # backoff step probes it, instead of every bucket failing on its own
    # clock, each making its source read-only for a moment
    assert m["dest_backoffs"] >= 2, m
    time.sleep(2.0)
    m2 = mu.console_json(con, "/v1/migrations")
    assert m2["failed_attempts"] - m["failed_attempts"] <= 2, (m, m2)
    assert m2["dests_backing_off"] <= 1
    assert g2.proc.poll() is None
    st, doc = harness.http_json(con.admin_port, "POST", "/v1/rebalance/cancel")
    assert st == 200, doc
    t = mu.wait_converged(con)
    assert t["c"] == [1] * NB
    m = mu.console_json(con, "/v1/migrations")
    assert m["waiting"] == [] and m["held_groups"] == [2], m
    mu.check_reads(con, NB, data)
    mu.check_nothing_held_by_non_owners(con, [g1, g2])
    for p in (g1, g2, con):
        p.stop()


harness.main(globals())
