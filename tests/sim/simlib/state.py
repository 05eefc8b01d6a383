"""The simulator's persistent world: one JSON file under `$K8S_OPS_SIM_DIR`, guarded by a file lock so
parallel tool invocations (the toolkit applies configs to several nodes at once) see consistent state.

Every invocation runs `with Store(root).tx() as world:`: load, let time pass, apply what is due (reboots
finishing, try-mode rollbacks, etcd joins, in-cluster controllers), let the command act, apply again, save.
Long waits (`--wait`, `kubectl wait`, `health`) loop over short transactions and sleep outside the lock.

Time is logical (a modelling choice, tests/sim/fidelity/time.md), so that the simulated state depends only
on the sequence of tool calls, never on how fast they ran — a starved process cannot skip a phase of a
reboot, a fast one cannot see a phase more often than the model says:

* The world clock (`World.clock`, simulated seconds from 0, kept in the state) moves one step of
  `step_seconds` per tool call and per poll of a waiting tool — never by itself. Try-mode rollbacks, the
  apiserver's start and controller durations (`volsync_job_seconds`) are measured on it. Timestamps written
  into objects (`World.now`) stay real time — clients compare them with their own clock ("refreshed since
  T") — and no simulated outcome depends on them.
* A reboot/install/upgrade/reset lasts `ceil(reboot_seconds / step_seconds)` steps (at least 4) of the
  *node's own* clock, which moves one step on the first contact with the node in a step (`World.node`, a
  talosctl call to it, a kubectl call through it, each poll of `health`). So a node is up again after a fixed
  number of looks at it, however other workers' calls interleave.
* `sim settle` / `sim advance` (and `Sim.settle()` / `Sim.advance()`) let steps pass for everything at once;
  inspecting the state (`sim state`, `Sim.node()`) lets none pass.
* Waiting tools count their own polls (`runtime.Waiter`): a `--timeout` expires after `timeout /
  step_seconds` polls; `poll_interval` is only the real sleep between polls.
* `sim set time wall` restores real time (World.clock = time.time(), reboots and timeouts in wall seconds)
  for benchmarks that measure real durations; tests never use it."""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .util import JSON, new_uuid, short_hash

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

# The one table of settings: `sim set` and `Sim.set` accept exactly these keys, and every module (controllers
# included) reads them through `World.setting`, which refuses a key missing here.
SETTINGS_DEFAULTS: JSON = {
    "time": "logical",  # "logical": time moves only with calls (tests); "wall": real seconds (benchmarks)
    "step_seconds": 0.05,  # simulated seconds one step of the logical clock stands for (one call or poll)
    "reboot_seconds": 0.2,  # simulated length of a reboot/install/upgrade/reset: ceil(x/step_seconds) >= 4 contacts
    "latency": 0.0,  # real seconds slept by every tool invocation before it acts (never changes the state)
    "timeout_scale": 1.0,  # multiplies --timeout/--wait-timeout style durations given to the tools
    "poll_interval": 0.05,  # real seconds a waiting tool sleeps between polls (in logical time: outcome-neutral)
    "apiserver_start_seconds": 0.0,  # simulated delay between etcd bootstrap and kube-apiserver answering
    "volsync_job_seconds": 0.3,  # simulated run time of a VolSync mover job (controllers/volsync.py)
    "git_bad_pattern": "",  # regex: GitRepository URLs matching it are unreachable
    "git_revision": "",  # changes the simulated commit sha of every repository (a "new commit")
    "resolve_hostnames": False,  # let -n/--server use inventory hostnames (DNS); real setups often cannot
    "talosctl_version": "v1.12.11",
    "kubectl_version": "v1.35.0",
    "helm_version": "v3.19.0",
    "flux_version": "v2.7.5",
    "kubernetes_version": "v1.35.0",  # kubelet/apiserver version when the machine config names none
}

# the collections `World` adds when missing (its properties `setdefault` them)
_TOP_LEVEL = ("settings", "clusters", "nodes", "faults")

MIN_REBOOT_STEPS = 4  # pre, down, booting, up: each phase seen by at least one contact

STAGE_DURING = {"reboot": "rebooting", "upgrade": "upgrading", "reset": "resetting", "install": "installing"}


def sim_root() -> Path:
    env = os.environ.get("K8S_OPS_SIM_DIR")
    if not env:
        raise SystemExit("simulator: K8S_OPS_SIM_DIR is not set (run `sim create` in a state directory first)")
    return Path(env)


def reboot_marks(steps: int) -> tuple[int, int]:
    """(last step still up, last step down) of a reboot lasting `steps` contacts: ~25 % still answering,
    ~35 % down, the rest booting, and every phase at least one step long (the old wall-clock fractions)."""
    pre = max(1, steps // 4)
    return pre, max(pre + 1, (steps * 3) // 5)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive flock on `path`, blocking. The stdlib's fcntl instead of filelock: each simulated call is a
    fresh interpreter, and importing filelock (logging, inspect, ...) cost more than the call's own work."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def empty_state() -> JSON:
    return {"version": 1, "settings": {}, "clusters": {}, "nodes": {}, "faults": [], "helm_repos": {}, "seq": 0}


class Store:
    """The state file and its lock. `step_pending`: the next ticking transaction is a new step of the logical
    clock — set for a tool invocation (runtime.Ctx) and again by each poll of a waiting tool (runtime.Waiter);
    never for the test harness (`Sim`, `sim`), whose inspections must not move time."""

    def __init__(self, root: Path | None = None, *, step_pending: bool = False) -> None:
        self.root = root or sim_root()
        self.path = self.root / "state.json"
        self.step_pending = step_pending
        self._parsed: tuple[str, JSON] | None = None  # (text, its parse) a `read` left unchanged, for the next

    def _parse_once(self, text: str) -> JSON:
        """`_parse(text)`, or what the last `read` parsed from the same text (and left as parsed): a call's first
        transactions read the same state, and parsing it costs milliseconds on a big cluster."""
        cached, self._parsed = self._parsed, None
        return cached[1] if cached is not None and cached[0] == text else self._parse(text)

    def _read(self) -> str:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return ""

    @staticmethod
    def _parse(text: str) -> JSON:
        data: JSON = json.loads(text) if text else empty_state()
        data.setdefault("clock", 0.0)
        return data

    def load(self) -> JSON:
        return self._parse(self._read())

    @staticmethod
    def dumps(data: JSON) -> str:
        return json.dumps(data, separators=(",", ":"))

    def save(self, data: JSON, *, unless: str | None = None, text: str | None = None) -> None:
        """Write the state, unless its serialisation is `unless` (what was read: nothing changed). `text`: the
        serialisation of `data` when the caller already has it (a serialisation of a 2-core box's state costs
        milliseconds, and every simulated call makes several)."""
        text = self.dumps(data) if text is None else text
        if text == unless:
            return
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    @contextmanager
    def tx(self, *, tick: bool = True) -> Iterator[World]:
        """One transaction. `tick`: apply what is due before and after the body (and, when a step is pending,
        let one step pass first). A body that raises saves nothing of its own, but the step it was still
        happens: the clock moves and the nodes it contacted count the contact (a failing poll of a node that
        is down is still a look at it — else a node nobody can reach would never come back).

        Cheap for readers (most calls are polls): the second tick runs only if the body changed the state
        (the first left everything due at this step done), and an unchanged state is not written back."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / "state.lock"):
            stepping = tick and self.step_pending
            self.step_pending = self.step_pending and not stepping
            text = self._read()
            world = World(self._parse_once(text), self.root, stepping=stepping)
            if tick:
                world.tick()
            ticked = self.dumps(world.data) if tick and not world.wall else ""  # wall clock: ticks again anyway
            try:
                yield world
            except BaseException:
                if stepping:
                    again = World(self.load(), self.root, stepping=True)
                    again.tick()
                    for addr in world.contacted:
                        if addr in again.nodes:
                            again.contact(again.nodes[addr])
                    again.tick()
                    self.save(again.data)
                raise
            final: str | None = None  # the serialisation of world.data, when known
            if tick and not world.wall:
                final = self.dumps(world.data)
            if tick and (world.wall or final != ticked):
                world.now = time.time()
                if world.wall:
                    world.clock = world.now
                world.tick()
                final = None
            self.save(world.data, unless=text, text=final)

    @contextmanager
    def read(self) -> Iterator[World]:
        """A transaction whose body reads settings and faults: `tx(tick=False)` without serialising the state
        afterwards to learn that nothing changed (milliseconds on a big cluster, in every simulated call). What
        can still change is known: a fault the body consumes (`World.dirty`), or what loading adds to a state
        that lacks it (a float clock, the top-level collections) — then it is saved exactly as `tx` would."""
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / "state.lock"):
            text = self._read()
            data = self._parse_once(text)
            complete = text and type(data["clock"]) is float and all(k in data for k in _TOP_LEVEL)
            world = World(data, self.root)
            yield world
            if world.dirty or not complete:
                self.save(world.data, unless=text)
            else:  # unchanged: the next transaction may start from it (what the body returned is not mutated)
                self._parsed = (text, data)

    def settle(self, timeout: float = 10.0) -> None:
        """Until no node is mid-reboot (stuck nodes excepted). Logical clock: steps pass for every node at once,
        no sleeping (`timeout` unused); wall clock: poll for up to `timeout` real seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self.tx(tick=False) as w:
                w.tick()
                if not w.wall:
                    for _ in range(100_000):
                        if not w.busy_nodes():
                            break
                        w.pass_steps(1)
                busy = w.busy_nodes()
            if not busy:
                return
            if not w.wall or time.monotonic() >= deadline:
                raise TimeoutError(f"nodes still rebooting: {', '.join(busy)}")
            time.sleep(0.02)

    def advance(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass for everything (wall clock: sleep)."""
        with self.tx(tick=False) as w:
            wall = w.wall
            if not wall:
                w.tick()
                w.pass_steps(w.steps_for(seconds))
        if wall:
            time.sleep(seconds)


class World:
    """Typed-ish accessors over the JSON state, and the clock (see the module docstring).

    `stepping`: this transaction is a new step — the first contact with each node moves that node's clock."""

    def __init__(self, data: JSON, root: Path, *, stepping: bool = False) -> None:
        self.data = data
        self.root = root
        self.stepping = stepping
        self.contacted: set[str] = set()
        self.dirty = False  # a fault was consumed (`Store.read` saves then)
        self.wall = self.setting("time") == "wall"
        self.step = float(self.setting("step_seconds"))
        self.now = time.time()  # timestamps only
        if self.wall:
            self.clock = self.now
        else:
            self.clock = float(data.get("clock", 0.0)) + (self.step if stepping else 0.0)
            data["clock"] = self.clock

    # ---- basics -------------------------------------------------------------------------------------
    @property
    def settings(self) -> JSON:
        return {**SETTINGS_DEFAULTS, **self.data.setdefault("settings", {})}

    def setting(self, key: str) -> Any:
        if key not in SETTINGS_DEFAULTS:
            raise KeyError(f"simulator setting {key!r} is not in state.SETTINGS_DEFAULTS (the one table of settings)")
        return self.settings[key]

    def set_setting(self, key: str, value: Any) -> None:
        """`sim set` / `Sim.set`: only keys of SETTINGS_DEFAULTS, with a value of the default's type."""
        if key not in SETTINGS_DEFAULTS:
            raise KeyError(f"unknown setting {key!r}; known: {', '.join(sorted(SETTINGS_DEFAULTS))}")
        default = SETTINGS_DEFAULTS[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(default, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # `sim set git_revision 2` arrives as a number
        if type(value) is not type(default):
            raise ValueError(f"setting {key}: expected {type(default).__name__}, got {value!r}")
        if key == "time" and value not in ("logical", "wall"):
            raise ValueError(f"setting time: expected logical or wall, got {value!r}")
        if key == "step_seconds" and value <= 0:
            raise ValueError("setting step_seconds: must be > 0")
        self.data.setdefault("settings", {})[key] = value

    def steps_for(self, seconds: float) -> int:
        """A simulated duration as a number of steps of the logical clock (at least 1)."""
        return max(1, math.ceil(float(seconds) / self.step - 1e-9))

    @property
    def nodes(self) -> dict[str, JSON]:
        nodes: dict[str, JSON] = self.data.setdefault("nodes", {})
        return nodes

    @property
    def clusters(self) -> dict[str, JSON]:
        clusters: dict[str, JSON] = self.data.setdefault("clusters", {})
        return clusters

    @property
    def faults(self) -> list[JSON]:
        faults: list[JSON] = self.data.setdefault("faults", [])
        return faults

    def next_seq(self) -> int:
        self.data["seq"] = int(self.data.get("seq", 0)) + 1
        return int(self.data["seq"])

    def scaled(self, seconds: float) -> float:
        return seconds * float(self.setting("timeout_scale"))

    # ---- lookup -------------------------------------------------------------------------------------
    def node(self, host: str) -> JSON | None:
        """The node answering as `host`; looking it up is contacting it (see `contact`)."""
        n = self.nodes.get(host)
        if n is None and self.setting("resolve_hostnames"):
            n = next((cand for cand in self.nodes.values() if cand["hostname"] == host), None)
        if n is not None:
            self.contact(n)
        return n

    def cluster_by_vip(self, host: str) -> JSON | None:
        for c in self.clusters.values():
            if c.get("endpoint") == host:
                return c
        return None

    def cluster(self, name: str) -> JSON:
        return self.clusters[name]

    def cluster_nodes(self, cluster: JSON) -> list[JSON]:
        return [self.nodes[a] for a in cluster["nodes"] if a in self.nodes]

    # ---- faults -------------------------------------------------------------------------------------
    def fault(
        self,
        kind: str,
        *,
        node: str | None = None,
        cluster: str | None = None,
        text: str | None = None,
        tool: str | None = None,
        consume: bool = False,
    ) -> JSON | None:
        for f in self.faults:
            if f["kind"] != kind:
                continue
            if f.get("node") and node is not None and f["node"] not in (node, self._hostname(node)):
                continue
            if f.get("node") and node is None:
                continue
            if f.get("cluster") and cluster is not None and f["cluster"] != cluster:
                continue
            if f.get("tool") and tool is not None and f["tool"] != tool:
                continue
            if f.get("match") and (text is None or not re.search(f["match"], text)):
                continue
            if consume and f.get("count") is not None:
                self.dirty = True
                f["count"] = int(f["count"]) - 1
                if f["count"] <= 0:
                    self.faults.remove(f)
            return f
        return None

    def _hostname(self, addr: str) -> str | None:
        n = self.nodes.get(addr)
        return n["hostname"] if n else None

    # ---- time ---------------------------------------------------------------------------------------
    def contact(self, n: JSON) -> None:
        """A tool reaches node `n`. The first contact in a step moves the node's own clock one step, and what
        that makes due (a boot finishing) happens before the tool looks."""
        if not self.stepping or n["address"] in self.contacted:
            return
        self.contacted.add(n["address"])
        r = n.get("reboot")
        if r and not self.wall:
            r["seen"] = int(r.get("seen", 0)) + 1
            self._tick_node(n)

    def pass_steps(self, steps: int) -> None:
        """`steps` steps pass for the clock and for every node at once (the harness waiting: settle/advance)."""
        for _ in range(steps):
            self.clock += self.step
            self.data["clock"] = self.clock
            for n in self.nodes.values():
                r = n.get("reboot")
                if r:
                    r["seen"] = int(r.get("seen", 0)) + 1
            self.tick()

    def bootstrapped_clock(self, e: JSON) -> float:
        """When etcd was bootstrapped on the logical clock (the apiserver's start counts from it), stamped on
        first sight: the bootstrap's own transaction. `bootstrapped_at` (real time, set by the bootstrap) older
        than a minute means "long ago" (`Sim.make_ready` backdates it by an hour)."""
        if "bootstrapped_clock" not in e:
            recent = self.now - float(e.get("bootstrapped_at") or 0) < 60
            e["bootstrapped_clock"] = self.clock if recent else -1e9
        return float(e["bootstrapped_clock"])

    def busy_nodes(self) -> list[str]:
        """Addresses of nodes mid-reboot that will come back."""
        return [a for a, n in self.nodes.items() if n.get("reboot") and not n["reboot"].get("never_return")]

    def _elapsed(self, r: JSON) -> float:
        """Steps since the reboot started: contacts (logical clock) or real seconds / step_seconds (wall)."""
        if self.wall:
            return (self.clock - float(r["start"])) / self.step
        return float(r.get("seen", 0))

    def reboot_ends(self, n: JSON) -> float:
        """Wall clock: when the node's reboot reaches `up` (infinity for one that never returns)."""
        r = n["reboot"]
        if r.get("never_return"):
            return math.inf
        return float(r["start"]) + int(r.get("steps") or MIN_REBOOT_STEPS) * self.step

    # ---- node lifecycle -----------------------------------------------------------------------------
    def phase(self, n: JSON) -> str:
        """up | pre (about to go down, API still answers) | down | booting (API back, not ready) | off."""
        if n.get("off"):
            return "off"
        r = n.get("reboot")
        if not r:
            return "up"
        el = self._elapsed(r)
        steps = int(r.get("steps") or MIN_REBOOT_STEPS)
        pre, down = reboot_marks(steps)
        if r.get("never_return") and el > pre:
            return "down"
        if el <= pre:
            return "down" if r["kind"] in ("install", "boot") else "pre"
        if el <= down:
            return "down"
        return "booting" if el < steps else "up"

    def release(self, n: JSON) -> None:
        """A stuck reboot (node-never-returns cleared) goes on as a reboot that just went down: the rest of it
        (down, booting, up) takes its normal course at the current `reboot_seconds`."""
        r = n["reboot"]
        r["never_return"] = False
        r["steps"] = max(MIN_REBOOT_STEPS, self.steps_for(float(self.setting("reboot_seconds"))))
        pre, _ = reboot_marks(int(r["steps"]))
        r["seen"] = pre
        r["start"] = self.clock - pre * self.step

    def start_reboot(self, n: JSON, kind: str, after: JSON | None = None) -> None:
        never = self.fault("node-never-returns", node=n["address"], cluster=n["cluster"], consume=True) is not None
        n["reboot"] = {
            "kind": kind,
            "start": self.clock,
            "steps": max(MIN_REBOOT_STEPS, self.steps_for(float(self.setting("reboot_seconds")))),
            "seen": 0,
            "after": after or {},
            "new_boot_id": new_uuid(),
            "never_return": never,
            "applied": False,
        }

    def _finish_boot(self, n: JSON) -> None:
        r = n["reboot"]
        after = r.get("after") or {}
        if after.get("reset"):
            n["config"] = None
            n["staged_config"] = None
            n["try"] = None
        if after.get("wipe_ephemeral"):
            n["etcd_data"] = False
        if "config" in after:
            n["config"] = after["config"]
        if n.get("staged_config"):
            n["config"] = n["staged_config"]
            n["staged_config"] = None
        if after.get("image"):
            n["installed_image"] = after["image"]
            n["talos_version"] = after.get("talos_version") or n["talos_version"]
            n["schematic"] = after.get("schematic")
        n["boot_id"] = r["new_boot_id"]
        if after.get("power_off"):
            n["off"] = True
            n["reboot"] = None
        r["applied"] = True

    def _tick_node(self, n: JSON) -> None:
        """What is due for one node at its current step: a boot applying its changes, a reboot ending, a
        try-mode config rolled back (that one on the world clock: it is the node's timer, not a look at it)."""
        r = n.get("reboot")
        if r:
            ph = self.phase(n)
            if ph in ("booting", "up") and not r.get("applied"):
                self._finish_boot(n)
            steps = int(r.get("steps") or MIN_REBOOT_STEPS)
            if n.get("reboot") and self._elapsed(r) >= steps and not r.get("never_return"):
                n["reboot"] = None
        t = n.get("try")
        if t and self.clock >= float(t["deadline"]):
            n["config"] = t["previous"]
            n["try"] = None

    def tick(self) -> None:
        for n in self.nodes.values():
            self._tick_node(n)
        from . import etcd  # local import: etcd imports this module

        for c in self.clusters.values():
            if (c.get("etcd") or {}).get("bootstrapped"):
                self.bootstrapped_clock(c["etcd"])
            etcd.tick(self, c)
        from .controllers import run_all

        for c in self.clusters.values():
            if c.get("etcd", {}).get("bootstrapped"):
                run_all(self, c)

    # ---- config views -------------------------------------------------------------------------------
    def configured(self, n: JSON) -> bool:
        return bool(n.get("config"))

    def is_cp(self, n: JSON) -> bool:
        cfg = n.get("config")
        return cfg is not None and cfg["type"] in ("controlplane", "init")

    def node_name(self, n: JSON) -> str:
        cfg = n.get("config") or {}
        if cfg.get("hostname"):
            return str(cfg["hostname"])
        # HostnameConfig `auto: stable` (or nothing set): Talos derives talos-xxx-yyy from the machine id
        h = short_hash(n["address"], n["hostname"], n=6)
        return f"talos-{h[:3]}-{h[3:]}"

    def stage(self, n: JSON) -> str:
        ph = self.phase(n)
        if ph == "pre":
            return STAGE_DURING.get(n["reboot"]["kind"], "rebooting")
        if ph == "booting":
            return "booting"
        if not self.configured(n):
            return "maintenance"
        from .machine import boot_finished  # local import: machine reads etcd, which imports this module

        # A configured node stays `booting` until its Boot sequence ends (a controlplane: until etcd runs).
        return "running" if boot_finished(self, n) else "booting"
