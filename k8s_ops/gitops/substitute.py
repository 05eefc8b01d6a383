"""Flux `postBuild` variable substitution, as kustomize-controller applies it to each built object.

Semantics (fluxcd/pkg kustomize/kustomize_varsub.go and envsubst, pinned in tests/sim/FIDELITY.md):

* an object labelled or annotated `kustomize.toolkit.fluxcd.io/substitute: disabled` is left as built;
* variables come from `substituteFrom` in order (ConfigMap `data` / Secret `data`, a later source overrides an
  earlier one, `optional: true` skips a missing source), then the inline `substitute` map overrides them all;
  newlines are removed from every value;
* every variable name must match `^[_[:alpha:]][_[:alpha:][:digit:]]*$`, else the whole build fails;
* substitution runs only when there is at least one variable, or with `substituteStrategy: Always`;
* it runs on the object's YAML text, which is parsed again afterwards (so `${PORT}` with PORT=80 becomes an int);
* `${VAR}` is the value; `$${VAR}` is the literal `${VAR}` (`$$` is `$`); `$VAR` without braces is left alone;
  `${VAR:=d}`, `${VAR:-d}`, `${VAR=d}`, `${VAR-d}` give `d` when VAR is unset or empty; casing (`^ ^^ , ,,`),
  length (`#`), substring (`:n[:len]`), trims (`# ## % %%`) and replacement (`/ // /# /%`) as in bash;
* strict mode (kustomize-controller v1.9 default, feature gate StrictPostBuildSubstitutions): a plain `${VAR}`
  whose variable is unset is an error; any expression with an operator is never an error.

Flux stops at the first unset variable; this module reports all of them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from k8s_ops.talos import yamlio

__all__ = [
    "DISABLED_KEY",
    "VAR_NAME",
    "Expansion",
    "SubstitutionError",
    "expand",
    "substitute_object",
    "substitution_disabled",
]

DISABLED_KEY = "kustomize.toolkit.fluxcd.io/substitute"
VAR_NAME = re.compile(r"^[_A-Za-z][_A-Za-z0-9]*$")


class SubstitutionError(ValueError):
    """The text cannot be parsed as Flux reads it (bad substitution, missing closing brace)."""


@dataclass(frozen=True)
class Expansion:
    """The substituted text and every plain `${VAR}` whose variable was not set (strict mode errors)."""

    text: str
    missing: tuple[str, ...]
    used: tuple[str, ...]


Lookup = Callable[[str], str | None]


class _Parser:
    def __init__(self, text: str, lookup: Lookup) -> None:
        self.s = text
        self.i = 0
        self.lookup = lookup
        self.missing: list[str] = []
        self.used: list[str] = []

    def top(self) -> str:
        out: list[str] = []
        s = self.s
        n = len(s)
        while self.i < n:
            j = s.find("$", self.i)
            if j < 0:
                out.append(s[self.i :])
                break
            out.append(s[self.i : j])
            nxt = s[j + 1] if j + 1 < n else ""
            if nxt == "{":
                self.i = j + 2
                out.append(self.func())
            elif nxt == "$":  # `$$` is one literal `$`; the character after it is plain text
                out.append("$")
                self.i = j + 2
            else:
                out.append("$")
                self.i = j + 1
        return "".join(out)

    def _name(self) -> str:
        m = re.compile(r"\w+").match(self.s, self.i)
        if m is None:
            raise SubstitutionError("unable to parse variable name")
        self.i = m.end()
        return m.group(0)

    def _arg(self, stop: str) -> str:
        """A function argument up to one of `stop` (not consumed); nested `${…}` expanded, `$$ \\\\ \\/` unescaped."""
        out: list[str] = []
        s = self.s
        while self.i < len(s):
            ch = s[self.i]
            if ch in stop:
                return "".join(out)
            if ch == "$" and s.startswith("${", self.i):
                self.i += 2
                out.append(self.func())
                continue
            if ch == "$" and s.startswith("$$", self.i):
                out.append("$")
                self.i += 2
                continue
            if ch == "\\" and self.i + 1 < len(s) and s[self.i + 1] in "/\\":
                out.append(s[self.i + 1])
                self.i += 2
                continue
            out.append(ch)
            self.i += 1
        raise SubstitutionError("missing closing brace")

    def _close(self) -> None:
        if self.i >= len(self.s) or self.s[self.i] != "}":
            raise SubstitutionError("missing closing brace")
        self.i += 1

    def func(self) -> str:
        s = self.s
        if s.startswith("#", self.i):  # ${#var}: length
            self.i += 1
            name = self._name()
            self._close()
            return str(len(self._value(name, plain=False)))
        name = self._name()
        if self.i >= len(s):
            raise SubstitutionError("missing closing brace")
        ch = s[self.i]
        if ch == "}":
            self.i += 1
            return self._value(name, plain=True)
        if ch == ":" and self.i + 1 < len(s) and s[self.i + 1] in "=-?+":
            self.i += 2
            return self._default(name)
        if ch in "=-?+":
            self.i += 1
            return self._default(name)
        if ch == ":":
            self.i += 1
            return self._substr(name)
        if ch in ",^":
            op = s[self.i : self.i + 2] if s[self.i : self.i + 2] in (",,", "^^") else ch
            self.i += len(op)
            self._close()
            v = self._value(name, plain=False)
            return {
                ",": v[:1].lower() + v[1:],
                ",,": v.lower(),
                "^": v[:1].upper() + v[1:],
                "^^": v.upper(),
            }[op]
        if ch in "#%":
            op = s[self.i : self.i + 2] if s[self.i : self.i + 2] in ("##", "%%") else ch
            self.i += len(op)
            pattern = self._arg("}")
            self._close()
            return _trim(self._value(name, plain=False), op, pattern)
        if ch == "/":
            op = "/"
            if self.i + 1 < len(s) and s[self.i + 1] in "/#%":
                op = s[self.i : self.i + 2]
            self.i += len(op)
            pattern = self._arg("/}")
            repl = ""
            if s.startswith("/", self.i):
                self.i += 1
                repl = self._arg("}")
            self._close()
            return _replace(self._value(name, plain=False), op, pattern, repl)
        raise SubstitutionError("bad substitution")

    def _value(self, name: str, *, plain: bool) -> str:
        value = self.lookup(name)
        self.used.append(name)
        if value is None:
            if plain:
                self.missing.append(name)
            return ""
        return value

    def _default(self, name: str) -> str:
        default = self._arg("}")
        self._close()
        value = self._value(name, plain=False)
        return value if value else default

    def _substr(self, name: str) -> str:
        offset = self._arg(":}")
        length: str | None = None
        if self.s.startswith(":", self.i):
            self.i += 1
            length = self._arg("}")
        self._close()
        value = self._value(name, plain=False)
        try:
            start = int(offset.strip())
        except ValueError:
            return value
        start = max(0, min(start, len(value)))
        if length is None:
            return value[start:]
        try:
            count = int(length.strip())
        except ValueError:
            return value[start:]
        return value[start : start + max(0, count)]


def _trim(value: str, op: str, pattern: str) -> str:
    sizes = range(len(value) + 1)
    if op in ("#", "##"):
        order = sizes if op == "#" else reversed(sizes)
        for k in order:
            if fnmatch.fnmatchcase(value[:k], pattern):
                return value[k:]
        return value
    order = sizes if op == "%" else reversed(sizes)
    for k in order:
        if fnmatch.fnmatchcase(value[len(value) - k :], pattern):
            return value[: len(value) - k]
    return value


def _replace(value: str, op: str, pattern: str, repl: str) -> str:
    if op == "/#":
        return repl + value[len(pattern) :] if value.startswith(pattern) else value
    if op == "/%":
        return value[: len(value) - len(pattern)] + repl if pattern and value.endswith(pattern) else value
    if op == "//":
        return value.replace(pattern, repl) if pattern else value
    return value.replace(pattern, repl, 1) if pattern else value


def expand(text: str, lookup: Lookup | Mapping[str, str]) -> Expansion:
    """Expand `text` as Flux's envsubst does; a plain `${VAR}` not set is recorded in `missing` (and left empty)."""
    fn: Lookup = lookup.get if isinstance(lookup, Mapping) else lookup
    parser = _Parser(text, fn)
    out = parser.top()
    return Expansion(out, tuple(dict.fromkeys(parser.missing)), tuple(dict.fromkeys(parser.used)))


def substitution_disabled(obj: Mapping[str, Any]) -> bool:
    """Whether kustomize-controller skips `obj`: the substitute label or annotation is `disabled`."""
    meta = obj.get("metadata") or {}
    for key in ("labels", "annotations"):
        values = meta.get(key) or {}
        if isinstance(values, Mapping) and values.get(DISABLED_KEY) == "disabled":
            return True
    return False


_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _has_dollar(value: Any) -> bool:
    if isinstance(value, str):
        return "$" in value
    if isinstance(value, dict):
        return any(_has_dollar(k) or _has_dollar(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_dollar(v) for v in value)
    return False


def substitute_object(obj: dict[str, Any], lookup: Lookup) -> tuple[dict[str, Any], Expansion]:
    """Substitute in the object's YAML text and parse it again, as Flux does (values may change type).

    Raises SubstitutionError for text Flux cannot parse or YAML that no longer parses after substitution.
    """
    if not _has_dollar(obj):  # nothing to substitute: skip the YAML round trip (most objects)
        return obj, Expansion("", (), ())
    text = yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=False, width=1 << 30)
    expansion = expand(text, lookup)
    try:
        # bounded: the values come from the repository's ConfigMaps and Secrets (an alias bomb in a variable)
        data = yamlio.load_document(expansion.text, loader=_Loader)
    except yamlio.YAMLError as exc:
        raise SubstitutionError(f"the object is no longer valid YAML after substitution: {exc}") from None
    if not isinstance(data, dict):
        raise SubstitutionError("the object is no longer a mapping after substitution")
    return data, expansion
