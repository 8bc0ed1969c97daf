"""Precopy: a bucket copied while it stays writable, then its final copy
(read-only) carries only the keys changed since.  Driven here through the
nodes' migration endpoints directly (the console's migrations are off), so
each case happens exactly when the test says:

  - between two real nodes: sets, deletes, touches and a new key made after
    the precopy arrive in the delta; the destination then holds exactly
    what the source holds, and no second precopy can empty a bucket whose
    copy waits for its cutover;
  - a flush_all at the source ends its change tracker, and one at the
    destination makes its precopy unusable, and a destination restarted
    after its precopy has none: each time the final copy is a full one,
    never a delta on top of a stale base;
  - a precopy whose move is called off is dropped at once (directly, and
    after a cancelled rebalance);
  - a fake source that leaves out the tracker, sends a delta where the
    whole bucket was asked for, or a DEL in a full export: clear errors,
    nothing kept;
  - a large bucket streams whole over many steps, to HTTP/1.0 and 1.1
    readers, and a paused reader does not make the source buffer it;
  - a value over 64 KiB goes in parts to a destination that asks for them
    (whole to one that does not), in a precopy and in a delta;
  - a batch of precopies (buckets=) crosses on one stream, each bucket to
    its own job and tracker, and a batch of final copies at one epoch is
    fenced together and crosses on one stream, deltas and whole buckets
    mixed; malformed batches are refused;
  - a finished precopy is caught up while it waits (catch-ups): the final
    copy carries only the last changes; a catch-up that loses the tracker
    (a flush, a cut or malformed stream) gets the precopy made again, and
    an older source that does not know catch-ups is not asked again;
  - two destinations' precopies of one bucket (a re-planned move) each
    keep their own tracker at the source."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import migration_util as mu  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()


def export_json(port, target):
    """GET an export as another node does: signed with the cluster secret."""
    return harness.http_json(port, "GET", target, headers=harness.peer_signed("GET", target))


def keys_in_bucket(bucket, n, prefix="pk"):
    return mu.keys_in_bucket(bucket, n, NB, prefix)


def fill(conn, bucket, n, prefix, value="v"):
    """Stores n keys of bucket (value each) through conn."""
    for k in keys_in_bucket(bucket, n, prefix):
        assert conn.cmd("set %s 0 0 %d" % (k, len(value)), value) == b"STORED\r\n"


def precopy_path(bucket, source_port):
    return ("/v1/migrate/import?bucket=%d&from=1&source=127.0.0.1%%3A%d&precopy=1"
            % (bucket, source_port))


def final_path(bucket, epoch, source_port):
    return ("/v1/migrate/import?bucket=%d&epoch=%d&from=1&source=127.0.0.1%%3A%d"
            % (bucket, epoch, source_port))


def two_groups(name, catchup_ms=3600000):
    """Group 1 (a) owns every bucket, group 2 (b) none.  b catches its
    finished precopies up every catchup_ms: by default never, so each case
    here decides exactly what its final copy carries."""
    cl = harness.create_cluster(zk, name, buckets=NB)
    con = harness.Console(zk, cl, session_timeout_ms=SESSION_MS)   # migrations off
    a = harness.ClusterNode(zk, cl, 1, "--no-forward", session_timeout_ms=SESSION_MS)
    mu.wait_converged(con, what="group 1 owns everything")
    b = harness.ClusterNode(zk, cl, 2, "--no-forward", "--migrate-catchup-ms", str(catchup_ms),
                            session_timeout_ms=SESSION_MS)
    harness.wait_for(lambda: harness.http_json(b.admin_port, "GET", "/health")[1].get("role")
                     == "primary", what="group 2's primary")
    harness.wait_for(lambda: harness.http_json(a.admin_port, "GET", "/v1/repl")[1]["writable"],
                     what="group 1's primary writable")
    return cl, con, a, b


def test_precopy_then_delta_between_real_nodes():
    cl, con, a, b = two_groups("precopy")
    # the local fence (cluster.h) lets a final copy run at the next epoch
    # without the console: the source makes the bucket read-only itself
    epoch = harness.tables(zk, cl)["epoch"] + 1
    bucket, b2, b3 = 3, 5, 7
    ks = keys_in_bucket(bucket, 5)
    c = a.conn()
    for k in ks[:4]:
        assert c.cmd("set %s 0 0 3" % k, "old") == b"STORED\r\n"

    job = mu.run_job(b, precopy_path(bucket, a.admin_port), "the precopy")
    assert job["state"] == "done" and job["precopy"] and job["items"] == 4, job
    assert mu.bucket_items(b, bucket) == 4
    assert mu.migrate_stats(a)["taps_active"] == 1
    # the bucket is still writable at the source: change it
    assert c.cmd("set %s 0 0 3" % ks[0], "new") == b"STORED\r\n"
    assert c.cmd("delete " + ks[1]) == b"DELETED\r\n"
    assert c.cmd("touch %s 1000" % ks[2]) == b"TOUCHED\r\n"
    assert c.cmd("set %s 0 0 5" % ks[4], "added") == b"STORED\r\n"
    # asking again for the same precopy reports it, it does not copy again
    st, doc = harness.http_json(b.admin_port, "POST", precopy_path(bucket, a.admin_port))
    assert st == 200 and doc["state"] == "done" and doc["items"] == 4, doc

    job = mu.run_job(b, final_path(bucket, epoch, a.admin_port), "the final copy")
    # 4 from the precopy + 4 changes (3 items and a delete)
    assert job["state"] == "done" and job["delta"] is True and job["items"] == 8, job
    assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket) == 4
    sa, sb = mu.migrate_stats(a), mu.migrate_stats(b)
    assert sa["export_deltas"] == 1 and sb["import_deltas"] == 1 and sb["precopies"] == 1, (sa, sb)
    # the source is read-only for that bucket now (fenced for the final copy)
    assert c.cmd("set %s 0 0 1" % ks[0], "x").startswith(b"SERVER_ERROR READONLY")
    # a precopy now would empty a bucket whose copy waits for its cutover
    st, doc = harness.http_json(b.admin_port, "POST", precopy_path(bucket, a.admin_port))
    assert st == 409 and doc["retry"] is False and "cutover" in doc["error"], doc

    # a flush_all at the destination after its precopy: the final copy
    # does not build on it (the source sends everything)
    fill(c, b3, 3, "d3")
    assert mu.run_job(b, precopy_path(b3, a.admin_port), "precopy b3")["state"] == "done"
    assert b.conn().cmd("flush_all") == b"OK\r\n"
    job = mu.run_job(b, final_path(b3, epoch, a.admin_port), "final b3")
    assert job["state"] == "done" and job["delta"] is False and job["items"] == 3, job
    assert mu.bucket_items(b, b3) == 3
    assert mu.migrate_stats(a)["export_deltas"] == 1

    # a flush_all at the source ends its change tracker: the final copy
    # asks for the changes and gets everything, never a delta on a base
    # that no longer matches
    fill(c, b2, 3, "d2")
    assert mu.run_job(b, precopy_path(b2, a.admin_port), "precopy b2")["items"] == 3
    assert c.cmd("flush_all") == b"OK\r\n"
    assert c.cmd("set %s 0 0 5" % keys_in_bucket(b2, 1, "after")[0], "fresh") == b"STORED\r\n"
    job = mu.run_job(b, final_path(b2, epoch, a.admin_port), "final b2")
    assert job["state"] == "done" and job["delta"] is False and job["items"] == 1, job
    assert mu.bucket_items(b, b2) == 1
    sb = mu.migrate_stats(b)
    assert sb["delta_fallbacks"] == 1 and sb["import_deltas"] == 1, sb
    assert "sending all of it" in a.proc.output()
    # bad precopy requests
    for path, needle in [(precopy_path(bucket, a.admin_port) + "&epoch=3", "no epoch"),
                         ("/v1/migrate/import?bucket=1&precopy=2&from=1&source=x:1", "precopy"),
                         ("/v1/migrate/import?bucket=1&precopy=1&source=x:1", "from")]:
        st, doc = harness.http_json(b.admin_port, "POST", path)
        assert st == 400 and needle in doc["error"], (path, st, doc)
    st, doc = export_json(a.admin_port, "/v1/migrate/export?bucket=1&tap=1&epoch=2")
    assert st == 400 and "tap=1" in doc["error"], doc
    st, doc = export_json(b.admin_port, "/v1/migrate/export?bucket=1&tap=1")
    assert st == 409 and "another group" in doc["error"], doc
    st, doc = export_json(a.admin_port, "/v1/migrate/export?bucket=1&epoch=2&since=0")
    assert st == 400 and "since" in doc["error"], doc
    for p in (a, b, con):
        p.stop()


def precopy_job(node, bucket):
    return harness.http_json(node.admin_port, "GET",
                             "/v1/migrate/import?bucket=%d&precopy=1" % bucket)[1]


def test_catchups_keep_a_precopy_current():
    """While a finished precopy waits for its final copy, the destination
    pulls the changes since (catch-ups, migrate/catchup.c) every few tens
    of ms: the final copy, in the write pause, then carries only what
    changed since the last one, however much was written before.  A
    tracker that ends (a flush_all at the source) makes the final copy a
    full one, found by the catch-up before the pause; hostile catch-up
    requests are refused."""
    cl, con, a, b = two_groups("catchup", catchup_ms=30)
    epoch = harness.tables(zk, cl)["epoch"] + 1
    bucket, other = 3, 5
    ks = keys_in_bucket(bucket, 300)
    c = a.conn()
    fill(c, bucket, 200, "pk", "v0")
    job = mu.run_job(b, precopy_path(bucket, a.admin_port), "the precopy")
    assert job["state"] == "done" and job["items"] == 200 and job["tracked"], job

    # writes go on at the source: 150 rewritten (values of new sizes), 20
    # deleted, 80 new; the catch-ups apply them while the bucket stays
    # writable
    for k in ks[:150]:
        assert c.cmd("set %s 0 0 6" % k, "v1-new") == b"STORED\r\n"
    for k in ks[150:170]:
        assert c.cmd("delete " + k) == b"DELETED\r\n"
    for k in ks[200:280]:
        assert c.cmd("set %s 0 0 4" % k, "add1") == b"STORED\r\n"
    harness.wait_for(lambda: precopy_job(b, bucket)["catchup_items"] >= 250,
                     what="the catch-ups to apply the 250 changes")
    pre = precopy_job(b, bucket)
    assert pre["catchups"] >= 1 and pre["tracked"] and pre["state"] == "done", pre
    assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket) == 260
    sa, sb = mu.migrate_stats(a), mu.migrate_stats(b)
    assert sa["export_catchups"] >= 1 and sa["export_deltas"] == 0, sa
    assert sb["catchups"] >= 1 and sb["catchup_items"] >= 250 and sb["catchup_lost"] == 0, sb

    # three more changes, then at once the final copy: it carries at most
    # those (the 250 before crossed in the catch-ups)
    assert c.cmd("set %s 0 0 4" % ks[0], "last") == b"STORED\r\n"
    assert c.cmd("delete " + ks[1]) == b"DELETED\r\n"
    assert c.cmd("set %s 0 0 4" % ks[290], "add2") == b"STORED\r\n"
    job = mu.run_job(b, final_path(bucket, epoch, a.admin_port), "the final copy")
    assert job["state"] == "done" and job["delta"] is True, job
    pre = precopy_job(b, bucket)
    final_changes = job["items"] - pre["items"] - pre["catchup_items"]
    assert 0 <= final_changes <= 3, (job, pre)
    assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket) == 260
    assert mu.migrate_stats(a)["export_deltas"] == 1
    assert c.cmd("set %s 0 0 1" % ks[0], "x").startswith(b"SERVER_ERROR READONLY")

    # a flush_all at the source ends the tracker: the next catch-up finds
    # it gone, before the pause, and makes the precopy again while the
    # bucket stays writable, so the final copy is still a delta
    fill(c, other, 5, "o")
    assert mu.run_job(b, precopy_path(other, a.admin_port), "precopy 5")["items"] == 5
    assert c.cmd("flush_all") == b"OK\r\n"
    fresh = keys_in_bucket(other, 1, "after")[0]
    assert c.cmd("set %s 0 0 5" % fresh, "fresh") == b"STORED\r\n"
    harness.wait_for(lambda: (lambda j: j["refreshes"] == 1 and j["state"] == "done" and
                              j["tracked"])(precopy_job(b, other)),
                     what="the precopy made again")
    sb = mu.migrate_stats(b)
    assert sb["catchup_lost"] == 1 and sb["precopy_refreshes"] == 1, sb
    assert "made again while it stays writable" in b.proc.output()
    job = mu.run_job(b, final_path(other, epoch, a.admin_port), "final 5")
    assert job["state"] == "done" and job["delta"] is True, job
    assert mu.migrate_stats(b)["delta_fallbacks"] == 0
    assert mu.bucket_items(b, other) == 1   # (a counts its flushed items until reclaimed)

    # hostile or malformed catch-ups
    for target, st_want, needle in [
            ("/v1/migrate/export?buckets=7&catchup=1", 400, "catchup"),
            ("/v1/migrate/export?buckets=7:5&catchup=1&epoch=3", 400, "catchup"),
            ("/v1/migrate/export?buckets=7:5&catchup=2", 400, "catchup"),
            ("/v1/migrate/export?bucket=7&catchup=1", 400, "catchup"),
            ("/v1/migrate/export?buckets=7:5&catchup=1&tap=1", 400, "B:T")]:
        st, doc = export_json(a.admin_port, target)
        assert st == st_want and needle in doc["error"], (target, st, doc)
    st, doc = export_json(b.admin_port, "/v1/migrate/export?buckets=7:5&catchup=1")
    assert st == 409 and "another group" in doc["error"], doc
    for p in (a, b, con):
        p.stop()


def test_two_destinations_keep_their_own_trackers():
    """A move re-planned to another group leaves two precopies of one
    bucket for a while, until the console calls the first off: the source
    keeps a tracker for each (engine/tap.h), so both destinations' catch-
    ups go on and neither has to make its precopy again."""
    cl, con, a, b = two_groups("twodest", catchup_ms=30)
    c3 = harness.ClusterNode(zk, cl, 3, "--no-forward", "--migrate-catchup-ms", "30",
                             session_timeout_ms=SESSION_MS)
    harness.wait_for(lambda: harness.http_json(c3.admin_port, "GET", "/health")[1].get("role")
                     == "primary", what="group 3's primary")
    bucket = 6
    ks = keys_in_bucket(bucket, 60, "td")
    conn = a.conn()
    fill(conn, bucket, 50, "td", "v0")
    for node, name in ((b, "b"), (c3, "c")):
        job = mu.run_job(node, precopy_path(bucket, a.admin_port), name + "'s precopy")
        assert job["state"] == "done" and job["items"] == 50 and job["tracked"], job
    for k in ks[:40]:
        assert conn.cmd("set %s 0 0 2" % k, "v1") == b"STORED\r\n"
    for k in ks[50:60]:
        assert conn.cmd("set %s 0 0 3" % k, "new") == b"STORED\r\n"
    for node in (b, c3):
        harness.wait_for(lambda: precopy_job(node, bucket)["catchup_items"] >= 50,
                         what="both destinations' catch-ups to apply the 50 changes")
    for node in (b, c3):
        pre, st = precopy_job(node, bucket), mu.migrate_stats(node)
        assert pre["tracked"] and pre["refreshes"] == 0, pre
        assert st["catchup_lost"] == 0 and st["precopy_refreshes"] == 0, st
        assert mu.bucket_items(node, bucket) == 60
    # a third precopy of the bucket ends the least recently used tracker:
    # b's or c's, whose next catch-up then finds it gone and remakes it
    target = "/v1/migrate/export?bucket=%d&tap=1" % bucket
    st, _, body = harness.http(a.admin_port, "GET", target,
                               headers=harness.peer_signed("GET", target))
    assert st == 200 and body, (st, body[:200])
    harness.wait_for(lambda: mu.migrate_stats(b)["precopy_refreshes"] +
                     mu.migrate_stats(c3)["precopy_refreshes"] >= 1,
                     what="one destination's precopy made again")
    for p in (a, b, c3, con):
        p.stop()


def export_http10(port, bucket, rcvbuf=None):
    """Opens GET export?bucket=B&tap=1 as the destination does (HTTP/1.0:
    the body ends where the connection closes); returns the socket and
    what arrived after the headers so far."""
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.settimeout(10 * harness.SLOW)
    target = "/v1/migrate/export?bucket=%d&tap=1" % bucket
    s.sendall(("GET %s HTTP/1.0\r\nX-Bucketcache-Peer: %s\r\n\r\n" % (
        target, harness.peer_signed("GET", target)["X-Bucketcache-Peer"])).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"), head
    assert b"chunked" not in head.lower() and b"x-bucketcache-tap" in head.lower(), head
    return s, rest


def check_export(frames, values):
    """frames hold exactly the items of values (key -> str), once each."""
    assert frames[0][0] == "HELLO" and frames[-1][0] == "END", (frames[0], frames[-1])
    items = frames[1:-1]
    assert all(f[0] == "ITEM" for f in items)
    assert frames[-1][1] == len(items) == len(values), (frames[-1], len(items), len(values))
    got = {f[1].decode(): f[2].decode() for f in items}
    assert got == values


def test_streamed_export_of_a_large_bucket():
    """A bucket of many export steps (about 64 KiB of frames each) streams
    whole -- unframed to an HTTP/1.0 reader, chunked to an HTTP/1.1 one --
    and a reader that stops reading holds back the stream instead of the
    source buffering the bucket: its memory does not grow by the bucket,
    and writes to the bucket go on meanwhile.  A precopy of it under
    writes plus the delta leave the destination with the source's items."""
    cl, con, a, b = two_groups("stream")
    bucket = 9
    values = mu.load(a, keys_in_bucket(bucket, 4000, "big"), 4000)    # about 16 MiB

    s, body = export_http10(a.admin_port, bucket)
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    s.close()
    assert len(body) > 15 << 20, len(body)
    check_export(mu.read_frames(body, crc=False), values)
    target = "/v1/migrate/export?bucket=%d&tap=1" % bucket
    st, hdrs, body = harness.http(a.admin_port, "GET", target,
                                  headers=harness.peer_signed("GET", target))
    assert st == 200 and hdrs.get("transfer-encoding") == "chunked", hdrs
    check_export(mu.read_frames(body, crc=False), values)

    # a reader that stops: the source holds what the socket buffers take
    # plus a step, not the bucket
    rss0 = harness.rss_kib(a.proc.pid)
    s, _ = export_http10(a.admin_port, bucket, rcvbuf=65536)
    time.sleep(0.5 * harness.SLOW)
    c = a.conn()
    t0 = time.time()
    for k in keys_in_bucket(bucket, 50, "during"):
        assert c.cmd("set %s 0 0 3" % k, "new") == b"STORED\r\n"
    assert time.time() - t0 < 2 * harness.SLOW
    grown = harness.rss_kib(a.proc.pid) - rss0
    assert grown < 8 * 1024, "the source grew by %d KiB for a paused export" % grown
    s.close()                                        # broken off: the node stays up
    harness.wait_for(lambda: "(broken off)" in a.proc.output(), what="the export broken off")

    # precopy while a writer changes the bucket, then the delta
    stop = threading.Event()
    changes = keys_in_bucket(bucket, 4000, "big")

    def writer():
        w = a.conn()
        i = 0
        while not stop.is_set():
            k = changes[(i * 7) % len(changes)]
            if i % 3 == 0:
                w.cmd("delete " + k)
            else:
                r = w.cmd("set %s 0 0 4" % k, "%04d" % (i % 10000))
                assert r == b"STORED\r\n", r
            i += 1
    th = threading.Thread(target=writer)
    th.start()
    try:
        job = mu.run_job(b, precopy_path(bucket, a.admin_port), "the precopy")
    finally:
        stop.set()
        th.join()
    assert job["state"] == "done" and job["items"] > 3000, job
    # without -L the destination faulted memory in ahead of the import, on
    # a thread of its own; charged, within the limit
    stats = mu.admin_stats(b)
    cache = stats["cache"]
    assert cache["segments"]["prefaulted"] > 0, cache["segments"]
    # ... and counted what it faulted and the CPU it took (the fresh-memory
    # rate the migration benchmark reports)
    mig = stats["cluster"]["migrate"]
    assert mig["prefault_bytes"] >= cache["segments"]["prefaulted"] * 4096, (mig, cache)
    assert mig["prefault_cpu_us"] > 0, mig
    assert cache["mem_used"] <= cache["mem_limit"], cache
    epoch = harness.tables(zk, cl)["epoch"] + 1
    job = mu.run_job(b, final_path(bucket, epoch, a.admin_port), "the final copy")
    assert job["state"] == "done" and job["delta"] is True, job
    assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket)
    for p in (a, b, con):
        p.stop()


def items_of_export(frames):
    """key -> (value, how it came: "ITEM" or "PARTS") of an export's frames,
    an item in parts put together; checks the parts add up."""
    out, head, parts = {}, None, []
    for f in frames[1:-1]:
        if f[0] == "PART":
            assert head is not None, "a PART without its HEAD"
            parts.append(f[1])
            if sum(map(len, parts)) == head[2]:
                out[head[1].decode()] = (b"".join(parts).decode(), "PARTS")
                head, parts = None, []
            continue
        assert head is None, "frame %s inside an item's parts" % f[0]
        if f[0] == "HEAD":
            head = f
        else:
            assert f[0] == "ITEM", f[0]
            out[f[1].decode()] = (f[2].decode(), "ITEM")
    assert head is None and frames[-1][0] == "END" and frames[-1][1] == len(out)
    return out


def test_large_values_cross_in_parts():
    """A value over 64 KiB is exported in parts (HEAD, PARTs of at most 64
    KiB) to a destination that says it reads them, and whole to one that
    does not (an older node); a precopy and its delta carry them between
    real nodes, and the destination holds the source's bytes."""
    cl, con, a, b = two_groups("parts")
    bucket = 11
    ks = keys_in_bucket(bucket, 5, "lv")
    sizes = [1000, 65536, 65537, 300000, 900000]
    values = {k: ("%s:" % k + "0123456789abcdef" * (n // 16 + 1))[:n] for k, n in zip(ks, sizes)}
    c = a.conn()
    for k, v in values.items():
        assert c.cmd("set %s 0 0 %d" % (k, len(v)), v) == b"STORED\r\n", k

    target = "/v1/migrate/export?bucket=%d&tap=1" % bucket
    for parts in (False, True):
        headers = harness.peer_signed("GET", target)
        if parts:
            headers["X-Bucketcache-Parts"] = "1"
        st, _, body = harness.http(a.admin_port, "GET", target, headers=headers)
        assert st == 200, st
        frames = mu.read_frames(body)
        got = items_of_export(frames)
        assert {k: v for k, (v, _) in got.items()} == values
        how = {k: h for k, (_, h) in got.items()}
        want = {k: "PARTS" if parts and len(v) > 65536 else "ITEM" for k, v in values.items()}
        assert how == want, how
        assert all(len(f[1]) <= 65536 for f in frames if f[0] == "PART")
    assert mu.migrate_stats(a)["export_parted"] == 3

    epoch = harness.tables(zk, cl)["epoch"] + 1
    job = mu.run_job(b, precopy_path(bucket, a.admin_port), "the precopy")
    assert job["state"] == "done" and job["items"] == 5, job
    precopied = sum(len(k) + len(v) for k, v in values.items())
    assert job["bytes"] == precopied, job
    assert mu.migrate_stats(b)["import_parted"] == 3
    # changed while writable: a large value replaced, a large one added
    ks2 = keys_in_bucket(bucket, 6, "lv")
    values[ks[4]] = "x" * 700000
    values[ks2[5]] = "y" * 500000
    for k in (ks[4], ks2[5]):
        assert c.cmd("set %s 0 0 %d" % (k, len(values[k])), values[k]) == b"STORED\r\n"
    job = mu.run_job(b, final_path(bucket, epoch, a.admin_port), "the final copy")
    assert job["state"] == "done" and job["delta"] is True, job
    # a copy over a precopy reports the key and value bytes of both
    changed = sum(len(k) + len(values[k]) for k in (ks[4], ks2[5]))
    assert job["bytes"] == precopied + changed, job
    assert mu.migrate_stats(a)["export_parted"] == 3 + 3 + 2
    assert mu.migrate_stats(b)["import_parted"] == 3 + 2
    assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket) == 6
    assert a.proc.poll() is None and b.proc.poll() is None
    for p in (a, b, con):
        p.stop()


def test_called_off_precopy_is_dropped():
    """A precopy whose move is called off is dropped by its destination at
    once: directly (DELETE ...&precopy=1), and when a cancelled rebalance
    leaves precopied buckets behind (the console tells the destination)."""
    cl, con, a, b = two_groups("precopycancel")
    epoch = harness.tables(zk, cl)["epoch"] + 1
    bucket = 9
    c = a.conn()
    fill(c, bucket, 3, "x")
    assert mu.run_job(b, precopy_path(bucket, a.admin_port), "precopy")["items"] == 3
    assert mu.bucket_items(b, bucket) == 3
    st, doc = harness.http_json(b.admin_port, "DELETE",
                                "/v1/migrate/import?bucket=%d&precopy=1" % bucket)
    assert st == 200 and doc["state"] == "failed" and doc["precopy"], (st, doc)
    assert mu.bucket_items(b, bucket) == 0
    # the copy then cannot build on it: a full one
    job = mu.run_job(b, final_path(bucket, epoch, a.admin_port), "the copy")
    assert job["delta"] is False and job["items"] == 3, job
    # once a copy took over, the precopy's DELETE leaves its bucket alone
    st, doc = harness.http_json(b.admin_port, "DELETE",
                                "/v1/migrate/import?bucket=%d&precopy=1" % bucket)
    assert st == 409 and "took over" in doc["error"], (st, doc)
    assert mu.bucket_items(b, bucket) == 3
    for p in (a, b, con):
        p.stop()

    # through the console: one slow copy at a time, two buckets precopied
    # ahead of it; the rebalance is cancelled while they wait
    cl = harness.create_cluster(zk, "precopycancel2", buckets=NB)
    con = harness.Console(zk, cl, "--migrations-parallel", "1", migrations=True,
                          session_timeout_ms=SESSION_MS)
    g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=SESSION_MS)
    mu.wait_converged(con, what="group 1 owns everything")
    mu.load(g1, ["k%d" % i for i in range(400)], 100)
    g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=SESSION_MS,
                             env={"BC_TEST_IMPORT_DELAY_MS": "3000"})
    harness.wait_for(lambda: mu.console_json(con, "/v1/migrations")["precopied"] >= 2,
                     what="buckets precopied ahead of the copy")
    held = mu.held_buckets(g2)
    assert len(held) >= 2, held
    st, doc = harness.http_json(con.admin_port, "POST", "/v1/rebalance/cancel")
    assert st == 200, doc
    t = mu.wait_converged(con, what="the cancelled rebalance to settle")
    # well before a precopy would age out (30 s), group 2 holds only what it owns
    harness.wait_for(lambda: all(t["c"][b] == 2 for b in mu.held_buckets(g2)),
                     timeout=8, what="the called-off precopies dropped")
    mu.check_nothing_held_by_non_owners(con, [g1, g2])
    for p in (g1, g2, con):
        p.stop()


def test_destination_restarted_between_precopy_and_copy():
    """A destination that dies after its precopy comes back without it: the
    read-only copy is a full one, never a delta on nothing."""
    cl, con, a, b = two_groups("precopyrestart")
    epoch = harness.tables(zk, cl)["epoch"] + 1
    bucket = 6
    c = a.conn()
    fill(c, bucket, 4, "r", "v1")
    assert mu.run_job(b, precopy_path(bucket, a.admin_port), "precopy")["items"] == 4
    assert c.cmd("set %s 0 0 2" % keys_in_bucket(bucket, 1, "r")[0], "v2") == b"STORED\r\n"
    b.proc.kill()
    b2 = harness.ClusterNode(zk, cl, 2, "--no-forward", session_timeout_ms=SESSION_MS,
                             port=b.port, admin_port=b.admin_port)
    harness.wait_for(lambda: harness.http_json(b2.admin_port, "GET", "/health")[1].get("role")
                     == "primary", what="group 2's primary back")
    # the tables moved on while group 2 was away: fence at the next epoch
    epoch = max(epoch, harness.tables(zk, cl)["epoch"] + 1)
    job = mu.run_job(b2, final_path(bucket, epoch, a.admin_port), "the copy after the restart")
    assert job["state"] == "done" and job["delta"] is False and job["items"] == 4, job
    assert mu.bucket_items(b2, bucket) == mu.bucket_items(a, bucket) == 4
    assert mu.migrate_stats(a)["export_deltas"] == 0
    for p in (a, b2, con):
        p.stop()


def test_batch_of_precopies_between_real_nodes():
    """buckets=: the precopies of one source in one request, one stream."""
    cl, con, a, b = two_groups("precopybatch")
    c = a.conn()
    batch = [5, 2, 9, 11]
    for i, bucket in enumerate(batch):
        fill(c, bucket, 20 + 10 * i, "bt%d-" % bucket, value="v%d" % bucket)
    path = ("/v1/migrate/import?buckets=%s&from=1&source=127.0.0.1%%3A%d&precopy=1"
            % (",".join(str(x) for x in batch), a.admin_port))
    st, doc = harness.http_json(b.admin_port, "POST", path)
    assert st == 200 and [j["bucket"] for j in doc["jobs"]] == batch, (st, doc)
    assert all(j["status"] in (200, 202) and j["precopy"] for j in doc["jobs"]), doc
    for i, bucket in enumerate(batch):
        poll = "/v1/migrate/import?bucket=%d&precopy=1&wait_ms=5000" % bucket
        job = harness.wait_for(lambda: (lambda d: d if d["state"] != "running" else None)(
            harness.http_json(b.admin_port, "GET", poll, timeout=10)[1]), what="batch job")
        assert job["state"] == "done" and job["items"] == 20 + 10 * i, job
        assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket) == 20 + 10 * i
    # one export served them all, one tracker per bucket
    mig = mu.admin_stats(a)["cluster"]["migrate"]
    assert mig["exports"] == 4 and mig["taps_active"] == 4, mig
    assert a.proc.output().count("exporting 4 buckets (precopies, one stream") == 1

    # the same batch again: found, not started again
    st, doc = harness.http_json(b.admin_port, "POST", path)
    assert st == 200 and all(j["status"] == 200 for j in doc["jobs"]), doc
    # a final copy builds on its bucket's precopy of the batch: only the
    # change made since crosses (the local fence makes it read-only)
    k = keys_in_bucket(9, 1, "bt9-")[0]
    assert c.cmd("set %s 0 0 5" % k, "newer") == b"STORED\r\n"
    epoch = harness.tables(zk, cl)["epoch"] + 1
    job = mu.run_job(b, final_path(9, epoch, a.admin_port), "final copy of a batch's bucket")
    assert job["state"] == "done" and job["delta"] is True and job["items"] == 40 + 1, job
    assert mu.bucket_items(b, 9) == 40

    # a bucket the destination cannot take now (its copy waits for its
    # cutover) is refused in its entry alone; the others are found
    st, doc = harness.http_json(b.admin_port, "POST", path)
    assert st == 200 and [j["status"] for j in doc["jobs"]] == [200, 200, 409, 200], doc
    assert doc["jobs"][2]["retry"] is False and "cutover" in doc["jobs"][2]["error"], doc
    # malformed lists are refused whole, as is a DELETE of a batch
    for bad in ("buckets=1,1", "buckets=1,,2", "buckets=", "buckets=99",
                "buckets=" + ",".join(str(x) for x in range(65)), "buckets=1&bucket=2"):
        st, doc = harness.http_json(b.admin_port, "POST", "/v1/migrate/import?%s&from=1&source="
                                    "127.0.0.1%%3A%d&precopy=1" % (bad, a.admin_port))
        assert st == 400 and "error" in doc, (bad, st, doc)
    st, doc = harness.http_json(b.admin_port, "DELETE", "/v1/migrate/import?buckets=5,2&"
                                "precopy=1")
    assert st == 400 and "DELETE" in doc["error"], (st, doc)
    # a GET of a batch: each job's state, in the order asked
    st, doc = harness.http_json(b.admin_port, "GET", "/v1/migrate/import?buckets=5,2&precopy=1")
    assert st == 200 and [(j["bucket"], j["state"], j["precopy"]) for j in doc["jobs"]] == \
        [(5, "done", True), (2, "done", True)], (st, doc)
    # a batch is of precopies or of copies at an epoch; B:T only for exports
    st, doc = harness.http_json(b.admin_port, "POST", "/v1/migrate/import?buckets=5,2&from=1&"
                                "source=127.0.0.1%%3A%d" % a.admin_port)
    assert st == 400 and "precopies" in doc["error"], (st, doc)
    st, doc = harness.http_json(b.admin_port, "POST", "/v1/migrate/import?buckets=5:7,2&"
                                "epoch=9&from=1&source=127.0.0.1%%3A%d" % a.admin_port)
    assert st == 400 and "export" in doc["error"], (st, doc)
    assert a.proc.poll() is None and b.proc.poll() is None
    for p in (a, b, con):
        p.stop()


def test_batch_of_copies_between_real_nodes():
    """buckets=&epoch=: the final copies of one source at one epoch on one
    stream, fenced together; each a delta over its precopy, or whole."""
    cl, con, a, b = two_groups("copybatch")
    c = a.conn()
    batch = [4, 6, 8]
    for bucket in batch:
        fill(c, bucket, 30, "cb%d-" % bucket)
    pre = ("/v1/migrate/import?buckets=4,6&from=1&source=127.0.0.1%%3A%d&precopy=1"
           % a.admin_port)
    st, doc = harness.http_json(b.admin_port, "POST", pre)
    assert st == 200, (st, doc)
    # the batch's states in one long poll, answered when one finishes
    poll = "/v1/migrate/import?buckets=4,6&precopy=1&wait_ms=5000"
    harness.wait_for(lambda: [j["state"] for j in harness.http_json(
        b.admin_port, "GET", poll, timeout=10)[1]["jobs"]] == ["done", "done"],
        what="precopies 4 and 6")
    # changed while writable: a set in 4, a delete in 6, a new key in 8
    k4, k6 = keys_in_bucket(4, 1, "cb4-")[0], keys_in_bucket(6, 1, "cb6-")[0]
    assert c.cmd("set %s 0 0 5" % k4, "later") == b"STORED\r\n"
    assert c.cmd("delete " + k6) == b"DELETED\r\n"
    fill(c, 8, 1, "late8-")
    # the local fence lets the batch run at the next epoch without the console
    epoch = harness.tables(zk, cl)["epoch"] + 1
    path = ("/v1/migrate/import?buckets=4,6,8&epoch=%d&from=1&source=127.0.0.1%%3A%d"
            % (epoch, a.admin_port))
    st, doc = harness.http_json(b.admin_port, "POST", path)
    assert st == 200 and [j["status"] for j in doc["jobs"]] == [202, 202, 202], doc
    # the batch in one long poll (a batch of copies finishes together)
    poll = "/v1/migrate/import?buckets=4,6,8&epoch=%d&wait_ms=5000" % epoch
    harness.wait_for(lambda: all(j["state"] != "running" for j in harness.http_json(
        b.admin_port, "GET", poll, timeout=10)[1]["jobs"]), what="copies 4, 6 and 8")
    # a bucket with no job here answers "none" (alone, a 404), and no wait
    st, doc = harness.http_json(b.admin_port, "GET", poll.replace("4,6,8", "4,6,8,9"))
    assert st == 200 and [j["bucket"] for j in doc["jobs"]] == [4, 6, 8, 9], (st, doc)
    assert [j["state"] for j in doc["jobs"]] == ["done", "done", "done", "none"], doc
    assert "no import of bucket 9" in doc["jobs"][3]["error"], doc
    jobs = {j["bucket"]: j for j in doc["jobs"][:3]}
    for bucket in batch:
        single = "/v1/migrate/import?bucket=%d&epoch=%d" % (bucket, epoch)
        assert harness.http_json(b.admin_port, "GET", single)[1] == jobs[bucket], bucket
    for bad in ("buckets=4:7,6&epoch=%d" % epoch, "buckets=4,6", "buckets=4,4&epoch=1"):
        st, doc = harness.http_json(b.admin_port, "GET", "/v1/migrate/import?" + bad)
        assert st == 400 and "buckets" in doc["error"], (bad, st, doc)
    assert jobs[4]["delta"] is True and jobs[6]["delta"] is True, jobs
    assert jobs[8]["delta"] is False and jobs[8]["items"] == 31, jobs
    for bucket in batch:
        assert mu.bucket_items(b, bucket) == mu.bucket_items(a, bucket), bucket
    assert mu.bucket_items(b, 6) == 29
    out = a.proc.output()
    assert out.count("exporting 3 buckets (copies, one stream") == 1, out[-3000:]
    assert mu.migrate_stats(a)["export_deltas"] == 2 and mu.migrate_stats(b)["import_deltas"] == 2
    # all three fenced at the source: writes refused (held, then READONLY)
    for bucket in batch:
        k = keys_in_bucket(bucket, 1, "w")[0]
        assert c.cmd("set %s 0 0 1" % k, "x").startswith(b"SERVER_ERROR READONLY"), bucket
    # the same batch again is found, not run again
    st, doc = harness.http_json(b.admin_port, "POST", path)
    assert st == 200 and [j["status"] for j in doc["jobs"]] == [200, 200, 200], doc
    assert a.proc.poll() is None and b.proc.poll() is None
    for p in (a, b, con):
        p.stop()


def test_hostile_precopy_sources():
    cl, con, a, b = two_groups("precopyfake")
    src = mu.FakeSource()
    bucket = 3
    ks = keys_in_bucket(bucket, 3, "f")
    items = [mu.item(k.encode(), b"value") for k in ks]
    nbytes = sum(len(k) + 5 for k in ks)
    full = mu.hello(bucket, 0, NB) + b"".join(items) + mu.end(3, nbytes)
    tap = {"X-Bucketcache-Tap": "123456789"}

    # a precopy without a change tracker cannot be built on
    src.replies.append((full, None))
    job = mu.run_job(b, precopy_path(bucket, src.port), "precopy without tracker")
    assert job["state"] == "failed" and "no change tracker" in job["error"], job
    assert mu.bucket_items(b, bucket) == 0
    assert "tap=1" in src.paths[-1], src.paths

    # a good precopy, then a delta: k0 replaced, k1 deleted, k2 kept
    src.replies.append((full, None, 0, tap))
    assert mu.run_job(b, precopy_path(bucket, src.port), "precopy")["state"] == "done"
    assert mu.bucket_items(b, bucket) == 3
    epoch = 50
    delta = (mu.hello(bucket, epoch, NB, delta=1) + mu.item(ks[0].encode(), b"newer") +
             mu.delete(ks[1].encode()) + mu.end(2, len(ks[0]) + 5 + len(ks[1])))
    src.replies.append((delta, None))
    job = mu.run_job(b, final_path(bucket, epoch, src.port), "delta")
    assert job["state"] == "done" and job["delta"] is True, job
    assert src.paths[-1].endswith("&since=123456789"), src.paths
    assert mu.bucket_items(b, bucket) == 2

    # the precopy is used up: the next attempt asks for everything, and a
    # delta in answer is refused (it would build on nothing)
    src.replies.append((mu.hello(bucket, epoch + 1, NB, delta=1) + mu.end(0, 0), None))
    job = mu.run_job(b, final_path(bucket, epoch + 1, src.port), "unasked delta")
    assert "since" not in src.paths[-1], src.paths
    assert job["state"] == "failed" and "whole bucket was asked for" in job["error"], job
    assert mu.bucket_items(b, bucket) == 0

    # a DEL in a full export
    src.replies.append((mu.hello(bucket, epoch + 2, NB) + mu.delete(ks[0].encode()) +
                        mu.end(1, len(ks[0])), None))
    job = mu.run_job(b, final_path(bucket, epoch + 2, src.port), "DEL in a full export")
    assert job["state"] == "failed" and "full export" in job["error"], job
    assert b.proc.poll() is None and a.proc.poll() is None
    src.stop()
    for p in (a, b, con):
        p.stop()


def test_hostile_catchup_sources():
    """Catch-ups from a source that breaks them -- a stream cut off, items
    after it said the tracker was gone -- leave the precopy no longer the
    base of a delta (the keys taken are known nowhere else): its final copy
    asks for the whole bucket, and the node stays up.  A source that does
    not know catch-ups (400: an older node) is not asked again, and its
    precopy stays usable."""
    cl, con, a, b = two_groups("catchupfake", catchup_ms=20)
    src = mu.FakeSource()
    tap = {"X-Bucketcache-Tap": "123456789"}

    def precopy_reply(bucket, keys):
        items = [mu.item(k.encode(), b"value") for k in keys]
        return (mu.hello(bucket, 0, NB) + b"".join(items) +
                mu.end(len(keys), sum(len(k) + 5 for k in keys)), None, 0, tap)

    def empty_catchup(path):
        """A catch-up with nothing changed, for every bucket asked."""
        listed = path.split("buckets=")[1].split("&")[0].split(",")
        body = b"".join(mu.hello(int(e.split(":")[0]), 0, NB, delta=1) + mu.end(0, 0)
                        for e in listed)
        return (body, None)

    # a good catch-up, then one cut off before its END: the keys it took
    # are lost, so the precopy is made again (a new tracker); the final
    # copy is then a delta over the remade precopy
    ks = keys_in_bucket(3, 3, "f")
    good = (mu.hello(3, 0, NB, delta=1) + mu.item(ks[0].encode(), b"caught") +
            mu.end(1, len(ks[0]) + 6))
    cut = mu.hello(3, 0, NB, delta=1) + mu.item(ks[1].encode(), b"x")
    src.catchup_replies += [(good, None), (cut, None)]
    src.catchup_default = empty_catchup
    src.replies += [precopy_reply(3, ks), precopy_reply(3, ks)]
    first = mu.run_job(b, precopy_path(3, src.port), "precopy 3")
    assert first["state"] == "done", first
    harness.wait_for(lambda: precopy_job(b, 3)["refreshes"] == 1, what="the remade precopy")
    assert src.paths[1].endswith("?buckets=3:123456789&catchup=1"), src.paths
    assert src.paths[3].endswith("?bucket=3&tap=1"), src.paths
    sb = mu.migrate_stats(b)
    assert sb["catchup_lost"] == 1 and sb["precopy_refreshes"] == 1, sb
    harness.wait_for(lambda: precopy_job(b, 3)["state"] == "done", what="remade precopy 3")
    assert precopy_job(b, 3)["tracked"]
    src.replies.append((mu.hello(3, 50, NB, delta=1) + mu.end(0, 0), None))
    job = mu.run_job(b, final_path(3, 50, src.port), "final 3")
    assert src.paths[-1].endswith("&since=123456789"), src.paths
    assert job["state"] == "done" and job["delta"] is True, job
    assert mu.bucket_items(b, 3) == 3

    # items after a HELLO that says the tracker is gone
    ks = keys_in_bucket(5, 2, "g")
    bad = (mu.hello(5, 0, NB) + mu.item(ks[0].encode(), b"sneaked") +
           mu.end(1, len(ks[0]) + 7))
    src.catchup_replies.append((bad, None))
    src.replies += [precopy_reply(5, ks), precopy_reply(5, ks)]
    assert mu.run_job(b, precopy_path(5, src.port), "precopy 5")["state"] == "done"
    harness.wait_for(lambda: precopy_job(b, 5)["refreshes"] == 1, what="the bad catch-up")
    assert mu.migrate_stats(b)["catchup_lost"] == 2
    assert "said was gone" in b.proc.output()
    harness.wait_for(lambda: precopy_job(b, 5)["state"] == "done", what="remade precopy 5")

    # an older source: 400 to the catch-up, then never asked again
    ks = keys_in_bucket(7, 2, "h")
    src.catchup_replies.append(
        (b'{"error":"unknown query parameter \\"catchup\\""}', None, 0, {}, 400))
    src.catchup_default = None
    src.replies.append(precopy_reply(7, ks))
    assert mu.run_job(b, precopy_path(7, src.port), "precopy 7")["state"] == "done"
    harness.wait_for(lambda: "does not take catch-ups" in b.proc.output(),
                     what="the older source noted")
    asked = len(src.paths)
    time.sleep(0.2)
    assert len(src.paths) == asked, src.paths[asked:]
    pre = precopy_job(b, 7)
    assert pre["tracked"] and pre["catchups"] == 0, pre
    src.replies.append((mu.hello(7, 51, NB, delta=1) + mu.end(0, 0), None))
    job = mu.run_job(b, final_path(7, 51, src.port), "final 7")
    assert src.paths[-1].endswith("&since=123456789"), src.paths
    assert job["state"] == "done" and job["delta"] is True, job
    assert b.proc.poll() is None

    # a final copy that comes while a catch-up is in flight waits for it,
    # and counts what it brought: its items are the precopy's, every
    # catch-up's and its own delta's (a source of its own: this one is
    # not asked for catch-ups any more)
    src.stop()
    src = mu.FakeSource()
    ks = keys_in_bucket(9, 3, "w")
    slow = (mu.hello(9, 0, NB, delta=1) + mu.item(ks[0].encode(), b"late") +
            mu.end(1, len(ks[0]) + 4))
    # late, but well inside the node's 1 s for a catch-up (not scaled by
    # SLOW: the fake's wait is not the node's speed).  Should the final
    # copy still come after the catch-up, its count is the same.
    src.catchup_replies.append((slow, None, 0.5))
    src.catchup_default = empty_catchup
    src.replies.append(precopy_reply(9, ks))
    assert mu.run_job(b, precopy_path(9, src.port), "precopy 9")["state"] == "done"
    harness.wait_for(lambda: any(x.endswith("?buckets=9:123456789&catchup=1") for x in src.paths),
                     what="the slow catch-up asked for")
    src.replies.append((mu.hello(9, 52, NB, delta=1) + mu.end(0, 0), None))
    job = mu.run_job(b, final_path(9, 52, src.port), "final 9")
    pre = precopy_job(b, 9)
    assert pre["catchup_items"] == 1, pre
    assert job["state"] == "done" and job["delta"] is True and job["items"] == 4, (job, pre)
    src.stop()
    for p in (a, b, con):
        p.stop()


harness.main(globals())
