"""deploy/: the local cluster script brings a cluster up, secured (admin
token and ZooKeeper ACLs generated in its state folder), adds a group,
reports status and tears it all down -- also in network namespaces
(`up --netns`, as root), where a node is cut off by hand and its backup
takes over; the example configuration files are valid for the programs
they are written for."""
import json
import os
import random
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import netns  # noqa: E402

SCRIPT = os.path.join(harness.SOURCE_DIR, "deploy", "local-cluster.sh")


def ephemeral_low():
    """The lowest port the kernel hands out on its own (bind to port 0, and
    the local end of every outgoing connection)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(span=240):
    """A base port with ports base+80 .. base+span free, all below the
    kernel's ephemeral range: the script's ports are fixed offsets from the
    base, and a port the kernel may give to another test's free_port() or
    to any connection's local end could be taken between this check and
    the script's bind."""
    top = min(ephemeral_low(), 65536) - span
    for _ in range(200):
        base = random.randrange(10000, top)
        ok = True
        for p in range(base + 80, base + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port range")


def run(env, *args, timeout=120):
    r = subprocess.run([SCRIPT] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout * harness.SLOW, cwd=harness.SOURCE_DIR)
    return r.returncode, r.stdout, r.stderr


def keep_logs(state):
    """Copies the cluster's logs out of its state folder (which `down`
    removes) into the test's folder, and prints their last lines."""
    if not os.path.isdir(state):
        return
    kept = os.path.join(harness.TMP, "local-cluster-logs")
    os.makedirs(kept, exist_ok=True)
    for name in sorted(os.listdir(state)):
        if not name.endswith(".log"):
            continue
        shutil.copy(os.path.join(state, name), kept)
        with open(os.path.join(state, name), "rb") as f:
            tail = f.read()[-1500:].decode("utf-8", "replace")
        print("--- last lines of %s (kept in %s):\n%s" % (name, kept, tail))


def up(state, groups):
    """Brings a cluster up at a free base port; returns (env, zk).  Another
    program may still take one of its ports between the check and the
    script's bind (the script then stops, saying so): a new base then."""
    for attempt in range(3):
        base = free_port_range()
        env = dict(os.environ, BC_BUILD_DIR=harness.BUILD_DIR, BC_BASE_PORT=str(base),
                   BC_BUCKETS="32", BC_CLUSTER="deploytest", BC_STATE_DIR=state,
                   BC_START_TIMEOUT=str(int(60 * harness.SLOW)))
        rc, out, err = run(env, "up", str(groups), timeout=300)
        if rc == 0:
            return env, "127.0.0.1:%d" % (base + 81)
        taken = "is taken by another program" in err or "Address already in use" in err
        if not taken or attempt == 2:
            keep_logs(state)
            run(env, "down")
            raise AssertionError("local-cluster.sh up failed:\n%s\n%s" % (out, err))
        print("base port %d: a port was taken meanwhile, once more:\n%s" % (base, err))
        run(env, "down")


def test_local_cluster_up_add_group_down():
    state = os.path.join(harness.TMP, "local-cluster")
    env, zk = up(state, 2)
    creds = ["--zk-auth-file", os.path.join(state, "zk-auth"),
             "--auth-token-file", os.path.join(state, "admin-token")]
    try:
        # secured by default: generated secrets, kept from other users
        for name in ("admin-token", "zk-auth", "zk-read-auth"):
            assert os.stat(os.path.join(state, name)).st_mode & 0o077 == 0, name
        rc, out, err = harness.cli("--zk", zk, "--cluster", "deploytest", "tables")
        assert rc == 8 and "NOAUTH" in err, (rc, out, err)
        rc, out, err = harness.cli("--zk", zk, "--cluster", "deploytest", "--zk-auth-file",
                                   os.path.join(state, "zk-read-auth"), "migrations", "pause")
        assert rc == 8, (rc, out, err)      # the console wants the admin token

        def groups():
            rc, out, _ = harness.cli("--zk", zk, "--cluster", "deploytest", *creds,
                                     "status", "--json")
            return json.loads(out)["groups"] if rc == 0 else []

        def assigned(n):
            rc, out, _ = harness.cli("--zk", zk, "--cluster", "deploytest", *creds,
                                     "tables", "--json")
            t = json.loads(out) if rc == 0 else {"c": [0]}
            return 0 not in t["c"] and len(set(t["c"])) == n

        harness.wait_for(lambda: assigned(2), timeout=20, what="both groups own buckets")
        gs = groups()
        assert [g["gid"] for g in gs] == [1, 2]
        assert all(len(g["nodes"]) == 2 and g["primary_addr"] for g in gs), gs
        # Started with only -p: the admin port is the data port + 69.
        for g in gs:
            for n in g["nodes"]:
                port = int(n["data"].rsplit(":", 1)[1])
                assert n["admin"] == "127.0.0.1:%d" % (port + 69), n
                with open(os.path.join(state, "admin-token")) as f:
                    token = f.read().strip()
                st, _, body = harness.http(port + 69, "GET", "/health",
                                           headers={"Authorization": "Bearer " + token})
                doc = json.loads(body)
                assert st == 200 and doc["group"] == g["gid"], doc
        rc, out, err = run(env, "add-group", timeout=300)
        assert rc == 0 and "group 3 started" in out, (out, err)
        harness.wait_for(lambda: len(groups()) == 3, timeout=20, what="group 3 registered")
        rc, out, err = run(env, "status")
        assert rc == 0 and "running  console-0" in out and "running  node-g3-1" in out, out
    except BaseException:
        keep_logs(state)
        raise
    finally:
        rc, out, err = run(env, "down")
    assert rc == 0, err
    assert not os.path.exists(state)
    rc, out, err = harness.cli("--zk", zk, "--cluster", "deploytest", "tables")
    assert rc == 4, (rc, out, err)  # ZooKeeper is gone too


def test_local_cluster_in_namespaces_cut_and_heal():
    """`up 1 --netns`: every process on a host of its own; `cut` isolates
    the group's primary, its backup is promoted (the client host sees it);
    `heal` brings the old primary back as a backup; `down` removes every
    namespace it made."""
    why = netns.unavailable()
    if why:
        print("skipped: %s" % why)
        return
    state = os.path.join(harness.TMP, "local-cluster-netns")
    prefix = "bcdt%d" % os.getpid()          # its own namespaces, whatever else runs
    env = dict(os.environ, BC_BUILD_DIR=harness.BUILD_DIR, BC_BUCKETS="32",
               BC_CLUSTER="nstest", BC_STATE_DIR=state, BC_NETNS_PREFIX=prefix,
               BC_ORIGIN="none", BC_START_TIMEOUT=str(int(60 * harness.SLOW)))
    cli = os.path.abspath(harness.CLI_BIN)

    def on_client(*args):
        return run(env, "exec", "client", cli, "--zk", "10.202.0.11:2181", "--cluster", "nstest",
                   "--zk-auth-file", os.path.join(state, "zk-auth"),
                   "--auth-token-file", os.path.join(state, "admin-token"), *args, timeout=60)

    def primary_addr():
        rc, out, _ = on_client("status", "--json")
        if rc != 0:
            return None
        g = [g for g in json.loads(out)["groups"] if g["gid"] == 1]
        return g[0]["primary_addr"] if g else None

    try:
        rc, out, err = run(env, "up", "1", "--netns", timeout=300)
        assert rc == 0, (out, err)
        rc, out, err = run(env, "hosts")
        assert rc == 0 and "g1n0" in out and "10.202.0.110" in out and "drops" not in out, out
        harness.wait_for(lambda: primary_addr() == "10.202.0.110:11211", timeout=30,
                         what="g1n0 primary, seen from the client host")
        rc, out, err = on_client("set", "k", "v1")
        assert rc == 0, (out, err)
        # the primary's host loses every other host: after its session
        # expires, the backup (in the in-sync set) is promoted
        rc, out, err = run(env, "cut", "g1n0")
        assert rc == 0 and "cut g1n0 from:" in out, (out, err)
        rc, out, err = run(env, "hosts")
        assert "drops from:" in out, out
        harness.wait_for(lambda: primary_addr() == "10.202.0.111:11211", timeout=60,
                         what="g1n1 promoted while g1n0 is cut off")
        rc, out, err = on_client("get", "k")
        assert rc == 0 and out.strip() == "v1", (rc, out, err)
        rc, out, err = run(env, "heal")
        assert rc == 0 and "every link healed" in out, (out, err)
        rc, out, err = run(env, "hosts")
        assert "drops from:" not in out, out

        def old_primary_follows():
            rc, out, _ = on_client("status", "--json")
            return rc == 0 and [len(g["nodes"]) for g in json.loads(out)["groups"]] == [2]
        harness.wait_for(old_primary_follows, timeout=60, what="g1n0 registered again")
        rc, out, err = run(env, "status")
        assert rc == 0 and "running  node-g1-0" in out, out
    except BaseException:
        keep_logs(state)
        raise
    finally:
        rc, out, err = run(env, "down")
        left = [ns for ns in netns._namespaces() if ns.startswith(prefix + "-")]
        for ns in left:
            netns._delete_namespace(ns)
    assert rc == 0, err
    assert not left, left
    assert not os.path.exists(state)


def test_example_configs_are_valid():
    zk = harness.ZooKeeper()
    node_cfg = os.path.join(harness.SOURCE_DIR, "deploy", "examples", "node.json")
    console_cfg = os.path.join(harness.SOURCE_DIR, "deploy", "examples", "console.json")
    # Each parses; pointed at a real ZooKeeper without the cluster, each
    # then stops with "does not exist" (exit 1), not a config error (exit 2).
    r = subprocess.run([harness.NODE_BIN, "--config", node_cfg, "--zk", zk.hosts, "-p", "0",
                        "--admin-port", "0", "-m", "64"], capture_output=True, text=True,
                       timeout=60 * harness.SLOW)
    assert r.returncode == 1 and "does not exist" in r.stderr, (r.returncode, r.stderr[-1500:])
    r = subprocess.run([harness.CONSOLE_BIN, "--config", console_cfg, "--zk", zk.hosts,
                        "--admin-port", "0", "--admin-listen", "127.0.0.1"],
                       capture_output=True, text=True, timeout=60 * harness.SLOW)
    assert r.returncode == 1 and "does not exist" in r.stderr, (r.returncode, r.stderr[-1500:])
    zk.stop()


harness.main(globals())
