"""The agent's domain: tasks and their lifecycle, validated ids, errors a caller can act on."""
