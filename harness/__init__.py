"""A test harness for the engine and its agents: real processes, crash injection, checks.

`harness.processes` starts and kills the services; `harness.agent_client` waits on agent tasks;
`harness.pytest_plugin` turns them into pytest fixtures (loaded automatically once this
distribution is installed); `harness.netfaults` runs them in a network namespace of their own
where iptables cuts a port (network faults made by the kernel).
"""
