"""pflag/cobra-style argument parsing: `--f=v`, `--f v`, `-f v`, `-fv`, bool `--b=false`, interspersed
positionals, `--`; errors worded like pflag."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .util import DurationError, Frozen, Record, parse_duration

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: ~3 ms for every simulated call
if TYPE_CHECKING:
    from typing import Any

VALUE_KINDS = ("string", "strings", "stringArray", "duration", "int", "float", "stringToString")


class Flag(Frozen):
    __slots__ = ("default", "kind", "name", "short")

    def __init__(
        self,
        name: str,
        short: str | None = None,
        kind: str = "bool",  # bool | string | strings | stringArray | duration | int | float | stringToString
        default: Any = None,
    ) -> None:
        self.name = name
        self.short = short
        self.kind = kind
        self.default = default

    @property
    def takes_value(self) -> bool:
        # "optstring": a value only as --flag=value; bare --flag means `default` (pflag NoOptDefVal, e.g. --dry-run)
        return self.kind not in ("bool", "optstring")


class ParseError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Parsed(Record):
    def __init__(self, values: dict[str, Any], args: list[str], given: set[str] | None = None) -> None:
        self.values = values
        self.args = args
        self.given: set[str] = set() if given is None else given

    def __getitem__(self, key: str) -> Any:
        return self.values.get(key)

    def get(self, key: str, default: Any = None) -> Any:
        v = self.values.get(key)
        return default if v is None else v


def flags(*items: Flag) -> dict[str, Flag]:
    return {f.name: f for f in items}


def _convert(flag: Flag, raw: str, shown: str) -> Any:
    if flag.kind == "bool":
        low = raw.lower()
        if low in ("1", "t", "true"):
            return True
        if low in ("0", "f", "false"):
            return False
        raise ParseError(
            f'invalid argument "{raw}" for "{shown}" flag: strconv.ParseBool: parsing "{raw}": invalid syntax'
        )
    if flag.kind == "duration":
        try:
            return parse_duration(raw)
        except DurationError as e:
            raise ParseError(f'invalid argument "{raw}" for "{shown}" flag: {e}') from e
    if flag.kind == "int":
        try:
            return int(raw)
        except ValueError as e:
            raise ParseError(
                f'invalid argument "{raw}" for "{shown}" flag: strconv.ParseInt: parsing "{raw}": invalid syntax'
            ) from e
    if flag.kind == "float":
        try:
            return float(raw)
        except ValueError as e:
            raise ParseError(
                f'invalid argument "{raw}" for "{shown}" flag: strconv.ParseFloat: parsing "{raw}": invalid syntax'
            ) from e
    return raw


def _store(values: dict[str, Any], flag: Flag, raw: str, shown: str) -> None:
    if flag.kind == "strings":
        values.setdefault(flag.name, [])
        values[flag.name].extend([x for x in raw.split(",") if x != ""] if raw else [])
    elif flag.kind == "stringArray":
        values.setdefault(flag.name, []).append(raw)
    elif flag.kind == "stringToString":
        d = values.setdefault(flag.name, {})
        for pair in raw.split(","):
            if "=" not in pair:
                raise ParseError(f'invalid argument "{raw}" for "{shown}" flag: {pair} must be formatted as key=value')
            k, v = pair.split("=", 1)
            d[k] = v
    else:
        values[flag.name] = _convert(flag, raw, shown)


def parse(argv: Sequence[str], spec: Mapping[str, Flag], *, unknown_ok: bool = False) -> Parsed:
    by_short = {f.short: f for f in spec.values() if f.short}
    values: dict[str, Any] = {}
    given: set[str] = set()
    args: list[str] = []
    i = 0
    argv = list(argv)
    while i < len(argv):
        tok = argv[i]
        i += 1
        if tok == "--":
            args.extend(argv[i:])
            break
        if tok.startswith("--") and len(tok) > 2:
            name, eq, raw = tok[2:].partition("=")
            flag = spec.get(name)
            if flag is None:
                if unknown_ok:
                    continue
                raise ParseError(f"unknown flag: --{name}")
            shown = f"-{flag.short}, --{flag.name}" if flag.short else f"--{flag.name}"
            if flag.kind == "bool":
                values[flag.name] = _convert(flag, raw, shown) if eq else True
            elif flag.kind == "optstring":
                values[flag.name] = raw if eq else "unchanged"
            else:
                if not eq:
                    if i >= len(argv):
                        raise ParseError(f"flag needs an argument: --{name}")
                    raw = argv[i]
                    i += 1
                _store(values, flag, raw, shown)
            given.add(flag.name)
        elif tok.startswith("-") and len(tok) > 1:
            j = 1
            while j < len(tok):
                ch = tok[j]
                flag = by_short.get(ch)
                if flag is None:
                    if unknown_ok:
                        break
                    raise ParseError(f"unknown shorthand flag: '{ch}' in {tok}")
                shown = f"-{flag.short}, --{flag.name}"
                rest = tok[j + 1 :]
                given.add(flag.name)
                if flag.kind == "bool":
                    if rest.startswith("="):
                        values[flag.name] = _convert(flag, rest[1:], shown)
                        break
                    values[flag.name] = True
                    j += 1
                    continue
                if rest.startswith("="):
                    rest = rest[1:]
                if not rest:
                    if i >= len(argv):
                        raise ParseError(f"flag needs an argument: '{ch}' in -{ch}")
                    rest = argv[i]
                    i += 1
                _store(values, flag, rest, shown)
                break
        else:
            args.append(tok)
    for f in spec.values():
        if f.name not in values:
            if f.kind in ("strings", "stringArray"):
                values[f.name] = list(f.default or [])
            elif f.kind == "stringToString":
                values[f.name] = dict(f.default or {})
            else:
                values[f.name] = f.default
    return Parsed(values, args, given)


def find_command(
    argv: Sequence[str], commands: Iterable[tuple[str, ...]], all_flags: Mapping[str, Flag]
) -> tuple[tuple[str, ...], list[str]]:
    """The longest command path made of the leading positionals, and argv without those words."""
    by_short = {f.short: f for f in all_flags.values() if f.short}
    positions: list[int] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            break
        if tok.startswith("--"):
            f = all_flags.get(tok[2:].split("=", 1)[0])
            if f and f.takes_value and "=" not in tok:
                i += 1
        elif tok.startswith("-") and len(tok) > 1:
            f = by_short.get(tok[1])
            if f and f.takes_value and len(tok) == 2:
                i += 1
        else:
            positions.append(i)
        i += 1
    cmds = set(commands)
    best: tuple[str, ...] = ()
    for n in range(1, len(positions) + 1):
        cand = tuple(argv[p] for p in positions[:n])
        if cand in cmds:
            best = cand
    rest = [a for k, a in enumerate(argv) if k not in set(positions[: len(best)])]
    return best, rest


def split_command(argv: Sequence[str], spec: Mapping[str, Flag]) -> tuple[str | None, list[str]]:
    """The first positional word (skipping values of value-taking flags in `spec`) and argv without it."""
    by_short = {f.short: f for f in spec.values() if f.short}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            break
        if tok.startswith("--"):
            f = spec.get(tok[2:].split("=", 1)[0])
            i += 2 if f and f.takes_value and "=" not in tok else 1
            continue
        if tok.startswith("-") and len(tok) > 1:
            f = by_short.get(tok[1])
            i += 2 if f and f.takes_value and len(tok) == 2 else 1
            continue
        return tok, [*argv[:i], *argv[i + 1 :]]
    return None, list(argv)
