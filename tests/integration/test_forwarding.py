"""Forwarding on the node, with a real ZooKeeper, a console and two groups
(group 1 with a backup): a plain memcached client talking to a node that
does not own its keys gets the owner's answers -- get/gets/gat/set/add/
replace/append/cas/delete/incr/decr/touch, noreply, pipelining, multi-get
across owners, large values, and libmemcached's memccp/memccat; a backup
forwards to its primary; a peer connection (handshake) is never forwarded
(one hop); an owner that hangs, answers garbage or dies gives an error
within the timeout and the node carries on; the counters move; and
--no-forward / "forward": false keep the old refusals."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
TIMEOUT_MS = 1000
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "fwd", buckets=NB)
# Both groups register before the console's first rebalance, so each owns
# half of the (still empty) buckets.  Long sessions: a node paused by a
# test must not be declared dead.
G1 = harness.ClusterNode(zk, CL, 1, "--forward-timeout-ms", str(TIMEOUT_MS),
                         session_timeout_ms=10000)
G2 = harness.ClusterNode(zk, CL, 2, "--forward-timeout-ms", str(TIMEOUT_MS),
                         session_timeout_ms=10000)
CONSOLE = harness.Console(zk, CL)
TABLES = harness.wait_for(lambda: (lambda t: t if 0 not in t["c"] and set(t["c"]) == {1, 2}
                                   else None)(harness.tables(zk, CL)),
                          what="both groups own buckets")
C = TABLES["c"]


def group_doc(gid):
    for g in harness.http_json(CONSOLE.admin_port, "GET", "/v1/cluster")[1]["groups"]:
        if g["gid"] == gid:
            return g
    return None


# A backup of group 1, started once group 1's primary is settled.
G1B = harness.ClusterNode(zk, CL, 1, "--forward-timeout-ms", str(TIMEOUT_MS),
                          session_timeout_ms=10000)
harness.wait_for(lambda: (lambda g: g and len(g["nodes"]) == 2 and
                          g["primary_addr"] == "127.0.0.1:%d" % G1.port)(group_doc(1)),
                 what="group 1 has a primary and a backup")


def key_of(gid, prefix):
    return harness.key_in_bucket_owned_by(C, gid, prefix=prefix)


def keys_of(gid, prefix, n):
    out, i = [], 0
    while len(out) < n:
        k = "%s%d-" % (prefix, i)
        i += 1
        if C[harness.bucket_of(k, NB)] == gid:
            out.append(k)
    return out


def stat(node, name):
    return int(node.stats()[name])


def peer_conn(node, name="tester"):
    c = node.conn()
    assert harness.peer_handshake(c, name)[2] == b"OK\r\n"
    return c


def test_plain_client_through_a_non_owner():
    k = key_of(2, "plain")
    via, owner = G1.conn(), G2.conn()
    assert via.cmd("set %s 5 0 3" % k, "abc") == b"STORED\r\n"
    # stored on the owner, not here
    assert owner.cmd("get " + k) == b"VALUE %s 5 3\r\nabc\r\nEND\r\n" % k.encode()
    assert via.cmd("get " + k) == b"VALUE %s 5 3\r\nabc\r\nEND\r\n" % k.encode()
    g = via.cmd("gets " + k)
    assert g == owner.cmd("gets " + k), g
    cas = int(g.split(b"\r\n")[0].split()[4])
    assert via.cmd("cas %s 0 0 2 %d" % (k, cas + 1), "xx") == b"EXISTS\r\n"
    assert via.cmd("cas %s 0 0 2 %d" % (k, cas), "xx") == b"STORED\r\n"
    assert via.cmd("add %s 0 0 1" % k, "y") == b"NOT_STORED\r\n"
    assert via.cmd("replace %s 0 0 2" % k, "yy") == b"STORED\r\n"
    assert via.cmd("append %s 0 0 2" % k, "zz") == b"STORED\r\n"
    assert via.cmd("prepend %s 0 0 1" % k, "a") == b"STORED\r\n"
    assert via.cmd("get " + k) == b"VALUE %s 0 5\r\nayyzz\r\nEND\r\n" % k.encode()
    assert via.cmd("touch %s 100" % k) == b"TOUCHED\r\n"
    assert via.cmd("gat 100 " + k) == b"VALUE %s 0 5\r\nayyzz\r\nEND\r\n" % k.encode()
    assert via.cmd("gats 100 " + k).startswith(b"VALUE %s 0 5 " % k.encode())
    assert via.cmd("delete " + k) == b"DELETED\r\n"
    assert via.cmd("delete " + k) == b"NOT_FOUND\r\n"
    assert via.cmd("get " + k) == b"END\r\n"
    assert via.cmd("touch %s 100" % k) == b"NOT_FOUND\r\n"
    assert via.cmd("incr %s 1" % k) == b"NOT_FOUND\r\n"
    assert via.cmd("add %s 0 0 2" % k, "10") == b"STORED\r\n"
    assert via.cmd("incr %s 5" % k) == b"15\r\n"
    assert via.cmd("decr %s 20" % k) == b"0\r\n"
    # memcached pads a shrunk number with spaces: whatever the owner holds
    assert owner.cmd("get " + k) == via.cmd("get " + k)
    assert via.cmd("get " + k).startswith(b"VALUE %s 0 " % k.encode())
    # the owner's own errors come back unchanged
    assert via.cmd("set %s 0 0 1" % k, "a") == b"STORED\r\n"
    assert via.cmd("incr %s 1" % k) == b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    # a bad data block is caught here, and the stream goes on
    via.send("set %s 0 0 1\r\nabc" % k)
    assert via.read_reply() == b"CLIENT_ERROR bad data chunk\r\n"
    assert via.cmd("version").startswith(b"VERSION ")
    assert owner.cmd("get " + k) == b"VALUE %s 0 1\r\na\r\nEND\r\n" % k.encode()


def test_noreply_is_forwarded_silently():
    k = key_of(2, "quiet")
    via = G1.conn()
    via.send("set %s 0 0 2 noreply\r\nhi\r\nincr %s 1 noreply\r\ndelete nokey-%s noreply\r\n"
             % (k, k, k))
    assert via.cmd("version").startswith(b"VERSION "), "noreply commands answered something"
    # version is answered here at once, while the forwarded set may still be
    # on its way to the owner: the owner gets it soon, and a get through
    # the same connection (the same forwarding link, in order) sees it
    assert via.cmd("get " + k) == b"VALUE %s 0 2\r\nhi\r\nEND\r\n" % k.encode()
    harness.wait_for(lambda: G2.conn().cmd("get " + k) == b"VALUE %s 0 2\r\nhi\r\nEND\r\n"
                     % k.encode(), timeout=5, what="the owner has the forwarded set")
    via.send("delete %s noreply\r\n" % k)
    assert via.cmd("get " + k) == b"END\r\n"


def test_pipelined_replies_stay_in_order():
    local, foreign = key_of(1, "pl-local"), key_of(2, "pl-far")
    via = G1.conn()
    batch = ("set {l} 0 0 1\r\nL\r\nset {f} 0 0 1\r\nF\r\nget {f}\r\nget {l}\r\n"
             "delete {f}\r\nget {f}\r\nincr {l} 1\r\nversion\r\n").format(l=local, f=foreign)
    via.send(batch)
    assert via.read_reply() == b"STORED\r\n"
    assert via.read_reply() == b"STORED\r\n"
    assert via.read_reply() == b"VALUE %s 0 1\r\nF\r\nEND\r\n" % foreign.encode()
    assert via.read_reply() == b"VALUE %s 0 1\r\nL\r\nEND\r\n" % local.encode()
    assert via.read_reply() == b"DELETED\r\n"
    assert via.read_reply() == b"END\r\n"
    assert via.read_reply() == b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    assert via.read_reply().startswith(b"VERSION ")
    # many forwarded commands in one write, answered one by one in order
    via.send("".join("set %s 0 0 %d\r\n%s\r\n" % (foreign, len(str(i)), i) for i in range(200)) +
             "get %s\r\n" % foreign)
    for _ in range(200):
        assert via.read_reply() == b"STORED\r\n"
    assert via.read_reply() == b"VALUE %s 0 3\r\n199\r\nEND\r\n" % foreign.encode()


def parse_values(reply):
    """{key: (flags, data, cas)} of a VALUE ... END reply (checks the framing)."""
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
        data = reply[pos:pos + n]
        assert reply[pos + n:pos + n + 2] == b"\r\n"
        pos += n + 2
        out[line[1].decode()] = (int(line[2]), data, int(line[4]) if len(line) > 4 else None)


def test_multi_get_across_owners():
    mine, theirs = keys_of(1, "mg1-", 40), keys_of(2, "mg2-", 40)
    for k in mine:
        assert G1.conn().cmd("set %s 1 0 %d" % (k, len(k)), k) == b"STORED\r\n"
    for k in theirs:
        assert G2.conn().cmd("set %s 2 0 %d" % (k, len(k)), k) == b"STORED\r\n"
    asked = []
    for a, b in zip(mine, theirs):
        asked += [a, b, "missing-" + a]
    want = {k: (1, k.encode(), None) for k in mine}
    want.update({k: (2, k.encode(), None) for k in theirs})
    for node in (G1, G2, G1B):
        reply = node.conn().cmd("get " + " ".join(asked))
        assert parse_values(reply) == want, node.port
    # gets carries each owner's cas; gat touches on the owner
    got = parse_values(G1.conn().cmd("gets " + " ".join([mine[0], theirs[0]])))
    own = parse_values(G2.conn().cmd("gets " + theirs[0]))
    assert got[theirs[0]] == own[theirs[0]] and got[mine[0]][2] is not None
    assert set(parse_values(G2.conn().cmd("gat 0 %s %s" % (mine[1], theirs[1])))) == {mine[1], theirs[1]}
    # a multi-get with only foreign keys, and one with none found
    assert parse_values(G1.conn().cmd("get " + " ".join(theirs[:3]))) == \
        {k: (2, k.encode(), None) for k in theirs[:3]}
    assert G1.conn().cmd("get missing-1-%s missing-2-%s" % (theirs[0], mine[0])) in (b"END\r\n",)


def test_large_values_both_ways():
    k = key_of(2, "big")
    blob = os.urandom(700 * 1024)
    via = G1.conn()
    assert via.cmd(b"set %s 0 0 %d" % (k.encode(), len(blob)), blob) == b"STORED\r\n"
    assert via.cmd("get " + k) == b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (k.encode(), len(blob), blob)
    # larger than the item limit: answered here, the block is skipped, and
    # (as memcached does for a set or an ms) the owner's old value deleted
    huge = b"x" * (1024 * 1024 + 10)
    assert via.cmd(b"set %s 0 0 %d" % (k.encode(), len(huge)), huge) == \
        b"SERVER_ERROR object too large for cache\r\n"
    assert G2.conn().cmd("get " + k) == b"END\r\n"
    assert via.cmd("set %s 0 0 1" % k, "v") == b"STORED\r\n"
    assert via.cmd(b"append %s 0 0 %d" % (k.encode(), len(huge)), huge) == \
        b"SERVER_ERROR object too large for cache\r\n"
    assert via.cmd("get " + k) == b"VALUE %s 0 1\r\nv\r\nEND\r\n" % k.encode()   # kept
    via.send(b"ms %s %d T0\r\n%s\r\n" % (k.encode(), len(huge), huge))
    assert via.readline() == b"SERVER_ERROR object too large for cache\r\n"
    assert via.cmd("get " + k) == b"END\r\n"
    assert via.cmd("version").startswith(b"VERSION ")


def test_memccp_and_memccat_against_a_non_owner():
    import shutil
    assert shutil.which("memccp") and shutil.which("memccat"), \
        "libmemcached-tools (memccp, memccat) must be installed"
    k = key_of(2, "memc")
    d = tempfile.mkdtemp(dir=harness.TMP)
    path = os.path.join(d, k)
    data = b"value of a file copied by memccp\n" * 50
    with open(path, "wb") as f:
        f.write(data)
    servers = "127.0.0.1:%d" % G1.port
    r = subprocess.run(["memccp", "--servers=" + servers, path], capture_output=True,
                       timeout=30 * harness.SLOW)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    # stored on group 2's primary, read back through group 1 and the backup
    assert G2.conn().cmd("get " + k).endswith(data + b"\r\nEND\r\n")
    for node in (G1, G1B):
        r = subprocess.run(["memccat", "--servers=127.0.0.1:%d" % node.port, k],
                           capture_output=True, timeout=30 * harness.SLOW)
        assert r.returncode == 0 and r.stdout in (data, data + b"\n"), (r.returncode, len(r.stdout), len(data), r.stderr)


def test_backup_forwards_to_its_primary():
    k = key_of(1, "bk")
    b = G1B.conn()
    assert b.cmd("set %s 0 0 3" % k, "bak") == b"STORED\r\n"
    assert G1.conn().cmd("get " + k) == b"VALUE %s 0 3\r\nbak\r\nEND\r\n" % k.encode()
    assert b.cmd("get " + k) == b"VALUE %s 0 3\r\nbak\r\nEND\r\n" % k.encode()
    assert b.cmd("delete " + k) == b"DELETED\r\n"
    # a backup forwards a key of another group straight to that owner
    f = key_of(2, "bk-far")
    assert b.cmd("set %s 0 0 1" % f, "z") == b"STORED\r\n"
    assert G2.conn().cmd("get " + f) == b"VALUE %s 0 1\r\nz\r\nEND\r\n" % f.encode()


def test_peer_connection_is_never_forwarded():
    k1, k2 = key_of(1, "hop1"), key_of(2, "hop2")
    before = stat(G1, "peer_connections")
    p = peer_conn(G1)
    assert stat(G1, "peer_connections") == before + 1
    epoch = harness.tables(zk, CL)["epoch"]
    moved = b"SERVER_ERROR MOVED %d 2 %d\r\n" % (harness.bucket_of(k2, NB), epoch)
    assert p.cmd("get " + k2) == moved
    assert p.cmd("get %s %s" % (k1, k2)) == moved
    assert p.cmd("set %s 0 0 3" % k2, "abc") == moved    # data block swallowed
    assert p.cmd("delete " + k2) == moved
    assert p.cmd("incr %s 1" % k2) == moved
    assert p.cmd("set %s 0 0 1" % k1, "1") == b"STORED\r\n"   # its own keys are served
    assert p.cmd("get " + k1) == b"VALUE %s 0 1\r\n1\r\nEND\r\n" % k1.encode()
    # a backup's peer connection answers NOT_PRIMARY
    pb = peer_conn(G1B)
    assert pb.cmd("get " + k1).startswith(b"SERVER_ERROR NOT_PRIMARY %d 1 " % harness.bucket_of(k1, NB))
    # a bad handshake is a client error; one without a nonce is refused
    # (the node holds the cluster secret: test_peer_auth.py has the rest)
    c = G1.conn()
    assert c.cmd("bucketcache_peer") == b"CLIENT_ERROR bad command line format\r\n"
    assert c.cmd("bucketcache_peer a b") == b"CLIENT_ERROR bad command line format\r\n"
    assert c.cmd("bucketcache_peer x").startswith(b"CLIENT_ERROR peer authentication required")
    assert c.closed_by_peer()
    # a repeated handshake is fine
    c = peer_conn(G1, "x")
    assert harness.peer_handshake(c, "x")[2] == b"OK\r\n"
    assert c.cmd("get " + k2) == moved


def test_counters_in_stats_admin_and_metrics():
    k = key_of(2, "ctr")
    before = G1.stats()
    c = G1.conn()
    assert c.cmd("set %s 0 0 1" % k, "1") == b"STORED\r\n"
    assert c.cmd("get %s %s" % (k, key_of(1, "ctr-local"))) == b"VALUE %s 0 1\r\n1\r\nEND\r\n" % k.encode()
    after = G1.stats()
    assert int(after["forward_requests"]) == int(before["forward_requests"]) + 2
    for name in ("forward_errors", "forward_timeouts", "peer_connections"):
        assert name in after
    _, doc = harness.http_json(G1.admin_port, "GET", "/stats")
    assert doc["server"]["forward_requests"] >= 2, doc["server"]
    for name in ("forward_errors", "forward_timeouts", "peer_connections"):
        assert name in doc["server"], name
    _, _, metrics = harness.http(G1.admin_port, "GET", "/metrics")
    text = metrics.decode()
    for name in ("forwarded_requests_total", 'forward_failures_total{reason="error"}',
                 'forward_failures_total{reason="timeout"}', "peer_connections_total"):
        assert "bucketcache_" + name in text, name
    m = re.search(r"^bucketcache_forwarded_requests_total (\d+)$", text, re.M)
    assert m and int(m.group(1)) >= 2


class ClosedPort:
    """A port nothing listens on: connections to it are refused.  (Closing
    a FakeOwner's socket would not do: its accept thread keeps it open.)"""

    def __init__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()

    def close(self):
        pass


class FakeOwner:
    """A TCP server standing in for group 2's primary: mode decides what it
    answers after reading the handshake and a request."""

    def __init__(self, mode):
        self.mode = mode
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
        buf = b""
        try:
            # the handshake: refused as an old node would, or challenged
            # (a node of the cluster: it knows the secret)
            while b"\r\n" not in buf:
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
            if self.mode == "refuse":
                self.received += buf
                c.sendall(b"ERROR\r\n")
                time.sleep(30)
                return
            c.sendall(harness.challenge_for(buf[:buf.index(b"\r\n")]))
            # our proof, then a request
            while buf.count(b"\r\n") < 3:
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
            self.received += buf
            if self.mode == "garbage":
                c.sendall(b"OK\r\nHELLO THERE\r\n")
            elif self.mode == "huge":
                c.sendall(b"OK\r\nVALUE k 0 99999999\r\n" + b"x" * (6 * 1024 * 1024))
            elif self.mode == "drop":      # takes the request, then goes away
                c.sendall(b"OK\r\n")
                c.close()
                return
            # "hang": say nothing
            time.sleep(30)
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def set_primary_addr(gid, addr):
    return harness.set_primary_addr(zk, CL, gid, addr)


def test_owner_that_hangs_or_misbehaves():
    k, local = key_of(2, "bad"), key_of(1, "bad-local")
    assert G1.conn().cmd("set %s 0 0 2" % local, "ok") == b"STORED\r\n"
    for mode, want in (("hang", b"SERVER_ERROR forward timeout\r\n"),
                       ("garbage", b"SERVER_ERROR forward bad reply from owner\r\n"),
                       # refused the handshake: the request, held until the owner
                       # proved the cluster secret, was never sent
                       ("refuse", b"SERVER_ERROR forward failed: owner unreachable\r\n"),
                       ("huge", b"SERVER_ERROR forward reply too large\r\n"),
                       # sent, then lost: the owner may have applied it
                       ("drop", b"SERVER_ERROR forward in doubt: the owner was lost after the "
                                b"request was sent\r\n"),
                       # nothing listens: never sent, safe to send again
                       ("unreachable", b"SERVER_ERROR forward failed: owner unreachable\r\n")):
        if mode == "unreachable":
            fake = ClosedPort()
        else:
            fake = FakeOwner(mode)
        real = set_primary_addr(2, "127.0.0.1:%d" % fake.port)
        try:
            c = G1.conn(timeout=10)
            # the agent picks the new address up from its watch
            t0 = time.time()
            reply = harness.wait_for(lambda: (lambda r: r if r != b"VALUE %s 0 1\r\nv\r\nEND\r\n" % k.encode()
                                              and not r.startswith(b"VALUE") and r != b"END\r\n"
                                              else None)(c.cmd("get " + k)),
                                     timeout=20, what="the fake owner answering (%s)" % mode)
            elapsed = time.time() - t0
            assert reply == want, (mode, reply)
            if mode == "hang":
                assert elapsed < (TIMEOUT_MS / 1000.0 + 2) * harness.SLOW, elapsed
                assert b"bucketcache_peer " in fake.received and b"get " + k.encode() in fake.received
            # the connection carries on, local keys are served meanwhile
            assert c.cmd("get " + local) == b"VALUE %s 0 2\r\nok\r\nEND\r\n" % local.encode()
            # a multi-get with a failed part serves the rest: the failed
            # owner's keys read as misses, counted
            before = stat(G1, "get_forward_failed")
            got = c.cmd("get %s %s" % (local, k))
            assert got == b"VALUE %s 0 2\r\nok\r\nEND\r\n" % local.encode(), (mode, got)
            assert stat(G1, "get_forward_failed") == before + 1
        finally:
            set_primary_addr(2, real)
            fake.close()
    assert stat(G1, "forward_timeouts") >= 1 and stat(G1, "forward_errors") >= 5
    harness.wait_for(lambda: G1.conn().cmd("set %s 0 0 1" % k, "v") == b"STORED\r\n",
                     what="forwarding to the real owner again")
    assert G1.proc.poll() is None


def test_paused_owner_times_out_and_recovers():
    k = key_of(2, "pause")
    assert G1.conn().cmd("set %s 0 0 1" % k, "p") == b"STORED\r\n"
    harness.freeze(G2)
    try:
        c = G1.conn(timeout=10)
        t0 = time.time()
        reply = c.cmd("get " + k)
        # a timeout when the link to the owner was up; when it was being
        # opened again, the frozen owner never answered the peer handshake
        # and the request was never sent: "unreachable" (not applied)
        assert reply in (b"SERVER_ERROR forward timeout\r\n",
                         b"SERVER_ERROR forward failed: owner unreachable\r\n"), reply
        assert time.time() - t0 < (TIMEOUT_MS / 1000.0 + 1.5) * harness.SLOW
        assert c.cmd("version").startswith(b"VERSION ")
    finally:
        harness.thaw(G2)
    harness.wait_for(lambda: G1.conn().cmd("get " + k) == b"VALUE %s 0 1\r\np\r\nEND\r\n" % k.encode(),
                     what="forwarding works again")


def test_client_hanging_up_mid_forward():
    k = key_of(2, "hup")
    harness.freeze(G2)
    try:
        for _ in range(5):
            c = G1.conn()
            c.send("get %s\r\n" % k)
            time.sleep(0.05)
            c.sock.shutdown(socket.SHUT_RDWR)
            c.close()
        # the worker is not spinning on the closed sockets and still answers
        assert G1.conn().cmd("version").startswith(b"VERSION ")
    finally:
        harness.thaw(G2)
    time.sleep(TIMEOUT_MS / 1000.0 + 0.5)
    assert G1.proc.poll() is None
    assert G1.conn().cmd("get " + k) in (b"END\r\n",)


def test_no_forward_flag_and_config():
    k = key_of(2, "nofwd")
    cfg = os.path.join(harness.TMP, "nofwd.json")
    with open(cfg, "w") as f:
        json.dump({"zookeeper": {"forward": False, "forward_timeout_ms": 500}}, f)
    for extra in (["--no-forward"], ["--config", cfg]):
        n = harness.ClusterNode(zk, CL, 3, *extra)
        try:
            harness.wait_for(lambda: n.conn().cmd("get " + k).startswith(b"SERVER_ERROR MOVED"),
                             what="the refusal from a node that does not forward")
            assert "forwarding off" in n.proc.output()
            assert stat(n, "forward_requests") == 0
        finally:
            assert n.stop() == 0
    bad = os.path.join(harness.TMP, "badfwd.json")
    with open(bad, "w") as f:
        json.dump({"zookeeper": {"forward": "yes"}}, f)
    r = subprocess.run([harness.NODE_BIN, "--config", bad, "-p", "0", "--admin-port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "zookeeper.forward" in r.stderr, r.stderr


def test_owner_killed_gives_an_error_and_node_stays_up():
    k, local = key_of(2, "dead"), key_of(1, "dead-local")
    assert G1.conn().cmd("set %s 0 0 1" % local, "1") == b"STORED\r\n"
    c = G1.conn(timeout=10)
    assert c.cmd("set %s 0 0 1" % k, "1") == b"STORED\r\n"   # a pooled connection exists
    G2.proc.kill()
    t0 = time.time()
    # the session outlives the process for a while: the table still names
    # group 2, the connection fails at once
    reply = c.cmd("get " + k)
    assert reply.startswith(b"SERVER_ERROR "), reply
    assert time.time() - t0 < (TIMEOUT_MS / 1000.0 + 1) * harness.SLOW
    reply = G1.conn().cmd("get " + k)
    assert reply.startswith(b"SERVER_ERROR "), reply
    assert c.cmd("get " + local) == b"VALUE %s 0 1\r\n1\r\nEND\r\n" % local.encode()
    assert G1.proc.poll() is None and G1B.proc.poll() is None
    for n in (G1B, G1):
        assert n.stop() == 0
    CONSOLE.stop()


harness.main(globals())
