"""The console's dashboard in a real browser (Debian's headless Chromium,
driven over the DevTools protocol by cdp.py) against a running cluster:
the page shows each group's memory used vs limit, ops/s and hit ratio,
live charts, the busiest buckets and hot keys, a bucket's details on a
click, control actions that ask for confirmation, and the warnings an
operator cannot miss -- no standby console, a group without its backup
(killed), a group down with its buckets unowned (stopped).  Screenshots go
to <build>/test-artifacts/; any JavaScript error fails the test.

Layout: group 1 = A1 + B1, group 2 = A2 + B2, one console; a thread
keeps traffic on both primaries."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import cdp  # noqa: E402

NB = 32
SESSION_MS = harness.SESSION_MS
ART = os.path.join(os.path.abspath(harness.BUILD_DIR), "test-artifacts")
zk = harness.ZooKeeper()
CL = harness.create_cluster(zk, "dash", buckets=NB)
S = {}


class Traffic(threading.Thread):
    """gets (mostly hits, one hot key per group) and sets on both primaries."""

    def __init__(self, table):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.keys = {g: [harness.key_in_bucket_owned_by(table, g, prefix="k%d-%d-" % (g, i))
                         for i in range(8)] for g in (1, 2)}
        self.hot = {g: self.keys[g][0] for g in (1, 2)}

    def run(self):
        conns = {}
        while not self.stop.is_set():
            for g, node in ((1, S["a1"]), (2, S["a2"])):
                try:
                    c = conns.get(g) or node.conn(timeout=1)
                    conns[g] = c
                    for k in self.keys[g]:
                        c.cmd("set %s 0 0 5" % k, "value")
                    for _ in range(30):
                        c.cmd("get " + self.hot[g])
                    c.cmd("get missing-%d" % g)
                except Exception:
                    conns.pop(g, None)
            time.sleep(0.05)


def q(b, expr):
    return b.eval(expr)


def test_dashboard_in_a_browser():
    os.makedirs(ART, exist_ok=True)
    for name, g in (("a1", 1), ("a2", 2)):
        S[name] = harness.ClusterNode(zk, CL, g, session_timeout_ms=SESSION_MS)
    con = harness.Console(zk, CL, "--stats-interval-ms", "500", session_timeout_ms=SESSION_MS)
    t = harness.wait_tables(zk, CL, lambda t: set(t["c"]) == {1, 2}, "both groups own buckets")
    for name, g in (("b1", 1), ("b2", 2)):
        S[name] = harness.ClusterNode(zk, CL, g, session_timeout_ms=SESSION_MS)
    traffic = Traffic(t["c"])
    traffic.start()
    url = "http://127.0.0.1:%d/" % con.admin_port
    try:
        with cdp.Browser() as b:
            b.navigate(url)
            b.wait_for("document.querySelectorAll('.card').length == 2", what="two group cards")
            # memory: used vs limit, not just the limit
            mem = b.wait_for("(() => { const t = document.querySelector('.card[data-gid=\"1\"] .mem')"
                             ".textContent; return /B \\/ 64 MiB/.test(t) ? t : null })()",
                             what="group 1's memory used / limit")
            assert not mem.startswith("-"), mem
            b.wait_for("parseFloat(document.querySelector('.card[data-gid=\"1\"] .ops').textContent) > 0",
                       timeout=30, what="ops/s of group 1")
            hit = b.wait_for("(() => { const t = document.querySelector('.card[data-gid=\"1\"] .hit')"
                             ".textContent; return t.includes('%') ? t : null })()", what="hit ratio")
            assert 50 <= float(hit.split()[0]) <= 100, hit
            # live charts from the console's own samples
            for chart in ("ops", "hit", "mem", "evict", "lag", "mig"):
                b.wait_for("document.querySelectorAll('#chart-%s path.line').length >= 1" % chart,
                           what="chart %s drawn" % chart)
            assert q(b, "document.querySelectorAll('#chart-ops path.line').length") >= 2
            assert q(b, "document.querySelectorAll('#chart-mem path.line').length") >= 4  # used + limit
            # busiest buckets and hot keys
            b.wait_for("document.querySelectorAll('#top tr.bucket-row').length >= 5", what="busiest buckets")
            hot = b.wait_for("(() => { const r = [...document.querySelectorAll('#hotkeys tr.hotkey')]"
                             ".map(r => r.cells[0].textContent); return r.length ? r : null })()",
                             what="hot keys")
            assert traffic.hot[1] in hot or traffic.hot[2] in hot, hot
            # clicking a bucket shows its counters, owner, primary, backups, pending move
            q(b, "document.querySelector('#top tr.bucket-row').click()")
            detail = b.wait_for("(() => { const t = document.getElementById('bucket-detail').innerText;"
                                " return t.includes('primary') && t.includes('pending move') ? t : null })()",
                                what="bucket details")
            assert "backups" in detail and "gets" in detail and "owner" in detail, detail
            assert b.wait_for("parseFloat(document.querySelector('#bucket-detail .counter-gets')"
                              ".textContent) > 0", what="the bucket's gets")
            # a control action asks first; "Cancel" does nothing
            q(b, "document.getElementById('btn-pause').click()")
            assert q(b, "document.getElementById('confirm').classList.contains('open')")
            assert "Pause migrations?" in q(b, "document.getElementById('confirm-text').textContent")
            q(b, "document.getElementById('confirm-no').click()")
            assert not q(b, "document.getElementById('confirm').classList.contains('open')")
            assert harness.http_json(con.admin_port, "GET", "/v1/migrations")[1]["paused"] is False
            q(b, "document.getElementById('btn-dryrun').click()")
            q(b, "document.getElementById('confirm-yes').click()")
            b.wait_for("document.getElementById('action-result').textContent.length > 0",
                       what="the dry run's result")
            # warnings: one console, so no standby
            b.wait_for("!!document.querySelector('#warnings [data-kind=\"no_standby\"]')",
                       what="no standby warning")
            # kill a backup: group 1 has no backup
            S["b1"].proc.kill()
            b.wait_for("!!document.querySelector('#warnings [data-kind=\"no_backup\"][data-group=\"1\"]')",
                       timeout=SESSION_MS / 1000 + 20, what="no backup warning for group 1")
            b.screenshot(os.path.join(ART, "dashboard-no-backup.png"))
            # stop group 2: down, its buckets unowned
            for name in ("a2", "b2"):
                S[name].proc.kill()
            b.wait_for("!!document.querySelector('#warnings [data-kind=\"group_down\"][data-group=\"2\"]')"
                       " && !!document.querySelector('#warnings [data-kind=\"unowned_buckets\"]')"
                       " && !!document.querySelector('.card.down[data-gid=\"2\"]')",
                       timeout=SESSION_MS / 1000 + 25, what="group 2 down, buckets unowned")
            text = q(b, "document.getElementById('warnings').innerText")
            assert "CRITICAL" in text and "no owner" in text, text
            time.sleep(1.5)   # one more refresh: the charts show the drop
            shot = b.screenshot(os.path.join(ART, "dashboard.png"))
            assert os.path.getsize(shot) > 20000, os.path.getsize(shot)
            assert not b.errors, b.errors
            print("screenshots in", ART)
    finally:
        traffic.stop.set()
        traffic.join(5)
    for name in ("a1",):
        assert S[name].stop() == 0
    assert con.stop() == 0


harness.main(globals())
