"""How long one agent takes to accept a CopyImage (issue 16): p50 and p90 of sequential starts and
of bursts of 16 at once, against a real `vdsm-agent` process, measured at the client.

    .venv/bin/python scripts/agent_accepts.py [--rounds 3] [--scratch DIR]

Each round makes 40 starts one after the other, then 8 bursts of 16 started together (a barrier
lets them go at once); the copies (64 KiB sources) run in the background as they would, and
every task is waited for and cleared between the phases, not while they are timed. The agent
process runs the `vdsm_agent` of the current directory (`python -m` puts it first on the path):
run this script from an export of another commit (`git archive C vdsm_agent service_common`) to
measure that commit's agent, as issue 16's before/after figures were.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from harness.agent_client import wait_task
from harness.processes import AgentProcess
from vdsm_agent.v1 import agent_service_pb2 as pb

SEQUENTIAL = 40
BURSTS, BURST = 8, 16


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scratch", type=Path, default=None, help="default: a new temp dir")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="agent-accepts-"))
    agent = AgentProcess(scratch / "agent", storage_root=scratch / "storage")
    agent.start()
    try:
        sequential, concurrent = measure(agent, args.rounds)
    finally:
        agent.kill()
        agent.close()
        shutil.rmtree(scratch, ignore_errors=True)
    for name, values in (("sequential", sequential), (f"{BURST} at once", concurrent)):
        print(
            f"{name:>12}: n={len(values)} p50={percentile(values, 0.5) * 1e3:.2f} ms "
            f"p90={percentile(values, 0.9) * 1e3:.2f} ms"
        )


def measure(agent: AgentProcess, rounds: int) -> tuple[list[float], list[float]]:
    stub = agent.stub()
    sd = str(uuid.uuid4())
    stub.CreateStorageDomain(pb.CreateStorageDomainRequest(storage_domain_id=sd), timeout=30)
    sources = []
    for _ in range(BURST):
        sources.append(str(uuid.uuid4()))
        agent.image_path(sd, sources[-1]).write_bytes(bytes(64 << 10))

    def accept(source: str) -> tuple[float, str]:
        request = pb.CopyImageRequest(
            request_id=str(uuid.uuid4()),
            src_storage_domain_id=sd,
            src_image_id=source,
            dst_storage_domain_id=sd,
            dst_image_id=str(uuid.uuid4()),
        )
        began = time.perf_counter()
        task_id = stub.CopyImage(request, timeout=30).task_id
        return time.perf_counter() - began, task_id

    def settle(task_ids: list[str]) -> None:
        for task_id in task_ids:
            wait_task(stub, task_id, timeout=60, interval=0.005)
            stub.ClearTask(pb.ClearTaskRequest(task_id=task_id), timeout=30)

    settle([accept(sources[0])[1] for _ in range(5)])  # warm up
    sequential: list[float] = []
    concurrent: list[float] = []
    for _ in range(rounds):
        done = [accept(sources[i % BURST]) for i in range(SEQUENTIAL)]
        sequential += [seconds for seconds, _ in done]
        settle([task_id for _, task_id in done])
        for _ in range(BURSTS):
            done = burst(accept, sources)
            concurrent += [seconds for seconds, _ in done]
            settle([task_id for _, task_id in done])
    return sequential, concurrent


def burst(
    accept: Callable[[str], tuple[float, str]], sources: list[str]
) -> list[tuple[float, str]]:
    barrier = threading.Barrier(len(sources))
    done: list[tuple[float, str]] = []
    lock = threading.Lock()

    def one(source: str) -> None:
        barrier.wait()
        answer = accept(source)
        with lock:
            done.append(answer)

    threads = [threading.Thread(target=one, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done


if __name__ == "__main__":
    main()
