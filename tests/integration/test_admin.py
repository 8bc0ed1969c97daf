"""The node's HTTP admin port: /health, /stats, /metrics and the REST key API
/v1/keys/{key}, checked against the memcached port of the same node, plus
malformed and hostile requests."""
import http.client as httpclient
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, SOURCE_DIR, Node, http  # noqa: E402

NODE = None


def node():
    global NODE
    if NODE is None:
        NODE = Node("-I", "64k", "--buckets", "1024")
    return NODE


def stats_counter_names():
    """Every counter of BC_THREAD_STATS, read from node/net/stats.h itself."""
    with open(os.path.join(SOURCE_DIR, "node", "net", "stats.h")) as f:
        text = f.read()
    names = re.findall(r"^\s*X\((\w+),", text, re.M)
    assert len(names) > 10, names
    return names


murmur3_32 = harness.murmur3_32  # the bucket hash of common/bc_hash.h


def req(method, path, body=None, headers=None):
    return http(node().admin_port, method, path, body=body, headers=headers)


def assert_json_error(status, headers, body, expected_status, fragment=""):
    assert status == expected_status, (status, body)
    assert headers.get("content-type") == "application/json", headers
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    assert fragment in doc["error"], (fragment, doc)


# ---- health, stats, metrics ----

def test_health():
    status, headers, body = req("GET", "/health")
    assert status == 200
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["status"] == "ok"
    assert re.fullmatch(r"\d+\.\d+\.\d+", doc["version"])
    assert doc["memcached_protocol"] == "1.6.18", doc
    assert doc["pid"] == node().proc.pid
    # Without ZooKeeper: no cluster facts anywhere.
    assert doc["mode"] == "standalone" and "group" not in doc and "role" not in doc
    stats = json.loads(req("GET", "/stats")[2])
    assert "cluster" not in stats
    assert stats["process"]["version"] == doc["version"], stats["process"]
    assert stats["process"]["memcached_protocol"] == "1.6.18", stats["process"]
    assert "bucketcache_cluster_" not in req("GET", "/metrics")[2].decode()


def test_put_get_delete_roundtrip():
    value = bytes(range(256)) + b"\r\nEND\r\n\x00tail"   # binary-safe, protocol-looking
    status, headers, body = req("PUT", "/v1/keys/roundtrip?flags=42", body=value)
    assert status == 201, body
    stored = json.loads(body)
    assert stored["stored"] is True and stored["bytes"] == len(value)
    assert stored["bucket"] == murmur3_32(b"roundtrip") % 1024

    status, headers, body = req("GET", "/v1/keys/roundtrip")
    assert status == 200
    assert body == value
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-bucketcache-flags"] == "42"
    assert int(headers["x-bucketcache-cas"]) == stored["cas"]

    # The same item through the memcached port.
    c = node().conn()
    assert c.cmd("get roundtrip") == (b"VALUE roundtrip 42 %d\r\n" % len(value)) + value + \
        b"\r\nEND\r\n"

    status, headers, body = req("DELETE", "/v1/keys/roundtrip")
    assert status == 204 and body == b""
    assert_json_error(*req("DELETE", "/v1/keys/roundtrip"), 404)
    assert_json_error(*req("GET", "/v1/keys/roundtrip"), 404, "not found")
    assert c.cmd("get roundtrip") == b"END\r\n"
    c.close()


def test_memcached_set_visible_over_http():
    c = node().conn()
    assert c.cmd("set fromproto 123 0 5", "hello") == b"STORED\r\n"
    c.close()
    status, headers, body = req("GET", "/v1/keys/fromproto")
    assert status == 200 and body == b"hello"
    assert headers["x-bucketcache-flags"] == "123"


def test_head():
    assert req("PUT", "/v1/keys/headkey", body=b"12345")[0] == 201
    status, headers, body = req("HEAD", "/v1/keys/headkey")
    assert status == 200 and body == b""
    assert headers["content-length"] == "5"
    assert req("HEAD", "/v1/keys/no-such-key")[0] == 404


def test_empty_value_and_overwrite():
    assert req("PUT", "/v1/keys/empty", body=b"")[0] == 201
    status, _, body = req("GET", "/v1/keys/empty")
    assert status == 200 and body == b""
    assert req("PUT", "/v1/keys/empty", body=b"second")[0] == 201
    assert req("GET", "/v1/keys/empty")[2] == b"second"


def test_keys_are_percent_decoded():
    assert req("PUT", "/v1/keys/a%2Fb%3Fc%25", body=b"v1")[0] == 201
    c = node().conn()
    assert c.cmd("get a/b?c%") == b"VALUE a/b?c% 0 2\r\nv1\r\nEND\r\n"
    # '+' is a literal plus in a path; %41 is 'A'; UTF-8 keys are fine.
    assert req("PUT", "/v1/keys/x+y", body=b"plus")[0] == 201
    assert c.cmd("get x+y") == b"VALUE x+y 0 4\r\nplus\r\nEND\r\n"
    assert req("GET", "/v1/keys/%41BC")[0] == 404
    assert c.cmd("set ABC 0 0 1", "z") == b"STORED\r\n"
    assert req("GET", "/v1/keys/%41BC")[2] == b"z"
    assert req("PUT", "/v1/keys/caf%C3%A9", body=b"u")[0] == 201
    assert c.cmd(b"get caf\xc3\xa9") == b"VALUE caf\xc3\xa9 0 1\r\nu\r\nEND\r\n"
    # Exactly 250 bytes after decoding is the limit.
    assert req("PUT", "/v1/keys/" + "%61" * 250, body=b"k")[0] == 201
    assert c.cmd("get " + "a" * 250) == b"VALUE " + b"a" * 250 + b" 0 1\r\nk\r\nEND\r\n"
    c.close()


def test_bad_keys_400():
    for path, fragment in [
        ("/v1/keys/", "empty key"),
        ("/v1/keys/a%zzb", "percent-encoding"),
        ("/v1/keys/a%4", "percent-encoding"),
        ("/v1/keys/a%", "percent-encoding"),
        ("/v1/keys/" + "b" * 251, "longer than 250"),
        ("/v1/keys/" + "%62" * 251, "longer than 250"),
        ("/v1/keys/a%00b", "control character"),
        ("/v1/keys/a%0Db", "control character"),
        ("/v1/keys/a%20b", "space"),
        ("/v1/keys/a%7F", "control character"),
    ]:
        for method in ("GET", "PUT", "DELETE"):
            body = b"x" if method == "PUT" else None
            assert_json_error(*req(method, path, body=body), 400, fragment)


def test_ttl_and_flags_parameters():
    assert req("PUT", "/v1/keys/shortlived?ttl=1", body=b"soon gone")[0] == 201
    assert req("GET", "/v1/keys/shortlived")[0] == 200
    # A TTL above memcached's 30-day switch is still relative here (as an
    # absolute time, 5184000 would be 1970 and the item already expired).
    assert req("PUT", "/v1/keys/longlived?ttl=5184000", body=b"60 days")[0] == 201
    assert req("GET", "/v1/keys/longlived")[0] == 200
    assert req("PUT", "/v1/keys/maxflags?flags=4294967295&ttl=0", body=b"f")[0] == 201
    assert req("GET", "/v1/keys/maxflags")[1]["x-bucketcache-flags"] == "4294967295"
    for query, fragment in [("ttl=-1", "ttl"), ("ttl=abc", "ttl"), ("ttl=", "ttl"),
                            ("ttl=1.5", "ttl"), ("ttl=99999999999", "ttl"),
                            ("flags=4294967296", "flags"), ("flags=-1", "flags"),
                            ("flags=0x10", "flags"), ("tll=5", "unknown"),
                            ("ttl=1&ttl=2", "repeated"), ("ttl=%zz", "malformed")]:
        assert_json_error(*req("PUT", "/v1/keys/badparam?" + query, body=b"x"), 400, fragment)
    assert req("GET", "/v1/keys/badparam")[0] == 404   # nothing was stored
    time.sleep(2.2)
    assert req("GET", "/v1/keys/shortlived")[0] == 404


def test_active_expiry_removes_unread_items():
    """Items nobody reads again are removed by the background expiry scan."""
    before = json.loads(req("GET", "/stats")[2])["cache"]["expired_active"]
    for i in range(20):
        assert req("PUT", "/v1/keys/unread-%d?ttl=1" % i, body=b"x" * 100)[0] == 201
    deadline = time.time() + 6 * SLOW
    while True:
        cache = json.loads(req("GET", "/stats")[2])["cache"]
        if cache["expired_active"] >= before + 20:
            break
        assert time.time() < deadline, cache
        time.sleep(0.2)


def test_value_size_limits_413():
    limit = 64 * 1024
    big = os.urandom(limit + 1)
    # Declared by Content-Length: refused before the body is sent at all.
    with socket.create_connection(("127.0.0.1", node().admin_port), timeout=5 * SLOW) as s:
        s.sendall(b"PUT /v1/keys/big HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
                  % len(big))
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 413 "), reply
    # Chunked: refused at once, whatever it announces -- the length of a
    # chunked body is unknown until its end (docs/security.md).
    conn = httpclient.HTTPConnection("127.0.0.1", node().admin_port, timeout=5 * SLOW)
    conn.putrequest("PUT", "/v1/keys/bigchunked")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 411, r.status
    r.read()
    conn.close()
    # Bodies of methods that take none are discarded unread up to the limit
    # (the request is answered as without a body); a larger one is refused
    # at once, as for any method.
    small = big[:1000]
    assert_json_error(*req("DELETE", "/v1/keys/big", body=small), 404, "not found")
    status, _, body = req("GET", "/health", body=small)
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert_json_error(*req("DELETE", "/v1/keys/big", body=big * 3), 413)
    assert_json_error(*req("GET", "/health", body=big * 3), 413)
    # Just under the limit (item overhead included) fits.
    fits = os.urandom(limit - 512)
    assert req("PUT", "/v1/keys/fits", body=fits)[0] == 201
    assert req("GET", "/v1/keys/fits")[2] == fits
    assert req("GET", "/v1/keys/big")[0] == 404
    assert req("GET", "/v1/keys/bigchunked")[0] == 404


def test_unknown_paths_and_methods():
    for path in ("/", "/nope", "/v1/key/x", "/healthz", "/stats/extra", "/v1/keys"):
        assert_json_error(*req("GET", path), 404)
    status, headers, body = req("POST", "/health", body=b"x")
    assert_json_error(status, headers, body, 405)
    assert headers["allow"] == "GET, HEAD"
    status, headers, body = req("POST", "/v1/keys/k", body=b"x")
    assert_json_error(status, headers, body, 405)
    assert headers["allow"] == "GET, HEAD, PUT, DELETE"
    assert_json_error(*req("DELETE", "/stats"), 405)
    status, headers, body = req("PUT", "/metrics", body=b"x")
    assert_json_error(status, headers, body, 405, "not allowed")
    assert headers["allow"] == "GET, HEAD"
    assert_json_error(*req("PATCH", "/v1/keys/k", body=b"x"), 405)


def test_stats_json():
    c = node().conn()
    assert c.cmd("set statkey 0 0 3", "abc") == b"STORED\r\n"
    before = json.loads(req("GET", "/stats")[2])
    c.cmd("get statkey")
    c.cmd("get statmiss")
    c.close()
    status, headers, body = req("GET", "/stats")
    assert status == 200 and headers["content-type"] == "application/json"
    doc = json.loads(body)
    # Every per-worker counter of stats.h is there, generated from the X-macro.
    for name in stats_counter_names():
        assert isinstance(doc["server"][name], int), name
    for name in ("curr_connections", "total_connections", "rejected_connections", "threads"):
        assert isinstance(doc["server"][name], int), name
    assert doc["server"]["threads"] == 2
    assert doc["server"]["get_hits"] >= before["server"]["get_hits"] + 1
    assert doc["server"]["get_misses"] >= before["server"]["get_misses"] + 1
    assert doc["server"]["cmd_get"] >= before["server"]["cmd_get"] + 2
    cache = doc["cache"]
    for name in ("curr_items", "total_items", "mem_used", "mem_limit", "evictions",
                 "reclaimed", "expired_active", "data_bytes"):
        assert isinstance(cache[name], int), name
    assert cache["mem_limit"] == 64 << 20
    assert cache["policy"] == "lru" and cache["buckets"] == 1024
    assert cache["max_item_size"] == 64 * 1024
    # Only non-empty buckets by default; the key's bucket is among them.
    buckets = doc["buckets"]
    assert all(b["items"] > 0 and b["bytes"] > 0 for b in buckets)
    assert sum(b["items"] for b in buckets) == cache["curr_items"]
    mine = murmur3_32(b"statkey") % 1024
    assert any(b["bucket"] == mine for b in buckets), mine
    all_buckets = json.loads(req("GET", "/stats?buckets=all")[2])["buckets"]
    assert [b["bucket"] for b in all_buckets] == list(range(1024))
    assert_json_error(*req("GET", "/stats?buckets=some"), 400)
    assert_json_error(*req("GET", "/stats?bogus=1"), 400)
    assert_json_error(*req("GET", "/stats?buckets=all%00"), 400)


def stats_metric_series():
    """Every exported row of BC_THREAD_STATS: (field, metric, labels)."""
    with open(os.path.join(SOURCE_DIR, "node", "net", "stats.h")) as f:
        text = f.read()
    rows = re.findall(r'^\s*X\((\w+), (NULL|"\w+"), (NULL|BC__CMD\("(\w+)", "(\w+)"\)|"[^)]*?"),',
                      text, re.M)
    assert len(rows) > 10, rows
    out = []
    for field, metric, labels, cmd, status in rows:
        if metric == "NULL":
            continue
        metric = metric.strip('"')
        if cmd:
            labels = 'command="%s",status="%s"' % (cmd, status)
        elif labels == "NULL":
            labels = ""
        else:
            labels = labels[1:-1].replace('\\"', '"')   # the C literal's text
        out.append((field, metric, labels))
    return out


def test_metrics():
    c = node().conn()
    c.cmd("get metrics-miss")
    c.close()
    status, headers, body = req("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    values, types = harness.parse_metrics(text)
    assert harness.promtool_check(text) == "", harness.promtool_check(text)
    # every exported stats.h row is there, under its labels
    for field, metric, labels in stats_metric_series():
        assert types["bucketcache_" + metric] == "counter", metric
        key = "bucketcache_%s{%s}" % (metric, labels) if labels else "bucketcache_" + metric
        assert key in values, key
    miss = 'bucketcache_commands_total{command="get",status="miss"}'
    assert values[miss] >= 1
    assert values["bucketcache_memory_limit_bytes"] == 64 << 20
    assert types["bucketcache_items"] == "gauge"
    assert values["bucketcache_buckets"] == 1024
    assert values['bucketcache_node_info{version="%s",role="standalone"}' %
                  json.loads(req("GET", "/health")[2])["version"]] == 1
    # HELP lines carry the descriptions of stats.h.
    assert "# HELP bucketcache_read_bytes_total bytes read from clients" in text
    c = node().conn()
    for _ in range(3):
        c.cmd("get metrics-miss")
    # "stats reset" does not make a counter go down
    assert c.cmd("stats reset") == b"RESET\r\n"
    c.close()
    after = harness.parse_metrics(req("GET", "/metrics")[2].decode())[0][miss]
    assert after >= values[miss] + 3
    # per-bucket series on request, promtool-clean too
    text = req("GET", "/metrics?per_bucket=1")[2].decode()
    assert harness.promtool_check(text) == ""
    vb = harness.parse_metrics(text)[0]
    mine = murmur3_32(b"metrics-miss") % 1024
    assert vb['bucketcache_bucket_commands_total{bucket="%d",command="get",status="miss"}' % mine] >= 4
    assert_json_error(*req("GET", "/metrics?per_bucket=maybe"), 400)
    assert_json_error(*req("GET", "/metrics?bogus=1"), 400)


def test_buckets_and_hotkeys():
    c = node().conn()
    assert c.cmd("set hb-key 0 0 5", "hello") == b"STORED\r\n"
    for _ in range(1000):
        c.send(b"get hb-key\r\n")
    for _ in range(1000):
        assert c.read_reply().startswith(b"VALUE hb-key 0 5")
    c.cmd("get hb-missing")
    assert c.cmd("delete hb-key") == b"DELETED\r\n"
    c.close()
    doc = json.loads(req("GET", "/v1/buckets")[2])
    assert len(doc["buckets"]) == 1024 and doc["nbuckets"] == 1024   # standalone: all owned
    b = doc["buckets"][murmur3_32(b"hb-key") % 1024]
    assert b["bucket"] == murmur3_32(b"hb-key") % 1024
    assert b["gets"] >= 1000 and b["hits"] >= 1000 and b["sets"] >= 1 and b["deletes"] >= 1
    assert b["misses"] == b["gets"] - b["hits"]
    assert b["bytes_written"] >= 1000 * 5 and b["bytes_read"] >= len("hb-key") + 5
    for field in ("items", "bytes", "evictions", "expirations"):
        assert field in b, field
    active = json.loads(req("GET", "/v1/buckets?buckets=active")[2])["buckets"]
    assert 0 < len(active) < 1024
    assert_json_error(*req("GET", "/v1/buckets?buckets=some"), 400)
    assert_json_error(*req("GET", "/v1/buckets?x=1"), 400)
    # 1000 gets, about 1 in 32 sampled: hb-key leads the hot keys
    hk = json.loads(req("GET", "/v1/hotkeys?n=5")[2])
    assert hk["sample_every"] >= 1 and hk["capacity"] >= 5 and hk["half_life_s"] > 0
    assert hk["keys"] and hk["keys"][0]["key"] == "hb-key", hk
    assert hk["keys"][0]["bucket"] == murmur3_32(b"hb-key") % 1024
    assert hk["keys"][0]["rate_per_s"] > 0 and hk["keys"][0]["count"] >= hk["keys"][0]["error"]
    only = json.loads(req("GET", "/v1/hotkeys?bucket=%d" % b["bucket"])[2])["keys"]
    assert all(k["bucket"] == b["bucket"] for k in only) and only
    # a key that is not valid UTF-8 comes back as key_base64
    c = node().conn()
    for _ in range(600):
        c.send(b"get \xff\xfehot\r\n")
    for _ in range(600):
        c.read_reply()
    c.close()
    keys = json.loads(req("GET", "/v1/hotkeys?n=50")[2])["keys"]
    assert any(k.get("key_base64") == "//5ob3Q=" for k in keys), keys
    for bad in ("n=0", "n=abc", "bucket=1024", "bucket=-1", "what=1"):
        assert_json_error(*req("GET", "/v1/hotkeys?" + bad), 400)


# ---- hostile clients ----

def test_concurrent_requests():
    errors = []

    def worker(n):
        try:
            for i in range(25):
                key = "/v1/keys/conc-%d-%d" % (n, i)
                value = os.urandom(100 + i)
                assert req("PUT", key, body=value)[0] == 201
                assert req("GET", key)[2] == value
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_oversized_headers_and_url():
    status = None
    try:
        status = req("GET", "/v1/keys/" + "a" * 100000)[0]
    except (ConnectionError, httpclient.HTTPException):
        pass   # closing the connection is an acceptable answer
    assert status in (None, 400, 413, 414, 431), status
    try:
        status = req("GET", "/health", headers={"X-Big": "b" * 200000})[0]
    except (ConnectionError, httpclient.HTTPException):
        status = None
    assert status in (None, 400, 413, 431), status
    assert req("GET", "/health")[0] == 200


def test_garbage_and_idle_connections():
    """Raw garbage, half-sent requests and more idle connections than the
    limit: the node stays up and serves again once they are gone."""
    port = node().admin_port
    socks = []
    for i in range(80):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2 * SLOW)
        except OSError:
            continue
        if i % 3 == 0:
            s.sendall(b"\x00\xff\x16\x03\x01garbage\r\n\r\n")
        elif i % 3 == 1:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")   # never finished
        socks.append(s)
    time.sleep(0.2 * SLOW)
    assert node().proc.poll() is None
    for s in socks:
        s.close()
    deadline = time.time() + 10 * SLOW
    while True:
        try:
            if req("GET", "/health")[0] == 200:
                break
        except OSError:
            pass
        assert time.time() < deadline, "admin port did not recover"
        time.sleep(0.1)


def test_node_still_healthy_and_stops_cleanly():
    assert req("GET", "/health")[0] == 200
    assert node().stop() == 0


if __name__ == "__main__":
    harness.main(globals())
