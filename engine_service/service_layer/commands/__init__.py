"""Command types. Importing this package registers every type with CommandBase; a new type is
one module here, imported below."""

from engine_service.service_layer.commands import add_disk, add_vm_template  # noqa: F401
