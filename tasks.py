"""k8s-ops: operate Talos Linux Kubernetes clusters run with GitOps (Flux).

`invoke --list` shows every task; `invoke --help <task>` shows its options. One `tasks.py` per feature package is
one CLI namespace (talos, bootstrap, op); k8s_ops/day2/tasks.py holds two, `kubernetes` and `volsync`.
"""

from __future__ import annotations

from invoke.collection import Collection

from k8s_ops.bootstrap import tasks as bootstrap_tasks
from k8s_ops.day2 import tasks as day2_tasks
from k8s_ops.fleet import tasks as fleet_tasks
from k8s_ops.gitops import tasks as gitops_tasks
from k8s_ops.onepassword import tasks as op_tasks
from k8s_ops.talos import tasks as talos_tasks

ns = Collection()
ns.add_collection(Collection.from_module(talos_tasks), "talos")
ns.add_collection(Collection.from_module(bootstrap_tasks), "bootstrap")
ns.add_collection(Collection.from_module(op_tasks), "op")
gitops_ns = Collection.from_module(gitops_tasks)
gitops_ns.add_task(fleet_tasks.promote)  # gitops.promote lives in k8s_ops/fleet
ns.add_collection(gitops_ns, "gitops")
ns.add_collection(day2_tasks.kubernetes)
ns.add_collection(day2_tasks.volsync)
ns.add_collection(fleet_tasks.fleet)
