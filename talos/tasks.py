"""Tasks (being built)."""
