"""One module per external CLI: talosctl, kubectl, helm, flux, sops."""
