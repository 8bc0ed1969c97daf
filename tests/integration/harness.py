"""Shared harness for bucketcache integration tests.

Each tests/integration/test_*.py file is one ctest (one process, with a
timeout).  It defines test_* functions and ends with `harness.main(globals())`,
which runs them in file order and prints "N passed, N failed".

Processes started here (bucketcache-node, memcached, later ZooKeeper and the
console) bind 127.0.0.1 on free ports, log into a per-test temporary
directory, and are stopped when the test process exits, even on failure.
Binaries come from the environment ctest sets (BC_NODE_BIN, MEMCACHED_BIN).
A file that passes removes its directory; one that fails keeps it, says
where, and prints the last lines of its processes' logs.

Timing, since the suite runs on loaded machines and in sanitizer builds:
wait for a condition with wait_for() (its timeout stretched by SLOW), not
for a fixed time; start nodes and consoles with the default session
timeout (SESSION_MS) unless the test measures how fast a failure is
noticed; and bound a measured reaction time with reaction_slack().

The multi-host tests (netns.py) run the same processes inside network
namespaces: Proc, Node, Console, cli and the connection helpers take
ns= (a namespace name under /run/netns) and host= (the address there);
without them everything is on 127.0.0.1 in the test's own namespace.
"""
import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD_DIR = os.environ.get("BC_BUILD_DIR", "build")
SOURCE_DIR = os.environ.get("BC_SOURCE_DIR", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
NODE_BIN = os.environ.get("BC_NODE_BIN", os.path.join(BUILD_DIR, "node", "bucketcache-node"))
CLI_BIN = os.environ.get("BC_CLI_BIN", os.path.join(BUILD_DIR, "client", "bucketcache"))
CONSOLE_BIN = os.environ.get("BC_CONSOLE_BIN",
                             os.path.join(BUILD_DIR, "console", "bucketcache-console"))
MEMCACHED_BIN = os.environ.get("MEMCACHED_BIN") or "/usr/bin/memcached"
SANITIZED = os.environ.get("BC_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE")
# ThreadSanitizer build (BC_TSAN=ON): a process that saw a race prints
# "WARNING: ThreadSanitizer" and goes on; main() fails the test for it.
TSAN = os.environ.get("BC_TSAN", "OFF").upper() in ("ON", "1", "TRUE")
TSAN_WARNING = "WARNING: ThreadSanitizer"
# The suppressions (each with its reason) for libraries TSan cannot see into.
TSAN_OPTIONS = "suppressions=%s:second_deadlock_stack=1" % os.path.join(
    SOURCE_DIR, "tests", "tsan.supp")
# Sanitizer builds are several times slower: stretch every wait.
SLOW = 4.0 if SANITIZED or TSAN else 1.0
# The ZooKeeper session timeout (ms) of nodes and consoles, unless a test
# says otherwise.  A node's write lease runs 3/4 of its session from each
# renewal, renewed every quarter (FENCING in node/cluster/cluster.c): under
# a 2 s session a renewal's round trip -- a starved thread, a ZooKeeper
# JVM fsyncing behind other builds -- late by more than 1 s lets the lease
# lapse, and the primary refuses writes a test expects it to take; a
# session whose pings are late loses its role the same way.  Both happen
# on a loaded machine and in sanitizer builds.  A test that measures how
# fast a failure is noticed passes its own timeout and allows for load;
# every other test uses this one (a test that waits for a session to
# expire then waits longer, never wrongly).
SESSION_MS = int(max(4000, 2000 * SLOW))


def reaction_slack(seconds):
    """What a test that measures how soon something reacts (a standby
    taking over, a write fenced) allows on top of the product's own
    timeout: `seconds` on an idle machine in a normal build, stretched for
    sanitizers and by how many runnable threads share each core now (the
    1-minute load average; other builds and tests on a shared machine)."""
    try:
        load = os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        load = 1.0
    return seconds * SLOW * max(1.0, load) + 1.0


# Races seen in the output of processes that are not Procs (cli(), ...).
_tsan_reports = []


def tsan_check(name, output):
    """Records a ThreadSanitizer report in a child's output; main() fails on it."""
    if TSAN and output and TSAN_WARNING in output:
        _tsan_reports.append((name, output[-8000:]))

TMP = tempfile.mkdtemp(prefix="bc-it-")
_procs = []

_CLONE_NEWNET = 0x40000000
_libc = None


def _setns(fd):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: " + os.strerror(e))


@contextlib.contextmanager
def in_netns(ns):
    """Runs the body with the calling thread in network namespace ns (a name
    under /run/netns; None: stay where it is).  A namespace is a property of
    the thread, so other threads are not affected, and a socket created in
    the body stays in ns after it."""
    if ns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open("/run/netns/" + ns, os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def connect(host, port, timeout, ns=None):
    """A TCP connection to host:port made from namespace ns."""
    with in_netns(ns):
        return socket.create_connection((host, port), timeout=timeout)


def in_ns_argv(ns, argv):
    """argv run inside namespace ns, killed when the test process dies
    (a process left behind would keep its namespace alive)."""
    if ns is None:
        return list(argv)
    return ["setpriv", "--pdeathsig", "KILL", "ip", "netns", "exec", ns] + list(argv)


def write_secret(path, *values):
    """A secret file (common/bc_secret.h format) only its owner may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(v + "\n" for v in values))
    os.chmod(path, 0o600)
    return path


# The cluster secret every node of a test's clusters shares
# (docs/security.md): nodes started with --zk get --cluster-secret-file
# unless their args already say how they authenticate peers.
CLUSTER_SECRET = os.urandom(32).hex()
CLUSTER_SECRET_FILE = write_secret(os.path.join(TMP, "cluster-secret"), CLUSTER_SECRET)


def peer_proof(role, fields, secret=None):
    """HMAC-SHA256 proof of `role` ("server" or "client") over fields, as
    common/bc_peerauth.c computes it."""
    import hashlib
    import hmac
    msg = "\n".join(["bucketcache-peer-auth-v1", role] + list(fields))
    return hmac.new((secret or CLUSTER_SECRET).encode(), msg.encode(),
                    hashlib.sha256).hexdigest()


def peer_handshake(conn, name="tester", secret=None, line=None):
    """Opens conn (an McConn) as another node does: "bucketcache_peer NAME
    NONCE" (or `line`, a replication handshake with its nonce), the node's
    challenge checked, our proof sent.  Returns (lines sent, the challenge
    line, the answer line: b"OK\r\n" for a peer; None for a replication
    handshake, whose answer is a frame)."""
    if line is None:
        line = "bucketcache_peer %s %s" % (name, os.urandom(16).hex())
    conn.send(line + "\r\n")
    challenge = conn.readline()
    parts = challenge.decode().split()
    if len(parts) != 4 or parts[0] != "BUCKETCACHE_CHALLENGE":
        return [line], challenge, None
    fields = [line, parts[1], parts[2]]
    assert peer_proof("server", fields, secret) == parts[3] or secret not in (None, CLUSTER_SECRET), \
        "the node's proof does not check out"
    auth = "bucketcache_auth " + peer_proof("client", fields, secret)
    conn.send(auth + "\r\n")
    answer = conn.readline() if line.startswith("bucketcache_peer ") else None
    return [line, auth], challenge, answer


def peer_signed(method, target, name="n-tester", secret=None):
    """The header another node signs an admin-port request with (the
    migration export; common/bc_peerauth.h): {"X-Bucketcache-Peer": ...}."""
    ts = str(int(time.time() * 1000))
    n = os.urandom(16).hex()
    proof = peer_proof("client", ["http-request", method, target, name, ts, n], secret)
    return {"X-Bucketcache-Peer": "%s %s %s %s" % (name, ts, n, proof)}


def challenge_for(line, name="fake", secret=None):
    """The challenge a node holding the secret answers handshake `line`
    (without its CRLF) with: what a fake node in a test sends back."""
    snonce = os.urandom(16).hex()
    if isinstance(line, bytes):
        line = line.decode()
    proof = peer_proof("server", [line, name, snonce], secret)
    return ("BUCKETCACHE_CHALLENGE %s %s %s\r\n" % (name, snonce, proof)).encode()


def secret_args(args=()):
    """["--cluster-secret-file", FILE] for a node of a cluster whose args
    do not choose already; [] otherwise."""
    args = list(args)
    if "--zk" not in args and not any(a.startswith("--zk=") for a in args):
        return []
    for a in args:
        if a.split("=")[0] in ("--cluster-secret-file", "--insecure-no-peer-auth"):
            return []
    return ["--cluster-secret-file", CLUSTER_SECRET_FILE]


_ports_given = set()
_port_locks = []          # open lock files: a port stays ours while they are
_PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "bc-test-ports")


def _port_range():
    """The ports free_port picks from, beside the kernel's ephemeral range
    (net.ipv4.ip_local_port_range), where no connection's own end and no
    bind(0) lands: above it (61000-65535 on Debian), clear of the range
    below it that test_deploy's local cluster picks from; below it only
    when too little is left above."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    if 65536 - (hi + 1) >= 2000:
        return hi + 1, 65536
    return 10000, lo


def free_port(host="127.0.0.1"):
    """A TCP port free on host right now, that no other test running at
    the same time is given (ctest runs several), and never one this test
    has been given before.

    BEHAVIOR: the port is bound later by a process the test starts, so
    between the pick and that bind nothing else may take it.  A bind(0)
    port lies in the ephemeral range, which every outgoing connection of
    every process on the machine draws from too, and two tests' bind(0)
    may return the same closed port: under ctest -j4 a node then found its
    port in use.  So ports come from outside that range, and each is held
    by an flock on a file named after it until this test process ends
    (the kernel drops the lock if it dies)."""
    lo, hi = _port_range()
    os.makedirs(_PORT_LOCK_DIR, exist_ok=True)
    rng = random.Random(os.getpid() * 1000003 + time.time_ns())
    for _ in range(512):
        port = rng.randrange(lo, hi)
        if port in _ports_given:
            continue
        fd = os.open(os.path.join(_PORT_LOCK_DIR, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((host, port))
        except OSError:
            os.close(fd)          # in use by something that takes no lock
            continue
        _port_locks.append(fd)
        _ports_given.add(port)
        return port
    raise RuntimeError("no free port in %d-%d after 512 tries" % (lo, hi - 1))


def rss_kib(pid):
    """The resident set size of a process, in KiB (/proc/PID/status VmRSS)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def wait_port(port, timeout=10.0, proc=None, host="127.0.0.1", ns=None):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" %
                               (proc.returncode, port))
        try:
            with connect(host, port, 0.5, ns):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listening on port %d" % port)


class Proc:
    """A child process whose output goes to a log file in TMP; with ns, run
    inside that network namespace (same pid: `ip netns exec` execs)."""

    def __init__(self, name, argv, env=None, ns=None):
        self.name = name
        self.ns = ns
        argv = in_ns_argv(ns, argv)
        self.argv = argv
        self.log_path = os.path.join(TMP, "%s-%d.log" % (name, len(_procs)))
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        e.setdefault("TSAN_OPTIONS", TSAN_OPTIONS)
        if env:
            e.update(env)
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=e)
        _procs.append(self)

    def poll(self):
        return self.p.poll()

    @property
    def returncode(self):
        return self.p.returncode

    @property
    def pid(self):
        return self.p.pid

    def signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit code (SIGKILL after timeout)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


@atexit.register
def _cleanup():
    for pr in _procs:
        try:
            pr.kill()
        except Exception:
            pass


def print_log_tails(procs, nbytes=1500):
    """Prints the last nbytes of each process's log, with its path."""
    for pr in procs:
        try:
            tail = pr.output()[-nbytes:]
        except OSError as e:
            tail = "(unreadable: %s)" % e
        print("--- last lines of %s (%s):\n%s" % (pr.name, pr.log_path, tail), flush=True)


def _excepthook(kind, value, tb):
    """A test file that fails before main() -- in the setup it shares among
    its tests, a cluster started at import -- shows its processes' logs
    too, not only the traceback."""
    sys.__excepthook__(kind, value, tb)
    print_log_tails(_procs)
    print("logs kept in %s" % TMP, flush=True)


sys.excepthook = _excepthook


class Node:
    """A running bucketcache-node (standalone unless args say otherwise)."""

    # How much slower than a plain build this build answers: the factor a
    # wait on this server stretches by (a sanitized build is several times
    # slower).
    slow = SLOW

    def __init__(self, *args, threads=2, memory_mb=64, env=None, wait=True, port=None,
                 admin_port=None, host=None, ns=None, name="node"):
        # host: listen, admin and advertised address (inside ns)
        self.host = host or "127.0.0.1"
        self.ns = ns
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        argv = [NODE_BIN, "-l", self.host, "-p", str(self.port),
                "--admin-port", str(self.admin_port),
                "-t", str(threads), "-m", str(memory_mb)]
        if host:
            argv += ["--admin-listen", host, "--advertise", host]
        argv += list(args) + secret_args(args)
        self.admin_tls = admin_tls_context(args)
        self.proc = Proc(name, argv, env=env, ns=ns)
        if wait:
            wait_port(self.port, proc=self.proc.p, host=self.host, ns=ns)
            wait_port(self.admin_port, proc=self.proc.p, host=self.host, ns=ns)
            self.wait_started()

    def wait_started(self, timeout=10.0):
        """Until the node has logged "ready:" (its workers and admin server
        started).  Both ports take connections earlier, from their listen
        backlogs, so a test that limits the node's descriptors or stops it
        right after they answer could catch it half started.  Only when the
        log is at info level (its first line, "starting", is info)."""
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            out = self.proc.output()
            if " starting (pid " not in out or "] ready: " in out:
                return
            if self.proc.poll() is not None:
                raise RuntimeError("node exited with %s while starting" % self.proc.returncode)
            time.sleep(0.02)
        raise RuntimeError("node did not log ready: in %.0f s" % (timeout * SLOW))

    def conn(self, timeout=5.0):
        return McConn(self.port, timeout, host=self.host, ns=self.ns)

    def admin_json(self, path, method="GET", body=None, timeout=5.0):
        """(status, JSON) of a request to the node's admin port."""
        return http_json(self.admin_port, method, path, body=body, timeout=timeout,
                         host=self.host, ns=self.ns, tls=self.admin_tls)

    def stats(self, sub=""):
        """The node's `stats [sub]` as a dict of name -> value (text)."""
        c = self.conn()
        try:
            return c.stats(sub)
        finally:
            c.close()

    def stop(self):
        return self.proc.stop()


class Memcached:
    """A real memcached 1.6 on a free port, for side-by-side comparison."""

    # The Debian build, never sanitized whatever this build is.
    slow = 1.0

    def __init__(self, *args, threads=2, memory_mb=64):
        self.port = free_port()
        argv = [MEMCACHED_BIN, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
                "-t", str(threads), "-m", str(memory_mb)] + list(args)
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        self.proc = Proc("memcached", argv)
        wait_port(self.port, proc=self.proc.p)

    def conn(self, timeout=5.0):
        return McConn(self.port, timeout)

    def stop(self):
        return self.proc.stop()


class McConn:
    """A raw memcached text-protocol connection."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1", ns=None):
        self.sock = connect(host, port, timeout * SLOW, ns)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def readline(self):
        """One reply line including its CRLF."""
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_reply(self):
        """One complete reply: VALUE/STAT/ITEM blocks through END, or a single
        line.  Returns bytes exactly as received."""
        line = self.readline()
        if not line.startswith((b"VALUE ", b"STAT ", b"ITEM ")):
            return line
        out = line
        while True:
            if line.startswith(b"VALUE "):
                out += self.read_exact(int(line.split()[3]) + 2)
            line = self.readline()
            out += line
            if line == b"END\r\n":
                return out

    def closed_by_peer(self, timeout=2.0):
        """True when the server has closed the connection (EOF) within timeout."""
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def cmd(self, line, data=None):
        """Send a command (and its data block) and return the reply."""
        payload = line.encode() if isinstance(line, str) else line
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        if data is not None:
            payload += (data.encode() if isinstance(data, str) else data) + b"\r\n"
        self.send(payload)
        return self.read_reply()

    def stats(self, sub=""):
        """`stats [sub]` as a dict of name -> value (text)."""
        self.send(("stats %s" % sub if sub else "stats") + "\r\n")
        out = {}
        while True:
            line = self.readline()
            if line == b"END\r\n":
                return out
            _, name, value = line.decode().rstrip("\r\n").split(" ", 2)
            out[name] = value


def admin_tls_context(args):
    """The ssl context a node's admin port needs (it serves HTTPS when run
    with -Z in a cluster: the CA of -o ssl_ca_cert), or None."""
    args = list(args)
    if "-Z" not in args or "--zk" not in args:
        return None
    import ssl
    for i, a in enumerate(args[:-1]):
        if a == "-o":
            for opt in args[i + 1].split(","):
                if opt.startswith("ssl_ca_cert="):
                    return ssl.create_default_context(cafile=opt[len("ssl_ca_cert="):])
    return None


def http(port, method, path, body=None, headers=None, timeout=5.0, host="127.0.0.1", ns=None,
         tls=None):
    """A tiny HTTP/1.1 client: returns (status, headers dict, body bytes).
    With tls (an ssl.SSLContext): HTTPS."""
    import http.client
    if tls is not None:
        c = http.client.HTTPSConnection(host, port, timeout=timeout * SLOW, context=tls)
    else:
        c = http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    with in_netns(ns):
        c.connect()
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def main(namespace):
    """Runs every test_* function of the calling module in definition order."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    passed = failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        t0 = time.time()
        started_before = len(_procs)
        try:
            fn()
            passed += 1
            print("PASS %s (%.2fs)" % (name, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s (%.2fs)" % (name, time.time() - t0), flush=True)
            traceback.print_exc()
            # what the test started, or else what the file shares (a
            # cluster started at import)
            print_log_tails(_procs[started_before:] or
                            [pr for pr in _procs if pr.poll() is None])
            # What a failed test started must not leak into the next one
            # (a console left running would win the next election).
            for pr in _procs[started_before:]:
                if pr.poll() is None and pr.name != "zookeeper":
                    pr.kill()
    for pr in _procs:
        if pr.poll() is not None and pr.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL):
            print("process %s exited with %s; log %s:\n%s" %
                  (pr.name, pr.returncode, pr.log_path, pr.output()[-4000:]))
        tsan_check("%s (%s)" % (pr.name, pr.log_path), pr.output())
    for name, out in _tsan_reports:
        failed += 1
        print("FAIL ThreadSanitizer report in %s:\n%s" % (name, out), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    _cleanup()
    if failed:
        print("logs kept in %s" % TMP, flush=True)
    else:
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(1 if failed else 0)


ZK_CLASSPATH = os.environ.get(
    "BC_ZK_CLASSPATH",
    "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:"
    "/usr/share/java/slf4j-api.jar:/usr/share/java/slf4j-simple.jar")


def four_letter(port, word, timeout=1.0, host="127.0.0.1", ns=None):
    """Sends a ZooKeeper four-letter word; returns the reply text or ''."""
    try:
        with connect(host, port, timeout, ns) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out.decode("utf-8", "replace")
    except OSError:
        return ""


class ZooKeeper:
    """A real standalone ZooKeeper server (Debian package) on a free port.

    Ready when `srvr` reports a Mode: line (a server answers `imok` before it
    can serve sessions).  restart() keeps the data directory, so znodes
    survive like they would across a real server restart."""

    def __init__(self, tick_ms=500):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="zk-", dir=TMP)
        os.makedirs(os.path.join(self.dir, "data"))
        with open(os.path.join(self.dir, "zoo.cfg"), "w") as f:
            f.write("tickTime=%d\ninitLimit=10\nsyncLimit=5\n"
                    "dataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
                    "admin.enableServer=false\n4lw.commands.whitelist=*\n"
                    "maxSessionTimeout=60000\nminSessionTimeout=%d\n"
                    % (tick_ms, os.path.join(self.dir, "data"), self.port, 2 * tick_ms))
            # Benchmarks may ask for a ZooKeeper that does not fsync its
            # log (BC_ZK_FORCE_SYNC=no), to measure bucketcache rather than
            # the machine's disk; tests always run the default.
            if os.environ.get("BC_ZK_FORCE_SYNC") == "no":
                f.write("forceSync=no\n")
        self.proc = None
        self.start()

    @property
    def hosts(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=60.0):
        argv = ["java", "-Xmx256m", "-cp", ZK_CLASSPATH,
                "-Dzookeeper.log.dir=" + self.dir,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                os.path.join(self.dir, "zoo.cfg")]
        self.proc = Proc("zookeeper", argv)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("zookeeper exited: " + self.proc.output()[-2000:])
            if "Mode:" in four_letter(self.port, "srvr"):
                return
            time.sleep(0.2)
        raise RuntimeError("zookeeper not ready on port %d" % self.port)

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc = None

    def restart(self):
        self.stop()
        self.start()


def cli(*args, env=None, timeout=30.0, ns=None):
    """Runs the bucketcache CLI (in namespace ns); returns (exit code,
    stdout, stderr) as text."""
    e = dict(os.environ)
    if env:
        e.update(env)
    e.setdefault("TSAN_OPTIONS", TSAN_OPTIONS)
    r = subprocess.run(in_ns_argv(ns, [CLI_BIN] + list(args)), capture_output=True, text=True,
                       env=e, timeout=timeout * SLOW, stdin=subprocess.DEVNULL)
    tsan_check("cli " + " ".join(args), r.stderr)
    return r.returncode, r.stdout, r.stderr


def http_json(port, method, path, body=None, timeout=5.0, host="127.0.0.1", ns=None,
              headers=None, tls=None):
    """(status, parsed JSON body) of an HTTP request to host:port (in ns)."""
    import json
    status, _, data = http(port, method, path, body=body, headers=headers, timeout=timeout,
                           host=host, ns=ns, tls=tls)
    return status, json.loads(data.decode() or "null")


def wait_for(predicate, timeout=15.0, interval=0.1, what="condition"):
    """Polls predicate() until it returns a truthy value; returns it."""
    deadline = time.time() + timeout * SLOW
    last_exc = None
    while time.time() < deadline:
        try:
            v = predicate()
            if v:
                return v
        except Exception as e:  # the thing polled may not be up yet
            last_exc = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last_exc))


def create_cluster(zk, name="test", buckets=64):
    rc, out, err = cli("--zk", zk.hosts, "--cluster", name, "cluster", "create",
                       "--buckets", str(buckets))
    assert rc == 0, (rc, out, err)
    return name


def tables(zk, cluster):
    import json
    rc, out, err = cli("--zk", zk.hosts, "--cluster", cluster, "tables", "--json")
    assert rc == 0, (rc, out, err)
    return json.loads(out)


class Console:
    """A running bucketcache-console.

    Bucket migration is off unless migrations=True (or the args set
    --migrations-parallel): most tests want tables that change only when
    they say so, and a group added to them owning nothing until asked."""

    def __init__(self, zk, cluster, *args, session_timeout_ms=SESSION_MS, wait=True, migrations=False,
                 host=None, ns=None, admin_port=None, env=None, name="console", token=None):
        self.zk = zk
        self.cluster = cluster
        self.host = host or "127.0.0.1"
        self.ns = ns
        self.token = token       # the admin token, when --auth-token-file is among args
        self.admin_port = admin_port or free_port()
        argv = [CONSOLE_BIN, "--zk", zk.hosts, "--cluster", cluster,
                "--admin-port", str(self.admin_port),
                "--session-timeout-ms", str(session_timeout_ms)]
        if host:
            argv += ["--admin-listen", host, "--advertise", host]
        argv += list(args)
        if not migrations and "--migrations-parallel" not in args:
            argv += ["--migrations-parallel", "0"]
        self.proc = Proc(name, argv, env=env, ns=ns)
        if wait:
            wait_port(self.admin_port, proc=self.proc.p, host=self.host, ns=ns)
            # joined the election: consoles started later queue behind it
            wait_for(lambda: self.health()["election_node"], what="console in the election")

    def api(self, method, path, body=None, timeout=5.0):
        """(status, JSON) of a request to the console's HTTP API."""
        return http_json(self.admin_port, method, path, body=body, timeout=timeout,
                         host=self.host, ns=self.ns)

    def health(self):
        if self.token is None:
            return self.api("GET", "/health")[1]
        import json
        data = http(self.admin_port, "GET", "/health",
                    headers={"Authorization": "Bearer " + self.token},
                    host=self.host, ns=self.ns)[2]
        return json.loads(data.decode() or "null")

    def is_active(self):
        try:
            return self.health()["role"] == "active"
        except Exception:
            return False

    def stop(self):
        return self.proc.stop()

    def kill(self):
        self.proc.kill()


class ClusterNode(Node):
    """A bucketcache-node registered in a cluster group."""

    def __init__(self, zk, cluster, group, *args, session_timeout_ms=SESSION_MS, **kw):
        self.group = group
        super().__init__("--zk", zk.hosts, "--cluster", cluster, "--group", str(group),
                         "--zk-session-timeout-ms", str(session_timeout_ms), *args, **kw)
        if kw.get("wait", True):
            # The ports listen before the node joins: wait until it is in its
            # group, so a console started next sees it in its first rebalance.
            wait_for(lambda: self.admin_json("/stats")[1]
                     .get("cluster", {}).get("registrations", 0) >= 1,
                     what="node of group %d registered" % group)


def murmur3_32(data, seed=0):
    """MurmurHash3_x86_32, as docs/hashing.md specifies for key -> bucket."""
    if isinstance(data, str):
        data = data.encode()
    c1, c2, h = 0xcc9e2d51, 0x1b873593, seed
    n = len(data) // 4
    for i in range(n):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * c1) & 0xffffffff
        k = ((k << 15) | (k >> 17)) & 0xffffffff
        k = (k * c2) & 0xffffffff
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xffffffff
        h = (h * 5 + 0xe6546b64) & 0xffffffff
    tail = data[4 * n:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & 0xffffffff
        k = ((k << 15) | (k >> 17)) & 0xffffffff
        k = (k * c2) & 0xffffffff
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85ebca6b) & 0xffffffff
    h ^= h >> 13
    h = (h * 0xc2b2ae35) & 0xffffffff
    h ^= h >> 16
    return h


def bucket_of(key, nbuckets):
    return murmur3_32(key) % nbuckets


def key_in_bucket_owned_by(table, gid, prefix="k", nbuckets=None):
    """A key whose bucket the table assigns to gid."""
    n = nbuckets or len(table)
    for i in range(100000):
        k = "%s%d" % (prefix, i)
        if table[bucket_of(k, n)] == gid:
            return k
    raise AssertionError("no key for group %d" % gid)


def zk_shell(zk, *args, timeout=60, ns=None):
    """Runs one command of ZooKeeper's own shell (zkCli) against zk."""
    r = subprocess.run(in_ns_argv(ns, ["java", "-cp", ZK_CLASSPATH,
                                       "org.apache.zookeeper.ZooKeeperMain",
                                       "-server", zk.hosts] + list(args)),
                       capture_output=True, text=True, timeout=timeout * SLOW)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def freeze(node):
    """SIGSTOP node (anything with .proc), and wait until every thread has
    really stopped: the signal is asynchronous, and on a busy machine a
    thread may go on answering requests or acknowledging records for
    milliseconds.  thaw() undoes it."""
    node.proc.signal(signal.SIGSTOP)
    tasks = "/proc/%d/task" % node.proc.pid

    def stopped():
        for t in os.listdir(tasks):
            with open(os.path.join(tasks, t, "stat")) as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                    return False
        return True
    wait_for(stopped, interval=0.01, what="the process stopped")


def thaw(node):
    node.proc.signal(signal.SIGCONT)


def zk_get(zk, path):
    """The data of the znode at path (ours are JSON objects), read with
    zkCli.  Its output around the data varies (session and watcher lines
    can come after it on a busy machine), so the data is the last line
    that opens an object."""
    for _ in range(3):       # zkCli on a loaded machine: once more if it printed no data
        out = zk_shell(zk, "get", path)
        lines = [x for x in out.splitlines() if x.startswith("{")]
        if lines:
            return lines[-1]
    raise AssertionError("no JSON in zkCli's answer for %s: %r" % (path, out[-2000:]))


CLIENT_TRAFFIC_BIN = os.environ.get("BC_CLIENT_TRAFFIC_BIN",
                                    os.path.join(BUILD_DIR, "client", "bucketcache_client_traffic"))


class ClientTraffic:
    """bucketcache_client_traffic (sets and checked reads through
    libbucketcache from several threads), its JSON report lines collected by
    a thread.  stop() asserts that no read ever returned a wrong value."""

    def __init__(self, zk, cluster, *args):
        argv = [CLIENT_TRAFFIC_BIN, "--zk", zk.hosts, "--cluster", cluster, "--duration", "600",
                "--report-ms", "200", "--timeout", str(int(1500 * SLOW))] + list(args)
        e = dict(os.environ)
        e.setdefault("TSAN_OPTIONS", TSAN_OPTIONS)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=e)
        self.reports = []
        self.err = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.t2 = threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True)
        self.t2.start()

    def _read(self):
        for line in self.p.stdout:
            self.reports.append(json.loads(line))

    def last(self):
        wait_for(lambda: self.reports, what="a traffic report")
        return self.reports[-1]

    def wait_progress(self, n=200, what="traffic progress", timeout=15):
        """Waits until n more reads succeed than now."""
        base = self.last()["get_ok"]
        return wait_for(lambda: self.reports[-1]["get_ok"] >= base + n, timeout=timeout,
                                what=what)

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30 * SLOW)
        self.t.join(timeout=5)
        self.t2.join(timeout=5)
        tsan_check("bucketcache_client_traffic", "".join(self.err))
        final = self.reports[-1]
        assert final.get("final"), final
        assert final["wrong"] == 0, (final, "".join(self.err)[-3000:])
        assert self.p.returncode == 0, (self.p.returncode, "".join(self.err)[-3000:])
        return final


def repl(node, timeout=5.0):
    """A cluster node's replication state (GET /v1/repl)."""
    return node.admin_json("/v1/repl", timeout=timeout)[1]


def wait_primary(node, timeout=15, what=None):
    """Waits until `node` serves writes as its group's primary."""
    wait_for(lambda: (lambda r: r["role"] == "primary" and r["writable"])(repl(node)),
             timeout=timeout, what=what or "node on port %d primary and writable" % node.port)


def wait_recorded(primary, backup, timeout=15):
    """Waits until `backup` is in the in-sync set `primary` recorded in
    ZooKeeper (and so writes are accepted again, if they waited for it)."""
    name = repl(backup)["node"]
    try:
        wait_for(lambda: (lambda r: r["role"] == "primary" and name in r["in_sync"]["members"]
                          and not r["in_sync"]["writes_refused"])(repl(primary)),
                 timeout=timeout,
                 what="backup %s in the in-sync set of port %d" % (name, primary.port))
    except AssertionError as e:
        raise AssertionError("%s; primary: %r; backup: %r" % (e, repl(primary), repl(backup)))


def wait_tables(zk, cluster, pred, what, timeout=15):
    """Polls the cluster's tables until pred(tables) holds; returns them."""
    return wait_for(lambda: (lambda t: t if pred(t) else None)(tables(zk, cluster)),
                    timeout=timeout, what=what)


# ---- Prometheus text (GET /metrics) ----

_METRIC_SAMPLE = None


def parse_metrics(text):
    """Checks the exposition format the way a scraper reads it and returns
    (values, types): values maps 'name' or 'name{k="v",...}' (labels in
    the order given) to a float, types maps each family to its TYPE.  Every
    family's HELP and TYPE come before its samples, once."""
    import re
    global _METRIC_SAMPLE
    if _METRIC_SAMPLE is None:
        _METRIC_SAMPLE = re.compile(
            r'^(bucketcache_[a-z0-9_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? '
            r'(-?[0-9.e+-]+|NaN|[+-]Inf)$')
    values, helps, types, done = {}, set(), {}, set()
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helps, "second HELP for " + name
            helps.add(name)
            if current is not None:
                done.add(current)
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("counter", "gauge", "histogram", "summary"), line
            assert name not in types, "second TYPE for " + name
            types[name] = kind
        else:
            m = _METRIC_SAMPLE.match(line)
            assert m, "malformed sample: " + line
            name = m.group(1)
            family = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and name[:-len(suffix)] in types and \
                        types[name[:-len(suffix)]] in ("histogram", "summary"):
                    family = name[:-len(suffix)]
            assert family in helps and family in types, "sample before HELP/TYPE: " + line
            assert family == current, "family %s split up: %s" % (family, line)
            key = name + (m.group(2) or "")
            assert key not in values, "duplicate sample " + key
            values[key] = float(m.group(3))
    return values, types


def promtool_check(text):
    """`promtool check metrics` on text: returns its complaints ("" = clean).
    promtool ships in Debian's prometheus package (deploy/install-deps.sh)."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode(errors="replace").strip()
    return out if p.returncode != 0 or out else ""


def set_primary_addr(zk, cluster, gid, addr):
    """Rewrites the data address in group gid's primary record (the node
    name stays, so the console leaves it alone): where every other node
    forwards that group's keys, e.g. to a fake owner.  Returns the old one."""
    import json
    path = "/bucketcache/%s/groups/%d/primary" % (cluster, gid)
    rec = json.loads(zk_get(zk, path))
    old = rec["data"]
    rec["data"] = addr
    zk_shell(zk, "set", path, json.dumps(rec, separators=(",", ":")))
    return old
