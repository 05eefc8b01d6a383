#!/usr/bin/env bash
# The README quickstart: bootstrap the bundled demo cluster (clusters/demo) against the simulator.
#
#   ./dev demo          plan only: `invoke bootstrap.cluster --cluster demo --dry-run` on five fresh simulated
#                       nodes in maintenance mode (every command, gate and wait; secrets masked)
#   ./dev demo --run    also run it: Talos -> etcd -> Cilium -> Flux, then run it again (every step unchanged)
#
# Everything lands under build/demo-sim/ (simulator state, kubeconfig, talosconfig, audit log); nothing outside
# the checkout is read or written. The demo's SOPS key clusters/demo/demo.agekey is a TEST-ONLY key.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/invoke ]; then
  echo "no .venv yet: run ./dev first (it installs the toolkit into .venv)" >&2
  exit 1
fi
run=false
for arg in "$@"; do
  case "$arg" in
    --run) run=true ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "usage: ./dev demo [--run]" >&2; exit 2 ;;
  esac
done

out=$root/build/demo-sim
rm -rf "$out"
mkdir -p "$out/home"
chmod 700 "$out"
export K8S_OPS_SIM_DIR=$out/sim
export K8S_OPS_SIM_PYTHON=$root/.venv/bin/python
export K8S_OPS_BUILD_DIR=$out/build
export K8S_OPS_STATE_DIR=$out/state
export HOME=$out/home XDG_CONFIG_HOME=$out/home/.config   # no ~/.kube, ~/.talos or sops keys of yours
export PATH=$root/tests/sim/bin:$root/.venv/bin:$PATH
# fast simulated time: reboots take 0.2 s, waits poll every 20 ms and time out 50x sooner
export K8S_OPS_POLL_INTERVAL=0.02 K8S_OPS_TIMEOUT_SCALE=0.02
unset TALOSCONFIG KUBECONFIG SOPS_AGE_KEY SOPS_AGE_KEY_FILE OP_SERVICE_ACCOUNT_TOKEN K8S_OPS_CLUSTERS_DIR

sim create --inventory clusters/demo/cluster.yaml
sim set reboot_seconds 0.2 >/dev/null
sim set poll_interval 0.02 >/dev/null

echo
echo "== invoke bootstrap.cluster --cluster demo --dry-run"
invoke bootstrap.cluster --cluster demo --dry-run | tee "$out/plan.txt"

if $run; then
  echo
  echo "== invoke bootstrap.cluster --cluster demo"
  invoke bootstrap.cluster --cluster demo 2> "$out/bootstrap.log"
  echo "   (progress: $out/bootstrap.log)"
  echo
  echo "== again: a healthy cluster needs nothing"
  invoke bootstrap.cluster --cluster demo 2> "$out/rerun.log"
  echo
  echo "== kubectl get nodes"
  kubectl --kubeconfig "$out/build/demo/kubeconfig" --context demo get nodes
  kubectl --kubeconfig "$out/build/demo/kubeconfig" --context demo get kustomizations.kustomize.toolkit.fluxcd.io -A
fi

echo
echo "Where things went (all under $out):"
echo "  plan                $out/plan.txt"
echo "  simulator state     $K8S_OPS_SIM_DIR/state.json   (every tool call: sim calls, $K8S_OPS_SIM_DIR/calls.log)"
if $run; then
  echo "  kubeconfig          $out/build/demo/kubeconfig (0600, context demo)"
  echo "  talosconfig         $out/build/demo/talosconfig (0600)"
  echo "  audit log           $out/state/audit.log (every command run, secrets masked)"
else
  echo "  next                ./dev demo --run   (runs it against the simulator, then again: all unchanged)"
fi
echo "  explore             export K8S_OPS_SIM_DIR=$K8S_OPS_SIM_DIR PATH=$root/tests/sim/bin:\$PATH"
