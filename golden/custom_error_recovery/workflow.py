"""The guide's "Custom Error Recovery": the node's code retries by itself."""

from kailash.workflow import AsyncWorkflowBuilder

builder = AsyncWorkflowBuilder("robust")

# Custom error handling within operations
builder.add_async_code(
    "robust_operation",
    """
    import logging

    success_count = 0
    errors = []

    for attempt in range(3):
        try:
            response = await risky_operation()
            success_count += 1
            break  # Success
        except Exception as e:
            error_info = {
                "attempt": attempt + 1,
                "error": str(e),
                "timestamp": time.time()
            }
            errors.append(error_info)
            logging.warning(f"Attempt {attempt + 1} failed: {e}")

            if attempt < 2:  # Not final attempt
                await asyncio.sleep(0.01 * 2 ** attempt)  # Exponential backoff

    result = {
        "success": success_count > 0,
        "attempts": len(errors) + success_count,
        "errors": [e["error"] for e in errors] if errors else None
    }
    """
)

workflow = builder.build()


def example_inputs():
    calls = []

    async def risky_operation():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError(f"flaky #{len(calls)}")
        return "ok"

    return {"risky_operation": risky_operation}
