"""The committed generated code is what `make protos` makes from the committed .proto files."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grpc_tools
from google.protobuf import __version__ as protobuf_version

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files(base: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in base.rglob("*")
        if p.is_file()
        and p.name.endswith(GENERATED)
        # Not copies: the venv's, and what a wheel build leaves in a build/ directory.
        and not {".venv", "build"} & set(p.relative_to(base).parts)
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = generated_files(tmp_path)
    assert fresh, "the generator produced nothing"
    committed = generated_files(ROOT)
    assert sorted(committed) == sorted(fresh), "generated files differ from the .proto files"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated code, run `make protos`: {stale}"


def test_dependency_floors_match_the_generator() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    grpc_floor = next(d for d in deps if d.startswith("grpcio>="))
    protobuf_floor = next(d for d in deps if d.startswith("protobuf>="))
    grpc_code = (ROOT / "vdsm_agent/v1/agent_service_pb2_grpc.py").read_text()
    generated_grpc = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_code)
    assert generated_grpc and grpc_floor == f"grpcio>={generated_grpc.group(1)}"
    pb_code = (ROOT / "vdsm_agent/v1/agent_service_pb2.py").read_text()
    generated_pb = re.search(r"Protobuf Python Version: ([\d.]+)", pb_code)
    assert generated_pb and protobuf_floor == f"protobuf>={generated_pb.group(1)}"
    assert grpc_tools is not None and protobuf_version
