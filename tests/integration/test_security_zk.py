"""ZooKeeper digest ACLs on a cluster's tree (docs/security.md): `cluster
create` under ACLs, nodes / consoles / the CLI / libbucketcache with the
right, wrong, missing and a rotated-away identity, the read-only identity
of clients that only route, ephemeral and sequential znodes created later,
and `cluster secure` on a running open cluster."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SLOW, http, wait_for  # noqa: E402

WRITER = "bcwriter:w-%s" % os.urandom(6).hex()
READER = "bcreader:r-%s" % os.urandom(6).hex()
OTHER = "bcwriter:not-the-password"


def cred_file(cred, name):
    path = os.path.join(harness.TMP, name)
    with open(path, "w") as f:
        f.write(cred + "\n")
    os.chmod(path, 0o600)
    return path


W_FILE = cred_file(WRITER, "zk-writer")
R_FILE = cred_file(READER, "zk-reader")
WRONG_FILE = cred_file(OTHER, "zk-wrong")


def zkcli_get(zk, path):
    """zkCli without credentials: its output for `get path`."""
    r = subprocess.run(["java", "-cp", harness.ZK_CLASSPATH, "org.apache.zookeeper.ZooKeeperMain",
                        "-server", zk.hosts, "get", path],
                       capture_output=True, text=True, timeout=60 * SLOW)
    return r.stdout + r.stderr


def cli(zk, cluster, *args, env=None):
    return harness.cli("--zk", zk.hosts, "--cluster", cluster, *args, env=env)


def node(zk, cluster, group, *args, wait=True):
    n = harness.ClusterNode(zk, cluster, group, *args, wait=False)
    if wait:
        harness.wait_port(n.admin_port, proc=n.proc.p)
        wait_for(lambda: json.loads(http(n.admin_port, "GET", "/stats")[2])
                 .get("cluster", {}).get("registrations", 0) >= 1,
                 what="node of group %d registered" % group)
    return n


def test_create_secured_and_who_may_do_what():
    zk = harness.ZooKeeper()
    # create under ACLs: the writer may do everything, the reader read
    rc, out, err = cli(zk, "sec", "--zk-auth-file", W_FILE, "cluster", "create", "--buckets", "16",
                       "--read-auth-file", R_FILE, "--json")
    assert rc == 0 and json.loads(out)["secured"] is True, (rc, out, err)
    assert "open to anyone" not in err
    # ZooKeeper's own shell, without credentials, cannot read it
    assert "Insufficient permission" in zkcli_get(zk, "/bucketcache/sec/tables/c")
    # the CLI: missing and wrong credentials fail at once, saying why
    for extra in ([], ["--zk-auth-file", WRONG_FILE]):
        rc, out, err = cli(zk, "sec", *extra, "tables")
        assert rc == 8, (extra, rc, out, err)
        assert "NOAUTH" in err and "--zk-auth-file" in err, err
        assert "/bucketcache/sec" in err, err
    # the environment names the file as well
    rc, out, err = cli(zk, "sec", "tables", env={"BUCKETCACHE_ZK_AUTH_FILE": W_FILE})
    assert rc == 0, (rc, out, err)
    # the reader reads, and may not write
    rc, out, err = cli(zk, "sec", "--zk-auth-file", R_FILE, "tables", "--json")
    assert rc == 0 and len(json.loads(out)["c"]) == 16, (rc, out, err)
    # a node with the writer's identity joins ...
    n1 = node(zk, "sec", 1, "--zk-auth-file", W_FILE)
    rc, out, err = cli(zk, "sec", "--zk-auth-file", R_FILE, "group", "config", "1",
                       "--replication", "sync")
    assert rc == 8 and "NOAUTH" in err, (rc, out, err)
    rc, out, err = cli(zk, "sec", "--zk-auth-file", W_FILE, "group", "config", "1",
                       "--replication", "async")
    assert rc == 0, (rc, out, err)
    # ... and its ephemeral, sequential registration got the cluster's ACL
    name = json.loads(http(n1.admin_port, "GET", "/health")[2])["node"]
    reg = "/bucketcache/sec/groups/1/nodes/" + name
    assert "Insufficient permission" in zkcli_get(zk, reg), reg
    # a console with the identity runs the cluster; the data path routes
    # through libbucketcache with the reader's identity alone
    con = harness.Console(zk, "sec", "--zk-auth-file", W_FILE)
    assert "Insufficient permission" in zkcli_get(zk, "/bucketcache/sec/console/election/" +
                                                  con.health()["election_node"])
    wait_for(lambda: 0 not in json.loads(cli(zk, "sec", "--zk-auth-file", R_FILE, "tables",
                                             "--json")[1])["c"], what="buckets assigned")
    rc, out, err = cli(zk, "sec", "--zk-auth-file", R_FILE, "status")
    assert rc == 0, (rc, out, err)
    wait_for(lambda: cli(zk, "sec", "--zk-auth-file", R_FILE, "set", "k", "v")[0] == 0,
             what="a key stored through the reader's routing")
    rc, out, err = cli(zk, "sec", "--zk-auth-file", R_FILE, "get", "k")
    assert rc == 0 and out.strip() == "v", (rc, out, err)
    rc, out, err = cli(zk, "sec", "get", "k")     # libbucketcache without credentials
    assert rc == 8 and "NOAUTH" in err and "--zk-auth-file" in err, (rc, out, err)
    rc, out, err = cli(zk, "sec", "--zk-auth-file", WRONG_FILE, "get", "k")
    assert rc == 8, (rc, out, err)
    con.stop()
    n1.stop()
    zk.stop()


def test_processes_with_wrong_or_missing_credentials_say_why():
    zk = harness.ZooKeeper()
    rc, out, err = cli(zk, "deny", "--zk-auth-file", W_FILE, "cluster", "create", "--buckets", "8")
    assert rc == 0, (rc, out, err)
    for extra in ([], ["--zk-auth-file", WRONG_FILE], ["--zk-auth-file", R_FILE]):
        port, admin = harness.free_port(), harness.free_port()
        r = subprocess.run([harness.NODE_BIN, "-l", "127.0.0.1", "-p", str(port), "--admin-port",
                            str(admin), "-t", "1", "--zk", zk.hosts, "--cluster", "deny",
                            "--group", "1", "--cluster-secret-file", harness.CLUSTER_SECRET_FILE]
                           + extra, capture_output=True, text=True, timeout=60 * SLOW)
        if extra and extra[1] == R_FILE:
            # the reader may read the config but not register: refused, not hung
            assert r.returncode != 0, r.stderr[-2000:]
        else:
            assert r.returncode == 1, (extra, r.returncode, r.stderr[-2000:])
            assert "cannot join" in r.stderr, r.stderr[-2000:]
        assert "refused access to /bucketcache/deny" in r.stderr, r.stderr[-2000:]
        assert "NOAUTH" in r.stderr and "--zk-auth-file" in r.stderr, r.stderr[-2000:]
        r = subprocess.run([harness.CONSOLE_BIN, "--zk", zk.hosts, "--cluster", "deny",
                            "--admin-port", "0"] + extra,
                           capture_output=True, text=True, timeout=60 * SLOW)
        assert r.returncode == 1, (extra, r.returncode, r.stderr[-2000:])
        assert "NOAUTH" in r.stderr and "--zk-auth-file" in r.stderr, r.stderr[-2000:]
    # a credentials file others can read is refused before anything starts
    loose = cred_file(WRITER, "zk-loose")
    os.chmod(loose, 0o644)
    r = subprocess.run([harness.NODE_BIN, "-p", "0", "--admin-port", "0", "--zk", zk.hosts,
                        "--cluster", "deny", "--group", "1", "--zk-auth-file", loose,
                        "--cluster-secret-file", harness.CLUSTER_SECRET_FILE],
                       capture_output=True, text=True, timeout=60 * SLOW)
    assert r.returncode == 2 and "other users can read it" in r.stderr, r.stderr
    assert WRITER.split(":")[1] not in r.stderr
    zk.stop()


def test_secure_a_running_open_cluster_and_rotate():
    zk = harness.ZooKeeper()
    cluster = harness.create_cluster(zk, "mig", buckets=16)      # open, as before ACLs
    assert "Insufficient permission" not in zkcli_get(zk, "/bucketcache/mig/config")
    # processes are restarted with credentials first (an open cluster takes them) ...
    n1 = node(zk, cluster, 1, "--zk-auth-file", W_FILE)
    con = harness.Console(zk, cluster, "--zk-auth-file", W_FILE, migrations=True)
    wait_for(lambda: 0 not in harness.tables(zk, cluster)["c"], what="buckets assigned")
    # ... then the tree is secured, ephemerals included
    rc, out, err = cli(zk, cluster, "cluster", "secure")
    assert rc == 2 and "--zk-auth-file" in err, (rc, err)
    rc, out, err = cli(zk, cluster, "--zk-auth-file", W_FILE, "cluster", "secure",
                       "--read-auth-file", R_FILE, "--json")
    assert rc == 0, (rc, out, err)
    doc = json.loads(out)
    assert doc["secured_znodes"] >= 10, doc
    assert doc["acl"] == "digest:%s:cdrwa, digest:%s:r" % (WRITER.split(":")[0],
                                                         READER.split(":")[0]), doc
    name = json.loads(http(n1.admin_port, "GET", "/health")[2])["node"]
    for path in ("/bucketcache/mig", "/bucketcache/mig/tables/c",
                 "/bucketcache/mig/groups/1/nodes/" + name):
        assert "Insufficient permission" in zkcli_get(zk, path), path
    rc, out, err = harness.cli("--zk", zk.hosts, "--cluster", cluster, "tables")
    assert rc == 8, (rc, out, err)
    # the running processes keep working: a new group joins and gets buckets
    n2 = node(zk, cluster, 2, "--zk-auth-file", W_FILE)
    rc, out, err = cli(zk, cluster, "--zk-auth-file", W_FILE, "rebalance")
    assert rc == 0, (rc, out, err)
    wait_for(lambda: 2 in json.loads(cli(zk, cluster, "--zk-auth-file", R_FILE, "tables",
                                         "--json")[1])["c"], what="group 2 owns buckets")
    # a registration made after securing carries the ACL too
    name2 = json.loads(http(n2.admin_port, "GET", "/health")[2])["node"]
    assert "Insufficient permission" in zkcli_get(zk, "/bucketcache/mig/groups/2/nodes/" + name2)
    # rotation of the writer identity, in two steps: both, then the new only
    new_writer = cred_file("bcwriter2:%s" % os.urandom(8).hex(), "zk-writer2")
    rc, out, err = cli(zk, cluster, "--zk-auth-file", W_FILE, "cluster", "secure",
                       "--writer-auth-file", new_writer)
    assert rc == 2 and "locks itself out" in err, (rc, err)
    rc, out, err = cli(zk, cluster, "--zk-auth-file", W_FILE, "cluster", "secure",
                       "--writer-auth-file", W_FILE, "--writer-auth-file", new_writer,
                       "--read-auth-file", R_FILE)
    assert rc == 0, (rc, out, err)
    # the processes move to the new identity (a restart each) ...
    n2.stop()
    n2 = node(zk, cluster, 2, "--zk-auth-file", new_writer)
    # ... then the old one is dropped: a captured copy of it stops working
    rc, out, err = cli(zk, cluster, "--zk-auth-file", new_writer, "cluster", "secure",
                       "--writer-auth-file", new_writer, "--read-auth-file", R_FILE)
    assert rc == 0, (rc, out, err)
    rc, out, err = cli(zk, cluster, "--zk-auth-file", W_FILE, "group", "config", "2",
                       "--replication", "sync")
    assert rc == 8 and "NOAUTH" in err, (rc, out, err)
    rc, out, err = cli(zk, cluster, "--zk-auth-file", new_writer, "group", "config", "2",
                       "--replication", "async")
    assert rc == 0, (rc, out, err)
    rc, out, err = cli(zk, cluster, "--zk-auth-file", R_FILE, "tables")
    assert rc == 0, (rc, out, err)
    assert json.loads(http(n2.admin_port, "GET", "/health")[2])["zookeeper_connected"]
    con.stop()
    n2.stop()
    n1.stop()
    zk.stop()


harness.main(globals())
