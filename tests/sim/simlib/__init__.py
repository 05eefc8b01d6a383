"""Simulator of talosctl, kubectl, helm and flux with persistent state and fault injection (test infrastructure)."""
