"""`make demo`: the product in one screen.

Two host agents share one storage root; the engine runs on an SQLite file. Through `enginectl`
we register the hosts, make two storage domains, three disks and a VM, and make a template
with live progress per disk. Then a second template is started with the engine told to die
in the middle of submitting it (ENGINE_CRASH_AT=after_agent_accept: one copy started on a
host, its id never stored). The engine restarts, reconciles before it serves, and we show the
report and the final state of both commands. Every process is stopped on exit and on Ctrl-C.

The engine serves its console (`--ui-listen`, on a free port kept across its restarts), whose
address is printed first. At a terminal, the demo waits for Enter before the template (time to
open the console) and at the end (the console stays up until then); otherwise it goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness.processes import AgentProcess, EngineProcess

MiB = 1 << 20
DISK_SIZE = "24MiB"
THROTTLE = 12 * MiB  # bytes per second per task, so that progress can be watched


def say(text: str = "") -> None:
    print(text, flush=True)


class Ctl:
    """Runs enginectl against the demo's engine and shows what it printed."""

    def __init__(self, address: str) -> None:
        self.env = {**os.environ, "ENGINECTL_ADDRESS": address}

    def show(self, *args: str) -> int:
        say(f"$ enginectl {' '.join(args)}")
        done = subprocess.run(
            [sys.executable, "-m", "engine_service.entrypoints.cli", *args],
            env=self.env,
            check=False,
        )
        return done.returncode

    def json(self, *args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "engine_service.entrypoints.cli", "--json", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"enginectl {' '.join(args)} failed: {done.stderr.strip()}")
        return json.loads(done.stdout)


def run(workdir: Path) -> None:
    storage = workdir / "storage"
    agents = [
        AgentProcess(workdir / f"host{i}", storage_root=storage, throttle=THROTTLE) for i in (1, 2)
    ]
    engine = EngineProcess(workdir / "engine", poll_interval=0.3, ui_listen="127.0.0.1:0")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()  # a person at a terminal
    try:
        say("== 1. Two host agents on one storage root, and the engine on SQLite")
        for agent in agents:
            agent.start()
            say(
                f"  vdsm-agent {agent.workdir.name} on {agent.address} "
                f"(throttled to {THROTTLE // MiB} MiB/s per task)"
            )
        engine.start()
        say(f"  engine-service on {engine.address}, database {engine.database_url}")
        say(f"  console: {engine.ui_url()}  (open it in a browser: it follows all of this live)")
        ctl = Ctl(engine.address)

        say("\n== 2. Hosts and storage domains")
        for agent in agents:
            ctl.show("host", "add", agent.workdir.name, agent.address)
        src = ctl.json("domain", "add", "data1")["storage_domain"]["storage_domain_id"]
        dst = ctl.json("domain", "add", "data2")["storage_domain"]["storage_domain_id"]
        ctl.show("domain", "list")

        say(f"\n== 3. Three {DISK_SIZE} disks (AddDisk commands) and a VM")
        disks = []
        for i in range(3):
            reply = ctl.json("disk", "add", f"disk{i}", "--domain", src, "--size", DISK_SIZE)
            disks.append(reply["disk"]["disk_id"])
        wait_all_settled(ctl)
        ctl.show("disk", "list")
        disk_args = [arg for d in disks for arg in ("--disk", d)]
        vm = ctl.json("vm", "add", "web", *disk_args)["vm"]["vm_id"]
        say(f"  VM web = {vm}")

        if interactive:
            input(f"\n  Open {engine.ui_url()} now; press Enter to make the template... ")
        say("\n== 4. A template from the VM: placeholders first, then one copy per disk")
        code = ctl.show(
            "template", "add", "--vm", vm, "--name", "golden", "--domain", dst, "--watch"
        )
        say(f"  (exit status {code})")

        say("\n== 5. A second template; the engine dies in the middle of submitting it")
        engine.kill()
        engine.start(crash_at="after_agent_accept")
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine_service.entrypoints.cli",
                "template",
                "add",
                "--vm",
                vm,
                "--name",
                "silver",
                "--domain",
                dst,
            ],
            env=ctl.env,
            capture_output=True,
            text=True,
            check=False,
        )
        engine.wait_crashed()
        say(f"  enginectl: {second.stderr.strip() or second.stdout.strip()}")
        say("  the engine is gone: one copy was accepted by a host, its id never stored,")
        say("  the other two placeholders never reached a host")

        say("\n== 6. The engine restarts and reconciles before it serves")
        engine.start()
        ctl.show("reconcile")

        say("\n== 7. Final states")
        wait_all_settled(ctl)
        ctl.show("command", "list")
        ctl.show("template", "list")
        failed = ctl.json("command", "list", "--status", "failed", "--type", "AddVmTemplate")
        for command in failed.get("commands", [])[:1]:
            say("  what happened to the failed template, from its history:")
            ctl.show("command", "history", command["command_id"])
        leftovers = sorted(p.name for p in storage.rglob("*.partial"))
        say(
            f"  partial files on storage: {leftovers or 'none'}; "
            f"tasks left on the hosts: {count_agent_tasks(agents)}"
        )

        say("\n== 8. A disk moves in two phases; the good template is removed")
        extra = ctl.json("disk", "add", "extra", "--domain", src, "--size", DISK_SIZE)
        wait_all_settled(ctl)
        extra_id = extra["disk"]["disk_id"]
        say("  MoveDisk: copy to data2, then (the copy recorded as the disk) remove the source")
        ctl.show("disk", "move", extra_id, "--domain", dst, "--wait")
        moves = ctl.json("command", "list", "--type", "MoveDisk")
        for command in moves.get("commands", [])[:1]:
            ctl.show("command", "history", command["command_id"])
        templates = ctl.json("template", "list").get("templates", [])
        for template in [t for t in templates if t["name"] == "golden"]:
            ctl.show("template", "remove", template["template_id"], "--wait")
        wait_all_settled(ctl)
        ctl.show("template", "list")
        ctl.show("disk", "list")

        keep_console_up(engine, interactive)

        say("\n== 9. SIGTERM: everything stops gracefully")
        for process in (engine, *agents):
            say(f"  {process.workdir.name} exited with status {process.terminate()}")
    finally:
        for process in (engine, *agents):
            process.close()


def keep_console_up(engine: EngineProcess, interactive: bool) -> None:
    """The console's view of the end; at a terminal, it stays up until Enter."""
    with urllib.request.urlopen(engine.ui_url("/api/commands"), timeout=10) as reply:
        listed = len(json.load(reply)["commands"])
    say(f"  the console ({engine.ui_url()}) lists the same {listed} commands")
    if interactive:
        input("\n  The console stays up: press Enter to stop everything... ")
    else:
        say(
            "  (stdin is not a terminal: not waiting. Run `make demo` in a terminal to keep the "
            "console up at the end, or start an engine with `engine-service --ui-listen "
            "127.0.0.1:8080`.)"
        )


def wait_all_settled(ctl: Ctl, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        commands = ctl.json("command", "list").get("commands", [])
        if all(c["status"] != "COMMAND_STATUS_ACTIVE" and not c.get("tasks") for c in commands):
            return
        time.sleep(0.5)
    raise SystemExit("commands did not settle in time")


def count_agent_tasks(agents: list[AgentProcess]) -> int:
    from vdsm_agent.v1 import agent_service_pb2 as apb

    return sum(
        len(a.stub().GetAllTasksInfo(apb.GetAllTasksInfoRequest(), timeout=10).tasks)
        for a in agents
    )


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="engine-demo-"))
    try:
        run(workdir)
        say("\nDemo finished.")
    except KeyboardInterrupt:
        say("\nInterrupted: every process was stopped.")
        sys.exit(130)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
