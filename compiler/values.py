"""Values that come from a workflow, checked where they enter the IR.

A workflow reaches the compiler two ways: through the builder (Python values) or as an IR
JSON file (anything at all). Either way every value passes one of the checkers here when
the IR object holding it is built, as LibCST's nodes validate on construction, so a bad
value fails at its source (the user's call, or the IR file's field) and never deep in code
generation. A checker returns the value in its IR form (frozen, `int` widened to `float`
where a float is meant) or raises `BadValue`, which the builder and the IR reader turn
into a located `CompileError`.

`Params` is the base of every node kind's parameters: a frozen dataclass whose fields name
their checker, checked in `__post_init__`.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


class BadValue(ValueError):
    """A value a workflow gave is unusable: `message` (naming the setting) and a `hint`."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# -- frozen user data ---------------------------------------------------------------


class FrozenDict(Mapping[str, Any]):
    """An immutable, hashable dict for user values inside the IR."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        # Order-free, as equality is: a dict read back from sorted JSON equals the original.
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenDict({self._data!r})"


def freeze(value: Any) -> Any:
    """Turn JSON-like user data into its immutable IR form."""
    if isinstance(value, Mapping):
        return FrozenDict({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """The plain dict/list form of a frozen value, for emitting and for JSON."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


# -- checkers: (value, name) -> the value in IR form, or BadValue ----------------------

Check = Callable[[Any, str], Any]

_SURROGATE = re.compile("[\ud800-\udfff]")


def text(value: Any, name: str) -> str:
    """A string that can be written into a module: no NUL, no lone surrogate."""
    if not isinstance(value, str):
        raise BadValue(f"{name} must be a string, not {_show(value)}")
    if "\x00" in value:
        raise BadValue(f"{name} contains a NUL character", "remove the \\x00")
    if _SURROGATE.search(value):
        raise BadValue(f"{name} contains a lone surrogate ({_show(value)})",
                       "use text that can be written as UTF-8")
    return value


def optional_text(value: Any, name: str) -> str | None:
    return None if value is None else text(value, name)


def nonempty_text(value: Any, name: str) -> str:
    if not text(value, name):
        raise BadValue(f"{name} must not be empty")
    return value


def identifier(value: Any, name: str) -> str:
    """A name node code can use: a Python identifier, not a keyword, and already in the
    form Python reads it in (NFKC), so the name in the signature is the name passed."""
    text(value, name)
    if (not value.isidentifier() or keyword.iskeyword(value)
            or unicodedata.normalize("NFKC", value) != value):
        raise BadValue(f"{name} must be a Python name, not {_show(value)}",
                       "use letters, digits and _, not starting with a digit, and no keyword")
    return value


def optional_identifier(value: Any, name: str) -> str | None:
    return None if value is None else identifier(value, name)


def identifiers(value: Any, name: str) -> tuple[str, ...]:
    return tuple(identifier(v, f"{name}[{i}]") for i, v in enumerate(_sequence(value, name)))


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)


def dotted_name(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _DOTTED.fullmatch(value):
        raise BadValue(f"{name} must be a dotted name like 'aiohttp.ClientError', not "
                       f"{_show(value)}")
    return value


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"{name} must be True or False, not {_show(value)}")
    return value


def whole_number(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        what = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise BadValue(f"{name} must be {what}, not {_show(value)}", f"e.g. {name}=10")
    return value


def positive_int(value: Any, name: str) -> int:
    return whole_number(value, name)


def optional_positive_int(value: Any, name: str) -> int | None:
    return None if value is None else positive_int(value, name)


def number(value: Any, name: str, minimum: float = 0.0, *, inclusive: bool = False) -> float:
    """A finite number above `minimum` (or at it, with `inclusive`), as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValue(f"{name} must be a number, not {_show(value)}", f"e.g. {name}=1.0")
    if not math.isfinite(value):
        raise BadValue(f"{name} must be a finite number, not {value!r}",
                       "give a number of seconds (or None where that means no limit)")
    if value < minimum or (value == minimum and not inclusive):
        bound = f"a number >= {minimum:g}" if inclusive else (
            "a positive number" if minimum == 0 else f"a number > {minimum:g}")
        raise BadValue(f"{name} must be {bound}, not {value!r}", f"e.g. {name}=1.0")
    return float(value)


def positive_number(value: Any, name: str) -> float:
    return number(value, name)


def limit(value: Any, name: str) -> float | None:
    """Seconds that bound something (a timeout, a TTL). None or `inf` mean no limit."""
    if value is None or (isinstance(value, float) and value == math.inf):
        return None
    try:
        return number(value, name)
    except BadValue:
        raise BadValue(f"{name} must be a positive number of seconds, or None for no limit, "
                       f"not {_show(value)}", f"e.g. {name}=30, or {name}=None") from None


def choice(options: tuple[str, ...]) -> Check:
    def check(value: Any, name: str) -> str | None:
        if value is not None and value not in options:
            raise BadValue(f"{name} must be one of {', '.join(options)}, not {_show(value)}")
        return value
    return check


def json_value(value: Any, name: str) -> Any:
    """JSON-like data (str, finite numbers, bool, None, lists, str-keyed dicts), frozen."""
    return freeze(_json(value, name, 0))


def json_object(value: Any, name: str) -> FrozenDict:
    if not isinstance(value, Mapping):
        raise BadValue(f"{name} must be a dict, not {_show(value)}")
    return json_value(value, name)


_MAX_DEPTH = 50


def _json(value: Any, name: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise BadValue(f"{name} is nested more than {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadValue(f"{name} holds {value!r}, which JSON and a module cannot hold",
                           "use a finite number or None")
        return value
    if isinstance(value, str):
        return text(value, name)
    if isinstance(value, list | tuple):
        return [_json(v, f"{name}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise BadValue(f"{name} has a key {_show(k)} that is not a string")
            out[text(k, f"{name} key")] = _json(v, f"{name}[{k!r}]", depth + 1)
        return out
    raise BadValue(f"{name} holds a {type(value).__name__} ({_show(value)}), which cannot be "
                   "written into a module", "use plain values: str, number, bool, list, dict")


def _sequence(value: Any, name: str) -> tuple[Any, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise BadValue(f"{name} must be a list, not {_show(value)}")
    return tuple(value)


def _show(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"did you mean {close[0]!r}?" if close else None


# -- node kinds' parameters --------------------------------------------------------------


def param(check: Check, default: Any = MISSING) -> Any:
    """A Params field checked by `check` when built."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class Params:
    """A node kind's parameters: frozen, each field checked (and put in IR form) when built.

    Subclasses declare fields with `param(checker, default)` and may add cross-field checks
    in `validate`. `from_json` builds one from an IR file's object, rejecting unknown and
    missing fields.
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                object.__setattr__(self, f.name, check(getattr(self, f.name), f.name))
        self.validate()

    def validate(self) -> None:
        """Checks across fields; raise BadValue."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: thaw(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Any) -> Params:
        if not isinstance(data, Mapping):
            raise BadValue(f"params must be an object, not {_show(data)}")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise BadValue(f"unknown parameter {key!r}",
                               did_you_mean(str(key), known) or
                               f"this kind takes {', '.join(known) or 'no parameters'}")
        missing = [f.name for f in fields(cls) if f.name not in data
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise BadValue(f"missing parameter {missing[0]!r}")
        return cls(**data)
