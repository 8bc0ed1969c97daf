"""Differential test: seeded random command streams, valid and malformed,
sent to memcached 1.6.18 and to bucketcache-node; the replies must be the
same bytes once CAS values (compared as a pattern) and time-dependent fields
(meta t/l, me exp=/la=) are normalised.

The streams mix classic and meta commands with every meta flag, keys with
control bytes, TABs and 250/251 bytes, base64 keys, 20-digit numbers, bad
numbers and data lengths, values over the item limit, quiet mode and
noreply, and are sent pipelined
(one write) or in odd chunks.  They run against a standalone node and
against the non-owner node of a 2-group cluster (keys of the other group
are forwarded).  A failure prints the seed; BC_DIFF_SEED=<n> replays one
stream, BC_DIFF_SEED=<first>-<last> runs a range (both modes).

Left out on purpose: multi-gets with a key over 250 bytes (memcached 1.6.18
then drops the replies still queued on the connection; see
test_memcached_compat.py), short positive TTLs (the two servers would race
the clock), stats.  In the cluster, multi-gets spanning both groups
(split by the non-owner, a part forwarded) must answer in the request's
key order as memcached does, duplicates and all.  flush_all through the
non-owner flushes both groups, as one memcached: it is in the cluster
streams too.

memcached 1.6.18's answer to incr/decr/ma on a stored value >= 2^63
depends on the bytes its slab memory holds after the value (see differ);
such a stream is rerun on a fresh memcached, and compared only up to that
answer if it comes again.
"""
import base64
import os
import random
import re
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# The end of a stream's replies: a miss of a reserved key that echoes a
# token no command of the stream can produce.
SENTINEL_CMD = b"mg zz_end_%d k Oend\r\n"
SENTINEL_REPLY = b"EN kzz_end_%d Oend\r\n"
# Before the sentinel: silent lines (quiet misses) enough to end any data
# block a stream leaves open (a length up to 999 with the stream too short
# to fill it), so both servers reach the sentinel.  memcached does not
# flush the replies it holds while it reads or swallows a data block; the
# padding also makes both servers' output complete before it is compared.
PADDING = b"mg zz_pad q\r\n" * 100

_servers = {}


def warm(port, n):
    """n stores, so that the server's CAS counter is past every CAS literal
    of the streams (numbers below 1000, or far above any counter): a cas
    with "7" must miss on both servers, not hit on a fresh one."""
    run(port, b"".join(b"set zz_warm%d 0 0 1 noreply\r\nw\r\n" % i for i in range(n)), False, 0)


def servers():
    # A failed test's processes are stopped by the harness: start afresh.
    if "mc" not in _servers or _servers["mc"].proc.poll() is not None \
            or _servers["node"].proc.poll() is not None:
        _servers["mc"] = harness.Memcached(threads=2, memory_mb=64)
        _servers["node"] = harness.Node(threads=2, memory_mb=64)
        warm(_servers["mc"].port, 1500)
        warm(_servers["node"].port, 1500)
    return _servers


def cluster():
    """A 2-group cluster; returns the node of group 1 (it forwards group 2's keys)."""
    if "g1" not in _servers:
        zk = harness.ZooKeeper()
        cl = harness.create_cluster(zk, "diff", buckets=16)
        g1 = harness.ClusterNode(zk, cl, 1, session_timeout_ms=10000)
        g2 = harness.ClusterNode(zk, cl, 2, session_timeout_ms=10000)
        console = harness.Console(zk, cl)
        harness.wait_for(lambda: (lambda t: t if 0 not in t["c"] and set(t["c"]) == {1, 2}
                                  else None)(harness.tables(zk, cl)),
                         what="both groups own buckets")
        harness.wait_primary(g1)
        harness.wait_primary(g2)

        def forwarding():
            # A key of each bucket through g1: none refused or failed.
            probe = b"".join(b"mg zz_probe%d v\r\n" % i for i in range(64)) + b"mn\r\n"
            out = run(g1.port, probe, False, 0)
            return b"SERVER_ERROR" not in out
        harness.wait_for(forwarding, what="node of group 1 forwards to group 2")
        # each node keeps its own keys and forwards the other's: both
        # counters pass ~1500
        warm(g1.port, 1500)
        warm(g2.port, 1500)
        _servers.update(zk=zk, g1=g1, g2=g2, console=console)
    return _servers["g1"]


# ---------------------------------------------------------------------------
# the generator

class Gen:
    def __init__(self, seed, prefix, cluster_mode=False):
        self.r = random.Random(seed)
        self.prefix = prefix
        self.cluster_mode = cluster_mode
        odd = [b"\x01", b"\x1f", b"\x7f", b"\t", b"\xff", b"\xc3\xa9", b"\x0b", b"\x0c"]
        self.keys = [prefix + b"k%d" % i for i in range(6)]
        self.keys += [prefix + o + b"x" for o in odd]
        self.keys.append(prefix + b"L" * (250 - len(prefix)))
        self.long_key = prefix + b"L" * (251 - len(prefix))
        self.binkeys = [prefix + b"\x00b\r\n", prefix + b" sp", prefix + b"bin\x01"]

    def key(self, allow_long=True):
        r = self.r
        if allow_long and r.random() < 0.03:
            return self.long_key
        return r.choice(self.keys)

    def number(self):
        r = self.r
        return r.choice([b"0", b"1", b"7", b"42", b"-1", b"-0", b"+5", b"abc", b"5x",
                         b"4294967295", b"4294967296", b"2147483647", b"2147483648",
                         b"18446744073709551615", b"18446744073709551616",
                         b"99999999999999999999", b"9223372036854775808",
                         b"00000000000000000001", b"\t3", b"%d" % r.randrange(1000)])

    def ttl(self):
        return self.r.choice([b"0", b"-1", b"1000", b"5000", b"86400", b"2000000000",
                              b"100000000", b"x"])

    def recache_ttl(self):
        """R's threshold: as many choices as ttl(), none equal to a TTL the
        streams set -- "R5000" on an item set with T5000 hands out a win
        token once either server's clock has ticked since the set, which
        is timing, not behaviour."""
        return self.r.choice([b"0", b"-1", b"1500", b"4000", b"90000", b"2000000000",
                              b"100000000", b"x"])

    def value(self):
        r = self.r
        c = r.random()
        if c < 0.3:
            return self.number()
        if c < 0.4:
            return b""
        if c < 0.5:
            return b"18446744073709551615"
        n = r.randrange(1, 40)
        v = bytes(r.choice(b"abcXYZ019 \t-\r\n\x00") for _ in range(n))
        if not v.strip(b" \t\r\n"):
            # Not white space alone: memcached's incr would parse on past
            # the value into its memory (see differ).  (Nor can appends
            # make such a value: every value has another byte, or none.)
            v = v[:-1] + b"a"
        return v

    def length(self, v):
        """A data length: the value's, or now and then a bad one."""
        if self.r.random() >= 0.05:
            return b"%d" % len(v)
        return self.number()

    def too_large(self):
        """A value one byte over the item limit (1 MiB with its CRLF):
        SERVER_ERROR, the block swallowed, and a set's or an ms's old
        value removed -- through a non-owner, on the owner.  Lines of 1000
        bytes: a stream out of step (an earlier bad length) reads them as
        commands ("ERROR" each) instead of as one megabyte without a
        newline, on which both servers would close."""
        v = ((b"y" * 998 + b"\r\n") * 1050)[:1024 * 1024 - 1]
        return v, b"%d" % len(v)

    def classic(self):
        r = self.r
        c = r.randrange(16)
        k = self.key()
        if c < 4:
            cmd = r.choice([b"set", b"add", b"replace", b"append", b"prepend"])
            v = self.value()
            n = self.length(v)
            big = r.random() < 0.01
            if big:
                v, n = self.too_large()
            flags = r.choice([b"0", b"5", b"4294967295", b"4294967296", b"-1", b"x"]) \
                if r.random() < 0.3 else b"0"
            nr = b" noreply" if r.random() < 0.15 else b""
            ttl = self.ttl() if r.random() < 0.3 else b"0"
            if big:
                # A refused line leaves its block to be read as commands:
                # here a valid line, so that the block is the one swallowed.
                k, flags, ttl = self.key(allow_long=False), b"0", b"0"
            data = v + (b"\r\n" if r.random() < 0.95 else b"xx")
            return b"%s %s %s %s %s%s\r\n%s" % (cmd, k, flags, ttl, n, nr, data)
        if c < 6:
            # In the cluster more keys, so that most multi-gets span both
            # groups (split, answered in key order all the same).
            nkeys = r.randrange(1, 7) if self.cluster_mode else r.randrange(1, 4)
            keys = b" ".join(self.key(allow_long=False) for _ in range(nkeys))
            cmd = r.choice([b"get", b"gets", b"gat", b"gats", b"bget"])
            if cmd in (b"gat", b"gats"):
                return b"%s %s %s\r\n" % (cmd, self.ttl(), keys)
            return b"%s %s\r\n" % (cmd, keys)
        if c < 8:
            cmd = r.choice([b"incr", b"decr"])
            nr = b" noreply" if r.random() < 0.1 else b""
            return b"%s %s %s%s\r\n" % (cmd, k, self.number(), nr)
        if c < 9:
            return b"delete %s%s\r\n" % (k, r.choice([b"", b" 0", b" noreply", b" 1", b" 0 noreply"]))
        if c < 10:
            return b"touch %s %s\r\n" % (k, self.ttl())
        if c < 11:
            v = self.value()
            return b"cas %s 0 0 %d %s\r\n%s\r\n" % (k, len(v), self.number(), v)
        if c < 12:
            return r.choice([b"version\r\n", b"verbosity 1\r\n", b"verbosity\r\n",
                             b"bogus\r\n", b"GET\r\n", b"\r\n", b"  \r\n", b"x\r\n",
                             b"mz foo\r\n", b"set\r\n", b"get\r\n", b"incr k\r\n",
                             b"a\x00b\r\n", b"verbosity 4294967297\r\n"])
        if c < 13:
            return r.choice([b"flush_all\r\n", b"flush_all 0\r\n", b"flush_all noreply\r\n",
                             b"flush_all x\r\n"])
        return b"mn\r\n"

    def meta_key(self):
        r = self.r
        if r.random() < 0.15:
            raw = r.choice(self.binkeys + self.keys[:3])
            enc = base64.b64encode(raw)
            if r.random() < 0.1:
                enc = enc[:-1]
            return enc, True
        return self.key(), False

    def flags(self, letters, extra=b""):
        r = self.r
        out = []
        for _ in range(r.randrange(0, 7)):
            f = r.choice(letters)
            if f in b"TN":
                out.append(bytes([f]) + self.ttl())
            elif f == ord("R"):
                out.append(b"R" + self.recache_ttl())
            elif f in b"CDJF":
                out.append(bytes([f]) + self.number())
            elif f == ord("O"):
                out.append(b"O" + r.choice([b"x", b"123", b"a" * 31, b"a" * 32]))
            elif f == ord("M"):
                out.append(b"M" + bytes([r.choice(b"SEAPRID+-x")]) + (b"" if r.random() < 0.9 else b"z"))
            else:
                out.append(bytes([f]))
        return out

    def meta(self):
        r = self.r
        k, binary = self.meta_key()
        c = r.randrange(6)
        if c == 0:
            fl = self.flags(b"vstcfklhOqTNRuEX")
        elif c == 1:
            v = self.value()
            n = self.length(v)
            if r.random() < 0.02:
                v, n = self.too_large()
                k, binary = self.key(allow_long=False), False     # a valid line, as above
            fl = self.flags(b"TFCIqOkcMbs")
            if binary:
                fl.append(b"b")
            r.shuffle(fl)
            data = v + (b"\r\n" if r.random() < 0.95 else b"zz")
            return b"ms %s %s%s\r\n%s" % (k, n, b"".join(b" " + f for f in fl), data)
        elif c == 2:
            fl = self.flags(b"qOkCITx")
        elif c == 3:
            fl = self.flags(b"NJDTMqOtckv")
        elif c == 4:
            return b"me %s%s\r\n" % (k, b" b" if binary else b"")
        else:
            fl = self.flags(b"vk")
        if binary:
            fl.append(b"b")
        r.shuffle(fl)
        cmd = [b"mg", b"mg", b"md", b"ma", b"me", b"mg"][c]
        if r.random() < 0.02:
            fl = [b"v"] * 20
        return b"%s %s%s\r\n" % (cmd, k, b"".join(b" " + f for f in fl))

    @staticmethod
    def target(command):
        """(command name, the key it names, base64 decoded) of a line."""
        words = command.split(b"\r\n", 1)[0].split(b" ")
        key = words[1] if len(words) > 1 else b""
        if words[0][:1] == b"m" and b"b" in words[2:]:
            try:
                key = base64.b64decode(key, validate=True)
            except ValueError:
                pass
        return words[0], key

    def stream(self, n):
        """n commands.  An incr/decr/ma of a key that an mg hit since the
        last get or mn gets an "mn" first: memcached 1.6.18 holds the item
        for the mg's reply until it flushes its replies (after a get, an
        mn, every 20 commands, or when it needs more input), and cannot
        rewrite the number in place meanwhile; it stores a new item, which
        shows in the value's padding and the item's fetched flag.  The node
        rewrites in place whenever no reply of its own holds the item (see
        docs/protocol.md): a difference of timing, kept out of the
        comparison."""
        out, held = [], set()
        for _ in range(n):
            command = self.meta() if self.r.random() < 0.55 else self.classic()
            name, key = self.target(command)
            if name in (b"incr", b"decr", b"ma") and key in held:
                out.append(b"mn\r\n")
                held.clear()
            if name in (b"get", b"gets", b"gat", b"gats", b"bget", b"mn"):
                held.clear()
            elif name == b"mg":
                held.add(key)
            out.append(command)
        return b"".join(out)


# ---------------------------------------------------------------------------

CAS_RE = re.compile(rb"(?m)(^VALUE [^ \r\n]+ \d+ \d+ |(?<= )c|cas=)(\d+)(?=[ \r])")


def normalise(out):
    """(the reply text with every CAS value as "CAS" and time-dependent
    fields as "*", the CAS values in order)."""
    values = [m.group(2) for m in CAS_RE.finditer(out)]
    out = CAS_RE.sub(lambda m: m.group(1) + b"CAS", out)
    out = re.sub(rb" t\d+(?=[ \r])", b" t*", out)
    out = re.sub(rb" l\d+(?=[ \r])", b" l*", out)
    out = re.sub(rb"exp=-?\d+", lambda m: m.group(0) if m.group(0) == b"exp=-1" else b"exp=*", out)
    out = re.sub(rb"la=\d+", b"la=*", out)
    return out, values


def cas_pattern_agrees(a, b, cluster_mode):
    """Whether the node's CAS values (b) follow memcached's (a): the same
    value where memcached shows the same value (one item version), and,
    standalone, a different one where memcached's differs.  In a cluster
    each node counts CAS values on its own, so two items on two nodes may
    show the same number: there only the first rule holds."""
    fwd, back = {}, {}
    for x, y in zip(a, b):
        if fwd.setdefault(x, y) != y:
            return False
        if not cluster_mode and back.setdefault(y, x) != x:
            return False
    return True


def run(port, payload, chunked, seed):
    s = socket.create_connection(("127.0.0.1", port), timeout=15 * harness.SLOW)
    try:
        end_cmd, end_reply = SENTINEL_CMD % seed, SENTINEL_REPLY % seed
        data = payload + b"\r\n" + PADDING + end_cmd
        if chunked:
            r = random.Random(seed)
            i = 0
            while i < len(data):
                step = r.randrange(1, 64)
                s.sendall(data[i:i + step])
                i += step
        else:
            s.sendall(data)
        buf = b""
        while not buf.endswith(end_reply):
            try:
                chunk = s.recv(1 << 20)
            except socket.timeout:
                buf += b"<timeout>"
                break
            if not chunk:
                buf += b"<closed>"
                break
            buf += chunk
        return buf
    finally:
        s.close()


NON_NUMERIC = b"CLIENT_ERROR cannot increment or decrement non-numeric value"


def compare(mc_port, node_port, seed, prefix, cluster_mode):
    """Runs one stream on both; None if the replies agree, else the first
    differing line's index and both replies' lines."""
    payload = Gen(seed, prefix, cluster_mode).stream(60)
    chunked = seed % 3 == 0
    a, cas_a = normalise(run(mc_port, payload, chunked, seed))
    b, cas_b = normalise(run(node_port, payload, chunked, seed))
    la, lb = a.split(b"\r\n"), b.split(b"\r\n")
    fetch_after_arith(la, lb, payload)
    if la == lb:
        if cas_pattern_agrees(cas_a, cas_b, cluster_mode):
            return None
        return -1, [b"CAS values: %r" % cas_a], [b"CAS values: %r" % cas_b], payload
    i = next((i for i in range(min(len(la), len(lb))) if la[i] != lb[i]), min(len(la), len(lb)))
    return i, la, lb, payload


FETCH_RE = re.compile(rb"^ME (\S+) (.*)fetch=(yes|no)(.*)$")


def fetch_after_arith(la, lb, payload):
    """memcached 1.6.18 answers an incr/decr/ma on a value of unchanged
    length in place, unless another reference to the item is held: then it
    writes a new item, which has never been fetched.  A pipelined mg with
    v before it is such a reference (its reply, still queued, points into
    the item), so "me" says fetch=no after it where the node, which always
    writes in place, says fetch=yes.  Sent one command at a time, memcached
    says fetch=yes too.  Where an ME line differs only so, for a key some
    arithmetic of the stream named, the node's line is taken as agreeing."""
    for i in range(min(len(la), len(lb))):
        ma, mb = FETCH_RE.match(la[i]), FETCH_RE.match(lb[i])
        if not (ma and mb and la[i] != lb[i] and ma.group(3) == b"no" and mb.group(3) == b"yes"
                and (ma.group(1), ma.group(2), ma.group(4)) ==
                    (mb.group(1), mb.group(2), mb.group(4))):
            continue
        key = ma.group(1)
        if re.search(rb"(^|\n)(incr|decr|ma) " + re.escape(key) + rb"[ \r]", payload):
            lb[i] = la[i]


def arith_done(line):
    """A reply of incr/decr/ma that did the arithmetic: a number; HD or VA
    from ma, or the error ma answers only once the arithmetic is done (an
    opaque token too long)."""
    return (line.isdigit() or line == b"HD" or line.startswith((b"HD ", b"VA ")) or
            line == b"CLIENT_ERROR opaque token too long")


def read_past(d):
    """Whether difference d may be memcached reading past a stored value
    (see differ): one side "non-numeric", the other did the arithmetic.
    Returns "strchr" when memcached refused a number the node took."""
    i, la, lb = d[0], d[1], d[2]
    if not (0 <= i < len(la) and i < len(lb)):
        return None
    # (or nothing: a quiet ma that did it; memcached's next reply is then
    # the node's, and later reads of the key differ, as they must)
    if la[i] == NON_NUMERIC and (arith_done(lb[i]) or la[i + 1:i + 2] == lb[i:i + 1]):
        return "strchr"
    if lb[i] == NON_NUMERIC and arith_done(la[i]):
        return "strtoull"
    return None


def differ(node_port, seeds, cluster_mode):
    mode = "cluster" if cluster_mode else "standalone"
    rechecked = quirks = 0
    for seed in seeds:
        # A mode of its own in the key, so that one seed run both ways does
        # not meet its own keys in memcached.
        prefix = b"%s%d:" % (b"c" if cluster_mode else b"d", seed)
        d = compare(servers()["mc"].port, node_port, seed, prefix, cluster_mode)
        if d and read_past(d):
            # memcached 1.6.18's safe_strtoull reads past a stored value
            # ("...\r\n" is not NUL-terminated) into whatever its slab
            # memory holds after it -- an earlier value's bytes, the next
            # item's header: strtoull skips a value of white space only and
            # parses what follows, and a value >= 2^63 is refused when
            # strchr() finds a '-' anywhere up to the next NUL.  Its answer
            # then depends on that memory; the node looks inside the value
            # only.  Such a stream is run again, on keys of its own, against
            # a memcached whose memory is fresh.  Where the stream itself
            # leaves such bytes, the rerun meets memcached's refusal of a
            # number again, and the stream is not compared past it (the
            # other way round, memcached taking a value the node refuses,
            # must not come again).
            rechecked += 1
            fresh = harness.Memcached(threads=2, memory_mb=64)
            warm(fresh.port, 1500)
            try:
                d = compare(fresh.port, node_port, seed, b"r" + prefix, cluster_mode)
            finally:
                fresh.stop()
            if d and read_past(d) == "strchr":
                quirks += 1
                d = None
        if d:
            i, la, lb, payload = d
            raise AssertionError(
                "seed %d (%s): replies differ at line %d\n memcached: %r\n node:      %r\n"
                "stream: %r" % (seed, mode, i, la[max(0, i - 2):i + 3], lb[max(0, i - 2):i + 3],
                                payload[:3000]))
    print("%s: %d seeds agree (%d rerun on a fresh memcached, %d of them compared up to "
          "memcached's strchr answer)" % (mode, len(seeds), rechecked, quirks))
    assert rechecked <= max(3, len(seeds) // 10), "too many reruns: %d" % rechecked


def seeds(base, n):
    """The seeds to run: base..base+n-1, or BC_DIFF_SEED=<n> (one) or
    BC_DIFF_SEED=<first>-<last> (a range, for long runs by hand)."""
    spec = os.environ.get("BC_DIFF_SEED")
    if spec:
        first, _, last = spec.partition("-")
        return list(range(int(first), int(last or first) + 1))
    return list(range(base, base + n))


def test_differential_standalone():
    differ(servers()["node"].port, seeds(1000, 200), False)


def test_differential_cluster_non_owner():
    differ(cluster().port, seeds(5000, 120), True)


def bin_getkq_pipeline(keys):
    """Binary getkq of each key (opaque = its index), then a noop."""
    out = b""
    for i, k in enumerate(keys):
        out += struct.pack(">BBHBBHIIQ", 0x80, 0x0d, len(k), 0, 0, 0, len(k), i, 0) + k
    return out + struct.pack(">BBHBBHIIQ", 0x80, 0x0a, 0, 0, 0, 0, 0, 0xffff, 0)


def bin_read_until_noop(port, payload):
    """The binary responses to payload up to the noop's, each CAS shown
    as its place in the order of first appearance (CAS values differ)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=15 * harness.SLOW)
    try:
        s.sendall(payload)
        buf, out, cas_seen = b"", [], {}
        while True:
            while len(buf) < 24 or len(buf) < 24 + struct.unpack(">I", buf[8:12])[0]:
                chunk = s.recv(1 << 20)
                assert chunk, "connection closed after %r" % out
                buf += chunk
            n = 24 + struct.unpack(">I", buf[8:12])[0]
            resp, buf = buf[:n], buf[n:]
            cas = cas_seen.setdefault(resp[16:24], len(cas_seen))
            out.append(resp[:16] + struct.pack(">Q", cas) + resp[24:])
            if resp[1] == 0x0a:
                return out
    finally:
        s.close()


def test_cluster_multiget_in_key_order():
    """A multi-get spanning both groups, through the non-owner (one part
    forwarded, the other keys served there): memcached's answer byte for
    byte -- the request's key order, a key asked twice answered twice,
    misses left out, a value too large to copy in between.  The meta and
    binary pipelines of several keys (each key its own request) too."""
    node, mc = cluster().port, servers()["mc"].port
    keys = [b"ord:%d" % i for i in range(16)]
    stored = [k for i, k in enumerate(keys) if i % 4 != 3]
    setup = b"".join(b"delete %s noreply\r\n" % k for k in keys)
    for i, k in enumerate(stored):
        v = b"v" * 5000 if i == 2 else b"value-%d" % i
        setup += b"set %s %d 0 %d\r\n%s\r\n" % (k, i, len(v), v)
    order = [keys[i] for i in (5, 0, 7, 0, 11, 2, 9, 5, 3, 1, 10, 2, 6, 4, 8, 15, 12, 14, 13)]
    ks = b" ".join(order)
    payload = setup + b"get %s\r\ngets %s\r\ngat 0 %s\r\ngats 0 %s\r\n" % (ks, ks, ks, ks)
    payload += b"".join(b"mg %s v k f c\r\n" % k for k in order) + b"mn\r\n"
    a, cas_a = normalise(run(mc, payload, False, 7001))
    b, cas_b = normalise(run(node, payload, False, 7001))
    assert a.count(b"VALUE ") == 4 * 15, a.count(b"VALUE ")
    assert a == b, "memcached: %r\nnode:      %r" % (a[:3000], b[:3000])
    assert cas_pattern_agrees(cas_a, cas_b, True), (cas_a, cas_b)
    ra = bin_read_until_noop(mc, bin_getkq_pipeline(order))
    rb = bin_read_until_noop(node, bin_getkq_pipeline(order))
    assert len(ra) == 15 + 1, len(ra)       # the hits, the noop
    assert ra == rb, "memcached: %r\nnode:      %r" % ([r[:40] for r in ra], [r[:40] for r in rb])


harness.main(globals())
