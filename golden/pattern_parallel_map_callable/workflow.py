"""The guide's "Controlling Concurrency": parallel maps of Python functions.

kflowc inlines each function and the module-level names it uses. The CPU-bound map
runs in a process pool (executor="process"); the others in threads (plain def).
"""

import hashlib
import math

from kailash.workflow import AsyncWorkflowBuilder

ROUNDS = 200


def digest(text):
    value = text.encode()
    for _ in range(ROUNDS):
        value = hashlib.sha256(value).digest()
    return value.hex()[:12]


def cpu_bound_function(item):
    return {"item": item, "digest": digest(str(item))}


def io_bound_function(item):
    return {"item": item, "root": math.isqrt(item)}


def memory_bound_function(item):
    block = [item] * 1000
    return sum(block)


builder = AsyncWorkflowBuilder("controlling_concurrency")
builder.add_async_code("numbers", "result = list(range(20))")

# CPU-intensive tasks - limit workers
builder.add_parallel_map(
    "cpu_intensive",
    cpu_bound_function,
    max_workers=4,  # Don't exceed CPU cores
    batch_size=10,
    executor="process",
)

# I/O-intensive tasks - more workers
builder.add_parallel_map(
    "io_intensive",
    io_bound_function,
    max_workers=50,  # Higher concurrency for I/O
    batch_size=100
)

# Memory-intensive tasks - smaller batches
builder.add_parallel_map(
    "memory_intensive",
    memory_bound_function,
    max_workers=5,
    batch_size=5,  # Smaller batches to control memory
    timeout_per_item=120
)

for node in ("cpu_intensive", "io_intensive", "memory_intensive"):
    builder.add_connection("numbers", "result", node, "items")

workflow = builder.build()
