"""Workflow "rate_limited", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "rate_limited"
NODES = ("fetch_page",)
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"fetch_page": ("b5fb6eb9796ff4e3", ())}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"fetch_page": ("rate_limited", "workflow.py:7")}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"page_num": ("fetch_page",)}


# Node "fetch_page", rate-limited code: workflow.py:7
async def code_fetch_page(*, page_num):
    result = {"page": page_num, "items": [page_num * 10 + i for i in range(3)]}
    return result


# Rate limit of node "fetch_page", shared by every run in this process:
# at most 2 starts at once, then 5.0 a second.
limiter_fetch_page = rt.RateLimiter(requests_per_second=5.0, burst_size=2)


async def node_fetch_page(*, page_num):
    await limiter_fetch_page.acquire()
    return await code_fetch_page(page_num=page_num)


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("fetch_page", node_fetch_page, inputs=("page_num",))


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "code_fetch_page": "24-26 25:11 26:11",
    },
)

# run(), run_many(), open_resources() and the command line: the same in every module.
PROGRAM = rt.Program(
    WORKFLOW,
    NODES,
    run_nodes,
    info=NODE_INFO,
    source_map=SOURCE_MAP,
    module_file=__file__,
    module=__name__,
    required_inputs=REQUIRED_INPUTS,
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
