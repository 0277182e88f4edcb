"""kflow: compile AsyncWorkflowBuilder workflows into plain-asyncio modules.

Public API, grouped by module (implementation modules are not API)::

    builder     AsyncWorkflowBuilder, AsyncPatterns
    policies    AsyncRetryPolicy, RetryPolicy, ErrorHandler
    ir          Workflow
    runtime     AsyncLocalRuntime, ResourceRegistry
    api         compile_workflow
    errors      CompileError
"""

from compiler.api import CompiledModule, compile_workflow
from compiler.builder import AsyncWorkflowBuilder
from compiler.errors import CompileError, KflowError
from compiler.ir import Workflow
from compiler.patterns import AsyncPatterns
from compiler.policies import AsyncRetryPolicy, ErrorHandler, RetryPolicy
from compiler.runtime import AsyncLocalRuntime
from runtime_lib.resources import ResourceRegistry

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
