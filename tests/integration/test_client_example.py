"""Installing libbucketcache and using it from outside the source tree:
`cmake --install` into a temporary prefix, then the example program is
compiled with `pkg-config --cflags --libs bucketcache` (and once against
the static library with `pkg-config --static`) and run against a real
cluster.  Also: the libraries export only the public API, and a program
with functions named like the library's internals links and keeps its
own."""
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CMAKE = os.environ.get("CMAKE_COMMAND", "cmake")
CC = os.environ.get("BC_C_COMPILER", "cc")
PREFIX = os.path.join(harness.TMP, "prefix")
SAN = (["-fsanitize=address,undefined"] if harness.SANITIZED else
       ["-fsanitize=thread"] if harness.TSAN else [])


def run(argv, env=None, timeout=120):
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=timeout * harness.SLOW)
    assert r.returncode == 0, (argv, r.returncode, r.stdout[-2000:], r.stderr[-3000:])
    return r.stdout


def libdir():
    for d in ("lib", "lib64"):
        if os.path.exists(os.path.join(PREFIX, d, "pkgconfig", "bucketcache.pc")):
            return os.path.join(PREFIX, d)
    for root, _, files in os.walk(PREFIX):
        if "bucketcache.pc" in files:
            return os.path.dirname(root)
    raise AssertionError("bucketcache.pc not installed under " + PREFIX)


def pkgconfig(*args):
    return shlex.split(run(["pkg-config"] + list(args) + ["bucketcache"],
                           env={"PKG_CONFIG_PATH": os.path.join(libdir(), "pkgconfig")}))


def test_install_tree():
    run([CMAKE, "--install", harness.BUILD_DIR, "--prefix", PREFIX, "--component", "client"])
    lib = libdir()
    for f in ("libbucketcache.so", "libbucketcache.a", "pkgconfig/bucketcache.pc"):
        assert os.path.exists(os.path.join(lib, f)), f
    assert os.path.exists(os.path.join(PREFIX, "include", "bucketcache.h"))
    assert os.access(os.path.join(PREFIX, "bin", "bucketcache"), os.X_OK)
    version = pkgconfig("--modversion")
    assert len(version) == 1 and re.match(r"^\d+\.\d+\.\d+$", version[0]), version
    cflags = pkgconfig("--cflags")
    assert cflags == ["-I" + os.path.join(PREFIX, "include")] or \
        os.path.realpath(cflags[0][2:]) == os.path.realpath(os.path.join(PREFIX, "include")), cflags


def exported(path, dynamic):
    out = run(["nm", "-D" if dynamic else "-g", "--defined-only", path])
    names = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRVW":
            names.append(parts[2])
    return names


def test_only_the_api_is_exported():
    lib = libdir()
    for path, dyn in ((os.path.join(lib, "libbucketcache.so"), True),
                      (os.path.join(lib, "libbucketcache.a"), False)):
        names = exported(path, dyn)
        assert "bc_client_create" in names and "bc_strerror" in names, names
        stray = [n for n in names
                 if not (n.startswith("bc_client_") or n == "bc_strerror" or n in ("_init", "_fini"))]
        assert not stray, (path, stray)


def build_example(out, static=False):
    src = os.path.join(harness.SOURCE_DIR, "client", "examples", "example.c")
    if static:
        libs = [os.path.join(libdir(), "libbucketcache.a") if a == "-lbucketcache" else a
                for a in pkgconfig("--static", "--libs")]
        flags = pkgconfig("--cflags") + libs
    else:
        flags = pkgconfig("--cflags", "--libs") + ["-Wl,-rpath," + libdir()]
    run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", out, src] + flags + SAN)
    return out


def test_example_builds_out_of_tree_and_runs():
    zk = harness.ZooKeeper()
    cl = harness.create_cluster(zk, "example", buckets=16)
    node = harness.ClusterNode(zk, cl, 1)
    con = harness.Console(zk, cl)
    harness.wait_for(lambda: harness.tables(zk, cl)["c"] == [1] * 16, what="group 1 owns all")
    for static in (False, True):
        exe = build_example(os.path.join(harness.TMP, "example-static" if static else "example"),
                            static)
        out = run([exe, "--zk", zk.hosts, "--cluster", cl])
        assert "example: all good" in out, out
    # the installed CLI works too
    out = run([os.path.join(PREFIX, "bin", "bucketcache"), "--zk", zk.hosts, "--cluster", cl, "get",
               "example:second"])
    assert out == "2", out
    node.stop()
    con.stop()
    zk.stop()


def test_internal_names_do_not_clash():
    src = os.path.join(harness.TMP, "clash.c")
    with open(src, "w") as f:
        f.write('#include <stdio.h>\n#include <string.h>\n#include <bucketcache.h>\n'
                'int bc_zk_open(void) { return 42; }\n'
                'int bc_log_write(void) { return 7; }\n'
                'int bc_table_init(void) { return 1; }\n'
                'int main(void) {\n'
                '  if (strcmp(bc_strerror(BC_CLIENT_ENOTFOUND), "not found") != 0) return 1;\n'
                '  bc_client_options_t o; bc_client_options_init(&o);\n'
                '  bc_client_t *c; if (bc_client_create(&o, &c) != BC_CLIENT_EINVAL) return 2;\n'
                '  return bc_zk_open() + bc_log_write() + bc_table_init() == 50 ? 0 : 3;\n}\n')
    libs = [os.path.join(libdir(), "libbucketcache.a") if a == "-lbucketcache" else a
            for a in pkgconfig("--static", "--libs")]
    for name, flags in (("clash-static", pkgconfig("--cflags") + libs),
                        ("clash-shared", pkgconfig("--cflags", "--libs") + ["-Wl,-rpath," + libdir()])):
        exe = os.path.join(harness.TMP, name)
        run([CC, "-std=c11", "-o", exe, src] + flags + SAN)
        run([exe])


harness.main(globals())
