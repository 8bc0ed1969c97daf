"""Peer links prove the cluster secret (docs/security.md, common/bc_peerauth.h):
with a real ZooKeeper, a console and two groups sharing a secret,
forwarding, replication and migration work; every credential path is
tried right, wrong, missing and replayed -- the peer handshake on the data
port (a node's proof checked the other way too: a fake owner replaying a
captured challenge is not trusted), the replication handshake, the signed
export request on the admin port; a node with the wrong secret cannot
forward or replicate and says why; a peer without the secret gets no
snapshot and cannot forward; the refusals are counted in `stats` and
/metrics; a node without the secret starts only when told."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "pa", buckets=NB)
G1 = harness.ClusterNode(zk, CL, 1, "--forward-timeout-ms", "1000", session_timeout_ms=10000)
G2 = harness.ClusterNode(zk, CL, 2, "--forward-timeout-ms", "1000", session_timeout_ms=10000)
CONSOLE = harness.Console(zk, CL)
C = harness.wait_for(lambda: (lambda t: t["c"] if 0 not in t["c"] and set(t["c"]) == {1, 2}
                              else None)(harness.tables(zk, CL)),
                     what="both groups own buckets")
# The tables alone do not make the nodes primaries, nor tell each where the
# other group's primary is: wait for both before the first write.
harness.wait_primary(G1)
harness.wait_primary(G2)


def forwards_to(node, group):
    """node forwards a key of group's to its primary and gets its miss."""
    key = harness.key_in_bucket_owned_by(C, group, prefix="probe")
    c = node.conn()
    try:
        return c.cmd("mg %s v" % key) == b"EN\r\n"
    finally:
        c.close()


harness.wait_for(lambda: forwards_to(G1, 2) and forwards_to(G2, 1),
                 what="each node forwarding to the other group")
OTHER_SECRET = os.urandom(32).hex()
OTHER_SECRET_FILE = harness.write_secret(os.path.join(harness.TMP, "other-secret"), OTHER_SECRET)


def key_of(gid, prefix):
    return harness.key_in_bucket_owned_by(C, gid, prefix=prefix)


def stat(node, name):
    return int(node.stats()[name])


def metric(node, name):
    text = harness.http(node.admin_port, "GET", "/metrics")[2].decode()
    for line in text.splitlines():
        if line.startswith("bucketcache_" + name + " ") or line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric %s" % name)


def forwarded_get(node, key):
    """"get key" (a key stored on another group) on a node new to the
    cluster, once it routes the key to its owner: before it has the
    tables it answers MOVED, or a miss while it sees the bucket without an
    owner."""
    c = node.conn()
    return harness.wait_for(
        lambda: (lambda r: None if r.startswith(b"SERVER_ERROR MOVED") or r == b"END\r\n"
                 else r)(c.cmd("get " + key)), what="the node routing")


def nonce():
    return os.urandom(16).hex()


def refused(conn, needle, line=None):
    """The connection got an error line containing needle (line, when
    already read), then was closed."""
    if line is None:
        line = conn.readline()
    assert line.startswith(b"CLIENT_ERROR ") and needle in line, line
    assert conn.closed_by_peer(), "still open after " + repr(line)
    return line


def test_forwarding_between_nodes_that_share_the_secret():
    k = key_of(2, "fwd")
    via = G1.conn()
    assert via.cmd("set %s 0 0 3" % k, "abc") == b"STORED\r\n"
    assert via.cmd("get " + k) == b"VALUE %s 0 3\r\nabc\r\nEND\r\n" % k.encode()
    assert G2.conn().cmd("get " + k) == b"VALUE %s 0 3\r\nabc\r\nEND\r\n" % k.encode()
    # over a peer link G2 accepted (opened here or by the probes above)
    assert stat(G2, "peer_connections") >= 1
    assert stat(G1, "peer_auth_failures") == 0 and stat(G2, "peer_auth_failures") == 0


def test_peer_handshake_right_wrong_missing_replayed():
    k2 = key_of(2, "hs")
    assert G2.conn().cmd("set %s 0 0 1" % k2, "v") == b"STORED\r\n"
    failures = stat(G2, "peer_auth_failures")
    # right: the node proves itself (checked in peer_handshake), we do
    c = G2.conn()
    sent, challenge, answer = harness.peer_handshake(c, "n-tester")
    assert challenge.startswith(b"BUCKETCACHE_CHALLENGE ") and answer == b"OK\r\n"
    assert c.cmd("get " + k2) == b"VALUE %s 0 1\r\nv\r\nEND\r\n" % k2.encode()
    # missing: the handshake without a nonce, or no proof after the challenge
    c = G2.conn()
    c.send("bucketcache_peer n-tester\r\n")
    refused(c, b"peer authentication required")
    c = G2.conn()
    c.send("bucketcache_peer n-tester %s\r\n" % nonce())
    assert c.readline().startswith(b"BUCKETCACHE_CHALLENGE ")
    c.send("get %s\r\n" % k2)
    refused(c, b"expected bucketcache_auth")
    # a proof nobody asked for
    c = G2.conn()
    c.send("bucketcache_auth %s\r\n" % ("0" * 64))
    refused(c, b"no challenge is pending")
    # wrong: another secret
    c = G2.conn()
    sent, challenge, answer = harness.peer_handshake(c, "n-tester", secret=OTHER_SECRET)
    assert challenge.startswith(b"BUCKETCACHE_CHALLENGE ")
    refused(c, b"wrong proof (is the cluster secret the same on every node?)", answer)
    # replayed: a captured exchange sent again meets a new challenge
    good = G2.conn()
    sent, challenge, answer = harness.peer_handshake(good, "n-tester")
    assert answer == b"OK\r\n"
    again = G2.conn()
    again.send(sent[0] + "\r\n")
    challenge2 = again.readline()
    assert challenge2.startswith(b"BUCKETCACHE_CHALLENGE ") and challenge2 != challenge
    again.send(sent[1] + "\r\n")
    refused(again, b"wrong proof")
    # none of that was served: a refused connection never saw the key
    assert stat(G2, "peer_auth_failures") == failures + 5
    assert metric(G2, "peer_auth_failures_total") == failures + 5
    assert "peer handshake of n-tester refused" in G2.proc.output()
    # the node carries on for everyone else
    assert G1.conn().cmd("get " + k2) == b"VALUE %s 0 1\r\nv\r\nEND\r\n" % k2.encode()


class ReplayingOwner:
    """Stands in for group 2's primary, replaying a challenge it captured
    from the real one (it has no secret of its own)."""

    def __init__(self, challenge):
        self.challenge = challenge
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.got_proof = False
        self.conns = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            try:
                c.recv(4096)
                c.sendall(self.challenge)
                data = c.recv(4096)
                if b"bucketcache_auth" in data:
                    self.got_proof = True
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def set_primary_addr(gid, addr):
    return harness.set_primary_addr(zk, CL, gid, addr)


def test_a_node_checks_the_owner_too():
    """Mutual: an owner that replays a real node's challenge (captured with
    another nonce) is not trusted, and nothing is sent to it."""
    k = key_of(2, "mutual")
    c = G2.conn()
    c.send("bucketcache_peer n-tester %s\r\n" % nonce())
    captured = c.readline()
    c.close()
    fake = ReplayingOwner(captured)
    real = set_primary_addr(2, "127.0.0.1:%d" % fake.port)
    before = stat(G1, "peer_auth_failures")
    try:
        via = G1.conn()
        reply = harness.wait_for(
            lambda: (lambda r: r if b"peer authentication" in r else None)(via.cmd("get " + k)),
            timeout=20, what="the forward to the replaying owner failing")
        assert reply == b"SERVER_ERROR forward failed: peer authentication failed\r\n", reply
        assert not fake.got_proof
        assert stat(G1, "peer_auth_failures") > before
        assert "failed to prove the cluster secret" in G1.proc.output()
    finally:
        set_primary_addr(2, real)
        fake.close()
    via = G1.conn()
    harness.wait_for(lambda: via.cmd("get " + k) == b"END\r\n", what="the real owner again")


def test_node_with_the_wrong_secret_cannot_forward_or_replicate():
    k1 = key_of(1, "wrong")
    assert G1.conn().cmd("set %s 0 0 2" % k1, "g1") == b"STORED\r\n"
    # a group of its own (the console migrates nothing here): it forwards
    x = harness.ClusterNode(zk, CL, 3, "--cluster-secret-file", OTHER_SECRET_FILE)
    got = forwarded_get(x, k1)
    assert got == b"SERVER_ERROR forward failed: peer authentication failed\r\n", got
    assert stat(x, "peer_auth_failures") >= 1
    assert "failed to prove the cluster secret: wrong proof (is the cluster secret the same on " \
           "every node?)" in x.proc.output()
    x.stop()
    # a backup of group 1: it never gets the snapshot, and says why
    b = harness.ClusterNode(zk, CL, 1, "--cluster-secret-file", OTHER_SECRET_FILE)
    harness.wait_for(lambda: harness.repl(b)["auth_failures"] >= 1, what="the backup refusing")
    r = harness.repl(b)
    assert not r["synced"] and r["snapshots_received"] == 0, r
    assert b.stats()["curr_items"] == "0"
    assert all(x["name"] != "127.0.0.1:%d" % b.port for x in harness.repl(G1)["backups"])
    assert "failed to prove the cluster secret" in b.proc.output()
    b.stop()


def test_peer_without_the_secret_gets_no_snapshot_and_cannot_forward():
    k2 = key_of(2, "nosecret")
    assert G2.conn().cmd("set %s 0 0 2" % k2, "g2") == b"STORED\r\n"
    failures = stat(G1, "peer_auth_failures")
    # a backup of group 1 without a secret: the primary refuses it
    b = harness.ClusterNode(zk, CL, 1, "--insecure-no-peer-auth")
    harness.wait_for(lambda: harness.repl(b)["auth_failures"] >= 1, what="the refusal")
    r = harness.repl(b)
    assert not r["synced"] and r["snapshots_received"] == 0, r
    assert "peer authentication required" in b.proc.output()
    assert "--insecure-no-peer-auth: peer links are NOT authenticated" in b.proc.output()
    assert stat(G1, "peer_auth_failures") > failures
    # ... nor forward through it: the owner refuses its handshake
    x = harness.ClusterNode(zk, CL, 3, "--insecure-no-peer-auth")
    got = forwarded_get(x, k2)
    assert got == b"SERVER_ERROR forward failed: peer authentication failed\r\n", got
    assert "refused our peer handshake: peer authentication required" in x.proc.output()
    # by hand: the replication handshake without a nonce, or with a wrong proof
    c = G1.conn()
    c.send("bucketcache_replicate 1 - 0 intruder\r\n")
    refused(c, b"peer authentication required")
    c = G1.conn()
    harness.peer_handshake(c, line="bucketcache_replicate 1 - 0 intruder " + nonce(),
                           secret=OTHER_SECRET)
    refused(c, b"wrong proof")
    # replayed: a good handshake's lines on a new connection
    c = G1.conn()
    sent, _, _ = harness.peer_handshake(c, line="bucketcache_replicate 1 - 0 spy " + nonce())
    head = c.read_exact(4)           # the RHELLO frame: a snapshot follows
    assert len(head) == 4
    c.close()
    harness.wait_for(lambda: all(x["name"] != "spy" for x in harness.repl(G1)["backups"]),
                     what="the spy gone")
    again = G1.conn()
    again.send(sent[0] + "\r\n")
    assert again.readline().startswith(b"BUCKETCACHE_CHALLENGE ")
    again.send(sent[1] + "\r\n")
    refused(again, b"wrong proof")
    b.stop()
    x.stop()


# ---- the signed export request (admin port) ----

def signed(method, target, secret=None, ts=None, n=None, name="n-tester"):
    ts = str(int(time.time() * 1000) if ts is None else ts)
    n = n or nonce()
    proof = harness.peer_proof("client", ["http-request", method, target, name, ts, n], secret)
    return "%s %s %s %s" % (name, ts, n, proof), n


def test_export_needs_a_signed_request():
    bucket = C.index(1)
    target = "/v1/migrate/export?bucket=%d&tap=1" % bucket
    before = harness.http_json(G1.admin_port, "GET", "/stats")[1]["cluster"]["migrate"]["export_auth_failures"]
    # missing
    st, h, body = harness.http(G1.admin_port, "GET", target)
    assert st == 403 and b"no X-Bucketcache-Peer proof" in body, (st, body)
    # wrong: another secret, another target, malformed
    value, _ = signed("GET", target, secret=OTHER_SECRET)
    st, h, body = harness.http(G1.admin_port, "GET", target, headers={"X-Bucketcache-Peer": value})
    assert st == 403 and b"wrong proof" in body, body
    value, _ = signed("GET", "/v1/migrate/export?bucket=%d&tap=1" % (bucket + 1))
    st, h, body = harness.http(G1.admin_port, "GET", target, headers={"X-Bucketcache-Peer": value})
    assert st == 403 and b"wrong proof" in body, body
    st, h, body = harness.http(G1.admin_port, "GET", target, headers={"X-Bucketcache-Peer": "x"})
    assert st == 403 and b"malformed" in body, body
    # stale: a minute old
    value, _ = signed("GET", target, ts=int(time.time() * 1000) - 60000)
    st, h, body = harness.http(G1.admin_port, "GET", target, headers={"X-Bucketcache-Peer": value})
    assert st == 403 and b"behind" in body, body
    # right: the export, with the source's own proof
    value, n = signed("GET", target)
    st, h, body = harness.http(G1.admin_port, "GET", target, headers={"X-Bucketcache-Peer": value})
    assert st == 200, (st, body)
    proof_hdr = h["x-bucketcache-peer-proof"].split()
    assert proof_hdr[1] == harness.peer_proof("server", ["http-response", "GET", target, n,
                                                         proof_hdr[0]])
    # replayed
    st, h, body = harness.http(G1.admin_port, "GET", target, headers={"X-Bucketcache-Peer": value})
    assert st == 403 and b"replayed" in body, body
    after = harness.http_json(G1.admin_port, "GET", "/stats")[1]["cluster"]["migrate"]["export_auth_failures"]
    assert after == before + 6, (before, after)
    assert metric(G1, "migrate_export_auth_failures_total") == after


def test_import_from_an_untrusted_source_fails():
    """A destination trusts only a source that proves the secret: an import
    pointed at a node without it (or with another) fails, saying why; and
    a destination with another secret is refused by the source."""
    bucket = C.index(1)
    # a source without the secret: an admin port that answers the export
    # with 200 and a stream, but no proof of its own
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen = []

    def serve():
        conn, _ = srv.accept()
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.recv(4096)
            if not chunk:
                break
            req += chunk
        seen.append(req)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Length: 4\r\n\r\nBCMF")
        time.sleep(0.5)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    st, doc = harness.http_json(G2.admin_port, "POST",
                                "/v1/migrate/import?bucket=%d&from=4&source=127.0.0.1:%d&precopy=1"
                                % (bucket, srv.getsockname()[1]))
    assert st in (200, 202), (st, doc)
    done = harness.wait_for(
        lambda: (lambda d: d if d["state"] != "running" else None)(
            harness.http_json(G2.admin_port, "GET",
                              "/v1/migrate/import?bucket=%d&precopy=1" % bucket)[1]),
        what="the import failing")
    assert done["state"] == "failed" and "is not trusted" in done["error"], done
    assert done["items"] == 0, done
    # the destination's request carried its own proof
    assert seen and b"x-bucketcache-peer: " in seen[0].lower(), seen
    t.join(5)
    srv.close()
    # a destination with another secret: the real source refuses its request
    z = harness.ClusterNode(zk, CL, 5, "--cluster-secret-file", OTHER_SECRET_FILE)
    target = "/v1/migrate/import?bucket=%d&from=1&source=127.0.0.1:%d&precopy=1" % (
        bucket, G1.admin_port)
    # once it is its group's primary (409 "not (yet)" before)
    st, doc = harness.wait_for(
        lambda: (lambda r: r if r[0] != 409 else None)(
            harness.http_json(z.admin_port, "POST", target)), what="z primary")
    assert st in (200, 202), (st, doc)
    done = harness.wait_for(
        lambda: (lambda d: d if d["state"] != "running" else None)(
            harness.http_json(z.admin_port, "GET",
                              "/v1/migrate/import?bucket=%d&precopy=1" % bucket)[1]),
        what="the import failing")
    assert done["state"] == "failed" and "peer authentication failed" in done["error"], done
    z.stop()


def test_an_insecure_cluster_runs_when_told():
    """--insecure-no-peer-auth on every node: the handshakes of old."""
    cl = harness.create_cluster(zk, "open", buckets=NB)
    a = harness.ClusterNode(zk, cl, 1, "--insecure-no-peer-auth")
    b = harness.ClusterNode(zk, cl, 2, "--insecure-no-peer-auth")
    con = harness.Console(zk, cl)
    c = harness.wait_for(lambda: (lambda t: t["c"] if 0 not in t["c"] and set(t["c"]) == {1, 2}
                                  else None)(harness.tables(zk, cl)), what="open tables")
    k = harness.key_in_bucket_owned_by(c, 2, prefix="open")
    assert a.conn().cmd("set %s 0 0 1" % k, "o") == b"STORED\r\n"
    assert b.conn().cmd("get " + k) == b"VALUE %s 0 1\r\no\r\nEND\r\n" % k.encode()
    assert a.conn().cmd("bucketcache_peer old-style") == b"OK\r\n"
    # a node with the secret does not forward to an owner that proves nothing
    s = harness.ClusterNode(zk, cl, 3)
    got = forwarded_get(s, k)
    assert got == b"SERVER_ERROR forward failed: peer authentication failed\r\n", got
    assert "did not prove the cluster secret" in s.proc.output()
    for p in (s, a, b, con):
        p.stop()


def test_secret_rotation_with_sighup():
    """The three steps of docs/security.md -- the new secret added second
    everywhere, then first, then the old one removed, each followed by a
    reload (SIGHUP) -- never leave two nodes unable to check each other;
    a broken edit keeps the secret in force."""
    import signal
    cl = harness.create_cluster(zk, "rot", buckets=NB)
    old, new = os.urandom(32).hex(), os.urandom(32).hex()
    fa = harness.write_secret(os.path.join(harness.TMP, "rot-a"), old)
    fb = harness.write_secret(os.path.join(harness.TMP, "rot-b"), old)
    a = harness.ClusterNode(zk, cl, 1, "--cluster-secret-file", fa)
    b = harness.ClusterNode(zk, cl, 2, "--cluster-secret-file", fb)
    con = harness.Console(zk, cl)
    c = harness.wait_for(lambda: (lambda t: t["c"] if 0 not in t["c"] and set(t["c"]) == {1, 2}
                                  else None)(harness.tables(zk, cl)), what="rot tables")
    k = harness.key_in_bucket_owned_by(c, 2, prefix="rot")

    def accepts(node, secret):
        conn = node.conn()
        try:
            return harness.peer_handshake(conn, "n-rot", secret=secret)[2] == b"OK\r\n"
        except ConnectionError:
            return False

    def proves_with(node):
        """Which secret the node's challenge was made with."""
        conn = node.conn()
        line = "bucketcache_peer n-rot " + nonce()
        conn.send(line + "\r\n")
        parts = conn.readline().decode().split()
        for name, sec in (("old", old), ("new", new)):
            if harness.peer_proof("server", [line, parts[1], parts[2]], sec) == parts[3]:
                return name
        return None

    def reload(node, path, *values):
        n = node.proc.output().count("cluster secret file")
        harness.write_secret(path, *values)
        node.proc.signal(signal.SIGHUP)
        harness.wait_for(lambda: node.proc.output().count("cluster secret file") > n,
                         what="the reload")

    # once a routes (MOVED before it has the tables)
    harness.wait_for(lambda: a.conn().cmd("set %s 0 0 1" % k, "r") == b"STORED\r\n",
                     what="a forwarding the set")
    assert accepts(b, old) and not accepts(b, new)
    reload(b, fb, old, new)                      # step 1, b first: a still has old only
    assert accepts(b, old) and accepts(b, new) and proves_with(b) == "old"
    reload(a, fa, old, new)
    reload(b, fb, new, old)                      # step 2: new first
    assert proves_with(b) == "new" and accepts(b, old) and accepts(a, new)
    reload(a, fa, new, old)
    assert proves_with(a) == "new"
    reload(b, fb, new)                           # step 3: old removed
    assert accepts(b, new) and not accepts(b, old)
    reload(a, fa, new)
    assert a.conn().cmd("get " + k) == b"VALUE %s 0 1\r\nr\r\nEND\r\n" % k.encode()
    # a broken file: the secret in force stays, the log says why
    with open(fb, "w") as f:
        f.write("short\n")
    b.proc.signal(signal.SIGHUP)
    harness.wait_for(lambda: "cannot re-read the cluster secret file" in b.proc.output(),
                     what="the refused reload")
    assert accepts(b, new)
    for p in (a, b, con):
        p.stop()


harness.main(globals())
