"""Workflow "health_alerts", compiled by kflowc from workflow.py.

Generated code: change workflow.py and rebuild with `kflowc build`.
Run it with `python <this file> --inputs '{...}'`, or import it and `await run(inputs)`.
"""

import kflow_runtime as rt

# Built for runtime interface 1: fails here, in one line, on a runtime that cannot run it.
rt.require_interface(1, __name__, "0.2.0")

WORKFLOW = "health_alerts"
NODES = ("health_monitor", "alert_processor")
# Each node's kind and line in workflow.py, for traces.
NODE_INFO = {
    "health_monitor": ("code", "workflow.py:8"),
    "alert_processor": ("code", "workflow.py:17"),
}


# Node "health_monitor": workflow.py:8
async def node_health_monitor():
    result = {
        "alerts": ["CPU High", "Memory Warning"],
        "needs_alerting": True,
        "metrics": {"cpu": 95, "memory": 88},
        "status": "critical",
    }
    return result


# Node "alert_processor": workflow.py:17
async def node_alert_processor(
    *, alerts=rt.MISSING, needs_alerting=False, metrics=rt.MISSING
):
    # All connected variables are available
    alerts = alerts if alerts is not rt.MISSING else []
    needs_alerting = needs_alerting
    metrics = metrics if metrics is not rt.MISSING else {}

    result = {
        "processed_alerts": len(alerts),
        "alerting_enabled": needs_alerting,
        "critical_metrics": [k for k, v in metrics.items() if v > 90],
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
        info=NODE_INFO,
        source_map=SOURCE_MAP,
        module_file=__file__,
        observer=observer,
    ) as ctx:
        await ctx.call("health_monitor", node_health_monitor)
        await ctx.call(
            "alert_processor",
            node_alert_processor,
            wires=(
                ("alerts", "health_monitor", ("alerts",)),
                ("needs_alerting", "health_monitor", ("needs_alerting",)),
                ("metrics", "health_monitor", ("metrics",)),
            ),
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
        "node_health_monitor": "22-29 23:9 24:10 25:11 26:12 27:13 29:14",
        "node_alert_processor": "33-46 37:19 38:20 39:21 41:23 42:24 43:25 44:26 46:27",
    },
)


if __name__ == "__main__":
    raise SystemExit(rt.main(run, run_many=run_many))
