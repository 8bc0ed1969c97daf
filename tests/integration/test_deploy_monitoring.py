"""deploy/prometheus and deploy/grafana: the scrape config and the alerting
rules pass promtool (config, rules and the rules' unit tests), the Grafana
dashboard is valid JSON with a query in every panel, and every bucketcache
metric the rules and the dashboard name exists in a live node's or
console's /metrics (so a rename cannot leave them querying nothing)."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DEPLOY = os.path.join(harness.SOURCE_DIR, "deploy")
PROM = os.path.join(DEPLOY, "prometheus")
GRAFANA = os.path.join(DEPLOY, "grafana", "bucketcache-dashboard.json")


def promtool(*args):
    r = subprocess.run(["promtool"] + list(args), capture_output=True, text=True, cwd=PROM,
                       timeout=120)
    return r.returncode, r.stdout + r.stderr


def test_promtool_config_rules_and_rule_tests():
    rc, out = promtool("check", "config", "prometheus.yml")
    assert rc == 0, out
    rc, out = promtool("check", "rules", "bucketcache-rules.yml")
    assert rc == 0 and "SUCCESS" in out, out
    rc, out = promtool("test", "rules", "bucketcache-rules.test.yml")
    assert rc == 0 and "SUCCESS" in out, out
    # every alert the issue asks for is there
    text = open(os.path.join(PROM, "bucketcache-rules.yml")).read()
    for alert in ("GroupDown", "UnownedBuckets", "NoBackup", "BackupLagging", "MigrationStuck",
                  "MemoryNearLimit", "EvictionsHigh"):
        assert "alert: Bucketcache" + alert in text, alert


def dashboard_exprs():
    doc = json.load(open(GRAFANA))
    assert doc["title"] and doc["panels"], doc.keys()
    exprs = []
    for p in doc["panels"]:
        assert p.get("targets"), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            exprs.append(t["expr"])
    return exprs


def rule_exprs():
    text = open(os.path.join(PROM, "bucketcache-rules.yml")).read()
    # the expressions: "expr: ..." lines and the indented block after "expr: |"
    exprs, block = [], None
    for line in text.splitlines():
        if block is not None:
            if line.startswith(" " * 10) and line.strip():
                block.append(line.strip())
                continue
            exprs.append(" ".join(block))
            block = None
        m = re.match(r"\s*expr:\s*(.*)$", line)
        if m:
            if m.group(1).strip() == "|":
                block = []
            else:
                exprs.append(m.group(1))
    return exprs


def metric_names(expr):
    return set(re.findall(r"\b(bucketcache_[a-z0-9_]+)", expr))


def families(text):
    """Every sample name a scrape of text yields."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def test_queries_name_live_metrics():
    exprs = dashboard_exprs() + rule_exprs()
    wanted = set()
    for e in exprs:
        wanted |= metric_names(e)
    assert len(wanted) > 15, wanted
    zk = harness.ZooKeeper()
    cl = harness.create_cluster(zk, "mon", buckets=8)
    a = harness.ClusterNode(zk, cl, 1)
    con = harness.Console(zk, cl, "--stats-interval-ms", "300")
    harness.wait_tables(zk, cl, lambda t: t["c"] == [1] * 8, "group 1 owns everything")
    b = harness.ClusterNode(zk, cl, 1)
    harness.wait_for(lambda: harness.repl(b)["role"] == "backup" and harness.repl(b)["synced"],
                     what="backup synced")
    harness.wait_for(lambda: "bucketcache_group_backup_lag_seconds" in
                     harness.http(con.admin_port, "GET", "/metrics")[2].decode(),
                     what="the console sampled the backup")
    live = set()
    for port, path in ((a.admin_port, "/metrics"), (b.admin_port, "/metrics"),
                       (a.admin_port, "/metrics?per_bucket=1"), (con.admin_port, "/metrics")):
        text = harness.http(port, "GET", path)[2].decode()
        assert harness.promtool_check(text) == "", (path, harness.promtool_check(text))
        live |= families(text)
    missing = sorted(n for n in wanted if n not in live)
    assert not missing, "queries name metrics nobody exports: %s" % missing
    for p in (b, a, con):
        assert p.stop() == 0


harness.main(globals())
