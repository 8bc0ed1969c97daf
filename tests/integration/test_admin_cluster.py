"""The admin HTTP port of nodes in a cluster (real ZooKeeper and console):
the key API answers 421 Misdirected Request for buckets the node may not
serve (moved, not_primary, no_owner) and serves the ones it may; /health,
/stats and /metrics report the node's group, role, epoch and ZooKeeper
session.

Layout: group 1 = primary A + backup B, group 2 = node C.  Group 2 owns
nothing until data migration moves its share, so every bucket belongs to
group 1."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import http  # noqa: E402

NB = 16
SESSION_MS = harness.SESSION_MS
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "admin", buckets=NB)
S = {}   # the processes, started by the first test


def wait_tables(pred, what, timeout=15):
    return harness.wait_tables(zk, CL, pred, what, timeout)


def get_json(node, path):
    status, headers, body = http(node.admin_port, "GET", path)
    assert status == 200, (path, status, body)
    assert headers["content-type"] == "application/json", headers
    return json.loads(body)


def assert_misdirected(reply, reason, bucket, owner, epoch=None):
    status, headers, body = reply
    assert status == 421, (status, body)
    assert headers["content-type"] == "application/json", headers
    doc = json.loads(body)
    assert isinstance(doc["error"], str) and doc["error"], doc
    assert doc["reason"] == reason, doc
    assert doc["bucket"] == bucket and doc["owner"] == owner, doc
    assert isinstance(doc["epoch"], int) and doc["epoch"] >= 1, doc
    if epoch is not None:
        assert doc["epoch"] == epoch, (doc, epoch)
    return doc


def key_path(key):
    return "/v1/keys/" + key


def test_start_cluster():
    S["con"] = harness.Console(zk, CL, session_timeout_ms=SESSION_MS)
    S["a"] = harness.ClusterNode(zk, CL, 1, session_timeout_ms=SESSION_MS)
    wait_tables(lambda t: t["c"] == [1] * NB, "group 1 owns everything")
    S["b"] = harness.ClusterNode(zk, CL, 1, session_timeout_ms=SESSION_MS)
    S["c"] = harness.ClusterNode(zk, CL, 2, session_timeout_ms=SESSION_MS)
    t = wait_tables(lambda t: 2 in t["d"], "d gives group 2 its share")
    assert t["c"] == [1] * NB   # no data has moved: group 2 owns nothing
    S["tables"] = t
    # Every node has read the tables and knows its role.
    for name, role in (("a", "primary"), ("b", "backup"), ("c", "primary")):
        harness.wait_for(lambda: (lambda h: h["role"] == role and h["epoch"] == t["epoch"])(
            get_json(S[name], "/health")), what="node %s sees epoch %d" % (name, t["epoch"]))


def test_health_reports_cluster_mode():
    t = S["tables"]
    for name, gid, role in (("a", 1, "primary"), ("b", 1, "backup"), ("c", 2, "primary")):
        h = get_json(S[name], "/health")
        assert h["status"] == "ok" and h["mode"] == "cluster", h
        assert h["group"] == gid and h["role"] == role, (name, h)
        assert h["epoch"] == t["epoch"], (name, h, t["epoch"])
        assert h["zookeeper_connected"] is True, h
        assert h["pid"] == S[name].proc.pid


def test_primary_serves_its_buckets():
    a = S["a"]
    key = harness.key_in_bucket_owned_by(S["tables"]["c"], 1, prefix="own")
    status, _, body = http(a.admin_port, "PUT", key_path(key) + "?flags=7", body=b"value")
    assert status == 201, body
    assert json.loads(body)["bucket"] == harness.bucket_of(key, NB)
    status, headers, body = http(a.admin_port, "GET", key_path(key))
    assert status == 200 and body == b"value" and headers["x-bucketcache-flags"] == "7"
    # The memcached port of the same node agrees.
    assert a.conn().cmd("get " + key) == ("VALUE %s 7 5\r\nvalue\r\nEND\r\n" % key).encode()
    assert http(a.admin_port, "DELETE", key_path(key))[0] == 204
    assert http(a.admin_port, "GET", key_path(key))[0] == 404


def test_other_group_answers_moved():
    c, t = S["c"], S["tables"]
    key = harness.key_in_bucket_owned_by(t["c"], 1, prefix="moved")
    bucket = harness.bucket_of(key, NB)
    before = get_json(c, "/stats")["cache"]["curr_items"]
    for method, body in (("GET", None), ("HEAD", None), ("PUT", b"x"), ("DELETE", None)):
        reply = http(c.admin_port, method, key_path(key), body=body)
        if method == "HEAD":
            assert reply[0] == 421, reply   # no body on HEAD
            continue
        assert_misdirected(reply, "moved", bucket, 1, t["epoch"])
    # Query parameters are irrelevant: the bucket decides first.
    assert_misdirected(http(c.admin_port, "PUT", key_path(key) + "?ttl=5", body=b"x"),
                       "moved", bucket, 1)
    # Nothing was stored for a bucket the node does not own.
    assert get_json(c, "/stats")["cache"]["curr_items"] == before
    # Still a clear 400 for a malformed key, whichever node is asked.
    status, _, body = http(c.admin_port, "GET", "/v1/keys/a%zz")
    assert status == 400 and "percent-encoding" in json.loads(body)["error"]


def test_backup_answers_not_primary():
    a, b, t = S["a"], S["b"], S["tables"]
    key = harness.key_in_bucket_owned_by(t["c"], 1, prefix="backup")
    bucket = harness.bucket_of(key, NB)
    assert http(a.admin_port, "PUT", key_path(key), body=b"on primary")[0] == 201
    for method, body in (("GET", None), ("PUT", b"x"), ("DELETE", None)):
        doc = assert_misdirected(http(b.admin_port, method, key_path(key), body=body),
                                 "not_primary", bucket, 1, t["epoch"])
        assert "backup" in doc["error"], doc
    # The primary still has the value: the backup's refusal touched nothing.
    assert http(a.admin_port, "GET", key_path(key))[2] == b"on primary"


def test_stats_cluster_object():
    t = S["tables"]
    for name, gid, role, owned in (("a", 1, "primary", NB), ("b", 1, "backup", NB),
                                   ("c", 2, "primary", 0)):
        cl = get_json(S[name], "/stats")["cluster"]
        assert cl["group"] == gid and cl["role"] == role, (name, cl)
        assert cl["epoch"] == t["epoch"] and cl["zookeeper_connected"] is True, cl
        assert cl["owned_buckets"] == owned, (name, cl)
        assert cl["registrations"] >= 1 and cl["buckets_dropped"] >= 0, cl
        assert isinstance(cl["node"], str) and cl["node"], cl
    assert get_json(S["c"], "/stats")["cluster"]["http_refused"] >= 5
    assert get_json(S["b"], "/stats")["cluster"]["http_refused"] >= 3


parse_metrics = harness.parse_metrics


def test_metrics_cluster_series():
    t = S["tables"]
    expected = {"a": (1, 1, NB), "b": (1, 0, NB), "c": (2, 1, 0)}
    for name, (gid, primary, owned) in expected.items():
        status, _, body = http(S[name].admin_port, "GET", "/metrics")
        assert status == 200
        values, types = parse_metrics(body.decode())
        text = body.decode()
        assert harness.promtool_check(text) == "", harness.promtool_check(text)
        for series, kind in (("primary", "gauge"), ("epoch", "gauge"),
                             ("zookeeper_connected", "gauge"), ("owned_buckets", "gauge"),
                             ("registrations_total", "counter"),
                             ("buckets_dropped_total", "counter"),
                             ("http_refused_total", "counter")):
            assert types["bucketcache_cluster_" + series] == kind, series
        info = [k for k in values if k.startswith("bucketcache_node_info{")]
        assert len(info) == 1 and 'group="%d"' % gid in info[0], info
        assert ('role="%s"' % ("primary" if primary else "backup")) in info[0], info
        assert values["bucketcache_cluster_primary"] == primary
        assert values["bucketcache_cluster_epoch"] == t["epoch"]
        assert values["bucketcache_cluster_zookeeper_connected"] == 1
        assert values["bucketcache_cluster_owned_buckets"] == owned
        assert values["bucketcache_cluster_registrations_total"] >= 1


def test_group_down_gives_no_owner():
    c = S["c"]
    for name in ("b", "a"):
        S[name].proc.kill()   # kill -9: gone once the sessions expire
    t = wait_tables(lambda t: t["c"] == [0] * NB, "group 1's entries become 0",
                    timeout=SESSION_MS / 1000 + 10)
    key = harness.key_in_bucket_owned_by([1] * NB, 1, prefix="orphan")
    bucket = harness.bucket_of(key, NB)
    harness.wait_for(lambda: http(c.admin_port, "GET", key_path(key))[0] == 421 and
                     json.loads(http(c.admin_port, "GET", key_path(key))[2])["reason"] ==
                     "no_owner", what="node c sees the orphaned bucket")
    for method, body in (("GET", None), ("PUT", b"x"), ("DELETE", None)):
        assert_misdirected(http(c.admin_port, method, key_path(key), body=body),
                           "no_owner", bucket, 0, t["epoch"])
    h = get_json(c, "/health")
    assert h["status"] == "ok" and h["role"] == "primary" and h["epoch"] == t["epoch"], h


def test_stop_cleanly():
    assert S["c"].stop() == 0
    assert S["con"].stop() == 0


if __name__ == "__main__":
    harness.main(globals())
