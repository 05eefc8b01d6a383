"""The toolkit's error tree, all of it, in one place. Every error a user can cause is a ToolkitError: tasks print
it, no traceback; `exit_code` is 1 unless noted.

* ToolkitError                        message for the operator (+ optional hint); str() masks known secrets
  + ProblemsError                     bad input: every Problem at once (file + field + line + message)   [permanent]
  + ToolNotFound                      an external CLI is missing or too old                               [permanent]
  + CommandFailed                     an external command exited non-zero (argv, rc, stderr; masked with every
  |                                   secret value known to the run, core/secret.py)                     [transient]
  + CommandTimeout                    an external command ran past its timeout                            [transient]
  + OutputError                       a CLI printed something its parser cannot read                      [permanent]
  | + KubectlOutputError              tools/kubectl.py: not the JSON asked for
  | + TalosctlOutputError             tools/talosctl.py: a table/YAML/JSON talosctl printed
  | + HelmOutputError                 tools/helm.py: `helm list/status -o json`
  + SecretError                       decryption / key / 1Password failures
  | + AgeKeyNotFound                  tools/sops.py: no age key file where it was looked for
  | + SopsError                       tools/sops.py: sops exited non-zero, mapped by exit code:
  |   + SopsKeyError                    no key could decrypt the data key
  |   + SopsMacMismatchError            the file was edited outside sops
  |   + SopsCorruptError                not a sops file it can read
  |   + SopsNotEncryptedError           decrypting a plain file
  |   + SopsAlreadyEncryptedError       encrypting an encrypted file
  |   + SopsFileNotFound                the file does not exist
  |   + SopsNoRuleError                 no creation rule matches the path
  | + SyncRefused                     onepassword/api.py: a push/pull that would lose data
  + InvalidName                       core/paths.py: a --cluster/--name/--namespace value that is not a name
  + SettingError                      core/settings.py: a K8S_OPS_* / invoke.yaml `k8s_ops:` value is unusable
  + PatchError                        talos/patch.py: a machine-config patch cannot be applied
  + Aborted                           the operator declined, or confirmation was impossible
  + GateFailed                        a health gate or wait did not pass; names what was awaited
  + ClusterLocked                     core/lock.py, core/lease.py: another run holds the cluster's lock (local
  |                                   flock or cluster-side Lease); names holder and since when (exit code 75,
  |                                   EX_TEMPFAIL: try again later)
  + StepFailed                        core/execute.py: a plan step failed; names step, node, how to resume
  + Interrupted                       core/execute.py: Ctrl-C/SIGTERM/SIGHUP during a plan (exit 130/143/129)
  + AuditLogError                     core/audit.py: the audit log is a symlink or not a regular file
  + ReadOnlyViolation                 core/execute.py: a gate, wait or guard ran a `mutates` command (a bug)
  + RecoveryFailed                    core/pipeline.py: the plan failed and its recovery ran (what is left)
  + BuildError                        gitops/build.py: kustomize cannot build a path (reported as a finding)
  + GitOpsInvalid                     gitops/tasks.py: gitops.validate found errors (already printed)
  + LintFailed                        gitops/tasks.py: gitops.lint found error-severity findings (already printed)
  + PromotionRefused                  fleet/promote.py: soak not reached, not Ready, diverged; nothing changed
  + BackupStoreError                  backups/s3.py: the object store refused or could not be reached
  + NoSnapshot                        backups/etcd.py: no snapshot matches what was asked for
  + SidecarError                      backups/catalog.py: a snapshot's metadata sidecar is not what we wrote
  + SnapshotCorrupt                   backups/snapshot.py: no SHA-256 trailer or content that does not match it
  + NotRecoverable                    bootstrap/drcheck.py: something a rebuild needs is missing or wrong

Not ToolkitErrors: `core.wait.NotYet` / `core.wait.StopWaiting` (a probe's "not yet" / "stop now", turned into
GateFailed by `wait_for`), and `talos.yamlio.YAMLError` (a ValueError, reported as a Problem).

Transient vs permanent: `wait_for` retries a probe that raises a TRANSIENT error (the world may still change:
a command failed, timed out) and fails at once on any other ToolkitError (a parse error, bad input) — like
stamina's `retry(on=...)`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from k8s_ops.core.secret import mask_text

if TYPE_CHECKING:
    from k8s_ops.core.command import Result

__all__ = [
    "TRANSIENT",
    "Aborted",
    "ClusterLocked",
    "CommandFailed",
    "CommandTimeout",
    "GateFailed",
    "OutputError",
    "Problem",
    "ProblemsError",
    "SecretError",
    "ToolNotFound",
    "ToolkitError",
    "field_path",
    "last_error_line",
]


class ToolkitError(Exception):
    """An error meant for the operator: printed as-is, never with a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"
        return mask_text(text)  # every secret value known to the run is `***`, whatever put it in the message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is (file, dotted field path, line) and what is wrong."""

    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def field_path(parts: Iterable[object]) -> str:
    """The one spelling of a field path in problems: `nodes[3].address`, `machine.nodeLabels["node.k8s.io/x"]`.

    Integers are indexes; keys that are not identifier-like are bracketed and quoted; a key that is not a string
    (YAML `true:` or `1:`) is shown as read.
    """
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(str(part))}]"
    return out


class ProblemsError(ToolkitError):
    """Bad input. Carries every problem found, so the operator fixes them all in one go."""

    def __init__(self, problems: Iterable[Problem], *, hint: str | None = None) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} found:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines), hint=hint)


class ToolNotFound(ToolkitError):
    """An external tool is missing from PATH or older than required."""


class CommandFailed(ToolkitError):
    """An external command exited non-zero. `display` is the masked command line."""

    def __init__(self, display: str, returncode: int, stderr: str, *, hint: str | None = None) -> None:
        self.display = mask_text(display)
        self.returncode = returncode
        self.stderr = mask_text(stderr)  # a tool may echo a secret it was given: never shown, logged or kept
        tail = self.stderr.strip()
        msg = f"command failed (exit {returncode}): {self.display}"
        if tail:
            msg += "\n" + "\n".join("  | " + line for line in tail.splitlines()[-20:])
        super().__init__(msg, hint=hint)


class CommandTimeout(ToolkitError):
    """An external command did not finish within its timeout and was killed."""

    def __init__(self, display: str, timeout: float) -> None:
        self.display = display
        self.timeout = timeout
        super().__init__(f"command timed out after {timeout:g}s: {display}")


class OutputError(ToolkitError):
    """An external CLI printed something its parser cannot read (a permanent error: waiting will not fix it)."""


class SecretError(ToolkitError):
    """A secret could not be read, decrypted or stored."""


class Aborted(ToolkitError):
    """The operator said no, or could not be asked."""


class GateFailed(ToolkitError):
    """A wait or health gate did not pass in time."""

    def __init__(self, gate: str, detail: str, *, hint: str | None = None) -> None:
        self.gate = gate
        self.detail = detail
        super().__init__(f"{gate}: {detail}", hint=hint)


class ClusterLocked(ToolkitError):
    """Another run holds the cluster's lock: `what` (which lock, which cluster) and `holder` (who, since when).

    Exit code 75 (sysexits EX_TEMPFAIL: "try again later"), so a wrapper script can tell "someone else is
    operating this cluster" from a failed operation.
    """

    exit_code = 75

    def __init__(self, what: str, holder: str, *, hint: str | None = None) -> None:
        self.what = what
        self.holder = holder
        super().__init__(f"{what}: {holder}", hint=hint)


TRANSIENT: tuple[type[ToolkitError], ...] = (CommandFailed, CommandTimeout)
"""Errors a wait retries: the command may succeed on the next try. Anything else fails the wait at once."""


def last_error_line(source: Result | BaseException | str, default: str | None = None) -> str:
    """The last non-empty line of an error: a failed Result's stderr (else stdout), an exception's text (the
    `  | ` prefix CommandFailed puts on stderr lines stripped), or a text. `default` when there is none: for a
    Result `exit <rc>`, for an exception its class name, for a text "no answer"."""
    if isinstance(source, str):
        text, fallback = source, "no answer"
    elif isinstance(source, BaseException):
        text, fallback = str(source), type(source).__name__
    else:
        text, fallback = source.stderr or source.stdout, f"exit {source.returncode}"
    lines = [line.strip().lstrip("|").strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else (fallback if default is None else default)
