"""The nemesis's schedule is a function of its seed alone (a failing seed replays the same
faults), and its last line has the published shape (docs/design.md, the contract)."""

from __future__ import annotations

import collections
import itertools
import re

from harness.nemesis import AGENT_DEADLINE, FAULT_KINDS, Outcome, schedule

LAST_LINE = re.compile(
    r"nemesis: seed \d+, \d+ faults \((\w+=\d+(, \w+=\d+)*)?\), \d+ commands "
    r"\(SUCCEEDED=\d+ FAILED=\d+ CANCELLED=\d+\), lost \d+, stuck \d+, leaked \d+"
)


def test_one_seed_one_schedule() -> None:
    assert schedule(23, 600) == schedule(23, 600)
    assert schedule(23, 600) != schedule(24, 600)
    # A longer run starts with the shorter one's faults.
    short = schedule(23, 35)
    assert schedule(23, 600)[: len(short)] == short


def test_the_schedule_uses_every_kind_and_keeps_faults_apart() -> None:
    faults = schedule(5, 600)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    for before, after in itertools.pairwise(faults):
        assert after.at >= before.at + before.hold + 1.0, "one fault at a time, healed first"
    pauses = [f.hold for f in faults if f.kind == "pause_agent"]
    assert min(pauses) > AGENT_DEADLINE, "a pause outlasts the engine's agent deadline"
    assert all(f.target in {"host1", "host2", "host3"} for f in faults if "agent" in f.kind)


def test_without_namespaces_there_are_no_partitions() -> None:
    assert "partition" not in {f.kind for f in schedule(5, 600, partitions=False)}


def test_the_last_line_has_the_published_shape() -> None:
    outcome = Outcome(
        7,
        collections.Counter({"kill_engine": 2, "partition": 1}),
        collections.Counter({"SUCCEEDED": 10, "FAILED": 2}),
        lost=[],
        stuck=["c1"],
        leaked=[],
    )
    line = outcome.last_line()
    assert line == (
        "nemesis: seed 7, 3 faults (kill_engine=2, partition=1), 12 commands "
        "(SUCCEEDED=10 FAILED=2 CANCELLED=0), lost 0, stuck 1, leaked 0"
    )
    assert LAST_LINE.fullmatch(line) and not outcome.ok
