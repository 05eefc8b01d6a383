"""Talos machine configs and node lifecycle."""
