"""memcached's meaning kept in a cluster (issue 15), with a real ZooKeeper,
a console and three groups (group 1 with a backup), through a node that
owns only some of the keys:

  - pipelined requests, local and forwarded, noreply and large values
    mixed in, are answered in request order, and a forwarded request that
    times out in the middle of a pipeline answers its error in its place;
  - a client that pipelines forwarded requests without reading holds
    bounded memory;
  - flush_all through any node flushes every group (at once, delayed,
    noreply), and says so when a group could not be reached;
  - with one group down, a multi-get (raw protocol, and pymemcache's
    get_many) returns the values the other groups hold and reads the lost
    group's keys as misses, counted; a one-key get of them is a miss;
  - libbucketcache's multi-get returns the rest with one group frozen or
    down."""
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import pymemcache  # noqa: F401
except ImportError:
    # Debian's python3-pymemcache lives in the system interpreter's
    # directory; another python3 first in PATH does not look there.
    sys.path.append("/usr/lib/python3/dist-packages")
from pymemcache.client.base import Client as PyClient  # noqa: E402

NB = 32
TIMEOUT_MS = 1000
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "sem", buckets=NB)
# All groups register before the console's first rebalance, so each owns a
# share of the (still empty) buckets.  Long sessions: a node frozen by a
# test must not be declared dead.
NODES = {g: harness.ClusterNode(zk, CL, g, "--forward-timeout-ms", str(TIMEOUT_MS),
                                session_timeout_ms=10000) for g in (1, 2, 3)}
G1, G2, G3 = NODES[1], NODES[2], NODES[3]
CONSOLE = harness.Console(zk, CL)
TABLES = harness.wait_for(lambda: (lambda t: t if 0 not in t["c"] and set(t["c"]) == {1, 2, 3}
                                   else None)(harness.tables(zk, CL)),
                          what="every group owns buckets")
C = TABLES["c"]


def group_doc(gid):
    for g in harness.http_json(CONSOLE.admin_port, "GET", "/v1/cluster")[1]["groups"]:
        if g["gid"] == gid:
            return g
    return None


G1B = harness.ClusterNode(zk, CL, 1, "--forward-timeout-ms", str(TIMEOUT_MS),
                          session_timeout_ms=10000)
harness.wait_for(lambda: (lambda g: g and len(g["nodes"]) == 2 and
                          g["primary_addr"] == "127.0.0.1:%d" % G1.port)(group_doc(1)),
                 what="group 1 has a primary and a backup")


def keys_of(gid, prefix, n):
    out, i = [], 0
    while len(out) < n:
        k = "%s%d" % (prefix, i)
        i += 1
        if C[harness.bucket_of(k, NB)] == gid:
            out.append(k)
    return out


def stat(node, name):
    return int(node.stats()[name])


def parse_values(reply):
    """{key: data} of a VALUE ... END reply (checks the framing)."""
    out, pos = {}, 0
    while True:
        nl = reply.index(b"\r\n", pos)
        line = reply[pos:nl].split()
        pos = nl + 2
        if line == [b"END"]:
            assert pos == len(reply), reply[pos:]
            return out
        assert line[0] == b"VALUE", line
        n = int(line[3])
        out[line[1].decode()] = reply[pos:pos + n]
        assert reply[pos + n:pos + n + 2] == b"\r\n"
        pos += n + 2


def store(key, value):
    owner = NODES[C[harness.bucket_of(key, NB)]]
    v = value.encode() if isinstance(value, str) else value
    assert owner.conn().cmd(b"set %s 0 0 %d" % (key.encode(), len(v)), v) == b"STORED\r\n"


def send_in_background(sock, payload):
    """Sends payload from a thread (the replies are read meanwhile: a
    pipeline larger than the socket buffers must not deadlock the test)."""
    t = threading.Thread(target=sock.sendall, args=(payload,), daemon=True)
    t.start()
    return t


# ---------------------------------------------------------------------------
# pipelining

def test_pipelined_mixed_requests_keep_their_order():
    rnd = random.Random(15)
    keys = keys_of(1, "pl-a-", 5) + keys_of(2, "pl-b-", 5) + keys_of(3, "pl-c-", 5)
    for k in keys:
        G1.conn().cmd("delete " + k)
    model = {}
    req = bytearray()
    want = []           # bytes, or ("values", {key: data}) for a multi-get
    for i in range(600):
        op = rnd.choice(["set", "set", "set_noreply", "get", "get", "mget", "delete",
                         "delete_noreply", "incr", "number", "big", "touch"])
        k = rnd.choice(keys)
        kb = k.encode()
        if op in ("set", "set_noreply", "number", "big"):
            if op == "number":
                v = b"%d" % rnd.randrange(1000)
            elif op == "big":
                v = bytes(rnd.randrange(256) for _ in range(64)) * (3000 + rnd.randrange(2000))
            else:
                v = b"v%d-%d" % (i, rnd.randrange(10 ** 6))
            quiet = op == "set_noreply"
            req += b"set %s 0 0 %d%s\r\n%s\r\n" % (kb, len(v), b" noreply" if quiet else b"", v)
            model[k] = v
            if not quiet:
                want.append(b"STORED\r\n")
        elif op == "get":
            req += b"get %s\r\n" % kb
            want.append(b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (kb, len(model[k]), model[k])
                        if k in model else b"END\r\n")
        elif op == "mget":
            ks = rnd.sample(keys, 6)
            req += b"get " + b" ".join(x.encode() for x in ks) + b"\r\n"
            want.append(("values", {x: model[x] for x in ks if x in model}))
        elif op in ("delete", "delete_noreply"):
            quiet = op == "delete_noreply"
            req += b"delete %s%s\r\n" % (kb, b" noreply" if quiet else b"")
            if not quiet:
                want.append(b"DELETED\r\n" if k in model else b"NOT_FOUND\r\n")
            model.pop(k, None)
        elif op == "incr":
            req += b"incr %s 7\r\n" % kb
            if k not in model:
                want.append(b"NOT_FOUND\r\n")
            elif model[k].isdigit():
                model[k] = b"%d" % (int(model[k]) + 7)
                want.append(model[k] + b"\r\n")
            else:
                want.append(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
        elif op == "touch":
            req += b"touch %s 0\r\n" % kb
            want.append(b"TOUCHED\r\n" if k in model else b"NOT_FOUND\r\n")
    req += b"version\r\n"
    before = stat(G1, "forward_requests")
    c = G1.conn(timeout=30)
    sender = send_in_background(c.sock, bytes(req))
    for i, w in enumerate(want):
        got = c.read_reply()
        if isinstance(w, tuple):
            assert parse_values(got) == w[1], (i, got[:300])
        else:
            assert got == w, (i, got[:300], w[:300])
    assert c.read_reply().startswith(b"VERSION "), "noreply commands answered something"
    sender.join()
    # most commands with keys of groups 2 and 3 went through the forwarder
    assert stat(G1, "forward_requests") - before >= 300
    # and the owners hold what the model says
    for k in keys:
        got = G1.conn().cmd("get " + k)
        assert parse_values(got) == ({k: model[k]} if k in model else {}), k


def test_a_pipeline_through_a_backup_keeps_its_order():
    # every key is forwarded here, group 1's to its own primary
    ks = keys_of(1, "bp-a-", 3) + keys_of(2, "bp-b-", 3) + keys_of(3, "bp-c-", 3)
    b = G1B.conn()
    payload = b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k.encode(), len(k), k.encode())
                       for k in ks)
    payload += b"".join(b"get %s\r\n" % k.encode() for k in ks)
    payload += b"get " + b" ".join(k.encode() for k in ks) + b"\r\n"
    b.send(payload)
    for k in ks:
        assert b.read_reply() == b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k.encode(), len(k), k.encode())
    assert parse_values(b.read_reply()) == {k: k.encode() for k in ks}


def test_replies_still_to_come_are_sent_after_the_client_shuts_its_side():
    # "printf 'get a\r\nget b\r\n' | nc": the client writes, shuts its
    # sending side, and reads until the node closes
    ks = keys_of(2, "eof-b-", 2) + keys_of(1, "eof-a-", 1) + keys_of(3, "eof-c-", 1)
    for k in ks:
        store(k, "eof-" + k)
    s = socket.create_connection(("127.0.0.1", G1.port), timeout=10 * harness.SLOW)
    s.sendall(b"".join(b"get %s\r\n" % k.encode() for k in ks) +
              b"get " + " ".join(ks).encode() + b"\r\n")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    s.close()
    want = b"".join(b"VALUE %s 0 %d\r\neof-%s\r\nEND\r\n" % (k.encode(), len(k) + 4, k.encode())
                    for k in ks)
    assert got.startswith(want), got
    assert parse_values(got[len(want):]) == {k: b"eof-" + k.encode() for k in ks}


class HangingOwner:
    """A TCP server standing in for a group's primary that reads what it
    is sent and never answers -- but the challenge of the handshake (it is
    a node of the cluster that hangs once its link is up)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.received = b""
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            buf = b""
            while b"\r\n" not in buf:
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
            self.received += buf
            c.sendall(harness.challenge_for(buf[:buf.index(b"\r\n")]))
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return
                self.received += chunk
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def set_primary_addr(gid, addr):
    return harness.set_primary_addr(zk, CL, gid, addr)


def test_a_forward_that_times_out_in_the_middle_of_a_pipeline():
    a, b, c3 = keys_of(1, "to-a-", 2), keys_of(2, "to-b-", 2), keys_of(3, "to-c-", 2)
    for k in a + b + c3:
        store(k, "val-" + k)
    fake = HangingOwner()
    real = set_primary_addr(3, "127.0.0.1:%d" % fake.port)
    try:
        probe = G1.conn(timeout=10)
        # the node picks the new address up from its watch: wait until a
        # request for group 3 goes to the fake (it then times out)
        harness.wait_for(lambda: probe.cmd("get " + c3[1]) == b"SERVER_ERROR forward timeout\r\n",
                         timeout=20, what="group 3's requests going to the hanging owner")
        timeouts = stat(G1, "forward_timeouts")
        failed = stat(G1, "get_forward_failed")
        conn = G1.conn(timeout=10)
        t0 = time.time()
        conn.send("get {a0}\r\nget {c0}\r\nget {b0}\r\nset {a1} 0 0 2 noreply\r\nxy\r\n"
                  "set {b1} 0 0 2\r\nzz\r\nget {a0} {c0} {b0}\r\nget {a1}\r\nversion\r\n"
                  .format(a0=a[0], a1=a[1], b0=b[0], b1=b[1], c0=c3[0]))
        v = lambda k, d: b"VALUE %s 0 %d\r\n%s\r\n" % (k.encode(), len(d), d)  # noqa: E731
        assert conn.read_reply() == v(a[0], b"val-" + a[0].encode()) + b"END\r\n"
        assert conn.read_reply() == b"SERVER_ERROR forward timeout\r\n"
        assert time.time() - t0 >= TIMEOUT_MS / 1000.0 * 0.9
        assert conn.read_reply() == v(b[0], b"val-" + b[0].encode()) + b"END\r\n"
        assert conn.read_reply() == b"STORED\r\n"
        # the multi-get serves what the healthy groups hold; group 3's key is a miss
        assert parse_values(conn.read_reply()) == {a[0]: b"val-" + a[0].encode(),
                                                   b[0]: b"val-" + b[0].encode()}
        assert conn.read_reply() == v(a[1], b"xy") + b"END\r\n"
        assert conn.read_reply().startswith(b"VERSION ")
        assert time.time() - t0 < (2 * TIMEOUT_MS / 1000.0 + 2) * harness.SLOW
        # the first request to group 3 timed out; the others on its
        # connection were cut off with it (in doubt)
        assert stat(G1, "forward_timeouts") >= timeouts + 1
        assert stat(G1, "get_forward_failed") == failed + 1
        # flush_all with a group that cannot answer: the others are
        # flushed, the client learns that one was not
        store(b[1], "still-here")
        assert conn.cmd("flush_all") == b"SERVER_ERROR forward timeout\r\n"
        assert G2.conn().cmd("get " + b[1]) == b"END\r\n"
        assert G1.conn().cmd("get " + a[0]) == b"END\r\n"
    finally:
        set_primary_addr(3, real)
        fake.close()
    harness.wait_for(lambda: G1.conn().cmd("set %s 0 0 1" % c3[0], "v") == b"STORED\r\n",
                     what="forwarding to group 3's real primary again")
    assert G1.proc.poll() is None


def test_a_client_that_never_reads_forwarded_replies_holds_bounded_memory():
    k = keys_of(2, "hog-", 1)[0]
    big = b"h" * 200000
    store(k, big)
    before = harness.rss_kib(G1.proc.pid)
    hogs = []
    request = b"get %s\r\n" % k.encode()
    sent = 0
    for _ in range(2):
        s = socket.create_connection(("127.0.0.1", G1.port))
        s.setblocking(False)
        payload = request * 5000
        deadline = time.time() + 0.5 * harness.SLOW
        pos = 0
        while time.time() < deadline:
            try:
                n = s.send(payload[pos:])
                sent += n
                pos = (pos + n) % len(payload)
            except BlockingIOError:
                time.sleep(0.01)
        hogs.append(s)
    owed = sent // len(request) * len(big)
    assert owed > 256 * 1024 * 1024, "test did not push enough (%d bytes owed)" % owed
    time.sleep(0.5 * harness.SLOW)
    after = harness.rss_kib(G1.proc.pid)
    print("RSS before %d KiB, after %d KiB" % (before, after))
    # Per connection: its output limit (4 MiB) plus at most BC_PROTO_FWD_MAX
    # (16) replies in flight (200 KB each) -- not the gigabytes owed.  (Under
    # the sanitizers freed memory waits in their quarantine: not checked.)
    if not harness.SANITIZED and not getattr(harness, "TSAN", False):
        assert after - before < 2 * 10 * 1024, "RSS grew from %d to %d KiB" % (before, after)
    # the others are served meanwhile
    t0 = time.time()
    assert G1.conn().cmd("get " + k).endswith(b"\r\nEND\r\n")
    assert time.time() - t0 < 2.0 * harness.SLOW
    for s in hogs:
        s.close()


# ---------------------------------------------------------------------------
# flush_all

def all_keys():
    return keys_of(1, "fl-a-", 3) + keys_of(2, "fl-b-", 3) + keys_of(3, "fl-c-", 3)


def present(k):
    owner = NODES[C[harness.bucket_of(k, NB)]]
    return owner.conn().cmd("get " + k) != b"END\r\n"


def test_flush_all_through_any_node_flushes_every_group():
    ks = all_keys()
    for via in (G1, G2, G1B):      # a primary, another primary, a backup
        for k in ks:
            store(k, "f")
        flushes = {g: stat(n, "cmd_flush") for g, n in NODES.items()}
        assert via.conn().cmd("flush_all") == b"OK\r\n"
        assert [k for k in ks if present(k)] == [], via.port
        # each primary flushed once
        for g, n in NODES.items():
            assert stat(n, "cmd_flush") >= flushes[g] + 1, (via.port, g)
    # the backup follows its primary through replication
    k = keys_of(1, "fl-rep-", 1)[0]
    store(k, "r")
    harness.wait_for(lambda: G1B.stats()["curr_items"] != "0", what="the backup has the item")
    assert G2.conn().cmd("flush_all") == b"OK\r\n"
    harness.wait_for(lambda: G1B.stats()["curr_items"] == "0", what="the backup flushed too")


def test_flush_all_noreply_and_delayed():
    ks = all_keys()
    for k in ks:
        store(k, "n")
    c = G1B.conn()
    c.send("flush_all noreply\r\n")
    assert c.cmd("version").startswith(b"VERSION "), "flush_all noreply answered"
    harness.wait_for(lambda: not any(present(k) for k in ks), timeout=5,
                     what="every group flushed by flush_all noreply")
    # memcached's delay: seconds from now (the clock ticks in whole seconds,
    # so it fires between delay-1 and delay seconds from now)
    delay = 3 if harness.SLOW == 1.0 else 6
    for k in ks:
        store(k, "d")
    assert G2.conn().cmd("flush_all %d" % delay) == b"OK\r\n"
    assert all(present(k) for k in ks), "flushed before the delay"
    time.sleep(delay + 0.5)
    assert [k for k in ks if present(k)] == []
    for k in ks:
        store(k, "d2")
    c.send("flush_all %d noreply\r\n" % delay)
    assert c.cmd("version").startswith(b"VERSION ")
    assert all(present(k) for k in ks)
    time.sleep(delay + 0.5)
    assert [k for k in ks if present(k)] == []


def test_flush_all_on_a_peer_connection_is_local():
    a, b = keys_of(1, "fp-a-", 1)[0], keys_of(2, "fp-b-", 1)[0]
    store(a, "1")
    store(b, "2")
    p = G1.conn()
    assert harness.peer_handshake(p)[2] == b"OK\r\n"
    assert p.cmd("flush_all") == b"OK\r\n"
    assert not present(a) and present(b)


# ---------------------------------------------------------------------------
# a group frozen, then down

def cli_get_json(*keys, timeout_ms=1500):
    env = dict(os.environ, BUCKETCACHE_ZK=zk.hosts, BUCKETCACHE_CLUSTER=CL)
    t0 = time.time()
    r = subprocess.run([harness.CLI_BIN, "--json", "--timeout", str(timeout_ms), "get"] + list(keys),
                       capture_output=True, env=env, timeout=60 * harness.SLOW)
    doc = json.loads(r.stdout)
    return r.returncode, {d["key"]: d for d in doc}, time.time() - t0, r.stderr


def test_library_multi_get_returns_the_rest_with_a_group_frozen():
    a, b, c3 = keys_of(1, "lf-a-", 3), keys_of(2, "lf-b-", 3), keys_of(3, "lf-c-", 3)
    for k in a + b + c3:
        store(k, "lib-" + k)
    harness.freeze(G3)
    try:
        # (the freeze stays well inside group 3's write lease: 3/4 of its
        # 10 s session)
        timeout_ms = 1500
        rc, got, took, err = cli_get_json(*(a + c3 + b), timeout_ms=timeout_ms)
        assert rc != 0, "the frozen group's keys are not reported as errors"
        for k in a + b:
            assert got[k]["found"] and got[k]["value"] == "lib-" + k, (k, got[k])
        for k in c3:
            assert not got[k]["found"] and "error" in got[k], (k, got[k])
        # the frozen group held the call to its deadline, not longer
        assert took < timeout_ms / 1000.0 + harness.reaction_slack(2.0), took
        # through a node: the same multi-get, the frozen group's keys are misses
        reply = G1.conn(timeout=10).cmd("get " + " ".join(a + c3 + b))
        assert parse_values(reply) == {k: b"lib-" + k.encode() for k in a + b}
    finally:
        harness.thaw(G3)
    # A process that wakes refuses writes until it has renewed its lease
    # (FENCING in node/cluster/cluster.c): the next test writes to it.
    harness.wait_primary(G3, what="group 3's primary writable again")


def test_a_group_down_reads_as_misses():
    a, b, c3 = keys_of(1, "gd-a-", 4), keys_of(2, "gd-b-", 4), keys_of(3, "gd-c-", 4)
    for k in a + b + c3:
        store(k, "down-" + k)
    assert G3.stop() == 0
    harness.wait_for(lambda: 0 in harness.tables(zk, CL)["c"], what="group 3's buckets without owner")
    assert set(harness.tables(zk, CL)["c"]) == {0, 1, 2}
    want = {k: b"down-" + k.encode() for k in a + b}
    mixed = [x for t in zip(a, c3, b) for x in t]
    for via in (G1, G1B, G2):
        c = via.conn()
        before = stat(via, "get_no_owner")
        assert parse_values(c.cmd("get " + " ".join(mixed))) == want, via.port
        assert stat(via, "get_no_owner") == before + len(c3)
        assert set(parse_values(c.cmd("gets " + " ".join(mixed)))) == set(want)
        assert set(parse_values(c.cmd("gat 0 " + " ".join(mixed)))) == set(want)
        assert set(parse_values(c.cmd("gats 0 " + " ".join(mixed)))) == set(want)
        # a get of one unowned key is a miss; a write is refused
        assert c.cmd("get " + c3[0]) == b"END\r\n"
        assert c.cmd("gets " + c3[0]) == b"END\r\n"
        assert re.match(rb"SERVER_ERROR NO_OWNER \d+ \d+\r\n$", c.cmd("set %s 0 0 1" % c3[0], "x"))
        assert c.cmd("delete " + c3[0]).startswith(b"SERVER_ERROR NO_OWNER ")
    # pymemcache, as an application would use it
    mc = PyClient(("127.0.0.1", G1.port), connect_timeout=5, timeout=5)
    got = mc.get_many(mixed)
    assert got == want, got
    assert mc.get(c3[0]) is None
    assert mc.get(a[0]) == b"down-" + a[0].encode()
    mc.set(b[0], b"new")
    assert mc.get_many([b[0], c3[1]]) == {b[0]: b"new"}
    mc.close()
    # a peer connection (what another node forwards on) keeps the refusal
    p = G1.conn()
    assert harness.peer_handshake(p)[2] == b"OK\r\n"
    assert p.cmd("get %s %s" % (a[0], c3[0])).startswith(b"SERVER_ERROR NO_OWNER ")
    # libbucketcache: the lost group's keys are BC_CLIENT_ENOOWNER, the rest returned
    rc, got, _, _ = cli_get_json(*mixed)
    assert rc != 0
    for k in a + b:
        assert got[k]["found"], got[k]
    for k in c3:
        assert not got[k]["found"] and "owner" in got[k]["error"], got[k]
    # flush_all still flushes the groups that are up
    assert G1.conn().cmd("flush_all") == b"OK\r\n"
    assert G1.conn().cmd("get " + " ".join(mixed)) == b"END\r\n"
    for n in (G1B, G1, G2):
        assert n.stop() == 0
    CONSOLE.stop()


harness.main(globals())
