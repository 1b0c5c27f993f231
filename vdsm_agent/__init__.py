"""The fake VDSM host agent: storage domains as directories, images as files, real async tasks.

Layers: `domain` (tasks and the rules of their life; plain Python), `adapters` (the storage root
on disk, the durable task records), `service_layer` (the TaskManager, which accepts, stops and
clears tasks, with `admission`, `task_runner` and `recovery` beside it, and `ports`, what it needs
of the adapters), `entrypoints` (the thin gRPC servicer and the `vdsm-agent` process). `v1` is
generated code.
"""
