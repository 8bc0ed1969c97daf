"""`bucketcache cluster create` and `bucketcache tables` against a real
ZooKeeper server: creation is atomic and happens once, N is fixed, the
tables start unowned, and bad input gets clear errors and exit codes."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

zk = harness.ZooKeeper()


def test_create_then_read_tables():
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", "alpha", "cluster", "create",
                               "--buckets", "16")
    assert rc == 0, (rc, out, err)
    assert "16 buckets" in out
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", "alpha", "tables", "--json")
    assert rc == 0, (rc, out, err)
    t = json.loads(out)
    assert t["epoch"] == 0 and t["buckets"] == 16
    for name in "cmd":
        assert t[name] == [0] * 16, t
    rc, out, _ = harness.cli("--zk", zk.hosts, "--cluster", "alpha", "tables")
    assert rc == 0 and "0-15:0" in out, out
    rc, out, _ = harness.cli("--zk", zk.hosts, "--cluster", "alpha", "tables", "--per-bucket")
    assert rc == 0 and len(out.strip().splitlines()) == 17, out


def test_create_twice_is_an_error_and_n_never_changes():
    rc, _, err = harness.cli("--zk", zk.hosts, "--cluster", "alpha", "cluster", "create",
                             "--buckets", "32")
    assert rc == 5, (rc, err)
    assert "already exists" in err
    rc, out, _ = harness.cli("--zk", zk.hosts, "--cluster", "alpha", "--json", "tables")
    assert json.loads(out)["buckets"] == 16


def test_environment_variables_and_default_buckets():
    env = {"BUCKETCACHE_ZK": zk.hosts, "BUCKETCACHE_CLUSTER": "beta"}
    rc, out, err = harness.cli("cluster", "create", env=env)
    assert rc == 0, err
    rc, out, _ = harness.cli("tables", "--json", env=env)
    assert json.loads(out)["buckets"] == 1024


def test_bad_input():
    cases = [
        (["--zk", zk.hosts, "--cluster", "bad/name", "cluster", "create"], 2, "invalid cluster name"),
        (["--zk", zk.hosts, "--cluster", "x", "cluster", "create", "--buckets", "0"], 2, "--buckets"),
        (["--zk", zk.hosts, "--cluster", "x", "cluster", "create", "--buckets", "70000"], 2, "--buckets"),
        (["--zk", zk.hosts, "--cluster", "x", "cluster", "create", "--buckets", "12ab"], 2, "--buckets"),
        (["--zk", zk.hosts, "--cluster", "missing", "tables"], 3, "not found"),
        (["--cluster", "x", "tables"], 2, "--zk"),
        (["--zk", zk.hosts, "--cluster", "x", "frobnicate"], 2, "unknown command"),
        (["--zk", "127.0.0.1:%d" % harness.free_port(), "--cluster", "x", "tables"], 4, "cannot connect"),
    ]
    for args, code, needle in cases:
        rc, out, err = harness.cli(*args, env={"BUCKETCACHE_ZK": "", "BUCKETCACHE_CLUSTER": ""})
        assert rc == code, (args, rc, out, err)
        assert needle in err, (args, err)


def test_malformed_table_in_zookeeper_is_a_clear_error():
    # Corrupt table m behind the tool's back with ZooKeeper's own shell.
    import subprocess
    rc, _, err = harness.cli("--zk", zk.hosts, "--cluster", "gamma", "cluster", "create",
                             "--buckets", "8")
    assert rc == 0, err
    shell = subprocess.run(
        ["java", "-cp", harness.ZK_CLASSPATH, "org.apache.zookeeper.ZooKeeperMain",
         "-server", zk.hosts, "set", "/bucketcache/gamma/tables/m", '{"table":"m","epoch":1}'],
        capture_output=True, text=True, timeout=60)
    assert shell.returncode == 0, shell.stderr[-2000:]
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", "gamma", "tables")
    assert rc == 1, (rc, out, err)
    assert "buckets" in err, err


harness.main(globals())
