"""The engine's use cases: inventory, the command framework and its commands, the async task
manager, reconciliation. Every change happens inside a unit of work."""
