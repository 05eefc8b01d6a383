"""Day-2 operations: kubernetes.* and volsync.* tasks."""
