"""talos.* tasks: machine configs, secrets, validation and node lifecycle."""

from talos.tasks_secrets import gen_secrets, talosconfig  # noqa: F401
