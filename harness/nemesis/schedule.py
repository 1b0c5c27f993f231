"""The nemesis's faults: what they are, and the schedule a seed makes (the same for the same
seed, so that a failing seed replays the same faults in the same order)."""

from __future__ import annotations

import random
from dataclasses import dataclass

MiB = 1 << 20
AGENTS = 3
VMS = 4
DISKS_PER_VM = 2
DISK_BYTES = 2 * MiB
THROTTLE = 8 * MiB  # bytes/s per copy: a 2 MiB copy takes about 0.25 s
AGENT_DEADLINE = 2.0
SETTLE_BOUND = 180.0  # seconds after healing for every command to end and be cleared
FAULT_KINDS = (
    "partition",
    "kill_agent",
    "kill_engine",
    "restart_postgres",
    "kill_postgres",
    "pause_agent",
)
ENGINE_ARGS = [
    "--agent-deadline",
    str(AGENT_DEADLINE),
    "--sweep-after",
    "5",
    "--zombie-grace",
    "5",
    "--host-failure-polls",
    "3",
]


@dataclass(frozen=True)
class Fault:
    """One fault of the schedule: what, on which target, when, and for how long."""

    at: float  # seconds after the start of the run, when it is injected
    kind: str
    target: str  # "host2", "engine", "postgres"
    hold: float  # seconds before it heals
    mode: str = ""  # partitions: drop | reject
    direction: str = ""  # partitions: to | both

    def describe(self) -> str:
        what = f"{self.kind} {self.target}"
        if self.kind == "partition":
            what += f" {self.mode} {self.direction}"
        return f"t={self.at:6.1f}s {what} for {self.hold:.1f}s"


def schedule(seed: int, seconds: float, partitions: bool = True) -> list[Fault]:
    """The faults of a run of `seconds` with `seed`: the same list for the same arguments."""
    rng = random.Random(seed)
    kinds = [k for k in FAULT_KINDS if partitions or k != "partition"]
    faults: list[Fault] = []
    t = rng.uniform(2.0, 4.0)
    while t < seconds:
        kind = rng.choice(kinds)
        agent = f"host{rng.randint(1, AGENTS)}"
        if kind == "partition":
            fault = Fault(
                t,
                kind,
                agent,
                rng.uniform(1.0, 6.0),
                rng.choice(["drop", "reject"]),
                rng.choice(["to", "both"]),
            )
        elif kind == "pause_agent":
            fault = Fault(t, kind, agent, rng.uniform(AGENT_DEADLINE + 1.0, AGENT_DEADLINE + 5.0))
        elif kind == "kill_agent":
            fault = Fault(t, kind, agent, rng.uniform(0.2, 3.0))
        elif kind == "kill_engine":
            fault = Fault(t, kind, "engine", rng.uniform(0.2, 2.0))
        else:
            fault = Fault(t, kind, "postgres", rng.uniform(0.5, 3.0))
        faults.append(fault)
        t += fault.hold + rng.uniform(1.0, 4.0)
    return faults
