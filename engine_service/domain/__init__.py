"""The engine's domain: statuses of hosts, disks, templates, commands and tasks, and the pure
rules that decide a command's outcome. Plain Python."""
