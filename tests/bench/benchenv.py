"""benchenv.py -- what every Python benchmark here starts with: the build
directory (argv[1], else $BC_BUILD_DIR, else build/), the binaries the
integration harness runs, and the harness itself.

    import benchenv
    BUILD, harness = benchenv.BUILD, benchenv.harness
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("BC_BUILD_DIR", "build"))
os.environ.setdefault("BC_NODE_BIN", os.path.join(BUILD, "node", "bucketcache-node"))
os.environ.setdefault("BC_CLI_BIN", os.path.join(BUILD, "client", "bucketcache"))
os.environ.setdefault("BC_CONSOLE_BIN", os.path.join(BUILD, "console", "bucketcache-console"))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))
import harness  # noqa: E402,F401


def load_average():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def print_header():
    """The run's identity: the commit (and uncommitted source changes), the
    cores and the load average -- figures mean little without them."""
    commit = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no",
                            "--", "node", "console", "client", "common"],
                           capture_output=True, text=True).stdout.split("\n")
    dirty = [x[3:] for x in dirty if x.strip()]
    print("commit %s%s, %d cores, load average %s" % (
        commit, " + uncommitted changes to " + " ".join(dirty) if dirty else "", os.cpu_count(),
        load_average()), flush=True)
