"""The composition root: builds the engine from its settings (real adapters; tests may pass
their own)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine_service import observability as metrics
from engine_service.adapters.agent_client import AgentPool
from engine_service.adapters.db import (
    Database,
    make_engine,
    migrate,
    require_head,
    session_factory,
)
from engine_service.adapters.group_commit import GroupCommit
from engine_service.adapters.lease import Fence
from engine_service.adapters.writers import WriterGate
from engine_service.service_layer import commands  # noqa: F401  (registers command types)
from engine_service.service_layer.async_task_manager import AsyncTaskManager
from engine_service.service_layer.engine import Engine
from engine_service.service_layer.inventory import Inventory
from engine_service.service_layer.lifecycle import CommandLifecycle
from engine_service.service_layer.polling import PollSettings
from engine_service.service_layer.reconciliation import Reconciler
from engine_service.service_layer.retention import Pruner
from engine_service.service_layer.unit_of_work import UnitOfWork
from service_common.tls import ClientTls


@dataclass(frozen=True)
class EngineSettings:
    """What the engine is built from (the server reads it from its settings)."""

    database_url: str
    poll: PollSettings = field(default_factory=PollSettings)
    orphans: str = "fail"
    agent_timeout: float = 10.0
    agent_tls: ClientTls | None = None
    # --insecure: agents without TLS (no agent_tls) may be at non-loopback addresses too
    plaintext_agents_off_loopback: bool = False
    retention: float = 30 * 86400.0  # seconds an ended command is kept; 0 keeps everything
    migrate: bool = True  # False (--no-migrate): refuse a schema not at head (SchemaNotCurrent)

    @property
    def agents_on_loopback_only(self) -> bool:
        """Plaintext to agents (no `agent_tls`) and no --insecure: a new host must be at a
        loopback address."""
        return self.agent_tls is None and not self.plaintext_agents_off_loopback


def bootstrap(
    settings: EngineSettings,
    db: Database | None = None,
    agents: AgentPool | None = None,
    fence: Fence | None = None,
) -> Engine:
    """The engine over its database and agents: real adapters unless given. With a `fence`
    (the server's, while it holds the lease), every unit of work and every agent call is
    refused once the fence closes (the lease was lost: adapters/lease.py)."""
    db = db or make_engine(settings.database_url)
    if settings.migrate:
        migrate(db)
    else:
        require_head(db)
    sessions = session_factory(db)
    writers = groups = None
    if db.dialect.name == "sqlite":
        writers = WriterGate()
        groups = GroupCommit(writers, db.connect, on_commit=metrics.WRITE_GROUP_UNITS.observe)

    def uow(read_only: bool = False) -> UnitOfWork:
        if fence is not None:
            fence.check()
        return UnitOfWork(sessions, read_only, writers, groups)

    agents = agents or AgentPool(settings.agent_timeout, settings.agent_tls, fence)
    lifecycle = CommandLifecycle(uow, agents)
    manager = AsyncTaskManager(uow, agents, lifecycle, settings.poll)
    reconciler = Reconciler(
        uow, agents, lifecycle, manager, settings.poll.agent_deadline, settings.orphans
    )
    manager.sweep = lambda: reconciler.sweep(settings.poll.sweep_after)
    inventory = Inventory(
        uow,
        agents,
        settings.poll.agent_deadline,
        refuse_plaintext_off_loopback=settings.agents_on_loopback_only,
        last_seen=manager.poller.last_seen,
    )
    pruner = Pruner(uow, settings.retention)
    return Engine(uow, agents, lifecycle, manager, reconciler, inventory, pruner=pruner)
