"""Helpers shared by the bucket migration tests (test_migration*.py): a
writer that records every acknowledged write, table invariants, and the
checks run once a cluster has converged."""
import http.server
import json
import struct
import threading
import time

import harness


def console_json(console, path):
    """GET path from the console; a 503 (ZooKeeper momentarily slow to
    answer, as under a sanitizer build on a loaded machine) is retried."""
    for _ in range(20):
        status, doc = console.api("GET", path)
        if status != 503:
            break
        time.sleep(0.1 * harness.SLOW)
    assert status == 200, (path, status, doc)
    return doc


def converged(t):
    """c == m == d, every bucket owned, nothing read-only."""
    return (t["c"] == t["m"] == t["d"] and 0 not in t["c"] and not t.get("readonly"))


def wait_converged(console, timeout=30, what="the migration to converge", groups=None):
    """The tables once converged with nothing moving or pending; with
    groups, only once exactly those groups own buckets -- a group that has
    just started is not in d yet, and the tables without it look
    converged too."""
    def check():
        t = console_json(console, "/v1/tables")
        if groups is not None and set(t["c"]) != set(groups):
            return None
        m = console_json(console, "/v1/migrations")
        if converged(t) and m["moving"] == 0 and m["pending"] == 0:
            return t
        return None
    return harness.wait_for(check, timeout=timeout, interval=0.1, what=what)


class Router:
    """Routes keys the way libbucketcache does: the console's c table and
    every group's primary, refreshed when a node refuses; a MOVED refusal
    names the owner and the epoch of the refusing node's table, and a hint
    newer than what the router knows is taken at once."""

    def __init__(self, console, nbuckets):
        self.console = console
        self.nbuckets = nbuckets
        self.c = None
        self.epoch = 0
        self.hint = {}               # bucket -> epoch of the MOVED hint applied
        self.primary = {}
        self.refresh(primaries=True)

    def refresh(self, primaries=False):
        for _ in range(50):
            try:
                t = console_json(self.console, "/v1/tables")
                self.c = t["c"]
                self.epoch = t["epoch"]
                self.hint = {}
                if primaries or any(g not in self.primary for g in set(self.c) if g):
                    cl = console_json(self.console, "/v1/cluster")
                    self.primary = {g["gid"]: g["primary_addr"] for g in cl["groups"]
                                    if g["primary_addr"]}
                return
            except Exception:   # a console failing over
                time.sleep(0.1)

    def moved(self, reply):
        """Applies "SERVER_ERROR MOVED <bucket> <owner> <epoch>"; False when
        the hint is not newer than what is known (then refresh)."""
        try:
            _, _, b, owner, epoch = reply.split()[:5]
            b, owner, epoch = int(b), int(owner), int(epoch)
        except ValueError:
            return False
        if epoch < max(self.epoch, self.hint.get(b, 0)) or owner not in self.primary:
            return False
        self.c[b] = owner
        self.hint[b] = epoch
        return True

    def addr(self, key):
        owner = self.c[harness.bucket_of(key, self.nbuckets)]
        return self.primary.get(owner)


REFUSALS = (b"SERVER_ERROR READONLY", b"SERVER_ERROR MOVED", b"SERVER_ERROR NO_OWNER",
            b"SERVER_ERROR NOT_PRIMARY")


class Writer(threading.Thread):
    """Raw memcached-protocol writer: sets its keys over and over with new
    values, retrying refused or failed writes after refreshing its routes,
    and records the latest acknowledged value of every key.  A write whose
    connection broke before the reply is "unknown": the key may hold that
    value or the acknowledged one.  For every bucket, the time from the
    first READONLY refusal to the next acknowledged write is a stall; so is
    a write that took longer than STALL_MS before it was acknowledged (the
    owner holds a write to a bucket in its migration pause instead of
    refusing it, node/proto/proto_text.h)."""

    STALL_MS = 5.0

    def __init__(self, console, nbuckets, keys, value_size=40, delete_every=0):
        super().__init__(daemon=True)
        self.delete_every = delete_every     # every Nth write is a delete (acked: None)
        self.router = Router(console, nbuckets)
        self.nbuckets = nbuckets
        self.keys = list(keys)
        self.value_size = value_size
        self.acked = {}
        self.unknown = {}
        self.conns = {}
        self.stop_flag = threading.Event()
        self.writes = 0
        self.refusals = 0
        self.errors = []
        self.readonly_since = {}
        self.stalls_ms = []
        self.exc = None

    def conn(self, addr):
        c = self.conns.get(addr)
        if c is None:
            host, port = addr.rsplit(":", 1)
            c = harness.McConn(int(port), timeout=2.0)
            self.conns[addr] = c
        return c

    def drop(self, addr):
        c = self.conns.pop(addr, None)
        if c is not None:
            try:
                c.close()
            except OSError:
                pass

    def write(self, key, value):
        bucket = harness.bucket_of(key, self.nbuckets)
        deadline = time.time() + 30 * harness.SLOW
        self.slow_writes = getattr(self, "slow_writes", 0)
        while time.time() < deadline and not self.stop_flag.is_set():
            addr = self.router.addr(key)
            if addr is None:
                time.sleep(0.01)
                self.router.refresh()
                continue
            try:
                sent = time.time()
                if value is None:
                    reply = self.conn(addr).cmd("delete " + key)
                    if reply in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
                        reply = b"STORED\r\n"
                else:
                    reply = self.conn(addr).cmd("set %s 0 0 %d" % (key, len(value)), value)
            except (OSError, ConnectionError):
                self.drop(addr)
                self.unknown.setdefault(key, set()).add(value)
                time.sleep(0.02)
                self.router.refresh(primaries=True)
                continue
            if reply == b"STORED\r\n":
                self.acked[key] = value
                self.unknown.pop(key, None)
                self.writes += 1
                t0 = self.readonly_since.pop(bucket, None)
                took_ms = (time.time() - sent) * 1000
                if t0 is not None:
                    self.stalls_ms.append((time.time() - t0) * 1000)
                elif took_ms > self.STALL_MS:
                    self.stalls_ms.append(took_ms)
                    self.slow_writes += 1
                return True
            if reply.startswith(REFUSALS):
                self.refusals += 1
                if reply.startswith(b"SERVER_ERROR READONLY"):
                    self.readonly_since.setdefault(bucket, time.time())
                    time.sleep(0.001)
                elif reply.startswith(b"SERVER_ERROR MOVED") and self.router.moved(reply):
                    time.sleep(0.0005)
                else:
                    time.sleep(0.001)
                    self.router.refresh(primaries=not reply.startswith(b"SERVER_ERROR MOVED"))
                continue
            if reply.startswith(b"SERVER_ERROR forward"):
                # a node forwarding to an owner it cannot reach: the write
                # may or may not have been applied there
                self.unknown.setdefault(key, set()).add(value)
                time.sleep(0.01)
                self.router.refresh(primaries=True)
                continue
            self.errors.append((key, reply))
            return False
        return False

    def run(self):
        try:
            i = 0
            while not self.stop_flag.is_set():
                key = self.keys[i % len(self.keys)]
                value = ("%s=%d:" % (key, i)).ljust(self.value_size, "x")
                if self.delete_every and i % self.delete_every == self.delete_every - 1:
                    value = None
                self.write(key, value)
                i += 1
        except Exception as e:   # reported by stop()
            self.exc = e

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=30)
        for a in list(self.conns):
            self.drop(a)
        assert self.exc is None, self.exc
        assert not self.errors, self.errors[:5]


def _get_reply(key, value):
    if value is None:
        return b"END\r\n"
    return ("VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (key, len(value), value)).encode()


def check_reads(console, nbuckets, expected, unknown=None):
    """Every key reads back its expected value from its owner's primary
    (None: the key must be absent)."""
    r = Router(console, nbuckets)
    conns = {}
    bad = []
    for key, value in expected.items():
        addr = r.addr(key)
        if addr not in conns:
            conns[addr] = harness.McConn(int(addr.rsplit(":", 1)[1]))
        reply = conns[addr].cmd("get " + key)
        if reply == _get_reply(key, value):
            continue
        alts = (unknown or {}).get(key, ())
        if any(reply == _get_reply(key, v) for v in alts):
            continue
        bad.append((key, (value or "(absent)")[:30], reply[:80]))
    for c in conns.values():
        c.close()
    assert not bad, "%d keys lost or stale, e.g. %r" % (len(bad), bad[:5])


def admin_stats(node):
    """A node's /stats document."""
    return json.loads(harness.http(node.admin_port, "GET", "/stats")[2])


def admin_stats_buckets(node):
    """The node's non-empty buckets with their bytes (GET /stats?buckets=nonempty)."""
    st, doc = harness.http_json(node.admin_port, "GET", "/stats?buckets=nonempty")
    assert st == 200, (st, doc)
    return doc["buckets"]


def migrate_stats(node):
    """The migration counters of a node's /stats."""
    return admin_stats(node)["cluster"]["migrate"]


def run_job(node, path, what, expect=(200, 202)):
    """POSTs an import (or a precopy) at path, then long-polls the job to its
    end; returns the finished job."""
    st, doc = harness.http_json(node.admin_port, "POST", path)
    assert st in expect, (path, st, doc)
    poll = "/v1/migrate/import?bucket=%d%s&wait_ms=5000" % (
        doc["bucket"], "&precopy=1" if doc["precopy"] else "")
    return harness.wait_for(
        lambda: (lambda d: d if d["state"] != "running" else None)(
            harness.http_json(node.admin_port, "GET", poll, timeout=10)[1]), what=what)


def keys_in_bucket(bucket, n, nbuckets, prefix="k"):
    """The first n keys "<prefix><i>" that hash to bucket."""
    out, i = [], 0
    while len(out) < n:
        k = "%s%d" % (prefix, i)
        if harness.bucket_of(k, nbuckets) == bucket:
            out.append(k)
        i += 1
    return out


def held_buckets(node):
    """bucket -> items, for every bucket the node holds items of."""
    doc = json.loads(harness.http(node.admin_port, "GET", "/stats?buckets=all")[2])
    return {b["bucket"]: b["items"] for b in doc["buckets"] if b["items"] > 0}


def bucket_items(node, bucket):
    return held_buckets(node).get(bucket, 0)


def check_nothing_held_by_non_owners(console, nodes):
    """No node holds data of a bucket its group does not own (c)."""
    t = console_json(console, "/v1/tables")
    for n in nodes:
        status, _, body = harness.http(n.admin_port, "GET", "/stats")
        assert status == 200
        doc = json.loads(body)
        for b in doc["buckets"]:
            if b["items"] > 0:
                assert t["c"][b["bucket"]] == n.group, (
                    "node of group %d holds %d items of bucket %d owned by %d"
                    % (n.group, b["items"], b["bucket"], t["c"][b["bucket"]]))


def load(node, keys, value_size):
    """Pipelined sets straight into one node (it must own every key)."""
    harness.wait_for(lambda: node.conn().cmd("set %s 0 0 1" % keys[0], "x") == b"STORED\r\n",
                     what="the node serving its buckets")
    c = node.conn()
    payload = []
    values = {}
    for k in keys:
        v = ("%s:" % k).ljust(value_size, "v")
        values[k] = v
        payload.append(("set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)).encode())
    c.send(b"".join(payload))
    for k in keys:
        assert c.readline() == b"STORED\r\n", k
    c.close()
    return values


def percentile(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    i = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[i]


# ---- frames, as bc_frame.h specifies them ----

_CRC = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ (0x82F63B78 if _c & 1 else 0)
    _CRC.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _CRC[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


def mp_uint(v):
    if v < 128:
        return bytes([v])
    if v <= 0xFF:
        return b"\xcc" + bytes([v])
    if v <= 0xFFFF:
        return b"\xcd" + struct.pack(">H", v)
    if v <= 0xFFFFFFFF:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def mp_bin(b):
    assert len(b) < 256
    return b"\xc4" + bytes([len(b)]) + b


def frame(payload, corrupt=False):
    crc = crc32c(payload) ^ (1 if corrupt else 0)
    return struct.pack(">II", len(payload), crc) + payload


def hello(bucket, epoch, nbuckets, delta=None):
    """HELLO; delta=0/1 adds the seventh field (1: a delta export)."""
    head = b"\x96" if delta is None else b"\x97"
    return frame(head + mp_uint(0) + b"\xa5bcmig" + mp_uint(1) + mp_uint(bucket) +
                 mp_uint(epoch) + mp_uint(nbuckets) + (b"" if delta is None else mp_uint(delta)))


def item(key, value, corrupt=False):
    return frame(b"\x96" + mp_uint(1) + mp_bin(key) + mp_bin(value) + mp_uint(0) +
                 mp_uint(0) + mp_uint(1), corrupt)


def delete(key):
    return frame(b"\x92" + mp_uint(11) + mp_bin(key))


def end(items, nbytes):
    return frame(b"\x93" + mp_uint(2) + mp_uint(items) + mp_uint(nbytes))


def _mp_read(buf, pos):
    """One msgpack value at pos (the subset frames use): (value, next pos)."""
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return b, pos
    if 0x90 <= b <= 0x9F:
        return _mp_array(buf, pos, b & 0x0F)
    if 0xA0 <= b <= 0xBF:
        return bytes(buf[pos:pos + (b & 0x1F)]), pos + (b & 0x1F)
    if b == 0xC0:
        return None, pos
    if b in (0xC2, 0xC3):
        return b == 0xC3, pos
    sizes = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
    if b in sizes:
        n = sizes[b]
        return int.from_bytes(buf[pos:pos + n], "big"), pos + n
    lens = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
    if b in lens:
        n = lens[b]
        size = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
        return bytes(buf[pos:pos + size]), pos + size
    if b == 0xDC:
        return _mp_array(buf, pos + 2, int.from_bytes(buf[pos:pos + 2], "big"))
    raise AssertionError("msgpack type 0x%02x not expected in a frame" % b)


def _mp_array(buf, pos, n):
    out = []
    for _ in range(n):
        v, pos = _mp_read(buf, pos)
        out.append(v)
    return out, pos


FRAME_TYPES = {0: "HELLO", 1: "ITEM", 2: "END", 3: "HEAD", 4: "PART", 11: "DEL"}


def read_frames(body, crc=True):
    """An export's body as a list of frames, each its msgpack array with
    the type's name first (HELLO, ITEM [key, value, flags, ttl, cas], DEL,
    END [items, bytes], HEAD [key, size, flags, ttl, cas, meta] and PART
    [chunk] of an item in parts); checks every frame's length and (crc=True, slow
    in Python: a few MiB at most) its CRC."""
    frames, pos = [], 0
    while pos < len(body):
        assert pos + 8 <= len(body), "a truncated frame header at %d" % pos
        size, crc_got = struct.unpack(">II", body[pos:pos + 8])
        payload = body[pos + 8:pos + 8 + size]
        assert len(payload) == size, "a truncated frame at %d" % pos
        assert not crc or crc32c(payload) == crc_got, "a bad CRC at %d" % pos
        fields, used = _mp_read(payload, 0)
        assert used == size
        fields[0] = FRAME_TYPES.get(fields[0], fields[0])
        frames.append(fields)
        pos += 8 + size
    return frames


class FakeSource:
    """An HTTP server (a node of the cluster: it holds the secret) that
    answers every export with the next canned reply:
    (body, declared length or None[, seconds to wait before answering[,
    extra headers[, HTTP status]]]), and records the paths it was asked
    for."""

    def __init__(self):
        self.replies = []
        self.paths = []
        # a precopy's catch-ups (catchup=1) take their own replies first,
        # then catchup_default(path) when set, so that the catch-up thread
        # never takes a reply meant for a copy
        self.catchup_replies = []
        self.catchup_default = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def next_reply(self):
                if "catchup=1" in self.path:
                    if outer.catchup_replies:
                        return outer.catchup_replies.pop(0)
                    if outer.catchup_default is not None:
                        return outer.catchup_default(self.path)
                return outer.replies.pop(0) if outer.replies else (b"", None)

            def do_GET(self):
                outer.paths.append(self.path)
                body, length, *more = self.next_reply()
                if more and more[0]:
                    time.sleep(more[0])
                self.send_response(more[2] if len(more) > 2 else 200)
                self.send_header("Content-Type", "application/x-bucketcache-frames")
                # a node of the cluster: it proves the secret to the importer
                claim = (self.headers.get("X-Bucketcache-Peer") or "").split()
                if len(claim) == 4:
                    self.send_header("X-Bucketcache-Peer-Proof", "fake " + harness.peer_proof(
                        "server", ["http-response", "GET", self.path, claim[2], "fake"]))
                for k, v in (more[1] if len(more) > 1 else {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body) if length is None else length))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
