"""The Python client's distribution (clients/python), built as a release would build it: only
its own package (the stubs, the client, `py.typed` and the stubs' `.pyi`), the licence, and
dependencies that are the stubs' runtime alone, at the generator's floors."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    # Built from a copy: setuptools writes build/ beside the sources, which would leave a
    # second set of generated files in the tree (test_generated_code would see them).
    source, out = tmp_path_factory.mktemp("client-source"), tmp_path_factory.mktemp("wheel")
    shutil.copytree(
        CLIENT, source, dirs_exist_ok=True, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (path,) = out.glob("durable_virt_tasks_client-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_the_wheel_holds_the_client_package_alone(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/", 1)[0] for n in names if ".dist-info/" not in n}
    assert tops == {"durable_virt_tasks_client"}
    for needed in (
        "durable_virt_tasks_client/py.typed",
        "durable_virt_tasks_client/client.py",
        "durable_virt_tasks_client/v1/engine_service_pb2.py",
        "durable_virt_tasks_client/v1/engine_service_pb2.pyi",
        "durable_virt_tasks_client/v1/engine_service_pb2_grpc.py",
    ):
        assert needed in names, needed
    (licence,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
    assert wheel.read(licence) == (ROOT / "LICENSE").read_bytes()


def test_its_dependencies_are_the_stubs_runtime_at_the_servers_floors(
    wheel: zipfile.ZipFile,
) -> None:
    (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    message = email.message_from_bytes(wheel.read(meta))
    required = {
        Requirement(r).name: str(Requirement(r)) for r in message.get_all("Requires-Dist") or []
    }
    assert set(required) == {"grpcio", "protobuf", "grpcio-status"}
    server = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in required.values():
        assert requirement in server, f"{requirement}: the server's floor differs"
    assert message["License-Expression"] == "Apache-2.0"
    client = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    assert f"{client['name']}=={client['version']}" in server, "the server pins this client"
