"""The k8s-ops test suite."""
