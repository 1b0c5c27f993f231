"""Command types. Importing this package registers every type with CommandBase; a new type is
one module here, imported below."""

from engine_service.service_layer.commands import (  # noqa: F401
    add_disk,
    add_vm_from_template,
    add_vm_template,
    move_disk,
    remove_disk,
    remove_vm_template,
)
