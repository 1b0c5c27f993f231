"""Recovery after a restart: bring back every recorded task, and end the unfinished ones.

What an unfinished task becomes is the domain's rule (`Task.settle_after_restart`); this module
looks at the storage for it, removes the task's partial output and records the outcome.
"""

from __future__ import annotations

import logging

from service_common.vdsm_tasks import TaskResult
from vdsm_agent.domain.tasks import Task
from vdsm_agent.service_layer.ports import Storage, TaskRecords

# The task manager's logger, as before the manager was split into modules.
log = logging.getLogger("vdsm_agent.service_layer.task_manager")


def recover(store: TaskRecords, storage: Storage) -> list[Task]:
    """Every recorded task, oldest first; the ones the last process did not finish end now."""
    tasks = store.load_all()
    for task in tasks:
        if not task.finished:
            settle_interrupted(task, storage)
            store.save(task)
    if tasks:
        log.info("recovered %d task(s) from the state directory", len(tasks))
    return tasks


def settle_interrupted(task: Task, storage: Storage) -> None:
    """End a task found unfinished after a restart, removing its partial output first."""
    target = task.spec.target
    try:
        storage.remove_partial(target, task.task_id)
        published = task.may_have_published and storage.image_exists(target)
    except OSError as exc:
        log.error("task %s: could not inspect its output after a restart: %s", task.task_id, exc)
        published = False
    outcome = task.settle_after_restart(published)
    if outcome.result is TaskResult.SUCCESS:
        log.info("task %s had published its image before the restart: success", task.task_id)
    else:
        log.warning("task %s interrupted by an agent restart: cleanFailure", task.task_id)
