"""Regenerate the Python code of every .proto under protos/ (one command: `make protos`).

The proto tree mirrors the package tree: protos/vdsm_agent/v1/agent_service.proto, package
vdsm_agent.v1, generates into vdsm_agent/v1/. `--out DIR` writes elsewhere, which is how the
freshness test compares a fresh generation with the committed files.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTOS.rglob("*.proto"))


def generate(out: Path) -> None:
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
