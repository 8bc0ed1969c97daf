"""TLS on the data port (-Z), as memcached 1.6.18 does it, with a test CA
made here with openssl: clients that speak TLS work (python's ssl,
`openssl s_client` driving the text protocol, pymemcache with a TLS
context), large values and deep pipelines included; a plain client on the
TLS port is refused and counted, the node carries on; a notls listener
serves plain clients the same data; refresh_certs and SIGHUP put new
certificates in force (a bad file changes nothing); client certificates
are required or checked when asked; -Y works over TLS; memcached
started the same way answers refresh_certs alike; configuration mistakes
stop the node with a clear message."""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

D = os.path.join(harness.TMP, "tls")
os.makedirs(D)


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True, cwd=D)


def make_ca(name):
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
       "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + name)


def make_cert(name, ca, cn, server=True):
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
       "-out", name + ".csr", "-subj", "/CN=" + cn)
    ext = os.path.join(D, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else
                "extendedKeyUsage=clientAuth\n")
    sh("openssl", "x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
       "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", ext)


make_ca("ca")
make_ca("rogue-ca")
make_cert("server1", "ca", "server one")
make_cert("server2", "ca", "server two")
make_cert("client", "ca", "a client", server=False)
make_cert("rogue", "rogue-ca", "a rogue", server=False)


def p(name):
    return os.path.join(D, name)


# the files the node reads; replaced in place to test reloads
CERT, KEY = p("live.crt"), p("live.key")


def install(name):
    for src, dst in ((p(name + ".crt"), CERT), (p(name + ".key"), KEY)):
        with open(src, "rb") as f, open(dst + ".tmp", "wb") as g:
            g.write(f.read())
        os.replace(dst + ".tmp", dst)


install("server1")
PLAIN_PORT = harness.free_port()
# -l as memcached takes it: repeated, the harness's own -l 127.0.0.1 first
NODE = harness.Node("-l", "notls:127.0.0.1:%d" % PLAIN_PORT, "-Z",
                    "-o", "ssl_chain_cert=%s,ssl_key=%s" % (CERT, KEY))
harness.wait_port(PLAIN_PORT, proc=NODE.proc.p)


def context(cert=None):
    ctx = ssl.create_default_context(cafile=p("ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(p(cert + ".crt"), p(cert + ".key"))
    return ctx


def tls_conn(port, cert=None):
    """An McConn whose socket speaks TLS (the handshake done)."""
    c = harness.McConn(port)
    c.sock = context(cert).wrap_socket(c.sock, server_hostname="127.0.0.1")
    return c


def peer_cn(c):
    return dict(x[0] for x in c.sock.getpeercert()["subject"])["commonName"]


def stat(port, name, sub=""):
    c = harness.McConn(port)
    try:
        return c.stats(sub)[name]
    finally:
        c.close()


def test_a_tls_client_speaks_the_text_protocol():
    c = tls_conn(NODE.port)
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
    assert peer_cn(c) == "server one"
    assert c.cmd("set k1 5 0 5", "hello") == b"STORED\r\n"
    assert c.cmd("get k1") == b"VALUE k1 5 5\r\nhello\r\nEND\r\n"
    # a value larger than a TLS record, both ways
    big = os.urandom(700 * 1024).hex()[:900 * 1024]
    assert c.cmd("set big 0 0 %d" % len(big), big) == b"STORED\r\n"
    assert c.cmd("get big") == b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big.encode())
    # a deep pipeline in one write: every reply, in order (the node holds
    # decrypted input that epoll cannot see)
    n = 2000
    c.send(b"".join(b"set p%d 0 0 %d\r\n%d\r\n" % (i, len(str(i)), i) for i in range(n)))
    for i in range(n):
        assert c.readline() == b"STORED\r\n", i
    c.send(b"".join(b"get p%d\r\n" % i for i in range(n)))
    for i in range(n):
        assert c.read_reply() == b"VALUE p%d 0 %d\r\n%d\r\nEND\r\n" % (i, len(str(i)), i), i
    # backpressure: replies far beyond the node's output limit, asked for
    # in one go and read only afterwards
    v = b"v" * 10000
    assert c.cmd("set ten 0 0 %d" % len(v), v) == b"STORED\r\n"
    c.send(b"get ten\r\n" * 1500)
    time.sleep(0.3)
    for i in range(1500):
        assert c.read_reply() == b"VALUE ten 0 10000\r\n" + v + b"\r\nEND\r\n", i
    assert c.cmd("version").startswith(b"VERSION ")
    # the plain listener serves the same data
    plain = harness.McConn(PLAIN_PORT)
    assert plain.cmd("get k1") == b"VALUE k1 5 5\r\nhello\r\nEND\r\n"
    # quit ends the session cleanly
    c.send("quit\r\n")
    assert c.closed_by_peer()
    s = harness.McConn(PLAIN_PORT).stats("settings")
    assert s["ssl_enabled"] == "yes" and s["ssl_chain_cert"] == CERT and s["ssl_key"] == KEY
    assert s["ssl_verify_mode"] == "0" and s["ssl_min_version"] == "tlsv1.2"
    assert int(stat(PLAIN_PORT, "time_since_server_cert_refresh")) >= 0


def test_a_metadump_over_tls_is_whole():
    """lru_crawler metadump of several chunks (TLS records are copied out
    of the queue a record at a time): every item, END, then the command
    pipelined behind it."""
    c = tls_conn(NODE.port)
    n = 4000                                       # ~690-byte lines: ~2.7 MB
    key = b"md/" + b"/" * 200 + b"%06d"
    c.send(b"".join(b"set " + key % i + b" 0 0 1 noreply\r\nx\r\n" for i in range(n))
           + b"mn\r\n")
    assert c.readline() == b"MN\r\n"
    c.send(b"lru_crawler metadump all\r\nmn\r\n")
    out = b""
    while not out.endswith(b"END\r\nMN\r\n"):  # END: the only CR of a dump
        chunk = c.sock.recv(65536)
        assert chunk, "closed after %d bytes" % len(out)
        out += chunk
    lines = out[:-len(b"END\r\nMN\r\n")].split(b"\n")[:-1]
    mine = sorted(ln.split(b" ", 1)[0] for ln in lines if ln.startswith(b"key=md%2F"))
    assert mine == [b"key=md" + b"%2F" * 201 + b"%06d" % i for i in range(n)], len(mine)
    c.close()


def test_openssl_s_client_drives_the_text_protocol():
    r = subprocess.run(["openssl", "s_client", "-quiet", "-verify_return_error", "-CAfile",
                        p("ca.crt"), "-connect", "127.0.0.1:%d" % NODE.port],
                       input=b"set sc 0 0 2\r\nok\r\nget sc\r\nversion\r\nquit\r\n",
                       capture_output=True, timeout=30 * harness.SLOW)
    assert r.stdout.startswith(b"STORED\r\nVALUE sc 0 2\r\nok\r\nEND\r\nVERSION "), r
    assert r.returncode == 0, r


def test_pymemcache_with_a_tls_context():
    # Debian's python3-pymemcache, in the system interpreter
    script = """
import ssl, sys
from pymemcache.client.base import Client
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = Client(("127.0.0.1", int(sys.argv[1])), tls_context=ctx, timeout=10)
c.set("pm", b"from pymemcache")
assert c.get("pm") == b"from pymemcache", c.get("pm")
assert c.get_many(["pm", "k1", "nope"]) == {"pm": b"from pymemcache", "k1": b"hello"}
c.delete("pm")
assert c.get("pm") is None
print("ok")
"""
    r = subprocess.run(["/usr/bin/python3", "-c", script, str(NODE.port), p("ca.crt")],
                       capture_output=True, timeout=30 * harness.SLOW)
    assert r.returncode == 0 and r.stdout == b"ok\n", r


def test_a_plain_client_on_the_tls_port_is_refused():
    before = int(stat(PLAIN_PORT, "ssl_handshake_errors"))
    c = harness.McConn(NODE.port)
    c.send("get k1\r\n")
    assert c.closed_by_peer(), "still open"
    assert b"VALUE" not in c.buf and b"k1" not in c.buf, c.buf
    # a client that sends junk in a TLS record header, and one that hangs
    # up in the middle of its handshake
    c = harness.McConn(NODE.port)
    c.send(b"\x16\x03\x01\x00\x05hello")
    assert c.closed_by_peer()
    c = harness.McConn(NODE.port)
    c.send(b"\x16\x03\x01")
    c.close()
    harness.wait_for(lambda: int(stat(PLAIN_PORT, "ssl_handshake_errors")) >= before + 2,
                     what="the refusals counted")
    # the node carries on, on both listeners
    assert tls_conn(NODE.port).cmd("get k1") == b"VALUE k1 5 5\r\nhello\r\nEND\r\n"
    assert NODE.proc.poll() is None
    text = harness.http(NODE.admin_port, "GET", "/metrics")[2].decode()
    assert "bucketcache_tls_handshake_failures_total" in text


def test_refresh_certs_and_sighup():
    old = tls_conn(NODE.port)
    assert peer_cn(old) == "server one"
    install("server2")
    # refresh_certs: new connections get the new certificate; the open one
    # keeps working
    assert old.cmd("refresh_certs") == b"OK\r\n"
    new = tls_conn(NODE.port)
    assert peer_cn(new) == "server two"
    assert old.cmd("get k1") == b"VALUE k1 5 5\r\nhello\r\nEND\r\n"
    assert int(stat(PLAIN_PORT, "time_since_server_cert_refresh")) <= 2
    # a broken file: memcached's error text, and nothing changes
    with open(CERT, "w") as f:
        f.write("not a certificate\n")
    r = new.cmd("refresh_certs")
    assert r.startswith(b"Error loading the certificate chain: " + CERT.encode() + b" : "), r
    r = new.cmd("refresh_certs noreply")
    assert r.startswith(b"Error loading the certificate chain: "), r
    assert peer_cn(tls_conn(NODE.port)) == "server two"
    # SIGHUP: the same, from the files
    install("server1")
    NODE.proc.signal(signal.SIGHUP)
    harness.wait_for(lambda: peer_cn(tls_conn(NODE.port)) == "server one",
                     what="the certificate re-read on SIGHUP")
    assert "SIGHUP received: TLS certificates re-read" in NODE.proc.output()
    # on the plain listener too (an operator's local port)
    assert harness.McConn(PLAIN_PORT).cmd("refresh_certs") == b"OK\r\n"


def test_refresh_certs_as_memcached_answers_it():
    """memcached 1.6.18 started the same way gives the same replies."""
    install("server1")
    mc_plain = harness.free_port()
    mc = harness.Memcached("-l", "notls:127.0.0.1:%d" % mc_plain, "-Z", "-o",
                           "ssl_chain_cert=%s,ssl_key=%s" % (CERT, KEY))
    harness.wait_port(mc_plain, proc=mc.proc.p)
    try:
        a, b = harness.McConn(mc_plain), harness.McConn(PLAIN_PORT)
        assert a.cmd("refresh_certs") == b.cmd("refresh_certs") == b"OK\r\n"
        os.rename(CERT, CERT + ".away")
        try:
            ra, rb = a.cmd("refresh_certs"), b.cmd("refresh_certs")
        finally:
            os.rename(CERT + ".away", CERT)
        prefix = b"Error loading the certificate chain: " + CERT.encode() + b" : "
        assert ra.startswith(prefix) and rb.startswith(prefix), (ra, rb)
        # both serve the old certificate still, and a TLS client alike
        for port in (mc.port, NODE.port):
            c = tls_conn(port)
            assert c.cmd("set same 0 0 1", "x") == b"STORED\r\n"
            assert c.cmd("get same") == b"VALUE same 0 1\r\nx\r\nEND\r\n"
        sa = harness.McConn(mc_plain).stats("settings")
        sb = harness.McConn(PLAIN_PORT).stats("settings")
        for k in ("ssl_enabled", "ssl_chain_cert", "ssl_key", "ssl_verify_mode", "ssl_ciphers",
                  "ssl_ca_cert", "ssl_min_version"):
            assert sa[k] == sb[k], (k, sa[k], sb[k])
        # the listeners as memcached lists them (the ports differ)
        assert sa["inter"] == "127.0.0.1,notls:127.0.0.1:%d" % mc_plain, sa["inter"]
        assert sb["inter"] == "127.0.0.1,notls:127.0.0.1:%d" % PLAIN_PORT, sb["inter"]
    finally:
        mc.stop()
    # without -Z, both say TLS is off
    plain_mc, plain_node = harness.Memcached(), harness.Node()
    try:
        assert plain_mc.conn().cmd("refresh_certs") == plain_node.conn().cmd("refresh_certs") \
            == b"Error TLS not enabled\r\n"
    finally:
        plain_mc.stop()
        plain_node.stop()


def test_client_certificates():
    plain = harness.free_port()
    req = harness.Node("-l", "127.0.0.1,notls:127.0.0.1:%d" % plain, "-Z", "-o",
                       "ssl_chain_cert=%s,ssl_key=%s,ssl_ca_cert=%s,ssl_verify_mode=2"
                       % (p("server1.crt"), p("server1.key"), p("ca.crt")))
    opt = harness.Node("-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s,ssl_ca_cert=%s,ssl_verify_mode=1"
                       % (p("server1.crt"), p("server1.key"), p("ca.crt")))
    try:
        harness.wait_port(plain, proc=req.proc.p)
        # required: a client of the CA gets in
        c = tls_conn(req.port, cert="client")
        assert c.cmd("set cc 0 0 2", "ok") == b"STORED\r\n"
        # ... one without a certificate, or with another CA's, does not
        for cert in (None, "rogue"):
            try:
                c = tls_conn(req.port, cert=cert)
                # TLS 1.3: the server's verdict arrives after our handshake
                r = c.cmd("get cc")
                raise AssertionError("served %r with %s" % (r, cert))
            except (ssl.SSLError, ConnectionError, OSError):
                pass
        assert int(stat(plain, "ssl_handshake_errors")) >= 2
        assert harness.McConn(plain).stats("settings")["ssl_verify_mode"] == "2"
        # requested: no certificate is fine, a wrong one is not
        assert tls_conn(opt.port).cmd("get x") == b"END\r\n"
        assert tls_conn(opt.port, cert="client").cmd("get x") == b"END\r\n"
        try:
            r = tls_conn(opt.port, cert="rogue").cmd("get x")
            raise AssertionError("served %r to a rogue certificate" % r)
        except (ssl.SSLError, ConnectionError, OSError):
            pass
    finally:
        req.stop()
        opt.stop()


def test_ascii_authentication_over_tls():
    """-Y and -Z together: the password travels encrypted, the rules are
    -Y's (tests/integration/test_memcached_auth.py)."""
    users = harness.write_secret(p("mc-auth"), "alice:wonderland")
    n = harness.Node("-Y", users, "-Z", "-o",
                     "ssl_chain_cert=%s,ssl_key=%s" % (p("server1.crt"), p("server1.key")))
    try:
        c = tls_conn(n.port)
        assert c.cmd("get a") == b"CLIENT_ERROR unauthenticated\r\n"
        assert c.cmd("set a 0 0 10", "alice nope") == b"CLIENT_ERROR authentication failure\r\n"
        assert c.cmd("set a 0 0 16", "alice wonderland") == b"STORED\r\n"
        assert c.cmd("set k 0 0 2", "ok") == b"STORED\r\n"
        assert c.cmd("get k") == b"VALUE k 0 2\r\nok\r\nEND\r\n"
        # a new connection starts unauthenticated again
        assert tls_conn(n.port).cmd("get k") == b"CLIENT_ERROR unauthenticated\r\n"
    finally:
        n.stop()


def test_configuration_mistakes_are_clear():
    def fails(args, needle):
        r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0"] + args,
                           capture_output=True, text=True, timeout=30 * harness.SLOW)
        assert r.returncode == 2 and needle in r.stderr, (args, r.returncode, r.stderr)

    fails(["-Z"], "-Z needs a certificate")
    fails(["-Z", "-o", "ssl_chain_cert=%s" % p("missing.crt")],
          "Error loading the certificate chain: %s" % p("missing.crt"))
    fails(["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (p("server1.crt"), p("server2.key"))],
          "Error loading the key")
    fails(["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s,ssl_verify_mode=2"
           % (p("server1.crt"), p("server1.key"))], "ssl_ca_cert")
    fails(["-Z", "-o", "ssl_verify_mode=7"], "ssl_verify_mode")
    fails(["-o", "ssl_chain_cert=%s" % p("server1.crt")], "go with -Z")
    fails(["-l", "notls:127.0.0.1"], "notls:HOST:PORT")
    fails(["-Z", "-o", "ssl_chain_cert=%s,ssl_key=%s" % (p("server1.crt"), p("server1.key")),
           "--zk", "127.0.0.1:1", "--cluster", "x", "--group", "1", "--insecure-no-peer-auth"],
          "-Z in a cluster")


def test_libbucketcache_and_the_cli_over_tls():
    """The library (through the CLI's data commands) talks TLS to a -Z
    node: its certificate checked against the CA and the node's address or
    a given name, a client certificate presented when the node asks; a
    wrong CA, a wrong name or a plain client are refused, saying why.  The
    node is standalone; ZooKeeper routes every bucket to it."""
    zk = harness.ZooKeeper()
    req_plain = harness.free_port()
    req = harness.Node("-l", "127.0.0.1,notls:127.0.0.1:%d" % req_plain, "-Z", "-o",
                       "ssl_chain_cert=%s,ssl_key=%s,ssl_ca_cert=%s,ssl_verify_mode=2"
                       % (p("server1.crt"), p("server1.key"), p("ca.crt")))
    try:
        install("server1")
        nb = 8
        owners = ",".join(["1"] * nb)
        for cl, port in (("tlsc", NODE.port), ("tlsreq", req.port)):
            harness.create_cluster(zk, cl, buckets=nb)
            harness.zk_shell(zk, "set", "/bucketcache/%s/tables/c" % cl,
                             '{"table":"c","epoch":1,"buckets":%d,"owners":[%s]}' % (nb, owners))
            harness.zk_shell(zk, "create", "/bucketcache/%s/groups/1" % cl, "{}")
            harness.zk_shell(zk, "create", "/bucketcache/%s/groups/1/primary" % cl,
                             '{"node":"n-1","data":"127.0.0.1:%d","epoch":1}' % port)

        def cli(cl, *args, env=None):
            return harness.cli("--zk", zk.hosts, "--cluster", cl, "--timeout", "3000", *args,
                               env=env)

        ca = ("--tls-ca-file", p("ca.crt"))
        rc, out, err = cli("tlsc", *ca, "set", "lib1", "over tls")
        assert rc == 0, (rc, out, err)
        rc, out, err = cli("tlsc", *ca, "get", "lib1")
        assert rc == 0 and out == "over tls", (rc, out, err)
        # a value far larger than a TLS record, and several keys at once
        big = "b" * 100000
        assert cli("tlsc", *ca, "set", "libbig", big)[0] == 0
        rc, out, err = cli("tlsc", *ca, "get", "libbig")
        assert rc == 0 and out == big, (rc, len(out), err[-500:])
        rc, out, err = cli("tlsc", *ca, "--json", "get", "lib1", "libbig", "nope")
        assert rc in (0, 3) and "over tls" in out and big in out, (rc, out[:300], err)
        # what the library wrote, a TLS client of the node reads
        assert tls_conn(NODE.port).cmd("get lib1") == b"VALUE lib1 0 8\r\nover tls\r\nEND\r\n"
        # the environment, as the CLI's other credentials
        rc, out, err = cli("tlsc", "get", "lib1",
                           env={"BUCKETCACHE_TLS": "1", "BUCKETCACHE_TLS_CA_FILE": p("ca.crt")})
        assert rc == 0 and out == "over tls", (rc, out, err)
        # the name: the certificate lists localhost and 127.0.0.1, not "other"
        assert cli("tlsc", *ca, "--tls-server-name", "localhost", "get", "lib1")[1] == \
            "over tls"
        rc, out, err = cli("tlsc", *ca, "--tls-server-name", "other.example", "get", "lib1")
        assert rc != 0 and "TLS handshake with 127.0.0.1:%d failed" % NODE.port in err \
            and "hostname mismatch" in err, (rc, out, err)
        assert cli("tlsc", *ca, "--tls-server-name", "other.example", "--tls-no-name-check",
                   "get", "lib1")[1] == "over tls"
        # another CA: refused, and the reason is given
        rc, out, err = cli("tlsc", "--tls-ca-file", p("rogue-ca.crt"), "get", "lib1")
        assert rc != 0 and "certificate verify failed" in err and "over tls" not in out, \
            (rc, out, err)
        # a CA file that is not there: a clear error before any traffic
        rc, out, err = cli("tlsc", "--tls-ca-file", p("missing.crt"), "get", "lib1")
        assert rc == 2 and "cannot load the CA file" in err and p("missing.crt") in err, \
            (rc, out, err)
        rc, out, err = cli("tlsc", *ca, "--tls-cert-file", p("client.crt"), "get", "lib1")
        assert rc == 2 and "go together" in err, (rc, out, err)
        # the library without TLS on the TLS port: no answer is taken
        rc, out, err = cli("tlsc", "get", "lib1")
        assert rc != 0 and "over tls" not in out, (rc, out, err)
        # a node that requires client certificates
        rc, out, err = cli("tlsreq", *ca, "--tls-cert-file", p("client.crt"),
                           "--tls-key-file", p("client.key"), "set", "withcert", "yes")
        assert rc == 0, (rc, out, err)
        assert cli("tlsreq", *ca, "--tls-cert-file", p("client.crt"), "--tls-key-file",
                   p("client.key"), "get", "withcert")[1] == "yes"
        rc, out, err = cli("tlsreq", *ca, "get", "withcert")
        assert rc != 0 and "yes" not in out, (rc, out, err)
        assert req.proc.poll() is None and NODE.proc.poll() is None
    finally:
        req.stop()
        zk.stop()


if __name__ == "__main__":
    harness.main(globals())
