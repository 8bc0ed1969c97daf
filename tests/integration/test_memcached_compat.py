"""bucketcache-node against a real memcached 1.6: same bytes in, same bytes out.

Every test sends the same command stream to a memcached and to a node
(started once for the file) and asserts identical replies.  Only what must
differ is normalised:
  - CAS uniques: compared as a pattern (which replies carry the same CAS),
    and "{cas:KEY}" in a stream stands for the CAS the server itself last
    returned for KEY;
  - "stats": figures differ by design, their shape is checked.

A stream is followed by a sentinel (a set + get of a reserved key) whose
reply marks the end of the stream's replies, so no test waits on timeouts.
The few places where the node deliberately differs from memcached are
tested last, with the reason.  (test_memcached_differential.py compares
random streams of classic and meta commands.)
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SENTINEL_CMD = b"set zz_sentinel 0 0 1\r\nS\r\nget zz_sentinel\r\n"
SENTINEL_REPLY = b"STORED\r\nVALUE zz_sentinel 0 1\r\nS\r\nEND\r\n"

_servers = {}


def servers():
    """(memcached, node), started on first use and shared by the file."""
    if not _servers:
        _servers["mc"] = harness.Memcached(threads=2, memory_mb=64)
        _servers["node"] = harness.Node(threads=2, memory_mb=64)
    return _servers["mc"], _servers["node"]


class Session:
    """One connection to one server, remembering the CAS values it saw."""

    def __init__(self, server):
        self.sock = socket.create_connection(("127.0.0.1", server.port),
                                             timeout=10 * harness.SLOW)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cas = {}

    def close(self):
        self.sock.close()

    def _subst(self, payload):
        def repl(m):
            return self.cas.get(m.group(1), b"0")
        return re.sub(rb"\{cas:([^}]+)\}", repl, payload)

    def talk(self, payload, mode="whole"):
        """Sends payload + sentinel; returns the replies to payload."""
        if isinstance(payload, str):
            payload = payload.encode()
        data = self._subst(payload) + SENTINEL_CMD
        if mode == "whole":
            self.sock.sendall(data)
        elif mode == "bytes":
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
        else:                                   # odd-sized chunks
            i, step = 0, 1
            while i < len(data):
                self.sock.sendall(data[i:i + step])
                i += step
                step = step * 3 % 17 + 1
        buf = b""
        while not buf.endswith(SENTINEL_REPLY):
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AssertionError("connection closed; got %r" % buf[-300:])
            buf += chunk
        out = buf[:-len(SENTINEL_REPLY)]
        for key, cas in re.findall(rb"(?m)^VALUE (\S+) \d+ \d+ (\d+)\r\n", out):
            self.cas[key] = cas
        return out


def normalise(out):
    """Replaces CAS numbers by CAS0, CAS1, ... in order of first appearance."""
    seen = {}

    def repl(m):
        n = seen.setdefault(m.group(2), len(seen))
        return m.group(1) + b"CAS%d\r\n" % n
    return re.sub(rb"(?m)^(VALUE \S+ \d+ \d+ )(\d+)\r\n", repl, out)


class Pair:
    """A Session on memcached and one on the node, driven in lockstep."""

    def __init__(self):
        mc, node = servers()
        self.mc = Session(mc)
        self.node = Session(node)

    def close(self):
        self.mc.close()
        self.node.close()

    def same(self, payload, expect=None, mode="whole"):
        a = self.mc.talk(payload, mode)
        b = self.node.talk(payload, mode)
        assert normalise(a) == normalise(b), (
            "replies differ for %r\n memcached: %r\n node:      %r" %
            (payload[:300], a[:600], b[:600]))
        if expect is not None:
            exp = expect.encode() if isinstance(expect, str) else expect
            assert normalise(a) == exp, "memcached itself replied %r, test expected %r" % (
                a[:600], exp[:600])
        return b


def pair_run(fn):
    p = Pair()
    try:
        fn(p)
    finally:
        p.close()


# ---------------------------------------------------------------------------

def test_storage_commands():
    def body(p):
        p.same("set st:a 0 0 5\r\nhello\r\nget st:a\r\n",
               "STORED\r\nVALUE st:a 0 5\r\nhello\r\nEND\r\n")
        p.same("set st:f 4294967295 0 1\r\nx\r\nget st:f\r\n")
        p.same("set st:e 0 0 0\r\n\r\nget st:e\r\n", "STORED\r\nVALUE st:e 0 0\r\n\r\nEND\r\n")
        p.same("add st:a 0 0 1\r\nz\r\nadd st:b 7 0 2\r\nbb\r\nget st:a st:b\r\n")
        p.same("replace st:nope 0 0 1\r\nz\r\nreplace st:b 5 0 3\r\nccc\r\nget st:b\r\n")
        p.same("append st:b 9 0 2\r\n_A\r\nprepend st:b 9 0 2\r\nP_\r\nget st:b\r\n",
               "STORED\r\nSTORED\r\nVALUE st:b 5 7\r\nP_ccc_A\r\nEND\r\n")
        p.same("append st:nope 0 0 1\r\nA\r\nprepend st:nope 0 0 1\r\nP\r\n",
               "NOT_STORED\r\nNOT_STORED\r\n")
        # Trailing and repeated spaces on the command line.
        p.same("set  st:sp  1  0  2 \r\nab\r\nget st:sp \r\n")
        # Sign forms memcached's strtoul accepts.
        p.same("set st:n +5 -0 1\r\nx\r\nget st:n\r\n")
        # A key of exactly 250 bytes.
        k = "k" * 250
        p.same("set %s 0 0 1\r\nx\r\nget %s\r\ndelete %s\r\n" % (k, k, k))
    pair_run(body)


def test_multi_get():
    def body(p):
        p.same("set mg:1 1 0 1\r\na\r\nset mg:2 2 0 2\r\nbb\r\nset mg:3 3 0 3\r\nccc\r\n")
        p.same("get mg:1 mg:x mg:2 mg:3 mg:1\r\n")
        p.same("get   mg:1    mg:2   \r\n")
        p.same("gets mg:1 mg:2 mg:3\r\n")
        keys = " ".join("mg:%d" % (i % 5) for i in range(100))
        p.same("get %s\r\n" % keys)
        # A long multi-get line (well over 2 KiB) is fine.
        keys = " ".join("mg:long:%04d" % i for i in range(400))
        p.same("get %s mg:2\r\n" % keys)
    pair_run(body)


def test_cas():
    def body(p):
        p.same("set cas:a 0 0 1\r\nx\r\ngets cas:a\r\n")
        p.same("cas cas:a 0 0 1 {cas:cas:a}\r\ny\r\ngets cas:a\r\n")
        # The old CAS is now stale.
        p.same("cas cas:a 0 0 1 0\r\nz\r\ncas cas:missing 0 0 1 1\r\nz\r\n",
               "EXISTS\r\nNOT_FOUND\r\n")
        p.same("gets cas:a\r\ncas cas:a 0 0 2 {cas:cas:a} noreply\r\nzz\r\ngets cas:a\r\n")
        p.same("cas cas:a 0 0 1 abc\r\nq\r\ncas cas:a 0 0 1 -1\r\nq\r\n")
        p.same("cas cas:a 0 0 1\r\nq\r\ncas cas:a 0 0 1 1 2 3\r\nq\r\n")
        # Every store makes a new CAS; a get does not.
        p.same("set cas:b 0 0 1\r\n1\r\ngets cas:b\r\ngets cas:b\r\n"
               "set cas:b 0 0 1\r\n2\r\ngets cas:b cas:a\r\n")
        p.same("incr cas:b 1\r\ngets cas:b\r\ntouch cas:b 100\r\ngets cas:b\r\n")
    pair_run(body)


def test_delete():
    def body(p):
        p.same("set del:a 0 0 1\r\nx\r\ndelete del:a\r\ndelete del:a\r\nget del:a\r\n",
               "STORED\r\nDELETED\r\nNOT_FOUND\r\nEND\r\n")
        p.same("set del:a 0 0 1\r\nx\r\ndelete del:a 0\r\n")
        p.same("set del:a 0 0 1\r\nx\r\ndelete del:a noreply\r\nget del:a\r\n")
        p.same("set del:a 0 0 1\r\nx\r\ndelete del:a 0 noreply\r\nget del:a\r\n")
        p.same("delete\r\ndelete del:a 1\r\ndelete del:a 0 0\r\ndelete a b c d\r\n"
               "delete del:a 1 noreply\r\n")
    pair_run(body)


def test_incr_decr():
    def body(p):
        p.same("set ar:a 0 0 1\r\n1\r\nincr ar:a 1\r\nincr ar:a 10\r\ndecr ar:a 3\r\nget ar:a\r\n")
        p.same("set ar:a 0 0 20\r\n18446744073709551615\r\nincr ar:a 2\r\nget ar:a\r\n")
        p.same("set ar:a 0 0 2\r\n10\r\ndecr ar:a 1\r\nget ar:a\r\ndecr ar:a 100\r\nget ar:a\r\n")
        p.same("set ar:a 0 0 2\r\n99\r\nincr ar:a 1\r\nget ar:a\r\n")
        p.same("incr ar:missing 1\r\ndecr ar:missing 1\r\n", "NOT_FOUND\r\nNOT_FOUND\r\n")
        p.same("set ar:s 0 0 3\r\nabc\r\nincr ar:s 1\r\nset ar:e 0 0 0\r\n\r\nincr ar:e 1\r\n")
        p.same("set ar:sp 0 0 3\r\n 12\r\nincr ar:sp 1\r\nset ar:t 0 0 3\r\n1a2\r\nincr ar:t 1\r\n")
        p.same("incr ar:a -1\r\nincr ar:a abc\r\nincr ar:a 18446744073709551616\r\n"
               "incr ar:a 5x\r\nincr ar:a \t5\r\n")
        p.same("incr\r\nincr ar:a\r\nincr ar:a 1 2 3\r\n", "ERROR\r\nERROR\r\nERROR\r\n")
        p.same("set ar:n 0 0 1\r\n5\r\nincr ar:n 1 noreply\r\ndecr ar:n 2 noreply\r\nget ar:n\r\n")
        p.same("set ar:f 77 0 1\r\n5\r\nincr ar:f 1\r\ngets ar:f\r\n")
    pair_run(body)


def test_touch_gat():
    def body(p):
        p.same("set tg:a 3 0 1\r\nx\r\ntouch tg:a 100\r\ntouch tg:missing 100\r\n",
               "STORED\r\nTOUCHED\r\nNOT_FOUND\r\n")
        p.same("touch tg:a 100 noreply\r\ntouch tg:a\r\ntouch tg:a abc\r\ntouch tg:a 1 2 3\r\n")
        p.same("gat 100 tg:a tg:missing\r\ngats 100 tg:a\r\ngat 100\r\n")
        p.same("gat\r\ngat abc tg:a\r\ngats\r\n")
        # Touching with a negative exptime expires the item at once.
        p.same("set tg:b 0 0 1\r\ny\r\ntouch tg:b -1\r\nget tg:b\r\n")
        p.same("set tg:c 0 0 1\r\nz\r\ngat -1 tg:c\r\nget tg:c\r\n")
    pair_run(body)


def test_noreply_everywhere():
    def body(p):
        stream = ("set nr:a 0 0 1 noreply\r\na\r\n"
                  "add nr:b 0 0 1 noreply\r\nb\r\n"
                  "add nr:b 0 0 1 noreply\r\nX\r\n"
                  "replace nr:b 0 0 2 noreply\r\nbb\r\n"
                  "append nr:b 0 0 1 noreply\r\n+\r\n"
                  "prepend nr:b 0 0 1 noreply\r\n-\r\n"
                  "set nr:n 0 0 1 noreply\r\n7\r\n"
                  "incr nr:n 5 noreply\r\n"
                  "decr nr:n 2 noreply\r\n"
                  "touch nr:a 100 noreply\r\n"
                  "delete nr:zz noreply\r\n"
                  "verbosity 0 noreply\r\n"
                  "get nr:a nr:b nr:n\r\n")
        p.same(stream, "VALUE nr:a 0 1\r\na\r\nVALUE nr:b 0 4\r\n-bb+\r\nVALUE nr:n 0 2\r\n10\r\nEND\r\n")
        # noreply silences errors too; the data block is then a command line.
        p.same("set nr:c 0 0 x noreply\r\nget nr:c\r\n")
        p.same("set nr:d 0 0 1 noreply\r\nxyz\r\nget nr:d\r\n")
    pair_run(body)


def test_errors_and_odd_lines():
    def body(p):
        p.same("foo\r\nGET a\r\nGet a\r\nSET a 0 0 1\r\nVERSION\r\na\r\n\r\n   \r\n")
        p.same("get\r\nget \r\ngets\r\nset\r\nset a 0 0\r\nset a 0 0 1 2 3\r\n")
        p.same("\x00\x01\x02garbage\xff\r\n")
        p.same("set err:a 0 0 -1\r\nx\r\n")
        p.same("set err:a x 0 1\r\nx\r\nset err:a 0 x 1\r\nx\r\nset err:a 0 0 1x\r\nx\r\n")
        # Data block of the wrong length.
        p.same("set err:b 0 0 1\r\nxyz\r\nget err:b\r\n")
        p.same("set err:b 0 0 1\r\n\r\n\r\n")
        p.same("set err:b 0 0 3\r\nab\r\nget err:b\r\n\r\n")
        # Bare "\n" line endings are accepted for command lines, not for data.
        p.same("set err:c 0 0 1\nx\r\nget err:c\n")
        p.same("set err:c 0 0 1\nx\nget err:c\n")
        # Keys longer than 250 bytes.
        k = "k" * 251
        for cmd in ("get %s" % k, "gets %s" % k, "delete %s" % k, "incr %s 1" % k,
                    "touch %s 1" % k, "gat 1 %s" % k):
            p.same(cmd + "\r\n", "CLIENT_ERROR bad command line format\r\n")
        p.same("set %s 0 0 1\r\nx\r\n" % k)
        p.same("get err:ok %s err:ok\r\n" % k, "CLIENT_ERROR bad command line format\r\n")
        p.same("verbosity\r\nverbosity 1\r\nverbosity abc\r\nverbosity 1 noreply\r\n"
               "verbosity noreply\r\nverbosity 1 2 3\r\nverbosity 0\r\n")
        p.same("flush_all abc\r\nflush_all 1 2 3\r\n")
        p.same("stats nosuchthing\r\n", "ERROR\r\n")
        # A stray HTTP request closes the connection without a reply.
    pair_run(body)


def test_http_request_and_quit_close():
    mc, node = servers()
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"quit\r\n",
                    b"set q:a 0 0 1\r\nx\r\nget q:a\r\nquit\r\nget q:a\r\n"):
        outs = []
        for srv in (mc, node):
            c = srv.conn()
            c.send(payload)
            assert c.closed_by_peer(3.0), "server kept the connection after %r" % payload
            outs.append(c.buf)
            c.close()
        assert outs[0] == outs[1], (payload, outs)


def test_version():
    """The memcached protocol level, as memcached 1.6.18 answers it (clients
    parse it to pick features); bucketcache's own release is in stats."""
    def body(p):
        p.same("version\r\nversion extra\r\nversion a b c\r\n",
               "VERSION 1.6.18\r\nVERSION 1.6.18\r\nVERSION 1.6.18\r\n")
        stats = _stats(p.node)
        assert re.match(r"^\d+\.\d+\.\d+", stats["bucketcache_version"]), stats
        assert stats["version"] == "1.6.18", stats["version"]
    pair_run(body)


def test_stats_detail_as_memcached():
    """memcached's per-prefix counters: the same PREFIX lines in the same
    order (its 256 chains of murmur3 hashes), the same commands counted
    (get/gets/gat/gats keys, storage commands, delete; not meta, touch,
    incr), cleared by stats reset."""
    def body(p):
        p.same("stats detail dump\r\nstats detail\r\nstats detail x\r\n",
               "END\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\n"
               "CLIENT_ERROR usage: stats detail on|off|dump\r\n")
        ops = "".join("set p%d:k 0 0 1\r\nx\r\nget p%d:k p%d:z q%d:\r\ndelete p%d:k\r\n"
                      % ((i,) * 5) for i in range(40))
        ops += ("set ab:1 0 0 1\r\nx\r\nset a:1 0 0 1\r\nx\r\nmg p1:k v\r\nms p1:k 1\r\nx\r\n"
                "md p1:k\r\ntouch p2:k 10\r\nincr p3:k 1\r\ngat 10 p4:k\r\ngets p5:k\r\n"
                "add p6:k 0 0 1\r\nx\r\ncas p7:k 0 0 1 1\r\nx\r\nappend p8:k 0 0 1\r\nx\r\n"
                "set :lead 0 0 1\r\nx\r\nget :lead ::x a:b:c\r\nset \x01:\xff 0 0 1\r\nx\r\n")
        p.same("stats detail on\r\n" + ops + "stats detail dump\r\n")
        out = p.same("stats detail off\r\nget p1:k\r\nstats detail dump\r\n")
        assert out.count(b"PREFIX ") > 80 and b"PREFIX p1 get 2 hit 1 set 1 del 1\r\n" in out, out
        p.same("stats detail on\r\nstats reset\r\n"
               "stats detail dump\r\nstats detail off\r\n", "OK\r\nRESET\r\nEND\r\nOK\r\n")
        for session in (p.mc, p.node):
            settings = _stats(session, "settings")
            assert settings["detail_enabled"] == "no" and settings["stat_key_prefix"] == ":"
    pair_run(body)


def test_stats_sizes_as_memcached():
    """stats sizes_enable/sizes_disable/sizes: the histogram of the items
    stored since it was enabled, by the size memcached gives each, in 32-
    byte steps; enable and disable answer without END, as 1.6.18 does."""
    def body(p):
        big = "z" * 3000
        p.same("stats sizes_disable\r\nset sz:pre 0 0 1\r\nx\r\nstats sizes\r\n"
               "stats sizes_enable\r\nstats sizes\r\n",
               "STAT sizes_status disabled\r\nSTORED\r\nSTAT sizes_status disabled\r\nEND\r\n"
               "STAT sizes_status enabled\r\nEND\r\n")
        # 96: the second sz:a and the sessions' sentinel item; 3072: sz:c
        # and sz:d (its flags take 4 bytes more)
        p.same("set sz:a 0 0 1\r\nx\r\nset sz:b 5 0 100\r\n%s\r\n"
               "set sz:c 0 0 3000\r\n%s\r\nset sz:d 7 0 3000\r\n%s\r\n"
               "set sz:a 0 0 2\r\nxx\r\ndelete sz:b\r\n"
               "stats sizes\r\nstats sizes_enable\r\n" % ("y" * 100, big, big),
               "STORED\r\n" * 4 + "STORED\r\nDELETED\r\n"
               "STAT 96 2\r\nSTAT 3072 2\r\nEND\r\n"
               "STAT sizes_status enabled\r\n")
        # the item stored before counting began is not counted when it goes
        p.same("delete sz:pre\r\nstats sizes\r\n",
               "DELETED\r\nSTAT 96 2\r\nSTAT 3072 2\r\nEND\r\n")
        p.same("stats sizes_disable\r\nstats sizes\r\n",
               "STAT sizes_status disabled\r\nSTAT sizes_status disabled\r\nEND\r\n")
    pair_run(body)


def test_stats_conns_as_memcached():
    """memcached's "stats conns": the listener, then one block per client
    connection with its address, the listen address, what it is doing
    (reading a command, in a data block, swallowing one, this one parsing
    "stats conns") and the seconds since it connected.  File descriptors
    and ports differ between the servers; the rest is compared."""
    mc, node = servers()

    def blocks(srv):
        idle = srv.conn()
        idle.send("get x\r\n")
        assert idle.readline() == b"END\r\n"
        nread = srv.conn()
        nread.send("set y 0 0 10\r\nabc")
        swallow = srv.conn()
        swallow.send("set y 0 0 2000000\r\nabc")
        time.sleep(0.3 * harness.SLOW)
        me = srv.conn()
        me.send("stats conns\r\n")
        lines = []
        while not lines or lines[-1] != b"END\r\n":
            lines.append(me.readline())
        for c in (idle, nread, swallow, me):
            c.close()
        by_fd = {}
        for line in lines[:-1]:
            m = re.match(rb"^STAT (\d+):(addr|listen_addr|state|secs_since_last_cmd) (\S+)\r\n$",
                         line)
            assert m, line
            by_fd.setdefault(int(m.group(1)), {})[m.group(2).decode()] = m.group(3).decode()
        for fd, b in by_fd.items():
            assert re.fullmatch(r"tcp:127\.0\.0\.1:\d+", b["addr"]), b
            assert "listen_addr" not in b or b["listen_addr"] == "tcp:127.0.0.1:%d" % srv.port, b
            assert int(b["secs_since_last_cmd"]) >= 0, b
        listener = [b for b in by_fd.values() if b["state"] == "conn_listening"]
        assert len(listener) == 1 and listener[0]["addr"] == "tcp:127.0.0.1:%d" % srv.port
        assert "listen_addr" not in listener[0]
        return sorted(b["state"] for b in by_fd.values())

    want = blocks(mc)
    assert {"conn_listening", "conn_read", "conn_nread", "conn_swallow",
            "conn_parse_cmd"} <= set(want), want
    harness.wait_for(lambda: blocks(node) == want, timeout=5,
                     what="the node's stats conns as memcached's %r" % want)


def test_pipelined_streams():
    """A mixed stream sent in one write, byte by byte, and in odd chunks."""
    def stream(tag):
        s = []
        for i in range(40):
            k = "pl:%s:%d" % (tag, i)
            s.append("set %s %d 0 %d\r\n%s\r\n" % (k, i, len(k), k))
            s.append("get %s pl:%s:missing\r\n" % (k, tag))
            s.append("append %s 0 0 2\r\n++\r\n" % k)
            s.append("incr %s 1\r\n" % k)
            s.append("gets %s\r\n" % k)
            s.append("delete %s\r\n" % k if i % 3 == 0 else "touch %s 1000\r\n" % k)
            s.append("bogus %d\r\n" % i)
        s.append("set pl:%s:n 0 0 1 noreply\r\n1\r\nincr pl:%s:n 41\r\n" % (tag, tag))
        return "".join(s)

    def body(p):
        p.same(stream("w"))
        p.same(stream("b"), mode="bytes")
        p.same(stream("c"), mode="chunks")
    pair_run(body)


def test_large_and_binary_values():
    def body(p):
        v = bytes((i * 7) & 0xFF for i in range(1048000))
        p.same(b"set lv:big 0 0 %d\r\n" % len(v) + v + b"\r\nget lv:big\r\n")
        # Too large: SERVER_ERROR, the block is swallowed, and a failed set
        # also removes the old value.
        p.same(b"set lv:big 0 0 1048576\r\n" + b"y" * 1048576 + b"\r\nget lv:big\r\n",
               b"SERVER_ERROR object too large for cache\r\nEND\r\n")
        p.same(b"set lv:keep 0 0 1\r\nk\r\nappend lv:keep 0 0 1048576\r\n" + b"y" * 1048576 +
               b"\r\nget lv:keep\r\n")
        p.same(b"set lv:n 0 0 1\r\nk\r\nset lv:n 0 0 2000000 noreply\r\n" + b"z" * 2000000 +
               b"\r\nget lv:n\r\n", b"STORED\r\nEND\r\n")
        # Append beyond the limit is NOT_STORED and keeps the old value.
        half = b"h" * 600000
        p.same(b"set lv:h 0 0 600000\r\n" + half + b"\r\nappend lv:h 0 0 600000\r\n" + half +
               b"\r\nget lv:h\r\n")
        # Binary-safe values: CR, LF, NUL, every byte value.
        allbytes = bytes(range(256)) * 4
        p.same(b"set lv:bin 0 0 %d\r\n" % len(allbytes) + allbytes + b"\r\nget lv:bin\r\n")
        tricky = b"\r\nEND\r\nVALUE x 0 1\r\n\x00\r\n"
        p.same(b"set lv:t 0 0 %d\r\n" % len(tricky) + tricky + b"\r\ngets lv:t\r\n")
        p.same(b"set lv:t2 0 0 %d\r\n" % len(tricky) + tricky + b"\r\nget lv:t2\r\n",
               mode="chunks")
    pair_run(body)


def _stats(session, sub=""):
    out = session.talk("stats%s\r\n" % (" " + sub if sub else ""))
    lines = out.split(b"\r\n")
    assert lines[-2:] == [b"END", b""], out[-200:]
    stats = {}
    for line in lines[:-2]:
        m = re.match(rb"^STAT (\S+) (.*)$", line)
        assert m, "not a STAT line: %r" % line
        stats[m.group(1).decode()] = m.group(2).decode()
    return stats


def test_stats_shape():
    def body(p):
        general = [_stats(p.mc), _stats(p.node)]
        core = ("pid uptime time version pointer_size rusage_user rusage_system "
                "max_connections curr_connections total_connections rejected_connections "
                "cmd_get cmd_set cmd_flush cmd_touch get_hits get_misses get_expired "
                "delete_misses delete_hits incr_misses incr_hits decr_misses decr_hits "
                "cas_misses cas_hits cas_badval touch_hits touch_misses store_too_large "
                "store_no_memory bytes_read bytes_written limit_maxbytes threads bytes "
                "curr_items total_items expired_unfetched evicted_unfetched evictions "
                "reclaimed connection_structures cmd_meta accepting_conns "
                "listen_disabled_num time_in_listen_disabled_us").split()
        for name in core:
            assert name in general[0], "memcached lacks %s (test out of date)" % name
            assert name in general[1], "node lacks stat %s" % name
        node = general[1]
        assert int(node["pid"]) == _servers["node"].proc.pid
        assert abs(int(node["time"]) - time.time()) < 5
        assert node["threads"] == "2" and node["limit_maxbytes"] == str(64 * 1024 * 1024)
        assert node["accepting_conns"] == "1" and node["listen_disabled_num"] == "0"

        # Counters move as memcached's do.
        before = [_stats(p.mc), _stats(p.node)]
        p.same("set sh:a 0 0 1\r\nx\r\nget sh:a sh:b\r\ndelete sh:b\r\nincr sh:b 1\r\n"
               "touch sh:a 10\r\nme sh:nokey\r\nmg sh:nokey v\r\n")
        after = [_stats(p.mc), _stats(p.node)]
        for name in ("cmd_get", "get_hits", "get_misses", "delete_misses", "incr_misses",
                     "touch_hits", "cmd_touch", "cmd_meta"):
            deltas = [int(after[i][name]) - int(before[i][name]) for i in (0, 1)]
            assert deltas[0] == deltas[1], (name, deltas)
        # cmd_set and bytes_read also count the sentinel; compare deltas too.
        assert (int(after[1]["cmd_set"]) - int(before[1]["cmd_set"]) ==
                int(after[0]["cmd_set"]) - int(before[0]["cmd_set"]))

        settings = [_stats(p.mc, "settings"), _stats(p.node, "settings")]
        for name in ("maxbytes", "maxconns", "tcpport", "num_threads", "item_size_max",
                     "evictions", "cas_enabled", "verbosity"):
            assert name in settings[1], "stats settings lacks %s" % name
        assert settings[1]["maxbytes"] == settings[0]["maxbytes"]
        assert settings[1]["item_size_max"] == settings[0]["item_size_max"]
        assert settings[1]["tcpport"] == str(_servers["node"].port)
        assert settings[1]["eviction_policy"] == "s3fifo"

        items = _stats(p.node, "items")
        assert int(items["items:1:number"]) >= 1
        slabs = _stats(p.node, "slabs")
        assert "total_malloced" in slabs
        p.same("stats sizes\r\n")
        p.same("stats reset\r\nstats reset extra\r\n", "RESET\r\nRESET\r\n")
        reset = _stats(p.node)
        assert int(reset["cmd_get"]) <= 1, reset["cmd_get"]   # only the sentinel's get
        assert int(reset["curr_items"]) >= 1                  # items are not reset
    pair_run(body)


def wait_flush_done(session, flushed_key):
    """Waits until a delayed flush_all is in force (flushed_key is gone) and
    an item set now survives it.  Such a flush also drops what is set in
    the second it comes due (memcached keeps only items newer than its
    time), and memcached's clock ticks late on a loaded machine: the
    sentinel of the next exchange would be flushed and never answered."""
    def done():
        session.sock.sendall(b"get %s\r\nset zz_probe 0 0 1\r\nP\r\nget zz_probe\r\n"
                             % flushed_key)
        buf = b""
        while buf.count(b"END\r\n") < 2:
            chunk = session.sock.recv(4096)
            assert chunk, buf
            buf += chunk
        return buf == b"END\r\nSTORED\r\nVALUE zz_probe 0 1\r\nP\r\nEND\r\n"
    harness.wait_for(done, timeout=10, interval=0.2, what="the delayed flush done")


def test_expiry_and_delayed_flush():
    """Relative, absolute and negative exptimes, and flush_all with a delay.
    Runs last among the comparisons: it flushes everything.  Sleeps 2 s."""
    def body(p):
        now = int(time.time())
        p.same("set ex:rel 0 1 1\r\nr\r\nset ex:long 0 100 1\r\nl\r\n"
               "set ex:neg 0 -1 1\r\nn\r\n"
               "set ex:absfut 0 %d 1\r\nf\r\nset ex:abspast 0 %d 1\r\np\r\n"
               "get ex:rel ex:long ex:neg ex:absfut ex:abspast\r\n" % (now + 100, now - 100),
               "STORED\r\n" * 5 + "VALUE ex:rel 0 1\r\nr\r\nVALUE ex:long 0 1\r\nl\r\n"
               "VALUE ex:absfut 0 1\r\nf\r\nEND\r\n")
        p.same("set ex:t 0 0 1\r\nt\r\ntouch ex:t 1\r\ngat 1 ex:long\r\n")
        p.same("add ex:neg 0 0 1\r\nN\r\nget ex:neg\r\n")
        t_flush = time.time()
        p.same("set ex:fl 0 0 1\r\nf\r\nflush_all 2\r\nget ex:fl\r\n")
        time.sleep(2.0)
        wait_flush_done(p.node, b"ex:fl")
        # the node's flush came due on time (memcached's own clock may lag)
        assert time.time() - t_flush < 2.0 + harness.reaction_slack(0.5), time.time() - t_flush
        wait_flush_done(p.mc, b"ex:fl")
        p.same("get ex:rel ex:t ex:long ex:absfut ex:fl\r\n", "END\r\n")
        p.same("set ex:after 0 0 1\r\na\r\nget ex:after\r\nflush_all\r\nget ex:after\r\n"
               "set ex:after 0 0 1\r\nb\r\nflush_all 0\r\nflush_all -1\r\nflush_all noreply\r\n"
               "get ex:after\r\nset ex:after 0 0 1\r\nc\r\nget ex:after\r\n")
    pair_run(body)


def test_numbers_keys_and_meta_as_memcached():
    """What earlier nodes refused and memcached 1.6.18 accepts."""
    def body(p):
        # Flags and data lengths are cut to 32 bits (4294967296 -> 0,
        # 4294967297 -> 1), as memcached's safe_strtoul/safe_strtol do.
        p.same("set dd:a 4294967296 0 1\r\nx\r\nget dd:a\r\n",
               "STORED\r\nVALUE dd:a 0 1\r\nx\r\nEND\r\n")
        p.same("set dd:a 0 0 4294967297\r\nx\r\nget dd:a\r\n",
               "STORED\r\nVALUE dd:a 0 1\r\nx\r\nEND\r\n")
        # Control bytes, TABs and non-ASCII bytes are key bytes.
        p.same("set dd:\x01 0 0 1\r\nx\r\nget dd:\x01\r\n",
               "STORED\r\nVALUE dd:\x01 0 1\r\nx\r\nEND\r\n")
        p.same("set dd:a\tb 0 0 1\r\nt\r\nget dd:a\tb\r\nget dd:a\r\n",
               "STORED\r\nVALUE dd:a\tb 0 1\r\nt\r\nEND\r\nVALUE dd:a 0 1\r\nx\r\nEND\r\n")
        p.same("set dd:\xc3\xa9\x7f 0 0 1\r\ne\r\nget dd:\xc3\xa9\x7f\r\n")
        # A line is read up to its first NUL.
        p.same("get dd:a\x00 trailing\r\n", "VALUE dd:a 0 1\r\nx\r\nEND\r\n")
        # A 20-digit stored value: memcached's safe_strtoull rules.
        p.same("set dd:n 0 0 20\r\n18446744073709551615\r\nincr dd:n 1\r\n"
               "set dd:n 0 0 20\r\n18446744073709551616\r\nincr dd:n 1\r\n"
               "set dd:n 0 0 20\r\n-8446744073709551615\r\nincr dd:n 1\r\n",
               "STORED\r\n0\r\nSTORED\r\n"
               "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
               "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
        # The meta commands.
        p.same("mn\r\nms dd:m 2 T0 F5\r\nhi\r\nmg dd:m v f t k s\r\nma dd:m\r\n"
               "md dd:m q\r\nmg dd:m\r\nmn\r\n",
               "MN\r\nHD\r\nVA 2 f5 t-1 kdd:m s2\r\nhi\r\n"
               "CLIENT_ERROR cannot increment or decrement non-numeric value\r\nEN\r\nMN\r\n")
    pair_run(body)


def test_lru_crawler_answers_as_memcached():
    """lru_crawler as memcached 1.6.18 answers with its crawler on."""
    def body(p):
        # One at a time: memcached refuses a metadump behind replies not
        # yet sent (see test_deliberate_differences).
        for arg in ("0", "64", "x", "1,64", "-1", "ALL"):
            p.same("lru_crawler metadump %s\r\n" % arg, "BADCLASS invalid class id\r\n")
        p.same("lru_crawler metadump\r\nlru_crawler metadump all extra\r\n", "ERROR\r\n" * 2)
        # memcached answers BUSY while its last crawl is running: waited
        # for (the node's crawl has nothing to wait for).
        for arg, want in (("all", "OK"), ("1", "OK"), ("1,2,63", "OK"),
                          ("0", "BADCLASS invalid class id"), ("1,0", "BADCLASS invalid class id"),
                          ("64", "BADCLASS invalid class id"),
                          ("hash", "ERROR an unknown error happened")):
            cmd = "lru_crawler crawl %s\r\n" % arg
            deadline = time.time() + 10 * harness.SLOW
            while True:
                a = p.mc.talk(cmd)
                if not a.startswith(b"BUSY ") or time.time() > deadline:
                    break
                time.sleep(0.05)
            assert a == (want + "\r\n").encode(), (cmd, a)
            assert p.node.talk(cmd) == a, cmd
        p.same("lru_crawler crawl\r\n", "ERROR\r\n")
        p.same("lru_crawler mgdump all\r\nlru_crawler mgdump 1\r\nlru_crawler mgdump\r\n",
               "ERROR\r\n" * 3)
    pair_run(body)


def _metadump(conn, arg):
    conn.send("lru_crawler metadump %s\r\n" % arg)
    out = b""
    while not out.endswith(b"END\r\n") and not out.endswith(b"id\r\n"):
        out += conn.readline()
    return out


def _dump_lines(out, now, ttls):
    """The dump's lines, sorted, its clock fields checked against now and
    replaced: la near now, exp near now + the key's ttl (or -1)."""
    assert (out == b"END\r\n" or out.endswith(b"\nEND\r\n")) and b"\r" not in out[:-5], out
    lines = []
    for line in out[:-len(b"END\r\n")].split(b"\n")[:-1]:
        f = dict(kv.split(b"=", 1) for kv in line.split(b" "))
        assert abs(int(f[b"la"]) - now) <= 3 * harness.SLOW, line
        ttl = ttls[f[b"key"]]
        if ttl == 0:
            assert f[b"exp"] == b"-1", line
        else:
            assert abs(int(f[b"exp"]) - (now + ttl)) <= 3 * harness.SLOW, line
        lines.append(re.sub(rb" la=\d+", b" la=T", re.sub(rb" exp=\d+", b" exp=T", line)))
    return sorted(lines)


def test_lru_crawler_metadump_as_memcached():
    """The dump memcached-tool reads: one LF-ended line per live item --
    URL-encoded key, absolute expiry and last access, CAS, fetched, slab
    class and size as memcached 1.6.18 has them -- then END, on servers of
    their own (the shared ones hold the other tests' keys)."""
    mc, node = harness.Memcached(threads=2, memory_mb=64), harness.Node(threads=2, memory_mb=64)
    try:
        stream = (b"set md:a 0 0 1\r\nx\r\nget md:a\r\n"
                  b"set md/b%c 5 100 3\r\nabc\r\n"
                  b"ms Zm9vYmFy 2 b T50\r\nhi\r\n"            # "foobar", dumped decoded
                  b"set md:big 0 0 5000\r\n" + b"y" * 5000 + b"\r\n"
                  b"set md:sp\xc3\xa9 7 0 2\r\nhi\r\n"
                  b"set md:gone 0 -1 1\r\nz\r\n"               # expired: not listed
                  b"mn\r\n")
        ttls = {b"md%3Aa": 0, b"md%2Fb%25c": 100, b"foobar": 50, b"md%3Abig": 0,
                b"md%3Asp%C3%A9": 0}
        dumps = []
        for server in (mc, node):
            c = server.conn()
            try:
                c.send(stream)
                while c.readline() != b"MN\r\n":
                    pass
                now = time.time()
                got = {}
                for arg in ("all", "1", "hash", "19,1", "2", "63"):
                    got[arg] = _dump_lines(_metadump(c, arg), now, ttls)
                got["0"] = _metadump(c, "0")
                dumps.append(got)
            finally:
                c.close()
        want, got = dumps
        assert got == want, "memcached: %r\nnode:      %r" % (want, got)
        assert want["all"] == want["hash"] and len(want["all"]) == 5, want
        assert b"key=md%3Aa exp=-1 la=T cas=1 fetch=yes cls=1 size=64" in want["1"], want
        assert b"key=md%3Abig exp=-1 la=T cas=4 fetch=no cls=19 size=5065" in want["19,1"]
        assert want["2"] == want["63"] == [] and want["0"] == b"BADCLASS invalid class id\r\n"
        # No class named at all (memcached's crawler wedges afterwards: last).
        for server in (mc, node):
            c = server.conn()
            try:
                assert c.cmd("lru_crawler metadump ,") == b"NOTSTARTED no items to crawl\r\n"
            finally:
                c.close()
    finally:
        mc.stop()
        node.stop()


def _read_dump(c, max_recv=65536, pause=0.0, until=None):
    """A dump's bytes through END (or, with until, at least that many),
    read max_recv bytes at a time, pause seconds apart; what follows END
    stays in c.buf."""
    out, c.buf = c.buf, b""
    while True:
        end = out.find(b"END\r\n")           # the only CR of a dump
        if end >= 0:
            c.buf = out[end + 5:]
            return out[:end + 5]
        if until is not None and len(out) >= until:
            return out
        chunk = c.sock.recv(max_recv)
        if not chunk:
            raise ConnectionError("closed mid-dump after %d bytes" % len(out))
        out += chunk
        if pause:
            time.sleep(pause)


def _dump_keys(out):
    assert out.endswith(b"\nEND\r\n"), out[-200:]
    return [ln.split(b" ", 1)[0] for ln in out[:-len(b"END\r\n")].split(b"\n")[:-1]]


def test_lru_crawler_metadump_is_whole():
    """A dump far larger than the connection's output buffer (4 MiB) is
    whole -- every item once, then END, then the commands pipelined behind
    it -- and streamed as the client reads: a client reading slowly does
    not make the node queue it all, one closing mid-dump costs nothing,
    and writes during a dump neither stop nor break it."""
    node = harness.Node(threads=2, memory_mb=64)
    try:
        c = node.conn(timeout=30)
        n = 14000                                 # ~690-byte lines: ~9.6 MB in all
        key = b"/" * 200 + b"%010d"
        c.send(b"".join(b"set " + key % i + b" 0 0 1 noreply\r\nx\r\n" for i in range(n))
               + b"mn\r\n")
        assert c.readline() == b"MN\r\n"
        want = sorted(b"key=" + b"%2F" * 200 + b"%010d" % i for i in range(n))

        # Slowly: 16 KiB at a time.  The node holds about a chunk, not the
        # dump (~9.6 MB of lines).
        rss0 = harness.rss_kib(node.proc.pid)
        slow = node.conn(timeout=30)
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        slow.send(b"lru_crawler metadump all\r\nmn\r\n")
        head = _read_dump(slow, max_recv=16384, pause=0.02, until=1024 * 1024)
        growth = harness.rss_kib(node.proc.pid) - rss0
        if not (harness.SANITIZED or harness.TSAN):     # their allocators keep freed memory
            assert growth < 4 * 1024, "RSS grew by %d KiB during a slow dump" % growth
        # Meanwhile the cache changes: new keys, deleted keys (each may or
        # may not be listed), while the untouched ones must all be.
        w = node.conn(timeout=30)
        w.send(b"".join(b"set new%d 0 0 1 noreply\r\ny\r\ndelete " % i + key % i
                        + b" noreply\r\n" for i in range(0, 2000))
               + b"mn\r\n")
        assert w.readline() == b"MN\r\n"
        w.close()
        out = head + _read_dump(slow)
        assert slow.readline() == b"MN\r\n"
        got = set(_dump_keys(out))
        assert set(want[2000:]) <= got, len(set(want[2000:]) - got)
        slow.close()

        # Readers that go away mid-dump: the node frees their dumps and
        # answers on (the ASan build checks nothing leaks).
        for cut in (1, 300000, 2 * 1024 * 1024):
            g = node.conn(timeout=30)
            g.send(b"lru_crawler metadump all\r\n")
            _read_dump(g, until=cut)
            g.close()

        # A whole dump, then the commands behind it, in order; the cache
        # no longer changes: every item exactly once.
        c.send(b"".join(b"set " + key % i + b" 0 0 1 noreply\r\nx\r\ndelete new%d noreply\r\n"
                        % i for i in range(0, 2000)) + b"mn\r\n")
        assert c.readline() == b"MN\r\n"
        c.send(b"lru_crawler metadump all\r\nmn\r\nlru_crawler metadump hash\r\n")
        out = _read_dump(c)
        assert len(out) > 2 * 4 * 1024 * 1024, len(out)
        assert sorted(_dump_keys(out)) == want
        assert c.readline() == b"MN\r\n"
        assert sorted(_dump_keys(_read_dump(c))) == want
        assert c.cmd("mn") == b"MN\r\n"
        c.close()
    finally:
        assert node.stop() == 0, node.proc.output()[-3000:]


def test_deliberate_differences():
    """Where the node keeps replies memcached 1.6.18 drops or holds back."""
    mc, node = servers()
    s = Session(node)
    try:
        # A key over 250 bytes in a multi-get: memcached 1.6.18 answers the
        # CLIENT_ERROR and throws away every reply still queued on the
        # connection (conn_release_items), here the STORED, so a pipelining
        # client loses its place.  The node answers the error for that
        # command only.
        k = "k" * 251
        assert s.talk("set dd:b 0 0 1\r\nx\r\nget dd:b %s\r\n" % k) == \
            b"STORED\r\nCLIENT_ERROR bad command line format\r\n"
        # A metadump pipelined behind other commands: memcached 1.6.18
        # refuses it ("ERROR cannot pipeline other commands before
        # metadump": its crawler thread writes to the socket itself); the
        # node answers it in order.
        out = s.talk("set dd:md 0 0 1\r\nx\r\nlru_crawler metadump 1\r\n")
        assert out.startswith(b"STORED\r\n") and out.endswith(b"\nEND\r\n"), out
        assert b"\nkey=dd%3Amd exp=-1 " in out, out
        # cache_memlimit above the start -m: memcached (without -L) grows;
        # the node's segment arena was reserved for the start limit, so it
        # answers as memcached does for a limit it cannot adjust to.  Down
        # and back up to the start limit works on both.
        assert s.talk("cache_memlimit 65\r\n") == \
            b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
        assert s.talk("cache_memlimit 32\r\ncache_memlimit 64\r\n") == b"OK\r\nOK\r\n"
        assert b"STAT limit_maxbytes 67108864\r\n" in s.talk("stats\r\n")
    finally:
        s.close()
    # A refused storage command whose data block is still on its way:
    # memcached holds the refusal (and replies queued before it) until the
    # block has been swallowed; the node sends it at once.  Once the block
    # is complete the bytes are the same.
    for srv, early in ((mc, b""), (node, b"CLIENT_ERROR duplicate flag\r\n")):
        c = srv.conn()
        try:
            c.send(b"ms dd:c 10 I I\r\nabc")
            time.sleep(0.3 * harness.SLOW)
            c.sock.setblocking(False)
            try:
                got = c.sock.recv(100)
            except BlockingIOError:
                got = b""
            c.sock.settimeout(5 * harness.SLOW)
            assert got == early, (srv, got)
            c.buf = got
            c.send(b"defghij\r\nmn\r\n")
            while not c.buf.endswith(b"MN\r\n"):
                c._fill()
            assert c.buf == b"CLIENT_ERROR duplicate flag\r\nMN\r\n", c.buf
        finally:
            c.close()


def test_node_exits_cleanly():
    """SIGTERM with connections open: exit status 0 (under ASan: no leaks)."""
    _, node = servers()
    s = Session(node)
    s.talk("set bye 0 0 3\r\nbye\r\n")
    rc = node.stop()
    s.close()
    assert rc == 0, "node exited with %s:\n%s" % (rc, node.proc.output()[-3000:])


harness.main(globals())
