"""Workflow "data_aggregation", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

from runtime_lib import Observer, Run, SourceMap, main
from runtime_lib.many import run_each
from runtime_lib.patterns import parallel_fetch

WORKFLOW = "data_aggregation"
NODES = ("multi_fetch", "analyze")
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
    return await parallel_fetch(
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


async def run(inputs: dict | None = None, *, observer: Observer | None = None) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run."""
    async with Run(
        WORKFLOW,
        inputs,
        nodes=NODES,
        source_map=SOURCE_MAP,
        module_file=__file__,
        observer=observer,
    ) as ctx:
        if not ctx.require(REQUIRED_INPUTS):
            ctx.skip_all(NODES)
            return ctx.envelope()
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
        )
    return ctx.envelope()


async def run_many(
    inputs_list: list[dict], *, max_concurrency: int = 10, **options
) -> list[dict]:
    """Run the workflow once per inputs, at most `max_concurrency` at a time.

    Returns the envelopes in input order; `options` are run()'s.
    """
    return await run_each(run, inputs_list, max_concurrency=max_concurrency, **options)


# Lines of this module -> lines of workflow.py, so errors name the user's own line.
SOURCE_MAP = SourceMap(
    "workflow.py",
    {
        "fetch_multi_fetch_customers": "23-26 24:18 25:19 26:19",
        "fetch_multi_fetch_orders": "30-33 31:22 32:23 33:23",
        "fetch_multi_fetch_inventory": "37-40 38:26 39:27 40:27",
        "fetch_multi_fetch_analytics": "44-47 45:30 46:31 47:31",
        "node_analyze": "63-93 65:43 66:44 67:45 68:46 71:49 72:50 73:51 74:52 75:53 76:54 79:57 88:68 93:72",
    },
)


if __name__ == "__main__":
    raise SystemExit(main(run, run_many=run_many))
