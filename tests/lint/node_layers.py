#!/usr/bin/env python3
"""Checks that node/ keeps its layers (node/README.md): every #include in
node/ goes to the same layer or a lower one, never up and never sideways
between peers.

    engine < cluster < net < origin < proto < repl, migrate < top (admin.c, config.c, main.c)

Also checked, because they keep the layering visible and the split files
honest:
  - includes of node headers name their folder ("engine/cache.h", not
    "cache.h"), so a reader sees the layer at the include;
  - a module's private header (*_int.h) is included only from its folder;
  - the few includes a layer's README rules out although the order would
    allow them (FORBIDDEN below).

Usage: node_layers.py [--root SRCDIR]   check SRCDIR/node (default: this repo)
       node_layers.py --self-test       check the checker on made-up trees
Exits 1 and lists every violation (file:line) when there is one.
"""
import os
import re
import sys
import tempfile

# Rank of each layer; equal ranks are peers and may not include each other.
LAYERS = {"engine": 0, "cluster": 1, "net": 2, "origin": 3, "proto": 4, "repl": 5, "migrate": 5,
          "": 6}
TOP = ""

# (including folder prefix, included header, why): allowed by the order,
# ruled out by the layer's README.
FORBIDDEN = [
    ("engine/evict/", "engine/cache.h", "a policy sees items (engine/item.h), never the cache"),
    ("proto/", "net/server.h",
     "the protocol serves the server through net/handler.h and needs nothing of its own"),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(relpath):
    """The layer of a path relative to node/ ("" = the top)."""
    parts = relpath.split("/")
    return parts[0] if len(parts) > 1 else TOP


def check(root):
    node = os.path.join(root, "node")
    problems = []
    files = []
    for dirpath, _, names in os.walk(node):
        for name in names:
            if name.endswith((".c", ".h")):
                files.append(os.path.relpath(os.path.join(dirpath, name), node).replace(os.sep, "/"))
    if not files:
        return ["%s: no sources found" % node]
    for rel in sorted(files):
        layer = layer_of(rel)
        if layer not in LAYERS:
            problems.append("node/%s: folder %r is not a known layer (tests/lint/node_layers.py)"
                            % (rel, layer))
            continue
        here = os.path.dirname(rel)
        with open(os.path.join(node, rel), encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n")
        for lineno, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            inc = m.group(1)
            where = "node/%s:%d" % (rel, lineno)
            # What the compiler finds: the including file's folder first,
            # then node/ itself.
            local = os.path.normpath(os.path.join(here, inc)).replace(os.sep, "/")
            if here and "/" not in inc and os.path.isfile(os.path.join(node, local)):
                problems.append('%s: #include "%s" names no folder: write "%s"'
                                % (where, inc, local))
                target = local
            elif os.path.isfile(os.path.join(node, inc)):
                target = inc
            else:
                continue                    # common/, system, or another program's
            tlayer = layer_of(target)
            if tlayer not in LAYERS:
                problems.append('%s: #include "%s" is in no known layer' % (where, inc))
                continue
            if LAYERS[tlayer] > LAYERS[layer]:
                problems.append('%s: #include "%s": %s may not include the higher layer %s'
                                % (where, inc, layer or "the top", tlayer or "the top"))
            elif LAYERS[tlayer] == LAYERS[layer] and tlayer != layer:
                problems.append('%s: #include "%s": %s and %s are peers and may not include '
                                'each other' % (where, inc, layer, tlayer))
            if target.endswith("_int.h") and os.path.dirname(target) != here:
                problems.append('%s: #include "%s": a private header, for its own folder only'
                                % (where, inc))
            for prefix, header, why in FORBIDDEN:
                if rel.startswith(prefix) and target == header:
                    problems.append('%s: #include "%s": %s' % (where, inc, why))
    return problems


def self_test():
    """Each made-up tree holds one violation the checker must report; the
    clean tree must pass."""
    clean = {
        "node/engine/item.h": "",
        "node/engine/cache.h": '#include "engine/item.h"\n#include "bc_status.h"\n',
        "node/engine/evict/evict.h": '#include "engine/item.h"\n',
        "node/net/server.h": '#include "engine/cache.h"\n',
        "node/net/handler.h": "",
        "node/origin/origin.h": '#include "net/el.h"\n',
        "node/proto/proto_int.h": '#include "net/handler.h"\n#include "origin/origin.h"\n',
        "node/proto/proto_text.c": '#include "proto/proto_int.h"\n#include <stdio.h>\n',
        "node/repl/repl.h": '#include "proto/proto_text.h"\n',
        "node/proto/proto_text.h": "",
        "node/migrate/migrate.h": '#include "net/server.h"\n',
        "node/admin.h": '#include "migrate/migrate.h"\n#include "repl/repl.h"\n',
        "node/main.c": '#include "admin.h"\n',
    }
    bad = {
        "upward": ("node/engine/cache.c", '#include "net/server.h"\n'),
        "peers": ("node/repl/repl.c", '#include "migrate/migrate.h"\n'),
        "to the top": ("node/net/server.c", '#include "admin.h"\n'),
        "unqualified": ("node/engine/tap.c", '#include "cache.h"\n'),
        "private": ("node/repl/repl.c", '#include "proto/proto_int.h"\n'),
        "forbidden": ("node/proto/stats.c", '#include "net/server.h"\n'),
        "policy": ("node/engine/evict/lru.c", '#include "engine/cache.h"\n'),
        "unknown layer": ("node/misc/x.c", '#include "engine/cache.h"\n'),
        "origin above proto": ("node/origin/fetch.c", '#include "proto/proto_text.h"\n'),
    }
    failures = []
    for name, extra in [("clean", None)] + sorted(bad.items()):
        with tempfile.TemporaryDirectory() as root:
            tree = dict(clean)
            if extra is not None:
                tree[extra[0]] = extra[1]
            for path, text in tree.items():
                full = os.path.join(root, path)
                os.makedirs(os.path.dirname(full), exist_ok=True)
                with open(full, "w") as f:
                    f.write(text)
            found = check(root)
            if extra is None and found:
                failures.append("the clean tree was refused: %s" % found)
            if extra is not None and not any(extra[0] in p for p in found):
                failures.append("%s: %s was not reported (%s)" % (name, extra[0], found))
    return failures


def main(argv):
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    if "--self-test" in argv:
        failures = self_test()
        for f in failures:
            print("self-test: " + f)
        print("self-test: %s" % ("FAILED" if failures else "ok"))
        return 1 if failures else 0
    if "--root" in argv:
        root = argv[argv.index("--root") + 1]
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print("%d include(s) break the layers of node/ (see node/README.md)" % len(problems))
        return 1
    print("node/: every include respects the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
