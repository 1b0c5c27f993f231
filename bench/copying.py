"""Benchmark 5: a 1 GiB image copied by the agent against `cp` of the same file on the same
disk (ext4 here). The agent's copy is timed from the CopyImage call until the task is
FINISHED (its status polled every 10 ms): it reads, hashes, writes, fsyncs, re-reads the copy
to verify it against the bytes read, and publishes it with a hard link. `cp` does the first and
third of those only, so `cp` then `sync FILE` then `cmp` (the same durability and a check of
the copy) is measured too, as a second baseline. The source is read once beforehand, so every
contender reads it from the page cache; rounds alternate the order. Database-free, so measured
once whatever the backends. The target (issue 16) is like for like: >= 0.9 x `cp` + `sync` +
`cmp`; the ratio to plain `cp` is reported without one.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.fixtures import create_domain, start_agents
from bench.stats import Figure, median
from harness.agent_client import wait_task
from vdsm_agent.v1 import agent_service_pb2 as pb

GIB = 1 << 30


def write_source(path: Path, size: int) -> None:
    block = os.urandom(16 << 20)
    with open(path, "wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)  # cache it


def timed(command: list[list[str]]) -> float:
    began = time.perf_counter()
    for argv in command:
        subprocess.run(argv, check=True)
    return time.perf_counter() - began


def run(scratch: Path, quick: bool, say: Callable[[str], None], stack: ExitStack) -> list[Figure]:
    size = (64 << 20) if quick else GIB
    rounds = 1 if quick else 3
    storage = scratch / "storage-copy"
    (agent,) = start_agents(scratch, 1, storage, stack)
    sd = create_domain(agent)
    images = storage / sd / "images"
    source = str(uuid.uuid4())
    write_source(images / source, size)
    stub = agent.stub()
    seen: dict[str, list[float]] = {"agent": [], "cp": [], "cp+sync+cmp": []}

    def agent_copy() -> float:
        target = str(uuid.uuid4())
        began = time.perf_counter()
        reply = stub.CopyImage(
            pb.CopyImageRequest(
                request_id=str(uuid.uuid4()),
                src_storage_domain_id=sd,
                src_image_id=source,
                dst_storage_domain_id=sd,
                dst_image_id=target,
            ),
            timeout=30,
        )
        status = wait_task(stub, reply.task_id, timeout=600, interval=0.01)
        seconds = time.perf_counter() - began
        if status.result != pb.TASK_RESULT_SUCCESS:
            raise RuntimeError(f"the agent's copy failed: {status.message}")
        stub.ClearTask(pb.ClearTaskRequest(task_id=reply.task_id), timeout=30)
        (images / target).unlink()
        return seconds

    def cp(durable: bool) -> float:
        target = images / f"cp-{uuid.uuid4()}"
        argv = [["cp", str(images / source), str(target)]]
        if durable:
            argv += [["sync", str(target)], ["cmp", str(images / source), str(target)]]
        seconds = timed(argv)
        target.unlink()
        return seconds

    contenders: list[tuple[str, Callable[[], float]]] = [
        ("agent", agent_copy),
        ("cp", lambda: cp(False)),
        ("cp+sync+cmp", lambda: cp(True)),
    ]
    for round_no in range(rounds):
        order = contenders if round_no % 2 == 0 else contenders[::-1]
        for name, work in order:
            os.sync()  # start each from a clean page cache state (no dirty pages of others)
            seconds = work()
            seen[name].append(seconds)
            say(
                f"  round {round_no + 1}/{rounds} {name:<12} {seconds:6.2f} s "
                f"({size / seconds / 1e6:,.0f} MB/s)"
            )
    speed = {name: size / median(times) / 1e6 for name, times in seen.items()}
    label = f"{size >> 20} MiB" if size < GIB else f"{size // GIB} GiB"
    return [
        Figure(
            "copying",
            "",
            f"{label} copy speed vs cp",
            "MB/s",
            speed["agent"],
            "cp",
            speed["cp"],
            runs=rounds,
            details={"seconds": seen},
        ),
        Figure(
            "copying",
            "",
            f"{label} copy speed vs cp, sync, cmp",
            "MB/s",
            speed["agent"],
            "cp+sync+cmp",
            speed["cp+sync+cmp"],
            target=">= 0.9",
            runs=rounds,
        ),
    ]
