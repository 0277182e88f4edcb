"""The library API behind `kflowc`: IR in, module source out.

`compile_workflow` is the whole pipeline: analyse -> generate (Jinja) ->
format (black) -> source map. The CLI and `AsyncLocalRuntime` are thin
layers over it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from kflow.analyze import analyse
from kflow.codegen import ModuleBuilder
from kflow.errors import Diagnostic
from kflow.format import assemble
from kflow.ir import EnvRef, SecretRef, Workflow
from kflow.parallel import Workers


@dataclass(frozen=True)
class CompiledModule:
    source: str
    warnings: tuple[Diagnostic, ...]
    env_vars: tuple[str, ...]  # secrets the module reads from the environment
    workflow_inputs: tuple[str, ...]  # required inputs, those only an error handler reads too
    # Settings workflow.py read with os.getenv, which the module reads when it runs:
    # (variable, "resource.setting", default).
    config_vars: tuple[tuple[str, str, str | None], ...] = ()


def compile_workflow(workflow: Workflow, *, source_file: str | None = None) -> CompiledModule:
    """Compile a built workflow into the source of one plain-asyncio module.

    The output depends only on the IR and the *name* of the source file, never
    on paths or time, so the same workflow gives the same bytes anywhere.
    """
    source_file = os.path.basename(source_file or workflow.source_file or "workflow.py")
    with Workers() as workers:
        analysis = analyse(workflow, workers=workers, format_code=True)
        analysis.raise_errors()
        source = assemble(ModuleBuilder(analysis, source_file).build(), workers=workers)
    from kflow.builder import runtime_extras

    warnings = (*analysis.warnings, *runtime_extras(workflow).notes)
    # The module declares only the resources some node uses.
    used = {dict(a.resource_aliases).get(n, n) for a in analysis.nodes.values()
            for n in a.resources}
    return CompiledModule(source, warnings, _secret_vars(workflow),
                          analysis.required_inputs, _config_vars(workflow, used))


def _config_vars(workflow: Workflow, used: set[str]) -> tuple[tuple[str, str, str | None], ...]:
    found: list[tuple[str, str, str | None]] = []

    def walk(value: object, where: str) -> None:
        if isinstance(value, EnvRef):
            found.append((value.env, where, value.default))
        elif isinstance(value, dict) or hasattr(value, "items"):
            for key, item in value.items():  # type: ignore[attr-defined]
                walk(item, f"{where}.{key}")
        elif isinstance(value, tuple | list):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")

    for resource in workflow.resources:
        if resource.name in used:
            walk(resource.settings, resource.name)
    return tuple(found)


def _secret_vars(workflow: Workflow) -> tuple[str, ...]:
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, SecretRef):
            found.add(value.env)
        elif isinstance(value, dict | tuple) or hasattr(value, "items"):
            items = value.values() if hasattr(value, "values") else value
            for item in items:
                walk(item)

    for resource in workflow.resources:
        walk(resource.settings)
    return tuple(sorted(found))
