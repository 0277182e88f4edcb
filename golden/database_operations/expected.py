"""Workflow "db_operations", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "db_operations"
NODES = ("query_users", "complex_query")
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
        await ctx.concurrently(
            chain_query_users,
            chain_complex_query,
        )
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
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_complex_query": "52-64 53:34 55:36 56:37 57:38 58:39 59:40 60:41 63:44 64:44",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
