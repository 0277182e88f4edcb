"""`AsyncLocalRuntime`: run a workflow in-process with the very code kflowc ships.

The workflow is compiled exactly as `kflowc build` would compile it, the module
is created in memory (its source registered with `linecache`, so tracebacks and
debuggers show real lines), cached by the IR, and its `run()` is awaited.
"""

from __future__ import annotations

import hashlib
import linecache
import os
import sys
import types
from collections.abc import Mapping
from typing import Any

from kflow.api import compile_workflow
from kflow.builder import runtime_extras
from kflow.ir import Workflow

_MODULES: dict[str, types.ModuleType] = {}


def load_module(source: str, workflow_name: str) -> types.ModuleType:
    """Create (once per distinct source) an importable in-memory module."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    module = _MODULES.get(digest)
    if module is not None:
        return module
    name = f"kflow_generated_{digest}"
    filename = f"<kflow {workflow_name} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    # In sys.modules so functions pickle by reference (the process executor).
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - our own generated code
    _MODULES[digest] = module
    return module


def module_for(workflow: Workflow) -> types.ModuleType:
    compiled = compile_workflow(workflow)
    return load_module(compiled.source, workflow.name)


class AsyncLocalRuntime:
    """Execute workflows in this process and return the envelope of the guide.

    `checkpoint` (a SQLite file, sqlite:///path or postgresql://...) makes every run durable:
    each node's outcome is stored as it ends, and a run given the `run_id` of one that died
    resumes it (docs/durable.md). A call's own `checkpoint=` wins over it.
    """

    def __init__(self, resource_registry: Any = None, *, checkpoint: str | None = None) -> None:
        self.resource_registry = resource_registry
        self.checkpoint = checkpoint
        self._compiled: dict[int, tuple[Workflow, types.ModuleType]] = {}

    def module(self, workflow: Workflow) -> types.ModuleType:
        cached = self._compiled.get(id(workflow))
        if cached is not None and cached[0] is workflow:
            return cached[1]
        module = module_for(workflow)
        self._compiled[id(workflow)] = (workflow, module)
        return module

    async def execute_workflow_async(
        self,
        workflow: Workflow,
        inputs: Mapping[str, Any] | None = None,
        *,
        resources: Mapping[str, Any] | None = None,
        observer: Any = None,
        checkpoint: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        module = self.module(workflow)
        kwargs: dict[str, Any] = {"observer": observer} if observer is not None else {}
        store = checkpoint if checkpoint is not None else self.checkpoint
        if store is not None or run_id is not None:
            kwargs.update(checkpoint=store, run_id=run_id)
        if hasattr(module, "RESOURCES"):
            extras = runtime_extras(workflow)
            kwargs.update(
                resources=resources,
                registry=self.resource_registry or extras.registry,
                environ={**extras.secrets, **os.environ},
            )
        return await module.run(dict(inputs or {}), **kwargs)

    async def execute(self, workflow: Workflow, inputs: Mapping[str, Any] | None = None) -> dict:
        return await self.execute_workflow_async(workflow, inputs)
