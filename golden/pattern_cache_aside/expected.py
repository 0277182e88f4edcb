"""Workflow "cache_aside", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "cache_aside"
NODES = ("profile_cached", "profile_fetch", "profile_store")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "profile_cached": ("0b4386e04e3a107b", ()),
    "profile_fetch": ("dd0f6d17c1a1a3b4", ("profile_cached",)),
    "profile_store": ("68b251828fdfae4f", ("profile_fetch",)),
}
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


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
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


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "code_profile_fetch": "50-53 51:16 52:17 53:17",
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
