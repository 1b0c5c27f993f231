"""Recovery after a restart: bring back every recorded task, and end the unfinished ones.

What an unfinished task becomes is the domain's rule (`Task.work_done`,
`Task.settle_after_restart`); this module looks at the storage for it, removes a writer's partial
output, finishes a removal whose image is already gone, and records the outcome. Recovery never
removes an image that is still there (docs/design.md §9, RemoveImage).
"""

from __future__ import annotations

import logging

from service_common.errors import NotFound
from service_common.vdsm_tasks import TaskResult
from vdsm_agent.domain.tasks import RemoveImageSpec, Task
from vdsm_agent.service_layer.ports import Storage, TaskRecords

# The task manager's logger, as before the manager was split into modules.
log = logging.getLogger("vdsm_agent.service_layer.task_manager")


def recover(store: TaskRecords, storage: Storage) -> list[Task]:
    """Every recorded task, oldest first; the ones the last process did not finish end now."""
    tasks = store.load_all()
    settled = []
    for task in tasks:
        if not task.finished:
            settle_interrupted(task, storage)
            settled.append((task, store.submit(task)))  # all made durable together
    for task, recorded in settled:
        try:
            recorded.wait()
        except OSError as exc:
            # A full state directory does not stop the agent: it answers for the task as
            # settled now, and the next start settles it again from the same record.
            log.error("task %s: could not record how it was settled: %s", task.task_id, exc)
    if tasks:
        log.info("recovered %d task(s) from the state directory", len(tasks))
    return tasks


def settle_interrupted(task: Task, storage: Storage) -> None:
    """End a task found unfinished after a restart: a writer's partial output is removed first;
    a removal that had removed its image is finished, one that had not leaves it there."""
    target = task.spec.target
    removal = isinstance(task.spec, RemoveImageSpec)
    try:
        if not removal:
            storage.remove_partial(target, task.task_id)
        done = task.work_done(storage.image_exists(target))
    except OSError as exc:
        log.error("task %s: could not inspect its output after a restart: %s", task.task_id, exc)
        done = False
    if done and removal:
        finish_removal(task, storage)
    outcome = task.settle_after_restart(done)
    if outcome.result is TaskResult.SUCCESS:
        did = "removed" if removal else "published"
        log.info("task %s had %s its image before the restart: success", task.task_id, did)
    else:
        log.warning("task %s interrupted by an agent restart: cleanFailure", task.task_id)


def finish_removal(task: Task, storage: Storage) -> None:
    """The rest of a removal whose image is gone already: stray partial files of the image, and
    the directory synced, so that the removal the task answers for survives a power cut. The
    image is gone whatever happens here, so the task succeeds all the same."""
    try:
        storage.remove_image(task.spec.target)
    except (OSError, NotFound) as exc:
        log.error("task %s: could not finish its removal after a restart: %s", task.task_id, exc)
