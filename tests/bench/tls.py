#!/usr/bin/env python3
"""tls.py -- what TLS (-Z) costs on the data port: throughput and latency
over TLS against plain TCP, measured in the same run, on the same node.

Figures, not pass/fail.  One standalone node with -Z (a certificate from
a test CA made here with openssl) and a plain listener beside it
(-l notls:127.0.0.1:PORT), so both targets share one process, one cache
and one set of worker threads; bench_mcbench drives the TLS port with
--tls (the handshake happens once per connection, before measuring) and
the plain one without.  Every key is preloaded once; then 90% get / 10%
set at every depth of BC_BENCH_DEPTHS, BC_BENCH_ROUNDS rounds of
BC_BENCH_DURATION seconds, plain and TLS back to back, the order
alternating.  Printed per depth: mean ops/s of each, the median of the
per-round ratios tls/plain (only ratios mean anything on a shared
machine), median p50 and p99.

usage: tests/bench/tls.py [BUILD_DIR]          (default: build)
environment:
  BC_BENCH_THREADS=2          worker threads of the node
  BC_BENCH_DEPTHS="1 16"      mcbench pipelining depths
  BC_BENCH_CONNS=50           mcbench connections
  BC_BENCH_CLIENT_THREADS=2   mcbench threads
  BC_BENCH_VALUE=100          value bytes
  BC_BENCH_DURATION=2         seconds per mcbench run
  BC_BENCH_ROUNDS=5           rounds per depth
Takes about a minute with the defaults.
"""
import os
import statistics
import subprocess

import benchenv  # noqa: E402  (the build directory, the binaries, the harness)
BUILD, harness = benchenv.BUILD, benchenv.harness

THREADS = int(os.environ.get("BC_BENCH_THREADS", "2"))
DEPTHS = os.environ.get("BC_BENCH_DEPTHS", "1 16").split()
CONNS = os.environ.get("BC_BENCH_CONNS", "50")
CLIENT_THREADS = os.environ.get("BC_BENCH_CLIENT_THREADS", "2")
VALUE = os.environ.get("BC_BENCH_VALUE", "100")
DURATION = os.environ.get("BC_BENCH_DURATION", "2")
ROUNDS = int(os.environ.get("BC_BENCH_ROUNDS", "5"))
MCBENCH = os.path.join(BUILD, "tests", "bench_mcbench")


def certificates():
    d = os.path.join(harness.TMP, "tls")
    os.makedirs(d)

    def sh(*argv):
        subprocess.run(argv, check=True, capture_output=True, cwd=d)

    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
       "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench CA")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out",
       "node.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-out", "node.crt", "-days", "2", "-extfile", "ext")
    return [os.path.join(d, n) for n in ("ca.crt", "node.crt", "node.key")]


def mcbench(port, *args):
    r = subprocess.run([MCBENCH, "-p", str(port), "-t", CLIENT_THREADS, "-c", CONNS,
                        "-v", VALUE] + [str(a) for a in args], capture_output=True, text=True)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        raise SystemExit("mcbench failed: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))
    return dict(kv.split("=", 1) for kv in line[-1].split()[1:])


def main():
    ca, crt, key = certificates()
    plain = harness.free_port()
    node = harness.Node("-l", "notls:127.0.0.1:%d" % plain, "-Z", "-o",
                        "ssl_chain_cert=%s,ssl_key=%s" % (crt, key), threads=THREADS,
                        memory_mb=256)
    harness.wait_port(plain, proc=node.proc.p)
    benchenv.print_header()
    print("# node -t %d, TLS (-Z, the highest version both ends have: TLS 1.3 with OpenSSL 3) "
          "vs a plain listener of the same node; mcbench: %s threads, %s conns, %s-byte "
          "values, 90%% get; %d rounds of %s s" % (THREADS, CLIENT_THREADS, CONNS, VALUE, ROUNDS,
                                                  DURATION))
    mcbench(plain, "-n", "0", "-w")
    print("| depth | plain ops/s | tls ops/s | tls/plain (median of rounds) | plain p50 us | "
          "tls p50 us | plain p99 us | tls p99 us | errors plain/tls |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for depth in DEPTHS:
        res = {"plain": [], "tls": []}
        for r in range(ROUNDS):
            order = ("plain", "tls") if r % 2 == 0 else ("tls", "plain")
            for which in order:
                if which == "plain":
                    res[which].append(mcbench(plain, "-d", depth, "-D", DURATION, "-W", "0.3"))
                else:
                    res[which].append(mcbench(node.port, "--tls", ca, "-d", depth, "-D",
                                              DURATION, "-W", "0.3"))

        def med(which, k):
            return statistics.median(float(x[k]) for x in res[which])

        def mean(which, k):
            return statistics.mean(float(x[k]) for x in res[which])

        ratio = statistics.median(float(t["ops_per_sec"]) / float(p["ops_per_sec"])
                                  for p, t in zip(res["plain"], res["tls"]))
        errs = ["%d" % sum(int(x.get("errors", "0")) for x in res[w]) for w in ("plain", "tls")]
        print("| %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.0f | %s |" % (
            depth, mean("plain", "ops_per_sec"), mean("tls", "ops_per_sec"), ratio,
            med("plain", "p50_us"), med("tls", "p50_us"), med("plain", "p99_us"),
            med("tls", "p99_us"), "/".join(errs)))
    node.stop()


if __name__ == "__main__":
    main()
