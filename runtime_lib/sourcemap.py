"""Point a runtime error at the line of workflow.py that raised it.

A generated module ends with a `SourceMap`: for each node function, a string
"first-last gen:user gen:user ...": the module lines the function spans, then
for each statement its module line and the workflow.py line it came from.
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

    def user_line(self, function: str, module_file: str, tb: TracebackType | None) -> int | None:
        """The workflow.py line of the deepest frame of `function` (or code nested in it)."""
        entry = self.functions.get(function)
        if not entry:
            return None
        span, *pairs = entry.split()
        start, end = (int(part) for part in span.split("-"))
        found = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == module_file and start <= tb.tb_lineno <= end:
                found = tb.tb_lineno
            tb = tb.tb_next
        if found is None or not pairs:
            return None
        lines = [tuple(int(n) for n in pair.split(":")) for pair in pairs]
        index = bisect_right([gen for gen, _ in lines], found) - 1
        return lines[max(index, 0)][1]

    def where(self, function: str, module_file: str, tb: TracebackType | None) -> str | None:
        line = self.user_line(function, module_file, tb)
        return f"{self.file}:{line}" if line else None
