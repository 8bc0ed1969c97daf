"""Read-through from an HTTP origin (docs/origin.md), with real processes:
the demo origin (deploy/demo-origin.py, which counts the requests it gets
and echoes the path it was asked for), standalone nodes, and a cluster of
three groups behind a ZooKeeper and a console.

  - 100 concurrent gets of one missing key through three nodes: one origin
    request, every client gets the value, no non-owner keeps a copy;
  - keys with / ? & = % + # : ~ and non-ASCII bytes reach the origin as
    one exact path (the origin echoes it);
  - a 404 is remembered for its TTL, then asked again; a 5xx never is;
  - the origin down: misses answer within the timeout, the breaker opens,
    then one probe closes it once the origin is back;
  - bad answers (too large, chunked too large, slow drip, reset, cut short,
    malformed header or status line, bad flags, a redirect) give a miss
    and a counter, never a crash or a partial value;
  - TTL from max-age/Expires, no-store, flags from a header, the admin
    port's GET (200/404/502/503/504), bounds (overloaded), stats, metrics;
  - the owner dies during a fill: the new primary fills again, and no
    non-owner keeps a copy.
"""
import json
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SLOW = harness.SLOW
ORIGIN_SCRIPT = os.path.join(harness.SOURCE_DIR, "deploy", "demo-origin.py")


class Origin:
    """The demo origin on a free (or given) port; HTTPS with tls=(cert, key)."""

    def __init__(self, port=None, tls=None):
        self.port = port or harness.free_port()
        self.tls = tls
        argv = [sys.executable, ORIGIN_SCRIPT, "--port", str(self.port)]
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = harness.Proc("origin", argv)
        harness.wait_port(self.port, proc=self.proc.p)

    def template(self, placeholder="{key}"):
        return "%s://127.0.0.1:%d/v1/%s" % ("https" if self.tls else "http", self.port,
                                            placeholder)

    def stats(self):
        if self.tls:
            import ssl
            import urllib.request
            ctx = ssl.create_default_context(cafile=self.tls[0])
            with urllib.request.urlopen("https://127.0.0.1:%d/_stats" % self.port,
                                        context=ctx) as r:
                return json.loads(r.read())
        return harness.http_json(self.port, "GET", "/_stats")[1]

    def count(self, raw_path):
        return self.stats()["paths"].get(raw_path, 0)

    def requests(self):
        return self.stats()["requests"]

    def post(self, path):
        harness.http(self.port, "POST", path)

    def stop(self):
        self.proc.kill()


def write_config(name, origin_section, extra=None):
    doc = {"origin": origin_section}
    doc.update(extra or {})
    path = os.path.join(harness.TMP, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def node_with(origin_section, *args, **kw):
    path = write_config("node-%d" % harness.free_port(), origin_section)
    return harness.Node("--config", path, *args, **kw)


def get(node, key, timeout=5.0):
    """One get on a fresh connection: (value bytes or None, flags or None)."""
    c = harness.McConn(node.port, timeout)
    try:
        return parse_value(c.cmd(b"get " + (key if isinstance(key, bytes) else key.encode())))
    finally:
        c.close()


def parse_value(reply):
    if reply == b"END\r\n":
        return None, None
    assert reply.startswith(b"VALUE "), reply[:200]
    head, rest = reply.split(b"\r\n", 1)
    _, _, flags, n = head.split(b" ")[:4]
    value = rest[:int(n)]
    assert rest[int(n):] == b"\r\nEND\r\n", reply[-50:]
    return value, int(flags)


def path_in(value):
    """The raw path the origin was asked for (its PPM comment line)."""
    line = value.split(b"\n")[1]
    assert line.startswith(b"# path: "), value[:80]
    return line[len(b"# path: "):].decode("latin-1")


def ostat(node, name):
    return int(node.stats()["origin_" + name])


# ---- standalone -----------------------------------------------------------

ORIGIN = Origin()
BASE = {"url": ORIGIN.template(), "timeout_ms": int(800 * SLOW), "connect_timeout_ms": 300,
        "negative_ttl": 2, "flags_header": "X-Bucketcache-Flags", "breaker_failures": 0}
NODE = node_with(BASE, "-I", "256k")


def test_fill_once_then_hit():
    v, flags = get(NODE, "img/cat.png")
    assert v is not None and flags == 0
    assert path_in(v) == "/v1/img/cat.png"
    assert ORIGIN.count("/v1/img/cat.png") == 1
    for _ in range(5):
        assert get(NODE, "img/cat.png")[0] == v
    assert ORIGIN.count("/v1/img/cat.png") == 1
    assert ostat(NODE, "fills") >= 1


def test_special_keys_round_trip_exactly():
    keys = [b"img/a?b=c&d=e", b"img/100%", b"img/%41", b"img/a+b", b"img/#frag", b"img/x:y",
            b"img/~tilde-._", "img/été/日本.png".encode(), b"img/\xff\xfe-not-utf8",
            b"img//double", b"img/./dot/../up", b"img/semi;colon,comma", b"img/[br]{ce}"]
    for key in keys:
        v, _ = get(NODE, key)
        assert v is not None, key
        raw = path_in(v)
        # sent exactly: every byte outside A-Z a-z 0-9 - . _ ~ / as %XX
        want = "/v1/" + urllib.parse.quote(key, safe="/-._~")
        assert raw == want, (key, raw, want)
        # and decoding the path once gives the key back, byte for byte
        assert urllib.parse.unquote_to_bytes(raw)[len("/v1/"):] == key, (key, raw)
        # the same key is the same resource: asked again, no new request
        assert get(NODE, key)[0] == v
        assert ORIGIN.count(raw) == 1, (key, raw)


def test_key_escaped_placeholder_sends_slash_encoded():
    n = node_with(dict(BASE, url=ORIGIN.template("{key_escaped}")))
    try:
        v, _ = get(n, "esc/a/b?c")
        assert path_in(v) == "/v1/esc%2Fa%2Fb%3Fc"
    finally:
        n.stop()


def test_404_cached_negatively_for_its_ttl():
    base = ostat(NODE, "negative_hits")
    assert get(NODE, "nf/missing")[0] is None
    assert ORIGIN.count("/v1/nf/missing") == 1
    for _ in range(5):
        assert get(NODE, "nf/missing")[0] is None
    assert ORIGIN.count("/v1/nf/missing") == 1
    assert ostat(NODE, "negative_hits") == base + 5
    assert ostat(NODE, "not_found") >= 1
    time.sleep(2.3)
    assert get(NODE, "nf/missing")[0] is None
    assert ORIGIN.count("/v1/nf/missing") == 2
    # 410 too, and never an item a client can see
    assert get(NODE, "gone/x")[0] is None and get(NODE, "gone/x")[0] is None
    assert ORIGIN.count("/v1/gone/x") == 1


def test_5xx_never_cached():
    before = ostat(NODE, "errors_http_5xx")
    for i in range(3):
        assert get(NODE, "err/boom")[0] is None
    assert ORIGIN.count("/v1/err/boom") == 3
    assert ostat(NODE, "errors_http_5xx") == before + 3
    assert get(NODE, "busy/x")[0] is None and get(NODE, "busy/x")[0] is None
    assert ORIGIN.count("/v1/busy/x") == 2


def test_ttl_from_max_age_and_expires_and_no_store():
    assert get(NODE, "ttl/1/a")[0] is not None
    assert get(NODE, "ttl/1/a")[0] is not None
    assert ORIGIN.count("/v1/ttl/1/a") == 1
    time.sleep(2.2)
    assert get(NODE, "ttl/1/a")[0] is not None
    assert ORIGIN.count("/v1/ttl/1/a") == 2
    assert get(NODE, "expires/1/b")[0] is not None
    time.sleep(2.2)
    assert get(NODE, "expires/1/b")[0] is not None
    assert ORIGIN.count("/v1/expires/1/b") == 2
    # no-store: answered every time, stored never
    for _ in range(3):
        assert get(NODE, "nostore/c")[0] is not None
    assert ORIGIN.count("/v1/nostore/c") == 3
    assert ostat(NODE, "fills_not_stored") >= 3
    # max-age=0 is "do not keep"
    assert get(NODE, "ttl/0/d")[0] is not None and get(NODE, "ttl/0/d")[0] is not None
    assert ORIGIN.count("/v1/ttl/0/d") == 2


def test_flags_from_a_header():
    v, flags = get(NODE, "flags/42/e")
    assert v is not None and flags == 42
    before = ostat(NODE, "errors_protocol")
    assert get(NODE, "flags/notanumber/f")[0] is None
    assert get(NODE, "flags/4294967296/g")[0] is None
    assert ostat(NODE, "errors_protocol") == before + 2


def test_a_client_set_wins_and_plain_misses_without_origin_stay_misses():
    c = NODE.conn()
    assert c.cmd("set mine/k 7 0 3", "abc") == b"STORED\r\n"
    assert parse_value(c.cmd("get mine/k")) == (b"abc", 7)
    assert ORIGIN.count("/v1/mine/k") == 0
    # gat never reads through
    assert c.cmd("gat 100 img/gat-only") == b"END\r\n"
    assert ORIGIN.count("/v1/img/gat-only") == 0
    # gets reads through and has a CAS
    r = c.cmd("gets img/with-cas")
    assert r.startswith(b"VALUE img/with-cas 0 ") and len(r.split(b"\r\n")[0].split()) == 5
    c.close()


def test_multi_get_mixes_hits_misses_and_fills():
    c = NODE.conn()
    assert c.cmd("set mg/hit 0 0 1", "h") == b"STORED\r\n"
    r = c.cmd("get mg/hit mg/fill1 nf/mg mg/fill2 mg/fill1")
    blocks = r.split(b"VALUE ")[1:]
    names = sorted(b.split(b" ")[0] for b in blocks)
    assert names == [b"mg/fill1", b"mg/fill1", b"mg/fill2", b"mg/hit"], r[:300]
    assert r.endswith(b"END\r\n")
    assert ORIGIN.count("/v1/mg/fill1") == 1 and ORIGIN.count("/v1/mg/fill2") == 1
    # pipelined commands behind a waiting get keep their order
    c.send(b"get mg/p1\r\nset mg/after 0 0 1\r\nz\r\nget mg/after\r\n")
    assert parse_value(c.read_reply())[0] is not None
    assert c.read_reply() == b"STORED\r\n"
    assert parse_value(c.read_reply()) == (b"z", 0)
    c.close()


def test_a_waiting_get_does_not_stop_the_connection():
    """Its reply waits in a hole: later commands run meanwhile, replies
    keep their order, several gets' fills run at once."""
    c = NODE.conn(timeout=20)
    other = NODE.conn()
    t0 = time.time()
    c.send(b"get slow/600/hole-a\r\nset hole/after 0 0 1\r\nz\r\nget slow/600/hole-b\r\n"
           b"get hole/after\r\n")
    # the set ran while the first get still waited for its fill
    harness.wait_for(lambda: other.cmd("get hole/after") == b"VALUE hole/after 0 1\r\nz\r\nEND\r\n",
                     timeout=0.5, interval=0.02, what="the set behind a waiting get")
    assert parse_value(c.read_reply())[0] is not None          # hole-a
    assert c.read_reply() == b"STORED\r\n"
    assert parse_value(c.read_reply())[0] is not None          # hole-b
    assert parse_value(c.read_reply()) == (b"z", 0)
    # both fills ran at once: about one origin delay, not two
    assert time.time() - t0 < 1.1 * SLOW, time.time() - t0
    # more gets waiting than a connection may have: held, then all answered in order
    keys = ["slow/200/many-%d" % i for i in range(40)]
    c.send("".join("get %s\r\n" % k for k in keys).encode())
    for k in keys:
        r = c.read_reply()
        assert r.startswith(("VALUE %s " % k).encode()), (k, r[:60])
    c.close()
    other.close()


def test_a_huge_multi_get_fills_at_most_256_keys_at_once():
    keys = ["many/%d" % i for i in range(300)]
    c = NODE.conn(timeout=20)
    r = c.cmd("get " + " ".join(keys))
    assert r.count(b"VALUE many/") == 256 and r.endswith(b"END\r\n"), r.count(b"VALUE ")
    assert sum(ORIGIN.count("/v1/" + k) for k in keys) == 256
    r = c.cmd("get " + " ".join(keys))
    assert r.count(b"VALUE many/") == 300
    assert all(ORIGIN.count("/v1/" + k) == 1 for k in keys)
    c.close()


def test_bad_origin_answers_are_clean_misses():
    cases = [("size/300000/a", "too_large"), ("chunked/300000/b", "too_large"),
             ("drip/c", "timeout"), ("reset/d", "reset"), ("short/e", "reset"),
             ("badhdr/f", "protocol"), ("badstatus/g", "protocol"),
             ("redir/h", "http_status")]
    items_before = int(NODE.stats()["curr_items"])
    for key, kind in cases:
        before = ostat(NODE, "errors_" + kind)
        t0 = time.time()
        assert get(NODE, key, timeout=10)[0] is None, key
        assert time.time() - t0 < 3 * SLOW, (key, time.time() - t0)
        assert ostat(NODE, "errors_" + kind) == before + 1, (key, kind)
        # never a partial value: still nothing there
        c = NODE.conn()
        assert c.cmd("gat 0 " + key) == b"END\r\n", key
        c.close()
    # (items with short TTLs from earlier tests may expire meanwhile)
    assert int(NODE.stats()["curr_items"]) <= items_before
    # a body just under the limit is fine
    v, _ = get(NODE, "size/200000/ok")
    assert v is not None and len(v) == 200000
    assert NODE.proc.poll() is None


def test_admin_get_reads_through():
    ap = NODE.admin_port
    st, hdrs, body = harness.http(ap, "GET", "/v1/keys/" + urllib.parse.quote("http/a?b", safe=""))
    assert st == 200 and path_in(body) == "/v1/http/a%3Fb", (st, body[:100])
    assert ORIGIN.count("/v1/http/a%3Fb") == 1
    st, _, body2 = harness.http(ap, "GET", "/v1/keys/" + urllib.parse.quote("http/a?b", safe=""))
    assert st == 200 and body2 == body and ORIGIN.count("/v1/http/a%3Fb") == 1
    st, doc = harness.http_json(ap, "GET", "/v1/keys/nf%2Fhttp")
    assert st == 404 and doc["origin"] == "not_found", doc
    st, doc = harness.http_json(ap, "GET", "/v1/keys/err%2Fhttp")
    assert st == 502 and doc["origin"] == "http_5xx" and doc["status"] == 500, doc
    st, doc = harness.http_json(ap, "GET", "/v1/keys/slow%%2F%d%%2Fhttp" % int(800 * SLOW + 2000),
                                timeout=10 * SLOW)
    assert st == 504 and doc["origin"] == "timeout", doc
    st, hdrs, _ = harness.http(ap, "GET", "/v1/keys/flags%2F9%2Fhttp")
    assert st == 200 and hdrs["x-bucketcache-flags"] == "9"
    # the data port sees what the admin port filled
    assert get(NODE, "flags/9/http") [1] == 9


def read_meta(c):
    """One meta reply: (head line without CRLF, value bytes or None)."""
    head = c.readline()[:-2]
    if head.startswith(b"VA "):
        n = int(head.split(b" ")[1])
        value = c.read_exact(n + 2)
        assert value.endswith(b"\r\n"), value[-10:]
        return head, value[:-2]
    return head, None


def test_meta_get_reads_through_with_every_flag():
    c = harness.McConn(NODE.port)
    try:
        # a miss with an origin: filled, then answered as a hit with its flags
        c.send(b"mg meta/a.png v f s k O77 c t\r\n")
        head, value = read_meta(c)
        toks = head.split(b" ")
        assert toks[0] == b"VA" and value is not None and path_in(value) == "/v1/meta/a.png", head
        assert b"f0" in toks and b"kmeta/a.png" in toks and b"O77" in toks, head
        assert b"s%d" % len(value) in toks, head
        assert any(t.startswith(b"c") and int(t[1:]) > 0 for t in toks), head
        assert any(t.startswith(b"t") for t in toks), head
        assert ORIGIN.count("/v1/meta/a.png") == 1
        # now a plain hit, no second request
        c.send(b"mg meta/a.png v\r\n")
        assert read_meta(c)[1] == value and ORIGIN.count("/v1/meta/a.png") == 1
        # quiet mode: a fill that finds nothing stays quiet; the fills keep
        # their order in a pipeline with a slow one first
        c.send(b"mg slow/300/meta/b v q Oslow\r\nmg nf/meta/c v q Onf\r\n"
               b"mg meta/d v Od\r\nmn\r\n")
        h1, v1 = read_meta(c)
        assert h1.startswith(b"VA ") and b"Oslow" in h1.split(b" "), h1
        assert path_in(v1) == "/v1/slow/300/meta/b"
        h2, v2 = read_meta(c)
        assert h2.startswith(b"VA ") and b"Od" in h2.split(b" "), h2
        assert read_meta(c) == (b"MN", None)
        # a negative answer is EN (not quiet), a 5xx too, counted as errors
        c.send(b"mg nf/meta/c v\r\nmg err/meta/e v\r\n")
        assert read_meta(c) == (b"EN", None)
        assert read_meta(c) == (b"EN", None)
        # base64 keys reach the origin decoded; T (touch) and N (vivify) do
        # not read through, as gat does not
        c.send(b"mg bWV0YS9mLnBuZw== b v\r\n")      # meta/f.png
        head, value = read_meta(c)
        assert head.startswith(b"VA ") and path_in(value) == "/v1/meta/f.png", head
        c.send(b"mg meta/g v T30\r\nmg meta/h v N30\r\n")
        assert read_meta(c) == (b"EN", None)
        head, value = read_meta(c)
        assert head.startswith(b"VA 0") and value == b"", head
        assert ORIGIN.count("/v1/meta/g") == 0 and ORIGIN.count("/v1/meta/h") == 0
    finally:
        c.close()


def bin_request(opcode, key=b"", extras=b"", opaque=0):
    body = extras + key
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0, 0, len(body),
                       opaque, 0) + body


def read_bin(c):
    """One binary response: (opcode, status, opaque, extras, key, value)."""
    head = c.read_exact(24)
    magic, opcode, nkey, next_, _, status, nbody, opaque, _ = struct.unpack(">BBHBBHIIQ", head)
    assert magic == 0x81, head
    body = c.read_exact(nbody)
    return (opcode, status, opaque, body[:next_], body[next_:next_ + nkey],
            body[next_ + nkey:])


GET, GETQ, GETK, NOOP, GAT = 0x00, 0x09, 0x0C, 0x0A, 0x1D


def test_binary_get_reads_through():
    """A binary get that misses reads through as text get and mg do: the
    fill answers it in its place in the reply stream."""
    c = harness.McConn(NODE.port)
    try:
        c.send(bin_request(GETK, b"bin/a.png", opaque=7))
        op, status, opaque, ext, key, value = read_bin(c)
        assert (op, status, opaque, ext, key) == (GETK, 0, 7, b"\0\0\0\0", b"bin/a.png"), \
            (op, status, opaque, ext, key, value[:60])
        assert path_in(value) == "/v1/bin/a.png" and ORIGIN.count("/v1/bin/a.png") == 1
        # now a hit, no second request
        c.send(bin_request(GET, b"bin/a.png", opaque=8))
        assert read_bin(c) == (GET, 0, 8, b"\0\0\0\0", b"", value)
        assert ORIGIN.count("/v1/bin/a.png") == 1
        # quiet gets in a pipeline with a slow fill first: the 404 stays
        # quiet, the others answer in request order, then the noop
        c.send(bin_request(GETQ, b"slow/300/bin/b", opaque=1) +
               bin_request(GETQ, b"nf/bin/c", opaque=2) +
               bin_request(GET, b"bin/d", opaque=3) + bin_request(NOOP, opaque=4))
        r1, r3, r4 = read_bin(c), read_bin(c), read_bin(c)
        assert r1[:3] == (GETQ, 0, 1) and path_in(r1[5]) == "/v1/slow/300/bin/b", r1[:5]
        assert r3[:3] == (GET, 0, 3) and path_in(r3[5]) == "/v1/bin/d", r3[:5]
        assert r4 == (NOOP, 0, 4, b"", b"", b""), r4
        assert ORIGIN.count("/v1/nf/bin/c") == 1
        # a negative answer is Not found when not quiet; gat does not read
        # through (it writes the expiry), as text gat does not
        c.send(bin_request(GET, b"nf/bin/e", opaque=5) +
               bin_request(GAT, b"bin/g", extras=struct.pack(">I", 30), opaque=6))
        assert read_bin(c) == (GET, 1, 5, b"", b"", b"Not found")
        assert read_bin(c) == (GAT, 1, 6, b"", b"", b"Not found")
        assert ORIGIN.count("/v1/nf/bin/e") == 1 and ORIGIN.count("/v1/bin/g") == 0
    finally:
        c.close()


def test_per_bucket_origin_counters():
    assert get(NODE, "pb/one.png")[0] is not None
    assert get(NODE, "nf/pb/two")[0] is None
    st, doc = harness.http_json(NODE.admin_port, "GET", "/v1/buckets?buckets=all")
    assert st == 200
    by = {b["bucket"]: b for b in doc["buckets"]}
    nb = doc["nbuckets"]
    one, two = by[harness.bucket_of("pb/one.png", nb)], by[harness.bucket_of("nf/pb/two", nb)]
    assert one["origin_requests"] >= 1 and one["origin_fills"] >= 1, one
    assert two["origin_requests"] >= 1 and two["origin_not_found"] >= 1, two
    total = sum(b["origin_requests"] for b in doc["buckets"])
    assert total == ostat(NODE, "requests"), (total, ostat(NODE, "requests"))
    for b in doc["buckets"]:
        assert set(("origin_requests", "origin_fills", "origin_not_found",
                    "origin_errors")) <= set(b), b


def test_stats_json_and_metrics():
    st, doc = harness.http_json(NODE.admin_port, "GET", "/stats")
    o = doc["origin"]
    for field in ("misses", "joined", "requests", "fills", "not_found", "negative_hits",
                  "served", "inflight", "queued", "errors", "latency"):
        assert field in o, field
    assert o["requests"] >= 10 and o["errors"]["timeout"] >= 1
    assert o["latency"]["count"] == o["requests"]
    st, _, text = harness.http(NODE.admin_port, "GET", "/metrics")
    text = text.decode()
    assert "bucketcache_origin_requests_total %d" % o["requests"] in text or \
        "bucketcache_origin_requests_total" in text
    assert 'bucketcache_origin_errors_total{kind="timeout"}' in text
    assert 'bucketcache_origin_request_duration_seconds_bucket{le="+Inf"}' in text
    assert "bucketcache_origin_request_duration_seconds_count" in text
    assert "bucketcache_origin_inflight" in text
    # "stats reset" zeroes the stats lines' counters (not the gauges), and
    # /stats and /metrics go on counting from the start
    c = NODE.conn()
    c.send(b"stats reset\r\n")
    assert c.readline() == b"RESET\r\n"
    st = c.stats()
    c.close()
    assert st["origin_requests"] == "0" and st["origin_errors_timeout"] == "0", st
    assert st["origin_latency_count"] == "0" and "origin_inflight" in st
    st, doc = harness.http_json(NODE.admin_port, "GET", "/stats")
    assert doc["origin"]["requests"] >= o["requests"], doc["origin"]


def test_concurrent_misses_one_request_and_bounds():
    # 100 clients, one key, one node: one request
    key = "conc/one"
    results = []

    def one():
        results.append(get(NODE, "slow/300/" + key, timeout=10)[0])
    ts = [threading.Thread(target=one) for _ in range(100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(results) == 100 and all(r is not None and r == results[0] for r in results)
    assert ORIGIN.count("/v1/slow/300/" + key) == 1
    # bounds: one request in flight, one queued; the third distinct key is refused at once
    n = node_with(dict(BASE, max_inflight=1, max_queue=1, timeout_ms=int(3000 * SLOW)))
    try:
        out = {}

        def ask(k):
            out[k] = get(n, k, timeout=10)[0]
        ts = [threading.Thread(target=ask, args=("slow/700/q%d" % i,)) for i in range(2)]
        for t in ts:
            t.start()
        harness.wait_for(lambda: int(n.stats()["origin_queued"]) == 1, what="one queued")
        t0 = time.time()
        assert get(n, "slow/700/q2")[0] is None
        assert time.time() - t0 < 1.0 * SLOW
        assert int(n.stats()["origin_errors_overloaded"]) == 1
        st, doc = harness.http_json(n.admin_port, "GET", "/v1/keys/slow%2F700%2Fq3")
        assert st == 503 and doc["origin"] == "overloaded", (st, doc)
        for t in ts:
            t.join()
        assert out["slow/700/q0"] is not None and out["slow/700/q1"] is not None
    finally:
        n.stop()


def test_origin_down_breaker_opens_then_closes():
    port = harness.free_port()               # nothing listens there yet
    n = node_with(dict(BASE, url="http://127.0.0.1:%d/v1/{key}" % port, breaker_failures=3,
                       breaker_cooldown_ms=int(1500 * SLOW)))
    try:
        for i in range(3):
            t0 = time.time()
            assert get(n, "down/%d" % i)[0] is None
            assert time.time() - t0 < 1.5 * SLOW
        assert int(n.stats()["origin_errors_connect"]) == 3
        assert int(n.stats()["origin_breaker_opens"]) == 1
        assert int(n.stats()["origin_breakers_open"]) == 1
        # open: answered at once, no request tried
        for i in range(5):
            assert get(n, "down/x%d" % i)[0] is None
        assert int(n.stats()["origin_errors_connect"]) == 3
        assert int(n.stats()["origin_errors_breaker_open"]) == 5
        st, doc = harness.http_json(n.admin_port, "GET", "/v1/keys/down%2Fhttp")
        assert st == 503 and doc["origin"] == "breaker_open"
        back = Origin(port)
        try:
            time.sleep(1.6 * SLOW)
            v, _ = get(n, "down/after")           # the probe
            assert v is not None and path_in(v) == "/v1/down/after"
            assert int(n.stats()["origin_breakers_open"]) == 0
            assert get(n, "down/again")[0] is not None
        finally:
            back.stop()
        # origin gone again, timeout flavour: answers within the timeout
        t0 = time.time()
        assert get(n, "down/gone")[0] is None
        assert time.time() - t0 < 1.5 * SLOW
    finally:
        n.stop()
    # a black hole: the request times out, the miss comes within timeout_ms
    t0 = time.time()
    assert get(NODE, "slow/5000/hole")[0] is None
    assert time.time() - t0 < (0.8 + 0.7) * SLOW
    assert NODE.proc.poll() is None


def test_https_origin_with_its_ca_and_without():
    cert, key = os.path.join(harness.TMP, "origin.crt"), os.path.join(harness.TMP, "origin.key")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    tls = Origin(tls=(cert, key))
    # the TLS handshake is part of the connect timeout: room for a slow machine
    slow_tls = dict(BASE, url=tls.template(), connect_timeout_ms=int(2000 * SLOW),
                    timeout_ms=int(3000 * SLOW))
    trusted = node_with(dict(slow_tls, ca_file=cert))
    untrusted = node_with(slow_tls)
    try:
        v, _ = get(trusted, "tls/a?b")
        assert v is not None and path_in(v) == "/v1/tls/a%3Fb"
        assert get(trusted, "tls/a?b")[0] == v
        # a certificate nobody vouches for: refused, counted, never a value
        assert get(untrusted, "tls/c")[0] is None
        assert int(untrusted.stats()["origin_errors_tls"]) == 1
        assert tls.count("/v1/tls/c") == 0 and tls.count("/v1/tls/a%3Fb") == 1
    finally:
        trusted.stop()
        untrusted.stop()
        tls.stop()


def test_flag_and_prefix_config():
    n = harness.Node("--origin", "img/=" + ORIGIN.template(), "--origin", "doc/=" +
                     ORIGIN.template("{key_escaped}"))
    try:
        assert path_in(get(n, "img/p/q")[0]) == "/v1/img/p/q"
        assert path_in(get(n, "doc/p/q")[0]) == "/v1/doc%2Fp%2Fq"
        assert get(n, "other/p")[0] is None
        assert ORIGIN.count("/v1/other/p") == 0
    finally:
        n.stop()
    # bad templates stop the node with a clear message
    for bad in ["ftp://x/{key}", "http://x/nokey", "http://{key}/x", "http://x/{key}/{key}",
                "img/=http://x/y"]:
        r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "--origin", bad],
                           capture_output=True, text=True, timeout=10 * SLOW)
        assert r.returncode == 2 and "--origin" in r.stderr, (bad, r.returncode, r.stderr)


# ---- a cluster -------------------------------------------------------------

NB = 16
ZK = harness.ZooKeeper()
CL = harness.create_cluster(ZK, "origin", buckets=NB)
CCFG = write_config("cluster", {"url": ORIGIN.template(), "timeout_ms": int(2000 * SLOW),
                                "negative_ttl": 2, "breaker_failures": 0})
FWD = ["--forward-timeout-ms", str(int(5000 * SLOW))]
G1 = harness.ClusterNode(ZK, CL, 1, "--config", CCFG, *FWD, session_timeout_ms=harness.SESSION_MS)
G2 = harness.ClusterNode(ZK, CL, 2, "--config", CCFG, *FWD, session_timeout_ms=harness.SESSION_MS)
G3 = harness.ClusterNode(ZK, CL, 3, "--config", CCFG, *FWD, session_timeout_ms=harness.SESSION_MS)
CONSOLE = harness.Console(ZK, CL)
TABLES = harness.wait_tables(ZK, CL, lambda t: 0 not in t["c"] and set(t["c"]) == {1, 2, 3},
                             "three groups own buckets")
C = TABLES["c"]
G1B = harness.ClusterNode(ZK, CL, 1, "--config", CCFG, *FWD, session_timeout_ms=harness.SESSION_MS)
NODES = [G1, G2, G3, G1B]


def bucket_items(node, bucket):
    doc = harness.http_json(node.admin_port, "GET", "/stats?buckets=all")[1]
    for b in doc["buckets"]:
        if b["bucket"] == bucket:
            return b["items"]
    return 0


def test_cluster_one_request_for_100_gets_through_three_nodes():
    key = harness.key_in_bucket_owned_by(C, 2, prefix="slow/400/c")
    bucket = harness.bucket_of(key, NB)
    raw = "/v1/" + key
    results, errors = [], []
    start = threading.Event()

    def one(node):
        start.wait()
        try:
            results.append(get(node, key, timeout=20)[0])
        except Exception as e:  # noqa: BLE001 -- collected and asserted below
            errors.append(repr(e))
    ts = [threading.Thread(target=one, args=([G1, G2, G3][i % 3],)) for i in range(100)]
    for t in ts:
        t.start()
    start.set()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    assert len(results) == 100 and results[0] is not None
    assert all(r == results[0] for r in results)
    assert path_in(results[0]) == raw
    assert ORIGIN.count(raw) == 1, ORIGIN.count(raw)
    # the owner filled (and the rest joined); the non-owners fetched nothing
    assert ostat(G2, "requests") >= 1 and ostat(G2, "misses") >= 1
    assert ostat(G1, "requests") == 0 and ostat(G3, "requests") == 0
    assert bucket_items(G2, bucket) == 1
    assert bucket_items(G1, bucket) == 0 and bucket_items(G3, bucket) == 0
    # it replicated like any write: no backup here for group 2, so check
    # group 1's own key below; a non-owner's peer connection never fills
    c = G1.conn()
    assert harness.peer_handshake(c)[2] == b"OK\r\n"
    other = harness.key_in_bucket_owned_by(C, 2, prefix="img/peer")
    assert c.cmd("get " + other).startswith(b"SERVER_ERROR MOVED")
    c.close()
    assert ORIGIN.count("/v1/" + other) == 0


def test_cluster_meta_get_through_every_node_fills_once():
    key = harness.key_in_bucket_owned_by(C, 3, prefix="slow/300/m")
    raw = "/v1/" + key
    out, errors = [], []
    start = threading.Event()

    def one(node):
        start.wait()
        try:
            c = harness.McConn(node.port, 20)
            c.send(("mg %s v k\r\n" % key).encode())
            out.append(read_meta(c))
            c.close()
        except Exception as e:  # noqa: BLE001 -- collected and asserted below
            errors.append(repr(e))
    ts = [threading.Thread(target=one, args=([G1, G2, G3][i % 3],)) for i in range(30)]
    for t in ts:
        t.start()
    start.set()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    assert len(out) == 30 and all(h.startswith(b"VA ") for h, _ in out), out[:2]
    assert all(v == out[0][1] for _, v in out) and path_in(out[0][1]) == raw
    assert ORIGIN.count(raw) == 1, ORIGIN.count(raw)
    bucket = harness.bucket_of(key, NB)
    assert bucket_items(G3, bucket) == 1
    assert bucket_items(G1, bucket) == 0 and bucket_items(G2, bucket) == 0


def test_cluster_binary_get_through_every_node_fills_once():
    """A binary get reads through on the owner (served there) and through
    a non-owner (forwarded as an mg, which the owner reads through)."""
    key = harness.key_in_bucket_owned_by(C, 2, prefix="slow/200/b")
    raw = "/v1/" + key
    values = []
    for node in (G2, G1, G3):
        c = harness.McConn(node.port, 20)
        try:
            c.send(bin_request(GETK, key.encode(), opaque=9) + bin_request(NOOP, opaque=10))
            op, status, opaque, ext, k, value = read_bin(c)
            assert (op, status, opaque, k) == (GETK, 0, 9, key.encode()), (node, status, value)
            assert read_bin(c)[:3] == (NOOP, 0, 10)
            values.append(value)
        finally:
            c.close()
    assert path_in(values[0]) == raw and values == [values[0]] * 3
    assert ORIGIN.count(raw) == 1, ORIGIN.count(raw)
    # a fresh key, first through a non-owner
    key = harness.key_in_bucket_owned_by(C, 3, prefix="bb")
    c = harness.McConn(G1.port, 20)
    try:
        c.send(bin_request(GET, key.encode(), opaque=11))
        op, status, opaque, ext, k, value = read_bin(c)
        assert (op, status, opaque) == (GET, 0, 11) and path_in(value) == "/v1/" + key, status
    finally:
        c.close()
    assert ORIGIN.count("/v1/" + key) == 1


def test_cluster_fill_replicates_and_backup_never_fetches():
    harness.wait_primary(G1)
    key = harness.key_in_bucket_owned_by(C, 1, prefix="img/rep")
    bucket = harness.bucket_of(key, NB)
    # through the backup: it forwards to its primary, which fills
    v, _ = get(G1B, key)
    assert v is not None and ORIGIN.count("/v1/" + key) == 1
    assert ostat(G1B, "requests") == 0
    # the backup got the value by replication
    harness.wait_for(lambda: bucket_items(G1B, bucket) >= 1, what="replicated fill")
    # a backup's peer connection: refused, never fetched
    c = G1B.conn()
    assert harness.peer_handshake(c)[2] == b"OK\r\n"
    k2 = harness.key_in_bucket_owned_by(C, 1, prefix="img/bk")
    assert c.cmd("get " + k2).startswith(b"SERVER_ERROR")
    c.close()
    assert ORIGIN.count("/v1/" + k2) == 0


def test_cluster_multi_get_across_owners_fills_both_sides():
    mine = harness.key_in_bucket_owned_by(C, 2, prefix="img/mixmine")
    theirs = harness.key_in_bucket_owned_by(C, 3, prefix="img/mixtheirs")
    c = G2.conn(timeout=20)
    c.send(("get %s %s\r\nget %s\r\n" % (mine, theirs, theirs)).encode())
    r = c.read_reply()
    assert r.count(b"VALUE ") == 2 and r.endswith(b"END\r\n"), r[:200]
    assert (b"VALUE %s " % mine.encode()) in r and (b"VALUE %s " % theirs.encode()) in r
    assert parse_value(c.read_reply())[0] is not None
    c.close()
    assert ORIGIN.count("/v1/" + mine) == 1 and ORIGIN.count("/v1/" + theirs) == 1
    # each filled by its owner
    assert bucket_items(G2, harness.bucket_of(mine, NB)) >= 1
    assert bucket_items(G3, harness.bucket_of(theirs, NB)) >= 1
    assert bucket_items(G2, harness.bucket_of(theirs, NB)) == 0


def test_cluster_admin_get_on_a_non_owner_is_refused_not_fetched():
    key = harness.key_in_bucket_owned_by(C, 3, prefix="img/adm")
    st, doc = harness.http_json(G1.admin_port, "GET", "/v1/keys/" + urllib.parse.quote(key, safe=""))
    assert st == 421 and doc["owner"] == 3
    assert ORIGIN.count("/v1/" + key) == 0
    st, _, body = harness.http(G3.admin_port, "GET", "/v1/keys/" + urllib.parse.quote(key, safe=""))
    assert st == 200 and ORIGIN.count("/v1/" + key) == 1


def test_cluster_owner_dies_during_a_fill():
    harness.wait_primary(G1)
    key = harness.key_in_bucket_owned_by(C, 1, prefix="slow/%d/die" % int(1200 * SLOW))
    bucket = harness.bucket_of(key, NB)
    raw = "/v1/" + key
    out = []
    asked = {n.port: ostat(n, "requests") for n in (G2, G3)}

    def ask():
        try:
            out.append(get(G2, key, timeout=30)[0])
        except Exception as e:  # noqa: BLE001
            out.append(e)
    t = threading.Thread(target=ask)
    t.start()
    # the owner's request is at the origin: kill the owner mid-fill
    harness.wait_for(lambda: ORIGIN.count(raw) == 1, what="the owner's request at the origin")
    G1.proc.kill()
    t.join()
    # whatever that client saw, it was not a value from a non-owner
    assert all(ostat(n, "requests") == asked[n.port] for n in (G2, G3))
    harness.wait_primary(G1B, timeout=30)
    # the new primary fills again
    v = harness.wait_for(lambda: get(G3, key, timeout=20)[0], timeout=30,
                         what="the new primary fills")
    assert path_in(v) == raw
    assert ORIGIN.count(raw) == 2
    assert ostat(G1B, "requests") >= 1
    assert all(ostat(n, "requests") == asked[n.port] for n in (G2, G3))
    # and only the owner keeps it
    assert bucket_items(G1B, bucket) == 1
    assert bucket_items(G2, bucket) == 0 and bucket_items(G3, bucket) == 0
    for n in (G2, G3, G1B):
        assert n.proc.poll() is None


harness.main(globals())
