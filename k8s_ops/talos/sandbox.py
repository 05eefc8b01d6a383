"""The jinja2 sandbox patch files are rendered in (issue #16 §1).

Patch files are user input rendered by the commands a reviewer runs on a pull request (`talos.render --dry-run`,
`talos.validate`, `bootstrap.cluster --dry-run`), so a patch template must not be able to run code, read files or
hang. `render_patch` renders one compiled patch template in an `ImmutableSandboxedEnvironment` where:

- the context is only `cluster`, `node` and `vars`; the only global is a bounded `range` (no `cycler`, `joiner`,
  `namespace`, `lipsum`, `dict`), and the filters are a small fixed set (`PATCH_FILTERS`);
- attributes starting with `_` and every callable attribute are refused (`''.__class__`, `'x'.format`,
  `cluster.file.read_text`), except `items`/`keys`/`values`/`get` on mappings and `loop.cycle`/`loop.changed`;
  a refused access raises at once (it is never a silent undefined);
- work is bounded deterministically by a per-render budget: every call (macros, `loop()`, `range`) and every loop
  iteration spends one unit of `MAX_STEPS`; `range` is capped at `MAX_RANGE` items; `*`, `**`, `+`, `~`, the
  size-amplifying filters and the output are capped at `MAX_OUTPUT` characters; `%` string formatting is refused;
- a wall-clock deadline (`MAX_SECONDS`, generous) is checked at the same points, only as a backstop.

Every failure is a `PatchTemplateError` whose message the renderer reports as a Problem of the patch file.
"""

from __future__ import annotations

import contextvars
import functools
import operator
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_SECONDS",
    "MAX_STEPS",
    "PATCH_FILTERS",
    "PatchTemplateError",
    "compile_patch",
    "render_patch",
]

#: Largest rendered patch (and largest string/list a template may build), in characters/items.
MAX_OUTPUT = 1_000_000
#: Largest `range(…)`.
MAX_RANGE = 10_000
#: Calls plus loop iterations one render may spend.
MAX_STEPS = 200_000
#: Wall-clock backstop for one render; the step budget stops runaway templates long before this.
MAX_SECONDS = 10.0

_ITER_FILTER = "__k8s_ops_iter"
_SIZE_FILTER = "__k8s_ops_size"
_SAFE_METHODS: dict[type, frozenset[str]] = {
    dict: frozenset({"items", "keys", "values", "get"}),
    LoopContext: frozenset({"cycle", "changed"}),
}


class PatchTemplateError(Exception):
    """A patch template did something the sandbox refuses (unsafe access, budget exceeded)."""


@dataclass
class _Budget:
    steps: int = MAX_STEPS
    deadline: float = 0.0

    def spend(self, n: int = 1) -> None:
        self.steps -= n
        if self.steps < 0:
            raise PatchTemplateError(
                f"template does too much work: more than {MAX_STEPS} calls and loop iterations "
                "(a runaway loop or recursive macro?)"
            )
        if time.monotonic() > self.deadline:
            raise PatchTemplateError(f"template took longer than {MAX_SECONDS:g}s to render")


_BUDGET: contextvars.ContextVar[_Budget] = contextvars.ContextVar("k8s_ops_patch_budget")


def _budget() -> _Budget:
    try:
        return _BUDGET.get()
    except LookupError:  # rendered outside render_patch (never in the toolkit): a fresh budget
        budget = _Budget(deadline=time.monotonic() + MAX_SECONDS)
        _BUDGET.set(budget)
        return budget


def _sized(value: Any, what: str = "value") -> Any:
    if isinstance(value, str | list | tuple | bytes) and len(value) > MAX_OUTPUT:
        raise PatchTemplateError(f"{what} is too large (over {MAX_OUTPUT} characters/items)")
    return value


def _counted(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.spend()
        yield item


def _range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise PatchTemplateError(f"range() of {len(rng)} items is too large (at most {MAX_RANGE})")
    return rng


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    if (isinstance(width, int) and not 0 <= width <= 100) or (isinstance(width, str) and len(width) > 100):
        raise PatchTemplateError("indent width must be at most 100")
    return str(_sized(jinja2.filters.do_indent(str(s), width, first, blank), "indent result"))


def _replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    growth = max(0, len(new) - len(old)) * (text.count(old) if old else len(text) + 1)
    if len(text) + growth > MAX_OUTPUT:
        raise PatchTemplateError(f"replace result is too large (over {MAX_OUTPUT} characters)")
    return text.replace(old, new, -1 if count is None else count)


def _join(value: Iterable[Any], d: str = "", attribute: str | int | None = None) -> str:
    items = [str(v) for v in _counted(value)] if attribute is None else None
    if items is None:
        raise PatchTemplateError("join(attribute=…) is not available in patches; use map(attribute=…) first")
    if sum(map(len, items)) + len(d) * len(items) > MAX_OUTPUT:
        raise PatchTemplateError(f"join result is too large (over {MAX_OUTPUT} characters)")
    return str(d).join(items)


def _yaml_scalar(value: Any) -> str:
    import json

    return str(_sized(json.dumps(value, default=str), "y result"))


def _bounded(f: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _budget().spend()
        return _sized(f(*args, **kwargs), "filter result")

    return wrapper


_DEFAULT = jinja2.filters.FILTERS
#: The filters a patch may use (`y` quotes a value as a YAML/JSON scalar, as in the role templates).
PATCH_FILTERS: dict[str, Callable[..., Any]] = {
    **{
        name: _bounded(_DEFAULT[name])
        for name in (
            "abs",
            "bool",
            "capitalize",
            "count",
            "d",
            "default",
            "dictsort",
            "first",
            "float",
            "int",
            "items",
            "last",
            "length",
            "list",
            "lower",
            "map",
            "max",
            "min",
            "reject",
            "rejectattr",
            "round",
            "select",
            "selectattr",
            "sort",
            "string",
            "sum",
            "title",
            "tojson",
            "trim",
            "unique",
            "upper",
        )
        if name in _DEFAULT
    },
    "indent": _indent,
    "replace": _replace,
    "join": _join,
    "y": _yaml_scalar,
    _ITER_FILTER: _counted,
    _SIZE_FILTER: _sized,
}


class _PatchEnvironment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or not super().is_safe_attribute(obj, attr, value):
            return False
        if callable(value):
            return any(isinstance(obj, t) and attr in names for t, names in _SAFE_METHODS.items())
        return True

    def wrap_str_format(self, value: Any) -> None:
        return None  # `'…'.format` is refused like every other method (the base class would hand it out)

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        if isinstance(obj, jinja2.Undefined):
            str(obj)  # StrictUndefined: `cycler.__init__` is "'cycler' is undefined", not an unsafe access
        raise SecurityError(
            f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed in patches "
            "(only data: use filters instead of methods)"
        )

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _budget().spend()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        _budget().spend()
        if operator_ == "%" and isinstance(left, str | bytes):
            raise SecurityError("`%` string formatting is not allowed in patches; use `~` to join strings")
        if operator_ == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple | bytes) and isinstance(n, int) and len(seq) * n > MAX_OUTPUT:
                    raise PatchTemplateError(f"`*` result is too large (over {MAX_OUTPUT} characters/items)")
        numbers = isinstance(left, int | float) and isinstance(right, int | float)
        if (
            operator_ == "**"
            and numbers
            and (abs(right) > 64 or max(1, abs(int(left)).bit_length()) * abs(right) > 4096)
        ):
            raise PatchTemplateError("`**` result is too large (at most 4096 bits, exponent at most 64)")
        ops: dict[str, Callable[[Any, Any], Any]] = {
            "*": operator.mul,
            "**": operator.pow,
            "+": operator.add,
            "%": operator.mod,
            "//": operator.floordiv,
        }
        return _sized(ops[operator_](left, right), f"`{operator_}` result")


def _instrument(tree: nodes.Template) -> nodes.Template:
    """Count every loop iteration and bound every `~` concatenation (jinja has no hook for either)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, _ITER_FILTER, [], [], None, None, lineno=loop.lineno)
    for concat in list(tree.find_all(nodes.Concat)):
        inner = nodes.Concat(concat.nodes, lineno=concat.lineno)
        concat.nodes = [nodes.Filter(inner, _SIZE_FILTER, [], [], None, None, lineno=concat.lineno)]
    return tree


@functools.cache
def _environment() -> _PatchEnvironment:
    env = _PatchEnvironment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals.clear()
    env.globals["range"] = _range
    env.filters.clear()
    env.filters.update(PATCH_FILTERS)
    env.tests.pop("callable", None)  # `is callable` would probe for methods
    return env


def compile_patch(source: str, filename: str) -> jinja2.Template:
    """Compile a patch template in the sandbox; raises jinja2.TemplateSyntaxError."""
    env = _environment()
    tree = _instrument(env.parse(source, filename=filename))
    code = env.compile(tree, filename=filename)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def render_patch(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render a compiled patch with the step budget, size bound and wall-clock backstop.

    Raises PatchTemplateError (budget, size), jinja2.sandbox.SecurityError (unsafe access),
    jinja2.UndefinedError, or whatever else the template raised.
    """
    budget = _Budget(deadline=time.monotonic() + MAX_SECONDS)
    token = _BUDGET.set(budget)
    try:
        out: list[str] = []
        size = 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise PatchTemplateError(f"rendered patch is too large (over {MAX_OUTPUT} characters)")
            out.append(chunk)
        return "".join(out)
    finally:
        _BUDGET.reset(token)
