"""Point a runtime error at the line of workflow.py that raised it.

A generated module ends with a `SourceMap`: for each node function, the lines
it spans in the module and, for each statement, the workflow.py line it came
from. kflowc builds it after black has formatted the module, since black moves
lines.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from types import TracebackType


class SourceMap:
    def __init__(
        self,
        file: str,
        functions: Mapping[str, tuple[int, int, tuple[tuple[int, int], ...]]],
    ) -> None:
        self.file = file
        self.functions = functions

    def user_line(self, function: str, module_file: str, tb: TracebackType | None) -> int | None:
        """The workflow.py line of the deepest frame of `function` (or code nested in it)."""
        entry = self.functions.get(function)
        if entry is None:
            return None
        start, end, lines = entry
        found = None
        while tb is not None:
            code = tb.tb_frame.f_code
            if code.co_filename == module_file and start <= tb.tb_lineno <= end:
                found = tb.tb_lineno
            tb = tb.tb_next
        if found is None or not lines:
            return None
        index = bisect_right([gen for gen, _ in lines], found) - 1
        return lines[max(index, 0)][1]

    def where(self, function: str, module_file: str, tb: TracebackType | None) -> str | None:
        line = self.user_line(function, module_file, tb)
        return f"{self.file}:{line}" if line else None
