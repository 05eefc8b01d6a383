"""talos.* tasks: machine configs, secrets, validation and node lifecycle."""

from k8s_ops.talos.tasks_nodes import *  # noqa: F403 — node lifecycle tasks (apply, upgrade, reboot, reset, kubeconfig, …)
from k8s_ops.talos.tasks_render import render  # noqa: F401
from k8s_ops.talos.tasks_secrets import gen_secrets, talosconfig  # noqa: F401
from k8s_ops.talos.tasks_validate import schematic, validate  # noqa: F401
