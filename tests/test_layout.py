"""Rules of the code base that a grep can check: settings are read in one module, and every
Redis key name is spelled in one module."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# The services. Development tools are not held to these rules: the benchmarks (bench/) and the
# model's training, export and evaluation code (models/), which never run inside a service.
SERVICE_FOLDERS = ("moodstream", "ingest", "edge", "workers", "dashboard")


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
