"""Admission of a new task: its arguments parsed into a spec, and the checks before it is
recorded (the storage domains exist, the source is there, the target is free, space is enough, no
unfinished task holds an image a removal would take away).
"""

from __future__ import annotations

import logging

from service_common.errors import AlreadyExists, NotFound, ResourceExhausted
from service_common.ids import require_uuid
from vdsm_agent.domain.tasks import (
    CopyImageSpec,
    CreateVolumeSpec,
    ImageRef,
    RemoveImageSpec,
    Task,
    TaskBook,
    TaskSpec,
)
from vdsm_agent.service_layer.ports import Storage

log = logging.getLogger("vdsm_agent.service_layer.task_manager")  # where starts are logged


def create_volume_spec(
    storage_domain_id: str, image_id: str, size_bytes: int, fill_pattern: bytes
) -> CreateVolumeSpec:
    """The spec of a CreateVolume request; InvalidArgument for a bad id, size or pattern."""
    target = ImageRef(
        require_uuid("storage_domain_id", storage_domain_id),
        require_uuid("image_id", image_id),
    )
    spec = CreateVolumeSpec(target, size_bytes, fill_pattern)
    spec.check_bounds()
    return spec


def copy_image_spec(
    src_storage_domain_id: str, src_image_id: str, dst_storage_domain_id: str, dst_image_id: str
) -> CopyImageSpec:
    """The spec of a CopyImage request; InvalidArgument for a bad id."""
    return CopyImageSpec(
        ImageRef(
            require_uuid("src_storage_domain_id", src_storage_domain_id),
            require_uuid("src_image_id", src_image_id),
        ),
        ImageRef(
            require_uuid("dst_storage_domain_id", dst_storage_domain_id),
            require_uuid("dst_image_id", dst_image_id),
        ),
    )


def remove_image_spec(storage_domain_id: str, image_id: str) -> RemoveImageSpec:
    """The spec of a RemoveImage request; InvalidArgument for a bad id."""
    return RemoveImageSpec(
        ImageRef(
            require_uuid("storage_domain_id", storage_domain_id),
            require_uuid("image_id", image_id),
        )
    )


def check_can_start(storage: Storage, book: TaskBook, spec: TaskSpec) -> None:
    """Refuse a task that cannot work, before anything is recorded. Caller holds the lock."""
    if isinstance(spec, RemoveImageSpec):
        check_can_remove(storage, book, spec.target)
        return
    for held in (*spec.reads(), spec.target):
        book.check_not_being_removed(held)
    if isinstance(spec, CopyImageSpec):
        src = spec.source
        storage.require_domain(src.storage_domain_id, "src_storage_domain_id")
        if not storage.image_exists(src, "src_image_id"):
            raise NotFound(
                f"source image {src.image_id} does not exist in storage domain "
                f"{src.storage_domain_id}"
            )
        dst_domain_field, dst_image_field = "dst_storage_domain_id", "dst_image_id"
        needed = storage.image_size(src, "src_image_id")
    else:
        dst_domain_field, dst_image_field = "storage_domain_id", "image_id"
        needed = spec.size_bytes
    target = spec.target
    storage.require_domain(target.storage_domain_id, dst_domain_field)
    if storage.image_exists(target, dst_image_field):
        raise AlreadyExists(
            f"image {target.image_id} already exists in storage domain {target.storage_domain_id}"
        )
    book.check_not_being_written(target)
    free = storage.free_bytes()
    if needed > free:
        raise ResourceExhausted(
            f"the image needs {needed} bytes and the storage root has {free} free"
        )


def check_can_remove(storage: Storage, book: TaskBook, target: ImageRef) -> None:
    """Refuse a removal in a domain this host does not have, of an image whose path leads out of
    the storage root, or of an image an unfinished task reads, writes or removes (naming that
    task). An image that is not there is no reason to refuse: its removal simply succeeds."""
    storage.require_domain(target.storage_domain_id)
    storage.image_exists(target)  # resolves the path: InvalidArgument if it leads outside
    book.check_not_in_use(target)


def no_room_to_record(task: Task, exc: OSError) -> ResourceExhausted:
    """What a start answers when the state directory has no room for its task's record:
    RESOURCE_EXHAUSTED naming the cause. Nothing was accepted, so the caller may free space and
    ask again with the same request id."""
    log.error(
        "refused %s for request %s: no space left in the state directory for its task record: %s",
        task.verb.value,
        task.request_id,
        exc,
    )
    return ResourceExhausted(
        f"no space left in the agent's state directory to record the {task.verb.value} task "
        f"({exc.strerror}); nothing was started: free space there and ask again"
    )
