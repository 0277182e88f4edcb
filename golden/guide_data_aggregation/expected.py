"""Workflow "data_aggregation", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

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


async def run(
    inputs: dict | None = None, *, observer: rt.Observer | None = None
) -> dict:
    """Run the workflow once and return its envelope; `observer` watches the run."""
    async with rt.Run(
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
            timeout=None,
        )
    return ctx.envelope()


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
        "fetch_multi_fetch_customers": "24-27 25:18 26:19 27:19",
        "fetch_multi_fetch_orders": "31-34 32:22 33:23 34:23",
        "fetch_multi_fetch_inventory": "38-41 39:26 40:27 41:27",
        "fetch_multi_fetch_analytics": "45-48 46:30 47:31 48:31",
        "node_analyze": "64-94 66:43 67:44 68:45 69:46 72:49 73:50 74:51 75:52 76:53 77:54 80:57 89:68 94:72",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
