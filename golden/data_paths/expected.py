"""Workflow "data_paths", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "data_paths"
NODES = ("data_fetcher", "processor")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "data_fetcher": ("95d8169c8f4d04c7", ()),
    "processor": ("708f9b438fce086e", ("data_fetcher",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "data_fetcher": ("code", "workflow.py:7"),
    "processor": ("code", "workflow.py:15"),
}


# Node "data_fetcher": workflow.py:7
async def node_data_fetcher():
    result = {
        "user_data": {"id": 123, "profile": {"name": "Alice", "role": "admin"}},
        "permissions": {"read": True, "write": True, "admin": False},
        "session": {"token": "abc123", "expires": 3600},
    }
    return result


# Node "processor": workflow.py:15
async def node_processor(*, user_profile, user_permissions, auth_token):
    granted = sorted(name for name, allowed in user_permissions.items() if allowed)
    result = {
        "greeting": f"Hello {user_profile['name']} ({user_profile['role']})",
        "granted": granted,
        "token_length": len(auth_token),
    }
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call("data_fetcher", node_data_fetcher, timeout=None)
    await ctx.call(
        "processor",
        node_processor,
        wires=(
            ("user_profile", "data_fetcher", ("user_data", "profile")),
            ("user_permissions", "data_fetcher", ("permissions",)),
            ("auth_token", "data_fetcher", ("session", "token")),
        ),
        timeout=None,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "node_data_fetcher": "28-34 29:8 30:9 31:10 32:11 34:12",
        "node_processor": "38-45 39:16 40:17 41:18 42:19 43:20 45:21",
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
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
