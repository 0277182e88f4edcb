"""Point a runtime error at the line of workflow.py that raised it.

A generated module ends with a `SourceMap`: for each function holding user code,
a string "first-last gen:user gen:user ...": the module lines the function spans,
then for each statement its module line and the workflow.py line it came from, and
for code that can end without setting `result`, "end:L,L" (the workflow.py lines of
those ends).
kflowc builds it after black has formatted the module, since black moves lines.
It is parsed only when an error needs it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from types import TracebackType


class SourceMap:
    def __init__(self, file: str, functions: Mapping[str, str]) -> None:
        self.file = file
        self.functions = functions
        self._spans: list[tuple[int, int, list[tuple[int, int]]]] | None = None

    def spans(self) -> list[tuple[int, int, list[tuple[int, int]]]]:
        if self._spans is None:
            self._spans = []
            for entry in self.functions.values():
                span, *pairs = entry.split()
                start, end = (int(part) for part in span.split("-"))
                lines = [(int(g), int(u)) for g, u in (pair.split(":") for pair in pairs)
                         if g != "end"]
                self._spans.append((start, end, lines))
        return self._spans

    def user_line(self, module_file: str, tb: TracebackType | None) -> int | None:
        """The workflow.py line of the deepest frame running user code of this module."""
        found = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == module_file:
                for start, end, lines in self.spans():
                    if start <= tb.tb_lineno <= end and lines:
                        index = bisect_right([gen for gen, _ in lines], tb.tb_lineno) - 1
                        found = lines[max(index, 0)][1]
            tb = tb.tb_next
        return found

    def where(self, module_file: str, tb: TracebackType | None) -> str | None:
        line = self.user_line(module_file, tb)
        return f"{self.file}:{line}" if line else None

    def unset_ends(self, function: str) -> tuple[int, ...]:
        """The workflow.py lines where `function`'s code can end without its `result`."""
        for token in self.functions.get(function, "").split()[1:]:
            if token.startswith("end:"):
                return tuple(int(line) for line in token[4:].split(","))
        return ()


# The source map of each generated module that has run here, by its file: errors caught
# away from the run (a parallel_map item, a parallel_fetch operation) are placed by it.
_MODULES: dict[str, SourceMap] = {}


def register(module_file: str, source_map: SourceMap) -> None:
    _MODULES[module_file] = source_map


def where_raised(tb: TracebackType | None) -> str | None:
    """`workflow.py:LINE` of the deepest frame of `tb` in user code of a generated module
    that has run in this process; None when there is none (an item run in another process)."""
    if not _MODULES:
        return None
    deepest = None
    while tb is not None:
        file = tb.tb_frame.f_code.co_filename
        if file in _MODULES:
            deepest = (file, tb)
        tb = tb.tb_next
    if deepest is None:
        return None
    file, frame = deepest
    line = _MODULES[file].user_line(file, frame)
    return f"{_MODULES[file].file}:{line}" if line else None
