"""bucketcache-node as a process: flags, --help, --version, configuration
files, error messages and exit codes, port conflicts, signals, pid files,
daemon mode, and memcached's flags for drop-in use."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import NODE_BIN, SLOW, TMP, McConn, Proc, free_port, http, wait_port  # noqa: E402


def run(*args, timeout=10.0):
    """Runs the node to completion (for flags that make it exit at once)."""
    return subprocess.run([NODE_BIN] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          timeout=timeout * SLOW)


def write_config(name, obj_or_text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text))
    return path


def start(*args, wait=True):
    """Starts a node on free loopback ports; returns (proc, port, admin_port)."""
    port, admin = free_port(), free_port()
    proc = Proc("node", [NODE_BIN, "-l", "127.0.0.1", "-p", str(port), "--admin-port",
                         str(admin), "-t", "2", "-m", "64"] + list(args))
    if wait:
        wait_port(port, proc=proc.p)
        wait_port(admin, proc=proc.p)
    return proc, port, admin


def wait_exit(proc, timeout):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        time.sleep(0.02)
    raise AssertionError("process still running after %.1fs" % (timeout * SLOW))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (already exited, not yet reaped) counts as gone.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def assert_usage_error(result, *needles):
    err = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, err)
    assert err.startswith("bucketcache-node: "), err
    for n in needles:
        assert n in err, (n, err)
    # One clear line, not a help dump.
    assert err.count("\n") == 1, err


# ---- flags that exit at once ----

def test_help():
    r = run("--help")
    out = r.stdout.decode()
    assert r.returncode == 0, r
    for flag in ("-p, --port", "-l, --listen", "-m, --memory", "-t, --threads",
                 "-c, --max-connections", "-I, --max-item-size", "-v, --verbose",
                 "--admin-port", "--admin-listen", "--eviction", "--buckets",
                 "--log-level", "--config", "--version", "s3fifo, lru, lfu or fifo"):
        assert flag in out, flag
    assert r.stderr == b"", r.stderr
    assert run("-h").stdout == r.stdout


def test_version():
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.returncode == 0
        assert re.fullmatch(rb"bucketcache-node \d+\.\d+\.\d+ \(memcached protocol 1\.6\.18\)\n",
                            r.stdout), r.stdout


def test_bad_flags_exit_2():
    assert_usage_error(run("--bogus"), 'unknown option "--bogus"')
    assert_usage_error(run("-q"), "unknown option -q")
    assert_usage_error(run("-p", "abc"), '-p: expected an integer 0..65535, got "abc"')
    assert_usage_error(run("--port=99999"), "--port: expected an integer 0..65535")
    assert_usage_error(run("-p"), "-p needs a value")
    assert_usage_error(run("-t", "0"), "-t: expected an integer 1..256")
    assert_usage_error(run("-m", "lots"), '-m: expected megabytes')
    assert_usage_error(run("-I", "100"), "-I: expected a size from 1k to 1024m")
    assert_usage_error(run("-m", "1", "-I", "1m"), "half of the memory limit")
    assert_usage_error(run("--eviction", "random"), "--eviction: expected one of")
    assert_usage_error(run("--log-level", "chatty"), "--log-level: expected one of")
    assert_usage_error(run("extra"), 'unexpected argument "extra"')
    # memcached features the node lacks are refused, not silently ignored.
    assert_usage_error(run("-S"), "-S: SASL authentication is not supported")
    assert_usage_error(run("-s", "mc.sock"), "UNIX sockets are not supported")
    assert_usage_error(run("-B", "binary"), "only the text protocol")


def test_bad_config_files_exit_2():
    path = write_config("badport.json", {"admin": {"port": "abc"}})
    assert_usage_error(run("--config", path),
                       '%s: field "admin.port": expected an integer 0..65535, got "abc"' % path)
    path = write_config("typo.json", {"server": {"prot": 1}})
    assert_usage_error(run("--config", path), '%s: unknown field "prot" in "server"' % path)
    path = write_config("syntax.json", '{\n  "server": {\n    "port": 11211,\n  }\n}\n')
    assert_usage_error(run("--config", path), "%s: not valid JSON" % path, "line 4")
    path = write_config("array.json", "[]")
    assert_usage_error(run("--config", path), "expected a JSON object at the top level")
    path = write_config("evict.json", {"cache": {"eviction": "mru"}})
    assert_usage_error(run("--config", path), 'field "cache.eviction"', '"mru"')
    path = write_config("size.json", {"cache": {"max_item_size": "2q"}})
    assert_usage_error(run("--config", path), 'field "cache.max_item_size"', '"2q"')
    missing = os.path.join(TMP, "missing.json")
    assert_usage_error(run("--config", missing), "%s: cannot open" % missing)
    # A huge file is refused by size, without reading it all into memory.
    path = os.path.join(TMP, "huge.json")
    with open(path, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    assert_usage_error(run("--config", path), "limit")
    os.unlink(path)


def test_config_file_and_flag_priority():
    port, admin = free_port(), free_port()
    path = write_config("good.json", {
        "server": {"listen": "127.0.0.1", "port": port, "threads": 2},
        "cache": {"memory_mb": 16, "eviction": "fifo", "buckets": 64},
        "admin": {"listen": "127.0.0.1", "port": admin},
        "log": {"level": "info"},
    })
    proc = Proc("node", [NODE_BIN, "--config", path])
    wait_port(port, proc=proc.p)
    wait_port(admin, proc=proc.p)
    st, _, body = http(admin, "GET", "/stats")
    stats = json.loads(body)
    assert stats["cache"]["policy"] == "fifo"
    assert stats["cache"]["buckets"] == 64
    assert stats["cache"]["mem_limit"] == 16 << 20
    assert proc.stop() == 0
    out = proc.output()
    assert "config: %s" % path in out, out
    # Flags override the file, wherever --config appears.
    port2 = free_port()
    proc = Proc("node", [NODE_BIN, "-p", str(port2), "--config", path, "--eviction", "lru"])
    wait_port(port2, proc=proc.p)
    wait_port(admin, proc=proc.p)
    stats = json.loads(http(admin, "GET", "/stats")[2])
    assert stats["cache"]["policy"] == "lru"
    assert stats["server"]["port"] == port2
    assert proc.stop() == 0


# ---- running ----

def test_start_logs_effective_config_and_stops_on_sigterm():
    proc, port, admin = start("--eviction", "fifo", "-c", "77")
    c = McConn(port)
    c.send(b"get a")  # a half-sent command must not hold up shutdown
    t0 = time.time()
    proc.signal(signal.SIGTERM)
    assert wait_exit(proc, 5.0) == 0
    assert time.time() - t0 < 5.0 * SLOW
    c.close()
    out = proc.output()
    assert "data port 127.0.0.1:%d" % port in out, out
    assert "max 77 connections" in out, out
    assert "eviction fifo" in out, out
    assert "admin port 127.0.0.1:%d" % admin in out, out
    assert "SIGTERM received" in out, out
    assert "stopped (exit status 0)" in out, out


def test_sigint_exits_0():
    proc, port, _ = start()
    proc.signal(signal.SIGINT)
    assert wait_exit(proc, 5.0) == 0
    assert "SIGINT received" in proc.output()


def test_sighup_does_not_stop():
    proc, port, admin = start()
    proc.signal(signal.SIGHUP)
    time.sleep(0.3 * SLOW)
    assert proc.poll() is None
    assert http(admin, "GET", "/health")[0] == 200
    assert "SIGHUP received: ignored" in proc.output()
    assert proc.stop() == 0


def test_data_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        proc = Proc("node", [NODE_BIN, "-l", "127.0.0.1", "-p", str(busy),
                             "--admin-port", str(free_port())])
        assert wait_exit(proc, 5.0) == 1
        out = proc.output()
        assert "127.0.0.1:%d" % busy in out, out
        assert "cannot listen" in out, out


def test_admin_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        proc = Proc("node", [NODE_BIN, "-l", "127.0.0.1", "-p", str(free_port()),
                             "--admin-port", str(busy)])
        assert wait_exit(proc, 5.0) == 1
        out = proc.output()
        assert "admin" in out and "127.0.0.1:%d" % busy in out, out
        assert "Address already in use" in out, out


def test_admin_disabled():
    port = free_port()
    proc = Proc("node", [NODE_BIN, "-l", "127.0.0.1", "-p", str(port), "--admin-port", "0"])
    wait_port(port, proc=proc.p)
    assert "admin port disabled" in proc.output()
    c = McConn(port)
    assert c.cmd("set k 0 0 1", "v") == b"STORED\r\n"
    assert c.cmd("get k") == b"VALUE k 0 1\r\nv\r\nEND\r\n"
    c.close()
    assert proc.stop() == 0


def test_memcached_style_flags():
    """A command line written for memcached starts the node unchanged."""
    pidfile = os.path.join(TMP, "mc-style.pid")
    port = free_port()
    argv = [NODE_BIN, "-p", str(port), "-l", "127.0.0.1", "-U", "0", "-m", "32", "-c", "100",
            "-t", "2", "-I", "2m", "-v", "-b", "128", "-P", pidfile, "-f", "1.25", "-n", "48",
            "-o", "modern,hashpower=20", "-R", "20", "-C", "--admin-port", str(free_port())]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    proc = Proc("node", argv)
    wait_port(port, proc=proc.p)

    def pid_written():
        # written once the port is bound, as memcached does: the port may
        # take a connection (its backlog) a moment before
        try:
            with open(pidfile) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return text if text.endswith("\n") else None

    assert int(harness.wait_for(pid_written, what="the pid file").strip()) == proc.pid
    c = McConn(port)
    value = b"x" * (1536 * 1024)  # above the default 1m, below -I 2m
    assert c.cmd(b"set big 0 0 %d" % len(value), value) == b"STORED\r\n"
    assert c.cmd("get big") == b"VALUE big 0 %d\r\n" % len(value) + value + b"\r\nEND\r\n"
    c.close()
    out = proc.output()
    assert "-f 1.25: memcached tuning flag accepted for compatibility and ignored" in out, out
    assert proc.stop() == 0
    assert not os.path.exists(pidfile), "pid file left behind after a clean stop"


def test_prealloc_touches_the_memory_limit():
    """-L touches the cache's segments at start -- -m less the engine's own
    tables, in whole segments -- and keeps them (and /stats says so); the
    node serves as usual."""
    plain, _, plain_admin = start("-m", "256")
    plain_kib = harness.rss_kib(plain.pid)
    assert harness.http_json(plain_admin, "GET", "/stats")[1]["cache"]["preallocated_bytes"] == 0
    assert plain.stop() == 0
    proc, port, admin = start("-m", "256", "-L")
    pre = harness.http_json(admin, "GET", "/stats")[1]["cache"]["preallocated_bytes"]
    assert 254 << 20 <= pre <= 256 << 20 and pre % (1 << 20) == 0, pre
    metrics = http(admin, "GET", "/metrics")[2].decode()
    assert "\nbucketcache_memory_preallocated_bytes %d\n" % pre in metrics, metrics
    rss = harness.rss_kib(proc.pid)
    # (ThreadSanitizer's allocator unmaps a large block when it is freed)
    if not harness.TSAN:
        assert rss >= 250 * 1024, "RSS %d KiB with -L -m 256 (without -L: %d KiB)" % (rss, plain_kib)
    assert plain_kib < 128 * 1024, "without -L the node already holds %d KiB" % plain_kib
    c = McConn(port)
    value = b"v" * 100000    # above the 64 KiB of values with their own mapping
    assert c.cmd(b"set big 0 0 %d" % len(value), value) == b"STORED\r\n"
    assert c.cmd(b"set small 0 0 3", b"abc") == b"STORED\r\n"
    assert c.cmd("get big small") == (b"VALUE big 0 %d\r\n" % len(value) + value +
                                      b"\r\nVALUE small 0 3\r\nabc\r\nEND\r\n")
    c.close()
    assert re.search(r"-L: preallocated %d MiB in \d+ ms" % (pre >> 20), proc.output()), \
        proc.output()
    assert proc.stop() == 0


def test_prealloc_above_2_gib_is_kept():
    """A preallocation larger than glibc's int-sized trim setting can say
    is kept too (it used to go back to the system at once).  Not under a
    sanitizer, whose allocator unmaps large blocks on free anyway."""
    if harness.SANITIZED or harness.TSAN:
        print("skipped: the sanitizer's allocator")
        return
    with open("/proc/meminfo") as f:
        avail = int(next(x for x in f if x.startswith("MemAvailable:")).split()[1])
    if avail < 8 * 1024 * 1024:
        print("skipped: %d MiB available, 8192 wanted" % (avail >> 10))
        return
    proc, port, _ = start("-m", "2200", "-L", wait=False)
    wait_port(port, timeout=120, proc=proc.p)        # touching 2.2 GiB takes seconds
    rss = harness.rss_kib(proc.pid)
    assert rss >= 2150 * 1024, "RSS %d KiB after -L -m 2200" % rss
    c = McConn(port)
    assert c.cmd(b"set k 0 0 1", b"v") == b"STORED\r\n"
    c.close()
    assert proc.stop() == 0


def test_daemon_mode():
    """-d returns once the node is serving; the daemon stops on SIGTERM."""
    pidfile = os.path.join(TMP, "daemon.pid")
    port, admin = free_port(), free_port()
    r = subprocess.run([NODE_BIN, "-d", "-P", pidfile, "-l", "127.0.0.1", "-p", str(port),
                        "--admin-port", str(admin), "-t", "1"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10 * SLOW)
    assert r.returncode == 0, r
    with open(pidfile) as f:
        pid = int(f.read().strip())
    try:
        # Serving already: -d exits only after startup completed.
        with socket.create_connection(("127.0.0.1", port), timeout=2 * SLOW):
            pass
        assert http(admin, "GET", "/health")[0] == 200
    finally:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 5 * SLOW
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("daemon did not stop on SIGTERM")
    assert not os.path.exists(pidfile)


def test_daemon_mode_failure_is_reported():
    """-d with a busy port: the foreground process exits non-zero."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        r = subprocess.run([NODE_BIN, "-d", "-l", "127.0.0.1", "-p", str(busy),
                            "--admin-port", "0"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10 * SLOW)
        assert r.returncode == 1, r
        assert b"cannot listen" in r.stderr, r.stderr


def test_verbose_raises_log_level():
    proc, port, admin = start("-vv")
    assert proc.stop() == 0
    assert "log level debug" in proc.output()


if __name__ == "__main__":
    harness.main(globals())
