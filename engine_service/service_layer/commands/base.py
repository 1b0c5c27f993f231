"""The command framework: the seed's CommandBase, in Python.

A command type is one module: a subclass of CommandBase with an `action_type`, that overrides
the hooks it needs. The framework drives them (design section 3):

1. `validate(repo)`: checks against the real state; raises a ServiceError; writes nothing.
2. `build_child_commands()`: the parent constructs its children.
3. `insert_async_task_placeholders(repo, pick_host)`: the parent row, its children, one
   placeholder per child task (engine-generated task id, no agent id), the entity locks and the
   target entities in LOCKED state: added to ONE transaction, which the caller commits.
4. `task_plan()`: a child that runs one agent task says which verb, arguments and image;
   `execute(agent, task_id)` starts it on the host chosen for its placeholder.
5. `end_successfully(repo)` / `end_with_failure(repo)`: settle the entities, in the transaction
   that makes the command terminal and releases its locks (see `end_command`). `fail_many`
   settles a whole batch of failed commands of one type with set-based SQL; a type that
   implements it gets `end_with_failure` for free.

After a restart a command is rebuilt from its row (`from_row`), so everything a hook needs must
be in `params`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Select

from engine_service.adapters.agent_client import AgentClient
from engine_service.adapters.orm import CommandRow, EntityLockRow, TaskRow, utcnow
from engine_service.adapters.repository import Repository
from engine_service.domain.model import CommandStatus, Outcome, TaskCleanup


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class TaskPlan:
    """One agent task: the verb, its arguments (request_id aside) and the image it writes."""

    verb: str
    args: dict[str, Any]
    storage_domain_id: str
    image_id: str


class CommandBase:
    action_type: ClassVar[str]
    _types: ClassVar[dict[str, type[CommandBase]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "action_type" in cls.__dict__:
            CommandBase._types[cls.action_type] = cls

    def __init__(
        self, params: dict[str, Any], command_id: str | None = None, target_id: str | None = None
    ) -> None:
        self.params = params
        self.command_id = command_id or new_id()
        self.target_id = target_id
        self.children: list[CommandBase] = []

    @staticmethod
    def type_named(action_type: str) -> type[CommandBase]:
        try:
            return CommandBase._types[action_type]
        except KeyError:
            raise LookupError(f"no command type {action_type!r} is registered") from None

    @staticmethod
    def from_row(row: CommandRow) -> CommandBase:
        cls = CommandBase.type_named(row.action_type)
        return cls(dict(row.params), row.command_id, row.target_id)

    # -- hooks -----------------------------------------------------------------------------

    def validate(self, repo: Repository) -> None:
        """Raise a ServiceError if the command cannot run now. (That no host is UP is found
        by `submit` when it picks the hosts, in the same transaction.)"""

    def build_child_commands(self) -> list[CommandBase]:
        return []

    def task_plan(self) -> TaskPlan | None:
        return None

    def execute(self, agent: AgentClient, task_id: str) -> str:
        """Step 4, for a child with a task: ask its host's agent to start the task, with the
        engine's task id as the request id. Returns the agent's task id."""
        plan = self.task_plan()
        if plan is None:
            raise TypeError(f"{self.action_type} has no task to execute")
        return agent.start_task(plan.verb, task_id, plan.args)

    def entity_locks(self) -> list[tuple[str, str]]:
        """(entity type, entity id) pairs to lock for the command's lifetime."""
        return []

    def create_locked_entities(self, repo: Repository) -> None:
        """Add the entities the command creates or uses, LOCKED."""

    def end_successfully(self, repo: Repository) -> None:
        pass

    def end_with_failure(self, repo: Repository) -> None:
        """Settle this command's entities after a failure or a cancel. A type that implements
        `fail_many` needs nothing more: it is used for the one command."""
        if type(self).fail_many.__func__ is not CommandBase.fail_many.__func__:  # type: ignore[attr-defined]
            type(self).fail_many(repo, repo.one_command(self.command_id))

    @classmethod
    def fail_many(cls, repo: Repository, roots: Select[Any]) -> None:
        """Settle the entities of many failed commands of this type at once (reconciliation
        fails thousands in one transaction): set-based SQL over `roots`, a subquery of
        command ids. The default settles them one at a time with `end_with_failure`."""
        for row in repo.commands_in(roots):
            cls.from_row(row).end_with_failure(repo)

    # -- framework ---------------------------------------------------------------------------

    def insert_async_task_placeholders(
        self, repo: Repository, pick_host: Callable[[], str]
    ) -> list[TaskRow]:
        """Add everything the command needs to one transaction; the caller commits."""
        now = utcnow()
        rows: list[CommandRow] = [self._row(None, now)]
        placeholders: list[TaskRow] = []
        for child in self.children:
            rows.append(child._row(self.command_id, now))
            plan = child.task_plan()
            if plan is not None:
                placeholders.append(
                    TaskRow(
                        task_id=new_id(),
                        command_id=child.command_id,
                        root_command_id=self.command_id,
                        host_id=pick_host(),
                        vdsm_task_id=None,
                        verb=plan.verb,
                        args=plan.args,
                        storage_domain_id=plan.storage_domain_id,
                        image_id=plan.image_id,
                        state=None,
                        result=None,
                        progress_percent=0,
                        message="",
                        cleanup=TaskCleanup.NONE.value,
                        created_at=now,
                    )
                )
        repo.insert(*rows)  # the parent first: its children refer to it
        repo.insert(
            *(
                EntityLockRow(
                    entity_type=kind,
                    entity_id=entity_id,
                    command_id=self.command_id,
                    created_at=now,
                )
                for kind, entity_id in self.entity_locks()
            )
        )
        self.create_locked_entities(repo)
        repo.insert(*placeholders)
        return placeholders

    def _row(self, parent_id: str | None, now: datetime) -> CommandRow:
        return CommandRow(
            command_id=self.command_id,
            parent_id=parent_id,
            action_type=self.action_type,
            status=CommandStatus.ACTIVE.value,
            params=self.params,
            target_id=self.target_id,
            failure_reason="",
            created_at=now,
        )


def end_command(
    repo: Repository, root_id: str, outcome: Outcome, unresolved: Sequence[str] = ()
) -> int | None:
    """Make a top-level command terminal, exactly once: settle its entities, delete the
    placeholders that never reached an agent, mark its other tasks for cleanup and release its
    locks. `unresolved` placeholders may have reached an agent that did not answer: they are
    kept as cleanup debt instead of being deleted. Returns the number of placeholders deleted,
    or None if the command had already ended. The caller commits."""
    if not repo.end_command_tree(root_id, outcome.status.value, outcome.reason, utcnow()):
        return None
    repo.mark_unresolved(unresolved, TaskCleanup.COMPENSATE.value)
    row = repo.get(CommandRow, root_id)
    assert row is not None
    command = CommandBase.from_row(row)
    if outcome.status is CommandStatus.SUCCEEDED:
        command.end_successfully(repo)
        cleanup = TaskCleanup.CLEAR
    else:
        command.end_with_failure(repo)
        cleanup = TaskCleanup.COMPENSATE
    removed = repo.settle_tasks(root_id, cleanup.value)
    repo.release_locks(root_id)
    return removed
