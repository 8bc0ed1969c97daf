"""memcached's binary protocol on the data port (node/proto/binary.c),
compared with memcached 1.6.18 byte for byte (CAS values normalised):

  - seeded random packet streams -- every opcode, quiet forms mixed in,
    keys with control bytes, NUL, spaces and 250 bytes, CAS checks,
    incr/decr creating with an initial value or not (0xffffffff), values
    over the item limit, unknown and SASL opcodes -- sent pipelined (one
    write, or pieces of 1 to 5000 bytes for even seeds), to a
    standalone node and to the non-owner node of a 2-group cluster (keys
    of the other group are forwarded as meta commands);
  - malformed packets, each on its own connection: keylen over bodylen,
    a key over 250 bytes, wrong extras lengths, a bad magic after valid
    packets (the connection closes), an unknown opcode's swallowed body;
  - a CAS workflow read step by step; stat keys;
  - libmemcached's `memccapable -b` and python3-pylibmc with binary=True.

A failure prints the seed; BC_BIN_SEED=<n> replays one stream,
BC_BIN_SEED=<first>-<last> a range.
"""
import os
import random
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
SENTINEL = 0xEEEEEEEE
VALUE_MAX = 1024 * 1024


def pkt(op, key=b"", ext=b"", val=b"", cas=0, opaque=0, magic=0x80, bodylen=None):
    bl = len(ext) + len(key) + len(val) if bodylen is None else bodylen
    return struct.pack(">BBHBBHIIQ", magic, op, len(key), len(ext), 0, 0, bl, opaque,
                       cas) + ext + key + val


def parse(data):
    """Responses as tuples; trailing bytes that are not one are kept."""
    out = []
    while len(data) >= 24 and data[0] == 0x81:
        _, op, kl, el, _, st, bl, opq, cas = struct.unpack(">BBHBBHIIQ", data[:24])
        if len(data) < 24 + bl:
            break
        body = data[24:24 + bl]
        out.append([op, st, body[:el], body[el:el + kl], body[el + kl:], opq, cas])
        data = data[24 + bl:]
    if data:
        out.append(("rest", data))
    return out


def normalise(replies):
    """CAS values as the order they first appear in."""
    seen = {}
    for r in replies:
        if isinstance(r, list) and r[6] != 0:
            r[6] = seen.setdefault(r[6], len(seen) + 1)
    return replies


def exchange(port, data, until_sentinel=True, timeout=5.0, chunks=None):
    """Sends data (in one write, or in pieces of the sizes chunks gives);
    reads until the sentinel noop's reply (or close)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * harness.SLOW)
    try:
        if chunks is None:
            s.sendall(data)
        else:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pos = 0
            while pos < len(data):
                n = next(chunks)
                s.sendall(data[pos:pos + n])
                pos += n
        buf = b""
        closed = False
        end = struct.pack(">I", SENTINEL)
        while True:
            if until_sentinel and len(buf) >= 24 and _has_sentinel(buf, end):
                break
            try:
                d = s.recv(1 << 20)
            except socket.timeout:
                break
            if not d:
                closed = True
                break
            buf += d
        return buf, closed
    finally:
        s.close()


def _has_sentinel(buf, end):
    pos = 0
    while pos + 24 <= len(buf):
        bl = struct.unpack(">I", buf[pos + 8:pos + 12])[0]
        if buf[pos + 1] == 0x0a and buf[pos + 12:pos + 16] == end:
            return True
        pos += 24 + bl
    return False


# ---------------------------------------------------------------------------
# the servers

MC = harness.Memcached(threads=2, memory_mb=64)
NODE = harness.Node(threads=2, memory_mb=64)
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "binary", buckets=NB)
G1 = harness.ClusterNode(zk, CL, 1, session_timeout_ms=10000)
G2 = harness.ClusterNode(zk, CL, 2, session_timeout_ms=10000)
CONSOLE = harness.Console(zk, CL)
C = harness.wait_for(lambda: (lambda t: t["c"] if 0 not in t["c"] and set(t["c"]) == {1, 2}
                              else None)(harness.tables(zk, CL)),
                     what="both groups own buckets")
harness.wait_primary(G1)
harness.wait_primary(G2)


def key_of(gid, prefix):
    return harness.key_in_bucket_owned_by(C, gid, prefix=prefix)


def forwarding_works():
    k = key_of(2, "probe").encode()
    out, _ = exchange(G1.port, pkt(0x01, k, struct.pack(">II", 0, 0), b"p", opaque=1) +
                      pkt(0x0a, opaque=SENTINEL))
    r = parse(out)
    return len(r) == 2 and r[0][1] == 0


harness.wait_for(forwarding_works, what="group 1 forwards to group 2")


def warm(port, n=1500):
    """n stores: every server's CAS counter past the CAS literals below."""
    data = b"".join(pkt(0x11, b"zz_warm%d" % i, struct.pack(">II", 0, 0), b"w")
                    for i in range(n))
    exchange(port, data + pkt(0x0a, opaque=SENTINEL))


for port in (MC.port, NODE.port, G1.port, G2.port):
    warm(port)


# ---------------------------------------------------------------------------
# the generator

class Gen:
    def __init__(self, seed, prefix):
        self.r = random.Random(seed)
        odd = [b"\x00", b"\x01", b" sp", b"\xff", b"\r\n", b"\t"]
        self.keys = [prefix + b"k%d" % i for i in range(5)]
        self.keys += [prefix + o + b"x" for o in odd]
        self.keys.append(prefix + b"L" * (250 - len(prefix)))
        self.opaque = 0

    def key(self):
        return self.r.choice(self.keys)

    def value(self):
        """No stored number reaches 2^63 and no value is white space alone:
        memcached's incr then reads past the value into its slab memory
        (see test_memcached_differential.py), and its answer depends on
        what was stored there before."""
        r = self.r
        c = r.random()
        if c < 0.35:
            return b"%d" % r.choice([0, 1, 7, 42, 2 ** 40, r.randrange(1000)])
        if c < 0.45:
            return b""
        v = bytes(r.choice(b"abcXYZ019 \t-\r\n\x00") for _ in range(r.randrange(1, 40)))
        if not v.strip(b" \t\r\n"):
            v = v[:-1] + b"a"
        return v

    def cas(self):
        return self.r.choice([0, 0, 0, 0, 7, 2 ** 64 - 1])

    def exptime(self):
        return self.r.choice([0, 0, 100000, 2000000000, 4000000000])

    def packet(self):
        r = self.r
        self.opaque += 1
        o = self.opaque
        k = self.key()
        c = r.randrange(20)
        if c < 5:
            op = r.choice([0x01, 0x02, 0x03, 0x11, 0x12, 0x13])
            v = self.value()
            if r.random() < 0.01:
                v = b"y" * (VALUE_MAX - 1)              # over the limit with its CRLF
            ext = struct.pack(">II", r.choice([0, 5, 2 ** 32 - 1]), self.exptime())
            return pkt(op, k, ext, v, cas=self.cas(), opaque=o)
        if c < 9:
            op = r.choice([0x00, 0x09, 0x0c, 0x0d])
            return pkt(op, k, opaque=o)
        if c < 10:
            op = r.choice([0x1c, 0x1d, 0x1e, 0x23, 0x24])
            return pkt(op, k, struct.pack(">I", self.exptime()), opaque=o)
        if c < 13:
            op = r.choice([0x05, 0x06, 0x15, 0x16])
            # decr by 2^64-1 reaches 0; incr stays far below 2^63 (above)
            delta = r.choice([0, 1, 5, 2 ** 64 - 1 if op in (0x06, 0x16) else 2 ** 30])
            ext = struct.pack(">QQI", delta, r.choice([0, 10, 2 ** 40]),
                              r.choice([0, 0xffffffff, 100000]))
            return pkt(op, k, ext, cas=self.cas(), opaque=o)
        if c < 14:
            return pkt(r.choice([0x04, 0x14]), k, cas=self.cas(), opaque=o)
        if c < 16:
            op = r.choice([0x0e, 0x0f, 0x19, 0x1a])
            return pkt(op, k, val=self.value(), cas=self.cas(), opaque=o)
        if c < 17:
            return pkt(r.choice([0x0a, 0x0b]), opaque=o)
        if c < 18:
            if r.random() < 0.3:
                return pkt(r.choice([0x08, 0x18]), opaque=o)
            return pkt(0x10, r.choice([b"nosuch", b"detail x", b"reset"]), opaque=o)
        if c < 19:
            return pkt(r.choice([0x30, 0x20, 0x45]), opaque=o)
        return pkt(0x0a, opaque=o)

    def stream(self, n):
        return b"".join(self.packet() for _ in range(n)) + pkt(0x0a, opaque=SENTINEL)


def compare(port, data, what, chunked=False):
    def pieces(seed):
        r = random.Random(seed)
        while True:
            yield r.choice([1, 7, 23, 24, 25, 100, 1000, 5000])
    a, ca = exchange(MC.port, data, chunks=pieces(len(data)) if chunked else None)
    b, cb = exchange(port, data, chunks=pieces(len(data)) if chunked else None)
    ra, rb = normalise(parse(a)), normalise(parse(b))
    assert len(ra) > 10 and ra[-1][5] == SENTINEL, (what, ra[-3:])
    if ra != rb or ca != cb:
        for i, (x, y) in enumerate(zip(ra, rb)):
            if x != y:
                raise AssertionError("%s: reply %d differs:\n memcached %r\n node      %r"
                                     % (what, i, x, y))
        raise AssertionError("%s: %d vs %d replies, closed %s vs %s\n%r\n%r"
                             % (what, len(ra), len(rb), ca, cb, ra[-3:], rb[-3:]))


def seeds():
    s = os.environ.get("BC_BIN_SEED")
    if not s:
        return range(1, 61)
    first, _, last = s.partition("-")
    return range(int(first), int(last or first) + 1)


def run_streams(port, label):
    for seed in seeds():
        g = Gen(seed, b"%s%d_" % (label.encode(), seed))
        data = g.stream(60)
        try:
            compare(port, data, "%s seed %d" % (label, seed), chunked=seed % 2 == 0)
        except AssertionError:
            print("BC_BIN_SEED=%d fails (%s)" % (seed, label), flush=True)
            raise


def test_streams_standalone():
    run_streams(NODE.port, "s")


def test_streams_non_owner():
    """Keys of both groups through group 1's node: group 2's are forwarded."""
    owners = set()
    for seed in seeds():
        owners |= {C[harness.bucket_of(k, NB)] for k in Gen(seed, b"c%d_" % seed).keys}
    assert owners == {1, 2}, owners
    run_streams(G1.port, "c")


# ---------------------------------------------------------------------------
# malformed packets

def malformed_cases():
    ok = pkt(0x01, b"mk", struct.pack(">II", 1, 0), b"v", opaque=1) + pkt(0x0a, opaque=2)
    return [
        ("keylen over bodylen", pkt(0x00, b"abc", bodylen=2) + b"x" * 10),
        ("key plus extras over bodylen", pkt(0x01, b"abc", b"12345678", bodylen=9) + b"x" * 20),
        ("key over 250", pkt(0x00, b"K" * 251)),
        ("get with extras", pkt(0x00, b"k", ext=b"xxxx")),
        ("get without key", pkt(0x00)),
        ("get body over key", pkt(0x00, b"k", val=b"zz")),
        ("set extras 4", pkt(0x01, b"k", ext=b"1234", val=b"v")),
        ("set without key", pkt(0x01, ext=b"12345678", val=b"v")),
        ("incr extras 8", pkt(0x05, b"k", ext=b"12345678")),
        ("delete with extras", pkt(0x04, b"k", ext=b"1234")),
        ("noop with body", pkt(0x0a, val=b"x")),
        ("version with key", pkt(0x0b, b"k")),
        ("quit with body", pkt(0x07, val=b"x")),
        ("flush extras 2", pkt(0x08, ext=b"12")),
        ("stat with extras", pkt(0x10, ext=b"1234")),
        ("touch without extras", pkt(0x1c, b"k")),
        ("append with extras", pkt(0x0e, b"k", ext=b"1234", val=b"v")),
        ("sasl auth without key", pkt(0x21, val=b"x")),
        ("sasl list with key", pkt(0x20, b"k")),
        ("bad magic after valid", ok + b"\x81" + b"\x00" * 23),
        ("text magic after valid", ok + b"get k\r\n" + b"\x00" * 20),
        ("quit then more", pkt(0x07, opaque=5) + ok),
        ("quitq then more", pkt(0x17, opaque=5) + ok),
        ("unknown swallows bodylen", pkt(0x50, b"k", val=b"abc") + b"\x00" +
         pkt(0x0a, opaque=SENTINEL)),
        ("stat leaves its body", pkt(0x10, b"nosuch", bodylen=6 + 24) +
         pkt(0x0a, opaque=7) + pkt(0x0a, opaque=SENTINEL)),
        ("sasl auth swallows its value", pkt(0x21, b"PLAIN", val=b"\x00u\x00p") +
         pkt(0x0a, opaque=SENTINEL)),
        ("huge bodylen set, E2BIG swallowed",
         pkt(0x01, b"hk", struct.pack(">II", 0, 0), bodylen=10 + VALUE_MAX) +
         b"z" * VALUE_MAX + pkt(0x0a, opaque=SENTINEL)),
    ]


def run_malformed(port):
    for name, data in malformed_cases():
        a, ca = exchange(MC.port, data)
        b, cb = exchange(port, data)
        ra, rb = normalise(parse(a)), normalise(parse(b))
        assert (ra, ca) == (rb, cb), (name, ra, ca, rb, cb)


def test_malformed_standalone():
    run_malformed(NODE.port)


def test_malformed_non_owner():
    run_malformed(G1.port)


# ---------------------------------------------------------------------------
# a CAS workflow, read step by step

class Bin:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5 * harness.SLOW)
        self.buf = b""

    def call(self, data):
        self.s.sendall(data)
        while True:
            if len(self.buf) >= 24:
                bl = struct.unpack(">I", self.buf[8:12])[0]
                if len(self.buf) >= 24 + bl:
                    r = parse(self.buf[:24 + bl])[0]
                    self.buf = self.buf[24 + bl:]
                    return r
            d = self.s.recv(65536)
            assert d, "closed"
            self.buf += d


def cas_session(port, k):
    c = Bin(port)
    out = []
    ext = struct.pack(">II", 3, 0)
    out.append(c.call(pkt(0x01, k, ext, b"one")))
    got = c.call(pkt(0x00, k))
    cas = got[6]
    out.append(got)
    out.append(c.call(pkt(0x01, k, ext, b"bad", cas=cas + 1000)))
    out.append(c.call(pkt(0x03, k, ext, b"two", cas=cas)))
    cas2 = out[-1][6]
    out.append(c.call(pkt(0x0e, k, val=b"+", cas=cas)))          # stale: EEXISTS
    out.append(c.call(pkt(0x0e, k, val=b"+", cas=cas2)))
    cas3 = out[-1][6]
    out.append(c.call(pkt(0x04, k, cas=cas3 + 5)))               # EEXISTS
    out.append(c.call(pkt(0x04, k, cas=cas3)))
    out.append(c.call(pkt(0x05, k, struct.pack(">QQI", 1, 41, 0))))   # created: 41
    cas4 = out[-1][6]
    out.append(c.call(pkt(0x05, k, struct.pack(">QQI", 1, 0, 0), cas=cas4 + 9)))
    out.append(c.call(pkt(0x05, k, struct.pack(">QQI", 1, 0, 0), cas=cas4)))
    out.append(c.call(pkt(0x02, k, ext, b"x", cas=1)))            # add with CAS: a cas
    out.append(c.call(pkt(0x1c, k, struct.pack(">I", 1000))))
    out.append(c.call(pkt(0x0c, k)))
    return normalise(out)


def test_cas_workflow_standalone_and_non_owner():
    k = key_of(2, "casfw").encode()          # group 2's: forwarded by group 1
    want = cas_session(MC.port, k)
    assert want[1][1] == 0 and want[3][1] == 0 and want[2][1] == 2, want
    assert cas_session(NODE.port, k) == want
    assert cas_session(G1.port, k) == want


def test_stat_keys():
    for port in (NODE.port, G1.port):
        c = Bin(port)
        for key in (b"", b"settings", b"items", b"slabs"):
            c.s.sendall(pkt(0x10, key, opaque=9))
            n = 0
            while True:
                r = c.call(b"")
                assert r[0] == 0x10 and r[1] == 0 and r[5] == 9, r
                if not r[3]:
                    break
                n += 1
            if key in (b"", b"settings"):
                assert n > 10, (key, n)
        got = c.call(pkt(0x10, b"conns", opaque=3))
        assert got[1] == 1 and got[4] == b"Not found", got


def test_forwarded_getk():
    """A key of group 2 asked of group 2's own node is served; the
    forwarded one through group 1 gives the same answer."""
    k = key_of(2, "same").encode()
    for port in (G2.port, G1.port):
        c = Bin(port)
        assert c.call(pkt(0x01, k, struct.pack(">II", 9, 0), b"v"))[1] == 0
        r = c.call(pkt(0x0c, k))
        assert r[1] == 0 and r[2] == struct.pack(">I", 9) and r[3] == k and r[4] == b"v", r


def test_refusals():
    """A node that does not forward (a backup of group 1 with --no-forward)
    refuses as in text: status 0x07 with the refusal's text; errors show
    even in quiet mode, and a refused store's value is swallowed."""
    backup = harness.ClusterNode(zk, CL, 1, "--no-forward", session_timeout_ms=10000)
    k = key_of(2, "refused").encode()

    def text_refusal():
        c = backup.conn()
        try:
            line = c.cmd("get " + k.decode())
        finally:
            c.close()
        return line if line.startswith(b"SERVER_ERROR MOVED") else None
    line = harness.wait_for(text_refusal, what="the backup refuses group 2's keys")
    want = line[len(b"SERVER_ERROR "):].rstrip(b"\r\n")
    data = (pkt(0x0d, k, opaque=1) +
            pkt(0x11, k, struct.pack(">II", 0, 0), b"v" * 30, opaque=2) +
            pkt(0x05, k, struct.pack(">QQI", 1, 0, 0), opaque=3) +
            pkt(0x0a, opaque=SENTINEL))
    out, closed = exchange(backup.port, data)
    r = parse(out)
    assert not closed and [x[:2] + [x[4], x[5]] for x in r] == [
        [0x0d, 7, want, 1], [0x11, 7, want, 2], [0x05, 7, want, 3], [0x0a, 0, b"", SENTINEL]], r
    backup.stop()


# ---------------------------------------------------------------------------
# clients and tools

def memccapable(port):
    r = subprocess.run(["memccapable", "-h", "127.0.0.1", "-p", str(port), "-t", "10", "-b"],
                       capture_output=True, timeout=120 * harness.SLOW)
    return r.returncode, r.stdout, r.stderr


def test_memccapable_binary():
    rc, out, err = memccapable(MC.port)
    assert rc == 0 and b"All tests passed" in out, (rc, out, err)
    n = out.count(b"[pass]")
    for port in (NODE.port, G1.port):
        rc, out2, err2 = memccapable(port)
        assert rc == 0 and b"All tests passed" in out2, (port, rc, out2, err2)
        assert out2.count(b"[pass]") == n, out2


def test_pylibmc_binary():
    try:
        import pylibmc
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        import pylibmc
    for port, prefix in ((NODE.port, "s"), (G1.port, "c")):
        mc = pylibmc.Client(["127.0.0.1:%d" % port], binary=True,
                            behaviors={"cas": True})
        keys = [key_of(2, prefix + "py") if port == G1.port else prefix + "py",
                key_of(1, prefix + "pz") if port == G1.port else prefix + "pz"]
        for k in keys:
            assert mc.set(k, "value1")
            assert mc.get(k) == "value1"
            v, cas = mc.gets(k)
            assert v == "value1"
            assert mc.cas(k, "value2", cas)
            assert not mc.cas(k, "value3", cas)
            assert mc.get(k) == "value2"
            assert mc.set(k + "n", 10)
            assert mc.incr(k + "n", 5) == 15
            assert mc.decr(k + "n", 20) == 0
            assert mc.touch(k, 1000)
            assert mc.delete(k)
            assert mc.get(k) is None
        assert mc.set_multi({keys[0]: "a", keys[1]: "b"}) == []
        assert mc.get_multi(keys + ["missing_" + prefix]) == {keys[0]: "a", keys[1]: "b"}
        assert mc.add(keys[0], "x") is False
        assert mc.replace(keys[0], "r")
        assert mc.append(keys[0], "+")
        assert mc.get(keys[0]) == "r+"


if __name__ == "__main__":
    harness.main(globals())
