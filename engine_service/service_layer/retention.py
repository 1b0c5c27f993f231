"""Retention (`--retention`, docs/design.md §12): what ended longer ago than the retention is
deleted in the background, so that the tables stop growing with the engine's history.

A pass deletes, in transactions of at most `batch` top-level commands each (oldest first):
- top-level commands that ended before now - retention and have no task row left (one whose
  cleanup is still owed keeps its rows until it is paid), with their children, and the client
  request ids whose result they are;
- client request ids made before the cutoff whose result is not an ACTIVE command (AddHost's,
  AddVm's, ...); a request id whose command is still ACTIVE is never deleted.

The pruner runs on a thread of its own, so a pass never delays a poll. It stops at a safe
point: between two transactions.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

from engine_service import observability as metrics
from engine_service.adapters import writers
from engine_service.domain.clock import utcnow
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)

BATCH = 500  # top-level commands (and stray request ids) per transaction
MAX_INTERVAL = 60.0  # seconds between passes, at most
FIRST_PASS_DELAY = 5.0  # seconds after start: after the startup reconciliation and cleanup
KINDS = ("commands", "child_commands", "client_requests")


class PruneReport(Counter[str]):
    """What one pass deleted, by kind (KINDS), and in how many transactions."""

    @property
    def transactions(self) -> int:
        return self["transactions"]

    def __str__(self) -> str:
        return ", ".join(f"{self[kind]} {kind}" for kind in KINDS)


class Pruner:
    """Deletes, every `interval` on its own thread, what `retention` seconds no longer keep
    (0: nothing, and no thread)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        retention: float,
        batch: int = BATCH,
        first_delay: float = FIRST_PASS_DELAY,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.uow = uow
        self.retention = retention
        self.batch = batch
        self.first_delay = first_delay
        self.clock = clock
        self.interval = min(retention / 10, MAX_INTERVAL)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.retention > 0

    def cutoff(self) -> datetime | None:
        """Now - retention; None if that is before the calendar's start (nothing is so old)."""
        try:
            return self.clock() - timedelta(seconds=self.retention)
        except OverflowError:
            return None

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="retention-pruner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop at a safe point: between two transactions."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        delay = min(self.first_delay, self.interval)
        while not self._stop.wait(delay):
            try:
                # the engine's own work: takes turns with the clients' units and never joins
                # their group commit (adapters/writers.py, adapters/group_commit.py)
                with writers.background():
                    self.prune_once()
            except Exception:
                log.exception("retention pass failed; trying again in %.0f s", self.interval)
            delay = self.interval

    # -- one pass ----------------------------------------------------------------------------

    def prune_once(self) -> PruneReport:
        """One pass: transactions of at most `batch` commands and `batch` stray request ids,
        until one finds less than a full batch of either (or the pruner is told to stop)."""
        report = PruneReport()
        cutoff = self.cutoff() if self.enabled else None
        if cutoff is not None:
            with self.uow(read_only=True) as uow:
                if not uow.repo.anything_to_prune(cutoff):
                    return report  # idle: no writing transaction at all
        while cutoff is not None and not self._stop.is_set():
            with self.uow() as uow:
                pruned = Counter(uow.repo.prune_commands_ended_before(cutoff, self.batch))
                stray = uow.repo.prune_client_requests(cutoff, self.batch)
                if not (any(pruned.values()) or stray):
                    break  # nothing to delete: no commit
                pruned["client_requests"] += stray
                uow.commit()
            report.update(pruned)
            report["transactions"] += 1
            if pruned["commands"] < self.batch and stray < self.batch:
                break
        if report.transactions:
            for kind in KINDS:
                metrics.PRUNED.labels(kind).inc(report[kind])
            log.info(
                "retention: pruned %s ended before %s, in %d transaction(s)",
                report,
                cutoff,
                report.transactions,
            )
        return report
