"""Workflow "service_integration", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import asyncio

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "service_integration"
NODES = (
    "primary_service",
    "try_primary",
    "use_backup",
    "cache_check",
    "fetch_fresh",
    "cache_store",
)
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "primary_service": ("d08116d031177d25", ()),
    "try_primary": ("32d263ae85c7b555", ("primary_service",)),
    "use_backup": ("ec06e3d5e28e57b9", ("try_primary",)),
    "cache_check": ("2f95678acb38caa4", ("use_backup",)),
    "fetch_fresh": ("00fff26a57d357fa", ("cache_check",)),
    "cache_store": ("9e87de1476bae9dc", ("fetch_fresh",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "primary_service": ("circuit_breaker", "workflow.py:20"),
    "try_primary": ("fallback_primary", "workflow.py:34"),
    "use_backup": ("fallback", "workflow.py:34"),
    "cache_check": ("cache_check", "workflow.py:55"),
    "fetch_fresh": ("cache_fetch", "workflow.py:55"),
    "cache_store": ("cache_store", "workflow.py:55"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {
    "request_data": ("primary_service", "use_backup"),
    "item_id": ("cache_check", "fetch_fresh"),
}


# Opened on first use, closed when the run ends. Every setting can be overridden from
# the environment as KFLOW_<RESOURCE>_<SETTING>; secrets are only ever read from it.
RESOURCES = {
    "primary_api": rt.HttpClient(
        "primary_api", {"base_url": "https://primary.service.com"}
    ),
    "backup_api": rt.HttpClient(
        "backup_api", {"base_url": "https://backup.service.com"}
    ),
    "cache": rt.Cache("cache", {}),
}


# Node "primary_service", guarded code: workflow.py:20
async def code_primary_service(*, request_data, primary_api):
    response = await primary_api.post("/process", json=request_data)
    if response.status != 200:
        raise Exception(f"Service error: {response.status}")
    result = await response.json()
    return result


# Circuit breaker of node "primary_service", shared by every run in this process:
# opens after 5 failures in a row, tries once more after 60.0s.
breaker_primary_service = rt.CircuitBreaker(failure_threshold=5, reset_timeout=60.0)


async def node_primary_service(*, request_data, primary_api):
    # A call that takes over 30.0s counts as a failure.
    return await breaker_primary_service.call(
        lambda: asyncio.wait_for(
            code_primary_service(request_data=request_data, primary_api=primary_api),
            30.0,
        )
    )


# Node "try_primary": workflow.py:34
async def node_try_primary(*, primary_result):
    # Try primary service first
    if primary_result.get("success", False):
        result = primary_result
    else:
        raise Exception("Primary service unavailable")
    return result


# Node "use_backup", fallback code: workflow.py:34
async def code_use_backup(*, request_data, backup_api):
    # Use backup service
    response = await backup_api.post("/process", json=request_data)
    result = await response.json()
    result["_used_backup"] = True
    return result


async def node_use_backup(*, primary_output, primary_error, request_data, backup_api):
    # "try_primary" failed or timed out: only then does this node's code run.
    if primary_error is None:
        return primary_output
    return await code_use_backup(request_data=request_data, backup_api=backup_api)


# Node "cache_check": look the key up in "cache" (cache-aside, with "fetch_fresh" and "cache_store").
async def node_cache_check(*, item_id, cache):
    key = rt.cache_key("service_data_{item_id}", {"item_id": item_id})
    hit, value = await rt.cache_get(cache, key)
    return {"key": key, "hit": hit, "value": value}


# Node "fetch_fresh", fetch code, run on a cache miss: workflow.py:55
async def code_fetch_fresh(*, backup_result, item_id, primary_api):
    # Fetch fresh data if not cached
    if not backup_result.get("_used_backup"):
        result = backup_result
    else:
        # For backup results, try to refresh from primary
        try:
            response = await primary_api.get(f"/data/{item_id}")
            result = await response.json()
        except:
            result = backup_result  # Fall back to backup data
    return result


async def node_fetch_fresh(*, lookup, backup_result, item_id, primary_api):
    # A cache hit skips the fetch code.
    if lookup["hit"]:
        return lookup["value"]
    return await code_fetch_fresh(
        backup_result=backup_result, item_id=item_id, primary_api=primary_api
    )


# Node "cache_store": store what "fetch_fresh" fetched, for 1800.0s; output the data.
async def node_cache_store(*, lookup, data, cache):
    if lookup["hit"]:
        return data
    # The value as a later hit will read it back: the same types either way.
    return await rt.cache_set(cache, lookup["key"], data, 1800.0)


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call(
        "primary_service",
        node_primary_service,
        inputs=("request_data",),
        resources=("primary_api",),
        timeout=None,
    )
    await ctx.call(
        "try_primary",
        node_try_primary,
        wires=(("primary_result", "primary_service", ()),),
        timeout=10.0,
        on_error=rt.Recover(),
    )
    await ctx.call(
        "use_backup",
        node_use_backup,
        wires=(
            ("primary_output", "try_primary", ()),
            ("primary_error", "try_primary", None),
        ),
        inputs=("request_data",),
        resources=("backup_api",),
    )
    await ctx.call(
        "cache_check",
        node_cache_check,
        after=("use_backup",),
        inputs=("item_id",),
        resources=("cache",),
    )
    await ctx.call(
        "fetch_fresh",
        node_fetch_fresh,
        wires=(("backup_result", "use_backup", ()), ("lookup", "cache_check", ())),
        inputs=("item_id",),
        resources=("primary_api",),
    )
    await ctx.call(
        "cache_store",
        node_cache_store,
        wires=(("lookup", "cache_check", ()), ("data", "fetch_fresh", ())),
        resources=("cache",),
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "code_primary_service": "63-68 64:24 65:25 66:26 67:27 68:27",
        "node_try_primary": "87-93 89:40 90:41 92:43 93:43",
        "code_use_backup": "97-102 99:47 100:48 101:49 102:49",
        "code_fetch_fresh": "120-131 122:62 123:63 126:66 127:67 128:68 130:70 131:70",
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
