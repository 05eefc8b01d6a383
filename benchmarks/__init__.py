"""Benchmarks: scripts that print figures (speed and memory goals live here, never in timed tests)."""
