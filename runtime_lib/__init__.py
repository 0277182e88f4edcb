"""What a kflow-generated module imports at run time: `import kflow_runtime as rt`.

A generated module reaches every primitive through this one name (`rt.Run`,
`rt.parallel_map`, `rt.Database`), so no name from a workflow can shadow one.
The core (running, the envelope, the CLI) loads with the package; pattern
primitives and resources load on first use, so a module that uses none of them
imports only asyncio and this package's core. Resource drivers (asyncpg,
aiohttp, redis) load only when a resource opens.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from kflow_runtime._version import INTERFACE, __version__
from kflow_runtime.cli import main
from kflow_runtime.observe import Observer
from kflow_runtime.run import MISSING, Custom, Fallback, Ignore, LogAndFail, Recover, Run
from kflow_runtime.sourcemap import SourceMap

# Loaded on first use: name -> the module that defines it.
_LAZY = {
    "RetryPolicy": "kflow_runtime.patterns.retry",
    "batch_process": "kflow_runtime.patterns.batch",
    "cache_get": "kflow_runtime.patterns.cache",
    "cache_key": "kflow_runtime.patterns.cache",
    "cache_set": "kflow_runtime.patterns.cache",
    "CircuitBreaker": "kflow_runtime.patterns.circuit_breaker",
    "parallel_fetch": "kflow_runtime.patterns.parallel_fetch",
    "parallel_map": "kflow_runtime.patterns.parallel_map",
    "RateLimiter": "kflow_runtime.patterns.rate_limit",
    "SharedCircuitBreaker": "kflow_runtime.patterns.shared",
    "SharedRateLimiter": "kflow_runtime.patterns.shared",
    "Cache": "kflow_runtime.resources",
    "CustomResource": "kflow_runtime.resources",
    "Database": "kflow_runtime.resources",
    "Env": "kflow_runtime.resources",
    "HttpClient": "kflow_runtime.resources",
    "ResourceRegistry": "kflow_runtime.resources",
    "Resources": "kflow_runtime.resources",
    "Secret": "kflow_runtime.resources",
    "Program": "kflow_runtime.program",
    "resource_operation": "kflow_runtime.resource_ops",
    "run_each": "kflow_runtime.many",
    "off_loop": "kflow_runtime.run",
    "lazy_import": "kflow_runtime.lazy",
    "OtelObserver": "kflow_runtime.otel",  # imports opentelemetry: only on first use
}

__all__ = [
    "INTERFACE",
    "MISSING",
    "Custom",
    "Fallback",
    "Ignore",
    "LogAndFail",
    "Observer",
    "Recover",
    "Run",
    "SourceMap",
    "__version__",
    "main",
    "require_interface",
    *sorted(_LAZY),
]


# What each generated module said it was built for, by module name (`--version` prints it).
BUILT: dict[str, tuple[int, str]] = {}


class RuntimeMismatch(ImportError):
    """The installed kflow-runtime cannot run a generated module."""


def require_interface(needed: int, module: str, built_with: str) -> None:
    """Fail a generated module's import, in one line, when this runtime cannot run it.

    `needed` is the interface the module was built for and `built_with` the kflow
    release that built it (kflow and kflow-runtime are released together, with one
    version). Run as a script (`python out.py`), the line goes to stderr and the exit
    code is 2; imported, it is a `RuntimeMismatch` (an ImportError) with the same line.
    """
    BUILT[module] = (needed, built_with)
    if needed == INTERFACE:
        return
    line = (
        f"this module was built by kflow {built_with} for kflow-runtime interface {needed}, "
        f"but the installed kflow-runtime {__version__} provides interface {INTERFACE}: "
        f"pip install 'kflow-runtime=={built_with}', or rebuild the module with a kflowc "
        f"of release {__version__}"
    )
    if module == "__main__":
        print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2)
    raise RuntimeMismatch(line)


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'kflow_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # the next lookup is a plain global
    return value
