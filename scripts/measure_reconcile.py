"""Time and peak Python memory of one reconciliation over N commands of 4 placeholders each, a
quarter of them orphaned, the agent answering "not found" (what issue 8's benchmark 3 needs).

    python scripts/measure_reconcile.py 1000 10000 100000 [--database-url URL]

Commands are AddDisk rows written straight into a fresh database; the engine's real
reconciliation runs in-process against an agent stub (the agent side is not measured)."""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from engine_service.adapters.agent_client import AgentPool
from engine_service.adapters.db import make_engine, migrate
from engine_service.adapters.orm import (
    CommandRow,
    DiskRow,
    EntityLockRow,
    HostRow,
    StorageDomainRow,
    TaskRow,
    utcnow,
)
from engine_service.bootstrap import EngineSettings, bootstrap


class NothingKnown(AgentPool):
    """Every agent answers at once and knows no task."""

    def get(self, address: str) -> Any:
        class Empty:
            def all_info(self, timeout: float | None = None) -> list[Any]:
                return []

            def all_statuses(self, timeout: float | None = None) -> dict[str, Any]:
                return {}

        return Empty()


def populate(url: str, n: int) -> None:
    db = make_engine(url)
    migrate(db)
    host, sd, now = str(uuid.uuid4()), str(uuid.uuid4()), utcnow()
    with db.begin() as c:
        c.execute(
            insert(HostRow),
            [
                dict(
                    host_id=host,
                    name="h",
                    address="127.0.0.1:1",
                    status="UP",
                    failed_polls=0,
                    created_at=now,
                )
            ],
        )
        c.execute(insert(StorageDomainRow), [dict(storage_domain_id=sd, name="s", created_at=now)])
        for start in range(0, n, 5000):
            commands, disks, locks, tasks = [], [], [], []
            for i in range(start, min(n, start + 5000)):
                cmd, disk = str(uuid.uuid4()), str(uuid.uuid4())
                commands.append(
                    dict(
                        command_id=cmd,
                        parent_id=None,
                        action_type="AddDisk",
                        status="ACTIVE",
                        params={"disk_id": disk},
                        target_id=disk,
                        failure_reason="",
                        created_at=now,
                    )
                )
                disks.append(
                    dict(
                        disk_id=disk,
                        name="d",
                        storage_domain_id=sd,
                        image_id=disk,
                        size_bytes=1,
                        status="LOCKED",
                        created_at=now,
                    )
                )
                locks.append(
                    dict(entity_type="disk", entity_id=disk, command_id=cmd, created_at=now)
                )
                for k in range(4):
                    task = disk if k == 0 else str(uuid.uuid4())
                    tasks.append(
                        dict(
                            task_id=str(uuid.uuid4()),
                            command_id=cmd,
                            root_command_id=cmd,
                            host_id=host,
                            vdsm_task_id=None if i % 4 == 0 else str(uuid.uuid4()),
                            verb="CreateVolume",
                            args={},
                            storage_domain_id=sd,
                            image_id=task,
                            state=None,
                            result=None,
                            progress_percent=0,
                            message="",
                            cleanup="",
                            created_at=now,
                        )
                    )
            for table, rows in (
                (CommandRow, commands),
                (DiskRow, disks),
                (EntityLockRow, locks),
                (TaskRow, tasks),
            ):
                c.execute(insert(table), rows)
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sizes", type=int, nargs="+")
    parser.add_argument("--database-url", help="default: a fresh SQLite file per size")
    ns = parser.parse_args()
    for n in ns.sizes:
        with tempfile.TemporaryDirectory() as scratch:
            url = ns.database_url or f"sqlite:///{Path(scratch) / 'r.db'}"
            populate(url, n)
            engine = bootstrap(EngineSettings(url), agents=NothingKnown())
            tracemalloc.start()
            started = time.perf_counter()
            report = engine.reconcile()
            seconds = time.perf_counter() - started
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(
                f"{n:>7} commands: {seconds:6.2f} s, peak {peak / 1e6:5.1f} MB, "
                f"failed {len(report.failed_command_ids)}, "
                f"removed {report.removed_placeholders} placeholders"
            )


if __name__ == "__main__":
    main()
