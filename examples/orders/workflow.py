"""An order pipeline that needs no external service: validate, price and count in
parallel, then report. Build and run it with:

    kflowc build examples/orders/workflow.py -o orders.py
    python orders.py --inputs-file examples/orders/inputs.json
"""

from kailash.workflow import AsyncWorkflowBuilder, ErrorHandler

builder = AsyncWorkflowBuilder("orders", description="Validate, price and count orders")

builder.add_async_code("validate", """
    valid, rejected = [], []
    for order in orders:
        if order.get("quantity", 0) > 0 and order.get("price", 0) >= 0:
            valid.append(order)
        else:
            rejected.append(order["id"])
    result = {"valid": valid, "rejected": rejected}
""", description="Split orders into valid and rejected")

builder.add_async_code("price", """
    tax_rate = globals().get("tax_rate", 0.2)
    subtotal = sum(o["quantity"] * o["price"] for o in orders)
    result = {"subtotal": round(subtotal, 2), "total": round(subtotal * (1 + tax_rate), 2)}
""")

builder.add_async_code("stock", """
    counts = collections.Counter()
    for order in orders:
        counts[order["sku"]] += order["quantity"]
    result = dict(sorted(counts.items()))
""")

builder.add_async_code("discount", """
    # Codes are looked up in a table; an unknown code is an error, and the fallback
    # handler turns it into "no discount" instead of failing the run.
    table = {"WELCOME10": 0.10, "VIP25": 0.25}
    result = {"code": code, "rate": table[code]}
""", error_handler=ErrorHandler("fallback", fallback_value={"code": None, "rate": 0.0}))

builder.add_async_code("report", """
    result = {
        "orders": len(valid) + len(rejected),
        "rejected": rejected,
        "to_pay": round(total * (1 - discount["rate"]), 2),
        "stock_needed": stock,
    }
""")

builder.add_connection("validate", "result.valid", "price", "orders")
builder.add_connection("validate", "valid", "stock", "orders")
builder.add_connection("validate", "result.valid", "report", "valid")
builder.add_connection("validate", "result.rejected", "report", "rejected")
builder.add_connection("price", "result.total", "report", "total")
builder.add_connection("stock", None, "report", "stock")
builder.add_connection("discount", None, "report", "discount")

workflow = builder.build()
