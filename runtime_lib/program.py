"""What every generated module has in common: `run`, `run_many`, `open_resources`, the CLI.

A module is its nodes' code and one wiring function (`run_nodes(ctx)`: the `ctx.call`s in
order, and between them the chains of each stage under `ctx.concurrently`); it builds one
`Program` at import and exports the program's methods, so every module has the same API
whether or not it uses resources:

    PROGRAM = rt.Program(WORKFLOW, NODES, run_nodes, source_map=SOURCE_MAP, ...)
    run = PROGRAM.run
    run_many = PROGRAM.run_many
    open_resources = PROGRAM.open_resources

Resource ownership lives here once: a run opens the module's resources and closes them at
its end, unless it was given `open_resources()` of a long-lived process, which it uses and
leaves open.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from kflow_runtime.observe import NodeInfo, Observer
from kflow_runtime.run import Run
from kflow_runtime.sourcemap import SourceMap


class Program:
    """One generated module's workflow, runnable as a function, many times, or as a script.

    `resources` are the module's resource specs (None: it uses none); `required_inputs`
    maps each required input to the nodes that read it; `not_json` names required inputs
    that are functions or clients (the code calls them or awaits their methods), which
    JSON cannot carry: the module's command line then says to import it instead. `info`
    gives each node's kind and line in the workflow's file, for observers (OpenTelemetry).
    """

    def __init__(
        self,
        workflow: str,
        nodes: tuple[str, ...],
        run_nodes: Callable[[Run], Awaitable[None]],
        *,
        source_map: SourceMap,
        module_file: str,
        module: str,
        resources: Mapping[str, Any] | None = None,
        required_inputs: Mapping[str, tuple[str, ...]] | None = None,
        not_json: tuple[str, ...] = (),
        info: NodeInfo | None = None,
        durable: Mapping[str, tuple[str, tuple[str, ...]]] | None = None,
    ) -> None:
        self.workflow = workflow
        self.nodes = nodes
        self.info = info  # node id -> (kind, "workflow.py:LINE"): what traces show
        self.run_nodes = run_nodes
        self.source_map = source_map
        self.module_file = module_file
        self.module = module
        self.resources = resources
        self.required_inputs = required_inputs
        self.not_json = not_json
        self.durable = durable  # node -> (fingerprint, upstream nodes): for checkpoint=

    async def run(
        self,
        inputs: dict | None = None,
        *,
        resources: Any = None,
        registry: Any = None,
        environ: dict | None = None,
        observer: Observer | None = None,
        **options: Any,
    ) -> dict:
        """Run the workflow once and return its envelope.

        `resources` injects ready-made resource objects by name (tests, mocks), or is the
        long-lived `open_resources()` of this process, which the run uses and leaves open;
        `registry` injects through a ResourceRegistry; `environ` replaces os.environ for
        settings and secrets; `observer` watches the run (progress, traces); `options` go
        to the run itself (kflow_runtime.Run).
        """
        opened, owned = self._resources_for(resources, registry, environ)
        async with Run(
            self.workflow,
            inputs,
            nodes=self.nodes,
            info=self.info,
            source_map=self.source_map,
            module_file=self.module_file,
            resources=opened,
            close_resources=owned,
            observer=observer,
            durable=self.durable,
            **options,
        ) as ctx:
            if self.required_inputs and not ctx.require(self.required_inputs):
                ctx.skip_all(self.nodes)
                return ctx.envelope()
            await self.run_nodes(ctx)
        return ctx.envelope()

    def _resources_for(self, given: Any, registry: Any, environ: dict | None) -> tuple[Any, bool]:
        """(the run's Resources or None, whether the run owns them and closes them)."""
        if given is not None or self.resources is not None:
            # Imported only here: a module that uses no resources never pays for them.
            from kflow_runtime.resources import Resources

            if isinstance(given, Resources):
                return given, False
            if self.resources is not None:
                return Resources(self.resources, injected=given, registry=registry,
                                 environ=environ), True
        return None, True  # no node uses a resource: objects given for them are unused

    def open_resources(self, *, registry: Any = None, environ: dict | None = None) -> Any:
        """Resources for a long-lived process: each opens on first use and stays open for
        every run given them as `run(inputs, resources=...)`. Close with `.aclose()`.
        A module that uses no resources gets an empty set (closing it does nothing)."""
        from kflow_runtime.resources import Resources

        return Resources(self.resources or {}, registry=registry, environ=environ)

    async def run_many(
        self, inputs_list: list[dict], *, max_concurrency: int = 10, **options: Any
    ) -> list[dict]:
        """Run the workflow once per inputs, at most `max_concurrency` at a time.

        Returns the envelopes in input order; `options` are run()'s.
        """
        from kflow_runtime.many import run_each

        return await run_each(self.run, inputs_list, max_concurrency=max_concurrency,
                              **options)

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The module's command line (`python out.py --inputs '{...}'`); its exit code."""
        from kflow_runtime.cli import EXIT_BAD_INPUT, main

        description = "Run this kflow workflow and print its envelope as JSON."
        if self.not_json:
            description += " " + self.how_to_run()
        code = main(self.run, argv, run_many=self.run_many, description=description)
        if code == EXIT_BAD_INPUT and self.not_json:
            print(f"note: {self.how_to_run()}", file=sys.stderr)
        return code

    def how_to_run(self) -> str:
        """For a module whose inputs JSON cannot carry: what to do instead of --inputs."""
        names = ", ".join(repr(name) for name in self.not_json)
        given = ", ".join(f"{name!r}: ..." for name in self.not_json)
        what = ("input {} is a function or client" if len(self.not_json) == 1
                else "inputs {} are functions or clients").format(names)
        return (f"Its {what}, which --inputs (JSON) cannot give: import this module and "
                f"`await run({{{given}}})`.")
