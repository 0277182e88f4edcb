"""Workflow "api_pipeline", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import json

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "api_pipeline"
NODES = ("fetch_users", "process_users", "store_users")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "fetch_users": ("108bd38f2b772ef8", ()),
    "process_users": ("da725f0e7ae4f9e0", ("fetch_users",)),
    "store_users": ("da6fdaf801c8ec40", ("process_users",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "fetch_users": ("rate_limited", "workflow.py:23"),
    "process_users": ("parallel_map", "workflow.py:34"),
    "store_users": ("batch_processor", "workflow.py:54"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {"page_num": ("fetch_users",)}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {
    "api": rt.HttpClient("api", {"base_url": "https://api.example.com"}),
    "db": rt.Database("db", {"host": "localhost", "database": "myapp"}),
}


# Node "fetch_users", rate-limited code: workflow.py:23
async def code_fetch_users(*, page_num, api):
    response = await api.get("/users", params={"page": page_num})
    result = await response.json()
    return result


# Rate limit of node "fetch_users", shared by every run in this process:
# at most 5 starts at once, then 5.0 a second.
limiter_fetch_users = rt.RateLimiter(requests_per_second=5.0, burst_size=5)


async def node_fetch_users(*, page_num, api):
    await limiter_fetch_users.acquire()
    return await code_fetch_users(page_num=page_num, api=api)


# Node "process_users", defines process_item: workflow.py:34
async def functions_process_users(*, api):
    async def process_item(user):
        # Enrich user data
        profile_response = await api.get(f"/users/{user['id']}/profile")
        profile = await profile_response.json()

        return {
            "id": user["id"],
            "name": user["name"],
            "email": user["email"],
            "profile": profile,
        }

    return process_item


async def node_process_users(*, items, api):
    process_item = await functions_process_users(api=api)
    return await rt.parallel_map(
        process_item,
        items,
        max_workers=10,
        timeout_per_item=5.0,
        continue_on_error=True,
    )


# Node "store_users", run once per batch of `items`: workflow.py:54
async def code_store_users(*, items, batch_results, db):
    async with db.acquire() as conn:
        for user in items:
            await conn.execute(
                "INSERT INTO users (id, name, email, profile) VALUES ($1, $2, $3, $4)",
                user["id"],
                user["name"],
                user["email"],
                json.dumps(user["profile"]),
            )
        batch_results = [{"stored": True, "id": user["id"]} for user in items]
    return batch_results


async def node_store_users(*, items, db):
    async def process_batch(chunk):
        return await code_store_users(items=chunk, batch_results=[], db=db)

    return await rt.batch_process(process_batch, items, batch_size=50)


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call(
        "fetch_users",
        node_fetch_users,
        inputs=("page_num",),
        resources=("api",),
    )
    await ctx.call(
        "process_users",
        node_process_users,
        wires=(("items", "fetch_users", ()),),
        resources=("api",),
        timeout=None,
    )
    await ctx.call(
        "store_users",
        node_store_users,
        wires=(("items", "process_users", ("results",)),),
        resources=("db",),
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "code_fetch_users": "42-45 43:27 44:28 45:28",
        "functions_process_users": "59-72 60:37 62:39 63:40 65:42 66:43 67:44 68:45 69:46 72:47",
        "code_store_users": "87-98 88:58 89:59 90:60 91:61 92:62 93:62 94:62 95:62 97:64 98:64",
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
    required_inputs=REQUIRED_INPUTS,
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
