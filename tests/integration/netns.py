"""A multi-host topology in network namespaces, for fault tests.

On loopback a process killed with -9 still has its kernel deliver what it
had written, and nothing can be cut between two processes: loss that would
happen between machines cannot show.  This rig gives every "host" (a node,
a ZooKeeper server, a console, a client) its own network namespace with its
own address, so links between them can be cut, made lossy or slow.

    rig = netns.Rig()                    # needs root and `ip netns`
    a = rig.add_host("g1a", 111)         # namespace <run>-g1a, 10.201.0.111
    zk = netns.ZkEnsemble(rig)           # 3 servers, zk1..zk3
    rig.cut("g1a", "g1b")                # both ways
    rig.cut_oneway("g1a", "zk1")         # g1a's packets to zk1 vanish
    rig.isolate("g1a", ["zk1", "zk2", "zk3"])
    rig.loss("g1a", "g1b", 5)            # 5 % of packets each way
    rig.delay("g1a", "g1b", 40)          # +40 ms each way (a proxy, see below)
    rig.bandwidth("g1a", 2000)           # egress 2000 kbit/s (tc tbf)
    rig.heal()                           # every fault; heal(a, b) one link

LAYOUT.  A namespace <run>-br holds a bridge; each host namespace holds one
end of a veth pair (eth0, 10.201.0.N/24) whose other end is a port of the
bridge.  The pairs are created inside the namespaces (`ip -n BR link add
... peer ... netns HOST`), so nothing -- no address, no link, no route --
is ever added to the namespace the test runs in.  The test reaches a
process by entering its host's namespace for the one socket it opens
(harness.in_netns), where nothing is ever cut.

FAULTS are iptables rules (nft backend) in the receiving hosts' INPUT
path, in a chain BCRIG of their own: a cut drops what one host receives
from the other, so the sender's packets leave and vanish as on a real
partition (rules on OUTPUT would fail the sender's calls with EPERM at
once, which no real network does).  Loss is the same with `-m statistic
--mode random`.  The kernel here has no netem qdisc ("Specified qdisc kind
is unknown"), so delay comes from delayproxy.py, a transparent user-space
proxy a nat REDIRECT rule puts on the path of the TCP connections a host
opens to the peer: it delays each direction by the given time.  It applies
to connections opened after the call (set it up before the processes
connect); tc tbf limits bandwidth.

CLEANUP.  Every namespace of a run is named <prefix><pid>-<host>.  On exit
(normal, an exception, SIGTERM, SIGINT, SIGHUP) the rig kills what runs in
its namespaces and deletes them; processes started through harness.Proc
with ns= also die with the test process (PR_SET_PDEATHSIG).  A run killed
with SIGKILL leaves its namespaces behind: the next Rig() deletes every
namespace with the prefix whose pid is gone.
"""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness

PREFIX = "bcmh"
SUBNET = "10.201.0"          # /24, private, only ever inside the rig's namespaces
CHAIN = "BCRIG"
PROXY_MARK = 0x62
PROXY_PORT = 17000
SKIP = 77                    # the exit code ctest counts as skipped


def run(argv, check=True, timeout=30):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                                 (r.stderr or r.stdout).strip()[-500:]))
    return r


def unavailable():
    """Why the rig cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "not root (network namespaces need CAP_SYS_ADMIN)"
    for tool in ("ip", "iptables", "iptables-restore", "tc", "setpriv"):
        if shutil.which(tool) is None:
            return "%s not found (deploy/install-deps.sh installs it)" % tool
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    r = run(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        return "`ip netns add` failed: %s" % r.stderr.strip()
    try:
        r = run(["ip", "netns", "exec", probe, "iptables", "-L", "INPUT", "-n"], check=False)
        if r.returncode != 0:
            return "iptables does not work in a namespace: %s" % r.stderr.strip()
    finally:
        run(["ip", "netns", "del", probe], check=False)
    return None


def skip_unless_available():
    """Exits with the skip code, saying why, when the rig cannot run."""
    why = unavailable()
    if why:
        print("SKIP: multi-host rig unavailable: %s" % why, flush=True)
        sys.exit(SKIP)


def _namespaces():
    r = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _delete_namespace(ns):
    """Kills whatever runs in ns, then deletes it."""
    r = run(["ip", "netns", "pids", ns], check=False)
    for pid in r.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    run(["ip", "netns", "del", ns], check=False)


def cleanup_stale(prefix=PREFIX):
    """Deletes the namespaces of earlier runs (named <prefix><pid>-...) whose
    process is gone.  Runs in progress, here or in another checkout, keep
    theirs.  Returns the names deleted."""
    gone = []
    for ns in _namespaces():
        m = re.match(r"^%s(\d+)-" % re.escape(prefix), ns)
        if m and not _pid_alive(int(m.group(1))):
            _delete_namespace(ns)
            gone.append(ns)
    return gone


class Host:
    def __init__(self, rig, name, octet):
        self.rig = rig
        self.name = name
        self.ns = "%s-%s" % (rig.run_id, name)
        self.ip = "%s.%d" % (SUBNET, octet)
        self.proxy = None          # its delay proxy (Rig.delay)
        self.tbf = False           # a bandwidth limit on its eth0 (Rig.bandwidth)

    def __repr__(self):
        return "%s(%s)" % (self.name, self.ip)

    def sh(self, *argv, check=True):
        """Runs a command inside this host's namespace."""
        return run(["ip", "netns", "exec", self.ns] + list(argv), check=check)


class Rig:
    """One run's namespaces: a bridge and the hosts added to it."""

    def __init__(self, prefix=PREFIX):
        cleanup_stale(prefix)
        self.run_id = "%s%d" % (prefix, os.getpid())
        self.hosts = {}
        self.rules = []            # (host name, rule spec) in CHAIN
        self.closed = False
        self.br_ns = self.run_id + "-br"
        atexit.register(self.close)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        run(["ip", "netns", "add", self.br_ns])
        run(["ip", "-n", self.br_ns, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.br_ns, "link", "set", "br0", "up"])

    def _on_signal(self, sig, frame):
        # SystemExit unwinds the test and runs the atexit handlers (close).
        sys.exit(128 + sig)

    def add_host(self, name, octet):
        """A host namespace with address SUBNET.octet on the bridge."""
        assert name not in self.hosts and re.match(r"^[a-z0-9]{1,8}$", name), name
        h = Host(self, name, octet)
        port = "p%d" % octet
        run(["ip", "netns", "add", h.ns])
        self.hosts[name] = h
        run(["ip", "-n", self.br_ns, "link", "add", port, "type", "veth",
             "peer", "name", "eth0", "netns", h.ns])
        run(["ip", "-n", self.br_ns, "link", "set", port, "master", "br0", "up"])
        run(["ip", "-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"])
        run(["ip", "-n", h.ns, "link", "set", "eth0", "up"])
        run(["ip", "-n", h.ns, "link", "set", "lo", "up"])
        h.sh("iptables", "-N", CHAIN)
        h.sh("iptables", "-A", "INPUT", "-j", CHAIN)
        return h

    def host(self, name):
        return name if isinstance(name, Host) else self.hosts[name]

    def _names(self, x):
        if x is None:
            return list(self.hosts)
        if isinstance(x, (str, Host)):
            x = [x]
        return [self.host(h).name for h in x]

    # ---- faults ----

    def _apply(self, adds):
        """Adds rules {host: [spec, ...]} to CHAIN, each host's in one
        iptables-restore call, all hosts at once (a cut should start at one
        moment, not spread over a second of calls)."""
        procs = []
        for name, specs in adds.items():
            if not specs:
                continue
            text = "*filter\n" + "".join("-A %s %s\n" % (CHAIN, s) for s in specs) + "COMMIT\n"
            p = subprocess.Popen(["ip", "netns", "exec", self.hosts[name].ns,
                                  "iptables-restore", "--noflush"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            procs.append((p, text))
            self.rules.extend((name, s) for s in specs)
        for p, text in procs:
            out, err = p.communicate(text, timeout=30)
            if p.returncode != 0:
                raise RuntimeError("iptables-restore: " + err.strip())

    def cut_oneway(self, src, dst):
        """Packets from each src host to each dst host are dropped (dst's
        packets to src still arrive)."""
        adds = {}
        for d in self._names(dst):
            adds[d] = ["-s %s -j DROP" % self.hosts[s].ip for s in self._names(src) if s != d]
        self._apply(adds)

    def cut(self, a, b):
        """Cuts every host of a from every host of b, both ways."""
        adds = {}
        for x, y in ((a, b), (b, a)):
            for d in self._names(y):
                adds.setdefault(d, []).extend(
                    "-s %s -j DROP" % self.hosts[s].ip for s in self._names(x) if s != d)
        self._apply(adds)

    def isolate(self, a, others=None):
        """Cuts host a from others (default: every other host), both ways."""
        others = [h for h in self._names(others) if h != self.host(a).name]
        self.cut(a, others)

    def loss(self, a, b, percent):
        """Drops percent % of the packets between a and b, each way."""
        p = "%.4f" % (percent / 100.0)
        adds = {}
        for x, y in ((a, b), (b, a)):
            for d in self._names(y):
                adds.setdefault(d, []).extend(
                    "-s %s -m statistic --mode random --probability %s -j DROP" %
                    (self.hosts[s].ip, p) for s in self._names(x) if s != d)
        self._apply(adds)

    def bandwidth(self, a, kbit):
        """Limits what host a sends to kbit/s (tc tbf on its eth0)."""
        h = self.host(a)
        h.sh("tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "%dkbit" % kbit,
             "burst", "16kb", "latency", "400ms")
        h.tbf = True

    def delay(self, a, b, ms):
        """TCP connections opened between a and b after this call (either
        way) gain ms each way: a delay proxy in each host of a and b."""
        for x, y in ((a, b), (b, a)):
            for s in self._names(x):
                h = self.hosts[s]
                if h.proxy is None:
                    h.proxy = harness.Proc(
                        "delayproxy-" + s,
                        [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "delayproxy.py"),
                         "--port", str(PROXY_PORT), "--delay-ms", str(ms),
                         "--mark", str(PROXY_MARK)], ns=h.ns)
                    harness.wait_port(PROXY_PORT, proc=h.proxy.p, host=h.ip, ns=h.ns)
                for d in self._names(y):
                    if d != s:
                        h.sh("iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d",
                             self.hosts[d].ip, "-m", "mark", "!", "--mark", str(PROXY_MARK),
                             "-j", "REDIRECT", "--to-ports", str(PROXY_PORT))

    def heal(self, a=None, b=None):
        """Removes the faults: every one (no arguments), or the drop rules
        between a and b.  Delay proxies stop with a full heal (the
        connections through them break and reconnect)."""
        if a is None and b is None:
            for h in self.hosts.values():
                h.sh("iptables", "-F", CHAIN, check=False)
                h.sh("iptables", "-t", "nat", "-F", "OUTPUT", check=False)
                if h.tbf:
                    h.sh("tc", "qdisc", "del", "dev", "eth0", "root", check=False)
                    h.tbf = False
                if h.proxy is not None:
                    h.proxy.kill()
                    h.proxy = None
            self.rules = []
            return
        ips = {self.hosts[n].ip for n in self._names(a) + self._names(b)}
        keep = []
        for name, spec in self.rules:
            src = spec.split()[1]
            if name in self._names(a) + self._names(b) and src in ips:
                self.hosts[name].sh("iptables", "-D", CHAIN, *spec.split(), check=False)
            else:
                keep.append((name, spec))
        self.rules = keep

    def describe_faults(self):
        return ["%s: %s" % (n, s) for n, s in self.rules]

    def close(self):
        """Kills every process of the run and deletes its namespaces."""
        if self.closed:
            return
        self.closed = True
        harness._cleanup()
        for h in self.hosts.values():
            _delete_namespace(h.ns)
        _delete_namespace(self.br_ns)


class ZkEnsemble:
    """A ZooKeeper ensemble (Debian package), one server per host.

    hosts is the connect string clients use.  tickTime 500 ms: a follower
    that loses the leader notices within syncLimit ticks, and a new
    election takes a few ticks more."""

    CLIENT_PORT = 2181

    def __init__(self, rig, names=("zk1", "zk2", "zk3"), first_octet=11, tick_ms=500):
        self.rig = rig
        self.servers = []
        for i, name in enumerate(names):
            h = rig.hosts.get(name) or rig.add_host(name, first_octet + i)
            self.servers.append(h)
        self.dirs = {}
        self.procs = {}
        for sid, h in enumerate(self.servers, 1):
            d = tempfile.mkdtemp(prefix="zk-%s-" % h.name, dir=harness.TMP)
            os.makedirs(os.path.join(d, "data"))
            with open(os.path.join(d, "data", "myid"), "w") as f:
                f.write("%d\n" % sid)
            with open(os.path.join(d, "zoo.cfg"), "w") as f:
                f.write("tickTime=%d\ninitLimit=10\nsyncLimit=5\ndataDir=%s\n"
                        "clientPort=%d\nclientPortAddress=%s\n"
                        "admin.enableServer=false\n4lw.commands.whitelist=*\n"
                        "minSessionTimeout=%d\nmaxSessionTimeout=60000\n"
                        % (tick_ms, os.path.join(d, "data"), self.CLIENT_PORT, h.ip, 2 * tick_ms))
                for j, peer in enumerate(self.servers, 1):
                    f.write("server.%d=%s:2888:3888\n" % (j, peer.ip))
            self.dirs[h.name] = d
        for h in self.servers:
            self.start(h.name, wait=False)
        self.wait_ready()

    @property
    def hosts(self):
        return ",".join("%s:%d" % (h.ip, self.CLIENT_PORT) for h in self.servers)

    def start(self, name, wait=True):
        h = self.rig.host(name)
        d = self.dirs[h.name]
        argv = ["java", "-Xmx192m", "-cp", harness.ZK_CLASSPATH, "-Dzookeeper.log.dir=" + d,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain", os.path.join(d, "zoo.cfg")]
        self.procs[h.name] = harness.Proc("zookeeper-" + h.name, argv, ns=h.ns)
        if wait:
            self.wait_ready()

    def mode(self, name):
        """'leader', 'follower' or '' (not serving), asked inside its host."""
        h = self.rig.host(name)
        out = harness.four_letter(self.CLIENT_PORT, "srvr", host=h.ip, ns=h.ns)
        m = re.search(r"Mode: (\w+)", out)
        return m.group(1) if m else ""

    def leader(self):
        for h in self.servers:
            if self.mode(h.name) == "leader":
                return h.name
        return None

    def wait_ready(self, timeout=90):
        """Every server serving (in the quorum), one of them leader."""
        deadline = time.time() + timeout * harness.SLOW
        while time.time() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError("zookeeper %s exited: %s" % (name, p.output()[-2000:]))
            modes = [self.mode(h.name) for h in self.servers]
            if all(modes) and modes.count("leader") == 1:
                return modes
            time.sleep(0.2)
        raise RuntimeError("ZooKeeper ensemble not ready: %s" %
                           [self.mode(h.name) for h in self.servers])
