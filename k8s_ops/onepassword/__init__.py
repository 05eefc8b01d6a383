"""1Password sync of the artefacts a cluster cannot be recovered without."""
