"""The talosctl/kubectl/helm/flux simulator (see README.md)."""
