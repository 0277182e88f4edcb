"""Workflow "db_operations", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "db_operations"
NODES = ("query_users", "complex_query")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "query_users": ("198cb434abda81b9", ()),
    "complex_query": ("6ab3b3f644e5adcc", ()),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "query_users": ("resource", "workflow.py:23"),
    "complex_query": ("code", "workflow.py:31"),
}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {
    "main_db": rt.Database(
        "main_db",
        {
            "host": "prod-db.company.com",
            "database": "analytics",
            "user": "app_user",
            "password": rt.Secret("KFLOW_MAIN_DB_PASSWORD"),
            "min_size": 5,
            "max_size": 20,
        },
    ),
}


# Node "query_users": workflow.py:23
async def node_query_users(*, main_db):
    return await rt.resource_operation(
        main_db,
        "database",
        "fetch",
        {
            "query": "SELECT * FROM users WHERE created_at > $1",
            "params": ["2024-01-01"],
        },
    )


# Node "complex_query": workflow.py:31
async def node_complex_query(*, db):
    async with db.acquire() as conn:
        # Complex transaction
        async with conn.transaction():
            users = await conn.fetch("SELECT * FROM users WHERE active = true")
            for user in users:
                await conn.execute(
                    "UPDATE user_stats SET last_seen = NOW() WHERE user_id = $1",
                    user["id"],
                )

        result = {"updated_users": len(users)}
    return result


async def chain_query_users(ctx: rt.Run) -> None:
    await ctx.call("query_users", node_query_users, resources=("main_db",))


async def chain_complex_query(ctx: rt.Run) -> None:
    await ctx.call("complex_query", node_complex_query, resources=(("db", "main_db"),))


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: its chains at once, each waiting for what it reads."""
    await ctx.concurrently(
        chain_query_users,
        chain_complex_query,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_complex_query": "58-70 59:34 61:36 62:37 63:38 64:39 65:40 66:41 69:44 70:44",
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
