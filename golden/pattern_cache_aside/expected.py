"""Workflow "cache_aside", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "cache_aside"
NODES = ("profile_cached", "profile_fetch", "profile_store")
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "profile_cached": ("cache_check", "workflow.py:10"),
    "profile_fetch": ("cache_fetch", "workflow.py:10"),
    "profile_store": ("cache_store", "workflow.py:10"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {
    "user_id": ("profile_cached", "profile_fetch"),
    "fetches": ("profile_fetch",),
    "tier": ("profile_fetch",),
}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {
    "cache": rt.Cache("cache", {"host": "localhost"}),
}


# Node "profile_cached": look the key up in "cache" (cache-aside, with "profile_fetch" and "profile_store").
async def node_profile_cached(*, user_id, cache):
    key = rt.cache_key("profile_{user_id}", {"user_id": user_id})
    hit, value = await rt.cache_get(cache, key)
    return {"key": key, "hit": hit, "value": value}


# Node "profile_fetch", fetch code, run on a cache miss: workflow.py:10
async def code_profile_fetch(*, fetches, user_id, tier):
    fetches.append(user_id)
    result = {"id": user_id, "name": f"user-{user_id}", "tier": tier}
    return result


async def node_profile_fetch(*, lookup, fetches, user_id, tier):
    # A cache hit skips the fetch code.
    if lookup["hit"]:
        return lookup["value"]
    return await code_profile_fetch(fetches=fetches, user_id=user_id, tier=tier)


# Node "profile_store": store what "profile_fetch" fetched, for 300.0s; output the data.
async def node_profile_store(*, lookup, data, cache):
    if lookup["hit"]:
        return data
    # The value as a later hit will read it back: the same types either way.
    return await rt.cache_set(cache, lookup["key"], data, 300.0)


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
        if not ctx.require(REQUIRED_INPUTS):
            ctx.skip_all(NODES)
            return ctx.envelope()
        await ctx.call(
            "profile_cached",
            node_profile_cached,
            inputs=("user_id",),
            resources=("cache",),
        )
        await ctx.call(
            "profile_fetch",
            node_profile_fetch,
            wires=(("lookup", "profile_cached", ()),),
            inputs=("fetches", "user_id", "tier"),
        )
        await ctx.call(
            "profile_store",
            node_profile_store,
            wires=(("lookup", "profile_cached", ()), ("data", "profile_fetch", ())),
            resources=("cache",),
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
        "code_profile_fetch": "43-46 44:16 45:17 46:17",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
