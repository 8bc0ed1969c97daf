"""TLS between the nodes of a cluster run with -Z (node/net/tls.h, PEERS):
with a real ZooKeeper, a console, two groups and a backup, all with the
same test CA -- forwarding through a node that does not own the key, and
replication to a backup (a write read back from the backup promoted after
the primary is killed), over TLS, every data port requiring a client
certificate (the nodes present their own); libbucketcache (the CLI) reaches the
owners over TLS; a plain client on a data port is refused; a node whose
CA is another cannot replicate, and says why.  The admin ports serve
HTTPS (the console reaches them with --node-tls-ca-file): a group added
takes buckets over, copied between the nodes over TLS, every key readable
afterwards; the export endpoint does not speak plain HTTP, a client of
another CA fails verification, and a plain request or a handshake cut
short leave the node serving.  -Z in a cluster needs ssl_ca_cert."""
import os
import signal
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import migration_util  # noqa: E402

D = os.path.join(harness.TMP, "tls-cluster")
os.makedirs(D)


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, cwd=D)


def p(name):
    return os.path.join(D, name)


def make_ca(name):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
       "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + name)


def make_cert(name, ca, cn):
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
       "-out", name + ".csr", "-subj", "/CN=" + cn)
    with open(p(name + ".ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
       "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", p(name + ".ext"))


make_ca("ca")
make_ca("rogue-ca")
make_cert("node", "ca", "a node")
make_cert("rogue", "rogue-ca", "a rogue node")

NB = 16
ENV = {}


def tls_args(cert="node", ca="ca"):
    # ssl_verify_mode=2: every data port requires a client certificate, so
    # a peer link that works is one where the node presented its own
    return ["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s,ssl_ca_cert=%s,ssl_verify_mode=2"
            % (p(cert + ".crt"), p(cert + ".key"), p(ca + ".crt"))]


zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "tlsc", buckets=NB)
COMMON = ["--replication", "async", "--forward-timeout-ms", "2000"]
A = harness.ClusterNode(zk, CL, 1, *(COMMON + tls_args()), env=ENV)
C = harness.ClusterNode(zk, CL, 2, *(COMMON + tls_args()), env=ENV)
CONSOLE = harness.Console(zk, CL, "--node-tls-ca-file", p("ca.crt"), migrations=True)
TABLE = migration_util.wait_converged(CONSOLE, groups={1, 2},
                                      what="both groups own buckets")["c"]
harness.wait_primary(A)
harness.wait_primary(C)


def tls_conn(node):
    c = harness.McConn(node.port)
    ctx = ssl.create_default_context(cafile=p("ca.crt"))
    ctx.load_cert_chain(p("node.crt"), p("node.key"))
    c.sock = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1")
    return c


def key_of(gid, prefix):
    return harness.key_in_bucket_owned_by(TABLE, gid, prefix=prefix)


def test_forwarding_over_tls():
    k = key_of(2, "fwd")
    via = tls_conn(A)
    # A may not route yet: wait until it forwards rather than refuses
    harness.wait_for(lambda: via.cmd("set %s 0 0 3" % k, "abc") == b"STORED\r\n",
                     what="a forwarded write")
    assert via.cmd("get " + k) == b"VALUE %s 0 3\r\nabc\r\nEND\r\n" % k.encode()
    # the owner has it
    assert tls_conn(C).cmd("get " + k) == b"VALUE %s 0 3\r\nabc\r\nEND\r\n" % k.encode()
    # a value larger than a TLS record, and a pipeline, both forwarded
    big = os.urandom(150 * 1024).hex()
    assert via.cmd("set %sb 0 0 %d" % (k, len(big)), big) == b"STORED\r\n"
    assert via.cmd("get %sb" % k) == b"VALUE %sb 0 %d\r\n%s\r\nEND\r\n" % (
        k.encode(), len(big), big.encode())
    n = 200
    via.send(b"".join(b"set %s.%d 0 0 %d\r\n%d\r\n" % (k.encode(), i, len(str(i)), i)
                      for i in range(n)))
    for i in range(n):
        assert via.readline() == b"STORED\r\n", i
    assert "TLS handshake with" not in A.proc.output()


def test_libbucketcache_reaches_the_owners_over_tls():
    args = ("--zk", zk.hosts, "--cluster", CL, "--tls-ca-file", p("ca.crt"), "--tls-cert-file",
            p("node.crt"), "--tls-key-file", p("node.key"))
    for gid in (1, 2):
        k = key_of(gid, "lib")
        rc, out, err = harness.cli(*args, "set", k, "via the library %d" % gid)
        assert rc == 0, (rc, out, err)
        rc, out, err = harness.cli(*args, "get", k)
        assert rc == 0 and out == "via the library %d" % gid, (rc, out, err)
    # without TLS, the library gets no answer from a TLS data port
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", CL, "--timeout", "500", "get",
                               key_of(1, "lib"))
    assert rc != 0 and "via the library" not in out, (rc, out, err)


def test_a_plain_client_is_refused():
    c = harness.McConn(A.port)
    c.send("get x\r\n")
    assert c.closed_by_peer()
    assert b"END" not in c.buf and b"VALUE" not in c.buf, c.buf


def test_admin_ports_speak_https_only():
    export = "/v1/migrate/export?bucket=%d&epoch=1" % TABLE.index(1)
    # the console reaches the nodes' admin ports (HTTPS) for their figures
    harness.wait_for(lambda: (lambda gs: len(gs) == 2 and all(g["primary_reachable"] for g in gs))(
        migration_util.console_json(CONSOLE, "/v1/stats/groups")["groups"]),
        what="the console reaching both primaries")
    # the CLI asks the nodes' admin ports over HTTPS when given the CA
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", CL, "--tls-ca-file", p("ca.crt"),
                               "groups")
    assert rc == 0 and out.count(", offset ") == 2, (rc, out, err)
    # plain HTTP on the admin port: no HTTP answer, the connection closed
    for path in (export, "/health"):
        try:
            status = harness.http(A.admin_port, "GET", path, timeout=2)[0]
        except (ConnectionError, OSError, harness_http_errors()) as e:
            status = repr(e)
        assert not isinstance(status, int), (path, status)
    # a client of another CA does not trust the node
    rogue_ctx = ssl.create_default_context(cafile=p("rogue-ca.crt"))
    try:
        harness.http(A.admin_port, "GET", "/health", tls=rogue_ctx)
        assert False, "a client of another CA got an answer"
    except ssl.SSLCertVerificationError as e:
        assert "certificate verify failed" in str(e), e
    # a handshake cut short, then a client that sends nothing: the node
    # goes on serving
    s = socket.create_connection(("127.0.0.1", A.admin_port))
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    s.close()
    assert A.admin_json("/health")[0] == 200
    assert "a client's TLS handshake failed, connection closed" in A.proc.output()
    # an unsigned export request over HTTPS is refused by the cluster secret
    status, doc = A.admin_json(export)
    assert status in (401, 403), (status, doc)
    assert A.proc.poll() is None


def test_admin_certificate_renewed_on_sighup():
    def served():
        return ssl.get_server_certificate(("127.0.0.1", A.admin_port), ca_certs=p("ca.crt"))
    before = served()
    # a renewed certificate (same CA, new key) in place of the old files
    make_cert("renewed", "ca", "a node, renewed")
    for ext in (".crt", ".key"):
        os.replace(p("renewed" + ext), p("node" + ext))
    A.proc.signal(signal.SIGHUP)
    after = harness.wait_for(lambda: (lambda c: c if c != before else None)(served()),
                             what="the admin port serving the renewed certificate")
    with open(p("node.crt")) as f:
        assert ssl.PEM_cert_to_DER_cert(after) == ssl.PEM_cert_to_DER_cert(f.read())
    assert "TLS: the admin port's certificate renewed" in A.proc.output()
    assert A.admin_json("/health")[0] == 200


def harness_http_errors():
    import http.client
    return http.client.HTTPException


def test_migration_between_tls_nodes():
    """A third group takes buckets over: each copied from its old owner's
    admin port over HTTPS; every key written before is readable after."""
    global TABLE
    keys = ["mig.%d" % i for i in range(300)]
    a = tls_conn(A)
    for k in keys:
        assert a.cmd("set %s 0 0 %d" % (k, len(k)), k) == b"STORED\r\n", k
    e = harness.ClusterNode(zk, CL, 3, *(COMMON + tls_args()), env=ENV)
    t = migration_util.wait_converged(CONSOLE, groups={1, 2, 3}, timeout=30,
                                      what="group 3 owning buckets")
    TABLE = t["c"]
    assert TABLE.count(3) >= 2, TABLE
    out = e.proc.output()
    warned = [line for line in out.splitlines() if "WARN" in line and
              ("migrate:" in line or "TLS handshake with" in line)]
    assert not warned and "imported bucket" in out, (warned, out[-2000:])
    for via in (tls_conn(e), tls_conn(C)):
        for k in keys:
            assert via.cmd("get " + k) == b"VALUE %s 0 %d\r\n%s\r\nEND\r\n" % (
                k.encode(), len(k), k.encode()), k
    # the buckets really moved: group 3 holds their keys itself
    own = [k for k in keys if TABLE[harness.bucket_of(k, NB)] == 3]
    assert own and int(tls_conn(e).stats()["curr_items"]) >= len(own), own


def test_replication_over_tls_and_failover():
    b = harness.ClusterNode(zk, CL, 1, *(COMMON + tls_args()), env=ENV)
    harness.wait_for(lambda: (lambda r: r["synced"] and r["link_up"])(harness.repl(b)),
                     what="the backup following over TLS")
    k = key_of(1, "repl")
    big = os.urandom(100 * 1024).hex()
    a = tls_conn(A)
    assert a.cmd("set %s 0 0 7" % k, "durable") == b"STORED\r\n"
    assert a.cmd("set %sb 0 0 %d" % (k, len(big)), big) == b"STORED\r\n"
    for i in range(300):
        r = a.cmd("set %s.%d 0 0 %d" % (k, i, len(str(i))), str(i))
        assert r == b"STORED\r\n", (i, r)
    # everything applied on the backup (async: wait for it); the primary dies
    harness.wait_for(lambda: harness.repl(b)["offset"] == harness.repl(A)["offset"],
                     what="the backup caught up")
    A.proc.kill()
    harness.wait_primary(b, timeout=30)
    nb = tls_conn(b)
    assert nb.cmd("get " + k) == b"VALUE %s 0 7\r\ndurable\r\nEND\r\n" % k.encode()
    assert nb.cmd("get %sb" % k) == b"VALUE %sb 0 %d\r\n%s\r\nEND\r\n" % (
        k.encode(), len(big), big.encode())
    for i in (0, 150, 299):
        assert nb.cmd("get %s.%d" % (k, i)) == b"VALUE %s.%d 0 %d\r\n%d\r\nEND\r\n" % (
            k.encode(), i, len(str(i)), i)
    # forwarding from the other group reaches the promoted backup, over TLS
    harness.wait_for(lambda: tls_conn(C).cmd("get " + k) ==
                     b"VALUE %s 0 7\r\ndurable\r\nEND\r\n" % k.encode(),
                     what="group 2 forwarding to the new primary")
    # a node of another CA does not trust the primary's certificate: it
    # does not follow it, and says why
    rogue = harness.ClusterNode(zk, CL, 1, *(COMMON + tls_args("rogue", "rogue-ca")), env=ENV)
    harness.wait_for(lambda: "TLS handshake with primary 127.0.0.1:%d failed: certificate "
                     "verify failed" % b.port in rogue.proc.output(),
                     what="the rogue node's refusal logged")
    assert harness.repl(rogue)["synced"] is False
    rogue.stop()
    b.stop()


def test_configuration():
    def fails(args, env, needle):
        argv = [harness.NODE_BIN, "-p", "0", "--admin-port", "0", "--zk", zk.hosts, "--cluster",
                CL, "--group", "1"] + args
        r = subprocess.run(argv + harness.secret_args(argv),
                           capture_output=True, text=True, timeout=30 * harness.SLOW,
                           env=dict(os.environ, **env))
        assert r.returncode == 2 and needle in r.stderr, (args, r.returncode, r.stderr)

    fails(["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (p("node.crt"), p("node.key"))], ENV,
          "-Z in a cluster needs -o ssl_ca_cert")
    # the console's CA file is read at start: a bad one is a usage error
    r = subprocess.run([harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", CL, "--admin-port",
                        "0", "--node-tls-ca-file", p("missing.crt")],
                       capture_output=True, text=True, timeout=30 * harness.SLOW)
    assert r.returncode == 2 and "--node-tls-ca-file: cannot load the CA file" in r.stderr, (
        r.returncode, r.stderr)
    # ... given in the configuration file too
    with open(p("console.json"), "w") as f:
        f.write('{"nodes": {"tls_ca_file": "%s"}}' % p("missing.crt"))
    r = subprocess.run([harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", CL, "--admin-port",
                        "0", "--config", p("console.json")],
                       capture_output=True, text=True, timeout=30 * harness.SLOW)
    assert r.returncode == 2 and "cannot load the CA file %s" % p("missing.crt") in r.stderr, (
        r.returncode, r.stderr)


if __name__ == "__main__":
    harness.main(globals())
