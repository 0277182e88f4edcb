"""Find where the user wrote a builder call and its code strings.

The builder records the file:line of each `add_*` call from the caller's frame.
To point errors inside a code string at the user's own line, we also find the
string literal among the call's arguments: Python 3.11 gives the call's exact
span, and `ast` (read-only, cached per file) gives the literal's position.

Both lookups are cached per file and per code object, so a workflow file with
thousands of top-level calls costs one pass over its code, not one per call
(`inspect.getframeinfo` walks the module's positions from the start every time).
"""

from __future__ import annotations

import ast
import linecache
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from types import CodeType, FrameType

from kflow.ir import SourceLocation

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@lru_cache(maxsize=256)
def _internal_file(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIR + os.sep)


def _is_internal(frame: FrameType) -> bool:
    return _internal_file(frame.f_code.co_filename)


@dataclass(frozen=True)
class CallSite:
    """A builder call in the user's file, and the `ast.Call` for it when found."""

    location: SourceLocation | None
    call: ast.Call | None = None

    def argument(self, index: int, keyword: str) -> ast.expr | None:
        if self.call is None:
            return None
        for kw in self.call.keywords:
            if kw.arg == keyword:
                return kw.value
        if index < len(self.call.args) and not any(
            isinstance(a, ast.Starred) for a in self.call.args[: index + 1]
        ):
            return self.call.args[index]
        return None

    def string_at(self, index: int, keyword: str) -> SourceLocation | None:
        return self._literal(self.argument(index, keyword))

    def dict_value_at(self, index: int, keyword: str, key: str) -> SourceLocation | None:
        node = self.argument(index, keyword)
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value == key:
                    return self._literal(v)
        return None

    def _literal(self, node: ast.expr | None) -> SourceLocation | None:
        if self.location is None or not (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
        ):
            return None
        # Point at the first character of the string's content, past prefix and quotes.
        text = linecache.getline(self.location.file, node.lineno)[node.col_offset :]
        opening = len(text) - len(text.lstrip("rRbBuUfF"))
        quote = text[opening : opening + 3]
        opening += 3 if quote in ('"""', "'''") else 1
        return SourceLocation(self.location.file, node.lineno, node.col_offset + opening)


def caller_site() -> CallSite:
    """The first frame outside the compiler package: the user's `add_*` call."""
    frame = sys._getframe(1)
    while frame is not None and _is_internal(frame):
        frame = frame.f_back
    if frame is None:
        return CallSite(None)
    line, col = _position(frame.f_code, frame.f_lasti)
    filename = frame.f_code.co_filename
    if line is None:
        line, col = frame.f_lineno or 1, 0
    location = SourceLocation(filename, line, col or 0)
    return CallSite(location, _find_call(filename, line, col or 0))


def _position(code: CodeType, lasti: int) -> tuple[int | None, int | None]:
    """(line, column) of the instruction at byte offset `lasti` (one entry per 2-byte
    code unit in `co_positions`)."""
    positions = _positions(code)
    index = lasti // 2
    if 0 <= index < len(positions):
        start_line, _, start_col, _ = positions[index]
        return start_line, start_col
    return None, None


# By the identity of the code object (hashing one hashes all its bytecode, which is
# most of the cost for a big module); the object is kept so the id stays its own.
_POSITIONS: dict[int, tuple[CodeType, tuple[tuple[int | None, ...], ...]]] = {}


def _positions(code: CodeType) -> tuple[tuple[int | None, ...], ...]:
    found = _POSITIONS.get(id(code))
    if found is None or found[0] is not code:
        if len(_POSITIONS) >= 64:
            _POSITIONS.clear()
        found = _POSITIONS[id(code)] = (code, tuple(code.co_positions()))
    return found[1]


def _find_call(filename: str, line: int, col: int) -> ast.Call | None:
    calls = _calls_by_position(filename)
    return calls.get((line, col))


@lru_cache(maxsize=64)
def _calls_by_position(filename: str) -> dict[tuple[int, int], ast.Call]:
    source = "".join(linecache.getlines(filename))
    if not source:
        return {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    calls: dict[tuple[int, int], ast.Call] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            calls[(node.lineno, node.col_offset)] = node
    return calls


def clear_cache() -> None:
    """Forget parsed files (the loader calls this before executing a workflow file)."""
    _calls_by_position.cache_clear()
    _POSITIONS.clear()
