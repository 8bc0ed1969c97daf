"""Unmodified memcached clients and tools against a standalone node and
against the non-owner node of a 2-group cluster (its keys' owner is the
other group, so every request is forwarded):

  - libmemcached's `memccapable -a` (its 27 ASCII protocol tests);
  - libmemcached-tools memccp, memccat, memcexist, memctouch, memcrm,
    memcdump, memcstat, memcflush: the same exit codes and output as
    against memcached 1.6.18 (server addresses aside);
  - Debian's python3-pymemcache: get/set/cas/incr/decr/touch/get_many/...
    through the non-owner node.

flush_all (memccapable's flush tests, memcflush) through the non-owner
flushes both groups, as it would flush one memcached.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import pymemcache  # noqa: F401
except ImportError:              # Debian's python3-pymemcache, another python3
    sys.path.append("/usr/lib/python3/dist-packages")
from pymemcache.client.base import Client  # noqa: E402

NB = 16
MC = harness.Memcached(threads=2, memory_mb=64)
NODE = harness.Node(threads=2, memory_mb=64)
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "tools", buckets=NB)
G1 = harness.ClusterNode(zk, CL, 1, session_timeout_ms=10000)
G2 = harness.ClusterNode(zk, CL, 2, session_timeout_ms=10000)
CONSOLE = harness.Console(zk, CL)
C = harness.wait_for(lambda: (lambda t: t["c"] if 0 not in t["c"] and set(t["c"]) == {1, 2}
                              else None)(harness.tables(zk, CL)),
                     what="both groups own buckets")
harness.wait_primary(G1)
harness.wait_primary(G2)


def owner(key):
    return C[harness.bucket_of(key, NB)]


def key_of(gid, prefix):
    return harness.key_in_bucket_owned_by(C, gid, prefix=prefix)


def forwarding_works():
    k = key_of(2, "probe")
    c = G1.conn()
    try:
        return c.cmd("set %s 0 0 1" % k, "p") == b"STORED\r\n"
    finally:
        c.close()


harness.wait_for(forwarding_works, what="group 1 forwards to group 2")


def cluster_flushes_everywhere():
    """Whether flush_all through G1 also clears group 2's keys."""
    k = key_of(2, "flushprobe")
    c = G1.conn()
    try:
        assert c.cmd("set %s 0 0 1" % k, "f") == b"STORED\r\n"
        assert c.cmd("flush_all") == b"OK\r\n"
        return c.cmd("get " + k) == b"END\r\n"
    finally:
        c.close()


CLUSTER_FLUSH = cluster_flushes_everywhere()

ASCII_TESTS = ["ascii version", "ascii quit", "ascii verbosity", "ascii set",
               "ascii set noreply", "ascii get", "ascii gets", "ascii mget", "ascii flush",
               "ascii flush noreply", "ascii add", "ascii add noreply", "ascii replace",
               "ascii replace noreply", "ascii cas", "ascii cas noreply", "ascii delete",
               "ascii delete noreply", "ascii incr", "ascii incr noreply", "ascii decr",
               "ascii decr noreply", "ascii append", "ascii append noreply", "ascii prepend",
               "ascii prepend noreply", "ascii stat"]


def run(*argv, timeout=60):
    r = subprocess.run(list(argv), capture_output=True, timeout=timeout * harness.SLOW)
    return r.returncode, r.stdout, r.stderr


def memccapable(port, *args):
    return run("memccapable", "-h", "127.0.0.1", "-p", str(port), "-t", "10", *args)


# ---------------------------------------------------------------------------
# memccapable

def test_memccapable_ascii_memcached_itself():
    rc, out, err = memccapable(MC.port, "-a")
    assert rc == 0 and b"All tests passed" in out, (rc, out, err)
    listed = [line.split(b"  ")[0].decode() for line in out.splitlines()
              if line.startswith(b"ascii ")]
    assert listed == ASCII_TESTS, listed            # the list below is memccapable's


def test_memccapable_ascii_standalone():
    rc, out, err = memccapable(NODE.port, "-a")
    assert rc == 0 and b"All tests passed" in out, (rc, out, err)
    assert out.count(b"[pass]") == len(ASCII_TESTS), out


def test_memccapable_ascii_non_owner():
    """Every test, flush_all's too: through any node it flushes the whole
    cluster (docs/protocol.md)."""
    assert CLUSTER_FLUSH
    rc, out, err = memccapable(G1.port, "-a")
    assert rc == 0 and b"All tests passed" in out, (rc, out, err)
    assert out.count(b"[pass]") == len(ASCII_TESTS), out


# ---------------------------------------------------------------------------
# libmemcached-tools

def tool_session(port, key, other_key, workdir):
    """The tools in a fixed order against one server; returns
    [(command, exit code, stdout)] with the port taken out."""
    servers = "--servers=127.0.0.1:%d" % port
    path = os.path.join(workdir, key)
    with open(path, "wb") as f:
        f.write(b"a file copied by memccp\n" * 20)
    other = os.path.join(workdir, other_key)
    with open(other, "wb") as f:
        f.write(b"another\n")
    steps = [
        ("memccp", servers, path),
        ("memccp", servers, "--flags=7", "--expire=1000", other),
        ("memccat", servers, key),
        ("memccat", servers, "--flag", other_key),
        ("memccat", servers, "nosuchkey"),
        ("memcexist", servers, key),
        ("memcexist", servers, "nosuchkey"),
        ("memctouch", servers, "--expire=5000", key),
        ("memctouch", servers, "--expire=5000", "nosuchkey"),
        ("memccp", servers, "--add", path),
        ("memccp", servers, "--replace", path),
        ("memcrm", servers, key),
        ("memcrm", servers, key),
        ("memccat", servers, key),
        ("memcexist", servers, key),
        ("memcstat", servers, "-S"),
        ("memcflush", servers),
        ("memccat", servers, other_key),
    ]
    out = []
    for argv in steps:
        rc, o, e = run(*argv)
        text = (o + e).replace(b"%d" % port, b"PORT").replace(workdir.encode(), b"DIR")
        out.append((" ".join(a for a in argv if a != servers).replace(workdir, "DIR"),
                    rc, text))
    return out


def compare_tools(port, key, other_key):
    d = tempfile.mkdtemp(dir=harness.TMP)
    want = tool_session(MC.port, key, other_key, d)
    got = tool_session(port, key, other_key, d)
    for w, g in zip(want, got):
        assert w == g, "memcached: %r\nnode:      %r" % (w, g)
    # What the steps show (so that the comparison cannot pass on empty runs).
    by = {}
    for w in want:
        by.setdefault(w[0], w)                  # the first run of each command
    assert by["memccat %s" % key][1:] == (0, b"a file copied by memccp\n" * 20 + b"\n")
    assert by["memccat --flag %s" % other_key][1:] == (0, b"7\nanother\n\n")
    assert by["memcexist %s" % key][1] == 0 and by["memcexist nosuchkey"][1] != 0
    assert by["memcstat -S"][2] == b"127.0.0.1:PORT 1.6.18\n", by["memcstat -S"]
    return got


def test_tools_standalone():
    compare_tools(NODE.port, "tool-a", "tool-b")


def test_tools_through_a_non_owner():
    key, other = key_of(2, "tool-a"), key_of(2, "tool-b")
    compare_tools(G1.port, key, other)
    # memccp went to group 2's primary through group 1
    c = G2.conn()
    try:
        c.send("set %s 0 0 1\r\nx\r\n" % key)
        assert c.readline() == b"STORED\r\n"
    finally:
        c.close()


def test_memcdump_lists_the_nodes_keys():
    """memcdump (stats items, then stats cachedump per class) lists the keys
    a node holds, standalone all of them, in a cluster the node's own.
    Not compared with memcached: 1.6.18 dumps only the COLD segment of its
    LRU, where its maintainer thread moves items some time after their
    store.  Like memcached it leaves out keys stored in base64 (ms b)."""
    c = NODE.conn()
    c.send("flush_all\r\n")
    assert c.readline() == b"OK\r\n"
    keys = [b"dump-a", b"dump-b", b"dump-big"]
    for k in keys:
        v = b"v" * (5000 if k == b"dump-big" else 1)    # another memcached slab class
        c.send(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v))
        assert c.readline() == b"STORED\r\n"
    c.send(b"ms ZHVtcC1iaW4= 1 b\r\nx\r\n")                # "dump-bin" in base64
    assert c.readline() == b"HD\r\n"
    # A control byte in a key goes out as it is (memcdump itself cuts such
    # a key short, against memcached too).
    c.send(b"set dump\x01c 0 0 1\r\nv\r\nstats cachedump 1 0\r\n")
    assert c.readline() == b"STORED\r\n"
    lines = []
    while not lines or lines[-1] != b"END\r\n":
        lines.append(c.readline())
    assert b"ITEM dump\x01c [1 b; 0 s]\r\n" in lines, lines
    assert sorted(lines[:-1]) == sorted(b"ITEM %s [1 b; 0 s]\r\n" % k
                                        for k in (b"dump-a", b"dump-b", b"dump\x01c")), lines
    c.close()
    rc, out, err = run("memcdump", "--servers=127.0.0.1:%d" % NODE.port)
    assert rc == 0, (rc, out, err)
    assert sorted(out.split(b"\n")[:-1]) == sorted(keys + [b"dump"]), out

    local, remote = key_of(1, "dump-local"), key_of(2, "dump-remote")
    c = G1.conn()
    for k in (local, remote):
        c.send("set %s 0 0 1\r\nv\r\n" % k)
        assert c.readline() == b"STORED\r\n"
    c.close()
    for node, mine, theirs in ((G1, local, remote), (G2, remote, local)):
        rc, out, err = run("memcdump", "--servers=127.0.0.1:%d" % node.port)
        assert rc == 0, (rc, out, err)
        assert mine.encode() in out.split() and theirs.encode() not in out.split(), out


MEMCACHED_TOOL = "/usr/share/memcached/scripts/memcached-tool"


def memcached_tool_dump(port):
    """memcached-tool's dump (lru_crawler metadump all, then a get per key)
    as {key: (flags, exp, value)}."""
    rc, out, err = run("perl", MEMCACHED_TOOL, "127.0.0.1:%d" % port, "dump")
    assert rc == 0 and err == b"Dumping memcache contents\n", (rc, out, err)
    items = {}
    while out:
        head, out = out.split(b"\r\n", 1)
        _, key, flags, exp, n = head.split(b" ")
        items[key] = (int(flags), int(exp), out[:int(n)])
        assert out[int(n):int(n) + 2] == b"\r\n", out[:200]
        out = out[int(n) + 2:]
    return items


def test_memcached_tool_dump():
    """Debian's memcached-tool dump lists what a node holds (keys, flags,
    absolute expiries, values), as it lists memcached's; a cluster node
    lists its own keys, as a memcached lists its own."""
    stream = (b"flush_all\r\nset mt-a 0 0 1\r\nA\r\nset mt/b%%c 9 100 2\r\nBB\r\n"
              b"set mt-big 3 0 5000\r\n%s\r\nms bXQtYmlu 3 b F4\r\nbin\r\n"
              b"set mt-sp\xc3\xa9 0 0 1\r\nS\r\nmn\r\n") % (b"z" * 5000)
    dumps = []
    for srv in (MC, NODE):
        c = srv.conn()
        c.send(stream)
        while c.readline() != b"MN\r\n":
            pass
        c.close()
        now = time.time()
        got = memcached_tool_dump(srv.port)
        # exp is absolute: near now + 100 s on both servers
        assert abs(got[b"mt/b%c"][1] - (now + 100)) <= 3 * harness.SLOW, got[b"mt/b%c"]
        got[b"mt/b%c"] = got[b"mt/b%c"][:1] + (100,) + got[b"mt/b%c"][2:]
        dumps.append(got)
    want = {b"mt-a": (0, 0, b"A"), b"mt/b%c": (9, 100, b"BB"), b"mt-big": (3, 0, b"z" * 5000),
            b"mt-bin": (4, 0, b"bin"), b"mt-sp\xc3\xa9": (0, 0, b"S")}
    assert dumps[0] == want, dumps[0]
    assert dumps[1] == want, dumps[1]

    local, remote = key_of(1, "mt-local"), key_of(2, "mt-remote")
    c = G1.conn()
    for k in (local, remote):
        c.send("set %s 0 0 1\r\nv\r\n" % k)
        assert c.readline() == b"STORED\r\n"
    c.close()
    for node, mine, theirs in ((G1, local, remote), (G2, remote, local)):
        got = memcached_tool_dump(node.port)
        assert got.get(mine.encode()) == (0, 0, b"v"), got
        assert theirs.encode() not in got, got


def test_memcached_tool_dump_is_whole():
    """memcached-tool dump of a node holding far more than its connection's
    output buffer (4 MiB) of dump lines gets every item: the node streams
    the dump as memcached does, it does not cut it."""
    node = harness.Node(threads=2, memory_mb=64)
    try:
        n = 12000                                  # ~670-byte dump lines: ~8 MB
        key = b"mt/" + b"/" * 190 + b"%08d"
        c = node.conn(timeout=30)
        c.send(b"".join(b"set " + key % i + b" %d 0 %d noreply\r\nv%d\r\n"
                        % (i % 7, len(b"v%d" % i), i) for i in range(n)) + b"mn\r\n")
        assert c.readline() == b"MN\r\n"
        c.close()
        got = memcached_tool_dump(node.port)
        assert len(got) == n, len(got)
        for i in range(n):
            assert got.get(key % i) == (i % 7, 0, b"v%d" % i), (i, got.get(key % i))
    finally:
        assert node.stop() == 0, node.proc.output()[-3000:]


def memcslap_hits(port):
    """memcslap's set test (4 threads setting the same 12,000 keys: each
    rewritten, none read), then its get test (4,000 new keys set, then
    read back twice): how many of those 8,000 gets hit."""
    server = "--servers=127.0.0.1:%d" % port
    rc, out, err = run("memcslap", server, "--test=set", "--concurrency=4",
                       "--execute-number=12000", timeout=120)
    assert rc == 0 and b"Time to set" in out, (rc, out, err)
    rc, out, err = run("memcslap", server, "--test=get", "--concurrency=2",
                       "--execute-number=4000", timeout=120)
    m = re.search(rb"Time to get\s+(\d+) keys", out)
    assert rc == 0 and m, (rc, out, err)
    return int(m.group(1))


def test_memcslap_reads_back_what_it_just_wrote():
    """A working set written over a cache full of rewritten, never-read
    keys is read back: the default eviction keeps what was just written
    (memcached, whose LRU evicts the oldest, does; an S3-FIFO that let
    writes alone earn its main queue kept the old keys and hit 14%)."""
    mc = harness.Memcached(threads=2, memory_mb=16)
    node = harness.Node(threads=2, memory_mb=16)
    try:
        theirs, ours = memcslap_hits(mc.port), memcslap_hits(node.port)
        print("memcslap get test after its set test, hits of 8000: memcached %d, node %d"
              % (theirs, ours))
        assert ours >= 0.95 * 8000 and ours >= theirs, (ours, theirs)
    finally:
        mc.stop()
        node.stop()


def test_memcstat_shows_both_versions():
    for srv in (NODE, G1):
        rc, out, err = run("memcstat", "--servers=127.0.0.1:%d" % srv.port)
        assert rc == 0, (rc, out, err)
        lines = out.decode().splitlines()
        assert lines[0] == "Server: 127.0.0.1 (%d)" % srv.port, lines[:2]
        stats = dict(line.strip().split(": ", 1) for line in lines[1:] if ": " in line)
        assert stats["version"] == "1.6.18", stats
        assert stats["bucketcache_version"].count(".") == 2, stats
        assert int(stats["curr_connections"]) >= 1 and "curr_items" in stats, stats


# ---------------------------------------------------------------------------
# pymemcache (Debian's python3-pymemcache) through the non-owner

def test_pymemcache_through_a_non_owner():
    c = Client(("127.0.0.1", G1.port), connect_timeout=5 * harness.SLOW,
               timeout=5 * harness.SLOW)
    try:
        assert c.version() == b"1.6.18"
        k1, k2 = key_of(1, "py-local"), key_of(2, "py-remote")
        k3 = key_of(2, "py-other")
        for k in (k1, k2):
            assert c.set(k, b"v-" + k.encode(), expire=1000, noreply=False) is True
            assert c.get(k) == b"v-" + k.encode()
        # cas: gets, a winning cas, a losing one, a cas on a missing key
        value, token = c.gets(k2)
        assert value == b"v-" + k2.encode() and token
        assert c.cas(k2, b"swapped", token, noreply=False) is True
        assert c.cas(k2, b"lost", token, noreply=False) is False
        assert c.cas(k3, b"none", b"1", noreply=False) is None
        assert c.get(k2) == b"swapped"
        # incr / decr
        assert c.set(k3, b"41", noreply=False) is True
        assert c.incr(k3, 1, noreply=False) == 42
        assert c.decr(k3, 50, noreply=False) == 0
        assert c.incr(key_of(2, "py-missing"), 1, noreply=False) is None
        # touch
        assert c.touch(k2, 100, noreply=False) is True
        assert c.touch(key_of(2, "py-missing"), 100, noreply=False) is False
        # get_many across both groups, with a miss
        many = c.get_many([k1, k2, k3, "py-missing-%d" % 9])
        # (memcached pads a shorter result in place: "41" -> "0 ")
        assert many == {k1: b"v-" + k1.encode(), k2: b"swapped", k3: b"0 "}, many
        assert c.gets_many([k2])[k2][0] == b"swapped"
        # add / replace / append / prepend / delete
        assert c.add(k2, b"x", noreply=False) is False
        assert c.replace(k2, b"r", noreply=False) is True
        assert c.append(k2, b">", noreply=False) is True
        assert c.prepend(k2, b"<", noreply=False) is True
        assert c.get(k2) == b"<r>"
        assert c.delete(k2, noreply=False) is True
        assert c.delete(k2, noreply=False) is False
        assert c.get(k2) is None
        # noreply (pymemcache's default) then a read
        c.set(k2, b"quiet")
        assert c.get(k2) == b"quiet"
        stats = c.stats()
        assert stats[b"version"] == b"1.6.18" and b"bucketcache_version" in stats
    finally:
        c.close()
    # Non-ASCII keys (pymemcache's allow_unicode_keys sends them as UTF-8)
    u = Client(("127.0.0.1", G1.port), allow_unicode_keys=True,
               connect_timeout=5 * harness.SLOW, timeout=5 * harness.SLOW)
    try:
        for gid in (1, 2):
            k = key_of(gid, "py:\u00e9t\u00e9")
            assert u.set(k, b"summer", noreply=False) is True
            assert u.get(k) == b"summer"
            assert u.get_many([k, "py:none"]) == {k: b"summer"}
    finally:
        u.close()


def test_raw_socket_still_answers():
    """The servers are still up and talking after all of the above."""
    for srv in (NODE, G1, G2):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * harness.SLOW)
        s.sendall(b"mn\r\n")
        assert s.recv(16) == b"MN\r\n"
        s.close()


def test_pymemcache_get_many_with_a_group_down():
    """Last (it stops group 2): get_many through group 1's node returns the
    keys of the group that is up; the down group's keys read as misses (a
    multi-get serves what the cluster has, docs/protocol.md)."""
    c = Client(("127.0.0.1", G1.port), connect_timeout=5 * harness.SLOW,
               timeout=5 * harness.SLOW)
    try:
        mine = [key_of(1, "down-a"), key_of(1, "down-b")]
        theirs = [key_of(2, "down-c")]
        for k in mine + theirs:
            assert c.set(k, k.encode(), noreply=False) is True
        assert c.get_many(mine + theirs) == {k: k.encode() for k in mine + theirs}
        G2.stop()
        harness.wait_for(lambda: c.get_many(mine + theirs) == {k: k.encode() for k in mine},
                         what="group 2's keys read as misses")
        # A get of one such key is an error until the group is declared down
        # (its session ends), then a miss.
        harness.wait_for(lambda: c.get(theirs[0]) is None, timeout=40,
                         what="a get of the down group's key reads as a miss")
    finally:
        c.close()


harness.main(globals())
