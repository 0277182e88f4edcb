"""Workflow "data_aggregation", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Import it and `await run({...})`: these inputs are functions or clients, which JSON
(`--inputs`) cannot carry: `crm_api`, `orders_api`, `inventory_api`, `analytics_api`.
"""

import kflow_runtime as rt

# Built for runtime interface 2: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(2, __name__, "0.2.0")

WORKFLOW = "data_aggregation"
NODES = ("multi_fetch", "analyze")
# Durable runs (--checkpoint): node -> (fingerprint of its code, options and inputs; the
# nodes it reads). A resume re-runs a node whose fingerprint changed, and what it feeds.
DURABLE = {
    "multi_fetch": ("866dca9923dac791", ()),
    "analyze": ("4ad00e9967c19011", ("multi_fetch",)),
}
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "multi_fetch": ("parallel_fetch", "workflow.py:13"),
    "analyze": ("code", "workflow.py:39"),
}
# Each required workflow input, and the nodes whose code reads it.
REQUIRED_INPUTS = {
    "crm_api": ("multi_fetch",),
    "orders_api": ("multi_fetch",),
    "inventory_api": ("multi_fetch",),
    "analytics_api": ("multi_fetch",),
}


# Node "multi_fetch", operation 'customers': workflow.py:13
async def fetch_multi_fetch_customers(*, crm_api):
    response = await crm_api.get("/customers")
    result = await response.json()
    return result


# Node "multi_fetch", operation 'orders': workflow.py:13
async def fetch_multi_fetch_orders(*, orders_api):
    response = await orders_api.get("/orders")
    result = await response.json()
    return result


# Node "multi_fetch", operation 'inventory': workflow.py:13
async def fetch_multi_fetch_inventory(*, inventory_api):
    response = await inventory_api.get("/products")
    result = await response.json()
    return result


# Node "multi_fetch", operation 'analytics': workflow.py:13
async def fetch_multi_fetch_analytics(*, analytics_api):
    response = await analytics_api.get("/metrics")
    result = await response.json()
    return result


async def node_multi_fetch(*, crm_api, orders_api, inventory_api, analytics_api):
    operations = {
        "customers": lambda: fetch_multi_fetch_customers(crm_api=crm_api),
        "orders": lambda: fetch_multi_fetch_orders(orders_api=orders_api),
        "inventory": lambda: fetch_multi_fetch_inventory(inventory_api=inventory_api),
        "analytics": lambda: fetch_multi_fetch_analytics(analytics_api=analytics_api),
    }
    return await rt.parallel_fetch(
        operations, timeout_per_operation=30.0, continue_on_error=True
    )


# Node "analyze": workflow.py:39
async def node_analyze(*, successful, failed):
    # Extract successful results
    customers = successful.get("customers", [])
    orders = successful.get("orders", [])
    inventory = successful.get("inventory", [])
    analytics = successful.get("analytics", {})

    # Perform analysis
    customer_orders = {}
    for order in orders:
        customer_id = order["customer_id"]
        if customer_id not in customer_orders:
            customer_orders[customer_id] = []
        customer_orders[customer_id].append(order)

    # Generate insights
    insights = {
        "total_customers": len(customers),
        "total_orders": len(orders),
        "avg_orders_per_customer": len(orders) / len(customers) if customers else 0,
        "top_customers": sorted(
            customer_orders.items(), key=lambda x: len(x[1]), reverse=True
        )[:10],
    }

    result = {
        "insights": insights,
        "data_sources": list(successful.keys()),
        "failed_sources": list(failed.keys()) if failed else [],
    }
    return result


async def run_nodes(ctx: rt.Run) -> None:
    """The workflow's wiring: each node's call, in order."""
    await ctx.call(
        "multi_fetch",
        node_multi_fetch,
        inputs=("crm_api", "orders_api", "inventory_api", "analytics_api"),
    )
    await ctx.call(
        "analyze",
        node_analyze,
        wires=(
            ("successful", "multi_fetch", ("successful",)),
            ("failed", "multi_fetch", ("failed",)),
        ),
        timeout=None,
    )


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = rt.SourceMap(
    "workflow.py",
    {
        "fetch_multi_fetch_customers": "36-39 37:18 38:19 39:19",
        "fetch_multi_fetch_orders": "43-46 44:22 45:23 46:23",
        "fetch_multi_fetch_inventory": "50-53 51:26 52:27 53:27",
        "fetch_multi_fetch_analytics": "57-60 58:30 59:31 60:31",
        "node_analyze": "76-106 78:43 79:44 80:45 81:46 84:49 85:50 86:51 87:52 88:53 89:54 92:57 93:58 94:59 95:60 96:61 97:62 98:65 101:68 102:69 103:70 104:71 106:72",
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
    not_json=("crm_api", "orders_api", "inventory_api", "analytics_api"),
    durable=DURABLE,
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
