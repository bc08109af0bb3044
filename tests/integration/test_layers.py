"""The source keeps the shape docs/ARCHITECTURE.md gives it (issue 8).

The library (src/lib) is in layers: ARCHITECTURE.md lists its files in
order, and a file may include only the internal headers of files listed
below it, or beside it on its own line. Every file of src/lib is in that
list. And the admin listener (src/hookq/admin_http.c) is a generic server:
it neither includes nor calls the route sets that attach to it
(admin_api.c, admin_app.c); cmd_run.c wires them."""
import os
import re

from harness import Suite

suite = Suite("layers")
SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LIB = os.path.join(SRC, "src", "lib")


def read(*path):
    with open(os.path.join(SRC, *path)) as f:
        return f.read()


def layer_list():
    """[[name, ...], ...] from the source tour's src/lib block, top first;
    the names on one line share a rank. "adapters/" and "scripts/*.lua"
    stand for their directories."""
    text = read("docs", "ARCHITECTURE.md")
    block = text[text.index("\nsrc/lib/ "):text.index("\nsrc/hookq/ ")]
    ranks = []
    for line in block.splitlines()[1:]:
        m = re.match(r"  ([a-z0-9_./*]+(?:, [a-z0-9_./*]+)*)\s{2,}\S", line)
        if m:
            ranks.append(m.group(1).split(", "))
    assert len(ranks) > 20, ranks
    return ranks


def unit_of_header(header):
    """The list entry a header of src/lib belongs to, or None for the
    public header and system headers."""
    if header in ("common_int.h", "banned_int.h"):
        return "error.c"
    if header == "scripts_int.h":
        return "scripts/*.lua"
    if header in ("curl_event_int.h", "redis_event_int.h"):
        return "adapters/"
    if header.endswith("_int.h"):
        return header[:-len("_int.h")] + ".c"
    return None


def lib_files():
    """{entry: [path, ...]}: each source file of src/lib under the entry
    that stands for it (a .c with its _int.h)."""
    files = {}
    for root, _, names in os.walk(LIB):
        for n in names:
            if not n.endswith((".c", ".h")):
                continue
            rel = os.path.relpath(os.path.join(root, n), LIB)
            if rel.startswith("adapters" + os.sep):
                entry = "adapters/"
            elif n.endswith(".h"):
                entry = unit_of_header(n)
            else:
                entry = n
            files.setdefault(entry, []).append(os.path.join(root, n))
    return files


def includes(path):
    with open(path) as f:
        return re.findall(r'^#include "([^"]+)"', f.read(), re.M)


@suite.test
def every_library_file_is_in_the_layer_list():
    listed = {name for rank in layer_list() for name in rank}
    missing = sorted(set(lib_files()) - listed)
    assert missing == [], "not in docs/ARCHITECTURE.md's src/lib list: %s" % missing


@suite.test
def library_files_include_only_the_layers_below_them():
    ranks = layer_list()
    rank = {name: i for i, names in enumerate(ranks) for name in names}
    upward = []
    for entry, paths in lib_files().items():
        for path in paths:
            for h in includes(path):
                dep = unit_of_header(os.path.basename(h))
                if dep is None or dep == entry:
                    continue
                assert dep in rank, "%s includes %s, which is not listed" % (path, h)
                if rank[dep] < rank[entry]:
                    upward.append("%s includes %s (%s is above %s)" % (
                        os.path.relpath(path, SRC), h, dep, entry))
    assert upward == [], "\n".join(sorted(upward))


@suite.test
def the_admin_listener_knows_none_of_its_routes():
    code = read("src", "hookq", "admin_http.c") + read("src", "hookq", "admin_http.h")
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)  # examples in comments are fine
    assert not re.search(r'#include "admin_(api|app)\.h"', code), "admin_http includes a route set"
    assert not re.search(r"hk_admin_(api|app)_", code), "admin_http calls a route set"
    for path in ("/healthz", "/metrics", "/api/"):
        assert '"%s' % path not in code, "admin_http.c names the route %s" % path
    run = read("src", "hookq", "cmd_run.c")
    assert "hk_admin_api_attach(" in run and "hk_admin_app_attach(" in run


if __name__ == "__main__":
    suite.run()
