"""Use cases of the agent: accept, run, stop, clear and recover tasks."""
