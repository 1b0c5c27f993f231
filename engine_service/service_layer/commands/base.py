"""The command framework: the oVirt note's CommandBase, in Python (docs/design.md §4).

A command type is one module: a subclass of CommandBase with an `action_type` and a
`params_type` (a dataclass), that overrides the hooks it needs. The framework drives them:

1. `validate(repo)`: checks against the real state; raises a ServiceError; writes nothing.
2. `build_child_commands()`: the parent constructs its children.
3. `insert_async_task_placeholders(repo, pick_host)`: the parent record, its children, one
   placeholder per child task (engine-generated task id, no agent id), the entity locks and the
   target entities in LOCKED state: added to ONE transaction, which the caller commits.
4. `task_plan()`: a child that runs one agent task says which verb and arguments;
   `execute(agent, task_id)` starts it on the host chosen for its placeholder.
5. `next_phase(repo, children)`: a command whose work comes in phases (copy, then delete the
   source) returns the children of its next phase once every task so far has succeeded; the
   framework ends the phase and commits their placeholders in ONE transaction
   (`start_next_phase`), then starts them. The default, no next phase, ends the command.
6. `end_successfully(repo)` / `end_with_failure(repo)`: settle the entities, in the transaction
   that makes the command terminal and releases its locks (see `end_commands`). `fail_many`
   settles a whole batch of failed commands of one type with set-based statements; a type that
   implements it gets `end_with_failure` for free. `succeed_many` is its counterpart for the
   commands of a type that succeeded in one commit (by default, `end_successfully` on each).

After a restart a command is rebuilt from its record (`from_record`), so everything a hook
needs must be in its params.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from engine_service.adapters.repository import Repository
from engine_service.domain import history
from engine_service.domain.clock import utcnow
from engine_service.domain.commands import CommandBatch, CommandRecord, Outcome
from engine_service.domain.inventory import EntityKind, EntityLock
from engine_service.domain.tasks import AsyncTask, TaskCleanup, TaskPlan, new_id
from service_common.errors import FailedPrecondition


class TaskStarter(Protocol):
    """What `execute` needs of an agent client."""

    def start_task(self, verb: str, request_id: str, args: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class Params:
    """A command type's parameters: stored as JSON with its record, read back after a restart."""

    def to_json(self) -> dict[str, Any]:
        """The fields as plain values: what `dataclasses.asdict` gives, without its deep copies
        (the values are immutable), at a fraction of its cost (13 calls per template)."""
        return {name: _plain(getattr(self, name)) for name in _field_names(type(self))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(**data)


_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _plain(value: Any) -> Any:
    """A value with the dataclasses in it (alone or in a tuple) as dicts."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    return value


P = TypeVar("P", bound=Params)


class CommandBase(Generic[P]):
    """A command of one type: its hooks, driven by the framework and the lifecycle."""

    action_type: ClassVar[str]
    params_type: ClassVar[type[Params]]
    _types: ClassVar[dict[str, type[CommandBase[Any]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "action_type" in cls.__dict__:
            CommandBase._types[cls.action_type] = cls

    def __init__(self, params: P, command_id: str | None = None, target_id: str | None = None):
        self.params = params
        self.command_id = command_id or new_id()
        self.target_id = target_id
        self.children: list[CommandBase[Any]] = []
        self.submitted_by = ""  # who asked for it, for its history
        # What insert_async_task_placeholders added: the records (this command's first) and
        # the target entity it made (create_locked_entities), kept for the reply.
        self.records: list[CommandRecord] = []
        self.made: object | None = None

    def again(self) -> CommandBase[Any]:
        """A new command with the same parameters and new ids, for RetryCommand."""
        raise FailedPrecondition(f"a {self.action_type} command cannot be retried")

    @staticmethod
    def action_types() -> list[str]:
        """The registered command types' names (the RPC names)."""
        return sorted(CommandBase._types)

    @staticmethod
    def type_named(action_type: str) -> type[CommandBase[Any]]:
        try:
            return CommandBase._types[action_type]
        except KeyError:
            raise LookupError(f"no command type {action_type!r} is registered") from None

    @staticmethod
    def from_record(record: CommandRecord) -> CommandBase[Any]:
        cls = CommandBase.type_named(record.action_type)
        return cls(cls.params_type.from_json(record.params), record.command_id, record.target_id)

    # -- hooks -----------------------------------------------------------------------------

    def validate(self, repo: Repository) -> None:
        """Raise a ServiceError if the command cannot run now. (That no host is UP is found
        by `submit` when it picks the hosts, in the same transaction.)"""

    def build_child_commands(self) -> list[CommandBase[Any]]:
        return []

    def task_plan(self) -> TaskPlan | None:
        return None

    def execute(self, agent: TaskStarter, task_id: str) -> str:
        """Step 4, for a child with a task: ask its host's agent to start the task, with the
        engine's task id as the request id. Returns the agent's task id."""
        return agent.start_task(*self.start_of(task_id))

    def start_of(self, task_id: str) -> tuple[str, str, dict[str, Any]]:
        """What starting this child's task asks of its agent: (verb, request id, arguments),
        the request id being the engine's task id (several go in one call: sending.py)."""
        plan = self.task_plan()
        if plan is None:
            raise TypeError(f"{self.action_type} has no task to execute")
        return plan.verb.value, task_id, dict(plan.args)

    def next_phase(
        self, repo: Repository, children: list[CommandBase[Any]]
    ) -> list[CommandBase[Any]]:
        """The children of the next phase, now that every task of `children` (all the
        children so far) has succeeded; [] if the command is done. Called inside the
        transaction that ends the phase: what the phase's success changes in the inventory is
        written here, with the next phase's placeholders."""
        return []

    # True for a type that overrides next_phase (its commands may have more than one phase).
    has_phases: ClassVar[bool] = False

    def phase_name(self, phase: int) -> str:
        """What phase `phase` (1, 2, ...) does, for the history."""
        return f"phase {phase}"

    def entity_locks(self) -> list[tuple[EntityKind, str]]:
        """(entity kind, entity id) pairs to lock for the command's lifetime."""
        return []

    def create_locked_entities(self, repo: Repository) -> object | None:
        """Add the entities the command creates or uses, LOCKED. Returns the target entity it
        made, as the repository would read it back (the reply to its client is built from it
        without a read), or None: the reply reads it."""
        return None

    def end_successfully(self, repo: Repository) -> None:
        """Settle this command's entities after its success. A type that implements
        `succeed_many` needs nothing more: it is used for the one command."""
        if type(self).succeed_many.__func__ is not CommandBase.succeed_many.__func__:  # type: ignore[attr-defined]
            type(self).succeed_many(repo, [self])

    @classmethod
    def succeed_many(cls, repo: Repository, commands: Sequence[Self]) -> None:
        """Settle the entities of many commands of this type that succeeded and end in one
        transaction, with set-based repository calls. The default calls `end_successfully`
        on each."""
        for command in commands:
            command.end_successfully(repo)

    def end_with_failure(self, repo: Repository) -> None:
        """Settle this command's entities after a failure or a cancel. A type that implements
        `fail_many` needs nothing more: it is used for the one command."""
        if type(self).fail_many.__func__ is not CommandBase.fail_many.__func__:  # type: ignore[attr-defined]
            type(self).fail_many(repo, CommandBatch.of([self.command_id]))

    @classmethod
    def fail_many(cls, repo: Repository, batch: CommandBatch) -> None:
        """Settle the entities of many failed commands of this type at once (reconciliation
        fails thousands in one transaction) with set-based repository calls over `batch`.
        The default settles them one at a time with `end_with_failure`."""
        for record in repo.commands_in(batch):
            cls.from_record(record).end_with_failure(repo)

    # -- framework ---------------------------------------------------------------------------

    def insert_async_task_placeholders(
        self, repo: Repository, pick_host: Callable[[], str]
    ) -> list[AsyncTask]:
        """Add everything the command needs to one transaction; the caller commits."""
        now = utcnow()
        records = [self.record(None, now)]
        placeholders: list[AsyncTask] = []
        for child in self.children:
            records.append(child.record(self.command_id, now))
            plan = child.task_plan()
            if plan is not None:
                placeholders.append(
                    AsyncTask.placeholder(plan, child.command_id, self.command_id, pick_host(), now)
                )
        repo.add_commands(records)  # the parent first: its children refer to it
        repo.add_locks(
            (
                EntityLock(kind, entity_id, self.command_id)
                for kind, entity_id in self.entity_locks()
            ),
            now,
        )
        self.made = self.create_locked_entities(repo)
        self.records = records
        repo.add_tasks(placeholders)
        repo.add_events(
            history.accepted(
                self.command_id, self.action_type, placeholders, now, self.submitted_by
            )
        )
        return placeholders

    def record(self, parent_id: str | None, now: datetime) -> CommandRecord:
        return CommandRecord(
            command_id=self.command_id,
            action_type=self.action_type,
            params=self.params.to_json(),
            parent_id=parent_id,
            target_id=self.target_id,
            created_at=now,
        )


def start_next_phase(
    repo: Repository, root_id: str, pick_host: Callable[[], str]
) -> list[AsyncTask] | None:
    """If the ACTIVE command `root_id` has a next phase: end this one (its tasks are cleared
    on their hosts, never compensated: what they made is kept) and add the next phase's
    children and placeholders, all to the caller's transaction. Returns the new placeholders,
    or None if the command has no next phase (or is no longer ACTIVE): it is done."""
    record = repo.command_for_update(root_id)
    if record is None or record.status.terminal:
        return None
    command = CommandBase.from_record(record)
    done = repo.children_of_many([root_id]).get(root_id, [])
    if not command.has_phases:
        return None
    first_host = pick_host()  # FailedPrecondition (no host UP) before anything is written
    children = command.next_phase(repo, [CommandBase.from_record(c) for c in done])
    if not children:
        return None
    hosts = iter([first_host])
    now = utcnow()
    phase = 1 + len({c.created_at for c in done})  # a phase's children share their time
    repo.settle_tasks_of(CommandBatch.of([root_id]), TaskCleanup.CLEAR)
    repo.add_commands(c.record(root_id, now) for c in children)
    placeholders = [
        AsyncTask.placeholder(
            plan, child.command_id, root_id, next(hosts, None) or pick_host(), now
        )
        for child in children
        if (plan := child.task_plan()) is not None
    ]
    repo.add_tasks(placeholders)
    repo.add_events(
        history.next_phase(root_id, phase, placeholders, now, command.phase_name(phase))
    )
    return placeholders


def end_commands(
    repo: Repository,
    ends: Mapping[str, tuple[CommandRecord, Outcome]],
    unresolved: Sequence[str] = (),
) -> None:
    """Make these ACTIVE top-level commands (their records read with their rows locked)
    terminal, each with its outcome, set-based: settle their entities (`succeed_many`,
    `fail_many`: once per type and end), delete their placeholders that never reached an agent,
    mark their other tasks for cleanup and release their locks. `unresolved` placeholders may
    have reached an agent that did not answer: they are kept as cleanup debt instead of being
    deleted. The caller commits. A handful of statements per outcome and type, whatever the
    number of commands (a poll ends a batch of them in one commit)."""
    now = utcnow()
    by_outcome: dict[Outcome, list[str]] = {}
    for root_id, (_, outcome) in ends.items():
        by_outcome.setdefault(outcome, []).append(root_id)
    for outcome, ids in by_outcome.items():
        if repo.end_command_trees(ids, outcome, now) != len(ids):
            raise RuntimeError(f"commands {', '.join(ids)} were not all ACTIVE when ended")
    repo.add_events(
        [history.ended(root_id, outcome, now) for root_id, (_, outcome) in ends.items()]
    )
    repo.mark_unresolved(unresolved)
    succeeded: dict[str, list[CommandBase[Any]]] = {}
    failed: dict[str, list[str]] = {}
    for root_id, (record, outcome) in ends.items():
        if outcome.succeeded:
            succeeded.setdefault(record.action_type, []).append(CommandBase.from_record(record))
        else:
            failed.setdefault(record.action_type, []).append(root_id)
    for action_type, commands in succeeded.items():
        CommandBase.type_named(action_type).succeed_many(repo, commands)
    for action_type, ids in failed.items():
        CommandBase.type_named(action_type).fail_many(repo, CommandBatch.of(ids))
    cleared = [c.command_id for commands in succeeded.values() for c in commands]
    compensated = [root_id for root_ids in failed.values() for root_id in root_ids]
    for settled, cleanup in ((cleared, TaskCleanup.CLEAR), (compensated, TaskCleanup.COMPENSATE)):
        if settled:
            repo.settle_tasks_of(CommandBatch.of(settled), cleanup)
    repo.release_locks_of(CommandBatch.of(list(ends)))
