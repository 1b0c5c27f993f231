"""The repository's shape rules, checked from the source text alone.

Each rule is one test; a failing test lists every offender as `path:line: what`. Nothing here
starts a process, opens a socket or a database, or imports the code it checks: the checks parse
files with `ast` and read them as text. Every check also asserts that it looked at a sizeable
part of the tree, so that a moved directory or a broken file walk cannot make it pass vacuously.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import posixpath
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("engine_service", "vdsm_agent", "service_common", "harness")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Directories never walked: version control, the virtual environment, tool caches, build output.
SKIPPED_DIRS = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "node_modules",
    "build",
    "dist",
}
# Spelled in two parts so that this file does not match its own rule.
SHARED_REFERENCE = "../" + "shared"


# -- walking and parsing -------------------------------------------------------------------------


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _is_generated_or_migration(path: Path) -> bool:
    name = path.name
    return (
        name.endswith(("_pb2.py", "_pb2_grpc.py", ".pyi"))
        or "migrations" in path.relative_to(ROOT).parts
    )


def _python_files(*tops: str) -> list[Path]:
    """Hand-written Python modules under the given top-level directories (no generated code,
    no migrations), sorted."""
    files: list[Path] = []
    for top in tops:
        for path in (ROOT / top).rglob("*.py"):
            if SKIPPED_DIRS.isdisjoint(path.relative_to(ROOT).parts) and not (
                _is_generated_or_migration(path)
            ):
                files.append(path)
    return sorted(files)


@functools.cache
def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(_source(path), filename=str(path))


def _package_of(path: Path) -> list[str]:
    """The dotted package a module belongs to, as parts (a package's `__init__` is its own)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return parts[:-1]


@dataclass(frozen=True)
class Import:
    """One name a module imports: the absolute dotted module name, where and how it is written.

    `from a.b import c` is recorded as `a.b.c`, as `c` may be a submodule (`from vdsm_agent import
    v1`); a prefix check on the name therefore catches both forms."""

    name: str
    line: int
    text: str


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _resolve_relative(module: str | None, level: int, package: list[str]) -> str:
    if level == 0:
        return module or ""
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _dynamic_import(node: ast.Call) -> str | None:
    """`importlib.import_module("x")` or `__import__("x")` with a literal name."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in ("import_module", "__import__") or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def _imports_in(tree: ast.AST, package: list[str]) -> Iterator[Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, package)
            written = "." * node.level + (node.module or "")
            for alias in node.names:
                name = base if alias.name == "*" else f"{base}.{alias.name}"
                text = f"from {written} import {alias.name}"
                if node.level:
                    text += f" (= {name})"
                yield Import(name, node.lineno, text)
        elif isinstance(node, ast.Call) and (dynamic := _dynamic_import(node)) is not None:
            yield Import(dynamic, node.lineno, f"dynamic import of {dynamic!r}")


def _imports(path: Path) -> list[Import]:
    return list(_imports_in(_tree(path), _package_of(path)))


def _format(offenders: Iterable[str]) -> str:
    listed = list(offenders)
    return f"{len(listed)} offender(s):\n  " + "\n  ".join(listed)


def _assert_scanned(files: list[Path], at_least: int, what: str) -> None:
    assert len(files) >= at_least, (
        f"only {len(files)} {what} found under {ROOT}; the walk is broken or the tree moved"
    )


# -- the import extractor itself -----------------------------------------------------------------


def test_import_extractor_understands_every_form() -> None:
    source = (
        "import sqlalchemy.orm\n"
        "import grpc as g\n"
        "from google.protobuf import message\n"
        "from vdsm_agent import v1\n"
        "from . import sibling\n"
        "from ..domain.model import Thing\n"
        "from .. import *\n"
        "import importlib\n"
        "importlib.import_module('alembic.command')\n"
        "def later():\n"
        "    from sqlalchemy import select\n"
    )
    found = {
        (i.name, i.line)
        for i in _imports_in(ast.parse(source), ["engine_service", "service_layer"])
    }
    assert found == {
        ("sqlalchemy.orm", 1),
        ("grpc", 2),
        ("google.protobuf.message", 3),
        ("vdsm_agent.v1", 4),
        ("engine_service.service_layer.sibling", 5),
        ("engine_service.domain.model.Thing", 6),
        ("engine_service", 7),
        ("importlib", 8),
        ("alembic.command", 9),
        ("sqlalchemy.select", 11),
    }


# -- layering ------------------------------------------------------------------------------------


def _offending_imports(
    files: Iterable[Path], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    return [
        f"{_rel(path)}:{imp.line}: {imp.text}"
        for path in files
        for imp in _imports(path)
        if any(_within(imp.name, f) for f in forbidden)
        and not any(_within(imp.name, a) for a in allowed)
    ]


def test_only_the_adapters_and_the_unit_of_work_use_the_database_library() -> None:
    files = _python_files("engine_service")
    _assert_scanned(files, 20, "engine_service modules")
    may_use = [
        p
        for p in files
        if _rel(p).startswith("engine_service/adapters/")
        or _rel(p) == "engine_service/service_layer/unit_of_work.py"
    ]
    # A positive control: the detector does see the database library where it belongs.
    assert _offending_imports(may_use, ("sqlalchemy",)), "no sqlalchemy import found in adapters"
    offenders = _offending_imports(
        [p for p in files if p not in may_use], ("sqlalchemy", "alembic")
    )
    assert not offenders, (
        "sqlalchemy/alembic imported outside engine_service/adapters/ and "
        "engine_service/service_layer/unit_of_work.py: " + _format(offenders)
    )


# The gRPC family (grpc_health, grpc_reflection, grpc_tools are separate top-level packages).
TRANSPORT_AND_STORAGE = (
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "grpc_tools",
    "google.protobuf",
    "sqlalchemy",
    "alembic",
)


def test_the_domains_depend_on_no_transport_storage_or_agent_code() -> None:
    engine_domain = _python_files("engine_service/domain")
    agent_domain = _python_files("vdsm_agent/domain")
    _assert_scanned(engine_domain, 1, "engine_service/domain modules")
    _assert_scanned(agent_domain, 1, "vdsm_agent/domain modules")
    offenders = _offending_imports(engine_domain, (*TRANSPORT_AND_STORAGE, "vdsm_agent"))
    # The agent's domain may import its own modules, and nothing else of the agent.
    offenders += _offending_imports(
        agent_domain, (*TRANSPORT_AND_STORAGE, "vdsm_agent"), allowed=("vdsm_agent.domain",)
    )
    assert not offenders, (
        "a domain package imports grpc, google.protobuf, sqlalchemy or vdsm_agent: "
        + _format(offenders)
    )


def test_the_engine_reaches_the_agent_only_through_its_api_and_only_from_adapters() -> None:
    files = _python_files("engine_service")
    _assert_scanned(files, 20, "engine_service modules")
    offenders = []
    for path in files:
        in_adapters = _rel(path).startswith("engine_service/adapters/")
        for imp in _imports(path):
            if not _within(imp.name, "vdsm_agent"):
                continue
            problems = []
            if not _within(imp.name, "vdsm_agent.v1"):
                problems.append("not the agent's API vdsm_agent.v1")
            if not in_adapters:
                problems.append("outside engine_service/adapters/")
            if problems:
                offenders.append(f"{_rel(path)}:{imp.line}: {imp.text} ({'; '.join(problems)})")
    assert not offenders, (
        "engine_service imports vdsm_agent other than vdsm_agent.v1 from its adapters: "
        + _format(offenders)
    )


# -- size ----------------------------------------------------------------------------------------


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Function]]:
    """Every function and method, nested ones included, with a qualified name."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, Function):
            yield f"{prefix}{node.name}", node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def test_no_module_is_too_long() -> None:
    files = _python_files(*PACKAGES)
    _assert_scanned(files, 50, "modules")
    offenders = [
        f"{_rel(path)}:1: {lines} lines"
        for path in files
        if (lines := len(_source(path).splitlines())) > MAX_MODULE_LINES
    ]
    assert not offenders, f"modules over {MAX_MODULE_LINES} lines: " + _format(offenders)


def test_no_function_is_too_long() -> None:
    files = _python_files(*PACKAGES)
    _assert_scanned(files, 50, "modules")
    functions = [(path, name, node) for path in files for name, node in _functions(_tree(path))]
    assert len(functions) >= 300, f"only {len(functions)} functions found; the walk is broken"
    offenders = []
    for path, name, node in functions:
        assert node.end_lineno is not None
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
            offenders.append(f"{_rel(path)}:{node.lineno}: {name} is {length} lines")
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines: " + _format(offenders)


# -- documentation -------------------------------------------------------------------------------


def _module_level_classes(body: list[ast.stmt]) -> Iterator[ast.ClassDef]:
    """Classes defined at module level, also inside module-level `if`/`try`/`with` blocks."""
    for node in body:
        if isinstance(node, ast.ClassDef):
            yield node
        elif isinstance(node, ast.If | ast.Try | ast.TryStar | ast.With | ast.For | ast.While):
            blocks = [node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])]
            blocks += [handler.body for handler in getattr(node, "handlers", [])]
            for block in blocks:
                yield from _module_level_classes(block)


def test_every_public_class_has_a_docstring() -> None:
    files = _python_files(*PACKAGES)
    _assert_scanned(files, 50, "modules")
    classes = [
        (path, node)
        for path in files
        for node in _module_level_classes(_tree(path).body)
        if not node.name.startswith("_")
    ]
    assert len(classes) >= 40, f"only {len(classes)} classes found; the walk is broken"
    offenders = [
        f"{_rel(path)}:{node.lineno}: class {node.name}"
        for path, node in classes
        if not (ast.get_docstring(node) or "").strip()
    ]
    assert not offenders, "classes without a docstring: " + _format(offenders)


DESIGN = "docs/design.md"
# Inline links `[text](target)` and reference definitions `[label]: target`.
MARKDOWN_LINK = re.compile(
    r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE
)


def test_the_design_document_exists() -> None:
    design = ROOT / DESIGN
    assert design.is_file(), f"{DESIGN} is missing"
    assert _source(design).strip(), f"{DESIGN} is empty"


def test_the_readme_links_to_the_design_document() -> None:
    targets = [
        next(t for t in match.groups() if t)
        for match in MARKDOWN_LINK.finditer(_source(ROOT / "README.md"))
    ]
    assert targets, "README.md has no links at all; the link pattern is broken"
    local = {
        posixpath.normpath(target.split("#", 1)[0])
        for target in targets
        if "://" not in target and not target.startswith(("#", "mailto:"))
    }
    assert DESIGN in local, (
        f"README.md has no markdown link to {DESIGN}; its local links are: {sorted(local)}"
    )


# -- stale references ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ignore:
    """One `.gitignore` pattern, in the subset this repository uses (no negation)."""

    pattern: str
    directory_only: bool
    anchored: bool

    def matches(self, rel: PurePosixPath, is_dir: bool) -> bool:
        if self.directory_only and not is_dir:
            return False
        if self.anchored:
            return fnmatch.fnmatchcase(rel.as_posix(), self.pattern)
        return fnmatch.fnmatchcase(rel.name, self.pattern)


def _gitignore() -> list[_Ignore]:
    rules = []
    for raw in _source(ROOT / ".gitignore").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        directory_only = line.endswith("/")
        line = line.rstrip("/")
        rules.append(_Ignore(line.lstrip("/"), directory_only, "/" in line))
    return rules


def _tracked_text_files() -> Iterator[Path]:
    """Files git would track: the tree minus SKIPPED_DIRS, `.gitignore`d paths and binaries."""
    ignores = _gitignore()

    def ignored(path: Path) -> bool:
        rel = PurePosixPath(_rel(path))
        return path.name in SKIPPED_DIRS or any(i.matches(rel, path.is_dir()) for i in ignores)

    pending = [ROOT]
    while pending:
        directory = pending.pop()
        for path in sorted(directory.iterdir()):
            if path.is_symlink() or ignored(path):
                continue
            if path.is_dir():
                pending.append(path)
            elif b"\0" not in path.read_bytes()[:8192]:
                yield path


def test_nothing_refers_to_the_old_shared_directory() -> None:
    files = list(_tracked_text_files())
    _assert_scanned(files, 80, "tracked text files")
    names = {_rel(p) for p in files}
    assert {"README.md", "pyproject.toml", "tests/unit/test_architecture.py"} <= names
    offenders = [
        f"{_rel(path)}:{number}: {line.strip()[:120]}"
        for path in files
        for number, line in enumerate(
            path.read_bytes().decode("utf-8", errors="replace").splitlines(), start=1
        )
        if SHARED_REFERENCE in line
    ]
    assert not offenders, f"files referring to {SHARED_REFERENCE}: " + _format(offenders)
