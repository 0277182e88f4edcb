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
        "fetch_multi_fetch_customers": "30-33 31:18 32:19 33:19",
        "fetch_multi_fetch_orders": "37-40 38:22 39:23 40:23",
        "fetch_multi_fetch_inventory": "44-47 45:26 46:27 47:27",
        "fetch_multi_fetch_analytics": "51-54 52:30 53:31 54:31",
        "node_analyze": "70-100 72:43 73:44 74:45 75:46 78:49 79:50 80:51 81:52 82:53 83:54 86:57 87:58 88:59 89:60 90:61 91:62 92:65 95:68 96:69 97:70 98:71 100:72",
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
)
run = PROGRAM.run
run_many = PROGRAM.run_many
open_resources = PROGRAM.open_resources


if __name__ == "__main__":
    raise SystemExit(PROGRAM.main())
