"""Several nodes and consoles on one host, each started with only the flags
that say what it is: nodes with only -p (admin port = data port + 69),
cluster nodes with -p/--zk/--cluster/--group, consoles with only
--zk/--cluster (API port 11290 or the next free one, published in
ZooKeeper, where the CLI finds it).  All run side by side."""
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def port_free(p):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", p))
            return True
        except OSError:
            return False


def data_ports(n):
    """n data ports whose admin ports (+69) are free too, none the other's."""
    out = []
    while len(out) < n:
        p = harness.free_port()
        if p + 69 <= 65535 and port_free(p + 69) and \
                all(abs(p - q) != 69 and p != q for q in out):
            out.append(p)
    return out


def wait_log(proc, pattern, what):
    return harness.wait_for(lambda: re.search(pattern, proc.output()), what=what)


def test_two_standalone_nodes_with_only_p():
    p1, p2 = data_ports(2)
    nodes = [harness.Proc("node", [harness.NODE_BIN, "-p", str(p)]) for p in (p1, p2)]
    for p, n in zip((p1, p2), nodes):
        harness.wait_port(p, proc=n.p)
        harness.wait_port(p + 69, proc=n.p)
    for p, n in zip((p1, p2), nodes):
        c = harness.McConn(p)
        c.send("set same-host 0 0 %d\r\n%d\r\nget same-host\r\n" % (len(str(p)), p))
        assert c.readline() == b"STORED\r\n"
        assert c.read_reply() == b"VALUE same-host 0 %d\r\n%d\r\nEND\r\n" % (len(str(p)), p)
        c.close()
        st, doc = harness.http_json(p + 69, "GET", "/health")
        assert st == 200 and doc["pid"] == n.pid and doc["mode"] == "standalone", doc
        assert "admin HTTP on http://127.0.0.1:%d/" % (p + 69) in n.output()
    for n in nodes:
        assert n.poll() is None, n.output()[-2000:]
        assert n.stop() == 0


def test_two_cluster_nodes_and_two_consoles():
    zk = harness.ZooKeeper()
    cl = harness.create_cluster(zk, "samehost", buckets=16)
    p1, p2 = data_ports(2)
    nodes = [harness.Proc("node", [harness.NODE_BIN, "-p", str(p), "--zk", zk.hosts,
                                   "--cluster", cl, "--group", str(g)])
             for g, p in ((1, p1), (2, p2))]
    for p, n in zip((p1, p2), nodes):
        harness.wait_port(p, proc=n.p)
        harness.wait_port(p + 69, proc=n.p)
    consoles = []
    for i in range(2):
        c = harness.Proc("console", [harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", cl])
        m = wait_log(c, r"API on http://127\.0\.0\.1:(\d+)/", "console %d's API" % i)
        consoles.append((c, int(m.group(1))))
    ports = [p for _, p in consoles]
    assert len(set(ports)) == 2 and all(11290 <= p <= 11389 for p in ports), ports
    for c, p in consoles:
        if p != 11290:                  # moved up from the default: said so
            assert re.search(r"port \d+ is in use; listening on %d instead" % p, c.output()), \
                c.output()[-2000:]
    roles = sorted(harness.http_json(p, "GET", "/health")[1]["role"] for _, p in consoles)
    assert roles == ["active", "standby"], roles
    for _, p in consoles:
        doc = harness.http_json(p, "GET", "/health")[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+", doc["version"]), doc
    active = next(p for _, p in consoles
                  if harness.http_json(p, "GET", "/health")[1]["role"] == "active")

    # The CLI finds the active console through its ZooKeeper record.
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cl, "status")
    assert rc == 0 and "active console 127.0.0.1:%d" % active in out, (rc, out, err)
    # Both groups' nodes registered with their admin ports (+69).
    t = harness.wait_tables(zk, cl, lambda t: 0 not in t["c"] and set(t["c"]) == {1, 2},
                            "both groups own buckets")
    st, doc = harness.http_json(active, "GET", "/v1/cluster")
    admins = sorted(n["admin"] for g in doc["groups"] for n in g["nodes"])
    assert admins == sorted("127.0.0.1:%d" % (p + 69) for p in (p1, p2)), doc
    # A non-owner forwards: all of it is one working cluster.
    k = harness.key_in_bucket_owned_by(t["c"], 2, prefix="sh")
    c = harness.McConn(p1)
    c.send("set %s 0 0 2\r\nok\r\nget %s\r\n" % (k, k))
    assert c.readline() == b"STORED\r\n"
    assert c.read_reply() == b"VALUE %s 0 2\r\nok\r\nEND\r\n" % k.encode()
    c.close()

    # A port given explicitly is that port or an error, never another one.
    busy = subprocess.run([harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", cl,
                           "--admin-port", str(active)], capture_output=True, text=True,
                          timeout=30 * harness.SLOW)
    assert busy.returncode == 1, busy
    assert "cannot listen on 127.0.0.1:%d" % active in busy.stderr, busy.stderr

    time.sleep(0.5)
    for proc in nodes + [c for c, _ in consoles]:
        assert proc.poll() is None, (proc.name, proc.output()[-2000:])
    for c, _ in consoles:
        assert c.stop() == 0
    for n in nodes:
        assert n.stop() == 0


harness.main(globals())
