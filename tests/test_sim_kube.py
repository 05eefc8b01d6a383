"""kubectl/helm/flux simulators: API availability, nodes NotReady until a valid Cilium, CRD-before-CR,
Flux readiness rules, server-side apply conflicts, waits."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.sim.helpers import bootstrap, ok, run
from tests.sim.simlib.api import Sim

GOOD_CILIUM = """
ipam: {mode: kubernetes}
kubeProxyReplacement: true
k8sServiceHost: localhost
k8sServicePort: 7445
cgroup: {autoMount: {enabled: false}, hostRoot: /sys/fs/cgroup}
securityContext:
  capabilities:
    ciliumAgent: [CHOWN, KILL, NET_ADMIN, NET_RAW, IPC_LOCK, SYS_ADMIN, SYS_RESOURCE,
                  DAC_OVERRIDE, FOWNER, SETGID, SETUID]
    cleanCiliumState: [NET_ADMIN, SYS_ADMIN, SYS_RESOURCE]
"""


def test_api_refused_before_bootstrap_then_nodes_not_ready_until_cilium(sim_demo: Sim, tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "x",
                "clusters": [{"name": "c", "cluster": {"server": "https://10.5.0.11:6443"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            }
        )
    )
    r = run(sim_demo, "kubectl", "--kubeconfig", str(kc), "get", "nodes")
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == "The connection to the server 10.5.0.11:6443 was refused - did you specify the right host or port?"
    )
    r = run(sim_demo, "kubectl", "get", "nodes")  # no kubeconfig at all
    assert "localhost:8080 was refused" in r.stderr
    _, kc2 = bootstrap(sim_demo, tmp_path)
    k = ["--kubeconfig", str(kc2)]
    assert ok(sim_demo, "kubectl", *k, "get", "--raw", "/readyz") == "ok"
    out = ok(sim_demo, "kubectl", *k, "wait", "nodes", "--all", "--for=condition=Ready=False", "--timeout=5s")
    assert out.count("condition met") == 5
    r = run(sim_demo, "kubectl", *k, "wait", "nodes", "--all", "--for=condition=Ready", "--timeout=200ms")
    assert r.returncode == 1 and "timed out waiting for the condition on nodes/" in r.stderr
    reason = ok(
        sim_demo,
        "kubectl",
        *k,
        "get",
        "node",
        "demo-cp-1",
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].reason}',
    )
    assert reason == "KubeletNotReady"
    values = tmp_path / "cilium.yaml"
    values.write_text(GOOD_CILIUM)
    out = ok(
        sim_demo,
        "helm",
        *k[:0],
        "--kubeconfig",
        str(kc2),
        "upgrade",
        "--install",
        "cilium",
        "oci://quay.io/cilium/charts/cilium",
        "--version",
        "1.18.4",
        "-n",
        "kube-system",
        "-f",
        str(values),
        "--wait",
    )
    assert 'Release "cilium" does not exist. Installing it now.' in out and "STATUS: deployed" in out
    ok(sim_demo, "kubectl", *k, "wait", "nodes", "--all", "--for=condition=Ready", "--timeout=5s")
    assert "successfully rolled out" in ok(
        sim_demo, "kubectl", *k, "-n", "kube-system", "rollout", "status", "ds/cilium"
    )
    ok(sim_demo, "kubectl", *k, "wait", "--for=create", "crd/ciliumloadbalancerippools.cilium.io", "--timeout=5s")
    vals = ok(sim_demo, "helm", "--kubeconfig", str(kc2), "get", "values", "cilium", "-n", "kube-system", "-o", "json")
    assert '"k8sServicePort": 7445' in vals


def test_bad_cilium_values_crashloop_and_helm_wait_times_out(sim: Sim, tmp_path: Path) -> None:
    sim.create()
    sim.make_ready(cni=False)
    kc = str(sim.root / "kubeconfig")
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD_CILIUM.replace("autoMount", "automount"))  # the spelling trap from cluster-template
    sim.set("timeout_scale", 0.001)
    r = run(
        sim,
        "helm",
        "upgrade",
        "--install",
        "cilium",
        "oci://quay.io/cilium/charts/cilium",
        "-n",
        "kube-system",
        "-f",
        str(bad),
        "--wait",
        "--timeout",
        "5m",
        "--kubeconfig",
        kc,
    )
    assert r.returncode == 1 and "Error: INSTALLATION FAILED: context deadline exceeded" in r.stderr
    pods = ok(sim, "kubectl", "--kubeconfig", kc, "-n", "kube-system", "get", "pods", "-l", "k8s-app=cilium")
    assert "CrashLoopBackOff" in pods
    assert "NotReady" in ok(sim, "kubectl", "--kubeconfig", kc, "get", "nodes")
    listing = ok(sim, "helm", "list", "-A", "-o", "json", "--kubeconfig", kc)
    assert '"status": "failed"' in listing
    sim.set("timeout_scale", 1.0)
    good = tmp_path / "good.yaml"
    good.write_text(GOOD_CILIUM)
    out = ok(
        sim,
        "helm",
        "upgrade",
        "--install",
        "cilium",
        "oci://quay.io/cilium/charts/cilium",
        "-n",
        "kube-system",
        "-f",
        str(good),
        "--wait",
        "--kubeconfig",
        kc,
    )
    assert 'Release "cilium" has been upgraded. Happy Helming!' in out and "REVISION: 2" in out
    ok(sim, "kubectl", "--kubeconfig", kc, "wait", "nodes", "--all", "--for=condition=Ready", "--timeout=5s")


FLUX_INSTANCE = """
instance:
  sync: {kind: GitRepository, url: "ssh://git@github.com/monosense/k8s-ops.git", ref: refs/heads/main,
         path: clusters/demo/flux, pullSecret: deploy-key}
"""

CLUSTER_KS = """
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: cluster-apps, namespace: flux-system}
spec:
  interval: 10m
  path: ./kubernetes/apps
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
  decryption: {provider: sops, secretRef: {name: sops-age}}
  postBuild:
    substituteFrom:
      - {kind: ConfigMap, name: cluster-vars}
      - {kind: Secret, name: cluster-secrets, optional: true}
"""


def test_flux_crds_come_from_the_flux_instance_and_kustomization_readiness(sim: Sim, tmp_path: Path) -> None:
    sim.create()
    sim.make_ready()
    k = ["--kubeconfig", str(sim.root / "kubeconfig")]
    ok(sim, "kubectl", *k, "create", "namespace", "flux-system")
    r = run(sim, "kubectl", *k, "apply", "--server-side", "-f", "-", input=CLUSTER_KS)
    assert r.returncode == 1
    assert (
        'error: resource mapping not found for name: "cluster-apps" namespace: "flux-system" from "STDIN": '
        'no matches for kind "Kustomization" in version "kustomize.toolkit.fluxcd.io/v1"\nensure CRDs are installed first'  # noqa: E501
    ) in r.stderr
    fi = tmp_path / "fi.yaml"
    fi.write_text(FLUX_INSTANCE)
    r = run(
        sim,
        "helm",
        *k,
        "upgrade",
        "--install",
        "flux-instance",
        "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-instance",
        "-n",
        "flux-system",
        "-f",
        str(fi),
    )
    assert r.returncode == 1 and 'no matches for kind "FluxInstance" in version "fluxcd.controlplane.io/v1"' in r.stderr
    ok(
        sim,
        "helm",
        *k,
        "upgrade",
        "--install",
        "flux-operator",
        "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-operator",
        "-n",
        "flux-system",
        "--wait",
    )
    ok(
        sim,
        "helm",
        *k,
        "upgrade",
        "--install",
        "flux-instance",
        "oci://ghcr.io/controlplaneio-fluxcd/charts/flux-instance",
        "-n",
        "flux-system",
        "-f",
        str(fi),
        "--wait",
    )
    ok(sim, "kubectl", *k, "-n", "flux-system", "wait", "fluxinstance/flux", "--for=condition=Ready", "--timeout=5s")
    out = ok(sim, "kubectl", *k, "apply", "--server-side", "-f", "-", input=CLUSTER_KS)
    assert out == "kustomization.kustomize.toolkit.fluxcd.io/cluster-apps serverside-applied\n"

    def msg(name: str) -> str:
        return ok(
            sim,
            "kubectl",
            *k,
            "-n",
            "flux-system",
            "get",
            "ks",
            name,
            "-o",
            'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}',
        )

    assert msg("flux-system").startswith("False ")
    assert "deploy-key" in ok(
        sim, "kubectl", *k, "-n", "flux-system", "get", "gitrepository", "flux-system", "-o", "yaml"
    )
    deploy_key = "apiVersion: v1\nkind: Secret\nmetadata: {name: deploy-key, namespace: flux-system}\nstringData: {identity: x}\n"  # noqa: E501
    ok(sim, "kubectl", *k, "apply", "--server-side", "-f", "-", input=deploy_key)
    assert msg("flux-system").startswith("True Applied revision: refs/heads/main@sha1:")
    assert msg("cluster-apps").startswith("False failed to read decryption secret 'flux-system/sops-age'")
    ok(
        sim,
        "kubectl",
        *k,
        "-n",
        "flux-system",
        "create",
        "secret",
        "generic",
        "sops-age",
        "--from-file=age.agekey=/dev/stdin",
        input="AGE-SECRET-KEY-1TEST",
    )
    m = msg("cluster-apps")
    assert m.startswith("False ") and "ConfigMap/cluster-vars" in m
    ok(
        sim,
        "kubectl",
        *k,
        "-n",
        "flux-system",
        "create",
        "configmap",
        "cluster-vars",
        "--from-literal=CLUSTER_NAME=demo",
    )
    assert msg("cluster-apps").startswith("True Applied revision:")
    r = run(sim, "flux", *k, "reconcile", "ks", "cluster-apps", "--with-source")
    assert r.returncode == 0 and "✔ applied revision refs/heads/main@sha1:" in r.stderr
    ok(sim, "flux", *k, "suspend", "ks", "cluster-apps")
    r = run(sim, "flux", *k, "reconcile", "ks", "cluster-apps")
    assert r.returncode == 1 and "resource is suspended" in r.stderr
    ok(sim, "flux", *k, "resume", "ks", "cluster-apps")
    table = ok(sim, "flux", *k, "get", "ks", "-A")
    assert table.splitlines()[0].split() == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert ok(sim, "flux", "version", "--client").strip() == "flux: v2.7.5"
    assert "✔ prerequisites checks passed" in run(sim, "flux", *k, "check", "--pre").stderr


def test_git_unreachable_fault_fails_the_source(sim: Sim, tmp_path: Path) -> None:
    sim.create()
    sim.make_ready()
    k = ["--kubeconfig", str(sim.root / "kubeconfig")]
    ok(
        sim,
        "helm",
        *k,
        "upgrade",
        "--install",
        "flux-operator",
        "oci://x/flux-operator",
        "-n",
        "flux-system",
        "--create-namespace",
        "--wait",
    )
    fi = tmp_path / "fi.yaml"
    fi.write_text(FLUX_INSTANCE.replace(", pullSecret: deploy-key", ""))
    sim.fault("git-unreachable", match="github.com")
    ok(
        sim,
        "helm",
        *k,
        "upgrade",
        "--install",
        "flux-instance",
        "oci://x/flux-instance",
        "-n",
        "flux-system",
        "-f",
        str(fi),
    )
    r = run(sim, "flux", *k, "reconcile", "source", "git", "flux-system")
    assert r.returncode == 1 and "unable to clone 'ssh://git@github.com/monosense/k8s-ops.git'" in r.stderr
    sim.clear_faults()
    ok(sim, "flux", *k, "reconcile", "source", "git", "flux-system")


def test_server_side_apply_conflicts_and_namespace_errors(sim: Sim) -> None:
    sim.create()
    sim.make_ready()
    k = ["--kubeconfig", str(sim.root / "kubeconfig")]
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: nowhere}\ndata: {a: '1'}\n"
    r = run(sim, "kubectl", *k, "apply", "--server-side", "-f", "-", input=cm)
    assert r.returncode == 1 and 'namespaces "nowhere" not found' in r.stderr
    cm = cm.replace("nowhere", "default")
    assert ok(sim, "kubectl", *k, "apply", "--server-side", "--field-manager", "one", "-f", "-", input=cm).endswith(
        "serverside-applied\n"
    )
    r = run(
        sim,
        "kubectl",
        *k,
        "apply",
        "--server-side",
        "--field-manager",
        "two",
        "-f",
        "-",
        input=cm.replace("'1'", "'2'"),
    )
    assert r.returncode == 1 and 'conflict with "one"' in r.stderr and "--force-conflicts" in r.stderr
    ok(
        sim,
        "kubectl",
        *k,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "two",
        "-f",
        "-",
        input=cm.replace("'1'", "'2'"),
    )
    assert ok(sim, "kubectl", *k, "get", "cm", "cfg", "-o", "jsonpath={.data.a}") == "2"
    ok(sim, "kubectl", *k, "annotate", "cm", "cfg", "x=1")
    r = run(sim, "kubectl", *k, "annotate", "cm", "cfg", "x=2")
    assert r.returncode == 1 and "--overwrite is false" in r.stderr
    ok(sim, "kubectl", *k, "annotate", "cm", "cfg", "x=2", "--overwrite")
    assert "patched" in ok(sim, "kubectl", *k, "patch", "cm", "cfg", "--type", "merge", "-p", '{"data":{"b":"3"}}')
    assert ok(sim, "kubectl", *k, "get", "cm/cfg", "-o", "jsonpath={.data.b}") == "3"
    assert ok(sim, "kubectl", *k, "delete", "cm", "cfg") == 'configmap "cfg" deleted\n'
    r = run(sim, "kubectl", *k, "get", "cm", "cfg")
    assert r.returncode == 1 and 'Error from server (NotFound): configmaps "cfg" not found' in r.stderr
    bad = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '%%%'}\n"
    r = run(sim, "kubectl", *k, "apply", "-f", "-", input=bad)
    assert r.returncode == 1 and "illegal base64 data" in r.stderr


def test_helm_refuses_to_adopt_unowned_objects(sim: Sim) -> None:
    sim.create()
    sim.make_ready()
    k = ["--kubeconfig", str(sim.root / "kubeconfig")]
    ok(sim, "kubectl", *k, "create", "namespace", "apps")
    deploy = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps}\nspec:\n  selector: {matchLabels: {a: b}}\n"  # noqa: E501
        "  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}\n"
    )
    ok(sim, "kubectl", *k, "apply", "-f", "-", input=deploy)
    r = run(sim, "helm", *k, "install", "web", "oci://example.com/charts/web", "-n", "apps")
    assert r.returncode == 1 and "invalid ownership metadata" in r.stderr
    ok(sim, "kubectl", *k, "-n", "apps", "scale", "deploy/web", "--replicas=0")
    assert ok(sim, "kubectl", *k, "-n", "apps", "get", "pods", "-o", "name") == ""
