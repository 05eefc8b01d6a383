"""Shared core of k8s-ops: commands, plans, the runner, secrets handling and tool wrappers."""
