"""What an operator watches, against a real cluster: the nodes' per-bucket
counters and hot keys, the console's per-group statistics, busiest
buckets, merged hot keys and warnings, both processes' /metrics checked
by promtool, and the CLI's status, top and hotkeys.

Layout: group 1 = primary A1 + backup B1, group 2 = primary A2 + backup
B2, one console (a second joins later); the nodes start first, so the
console's first rebalance splits the buckets without moving data."""
import base64
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http, http_json  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "obs", buckets=NB)
S = {}


def cli(*args, **kw):
    return harness.cli(*args, "--zk", zk.hosts, "--cluster", CL, **kw)


def con_json(path, status=200):
    code, doc = http_json(S["con"].admin_port, "GET", path)
    assert code == status, (path, code, doc)
    return doc


def warnings():
    return con_json("/v1/warnings")["warnings"]


def kinds():
    return {(w["kind"], w.get("group", 0)) for w in warnings()}


def test_start_cluster():
    for name, g in (("a1", 1), ("a2", 2)):
        S[name] = harness.ClusterNode(zk, CL, g, session_timeout_ms=SESSION_MS)
    S["con"] = harness.Console(zk, CL, "--stats-interval-ms", "300", "--migration-stuck-ms", "1500",
                               session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, CL, lambda t: set(t["c"]) == {1, 2}, "both groups own buckets")
    S["tables"] = t
    for name, g in (("b1", 1), ("b2", 2)):
        S[name] = harness.ClusterNode(zk, CL, g, session_timeout_ms=SESSION_MS)
    for name in ("a1", "a2"):
        harness.wait_primary(S[name])
    harness.wait_for(lambda: all(harness.repl(S[n])["role"] == "backup" and harness.repl(S[n])["synced"]
                                 for n in ("b1", "b2")), what="backups synced")


def test_node_buckets_and_hotkeys_in_a_cluster():
    t = S["tables"]
    key = harness.key_in_bucket_owned_by(t["c"], 1, prefix="hot")
    S["hot_key"] = key
    S["hot_bucket"] = harness.bucket_of(key, NB)
    c = S["a1"].conn()
    assert c.cmd("set %s 0 0 5" % key, "hello") == b"STORED\r\n"
    for _ in range(600):
        c.send(("get %s\r\n" % key).encode())
    for _ in range(600):
        assert c.read_reply().startswith(("VALUE %s 0 5" % key).encode())
    miss = harness.key_in_bucket_owned_by(t["c"], 1, prefix="miss")
    for _ in range(50):
        assert c.cmd("get " + miss) == b"END\r\n"
    c.close()
    doc = http_json(S["a1"].admin_port, "GET", "/v1/buckets")[1]
    assert doc["group"] == 1 and doc["role"] == "primary" and doc["nbuckets"] == NB
    owned = [b["bucket"] for b in doc["buckets"] if b["owned"]]
    assert owned == [b for b in range(NB) if t["c"][b] == 1], (owned, t["c"])
    b = next(b for b in doc["buckets"] if b["bucket"] == S["hot_bucket"])
    assert b["gets"] >= 600 and b["hits"] >= 600 and b["sets"] >= 1 and b["items"] >= 1
    assert b["bytes_written"] >= 3000
    hk = http_json(S["a1"].admin_port, "GET", "/v1/hotkeys")[1]
    assert hk["keys"][0]["key"] == key and hk["keys"][0]["bucket"] == S["hot_bucket"], hk
    assert hk["group"] == 1 and hk["role"] == "primary"
    # the backup saw no client traffic: nothing counted there
    bdoc = http_json(S["b1"].admin_port, "GET", "/v1/buckets?buckets=active")[1]
    assert all(x["gets"] == 0 for x in bdoc["buckets"]), bdoc


def test_group_stats():
    def ready():
        d = con_json("/v1/groups/1/stats")
        return d if d["counters"]["gets"] >= 650 and d["last_minute"]["ops_per_s"] > 0 else None
    # the first sample of a node only sets baselines: send more traffic
    c = S["a1"].conn()
    for _ in range(20):
        for _ in range(50):
            c.send(("get %s\r\n" % S["hot_key"]).encode())
        for _ in range(50):
            c.read_reply()
        d = con_json("/v1/groups/1/stats")
        if d["counters"]["gets"] >= 650:
            break
        time.sleep(0.2)
    c.close()
    d = harness.wait_for(ready, what="group 1's counters")
    assert d["gid"] == 1 and d["up"] and d["primary"] and d["primary_reachable"]
    assert d["live_nodes"] == 2 and d["backups"] == 1
    assert d["memory"]["limit"] == 64 << 20 and 0 < d["memory"]["used"] < d["memory"]["limit"]
    assert d["items"] >= 1
    lm = d["last_minute"]
    assert 0.5 < lm["hit_ratio"] <= 1, lm
    assert lm["misses"] <= lm["gets"]
    assert d["buckets"]["c"] == S["tables"]["c"].count(1)
    rep = d["replication"]
    assert len(rep) == 1 and rep[0]["reachable"] and rep[0]["link_up"], rep
    assert rep[0]["lag_ms"] >= 0 and "lag_bytes" in rep[0]
    # bad requests: 400/404 with a JSON message
    for path, code in (("/v1/groups/99/stats", 404), ("/v1/groups/abc/stats", 400),
                       ("/v1/groups/0/stats", 400), ("/v1/groups/1/stats?x=1", 400),
                       ("/v1/groups/1/other", 404)):
        st, doc = http_json(S["con"].admin_port, "GET", path)
        assert st == code and isinstance(doc["error"], str), (path, st, doc)
    groups = con_json("/v1/stats/groups")["groups"]
    assert [g["gid"] for g in groups] == [1, 2]
    # the console samples every 300 ms: a fast run gets here after one
    hist = harness.wait_for(lambda: (lambda h: h if len(h["points"]) >= 2 else None)(
        con_json("/v1/stats/history")), what="two history points")
    assert hist["interval_ms"] == 300
    p = hist["points"][-1]
    assert {g["gid"] for g in p["groups"]} == {1, 2}
    assert all("mem_used" in g and "ops_per_s" in g for g in p["groups"])


def test_busiest_buckets_and_bucket_detail():
    top = harness.wait_for(lambda: (lambda d: d if d["buckets"][0]["ops_per_s"] > 0 else None)(
        con_json("/v1/buckets/top?by=ops&n=5")), what="a busy bucket")
    assert top["by"] == "ops" and len(top["buckets"]) == 5
    assert top["buckets"][0]["bucket"] == S["hot_bucket"], top
    assert top["buckets"][0]["owner"] == 1
    assert con_json("/v1/buckets/top?by=bytes")["buckets"][0]["bytes"] > 0
    assert "misses_per_s" in con_json("/v1/buckets/top?by=misses&n=1")["buckets"][0]
    for bad in ("by=foo", "n=0", "n=x", "what=1", "by=ops%00"):
        st, doc = http_json(S["con"].admin_port, "GET", "/v1/buckets/top?" + bad)
        assert st == 400 and "error" in doc, (bad, st, doc)
    b = con_json("/v1/buckets/%d" % S["hot_bucket"])
    assert b["bucket"] == S["hot_bucket"] and b["tables"]["c"] == 1
    assert b["primary"] == http_json(S["a1"].admin_port, "GET", "/health")[1]["node"]
    assert b["backups"] == [http_json(S["b1"].admin_port, "GET", "/health")[1]["node"]]
    assert b["pending_move"] is None and b["counters"]["gets"] >= 600
    for bad in ("/v1/buckets/%d" % NB, "/v1/buckets/x", "/v1/buckets/-1"):
        assert http_json(S["con"].admin_port, "GET", bad)[0] == 400, bad


def test_merged_hotkeys():
    doc = harness.wait_for(lambda: (lambda d: d if d["groups"] and d["groups"][0]["keys"] else None)(
        con_json("/v1/hotkeys?group=1&n=3")), what="group 1's hot keys")
    assert len(doc["groups"]) == 1 and doc["groups"][0]["gid"] == 1
    k = doc["groups"][0]["keys"][0]
    assert k["key"] == S["hot_key"] and k["bucket"] == S["hot_bucket"] and k["rate_per_s"] > 0
    assert {g["gid"] for g in con_json("/v1/hotkeys")["groups"]} == {1, 2}
    for bad in ("group=0", "group=x", "n=0", "foo=1"):
        assert http_json(S["con"].admin_port, "GET", "/v1/hotkeys?" + bad)[0] == 400, bad


def test_metrics_are_promtool_clean():
    text = http(S["con"].admin_port, "GET", "/metrics")[2].decode()
    assert harness.promtool_check(text) == "", harness.promtool_check(text)
    v, types = harness.parse_metrics(text)
    assert v['bucketcache_group_up{group="1"}'] == 1 and v['bucketcache_group_up{group="2"}'] == 1
    assert v['bucketcache_group_buckets_owned{group="1"}'] == S["tables"]["c"].count(1)
    assert v["bucketcache_unowned_buckets"] == 0
    assert v['bucketcache_group_nodes{group="1",role="backup"}'] == 1
    assert v['bucketcache_group_nodes{group="1",role="primary"}'] == 1
    assert v['bucketcache_group_backups_missing{group="1"}'] == 0
    assert v['bucketcache_migrations{state="pending"}'] == 0
    assert v['bucketcache_group_commands_total{group="1",command="get",status="hit"}'] > 0
    assert types["bucketcache_console_migration_stall_seconds"] == "histogram"
    assert v['bucketcache_console_migration_stall_seconds_bucket{le="+Inf"}'] == \
        v["bucketcache_console_migration_stall_seconds_count"]
    # the console's ZooKeeper transactions: it created the tables at least
    assert types["bucketcache_console_zk_commit_seconds"] == "histogram"
    commits = v["bucketcache_console_zk_commit_seconds_count"]
    assert commits >= 1 and v['bucketcache_console_zk_commit_seconds_bucket{le="+Inf"}'] == commits
    assert 0 < v["bucketcache_console_zk_commit_seconds_sum"] < commits * 10
    assert types["bucketcache_group_evictions_total"] == "counter"
    assert any(k.startswith("bucketcache_group_backup_lag_seconds{") for k in v)
    for name in ("a1", "b1"):
        for path in ("/metrics", "/metrics?per_bucket=1"):
            text = http(S[name].admin_port, "GET", path)[2].decode()
            assert harness.promtool_check(text) == "", (name, path, harness.promtool_check(text))
            harness.parse_metrics(text)


def test_cli_status_top_hotkeys():
    rc, out, err = cli("status")
    assert rc == 0, (out, err)
    assert "MEMORY used/limit" in out and "OPS/S" in out and "HIT%" in out, out
    line = next(l for l in out.splitlines() if l.startswith("1 "))
    assert "/64 MiB" in line or "/64.0 MiB" in line, line
    assert "warnings:" in out
    rc, out, err = cli("status", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["stats"][0]["gid"] == 1 and "warnings" in doc
    rc, out, err = cli("top", "--json", "--n", "3")
    assert rc == 0 and json.loads(out)["buckets"][0]["bucket"] == S["hot_bucket"], (out, err)
    rc, out, err = cli("top", "--by", "bytes")
    assert rc == 0 and out.splitlines()[0].split()[:2] == ["BUCKET", "GROUP"], out
    rc, out, err = harness.cli("top", "--watch", "--interval", "200", "--count", "2",
                               "--zk", zk.hosts, "--cluster", CL)
    assert rc == 0 and out.count("busiest buckets by ops") == 2, (out, err)
    rc, out, err = cli("top", "--by", "nonsense")
    assert rc == 2 and "--by" in err
    rc, out, err = cli("hotkeys", "--group", "1", "--n", "2")
    assert rc == 0 and S["hot_key"] in out, (out, err)
    rc, out, err = cli("hotkeys", "--json")
    assert rc == 0 and {g["gid"] for g in json.loads(out)["groups"]} == {1, 2}


def test_cli_behaves():
    # global options anywhere, as git and kubectl take them
    a = harness.cli("--zk", zk.hosts, "--cluster", CL, "tables", "--json")
    b = harness.cli("tables", "--zk", zk.hosts, "--cluster", CL, "--json")
    c = harness.cli("tables", "--json", "--zk=" + zk.hosts, "--cluster=" + CL)
    assert a[0] == b[0] == c[0] == 0 and json.loads(a[1]) == json.loads(b[1]) == json.loads(c[1])
    rc, out, err = harness.cli("--version")
    assert rc == 0 and out.startswith("bucketcache ") and out.split()[1][0].isdigit()
    rc, out, err = harness.cli("help")
    assert rc == 0 and "top" in out and "hotkeys" in out
    for cmd in ("status", "groups", "tables", "rebalance", "locate", "migrations", "top",
                "hotkeys", "get", "gets", "set", "del", "touch", "incr", "decr"):
        rc, out, err = harness.cli("help", cmd)
        assert rc == 0 and out.startswith("usage: bucketcache " + cmd), (cmd, out, err)
        rc2, out2, _ = harness.cli(cmd, "--help")
        assert rc2 == 0 and out2 == out, cmd
    for cmd in (("cluster", "create"), ("group", "config")):
        rc, out, err = harness.cli(*cmd, "--help")
        assert rc == 0 and out.startswith("usage: bucketcache %s %s" % cmd), (cmd, out)
    rc, out, err = harness.cli("help", "nonsense")
    assert rc == 2 and "nonsense" in err
    # a usage error names the option
    rc, out, err = harness.cli("--frobnicate", "tables")
    assert rc == 2 and "--frobnicate" in err, err
    rc, out, err = cli("tables", "--frobnicate")
    assert rc == 2 and "--frobnicate" in err, err
    rc, out, err = harness.cli("tables", "--zk")
    assert rc == 2 and "--zk" in err, err
    # a wrong ZooKeeper address: one line naming hosts, failure, exit code
    for argv in (("tables",), ("get", "k")):
        rc, out, err = harness.cli(*argv, "--zk", "127.0.0.1:1", "--cluster", CL)
        lines = [l for l in err.splitlines() if l.strip()]
        assert rc == 4 and len(lines) == 1, (argv, err)
        assert "127.0.0.1:1" in lines[0] and "exit code 4" in lines[0], lines
    # --json is binary-safe: a NUL or invalid UTF-8 comes as base64
    key = harness.key_in_bucket_owned_by(S["tables"]["c"], 1, prefix="bin")
    raw = b"\xff\x00\xfe"
    conn = S["a1"].conn()
    assert conn.cmd("set %s 0 0 3" % key, raw) == b"STORED\r\n"
    assert conn.cmd("set %s-txt 0 0 5" % key, "h\xe9llo".encode()) == b"STORED\r\n" or True
    conn.close()
    rc, out, err = cli("get", key, "--json")
    doc = json.loads(out)
    assert rc == 0 and "value" not in doc and base64.b64decode(doc["value_base64"]) == raw, out
    rc, out, err = cli("gets", key, "--json")
    assert rc == 0 and base64.b64decode(json.loads(out)["value_base64"]) == raw, out
    rc, out, err = cli("set", key + "-u", "h\u00e9llo", "--json")
    assert rc == 0 and json.loads(out)["stored"] is True
    rc, out, err = cli("get", key + "-u", "--json")
    assert rc == 0 and json.loads(out)["value"] == "h\u00e9llo", out


def test_warnings_an_operator_cannot_miss():
    # one console: no standby
    harness.wait_for(lambda: ("no_standby", 0) in kinds(), what="no_standby warning")
    S["con2"] = harness.Console(zk, CL, "--stats-interval-ms", "300",
                                session_timeout_ms=SESSION_MS)
    harness.wait_for(lambda: ("no_standby", 0) not in kinds(), what="standby counted")
    assert not any(k in ("no_backup", "group_down", "unowned_buckets") for k, _ in kinds()), \
        warnings()
    # a frozen backup stops answering: a warning for its group
    harness.freeze(S["b2"])
    try:
        harness.wait_for(lambda: {k for k, g in kinds() if g == 2} & {"backup_unreachable",
                                                                     "backup_lag"},
                         what="a warning for group 2's frozen backup")
    finally:
        harness.thaw(S["b2"])
    harness.wait_for(lambda: not {k for k, g in kinds() if g == 2}, what="group 2 healthy again")
        # kill a backup: "no backup" for its group, in the API, /metrics and the CLI
    S["b1"].proc.kill()
    harness.wait_for(lambda: ("no_backup", 1) in kinds(), timeout=SESSION_MS / 1000 + 15,
                     what="no_backup warning for group 1")
    v = harness.parse_metrics(http(S["con"].admin_port, "GET", "/metrics")[2].decode())[0]
    assert v['bucketcache_group_backups_missing{group="1"}'] == 1
    rc, out, err = cli("status")
    assert rc == 0 and "no_backup" in out and "group 1 has no backup" in out, out
    # stop group 2: it is down and its buckets are unowned
    for name in ("a2", "b2"):
        S[name].proc.kill()
    harness.wait_for(lambda: {("group_down", 2), ("unowned_buckets", 0)} <= kinds(),
                     timeout=SESSION_MS / 1000 + 20, what="group 2 down, buckets unowned")
    text = http(S["con"].admin_port, "GET", "/metrics")[2].decode()
    assert harness.promtool_check(text) == ""
    v = harness.parse_metrics(text)[0]
    assert v['bucketcache_group_up{group="2"}'] == 0
    assert v["bucketcache_unowned_buckets"] == S["tables"]["c"].count(2)
    rc, out, err = cli("status")
    assert rc == 0 and "group_down" in out and "unowned_buckets" in out, out
    # a new group makes moves the console may not run (migrations are off
    # here): no progress, so the migration is reported stuck
    S["a3"] = harness.ClusterNode(zk, CL, 3, session_timeout_ms=SESSION_MS)
    harness.wait_for(lambda: ("migration_stuck", 0) in kinds(), timeout=20,
                     what="migration_stuck warning")
    v = harness.parse_metrics(http(S["con"].admin_port, "GET", "/metrics")[2].decode())[0]
    assert v['bucketcache_migrations{state="pending"}'] > 0
    for name in ("a3", "a1", "con", "con2"):
        assert S[name].stop() == 0


harness.main(globals())
