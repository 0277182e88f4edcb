"""kflow: compile AsyncWorkflowBuilder workflows into plain-asyncio modules.

Public API, grouped by the module that defines it (implementation modules are
not API)::

    builder     AsyncWorkflowBuilder
    patterns    AsyncPatterns
    policies    AsyncRetryPolicy, RetryPolicy, ErrorHandler
    ir          Workflow
    runtime     AsyncLocalRuntime
    api         compile_workflow, CompiledModule
    errors      CompileError, KflowError
    kflow_runtime.resources   ResourceRegistry

Names load on first use: `import kflow` is cheap (the pytest plugin imports it in
every session), and the compiler's heavy parts (LibCST, black) load only when a
workflow is compiled.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kflow._version import __version__ as __version__

if TYPE_CHECKING:
    from kflow.api import CompiledModule, compile_workflow
    from kflow.builder import AsyncWorkflowBuilder
    from kflow.errors import CompileError, KflowError
    from kflow.ir import Workflow
    from kflow.patterns import AsyncPatterns
    from kflow.policies import AsyncRetryPolicy, ErrorHandler, RetryPolicy
    from kflow.runtime import AsyncLocalRuntime
    from kflow_runtime.resources import ResourceRegistry

_WHERE = {
    "AsyncLocalRuntime": "kflow.runtime",
    "AsyncPatterns": "kflow.patterns",
    "AsyncRetryPolicy": "kflow.policies",
    "AsyncWorkflowBuilder": "kflow.builder",
    "CompileError": "kflow.errors",
    "CompiledModule": "kflow.api",
    "ErrorHandler": "kflow.policies",
    "KflowError": "kflow.errors",
    "ResourceRegistry": "kflow_runtime.resources",
    "RetryPolicy": "kflow.policies",
    "Workflow": "kflow.ir",
    "compile_workflow": "kflow.api",
}

__all__ = [
    "AsyncLocalRuntime",
    "AsyncPatterns",
    "AsyncRetryPolicy",
    "AsyncWorkflowBuilder",
    "CompileError",
    "CompiledModule",
    "ErrorHandler",
    "KflowError",
    "ResourceRegistry",
    "RetryPolicy",
    "Workflow",
    "compile_workflow",
]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'kflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
