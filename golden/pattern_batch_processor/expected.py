"""Workflow "batch_processor", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "batch_processor"
NODES = ("load", "square")


# Node "load": workflow.py:7
async def node_load():
    result = list(range(1, 11))
    return result


# Node "square", run once per batch of `items`: workflow.py:8
async def code_square(*, items, batch_results):
    batch_results = [{"n": n, "square": n * n, "batch_size": len(items)} for n in items]
    return batch_results


async def node_square(*, items):
    async def process_batch(chunk):
        return await code_square(items=chunk, batch_results=[])

    return await rt.batch_process(process_batch, items, batch_size=4)


async def run(
    inputs: dict | None = None, *, observer: rt.Observer | None = None
) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run."""
    async with rt.Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        source_map=SOURCE_MAP,
        module_file=__file__,
        observer=observer,
    ) as ctx:
        await ctx.call("load", node_load, timeout=None)
        await ctx.call("square", node_square, wires=(("items", "load", ()),))
    return ctx.envelope()


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
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_load": "17-19 18:7 19:7",
        "code_square": "23-25 24:12 25:12",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
