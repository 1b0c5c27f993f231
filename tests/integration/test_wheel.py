"""The wheel the image installs, built here from exactly what the Dockerfile's builder copies,
carries the licence (PEP 639 metadata and the file), the classifiers and project URLs, every
console script, a `py.typed` marker in every package (PEP 561), and the package data
pyproject.toml declares.

pip builds it as in the image (an isolated build environment with the build backend
pyproject.toml asks for, from the package index), into a temporary directory."""

from __future__ import annotations

import email
import email.message
import fnmatch
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_dockerfile import ROOT, stages

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGES = [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]


def builder_context(into: Path) -> None:
    """What the builder stage has COPYed when it runs `pip wheel`."""
    builder = stages((ROOT / "Dockerfile").read_text())[0]
    for instruction in builder.instructions:
        if instruction.keyword == "RUN" and "pip wheel" in instruction.args:
            return
        if instruction.keyword != "COPY":
            continue
        *sources, target = [w for w in instruction.args.split() if not w.startswith("--")]
        for source in sources:
            destination = into / target if target not in ("./", ".") else into / source
            if (ROOT / source).is_dir():
                shutil.copytree(
                    ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(ROOT / source, destination)
    raise AssertionError("the builder runs no `pip wheel`")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    source, out = tmp_path_factory.mktemp("context"), tmp_path_factory.mktemp("wheel")
    builder_context(source)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def dist_info(wheel: zipfile.ZipFile) -> str:
    (found,) = {n.split("/", 1)[0] for n in wheel.namelist() if ".dist-info/" in n}
    return found


def wheel_metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    return email.message_from_bytes(wheel.read(f"{dist_info(wheel)}/METADATA"))


def test_the_wheel_carries_the_licence(wheel: zipfile.ZipFile) -> None:
    meta = wheel_metadata(wheel)
    assert meta["License-Expression"] == PYPROJECT["project"]["license"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    shipped = wheel.read(f"{dist_info(wheel)}/licenses/LICENSE")
    assert shipped == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in shipped and b"Version 2.0, January 2004" in shipped
    # PEP 639: with a licence expression, no "License ::" classifier.
    assert not [c for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]


def test_the_wheel_has_classifiers_urls_and_scripts(wheel: zipfile.ZipFile) -> None:
    meta = wheel_metadata(wheel)
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert f"Programming Language :: Python :: {PYPROJECT['tool']['mypy']['python_version']}" in (
        classifiers
    )
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(PYPROJECT["project"]["urls"]) <= set(urls) and urls, urls
    entry_points = wheel.read(f"{dist_info(wheel)}/entry_points.txt").decode()
    for script, target in PYPROJECT["project"]["scripts"].items():
        assert f"{script} = {target}" in entry_points, script


def test_every_package_ships_py_typed_and_its_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package in PACKAGES:
        assert (ROOT / package / "py.typed").is_file(), package
        assert f"{package}/py.typed" in names, f"{package}: no py.typed in the wheel"
    for package, patterns in PYPROJECT["tool"]["setuptools"]["package-data"].items():
        folder = ROOT / package.replace(".", "/")
        declared = [p for pattern in patterns for p in folder.glob(pattern)]
        assert declared, f"{package}: {patterns} match no file"
        for path in declared:
            inside = path.relative_to(ROOT).as_posix()
            assert inside in names, f"{inside} is declared package data but not in the wheel"
    assert not [n for n in names if fnmatch.fnmatch(n, "tests/*")], "tests do not ship"
