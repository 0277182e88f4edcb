"""Workflow "http_client", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "http_client"
NODES = ("api_call",)
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {"api_call": ("03f7dae75dde4a62", ())}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {"api_call": ("code", "workflow.py:24")}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {
    "authenticated_api": rt.HttpClient(
        "authenticated_api",
        {
            "base_url": "https://api.service.com",
            "headers": {
                "Authorization": rt.Secret(
                    "KFLOW_AUTHENTICATED_API_HEADERS_AUTHORIZATION"
                ),
                "User-Agent": "MyApp/1.0",
            },
            "timeout": 30,
            "connection_limit": 50,
        },
    ),
}


# Node "api_call": workflow.py:24
async def node_api_call(*, authenticated_api):
    # Client is pre-configured with auth and base URL
    response = await authenticated_api.get("/users", params={"limit": 100})

    if response.status == 200:
        data = await response.json()
        result = {"users": data["users"], "total": data["total"]}
    else:
        raise Exception(f"API error: {response.status}")
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("api_call", node_api_call, resources=("authenticated_api",))


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_api_call": "42-51 44:28 46:30 47:31 48:32 50:34 51:34",
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
    resources=RESOURCES,
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
