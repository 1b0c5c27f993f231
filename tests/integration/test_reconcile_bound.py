"""The ReconcileOrphans reply is bounded: 120,000 orphaned commands (more than gRPC's default
4 MiB message limit holds as ids) are counted, the first 1000 listed, and ListCommands finds
them all from `failed_at`. On a real SQLite file, its rows written in bulk."""

from __future__ import annotations

import sqlite3
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from engine_service.bootstrap import EngineSettings, bootstrap
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandFilter, CommandStatus
from engine_service.entrypoints.grpc_servicer import EngineServicer
from engine_service.entrypoints.messages import reconcile_response
from engine_service.service_layer.polling import PollSettings
from engine_service.service_layer.reconciliation import LISTED_IDS, ORPHAN_REASON
from engine_service.v1 import engine_service_pb2 as pb

ORPHANS = 120_000
GRPC_DEFAULT_LIMIT = 4 * 1024 * 1024


def seed_orphans(database: Path, n: int) -> None:
    """n ACTIVE AddDisk commands, each with one placeholder that never reached its host (an
    address nobody answers at), written with sqlite3's executemany in one transaction."""
    stamp = (utcnow() - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    run = uuid.uuid4().hex[:8]
    host = str(uuid.uuid4())
    commands, tasks = [], []
    for i in range(n):
        cmd, image = f"{run}-0001-4000-8000-{i:012x}", f"{run}-0002-4000-8000-{i:012x}"
        commands.append((cmd, "AddDisk", "ACTIVE", f'{{"disk_id": "{image}"}}', image, "", stamp))
        task = f"{run}-0003-4000-8000-{i:012x}"
        tasks.append((task, cmd, cmd, host, "CreateVolume", "{}", "sd", image, 0, "", "", stamp))
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO hosts (host_id, name, address, status, failed_polls, created_at) "
            "VALUES (?, 'h', '127.0.0.1:1', 'UP', 0, ?)",
            (host, stamp),
        )
        conn.executemany(
            "INSERT INTO commands (command_id, action_type, status, params, target_id, "
            "failure_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            commands,
        )
        conn.executemany(
            "INSERT INTO async_tasks (task_id, command_id, root_command_id, host_id, verb, args, "
            "storage_domain_id, image_id, progress_percent, message, cleanup, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            tasks,
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def test_reconciling_120000_orphans_replies_under_4_mib_and_lists_the_rest_on_demand(
    tmp_path: Path,
) -> None:
    database = tmp_path / "engine.db"
    engine = bootstrap(
        EngineSettings(f"sqlite:///{database}", poll=PollSettings(interval=3600, agent_deadline=1))
    )
    try:
        seed_orphans(database, ORPHANS)
        began = time.perf_counter()
        report = engine.reconcile()
        seconds = time.perf_counter() - began
        # This run's report, and the same as the startup report (a restart finds them too).
        reply = reconcile_response(report, report)
        size = reply.ByteSize()
        print(f"reconciled {ORPHANS} orphans in {seconds:.1f} s; reply {size} bytes")
        assert size < GRPC_DEFAULT_LIMIT
        for r in (reply, reply.startup_report):
            assert r.failed_commands == ORPHANS
            assert len(r.failed_command_ids) == LISTED_IDS == 1000
            assert r.failed_at == reply.failed_at and r.HasField("failed_at")
        failed_at = reply.failed_at.ToDatetime()
        assert failed_at == report.failed_at

        # Through the RPC: nothing is left to fail; the startup report is still there.
        engine.reconciler.startup_report = report
        again = EngineServicer(engine).ReconcileOrphans(
            pb.ReconcileOrphansRequest(), cast(Any, None)
        )
        assert again.failed_commands == 0 and not again.HasField("failed_at")
        assert again.startup_report == reply.startup_report

        # The rest: every FAILED command that ended at failed_at.
        where = CommandFilter(
            CommandStatus.FAILED,
            ended_after=failed_at,
            ended_before=failed_at + timedelta(microseconds=1),
            failure_reason_contains=ORPHAN_REASON,
        )
        page, token = engine.commands(where, 500, "")
        assert len(page) == 500 and token
        assert {v.failure_reason for v in page} == {ORPHAN_REASON}
        with engine.uow(read_only=True) as uow:
            assert len(uow.repo.command_page(where, None, ORPHANS + 1)) == ORPHANS
            assert set(reply.failed_command_ids) <= {
                c.command_id for c in uow.repo.command_page(where, None, ORPHANS)
            }
    finally:
        engine.stop()
