"""Workflow "workflow", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

from runtime_lib import Observer, Run, SourceMap, main
from runtime_lib.many import run_each
from runtime_lib.resource_ops import resource_operation
from runtime_lib.resources import ResourceRegistry, Resources

WORKFLOW = "workflow"
NODES = ("db_operation",)


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {}


# Node "db_operation": workflow.py:18
async def node_db_operation(*, test_db):
    return await resource_operation(test_db, "injected", "fetch", {"query": "SELECT 1"})


async def run(
    inputs: dict | None = None,
    *,
    resources: dict | None = None,
    registry: ResourceRegistry | None = None,
    environ: dict | None = None,
    observer: Observer | None = None,
) -> dict:
    """Run the workflow once and return its envelope.

    `resources` and `registry` inject ready-made resource objects (tests, mocks);
    `environ` replaces os.environ for settings and secrets; `observer` watches the run
    (progress, traces).
    """
    opened = Resources(
        RESOURCES, injected=resources, registry=registry, environ=environ
    )
    async with Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        source_map=SOURCE_MAP,
        module_file=__file__,
        resources=opened,
        observer=observer,
    ) as ctx:
        await ctx.call("db_operation", node_db_operation, resources=("test_db",))
    return ctx.envelope()


async def run_many(
    inputs_list: list[dict], *, max_concurrency: int = 10, **options
) -> list[dict]:
    """Run the workflow once per inputs, at most `max_concurrency` at a time.

    Returns the envelopes in input order; `options` are run()'s.
    """
    return await run_each(run, inputs_list, max_concurrency=max_concurrency, **options)


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = SourceMap("workflow.py", {})


if __name__ == "__main__":
    raise SystemExit(main(run, run_many=run_many))
