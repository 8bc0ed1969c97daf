"""memcached's ASCII authentication (-Y FILE), side by side with a real
memcached 1.6.18 started with the same file: the same exchanges get the
same bytes -- unauthenticated commands, the authenticating "set" right,
wrong, malformed, split anywhere, with extra tokens, odd sizes, junk
without a newline; the counters and `stats settings`; SIGHUP re-reads the
file.  Then what is ours alone: a pipeline sent before authenticating is
answered command by command (memcached 1.6.18 sends only the last reply),
a huge announced size is not buffered, the file's rules, and in a cluster
a client that authenticated on one node reaches the keys of another over
the authenticated peer link."""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

AUTH = harness.write_secret(os.path.join(harness.TMP, "mc-auth"), "alice:secret1", "bob:pw2",
                            "carol:c:with:colons")
MC = harness.Memcached("-Y", AUTH)
NODE = harness.Node("-Y", AUTH)
_seq = [0]


def exchange(server, parts, wait=1.0):
    """Sends each part after the replies to the previous one have come:
    what arrives within wait seconds, until nothing more comes for a tenth
    of a second; returns what came after each, b"<EOF>" marking a close.
    The waits stretch by the server's own slowness (a sanitized node's, never
    memcached's): most of these parts expect silence, so each stretched wait
    adds its whole length to the test."""
    # A sanitized node answers within milliseconds here too; half its
    # stretch keeps a late reply caught without doubling the test.
    slow = max(1.0, server.slow / 2)
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5 * harness.SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    outs = []
    for p in parts:
        s.sendall(p if isinstance(p, bytes) else p.encode())
        out = b""
        s.settimeout(wait * slow)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    out += b"<EOF>"
                    break
                out += chunk
                s.settimeout(0.1 * slow)
        except socket.timeout:
            pass
        except ConnectionResetError:
            out += b"<EOF>"
        outs.append(out)
    s.close()
    return outs


def same(parts, what=None):
    """Both servers answer parts alike; returns the replies."""
    _seq[0] += 1
    # fresh keys each time: the two servers keep data between exchanges
    parts = [p.replace("KEY", "k%d" % _seq[0]) if isinstance(p, str) else p for p in parts]
    a, b = exchange(MC, parts), exchange(NODE, parts)
    assert a == b, (what or parts, a, b)
    return a


def test_unauthenticated_commands_are_refused():
    for cmd in ("get KEY\r\n", "stats\r\n", "version\r\n", "quit\r\n", "flush_all\r\n",
                "\r\n", "s\r\n", "SET KEY 0 0 5\r\n", "set KEY 0 0\r\n",
                "set KEY 0 0 abc\r\n", "set KEY 0 0 -1\r\n", "set KEY 0 0 1x\r\n",
                "bucketcache_peer n-1\r\n", "get " + "a" * 2000 + "\r\n"):
        r = same([cmd], cmd[:40])
        assert r == [b"CLIENT_ERROR unauthenticated\r\n"], (cmd[:40], r)
    # a line shorter than two bytes waits for more (memcached: no command
    # is that short)
    assert same(["\n", "\n"]) == [b"", b"CLIENT_ERROR unauthenticated\r\n"]
    # one command at a time: a "set" is the authenticating one, its data
    # block the token -- "v" is one token, not two; nothing stored
    r = same(["get KEY\r\n", "set KEY 0 0 1\r\n", "v\r\n", "get KEY\r\n"])
    assert r == [b"CLIENT_ERROR unauthenticated\r\n", b"",
                 b"CLIENT_ERROR bad authentication token format\r\n",
                 b"CLIENT_ERROR unauthenticated\r\n"], r


def test_the_authenticating_set():
    ok = [b"STORED\r\n"]
    assert same(["set KEY 0 0 13\r\nalice secret1\r\n"]) == ok
    assert same(["set anything-at-all 12 34 7\r\nbob pw2\r\n"]) == ok
    assert same(["set KEY 0 0 13 noreply\r\nalice secret1\r\n"]) == ok          # noreply ignored
    assert same(["set  KEY  0  0  13\r\nalice secret1\r\n"]) == ok              # runs of spaces
    assert same(["set KEY 0 0 14\r\nalice  secret1\r\n"]) == ok                 # in the data too
    assert same(["set KEY 0 0 19\r\nalice secret1 extra\r\n"]) == ok            # extra tokens
    assert same(["set KEY 0 0 +13\r\nalice secret1\r\n"]) == ok                 # strtoul's '+'
    assert same(["set KEY 0 0 4294967309\r\nalice secret1\r\n"]) == ok          # 2^32 + 13
    assert same(["set KEY 0 0 19\r\ncarol c:with:colons\r\n"]) == ok            # ':' in a password
    # split anywhere
    assert same(["set KEY 0 0 13\r\n", "alice secret1\r\n"]) == [b"", b"STORED\r\n"]
    assert same(["set KEY 0 0 13\r\nali", "ce secret1\r", "\n"]) == [b"", b"", b"STORED\r\n"]
    assert same(["se", "t KEY 0 0 7\r", "\nbob pw2\r\n"]) == [b"", b"", b"STORED\r\n"]
    # then every command works, and authenticating again is harmless
    r = same(["set KEY 0 0 13\r\nalice secret1\r\n", "set KEY 0 0 1\r\nv\r\n", "get KEY\r\n",
              "set KEY 0 0 7\r\nbob pw2\r\n"])
    assert r[1:] == [b"STORED\r\n", b"VALUE %s 0 1\r\nv\r\nEND\r\n" % ("k%d" % _seq[0]).encode(),
                     b"STORED\r\n"], r


def test_wrong_and_malformed_credentials():
    fail = [b"CLIENT_ERROR authentication failure\r\n"]
    for data in ("alice secret", "alice secret12", "alice Secret1", "eve secret1", "bob secret1",
                 "alice:secret1 x", "carol c", "carol c:with", "alice:secret1 secret1"):
        r = same(["set KEY 0 0 %d\r\n%s\r\n" % (len(data), data)], data)
        assert r == fail, (data, r)
    bad_format = [b"CLIENT_ERROR bad authentication token format\r\n"]
    for data in ("alice", "alice:secret1", "", " ", "  alice  "):
        r = same(["set KEY 0 0 %d\r\n%s\r\n" % (len(data), data)], data)
        assert r == bad_format, (data, r)
    termination = [b"CLIENT_ERROR bad command line termination\r\n"]
    assert same(["set KEY 0 0 1\r\nab\r\n"]) == termination
    assert same(["set KEY 0 0 4\r\na b c\r\n"]) == termination
    assert same(["set KEY 0 0 13\r\nalice secret1XX"]) == termination
    # after a failure the connection may try again
    r = same(["set KEY 0 0 12\r\nalice secret\r\n", "get KEY\r\n",
              "set KEY 0 0 13\r\nalice secret1\r\n", "get KEY\r\n"])
    assert r == [fail[0], b"CLIENT_ERROR unauthenticated\r\n", b"STORED\r\n", b"END\r\n"], r


def test_junk_without_a_newline_is_closed_silently():
    assert same(["a" * 2049]) == [b"<EOF>"]
    assert same(["a" * 2000, "a" * 100]) == [b"", b"<EOF>"]
    assert same(["x"]) == [b""]
    assert same(["get k" + "a" * 2047]) == [b"<EOF>"]


def test_counters_and_settings():
    def auth_stats(server):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5 * harness.SLOW)
        s.sendall(b"set x 0 0 7\r\nbob pw2\r\nstats\r\nstats settings\r\n")
        data = b""
        while data.count(b"END\r\n") < 2:
            data += s.recv(65536)
        s.close()
        stats = {}
        for line in data.decode().split("\r\n"):
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                stats[parts[1]] = parts[2]
        return stats
    before = [auth_stats(MC), auth_stats(NODE)]
    same(["set KEY 0 0 7\r\nbob pw2\r\n", "set KEY 0 0 7\r\nbob pw3\r\n"])
    same(["set KEY 0 0 7\r\nbob pw9\r\n"])
    same(["get KEY\r\n"])                           # not an attempt
    same(["set KEY 0 0 3\r\nbob\r\n"])              # malformed: not counted
    after = [auth_stats(MC), auth_stats(NODE)]
    for b, a in zip(before, after):
        # 2 attempts (a set once authenticated is a set), and the counting
        # connection's own
        assert int(a["auth_cmds"]) - int(b["auth_cmds"]) == 3, (b["auth_cmds"], a["auth_cmds"])
        assert int(a["auth_errors"]) - int(b["auth_errors"]) == 1
        assert a["auth_enabled_ascii"] == AUTH
    assert metric(NODE, "auth_commands_total") == int(after[1]["auth_cmds"])
    assert metric(NODE, "auth_failures_total") == int(after[1]["auth_errors"])


def metric(node, name):
    text = harness.http(node.admin_port, "GET", "/metrics")[2].decode()
    for line in text.splitlines():
        if line.startswith("bucketcache_" + name + " "):
            return float(line.split()[-1])
    raise AssertionError("no metric " + name)


def test_sighup_rereads_the_file():
    harness.write_secret(AUTH, "alice:secret1", "dave:newpass")
    for server in (MC, NODE):
        server.proc.signal(signal.SIGHUP)
    # memcached reloads on its next clock tick (its build is never sanitized)
    time.sleep(1.5 * max(1.0, harness.SLOW / 2))
    ok, fail = [b"STORED\r\n"], [b"CLIENT_ERROR authentication failure\r\n"]
    assert same(["set KEY 0 0 12\r\ndave newpass\r\n"]) == ok
    assert same(["set KEY 0 0 7\r\nbob pw2\r\n"]) == fail
    # a broken file keeps the users in force (memcached: the same, logged)
    with open(AUTH, "w") as f:
        f.write("no colon here\n")
    NODE.proc.signal(signal.SIGHUP)
    harness.wait_for(lambda: "cannot re-read the -Y file" in NODE.proc.output(), what="the log")
    assert exchange(NODE, ["set k 0 0 12\r\ndave newpass\r\n"]) == ok
    harness.write_secret(AUTH, "alice:secret1", "bob:pw2", "carol:c:with:colons")
    for server in (MC, NODE):
        server.proc.signal(signal.SIGHUP)
    time.sleep(1.5 * max(1.0, harness.SLOW / 2))


# ---- ours alone ----

def test_a_pipeline_before_authenticating_gets_every_reply():
    """memcached 1.6.18 overwrites each unauthenticated reply of a pipeline
    with the next and sends only the last one; we answer each."""
    r = exchange(NODE, ["get a\r\nget b\r\nset x 0 0 12\r\nalice secret\r\n"
                        "set x 0 0 13\r\nalice secret1\r\nset x 0 0 1\r\nv\r\nget x\r\n"])
    assert r == [b"CLIENT_ERROR unauthenticated\r\nCLIENT_ERROR unauthenticated\r\n"
                 b"CLIENT_ERROR authentication failure\r\nSTORED\r\nSTORED\r\n"
                 b"VALUE x 0 1\r\nv\r\nEND\r\n"], r
    m = exchange(MC, ["get a\r\nget b\r\n"])
    assert m == [b"CLIENT_ERROR unauthenticated\r\n"], m        # memcached: one reply of two


def test_a_huge_announced_size_is_not_buffered():
    s = socket.create_connection(("127.0.0.1", NODE.port), timeout=5 * harness.SLOW)
    s.sendall(b"set x 0 0 64000000\r\n")
    chunk = b"y" * (1 << 20)
    for _ in range(48):
        s.sendall(chunk)
    rss = harness.rss_kib(NODE.proc.pid)
    assert rss < 200 * 1024, rss              # 48 MiB sent, not kept
    s.close()
    assert exchange(NODE, ["set x 0 0 7\r\nbob pw2\r\n"]) == [b"STORED\r\n"]


def test_the_file_is_a_secret_file():
    import subprocess
    loose = harness.write_secret(os.path.join(harness.TMP, "loose-auth"), "a:b1")
    os.chmod(loose, 0o644)
    nine = harness.write_secret(os.path.join(harness.TMP, "nine-auth"),
                                *["u%d:p%d" % (i, i) for i in range(9)])
    nocolon = harness.write_secret(os.path.join(harness.TMP, "nocolon-auth"), "alice")
    for path, why in ((loose, "other users can read it"), (nine, "more than 8"),
                      (nocolon, "is not user:password"), ("/nonexistent/auth", "cannot open")):
        r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "-Y", path],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and why in r.stderr, (path, r.stderr[-500:])
    # comments and blank lines are fine
    commented = harness.write_secret(os.path.join(harness.TMP, "commented-auth"),
                                     "# users", "", "erin:pw5")
    n = harness.Node("-Y", commented)
    assert exchange(n, ["set x 0 0 8\r\nerin pw5\r\n"]) == [b"STORED\r\n"]
    n.stop()


def test_in_a_cluster_forwarded_requests_ride_the_peer_link():
    zk = harness.ZooKeeper()
    cl = harness.create_cluster(zk, "yauth", buckets=16)
    g1 = harness.ClusterNode(zk, cl, 1, "-Y", AUTH)
    g2 = harness.ClusterNode(zk, cl, 2, "-Y", AUTH)
    con = harness.Console(zk, cl)
    c = harness.wait_for(lambda: (lambda t: t["c"] if 0 not in t["c"] and set(t["c"]) == {1, 2}
                                  else None)(harness.tables(zk, cl)), what="tables")
    k = harness.key_in_bucket_owned_by(c, 2, prefix="y")
    # unauthenticated on the node that does not own the key: refused there
    assert exchange(g1, ["get %s\r\n" % k]) == [b"CLIENT_ERROR unauthenticated\r\n"]
    # authenticated there: the owner (also -Y) serves the forwarded requests
    r = exchange(g1, ["set a 0 0 7\r\nbob pw2\r\n", "set %s 0 0 2\r\nhi\r\n" % k,
                      "get %s\r\n" % k], wait=0.5)
    assert r == [b"STORED\r\n", b"STORED\r\n", b"VALUE %s 0 2\r\nhi\r\nEND\r\n" % k.encode()], r
    assert exchange(g2, ["set a 0 0 7\r\nbob pw2\r\nget %s\r\n" % k]) == \
        [b"STORED\r\nVALUE %s 0 2\r\nhi\r\nEND\r\n" % k.encode()]
    # -Y in a cluster without the cluster secret: refused at start
    import subprocess
    r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "-Y", AUTH, "--zk",
                        zk.hosts, "--cluster", cl, "--group", "3", "--insecure-no-peer-auth"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "-Y in a cluster needs the cluster secret" in r.stderr, r.stderr
    for p in (g1, g2, con):
        p.stop()
    zk.stop()


harness.main(globals())
