"""The async task manager: once per interval it polls every host (polling.py), ends the
commands whose outcome is decided, fails the commands stuck on a dead host, cleans up after
terminal commands (cleanup.py) and clears zombies (zombies.py)."""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Callable

from engine_service import observability as metrics
from engine_service.adapters import writers
from engine_service.adapters.agent_client import AgentPool
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import decide_outcome
from engine_service.domain.hosts import HostStatus
from engine_service.domain.tasks import TaskView
from engine_service.service_layer.cleanup import Cleaner
from engine_service.service_layer.commands.base import CommandBase
from engine_service.service_layer.failing import Reaper
from engine_service.service_layer.isolation import NOT_ISOLATED, CommandEnder
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.polling import Poller, PollResult, PollSettings
from engine_service.service_layer.unit_of_work import UnitOfWorkFactory
from engine_service.service_layer.zombies import ZombieTracker
from service_common.spans import spanned

log = logging.getLogger(__name__)

__all__ = ["AsyncTaskManager", "PollResult", "PollSettings"]


class AsyncTaskManager:
    """The poll loop: polls, ends what is decided, fails what is stuck, cleans up."""

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        agents: AgentPool,
        lifecycle: CommandLifecycle,
        settings: PollSettings,
    ) -> None:
        self.uow = uow
        self.agents = agents
        self.lifecycle = lifecycle
        self.settings = settings
        self.poller = Poller(uow, agents, settings)
        self.cleaner = Cleaner(uow, agents, settings)
        self.zombies = ZombieTracker(uow, agents, settings, self.cleaner)
        self.reaper = Reaper(uow, settings)
        # Set by bootstrap: reconciles placeholders left unsent (reconciliation.py).
        self.sweep: Callable[[], object] | None = None
        self._ender = CommandEnder(lifecycle, settings.error_limit)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="async-task-manager", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop at a safe point: between two cycles, or after the step in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.poller.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with writers.background():  # takes turns with the clients (adapters/writers.py)
                    self.poll_once()
            except NOT_ISOLATED as exc:  # the database or the lease: one line, no traceback
                metrics.POLL_ERRORS.labels("cycle").inc()
                log.warning("poll cycle failed (%s); trying again next interval", exc)
            except Exception:
                metrics.POLL_ERRORS.labels("cycle").inc()
                log.exception("poll cycle failed; trying again next interval")
            self._stop.wait(self.settings.interval)

    @spanned("engine.poll")
    def poll_once(self) -> PollResult:
        with metrics.POLL_SECONDS.time():
            result = self.poll_hosts()
            self.end_decided_commands()
            self.fail_commands_on_dead_hosts()
            self.fail_commands_past_timeout()
            if self.sweep is not None:
                self.sweep()
            self.clean_up(result)
            self.zombies.handle(result)
            self.measure()
        return result

    def measure(self) -> None:
        """The gauges a dashboard reads: what is active, how old, hosts by status."""
        with self.uow(read_only=True) as uow:
            by_type = uow.repo.active_roots_by_type()
            oldest = uow.repo.oldest_active_root_created_at()
            hosts = uow.repo.hosts()
            metrics.TASKS_IN_FLIGHT.set(sum(uow.repo.tasks_per_host().values()))
        metrics.COMMANDS_ACTIVE.set(sum(by_type.values()))
        for action_type in CommandBase.action_types():
            metrics.ACTIVE_BY_TYPE.labels(action_type).set(by_type.get(action_type, 0))
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        metrics.OLDEST_ACTIVE_AGE.set(max(age, 0.0))
        counts = Counter((h.status.value, str(h.is_answering).lower()) for h in hosts)
        for status in HostStatus:
            for answering in ("true", "false"):
                metrics.HOSTS.labels(status.value, answering).set(counts[status.value, answering])

    def poll_hosts(self) -> PollResult:
        return self.poller.poll()

    def peek_hosts(self) -> PollResult:
        """Every host's task statuses, without recording anything (for reconciliation)."""
        return self.poller.peek()

    def clean_up(self, result: PollResult) -> int:
        return self.cleaner.clean_up(result, self.lifecycle.executing())

    # -- ending commands ---------------------------------------------------------------------

    def end_decided_commands(self) -> list[str]:
        """End the commands whose outcome is decided: in one transaction, or each in its own
        if that raises; one whose end keeps raising is retried, then fails (isolation.py)."""
        with self.uow(read_only=True) as uow:
            by_root: dict[str, list[TaskView]] = defaultdict(list)
            # Only a command with a finished task can be decided (decide_outcome): with
            # thousands of tasks running, the others are not even read.
            for task in uow.repo.active_tasks(decidable_only=True):
                by_root[task.root_command_id].append(task)
        decided = {
            root_id: outcome
            for root_id, tasks in by_root.items()
            if (outcome := decide_outcome(tasks)) is not None
        }
        return self._ender.end(decided)

    def fail_commands_on_dead_hosts(self) -> list[str]:
        """Commands with tasks on a host silent for longer than the task timeout (failing.py)."""
        return self.reaper.fail_commands_on_dead_hosts()

    def fail_commands_past_timeout(self) -> list[str]:
        """Commands older than --command-timeout (failing.py)."""
        return self.reaper.fail_commands_past_timeout()
