"""What the service layer needs of its adapters: the storage root and the durable task records.

`adapters.storage.StorageRoot` and `adapters.task_store.TaskStore` are the real ones; tests may
pass in-memory fakes with the same methods.
"""

from __future__ import annotations

from typing import Protocol

from vdsm_agent.adapters.storage import Advance
from vdsm_agent.domain.tasks import ImageRef, Task


class Storage(Protocol):
    """Storage domains and images, the two jobs that write images and the one that removes one."""

    def create_domain(self, storage_domain_id: str) -> None: ...

    def require_domain(self, storage_domain_id: str, field: str = ...) -> None: ...

    def image_exists(self, ref: ImageRef, field: str = ...) -> bool: ...

    def image_size(self, ref: ImageRef, field: str = ...) -> int: ...

    def delete_image(self, ref: ImageRef) -> None: ...

    def remove_image(self, ref: ImageRef) -> bool: ...

    def remove_partial(self, ref: ImageRef, task_id: str) -> bool: ...

    def free_bytes(self) -> int: ...

    def write_volume(
        self,
        target: ImageRef,
        task_id: str,
        size_bytes: int,
        fill_pattern: bytes,
        advance: Advance,
        chunk_bytes: int = ...,
    ) -> None: ...

    def copy_image(
        self,
        source: ImageRef,
        target: ImageRef,
        task_id: str,
        advance: Advance,
        chunk_bytes: int = ...,
    ) -> None: ...


class Durable(Protocol):
    """A record handed to the task records: `wait` returns once it is durable, or raises the
    OSError that kept it from being so (a full state directory: ENOSPC)."""

    def wait(self) -> None: ...


class TaskRecords(Protocol):
    """The durable record of every task not yet cleared.

    `submit` and `submit_delete` queue a record without I/O and never raise for I/O: a caller
    submits under its lock, so records of one task are stored in the order it changed, and
    waits for the answer without it, so that records submitted together share their I/O."""

    def submit(self, task: Task) -> Durable: ...

    def submit_delete(self, task_id: str) -> Durable: ...

    def load_all(self) -> list[Task]:
        """Every stored task, oldest first."""
        ...
