"""Rules of the code base that a grep can check: settings are read in one module, every
Redis key name is spelled in one module, and imports go one way only: the core, then the
libraries, then the services, then the composition roots."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# The services. Development tools are not held to these rules: the benchmarks (bench/) and the
# model's training, export and evaluation code (models/), which never run inside a service.
SERVICE_FOLDERS = ("moodstream", "analysis", "detection", "bulk", "ingest", "edge", "workers",
                   "dashboard")
# Layers, lowest first: a module may import from its own layer and the ones below.
CORE, LIBRARY, SERVICE, ROOT, TOOL = range(5)
FOLDER_LAYERS = {"moodstream": CORE, "analysis": LIBRARY, "detection": LIBRARY, "bulk": LIBRARY,
                 "ingest": SERVICE, "edge": SERVICE, "workers": SERVICE, "dashboard": SERVICE,
                 "models": TOOL, "bench": TOOL}
ROOTS = {"moodstream.cli", "moodstream.up"}  # they wire the services together


def service_files() -> list[Path]:
    files = [p for folder in SERVICE_FOLDERS for p in (REPO / folder).rglob("*.py")]
    assert len(files) > 30, files
    return files


def docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def environment_reads(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv") for a in node.names):
            lines.append(node.lineno)
    return lines


def key_literals(tree: ast.AST) -> list[int]:
    skip = docstrings(tree)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                and node.value.startswith("ms:"):
            lines.append(node.lineno)
    return sorted(lines)


def offenders(check, allowed: str) -> list[str]:
    out = []
    for path in service_files():
        rel = path.relative_to(REPO).as_posix()
        if rel == allowed:
            continue
        out += [f"{rel}:{line}" for line in check(ast.parse(path.read_text(), rel))]
    return out


def test_only_the_settings_module_touches_the_environment():
    assert offenders(environment_reads, "moodstream/config.py") == []


def test_only_keys_py_spells_redis_key_names():
    assert offenders(key_literals, "moodstream/keys.py") == []


def test_the_checks_see_what_they_look_for():
    assert environment_reads(ast.parse("import os\nx = os.environ.get('A')\n")) == [2]
    assert environment_reads(ast.parse("from os import environ\n")) == [1]
    assert key_literals(ast.parse('"""ms:doc"""\nk = f"ms:x:{y}"\nj = "ms:y"\n')) == [2, 3]


def layer_of_module(name: str) -> int:
    """The layer of a `moodstream...` module name."""
    if name in ROOTS:
        return ROOT
    parts = name.split(".")
    return FOLDER_LAYERS.get(parts[1], CORE) if len(parts) > 1 else CORE


def layer_of_file(rel: str) -> int:
    module = "moodstream." + rel.removesuffix(".py").replace("/", ".").split(".", 1)[-1] \
        if rel.startswith("moodstream/") else ""
    if module in ROOTS:
        return ROOT
    return FOLDER_LAYERS[rel.split("/")[0]]


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            out += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in out if name.startswith("moodstream.")]


def upward_imports(rel: str, tree: ast.AST) -> list[str]:
    mine = layer_of_file(rel)
    found = set()
    for line, name in imported(tree):
        # `from moodstream.x import y`: y may be a module of x's package or a name in x.
        known = name if name.count(".") >= 1 else ""
        if known and layer_of_module(known) > mine:
            found.add(f"{rel}:{line} imports {name}")
    return sorted(found)


def test_imports_go_from_the_core_to_libraries_to_services_to_the_roots():
    bad = []
    for path in service_files():
        rel = path.relative_to(REPO).as_posix()
        bad += upward_imports(rel, ast.parse(path.read_text(), rel))
    assert bad == []


def test_the_import_rule_sees_an_upward_import():
    tree = ast.parse("from moodstream.workers.mood import x\nimport moodstream.bench.cli\n"
                     "from moodstream import keys\n")
    assert upward_imports("moodstream/history/store.py", tree) == [
        "moodstream/history/store.py:1 imports moodstream.workers.mood",
        "moodstream/history/store.py:1 imports moodstream.workers.mood.x",
        "moodstream/history/store.py:2 imports moodstream.bench.cli"]
    assert upward_imports("moodstream/cli.py", tree) == [
        "moodstream/cli.py:2 imports moodstream.bench.cli"]
    assert upward_imports("workers/aggregator.py", ast.parse(
        "from moodstream.analysis import mood\nfrom moodstream.dashboard import app\n")) == []
    assert upward_imports("analysis/mood.py", ast.parse(
        "from moodstream.workers import aggregator\n")) == [
        "analysis/mood.py:1 imports moodstream.workers",
        "analysis/mood.py:1 imports moodstream.workers.aggregator"]


def test_workers_holds_only_the_live_stream_services():
    modules = sorted(p.name for p in (REPO / "workers").glob("*.py"))
    assert modules == ["__init__.py", "aggregator.py", "classifier.py", "detector.py"]
