"""Driving contenders: closed-loop runs (threads each submitting one job after another) and
waiting for an agent's tasks to end between runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.stats import percentile
from harness.processes import AgentProcess
from harness.waiting import poll_until
from vdsm_agent.v1 import agent_service_pb2 as apb

J = TypeVar("J")


@dataclass
class Run:
    """The latencies of one run (seconds) and its wall time, first start to last return."""

    latencies: list[float]
    seconds: float

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds


def drive(submit: Callable[[J], None], jobs: Sequence[J], threads: int) -> Run:
    """Submit `jobs` from `threads` threads, each one job after another; every latency and the
    wall time from the first start to the last return."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    shares = [list(jobs[i::threads]) for i in range(threads)]
    start = threading.Barrier(threads + 1)

    def worker(share: list[J]) -> None:
        start.wait()
        mine = []
        try:
            for job in share:
                began = time.perf_counter()
                submit(job)
                mine.append(time.perf_counter() - began)
        except BaseException as exc:
            errors.append(exc)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(s,)) for s in shares]
    for w in workers:
        w.start()
    start.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} submission(s) failed; the first: {errors[0]!r}")
    return Run(latencies, seconds)


def drain_agent(agent: AgentProcess, clear: bool, timeout: float = 120.0) -> None:
    """Wait until the agent's tasks have all finished; clear them (the plain contenders'), or
    wait for the engine to clear them (its own)."""
    stub = agent.stub()

    def statuses() -> list[apb.TaskStatus]:
        reply = stub.GetAllTasksStatuses(apb.GetAllTasksStatusesRequest(), timeout=30)
        return list(reply.statuses)

    if clear:
        done = poll_until(
            statuses,
            lambda s: all(t.state == apb.TASK_STATE_FINISHED for t in s),
            timeout,
            0.1,
            lambda s: f"{sum(t.state != apb.TASK_STATE_FINISHED for t in s)} tasks unfinished",
        )
        for status in done:
            stub.ClearTask(apb.ClearTaskRequest(task_id=status.task_id), timeout=30)
    else:
        poll_until(statuses, lambda s: not s, timeout, 0.1, lambda s: f"{len(s)} tasks remain")
