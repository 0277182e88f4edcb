"""The guide's "Fan-out and Fan-in Patterns": one source, three processors, one aggregator."""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("fan_out_fan_in")

builder.add_async_code("source", """
result = {"data": [3, 1, 2], "metadata": {"origin": "sensor-7", "count": 3}}
""")
builder.add_async_code("processor_a", """
await asyncio.sleep(0.01)
result = sorted(input)
""")
builder.add_async_code("processor_b", """
await asyncio.sleep(0.01)
result = sum(input)
""")
builder.add_async_code("processor_c", """
result = max(input)
""")
builder.add_async_code("monitor", """
result = {"seen": stats["count"], "origin": stats["origin"]}
""")
builder.add_async_code("aggregator", """
result = {"sorted": data_a, "total": data_b, "largest": data_c}
""")

# Fan-out: One source to multiple targets
builder.add_connection("source", "result.data", "processor_a", "input")
builder.add_connection("source", "result.data", "processor_b", "input")
builder.add_connection("source", "result.data", "processor_c", "input")
builder.add_connection("source", "result.metadata", "monitor", "stats")

# Fan-in: Multiple sources to one target
builder.add_connection("processor_a", "result", "aggregator", "data_a")
builder.add_connection("processor_b", "result", "aggregator", "data_b")
builder.add_connection("processor_c", "result", "aggregator", "data_c")

workflow = builder.build()
