"""libbucketcache and the CLI's data commands against a real ZooKeeper, a
console and three node groups: every key is stored on, and read from, the
primary of its bucket's owner group; get/set/del/touch/incr with their exit
codes, values from arguments, stdin and files (binary-safe), multi-key gets
in request order, --json, bad input, and the example program."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NB = 16
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "routing", buckets=NB)
# All groups register before the console's first rebalance, so each gets
# a share of the (still empty) buckets.
GROUPS = {g: harness.ClusterNode(zk, CL, g) for g in (1, 2, 3)}
CONSOLE = harness.Console(zk, CL)
TABLES = harness.wait_for(lambda: (lambda t: t if 0 not in t["c"] and len(set(t["c"])) == 3 else None)(
    harness.tables(zk, CL)), what="every group owns buckets")
ENV = {"BUCKETCACHE_ZK": zk.hosts, "BUCKETCACHE_CLUSTER": CL}
EXAMPLE_BIN = os.environ.get("BC_CLIENT_EXAMPLE_BIN",
                             os.path.join(harness.BUILD_DIR, "client", "bucketcache_example"))


def bc(*args, stdin=None):
    """Runs the CLI with the cluster in the environment."""
    e = dict(os.environ)
    e.update(ENV)
    r = subprocess.run([harness.CLI_BIN] + list(args), input=stdin, capture_output=True, env=e,
                       timeout=30 * harness.SLOW)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def curr_items(node):
    return int(node.stats()["curr_items"])


def test_keys_land_on_their_owner_primary():
    for gid, node in GROUPS.items():
        keys = [harness.key_in_bucket_owned_by(TABLES["c"], gid, prefix="own%d-%d-" % (gid, i))
                for i in range(3)]
        before = {g: curr_items(n) for g, n in GROUPS.items()}
        for k in keys:
            rc, out, err = bc("set", k, "value-of-" + k)
            assert rc == 0, (k, rc, err)
        after = {g: curr_items(n) for g, n in GROUPS.items()}
        for g in GROUPS:
            grew = after[g] - before[g]
            assert grew == (len(set(keys)) if g == gid else 0), (gid, g, before, after)
        # the owner's primary holds exactly what the library wrote
        for k in keys:
            assert node.conn().cmd("get " + k) == b"VALUE %s 0 %d\r\nvalue-of-%s\r\nEND\r\n" % (
                k.encode(), len("value-of-" + k), k.encode())
            rc, out, _ = bc("get", k)
            assert rc == 0 and out == b"value-of-" + k.encode(), (rc, out)
        # locate names the same group and primary
        rc, out, _ = bc("--json", "locate", keys[0])
        loc = json.loads(out)
        assert loc["group"] == gid and loc["primary"] == "127.0.0.1:%d" % node.port, loc


def test_get_set_del_touch_exit_codes():
    assert bc("set", "k1", "hello")[0] == 0
    assert bc("get", "k1") == (0, b"hello", "")
    rc, _, err = bc("get", "missing-key")
    assert rc == 3 and "not found" in err, (rc, err)
    assert bc("set", "--add", "k1", "again")[0] == 5
    assert bc("get", "k1")[1] == b"hello"
    assert bc("set", "--replace", "nokey", "x")[0] == 3
    assert bc("set", "--replace", "k1", "world", "--flags", "42", "--ttl", "100")[0] == 0
    rc, out, _ = bc("--json", "get", "k1")
    assert rc == 0 and json.loads(out) == {"key": "k1", "found": True, "value": "world", "flags": 42}
    assert bc("touch", "--ttl", "1000", "k1")[0] == 0
    assert bc("touch", "--ttl", "10", "nokey")[0] == 3
    assert bc("del", "k1")[0] == 0
    assert bc("del", "k1")[0] == 3
    assert bc("get", "k1")[0] == 3
    assert bc("set", "n", "41")[0] == 0
    assert bc("incr", "n") == (0, b"42\n", "")
    assert bc("decr", "n", "50") == (0, b"0\n", "")
    assert bc("set", "s", "abc")[0] == 0
    rc, _, err = bc("incr", "s")
    assert rc == 1 and "not a number" in err, (rc, err)


def test_values_from_stdin_and_files_are_binary_safe():
    blob = bytes(range(256)) * 40 + b"\r\nEND\r\n"
    assert bc("set", "blob", stdin=blob)[0] == 0
    assert bc("get", "blob")[1] == blob
    assert bc("set", "blob2", "-", stdin=b"from stdin\n")[0] == 0
    assert bc("get", "blob2")[1] == b"from stdin\n"
    with tempfile.NamedTemporaryFile(dir=harness.TMP, delete=False) as f:
        f.write(blob[::-1])
    assert bc("set", "blob3", "--file", f.name)[0] == 0
    assert bc("get", "blob3")[1] == blob[::-1]
    assert bc("set", "empty", "")[0] == 0
    assert bc("get", "empty") == (0, b"", "")
    rc, _, err = bc("set", "x", "--file", os.path.join(harness.TMP, "does-not-exist"))
    assert rc == 1 and "cannot open" in err


def test_multi_key_get_in_request_order():
    keys = ["mk%d" % i for i in range(30)]
    for k in keys[::2]:
        assert bc("set", k, "v-" + k)[0] == 0
    rc, out, err = bc("get", *keys)
    assert rc == 3, (rc, err)  # some are missing
    lines = out.decode().splitlines()
    assert lines == ["%s\tv-%s" % (k, k) for k in keys[::2]], lines
    for k in keys[1::2]:
        assert "get %s: not found" % k in err
    rc, out, _ = bc("--json", "get", keys[0], keys[1], keys[0])
    doc = json.loads(out)
    assert [d["key"] for d in doc] == [keys[0], keys[1], keys[0]]
    assert [d["found"] for d in doc] == [True, False, True]
    rc, out, _ = bc("get", keys[0], keys[2])
    assert rc == 0


def test_bad_input():
    assert bc("get")[0] == 2
    assert bc("set")[0] == 2
    assert bc("set", "a b", "x")[0] == 2
    assert bc("set", "k" * 251, "x")[0] == 2
    assert bc("set", "k", "v", "extra")[0] == 2
    assert bc("touch", "k")[0] == 2
    assert bc("set", "k", "v", "--ttl", "soon")[0] == 2
    assert bc("incr", "k", "-1")[0] == 2
    assert bc("--timeout", "0", "get", "k")[0] == 2
    rc, _, err = bc("--cluster", "nosuchcluster", "get", "k")
    assert rc == 3 and "not found" in err, (rc, err)
    rc, _, err = harness.cli("--zk", "127.0.0.1:1", "--cluster", CL, "get", "k")
    assert rc == 4, (rc, err)
    rc, _, err = harness.cli("get", "k", env={"BUCKETCACHE_ZK": "", "BUCKETCACHE_CLUSTER": ""})
    assert rc == 2 and "--zk" in err


def test_example_program():
    r = subprocess.run([EXAMPLE_BIN, "--zk", zk.hosts, "--cluster", CL], capture_output=True,
                       text=True, timeout=60 * harness.SLOW)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "example: all good" in r.stdout, r.stdout
    assert "get_or_load example:user:42" in r.stdout


harness.main(globals())
