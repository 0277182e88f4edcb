"""Workflow "workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "workflow"
NODES = ("db_operation",)
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"db_operation": ("resource", "workflow.py:18")}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {}


# Node "db_operation": workflow.py:18
async def node_db_operation(*, test_db):
    return await rt.resource_operation(
        test_db, "injected", "fetch", {"query": "SELECT 1"}
    )


async def run(
    inputs: dict | None = None,
    *,
    resources: dict | None = None,
    registry: rt.ResourceRegistry | None = None,
    environ: dict | None = None,
    observer: rt.Observer | None = None,
) -> dict:
    """Run the workflow once and return its envelope.

    `resources` injects ready-made resource objects by name (tests, mocks), or is the
    long-lived `open_resources()` of this process, which the run uses and leaves open;
    `registry` injects through a ResourceRegistry; `environ` replaces os.environ for
    settings and secrets; `observer` watches the run (progress, traces).
    """
    if isinstance(resources, rt.Resources):
        opened, owned = resources, False
    else:
        opened = rt.Resources(
            RESOURCES, injected=resources, registry=registry, environ=environ
        )
        owned = True
    async with rt.Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        info=NODE_INFO,
        source_map=SOURCE_MAP,
        module_file=__file__,
        resources=opened,
        close_resources=owned,
        observer=observer,
    ) as ctx:
        await ctx.call("db_operation", node_db_operation, resources=("test_db",))
    return ctx.envelope()


def open_resources(
    *, registry: rt.ResourceRegistry | None = None, environ: dict | None = None
) -> rt.Resources:
    """Resources for a long-lived process: each opens on first use and stays open for
    every run given them as `run(inputs, resources=...)`. Close with `.aclose()`."""
    return rt.Resources(RESOURCES, registry=registry, environ=environ)


async def run_many(
    inputs_list: list[dict], *, max_concurrency: int = 10, **options
) -> list[dict]:
    """Run the workflow once per inputs, at most `max_concurrency` at a time.

    Returns the envelopes in input order; `options` are run()'s.
    """
    return await rt.run_each(
        run, inputs_list, max_concurrency=max_concurrency, **options
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap("workflow.py", {})


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
