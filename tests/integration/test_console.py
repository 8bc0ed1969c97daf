"""The console against a real ZooKeeper: leader election, kill -9
failover within the session timeout, never two active consoles, its HTTP
API, bad requests, and a ZooKeeper restart."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

zk = harness.ZooKeeper()
cluster = harness.create_cluster(zk, "consoles", buckets=32)
SESSION_MS = harness.SESSION_MS
# The killed leader's session in the failover test, which measures how
# soon a standby takes over: the product's figure, not stretched.
FAILOVER_SESSION_MS = 2000


def active_of(consoles):
    return [c for c in consoles if c.proc.poll() is None and c.is_active()]


def test_one_active_then_failover_after_kill9():
    a = harness.Console(zk, cluster, session_timeout_ms=FAILOVER_SESSION_MS)
    harness.wait_for(a.is_active, what="first console active")
    b = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    c = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    time.sleep(1.0)
    assert [x.admin_port for x in active_of([a, b, c])] == [a.admin_port]
    assert b.health()["role"] == "standby"

    a.kill()  # kill -9: its session lives on until it expires
    t0 = time.time()
    harness.wait_for(lambda: len(active_of([b, c])) == 1,
                     timeout=FAILOVER_SESSION_MS / 1000 + 5, interval=0.05,
                     what="a standby to take over")
    took = time.time() - t0
    # the session timeout, plus ZooKeeper's expiry tick and the standby's
    # reaction (stretched for sanitizers and a loaded machine)
    assert took <= FAILOVER_SESSION_MS / 1000 + harness.reaction_slack(2.0), took
    # the next in line (b) takes over, not c
    harness.wait_for(lambda: b.is_active() and not c.is_active(), timeout=5,
                     what="b (next in line) active, c standby")
    b.stop()  # a clean stop hands over at once
    harness.wait_for(c.is_active, timeout=3, what="c active after b stopped")
    c.stop()


def test_never_two_active_under_churn():
    consoles = [harness.Console(zk, cluster, session_timeout_ms=SESSION_MS) for _ in range(3)]
    harness.wait_for(lambda: len(active_of(consoles)) == 1, what="one active")
    for round_ in range(3):
        victim = active_of(consoles)[0]
        victim.proc.signal(signal.SIGKILL if round_ % 2 == 0 else signal.SIGTERM)
        victim.proc.p.wait()
        deadline = time.time() + (SESSION_MS / 1000 + 4) * harness.SLOW
        while time.time() < deadline:
            live = [c for c in consoles if c.proc.poll() is None]
            assert len(active_of(live)) <= 1
            if len(active_of(live)) == 1:
                break
            time.sleep(0.05)
        consoles.append(harness.Console(zk, cluster, session_timeout_ms=SESSION_MS))
    live = [c for c in consoles if c.proc.poll() is None]
    assert len(active_of(live)) == 1
    for c in live:
        assert c.stop() == 0


def test_api_and_bad_requests():
    c = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    harness.wait_for(c.is_active, what="active")
    st, doc = harness.http_json(c.admin_port, "GET", "/v1/cluster")
    assert st == 200 and doc["cluster"] == cluster and doc["buckets"] == 32, doc
    st, doc = harness.http_json(c.admin_port, "GET", "/health")
    assert st == 200 and re.fullmatch(r"\d+\.\d+\.\d+", doc["version"]), doc
    st, doc = harness.http_json(c.admin_port, "GET", "/v1/tables")
    assert st == 200 and len(doc["c"]) == 32 and len(doc["m"]) == 32 and len(doc["d"]) == 32
    st, doc = harness.http_json(c.admin_port, "POST", "/v1/rebalance?dry_run=1")
    assert st == 200 and doc["dry_run"] is True, doc
    st, doc = harness.http_json(c.admin_port, "POST", "/v1/rebalance?dry_run=maybe")
    assert st == 400 and "dry_run" in doc["error"]
    st, doc = harness.http_json(c.admin_port, "POST", "/v1/rebalance?bogus=1")
    assert st == 400 and "bogus" in doc["error"]
    st, doc = harness.http_json(c.admin_port, "GET", "/v1/nope")
    assert st == 404 and "error" in doc
    st, doc = harness.http_json(c.admin_port, "DELETE", "/v1/tables")
    assert st == 405 and "error" in doc
    st, doc = harness.http_json(c.admin_port, "POST", "/v1/rebalance", body=b"x" * 100000)
    assert st == 413, (st, doc)
    st, _, body = harness.http(c.admin_port, "GET", "/metrics")
    assert st == 200 and b"bucketcache_console_active 1" in body
    st, hdrs, body = harness.http(c.admin_port, "GET", "/")
    assert st == 200 and b"<html" in body and "text/html" in hdrs["content-type"]
    assert c.stop() == 0


def test_cli_status_groups_rebalance():
    import json
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "status")
    assert rc == 4 and "no console" in err, (rc, out, err)
    c = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    harness.wait_for(c.is_active, what="active")
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "status")
    assert rc == 0 and "32 buckets" in out and "active console 127.0.0.1:%d" % c.admin_port in out, out
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "status", "--json")
    assert rc == 0 and json.loads(out)["buckets"] == 32
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "groups", "--json")
    assert rc == 0 and json.loads(out) == []
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "rebalance", "--dry-run")
    assert rc == 0 and "nothing written" in out, (out, err)
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "rebalance", "--bogus")
    assert rc == 2, (rc, out, err)
    c.stop()


def test_standby_refuses_rebalance():
    a = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    harness.wait_for(a.is_active, what="active")
    b = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    time.sleep(0.5)
    st, doc = harness.http_json(b.admin_port, "POST", "/v1/rebalance")
    assert st == 409 and doc["active_console"].endswith(":%d" % a.admin_port), doc
    a.stop()
    b.stop()


def test_paused_leader_is_fenced_and_rejoins_as_standby():
    a = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    harness.wait_for(a.is_active, what="a active")
    b = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    time.sleep(0.5)
    a.proc.signal(signal.SIGSTOP)  # past its session timeout: it is expired
    harness.wait_for(b.is_active, timeout=SESSION_MS / 1000 + 5, what="b takes over")
    a.proc.signal(signal.SIGCONT)
    # a wakes with an expired session: it must come back as a standby
    harness.wait_for(lambda: a.health()["role"] == "standby", timeout=10,
                     what="a back as standby")
    for _ in range(20):
        assert len(active_of([a, b])) == 1
        time.sleep(0.05)
    assert b.is_active()
    a.stop()
    b.stop()


def test_bad_flags_and_missing_cluster():
    import subprocess
    for args, needle in [
        (["--cluster", "x"], "--zk is required"),
        (["--zk", zk.hosts, "--cluster", "bad/name"], "invalid name"),
        (["--zk", zk.hosts, "--cluster", "x", "--orphan-grace-ms", "soon"], "orphan-grace-ms"),
        (["--zk", zk.hosts, "--cluster", "x", "--frobnicate"], "unknown flag"),
        (["--zk", zk.hosts, "--cluster", "x", "--precopy-ahead", "9"], "--precopy-ahead: expected 1..8"),
        (["--zk", zk.hosts, "--cluster", "x", "--config", "/nonexistent/c.json"], "c.json"),
    ]:
        r = subprocess.run([harness.CONSOLE_BIN] + args, capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
    r = subprocess.run([harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", "nosuch",
                        "--admin-port", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "does not exist" in r.stderr, r.stderr
    bad = os.path.join(harness.TMP, "console.json")
    with open(bad, "w") as f:
        f.write('{"zookeeper": {"hosts": "%s", "cluster": "x", "sesion": 1}}' % zk.hosts)
    r = subprocess.run([harness.CONSOLE_BIN, "--config", bad], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 2 and "console.json" in r.stderr and "sesion" in r.stderr, r.stderr
    with open(bad, "w") as f:
        f.write('{"zookeeper": {"hosts": "%s", "cluster": "x"}, "migrations": '
                '{"precopy_ahead": 0}}' % zk.hosts)
    r = subprocess.run([harness.CONSOLE_BIN, "--config", bad], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 2 and "migrations.precopy_ahead" in r.stderr, r.stderr
    r = subprocess.run([harness.CONSOLE_BIN, "--help"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "--orphan-grace-ms" in r.stdout


def test_zookeeper_restart():
    c = harness.Console(zk, cluster, session_timeout_ms=SESSION_MS)
    harness.wait_for(c.is_active, what="active")
    zk.stop()
    time.sleep(1.0)
    assert c.proc.poll() is None
    zk.start()
    harness.wait_for(c.is_active, timeout=20, what="active again after ZooKeeper restart")
    st, doc = harness.http_json(c.admin_port, "GET", "/v1/tables")
    assert st == 200
    assert c.stop() == 0


harness.main(globals())
