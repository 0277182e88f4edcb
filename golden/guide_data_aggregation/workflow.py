"""The guide's "2. Multi-Source Data Aggregation".

The four API clients are not declared as resources in the guide, so they are
workflow inputs: `example_inputs()` passes small in-memory stand-ins, one of them
failing, to show `successful` and `failed`.
"""

from kailash.workflow import AsyncPatterns, AsyncWorkflowBuilder

# Fetch data from multiple sources in parallel
builder = AsyncWorkflowBuilder("data_aggregation")

AsyncPatterns.parallel_fetch(
    builder,
    "multi_fetch",
    {
        "customers": """
            response = await crm_api.get("/customers")
            result = await response.json()
        """,
        "orders": """
            response = await orders_api.get("/orders")
            result = await response.json()
        """,
        "inventory": """
            response = await inventory_api.get("/products")
            result = await response.json()
        """,
        "analytics": """
            response = await analytics_api.get("/metrics")
            result = await response.json()
        """
    },
    timeout_per_operation=30.0,
    continue_on_error=True
)

# Combine and analyze data
builder.add_async_code(
    "analyze",
    """
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
            customer_orders.items(),
            key=lambda x: len(x[1]),
            reverse=True
        )[:10]
    }

    result = {
        "insights": insights,
        "data_sources": list(successful.keys()),
        "failed_sources": list(failed.keys()) if failed else []
    }
    """
)

builder.add_connection("multi_fetch", "successful", "analyze", "successful")
builder.add_connection("multi_fetch", "failed", "analyze", "failed")

workflow = builder.build()


class FakeResponse:
    def __init__(self, payload):
        self.payload = payload

    async def json(self):
        return self.payload


class FakeApi:
    def __init__(self, routes):
        self.routes = routes

    async def get(self, path):
        if path not in self.routes:
            raise ConnectionError(f"GET {path}: connection refused")
        return FakeResponse(self.routes[path])


def example_inputs():
    return {
        "crm_api": FakeApi({"/customers": [{"id": 1}, {"id": 2}]}),
        "orders_api": FakeApi({"/orders": [
            {"id": 10, "customer_id": 1}, {"id": 11, "customer_id": 1},
            {"id": 12, "customer_id": 2},
        ]}),
        "inventory_api": FakeApi({"/products": [{"sku": "mug"}]}),
        "analytics_api": FakeApi({}),  # down: lands in `failed`
    }
