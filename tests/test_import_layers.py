"""The package's layers import only downward, and no modules import each other in a cycle.

The layers, lowest first (docs/ARCHITECTURE.md draws them):

    0 errors     kvdb.errors, kvdb.version        what every layer may raise or report
    1 core       kvdb._core.*                     files, log, engines, database, transactions
    2 documents  kvdb.documents.*                 collections over the core's Database
    3 api        kvdb (the package's __init__)    the public face: kvdb.open, Options, errors;
                 kvdb.aio, kvdb.cache.*           the asyncio face and the disk cache, built on it
    4 server     kvdb.server.*                    the RESP server
    4 contrib    kvdb.contrib.*                   integrations with frameworks (Django's cache backend)
    5 cli        kvdb.cli.*, kvdb.__main__        the kvdb command

A module may import its own layer and those below it. The document layer works on the
objects the API hands out (Database, Transaction), which the core defines, so it imports the
core and never the package's __init__; the __init__ in turn loads the document layer, whose
import registers db.collection() and its siblings with the core (register_extension), and
re-exports its errors. Every import counts: module-level and function-local, Python `import` and Cython
`cimport`, and a `.pxi` counts for the module that includes it. Importing kvdb.a.b.c also
runs kvdb.a and kvdb.a.b, so those count too for the cycle check.
"""
import ast
import os
import re

import pytest

import kvdb

PACKAGE_DIR = os.path.dirname(os.path.abspath(kvdb.__file__))
ROOT = "kvdb"

LAYERS = [  # (name, rank, test for a module name); the first that matches decides
    ("errors", 0, lambda m: m in ("kvdb.errors", "kvdb.version")),
    ("core", 1, lambda m: m == "kvdb._core" or m.startswith("kvdb._core.")),
    ("documents", 2, lambda m: m == "kvdb.documents" or m.startswith("kvdb.documents.")),
    ("api", 3, lambda m: m in ("kvdb", "kvdb.aio", "kvdb.cache") or m.startswith("kvdb.cache.")),
    ("server", 4, lambda m: m == "kvdb.server" or m.startswith("kvdb.server.")),
    ("contrib", 4, lambda m: m == "kvdb.contrib" or m.startswith("kvdb.contrib.")),
    ("cli", 5, lambda m: m in ("kvdb.cli", "kvdb.__main__") or m.startswith("kvdb.cli.")),
]

CYTHON_IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+c?import\s+(.+)|c?import\s+([\w.]+))")
CYTHON_INCLUDE = re.compile(r'^\s*include\s+"([^"]+)"')


def layer_of(module):
    for name, rank, test in LAYERS:
        if test(module):
            return name, rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_files():
    """{module name: [source files]} for every module of the package (.py, .pyx with its
    .pxd and the .pxi files it includes)."""
    files = {}
    for dirpath, dirnames, names in os.walk(PACKAGE_DIR):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
        rel = os.path.relpath(dirpath, os.path.dirname(PACKAGE_DIR))
        package = rel.replace(os.sep, ".")
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext not in (".py", ".pyx", ".pxd"):
                continue
            module = package if stem == "__init__" else f"{package}.{stem}"
            files.setdefault(module, []).append(os.path.join(dirpath, name))
            if ext == ".pyx":
                with open(os.path.join(dirpath, name)) as f:
                    for line in f:
                        m = CYTHON_INCLUDE.match(line)
                        if m:
                            files[module].append(os.path.join(dirpath, m.group(1)))
    return files


def resolve(module, is_package, target, level):
    """The absolute name of `target` imported from `module` with `level` leading dots."""
    if level == 0:
        return target
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(module, paths, known):
    """The kvdb modules that `module` imports, from its source files."""
    found = set()
    for path in paths:
        is_package = os.path.basename(path).startswith("__init__.")
        with open(path) as f:
            text = f.read()
        if path.endswith(".py"):
            for node in ast.walk(ast.parse(text, path)):
                if isinstance(node, ast.Import):
                    found.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom):
                    base = resolve(module, is_package, node.module or "", node.level)
                    found.add(base)
                    found.update(f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known)
        else:
            for line in text.splitlines():
                m = CYTHON_IMPORT.match(line)
                if not m:
                    continue
                if m.group(3):
                    found.add(m.group(3))
                else:
                    base = m.group(1)
                    found.add(base)
                    for name in re.split(r"[,\s()]+", m.group(2)):
                        if f"{base}.{name}" in known:
                            found.add(f"{base}.{name}")
    return {m for m in found if (m == ROOT or m.startswith(ROOT + ".")) and m != module}


def import_graph():
    files = module_files()
    known = set(files)
    return {module: imports_of(module, paths, known) for module, paths in files.items()}


def upward_edges(graph):
    """[(importer, imported, why)] for every import that goes up a layer."""
    bad = []
    for module, targets in graph.items():
        name, rank = layer_of(module)
        for target in targets:
            target_name, target_rank = layer_of(target)
            if target_rank > rank:
                bad.append((module, target, f"{name} imports {target_name}"))
    return sorted(bad)


def with_parents(graph):
    """The graph with the implicit edges to the parent packages an import runs: not the root
    package (it runs first for every import) nor the importer's own packages (already running
    when it is imported)."""
    out = {}
    for module, targets in graph.items():
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                edges.add(".".join(parts[:i]))
        edges -= own
        out[module] = {t for t in edges if t in graph}
    return out


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_every_module_is_in_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_imports_go_only_downward(graph):
    assert upward_edges(graph) == []


def test_no_import_cycles(graph):
    found = cycles(with_parents(graph))
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_core_imports_nothing_above_errors(graph):
    for module, targets in graph.items():
        if layer_of(module)[0] == "core":
            assert {layer_of(t)[0] for t in targets} <= {"errors", "core"}, module


def test_the_checker_catches_an_upward_import_and_a_cycle(graph):
    # what the test would say if someone wrote `from kvdb.server import ...` in the core
    planted = {m: set(t) for m, t in graph.items()}
    planted["kvdb._core.database"].add("kvdb.server.app")
    assert ("kvdb._core.database", "kvdb.server.app", "core imports server") in upward_edges(planted)
    planted["kvdb.errors"] = {"kvdb.version"}
    planted["kvdb.version"] = {"kvdb.errors"}
    assert ["kvdb.errors", "kvdb.version"] in cycles(planted)


def test_the_walker_sees_cimports_and_function_local_imports(graph):
    assert "kvdb._core.engine" in graph["kvdb._core.database"]        # a cimport
    assert "kvdb._core.btree.pager" in graph["kvdb._core.btree.engine"]
    assert any(t.startswith("kvdb._core.") for t in graph["kvdb._core.database"])


# -- each package's job, said once in its __init__ docstring and once in docs/ARCHITECTURE.md ------

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHITECTURE = os.path.join(REPO_DIR, "docs", "ARCHITECTURE.md")
PACKAGE_ROW = re.compile(r"^\| `(kvdb[\w.]*)` \| (.+?) \|$")   # | `kvdb._core` | The storage core ... |


def package_summaries():
    """{package: the first line of its __init__ docstring (None without one)} for every package
    under kvdb/."""
    found = {}
    for dirpath, dirnames, names in os.walk(PACKAGE_DIR):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
        if "__init__.py" not in names:
            continue
        package = os.path.relpath(dirpath, os.path.dirname(PACKAGE_DIR)).replace(os.sep, ".")
        with open(os.path.join(dirpath, "__init__.py")) as f:
            doc = ast.get_docstring(ast.parse(f.read()), clean=False)
        found[package] = doc.splitlines()[0].strip() if doc else None
    return found


def architecture_packages():
    """{package: job} from the table of the "Packages" section, which opens docs/ARCHITECTURE.md."""
    with open(ARCHITECTURE) as f:
        text = f.read()
    sections = text.split("\n## ")
    assert len(sections) > 1 and sections[1].startswith("Packages\n"), \
        "docs/ARCHITECTURE.md must open with the section '## Packages'"
    return {m.group(1): m.group(2) for m in map(PACKAGE_ROW.match, sections[1].splitlines()) if m}


def test_each_package_docstring_first_line_is_its_job_in_architecture():
    listed = architecture_packages()
    summaries = package_summaries()
    for package, line in sorted(summaries.items()):
        assert line, f"{package}: its __init__.py has no docstring; its first line is the package's job"
        assert package in listed, f"docs/ARCHITECTURE.md's package list has no row for {package}: add " \
                                  f"| `{package}` | {line} |"
        assert listed[package] == line, (f"{package}: its __init__ docstring's first line and its job in "
                                         f"docs/ARCHITECTURE.md differ:\n  {line}\n  {listed[package]}")
    unknown = set(listed) - set(summaries)
    assert not unknown, f"docs/ARCHITECTURE.md lists packages that do not exist: {sorted(unknown)}"
