"""Access to the HTTP ports (docs/security.md): the admin token on the node's
admin port and the console's API (right, wrong, missing, replayed until
rotated), the browser checks (cross-origin writes, DNS rebinding, form
bodies), bodies refused at once, slow and idle clients on both HTTP ports,
and the data port's idle timeout compared with memcached's."""
import concurrent.futures
import http.client as httpclient
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, Node, http, wait_for  # noqa: E402

# 1000 client sockets and the servers' own need more than the usual 1024.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(_soft, 8192), _hard), _hard))


def token_file(*tokens, mode=0o600):
    """A token file holding tokens (new ones first); returns its path."""
    path = os.path.join(harness.TMP, "token-%s" % secrets.token_hex(4))
    with open(path, "w") as f:
        f.write("# admin token\n" + "".join(t + "\n" for t in tokens))
    os.chmod(path, mode)
    return path


def free_port_any():
    """A port free on every address (for a server listening on 0.0.0.0: the
    many client sockets of these tests hold ports on 127.0.0.x)."""
    return harness.free_port("0.0.0.0")


def new_token():
    return secrets.token_hex(24)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def json_error(status, headers, body, expected):
    assert status == expected, (status, body)
    assert headers.get("content-type") == "application/json", headers
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    return doc["error"]


def raw(port, data, src="127.0.0.1", timeout=5.0):
    """Sends raw bytes, returns everything the server sends back before it
    closes or goes quiet for a moment."""
    with socket.socket() as s:
        s.bind((src, 0))
        s.settimeout(timeout * SLOW)
        s.connect(("127.0.0.1", port))
        s.sendall(data)
        out = b""
        t0 = time.time()
        while time.time() - t0 < timeout * SLOW:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
        return out


# ---- the node's admin port ----

def test_node_token_required_for_changes_on_loopback():
    tok = new_token()
    n = Node("--auth-token-file", token_file(tok))
    port = n.admin_port
    # reads stay open on loopback; /health shows little without the token
    status, _, body = http(port, "GET", "/health")
    assert status == 200
    doc = json.loads(body)
    assert doc == {"status": "ok", "mode": "standalone"}, doc
    doc = json.loads(http(port, "GET", "/health", headers=bearer(tok))[2])
    assert doc["pid"] == n.proc.pid and "version" in doc, doc
    assert http(port, "GET", "/stats")[0] == 200
    # every change needs it: missing, malformed, wrong
    for headers, fragment in (({}, "authentication required"),
                              ({"Authorization": "Basic dXNlcjpwdw=="}, "malformed"),
                              ({"Authorization": "Bearer"}, "malformed"),
                              (bearer(new_token()), "not valid"),
                              (bearer(tok + "0"), "not valid"),
                              (bearer(tok[:-1]), "not valid")):
        status, h, body = http(port, "PUT", "/v1/keys/k", body=b"v", headers=headers)
        assert fragment in json_error(status, h, body, 401), (fragment, body)
        assert h.get("www-authenticate", "").startswith("Bearer"), h
        status, h, body = http(port, "DELETE", "/v1/keys/k", headers=headers)
        json_error(status, h, body, 401)
    # GET of the export holds a bucket: a change in all but method
    status, h, body = http(port, "GET", "/v1/migrate/export?bucket=1&epoch=1")
    json_error(status, h, body, 401)
    # right
    assert http(port, "PUT", "/v1/keys/k", body=b"v", headers=bearer(tok))[0] == 201
    assert http(port, "GET", "/v1/keys/k")[2] == b"v"
    assert http(port, "DELETE", "/v1/keys/k", headers=bearer(tok))[0] == 204
    # a refused write with a body is answered before the body is read
    reply = raw(port, b"PUT /v1/keys/big HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: 60000\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 401 "), reply[:200]
    n.stop()


def test_node_beyond_loopback_needs_token_for_everything():
    # without a token: refused at start, saying why (exit 2)
    port, admin = harness.free_port(), free_port_any()
    r = subprocess.run([harness.NODE_BIN, "-l", "127.0.0.1", "-p", str(port), "--admin-port",
                        str(admin), "--admin-listen", "0.0.0.0", "-t", "1"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "beyond loopback" in r.stderr and "--auth-token-file" in r.stderr, r.stderr[-2000:]
    assert "--insecure-no-auth" in r.stderr
    # told explicitly: starts, and says so loudly
    n = Node("--admin-listen", "0.0.0.0", "--insecure-no-auth", admin_port=free_port_any())
    assert http(n.admin_port, "PUT", "/v1/keys/k", body=b"v")[0] == 201
    assert "INSECURE" in n.proc.output()
    n.stop()
    # both at once contradict
    r = subprocess.run([harness.NODE_BIN, "--insecure-no-auth", "--auth-token-file",
                        token_file(new_token()), "-p", "0", "--admin-port", "0"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "contradict" in r.stderr, r.stderr
    # with a token: every request but /health needs it
    tok = new_token()
    n = Node("--admin-listen", "0.0.0.0", "--auth-token-file", token_file(tok),
             admin_port=free_port_any())
    for path in ("/stats", "/metrics", "/v1/keys/k", "/v1/repl", "/nope"):
        status, h, body = http(n.admin_port, "GET", path)
        json_error(status, h, body, 401)
    assert http(n.admin_port, "GET", "/health")[0] == 200
    assert http(n.admin_port, "GET", "/stats", headers=bearer(tok))[0] == 200
    # a Host other than loopback is fine beyond loopback (it is the server's name)
    assert http(n.admin_port, "GET", "/stats",
                headers=dict(bearer(tok), Host="cache-7.example:11280"))[0] == 200
    n.stop()


def test_token_file_refused_when_readable_by_others():
    path = token_file(new_token(), mode=0o644)
    r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "--auth-token-file",
                        path], capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "other users can read it" in r.stderr, r.stderr
    path = token_file("tooshort")
    r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "--auth-token-file",
                        path], capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "too short" in r.stderr, r.stderr
    assert "tooshort" not in r.stderr   # never echoes a secret


def test_replayed_token_works_until_rotated():
    old, new = new_token(), new_token()
    path = token_file(old)
    n = Node("--auth-token-file", path)
    port = n.admin_port
    # a captured token is a bearer token: it keeps working ...
    for _ in range(3):
        assert http(port, "PUT", "/v1/keys/r", body=b"1", headers=bearer(old))[0] == 201
    # ... through a rotation's overlap (new first, old still accepted) ...
    with open(path, "w") as f:
        f.write(new + "\n" + old + "\n")
    n.proc.signal(signal.SIGHUP)
    wait_for(lambda: http(port, "PUT", "/v1/keys/r", body=b"2",
                          headers=bearer(new))[0] == 201, what="the new token accepted")
    assert http(port, "PUT", "/v1/keys/r", body=b"3", headers=bearer(old))[0] == 201
    # ... and not once it is removed
    with open(path, "w") as f:
        f.write(new + "\n")
    n.proc.signal(signal.SIGHUP)
    wait_for(lambda: http(port, "PUT", "/v1/keys/r", body=b"4",
                          headers=bearer(old))[0] == 401, what="the old token refused")
    assert http(port, "PUT", "/v1/keys/r", body=b"5", headers=bearer(new))[0] == 201
    # a broken edit keeps the tokens in force (and says so)
    with open(path, "w") as f:
        f.write("oops\n")
    n.proc.signal(signal.SIGHUP)
    wait_for(lambda: "tokens in force stay" in n.proc.output(), what="the reload refused")
    assert http(port, "PUT", "/v1/keys/r", body=b"6", headers=bearer(new))[0] == 201
    n.stop()


def test_cross_origin_and_form_writes_refused():
    tok = new_token()
    n = Node("--auth-token-file", token_file(tok))
    port = n.admin_port
    host = "127.0.0.1:%d" % port
    ok = dict(bearer(tok), **{"Content-Type": "application/octet-stream"})
    # what a page elsewhere would send, even with a token it somehow had
    for extra in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                  {"Sec-Fetch-Site": "same-site"}, {"Origin": "null"},
                  {"Origin": "http://%s" % host, "Sec-Fetch-Site": "cross-site"}):
        status, h, body = http(port, "PUT", "/v1/keys/x", body=b"v", headers=dict(ok, **extra))
        assert "refused" in json_error(status, h, body, 403), (extra, body)
    # the same origin, or no browser at all, is fine
    for extra in ({"Origin": "http://%s" % host, "Sec-Fetch-Site": "same-origin"}, {}):
        assert http(port, "PUT", "/v1/keys/x", body=b"v", headers=dict(ok, **extra))[0] == 201
    # bodies a form can send across origins without a preflight
    for ctype in ("text/plain", "application/x-www-form-urlencoded",
                  "multipart/form-data; boundary=x"):
        status, h, body = http(port, "PUT", "/v1/keys/x", body=b"v",
                               headers=dict(bearer(tok), **{"Content-Type": ctype}))
        json_error(status, h, body, 415)
    # DNS rebinding: a loopback server answers only loopback Host names ...
    status, h, body = http(port, "GET", "/stats", headers={"Host": "evil.example:%d" % port})
    assert "Host" in json_error(status, h, body, 403)
    assert http(port, "GET", "/stats", headers={"Host": "localhost:%d" % port})[0] == 200
    # ... unless the token came along
    assert http(port, "GET", "/stats", headers=dict(bearer(tok), Host="evil.example"))[0] == 200
    n.stop()


def test_bodies_refused_at_once():
    n = Node("-I", "64k")
    port = n.admin_port
    t0 = time.time()
    # a chunked body announcing a 2^48-byte chunk: 411 at once
    reply = raw(port, b"PUT /v1/keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n1000000000000\r\nxx")
    assert reply.startswith(b"HTTP/1.1 411 "), reply[:200]
    assert b"Content-Length" in reply.split(b"\r\n\r\n", 1)[1], reply
    # an impossible Content-Length, on any method: 413 at once
    for method in (b"PUT", b"GET", b"DELETE"):
        reply = raw(port, method + b" /v1/keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Content-Length: 281474976710656\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 413 "), (method, reply[:200])
    reply = raw(port, b"PUT /v1/keys/c HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Length: 99999999999999999999999\r\n\r\n")
    assert reply[:12] in (b"HTTP/1.1 400", b"HTTP/1.1 413"), reply[:200]
    assert time.time() - t0 < 5 * SLOW
    n.stop()


# ---- slow and idle clients ----

def hold_connections(port, count, trickle, per_address=40):
    """Opens count connections from 127.0.0.2, .3, ... (per_address each):
    idle ones send one byte, trickling ones one more byte per second.
    Returns (sockets, stop) -- call stop() to end the trickling."""
    socks = []
    for i in range(count):
        s = socket.socket()
        s.bind(("127.0.0.%d" % (2 + i // per_address), 0))
        s.settimeout(5 * SLOW)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        s.send(b"G")
        socks.append(s)
    done = threading.Event()

    def trickler():
        while not done.wait(1.0):
            for j, s in enumerate(socks):
                if trickle and j % 2:
                    try:
                        s.send(b"E")
                    except OSError:
                        pass
    th = threading.Thread(target=trickler, daemon=True)
    th.start()

    def stop():
        done.set()
        th.join()
    return socks, stop


def health_latency(port, seconds, headers=None):
    """The worst /health answer time over `seconds`, asked every 0.25 s."""
    worst = 0.0
    end = time.time() + seconds
    while time.time() < end:
        t0 = time.time()
        c = httpclient.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW)
        c.request("GET", "/health", headers=headers or {})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status in (200, 503), r.status
        worst = max(worst, time.time() - t0)
        time.sleep(0.25)
    return worst


def still_open(socks):
    n = 0
    for s in socks:
        try:
            if s.recv(16):
                n += 1
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def close_all(socks):
    for s in socks:
        s.close()


def test_node_admin_answers_while_1000_connections_are_held():
    n = Node()
    port = n.admin_port
    # the report: 100 connections that each sent one byte
    socks, stop = hold_connections(port, 100, trickle=False)
    assert health_latency(port, 1.5) < 1.0
    stop()
    close_all(socks)
    # 1000, half of them trickling a byte a second, from 25 addresses
    socks, stop = hold_connections(port, 1000, trickle=True)
    worst = health_latency(port, 5)
    assert worst < 1.0, worst
    assert still_open(socks) >= 900, "the connections were held meanwhile"
    # incomplete requests do not live forever: the request deadline (10 s)
    # closes idle and trickling ones alike
    wait_for(lambda: still_open(socks) == 0, timeout=20, interval=0.5,
             what="the held connections closed by the request deadline")
    stop()
    close_all(socks)
    assert health_latency(port, 1) < 1.0
    n.stop()


def test_connections_capped_per_address():
    n = Node()
    port = n.admin_port
    socks, stop = hold_connections(port, 1000, trickle=False, per_address=1000)
    # one address gets 256; the rest are closed at once, and others are served
    wait_for(lambda: still_open(socks) <= 256, timeout=10, what="the cap applied")
    assert still_open(socks) >= 200
    assert health_latency(port, 1) < 1.0
    stop()
    close_all(socks)
    n.stop()


def test_console_api_answers_while_1000_connections_are_held():
    zk = harness.ZooKeeper()
    cluster = harness.create_cluster(zk, "slowapi", buckets=16)
    con = harness.Console(zk, cluster)
    port = con.admin_port
    socks, stop = hold_connections(port, 1000, trickle=True)
    assert health_latency(port, 4) < 1.0
    t0 = time.time()
    status, _, body = http(port, "GET", "/v1/cluster")
    assert status == 200 and time.time() - t0 < 1.0, (status, time.time() - t0)
    assert still_open(socks) >= 900
    stop()
    close_all(socks)
    con.stop()
    zk.stop()


# ---- the console's API ----

def test_console_token_cli_and_dashboard():
    zk = harness.ZooKeeper()
    cluster = harness.create_cluster(zk, "secapi", buckets=16)
    tok = new_token()
    tfile = token_file(tok)
    con = harness.Console(zk, cluster, "--auth-token-file", tfile, migrations=True, token=tok)
    port = con.admin_port
    wait_for(con.is_active, what="the console active")
    # the example: a page elsewhere pausing migrations through a browser
    status, h, body = http(port, "POST", "/v1/migrations/pause",
                           headers={"Origin": "http://evil.example"})
    assert status in (401, 403), (status, body)
    status, h, body = http(port, "POST", "/v1/migrations/pause",
                           headers=dict(bearer(tok), Origin="http://evil.example"))
    json_error(status, h, body, 403)
    status, h, body = http(port, "POST", "/v1/migrations/pause")
    json_error(status, h, body, 401)
    status, h, body = http(port, "POST", "/v1/migrations/pause", headers=bearer(new_token()))
    json_error(status, h, body, 401)
    # a JSON body is the only kind a write may carry
    status, h, body = http(port, "POST", "/v1/migrations/pause", body=b"{}",
                           headers=dict(bearer(tok), **{"Content-Type": "text/plain"}))
    json_error(status, h, body, 415)
    status, h, body = http(port, "POST", "/v1/migrations/pause", body=b"{}", headers=bearer(tok))
    json_error(status, h, body, 415)
    status, h, body = http(port, "POST", "/v1/migrations/pause", headers=bearer(tok))
    assert status == 200, (status, body)
    assert json.loads(http(port, "GET", "/v1/migrations")[2])["paused"] is True
    # /health is open but says little (the version, as memcached's `version`
    # tells anyone); the dashboard page is open and asks for the token
    doc = json.loads(http(port, "GET", "/health")[2])
    assert set(doc) == {"status", "version", "role", "zookeeper_connected"}, doc
    doc = json.loads(http(port, "GET", "/health", headers=bearer(tok))[2])
    assert doc["cluster"] == cluster and doc["election_node"], doc
    status, h, page = http(port, "GET", "/")
    assert status == 200 and b"sessionStorage" in page and b"Bearer" in page
    # the CLI: without a token refused (exit 8), from a file or the environment accepted
    base = ["--zk", zk.hosts, "--cluster", cluster]
    rc, out, err = harness.cli(*base, "migrations", "resume")
    assert rc == 8 and "--auth-token-file" in err, (rc, out, err)
    rc, out, err = harness.cli(*base, "migrations", "resume", env={"BUCKETCACHE_TOKEN": "x" * 20})
    assert rc == 8, (rc, out, err)
    rc, out, err = harness.cli(*base, "--auth-token-file", tfile, "migrations", "resume")
    assert rc == 0, (rc, out, err)
    rc, out, err = harness.cli(*base, "migrations", "pause", env={"BUCKETCACHE_TOKEN": tok})
    assert rc == 0, (rc, out, err)
    rc, out, err = harness.cli(*base, "rebalance", "--dry-run", env={"BUCKETCACHE_TOKEN": tok})
    assert rc == 0, (rc, out, err)
    rc, out, err = harness.cli(*base, "--auth-token-file", "/nonexistent", "status")
    assert rc == 2 and "cannot open" in err, (rc, err)
    # reads stay open on loopback
    rc, out, err = harness.cli(*base, "status")
    assert rc == 0, (rc, out, err)
    con.stop()
    # beyond loopback without a token: refused at start
    r = subprocess.run([harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", cluster,
                        "--admin-port", str(free_port_any()), "--admin-listen", "0.0.0.0"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and "--auth-token-file" in r.stderr, r.stderr[-2000:]
    zk.stop()


def test_nodes_and_console_share_the_token():
    """The console and other nodes present the cluster's admin token to a
    node's admin port (bucket sizes, migrations), also beyond loopback."""
    zk = harness.ZooKeeper()
    cluster = harness.create_cluster(zk, "sectok", buckets=16)
    tok = new_token()
    tfile = token_file(tok)
    g1 = harness.ClusterNode(zk, cluster, 1, "--auth-token-file", tfile,
                             "--admin-listen", "0.0.0.0", wait=False, admin_port=free_port_any())
    harness.wait_port(g1.admin_port, proc=g1.proc.p)
    wait_for(lambda: json.loads(http(g1.admin_port, "GET", "/stats", headers=bearer(tok))[2])
             .get("cluster", {}).get("registrations", 0) >= 1, what="node registered")
    con = harness.Console(zk, cluster, "--auth-token-file", tfile, migrations=True, token=tok)
    wait_for(lambda: 0 not in harness.tables(zk, cluster)["c"], what="buckets assigned")
    c = g1.conn()
    wait_for(lambda: c.cmd("set k0 0 0 2", "vv") == b"STORED\r\n", what="group 1 writable")
    for i in range(50):
        r = c.cmd("set k%d 0 0 2" % i, "vv")
        assert r == b"STORED\r\n", r
    c.close()
    # a second group: buckets migrate from g1, whose export needs the token
    g2 = harness.ClusterNode(zk, cluster, 2, "--auth-token-file", tfile,
                             "--admin-listen", "0.0.0.0", wait=False, admin_port=free_port_any())
    harness.wait_port(g2.admin_port, proc=g2.proc.p)
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "rebalance",
                               env={"BUCKETCACHE_TOKEN": tok})
    assert rc == 0, (rc, out, err)
    wait_for(lambda: (lambda t: 2 in t["c"] and t["m"] == t["d"])(harness.tables(zk, cluster)),
             timeout=30, what="buckets moved onto group 2")
    moved = json.loads(http(g2.admin_port, "GET", "/stats", headers=bearer(tok))[2])
    assert moved["cache"]["curr_items"] > 0, moved["cache"]
    con.stop()
    g2.stop()
    g1.stop()
    zk.stop()


# ---- the data port: memcached's -o idle_timeout ----

def idle_kick_time(port, trickle, limit=10):
    """Seconds until the server closes a connection that sends nothing (or
    a command it never finishes, one byte every half second); limit when
    it does not."""
    s = socket.create_connection(("127.0.0.1", port))
    t0 = time.time()
    s.settimeout(0.5)
    if trickle:
        s.sendall(b"stats")
    while time.time() - t0 < limit:
        try:
            if trickle:
                s.sendall(b" ")
            if s.recv(100) == b"":
                break
        except socket.timeout:
            continue
        except OSError:
            break
    s.close()
    return time.time() - t0


def test_data_port_idle_timeout_matches_memcached():
    node = Node("-o", "idle_timeout=2")
    mc = harness.Memcached("-o", "idle_timeout=2")

    def kicks_idle_keeps_active(port):
        for trickle in (False, True):
            t = idle_kick_time(port, trickle)
            # memcached kicks on a whole-second clock, from a thread that
            # sleeps until the oldest connection may be due: 2 to 4 s, and
            # later on a loaded machine
            assert 2.0 < t < 5.5 * SLOW, (port, trickle, t)
        # active connections stay
        c = harness.McConn(port)
        for _ in range(5):
            c.send(b"version\r\n")
            assert c.readline().startswith(b"VERSION")
            time.sleep(1)
        c.close()
    # both servers at once: the test is all waiting
    plain = Node()          # off by default

    def never_kicks(port):
        assert idle_kick_time(port, False, limit=4) >= 4
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(kicks_idle_keeps_active, node.port),
                  pool.submit(kicks_idle_keeps_active, mc.port),
                  pool.submit(never_kicks, plain.port)]:
            f.result()
    for srv in (node, mc):
        c = srv.conn()
        stats = c.stats()
        settings = c.stats("settings")
        c.close()
        assert int(stats["idle_kicks"]) == 2, stats.get("idle_kicks")
        assert settings["idle_timeout"] == "2"
    c = plain.conn()
    assert c.stats("settings")["idle_timeout"] == "0"
    c.close()
    r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "-o",
                        "idle_timeout=abc"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "idle_timeout" in r.stderr, r.stderr
    plain.stop()
    node.stop()
    mc.stop()


def test_accept_pauses_counted_and_reset_as_memcached():
    """Out of descriptors, the node stops accepting (memcached: the same)
    and counts it in listen_disabled_num / time_in_listen_disabled_us;
    "stats reset" zeroes both, as memcached's, while accepting_conns is a
    state and says 1 again once a descriptor is free."""
    node = Node()
    probe = node.conn()                       # a connection that stays usable
    subprocess.run(["prlimit", "--pid", str(node.proc.pid), "--nofile=64:64"], check=True)
    held = []
    try:
        for _ in range(80):                   # well past 64 descriptors
            try:
                held.append(socket.create_connection(("127.0.0.1", node.port), timeout=2))
            except OSError:
                break
        wait_for(lambda: int(probe.stats()["listen_disabled_num"]) >= 1,
                 what="an accept pause counted")
        st = probe.stats()
        assert st["accepting_conns"] == "0", st["accepting_conns"]
        for c in held:
            c.close()
        held = []
        wait_for(lambda: probe.stats()["accepting_conns"] == "1", what="accepting again")
        st = probe.stats()
        assert int(st["time_in_listen_disabled_us"]) > 0, st
        probe.send(b"stats reset\r\n")
        assert probe.readline() == b"RESET\r\n"
        st = probe.stats()
        assert st["listen_disabled_num"] == "0" and st["time_in_listen_disabled_us"] == "0", st
        assert st["accepting_conns"] == "1"
    finally:
        for c in held:
            c.close()
        probe.close()
        node.stop()


harness.main(globals())
