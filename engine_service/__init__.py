"""The engine: inventory, the command framework, placeholders, the async task manager and
reconciliation (design sections 2, 3, 6). Not built yet: see the engine issue."""
