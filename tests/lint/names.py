#!/usr/bin/env python3
"""Checks the naming rules of docs/style.md on the product sources (node/,
console/, client/, common/) and the unit tests:

  1. A function visible outside its file (not static; or static inline in
     a header) and a type a header defines are named bc_<module>_...
     (bc__<module>_... when internal), where <module> is the file: its
     name without "bc_", or the short form SHORT_FORMS gives it, or, in a
     layer folder of node/ (or node/engine/evict/), the folder's name.  A
     program qualifier may come first (bc_node_cluster_route,
     bc_console_api_start, bc_cli_data_get).  Checked as: of every module
     name the rest of the identifier starts with, the longest must be one
     of this file's.  So a name that starts with ANOTHER file's module
     (bc_outq_* in proto_text.c) is refused, and so is one that names no
     module at all (bc__now_ns).  Types are held only to the first half:
     a type may name a thing (bc__router_t), never another file's module.
  2. bc__ means internal: not part of its module's public interface, used
     only by the files of the folder that defines it and by the tests.
     Product code in another folder never names a bc__ identifier.
  3. Unit tests are tests/unit/test_<module>.c (test_client_<module>.c for
     the client library's modules).

The exceptions are listed below (EXCEPTIONS), each with its reason.

Usage: names.py [--root SRCDIR]   check SRCDIR (default: this repo)
       names.py --self-test       check the checker on made-up trees
Exits 1 and lists every violation (file:line) when there is one.
"""
import os
import re
import sys
import tempfile

PROGRAMS = ("node", "console", "client", "common")
QUALIFIERS = ("node_", "console_", "cli_")

# A file's short forms, besides its own name.
SHORT_FORMS = {
    "node/proto/forward.c": ["fwd"],
    "node/proto/forward.h": ["fwd"],
    "common/bc_mcproto.c": ["mc"],
    "common/bc_mcproto.h": ["mc"],
    # memcached's meta protocol, beside the text protocol's "mc".
    "common/bc_mcmeta.c": ["mc_meta"],
    "common/bc_mcmeta.h": ["mc_meta"],
    "console/config.c": ["cfg"],
    "console/config.h": ["cfg"],
    # The console's migration module is three files sharing the short form
    # "mig" (as node/repl/'s files share "repl"): the set of records
    # (migrate.c), the copy pool (migrate_pool.c), the record codec, whose
    # second record is the migrations znode's control data (migrate_record.c).
    # The longer forms keep each file's own functions in it.
    "console/migrate.c": ["mig"],
    "console/migrate.h": ["mig"],
    "console/migrate_pool.c": ["mig", "mig_pool"],
    "console/migrate_pool.h": ["mig", "mig_pool"],
    "console/migrate_record.c": ["mig", "mig_record", "mig_control"],
    "console/migrate_record.h": ["mig", "mig_record", "mig_control"],
}

# (file, identifier regex, reason): names rule 1 lets through.
EXCEPTIONS = [
    ("client/", r"(bc_client_\w+|bc_strerror)$",
     "the public API (client/include/bucketcache.h) keeps its names"),
    ("client/client.c", r"bc__log_capture_zk$",
     "the weak default of log.c's function, for builds without log.c"),
    ("node/engine/cache.c", r"bc_item_(alloc|release|retain)$",
     "the item's life is the cache's (cache.h); 85 call sites across the "
     "layers, renamed when the protocol work in flight has landed"),
    ("common/bc_status.c", r"bc_v?fail$",
     "the status module's error helper, called everywhere as bc_fail"),
    ("common/bc_config.c", r"bc_parse_\w+$",
     "the value parsers of every program's flags (90 call sites)"),
    ("common/bc_metrics.c", r"(bc_textbuf_\w+|bc_textbuf_t|bc_metric(_\w+)?)$",
     "the text buffer and the metric line of the metrics module"),
    ("common/bc_metrics.h", r"(bc_textbuf_\w+|bc_textbuf_t|bc_metric(_\w+)?)$",
     "as bc_metrics.c"),
    ("common/bc_httpd", r"bc_http_\w+$",
     "the HTTP server and client share bc_http_ (100+ call sites in the "
     "admin port and the console API, renamed when the HTTP work in flight "
     "has landed)"),
    ("common/bc_http_client", r"bc_http_\w+$", "as common/bc_httpd"),
]

# (file, bc__ name, reason): uses rule 2 lets through.
INTERNAL_EXCEPTIONS = [
    ("client/log.c", "bc__log_level",
     "the client library's own implementation of common/bc_log.h (its log "
     "sink is the application's), so it defines what bc_log.c defines"),
]

# Unit tests named after a behaviour rather than a module.
TEST_EXCEPTIONS = {
    "test_client_retry.c": "the retry behaviour of the client's calls (ops.c, pool.c, agent.c)",
}

DEF_NAME = re.compile(r"^(?:[A-Za-z_][\w \t\*]*?[\s\*])?(bc__?[a-z0-9_]+)\s*\(")
INLINE = re.compile(r"^static\s+inline\b[^(]*?\b(bc__?[a-z0-9_]+)\s*\(")
TYPEDEF_END = re.compile(r"^\}\s*(bc__?[a-z0-9_]+_t)\s*;")
TYPEDEF_LINE = re.compile(r"^typedef\b.*?\b(bc__?[a-z0-9_]+_t)\s*;")
TYPEDEF_FN = re.compile(r"^typedef\b.*?\(\s*\*\s*(bc__?[a-z0-9_]+)\s*\)")
IDENT = re.compile(r"\bbc__[a-z0-9_]+\b")


def strip_comments_and_strings(text):
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text[i] in "\"'":
            q, j = text[i], i + 1
            while j < n and text[j] != q:
                j += 2 if text[j] == "\\" else 1
            out.append(q + q)
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def sources(root):
    for prog in PROGRAMS:
        for dirpath, _, names in os.walk(os.path.join(root, prog)):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    full = os.path.join(dirpath, name)
                    yield os.path.relpath(full, root).replace(os.sep, "/")


def stem(rel):
    base = os.path.splitext(os.path.basename(rel))[0]
    return base[3:] if base.startswith("bc_") else base


def program(rel):
    return rel.split("/")[0]


def folder(rel):
    """The folder whose files share bc__ names: a node layer, or the program."""
    parts = rel.split("/")
    if parts[0] == "node" and len(parts) > 2:
        return "node/" + parts[1]
    if parts[0] == "client" and len(parts) > 2 and parts[1] == "cli":
        return "client/cli"
    return parts[0]


def own_modules(rel):
    mods = {stem(rel)} | set(SHORT_FORMS.get(rel, []))
    parts = rel.split("/")
    if parts[0] == "node" and len(parts) > 2:
        mods.update(parts[1:-1])           # node/engine/evict/lru.c: engine, evict
    if parts[0] == "client" and len(parts) > 2 and parts[1] == "cli":
        mods.add("cli")
    return mods


def definitions(rel, text):
    """(line, name, kind) of what rule 1 looks at."""
    found = []
    lines = text.split("\n")
    header = rel.endswith(".h")
    for i, line in enumerate(lines):
        if not line or line[0] in " \t#}/*" and not line.startswith("}"):
            continue
        if header:
            m = INLINE.match(line)
            if m is None and i > 0 and re.match(r"^static\s+inline\b[^(]*$", lines[i - 1]):
                m = re.match(r"^(bc__?[a-z0-9_]+)\s*\(", line)
            if m:
                found.append((i + 1, m.group(1), "function"))
            for rx in (TYPEDEF_END, TYPEDEF_LINE, TYPEDEF_FN):
                m = rx.match(line)
                if m:
                    found.append((i + 1, m.group(1), "type"))
            continue
        if line.startswith(("static", "extern", "typedef", "}")):
            continue
        m = DEF_NAME.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        prev = lines[i - 1] if i > 0 else ""
        if prev.startswith("static") or "static" in prev.split("(")[0].split():
            continue
        found.append((i + 1, m.group(1), "function"))
    return found


def check(root):
    problems = []
    files = list(sources(root))
    modules = {}                            # module name -> files that own it
    for rel in files:
        for mod in own_modules(rel):
            modules.setdefault((program(rel), mod), set()).add(rel)
    texts = {}
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            texts[rel] = strip_comments_and_strings(f.read())

    def known(prog, rest):
        """Modules of prog and common/ that rest starts with, longest first."""
        hits = []
        for (p, mod), owners in modules.items():
            if p in (prog, "common") and (rest == mod or rest.startswith(mod + "_")):
                hits.append((len(mod), mod, owners))
        return sorted(hits, key=lambda h: -h[0])

    def excepted(rel, name):
        return any(rel.startswith(f) and re.match(rx, name) for f, rx, _ in EXCEPTIONS)

    # Rule 1.
    for rel in files:
        prog = program(rel)
        mine = {rel, rel[:-2] + (".h" if rel.endswith(".c") else ".c")}
        for lineno, name, kind in definitions(rel, texts[rel]):
            if excepted(rel, name):
                continue
            bare = name[4:] if name.startswith("bc__") else name[3:]
            tries = [bare] + [bare[len(q):] for q in QUALIFIERS if bare.startswith(q)]
            verdicts = []
            for rest in tries:
                hits = known(prog, rest)
                if not hits:
                    verdicts.append(None)
                    continue
                _, mod, owners = hits[0]
                parts = rel.split("/")
                in_folder = (parts[0] == "node" and len(parts) > 2 and mod in parts[1:-1]) or \
                            (rel.startswith("client/cli/") and mod == "cli")
                if kind == "type" and parts[0] == "node" and len(parts) > 2:
                    # a type may be any module's of its layer folder
                    in_folder = in_folder or any(o.split("/")[:2] == parts[:2] for o in owners)
                verdicts.append((mod, owners, bool(owners & mine) or in_folder))
            if any(v is not None and v[2] for v in verdicts):
                continue
            if kind == "type" and None in verdicts:
                continue                    # it names a thing, not a module
            where = "%s:%d" % (rel, lineno)
            named = [v for v in verdicts if v is not None]
            if named and kind == "type":
                mod, owners, _ = named[0]
                problems.append("%s: type %s starts with the module \"%s\" of %s"
                                % (where, name, mod, ", ".join(sorted(owners))))
            elif named:
                mod, owners, _ = named[0]
                problems.append("%s: %s is named after \"%s\" (%s), not after this file: "
                                "bc_%s_..." % (where, name, mod, ", ".join(sorted(owners)),
                                               sorted(own_modules(rel))[0]))
            elif kind == "function":
                problems.append("%s: %s names no module: bc_%s_..."
                                % (where, name, sorted(own_modules(rel))[0]))

    # Rule 2.
    internal = {}                           # bc__ name -> defining folder
    for rel in files:
        for lineno, name, kind in definitions(rel, texts[rel]):
            if name.startswith("bc__"):
                internal.setdefault(name, folder(rel))
        if rel.endswith(".h"):
            for m in re.finditer(r"^[^\s#][^;{(]*?\b(bc__[a-z0-9_]+)\s*[\(;\[]", texts[rel], re.M):
                internal.setdefault(m.group(1), folder(rel))
    for rel in files:
        here = folder(rel)
        for lineno, line in enumerate(texts[rel].split("\n"), 1):
            for m in IDENT.finditer(line):
                home = internal.get(m.group(0))
                if any(rel == f and m.group(0) == n for f, n, _ in INTERNAL_EXCEPTIONS):
                    continue
                if home is not None and home != here:
                    problems.append("%s:%d: %s is internal to %s/ (bc__): not for %s/"
                                    % (rel, lineno, m.group(0), home, here))

    # Rule 3.
    unit = os.path.join(root, "tests", "unit")
    if os.path.isdir(unit):
        for name in sorted(os.listdir(unit)):
            if not (name.startswith("test_") and name.endswith(".c")) or name in TEST_EXCEPTIONS:
                continue
            mod = name[5:-2]
            prog_mods = {m for (p, m) in modules if p != "client"}
            if mod.startswith("client_"):
                ok = ("client", mod[7:]) in modules or ("common", mod[7:]) in modules
            else:
                ok = mod in prog_mods
            if not ok:
                problems.append("tests/unit/%s: no module is named \"%s\" (test_<module>.c, "
                                "test_client_<module>.c)" % (name, mod))
    return problems


def self_test():
    """Each made-up tree holds one violation the checker must report; the
    clean tree must pass."""
    clean = {
        "common/bc_frame.h": "typedef struct bc_frame {\n    int x;\n} bc_frame_t;\n"
                             "uint32_t bc_frame_crc32c(uint32_t c);\n",
        "common/bc_frame.c": "uint32_t\nbc_frame_crc32c(uint32_t c)\n{\n    return c;\n}\n"
                             "static int\nframe_helper(void)\n{\n    return 0;\n}\n",
        "node/net/outq.c": "bool\nbc_outq_add(bc_outq_t *q)\n{\n    return true;\n}\n",
        "node/proto/proto_int.h": "void bc__proto_reply_line(int pc);\n",
        "node/proto/proto_text.c": "void\nbc__proto_reply_line(int pc)\n{\n}\n"
                                   "bc_status_t\nbc_proto_process(int pc)\n{\n"
                                   "    bc__proto_reply_line(pc);\n    return 0;\n}\n",
        "node/proto/forward.c": "void\nbc_fwd_cancel(int f)\n{\n}\n",
        "node/cluster/route.c": "bc_route_t\nbc_node_cluster_route(int cl)\n{\n}\n",
        "node/cluster/cluster.h": "typedef enum bc_route {\n    A,\n} bc_route_t;\n",
        "client/pool.c": "void\nbc__pool_conn_put(int c)\n{\n}\n",
        "client/ops.c": "int\nbc_client_get(int c)\n{\n    bc__pool_conn_put(c);\n}\n",
        "client/cli/data.c": "int\nbc_cli_data_get(int c)\n{\n}\n",
        "console/view.c": "void\nbc_view_departure_free(int d)\n{\n}\n",
        "tests/unit/test_frame.c": "",
        "tests/unit/test_client_pool.c": "",
        "tests/unit/test_outq.c": "",
    }
    bad = {
        "another file's module": ("node/proto/proto_text.c",
                                  "bool\nbc_outq_push(int q)\n{\n    return 1;\n}\n"),
        "no module": ("client/pool.c", "uint64_t\nbc__now_ns(void)\n{\n    return 0;\n}\n"),
        "type of another module": ("console/reconcile.h",
                                   "typedef struct bc_view_update {\n    int x;\n"
                                   "} bc_view_update_t;\n"),
        "internal used outside": ("node/repl/repl.c",
                                  "void\nbc_repl_x(void)\n{\n    bc__proto_reply_line(1);\n}\n"),
        "test without a module": ("tests/unit/test_frobnicate.c", ""),
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
            if extra is not None and not any(p.startswith(extra[0]) for p in found):
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
        print("%d name(s) break the rules of docs/style.md" % len(problems))
        return 1
    print("names: every module's names say their file (docs/style.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
