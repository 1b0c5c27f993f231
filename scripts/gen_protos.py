"""Regenerate the Python code of every .proto under protos/ (one command: `make protos`).

The proto tree mirrors the package tree: protos/vdsm_agent/v1/agent_service.proto, package
vdsm_agent.v1, generates into vdsm_agent/v1/. The engine's API is the exception: its code goes
into the client distribution (clients/python), as the package durable_virt_tasks_client.v1, so
that a gRPC user can install the stubs without the server; the server depends on that package
and engine_service.v1 re-exports its modules under their contract name. Moving it takes two
exact rewrites of what protoc wrote (the module name the messages carry and the grpc module's
import); the descriptor keeps its file name, engine_service/v1/engine_service.proto.

`--out DIR` writes elsewhere, which is how the freshness test compares a fresh generation with
the committed files.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
# Proto directories whose code lives in another Python package: directory -> (where, package).
RELOCATED = {
    "engine_service/v1": (
        "clients/python/src/durable_virt_tasks_client/v1",
        "durable_virt_tasks_client.v1",
    ),
}


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def relocate(written: Path, out: Path) -> None:
    """Move each relocated directory's generated files to their package, rewriting the two
    places protoc wrote the old package's name; copy the rest as they are."""
    for path in sorted(p for p in written.rglob("*") if p.is_file()):
        relative = path.relative_to(written)
        directory = relative.parent.as_posix()
        if directory not in RELOCATED:
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            continue
        where, package = RELOCATED[directory]
        old = directory.replace("/", ".")
        stem = relative.name.split(".")[0].removesuffix("_grpc")
        text = path.read_text()
        for before, after in (
            (f"'{old}.{stem}'", f"'{package}.{stem}'"),  # the messages' __module__ (_pb2.py)
            (f"from {old} import ", f"from {package} import "),  # the _pb2_grpc.py import
        ):
            text = text.replace(before, after)
        # The proto package name (engine_service.v1.Host...) stays; no Python reference may.
        left = [w for w in (f"'{old}.{stem}'", f"from {old} import", f"import {old}") if w in text]
        if left:
            raise SystemExit(f"{relative}: protoc's output changed shape, still has {left}")
        target = out / where / relative.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="protoc-") as scratch:
        run_protoc(Path(scratch))
        relocate(Path(scratch), out)


def run_protoc(out: Path) -> None:
    include = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTOS)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=ROOT, help="where to write (default: repo root)"
    )
    ns = parser.parse_args()
    ns.out.mkdir(parents=True, exist_ok=True)
    generate(ns.out)
    print(f"generated {len(proto_files())} proto file(s) into {ns.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
