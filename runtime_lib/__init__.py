"""What a kflow-generated module imports at run time.

Kept small and cheap to import: resource drivers (asyncpg, aiohttp, redis) and
pattern libraries load only when a workflow uses them.
"""

from runtime_lib.cli import main
from runtime_lib.observe import Observer
from runtime_lib.run import MISSING, Custom, Fallback, Ignore, LogAndFail, Recover, Run
from runtime_lib.sourcemap import SourceMap

__all__ = [
    "MISSING",
    "Observer",
    "Custom",
    "Fallback",
    "Ignore",
    "LogAndFail",
    "Recover",
    "Run",
    "SourceMap",
    "main",
]


def __getattr__(name: str):
    # Pattern primitives and resources load on first use, so a module that uses
    # none of them imports only asyncio and this package's core.
    if name == "RetryPolicy":
        from runtime_lib.patterns.retry import RetryPolicy

        return RetryPolicy
    raise AttributeError(f"module 'runtime_lib' has no attribute {name!r}")
