"""Shared pytest configuration."""

pytest_plugins = ["tests.sim.fixtures"]
