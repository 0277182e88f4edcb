"""What each name a piece of code reads is bound to: one set of rules for all code.

A node's code, its pattern's other code strings and its custom error handler all read
names the same way, so they are bound here by the same function: a name is fed by a
connection, is a declared resource (or `db` / `http` / `cache` for the one required
resource of that kind), an auto-imported stdlib module, a builtin, an optional input
(`globals().get("x", d)`), or else a required workflow input.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from kflow.errors import Diagnostic
from kflow.ir import Node, SourceLocation

# Modules the guide's examples use without importing them.
AUTO_IMPORTS = frozenset(
    {
        "asyncio", "base64", "collections", "datetime", "decimal", "functools", "hashlib",
        "itertools", "json", "logging", "math", "os", "random", "re", "statistics", "string",
        "sys", "time", "uuid",
    }
)
BUILTINS = frozenset(dir(builtins))

# Conventional aliases of modules, imported under them when code reads them unimported.
MODULE_ALIASES = {"np": "numpy", "pd": "pandas"}
# Standard modules never imported to look at them (importing one has an effect).
_NOT_PROBED = frozenset({"antigravity", "this", "__main__", "__hello__", "__phello__"})

# The names the guide's code uses for "the" resource of a kind.
CONVENTIONAL_NAMES = {"db": "database", "http": "http", "api": "http", "cache": "cache"}


@dataclass(frozen=True)
class OptionalInput:
    """`globals().get("x", d)` in node code: an input `x` with default `d`."""

    name: str
    default: str  # source of the default expression
    in_signature: bool  # False: the body falls back to the default where it reads the name


@dataclass(frozen=True)
class Binding:
    """What the names some code reads are bound to, in first-read order."""

    connected: tuple[str, ...] = ()  # fed by a connection
    inputs: tuple[str, ...] = ()  # required workflow inputs
    optional: tuple[OptionalInput, ...] = ()  # globals().get("x", d)
    resources: tuple[str, ...] = ()  # parameter names of resources
    aliases: tuple[tuple[str, str], ...] = ()  # (parameter, resource): `db` for "main_db"
    imports: tuple[str, ...] = ()  # auto-imported stdlib modules
    lazy: tuple[tuple[str, str], ...] = ()  # (name, module): imported on first use
    notes: tuple[Diagnostic, ...] = ()  # KF103 (a name taken to mean a resource), KF111

    @property
    def reads(self) -> tuple[str, ...]:
        """Every parameter the code's function takes, in order."""
        optional = {o.name for o in self.optional}
        return (*(c for c in self.connected if c not in optional), *self.inputs,
                *(o.name for o in self.optional), *self.resources)


def bind(
    names: Iterable[str],
    optional: Iterable[OptionalInput],
    node: Node,
    *,
    connected: Iterable[str],
    resource_kinds: Mapping[str, str],
    wrapper_reads: Iterable[str] = (),
    module_like: Mapping[str, frozenset[str]] | None = None,
    locations: Mapping[str, SourceLocation | None] | None = None,
) -> Binding:
    """Bind the free `names` (in order) and `optional` inputs of code of `node`.

    `wrapper_reads` are inputs the pattern's generated wrapper takes itself (a parallel
    map's items): fed by a connection, or else required inputs, never builtins.
    `module_like` are the free names the code reads only as `name.attr` (with the attrs):
    one that is an installed module (or `np` / `pd`) is imported lazily, not an input.
    """
    connected = tuple(connected)  # in first-connection order, which parameters keep
    wrapper_reads = tuple(wrapper_reads)
    found_connected: list[str] = []
    inputs: list[str] = []
    resources: list[str] = []
    aliases: dict[str, str] = {}
    imports: list[str] = []
    lazy: list[tuple[str, str]] = []
    notes: list[Diagnostic] = []
    module_like = module_like or {}
    optional = tuple(optional)
    seen: set[str] = set()
    for name in (*names, *wrapper_reads, *(o.name for o in optional)):
        if name in seen:
            continue
        seen.add(name)
        is_optional = any(o.name == name for o in optional)
        if name in connected:
            found_connected.append(name)
        elif is_optional:
            continue
        elif name in wrapper_reads and name not in resource_kinds:
            inputs.append(name)
        elif name in BUILTINS:
            continue
        elif name in resource_kinds:
            resources.append(name)
        elif name in AUTO_IMPORTS:
            imports.append(name)
        elif (alias := _conventional_alias(name, node, resource_kinds)) is not None:
            resources.append(name)
            aliases[name] = alias
            notes.append(Diagnostic(
                "KF103", f"node {node.id!r}: `{name}` is taken to mean its required "
                f"resource {alias!r}", node.location,
                f"name the resource {name!r}, or use `{alias}` in the code, to say so "
                "explicitly", severity="info",
            ))
        elif name in module_like and (module := installed_module(
                name, module_like[name])) is not None:
            lazy.append((name, module))
            shown = module if module == name else f"{module} (as {name})"
            notes.append(Diagnostic(
                "KF111", f"node {node.id!r}: `{name}` is taken to be the installed module "
                f"{shown}, imported when first used",
                (locations or {}).get(name) or node.location,
                f"import it in the code to say so, or connect an input named {name!r}",
                severity="info",
            ))
        else:
            inputs.append(name)
    return Binding(
        connected=tuple(c for c in connected if c in found_connected),
        inputs=tuple(inputs),
        optional=_first_optional(optional),
        resources=tuple(resources),
        aliases=tuple(aliases.items()),
        imports=tuple(imports),
        lazy=tuple(lazy),
        notes=tuple(notes),
    )


def _first_optional(optional: tuple[OptionalInput, ...]) -> tuple[OptionalInput, ...]:
    out: dict[str, OptionalInput] = {}
    for o in optional:
        out.setdefault(o.name, o)
    return tuple(out.values())


def _conventional_alias(name: str, node: Node, kinds: Mapping[str, str]) -> str | None:
    """The guide writes `required_resources=["main_db"]` and then uses `db` in the code:
    with exactly one required resource of that kind, `db` means it."""
    kind = CONVENTIONAL_NAMES.get(name)
    if kind is None:
        return None
    matches = [r for r in node.options.required_resources if kinds.get(r) == kind]
    return matches[0] if len(matches) == 1 else None


@lru_cache(maxsize=512)
def installed_module(name: str, attributes: frozenset[str]) -> str | None:
    """The module a free name read only as `name.attr` stands for, if any: `np` / `pd`,
    a standard module that has every attr read (imported to see; they are cheap), or a
    package installed in site-packages (found, not imported: numpy costs 100 ms). A
    workflow input such as `token.split()` is not taken for the `token` module."""
    if name in MODULE_ALIASES:
        return MODULE_ALIASES[name]
    if name in sys.stdlib_module_names:
        if name in _NOT_PROBED or name.startswith("_"):
            return None
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module that cannot load is not a module here
            return None
        return name if all(hasattr(module, a) for a in attributes) else None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = (spec.origin or "") if spec is not None else ""
    if "site-packages" in origin or "dist-packages" in origin:
        return name
    return None
