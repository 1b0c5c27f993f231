"""The fake VDSM host agent: storage domains as directories, images as files, real async tasks.

Layers: `domain` (tasks, ids, errors; plain Python), `adapters` (the storage root on disk, the
durable task records), `service_layer` (accepting, running, stopping and clearing tasks),
`entrypoints` (the thin gRPC servicer and the `vdsm-agent` process). `v1` is generated code.
"""
