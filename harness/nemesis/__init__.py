"""A nemesis soak, Jepsen's way: a seeded workload runs against a real data center while a
nemesis injects real faults, then everything heals and a checker verifies every invariant.

    python -m harness.nemesis --seconds 120 --seed 42      # or: NEMESIS_SECONDS=600 make nemesis

**The data center.** One engine and three throttled agents (so that copies are in flight when a
fault lands) in a network namespace of their own (harness.netfaults), on a PostgreSQL server of
the nemesis's own (harness.pg_server), which the namespace reaches through an imported port.
Without network namespaces (not root, no iptables) it runs outside one, without partitions,
and says so; without PostgreSQL binaries it cannot run.

**The workload.** Two clients (durable_virt_tasks_client.EngineClient, retrying UNAVAILABLE with
one request id per create) alternate AddDisk, AddVmTemplate of one of four VMs and CancelCommand
of a command they started, each from a random.Random of its own seeded from the seed.

**The nemesis.** Every 1 to 4 s it picks one fault and holds it for a while, then heals it:
partition an agent's port (drop or reject; engine-to-agent only or both ways), kill -9 an agent
or the engine and start it again, restart PostgreSQL or kill it -9 and start it again, pause an
agent (SIGSTOP) for longer than the engine's agent deadline. The schedule (which fault, on what,
for how long, the gaps) is drawn from random.Random(seed) alone, so a failing seed replays the
same faults in the same order; the timing of the workload around them is the machine's.

**The checker**, after healing and re-sending every create whose outcome the client never learnt
(with its request id): every command terminal within a bound (else *stuck*); every command the
clients were given still known, every request id answered with the command first given for it,
every SUCCEEDED template's copies holding its VM's bytes and every SUCCEEDED disk's image on
storage (else *lost*); no task row, placeholder, lock or LOCKED entity, no task left on an agent,
no file under the storage root that is not an OK image, every history agreeing with its command
and ReconcileOrphans reporting zeros (else *leaked*). The last line reads:

    nemesis: seed S, F faults (kind=n, ...), C commands (SUCCEEDED=n FAILED=n CANCELLED=n),
    lost 0, stuck 0, leaked 0

and the exit status is 0 only when all three are 0.
"""

from harness.nemesis.checker import Outcome
from harness.nemesis.runner import faults_of, main, run, unavailable
from harness.nemesis.schedule import AGENT_DEADLINE, FAULT_KINDS, Fault, schedule

__all__ = [
    "AGENT_DEADLINE",
    "FAULT_KINDS",
    "Fault",
    "Outcome",
    "faults_of",
    "main",
    "run",
    "schedule",
    "unavailable",
]
