"""The engine: inventory, the command framework, placeholders, the async task manager and
reconciliation (docs/design.md §3, §4, §7).

Layers: `domain` (statuses and the pure rules of commands), `adapters` (the database, the
agents' gRPC clients), `service_layer` (the unit of work, the command framework and its
commands, the async task manager, reconciliation), `entrypoints` (the gRPC servicer, the
`engine-service` process, the `enginectl` CLI). `v1` is generated code.
"""
