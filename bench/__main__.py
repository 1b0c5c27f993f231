"""`make bench`: every benchmark of bench/README.md in one run, each figure beside a baseline
measured in the same run, as a ratio; results also in bench/results/latest.json and .md.

    python -m bench [--only submission,peers,group_commit,reconciliation,polling,copying,idle,load]
                    [--backends sqlite,postgresql] [--quick] [--scale] [--load-seconds S]
                    [--out DIR]

The load benchmark runs on SQLite only unless --backends is given; --scale runs the polling
and reconciliation benchmarks at ten times their sizes (100,000 tasks; 1,000,000 commands), and
polling adds a simulation of 1,000 agent endpoints with 100 tasks each (bench/scale.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import copying, group_commit, idle, load, polling, reconciliation, scale, submission
from bench.fixtures import backends, start_agents
from bench.stats import Figure, render_markdown, render_text

ALL = (
    "submission",
    "peers",
    "group_commit",
    "reconciliation",
    "polling",
    "copying",
    "idle",
    "load",
)
RESULTS = Path(__file__).with_name("results")


def say(line: str) -> None:
    print(line, flush=True)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": commit,
    }


def main(argv: list[str] | None = None) -> int:
    # The engine runs in-process for some benchmarks: its warnings (a reconciliation failing
    # 25,000 orphans, say) are the expected outcome there, not news.
    logging.getLogger("engine_service").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated benchmarks")
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated, default sqlite,postgresql (the load benchmark: sqlite)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, one round: checks the bench runs"
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="polling at 10,000 and 100,000 tasks, reconciliation at 100,000 and 1,000,000 "
        "commands (one round); long: not part of make bench",
    )
    parser.add_argument(
        "--load-seconds",
        type=float,
        default=None,
        help="how long the load is held (default 600; windows of 60 s, or half of it)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    ns = parser.parse_args(argv)
    only = [name for name in ns.only.split(",") if name]
    unknown = set(only) - set(ALL)
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    started = time.monotonic()
    figures: list[Figure] = []
    notes: list[str] = []
    info = machine()
    say(
        f"bench on {info['cpu']} ({info['cores']} cores), Python {info['python']}, {info['commit']}"
    )
    wanted = [b for b in (ns.backends or "sqlite,postgresql").split(",") if b]

    def lap() -> None:
        say(f"[{time.monotonic() - started:.0f} s]")

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, ExitStack() as stack:
        scratch = Path(tmp)
        chosen, skipped = backends(scratch, wanted)
        notes += skipped
        for line in skipped:
            say(line)
        if "submission" in only or "peers" in only:
            storage_root = scratch / "storage"
            engine_agent, plain_agent = start_agents(scratch, 2, storage_root, stack)
            settings = (
                submission.Settings(rounds=1, jobs=tuple(submission.QUICK_JOBS.items()), warmup=1)
                if ns.quick
                else submission.Settings()
            )
            for backend in chosen:
                say(
                    f"submission ({backend.name}): engine vs floor"
                    + (" and peers" if "peers" in only else "")
                )
                found, more = submission.run(
                    backend, engine_agent, plain_agent, storage_root, settings, "peers" in only, say
                )
                figures += [f for f in found if f.benchmark in (*only, "limit")]
                notes += more
            lap()
        if "group_commit" in only and any(b.name == "sqlite" for b in chosen):
            say("group commit (sqlite): write units, grouped vs each its own COMMIT")
            for backend in chosen:
                figures += group_commit.run(backend, ns.quick, say)
            lap()
        if "reconciliation" in only:
            for backend in chosen:
                say(f"reconciliation ({backend.name})")
                figures += reconciliation.run(backend, ns.quick, say, ns.scale)
            lap()
        if "polling" in only:
            found, more = polling.run(scratch, chosen, ns.quick, say, stack, ns.scale)
            figures += found
            notes += more
            if ns.scale:
                say("scale: simulated endpoints")
                figures += scale.run(chosen, ns.quick, say, stack)
            lap()
        if "copying" in only:
            say("copying")
            figures += copying.run(scratch, ns.quick, say, stack)
            lap()
        if "idle" in only:
            for backend in chosen:
                say(f"idle ({backend.name})")
                figures += idle.run(
                    backend, 4.0 if ns.quick else 30.0, 3.0 if ns.quick else 8.0, say
                )
            lap()
        if "load" in only:
            held = load.with_seconds(
                load.QUICK if ns.quick else load.LoadSettings(), ns.load_seconds
            )
            for backend in chosen if ns.backends else [b for b in chosen if b.name == "sqlite"]:
                say(f"load ({backend.name})")
                figures += load.run(backend, held, say)
            lap()
    seconds = time.monotonic() - started
    notes = list(dict.fromkeys(notes))
    say("")
    say(render_text(figures))
    windows = load.windows_table(figures)
    if windows:
        say(windows)
    for note in notes:
        say(f"note: {note}")
    missed = [f for f in figures if f.missed]
    say(f"\n{len(figures)} figures in {seconds:.0f} s; {len(missed)} target(s) missed")
    ns.out.mkdir(parents=True, exist_ok=True)
    stem = "latest" if not ns.quick else "quick"
    (ns.out / f"{stem}.json").write_text(
        json.dumps(
            {
                "machine": info,
                "seconds": round(seconds, 1),
                "argv": sys.argv[1:],
                "notes": notes,
                "figures": [f.as_dict() for f in figures],
            },
            indent=2,
        )
        + "\n"
    )
    (ns.out / f"{stem}.md").write_text(
        f"Measured {info['date']} on {info['cpu']}, {info['cores']} cores, "
        f"{info['memory_gib']} GiB, Python {info['python']}, commit {info['commit']}; "
        f"{seconds:.0f} s in all.\n\n"
        + render_markdown(figures)
        + "\n"
        + (windows + "\n" if windows else "")
        + "".join(f"\n- {note}" for note in notes)
        + "\n"
    )
    say(f"written: {ns.out / (stem + '.json')} and {stem}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
